//! Audit events: the `audit_events` table. Inserting a batch's events and
//! reading them back by index, by id and in filtered lists.

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::error::{DbResult, corrupt, violated_key};
use super::log_state::check_index;
use super::query::{self, Filter, MAX_PAGE, cursor, empty_page, query_page};
use super::rows::{col_blob, col_i64, col_text, to_u64};
use crate::{AuditQuery, AuditRow, Page, Result, StoreError};

pub(super) const AUDIT_COLUMNS: &str =
    "leaf_index, id, time_ms, principal, operation, outcome, leaf_data";

const INSERT_AUDIT: &str = "INSERT INTO audit_events (leaf_index, id, time_ms, principal, \
     operation, outcome, leaf_data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Inserts a batch's events, with leaf indexes from `old_size` on, inside
/// the append's transaction (whose
/// [`check_extend`](super::log_state::check_extend) makes every index fit
/// in i64).
pub(super) fn insert(tx: &Connection, old_size: u64, events: &[AuditRow]) -> Result<()> {
    let mut insert = tx.prepare_cached(INSERT_AUDIT).db()?;
    for (expected, ev) in (old_size..).zip(events) {
        check_index(expected, ev.leaf_index)?;
        insert
            .execute(rusqlite::params![
                // Below audit_new_size, which fits in i64.
                expected as i64,
                ev.id,
                ev.time_ms,
                ev.principal,
                ev.operation,
                ev.outcome,
                ev.leaf_data,
            ])
            .map_err(|e| insert_error(e, ev))?;
    }
    Ok(())
}

/// Turns a failed audit event insert into the error the caller can act on.
fn insert_error(e: rusqlite::Error, ev: &AuditRow) -> StoreError {
    match violated_key(&e).as_deref() {
        Some("audit_events.id") => StoreError::Duplicate(format!("audit event id {}", ev.id)),
        Some("audit_events.leaf_index") => corrupt(format!(
            "an audit event with leaf index {} exists beyond the audit tree size",
            ev.leaf_index
        )),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Decodes a row of [`AUDIT_COLUMNS`].
pub(super) fn decode(row: &Row<'_>) -> Result<AuditRow> {
    let leaf_index = to_u64(col_i64(row, 0, "audit leaf_index")?, "audit leaf_index")?;
    let at = |what: &str| format!("{what} of audit event {leaf_index}");
    Ok(AuditRow {
        leaf_index,
        id: col_text(row, 1, &at("id"))?,
        time_ms: col_i64(row, 2, &at("time_ms"))?,
        principal: col_text(row, 3, &at("principal"))?,
        operation: col_text(row, 4, &at("operation"))?,
        outcome: col_text(row, 5, &at("outcome"))?,
        leaf_data: col_blob(row, 6, &at("leaf_data"))?.to_vec(),
    })
}

/// The event matching `where_clause`, if any.
fn one(
    conn: &Connection,
    where_clause: &str,
    params: impl rusqlite::Params,
) -> Result<Option<AuditRow>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE {where_clause}");
    query::first(conn, &sql, params, decode)
}

pub(super) fn by_index(conn: &Connection, leaf_index: u64) -> Result<Option<AuditRow>> {
    let Ok(index) = i64::try_from(leaf_index) else {
        return Ok(None);
    };
    one(conn, "leaf_index = ?1", [index])
}

pub(super) fn by_id(conn: &Connection, id: &str) -> Result<Option<AuditRow>> {
    one(conn, "id = ?1", [id])
}

/// Events matching `query`, in leaf order, one page.
pub(super) fn list(conn: &Connection, query: &AuditQuery) -> Result<Page<AuditRow>> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let Ok(after) = cursor(query.after_index) else {
        return Ok(empty_page());
    };
    // Equalities on principal, operation or outcome scan their index in
    // leaf order (each entry ends in the rowid); SQLite picks one.
    let mut filter = Filter::default();
    filter.after("leaf_index", after);
    filter.equals("principal", query.principal.as_ref());
    filter.equals("operation", query.operation.as_ref());
    filter.equals("outcome", query.outcome.as_ref());
    // The outcome index is partial (WHERE outcome <> 'success'); SQLite
    // uses it only if the query states that term itself.
    if query.outcome.as_deref().is_some_and(|o| o != "success") {
        filter.sql.push_str(" AND outcome <> 'success'");
    }
    filter.window("time_ms", query.since_ms, query.until_ms);
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1{} ORDER BY leaf_index LIMIT ?",
        filter.sql
    );
    filter.params.push(Value::Integer(i64::from(limit)));

    query_page(conn, &sql, filter.params, limit, decode, |r| r.leaf_index)
}
