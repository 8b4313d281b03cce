//! What PostgreSQL answers beyond the log itself: the index follower and
//! its label index, fsck's view of the indexes, and the aggregates of the
//! dashboard (analytics summaries, evidence and audit counts).

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;

use super::entries::{Sql, bound};
use super::labels::{decode, encode};
use super::lease::{self, Fence};
use super::log::{i64_of, size, u64_of};
use super::{cached, pg};
use crate::sqlite::error::{corrupt, invalid};
use crate::{
    AnalyticsGroup, AnalyticsQuery, EvidenceStats, IndexLookup, LabelEntry, LogId, Result, Stats,
    StatsQuery,
};

/// The follower's cursor.
pub(super) async fn indexed_through(c: &impl GenericClient) -> Result<u64> {
    let row = cached::query_opt(
        c,
        "SELECT evidence_through FROM index_state WHERE id = 0",
        &[],
    )
    .await?
    .ok_or_else(|| corrupt("the index follower's cursor row is missing"))?;
    u64_of(row.try_get(0).map_err(pg)?, "index cursor")
}

/// Labels of the records from the cursor on, up to `through` (at most
/// `max_rows` of them, never past the tree size), into the label index,
/// and the cursor moved there, in one transaction.
pub(super) async fn index_evidence(
    client: &mut deadpool_postgres::Object,
    through: u64,
    max_rows: u64,
    fence: &Fence,
) -> Result<u64> {
    let tx = client.transaction().await.map_err(pg)?;
    lease::enter(&tx, fence).await?;
    // The row lock orders two followers (there is one per store).
    let row = cached::query_one(
        &tx,
        "SELECT evidence_through FROM index_state WHERE id = 0 FOR UPDATE",
        &[],
    )
    .await?;
    let cursor = u64_of(row.try_get(0).map_err(pg)?, "index cursor")?;
    let tree = size(&tx, LogId::Evidence).await?;
    let target = through.min(tree).min(cursor.saturating_add(max_rows));
    if target <= cursor {
        return Ok(cursor);
    }
    let (lo, hi) = (i64_of(cursor, "leaf")?, i64_of(target, "leaf")?);
    // An entry already there (written ahead of the cursor, which fsck
    // reports) is not an error here: the follower must get past it.
    tx.execute(
        "INSERT INTO record_labels (key, value, leaf_index) \
         SELECT j.key, j.value, e.leaf_index FROM entries e CROSS JOIN LATERAL \
         jsonb_each_text(CASE WHEN jsonb_typeof(e.labels) = 'object' THEN e.labels \
           ELSE '{}'::jsonb END) j \
         WHERE e.leaf_index >= $1 AND e.leaf_index < $2 \
         ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING",
        &[&lo, &hi],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE index_state SET evidence_through = $1 WHERE id = 0",
        &[&hi],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(target)
}

pub(super) async fn label_index_len(c: &impl GenericClient) -> Result<u64> {
    let row = c
        .query_one("SELECT count(*) FROM record_labels", &[])
        .await
        .map_err(pg)?;
    u64_of(row.try_get(0).map_err(pg)?, "label index length")
}

/// Label index entries after `after`, in (key, value, leaf) order. An
/// entry says its own position, so `position` is empty.
pub(super) async fn label_index_page(
    c: &impl GenericClient,
    after: Option<&LabelEntry>,
    limit: u32,
) -> Result<Vec<LabelEntry>> {
    let limit = i64::from(limit.clamp(1, 10_000));
    let rows = match after {
        None => {
            c.query(
                "SELECT key, value, leaf_index FROM record_labels \
                 ORDER BY key, value, leaf_index LIMIT $1",
                &[&limit],
            )
            .await
        }
        Some(a) => {
            c.query(
                "SELECT key, value, leaf_index FROM record_labels \
                 WHERE (key, value, leaf_index) > ($1, $2, $3) \
                 ORDER BY key, value, leaf_index LIMIT $4",
                &[
                    &encode(&a.key).as_ref(),
                    &encode(&a.value).as_ref(),
                    &bound(a.leaf_index),
                    &limit,
                ],
            )
            .await
        }
    }
    .map_err(pg)?;
    rows.iter()
        .map(|row| {
            let text = |i: usize| -> Result<String> {
                decode(row.try_get(i).map_err(pg)?).map_err(corrupt)
            };
            Ok(LabelEntry {
                key: text(0)?,
                value: text(1)?,
                leaf_index: u64_of(row.try_get(2).map_err(pg)?, "label index leaf")?,
                position: Vec::new(),
            })
        })
        .collect()
}

/// Whether the entry's record exists and carries that label.
pub(super) async fn label_entry_matches(
    c: &impl GenericClient,
    entry: &LabelEntry,
) -> Result<bool> {
    let Ok(leaf) = i64::try_from(entry.leaf_index) else {
        return Ok(false);
    };
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM entries WHERE leaf_index = $1 \
             AND jsonb_typeof(labels) = 'object' AND labels ->> $2::text = $3::text)",
            &[
                &leaf,
                &encode(&entry.key).as_ref(),
                &encode(&entry.value).as_ref(),
            ],
        )
        .await
        .map_err(pg)?;
    row.try_get(0).map_err(pg)
}

