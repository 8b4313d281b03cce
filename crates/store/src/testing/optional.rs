//! The conformance cases of the optional parts a driver may keep:
//! [`TaskStore`](crate::TaskStore), [`CosignatureStore`] and
//! [`MirrorStore`](crate::MirrorStore). A driver without the part
//! (`Store::tasks`, `cosignatures` or `mirrors` is `None`) passes its
//! cases trivially.

use super::{Open, fresh};
use crate::{
    Cosignature, CosignatureStore, ImportConflict, LogId, MirrorCheckpoint, MirrorImport,
    MirrorRecord, StoreError, TaskQuery, TaskRow, TaskState,
};

/// Task `n`: ids sort like UUIDv7 text, by creation.
fn task(n: u32, principal: &str, kind: &str, state: TaskState) -> TaskRow {
    TaskRow {
        id: format!("0000000{n:02}-0000-7000-8000-000000000000"),
        kind: kind.into(),
        principal: principal.into(),
        reads_all: n.is_multiple_of(4),
        params: format!("{{\"n\":{n}}}"),
        state,
        done: 0,
        total: None,
        result_file: None,
        result_size: None,
        result_sha256: None,
        summary: None,
        error: None,
        created_ms: 1_000 + i64::from(n),
        started_ms: None,
        finished_ms: None,
        checkpoint: None,
    }
}

/// The `n` of [`task`]'s id.
fn task_number(row: &TaskRow) -> u32 {
    row.id[7..9].parse().expect("a test task id")
}

/// A task inserted, read back, updated in every mutable field, refused
/// when its id is inserted again, and read back after a reopen; updating a
/// task that does not exist changes nothing.
pub fn tasks_round_trip_update_and_refuse_duplicate_ids(open: Open<'_>) {
    let (dir, store) = fresh(open);
    let Some(t) = store.tasks() else {
        return;
    };
    let mut row = task(1, "sa:a", "count", TaskState::Pending);
    assert_eq!(t.task(&row.id).unwrap(), None);
    t.insert_task(&row).unwrap();
    assert_eq!(t.task(&row.id).unwrap(), Some(row.clone()));
    let mut twin = task(1, "sa:b", "fsck", TaskState::Running);
    twin.params = "{}".into();
    assert!(matches!(
        t.insert_task(&twin),
        Err(StoreError::Duplicate(d)) if d.contains(&row.id)
    ));
    assert_eq!(t.task(&row.id).unwrap(), Some(row.clone()));

    row.state = TaskState::Succeeded;
    row.done = 7;
    row.total = Some(7);
    row.result_file = Some("x.result".into());
    row.result_size = Some(12);
    row.result_sha256 = Some("ab".repeat(32));
    row.summary = Some("{}".into());
    row.error = Some("none, really".into());
    row.started_ms = Some(5);
    row.finished_ms = Some(6);
    row.checkpoint = Some("step 7".into());
    assert!(t.update_task(&row).unwrap());
    assert_eq!(t.task(&row.id).unwrap(), Some(row.clone()));
    // The id, kind, principal, params and creation time never change.
    let mut moved = row.clone();
    moved.kind = "other".into();
    moved.principal = "sa:z".into();
    moved.params = "{\"moved\":true}".into();
    moved.created_ms = 0;
    assert!(t.update_task(&moved).unwrap());
    assert_eq!(t.task(&row.id).unwrap(), Some(row.clone()));
    // Updating a task that does not exist changes nothing.
    let ghost = task(99, "sa:a", "count", TaskState::Running);
    assert!(!t.update_task(&ghost).unwrap());
    assert_eq!(t.task(&ghost.id).unwrap(), None);

    // The row survives a reopen.
    drop(store);
    let store = open(dir.path());
    let t = store.tasks().expect("the reopened store keeps tasks");
    assert_eq!(t.task(&row.id).unwrap(), Some(row));
}

