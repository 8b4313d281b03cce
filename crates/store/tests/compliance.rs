//! Erasure (payload removed with its tombstone in one transaction, bytes
//! gone from every file), legal holds and retention policies.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TileBuilder, append_rows, fresh, row};
use evault_merkle::{Hash, leaf_hash};
use evault_store::{
    AppendBatch, ErasureRow, HoldRow, LogId, Payload, RetentionRow, Selector, SqliteStore, Store,
};
use evault_store::{EvidenceIndex, LogStore};

const MARKER: &[u8] = b"ERASE-ME-MARKER-7f3a9c";

fn marked_payload() -> Vec<u8> {
    // Big enough to spill onto overflow pages.
    MARKER.repeat(2000)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of every file next to the database.
fn files_contain(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && contains(&std::fs::read(&p).unwrap(), needle) {
            hits.push(p.display().to_string());
        }
    }
    hits
}

fn erasure(leaf: u64, tombstone: u64) -> ErasureRow {
    ErasureRow {
        leaf_index: leaf,
        tombstone_leaf: tombstone,
        reason_sha256: [7; 32],
        reason: "subject access request".into(),
        basis: "request".into(),
        erased_at_ms: 1_700_000_000_000,
        erased_by: "admin".into(),
    }
}

/// Appends `tombstones` and erases with them, as the sequencer does.
fn erase(
    store: &SqliteStore,
    tiles: &mut TileBuilder,
    tombstones: &[evault_store::EvidenceRow],
    erasures: &[ErasureRow],
) -> evault_store::Result<()> {
    let mut next = tiles.clone();
    let leaves: Vec<Hash> = tombstones.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let touched = next.append(&leaves);
    store.compliance().unwrap().erase(
        &AppendBatch::new(tiles.size(), tombstones, &touched),
        erasures,
    )?;
    *tiles = next;
    Ok(())
}

#[test]
fn erase_removes_the_bytes_with_the_tombstone_in_one_transaction() {
    let (dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let mut rows: Vec<_> = (0..4).map(row).collect();
    rows[2].payload = Payload::Inline(marked_payload());
    append_rows(&store, &mut tiles, &rows);
    assert!(!files_contain(dir.path(), MARKER).is_empty());

    let c = store.compliance().unwrap();
    // A tombstone outside the batch, or an erased record that does not
    // exist, fails and writes nothing of either.
    let bad = erase(&store, &mut tiles, &[row(4)], &[erasure(2, 9)]);
    assert!(bad.is_err());
    let bad = erase(&store, &mut tiles, &[row(4)], &[erasure(40, 4)]);
    assert!(bad.is_err());
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 4);
    assert_eq!(c.erasure(2).unwrap(), None);

    erase(&store, &mut tiles, &[row(4)], &[erasure(2, 4)]).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
    let erased = store.record_by_index(2).unwrap().unwrap();
    assert_eq!(erased.payload, Payload::Erased { tombstone_leaf: 4 });
    // The leaf data (what the tree commits to) is untouched.
    assert_eq!(erased.leaf_data, rows[2].leaf_data);
    assert_eq!(c.erasure(2).unwrap(), Some(erasure(2, 4)));
    assert_eq!(c.list_erasures(None, 10).unwrap(), vec![erasure(2, 4)]);
    assert_eq!(c.list_erasures(Some(2), 10).unwrap(), vec![]);
    // Erased once only.
    assert!(erase(&store, &mut tiles, &[row(5)], &[erasure(2, 5)]).is_err());
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
    // Found by digest, erased or not.
    let sharers = c.records_by_sha256(&rows[2].sha256).unwrap();
    assert_eq!(sharers.len(), 1);

    let reclaimed = c.reclaim(Duration::from_secs(10)).unwrap();
    assert!(reclaimed.wal_truncated);
    assert_eq!(
        reclaimed.free_pages, 0,
        "a new database vacuums incrementally"
    );
    assert_eq!(files_contain(dir.path(), MARKER), Vec::<String>::new());
    drop(store);
    assert_eq!(files_contain(dir.path(), MARKER), Vec::<String>::new());
    // Reopened (and read-only): still erased.
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(
        ro.record_by_index(2).unwrap().unwrap().payload,
        Payload::Erased { tombstone_leaf: 4 }
    );
}

