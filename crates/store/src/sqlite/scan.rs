//! Whole-store reads for `evault fsck`: rows in leaf order (a row that does
//! not decode is reported, not fatal), every stored tile, and what the
//! lookup indexes answer for each row. Each call is one short read
//! transaction, so a scan of a live store never holds the WAL back for
//! long.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::error::{DbResult, invalid};
use super::rows::{col_blob, col_i64, col_text, to_u64};
use super::{audit, log_state, records};
use crate::{
    AuditRow, EvidenceRow, IndexLookup, LabelEntry, LogId, Result, StoredTileKey, UnreadableRow,
};

/// `[start, end)` as SQLite integers; an end past `i64::MAX` is clamped
/// (nothing can be stored there).
fn bounds(start: u64, end: u64) -> (i64, i64) {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    (clamp(start), clamp(end))
}

/// Runs `sql` over leaf range `[start, end)` and decodes each row with
/// `decode`; a row that does not decode becomes an [`UnreadableRow`].
fn scan<T>(
    conn: &Connection,
    sql: &str,
    start: u64,
    end: u64,
    decode: fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<std::result::Result<T, UnreadableRow>>> {
    let (lo, hi) = bounds(start, end);
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query([lo, hi]).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        match decode(row) {
            Ok(v) => out.push(Ok(v)),
            Err(e) => {
                // The rowid always reads as an integer.
                let leaf_index = row.get::<_, i64>(0).db()?;
                out.push(Err(UnreadableRow {
                    leaf_index: leaf_index.max(0) as u64,
                    why: e.to_string(),
                }));
            }
        }
    }
    Ok(out)
}

pub(super) fn records(
    conn: &Connection,
    start: u64,
    end: u64,
) -> Result<Vec<std::result::Result<EvidenceRow, UnreadableRow>>> {
    let sql = format!(
        "SELECT {} FROM records WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY leaf_index",
        records::RECORD_COLUMNS
    );
    scan(conn, &sql, start, end, records::decode)
}

pub(super) fn audit(
    conn: &Connection,
    start: u64,
    end: u64,
) -> Result<Vec<std::result::Result<AuditRow, UnreadableRow>>> {
    let sql = format!(
        "SELECT {} FROM audit_events WHERE leaf_index >= ?1 AND leaf_index < ?2 \
         ORDER BY leaf_index",
        audit::AUDIT_COLUMNS
    );
    scan(conn, &sql, start, end, audit::decode)
}

/// Number of rows and largest leaf index of `log`'s leaf table.
pub(super) fn row_bounds(conn: &Connection, log: LogId) -> Result<(u64, Option<u64>)> {
    let sql = match log {
        LogId::Evidence => "SELECT count(*), max(leaf_index) FROM records",
        LogId::Audit => "SELECT count(*), max(leaf_index) FROM audit_events",
    };
    let (count, max): (i64, Option<i64>) = conn
        .prepare_cached(sql)
        .db()?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?;
    Ok((
        to_u64(count, "row count")?,
        max.map(|m| to_u64(m, "largest leaf index")).transpose()?,
    ))
}

fn tiles_table(log: LogId) -> &'static str {
    match log {
        LogId::Evidence => "tiles",
        LogId::Audit => "audit_tiles",
    }
}

pub(super) fn tile_keys(conn: &Connection, log: LogId) -> Result<Vec<StoredTileKey>> {
    let sql = format!(
        "SELECT level, idx, length(data) FROM {} ORDER BY id",
        tiles_table(log)
    );
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt.query([]).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        let level = col_i64(row, 0, "tile level")?;
        out.push(StoredTileKey {
            level: u8::try_from(level).unwrap_or(u8::MAX),
            index: to_u64(col_i64(row, 1, "tile index")?, "tile index")?,
            bytes: to_u64(col_i64(row, 2, "tile length")?, "tile length")?,
        });
    }
    Ok(out)
}

