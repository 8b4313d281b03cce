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
use super::upgrade::{MigrationProgress, MigrationStep, OnMigration};
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
    "INSERT OR IGNORE INTO label_runs (run, level, key, value, leaf_index) \
     SELECT ?1, ?3, j.key, j.value, r.leaf_index FROM records r, \
       json_each(CASE WHEN json_valid(r.labels) THEN r.labels ELSE '{}' END) j \
     WHERE r.leaf_index >= ?1 AND r.leaf_index < ?2 AND j.type = 'text' \
     ORDER BY 3, 4, 5",
    "INSERT OR IGNORE INTO sha256_runs (run, level, sha256, leaf_index) \
     SELECT ?1, ?3, sha256, leaf_index FROM records \
     WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY 3, 4",
    "INSERT OR IGNORE INTO dedup_runs (run, level, dedup_key, leaf_index) \
     SELECT ?1, ?3, dedup_key, leaf_index FROM records \
     WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY 3, 4",
    "INSERT OR IGNORE INTO idempotency_runs \
       (run, level, ingested_by, idempotency_key, leaf_index) \
     SELECT ?1, ?3, ingested_by, idempotency_key, leaf_index FROM records \
     WHERE leaf_index >= ?1 AND leaf_index < ?2 AND idempotency_key IS NOT NULL \
     ORDER BY 3, 4, 5",
];

/// How many runs of one level the follower merges into one of the next:
/// the newest [`FANOUT`] runs, when they share a level and hold at most
/// [`MAX_MERGED`] records between them. A merge is one transaction the
/// follower's next batch waits for (merging 1,000,000 records took 6.7 s
/// here, 131,072 about 0.6 s), so the size cap, not the level, bounds it.
/// Under load the follower's batches are 16,384 records and runs stop at
/// level 1 (131,072 each: 77 at 10,000,000); under a light load its
/// batches are small (one per 100 ms), and merging through the levels up
/// to the cap keeps the runs few all the same (each run costs every
/// unique-key lookup a filter probe, and a false "maybe" a search: 685
/// runs at 5,700,000 records, when only level 0 merged, made those the
/// fill's whole cost). A row is written once per level it passes.
pub(super) const FANOUT: usize = 8;

/// The most records a merge writes (see [`FANOUT`]).
const MAX_MERGED: i64 = 524_288;

/// The records of a run of level 0 at most, by size: the follower's
/// batch (16,384) times [`FANOUT`].
const LEVEL_0_RECORDS: u64 = 16_384 * FANOUT as u64;

/// The level of a run of `records` records: by size, not by how it was
/// made, so a large batch (a catch-up at open, a bulk index) is not merged
/// with the small runs after it. Level L holds runs of fewer than
/// `LEVEL_0_RECORDS × FANOUT^L` records.
fn level_for(records: u64) -> i64 {
    let mut level = 0;
    let mut bound = LEVEL_0_RECORDS;
    while records >= bound && level < 62 {
        level += 1;
        bound = bound.saturating_mul(FANOUT as u64);
    }
    level
}

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
    // The batch is a new run at level 0: its key sorts after every row of
    // every table, so each insert appends at the right edge.
    let level = level_for(to - from);
    for sql in INDEX_ROWS {
        tx.prepare_cached(sql).db()?.execute([lo, hi, level]).db()?;
    }
    tx.prepare_cached("INSERT INTO index_runs (run, level, end_leaf) VALUES (?1, ?2, ?3)")
        .db()?
        .execute([lo, level, hi])
        .db()?;
    while merge_newest(tx)? {}
    tx.prepare_cached("UPDATE index_state SET evidence_through = ?1 WHERE id = 0")
        .db()?
        .execute([hi])
        .db()?;
    Ok(to)
}

