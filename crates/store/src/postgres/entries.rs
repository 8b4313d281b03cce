//! Evidence records and audit events on PostgreSQL: decoding rows, and
//! every read of them: by index, id, dedup and idempotency key, leaf data
//! ranges, filtered lists and the whole-log scans of `fsck`.
//!
//! The dedup, idempotency and digest lookups read B-tree indexes written
//! by each commit, so they are exact without an in-memory tail. The label
//! index is the follower's (`index.rs`): a list by label reads it below
//! the follower's cursor and the entries' own labels at or past it, in one
//! statement (one snapshot).

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::labels::encode;
use super::log::{i64_of, size, u64_of};
use super::{cached, pg};
use crate::sqlite::error::{corrupt, invalid};
use crate::{
    AuditQuery, AuditRow, EvidenceRow, ListQuery, LogId, Page, Payload, Result, Scanned,
    UnreadableRow,
};

/// The COPY that appends entries, in the column order `log.rs` writes.
pub(super) const ENTRY_COPY: &str = "COPY entries (leaf_index, id, content_type, sha256, size, \
     ingested_at_ms, ingested_by, idempotency_key, dedup_key, leaf_data, labels, external) \
     FROM STDIN (FORMAT binary)";

/// What [`decode`] reads, from [`ENTRY_FROM`].
pub(super) const ENTRY_COLUMNS: &str = "e.leaf_index, e.id, e.content_type, e.sha256, e.size, \
     e.ingested_at_ms, e.ingested_by, e.idempotency_key, e.dedup_key, e.leaf_data, \
     e.labels::text, e.external, p.data, x.tombstone_leaf";

/// An entry with its payload and erasure, if any.
pub(super) const ENTRY_FROM: &str = "entries e \
     LEFT JOIN payloads p ON p.leaf_index = e.leaf_index \
     LEFT JOIN erased_payloads x ON x.leaf_index = e.leaf_index";

const AUDIT_COLUMNS: &str = "leaf_index, id, time_ms, principal, operation, outcome, leaf_data";

/// Longest page.
pub(super) const MAX_PAGE: u32 = 1000;

fn hash(v: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| corrupt(format!("{what} has {} bytes, expected 32", v.len())))
}