#[test]
fn an_erased_row_cannot_be_appended() {
    let (_dir, _path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let mut r = row(0);
    r.payload = Payload::Erased { tombstone_leaf: 0 };
    let leaves = [leaf_hash(&r.leaf_data)];
    let touched = tiles.append(&leaves);
    assert!(
        store
            .append(&AppendBatch::new(0, std::slice::from_ref(&r), &touched))
            .is_err()
    );
}

#[test]
fn holds_and_retention_policies_round_trip() {
    let (_dir, _path, store) = fresh();
    let c = store.compliance().unwrap();
    let selector = Selector {
        labels: BTreeMap::from([("case".to_owned(), "case-1".to_owned())]),
        content_type: Some("application/json".into()),
    };
    let hold = HoldRow {
        id: "h1".into(),
        selector: selector.clone(),
        reason_sha256: [1; 32],
        reason: "litigation".into(),
        created_at_ms: 10,
        created_by: "admin".into(),
        released: None,
    };
    c.put_hold(&hold).unwrap();
    assert!(c.put_hold(&hold).is_err(), "ids are unique");
    assert_eq!(c.list_holds().unwrap(), vec![hold.clone()]);
    assert!(selector.matches(&row(1)));
    assert!(!selector.matches(&row(4)));
    assert!(c.release_hold("h1", 20, "boss").unwrap());
    assert!(!c.release_hold("h1", 30, "boss").unwrap(), "released once");
    assert!(!c.release_hold("nope", 30, "boss").unwrap());
    assert_eq!(
        c.list_holds().unwrap()[0].released,
        Some((20, "boss".to_owned()))
    );

    let policy = RetentionRow {
        id: "r1".into(),
        name: "ci logs".into(),
        selector: Selector::default(),
        keep_for_ms: 1000,
        created_at_ms: 5,
        created_by: "admin".into(),
    };
    c.put_retention(&policy).unwrap();
    assert!(c.put_retention(&policy).is_err());
    assert_eq!(c.list_retention().unwrap(), vec![policy]);
    assert!(c.delete_retention("r1").unwrap());
    assert!(!c.delete_retention("r1").unwrap());
    assert!(c.list_retention().unwrap().is_empty());
}

#[test]
fn compact_vacuums_an_old_database() {
    let (dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    append_rows(&store, &mut tiles, &(0..8).map(row).collect::<Vec<_>>());
    drop(store);
    // Simulate a database made before incremental auto-vacuum.
    {
        let conn = SqliteStore::raw_connection(&path).unwrap();
        conn.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
    }
    let (before, after) = SqliteStore::compact(&path).unwrap();
    assert!(before > 0 && after > 0);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2);
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 8);
    drop(dir);
}

/// A hold placed after the vault checked (written outside the sequencer)
/// still stops the erasure: the store checks active holds inside the erase
/// transaction, fails with a typed error naming the hold, writes nothing.
#[test]
fn an_active_hold_refuses_the_erase_inside_its_transaction() {
    let (_dir, _path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let rows: Vec<_> = (0..4).map(row).collect();
    append_rows(&store, &mut tiles, &rows);
    let c = store.compliance().unwrap();
    let hold = |id: &str, case: &str, content_type: Option<&str>| HoldRow {
        id: id.into(),
        selector: Selector {
            labels: BTreeMap::from([("case".to_owned(), case.to_owned())]),
            content_type: content_type.map(str::to_owned),
        },
        reason_sha256: [1; 32],
        reason: "litigation".into(),
        created_at_ms: 1,
        created_by: "legal".into(),
        released: None,
    };
    // Record 2 is case-2, application/json. A hold on another case, or on
    // another content type, does not cover it.
    c.put_hold(&hold("h-other", "case-1", None)).unwrap();
    c.put_hold(&hold("h-pdf", "case-2", Some("application/pdf")))
        .unwrap();
    // Media types compare by essence, case-insensitively.
    c.put_hold(&hold(
        "h-json",
        "case-2",
        Some("Application/JSON; charset=utf-8"),
    ))
    .unwrap();
    match erase(&store, &mut tiles, &[row(4)], &[erasure(2, 4)]) {
        Err(evault_store::StoreError::Held { hold, leaf_index }) => {
            assert_eq!((hold.as_str(), leaf_index), ("h-json", 2));
        }
        other => panic!("a held record was erased: {other:?}"),
    }
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 4);
    assert_eq!(c.erasure(2).unwrap(), None);
    assert_eq!(
        store.record_by_index(2).unwrap().unwrap().payload,
        rows[2].payload
    );

    // Released, the same erase goes through.
    assert!(c.release_hold("h-json", 2, "legal").unwrap());
    erase(&store, &mut tiles, &[row(4)], &[erasure(2, 4)]).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
}

/// Sharers are found by an index and without their inline bytes (an
/// inline payload reads as empty; erased and external stay what they are).
#[test]
fn records_by_sha256_uses_an_index_and_skips_inline_bytes() {
    let (_dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let mut rows: Vec<_> = (0..4).map(row).collect();
    rows[2].payload = Payload::Inline(marked_payload());
    rows[3].sha256 = rows[2].sha256;
    append_rows(&store, &mut tiles, &rows);
    // Leaf 2 in the follower's index, leaf 3 past its cursor: both found.
    assert_eq!(store.index_evidence(3, 100).unwrap(), 3);
    let found = store
        .compliance()
        .unwrap()
        .records_by_sha256(&rows[2].sha256)
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|r| (r.leaf_index, r.payload.clone()))
            .collect::<Vec<_>>(),
        vec![(2, Payload::Inline(Vec::new())), (3, Payload::External)]
    );
    drop(store);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    // One primary-key search per run (index database version 2).
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT leaf_index FROM records_by_sha256 WHERE sha256 = x'00'")
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|p| p.contains("USING PRIMARY KEY (run=? AND level=? AND sha256=?)")),
        "{plan:?}"
    );
}
