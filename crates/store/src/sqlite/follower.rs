//! The index follower's side of the store (schemas 9 to 11): the label
//! index (`record_labels`), the payload-digest index (`records_by_sha256`)
//! and the unique keys' indexes (`records_by_dedup`,
//! `records_by_idempotency`) are keyed by values that land on random
//! B-tree pages, so they are not written by a batch's commit but by
//! [`index_evidence`], behind the log, in large batches sorted by key, into
//! the index database (`index_db.rs`). `index_state.evidence_through` is its
//! durable cursor: the indexes hold exactly the records below it, and it
//! moves in the transaction that writes their rows, so a crash between
//! two batches loses nothing and indexes nothing twice.
//!
//! Readers stay exact: below the cursor they use the index, at or past it
//! they read the records themselves (`records::list_where`,
//! `compliance::records_by_sha256`, in one read transaction with the
//! cursor) or, for the unique keys, the store's in-memory tail
//! (`tail.rs`).

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use super::error::{DbResult, corrupt};
use super::log_state::read_size;
use super::rows::{to_i64, to_u64};
use crate::{LogId, Result};

/// The most records a store opens with unindexed; [`catch_up`] indexes the
/// rest first. The store keeps the keys of every unindexed record in
/// memory (`tail.rs`, some 150 bytes each), which the running vault bounds
/// by holding commits while its follower lags by more than this many
/// records (the vault's `indexer::MAX_LAG`); a start after the index
/// database was lost, or after a follower that failed for long, would
/// otherwise load every record's keys (1.5 GB at 10,000,000).
pub(super) const OPEN_LAG: u64 = 65_536;

/// Records per transaction of [`catch_up`]: larger than the follower's
/// batches, as nothing waits on these.
const CATCH_UP_BATCH: u64 = 65_536;

/// How often [`catch_up`] reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Each follower index's rows for the records in `[?1, ?2)`, sorted by
/// key, so each B-tree page is visited once per batch. A record whose
/// labels are not a JSON object of strings (only a corrupted row) gets no
/// label entry: fsck names it, the follower goes on.
///
/// `OR IGNORE`, so SQLite keeps no statement journal: a multi-row
/// statement that may abort halfway saves the old image of every page it
/// dirties (`temp_store`), a batch's worth of random index pages (some
/// 60 MiB per batch at 2,000,000 records, which fragmented the heap to
/// 350 MiB resident). Nothing is lost by ignoring: each table's key is
/// the whole row, so a row already there is this row, and the source
/// columns carry the same NOT NULL and CHECK constraints in `records`.
const INDEX_ROWS: [&str; 4] = [
    "INSERT OR IGNORE INTO record_labels (key, value, leaf_index) \
     SELECT j.key, j.value, r.leaf_index FROM records r, \
       json_each(CASE WHEN json_valid(r.labels) THEN r.labels ELSE '{}' END) j \
     WHERE r.leaf_index >= ?1 AND r.leaf_index < ?2 AND j.type = 'text' \
     ORDER BY 1, 2, 3",
    "INSERT OR IGNORE INTO records_by_sha256 (sha256, leaf_index) \
     SELECT sha256, leaf_index FROM records \
     WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY 1, 2",
    "INSERT OR IGNORE INTO records_by_dedup (dedup_key, leaf_index) \
     SELECT dedup_key, leaf_index FROM records \
     WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY 1, 2",
    "INSERT OR IGNORE INTO records_by_idempotency (ingested_by, idempotency_key, leaf_index) \
     SELECT ingested_by, idempotency_key, leaf_index FROM records \
     WHERE leaf_index >= ?1 AND leaf_index < ?2 AND idempotency_key IS NOT NULL \
     ORDER BY 1, 2, 3",
];

/// The follower's cursor: the first evidence leaf not yet in the
/// follower's indexes.
pub(super) fn indexed_through(conn: &Connection) -> Result<u64> {
    let through: Option<i64> = conn
        .prepare_cached("SELECT evidence_through FROM index_state WHERE id = 0")
        .db()?
        .query_row([], |row| row.get(0))
        .optional()
        .db()?;
    let through = through.ok_or_else(|| corrupt("the index cursor row is missing".to_string()))?;
    to_u64(through, "index cursor")
}

/// Inside a write transaction: indexes the records from the cursor up to
/// `through` (at most the tree size, and at most `max_rows` records) and
/// moves the cursor there. Returns the new cursor.
pub(super) fn index_evidence(tx: &Connection, through: u64, max_rows: u64) -> Result<u64> {
    let from = indexed_through(tx)?;
    let size = read_size(tx, LogId::Evidence)?;
    if from > size {
        return Err(corrupt(format!(
            "the index cursor {from} lies past the evidence tree size {size}"
        )));
    }
    let to = through.min(size).min(from.saturating_add(max_rows.max(1)));
    if to <= from {
        return Ok(from);
    }
    let (lo, hi) = (to_i64(from, "index cursor")?, to_i64(to, "index target")?);
    for sql in INDEX_ROWS {
        tx.prepare_cached(sql).db()?.execute([lo, hi]).db()?;
    }
    tx.prepare_cached("UPDATE index_state SET evidence_through = ?1 WHERE id = 0")
        .db()?
        .execute([hi])
        .db()?;
    Ok(to)
}

/// At open, on the follower's connection: indexes the records past the
/// cursor until at most [`OPEN_LAG`] are left, in transactions of
/// [`CATCH_UP_BATCH`], logging its progress. Each transaction moves the
/// cursor with its rows, so an interrupted catch-up resumes where it
/// stopped.
pub(super) fn catch_up(conn: &mut Connection) -> Result<()> {
    let from = indexed_through(conn)?;
    let size = read_size(conn, LogId::Evidence)?;
    if size.saturating_sub(from) <= OPEN_LAG {
        return Ok(());
    }
    tracing::info!(
        "the index covers {from} of {size} records: indexing {} of the rest before opening",
        size - from - OPEN_LAG
    );
    let started = Instant::now();
    let mut reported = started;
    let mut at = from;
    while size - at > OPEN_LAG {
        let tx = conn.transaction().db()?;
        let reached = index_evidence(&tx, size - OPEN_LAG, CATCH_UP_BATCH)?;
        tx.commit().db()?;
        if reached <= at {
            break;
        }
        at = reached;
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            tracing::info!(
                "indexing: {at} of {size} records ({:.0} records/s)",
                (at - from) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    tracing::info!(
        "indexed {} records in {:.1} s",
        at - from,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
