//! Cosignatures: the `cosignatures` table.

use rusqlite::Connection;

use super::error::DbResult;
use super::query;
use super::rows::{col_i64, col_text, to_i64, to_u64};
use crate::{Cosignature, LogId, Result};

pub(super) fn put(conn: &Connection, log: LogId, size: u64, cosigs: &[Cosignature]) -> Result<()> {
    let size = to_i64(size, "cosignature tree_size")?;
    let tx = conn.unchecked_transaction().db()?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO cosignatures \
                 (log, tree_size, witness, key, line, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .db()?;
        for c in cosigs {
            insert
                .execute(rusqlite::params![
                    log.as_str(),
                    size,
                    c.witness,
                    c.key,
                    c.line,
                    c.received_ms
                ])
                .db()?;
        }
    }
    tx.commit().db()
}

pub(super) fn at(conn: &Connection, log: LogId, size: u64) -> Result<Vec<Cosignature>> {
    let size = to_i64(size, "cosignature tree_size")?;
    query::all(
        conn,
        "SELECT witness, key, line, received_ms FROM cosignatures \
         WHERE log = ?1 AND tree_size = ?2 ORDER BY witness, key",
        rusqlite::params![log.as_str(), size],
        |row| {
            Ok(Cosignature {
                witness: col_text(row, 0, "cosignature witness")?,
                key: col_text(row, 1, "cosignature key")?,
                line: col_text(row, 2, "cosignature line")?,
                received_ms: col_i64(row, 3, "cosignature received_ms")?,
            })
        },
    )
}

pub(super) fn witnessed_size(
    conn: &Connection,
    log: LogId,
    threshold: usize,
    witnesses: &[String],
) -> Result<Option<u64>> {
    if threshold == 0 || witnesses.is_empty() {
        return Ok(None);
    }
    let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
    // The configured names as a JSON array, so one statement serves any
    // number of them.
    let names = serde_json::to_string(witnesses).unwrap_or_else(|_| "[]".into());
    let sizes = query::all(
        conn,
        "SELECT tree_size FROM cosignatures WHERE log = ?1 \
         AND witness IN (SELECT value FROM json_each(?3)) GROUP BY tree_size \
         HAVING COUNT(DISTINCT witness) >= ?2 ORDER BY tree_size DESC LIMIT 1",
        rusqlite::params![log.as_str(), threshold, names],
        |row| {
            to_u64(
                col_i64(row, 0, "cosignature tree_size")?,
                "cosignature tree_size",
            )
        },
    )?;
    Ok(sizes.into_iter().next())
}
