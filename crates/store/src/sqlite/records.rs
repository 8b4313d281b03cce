//! Evidence records: the `records` table. Inserting a batch's records (and
//! their analytics rows), and every way of reading them back: by id, index,
//! dedup key, idempotency key, leaf data ranges and filtered lists. The
//! label index (`record_labels`) is the follower's (`follower.rs`); a list
//! by label reads it below the follower's cursor and the records' own
//! labels at or past it.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Row};

use super::analytics::AnalyticsStatements;
use super::error::{DbResult, corrupt, invalid, violated_key};
use super::filters::LeafRange;
use super::follower;
use super::labels;
use super::log_state::{check_index, read_size};
use super::query::{self, Filter, MAX_PAGE, cursor, empty_page, page};
use super::rows::{col_blob, col_hash, col_i64, col_opt_text, col_text, to_i64, to_u64};
use crate::{EvidenceRow, ListQuery, LogId, Page, Payload, Result, StoreError};

pub(super) const RECORD_COLUMNS: &str = "leaf_index, id, content_type, sha256, size, ingested_at_ms, \
     ingested_by, idempotency_key, dedup_key, leaf_data, payload, labels, erased_tombstone";

const INSERT_RECORD: &str = "INSERT INTO records (leaf_index, id, content_type, sha256, size, \
     ingested_at_ms, ingested_by, idempotency_key, dedup_key, leaf_data, payload, labels) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Inserts a batch's records, with leaf indexes from `old_size` on, and
/// their analytics rows, inside the append's transaction (whose
/// [`check_extend`](super::log_state::check_extend) makes every index fit
/// in i64).
pub(super) fn insert(tx: &Connection, old_size: u64, records: &[EvidenceRow]) -> Result<()> {
    let mut insert_record = tx.prepare_cached(INSERT_RECORD).db()?;
    // Prepared on the first analytics record only: batches without
    // one pay nothing for them.
    let mut insert_analytics: Option<AnalyticsStatements<'_>> = None;
    let mut labels_json = String::with_capacity(256);
    for (expected, rec) in (old_size..).zip(records) {
        check_index(expected, rec.leaf_index)?;
        // Below new_size, which fits in i64.
        let index = expected as i64;
        let payload = match &rec.payload {
            Payload::Inline(bytes) => Some(bytes.as_slice()),
            Payload::External => None,
            // A new leaf is never erased: erasure names an existing one.
            Payload::Erased { .. } => {
                return Err(invalid(format!(
                    "record {} cannot be appended as erased",
                    rec.leaf_index
                )));
            }
        };
        labels::encode(&rec.labels, &mut labels_json).map_err(invalid)?;
        insert_record
            .execute(rusqlite::params![
                index,
                rec.id,
                rec.content_type,
                rec.sha256.as_slice(),
                to_i64(rec.size, "payload size")?,
                rec.ingested_at_ms,
                rec.ingested_by,
                rec.idempotency_key,
                rec.dedup_key.as_slice(),
                rec.leaf_data,
                payload,
                labels_json,
            ])
            .map_err(|e| insert_error(e, rec))?;
        if let Some(analytics) = &rec.analytics {
            if insert_analytics.is_none() {
                insert_analytics = Some(AnalyticsStatements::prepare(tx)?);
            }
            if let Some(stmts) = insert_analytics.as_mut() {
                stmts.insert(index, &rec.ingested_by, analytics)?;
            }
        }
    }
    Ok(())
}

