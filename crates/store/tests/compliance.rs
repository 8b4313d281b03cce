//! What only the SQLite driver can show of erasure: the erased bytes leave
//! every file, `compact` converts an old database, the digest index's
//! plan. Erasure, holds and retention themselves are the driver
//! conformance suite's (`evault_store::testing`, module `compliance`).

mod common;

use std::time::Duration;

use common::{TileBuilder, append_rows, fresh, row};
use evault_merkle::{Hash, leaf_hash};
use evault_store::{AppendBatch, ErasureRow, LogId, Payload, SqliteStore, Store};
use evault_store::{EvidenceIndex, LogStore};

const MARKER: &[u8] = b"ERASE-ME-MARKER-7f3a9c";

fn marked_payload() -> Vec<u8> {
    // Big enough to spill onto overflow pages.
    MARKER.repeat(2000)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of every file next to the database.
fn files_contain(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && contains(&std::fs::read(&p).unwrap(), needle) {
            hits.push(p.display().to_string());
        }
    }
    hits
}

fn erasure(leaf: u64, tombstone: u64) -> ErasureRow {
    ErasureRow {
        leaf_index: leaf,
        tombstone_leaf: tombstone,
        reason_sha256: [7; 32],
        reason: "subject access request".into(),
        basis: "request".into(),
        erased_at_ms: 1_700_000_000_000,
        erased_by: "admin".into(),
    }
}

/// Appends `tombstones` and erases with them, as the sequencer does.
fn erase(
    store: &SqliteStore,
    tiles: &mut TileBuilder,
    tombstones: &[evault_store::EvidenceRow],
    erasures: &[ErasureRow],
) -> evault_store::Result<()> {
    let mut next = tiles.clone();
    let leaves: Vec<Hash> = tombstones.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let touched = next.append(&leaves);
    store.compliance().unwrap().erase(
        &AppendBatch::new(tiles.size(), tombstones, &touched),
        erasures,
    )?;
    *tiles = next;
    Ok(())
}

#[test]
fn erase_removes_the_bytes_with_the_tombstone_in_one_transaction() {
    let (dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let mut rows: Vec<_> = (0..4).map(row).collect();
    rows[2].payload = Payload::Inline(marked_payload());
    append_rows(&store, &mut tiles, &rows);
    assert!(!files_contain(dir.path(), MARKER).is_empty());

    // The erasure's semantics are the driver conformance suite's
    // (`evault_store::testing::erasure_keeps_the_leaf_and_drops_the_payload`);
    // here, what only a file-based store can show: the bytes leave every
    // file.
    let c = store.compliance().unwrap();
    erase(&store, &mut tiles, &[row(4)], &[erasure(2, 4)]).unwrap();
    let reclaimed = c.reclaim(Duration::from_secs(10)).unwrap();
    assert!(reclaimed.wal_truncated);
    assert_eq!(
        reclaimed.free_pages, 0,
        "a new database vacuums incrementally"
    );
    assert_eq!(files_contain(dir.path(), MARKER), Vec::<String>::new());
    drop(store);
    assert_eq!(files_contain(dir.path(), MARKER), Vec::<String>::new());
    // Reopened (and read-only): still erased.
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(
        ro.record_by_index(2).unwrap().unwrap().payload,
        Payload::Erased { tombstone_leaf: 4 }
    );
}

#[test]
fn compact_vacuums_an_old_database() {
    let (dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    append_rows(&store, &mut tiles, &(0..8).map(row).collect::<Vec<_>>());
    drop(store);
    // Simulate a database made before incremental auto-vacuum.
    {
        let conn = SqliteStore::raw_connection(&path).unwrap();
        conn.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
    }
    let (before, after) = SqliteStore::compact(&path).unwrap();
    assert!(before > 0 && after > 0);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2);
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 8);
    drop(dir);
}

/// Sharers are found through the follower's digest index, one
/// primary-key search per run (what they are found as is the driver
/// suite's `records_by_sha256_skips_inline_bytes`).
#[test]
fn records_by_sha256_uses_an_index() {
    let (_dir, path, store) = fresh();
    let mut tiles = TileBuilder::new();
    append_rows(&store, &mut tiles, &(0..4).map(row).collect::<Vec<_>>());
    assert_eq!(store.index_evidence(3, 100).unwrap(), 3);
    drop(store);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    // One primary-key search per run (index database version 2).
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT leaf_index FROM records_by_sha256 WHERE sha256 = x'00'")
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|p| p.contains("USING PRIMARY KEY (run=? AND level=? AND sha256=?)")),
        "{plan:?}"
    );
}