pub(super) fn tile(
    conn: &Connection,
    log: LogId,
    level: u8,
    index: u64,
) -> Result<Option<Vec<u8>>> {
    let Some(key) = log_state::tile_key(level, index) else {
        return Ok(None);
    };
    let sql = format!("SELECT data FROM {} WHERE id = ?1", tiles_table(log));
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt.query([key]).db()?;
    match rows.next().db()? {
        Some(row) => Ok(Some(col_blob(row, 0, "tile data")?.to_vec())),
        None => Ok(None),
    }
}

/// Each lookup goes through the index it names: `INDEXED BY` keeps the
/// planner from answering by rowid instead, which would check nothing.
/// The follower's indexes (index database version 2, sorted runs): a row
/// below the cursor is looked for in the live run whose leaves hold it
/// (`ir`), one search per index rather than one per run; a row at or past
/// the cursor, which no run should hold an entry of, in every run. The
/// lookups by dedup and idempotency key go through the runs' filters, as
/// the store's own do (`lookup_in_runs`), so a filter that lacks a key of
/// its run shows as a lookup that does not lead to its row.
const EVIDENCE_LOOKUPS: &str = "
SELECT r.leaf_index,
  (SELECT x.leaf_index FROM records x INDEXED BY sqlite_autoindex_records_1 WHERE x.id = r.id),
  NULL,
  NULL,
  r.idempotency_key IS NOT NULL,
  CASE WHEN json_valid(r.labels) THEN (SELECT count(*) FROM json_each(r.labels)) ELSE -1 END,
  CASE WHEN NOT json_valid(r.labels) THEN -1
  WHEN r.leaf_index < ?3 THEN
    (SELECT count(*) FROM json_each(r.labels) j WHERE EXISTS
       (SELECT 1 FROM label_runs l WHERE l.run = ir.run AND l.level = ir.level
          AND l.key = j.key AND l.value = j.value AND l.leaf_index = r.leaf_index))
  ELSE
    (SELECT count(*) FROM json_each(r.labels) j WHERE EXISTS
       (SELECT 1 FROM record_labels l
          WHERE l.key = j.key AND l.value = j.value AND l.leaf_index = r.leaf_index))
  END,
  EXISTS (SELECT 1 FROM records x INDEXED BY records_content_type
    WHERE x.content_type = r.content_type AND x.leaf_index = r.leaf_index),
  EXISTS (SELECT 1 FROM records x INDEXED BY records_ingested_at
    WHERE x.ingested_at_ms = r.ingested_at_ms AND x.leaf_index = r.leaf_index),
  EXISTS (SELECT 1 FROM records x INDEXED BY records_ingested_by
    WHERE x.ingested_by = r.ingested_by AND x.leaf_index = r.leaf_index),
  r.leaf_index < ?3,
  CASE WHEN r.leaf_index < ?3 THEN
    EXISTS (SELECT 1 FROM sha256_runs x WHERE x.run = ir.run AND x.level = ir.level
      AND x.sha256 = r.sha256 AND x.leaf_index = r.leaf_index)
  ELSE EXISTS (SELECT 1 FROM records_by_sha256 x
    WHERE x.sha256 = r.sha256 AND x.leaf_index = r.leaf_index) END,
  CASE WHEN r.leaf_index < ?3 THEN
    EXISTS (SELECT 1 FROM dedup_runs x WHERE x.run = ir.run AND x.level = ir.level
      AND x.dedup_key = r.dedup_key AND x.leaf_index = r.leaf_index)
  ELSE EXISTS (SELECT 1 FROM records_by_dedup x
    WHERE x.dedup_key = r.dedup_key AND x.leaf_index = r.leaf_index) END,
  r.idempotency_key IS NOT NULL AND CASE WHEN r.leaf_index < ?3 THEN
    EXISTS (SELECT 1 FROM idempotency_runs x WHERE x.run = ir.run AND x.level = ir.level
      AND x.ingested_by = r.ingested_by AND x.idempotency_key = r.idempotency_key
      AND x.leaf_index = r.leaf_index)
  ELSE EXISTS (SELECT 1 FROM records_by_idempotency x
    WHERE x.ingested_by = r.ingested_by AND x.idempotency_key = r.idempotency_key
      AND x.leaf_index = r.leaf_index) END,
  r.dedup_key, r.ingested_by, r.idempotency_key
