//! The audit log in the store: appended with evidence in one transaction
//! (or alone), read back by index and id, listed by every filter with
//! paging, and a failure of either part writing nothing of either log.

mod common;

use common::{
    OPERATIONS, OUTCOMES, PRINCIPALS, StoreTiles, T0, TileBuilder, Trees, append_both, audit_row,
    audit_rows, fresh, row, rows, snapshot,
};
use evault_merkle::tiles::{TileId, TiledHashReader};
use evault_merkle::{MemoryTree, inclusion_proof, leaf_hash, root};
use evault_store::{
    AppendBatch, AuditBatch, AuditQuery, AuditRow, EvidenceRow, LogId, SqliteStore, Store,
    StoreError,
};

const N: u64 = 1200;

/// A store holding `N` audit events and 300 records, appended the ways the
/// sequencer does: records with their events, events alone, in uneven
/// batches.
fn store_with_events() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore, Trees) {
    let (dir, path, store) = fresh();
    let mut trees = Trees::new();
    let events = audit_rows(0..N);
    let records = rows(0..300);
    let (mut e, mut r) = (0usize, 0usize);
    for (n_events, n_records) in [(1, 1), (5, 0), (250, 100), (0, 3), (300, 0), (644, 196)] {
        append_both(
            &store,
            &mut trees,
            &records[r..r + n_records],
            &events[e..e + n_events],
        )
        .unwrap();
        e += n_events;
        r += n_records;
    }
    assert_eq!((e as u64, r), (N, 300));
    (dir, path, store, trees)
}

#[test]
fn events_round_trip_and_the_audit_tree_is_its_own() {
    let (_dir, _path, store, trees) = store_with_events();
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), N);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 300);
    for i in (0..N).step_by(7).chain([N - 1]) {
        let want = audit_row(i);
        assert_eq!(store.audit_by_index(i).unwrap().as_ref(), Some(&want));
        assert_eq!(store.audit_by_id(&want.id).unwrap(), Some(want));
    }
    assert_eq!(store.audit_by_index(N).unwrap(), None);
    assert_eq!(store.audit_by_index(u64::MAX).unwrap(), None);
    assert_eq!(store.audit_by_id(&row(0).id).unwrap(), None);
    assert_eq!(store.record_by_id(&audit_row(0).id).unwrap(), None);
    assert_eq!(store.record_by_index(299).unwrap(), Some(row(299)));

    // Each log's tiles give its own root and proofs.
    let mut mem = MemoryTree::new();
    for e in audit_rows(0..N) {
        mem.push(leaf_hash(&e.leaf_data));
    }
    let audit = TiledHashReader {
        tiles: StoreTiles(&store, LogId::Audit),
        tree_size: N,
    };
    assert_eq!(root(&audit, N).unwrap(), mem.root());
    assert_eq!(trees.audit.root(), mem.root());
    for i in [0, 1, 255, 256, 700, N - 1] {
        assert_eq!(
            inclusion_proof(&audit, i, N).unwrap(),
            mem.inclusion_proof(i, N).unwrap()
        );
    }
    let evidence = TiledHashReader {
        tiles: StoreTiles(&store, LogId::Evidence),
        tree_size: 300,
    };
    assert_eq!(root(&evidence, 300).unwrap(), trees.evidence.root());
    assert_ne!(trees.evidence.root(), trees.audit.root());
    // A tile the audit tree has but the evidence tree does not.
    let t = TileId {
        level: 0,
        index: 4,
        width: 176,
    };
    assert_eq!(store.read_tiles(LogId::Audit, &[t]).unwrap().len(), 1);
    assert!(matches!(
        store.read_tiles(LogId::Evidence, &[t]),
        Err(StoreError::TileUnavailable(_))
    ));
}

