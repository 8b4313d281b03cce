//! The driver conformance suite: what every [`Store`] driver must do, as
//! one set of cases each driver runs (as Go's `sumdb/storage` test suite
//! does for its drivers). Enabled by the `testing` feature.
//!
//! A driver runs the whole suite, one `#[test]` per case, with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! evault_store::conformance_tests!(|dir: &std::path::Path| -> Box<dyn evault_store::Store> {
//!     Box::new(evault_store::SqliteStore::open(&dir.join("evault.db")).unwrap())
//! });
//! ```
//!
//! Each case gets an empty directory and an `open` function that opens (or,
//! called again on the same directory, reopens) the driver's store there.
//! The cases use the trait alone: no SQL, no file layout, so what they check
//! is the contract every driver shares, not one engine's way of meeting it.

use std::collections::BTreeMap;
use std::path::Path;

use evault_merkle::tiles::{
    TileBuilder, TileId, TileReader, TiledHashReader, inclusion_proof_tiles, tile_inner, tile_width,
};
use evault_merkle::{Hash, MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root};

use crate::prelude::*;
use crate::{
    AppendBatch, AuditBatch, AuditQuery, AuditRow, EvidenceRow, ListQuery, LogId, Payload,
    StoreError, StoredCheckpoint,
};

#[cfg(feature = "postgres")]
pub mod postgres;

mod optional;
pub use optional::*;

mod compliance;
pub use compliance::*;

/// A stopped SQLite store rewritten as an older schema holds the same data.
pub use crate::sqlite::rewrite_as_schema;

/// Opens the driver's store in a directory; a second call on the same
/// directory (after the first store is dropped) reopens what it holds.
pub type Open<'a> = &'a dyn Fn(&Path) -> Box<dyn Store>;

/// Runs each case as its own `#[test]`, against the driver `open` (an
/// expression of type `Fn(&Path) -> Box<dyn Store>`). The cases sit in one
/// module per trait of the seam they hold a driver to (`log_store`,
/// `evidence_index`, `audit_index`), `store` for those that span them, and
/// one per optional part (`tasks`, `cosignatures`, `mirrors`), whose cases
/// pass trivially for a driver without the part.
#[macro_export]
macro_rules! conformance_tests {
    // A driver that may be absent (a database server): `$opener` is a
    // function of the test's name returning `Option` of the `open` above;
    // `None` skips the test (the opener says so).
    (skippable: $opener:expr) => {
        $crate::conformance_tests!(@each skippable_module, ($opener));
    };
    // The case list, once, for both forms.
    (@each $kind:ident, $arg:tt) => {
        $crate::conformance_tests!(@$kind log_store, $arg;
            leaf_data_ranges_are_ordered_and_bounded,
            an_empty_batch_only_checks_the_size,
            a_failed_append_writes_nothing,
            evidence_and_audit_commit_together,
            tiles_grow_and_serve_prefixes,
            proofs_from_stored_tiles_match_a_memory_tree,
            full_tiles_keep_their_inner_levels,
            checkpoints_keep_the_first_per_size,
            meta_values_are_replaced,
            what_returned_ok_survives_a_reopen
        );
        $crate::conformance_tests!(@$kind evidence_index, $arg;
            records_round_trip_by_every_key,
            list_filters_and_pages,
            the_index_follows_the_log_and_reads_stay_exact,
            unique_keys_stay_exact_as_the_follower_moves
        );
        $crate::conformance_tests!(@$kind audit_index, $arg;
            list_audit_filters_and_pages
        );
        $crate::conformance_tests!(@$kind store, $arg;
            an_empty_store_reads_nothing,
            scans_see_every_row
        );
        $crate::conformance_tests!(@$kind tasks, $arg;
            tasks_round_trip_update_and_refuse_duplicate_ids,
            tasks_list_by_every_filter_and_find_unfinished_and_expired
        );
        $crate::conformance_tests!(@$kind cosignatures, $arg;
            cosignatures_keep_one_line_per_key_and_count_distinct_witnesses
        );
        $crate::conformance_tests!(@$kind mirrors, $arg;
            mirror_imports_are_whole_idempotent_and_refuse_forks,
            concurrent_mirror_imports_store_each_row_once
        );
        $crate::conformance_tests!(@$kind compliance, $arg;
            erasure_keeps_the_leaf_and_drops_the_payload,
            an_erased_row_cannot_be_appended,
            holds_and_retention_policies_round_trip,
            an_active_hold_refuses_the_erase_inside_its_transaction,
            records_by_sha256_skips_inline_bytes
        );
    };
    (@module $module:ident, ($open:expr); $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let open = $open;
                    $crate::testing::$case(&open);
                }
            )*
        }
    };
    (@skippable_module $module:ident, ($opener:expr); $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let name = concat!(module_path!(), "::", stringify!($case));
                    let Some(open) = ($opener)(name) else {
                        return;
                    };
                    $crate::testing::$case(&open);
                }
            )*
        }
    };
    ($open:expr) => {
        $crate::conformance_tests!(@each module, ($open));
    };
}

/// A fresh directory and the store opened in it.
fn fresh(open: Open<'_>) -> (tempfile::TempDir, Box<dyn Store>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    (dir, store)
}

/// A deterministic 32-byte value.
pub fn h(tag: u8, i: u64) -> [u8; 32] {
    let mut input = vec![tag];
    input.extend_from_slice(&i.to_be_bytes());
    leaf_hash(&input)
}

/// A UUIDv7-shaped id, time-ordered by `ms` then `i`.
pub fn uuid(ms: u64, i: u64) -> String {
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        (i >> 48) & 0xfff,
        0x8000 | ((i >> 32) & 0x3fff),
        i & 0xffff_ffff_ffff
    )
}

/// When the generated rows start, milliseconds since the Unix epoch.
pub const T0: i64 = 1_700_000_000_000;

/// A varied record for leaf `i`: labels `case` (3 values) and `source`
/// (2 values), two content types and two principals, inline (sometimes
/// empty) and external payloads, an idempotency key on every fifth,
/// ingested 10 ms apart from `T0`.
pub fn row(i: u64) -> EvidenceRow {
    let labels = BTreeMap::from([
        ("case".to_owned(), format!("case-{}", i % 3)),
        ("source".to_owned(), format!("src-{}", i % 2)),
    ]);
    let ingested_at_ms = T0 + i as i64 * 10;
    EvidenceRow {
        leaf_index: i,
        id: uuid(ingested_at_ms as u64, i),
        content_type: if i.is_multiple_of(4) {
            "application/pdf"
        } else {
            "application/json"
        }
        .to_owned(),
        sha256: h(1, i),
        size: 100 + i,
        labels,
        ingested_at_ms,
        ingested_by: if i.is_multiple_of(2) { "alice" } else { "bob" }.to_owned(),
        idempotency_key: i.is_multiple_of(5).then(|| format!("idem-{i}")),
        dedup_key: h(2, i),
        leaf_data: format!("{{\"leaf\":{i},\"note\":\"evidence\"}}").into_bytes(),
        payload: if i.is_multiple_of(2) {
            Payload::Inline(vec![i as u8; (i % 50) as usize])
        } else {
            Payload::External
        },
        analytics: None,
    }
}

/// [`row`] for each index of `range`.
pub fn rows(range: std::ops::Range<u64>) -> Vec<EvidenceRow> {
    range.map(row).collect()
}

/// The principals, operations and outcomes audit rows cycle through.
pub const PRINCIPALS: [&str; 3] = ["alice", "bob", "anonymous"];
#[allow(missing_docs)]
pub const OPERATIONS: [&str; 4] = [
    "evidence.put",
    "evidence.get",
    "log.checkpoint",
    "audit.list",
];
#[allow(missing_docs)]
pub const OUTCOMES: [&str; 4] = ["success", "denied", "unauthenticated", "failed"];

