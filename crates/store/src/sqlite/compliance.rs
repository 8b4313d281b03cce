//! Erasure, legal holds and retention: the `erasures`, `legal_holds` and
//! `retention_policies` tables, and giving erased bytes' pages back.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::error::{DbResult, corrupt, invalid, violated_key};
use super::query;
use super::records;
use super::rows::{col_hash, col_i64, col_opt_text, col_text, to_i64, to_u64};
use super::{BatchInner, SqliteStore, append_in};
use crate::{
    AppendBatch, ComplianceStore, ErasureRow, EvidenceRow, HoldRow, Reclaimed, Result,
    RetentionRow, Selector, StoreError,
};

const ERASURE_COLUMNS: &str =
    "leaf_index, tombstone_leaf, reason_sha256, reason, basis, erased_at_ms, erased_by";
const HOLD_COLUMNS: &str = "id, selector, reason_sha256, reason, created_at_ms, created_by, \
     released_at_ms, released_by";
const RETENTION_COLUMNS: &str = "id, name, selector, keep_for_ms, created_at_ms, created_by";

fn decode_erasure(row: &Row<'_>) -> Result<ErasureRow> {
    let leaf_index = to_u64(col_i64(row, 0, "erasure leaf_index")?, "erasure leaf_index")?;
    let at = |what: &str| format!("{what} of the erasure of record {leaf_index}");
    Ok(ErasureRow {
        leaf_index,
        tombstone_leaf: to_u64(col_i64(row, 1, &at("tombstone_leaf"))?, "tombstone_leaf")?,
        reason_sha256: col_hash(row, 2, &at("reason_sha256"))?,
        reason: col_text(row, 3, &at("reason"))?,
        basis: col_text(row, 4, &at("basis"))?,
        erased_at_ms: col_i64(row, 5, &at("erased_at_ms"))?,
        erased_by: col_text(row, 6, &at("erased_by"))?,
    })
}

fn decode_selector(text: &str, of: &str) -> Result<Selector> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("selector of {of}: {e}")))
}

fn encode_selector(selector: &Selector) -> Result<String> {
    serde_json::to_string(selector).map_err(|e| invalid(format!("selector: {e}")))
}

fn decode_hold(row: &Row<'_>) -> Result<HoldRow> {
    let id = col_text(row, 0, "hold id")?;
    let at = |what: &str| format!("{what} of hold {id}");
    let released_at = match row.get_ref(6).db()? {
        rusqlite::types::ValueRef::Null => None,
        _ => Some(col_i64(row, 6, &at("released_at_ms"))?),
    };
    let released_by = col_opt_text(row, 7, &at("released_by"))?;
    let released = match (released_at, released_by) {
        (Some(t), Some(by)) => Some((t, by)),
        (None, None) => None,
        _ => return Err(corrupt(at("release fields are half set"))),
    };
    Ok(HoldRow {
        selector: decode_selector(&col_text(row, 1, &at("selector"))?, &at("hold"))?,
        reason_sha256: col_hash(row, 2, &at("reason_sha256"))?,
        reason: col_text(row, 3, &at("reason"))?,
        created_at_ms: col_i64(row, 4, &at("created_at_ms"))?,
        created_by: col_text(row, 5, &at("created_by"))?,
        released,
        id,
    })
}

fn decode_retention(row: &Row<'_>) -> Result<RetentionRow> {
    let id = col_text(row, 0, "retention policy id")?;
    let at = |what: &str| format!("{what} of retention policy {id}");
    Ok(RetentionRow {
        name: col_text(row, 1, &at("name"))?,
        selector: decode_selector(&col_text(row, 2, &at("selector"))?, &at("policy"))?,
        keep_for_ms: col_i64(row, 3, &at("keep_for_ms"))?,
        created_at_ms: col_i64(row, 4, &at("created_at_ms"))?,
        created_by: col_text(row, 5, &at("created_by"))?,
        id,
    })
}

