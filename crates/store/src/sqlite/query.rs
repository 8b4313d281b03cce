//! Paging the list queries.

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::error::DbResult;
use crate::{Page, Result};

/// Largest page of [`Store::list`](crate::Store::list),
/// [`Store::list_audit`](crate::Store::list_audit) and
/// [`Store::list_checkpoints`](crate::Store::list_checkpoints).
pub(super) const MAX_PAGE: u32 = 1000;

/// A page cursor as SQLite INTEGER; `Err` if it lies past `i64::MAX`,
/// where nothing can be stored (the page is empty).
pub(super) fn cursor(after: Option<u64>) -> std::result::Result<Option<i64>, ()> {
    after.map(i64::try_from).transpose().map_err(|_| ())
}

/// A page of results: `next` is the last index of a full page, else `None`.
fn page<T>(items: Vec<T>, limit: u32, index: impl Fn(&T) -> u64) -> Page<T> {
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
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).db()?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().db()? {
        items.push(decode(row)?);
    }
    Ok(page(items, limit, index))
}

pub(super) fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next: None,
    }
}