const EVIDENCE_LOOKUPS: &str = "
SELECT e.leaf_index,
  (SELECT x.leaf_index FROM entries x WHERE x.id = e.id),
  (SELECT min(x.leaf_index) FROM entries x WHERE x.dedup_key = e.dedup_key),
  e.idempotency_key IS NOT NULL,
  (SELECT min(x.leaf_index) FROM entries x WHERE e.idempotency_key IS NOT NULL
     AND x.idempotency_key IS NOT NULL
     AND x.ingested_by = e.ingested_by AND x.idempotency_key = e.idempotency_key),
  CASE WHEN jsonb_typeof(e.labels) = 'object'
    THEN (SELECT count(*) FROM jsonb_each_text(e.labels)) ELSE -1 END,
  CASE WHEN jsonb_typeof(e.labels) = 'object'
    THEN (SELECT count(*) FROM jsonb_each_text(e.labels) j WHERE EXISTS
      (SELECT 1 FROM record_labels l
         WHERE l.key = j.key AND l.value = j.value AND l.leaf_index = e.leaf_index))
    ELSE -1 END,
  e.leaf_index < (SELECT evidence_through FROM index_state WHERE id = 0)
FROM entries e WHERE e.leaf_index >= $1 AND e.leaf_index < $2 ORDER BY e.leaf_index";

const AUDIT_LOOKUPS: &str = "
SELECT a.leaf_index, (SELECT x.leaf_index FROM audit_events x WHERE x.id = a.id)
FROM audit_events a WHERE a.leaf_index >= $1 AND a.leaf_index < $2 ORDER BY a.leaf_index";

