//! Helpers shared by the integration tests and the append benchmark.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use evault_merkle::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, TileReader};
use evault_merkle::{CompactRange, HASH_SIZE, Hash, NodeId, leaf_hash};
use evault_store::{AppendBatch, EvidenceRow, Payload, SqliteStore, Store, StoreError};

/// Tile levels a u64-sized tree can have.
const TILE_LEVELS: usize = 8;

/// Builds the tiles a sequencer writes with each batch: every tile touched,
/// at its width after the batch (partial tiles rewritten as they grow).
#[derive(Clone, Debug, Default)]
pub struct TileBuilder {
    frontier: CompactRange,
    /// Per tile level: (tile index, contents so far).
    current: Vec<(u64, Vec<u8>)>,
}

impl TileBuilder {
    pub fn new() -> Self {
        TileBuilder {
            frontier: CompactRange::new(),
            current: vec![(0, Vec::new()); TILE_LEVELS],
        }
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends leaf hashes; returns the full contents of every tile touched.
    pub fn push(&mut self, leaves: &[Hash]) -> Vec<(TileId, Vec<u8>)> {
        let mut touched: BTreeSet<(u8, u64)> = BTreeSet::new();
        let mut out = Vec::new();
        let tiles = &mut self.current;
        self.frontier.extend(leaves, |id: NodeId, hash: &Hash| {
            if !id.level.is_multiple_of(TILE_HEIGHT) {
                return;
            }
            let level = id.level / TILE_HEIGHT;
            let index = id.index / TILE_WIDTH as u64;
            let cur = &mut tiles[level as usize];
            if cur.0 != index {
                *cur = (index, Vec::with_capacity(TILE_WIDTH as usize * HASH_SIZE));
            }
            cur.1.extend_from_slice(hash);
            if cur.1.len() == TILE_WIDTH as usize * HASH_SIZE {
                out.push((
                    TileId {
                        level,
                        index,
                        width: TILE_WIDTH,
                    },
                    cur.1.clone(),
                ));
                touched.remove(&(level, index));
            } else {
                touched.insert((level, index));
            }
        });
        for (level, index) in touched {
            let (cur_index, data) = &tiles[level as usize];
            if *cur_index == index {
                let width = (data.len() / HASH_SIZE) as u16;
                out.push((
                    TileId {
                        level,
                        index,
                        width,
                    },
                    data.clone(),
                ));
            }
        }
        out
    }
}

/// Reads tiles from the store for `TiledHashReader`.
pub struct StoreTiles<'a>(pub &'a SqliteStore);

impl TileReader for StoreTiles<'_> {
    type Error = StoreError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0.read_tiles(tiles)
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
    }
}

pub fn rows(range: std::ops::Range<u64>) -> Vec<EvidenceRow> {
    range.map(row).collect()
}

/// Everything in the database, for "nothing changed" assertions.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub tree_size: u64,
    pub records: i64,
    pub labels: i64,
    pub tiles: Vec<(i64, i64, Vec<u8>)>,
    pub checkpoints: i64,
    pub meta: i64,
}

pub fn snapshot(store: &SqliteStore, path: &Path) -> Snapshot {
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let mut stmt = conn
        .prepare("SELECT level, idx, data FROM tiles ORDER BY level, idx")
        .unwrap();
    let tiles = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    Snapshot {
        tree_size: store.tree_size().unwrap(),
        records: count("records"),
        labels: count("record_labels"),
        tiles,
        checkpoints: count("checkpoints"),
        meta: count("meta"),
    }
}

/// Appends `rows` with the tiles a sequencer would write; panics on error.
pub fn append_rows(store: &SqliteStore, tiles: &mut TileBuilder, rows: &[EvidenceRow]) {
    let old_size = tiles.size();
    let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let touched = tiles.push(&leaves);
    store
        .append(&AppendBatch {
            old_size,
            records: rows,
            tiles: &touched,
        })
        .unwrap();
}

/// A fresh store in a temporary directory.
pub fn fresh() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evault.db");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}