/// Tasks listed newest first by every filter, paged by id (the limit
/// clamped to at least 1), and the unfinished tasks and expired results
/// oldest first.
pub fn tasks_list_by_every_filter_and_find_unfinished_and_expired(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let Some(t) = store.tasks() else {
        return;
    };
    assert!(t.unfinished_tasks().unwrap().is_empty());
    assert!(t.expired_results(i64::MAX).unwrap().is_empty());
    for n in 0..20u32 {
        let principal = if n.is_multiple_of(2) { "sa:a" } else { "sa:b" };
        let kind = if n.is_multiple_of(3) { "fsck" } else { "count" };
        let mut row = task(n, principal, kind, TaskState::ALL[n as usize % 5]);
        if row.state.is_final() {
            row.finished_ms = Some(100 + i64::from(n));
            row.result_file = (row.state == TaskState::Succeeded).then(|| format!("{n}.result"));
        }
        t.insert_task(&row).unwrap();
    }
    let ids =
        |q: TaskQuery| -> Vec<u32> { t.list_tasks(&q).unwrap().iter().map(task_number).collect() };
    let all = TaskQuery {
        limit: 100,
        ..TaskQuery::default()
    };
    assert_eq!(ids(all.clone()), (0..20).rev().collect::<Vec<_>>());
    assert_eq!(
        ids(TaskQuery {
            principal: Some("sa:b".into()),
            ..all.clone()
        }),
        vec![19, 17, 15, 13, 11, 9, 7, 5, 3, 1]
    );
    assert_eq!(
        ids(TaskQuery {
            principal: Some("sa:a".into()),
            kind: Some("fsck".into()),
            ..all.clone()
        }),
        vec![18, 12, 6, 0]
    );
    assert_eq!(
        ids(TaskQuery {
            state: Some(TaskState::Running),
            ..all.clone()
        }),
        vec![16, 11, 6, 1]
    );
    assert_eq!(
        ids(TaskQuery {
            principal: Some("sa:nobody".into()),
            ..all.clone()
        }),
        Vec::<u32>::new()
    );
    // Paging: newest first, then before the last id seen.
    let first = t
        .list_tasks(&TaskQuery {
            limit: 3,
            ..TaskQuery::default()
        })
        .unwrap();
    assert_eq!(
        first.iter().map(task_number).collect::<Vec<_>>(),
        [19, 18, 17]
    );
    assert_eq!(
        ids(TaskQuery {
            before: Some(first[2].id.clone()),
            limit: 3,
            ..TaskQuery::default()
        }),
        vec![16, 15, 14]
    );
    assert_eq!(
        ids(TaskQuery {
            state: Some(TaskState::Pending),
            before: Some(first[2].id.clone()),
            ..all.clone()
        }),
        vec![15, 10, 5, 0]
    );
    // A limit of 0 is clamped to 1.
    assert_eq!(ids(TaskQuery::default()), vec![19]);

    let unfinished: Vec<_> = t
        .unfinished_tasks()
        .unwrap()
        .iter()
        .map(|r| (task_number(r), r.state))
        .collect();
    assert_eq!(
        unfinished.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![0, 1, 5, 6, 10, 11, 15, 16]
    );
    assert!(unfinished.iter().all(|u| !u.1.is_final()));

    // Succeeded tasks with a result file, finished before 112: 2 and 7.
    let expired: Vec<_> = t
        .expired_results(112)
        .unwrap()
        .iter()
        .map(task_number)
        .collect();
    assert_eq!(expired, vec![2, 7]);
    // The retention removed 2's file: it is no longer listed.
    let mut two = t
        .task(&task(2, "", "", TaskState::Pending).id)
        .unwrap()
        .unwrap();
    two.result_file = None;
    assert!(t.update_task(&two).unwrap());
    let expired: Vec<_> = t
        .expired_results(i64::MAX)
        .unwrap()
        .iter()
        .map(task_number)
        .collect();
    assert_eq!(expired, vec![7, 12, 17]);
}

/// Witness `witness`'s cosignature with its key `n`.
fn cosig(witness: &str, n: u8) -> Cosignature {
    Cosignature {
        witness: witness.into(),
        key: format!("{witness}+0000000{n}"),
        line: format!("\u{2014} {witness} sig{n}"),
        received_ms: 1_700_000_000_000 + i64::from(n),
    }
}

