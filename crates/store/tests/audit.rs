//! The audit log: what the SQLite driver adds to the conformance suite's
//! cases (`evault_store::testing`), which cover the rest: a refused audit
//! part names the duplicate's key or is `Backend` for bad tiles, and
//! changes no table; corrupt audit rows written by SQL are reported.

mod common;

use common::{TileBuilder, Trees, append_both, audit_row, audit_rows, fresh, rows, snapshot};
use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileId;
use evault_store::{
    AppendBatch, AuditBatch, AuditIndex, AuditQuery, AuditRow, EvidenceRow, LogId, LogStore,
    SqliteStore, StoreError,
};

/// Appends `batch` expecting `check` to accept the error, and asserts
/// nothing of either log changed.
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

fn tiles_for(tb: &TileBuilder, leaves: &[Vec<u8>]) -> Vec<(TileId, Vec<u8>)> {
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    tb.clone().append(&hashes)
}

type Tiles = Vec<(TileId, Vec<u8>)>;

/// A batch of both logs' parts.
fn combined<'a>(
    records: &'a [EvidenceRow],
    tiles: &'a [(TileId, Vec<u8>)],
    audit_old: u64,
    events: &'a [AuditRow],
    audit_tiles: &'a [(TileId, Vec<u8>)],
) -> AppendBatch<'a> {
    AppendBatch {
        old_size: records.first().map_or(0, |r| r.leaf_index),
        records,
        tiles,
        audit: Some(AuditBatch {
            old_size: audit_old,
            events,
            tiles: audit_tiles,
        }),
    }
}

/// A refused audit part names a stored event id, or is `Backend` for bad tiles; no table changes.
#[test]
fn a_refused_audit_part_says_why_and_changes_no_table() {
    let (_dir, path, store) = fresh();
    let mut trees = Trees::new();
    append_both(&store, &mut trees, &rows(0..10), &audit_rows(0..20)).unwrap();

    let records = rows(10..15);
    let events = audit_rows(20..30);
    let leaves = |l: Vec<&Vec<u8>>| l.into_iter().cloned().collect::<Vec<_>>();
    let ev_tiles: Tiles = tiles_for(
        &trees.evidence,
        &leaves(records.iter().map(|r| &r.leaf_data).collect()),
    );
    let au_tiles: Tiles = tiles_for(
        &trees.audit,
        &leaves(events.iter().map(|e| &e.leaf_data).collect()),
    );

    // A duplicate event id (of a stored event), on the last event.
    let mut dup = events.clone();
    dup[9].id = audit_row(3).id;
    assert_rejected(
        &store,
        &path,
        combined(&records, &ev_tiles, 20, &dup, &au_tiles),
        |e| matches!(e, StoreError::Duplicate(m) if m.starts_with("audit event id")),
    );
    // Audit tiles one narrower than the new audit size gives them.
    let narrow: Tiles = au_tiles
        .iter()
        .map(|(t, d)| {
            let w = t.width - 1;
            (TileId { width: w, ..*t }, d[..w as usize * 32].to_vec())
        })
        .collect();
    assert_rejected(
        &store,
        &path,
        combined(&records, &ev_tiles, 20, &events, &narrow),
        |e| matches!(e, StoreError::Backend(_)),
    );
    // The evidence tree's tiles handed in as the audit tree's.
    assert_rejected(
        &store,
        &path,
        combined(&records, &ev_tiles, 20, &events, &ev_tiles),
        |e| matches!(e, StoreError::Backend(_)),
    );

    // The correct batch still goes through, both parts at once.
    store
        .append(&combined(&records, &ev_tiles, 20, &events, &au_tiles))
        .unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 15);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 30);
}

/// Audit rows made invalid by SQL are reported as `Corrupt`; the evidence log reads on.
#[test]
fn corrupt_audit_rows_are_reported() {
    let (_dir, path, store) = fresh();
    append_both(&store, &mut Trees::new(), &[], &audit_rows(0..3)).unwrap();
    let conn = SqliteStore::raw_connection(&path).unwrap();
    // Bypass the CHECK constraints, as a manual edit could.
    conn.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE audit_events SET leaf_index = -5 WHERE leaf_index = 2;
         UPDATE audit_state SET size = -1;",
    )
    .unwrap();
    assert!(matches!(
        store.list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        }),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.tree_size(LogId::Audit),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
    assert_eq!(store.audit_by_index(1).unwrap(), Some(audit_row(1)));
}