/// Column `i` of `row`, or why it does not decode (`what` names it).
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    (row, i, what): (&'a tokio_postgres::Row, usize, String),
) -> Result<T> {
    row.try_get(i).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Decodes a row of [`ENTRY_COLUMNS`].
pub(super) fn decode(row: &tokio_postgres::Row) -> Result<EvidenceRow> {
    let leaf_index = u64_of(row.try_get(0).map_err(pg)?, "leaf_index")?;
    let at = |what: &str| format!("{what} of record {leaf_index}");
    let get = |i: usize, what: &str| (row, i, at(what));
    let external: bool = row.try_get(11).map_err(pg)?;
    let payload: Option<Vec<u8>> = row.try_get(12).map_err(pg)?;
    let tombstone: Option<i64> = row.try_get(13).map_err(pg)?;
    let payload = match (tombstone, external, payload) {
        (Some(t), _, _) => Payload::Erased {
            tombstone_leaf: u64_of(t, &at("tombstone"))?,
        },
        (None, true, _) => Payload::External,
        (None, false, Some(bytes)) => Payload::Inline(bytes),
        (None, false, None) => return Err(corrupt(format!("{} is missing", at("payload")))),
    };
    let labels: String = col(get(10, "labels"))?;
    Ok(EvidenceRow {
        leaf_index,
        id: col(get(1, "id"))?,
        content_type: col(get(2, "content_type"))?,
        sha256: hash(col(get(3, "sha256"))?, &at("sha256"))?,
        size: u64_of(col(get(4, "size"))?, &at("size"))?,
        labels: crate::sqlite::labels::decode(&labels)
            .and_then(super::labels::decode_map)
            .map_err(|why| corrupt(format!("{why} of record {leaf_index}")))?,
        ingested_at_ms: col(get(5, "ingested_at_ms"))?,
        ingested_by: col(get(6, "ingested_by"))?,
        idempotency_key: col(get(7, "idempotency_key"))?,
        dedup_key: hash(col(get(8, "dedup_key"))?, &at("dedup_key"))?,
        leaf_data: col(get(9, "leaf_data"))?,
        payload,
        analytics: None,
    })
}

/// Decodes a row of the audit columns.
pub(super) fn decode_audit(row: &tokio_postgres::Row) -> Result<AuditRow> {
    let leaf_index = u64_of(row.try_get(0).map_err(pg)?, "audit leaf_index")?;
    let get = |i: usize, what: &str| (row, i, format!("{what} of audit event {leaf_index}"));
    Ok(AuditRow {
        leaf_index,
        id: col(get(1, "id"))?,
        time_ms: col(get(2, "time_ms"))?,
        principal: col(get(3, "principal"))?,
        operation: col(get(4, "operation"))?,
        outcome: col(get(5, "outcome"))?,
        leaf_data: col(get(6, "leaf_data"))?,
    })
}

/// SQL text with numbered parameters, built up term by term.
#[derive(Default)]
pub(super) struct Sql {
    pub text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter; returns its placeholder.
    pub fn param(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// ` AND column = value`, if a value is given.
    pub fn equals(&mut self, column: &str, value: Option<&String>) {
        if let Some(v) = value {
            let p = self.param(v.clone());
            self.text.push_str(&format!(" AND {column} = {p}"));
        }
    }

    /// ` AND since <= column < until`, each bound if given.
    pub fn window(&mut self, column: &str, since: Option<i64>, until: Option<i64>) {
        if let Some(since) = since {
            let p = self.param(since);
            self.text.push_str(&format!(" AND {column} >= {p}"));
        }
        if let Some(until) = until {
            let p = self.param(until);
            self.text.push_str(&format!(" AND {column} < {p}"));
        }
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `after` as a leaf index, or `Err` past any stored leaf (an empty page).
fn cursor(after: Option<u64>) -> std::result::Result<Option<i64>, ()> {
    after.map(i64::try_from).transpose().map_err(|_| ())
}

fn page<T>(items: Vec<T>, limit: u32, index: impl Fn(&T) -> u64) -> Page<T> {
    let next = if items.len() == limit as usize {
        items.last().map(index)
    } else {
        None
    };
    Page { items, next }
}

/// The first record matching `term` (SQL on `e`) in leaf order.
pub(super) async fn one(
    c: &impl GenericClient,
    term: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<EvidenceRow>> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} WHERE {term} ORDER BY e.leaf_index LIMIT 1"
    );
    let row = cached::query_opt(c, &sql, params).await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn by_index(c: &impl GenericClient, leaf: u64) -> Result<Option<EvidenceRow>> {
    let Ok(leaf) = i64::try_from(leaf) else {
        return Ok(None);
    };
    one(c, "e.leaf_index = $1", &[&leaf]).await
}

/// The first stored record holding each of `keys` as dedup key.
pub(super) async fn by_dedup_keys(
    c: &impl GenericClient,
    keys: &[[u8; 32]],
) -> Result<Vec<EvidenceRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    // One index probe (entries_dedup) per key, whatever the planner
    // knows of the table: with `dedup_key = ANY($1) … GROUP BY` a table
    // not analysed yet (a new vault under load) was scanned whole for
    // every batch.
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} WHERE e.leaf_index IN \
         (SELECT m.leaf_index FROM unnest($1::bytea[]) AS k(key) CROSS JOIN LATERAL \
          (SELECT leaf_index FROM entries WHERE dedup_key = k.key ORDER BY leaf_index LIMIT 1) m)"
    );
    let rows = cached::query(c, &sql, &[&keys]).await?;
    rows.iter().map(decode).collect()
}

