//! Values in and out of SQLite, checked: u64 indexes and sizes as INTEGER
//! (never wrapped), and every column read typed and validated, so a
//! malformed row is [`StoreError::Corrupt`](crate::StoreError::Corrupt),
//! never a panic.

use rusqlite::Row;
use rusqlite::types::ValueRef;

use super::error::{DbResult, corrupt, invalid};
use crate::Result;

/// A u64 as SQLite INTEGER, refusing values above `i64::MAX`.
pub(super) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| invalid(format!("{what} {value} exceeds the largest SQLite integer")))
}

/// A stored INTEGER as u64; negative is corruption.
pub(super) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("{what} is negative ({value})")))
}

pub(super) fn col_i64(row: &Row<'_>, idx: usize, what: &str) -> Result<i64> {
    match row.get_ref(idx).db()? {
        ValueRef::Integer(v) => Ok(v),
        other => Err(corrupt(format!(
            "{what} is {}, expected an integer",
            other.data_type()
        ))),
    }
}

pub(super) fn col_text(row: &Row<'_>, idx: usize, what: &str) -> Result<String> {
    match row.get_ref(idx).db()? {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(str::to_owned)
            .map_err(|_| corrupt(format!("{what} is not valid UTF-8"))),
        other => Err(corrupt(format!(
            "{what} is {}, expected text",
            other.data_type()
        ))),
    }
}

pub(super) fn col_opt_text(row: &Row<'_>, idx: usize, what: &str) -> Result<Option<String>> {
    match row.get_ref(idx).db()? {
        ValueRef::Null => Ok(None),
        _ => col_text(row, idx, what).map(Some),
    }
}

pub(super) fn col_blob<'r>(row: &'r Row<'_>, idx: usize, what: &str) -> Result<&'r [u8]> {
    match row.get_ref(idx).db()? {
        ValueRef::Blob(b) => Ok(b),
        other => Err(corrupt(format!(
            "{what} is {}, expected a blob",
            other.data_type()
        ))),
    }
}

pub(super) fn col_hash(row: &Row<'_>, idx: usize, what: &str) -> Result<[u8; 32]> {
    let b = col_blob(row, idx, what)?;
    b.try_into()
        .map_err(|_| corrupt(format!("{what} has {} bytes, expected 32", b.len())))
}

/// A REAL aggregate; `None` for NULL (no rows to aggregate).
pub(super) fn col_opt_f64(row: &Row<'_>, idx: usize, what: &str) -> Result<Option<f64>> {
    match row.get_ref(idx).db()? {
        ValueRef::Null => Ok(None),
        ValueRef::Real(v) => Ok(Some(v)),
        // A REAL column may hand back an integral value as INTEGER.
        ValueRef::Integer(v) => Ok(Some(v as f64)),
        other => Err(corrupt(format!(
            "{what} is {}, expected a number",
            other.data_type()
        ))),
    }
}
