//! Counts for the dashboard's charts, by `GROUP BY` over the time indexes
//! (`records_ingested_at`, `audit_events_time`, named with `INDEXED BY` so
//! an owner filter never makes SQLite scan all of that owner's records
//! instead): the work grows with the rows in the window, which the vault
//! bounds (at most 1000 buckets; audit windows of at most 31 days).

use rusqlite::Connection;

use super::error::{DbResult, invalid};
use super::query::Filter;
use super::rows::{col_i64, col_text, to_u64};
use crate::{EvidenceStats, Result, StatsQuery};

pub(super) fn evidence(conn: &Connection, query: &StatsQuery) -> Result<EvidenceStats> {
    if query.bucket_ms < 1 {
        return Err(invalid("stats bucket must be at least 1 ms".to_string()));
    }
    let mut filter = Filter::default();
    filter.window("ingested_at_ms", Some(query.since_ms), Some(query.until_ms));
    filter.equals("ingested_by", query.ingested_by.as_ref());
    // One read transaction: buckets and types count the same records.
    let tx = conn.unchecked_transaction().db()?;
    let mut out = EvidenceStats::default();
    {
        // Integer division rounds toward zero; times before 1970 are not
        // stored (the vault stamps records itself).
        let sql = format!(
            "SELECT (ingested_at_ms / ?) * ? AS b, count(*) FROM records \
             INDEXED BY records_ingested_at WHERE 1{} GROUP BY b ORDER BY b",
            filter.sql
        );
        let mut params = vec![
            rusqlite::types::Value::Integer(query.bucket_ms),
            rusqlite::types::Value::Integer(query.bucket_ms),
        ];
        params.extend(filter.params.iter().cloned());
        let mut stmt = tx.prepare_cached(&sql).db()?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).db()?;
        while let Some(row) = rows.next().db()? {
            let start = col_i64(row, 0, "stats bucket")?;
            let count = to_u64(col_i64(row, 1, "stats bucket count")?, "stats bucket count")?;
            out.total += count;
            out.buckets.push((start, count));
        }
    }
    {
        let sql = format!(
            "SELECT content_type, count(*) AS n FROM records INDEXED BY records_ingested_at \
             WHERE 1{} GROUP BY content_type ORDER BY n DESC, content_type LIMIT ?",
            filter.sql
        );
        let mut params = filter.params.clone();
        params.push(rusqlite::types::Value::Integer(i64::from(
            query.top_content_types,
        )));
        let mut stmt = tx.prepare_cached(&sql).db()?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).db()?;
        while let Some(row) = rows.next().db()? {
            let content_type = col_text(row, 0, "stats content type")?;
            let count = to_u64(col_i64(row, 1, "stats type count")?, "stats type count")?;
            out.content_types.push((content_type, count));
        }
    }
    Ok(out)
}

pub(super) fn audit_outcomes(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    principal: Option<&str>,
) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT outcome, count(*) FROM audit_events INDEXED BY audit_events_time \
             WHERE time_ms >= ?1 AND time_ms < ?2 \
             AND (?3 IS NULL OR principal = ?3) GROUP BY outcome ORDER BY outcome",
        )
        .db()?;
    let mut rows = stmt
        .query(rusqlite::params![since_ms, until_ms, principal])
        .db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        let outcome = col_text(row, 0, "audit outcome")?;
        let count = to_u64(
            col_i64(row, 1, "audit outcome count")?,
            "audit outcome count",
        )?;
        out.push((outcome, count));
    }
    Ok(out)
}