/// Turns a failed record insert into the error the caller can act on.
fn insert_error(e: rusqlite::Error, rec: &EvidenceRow) -> StoreError {
    match violated_key(&e).as_deref() {
        Some("records.id") => StoreError::Duplicate(format!("record id {}", rec.id)),
        Some("records.leaf_index") => corrupt(format!(
            "a record with leaf index {} exists beyond the tree size",
            rec.leaf_index
        )),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Decodes a row of [`RECORD_COLUMNS`].
pub(super) fn decode(row: &Row<'_>) -> Result<EvidenceRow> {
    let leaf_index = to_u64(col_i64(row, 0, "leaf_index")?, "leaf_index")?;
    let at = |what: &str| format!("{what} of record {leaf_index}");
    let erased = match row.get_ref(12).db()? {
        ValueRef::Null => None,
        _ => Some(to_u64(
            col_i64(row, 12, &at("erased_tombstone"))?,
            &at("erased_tombstone"),
        )?),
    };
    let payload = match row.get_ref(10).db()? {
        ValueRef::Null => match erased {
            Some(tombstone_leaf) => Payload::Erased { tombstone_leaf },
            None => Payload::External,
        },
        ValueRef::Blob(b) => Payload::Inline(b.to_vec()),
        other => {
            return Err(corrupt(format!(
                "{} is {}, expected a blob or NULL",
                at("payload"),
                other.data_type()
            )));
        }
    };
    Ok(EvidenceRow {
        leaf_index,
        id: col_text(row, 1, &at("id"))?,
        content_type: col_text(row, 2, &at("content_type"))?,
        sha256: col_hash(row, 3, &at("sha256"))?,
        size: to_u64(col_i64(row, 4, &at("size"))?, &at("size"))?,
        labels: labels::decode(&col_text(row, 11, &at("labels"))?)
            .map_err(|why| corrupt(format!("{why} of record {leaf_index}")))?,
        ingested_at_ms: col_i64(row, 5, &at("ingested_at_ms"))?,
        ingested_by: col_text(row, 6, &at("ingested_by"))?,
        idempotency_key: col_opt_text(row, 7, &at("idempotency_key"))?,
        dedup_key: col_hash(row, 8, &at("dedup_key"))?,
        leaf_data: col_blob(row, 9, &at("leaf_data"))?.to_vec(),
        payload,
        analytics: None,
    })
}

/// The record matching `where_clause`, if any.
fn one(
    conn: &Connection,
    where_clause: &str,
    params: impl rusqlite::Params,
) -> Result<Option<EvidenceRow>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM records WHERE {where_clause}");
    query::first(conn, &sql, params, decode)
}

pub(super) fn by_id(conn: &Connection, id: &str) -> Result<Option<EvidenceRow>> {
    one(conn, "id = ?1", [id])
}

pub(super) fn by_index(conn: &Connection, leaf_index: u64) -> Result<Option<EvidenceRow>> {
    // No record can sit above i64::MAX.
    let Ok(index) = i64::try_from(leaf_index) else {
        return Ok(None);
    };
    one(conn, "leaf_index = ?1", [index])
}

/// The live runs of the follower's index `{table}` overlapping leaves
/// `[?1, ?2)` (runs tile the indexed leaves, so these hold every entry of
/// those leaves, whatever merges happened since a filter named the range).
fn in_ranges(table: &str) -> String {
    // The runs tile the indexed leaves: the first overlapping `[?1, ?2)` is
    // the last starting at or before ?1, so the search seeks there (one
    // index probe) rather than walking every run from leaf 0.
    format!(
        "FROM index_runs ir CROSS JOIN {table} x ON x.run = ir.run AND x.level = ir.level \
         WHERE ir.run >= coalesce((SELECT max(run) FROM index_runs WHERE run <= ?1), 0) \
         AND ir.run < ?2 AND ir.end_leaf > ?1"
    )
}

/// The first indexed record holding `dedup_key`, searched in the leaves
/// `ranges` (those whose runs' filters may hold it): the follower's index
/// only (below its cursor); the store's tail answers for the rest.
pub(super) fn by_dedup_key(
    conn: &Connection,
    dedup_key: &[u8; 32],
    ranges: &[LeafRange],
) -> Result<Option<EvidenceRow>> {
    first_in_ranges(conn, &dedup_leaf_sql(), ranges, &[&dedup_key.as_slice()])
}

/// The first leaf of dedup key ?3 in the runs overlapping `[?1, ?2)`.
pub(super) fn dedup_leaf_sql() -> String {
    format!(
        "SELECT min(x.leaf_index) {} AND x.dedup_key = ?3",
        in_ranges("dedup_runs")
    )
}

/// The first leaf of principal ?3's idempotency key ?4 in the runs
/// overlapping `[?1, ?2)`.
pub(super) fn idempotency_leaf_sql() -> String {
    format!(
        "SELECT min(x.leaf_index) {} AND x.ingested_by = ?3 AND x.idempotency_key = ?4",
        in_ranges("idempotency_runs")
    )
}

/// The record at the lowest leaf [`first_leaf_in_ranges`] finds, in one
/// read transaction.
fn first_in_ranges(
    conn: &Connection,
    sql: &str,
    ranges: &[LeafRange],
    key: &[&dyn rusqlite::ToSql],
) -> Result<Option<EvidenceRow>> {
    if ranges.is_empty() {
        return Ok(None);
    }
    let tx = conn.unchecked_transaction().db()?;
    let found = match first_leaf_in_ranges(&tx, sql, ranges, key)? {
        Some(leaf) => one(&tx, "leaf_index = ?1", [leaf])?,
        None => None,
    };
    tx.finish().db()?;
    Ok(found)
}

/// The lowest leaf `sql` (`SELECT min(…)` over [`in_ranges`], the range as
/// ?1, ?2 and `key` after) finds in any of `ranges`.
pub(super) fn first_leaf_in_ranges(
    conn: &Connection,
    sql: &str,
    ranges: &[LeafRange],
    key: &[&dyn rusqlite::ToSql],
) -> Result<Option<i64>> {
    let mut first: Option<i64> = None;
    let mut stmt = conn.prepare_cached(sql).db()?;
    for &(lo, hi) in ranges {
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![&lo, &hi];
        params.extend_from_slice(key);
        let leaf: Option<i64> = stmt.query_row(params.as_slice(), |row| row.get(0)).db()?;
        first = match (first, leaf) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(first)
}

/// Keys or leaf indexes per query. A short last chunk is padded with its
/// last value (repeats in `IN` are harmless), so one cached statement
/// serves all.
const CHUNK: usize = 128;

/// The rows of `sql` (with [`CHUNK`] placeholders) for every chunk of
/// `values`, in one read transaction (one snapshot).
fn chunked<T: rusqlite::ToSql>(
    conn: &Connection,
    sql: &str,
    values: &[T],
) -> Result<Vec<EvidenceRow>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let tx = conn.unchecked_transaction().db()?;
    let found = chunked_in(&tx, sql, values)?;
    tx.finish().db()?;
    Ok(found)
}

/// [`chunked`] inside a transaction the caller holds.
fn chunked_in<T: rusqlite::ToSql>(
    tx: &Connection,
    sql: &str,
    values: &[T],
) -> Result<Vec<EvidenceRow>> {
    let mut found = Vec::new();
    for chunk in values.chunks(CHUNK) {
        let last = &chunk[chunk.len() - 1];
        let params = (0..CHUNK).map(|i| chunk.get(i).unwrap_or(last));
        found.extend(query::all(
            tx,
            sql,
            rusqlite::params_from_iter(params),
            decode,
        )?);
    }
    Ok(found)
}

fn placeholders() -> String {
    vec!["?"; CHUNK].join(",")
}

/// The first indexed record holding each key as dedup key (the
/// follower's index only), each key searched in the leaf range it is
/// listed under (the runs whose filters may hold it), in one read
/// transaction.
pub(super) fn by_dedup_keys(
    conn: &Connection,
    keys: &BTreeMap<LeafRange, Vec<[u8; 32]>>,
) -> Result<Vec<EvidenceRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT x.dedup_key, min(x.leaf_index) {} AND x.dedup_key IN ({}) \
         GROUP BY x.dedup_key",
        in_ranges("dedup_runs"),
        (3..3 + CHUNK)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let tx = conn.unchecked_transaction().db()?;
    // A key may be under several ranges (several filters said maybe).
    let mut first: HashMap<Vec<u8>, i64> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(&sql).db()?;
        for (&(lo, hi), keys) in keys {
            for chunk in keys.chunks(CHUNK) {
                let last = &chunk[chunk.len() - 1];
                let mut params: Vec<&dyn rusqlite::ToSql> = vec![&lo, &hi];
                params.extend(
                    (0..CHUNK).map(|i| chunk.get(i).unwrap_or(last) as &dyn rusqlite::ToSql),
                );
                let mut rows = stmt.query(params.as_slice()).db()?;
                while let Some(row) = rows.next().db()? {
                    let key: Vec<u8> = row.get(0).db()?;
                    let leaf: i64 = row.get(1).db()?;
                    let at = first.entry(key).or_insert(leaf);
                    *at = (*at).min(leaf);
                }
            }
        }
    }
    let leaves: Vec<i64> = first.into_values().collect();
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE leaf_index IN ({})",
        placeholders()
    );
    let found = chunked_in(&tx, &sql, &leaves)?;
    tx.finish().db()?;
    Ok(found)
}

