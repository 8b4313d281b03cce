//! Records: round trips, lookups, leaf data ranges, and failed appends that
//! must leave the store exactly as it was.

mod common;

use common::{TileBuilder, append_rows, fresh, row, rows, snapshot};
use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileId;
use evault_store::{AppendBatch, LogId, Payload, SqliteStore, Store, StoreError};

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
    // Usable as the vault uses it.
    let (_dir, _path, store) = fresh();
    let shared: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    assert_eq!(shared.tree_size(LogId::Evidence).unwrap(), 0);
}

#[test]
fn records_round_trip_by_every_key() {
    let (_dir, _path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let all = rows(0..60);
    append_rows(&store, &mut tiles, &all[..25]);
    append_rows(&store, &mut tiles, &all[25..]);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 60);

    for want in &all {
        assert_eq!(
            store.record_by_index(want.leaf_index).unwrap().as_ref(),
            Some(want)
        );
        assert_eq!(store.record_by_id(&want.id).unwrap().as_ref(), Some(want));
        assert_eq!(
            store.record_by_dedup_key(&want.dedup_key).unwrap().as_ref(),
            Some(want)
        );
        if let Some(key) = &want.idempotency_key {
            assert_eq!(
                store
                    .record_by_idempotency_key(&want.ingested_by, key)
                    .unwrap()
                    .as_ref(),
                Some(want)
            );
            // The key is scoped to its principal.
            let other = if want.ingested_by == "alice" {
                "bob"
            } else {
                "alice"
            };
            assert_eq!(store.record_by_idempotency_key(other, key).unwrap(), None);
        }
    }
    // The variety the generator promises actually made it through.
    let r0 = store.record_by_index(0).unwrap().unwrap();
    assert_eq!(
        r0.payload,
        Payload::Inline(Vec::new()),
        "empty inline payload"
    );
    let r2 = store.record_by_index(2).unwrap().unwrap();
    assert_eq!(r2.payload, Payload::Inline(vec![2; 2]));
    let r1 = store.record_by_index(1).unwrap().unwrap();
    assert_eq!(r1.payload, Payload::External);
    assert_eq!(r1.labels.len(), 2);
    assert_eq!(r1.labels["case"], "case-1");

    assert_eq!(store.record_by_index(60).unwrap(), None);
    assert_eq!(store.record_by_index(u64::MAX).unwrap(), None);
    assert_eq!(store.record_by_id("nope").unwrap(), None);
    assert_eq!(store.record_by_dedup_key(&[9; 32]).unwrap(), None);
    assert_eq!(
        store.record_by_idempotency_key("alice", "nope").unwrap(),
        None
    );
}

#[test]
fn record_without_labels_or_idempotency_key() {
    let (_dir, _path, store) = fresh();
    let mut r = row(0);
    r.labels.clear();
    r.idempotency_key = None;
    r.payload = Payload::Inline(vec![0xab; 1024]);
    append_rows(&store, &mut TileBuilder::new(), std::slice::from_ref(&r));
    assert_eq!(store.record_by_index(0).unwrap(), Some(r));
}

