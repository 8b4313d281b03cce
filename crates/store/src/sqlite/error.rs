//! How failures become [`StoreError`]s: rusqlite errors are `Backend`,
//! requests the store cannot honour are `Backend(InvalidRequest)`, stored
//! data that is not what it must be is `Corrupt`, and a violated UNIQUE or
//! PRIMARY KEY constraint names its columns so callers can say which key
//! was a duplicate.

use std::fmt;

use rusqlite::ffi;

use crate::{Result, StoreError};

/// A request the store cannot honour: a value SQLite cannot hold, a
/// malformed batch, a range outside the tree. Reported as
/// [`StoreError::Backend`]; nothing is written.
#[derive(Debug)]
pub struct InvalidRequest(pub String);

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid request: {}", self.0)
    }
}

impl std::error::Error for InvalidRequest {}

pub(crate) fn invalid(why: impl Into<String>) -> StoreError {
    StoreError::Backend(Box::new(InvalidRequest(why.into())))
}

pub(crate) fn corrupt(why: impl Into<String>) -> StoreError {
    StoreError::Corrupt(why.into())
}

/// Maps rusqlite errors to [`StoreError::Backend`].
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| StoreError::Backend(Box::new(e)))
    }
}

/// The columns of the UNIQUE or PRIMARY KEY constraint `e` violated
/// (`table.column, …`), if that is what failed.
pub(super) fn violated_key(e: &rusqlite::Error) -> Option<String> {
    match e {
        rusqlite::Error::SqliteFailure(err, msg)
            if err.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || err.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            msg.as_deref()
                .and_then(|m| m.split_once("constraint failed: "))
                .map(|(_, cols)| cols.to_owned())
        }
        _ => None,
    }
}