/// For each row of `log` in `[start, end)`, what the indexes answer for
/// its own values. PostgreSQL keeps its B-trees consistent with the table
/// itself, so only the follower's label index can lag or run ahead.
pub(super) async fn index_lookups(
    c: &impl GenericClient,
    log: LogId,
    start: u64,
    end: u64,
) -> Result<Vec<IndexLookup>> {
    let opt = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&bound(start), &bound(end)];
    let mut out = Vec::new();
    match log {
        LogId::Evidence => {
            for row in cached::query(c, EVIDENCE_LOOKUPS, &params).await? {
                let labels: i64 = row.try_get(5).map_err(pg)?;
                let labels_indexed: i64 = row.try_get(6).map_err(pg)?;
                let indexed: bool = row.try_get(7).map_err(pg)?;
                let mut ahead_in = Vec::new();
                if !indexed && labels_indexed > 0 {
                    ahead_in.push("record_labels");
                }
                out.push(IndexLookup {
                    leaf_index: u64_of(row.try_get(0).map_err(pg)?, "leaf_index")?,
                    by_id: opt(row.try_get(1).map_err(pg)?),
                    by_dedup_key: opt(row.try_get(2).map_err(pg)?),
                    has_idempotency_key: row.try_get(3).map_err(pg)?,
                    by_idempotency_key: opt(row.try_get(4).map_err(pg)?),
                    labels: u64::try_from(labels).ok(),
                    labels_indexed: u64::try_from(labels_indexed).ok(),
                    missing_from: Vec::new(),
                    indexed,
                    ahead_in,
                });
            }
        }
        LogId::Audit => {
            for row in cached::query(c, AUDIT_LOOKUPS, &params).await? {
                out.push(IndexLookup {
                    leaf_index: u64_of(row.try_get(0).map_err(pg)?, "leaf_index")?,
                    by_id: opt(row.try_get(1).map_err(pg)?),
                    by_dedup_key: None,
                    has_idempotency_key: false,
                    by_idempotency_key: None,
                    labels: Some(0),
                    labels_indexed: Some(0),
                    missing_from: Vec::new(),
                    indexed: true,
                    ahead_in: Vec::new(),
                });
            }
        }
    }
    Ok(out)
}

/// [`Stats`] from `count, min, max, avg` at `first..first + 4`.
fn decode_stats(row: &tokio_postgres::Row, first: usize, what: &str) -> Result<Option<Stats>> {
    let count = u64_of(row.try_get(first).map_err(pg)?, what)?;
    if count == 0 {
        return Ok(None);
    }
    let num = |i: usize| -> Result<f64> {
        row.try_get::<_, Option<f64>>(first + i)
            .map_err(pg)?
            .ok_or_else(|| corrupt(format!("{what}: aggregate of {count} values is NULL")))
    };
    Ok(Some(Stats {
        count,
        min: num(1)?,
        max: num(2)?,
        mean: num(3)?,
    }))
}

/// Per source and kind, the count, time span and statistics of the
/// analytics events matching `query` (run in one snapshot).
pub(super) async fn analytics_summary(
    c: &impl GenericClient,
    query: &AnalyticsQuery,
) -> Result<Vec<AnalyticsGroup>> {
    let filter = |head: &str, tail: &str| {
        let mut sql = Sql::new(head);
        sql.equals("e.source", query.source.as_ref());
        sql.equals("e.kind", query.kind.as_ref());
        sql.equals("e.ingested_by", query.ingested_by.as_ref());
        sql.window("e.ts_ms", query.since_ms, query.until_ms);
        sql.push(tail);
        sql
    };
    let sql = filter(
        "SELECT e.source, e.kind, count(*), min(e.ts_ms), max(e.ts_ms), \
         count(e.value), min(e.value), max(e.value), avg(e.value), \
         count(e.unit), min(e.unit), max(e.unit) FROM analytics_events e WHERE true",
        " GROUP BY e.source, e.kind ORDER BY e.source, e.kind",
    );
    let mut groups = Vec::new();
    for row in c.query(&sql.text, &sql.params()).await.map_err(pg)? {
        let source: String = row.try_get(0).map_err(pg)?;
        let kind: String = row.try_get(1).map_err(pg)?;
        let what = format!("analytics group {source:?}/{kind:?}");
        let count = u64_of(row.try_get(2).map_err(pg)?, &what)?;
        let units = u64_of(row.try_get(9).map_err(pg)?, &what)?;
        let min_unit: Option<String> = row.try_get(10).map_err(pg)?;
        let max_unit: Option<String> = row.try_get(11).map_err(pg)?;
        // One unit only if every event has one and they agree.
        let unit = min_unit.filter(|u| units == count && max_unit.as_ref() == Some(u));
        groups.push(AnalyticsGroup {
            count,
            first_ms: row.try_get(3).map_err(pg)?,
            last_ms: row.try_get(4).map_err(pg)?,
            value: decode_stats(&row, 5, &what)?,
            unit,
            metrics: BTreeMap::new(),
            source,
            kind,
        });
    }
    if groups.is_empty() {
        return Ok(groups);
    }
    let sql = filter(
        "SELECT e.source, e.kind, m.name, count(*), min(m.value), max(m.value), avg(m.value) \
         FROM analytics_events e JOIN analytics_metrics m ON m.leaf_index = e.leaf_index \
         WHERE true",
        " GROUP BY e.source, e.kind, m.name ORDER BY e.source, e.kind, m.name",
    );
    for row in c.query(&sql.text, &sql.params()).await.map_err(pg)? {
        let source: String = row.try_get(0).map_err(pg)?;
        let kind: String = row.try_get(1).map_err(pg)?;
        let name: String = row.try_get(2).map_err(pg)?;
        let what = format!("metric {name:?} of analytics group {source:?}/{kind:?}");
        // Both queries order by the "C" collation: Rust's string order.
        let group = groups
            .binary_search_by(|g| {
                (g.source.as_str(), g.kind.as_str()).cmp(&(source.as_str(), kind.as_str()))
            })
            .ok()
            .and_then(|i| groups.get_mut(i))
            .ok_or_else(|| corrupt(format!("{what} has no event row")))?;
        if let Some(stats) = decode_stats(&row, 3, &what)? {
            group.metrics.insert(name, stats);
        }
    }
    Ok(groups)
}