#[test]
fn leaf_data_range_is_ordered_and_bounded() {
    let (_dir, _path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let all = rows(0..300);
    for chunk in all.chunks(70) {
        append_rows(&store, &mut tiles, chunk);
    }
    let got = store.leaf_data_range(0, 300).unwrap();
    let want: Vec<Vec<u8>> = all.iter().map(|r| r.leaf_data.clone()).collect();
    assert_eq!(got, want);
    assert_eq!(
        store.leaf_data_range(256, 300).unwrap(),
        want[256..].to_vec()
    );
    assert_eq!(
        store.leaf_data_range(17, 17).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert!(matches!(
        store.leaf_data_range(0, 301),
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.leaf_data_range(10, 5),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn empty_batch_is_a_no_op() {
    let (_dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    append_rows(&store, &mut tiles, &rows(0..3));
    let before = snapshot(&store, &path);
    store.append(&AppendBatch::new(3, &[], &[])).unwrap();
    assert_eq!(snapshot(&store, &path), before);
    // ...but still checks the size.
    assert!(matches!(
        store.append(&AppendBatch::new(2, &[], &[])),
        Err(StoreError::SizeConflict {
            expected: 2,
            stored: 3
        })
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

#[test]
fn failed_appends_leave_the_store_unchanged() {
    let (_dir, path, store) = fresh();
    let mut tb = TileBuilder::new();
    append_rows(&store, &mut tb, &rows(0..10));
    store
        .put_checkpoint(
            LogId::Evidence,
            &evault_store::StoredCheckpoint {
                size: 10,
                note: "n".into(),
                created_at_ms: 1,
            },
        )
        .unwrap();
    store.set_meta("origin", "example.com/log").unwrap();

    // Wrong old size, too small and too large.
    let next = rows(10..20);
    let t = tiles_for(&tb, &next);
    for old_size in [9, 11, 0] {
        assert_rejected(
            &store,
            &path,
            AppendBatch::new(old_size, &next, &t),
            |e| matches!(e, StoreError::SizeConflict { expected, stored: 10 } if *expected == old_size),
        );
    }

    // A gap in the middle of the batch (after some rows were inserted).
    let mut gap = rows(10..20);
    gap[5].leaf_index = 16;
    assert_rejected(&store, &path, AppendBatch::new(10, &gap, &t), |e| {
        matches!(
            e,
            StoreError::NonConsecutiveIndex {
                expected: 15,
                got: 16
            }
        )
    });
    // A batch not starting at old_size.
    let shifted = rows(11..21);
    assert_rejected(&store, &path, AppendBatch::new(10, &shifted, &t), |e| {
        matches!(
            e,
            StoreError::NonConsecutiveIndex {
                expected: 10,
                got: 11
            }
        )
    });

    // Duplicates of stored rows: id, dedup key, idempotency key, each on the
    // last row of the batch so earlier rows were already inserted.
    type Mutate = fn(&mut evault_store::EvidenceRow);
    let dup_cases: [(&str, Mutate); 3] = [
        ("record id", |r| r.id = row(3).id),
        ("dedup key", |r| r.dedup_key = row(3).dedup_key),
        ("idempotency key", |r| {
            r.ingested_by = row(5).ingested_by;
            r.idempotency_key = row(5).idempotency_key;
        }),
    ];
    for (what, mutate) in dup_cases {
        let mut batch = rows(10..20);
        mutate(&mut batch[9]);
        let t = tiles_for(&tb, &batch);
        assert_rejected(
            &store,
            &path,
            AppendBatch::new(10, &batch, &t),
            |e| matches!(e, StoreError::Duplicate(m) if m.starts_with(what)),
        );
    }
    // A duplicate inside one batch.
    let mut batch = rows(10..20);
    batch[7].dedup_key = batch[2].dedup_key;
    let t = tiles_for(&tb, &batch);
    assert_rejected(
        &store,
        &path,
        AppendBatch::new(10, &batch, &t),
        |e| matches!(e, StoreError::Duplicate(m) if m.starts_with("dedup key")),
    );

    // Bad tiles: wrong width for the new size, wrong length, not extending
    // the stored tile. Each comes after all records were inserted.
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

#[test]
fn corrupt_rows_are_reported_not_panicked_on() {
    let (_dir, path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..6));
    let conn = rusqlite::Connection::open(&path).unwrap();
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
         DELETE FROM record_labels WHERE leaf_index = 2;
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

#[test]
fn awkward_labels_round_trip_and_filter() {
    let (_dir, _path, store) = fresh();
    let mut r = row(0);
    r.labels.clear();
    for (k, v) in [
        ("q\"uote", "back\\slash"),
        ("ctl", "\u{0}\u{1f}\n\t"),
        ("unicode", "é ✓ 😀"),
        ("", ""),
    ] {
        r.labels.insert(k.to_owned(), v.to_owned());
    }
    append_rows(&store, &mut TileBuilder::new(), std::slice::from_ref(&r));
    assert_eq!(store.record_by_index(0).unwrap().as_ref(), Some(&r));
    let page = store
        .list(&evault_store::ListQuery {
            labels: vec![
                ("unicode".into(), "é ✓ 😀".into()),
                ("q\"uote".into(), "back\\slash".into()),
            ],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, vec![r]);
}
