//! The index database (store schema 11): the index follower's tables in a
//! SQLite file of their own beside the log database, attached to every
//! connection as `ix`.
//!
//! Everything in it is derived from the records, so it is rebuilt rather
//! than repaired: a missing or incomplete file becomes an empty index at
//! cursor 0, which the follower fills again from the log. Its tables keep
//! the names they had in the log database (no name exists in both), so
//! queries name them unqualified.
//!
//! Why a file of its own: a follower batch is one transaction of whatever
//! file holds its tables. In the log database it held the writer lock each
//! commit waits for; here it holds `ix`'s lock alone (a deferred
//! transaction reads the log and writes only `ix`), and its random pages
//! are 4 KiB ones in their own cache and WAL.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::error::{DbResult, corrupt, invalid};
use crate::Result;

/// `PRAGMA ix.user_version` of a complete index database. Version 1 (one
/// B-tree per index) is rebuilt as version 2 (sorted runs) at open.
pub(super) const INDEX_VERSION: i64 = 2;

/// The index database's tables and views (`migrations/index_2.sql`).
const INDEX_SCHEMA: &str = include_str!("migrations/index_2.sql");

/// The level of the one run a move from the log database's tables makes
/// (schema 10 → 11): above any level the follower's merges reach, so the
/// follower never merges it (its rows are already one sorted run).
pub(super) const MOVED_LEVEL: i64 = 63;

/// Each index: the log database's table (schema 10, a view here since
/// index version 2), the table of its runs, and its key (the order its rows
/// are copied and merged in).
pub(super) const INDEXES: [(&str, &str, &str); 4] = [
    ("record_labels", "label_runs", "key, value, leaf_index"),
    ("records_by_sha256", "sha256_runs", "sha256, leaf_index"),
    ("records_by_dedup", "dedup_runs", "dedup_key, leaf_index"),
    (
        "records_by_idempotency",
        "idempotency_runs",
        "ingested_by, idempotency_key, leaf_index",
    ),
];

/// Page size of a new index file: each row is a few dozen bytes on a
/// random page, so a small page is fewer bytes per dirtied page.
const PAGE_SIZE: i64 = 4096;

/// The writer's settings for `ix`: it writes the file only when it moves
/// or rebuilds it at open, durably (the log's tables are dropped after).
pub(super) const WRITER_PRAGMAS: &str = "
    PRAGMA ix.synchronous = FULL;
    PRAGMA ix.cache_size = -1024;
    PRAGMA ix.journal_size_limit = 16777216;
";

/// The follower connection's settings. `synchronous=NORMAL` for `ix`: a
/// power cut may roll the index back a few batches, but never tear it, and
/// the cursor rolls back with its rows, so the follower indexes those
/// records again; it saves an fsync per batch. The cache is the follower's
/// sorted inserts' (16 MiB); the log's side is read in leaf order (2 MiB).
/// `temp_store=FILE`: a batch's sort (up to 32 labels a record) spills
/// past 2 MiB to a deleted temporary file (mode 0600) instead of the heap.
pub(super) const FOLLOWER_PRAGMAS: &str = "
    PRAGMA foreign_keys = OFF;
    PRAGMA main.cache_size = -2048;
    PRAGMA ix.synchronous = NORMAL;
    PRAGMA ix.cache_size = -16384;
    PRAGMA ix.journal_size_limit = 16777216;
    PRAGMA temp_store = FILE;
    PRAGMA wal_autocheckpoint = 1024;
";

/// Each reader's cache for `ix`: a lookup reads a few pages.
pub(super) const READER_PRAGMAS: &str = "PRAGMA ix.cache_size = -1024;";

/// The index database of the log database at `db`: `evault.db` gives
/// `evault-index.db` (a name without an extension gets `-index`).
pub fn path_for(db: &Path) -> PathBuf {
    let mut name: OsString = db.file_stem().unwrap_or(db.as_os_str()).to_owned();
    name.push("-index");
    if let Some(ext) = db.extension() {
        name.push(".");
        name.push(ext);
    }
    db.with_file_name(name)
}

/// Attaches the index file at `path` as `ix`, by file name (the
/// connection was opened without URI names, so the bytes are the path).
pub(super) fn attach(conn: &Connection, path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    conn.execute("ATTACH DATABASE ?1 AS ix", [path.as_os_str().as_bytes()])
        .db()?;
    Ok(())
}

