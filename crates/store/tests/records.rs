//! Records: what the SQLite driver adds to the conformance suite's cases
//! (`evault_store::testing`), which cover the rest: `SqliteStore` is
//! `Send + Sync`, its errors say which key a duplicate is of and are
//! `Backend` for what it cannot honour, a refused append changes no table,
//! and rows made corrupt by SQL are reported.

mod common;

use common::{TileBuilder, append_rows, fresh, row, rows, snapshot};
use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileId;
use evault_store::{AppendBatch, EvidenceIndex, LogId, LogStore, SqliteStore, Store, StoreError};

/// `SqliteStore` itself (not only `dyn Store`) is `Send + Sync`.
#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
    // Usable as the vault uses it.
    let (_dir, _path, store) = fresh();
    let shared: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    assert_eq!(shared.tree_size(LogId::Evidence).unwrap(), 0);
}

/// A leaf range past the tree or backwards is, for the SQLite driver, a `Backend` error.
#[test]
fn a_bad_leaf_data_range_is_a_backend_error() {
    let (_dir, _path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..300));
    assert!(matches!(
        store.leaf_data_range(0, 301),
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.leaf_data_range(10, 5),
        Err(StoreError::Backend(_))
    ));
}

/// Appends `batch` expecting `check` to accept the error, and asserts
/// nothing in the database changed.
fn assert_rejected(
    store: &SqliteStore,
    path: &std::path::Path,
    batch: AppendBatch<'_>,
    check: impl Fn(&StoreError) -> bool,
) {
    let before = snapshot(store, path);
    let err = store.append(&batch).unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(snapshot(store, path), before, "after {err}");
}

fn tiles_for(old: &TileBuilder, records: &[evault_store::EvidenceRow]) -> Vec<(TileId, Vec<u8>)> {
    let leaves: Vec<_> = records.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    old.clone().append(&leaves)
}

/// Refusals name the duplicate id or are `Backend` (bad tiles, i64); no table changes.
#[test]
fn failed_appends_say_why_and_change_no_table() {
    let (_dir, path, store) = fresh();
    let mut tb = TileBuilder::new();
    append_rows(&store, &mut tb, &rows(0..10));

    // A duplicate of a stored record id, on the last row of the batch so
    // earlier rows were already inserted, and one inside the batch. (Dedup
    // and idempotency keys are the sequencer's to keep unique: the
    // conformance case `twin_unique_keys_lead_to_the_first_leaf`.)
    let mut batch = rows(10..20);
    batch[9].id = row(3).id;
    let t = tiles_for(&tb, &batch);
    assert_rejected(
        &store,
        &path,
        AppendBatch::new(10, &batch, &t),
        |e| matches!(e, StoreError::Duplicate(m) if m.starts_with("record id")),
    );
    let mut batch = rows(10..20);
    batch[7].id = batch[2].id.clone();
    let t = tiles_for(&tb, &batch);
    assert_rejected(
        &store,
        &path,
        AppendBatch::new(10, &batch, &t),
        |e| matches!(e, StoreError::Duplicate(m) if m.starts_with("record id")),
    );

    // Bad tiles: wrong width for the new size, wrong length, not extending
    // the stored tile. Each comes after all records were inserted.
    let next = rows(10..20);
    let good = tiles_for(&tb, &next);
    let (tile0, data0) = good[0].clone();
    assert_eq!(tile0.width, 20);
    let narrow = TileId { width: 19, ..tile0 };
    let mut forked = data0.clone();
    forked[0] ^= 1;
    for bad in [
        vec![(narrow, data0[..19 * 32].to_vec())],
        vec![(tile0, data0[..19 * 32].to_vec())],
        vec![(tile0, forked)],
    ] {
        assert_rejected(&store, &path, AppendBatch::new(10, &next, &bad), |e| {
            matches!(e, StoreError::Backend(_))
        });
    }

    // Values SQLite cannot hold are refused, not wrapped.
    let mut huge = rows(10..11);
    huge[0].size = u64::MAX;
    let t = tiles_for(&tb, &huge);
    assert_rejected(
        &store,
        &path,
        AppendBatch::new(10, &huge, &t),
        |e| matches!(e, StoreError::Backend(b) if b.to_string().contains("exceeds the largest SQLite integer")),
    );

    // And the store still takes the correct batch afterwards.
    store.append(&AppendBatch::new(10, &next, &good)).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 20);
    assert_eq!(store.record_by_index(19).unwrap(), Some(row(19)));
}

/// Rows made invalid by SQL are reported as `Corrupt`, not panicked on or skipped.
#[test]
fn corrupt_rows_are_reported_not_panicked_on() {
    let (_dir, path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..6));
    let conn = SqliteStore::raw_connection(&path).unwrap();
    // Bypass the schema's CHECK constraints, as a manual edit could.
    conn.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE records SET sha256 = x'0011' WHERE leaf_index = 0;
         UPDATE records SET size = -5 WHERE leaf_index = 1;
         UPDATE records SET dedup_key = zeroblob(31) WHERE leaf_index = 2;
         UPDATE records SET content_type = CAST(x'ff' AS TEXT) WHERE leaf_index = 3;
         UPDATE records SET labels = '{\"case\":1}' WHERE leaf_index = 4;
         UPDATE records SET labels = '{\"case\":\"a\",\"case\":\"b\"}' WHERE leaf_index = 5;",
    )
    .unwrap();
    for i in 0..6 {
        let err = store.record_by_index(i).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{i}: {err:?}");
    }
    // A gap below the tree size is corruption of the log.
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         DELETE FROM label_runs WHERE leaf_index = 2;
         DELETE FROM records WHERE leaf_index = 2;",
    )
    .unwrap();
    assert!(matches!(
        store.leaf_data_range(0, 4),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.leaf_data_range(3, 6),
        Ok(v) if v.len() == 3
    ));
    // list reports corruption too, rather than skipping the row.
    assert!(matches!(
        store.list(&evault_store::ListQuery {
            limit: 10,
            ..Default::default()
        }),
        Err(StoreError::Corrupt(_))
    ));
    conn.execute("UPDATE tree_state SET size = -1", []).ok();
    // The CHECK constraint keeps even that out unless bypassed.
    conn.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE tree_state SET size = -1;")
        .unwrap();
    assert!(matches!(
        store.tree_size(LogId::Evidence),
        Err(StoreError::Corrupt(_))
    ));
}