/// A varied audit event for leaf `i`: principal `i % 3`, operation `i % 4`,
/// outcome success except every 7th, 10 ms apart from `T0`.
pub fn audit_row(i: u64) -> AuditRow {
    let time_ms = T0 + i as i64 * 10;
    AuditRow {
        leaf_index: i,
        id: uuid(time_ms as u64, 1 << 40 | i),
        time_ms,
        principal: PRINCIPALS[(i % 3) as usize].to_owned(),
        operation: OPERATIONS[(i % 4) as usize].to_owned(),
        outcome: if i.is_multiple_of(7) {
            OUTCOMES[1 + (i / 7 % 3) as usize]
        } else {
            OUTCOMES[0]
        }
        .to_owned(),
        leaf_data: format!("{{\"audit\":{i},\"v\":\"evault/audit/v1\"}}").into_bytes(),
    }
}

/// [`audit_row`] for each index of `range`.
pub fn audit_rows(range: std::ops::Range<u64>) -> Vec<AuditRow> {
    range.map(audit_row).collect()
}

/// Both logs' tile builders, as the vault's sequencer keeps them.
#[derive(Clone, Default)]
struct Trees {
    evidence: TileBuilder,
    audit: TileBuilder,
}

/// The tiles a sequencer writes with `leaves` appended to `tb`.
fn tiles_after(tb: &TileBuilder, leaves: &[&[u8]]) -> Vec<(TileId, Vec<u8>)> {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    tb.clone().append(&hashes)
}

fn evidence_tiles(tb: &TileBuilder, rows: &[EvidenceRow]) -> Vec<(TileId, Vec<u8>)> {
    let leaves: Vec<&[u8]> = rows.iter().map(|r| r.leaf_data.as_slice()).collect();
    tiles_after(tb, &leaves)
}

fn audit_tiles(tb: &TileBuilder, events: &[AuditRow]) -> Vec<(TileId, Vec<u8>)> {
    let leaves: Vec<&[u8]> = events.iter().map(|e| e.leaf_data.as_slice()).collect();
    tiles_after(tb, &leaves)
}

/// Appends records and events in one batch with the tiles a sequencer
/// would write; advances `trees` only when the store accepts it.
fn append_both(
    store: &dyn Store,
    trees: &mut Trees,
    records: &[EvidenceRow],
    events: &[AuditRow],
) -> Result<(), StoreError> {
    let mut next = trees.clone();
    let hashes = |leaves: Vec<&[u8]>| leaves.into_iter().map(leaf_hash).collect::<Vec<Hash>>();
    let tiles = next
        .evidence
        .append(&hashes(records.iter().map(|r| &r.leaf_data[..]).collect()));
    let atiles = next
        .audit
        .append(&hashes(events.iter().map(|e| &e.leaf_data[..]).collect()));
    store.append(&AppendBatch {
        old_size: trees.evidence.size(),
        records,
        tiles: &tiles,
        audit: (!events.is_empty()).then_some(AuditBatch {
            old_size: trees.audit.size(),
            events,
            tiles: &atiles,
        }),
    })?;
    *trees = next;
    Ok(())
}

/// Appends `records` alone; panics if the store refuses.
fn append_records(store: &dyn Store, trees: &mut Trees, records: &[EvidenceRow]) {
    append_both(store, trees, records, &[]).expect("the store takes a valid batch");
}

/// What the trait shows of a store, for "nothing changed" checks: both
/// logs' sizes, rows, tiles and checkpoints, the label index, and the
/// metadata the cases set.
#[derive(Debug, PartialEq)]
struct Observed {
    sizes: [u64; 2],
    leaf_rows: [(u64, Option<u64>); 2],
    leaves: Vec<Vec<u8>>,
    audit: Vec<Option<AuditRow>>,
    tiles: Vec<(LogId, u8, u64, Option<Vec<u8>>)>,
    checkpoints: Vec<Vec<StoredCheckpoint>>,
    listed: Vec<EvidenceRow>,
    label_index: u64,
    origin: Option<String>,
    /// Lookups of the keys the failed batches carry: none may be found.
    probes: Vec<bool>,
}

fn observe(store: &dyn Store, probe: &[EvidenceRow]) -> Observed {
    let logs = [LogId::Evidence, LogId::Audit];
    let sizes = logs.map(|l| store.tree_size(l).unwrap());
    let mut tiles = Vec::new();
    for log in logs {
        for k in store.tile_keys(log).unwrap() {
            tiles.push((
                log,
                k.level,
                k.index,
                store.stored_tile(log, k.level, k.index).unwrap(),
            ));
        }
    }
    let mut probes = Vec::new();
    for r in probe {
        probes.push(store.record_by_id(&r.id).unwrap().is_some());
        probes.push(store.record_by_dedup_key(&r.dedup_key).unwrap().is_some());
        probes.push(store.record_by_index(r.leaf_index).unwrap().is_some());
    }
    Observed {
        sizes,
        leaf_rows: logs.map(|l| store.leaf_rows(l).unwrap()),
        leaves: store.leaf_data_range(0, sizes[0]).unwrap(),
        audit: (0..sizes[1] + 2)
            .map(|i| store.audit_by_index(i).unwrap())
            .collect(),
        tiles,
        checkpoints: logs
            .iter()
            .map(|&l| store.list_checkpoints(l, None, 1000).unwrap())
            .collect(),
        listed: store
            .list(&ListQuery {
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .items,
        label_index: store.label_index_len().unwrap(),
        origin: store.get_meta("origin").unwrap(),
        probes,
    }
}

/// Appends `batch`, expecting an error `check` accepts, and that the store
/// shows nothing of it afterwards.
fn assert_refused(
    store: &dyn Store,
    batch: AppendBatch<'_>,
    what: &str,
    check: impl Fn(&StoreError) -> bool,
) {
    let probe: Vec<EvidenceRow> = batch.records.to_vec();
    let before = observe(store, &probe);
    let err = match store.append(&batch) {
        Ok(()) => panic!("{what}: the store accepted the batch"),
        Err(e) => e,
    };
    assert!(check(&err), "{what}: unexpected error {err:?}");
    assert_eq!(
        observe(store, &probe),
        before,
        "{what}: the refused batch ({err}) changed the store"
    );
}

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId {
        level,
        index,
        width,
    }
}

/// A batch of both logs' parts.
fn both_parts<'a>(
    old_size: u64,
    records: &'a [EvidenceRow],
    tiles: &'a [(TileId, Vec<u8>)],
    audit_old_size: u64,
    events: &'a [AuditRow],
    atiles: &'a [(TileId, Vec<u8>)],
) -> AppendBatch<'a> {
    AppendBatch {
        old_size,
        records,
        tiles,
        audit: Some(AuditBatch {
            old_size: audit_old_size,
            events,
            tiles: atiles,
        }),
    }
}

