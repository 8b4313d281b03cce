//! Helpers shared by the integration tests and the append benchmark.
// Each test file uses only some of these.
#![allow(dead_code, unused_imports)]

use std::path::Path;

// The tiles a sequencer writes with each batch (every tile touched, at its
// width after the batch), built as the vault's sequencer builds them.
pub use evault_merkle::tiles::TileBuilder;
use evault_merkle::tiles::{TileId, TileReader};
use evault_merkle::{Hash, leaf_hash};
use evault_store::LogStore;
use evault_store::{
    AppendBatch, AuditBatch, AuditRow, EvidenceRow, LogId, SqliteStore, Store, StoreError,
};

/// Reads one log's tiles from the store for `TiledHashReader`.
pub struct StoreTiles<'a>(pub &'a SqliteStore, pub LogId);

impl TileReader for StoreTiles<'_> {
    type Error = StoreError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0.read_tiles(self.1, tiles)
    }
}

// The suite's varied rows, so the SQLite tests and every driver's suite
// write the same data.
pub use evault_store::testing::{T0, h, row, rows, uuid};

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
    let conn = SqliteStore::raw_connection(path).unwrap();
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

pub use evault_store::testing::{OPERATIONS, OUTCOMES, PRINCIPALS, audit_row, audit_rows};

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
