//! Analytics events: the typed copy of an analytics record's fields
//! (`analytics_events`, `analytics_metrics`), written with the record and
//! summarised per source and kind by the database.

use std::collections::BTreeMap;

use rusqlite::{CachedStatement, Connection, Row};

use super::error::{DbResult, corrupt, invalid, violated_key};
use super::query::Filter;
use super::rows::{col_i64, col_opt_f64, col_opt_text, col_text, to_u64};
use crate::{AnalyticsGroup, AnalyticsQuery, AnalyticsRow, Result, Stats, StoreError};

const INSERT_ANALYTICS: &str = "INSERT INTO analytics_events (leaf_index, source, kind, ts_ms, \
     value, unit, ingested_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const INSERT_ANALYTICS_METRIC: &str =
    "INSERT INTO analytics_metrics (leaf_index, name, value) VALUES (?1, ?2, ?3)";

/// The two inserts of an analytics record, prepared in the append's
/// transaction.
pub(super) struct AnalyticsStatements<'c> {
    event: CachedStatement<'c>,
    metric: CachedStatement<'c>,
}

impl<'c> AnalyticsStatements<'c> {
    pub(super) fn prepare(tx: &'c Connection) -> Result<Self> {
        Ok(AnalyticsStatements {
            event: tx.prepare_cached(INSERT_ANALYTICS).db()?,
            metric: tx.prepare_cached(INSERT_ANALYTICS_METRIC).db()?,
        })
    }

    /// Inserts the analytics row of the record at `index` (inserted just
    /// before, in the same transaction) and its metrics.
    pub(super) fn insert(&mut self, index: i64, ingested_by: &str, a: &AnalyticsRow) -> Result<()> {
        let at = || format!("analytics row of leaf index {index}");
        // SQLite stores NaN as NULL and infinities as values no summary can
        // use; the vault never sends them.
        if a.value.is_some_and(|v| !v.is_finite()) {
            return Err(invalid(format!("{}: value is not finite", at())));
        }
        self.event
            .execute(rusqlite::params![
                index,
                a.source,
                a.kind,
                a.timestamp_ms,
                a.value,
                a.unit,
                ingested_by,
            ])
            .map_err(|e| match violated_key(&e).as_deref() {
                Some("analytics_events.leaf_index") => {
                    corrupt(format!("an {} exists beyond the tree size", at()))
                }
                _ => StoreError::Backend(Box::new(e)),
            })?;
        for (name, value) in &a.metrics {
            if !value.is_finite() {
                return Err(invalid(format!("{}: metric {name:?} is not finite", at())));
            }
            self.metric
                .execute(rusqlite::params![index, name, value])
                .map_err(|e| match violated_key(&e).as_deref() {
                    Some(k) if k.starts_with("analytics_metrics.") => {
                        invalid(format!("{}: metric {name:?} given twice", at()))
                    }
                    _ => StoreError::Backend(Box::new(e)),
                })?;
        }
        Ok(())
    }
}

/// [`Stats`] from `count, min, max, avg` at `first..first + 4`; `None`
/// when the count is 0.
fn decode_stats(row: &Row<'_>, first: usize, what: &str) -> Result<Option<Stats>> {
    let count = to_u64(col_i64(row, first, what)?, what)?;
    if count == 0 {
        return Ok(None);
    }
    let num = |i: usize| -> Result<f64> {
        col_opt_f64(row, first + i, what)?
            .ok_or_else(|| corrupt(format!("{what}: aggregate of {count} values is NULL")))
    };
    Ok(Some(Stats {
        count,
        min: num(1)?,
        max: num(2)?,
        mean: num(3)?,
    }))
}

/// The WHERE terms (over `analytics_events e`) and parameters of an
/// analytics query.
fn query_filter(q: &AnalyticsQuery) -> Filter {
    let mut filter = Filter::default();
    filter.equals("e.source", q.source.as_ref());
    filter.equals("e.kind", q.kind.as_ref());
    filter.equals("e.ingested_by", q.ingested_by.as_ref());
    filter.window("e.ts_ms", q.since_ms, q.until_ms);
    filter
}

/// Per source and kind, the count, time span and statistics of the
/// analytics events matching `query`.
pub(super) fn summary(conn: &Connection, query: &AnalyticsQuery) -> Result<Vec<AnalyticsGroup>> {
    let Filter {
        sql: filter,
        params,
    } = query_filter(query);
    // One read transaction: the groups and their metrics see one state.
    let tx = conn.unchecked_transaction().db()?;

    let mut groups: Vec<AnalyticsGroup> = Vec::new();
    {
        let sql = format!(
            "SELECT e.source, e.kind, count(*), min(e.ts_ms), max(e.ts_ms), \
             count(e.value), min(e.value), max(e.value), avg(e.value), \
             count(e.unit), min(e.unit), max(e.unit) \
             FROM analytics_events e WHERE 1{filter} \
             GROUP BY e.source, e.kind ORDER BY e.source, e.kind"
        );
        let mut stmt = tx.prepare_cached(&sql).db()?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).db()?;
        while let Some(row) = rows.next().db()? {
            let source = col_text(row, 0, "analytics source")?;
            let kind = col_text(row, 1, "analytics kind")?;
            let what = format!("analytics group {source:?}/{kind:?}");
            let count = to_u64(col_i64(row, 2, &what)?, &what)?;
            let units = to_u64(col_i64(row, 9, &what)?, &what)?;
            let min_unit = col_opt_text(row, 10, &what)?;
            let max_unit = col_opt_text(row, 11, &what)?;
            // One unit only if every event has one and they agree.
            let unit = min_unit.filter(|u| units == count && max_unit.as_ref() == Some(u));
            groups.push(AnalyticsGroup {
                count,
                first_ms: col_i64(row, 3, &what)?,
                last_ms: col_i64(row, 4, &what)?,
                value: decode_stats(row, 5, &what)?,
                unit,
                metrics: BTreeMap::new(),
                source,
                kind,
            });
        }
    }
    if groups.is_empty() {
        return Ok(groups);
    }

    let sql = format!(
        "SELECT e.source, e.kind, m.name, count(*), min(m.value), max(m.value), \
         avg(m.value) \
         FROM analytics_events e JOIN analytics_metrics m ON m.leaf_index = e.leaf_index \
         WHERE 1{filter} \
         GROUP BY e.source, e.kind, m.name ORDER BY e.source, e.kind, m.name"
    );
    let mut stmt = tx.prepare_cached(&sql).db()?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).db()?;
    while let Some(row) = rows.next().db()? {
        let source = col_text(row, 0, "analytics source")?;
        let kind = col_text(row, 1, "analytics kind")?;
        let name = col_text(row, 2, "analytics metric name")?;
        let what = format!("metric {name:?} of analytics group {source:?}/{kind:?}");
        // Both queries order by BINARY collation, which is Rust's
        // string order.
        let group = groups
            .binary_search_by(|g| {
                (g.source.as_str(), g.kind.as_str()).cmp(&(source.as_str(), kind.as_str()))
            })
            .ok()
            .and_then(|i| groups.get_mut(i))
            .ok_or_else(|| corrupt(format!("{what} has no event row")))?;
        if let Some(stats) = decode_stats(row, 3, &what)? {
            group.metrics.insert(name, stats);
        }
    }
    Ok(groups)
}