/// A store that holds nothing reads back nothing, and says so without
/// errors (except a tile, which is unavailable).
pub fn an_empty_store_reads_nothing(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    for log in [LogId::Evidence, LogId::Audit] {
        assert_eq!(store.tree_size(log).unwrap(), 0, "{log}");
        assert_eq!(store.leaf_rows(log).unwrap(), (0, None), "{log}");
        assert_eq!(store.latest_checkpoint(log).unwrap(), None, "{log}");
        assert!(store.list_checkpoints(log, None, 10).unwrap().is_empty());
        assert!(store.tile_keys(log).unwrap().is_empty());
        assert!(matches!(
            store.read_tiles(log, &[tile(0, 0, 1)]),
            Err(StoreError::TileUnavailable(t)) if t == tile(0, 0, 1)
        ));
    }
    assert_eq!(store.record_by_index(0).unwrap(), None);
    assert_eq!(store.record_by_id(&row(0).id).unwrap(), None);
    assert_eq!(store.record_by_dedup_key(&row(0).dedup_key).unwrap(), None);
    assert!(store.records_by_dedup_keys(&[[0; 32]]).unwrap().is_empty());
    assert_eq!(store.record_by_idempotency_key("alice", "k").unwrap(), None);
    assert_eq!(store.audit_by_index(0).unwrap(), None);
    assert_eq!(store.audit_by_id(&audit_row(0).id).unwrap(), None);
    assert!(store.leaf_data_range(0, 0).unwrap().is_empty());
    assert_eq!(store.get_meta("origin").unwrap(), None);
    for labels in [vec![], vec![("a".to_owned(), "b".to_owned())]] {
        let page = store
            .list(&ListQuery {
                labels,
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    }
    let page = store
        .list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

/// Every record reads back whole by its index, id, dedup key and
/// (principal-scoped) idempotency key; payload variants and awkward labels
/// survive the trip, and `list` filters by awkward labels.
pub fn records_round_trip_by_every_key(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    let mut all = rows(0..60);
    // Awkward labels: quotes, control characters, non-ASCII, empty.
    all[7].labels = BTreeMap::from([
        ("q\"uote".to_owned(), "back\\slash".to_owned()),
        ("ctl".to_owned(), "\u{0}\u{1f}\n\t".to_owned()),
        ("unicode".to_owned(), "é ✓ 😀".to_owned()),
        (String::new(), String::new()),
    ]);
    all[8].labels.clear();
    all[8].payload = Payload::Inline(vec![0xab; 4096]);
    append_records(&*store, &mut trees, &all[..25]);
    append_records(&*store, &mut trees, &all[25..]);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 60);

    for want in &all {
        let i = want.leaf_index;
        assert_eq!(store.record_by_index(i).unwrap().as_ref(), Some(want));
        assert_eq!(store.record_by_id(&want.id).unwrap().as_ref(), Some(want));
        assert_eq!(
            store.record_by_dedup_key(&want.dedup_key).unwrap().as_ref(),
            Some(want),
            "{i}"
        );
        if let Some(key) = &want.idempotency_key {
            assert_eq!(
                store
                    .record_by_idempotency_key(&want.ingested_by, key)
                    .unwrap()
                    .as_ref(),
                Some(want),
                "{i}"
            );
            let other = if want.ingested_by == "alice" {
                "bob"
            } else {
                "alice"
            };
            assert_eq!(
                store.record_by_idempotency_key(other, key).unwrap(),
                None,
                "an idempotency key is its principal's alone"
            );
        }
    }
    // A batched dedup lookup finds exactly the stored keys, in any order.
    let mut keys: Vec<[u8; 32]> = all.iter().step_by(3).map(|r| r.dedup_key).collect();
    keys.push([0xee; 32]);
    let mut found: Vec<u64> = store
        .records_by_dedup_keys(&keys)
        .unwrap()
        .iter()
        .map(|r| r.leaf_index)
        .collect();
    found.sort_unstable();
    assert_eq!(found, (0..60).step_by(3).collect::<Vec<u64>>());

    assert_eq!(
        store.record_by_index(0).unwrap().unwrap().payload,
        Payload::Inline(Vec::new())
    );
    assert_eq!(
        store.record_by_index(1).unwrap().unwrap().payload,
        Payload::External
    );
    assert_eq!(store.record_by_index(60).unwrap(), None);
    assert_eq!(store.record_by_index(u64::MAX).unwrap(), None);
    assert_eq!(store.record_by_id("nope").unwrap(), None);
    assert_eq!(store.record_by_dedup_key(&[9; 32]).unwrap(), None);
    assert_eq!(
        store.record_by_idempotency_key("alice", "nope").unwrap(),
        None
    );
    let page = store
        .list(&ListQuery {
            labels: vec![
                ("unicode".into(), "é ✓ 😀".into()),
                ("q\"uote".into(), "back\\slash".into()),
            ],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, vec![all[7].clone()]);
}

/// `leaf_data_range` returns exactly the leaves asked for, in order, and
/// refuses a range past the tree or backwards.
pub fn leaf_data_ranges_are_ordered_and_bounded(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    let all = rows(0..300);
    for chunk in all.chunks(70) {
        append_records(&*store, &mut trees, chunk);
    }
    let want: Vec<Vec<u8>> = all.iter().map(|r| r.leaf_data.clone()).collect();
    assert_eq!(store.leaf_data_range(0, 300).unwrap(), want);
    assert_eq!(store.leaf_data_range(256, 300).unwrap(), want[256..]);
    assert_eq!(store.leaf_data_range(69, 71).unwrap(), want[69..71]);
    assert!(store.leaf_data_range(17, 17).unwrap().is_empty());
    assert!(store.leaf_data_range(0, 301).is_err(), "past the tree");
    assert!(store.leaf_data_range(10, 5).is_err(), "backwards");
}

/// A batch of no records changes nothing, but its size is still checked,
/// beside audit events too; an empty audit part changes nothing either.
pub fn an_empty_batch_only_checks_the_size(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    append_records(&*store, &mut trees, &rows(0..3));
    let before = observe(&*store, &[]);
    store.append(&AppendBatch::new(3, &[], &[])).unwrap();
    store.append(&both_parts(3, &[], &[], 0, &[], &[])).unwrap();
    assert_eq!(observe(&*store, &[]), before);
    assert!(matches!(
        store.append(&AppendBatch::new(2, &[], &[])),
        Err(StoreError::SizeConflict {
            expected: 2,
            stored: 3
        })
    ));
    // Beside an audit part, empty or not: no event is written either.
    for n in [0, 2] {
        let events = audit_rows(0..n);
        let atiles = audit_tiles(&trees.audit, &events);
        assert_refused(
            &*store,
            both_parts(2, &[], &[], 0, &events, &atiles),
            &format!("{n} events beside a stale evidence size"),
            |e| {
                matches!(
                    e,
                    StoreError::SizeConflict {
                        expected: 2,
                        stored: 3
                    }
                )
            },
        );
    }
    // Records beside an empty audit part go in; the audit log stays empty.
    let more = rows(3..5);
    let tiles = evidence_tiles(&trees.evidence, &more);
    store
        .append(&both_parts(3, &more, &tiles, 0, &[], &[]))
        .unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 5);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 0);
}

/// Every refused append leaves the store exactly as it was, whichever row
/// of the batch is at fault; the correct batch is then still accepted.
pub fn a_failed_append_writes_nothing(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    append_records(&*store, &mut trees, &rows(0..10));
    store
        .put_checkpoint(
            LogId::Evidence,
            &StoredCheckpoint {
                size: 10,
                note: "n".into(),
                created_at_ms: 1,
            },
        )
        .unwrap();
    store.set_meta("origin", "example.com/log").unwrap();
    let tb = &trees.evidence;

    let next = rows(10..20);
    let t = evidence_tiles(tb, &next);
    for old_size in [9, 11, 0] {
        assert_refused(
            &*store,
            AppendBatch::new(old_size, &next, &t),
            &format!("old size {old_size}"),
            |e| matches!(e, StoreError::SizeConflict { expected, stored: 10 } if *expected == old_size),
        );
    }
    let mut gap = rows(10..20);
    gap[5].leaf_index = 16;
    assert_refused(&*store, AppendBatch::new(10, &gap, &t), "a gap", |e| {
        matches!(
            e,
            StoreError::NonConsecutiveIndex {
                expected: 15,
                got: 16
            }
        )
    });
    let shifted = rows(11..21);
    assert_refused(
        &*store,
        AppendBatch::new(10, &shifted, &t),
        "a batch past the end",
        |e| {
            matches!(
                e,
                StoreError::NonConsecutiveIndex {
                    expected: 10,
                    got: 11
                }
            )
        },
    );

    // Duplicates of stored rows, each on the batch's last row (so earlier
    // rows were written first), and one inside the batch.
    type Mutate = fn(&mut [EvidenceRow]);
    let cases: [(&str, Mutate); 2] = [
        ("a stored record id", |b| b[9].id = row(3).id),
        ("an id twice in the batch", |b| b[8].id = b[1].id.clone()),
    ];
    for (what, mutate) in cases {
        let mut batch = rows(10..20);
        mutate(&mut batch);
        let t = evidence_tiles(tb, &batch);
        assert_refused(&*store, AppendBatch::new(10, &batch, &t), what, |e| {
            matches!(e, StoreError::Duplicate(_))
        });
    }

    // Tiles that do not fit the new size or the stored tile.
    let good = evidence_tiles(tb, &next);
    let (tile0, data0) = good[0].clone();
    assert_eq!(tile0.width, 20);
    let mut forked = data0.clone();
    forked[0] ^= 1;
    for (what, bad) in [
        (
            "a narrow tile",
            vec![(TileId { width: 19, ..tile0 }, data0[..19 * 32].to_vec())],
        ),
        (
            "a tile shorter than its width",
            vec![(tile0, data0[..19 * 32].to_vec())],
        ),
        ("a tile rewriting stored hashes", vec![(tile0, forked)]),
    ] {
        assert_refused(&*store, AppendBatch::new(10, &next, &bad), what, |_| true);
    }

    store.append(&AppendBatch::new(10, &next, &good)).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 20);
    assert_eq!(store.record_by_index(19).unwrap(), Some(row(19)));
}