/// Pages through `query` with `limit`, checking every page's shape.
fn collect_pages(store: &SqliteStore, query: &AuditQuery, limit: u32) -> Vec<AuditRow> {
    let mut q = query.clone();
    q.limit = limit;
    let mut out: Vec<AuditRow> = Vec::new();
    for _ in 0..10_000 {
        let page = store.list_audit(&q).unwrap();
        assert!(page.items.len() <= limit as usize);
        assert!(
            page.items
                .windows(2)
                .all(|w| w[0].leaf_index < w[1].leaf_index)
        );
        if let (Some(prev), Some(first)) = (out.last(), page.items.first()) {
            assert!(prev.leaf_index < first.leaf_index);
        }
        if page.items.len() == limit as usize {
            assert_eq!(page.next, page.items.last().map(|r| r.leaf_index));
        } else {
            assert_eq!(page.next, None);
        }
        out.extend(page.items);
        match page.next {
            Some(n) => q.after_index = Some(n),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

#[test]
fn list_audit_filters_and_pages() {
    let (_dir, _path, store, _trees) = store_with_events();
    let all = audit_rows(0..N);
    let some = |s: &str| Some(s.to_owned());
    type Pred = Box<dyn Fn(&AuditRow) -> bool>;
    let mut cases: Vec<(AuditQuery, Pred)> = vec![
        (AuditQuery::default(), Box::new(|_| true)),
        (
            AuditQuery {
                since_ms: Some(T0 + 500),
                until_ms: Some(T0 + 1000),
                ..Default::default()
            },
            Box::new(|e| (50..100).contains(&e.leaf_index)),
        ),
        (
            AuditQuery {
                since_ms: Some(T0 + 11_000),
                ..Default::default()
            },
            Box::new(|e| e.leaf_index >= 1100),
        ),
        (
            AuditQuery {
                until_ms: Some(T0 + 30),
                ..Default::default()
            },
            Box::new(|e| e.leaf_index < 3),
        ),
        (
            AuditQuery {
                after_index: Some(1150),
                ..Default::default()
            },
            Box::new(|e| e.leaf_index > 1150),
        ),
        (
            AuditQuery {
                principal: some("alice"),
                operation: some("evidence.put"),
                outcome: some("success"),
                since_ms: Some(T0 + 2000),
                until_ms: Some(T0 + 9000),
                after_index: Some(400),
                limit: 0,
            },
            Box::new(|e| {
                e.principal == "alice"
                    && e.operation == "evidence.put"
                    && e.outcome == "success"
                    && (401..900).contains(&e.leaf_index)
            }),
        ),
        (
            AuditQuery {
                principal: some("nobody"),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            AuditQuery {
                outcome: some("Success"),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
    ];
    for p in PRINCIPALS {
        cases.push((
            AuditQuery {
                principal: some(p),
                ..Default::default()
            },
            Box::new(move |e| e.principal == p),
        ));
    }
    for op in OPERATIONS {
        cases.push((
            AuditQuery {
                operation: some(op),
                ..Default::default()
            },
            Box::new(move |e| e.operation == op),
        ));
    }
    for o in OUTCOMES {
        cases.push((
            AuditQuery {
                outcome: some(o),
                ..Default::default()
            },
            Box::new(move |e| e.outcome == o),
        ));
    }
    for (n, (query, pred)) in cases.iter().enumerate() {
        let want: Vec<AuditRow> = all.iter().filter(|e| pred(e)).cloned().collect();
        if OUTCOMES[1..].contains(&query.outcome.as_deref().unwrap_or("")) {
            assert!(!want.is_empty(), "case {n}: the generator has each outcome");
        }
        if want.len() < 1000 {
            let page = store
                .list_audit(&AuditQuery {
                    limit: 1000,
                    ..query.clone()
                })
                .unwrap();
            assert_eq!(page.items, want, "case {n}");
            assert_eq!(page.next, None, "case {n}");
        }
        for limit in [7, 100] {
            assert_eq!(
                collect_pages(&store, query, limit),
                want,
                "case {n} limit {limit}"
            );
        }
    }

    // Limits: 0 means 1, at most 1000; a cursor past i64::MAX is the end.
    let page = store.list_audit(&AuditQuery::default()).unwrap();
    assert_eq!((page.items.len(), page.next), (1, Some(0)));
    let page = store
        .list_audit(&AuditQuery {
            limit: u32::MAX,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((page.items.len(), page.next), (1000, Some(999)));
    let page = store
        .list_audit(&AuditQuery {
            limit: 10,
            after_index: Some(u64::MAX),
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

#[test]
fn an_empty_audit_log_lists_nothing() {
    let (_dir, _path, store) = fresh();
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 0);
    let page = store
        .list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
    assert_eq!(store.audit_by_index(0).unwrap(), None);
}

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

#[test]
fn a_failure_in_either_part_writes_nothing_of_either_log() {
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

    // The audit part's size is stale or ahead: the (valid) evidence part is
    // not written either.
    for audit_old in [19, 21, 0] {
        assert_rejected(
            &store,
            &path,
            combined(&records, &ev_tiles, audit_old, &events, &au_tiles),
            |e| matches!(e, StoreError::SizeConflict { expected, stored: 20 } if *expected == audit_old),
        );
    }
    // The evidence part's size is wrong: the valid audit part is not written.
    let mut b = combined(&records, &ev_tiles, 20, &events, &au_tiles);
    b.old_size = 9;
    assert_rejected(&store, &path, b, |e| {
        matches!(
            e,
            StoreError::SizeConflict {
                expected: 9,
                stored: 10
            }
        )
    });
    // A gap in the audit indexes, after records and some events went in.
    let mut gap = events.clone();
    gap[4].leaf_index = 25;
    assert_rejected(
        &store,
        &path,
        combined(&records, &ev_tiles, 20, &gap, &au_tiles),
        |e| {
            matches!(
                e,
                StoreError::NonConsecutiveIndex {
                    expected: 24,
                    got: 25
                }
            )
        },
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
    assert_eq!(store.audit_by_index(29).unwrap(), Some(audit_row(29)));
    assert_eq!(store.record_by_index(14).unwrap(), Some(row(14)));
}

#[test]
fn audit_only_and_evidence_only_batches() {
    let (_dir, path, store) = fresh();
    let mut trees = Trees::new();
    // Events with no records: the evidence log is untouched (but checked).
    append_both(&store, &mut trees, &[], &audit_rows(0..3)).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 3);
    let before = snapshot(&store, &path);
    let err = store
        .append(&AppendBatch {
            old_size: 1,
            records: &[],
            tiles: &[],
            audit: Some(AuditBatch {
                old_size: 3,
                events: &[],
                tiles: &[],
            }),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::SizeConflict { .. }));
    assert_eq!(snapshot(&store, &path), before);
    // Records with `audit: None`: the audit log is neither touched nor
    // checked.
    let recs = rows(0..4);
    let leaves: Vec<_> = recs.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let tiles = trees.evidence.append(&leaves);
    store.append(&AppendBatch::new(0, &recs, &tiles)).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 4);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 3);
}

#[test]
fn corrupt_audit_rows_are_reported() {
    let (_dir, path, store) = fresh();
    append_both(&store, &mut Trees::new(), &[], &audit_rows(0..3)).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
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