fn witnesses(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

/// One line per log, size, witness and cosigner key (a witness signing
/// again adds nothing), the witnessed size under a k-of-n policy (only
/// distinct, configured witnesses count), and all of it after a reopen.
pub fn cosignatures_keep_one_line_per_key_and_count_distinct_witnesses(open: Open<'_>) {
    let (dir, store) = fresh(open);
    let Some(c) = store.cosignatures() else {
        return;
    };
    assert!(c.cosignatures_at(LogId::Evidence, 5).unwrap().is_empty());
    assert_eq!(
        c.witnessed_size(LogId::Evidence, 1, &witnesses(&["a"]))
            .unwrap(),
        None
    );

    c.put_cosignatures(LogId::Evidence, 5, &[cosig("a", 1)])
        .unwrap();
    // A witness with two keys (Ed25519 and ML-DSA-44) gives two lines, and
    // still counts once.
    c.put_cosignatures(LogId::Evidence, 5, &[cosig("b", 1), cosig("b", 2)])
        .unwrap();
    // The same key signing again (a retry: a new timestamp, or another
    // randomised ML-DSA signature): the first line is kept, also when the
    // retry comes twice in one call.
    let mut again = cosig("a", 1);
    again.line = "\u{2014} a another-signature".into();
    again.received_ms = 1;
    c.put_cosignatures(LogId::Evidence, 5, &[again.clone(), again])
        .unwrap();
    let mut twice = cosig("a", 3);
    twice.line = "\u{2014} a later".into();
    c.put_cosignatures(LogId::Evidence, 9, &[cosig("a", 3), twice])
        .unwrap();
    c.put_cosignatures(LogId::Audit, 7, &[cosig("a", 4), cosig("c", 1)])
        .unwrap();
    c.put_cosignatures(LogId::Audit, 8, &[]).unwrap();

    let check = |c: &dyn CosignatureStore| {
        assert_eq!(
            c.cosignatures_at(LogId::Evidence, 5).unwrap(),
            [cosig("a", 1), cosig("b", 1), cosig("b", 2)]
        );
        assert_eq!(
            c.cosignatures_at(LogId::Evidence, 9).unwrap(),
            [cosig("a", 3)]
        );
        assert!(c.cosignatures_at(LogId::Evidence, 7).unwrap().is_empty());
        assert!(c.cosignatures_at(LogId::Audit, 8).unwrap().is_empty());
        let all = witnesses(&["a", "b", "c"]);
        assert_eq!(c.witnessed_size(LogId::Evidence, 1, &all).unwrap(), Some(9));
        assert_eq!(c.witnessed_size(LogId::Evidence, 2, &all).unwrap(), Some(5));
        assert_eq!(c.witnessed_size(LogId::Evidence, 3, &all).unwrap(), None);
        assert_eq!(c.witnessed_size(LogId::Audit, 2, &all).unwrap(), Some(7));
        assert_eq!(c.witnessed_size(LogId::Evidence, 0, &all).unwrap(), None);
        // A witness no longer configured does not count.
        let without_b = witnesses(&["a", "c"]);
        assert_eq!(
            c.witnessed_size(LogId::Evidence, 2, &without_b).unwrap(),
            None
        );
        assert_eq!(
            c.witnessed_size(LogId::Evidence, 1, &witnesses(&["b"]))
                .unwrap(),
            Some(5)
        );
        assert_eq!(c.witnessed_size(LogId::Evidence, 1, &[]).unwrap(), None);
    };
    check(c);
    drop(store);
    let store = open(dir.path());
    check(
        store
            .cosignatures()
            .expect("the reopened store keeps cosignatures"),
    );
}

const MIRROR_ORIGIN: &str = "other.example/log";

fn mirror_checkpoint(size: u64, root: &str) -> MirrorCheckpoint {
    MirrorCheckpoint {
        origin: MIRROR_ORIGIN.into(),
        tree_size: size,
        note: format!("{MIRROR_ORIGIN}\n{size}\n{root}\n\n\u{2014} sig\n"),
        imported_ms: 1_000 + size as i64,
        imported_by: "sa:admin".into(),
    }
}

fn mirror_record(i: u64, size: u64) -> MirrorRecord {
    MirrorRecord {
        origin: MIRROR_ORIGIN.into(),
        leaf_index: i,
        record: format!("{{\"leaf_index\":{i}}}"),
        sha256: format!("{i:064x}"),
        tree_size: size,
        inclusion_proof: "[]".into(),
    }
}

/// A bundle of the leaves `leaves` proven against the checkpoint of
/// `size`, with their payloads.
fn mirror_batch(size: u64, root: &str, leaves: impl Iterator<Item = u64>) -> MirrorImport {
    let records: Vec<_> = leaves.map(|i| mirror_record(i, size)).collect();
    let payloads = records
        .iter()
        .map(|r| (r.sha256.clone(), r.record.clone().into_bytes()))
        .collect();
    MirrorImport {
        checkpoint: mirror_checkpoint(size, root),
        records,
        payloads,
    }
}

/// An import is stored whole; a re-import skips what is held; a fork
/// (another checkpoint of one size) or another record at one index refuses
/// the whole batch; logs, pages (the limit clamped), payloads and
/// checkpoints read back, also after a reopen; the store's own logs are
/// untouched.
pub fn mirror_imports_are_whole_idempotent_and_refuse_forks(open: Open<'_>) {
    let (dir, store) = fresh(open);
    let Some(m) = store.mirrors() else {
        return;
    };
    assert!(m.mirror_logs().unwrap().is_empty());

    let first = m.import(&mirror_batch(10, "AAAA", 0..5)).unwrap().unwrap();
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
    let again = m.import(&mirror_batch(10, "AAAA", 0..5)).unwrap().unwrap();
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
    let newer = m.import(&mirror_batch(20, "BBBB", 3..12)).unwrap().unwrap();
    assert_eq!(
        (newer.records_new, newer.records_known, newer.payloads_new),
        (7, 2, 7)
    );
    assert_eq!(
        m.mirror_record(MIRROR_ORIGIN, 4)
            .unwrap()
            .unwrap()
            .tree_size,
        10
    );
    assert_eq!(
        m.mirror_record(MIRROR_ORIGIN, 11)
            .unwrap()
            .unwrap()
            .tree_size,
        20
    );

    // A fork: another note for size 10. Nothing of the batch is stored.
    let fork = m
        .import(&mirror_batch(10, "CCCC", 12..15))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&fork, ImportConflict::Checkpoint { tree_size: 10, held } if held.contains("AAAA")),
        "{fork:?}"
    );
    assert!(m.mirror_record(MIRROR_ORIGIN, 12).unwrap().is_none());
    assert_eq!(m.mirror_payload(&format!("{:064x}", 12)).unwrap(), None);
    // Another record at a held index, in a batch with new ones: refused
    // whole, its new checkpoint, records and payloads included.
    let mut other = mirror_batch(30, "DDDD", 12..16);
    other.records.push(MirrorRecord {
        record: "{\"leaf_index\":5,\"forged\":true}".into(),
        ..mirror_record(5, 30)
    });
    other.records.sort_by_key(|r| r.leaf_index);
    let conflict = m.import(&other).unwrap().unwrap_err();
    assert!(
        matches!(&conflict, ImportConflict::Record { leaf_index: 5, held } if held == "{\"leaf_index\":5}"),
        "{conflict:?}"
    );
    assert!(m.mirror_record(MIRROR_ORIGIN, 12).unwrap().is_none());
    assert!(m.mirror_checkpoint(MIRROR_ORIGIN, 30).unwrap().is_none());
    assert_eq!(m.mirror_payload(&format!("{:064x}", 12)).unwrap(), None);
    // A leaf given twice in one batch, differently: the second copy
    // conflicts with the first, and nothing is stored.
    let mut twice = mirror_batch(40, "EEEE", 20..22);
    twice.records.push(MirrorRecord {
        record: "{\"leaf_index\":21,\"again\":true}".into(),
        ..mirror_record(21, 40)
    });
    let conflict = m.import(&twice).unwrap().unwrap_err();
    assert!(
        matches!(&conflict, ImportConflict::Record { leaf_index: 21, held } if held == "{\"leaf_index\":21}"),
        "{conflict:?}"
    );
    assert!(m.mirror_checkpoint(MIRROR_ORIGIN, 40).unwrap().is_none());
    assert!(m.mirror_record(MIRROR_ORIGIN, 20).unwrap().is_none());

    // Summary, pages, payloads, checkpoints.
    let logs = m.mirror_logs().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].origin, MIRROR_ORIGIN);
    assert_eq!((logs[0].records, logs[0].checkpoints), (12, 2));
    assert_eq!(logs[0].latest, mirror_checkpoint(20, "BBBB"));
    let leaves = |after: Option<u64>, limit: u32| -> Vec<u64> {
        m.mirror_records(MIRROR_ORIGIN, after, limit)
            .unwrap()
            .iter()
            .map(|r| r.leaf_index)
            .collect()
    };
    assert_eq!(leaves(None, 5), [0, 1, 2, 3, 4]);
    assert_eq!(leaves(Some(9), 1000), [10, 11]);
    assert_eq!(leaves(Some(2), 0), [3]);
    assert!(leaves(Some(u64::MAX), 10).is_empty());
    assert_eq!(
        m.mirror_records(MIRROR_ORIGIN, None, 1).unwrap(),
        [mirror_record(0, 10)]
    );
    assert!(m.mirror_records("nobody", None, 10).unwrap().is_empty());
    assert_eq!(
        m.mirror_payload(&format!("{:064x}", 7)).unwrap(),
        Some(b"{\"leaf_index\":7}".to_vec())
    );
    assert_eq!(m.mirror_payload(&"f".repeat(64)).unwrap(), None);
    assert_eq!(
        m.mirror_checkpoint(MIRROR_ORIGIN, 10).unwrap(),
        Some(mirror_checkpoint(10, "AAAA"))
    );
    assert_eq!(m.mirror_checkpoint(MIRROR_ORIGIN, 11).unwrap(), None);
    assert_eq!(m.mirror_checkpoint(MIRROR_ORIGIN, u64::MAX).unwrap(), None);
    assert_eq!(m.mirror_record(MIRROR_ORIGIN, u64::MAX).unwrap(), None);

    // A second origin is a log of its own, listed by origin.
    let mut second = mirror_batch(3, "FFFF", 0..3);
    let another = "another.example/log";
    second.checkpoint.origin = another.into();
    for r in &mut second.records {
        r.origin = another.into();
    }
    let counts = m.import(&second).unwrap().unwrap();
    // Its payloads are the first origin's (the same bytes): none new.
    assert_eq!((counts.records_new, counts.payloads_new), (3, 0));
    let logs = m.mirror_logs().unwrap();
    assert_eq!(
        logs.iter()
            .map(|l| (
                l.origin.as_str(),
                l.records,
                l.checkpoints,
                l.latest.tree_size
            ))
            .collect::<Vec<_>>(),
        [(another, 3, 1, 3), (MIRROR_ORIGIN, 12, 2, 20)]
    );
    assert_eq!(
        m.mirror_record(another, 1).unwrap().map(|r| r.origin),
        Some(another.to_string())
    );

    // Never a leaf of the store's own logs.
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 0);

    // Everything survives a reopen.
    drop(store);
    let store = open(dir.path());
    let m = store.mirrors().expect("the reopened store keeps mirrors");
    assert_eq!(m.mirror_logs().unwrap(), logs);
    assert_eq!(
        m.mirror_record(MIRROR_ORIGIN, 11).unwrap(),
        Some(mirror_record(11, 20))
    );
    assert_eq!(
        m.mirror_checkpoint(MIRROR_ORIGIN, 20).unwrap(),
        Some(mirror_checkpoint(20, "BBBB"))
    );
}