/// A batch's records and audit events commit together: a fault in either
/// part writes nothing of either log. Events read back by index and id;
/// each log's ids and tiles are its own.
pub fn evidence_and_audit_commit_together(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    append_both(&*store, &mut trees, &rows(0..5), &audit_rows(0..7)).unwrap();
    // Audit only, then evidence only.
    append_both(&*store, &mut trees, &[], &audit_rows(7..9)).unwrap();
    append_both(&*store, &mut trees, &rows(5..6), &[]).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 6);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 9);
    for want in audit_rows(0..9) {
        assert_eq!(
            store.audit_by_index(want.leaf_index).unwrap(),
            Some(want.clone())
        );
        assert_eq!(store.audit_by_id(&want.id).unwrap(), Some(want));
    }
    for want in rows(0..6) {
        assert_eq!(store.record_by_index(want.leaf_index).unwrap(), Some(want));
    }
    assert_eq!(store.audit_by_index(9).unwrap(), None);
    assert_eq!(store.audit_by_index(u64::MAX).unwrap(), None);
    assert_eq!(store.audit_by_id(&row(0).id).unwrap(), None);
    assert_eq!(store.record_by_id(&audit_row(0).id).unwrap(), None);

    let recs = rows(6..10);
    let events = audit_rows(9..12);
    let tiles = evidence_tiles(&trees.evidence, &recs);
    let atiles = audit_tiles(&trees.audit, &events);
    // The audit part's size is stale, ahead or zero: no record either.
    for audit_old in [8, 10, 0] {
        assert_refused(
            &*store,
            both_parts(6, &recs, &tiles, audit_old, &events, &atiles),
            &format!("audit size {audit_old}"),
            |e| matches!(e, StoreError::SizeConflict { expected, stored: 9 } if *expected == audit_old),
        );
    }
    // The evidence part's size is wrong: no event either.
    assert_refused(
        &*store,
        both_parts(5, &recs, &tiles, 9, &events, &atiles),
        "a stale evidence size beside good events",
        |e| {
            matches!(
                e,
                StoreError::SizeConflict {
                    expected: 5,
                    stored: 6
                }
            )
        },
    );
    // A gap in the audit indexes, after an event of the batch.
    let mut gap = events.clone();
    gap[1].leaf_index = 11;
    assert_refused(
        &*store,
        both_parts(6, &recs, &tiles, 9, &gap, &atiles),
        "an audit gap",
        |e| {
            matches!(
                e,
                StoreError::NonConsecutiveIndex {
                    expected: 10,
                    got: 11
                }
            )
        },
    );
    // An event id that exists already.
    let mut dup = events.clone();
    dup[2].id = audit_row(4).id;
    assert_refused(
        &*store,
        both_parts(6, &recs, &tiles, 9, &dup, &atiles),
        "a stored audit event id",
        |e| matches!(e, StoreError::Duplicate(_)),
    );
    // Audit tiles that do not fit the new audit size.
    let narrow: Vec<(TileId, Vec<u8>)> = atiles
        .iter()
        .map(|(t, d)| {
            let w = t.width - 1;
            (TileId { width: w, ..*t }, d[..w as usize * 32].to_vec())
        })
        .collect();
    for (what, wrong) in [
        ("a narrow audit tile", &narrow),
        ("the evidence tiles as the audit's", &tiles),
    ] {
        assert_refused(
            &*store,
            both_parts(6, &recs, &tiles, 9, &events, wrong),
            what,
            |_| true,
        );
    }
    // A record fault: the events stay out too.
    let mut bad = recs.clone();
    bad[3].id = row(0).id;
    assert_refused(
        &*store,
        both_parts(6, &bad, &tiles, 9, &events, &atiles),
        "a duplicate record beside good events",
        |e| matches!(e, StoreError::Duplicate(_)),
    );
    append_both(&*store, &mut trees, &recs, &events).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 10);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 12);
    assert_eq!(store.record_by_index(9).unwrap(), Some(row(9)));
    assert_eq!(store.audit_by_index(11).unwrap(), Some(audit_row(11)));

    // A larger batch reads back too; each log's stored tiles give its own
    // root and proofs, over several tiles.
    append_both(&*store, &mut trees, &rows(10..300), &audit_rows(12..1200)).unwrap();
    let all_events = audit_rows(0..1200);
    for want in all_events.iter().step_by(7).chain(all_events.last()) {
        assert_eq!(
            store.audit_by_index(want.leaf_index).unwrap().as_ref(),
            Some(want)
        );
        assert_eq!(store.audit_by_id(&want.id).unwrap().as_ref(), Some(want));
    }
    assert_eq!(store.record_by_index(299).unwrap(), Some(row(299)));
    let evidence: Vec<Vec<u8>> = rows(0..300).into_iter().map(|r| r.leaf_data).collect();
    let audit: Vec<Vec<u8>> = all_events.into_iter().map(|e| e.leaf_data).collect();
    for (log, leaves) in [(LogId::Evidence, evidence), (LogId::Audit, audit)] {
        let size = leaves.len() as u64;
        let mut mem = MemoryTree::new();
        for leaf in &leaves {
            mem.push(leaf_hash(leaf));
        }
        let reader = TiledHashReader {
            tiles: StoreTiles(&*store, log),
            tree_size: size,
        };
        assert_eq!(root(&reader, size).unwrap(), mem.root(), "{log}");
        for index in [0, 1, 255, 256, 299, size - 1] {
            assert_eq!(
                inclusion_proof(&reader, index, size).unwrap(),
                mem.inclusion_proof(index, size).unwrap(),
                "{log}: inclusion {index} in {size}"
            );
        }
    }
    // A tile the audit tree has and the evidence tree does not.
    let t = tile(0, 4, 176);
    assert_eq!(store.read_tiles(LogId::Audit, &[t]).unwrap().len(), 1);
    assert!(matches!(
        store.read_tiles(LogId::Evidence, &[t]),
        Err(StoreError::TileUnavailable(u)) if u == t
    ));
}

