//! fsck's reads: the read-only open (nothing created or changed, every
//! write refused) and the whole-store scans, including what the indexes
//! answer for each row and a row that does not decode.

mod common;

use common::{Trees, append_both, audit_rows, fresh, rows};
use evault_store::{EvidenceIndex, LabelEntry, LogId, LogStore, SqliteStore, Store, StoreError};

/// Every file in `dir` and its bytes.
fn files(dir: &std::path::Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn read_only_open_changes_nothing_and_scans_every_row() {
    let (dir, path, store) = fresh();
    let mut trees = Trees::new();
    append_both(&store, &mut trees, &rows(0..300), &audit_rows(0..40)).unwrap();
    store.set_meta("origin", "o").unwrap();
    // The index follower has caught up (the vault's, before it stops).
    assert_eq!(store.index_evidence(300, 1000).unwrap(), 300);
    drop(store);
    let before = files(dir.path());

    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(ro.tree_size(LogId::Evidence).unwrap(), 300);
    assert_eq!(ro.get_meta("origin").unwrap().as_deref(), Some("o"));
    assert!(matches!(ro.set_meta("x", "y"), Err(StoreError::Backend(_))));

    let scanned = ro.scan_records(250, 400).unwrap();
    assert_eq!(scanned.len(), 50);
    assert_eq!(scanned[0].as_ref().unwrap(), &common::row(250));
    assert_eq!(ro.scan_audit(0, 40).unwrap().len(), 40);
    assert_eq!(ro.leaf_rows(LogId::Evidence).unwrap(), (300, Some(299)));
    assert_eq!(ro.leaf_rows(LogId::Audit).unwrap(), (40, Some(39)));

    // 300 leaves: tile/0/000, tile/0/001.p/44, tile/1/000.p/1.
    let keys = ro.tile_keys(LogId::Evidence).unwrap();
    let shape: Vec<(u8, u64, u64)> = keys.iter().map(|k| (k.level, k.index, k.bytes)).collect();
    assert_eq!(shape, vec![(0, 0, 8192), (0, 1, 44 * 32), (1, 0, 32)]);
    assert_eq!(
        ro.stored_tile(LogId::Evidence, 0, 1)
            .unwrap()
            .unwrap()
            .len(),
        44 * 32
    );
    assert_eq!(ro.stored_tile(LogId::Evidence, 0, 9).unwrap(), None);

    // Every lookup leads back to its row.
    let lookups = ro.index_lookups(LogId::Evidence, 0, 300).unwrap();
    assert_eq!(lookups.len(), 300);
    for l in &lookups {
        let i = l.leaf_index;
        assert_eq!((l.by_id, l.by_dedup_key), (Some(i), Some(i)), "{l:?}");
        assert_eq!(l.has_idempotency_key, i % 5 == 0);
        assert_eq!(l.by_idempotency_key, (i % 5 == 0).then_some(i));
        assert_eq!((l.labels, l.labels_indexed), (Some(2), Some(2)));
        assert!(l.missing_from.is_empty(), "{l:?}");
        assert!(l.indexed && l.ahead_in.is_empty(), "{l:?}");
    }
    let audit = ro.index_lookups(LogId::Audit, 0, 40).unwrap();
    assert!(
        audit
            .iter()
            .all(|l| l.by_id == Some(l.leaf_index) && l.missing_from.is_empty())
    );

    // The label index in its order, paged.
    assert_eq!(ro.label_index_len().unwrap(), 600);
    let mut all = Vec::new();
    let mut after: Option<LabelEntry> = None;
    loop {
        let page = ro.label_index_page(after.as_ref(), 250).unwrap();
        let Some(last) = page.last().cloned() else {
            break;
        };
        all.extend(page);
        after = Some(last);
    }
    assert_eq!(all.len(), 600);
    assert!(all.iter().all(|e| ro.label_entry_matches(e).unwrap()));
    let stray = LabelEntry {
        key: "case".into(),
        value: "case-1".into(),
        leaf_index: 0,
        position: Vec::new(),
    };
    assert!(!ro.label_entry_matches(&stray).unwrap());
    drop(ro);
    assert_eq!(
        files(dir.path()),
        before,
        "the read-only open changed files"
    );
}

#[test]
fn scans_report_undecodable_rows_and_lookups_see_index_damage() {
    let (_dir, path, store) = fresh();
    let mut trees = Trees::new();
    append_both(&store, &mut trees, &rows(0..20), &audit_rows(0..2)).unwrap();
    // The follower indexed leaves 0..10; 10..20 lie past its cursor.
    assert_eq!(store.index_evidence(10, 1000).unwrap(), 10);
    drop(store);
    let db = SqliteStore::raw_connection(&path).unwrap();
    // A hash of the wrong length (the CHECK is skipped while it is off),
    // a label entry moved from record 4 to record 5, a digest entry
    // dropped (record 6), and entries past the cursor (record 12).
    db.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE records SET sha256 = X'00' WHERE leaf_index = 3;
         UPDATE label_runs SET leaf_index = 5 WHERE key = 'case' AND leaf_index = 4;
         DELETE FROM sha256_runs WHERE leaf_index = 6;
         INSERT INTO label_runs (run, level, key, value, leaf_index) VALUES (0, 0, 'case', 'case-0', 12);
         INSERT INTO sha256_runs (run, level, sha256, leaf_index)
           SELECT 0, 0, sha256, leaf_index FROM records WHERE leaf_index = 12;",
    )
    .unwrap();
    drop(db);
    let ro = SqliteStore::open_read_only(&path).unwrap();
    let scanned = ro.scan_records(0, 20).unwrap();
    assert_eq!(scanned.len(), 20);
    let bad = scanned[3].as_ref().unwrap_err();
    assert_eq!(bad.leaf_index, 3);
    assert!(bad.why.contains("sha256"), "{}", bad.why);
    assert!(scanned.iter().filter(|r| r.is_err()).count() == 1);
    let lookups = ro.index_lookups(LogId::Evidence, 4, 6).unwrap();
    assert_eq!(
        (lookups[0].labels, lookups[0].labels_indexed),
        (Some(2), Some(1))
    );
    assert_eq!(
        (lookups[1].labels, lookups[1].labels_indexed),
        (Some(2), Some(2))
    );
    let lookups = ro.index_lookups(LogId::Evidence, 6, 14).unwrap();
    let at = |i: u64| lookups.iter().find(|l| l.leaf_index == i).unwrap();
    assert_eq!(at(6).missing_from, ["records_by_sha256"]);
    assert!(at(6).indexed && at(6).ahead_in.is_empty());
    assert!(!at(11).indexed && at(11).ahead_in.is_empty() && at(11).missing_from.is_empty());
    assert_eq!(at(12).ahead_in, ["records_by_sha256", "record_labels"]);
    assert!(at(12).missing_from.is_empty());
    assert!(at(7).missing_from.is_empty() && at(9).indexed && !at(10).indexed);
}

#[test]
fn read_only_open_refuses_a_missing_or_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    assert!(SqliteStore::open_read_only(&missing).is_err());
    assert!(!missing.exists(), "a missing database was created");

    let old = dir.path().join("old.db");
    let db = SqliteStore::raw_connection(&old).unwrap();
    db.execute_batch("PRAGMA user_version = 1; CREATE TABLE t (x)")
        .unwrap();
    drop(db);
    let err = SqliteStore::open_read_only(&old).unwrap_err().to_string();
    assert!(err.contains("schema version 1"), "{err}");
    assert!(err.contains("evault serve"), "{err}");
}