/// `records::RECORD_COLUMNS`, with an inline payload read as an empty blob.
const SHARER_COLUMNS: &str = "leaf_index, id, content_type, sha256, size, ingested_at_ms, \
     ingested_by, idempotency_key, dedup_key, leaf_data, \
     CASE WHEN payload IS NULL THEN NULL ELSE x'' END, labels, erased_tombstone";

/// Fails with [`StoreError::Held`] if an active hold covers a record
/// `erasures` names (read inside the erase transaction).
fn held_in(tx: &Connection, erasures: &[ErasureRow]) -> Result<()> {
    let holds = query::all(
        tx,
        &format!("SELECT {HOLD_COLUMNS} FROM legal_holds WHERE released_at_ms IS NULL"),
        [],
        decode_hold,
    )?;
    if holds.is_empty() {
        return Ok(());
    }
    for e in erasures {
        let index = to_i64(e.leaf_index, "leaf index")?;
        let row = query::first(
            tx,
            &format!("SELECT {SHARER_COLUMNS} FROM records WHERE leaf_index = ?1"),
            [index],
            records::decode,
        )?;
        let Some(row) = row else { continue };
        if let Some(h) = holds.iter().find(|h| h.selector.matches(&row)) {
            return Err(StoreError::Held {
                hold: h.id.clone(),
                leaf_index: e.leaf_index,
            });
        }
    }
    Ok(())
}