/// A partial tile grows in place; every width up to the stored one reads
/// back as a prefix, wider ones and missing tiles are unavailable.
pub fn tiles_grow_and_serve_prefixes(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    let all = rows(0..256);
    let mut size = 0u64;
    let mut full = Vec::new();
    for width in [3u16, 10, 256] {
        let chunk = &all[size as usize..width as usize];
        let touched = evidence_tiles(&trees.evidence, chunk);
        append_records(&*store, &mut trees, chunk);
        size = u64::from(width);
        full = touched
            .iter()
            .find(|(t, _)| t.level == 0 && t.index == 0)
            .expect("tile 0/0 is touched")
            .1
            .clone();
        for w in 1..=width {
            let got = store.read_tiles(LogId::Evidence, &[tile(0, 0, w)]).unwrap();
            assert_eq!(got, vec![full[..w as usize * 32].to_vec()], "width {w}");
        }
        if width < 256 {
            assert!(matches!(
                store.read_tiles(LogId::Evidence, &[tile(0, 0, width + 1)]),
                Err(StoreError::TileUnavailable(t)) if t == tile(0, 0, width + 1)
            ));
        }
    }
    // A full level-0 tile completes node 0 of level 8: tile 1/0, width 1.
    let top = store.read_tiles(LogId::Evidence, &[tile(1, 0, 1)]).unwrap();
    assert_eq!(top.len(), 1);
    let got = store
        .read_tiles(
            LogId::Evidence,
            &[tile(1, 0, 1), tile(0, 0, 5), tile(0, 0, 256)],
        )
        .unwrap();
    assert_eq!(
        got,
        vec![top[0].clone(), full[..160].to_vec(), full.clone()]
    );
    for t in [
        tile(0, 1, 1),
        tile(2, 0, 1),
        tile(0, 0, 0),
        tile(0, 0, 257),
        tile(0, u64::MAX, 1),
    ] {
        assert!(
            matches!(store.read_tiles(LogId::Evidence, &[t]), Err(StoreError::TileUnavailable(u)) if u == t),
            "{t:?}"
        );
    }
    assert!(store.read_tiles(LogId::Evidence, &[]).unwrap().is_empty());
    // The audit log's tiles are its own.
    assert!(matches!(
        store.read_tiles(LogId::Audit, &[tile(0, 0, 1)]),
        Err(StoreError::TileUnavailable(_))
    ));
}

/// Reads one log's tiles from a store, for [`TiledHashReader`].
struct StoreTiles<'a>(&'a dyn Store, LogId);

impl TileReader for StoreTiles<'_> {
    type Error = StoreError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0.read_tiles(self.1, tiles)
    }

    // The proofs below then read inner nodes from the store where it has
    // them, and must still equal the memory tree's.
    fn read_tiles_with_inner(
        &self,
        tiles: &[TileId],
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
        self.0.read_tiles_with_inner(self.1, tiles)
    }
}

/// Every full tile of both logs comes back with its inner levels
/// ([`tile_inner`]), in the same read as its row; a partial tile, and a
/// full one read at a smaller width, come back without.
pub fn full_tiles_keep_their_inner_levels(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    let records = rows(0..700);
    let events = audit_rows(0..300);
    let mut start = 0usize;
    for (batch, audit) in [(255usize, 0usize), (1, 300), (300, 0), (144, 0)] {
        append_both(
            &*store,
            &mut trees,
            &records[start..start + batch],
            &events[..audit],
        )
        .expect("the store takes a valid batch");
        start += batch;
    }
    for (log, size) in [(LogId::Evidence, 700u64), (LogId::Audit, 300)] {
        let mut wanted = Vec::new();
        for level in 0..2u8 {
            let mut index = 0;
            while let Some(width) = tile_width(level, index, size) {
                wanted.push(tile(level, index, width));
                index += 1;
            }
        }
        let got = store.read_tiles_with_inner(log, &wanted).unwrap();
        assert_eq!(got.len(), wanted.len());
        let mut full = 0;
        for (t, (data, inner)) in wanted.iter().zip(&got) {
            assert_eq!(data, &store.read_tiles(log, &[*t]).unwrap()[0]);
            if t.width == 256 {
                full += 1;
                assert_eq!(inner, &Some(tile_inner(*t, data).unwrap()), "{log} {t:?}");
            } else {
                assert_eq!(inner, &None, "{log} {t:?}");
            }
        }
        assert_eq!(full, size / 256, "{log}");
        let narrower = store
            .read_tiles_with_inner(log, &[tile(0, 0, 255)])
            .unwrap();
        assert_eq!(narrower[0].1, None);
    }
}

/// Roots, inclusion and consistency proofs computed from the stored tiles
/// equal those of an in-memory tree, at the current size and every earlier
/// batch's size; the tiles a client fetches for a proof are all there.
pub fn proofs_from_stored_tiles_match_a_memory_tree(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    let mut mem = MemoryTree::new();
    let all = rows(0..2100);
    let mut sizes = Vec::new();
    let mut start = 0usize;
    for batch in [1usize, 2, 5, 250, 300, 7, 1, 512, 1000, 22] {
        let chunk = &all[start..start + batch];
        start += batch;
        append_records(&*store, &mut trees, chunk);
        for r in chunk {
            mem.push(leaf_hash(&r.leaf_data));
        }
        let size = start as u64;
        sizes.push(size);
        let reader = TiledHashReader {
            tiles: StoreTiles(&*store, LogId::Evidence),
            tree_size: size,
        };
        assert_eq!(root(&reader, size).unwrap(), mem.root(), "root at {size}");
        for &old in &sizes {
            // An earlier size reads narrower prefixes of the same tiles.
            let old_reader = TiledHashReader {
                tiles: StoreTiles(&*store, LogId::Evidence),
                tree_size: old,
            };
            assert_eq!(
                root(&old_reader, old).unwrap(),
                mem.root_at(old).unwrap(),
                "root at {old}"
            );
            assert_eq!(
                consistency_proof(&reader, old, size).unwrap(),
                mem.consistency_proof(old, size).unwrap(),
                "consistency {old} -> {size}"
            );
        }
        let step = (size / 61).max(1);
        for index in (0..size).step_by(step as usize).chain([size - 1]) {
            assert_eq!(
                inclusion_proof(&reader, index, size).unwrap(),
                mem.inclusion_proof(index, size).unwrap(),
                "inclusion {index} in {size}"
            );
            store
                .read_tiles(LogId::Evidence, &inclusion_proof_tiles(index, size))
                .unwrap();
        }
    }
    // Stored tiles are exactly as wide as the final tree makes them.
    for level in 0..3u8 {
        for index in 0..10u64 {
            match tile_width(level, index, 2100) {
                Some(w) => {
                    store
                        .read_tiles(LogId::Evidence, &[tile(level, index, w)])
                        .unwrap();
                    if w < 256 {
                        assert!(
                            store
                                .read_tiles(LogId::Evidence, &[tile(level, index, w + 1)])
                                .is_err()
                        );
                    }
                }
                None => assert!(
                    store
                        .read_tiles(LogId::Evidence, &[tile(level, index, 1)])
                        .is_err()
                ),
            }
        }
    }
}

/// Checkpoints per log: the first stored for a size is kept, the latest is
/// the largest size, lists ascend after a cursor with a clamped limit.
pub fn checkpoints_keep_the_first_per_size(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let cp = |log: LogId, size: u64, note: &str| StoredCheckpoint {
        size,
        note: format!("example.com/{log}\n{size}\n{note}\n"),
        created_at_ms: T0 + size as i64,
    };
    for log in [LogId::Evidence, LogId::Audit] {
        for size in [5u64, 1, 100, 42, 0] {
            store.put_checkpoint(log, &cp(log, size, "first")).unwrap();
        }
        store.put_checkpoint(log, &cp(log, 42, "second")).unwrap();
    }
    for log in [LogId::Evidence, LogId::Audit] {
        assert_eq!(
            store.latest_checkpoint(log).unwrap(),
            Some(cp(log, 100, "first"))
        );
        assert_eq!(
            store.checkpoint_at(log, 42).unwrap(),
            Some(cp(log, 42, "first")),
            "the first of a size is kept"
        );
        assert_eq!(
            store.checkpoint_at(log, 0).unwrap(),
            Some(cp(log, 0, "first"))
        );
        assert_eq!(store.checkpoint_at(log, 43).unwrap(), None);
        assert_eq!(store.checkpoint_at(log, u64::MAX).unwrap(), None);
        let sizes = |v: Vec<StoredCheckpoint>| v.into_iter().map(|c| c.size).collect::<Vec<_>>();
        assert_eq!(
            sizes(store.list_checkpoints(log, None, 10).unwrap()),
            [0, 1, 5, 42, 100]
        );
        assert_eq!(sizes(store.list_checkpoints(log, None, 2).unwrap()), [0, 1]);
        assert_eq!(
            sizes(store.list_checkpoints(log, Some(1), 2).unwrap()),
            [5, 42]
        );
        assert_eq!(
            sizes(store.list_checkpoints(log, Some(5), 0).unwrap()),
            [42]
        );
        assert!(
            store
                .list_checkpoints(log, Some(u64::MAX), 10)
                .unwrap()
                .is_empty()
        );
    }
}