/// The records at `leaves` (those that exist), in a few queries.
pub(super) fn by_indexes(conn: &Connection, leaves: &[u64]) -> Result<Vec<EvidenceRow>> {
    // No record can sit above i64::MAX.
    let leaves: Vec<i64> = leaves
        .iter()
        .filter_map(|&l| i64::try_from(l).ok())
        .collect();
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE leaf_index IN ({})",
        placeholders()
    );
    chunked(conn, &sql, &leaves)
}

/// The first indexed record `principal` submitted with idempotency key
/// `key` (the follower's index only), searched in the leaves `ranges`.
pub(super) fn by_idempotency_key(
    conn: &Connection,
    principal: &str,
    key: &str,
    ranges: &[LeafRange],
) -> Result<Option<EvidenceRow>> {
    first_in_ranges(conn, &idempotency_leaf_sql(), ranges, &[&principal, &key])
}

/// Leaf data of records `[start, end)`, checked to have no gap.
pub(super) fn leaf_data_range(conn: &Connection, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
    if start > end {
        return Err(invalid(format!("leaf range {start}..{end} is reversed")));
    }
    let tx = conn.unchecked_transaction().db()?;
    let size = read_size(&tx, LogId::Evidence)?;
    if end > size {
        return Err(invalid(format!(
            "leaf range {start}..{end} extends past the tree size {size}"
        )));
    }
    if start == end {
        return Ok(Vec::new());
    }
    // Both below size, which came from an i64.
    let (lo, hi) = (start as i64, end as i64);
    let mut stmt = tx
        .prepare_cached(
            "SELECT leaf_index, leaf_data FROM records \
             WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY leaf_index",
        )
        .db()?;
    let mut rows = stmt.query([lo, hi]).db()?;
    let mut out = Vec::with_capacity((end - start).min(4096) as usize);
    let mut expected = start;
    while let Some(row) = rows.next().db()? {
        let index = to_u64(col_i64(row, 0, "leaf_index")?, "leaf_index")?;
        if index != expected {
            return Err(corrupt(format!(
                "record {expected} is missing below tree size {size}"
            )));
        }
        out.push(col_blob(row, 1, &format!("leaf_data of record {index}"))?.to_vec());
        expected += 1;
    }
    if expected != end {
        return Err(corrupt(format!(
            "record {expected} is missing below tree size {size}"
        )));
    }
    Ok(out)
}