/// Inside the follower's transaction: if the newest [`FANOUT`] runs share
/// a level and hold at most [`MAX_MERGED`] records, merges them into one
/// run of the next level (or higher, by its size), named by the first leaf
/// of the oldest, and drops them. Returns whether it merged.
///
/// The merged run's rows are written in key order under their new
/// (run, level), the replaced runs' rows deleted (a contiguous range of
/// each table), and `index_runs` changed, all in one transaction: a reader
/// sees the runs before or after, never both.
fn merge_newest(tx: &Connection) -> Result<bool> {
    let newest: Vec<(i64, i64, i64)> = tx
        .prepare_cached("SELECT run, level, end_leaf FROM index_runs ORDER BY run DESC LIMIT ?1")
        .db()?
        .query_map([FANOUT as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    let Some(&(_, level, end)) = newest.first() else {
        return Ok(false);
    };
    if newest.len() < FANOUT || newest.iter().any(|&(_, l, _)| l != level) {
        return Ok(false);
    }
    let first = newest[FANOUT - 1].0;
    if end - first > MAX_MERGED {
        return Ok(false);
    }
    let merged = (level + 1).max(level_for(u64::try_from(end - first).unwrap_or(0)));
    for (_, runs, key) in super::index_db::INDEXES {
        tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {runs} (run, level, {key}) \
             SELECT ?1, ?3, {key} FROM {runs} WHERE run >= ?1 AND level = ?2 ORDER BY {key}"
        ))
        .db()?
        .execute([first, level, merged])
        .db()?;
        tx.prepare_cached(&format!(
            "DELETE FROM {runs} WHERE run >= ?1 AND level = ?2"
        ))
        .db()?
        .execute([first, level])
        .db()?;
    }
    tx.prepare_cached("DELETE FROM index_runs WHERE run >= ?1 AND level = ?2")
        .db()?
        .execute([first, level])
        .db()?;
    tx.prepare_cached("INSERT INTO index_runs (run, level, end_leaf) VALUES (?1, ?2, ?3)")
        .db()?
        .execute([first, merged, end])
        .db()?;
    Ok(true)
}

/// The faults in the runs' layout, in one read transaction: the live runs
/// must tile `[0, cursor)` (each starting where the one before ends), and
/// every entry of every index must lie in a live run and within its
/// leaves (an entry elsewhere is one no lookup or list sees). Reads every
/// entry once.
pub(super) fn layout(conn: &Connection) -> Result<Vec<String>> {
    let tx = conn.unchecked_transaction().db()?;
    let cursor = indexed_through(&tx)?;
    let runs = super::filters::live_runs(&tx)?;
    let mut faults = Vec::new();
    let mut next = 0i64;
    for r in &runs {
        if r.run != next {
            faults.push(format!(
                "the index run at level {} holding leaves {}..{} should start at leaf {next}",
                r.level, r.run, r.end
            ));
        }
        next = next.max(r.end);
    }
    if u64::try_from(next).ok() != Some(cursor) {
        faults.push(format!(
            "the index runs hold leaves up to {next}, but the index cursor is {cursor}"
        ));
    }
    for (_, table, _) in super::index_db::INDEXES {
        let (count, first): (i64, Option<i64>) = tx
            .prepare_cached(&format!(
                "SELECT count(*), min(x.leaf_index) FROM {table} x WHERE NOT EXISTS \
                 (SELECT 1 FROM index_runs ir WHERE ir.run = x.run AND ir.level = x.level \
                    AND x.leaf_index >= ir.run AND x.leaf_index < ir.end_leaf)"
            ))
            .db()?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .db()?;
        if count > 0 {
            faults.push(format!(
                "{count} entries of {table} lie outside the leaves of their run or in no \
                 live run (the first for leaf {})",
                first.unwrap_or(-1)
            ));
        }
    }
    tx.finish().db()?;
    Ok(faults)
}

/// At open, on the follower's connection: indexes the records past the
/// cursor until at most [`OPEN_LAG`] are left, in transactions of
/// [`CATCH_UP_BATCH`], logging its progress. Each transaction moves the
/// cursor with its rows, so an interrupted catch-up resumes where it
/// stopped. `progress` hears of each transaction.
pub(super) fn catch_up(conn: &mut Connection, progress: OnMigration<'_>) -> Result<()> {
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
    let report = |at: u64| {
        progress(MigrationProgress {
            step: MigrationStep::Indexing,
            done: at - from,
            total: size - OPEN_LAG - from,
        })
    };
    report(at);
    while size - at > OPEN_LAG {
        let tx = conn.transaction().db()?;
        let reached = index_evidence(&tx, size - OPEN_LAG, CATCH_UP_BATCH)?;
        tx.commit().db()?;
        if reached <= at {
            break;
        }
        at = reached;
        report(at);
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