FROM records r
LEFT JOIN index_runs ir
  ON ir.run = (SELECT max(run) FROM index_runs WHERE run <= r.leaf_index)
  AND ir.end_leaf > r.leaf_index
WHERE r.leaf_index >= ?1 AND r.leaf_index < ?2 ORDER BY r.leaf_index";

/// The first leaf of each unique key among the records at or past the
/// follower's cursor: what the store's in-memory tail answers, read here
/// from the same snapshot as the rows checked.
#[derive(Default)]
struct TailKeys {
    dedup: std::collections::HashMap<Vec<u8>, u64>,
    idem: std::collections::HashMap<(String, String), u64>,
}

impl TailKeys {
    fn read(conn: &Connection) -> Result<TailKeys> {
        let mut keys = TailKeys::default();
        let mut stmt = conn
            .prepare_cached(
                "SELECT dedup_key, min(leaf_index) FROM records WHERE leaf_index >= \
                 (SELECT evidence_through FROM index_state WHERE id = 0) GROUP BY dedup_key",
            )
            .db()?;
        let mut rows = stmt.query([]).db()?;
        while let Some(row) = rows.next().db()? {
            let leaf = to_u64(row.get(1).db()?, "leaf_index")?;
            keys.dedup.insert(row.get(0).db()?, leaf);
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT ingested_by, idempotency_key, min(leaf_index) FROM records \
                 WHERE idempotency_key IS NOT NULL AND leaf_index >= \
                 (SELECT evidence_through FROM index_state WHERE id = 0) GROUP BY 1, 2",
            )
            .db()?;
        let mut rows = stmt.query([]).db()?;
        while let Some(row) = rows.next().db()? {
            let leaf = to_u64(row.get(2).db()?, "leaf_index")?;
            keys.idem.insert((row.get(0).db()?, row.get(1).db()?), leaf);
        }
        Ok(keys)
    }
}

const EVIDENCE_INDEXES: [&str; 3] = [
    "records_content_type",
    "records_ingested_at",
    "records_ingested_by",
];

const AUDIT_LOOKUPS: &str = "
SELECT a.leaf_index,
  (SELECT x.leaf_index FROM audit_events x INDEXED BY sqlite_autoindex_audit_events_1
     WHERE x.id = a.id),
  EXISTS (SELECT 1 FROM audit_events x INDEXED BY audit_events_principal
    WHERE x.principal = a.principal AND x.leaf_index = a.leaf_index),
  EXISTS (SELECT 1 FROM audit_events x INDEXED BY audit_events_operation
    WHERE x.operation = a.operation AND x.leaf_index = a.leaf_index),
  EXISTS (SELECT 1 FROM audit_events x INDEXED BY audit_events_time
    WHERE x.time_ms = a.time_ms AND x.leaf_index = a.leaf_index),
  CASE WHEN a.outcome = 'success' THEN 1 ELSE
    EXISTS (SELECT 1 FROM audit_events x INDEXED BY audit_events_unusual
      WHERE x.outcome = a.outcome AND x.outcome <> 'success'
        AND x.leaf_index = a.leaf_index) END
FROM audit_events a WHERE a.leaf_index >= ?1 AND a.leaf_index < ?2 ORDER BY a.leaf_index";

const AUDIT_INDEXES: [&str; 4] = [
    "audit_events_principal",
    "audit_events_operation",
    "audit_events_time",
    "audit_events_unusual",
];