/// Erases one record's payload inside the erase transaction.
fn erase_one(tx: &Connection, e: &ErasureRow, first: u64, end: u64) -> Result<()> {
    if !(first..end).contains(&e.tombstone_leaf) {
        return Err(invalid(format!(
            "the tombstone of record {} (leaf {}) is not in the batch",
            e.leaf_index, e.tombstone_leaf
        )));
    }
    let index = to_i64(e.leaf_index, "leaf index")?;
    let tombstone = to_i64(e.tombstone_leaf, "tombstone leaf")?;
    // The erased record must exist below the batch and not be erased yet.
    let changed = tx
        .prepare_cached(
            "UPDATE records SET payload = NULL, erased_tombstone = ?2 \
             WHERE leaf_index = ?1 AND leaf_index < ?3 AND erased_tombstone IS NULL",
        )
        .db()?
        .execute(rusqlite::params![index, tombstone, to_i64(first, "size")?])
        .db()?;
    if changed != 1 {
        return Err(invalid(format!(
            "record {} does not exist or is erased already",
            e.leaf_index
        )));
    }
    // Analytics rows are copies of part of the payload: they go with it.
    tx.prepare_cached("DELETE FROM analytics_metrics WHERE leaf_index = ?1")
        .db()?
        .execute([index])
        .db()?;
    tx.prepare_cached("DELETE FROM analytics_events WHERE leaf_index = ?1")
        .db()?
        .execute([index])
        .db()?;
    tx.prepare_cached(&format!(
        "INSERT INTO erasures ({ERASURE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .db()?
    .execute(rusqlite::params![
        index,
        tombstone,
        e.reason_sha256.as_slice(),
        e.reason,
        e.basis,
        e.erased_at_ms,
        e.erased_by,
    ])
    .map_err(|err| match violated_key(&err) {
        Some(_) => StoreError::Duplicate(format!("erasure of record {}", e.leaf_index)),
        None => StoreError::Backend(Box::new(err)),
    })?;
    Ok(())
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: whether it completed (no reader held
/// back part of the log).
fn checkpoint_truncate(conn: &Connection) -> Result<bool> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .db()?;
    Ok(busy == 0)
}

impl ComplianceStore for SqliteStore {
    fn erase(&self, batch: &AppendBatch<'_>, erasures: &[ErasureRow]) -> Result<()> {
        let inner = BatchInner::of(batch);
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        append_in(&tx, batch, &inner)?;
        let end = batch.old_size + batch.records.len() as u64;
        // Holds are written outside the sequencer: checked again here,
        // under the writer lock, so a hold placed after the vault planned
        // the erasure still stops it (and nothing is written).
        held_in(&tx, erasures)?;
        for e in erasures {
            erase_one(&tx, e, batch.old_size, end)?;
        }
        tx.commit().db()?;
        // Still under the writer lock: see `tail.rs`.
        self.tail().committed(batch.records);
        Ok(())
    }

    fn erasure(&self, leaf_index: u64) -> Result<Option<ErasureRow>> {
        let Ok(index) = i64::try_from(leaf_index) else {
            return Ok(None);
        };
        query::first(
            &self.readers.get(),
            &format!("SELECT {ERASURE_COLUMNS} FROM erasures WHERE leaf_index = ?1"),
            [index],
            decode_erasure,
        )
    }

    fn list_erasures(&self, after: Option<u64>, limit: u32) -> Result<Vec<ErasureRow>> {
        let after = after.map_or(Ok(-1), i64::try_from).unwrap_or(i64::MAX);
        query::all(
            &self.readers.get(),
            &format!(
                "SELECT {ERASURE_COLUMNS} FROM erasures WHERE leaf_index > ?1 \
                 ORDER BY leaf_index LIMIT ?2"
            ),
            rusqlite::params![after, i64::from(limit.clamp(1, query::MAX_PAGE))],
            decode_erasure,
        )
    }

    fn records_by_sha256(&self, sha256: &[u8; 32]) -> Result<Vec<EvidenceRow>> {
        // Exact while the follower lags: its index below the cursor, the
        // records themselves at or past it, in one statement (one
        // snapshot). Inline bytes are not read: an empty blob stands for
        // them, enough to tell inline from external.
        query::all(
            &self.readers.get(),
            &format!(
                "SELECT {SHARER_COLUMNS} FROM records WHERE leaf_index IN \
                   (SELECT x.leaf_index FROM records_by_sha256 x, index_state s \
                    WHERE x.sha256 = ?1 AND s.id = 0 AND x.leaf_index < s.evidence_through) \
                 UNION ALL \
                 SELECT {SHARER_COLUMNS} FROM records WHERE leaf_index >= \
                   (SELECT evidence_through FROM index_state WHERE id = 0) AND sha256 = ?1 \
                 ORDER BY leaf_index"
            ),
            [sha256.as_slice()],
            records::decode,
        )
    }

    fn unerased(&self, query: &crate::ListQuery) -> Result<crate::Page<EvidenceRow>> {
        records::list_where(
            &self.readers.get(),
            query,
            "r.leaf_index, r.id, r.content_type, r.sha256, r.size, r.ingested_at_ms, \
             r.ingested_by, r.idempotency_key, r.dedup_key, r.leaf_data, \
             CASE WHEN r.payload IS NULL THEN NULL ELSE x'' END, r.labels, r.erased_tombstone",
            " AND r.erased_tombstone IS NULL",
        )
    }

    fn reclaim(&self, deadline: Duration) -> Result<Reclaimed> {
        // Moves free pages (zeroed by secure_delete) to the end and cuts
        // them off; a no-op on a database without auto_vacuum. Each step
        // frees one page: run it to the end.
        let free = {
            let conn = self.writer();
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum").db()?;
            let mut rows = stmt.query([]).db()?;
            while rows.next().db()?.is_some() {}
            drop(rows);
            drop(stmt);
            let free: i64 = conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))
                .db()?;
            free
        };
        // The truncation waits for readers; puts must not wait with it.
        // Each attempt holds the writer only for one checkpoint that does
        // not wait (busy timeout 0), and the writer is free in between.
        let until = Instant::now() + deadline;
        let mut pause = Duration::from_millis(1);
        let wal_truncated = loop {
            let done = {
                let conn = self.writer();
                conn.busy_timeout(Duration::ZERO).db()?;
                let r = checkpoint_truncate(&conn);
                conn.busy_timeout(super::BUSY_TIMEOUT).db()?;
                // SQLITE_BUSY from a checkpoint that cannot start: try again.
                r.unwrap_or(false)
            };
            if done {
                break true;
            }
            if Instant::now() >= until {
                break false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        Ok(Reclaimed {
            wal_truncated,
            free_pages: to_u64(free, "freelist_count")?,
        })
    }

    fn put_hold(&self, hold: &HoldRow) -> Result<()> {
        let (released_at, released_by) = match &hold.released {
            Some((t, by)) => (Some(*t), Some(by.as_str())),
            None => (None, None),
        };
        self.writer()
            .execute(
                &format!(
                    "INSERT INTO legal_holds ({HOLD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                rusqlite::params![
                    hold.id,
                    encode_selector(&hold.selector)?,
                    hold.reason_sha256.as_slice(),
                    hold.reason,
                    hold.created_at_ms,
                    hold.created_by,
                    released_at,
                    released_by,
                ],
            )
            .map_err(|e| match violated_key(&e) {
                Some(_) => StoreError::Duplicate(format!("hold {}", hold.id)),
                None => StoreError::Backend(Box::new(e)),
            })?;
        Ok(())
    }

    fn list_holds(&self) -> Result<Vec<HoldRow>> {
        query::all(
            &self.readers.get(),
            &format!("SELECT {HOLD_COLUMNS} FROM legal_holds ORDER BY created_at_ms, id"),
            [],
            decode_hold,
        )
    }

    fn release_hold(&self, id: &str, at_ms: i64, by: &str) -> Result<bool> {
        let n = self
            .writer()
            .execute(
                "UPDATE legal_holds SET released_at_ms = ?2, released_by = ?3 \
                 WHERE id = ?1 AND released_at_ms IS NULL",
                rusqlite::params![id, at_ms, by],
            )
            .db()?;
        Ok(n == 1)
    }

    fn put_retention(&self, policy: &RetentionRow) -> Result<()> {
        self.writer()
            .execute(
                &format!(
                    "INSERT INTO retention_policies ({RETENTION_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                rusqlite::params![
                    policy.id,
                    policy.name,
                    encode_selector(&policy.selector)?,
                    policy.keep_for_ms,
                    policy.created_at_ms,
                    policy.created_by,
                ],
            )
            .map_err(|e| match violated_key(&e) {
                Some(_) => StoreError::Duplicate(format!("retention policy {}", policy.id)),
                None => StoreError::Backend(Box::new(e)),
            })?;
        Ok(())
    }

    fn list_retention(&self) -> Result<Vec<RetentionRow>> {
        query::all(
            &self.readers.get(),
            &format!(
                "SELECT {RETENTION_COLUMNS} FROM retention_policies ORDER BY created_at_ms, id"
            ),
            [],
            decode_retention,
        )
    }

    fn delete_retention(&self, id: &str) -> Result<bool> {
        let n = self
            .writer()
            .execute("DELETE FROM retention_policies WHERE id = ?1", [id])
            .db()?;
        Ok(n == 1)
    }
}

impl SqliteStore {
    /// Rewrites the database at `path` offline (`VACUUM`), switching it to
    /// `auto_vacuum=INCREMENTAL` on the way: every free page, and with it
    /// every stale copy of erased bytes a database created before erasure
    /// existed may keep, is dropped, and later erasures give their pages
    /// back at once. The vault must not be running on it. Returns the file
    /// size before and after.
    pub fn compact(path: &std::path::Path) -> Result<(u64, u64)> {
        if !path.is_file() {
            return Err(invalid(format!("no database file at {}", path.display())));
        }
        let before = std::fs::metadata(path).map_err(io)?.len();
        // Open (and migrate) it like the vault does, then drop the pool.
        drop(SqliteStore::open(path)?);
        let conn = Connection::open(path).db()?;
        conn.busy_timeout(super::BUSY_TIMEOUT).db()?;
        conn.execute_batch(
            "PRAGMA secure_delete = ON;
             PRAGMA auto_vacuum = INCREMENTAL;
             VACUUM;",
        )
        .db()?;
        if !checkpoint_truncate(&conn)? {
            return Err(invalid(
                "another process holds the database open; stop the vault first",
            ));
        }
        let mode: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .optional()
            .db()?
            .unwrap_or(0);
        drop(conn);
        if mode != 2 {
            return Err(corrupt(format!(
                "{} did not switch to incremental auto-vacuum (mode {mode})",
                path.display()
            )));
        }
        let after = std::fs::metadata(path).map_err(io)?.len();
        Ok((before, after))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}