/// A meta value reads back, a second set replaces it, and the listing
/// holds each key once.
pub fn meta_values_are_replaced(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    assert_eq!(store.get_meta("origin").unwrap(), None);
    store.set_meta("origin", "example.com/a").unwrap();
    store.set_meta("key id", "").unwrap();
    assert_eq!(
        store.get_meta("origin").unwrap().as_deref(),
        Some("example.com/a")
    );
    store.set_meta("origin", "example.com/b ✓").unwrap();
    assert_eq!(
        store.get_meta("origin").unwrap().as_deref(),
        Some("example.com/b ✓")
    );
    assert_eq!(store.get_meta("key id").unwrap().as_deref(), Some(""));
    assert_eq!(store.get_meta("Origin").unwrap(), None, "keys are exact");
    // All of them, ordered bytewise by key.
    assert_eq!(
        store.meta_entries().unwrap(),
        vec![
            ("key id".to_string(), String::new()),
            ("origin".to_string(), "example.com/b ✓".to_string()),
        ]
    );
}

/// Pages through `list` with `limit`, checking each page's shape.
fn list_all(store: &dyn Store, query: &ListQuery, limit: u32) -> Vec<EvidenceRow> {
    let mut q = query.clone();
    q.limit = limit;
    let mut out = Vec::new();
    loop {
        let page = store.list(&q).unwrap();
        assert!(page.items.len() <= limit.max(1) as usize);
        assert!(
            page.items
                .windows(2)
                .all(|w| w[0].leaf_index < w[1].leaf_index)
        );
        if page.items.len() == limit.max(1) as usize {
            assert_eq!(page.next, page.items.last().map(|r| r.leaf_index));
        } else {
            assert_eq!(page.next, None);
        }
        out.extend(page.items);
        match page.next {
            Some(n) => {
                assert!(q.after_index.is_none_or(|a| n > a), "the cursor advances");
                q.after_index = Some(n);
            }
            None => return out,
        }
    }
}

/// Which of [`row`]`(0..700)` a list query matches.
type Pred = fn(u64) -> bool;

/// List queries over [`row`]`(0..700)` and which rows each matches.
fn list_cases() -> Vec<(ListQuery, Pred)> {
    let label = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    vec![
        (ListQuery::default(), |_| true),
        (
            ListQuery {
                labels: vec![label("case", "case-1")],
                ..Default::default()
            },
            |i| i % 3 == 1,
        ),
        (
            ListQuery {
                labels: vec![label("case", "case-1"), label("source", "src-0")],
                ..Default::default()
            },
            |i| i % 3 == 1 && i % 2 == 0,
        ),
        (
            ListQuery {
                labels: vec![label("case", "case-1"), label("case", "case-2")],
                ..Default::default()
            },
            |_| false,
        ),
        (
            ListQuery {
                labels: vec![label("case", "nope")],
                ..Default::default()
            },
            |_| false,
        ),
        (
            ListQuery {
                content_type: Some("application/pdf".into()),
                ..Default::default()
            },
            |i| i % 4 == 0,
        ),
        (
            ListQuery {
                ingested_by: Some("alice".into()),
                ..Default::default()
            },
            |i| i % 2 == 0,
        ),
        (
            ListQuery {
                ingested_by: Some("bob".into()),
                labels: vec![label("case", "case-0")],
                ..Default::default()
            },
            |i| i % 2 == 1 && i % 3 == 0,
        ),
        (
            ListQuery {
                ingested_by: Some("mallory".into()),
                ..Default::default()
            },
            |_| false,
        ),
        (
            // since inclusive, until exclusive.
            ListQuery {
                since_ms: Some(T0 + 500),
                until_ms: Some(T0 + 1000),
                ..Default::default()
            },
            |i| (50..100).contains(&i),
        ),
        (
            ListQuery {
                since_ms: Some(T0 + 6500),
                ..Default::default()
            },
            |i| i >= 650,
        ),
        (
            ListQuery {
                until_ms: Some(T0 + 30),
                ..Default::default()
            },
            |i| i < 3,
        ),
        (
            ListQuery {
                labels: vec![label("source", "src-0")],
                content_type: Some("application/json".into()),
                since_ms: Some(T0 + 2000),
                until_ms: Some(T0 + 6000),
                ..Default::default()
            },
            |i| i % 2 == 0 && i % 4 != 0 && (200..600).contains(&i),
        ),
        (
            ListQuery {
                after_index: Some(650),
                ..Default::default()
            },
            |i| i > 650,
        ),
        (
            ListQuery {
                labels: vec![label("case", "case-0")],
                after_index: Some(600),
                ..Default::default()
            },
            |i| i % 3 == 0 && i > 600,
        ),
    ]
}

