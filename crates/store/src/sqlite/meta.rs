//! Small persistent settings: the `meta` table.

use rusqlite::Connection;

use super::error::DbResult;
use super::query;
use super::rows::col_text;
use crate::Result;

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    query::first(
        conn,
        "SELECT value FROM meta WHERE key = ?1",
        [key],
        |row| col_text(row, 0, &format!("meta value {key:?}")),
    )
}

pub(super) fn all(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value FROM meta ORDER BY key")
        .db()?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.db()?);
    }
    Ok(out)
}

pub(super) fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .db()?
    .execute([key, value])
    .db()?;
    Ok(())
}
