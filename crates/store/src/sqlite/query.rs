//! Running queries: a single row, every row, one page of a list, and the
//! WHERE terms the list queries are built from.

use rusqlite::types::Value;
use rusqlite::{Connection, Params, Row};

use super::error::DbResult;
use crate::{Page, Result};

/// Largest page of [`Store::list`](crate::Store::list),
/// [`Store::list_audit`](crate::Store::list_audit) and
/// [`Store::list_checkpoints`](crate::Store::list_checkpoints).
pub(super) const MAX_PAGE: u32 = 1000;

/// Runs `sql` (a cached statement) and decodes its first row, if any.
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    rows.next().db()?.map(decode).transpose()
}

/// Runs `sql` (a cached statement) and decodes every row.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().db()? {
        items.push(decode(row)?);
    }
    Ok(items)
}

/// A page cursor as SQLite INTEGER; `Err` if it lies past `i64::MAX`,
/// where nothing can be stored (the page is empty).
pub(super) fn cursor(after: Option<u64>) -> std::result::Result<Option<i64>, ()> {
    after.map(i64::try_from).transpose().map_err(|_| ())
}

/// A page of results: `next` is the last index of a full page, else `None`.
pub(super) fn page<T>(items: Vec<T>, limit: u32, index: impl Fn(&T) -> u64) -> Page<T> {
    let next = if items.len() == limit as usize {
        items.last().map(index)
    } else {
        None
    };
    Page { items, next }
}

/// Runs a list query (its last parameter is `limit`) and decodes one page.
pub(super) fn query_page<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    limit: u32,
    decode: impl Fn(&Row<'_>) -> Result<T>,
    index: impl Fn(&T) -> u64,
) -> Result<Page<T>> {
    let items = all(conn, sql, rusqlite::params_from_iter(params), decode)?;
    Ok(page(items, limit, index))
}

pub(super) fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next: None,
    }
}

/// `AND …` terms of a WHERE clause and their parameters, in order.
#[derive(Default)]
pub(super) struct Filter {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Filter {
    /// `AND {column} = ?`, if `value` is given.
    pub fn equals(&mut self, column: &str, value: Option<&String>) {
        if let Some(v) = value {
            self.sql.push_str(&format!(" AND {column} = ?"));
            self.params.push(Value::Text(v.clone()));
        }
    }

    /// `AND {column} > ?`, if `after` is given: a page cursor.
    pub fn after(&mut self, column: &str, after: Option<i64>) {
        if let Some(after) = after {
            self.sql.push_str(&format!(" AND {column} > ?"));
            self.params.push(Value::Integer(after));
        }
    }

    /// The time window `since <= column < until`, either end open.
    pub fn window(&mut self, column: &str, since: Option<i64>, until: Option<i64>) {
        if let Some(since) = since {
            self.sql.push_str(&format!(" AND {column} >= ?"));
            self.params.push(Value::Integer(since));
        }
        if let Some(until) = until {
            self.sql.push_str(&format!(" AND {column} < ?"));
            self.params.push(Value::Integer(until));
        }
    }
}