/// Leaf data of records `[start, end)`, checked to have no gap.
pub(super) async fn leaf_data_range(
    c: &impl GenericClient,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>> {
    if start > end {
        return Err(invalid(format!("leaf range {start}..{end} is reversed")));
    }
    let tree = size(c, LogId::Evidence).await?;
    if end > tree {
        return Err(invalid(format!(
            "leaf range {start}..{end} extends past the tree size {tree}"
        )));
    }
    if start == end {
        return Ok(Vec::new());
    }
    let rows = cached::query(
        c,
        "SELECT leaf_index, leaf_data FROM entries \
             WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index",
        &[&(start as i64), &(end as i64)],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut expected = start;
    for row in &rows {
        let index = u64_of(row.try_get(0).map_err(pg)?, "leaf_index")?;
        if index != expected {
            break;
        }
        out.push(row.try_get(1).map_err(pg)?);
        expected += 1;
    }
    if expected != end {
        return Err(corrupt(format!(
            "record {expected} is missing below tree size {tree}"
        )));
    }
    Ok(out)
}

/// Records matching `query`, in leaf order, one page. Must run in one
/// statement: the follower's cursor and both parts see one snapshot.
pub(super) async fn list(c: &impl GenericClient, query: &ListQuery) -> Result<Page<EvidenceRow>> {
    list_where(c, query, ENTRY_COLUMNS, "").await
}

/// Like [`list`], selecting `columns` (in [`ENTRY_COLUMNS`]' order) and
/// with `extra` (SQL on `e` and `x`, starting with ` AND`) in every part.
pub(super) async fn list_where(
    c: &impl GenericClient,
    query: &ListQuery,
    columns: &str,
    extra: &str,
) -> Result<Page<EvidenceRow>> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let Ok(after) = cursor(query.after_index) else {
        return Ok(page(Vec::new(), limit, |r: &EvidenceRow| r.leaf_index));
    };
    let mut sql = Sql::default();
    let own_terms = |sql: &mut Sql| {
        sql.equals("e.content_type", query.content_type.as_ref());
        sql.equals("e.ingested_by", query.ingested_by.as_ref());
        sql.window("e.ingested_at_ms", query.since_ms, query.until_ms);
        if let Some(after) = after {
            let p = sql.param(after);
            sql.push(&format!(" AND e.leaf_index > {p}"));
        }
        sql.push(extra);
    };
    if query.labels.is_empty() {
        sql.push(&format!("SELECT {columns} FROM {ENTRY_FROM} WHERE true"));
        own_terms(&mut sql);
    } else {
        // Below the cursor the label index drives (its key ends in the
        // leaf, so each label's matches come in leaf order); at or past
        // it, each entry's own labels. Every match of the second part lies
        // after every match of the first.
        let pairs: Vec<(String, String)> = query
            .labels
            .iter()
            .map(|(k, v)| {
                (
                    sql.param(encode(k).into_owned()),
                    sql.param(encode(v).into_owned()),
                )
            })
            .collect();
        let (k0, v0) = &pairs[0];
        sql.push(&format!(
            "(SELECT {columns} FROM record_labels l0 \
             JOIN {ENTRY_FROM} ON e.leaf_index = l0.leaf_index \
             WHERE l0.key = {k0} AND l0.value = {v0} \
             AND l0.leaf_index < (SELECT evidence_through FROM index_state)"
        ));
        for (k, v) in &pairs[1..] {
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM record_labels l WHERE l.key = {k} AND l.value = {v} \
                 AND l.leaf_index = e.leaf_index)"
            ));
        }
        own_terms(&mut sql);
        sql.push(&format!(
            " ORDER BY l0.leaf_index LIMIT {limit}) UNION ALL \
             (SELECT {columns} FROM {ENTRY_FROM} \
             WHERE e.leaf_index >= (SELECT evidence_through FROM index_state)"
        ));
        for (k, v) in &pairs {
            sql.push(&format!(
                " AND e.labels @> jsonb_build_object({k}::text, {v}::text)"
            ));
        }
        own_terms(&mut sql);
        sql.push(&format!(" ORDER BY e.leaf_index LIMIT {limit})"));
        sql.text = format!("SELECT * FROM ({}) u", sql.text);
    }
    sql.push(&format!(" ORDER BY 1 LIMIT {limit}"));
    let rows = c.query(&sql.text, &sql.params()).await.map_err(pg)?;
    let items = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, |r| r.leaf_index))
}