/// Record counts per bucket and content type (run in one snapshot).
pub(super) async fn evidence_stats(
    c: &impl GenericClient,
    query: &StatsQuery,
) -> Result<EvidenceStats> {
    if query.bucket_ms < 1 {
        return Err(invalid("stats bucket must be at least 1 ms"));
    }
    let filter = |sql: &mut Sql| {
        sql.window("ingested_at_ms", Some(query.since_ms), Some(query.until_ms));
        sql.equals("ingested_by", query.ingested_by.as_ref());
    };
    let mut out = EvidenceStats::default();
    // Integer division rounds toward zero; the vault stamps no time before
    // 1970.
    let mut sql = Sql::default();
    let b = sql.param(query.bucket_ms);
    sql.push(&format!(
        "SELECT (ingested_at_ms / {b}) * {b} AS b, count(*) FROM entries WHERE true"
    ));
    filter(&mut sql);
    sql.push(" GROUP BY b ORDER BY b");
    for row in c.query(&sql.text, &sql.params()).await.map_err(pg)? {
        let count = u64_of(row.try_get(1).map_err(pg)?, "stats bucket count")?;
        out.total += count;
        out.buckets.push((row.try_get(0).map_err(pg)?, count));
    }
    let mut sql = Sql::new("SELECT content_type, count(*) AS n FROM entries WHERE true");
    filter(&mut sql);
    let p = sql.param(i64::from(query.top_content_types));
    sql.push(&format!(
        " GROUP BY content_type ORDER BY n DESC, content_type LIMIT {p}"
    ));
    for row in c.query(&sql.text, &sql.params()).await.map_err(pg)? {
        let count = u64_of(row.try_get(1).map_err(pg)?, "stats type count")?;
        out.content_types.push((row.try_get(0).map_err(pg)?, count));
    }
    Ok(out)
}

/// Audit events in a window per outcome.
pub(super) async fn audit_outcomes(
    c: &impl GenericClient,
    since_ms: i64,
    until_ms: i64,
    principal: Option<&str>,
) -> Result<Vec<(String, u64)>> {
    let rows = c
        .query(
            "SELECT outcome, count(*) FROM audit_events WHERE time_ms >= $1 AND time_ms < $2 \
             AND ($3::text IS NULL OR principal = $3) GROUP BY outcome ORDER BY outcome",
            &[&since_ms, &until_ms, &principal],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(pg)?,
                u64_of(row.try_get(1).map_err(pg)?, "audit outcome count")?,
            ))
        })
        .collect()
}