/// Imports racing on one store: one bundle imported by several threads
/// at once, and a fork of it by others. One checkpoint of the size is
/// kept, every import either stores against it or is refused as a fork,
/// and each record and payload is stored once.
pub fn concurrent_mirror_imports_store_each_row_once(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let Some(m) = store.mirrors() else {
        return;
    };
    let roots = ["AAAA", "AAAA", "CCCC", "AAAA", "CCCC", "AAAA"];
    let results: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = roots
            .iter()
            .map(|&root| {
                s.spawn(move || {
                    let batch = mirror_batch(50, root, 0..50);
                    (root, m.import(&batch).expect("an import answers"))
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("an import thread"))
            .collect()
    });
    let held = m
        .mirror_checkpoint(MIRROR_ORIGIN, 50)
        .unwrap()
        .expect("a checkpoint of size 50 is held");
    let winner = if held.note.contains("AAAA") {
        "AAAA"
    } else {
        "CCCC"
    };
    assert_eq!(held, mirror_checkpoint(50, winner));
    let (mut checkpoints_new, mut records_new, mut payloads_new) = (0, 0, 0);
    for (root, result) in &results {
        match result {
            Ok(counts) => {
                assert_eq!(*root, winner, "{results:?}");
                assert_eq!(counts.records_new + counts.records_known, 50);
                checkpoints_new += u32::from(counts.checkpoint_new);
                records_new += counts.records_new;
                payloads_new += counts.payloads_new;
            }
            Err(ImportConflict::Checkpoint {
                tree_size: 50,
                held: note,
            }) => {
                assert_ne!(*root, winner, "{results:?}");
                assert_eq!(*note, held.note);
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((checkpoints_new, records_new, payloads_new), (1, 50, 50));
    let logs = m.mirror_logs().unwrap();
    assert_eq!(
        logs.iter()
            .map(|l| (l.records, l.checkpoints))
            .collect::<Vec<_>>(),
        [(50, 1)]
    );
}