/// Attaches `uri` (a `file:` URI; the connection accepts them) as `ix`.
pub(super) fn attach_uri(conn: &Connection, uri: &str) -> Result<()> {
    conn.execute("ATTACH DATABASE ?1 AS ix", [uri]).db()?;
    Ok(())
}

/// On the writer, right after [`attach`]: a new file gets its page size
/// and WAL mode (both persistent), every open the writer's settings.
pub(super) fn configure_writer(conn: &Connection, path: &Path) -> Result<()> {
    conn.pragma_update(Some("ix"), "page_size", PAGE_SIZE)
        .db()?;
    let mode: String = conn
        .pragma_update_and_check(Some("ix"), "journal_mode", "WAL", |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(invalid(format!(
            "{} cannot use write-ahead logging (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.execute_batch(WRITER_PRAGMAS).db()
}

/// `PRAGMA ix.user_version`: [`INDEX_VERSION`] once the file is complete.
pub(super) fn version(conn: &Connection) -> Result<i64> {
    conn.pragma_query_value(Some("ix"), "user_version", |row| row.get(0))
        .db()
}

/// Whether `ix` is a complete index database of this version.
pub(super) fn is_current(conn: &Connection) -> Result<bool> {
    let v = version(conn)?;
    if v > INDEX_VERSION {
        return Err(corrupt(format!(
            "the index database has version {v}; this binary knows {INDEX_VERSION}"
        )));
    }
    Ok(v == INDEX_VERSION)
}

/// The log database's own follower cursor (schema 10), if it has one.
fn log_cursor(conn: &Connection) -> Result<Option<i64>> {
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM main.sqlite_schema WHERE type = 'table' AND name = 'index_state'",
            [],
            |row| row.get(0),
        )
        .db()?;
    if !exists {
        return Ok(None);
    }
    conn.query_row(
        "SELECT evidence_through FROM main.index_state WHERE id = 0",
        [],
        |row| row.get(0),
    )
    .optional()
    .db()
}

/// Replaces whatever `ix` holds with the index the log database holds in
/// its own tables (schema 10), in one transaction of `ix`, sorted by key.
/// Repeatable: a crash before its commit leaves `ix` as it was, one after
/// it leaves a complete copy, which the next call replaces again.
pub(super) fn fill_from_log(conn: &mut Connection) -> Result<()> {
    // Deferred: the first statement writes `ix` (its lock), the copies only
    // read the log database.
    let tx = conn.transaction().db()?;
    recreate(&tx)?;
    if log_cursor(&tx)?.is_none() {
        return Err(corrupt(
            "the log database has no index cursor to move (schema 10 has one)".to_string(),
        ));
    }
    copy_as_one_run(&tx, "main.")?;
    tx.pragma_update(Some("ix"), "user_version", INDEX_VERSION)
        .db()?;
    tx.commit().db()
}

/// Copies a version-1 index (one B-tree per table, its tables named
/// `{source}index_state`, `{source}record_labels`, …) into the empty
/// version-2 tables of `ix`: the cursor, and the indexed records
/// `[0, cursor)` as one run at [`MOVED_LEVEL`], each table copied in its
/// key order (the order the source keeps it in, so nothing is sorted).
fn copy_as_one_run(tx: &Connection, source: &str) -> Result<()> {
    tx.execute_batch(&format!(
        "INSERT INTO ix.index_state (id, evidence_through) \
         SELECT id, evidence_through FROM {source}index_state"
    ))
    .db()?;
    tx.execute(
        "INSERT INTO ix.index_runs (run, level, end_leaf) \
         SELECT 0, ?1, evidence_through FROM ix.index_state WHERE evidence_through > 0",
        [MOVED_LEVEL],
    )
    .db()?;
    for (table, runs, key) in INDEXES {
        tx.execute(
            &format!(
                "INSERT INTO ix.{runs} (run, level, {key}) \
                 SELECT 0, ?1, {key} FROM {source}{table} ORDER BY {key}"
            ),
            [MOVED_LEVEL],
        )
        .db()?;
    }
    Ok(())
}

/// The tables of a version-1 index database.
const V1_TABLES: [&str; 5] = [
    "index_state",
    "record_labels",
    "records_by_sha256",
    "records_by_dedup",
    "records_by_idempotency",
];

/// Converts a version-1 index database (one B-tree per index, the names
/// version 2 gives its views) to version 2 in one transaction of `ix`:
/// each index becomes one run `[0, cursor)` at [`MOVED_LEVEL`], copied in
/// key order (the order version 1 kept it in, so nothing is sorted). A
/// crash before the commit leaves version 1, converted again at the next
/// open. The runs' filters are built at open (`filters.rs`).
pub(super) fn convert_v1(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction().db()?;
    for table in V1_TABLES {
        tx.execute_batch(&format!("ALTER TABLE ix.{table} RENAME TO v1_{table}"))
            .db()?;
    }
    tx.execute_batch(INDEX_SCHEMA).db()?;
    copy_as_one_run(&tx, "ix.v1_")?;
    for table in V1_TABLES {
        tx.execute_batch(&format!("DROP TABLE ix.v1_{table}"))
            .db()?;
    }
    tx.pragma_update(Some("ix"), "user_version", INDEX_VERSION)
        .db()?;
    tx.commit().db()
}

/// An empty, complete index at cursor 0: the follower then indexes every
/// record again.
pub(super) fn create_empty(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction().db()?;
    recreate(&tx)?;
    tx.execute(
        "INSERT INTO ix.index_state (id, evidence_through) VALUES (0, 0)",
        [],
    )
    .db()?;
    tx.pragma_update(Some("ix"), "user_version", INDEX_VERSION)
        .db()?;
    tx.commit().db()
}

/// Inside a transaction: drops whatever `ix` holds (of any version: its
/// views first, then its tables) and creates the current schema empty.
fn recreate(tx: &Connection) -> Result<()> {
    let objects: Vec<(String, String)> = tx
        .prepare(
            "SELECT type, name FROM ix.sqlite_schema \
             WHERE type IN ('view', 'table') AND name NOT LIKE 'sqlite_%' \
             ORDER BY type = 'table'",
        )
        .db()?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    for (kind, name) in objects {
        let kind = if kind == "view" { "VIEW" } else { "TABLE" };
        tx.execute_batch(&format!("DROP {kind} ix.\"{}\"", name.replace('"', "\"\"")))
            .db()?;
    }
    tx.execute_batch(INDEX_SCHEMA).db()
}

/// Whether the log database's cursor (schema 10, before the move) equals
/// `ix`'s: the move's second step drops the log's tables only then.
pub(super) fn matches_log(conn: &Connection) -> Result<bool> {
    let ix: Option<i64> = conn
        .query_row(
            "SELECT evidence_through FROM ix.index_state WHERE id = 0",
            [],
            |row| row.get(0),
        )
        .optional()
        .db()?;
    Ok(ix.is_some() && ix == log_cursor(conn)?)
}

/// Why `ix`, complete as a file, is not an index of this log's records
/// (then only a rebuild makes it right), or `None` if it is:
/// - it has no cursor;
/// - its cursor lies past the log's tree size: an index of a longer copy
///   of the log (a log database restored without its index database);
/// - it lacks the dedup entry of the first or the last record below its
///   cursor: an index of another log (files of two data directories
///   mixed). An older index of this log holds both, and stays.
pub(super) fn not_of_this_log(conn: &Connection) -> Result<Option<String>> {
    let (cursor, size): (Option<i64>, i64) = conn
        .query_row(
            "SELECT (SELECT evidence_through FROM ix.index_state WHERE id = 0), \
                    (SELECT size FROM main.tree_state WHERE id = 0)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .db()?;
    let Some(cursor) = cursor else {
        return Ok(Some("it has no cursor".to_string()));
    };
    if cursor > size {
        return Ok(Some(format!(
            "it covers {cursor} records but the log holds {size} (restored from another copy?)"
        )));
    }
    if cursor == 0 {
        return Ok(None);
    }
    let strangers: i64 = conn
        .query_row(
            "SELECT count(*) FROM main.records r WHERE r.leaf_index IN (0, ?1 - 1) \
             AND NOT EXISTS (SELECT 1 FROM ix.records_by_dedup x \
                             WHERE x.dedup_key = r.dedup_key AND x.leaf_index = r.leaf_index)",
            [cursor],
            |row| row.get(0),
        )
        .db()?;
    Ok((strangers > 0).then(|| {
        "it does not hold this log's records (the index of another data directory?)".to_string()
    }))
}