/// Records matching `query`, in leaf order, one page.
pub(super) fn list(conn: &Connection, query: &ListQuery) -> Result<Page<EvidenceRow>> {
    let columns = format!("r.{}", RECORD_COLUMNS.replace(", ", ", r."));
    list_where(conn, query, &columns, "")
}

/// Like [`list`], selecting `columns` (of `r`, in [`RECORD_COLUMNS`]'
/// order) and with `extra` (an SQL term on `r` starting with ` AND`)
/// appended.
pub(super) fn list_where(
    conn: &Connection,
    query: &ListQuery,
    columns: &str,
    extra: &str,
) -> Result<Page<EvidenceRow>> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let Ok(after) = cursor(query.after_index) else {
        return Ok(empty_page());
    };
    let Some(((key, value), rest)) = query.labels.split_first() else {
        // No follower index involved: one scan of the records (or of an
        // index on the commit path) in leaf order.
        let items = scan_records(conn, query, columns, extra, None, after, i64::from(limit))?;
        return Ok(page(items, limit, |r| r.leaf_index));
    };

    // One read transaction: the cursor and both parts see one snapshot.
    let tx = conn.unchecked_transaction().db()?;
    let through = to_i64(follower::indexed_through(&tx)?, "index cursor")?;

    // Below the cursor, the label index drives the scan: run by run (the
    // runs, in (run, level) order, are in leaf order), each run's primary
    // key yields a label's matches in leaf order, so the page streams with
    // no sort (`ir.level` must stay in the ORDER BY for SQLite to see it);
    // a further label is one primary-key probe per candidate, in the
    // candidate's run (a record's labels are all in one run).
    let mut sql = format!(
        "SELECT {columns} FROM index_runs ir \
         CROSS JOIN label_runs l0 ON l0.run = ir.run AND l0.level = ir.level \
         JOIN records r ON r.leaf_index = l0.leaf_index \
         WHERE l0.key = ? AND l0.value = ? AND l0.leaf_index < ?"
    );
    let mut filter = Filter::default();
    filter.params.push(Value::Text(key.clone()));
    filter.params.push(Value::Text(value.clone()));
    filter.params.push(Value::Integer(through));
    for (key, value) in rest {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM label_runs l WHERE l.run = l0.run \
             AND l.level = l0.level AND l.key = ? AND l.value = ? AND l.leaf_index = r.leaf_index)",
        );
        filter.params.push(Value::Text(key.clone()));
        filter.params.push(Value::Text(value.clone()));
    }
    filter.after("l0.leaf_index", after);
    record_terms(&mut filter, query);
    sql.push_str(&filter.sql);
    sql.push_str(extra);
    sql.push_str(" ORDER BY ir.run, ir.level, l0.leaf_index LIMIT ?");
    filter.params.push(Value::Integer(i64::from(limit)));
    let mut items = query::all(&tx, &sql, rusqlite::params_from_iter(filter.params), decode)?;

    // At or past the cursor (the follower's lag, bounded by the
    // sequencer), each record's own labels: every match there lies after
    // every match above, so the page stays in leaf order.
    if items.len() < limit as usize {
        let left = (limit as usize - items.len()) as i64;
        items.extend(scan_records(
            &tx,
            query,
            columns,
            extra,
            Some(through),
            after,
            left,
        )?);
    }
    tx.finish().db()?;
    Ok(page(items, limit, |r| r.leaf_index))
}

