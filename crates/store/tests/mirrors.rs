//! The mirror tables: an import stored whole, re-imports skipping what is
//! held, a fork (another checkpoint of one size) or another record at one
//! index refusing the whole batch, pages, payloads, and a reopen.

mod common;

use common::fresh;
use evault_store::LogStore;
use evault_store::{
    ImportConflict, MirrorCheckpoint, MirrorImport, MirrorRecord, MirrorStore, SqliteStore, Store,
};

const ORIGIN: &str = "other.example/log";

fn checkpoint(size: u64, root: &str) -> MirrorCheckpoint {
    MirrorCheckpoint {
        origin: ORIGIN.into(),
        tree_size: size,
        note: format!("{ORIGIN}\n{size}\n{root}\n\n— sig\n"),
        imported_ms: 1_000 + size as i64,
        imported_by: "sa:admin".into(),
    }
}

fn record(i: u64, size: u64) -> MirrorRecord {
    MirrorRecord {
        origin: ORIGIN.into(),
        leaf_index: i,
        record: format!("{{\"leaf_index\":{i}}}"),
        sha256: format!("{i:064x}"),
        tree_size: size,
        inclusion_proof: "[]".into(),
    }
}

fn batch(size: u64, root: &str, leaves: impl Iterator<Item = u64>) -> MirrorImport {
    let records: Vec<_> = leaves.map(|i| record(i, size)).collect();
    let payloads = records
        .iter()
        .map(|r| (r.sha256.clone(), r.record.clone().into_bytes()))
        .collect();
    MirrorImport {
        checkpoint: checkpoint(size, root),
        records,
        payloads,
    }
}

fn mirrors(store: &SqliteStore) -> &dyn MirrorStore {
    store.mirrors().expect("SQLite keeps mirrors")
}

#[test]
fn imports_are_whole_idempotent_and_refuse_forks() {
    let (_dir, path, store) = fresh();
    let m = mirrors(&store);
    assert!(m.mirror_logs().unwrap().is_empty());

    let first = m.import(&batch(10, "AAAA", 0..5)).unwrap().unwrap();
    assert_eq!(
        (
            first.records_new,
            first.records_known,
            first.payloads_new,
            first.checkpoint_new
        ),
        (5, 0, 5, true)
    );
    // The same bundle again: nothing new.
    let again = m.import(&batch(10, "AAAA", 0..5)).unwrap().unwrap();
    assert_eq!(
        (
            again.records_new,
            again.records_known,
            again.payloads_new,
            again.checkpoint_new
        ),
        (0, 5, 0, false)
    );
    // A newer checkpoint with overlapping records: only the new ones stored,
    // the held ones keep their first proof.
    let newer = m.import(&batch(20, "BBBB", 3..12)).unwrap().unwrap();
    assert_eq!((newer.records_new, newer.records_known), (7, 2));
    assert_eq!(m.mirror_record(ORIGIN, 4).unwrap().unwrap().tree_size, 10);
    assert_eq!(m.mirror_record(ORIGIN, 11).unwrap().unwrap().tree_size, 20);

    // A fork: another note for size 10. Nothing of the batch is stored.
    let fork = m.import(&batch(10, "CCCC", 12..15)).unwrap().unwrap_err();
    assert!(
        matches!(&fork, ImportConflict::Checkpoint { tree_size: 10, held } if held.contains("AAAA")),
        "{fork:?}"
    );
    assert!(m.mirror_record(ORIGIN, 12).unwrap().is_none());
    // Another record at a held index, in a batch with new ones: refused whole.
    let mut other = batch(30, "DDDD", 12..16);
    other.records.push(MirrorRecord {
        record: "{\"leaf_index\":5,\"forged\":true}".into(),
        ..record(5, 30)
    });
    other.records.sort_by_key(|r| r.leaf_index);
    let conflict = m.import(&other).unwrap().unwrap_err();
    assert!(
        matches!(&conflict, ImportConflict::Record { leaf_index: 5, held } if held == "{\"leaf_index\":5}"),
        "{conflict:?}"
    );
    assert!(m.mirror_record(ORIGIN, 12).unwrap().is_none());
    assert!(m.mirror_checkpoint(ORIGIN, 30).unwrap().is_none());

    // Summary, pages, payloads, checkpoints.
    let logs = m.mirror_logs().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].origin, ORIGIN);
    assert_eq!((logs[0].records, logs[0].checkpoints), (12, 2));
    assert_eq!(logs[0].latest, checkpoint(20, "BBBB"));
    let page = m.mirror_records(ORIGIN, None, 5).unwrap();
    assert_eq!(
        page.iter().map(|r| r.leaf_index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let page = m.mirror_records(ORIGIN, Some(9), 1000).unwrap();
    assert_eq!(
        page.iter().map(|r| r.leaf_index).collect::<Vec<_>>(),
        [10, 11]
    );
    assert!(
        m.mirror_records(ORIGIN, Some(u64::MAX), 10)
            .unwrap()
            .is_empty()
    );
    assert!(m.mirror_records("nobody", None, 10).unwrap().is_empty());
    assert_eq!(
        m.mirror_payload(&format!("{:064x}", 7)).unwrap(),
        Some(b"{\"leaf_index\":7}".to_vec())
    );
    assert_eq!(m.mirror_payload(&"f".repeat(64)).unwrap(), None);
    assert_eq!(
        m.mirror_checkpoint(ORIGIN, 10).unwrap(),
        Some(checkpoint(10, "AAAA"))
    );
    assert_eq!(m.mirror_checkpoint(ORIGIN, u64::MAX).unwrap(), None);
    assert_eq!(m.mirror_record(ORIGIN, u64::MAX).unwrap(), None);

    // Never a leaf of the store's own logs.
    assert_eq!(store.tree_size(evault_store::LogId::Evidence).unwrap(), 0);

    // Everything survives a reopen.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let m = mirrors(&store);
    assert_eq!(m.mirror_logs().unwrap(), logs);
    assert_eq!(m.mirror_record(ORIGIN, 11).unwrap(), Some(record(11, 20)));
}