fn opt_index(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

pub(super) fn index_lookups(
    conn: &Connection,
    filters: &super::filters::Filters,
    log: LogId,
    start: u64,
    end: u64,
) -> Result<Vec<IndexLookup>> {
    let (lo, hi) = bounds(start, end);
    let mut out = Vec::new();
    match log {
        LogId::Evidence => {
            // One snapshot for the rows and the tail's keys.
            let tx = conn.unchecked_transaction().db()?;
            let conn = &tx;
            let cursor = super::follower::indexed_through(conn)?;
            let tail = if end > cursor {
                TailKeys::read(conn)?
            } else {
                TailKeys::default()
            };
            let through = super::rows::to_i64(cursor, "index cursor")?;
            let mut stmt = conn.prepare_cached(EVIDENCE_LOOKUPS).db()?;
            let mut rows = stmt.query([lo, hi, through]).db()?;
            while let Some(row) = rows.next().db()? {
                let labels: i64 = row.get(5).db()?;
                let labels_indexed: i64 = row.get(6).db()?;
                let mut missing_from = Vec::new();
                for (i, name) in EVIDENCE_INDEXES.iter().enumerate() {
                    if !row.get::<_, bool>(7 + i).db()? {
                        missing_from.push(*name);
                    }
                }
                // The follower's indexes hold a row exactly when it lies
                // below their cursor.
                let indexed: bool = row.get(7 + EVIDENCE_INDEXES.len()).db()?;
                let by_sha256: bool = row.get(8 + EVIDENCE_INDEXES.len()).db()?;
                let mut ahead_in = Vec::new();
                match (indexed, by_sha256) {
                    (true, false) => missing_from.push("records_by_sha256"),
                    (false, true) => ahead_in.push("records_by_sha256"),
                    _ => {}
                }
                if !indexed && labels_indexed > 0 {
                    ahead_in.push("record_labels");
                }
                let n = 9 + EVIDENCE_INDEXES.len();
                let own_dedup: bool = row.get(n).db()?;
                let own_idem: bool = row.get(n + 1).db()?;
                if !indexed && own_dedup {
                    ahead_in.push("records_by_dedup");
                }
                if !indexed && own_idem {
                    ahead_in.push("records_by_idempotency");
                }
                // A lookup asks the index first (its leaves are the lower
                // ones) and then the tail, as the store does.
                // A key column of the wrong type (a corrupted row) finds
                // nothing in the tail: fsck reports the row, it goes on.
                let dedup_key = match row.get_ref(n + 2).db()? {
                    ValueRef::Blob(b) => b.to_vec(),
                    _ => Vec::new(),
                };
                let in_index = match <[u8; 32]>::try_from(dedup_key.as_slice()) {
                    Ok(key) => {
                        let ranges = filters.dedup_ranges(&key);
                        super::records::first_leaf_in_ranges(
                            conn,
                            &super::records::dedup_leaf_sql(),
                            &ranges,
                            &[&key.as_slice()],
                        )?
                    }
                    Err(_) => None,
                };
                let by_dedup_key =
                    opt_index(in_index).or_else(|| tail.dedup.get(&dedup_key).copied());
                let idem = match (row.get_ref(n + 3).db()?, row.get_ref(n + 4).db()?) {
                    (ValueRef::Text(by), ValueRef::Text(key)) => Some((
                        String::from_utf8_lossy(by).into_owned(),
                        String::from_utf8_lossy(key).into_owned(),
                    )),
                    _ => None,
                };
                let in_index = match &idem {
                    Some((by, key)) => super::records::first_leaf_in_ranges(
                        conn,
                        &super::records::idempotency_leaf_sql(),
                        &filters.idempotency_ranges(by, key),
                        &[by, key],
                    )?,
                    None => None,
                };
                let by_idempotency_key =
                    opt_index(in_index).or_else(|| idem.and_then(|k| tail.idem.get(&k).copied()));
                out.push(IndexLookup {
                    leaf_index: to_u64(row.get(0).db()?, "leaf_index")?,
                    by_id: opt_index(row.get(1).db()?),
                    by_dedup_key,
                    has_idempotency_key: row.get(4).db()?,
                    by_idempotency_key,
                    labels: u64::try_from(labels).ok(),
                    labels_indexed: u64::try_from(labels_indexed).ok(),
                    missing_from,
                    indexed,
                    ahead_in,
                });
            }
        }
        LogId::Audit => {
            let mut stmt = conn.prepare_cached(AUDIT_LOOKUPS).db()?;
            let mut rows = stmt.query([lo, hi]).db()?;
            while let Some(row) = rows.next().db()? {
                let mut missing_from = Vec::new();
                for (i, name) in AUDIT_INDEXES.iter().enumerate() {
                    if !row.get::<_, bool>(2 + i).db()? {
                        missing_from.push(*name);
                    }
                }
                out.push(IndexLookup {
                    leaf_index: to_u64(row.get(0).db()?, "leaf_index")?,
                    by_id: opt_index(row.get(1).db()?),
                    by_dedup_key: None,
                    has_idempotency_key: false,
                    by_idempotency_key: None,
                    labels: Some(0),
                    labels_indexed: Some(0),
                    missing_from,
                    indexed: true,
                    ahead_in: Vec::new(),
                });
            }
        }
    }
    Ok(out)
}

/// The label index's entries as stored: every run's, live or not (an
/// entry of a run that is not live is a finding of `index_layout`).
pub(super) fn label_index_len(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM label_runs")
        .db()?
        .query_row([], |r| r.get(0))
        .db()?;
    to_u64(n, "label index length")
}

/// The label index's entries in its own order, (run, level, key, value,
/// leaf): one range of its primary key per page, no sort.
pub(super) fn label_index_page(
    conn: &Connection,
    after: Option<&LabelEntry>,
    limit: u32,
) -> Result<Vec<LabelEntry>> {
    let limit = i64::from(limit.clamp(1, 10_000));
    let decode = |row: &rusqlite::Row<'_>| -> Result<LabelEntry> {
        Ok(LabelEntry {
            position: vec![
                col_i64(row, 0, "label index run")?,
                col_i64(row, 1, "label index level")?,
            ],
            key: col_text(row, 2, "label index key")?,
            value: col_text(row, 3, "label index value")?,
            leaf_index: to_u64(col_i64(row, 4, "label index leaf")?, "label index leaf")?,
        })
    };
    // Before every entry: a position below any run's.
    let (run, level, key, value, leaf) = match after {
        None => (i64::MIN, i64::MIN, String::new(), String::new(), i64::MIN),
        Some(a) => {
            let [run, level] = a.position[..] else {
                return Err(invalid(
                    "a label index position is a run's first leaf and level".to_string(),
                ));
            };
            let leaf = i64::try_from(a.leaf_index).unwrap_or(i64::MAX);
            (run, level, a.key.clone(), a.value.clone(), leaf)
        }
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT run, level, key, value, leaf_index FROM label_runs \
             WHERE (run, level, key, value, leaf_index) > (?1, ?2, ?3, ?4, ?5) \
             ORDER BY run, level, key, value, leaf_index LIMIT ?6",
        )
        .db()?;
    let mut rows = stmt
        .query(rusqlite::params![run, level, key, value, leaf, limit])
        .db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Whether `leaf_index` is a record carrying label `key` = `value`.
pub(super) fn has_label(conn: &Connection, entry: &LabelEntry) -> Result<bool> {
    let Ok(leaf) = i64::try_from(entry.leaf_index) else {
        return Ok(false);
    };
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT 1 FROM records r, json_each(CASE WHEN json_valid(r.labels) \
             THEN r.labels ELSE '{}' END) j \
             WHERE r.leaf_index = ?1 AND j.key = ?2 AND j.value = ?3",
        )
        .db()?
        .query_row(rusqlite::params![leaf, entry.key, entry.value], |r| {
            r.get(0)
        })
        .optional()
        .db()?;
    Ok(found.is_some())
}
