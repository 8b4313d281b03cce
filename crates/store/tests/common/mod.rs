//! Helpers shared by the integration tests and the append benchmark.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

// The tiles a sequencer writes with each batch (every tile touched, at its
// width after the batch), built as the vault's sequencer builds them.
pub use evault_merkle::tiles::TileBuilder;
use evault_merkle::tiles::{TileId, TileReader};
use evault_merkle::{Hash, leaf_hash};
use evault_store::{
    AppendBatch, AuditBatch, AuditRow, EvidenceRow, LogId, Payload, SqliteStore, Store, StoreError,
};

/// Reads one log's tiles from the store for `TiledHashReader`.
pub struct StoreTiles<'a>(pub &'a SqliteStore, pub LogId);

impl TileReader for StoreTiles<'_> {
    type Error = StoreError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0.read_tiles(self.1, tiles)
    }
}

/// A deterministic 32-byte value.
pub fn h(tag: u8, i: u64) -> [u8; 32] {
    let mut input = vec![tag];
    input.extend_from_slice(&i.to_be_bytes());
    leaf_hash(&input)
}

/// A UUIDv7-shaped id, time-ordered by `i`.
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

pub const T0: i64 = 1_700_000_000_000;

/// A varied record for leaf `i`: labels `case` (3 values) and `source`
/// (2 values), two content types, inline (sometimes empty) and external
/// payloads, an idempotency key on every fifth.
pub fn row(i: u64) -> EvidenceRow {
    let mut labels = BTreeMap::new();
    labels.insert("case".to_owned(), format!("case-{}", i % 3));
    labels.insert("source".to_owned(), format!("src-{}", i % 2));
    let ingested_at_ms = T0 + i as i64 * 10;
    EvidenceRow {
        leaf_index: i,
        id: uuid(ingested_at_ms as u64, i),
        content_type: if i.is_multiple_of(4) {
            "application/pdf".to_owned()
        } else {
            "application/json".to_owned()
        },
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

pub fn rows(range: std::ops::Range<u64>) -> Vec<EvidenceRow> {
    range.map(row).collect()
}

/// Everything in the database (both logs), for "nothing changed"
/// assertions.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub tree_size: u64,
    pub records: i64,
    pub labels: i64,
    pub tiles: Vec<(i64, i64, Vec<u8>)>,
    pub checkpoints: i64,
    pub audit_size: u64,
    pub audit_events: i64,
    pub audit_tiles: Vec<(i64, i64, Vec<u8>)>,
    pub audit_checkpoints: i64,
    pub meta: i64,
    pub analytics_events: i64,
    pub analytics_metrics: i64,
}

pub fn snapshot(store: &SqliteStore, path: &Path) -> Snapshot {
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let tiles = |table: &str| -> Vec<(i64, i64, Vec<u8>)> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT level, idx, data FROM {table} ORDER BY level, idx"
            ))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    Snapshot {
        tree_size: store.tree_size(LogId::Evidence).unwrap(),
        records: count("records"),
        labels: count("record_labels"),
        tiles: tiles("tiles"),
        checkpoints: count("checkpoints"),
        audit_size: store.tree_size(LogId::Audit).unwrap(),
        audit_events: count("audit_events"),
        audit_tiles: tiles("audit_tiles"),
        audit_checkpoints: count("audit_checkpoints"),
        meta: count("meta"),
        analytics_events: count("analytics_events"),
        analytics_metrics: count("analytics_metrics"),
    }
}

pub const PRINCIPALS: [&str; 3] = ["alice", "bob", "anonymous"];
pub const OPERATIONS: [&str; 4] = [
    "evidence.put",
    "evidence.get",
    "log.checkpoint",
    "audit.list",
];
pub const OUTCOMES: [&str; 4] = ["success", "denied", "unauthenticated", "failed"];

/// A varied audit event for leaf `i`: principal `i % 3`, operation
/// `i % 4`, outcome success except every 7th (cycling through the
/// others), 10 ms apart from `T0`.
pub fn audit_row(i: u64) -> AuditRow {
    let time_ms = T0 + i as i64 * 10;
    let outcome = if i.is_multiple_of(7) {
        OUTCOMES[1 + (i / 7 % 3) as usize]
    } else {
        OUTCOMES[0]
    };
    AuditRow {
        leaf_index: i,
        id: uuid(time_ms as u64, 1 << 40 | i),
        time_ms,
        principal: PRINCIPALS[(i % 3) as usize].to_owned(),
        operation: OPERATIONS[(i % 4) as usize].to_owned(),
        outcome: outcome.to_owned(),
        leaf_data: format!("{{\"audit\":{i},\"v\":\"evault/audit/v1\"}}").into_bytes(),
    }
}

pub fn audit_rows(range: std::ops::Range<u64>) -> Vec<AuditRow> {
    range.map(audit_row).collect()
}

/// Both logs' tile builders, as the sequencer keeps them.
#[derive(Clone, Debug, Default)]
pub struct Trees {
    pub evidence: TileBuilder,
    pub audit: TileBuilder,
}

impl Trees {
    pub fn new() -> Self {
        Trees {
            evidence: TileBuilder::new(),
            audit: TileBuilder::new(),
        }
    }
}

/// Appends records and audit events in one batch with the tiles a
/// sequencer would write for each log; returns the store's answer and
/// advances `trees` only on success.
pub fn append_both(
    store: &SqliteStore,
    trees: &mut Trees,
    rows: &[EvidenceRow],
    events: &[AuditRow],
) -> Result<(), StoreError> {
    let mut next = trees.clone();
    let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let tiles = next.evidence.append(&leaves);
    let audit_leaves: Vec<Hash> = events.iter().map(|e| leaf_hash(&e.leaf_data)).collect();
    let audit_tiles = next.audit.append(&audit_leaves);
    store.append(&AppendBatch {
        old_size: trees.evidence.size(),
        records: rows,
        tiles: &tiles,
        audit: Some(AuditBatch {
            old_size: trees.audit.size(),
            events,
            tiles: &audit_tiles,
        }),
    })?;
    *trees = next;
    Ok(())
}

/// Appends `rows` with the tiles a sequencer would write; panics on error.
pub fn append_rows(store: &SqliteStore, tiles: &mut TileBuilder, rows: &[EvidenceRow]) {
    let old_size = tiles.size();
    let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let touched = tiles.append(&leaves);
    store
        .append(&AppendBatch::new(old_size, rows, &touched))
        .unwrap();
}

/// A fresh store in a temporary directory.
pub fn fresh() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evault.db");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}
