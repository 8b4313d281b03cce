//! Test support (feature `testing`): a data directory as an older release
//! left it, made from one this binary wrote, so the conversion back can be
//! tested on real vault data (signed checkpoints, audit events, keys)
//! rather than on hand-made rows only.

use std::path::Path;

use rusqlite::Connection;

use super::error::{DbResult, invalid};
use super::{index_db, schema};
use crate::Result;

/// Rewrites the stopped store at `path` (this binary's schema) as schema
/// `version` (1 to 11) would hold the same data: a new database built by
/// that version's migrations, every table filled with the columns it
/// shares with the current one (the index follower's tables from the index
/// database's version-1 views; before schema 9 the label index from each
/// record's labels), then swapped in. Before schema 11 the index database
/// is removed (no release before it had one); at 11 it is kept as it is.
pub fn rewrite_as_schema(path: &Path, version: u32) -> Result<()> {
    if !(1..schema::SCHEMA_VERSION).contains(&version) {
        return Err(invalid(format!("no older schema {version}")));
    }
    let old = path.with_extension("old-schema.tmp");
    let _ = std::fs::remove_file(&old);
    {
        let mut conn = Connection::open(&old).db()?;
        conn.pragma_update(None, "page_size", 16384).db()?;
        conn.pragma_update(None, "journal_mode", "WAL").db()?;
        conn.pragma_update(None, "foreign_keys", false).db()?;
        conn.execute("ATTACH DATABASE ?1 AS cur", [path.to_string_lossy()])
            .db()?;
        let ix = index_db::path_for(path);
        conn.execute("ATTACH DATABASE ?1 AS ix", [ix.to_string_lossy()])
            .db()?;
        let tx = conn.transaction().db()?;
        for sql in &schema::MIGRATIONS[..version as usize] {
            tx.execute_batch(sql).db()?;
        }
        let tables: Vec<String> = tx
            .prepare(
                "SELECT name FROM main.sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .db()?
            .query_map([], |row| row.get(0))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        for table in &tables {
            if table == "record_labels" && version < 9 {
                tx.execute_batch(
                    "INSERT INTO main.record_labels (key, value, leaf_index) \
                     SELECT j.key, j.value, r.leaf_index FROM cur.records r, json_each(r.labels) j",
                )
                .db()?;
                continue;
            }
            let source = ["cur", "ix"]
                .into_iter()
                .find(|s| !columns(&tx, s, table).unwrap_or_default().is_empty());
            let Some(source) = source else {
                continue;
            };
            let theirs = columns(&tx, source, table)?;
            let shared: Vec<String> = columns(&tx, "main", table)?
                .into_iter()
                .filter(|c| theirs.contains(c))
                .collect();
            let list = shared.join(", ");
            tx.execute_batch(&format!(
                "INSERT OR REPLACE INTO main.{table} ({list}) SELECT {list} FROM {source}.{table}"
            ))
            .db()?;
        }
        tx.pragma_update(None, "user_version", i64::from(version))
            .db()?;
        tx.commit().db()?;
        conn.execute_batch(
            "DETACH DATABASE cur; DETACH DATABASE ix; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .db()?;
    }
    let ix = index_db::path_for(path);
    let mut gone = vec![path.to_path_buf()];
    if version < schema::INDEX_FILE_VERSION {
        gone.push(ix);
    }
    for p in gone {
        for suffix in ["", "-wal", "-shm"] {
            let mut f = p.as_os_str().to_owned();
            f.push(suffix);
            let _ = std::fs::remove_file(f);
        }
    }
    std::fs::rename(&old, path)
        .map_err(|e| invalid(format!("renaming the rewritten database: {e}")))?;
    for suffix in ["-wal", "-shm"] {
        let mut f = old.as_os_str().to_owned();
        f.push(suffix);
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}

/// The columns of `schema.table`, in order (none if there is no such table
/// or view).
fn columns(conn: &Connection, schema: &str, table: &str) -> Result<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1, ?2)")
        .db()?
        .query_map([table, schema], |row| row.get(0))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()
}