/// The records matching `query`, read from `records` itself (a label
/// through the record's own `labels` column), from leaf `from` on if given,
/// after the page cursor `after`, in leaf order, at most `limit`.
fn scan_records(
    conn: &Connection,
    query: &ListQuery,
    columns: &str,
    extra: &str,
    from: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<EvidenceRow>> {
    let mut sql = format!("SELECT {columns} FROM records r WHERE 1");
    let mut filter = Filter::default();
    if let Some(from) = from {
        sql.push_str(" AND r.leaf_index >= ?");
        filter.params.push(Value::Integer(from));
    }
    for (key, value) in &query.labels {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.labels) \
             THEN r.labels ELSE '{}' END) j WHERE j.key = ? AND j.value = ?)",
        );
        filter.params.push(Value::Text(key.clone()));
        filter.params.push(Value::Text(value.clone()));
    }
    filter.after("r.leaf_index", after);
    record_terms(&mut filter, query);
    sql.push_str(&filter.sql);
    sql.push_str(extra);
    sql.push_str(" ORDER BY r.leaf_index LIMIT ?");
    filter.params.push(Value::Integer(limit));
    query::all(
        conn,
        &sql,
        rusqlite::params_from_iter(filter.params),
        decode,
    )
}

/// The terms of `query` on the record's own columns.
fn record_terms(filter: &mut Filter, query: &ListQuery) {
    filter.equals("r.content_type", query.content_type.as_ref());
    filter.equals("r.ingested_by", query.ingested_by.as_ref());
    filter.window("r.ingested_at_ms", query.since_ms, query.until_ms);
}