/// `list` selects exactly the records every filter matches, whole and in
/// leaf order, whatever the page size; a page holds 1 to 1000 records.
pub fn list_filters_and_pages(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    let all = rows(0..700);
    for chunk in all.chunks(300) {
        append_records(&*store, &mut trees, chunk);
    }
    for (query, pred) in list_cases() {
        let want: Vec<EvidenceRow> = all.iter().filter(|r| pred(r.leaf_index)).cloned().collect();
        for limit in [1000, 7, 1] {
            assert_eq!(
                list_all(&*store, &query, limit),
                want,
                "{query:?} by {limit}"
            );
        }
    }
    // A page's items are whole records; a limit of 0 is clamped to 1.
    let page = store
        .list(&ListQuery {
            after_index: Some(4),
            limit: 0,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, vec![row(5)]);
    assert_eq!(page.next, Some(5));
    // A limit above 1000 is clamped to 1000; a cursor past every index is
    // the end.
    append_records(&*store, &mut trees, &rows(700..1200));
    let page = store
        .list(&ListQuery {
            limit: u32::MAX,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, rows(0..1000));
    assert_eq!(page.next, Some(999));
    let page = store
        .list(&ListQuery {
            after_index: page.next,
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, rows(1000..1200));
    assert_eq!(page.next, None);
    let page = store
        .list(&ListQuery {
            after_index: Some(u64::MAX),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

/// The follower-written indexes (labels, payload digest) hold exactly the
/// records below `indexed_through`, which only `index_evidence` moves (by
/// at most its row limit, never past the tree size, never back), and which
/// survives a reopen. Reads are exact wherever the cursor stands: the same
/// lists and digest lookups at cursor 0, inside a batch, at a batch's edge
/// and at the tree size.
pub fn the_index_follows_the_log_and_reads_stay_exact(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut trees = Trees::default();
    let mut all = rows(0..700);
    // Three more records carrying leaf 5's payload bytes: one digest, four
    // leaves, on both sides of the cursors below.
    for i in 700..703 {
        let mut r = row(i);
        r.sha256 = row(5).sha256;
        all.push(r);
    }
    {
        let store = open(dir.path());
        assert_eq!(store.indexed_through().unwrap(), 0, "an empty store");
        assert_eq!(
            store.index_evidence(10, 100).unwrap(),
            0,
            "nothing to index"
        );
        for chunk in all.chunks(300) {
            append_records(&*store, &mut trees, chunk);
        }
        assert_eq!(
            store.indexed_through().unwrap(),
            0,
            "a commit does not move the cursor"
        );
    }
    let sharing = [5, 700, 701, 702];
    let mut cursor = 0;
    for target in [0, 1, 299, 300, 513, 702, 703] {
        let store = open(dir.path());
        assert_eq!(
            store.indexed_through().unwrap(),
            cursor,
            "kept across a reopen"
        );
        if target > cursor {
            // At most `max_rows` per call: two calls.
            let half = (target - cursor).div_ceil(2);
            let mid = store.index_evidence(target, half).unwrap();
            assert_eq!(mid, cursor + half);
            cursor = store.index_evidence(target, half).unwrap();
            assert_eq!(cursor, target);
        }
        assert_eq!(store.indexed_through().unwrap(), target);
        // Below the cursor, a call is a no-op.
        assert_eq!(store.index_evidence(0, 1000).unwrap(), target);
        let labelled: u64 = all
            .iter()
            .take(target as usize)
            .map(|r| r.labels.len() as u64)
            .sum();
        assert_eq!(store.label_index_len().unwrap(), labelled, "at {target}");
        for (query, pred) in list_cases() {
            let want: Vec<EvidenceRow> = all
                .iter()
                .filter(|r| r.leaf_index < 700 && pred(r.leaf_index))
                .cloned()
                .collect();
            let mut query = query;
            if query.after_index.is_none() && query.labels.is_empty() {
                continue;
            }
            query.until_ms = query.until_ms.or(Some(T0 + 7000));
            for limit in [1000, 7, 1] {
                assert_eq!(
                    list_all(&*store, &query, limit),
                    want,
                    "{query:?} by {limit} at cursor {target}"
                );
            }
        }
        if let Some(c) = store.compliance() {
            let found: Vec<u64> = c
                .records_by_sha256(&row(5).sha256)
                .unwrap()
                .iter()
                .map(|r| r.leaf_index)
                .collect();
            assert_eq!(found, sharing, "at cursor {target}");
            assert!(c.records_by_sha256(&h(9, 0)).unwrap().is_empty());
        }
    }
    let store = open(dir.path());
    // Never past the tree size, however far it is asked to go.
    assert_eq!(store.index_evidence(u64::MAX, u64::MAX).unwrap(), 703);
    assert_eq!(store.indexed_through().unwrap(), 703);
    // The index keeps following as the log grows.
    append_records(&*store, &mut trees, &rows(703..710));
    assert_eq!(store.index_evidence(u64::MAX, 1000).unwrap(), 710);
}

/// `list_audit` selects exactly the events every filter matches, paged
/// like `list`.
pub fn list_audit_filters_and_pages(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    append_both(&*store, &mut trees, &rows(0..3), &audit_rows(0..200)).unwrap();
    append_both(&*store, &mut trees, &[], &audit_rows(200..310)).unwrap();
    let all = audit_rows(0..310);
    let some = |s: &str| Some(s.to_owned());
    type Pred = Box<dyn Fn(&AuditRow) -> bool>;
    let mut cases: Vec<(AuditQuery, Pred)> = vec![
        (AuditQuery::default(), Box::new(|_| true)),
        (
            AuditQuery {
                operation: some("log.checkpoint"),
                outcome: some("success"),
                ..Default::default()
            },
            Box::new(|e| e.operation == "log.checkpoint" && e.outcome == "success"),
        ),
        (
            AuditQuery {
                principal: some("nobody"),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            // Outcomes are exact, case included.
            AuditQuery {
                outcome: some("Success"),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            AuditQuery {
                since_ms: Some(T0 + 2800),
                ..Default::default()
            },
            Box::new(|e| e.leaf_index >= 280),
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
                after_index: Some(290),
                ..Default::default()
            },
            Box::new(|e| e.leaf_index > 290),
        ),
        (
            AuditQuery {
                since_ms: Some(T0 + 1000),
                until_ms: Some(T0 + 1500),
                after_index: Some(120),
                ..Default::default()
            },
            Box::new(|e| (121..150).contains(&e.leaf_index)),
        ),
        (
            AuditQuery {
                principal: some("alice"),
                operation: some("evidence.put"),
                outcome: some("success"),
                since_ms: Some(T0 + 500),
                until_ms: Some(T0 + 2500),
                after_index: Some(100),
                limit: 0,
            },
            Box::new(|e| {
                e.principal == "alice"
                    && e.operation == "evidence.put"
                    && e.outcome == "success"
                    && (101..250).contains(&e.leaf_index)
            }),
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
        assert!(all.iter().any(|e| e.outcome == o), "no event is {o}");
        cases.push((
            AuditQuery {
                outcome: some(o),
                ..Default::default()
            },
            Box::new(move |e| e.outcome == o),
        ));
    }
    for (query, pred) in cases {
        let want: Vec<&AuditRow> = all.iter().filter(|e| pred(e)).collect();
        for limit in [1000u32, 9] {
            let mut q = query.clone();
            q.limit = limit;
            let mut got = Vec::new();
            loop {
                let page = store.list_audit(&q).unwrap();
                assert!(page.items.len() <= limit as usize);
                if page.items.len() == limit as usize {
                    assert_eq!(page.next, page.items.last().map(|e| e.leaf_index));
                } else {
                    assert_eq!(page.next, None);
                }
                got.extend(page.items);
                match page.next {
                    Some(n) => {
                        assert!(q.after_index.is_none_or(|a| n > a), "the cursor advances");
                        q.after_index = Some(n);
                    }
                    None => break,
                }
            }
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{query:?} by {limit}");
        }
    }
    // A limit of 0 is clamped to 1, one above 1000 to 1000; a cursor past
    // every index is the end.
    let page = store.list_audit(&AuditQuery::default()).unwrap();
    assert_eq!(page.items, audit_rows(0..1));
    assert_eq!(page.next, Some(0));
    append_both(&*store, &mut trees, &[], &audit_rows(310..1200)).unwrap();
    let page = store
        .list_audit(&AuditQuery {
            limit: u32::MAX,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items, audit_rows(0..1000));
    assert_eq!(page.next, Some(999));
    let page = store
        .list_audit(&AuditQuery {
            after_index: Some(u64::MAX),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

/// What a call returned `Ok` for is there after the store is dropped and
/// opened again: records, events, tiles, checkpoints, meta; and the
/// reopened store appends where the first left off, as durably.
pub fn what_returned_ok_survives_a_reopen(open: Open<'_>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut trees = Trees::default();
    let before = {
        let store = open(dir.path());
        append_both(&*store, &mut trees, &rows(0..300), &audit_rows(0..20)).unwrap();
        append_both(&*store, &mut trees, &rows(300..301), &audit_rows(20..21)).unwrap();
        store
            .put_checkpoint(
                LogId::Evidence,
                &StoredCheckpoint {
                    size: 301,
                    note: "example.com/log\n301\nroot\n".into(),
                    created_at_ms: T0,
                },
            )
            .unwrap();
        store.set_meta("origin", "example.com/log").unwrap();
        observe(&*store, &rows(0..301))
    };
    let store = open(dir.path());
    assert_eq!(observe(&*store, &rows(0..301)), before);
    for want in rows(0..301).iter().step_by(37) {
        assert_eq!(store.record_by_id(&want.id).unwrap().as_ref(), Some(want));
    }
    append_both(&*store, &mut trees, &rows(301..310), &audit_rows(21..22)).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 310);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 22);
    // What the reopened store appended is there after another reopen.
    let after = observe(&*store, &rows(0..310));
    drop(store);
    assert_eq!(observe(&*open(dir.path()), &rows(0..310)), after);
}

/// The whole-store reads `fsck` uses see every row, tile and index entry.
pub fn scans_see_every_row(open: Open<'_>) {
    let (_dir, store) = fresh(open);
    let mut trees = Trees::default();
    append_both(&*store, &mut trees, &rows(0..270), &audit_rows(0..5)).unwrap();
    assert_eq!(store.leaf_rows(LogId::Evidence).unwrap(), (270, Some(269)));
    assert_eq!(store.leaf_rows(LogId::Audit).unwrap(), (5, Some(4)));
    let scanned: Vec<EvidenceRow> = store
        .scan_records(10, 20)
        .unwrap()
        .into_iter()
        .map(|r| r.expect("a readable row"))
        .collect();
    assert_eq!(scanned, rows(10..20));
    let scanned: Vec<AuditRow> = store
        .scan_audit(0, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.expect("a readable row"))
        .collect();
    assert_eq!(scanned, audit_rows(0..5));

    // Tiles: 0/0 full, 0/1 of 14, 1/0 of 1 (evidence); 0/0 of 5 (audit).
    let keys: Vec<(u8, u64, u64)> = store
        .tile_keys(LogId::Evidence)
        .unwrap()
        .iter()
        .map(|k| (k.level, k.index, k.bytes))
        .collect();
    assert_eq!(keys, [(0, 0, 256 * 32), (0, 1, 14 * 32), (1, 0, 32)]);
    let stored = store.stored_tile(LogId::Evidence, 0, 1).unwrap().unwrap();
    assert_eq!(
        store
            .read_tiles(LogId::Evidence, &[tile(0, 1, 14)])
            .unwrap(),
        vec![stored]
    );
    assert_eq!(store.stored_tile(LogId::Evidence, 0, 2).unwrap(), None);

    // The index follower has reached leaf 200: the rows below it have
    // their label entries, the rows past it none yet, and neither is
    // missing from an index.
    assert_eq!(store.index_evidence(200, 1000).unwrap(), 200);
    for lookup in store.index_lookups(LogId::Evidence, 0, 270).unwrap() {
        let i = lookup.leaf_index;
        assert_eq!(lookup.by_id, Some(i));
        assert_eq!(lookup.by_dedup_key, Some(i));
        assert_eq!(lookup.has_idempotency_key, i % 5 == 0);
        assert_eq!(lookup.by_idempotency_key, (i % 5 == 0).then_some(i), "{i}");
        assert_eq!(lookup.labels, Some(2));
        assert_eq!(lookup.indexed, i < 200, "{i}");
        assert_eq!(lookup.labels_indexed, Some(if i < 200 { 2 } else { 0 }));
        assert!(
            lookup.missing_from.is_empty() && lookup.ahead_in.is_empty(),
            "{i}: {:?} {:?}",
            lookup.missing_from,
            lookup.ahead_in
        );
    }
    assert_eq!(store.label_index_len().unwrap(), 400);
    assert_eq!(store.index_evidence(270, 1000).unwrap(), 270);
    assert!(
        store
            .index_lookups(LogId::Evidence, 0, 270)
            .unwrap()
            .iter()
            .all(|l| l.indexed && l.labels_indexed == Some(2))
    );
    assert_eq!(store.label_index_len().unwrap(), 540);
    let page = store.label_index_page(None, 3).unwrap();
    assert_eq!(page.len(), 3);
    for entry in &page {
        assert!(store.label_entry_matches(entry).unwrap(), "{entry:?}");
    }
    let after = store.label_index_page(page.last(), 10_000).unwrap();
    assert_eq!(after.len(), 537);
    let mut wrong = page[0].clone();
    wrong.value.push('!');
    assert!(!store.label_entry_matches(&wrong).unwrap());
}

/// The dedup and idempotency keys (schema 10: follower indexes behind the
/// log) against a model, over a seeded random run of commits, follower
/// batches and reopens: after every step a lookup by either key, single
/// or batched, finds the first leaf holding it, an unknown key finds
/// nothing, and fsck's view of the indexes (`index_lookups`) agrees. A few
/// rows reuse an earlier row's key: the store does not refuse them (the
/// sequencer looks every key up before it assigns a leaf), a lookup keeps
/// leading to the first, and fsck sees the twin.
pub fn unique_keys_stay_exact_as_the_follower_moves(open: Open<'_>) {
    /// xorshift64: the run is the same on every driver and every run.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut trees = Trees::default();
    let mut all: Vec<EvidenceRow> = Vec::new();
    let mut store = open(dir.path());
    let mut cursor = 0;
    for step in 0..60 {
        match rng.below(10) {
            0..=5 => {
                let start = all.len() as u64;
                let mut batch = rows(start..start + 1 + rng.below(24));
                for r in &mut batch {
                    if start > 0 && rng.below(20) == 0 {
                        let twin = &all[rng.below(start) as usize];
                        r.dedup_key = twin.dedup_key;
                    }
                    if start > 0 && rng.below(20) == 0 {
                        let twin = &all[rng.below(start) as usize];
                        if twin.idempotency_key.is_some() {
                            r.ingested_by = twin.ingested_by.clone();
                            r.idempotency_key = twin.idempotency_key.clone();
                        }
                    }
                }
                append_records(&*store, &mut trees, &batch);
                all.extend(batch);
            }
            6..=7 => {
                let size = all.len() as u64;
                let through = cursor + rng.below(size - cursor + 2);
                let max_rows = 1 + rng.below(40);
                let want = through.min(size).min(cursor + max_rows).max(cursor);
                cursor = store.index_evidence(through, max_rows).unwrap();
                assert_eq!(cursor, want, "step {step}: the cursor");
            }
            _ => {
                drop(store);
                store = open(dir.path());
            }
        }
        assert_eq!(store.indexed_through().unwrap(), cursor, "step {step}");
        check_unique_keys(&*store, &all, step);
    }
    // Then the follower catches up, and everything still holds.
    let size = all.len() as u64;
    assert_eq!(store.index_evidence(size, size).unwrap(), size);
    check_unique_keys(&*store, &all, 60);
    drop(store);
    check_unique_keys(&*open(dir.path()), &all, 61);
}

/// [`unique_keys_stay_exact_as_the_follower_moves`]'s check of one state.
fn check_unique_keys(store: &dyn Store, all: &[EvidenceRow], step: usize) {
    let mut first_dedup: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut first_idem: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in all {
        first_dedup.entry(r.dedup_key).or_insert(r.leaf_index);
        if let Some(k) = &r.idempotency_key {
            first_idem
                .entry((r.ingested_by.clone(), k.clone()))
                .or_insert(r.leaf_index);
        }
    }
    for (key, &leaf) in &first_dedup {
        let got = store.record_by_dedup_key(key).unwrap();
        assert_eq!(
            got.map(|r| r.leaf_index),
            Some(leaf),
            "step {step}: by dedup key"
        );
    }
    for ((principal, key), &leaf) in &first_idem {
        let got = store.record_by_idempotency_key(principal, key).unwrap();
        assert_eq!(
            got.map(|r| r.leaf_index),
            Some(leaf),
            "step {step}: by idempotency key"
        );
        let other = if principal == "alice" { "bob" } else { "alice" };
        if !first_idem.contains_key(&(other.to_owned(), key.clone())) {
            assert_eq!(store.record_by_idempotency_key(other, key).unwrap(), None);
        }
    }
    let mut keys: Vec<[u8; 32]> = first_dedup.keys().copied().collect();
    keys.push(h(9, step as u64));
    let mut got: Vec<u64> = store
        .records_by_dedup_keys(&keys)
        .unwrap()
        .iter()
        .map(|r| r.leaf_index)
        .collect();
    got.sort_unstable();
    let mut want: Vec<u64> = first_dedup.values().copied().collect();
    want.sort_unstable();
    assert_eq!(got, want, "step {step}: a batched lookup");
    assert_eq!(store.record_by_dedup_key(&h(9, step as u64)).unwrap(), None);
    assert_eq!(
        store.record_by_idempotency_key("alice", "nope").unwrap(),
        None
    );

    let lookups = store
        .index_lookups(LogId::Evidence, 0, all.len() as u64)
        .unwrap();
    assert_eq!(lookups.len(), all.len());
    for (l, r) in lookups.iter().zip(all) {
        assert_eq!(
            l.by_dedup_key,
            first_dedup.get(&r.dedup_key).copied(),
            "step {step}: fsck's dedup lookup of leaf {}",
            r.leaf_index
        );
        let idem = r
            .idempotency_key
            .as_ref()
            .and_then(|k| first_idem.get(&(r.ingested_by.clone(), k.clone())).copied());
        assert_eq!(
            l.by_idempotency_key, idem,
            "step {step}: fsck's idempotency lookup of leaf {}",
            r.leaf_index
        );
        assert!(l.ahead_in.is_empty(), "step {step}: {l:?}");
        assert!(l.missing_from.is_empty(), "step {step}: {l:?}");
    }
}