/// `log`'s rows with leaf index in `[start, end)`, decoded or why not.
pub(super) async fn scan<T>(
    c: &impl GenericClient,
    sql: &str,
    start: u64,
    end: u64,
    decode: fn(&tokio_postgres::Row) -> Result<T>,
) -> Result<Vec<Scanned<T>>> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let rows = cached::query(c, sql, &[&clamp(start), &clamp(end)]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(decode(row).map_err(|e| UnreadableRow {
            leaf_index: row.try_get::<_, i64>(0).unwrap_or(0).max(0) as u64,
            why: e.to_string(),
        }));
    }
    Ok(out)
}

pub(super) fn scan_records_sql() -> String {
    format!(
        "SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} \
         WHERE e.leaf_index >= $1 AND e.leaf_index < $2 ORDER BY e.leaf_index"
    )
}

pub(super) fn scan_audit_sql() -> String {
    format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_events \
         WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index"
    )
}

/// The audit event matching `term`, if any.
pub(super) async fn audit_one(
    c: &impl GenericClient,
    term: &str,
    param: &(dyn ToSql + Sync),
) -> Result<Option<AuditRow>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE {term}");
    let row = cached::query_opt(c, &sql, &[param]).await?;
    row.as_ref().map(decode_audit).transpose()
}

/// Audit events matching `query`, in leaf order, one page.
pub(super) async fn list_audit(
    c: &impl GenericClient,
    query: &AuditQuery,
) -> Result<Page<AuditRow>> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let Ok(after) = cursor(query.after_index) else {
        return Ok(page(Vec::new(), limit, |r: &AuditRow| r.leaf_index));
    };
    let mut sql = Sql::new(format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE true"
    ));
    if let Some(after) = after {
        let p = sql.param(after);
        sql.push(&format!(" AND leaf_index > {p}"));
    }
    sql.equals("principal", query.principal.as_ref());
    sql.equals("operation", query.operation.as_ref());
    sql.equals("outcome", query.outcome.as_ref());
    // The outcome index is partial; the planner uses it only if the query
    // states its predicate.
    if query.outcome.as_deref().is_some_and(|o| o != "success") {
        sql.push(" AND outcome <> 'success'");
    }
    sql.window("time_ms", query.since_ms, query.until_ms);
    sql.push(&format!(" ORDER BY leaf_index LIMIT {limit}"));
    let rows = c.query(&sql.text, &sql.params()).await.map_err(pg)?;
    let items = rows.iter().map(decode_audit).collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, |r| r.leaf_index))
}

/// How many leaf rows `log` stores, and the largest leaf index.
pub(super) async fn leaf_rows(c: &impl GenericClient, log: LogId) -> Result<(u64, Option<u64>)> {
    let sql = match log {
        LogId::Evidence => "SELECT count(*), max(leaf_index) FROM entries",
        LogId::Audit => "SELECT count(*), max(leaf_index) FROM audit_events",
    };
    let row = c.query_one(sql, &[]).await.map_err(pg)?;
    let max: Option<i64> = row.try_get(1).map_err(pg)?;
    Ok((
        u64_of(row.try_get(0).map_err(pg)?, "row count")?,
        max.map(|m| u64_of(m, "largest leaf index")).transpose()?,
    ))
}

/// `i64` of a leaf bound that may lie past any stored leaf.
pub(super) fn bound(v: u64) -> i64 {
    i64_of(v, "leaf index").unwrap_or(i64::MAX)
}
