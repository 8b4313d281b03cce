//! The embedded SQLite driver.
//!
//! One database file in WAL mode with `synchronous=FULL`: a call that
//! returns `Ok` has been committed and fsynced. One writer connection
//! (behind a mutex; appends are serialised anyway) and a small pool of
//! reader connections, so proof and record reads run concurrently with a
//! commit in progress. See the crate README for the schema.
//!
//! The evidence and audit logs have tree tables of the same shape
//! (`tree_state`/`tiles`/`checkpoints` and `audit_state`/`audit_tiles`/
//! `audit_checkpoints`); every tree-level statement is written once, in
//! [`log_sql!`], and instantiated for each log's table names.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use evault_merkle::tiles::{TILE_WIDTH, TileId, tile_width};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{
    CachedStatement, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, ffi,
};

use crate::{
    AnalyticsGroup, AnalyticsQuery, AnalyticsRow, AppendBatch, AuditQuery, AuditRow, EvidenceRow,
    ListQuery, LogId, Page, Payload, Result, Stats, Store, StoreError, StoredCheckpoint,
};

mod labels;
mod schema;

/// Reader connections in the pool.
const READERS: usize = 4;
/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Database page size for new files.
const PAGE_SIZE: i64 = 16384;
/// Largest page of [`Store::list`] and [`Store::list_checkpoints`].
const MAX_PAGE: u32 = 1000;
/// Bytes of one hash in a tile.
const HASH_BYTES: usize = 32;
/// Prepared statements kept per connection: each log's tree statements,
/// the record and audit statements, and the list queries (one per filter
/// combination used).
const STATEMENT_CACHE: usize = 64;

/// Settings of the writer connection, applied on every open (after
/// `journal_mode=WAL`, which is persistent and checked separately).
///
/// - `synchronous=FULL`: every commit fsyncs the WAL; `Ok` means durable.
/// - `foreign_keys=ON`: labels must belong to a record.
/// - `cache_size` 64 MiB: the unique indexes (random dedup keys) stay hot.
/// - `wal_autocheckpoint` 4096 pages (64 MiB at 16 KiB pages): fewer,
///   larger checkpoints; index pages rewritten by consecutive batches are
///   copied back once.
/// - `journal_size_limit` 64 MiB: the WAL file is truncated after a
///   checkpoint instead of staying at its high-water mark.
const WRITER_PRAGMAS: &str = "
    PRAGMA synchronous = FULL;
    PRAGMA foreign_keys = ON;
    PRAGMA cache_size = -65536;
    PRAGMA temp_store = MEMORY;
    PRAGMA wal_autocheckpoint = 4096;
    PRAGMA journal_size_limit = 67108864;
";

/// Settings of reader connections: never write, modest cache each.
const READER_PRAGMAS: &str = "
    PRAGMA foreign_keys = ON;
    PRAGMA query_only = ON;
    PRAGMA cache_size = -16384;
    PRAGMA temp_store = MEMORY;
";

const RECORD_COLUMNS: &str = "leaf_index, id, content_type, sha256, size, ingested_at_ms, \
     ingested_by, idempotency_key, dedup_key, leaf_data, payload, labels";

const INSERT_RECORD: &str = "INSERT INTO records (leaf_index, id, content_type, sha256, size, \
     ingested_at_ms, ingested_by, idempotency_key, dedup_key, leaf_data, payload, labels) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

const INSERT_LABEL: &str = "INSERT INTO record_labels (key, value, leaf_index) VALUES (?1, ?2, ?3)";

const INSERT_ANALYTICS: &str = "INSERT INTO analytics_events (leaf_index, source, kind, ts_ms, \
     value, unit, ingested_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const INSERT_ANALYTICS_METRIC: &str =
    "INSERT INTO analytics_metrics (leaf_index, name, value) VALUES (?1, ?2, ?3)";

const AUDIT_COLUMNS: &str = "leaf_index, id, time_ms, principal, operation, outcome, leaf_data";

const INSERT_AUDIT: &str = "INSERT INTO audit_events (leaf_index, id, time_ms, principal, \
     operation, outcome, leaf_data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The statements of one log's tree: its size row, tiles and checkpoints.
struct LogSql {
    select_size: &'static str,
    update_size: &'static str,
    /// Replaces a tile only by a version that extends it: as wide or wider,
    /// and with the stored contents as prefix. Anything else changes no row.
    upsert_tile: &'static str,
    read_tile: &'static str,
    put_checkpoint: &'static str,
    latest_checkpoint: &'static str,
    checkpoint_at: &'static str,
    list_checkpoints: &'static str,
}

/// [`LogSql`] for the tables named `$state`, `$tiles` and `$checkpoints`.
macro_rules! log_sql {
    ($state:literal, $tiles:literal, $checkpoints:literal) => {
        LogSql {
            select_size: concat!("SELECT size FROM ", $state, " WHERE id = 0"),
            update_size: concat!("UPDATE ", $state, " SET size = ?1 WHERE id = 0"),
            upsert_tile: concat!(
                "INSERT INTO ",
                $tiles,
                " (level, idx, data) VALUES (?1, ?2, ?3) ",
                "ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data ",
                "WHERE length(excluded.data) >= length(",
                $tiles,
                ".data) ",
                "AND substr(excluded.data, 1, length(",
                $tiles,
                ".data)) = ",
                $tiles,
                ".data"
            ),
            read_tile: concat!(
                "SELECT length(data), substr(data, 1, ?3) FROM ",
                $tiles,
                " WHERE level = ?1 AND idx = ?2"
            ),
            put_checkpoint: concat!(
                "INSERT OR IGNORE INTO ",
                $checkpoints,
                " (size, note, created_at_ms) VALUES (?1, ?2, ?3)"
            ),
            latest_checkpoint: concat!(
                "SELECT size, note, created_at_ms FROM ",
                $checkpoints,
                " ORDER BY size DESC LIMIT 1"
            ),
            checkpoint_at: concat!(
                "SELECT size, note, created_at_ms FROM ",
                $checkpoints,
                " WHERE size = ?1"
            ),
            list_checkpoints: concat!(
                "SELECT size, note, created_at_ms FROM ",
                $checkpoints,
                " WHERE size > ?1 ORDER BY size LIMIT ?2"
            ),
        }
    };
}

const EVIDENCE_SQL: LogSql = log_sql!("tree_state", "tiles", "checkpoints");
const AUDIT_SQL: LogSql = log_sql!("audit_state", "audit_tiles", "audit_checkpoints");

fn sql(log: LogId) -> &'static LogSql {
    match log {
        LogId::Evidence => &EVIDENCE_SQL,
        LogId::Audit => &AUDIT_SQL,
    }
}

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

fn invalid(why: impl Into<String>) -> StoreError {
    StoreError::Backend(Box::new(InvalidRequest(why.into())))
}

fn corrupt(why: impl Into<String>) -> StoreError {
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

/// A u64 as SQLite INTEGER, refusing values above `i64::MAX`.
fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| invalid(format!("{what} {value} exceeds the largest SQLite integer")))
}

/// A stored INTEGER as u64; negative is corruption.
fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("{what} is negative ({value})")))
}

/// The embedded SQLite store. Cheap to share: `Send + Sync`, put it in an
/// `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: ReaderPool,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, applies pending
    /// migrations, and restricts the file and its `-wal`/`-shm` companions
    /// to mode 0600. A missing parent directory is created with mode 0700.
    pub fn open(path: &Path) -> Result<Self> {
        create_private_file(path)?;

        // No SQLITE_OPEN_URI: the path is a file name, never a `file:` URI.
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        writer.busy_timeout(BUSY_TIMEOUT).db()?;
        // Refuse a newer schema before changing anything in the file.
        schema::check_not_too_new(schema::version(&writer)?)?;
        // 16 KiB pages: a 1.5 KB record row wastes a third of a 4 KiB page
        // but a few percent of a 16 KiB one, and an 8 KiB tile fits in one
        // page without overflow. Only takes effect when the file is new
        // (before WAL is enabled); harmless otherwise.
        writer.pragma_update(None, "page_size", PAGE_SIZE).db()?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(invalid(format!(
                "{} cannot use write-ahead logging (journal_mode is {mode})",
                path.display()
            )));
        }
        writer.execute_batch(WRITER_PRAGMAS).db()?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut writer)?;
        restrict_companions(path)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open_reader(path)?);
        }
        // Opening readers can create the -shm file; restrict it too.
        restrict_companions(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: ReaderPool::new(readers),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this binary writes (`PRAGMA user_version`).
    pub const SCHEMA_VERSION: u32 = schema::SCHEMA_VERSION;

    /// The writer's per-connection PRAGMAs, for the benchmark's raw-SQLite
    /// baseline (which must run under the same settings). Not an API.
    #[doc(hidden)]
    pub const WRITER_PRAGMAS: &'static str = WRITER_PRAGMAS;

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open:
        // rusqlite's Transaction rolls back on drop, also on unwind.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn create_private_file(path: &Path) -> Result<()> {
    let io = |what: &str, e: std::io::Error| {
        StoreError::Backend(Box::new(std::io::Error::new(
            e.kind(),
            format!("{what} {}: {e}", path.display()),
        )))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io("creating the directory of", e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("creating", e))?;
    // The mode above is filtered by the umask and ignored for an existing
    // file; set it explicitly.
    fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(|e| io("restricting", e))
}

/// Sets mode 0600 on the `-wal` and `-shm` files where they exist.
fn restrict_companions(path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let mut name: OsString = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = PathBuf::from(name);
        match fs::set_permissions(&companion, Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Backend(Box::new(std::io::Error::new(
                    e.kind(),
                    format!("restricting {}: {e}", companion.display()),
                ))));
            }
        }
    }
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.execute_batch(READER_PRAGMAS).db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A fixed set of reader connections, checked out one per call.
struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

struct Reader<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
}

impl ReaderPool {
    fn new(conns: Vec<Connection>) -> Self {
        ReaderPool {
            idle: Mutex::new(conns),
            returned: Condvar::new(),
        }
    }

    /// Takes an idle reader, waiting for one if all are busy.
    fn get(&self) -> Reader<'_> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = idle.pop() {
                return Reader {
                    pool: self,
                    conn: Some(conn),
                };
            }
            idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Always Some until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.push(conn);
            drop(idle);
            self.pool.returned.notify_one();
        }
    }
}

fn read_size(conn: &Connection, log: LogId) -> Result<u64> {
    let size: Option<i64> = conn
        .prepare_cached(sql(log).select_size)
        .db()?
        .query_row([], |row| row.get(0))
        .optional()
        .db()?;
    let size = size.ok_or_else(|| corrupt(format!("the {log} tree size row is missing")))?;
    to_u64(size, &format!("{log} tree size"))
}

/// Checks, inside the append's transaction, that `log` holds `old_size`
/// and can take `count` more leaves; returns the new size.
fn check_extend(tx: &Connection, log: LogId, old_size: u64, count: usize) -> Result<u64> {
    let stored = read_size(tx, log)?;
    if stored != old_size {
        return Err(StoreError::SizeConflict {
            expected: old_size,
            stored,
        });
    }
    let count =
        u64::try_from(count).map_err(|_| invalid(format!("batch has too many {log} leaves")))?;
    let new_size = old_size
        .checked_add(count)
        .ok_or_else(|| invalid(format!("batch overflows the {log} tree size")))?;
    to_i64(new_size, &format!("{log} tree size"))?;
    Ok(new_size)
}

/// Upserts `log`'s tiles of a batch that takes the tree to `new_size`:
/// each must have the width that size gives it, the right length, and
/// extend the stored version.
fn write_tiles(
    tx: &Connection,
    log: LogId,
    new_size: u64,
    tiles: &[(TileId, Vec<u8>)],
) -> Result<()> {
    let mut upsert = tx.prepare_cached(sql(log).upsert_tile).db()?;
    for (tile, data) in tiles {
        if tile_width(tile.level, tile.index, new_size) != Some(tile.width) {
            return Err(invalid(format!(
                "{log} tile {} does not have the width of a tree of size {new_size}",
                tile.path()
            )));
        }
        if data.len() != tile.byte_len() {
            return Err(invalid(format!(
                "{log} tile {} has {} bytes, expected {}",
                tile.path(),
                data.len(),
                tile.byte_len()
            )));
        }
        let changed = upsert
            .execute(rusqlite::params![
                i64::from(tile.level),
                to_i64(tile.index, "tile index")?,
                data
            ])
            .db()?;
        if changed == 0 {
            return Err(invalid(format!(
                "{log} tile {} does not extend the stored tile",
                tile.path()
            )));
        }
    }
    Ok(())
}

/// Advances `log`'s stored size (checked by [`check_extend`], so it fits).
fn set_size(tx: &Connection, log: LogId, old_size: u64, new_size: u64) -> Result<()> {
    if new_size != old_size {
        tx.prepare_cached(sql(log).update_size)
            .db()?
            .execute([new_size as i64])
            .db()?;
    }
    Ok(())
}

/// A page cursor as SQLite INTEGER; `Err` if it lies past `i64::MAX`,
/// where nothing can be stored (the page is empty).
fn cursor(after: Option<u64>) -> std::result::Result<Option<i64>, ()> {
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
fn query_page<T>(
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

fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next: None,
    }
}

// --- decoding rows, checking every value read -------------------------------

fn col_i64(row: &Row<'_>, idx: usize, what: &str) -> Result<i64> {
    match row.get_ref(idx).db()? {
        ValueRef::Integer(v) => Ok(v),
        other => Err(corrupt(format!(
            "{what} is {}, expected an integer",
            other.data_type()
        ))),
    }
}

fn col_text(row: &Row<'_>, idx: usize, what: &str) -> Result<String> {
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

fn col_opt_text(row: &Row<'_>, idx: usize, what: &str) -> Result<Option<String>> {
    match row.get_ref(idx).db()? {
        ValueRef::Null => Ok(None),
        _ => col_text(row, idx, what).map(Some),
    }
}

fn col_blob<'r>(row: &'r Row<'_>, idx: usize, what: &str) -> Result<&'r [u8]> {
    match row.get_ref(idx).db()? {
        ValueRef::Blob(b) => Ok(b),
        other => Err(corrupt(format!(
            "{what} is {}, expected a blob",
            other.data_type()
        ))),
    }
}

fn col_hash(row: &Row<'_>, idx: usize, what: &str) -> Result<[u8; 32]> {
    let b = col_blob(row, idx, what)?;
    b.try_into()
        .map_err(|_| corrupt(format!("{what} has {} bytes, expected 32", b.len())))
}

/// Decodes a row of [`RECORD_COLUMNS`].
fn decode_record(row: &Row<'_>) -> Result<EvidenceRow> {
    let leaf_index = to_u64(col_i64(row, 0, "leaf_index")?, "leaf_index")?;
    let at = |what: &str| format!("{what} of record {leaf_index}");
    let payload = match row.get_ref(10).db()? {
        ValueRef::Null => Payload::External,
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

/// Runs a single-record query over [`RECORD_COLUMNS`].
fn query_one_record(
    conn: &Connection,
    where_clause: &str,
    params: impl rusqlite::Params,
) -> Result<Option<EvidenceRow>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM records WHERE {where_clause}");
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt.query(params).db()?;
    rows.next().db()?.map(decode_record).transpose()
}

/// Decodes a row of [`AUDIT_COLUMNS`].
fn decode_audit(row: &Row<'_>) -> Result<AuditRow> {
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

/// Runs a single-event query over [`AUDIT_COLUMNS`].
fn query_one_audit(
    conn: &Connection,
    where_clause: &str,
    params: impl rusqlite::Params,
) -> Result<Option<AuditRow>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE {where_clause}");
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt.query(params).db()?;
    rows.next().db()?.map(decode_audit).transpose()
}

fn decode_checkpoint(row: &Row<'_>) -> Result<StoredCheckpoint> {
    let size = to_u64(col_i64(row, 0, "checkpoint size")?, "checkpoint size")?;
    Ok(StoredCheckpoint {
        size,
        note: col_text(row, 1, &format!("note of checkpoint {size}"))?,
        created_at_ms: col_i64(row, 2, &format!("created_at_ms of checkpoint {size}"))?,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The columns of the UNIQUE or PRIMARY KEY constraint `e` violated
/// (`table.column, …`), if that is what failed.
fn violated_key(e: &rusqlite::Error) -> Option<String> {
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

/// Turns a failed audit event insert into the error the caller can act on.
fn audit_insert_error(e: rusqlite::Error, ev: &AuditRow) -> StoreError {
    match violated_key(&e).as_deref() {
        Some("audit_events.id") => StoreError::Duplicate(format!("audit event id {}", ev.id)),
        Some("audit_events.leaf_index") => corrupt(format!(
            "an audit event with leaf index {} exists beyond the audit tree size",
            ev.leaf_index
        )),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Turns a failed record insert into the error the caller can act on.
fn record_insert_error(e: rusqlite::Error, rec: &EvidenceRow) -> StoreError {
    match violated_key(&e).as_deref() {
        Some("records.id") => StoreError::Duplicate(format!("record id {}", rec.id)),
        Some("records.dedup_key") => {
            StoreError::Duplicate(format!("dedup key {}", hex(&rec.dedup_key)))
        }
        Some("records.ingested_by, records.idempotency_key") => StoreError::Duplicate(format!(
            "idempotency key {:?} of {}",
            rec.idempotency_key.as_deref().unwrap_or_default(),
            rec.ingested_by
        )),
        Some("records.leaf_index") => corrupt(format!(
            "a record with leaf index {} exists beyond the tree size",
            rec.leaf_index
        )),
        Some(other) if other.starts_with("record_labels.") => corrupt(format!(
            "labels of leaf index {} exist beyond the tree size",
            rec.leaf_index
        )),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// The two inserts of an analytics record, prepared in the append's
/// transaction.
struct AnalyticsStatements<'c> {
    event: CachedStatement<'c>,
    metric: CachedStatement<'c>,
}

impl AnalyticsStatements<'_> {
    /// Inserts the analytics row of the record at `index` (inserted just
    /// before, in the same transaction) and its metrics.
    fn insert(&mut self, index: i64, ingested_by: &str, a: &AnalyticsRow) -> Result<()> {
        let at = || format!("analytics row of leaf index {index}");
        // SQLite stores NaN as NULL and infinities as values no summary can
        // use; the vault never sends them.
        if a.value.is_some_and(|v| !v.is_finite()) {
            return Err(invalid(format!("{}: value is not finite", at())));
        }
        self.event
            .execute(rusqlite::params![
                index,
                a.source,
                a.kind,
                a.timestamp_ms,
                a.value,
                a.unit,
                ingested_by,
            ])
            .map_err(|e| match violated_key(&e).as_deref() {
                Some("analytics_events.leaf_index") => {
                    corrupt(format!("an {} exists beyond the tree size", at()))
                }
                _ => StoreError::Backend(Box::new(e)),
            })?;
        for (name, value) in &a.metrics {
            if !value.is_finite() {
                return Err(invalid(format!("{}: metric {name:?} is not finite", at())));
            }
            self.metric
                .execute(rusqlite::params![index, name, value])
                .map_err(|e| match violated_key(&e).as_deref() {
                    Some(k) if k.starts_with("analytics_metrics.") => {
                        invalid(format!("{}: metric {name:?} given twice", at()))
                    }
                    _ => StoreError::Backend(Box::new(e)),
                })?;
        }
        Ok(())
    }
}

/// A REAL aggregate; `None` for NULL (no rows to aggregate).
fn col_opt_f64(row: &Row<'_>, idx: usize, what: &str) -> Result<Option<f64>> {
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

/// [`Stats`] from `count, min, max, avg` at `first..first + 4`; `None`
/// when the count is 0.
fn decode_stats(row: &Row<'_>, first: usize, what: &str) -> Result<Option<Stats>> {
    let count = to_u64(col_i64(row, first, what)?, what)?;
    if count == 0 {
        return Ok(None);
    }
    let num = |i: usize| -> Result<f64> {
        col_opt_f64(row, first + i, what)?
            .ok_or_else(|| corrupt(format!("{what}: aggregate of {count} values is NULL")))
    };
    Ok(Some(Stats {
        count,
        min: num(1)?,
        max: num(2)?,
        mean: num(3)?,
    }))
}

/// The WHERE terms (over `analytics_events e`) and parameters of an
/// analytics query.
fn analytics_filter(q: &AnalyticsQuery) -> (String, Vec<Value>) {
    let mut sql = String::new();
    let mut params = Vec::new();
    for (column, value) in [
        ("source", &q.source),
        ("kind", &q.kind),
        ("ingested_by", &q.ingested_by),
    ] {
        if let Some(v) = value {
            sql.push_str(&format!(" AND e.{column} = ?"));
            params.push(Value::Text(v.clone()));
        }
    }
    if let Some(since) = q.since_ms {
        sql.push_str(" AND e.ts_ms >= ?");
        params.push(Value::Integer(since));
    }
    if let Some(until) = q.until_ms {
        sql.push_str(" AND e.ts_ms < ?");
        params.push(Value::Integer(until));
    }
    (sql, params)
}

impl Store for SqliteStore {
    fn tree_size(&self, log: LogId) -> Result<u64> {
        read_size(&self.readers.get(), log)
    }

    fn append(&self, batch: &AppendBatch<'_>) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        // Both logs' sizes are checked before anything is written; any
        // error below drops `tx`, which rolls back both logs' parts.
        let new_size = check_extend(&tx, LogId::Evidence, batch.old_size, batch.records.len())?;
        let audit_new_size = match &batch.audit {
            Some(a) => Some(check_extend(&tx, LogId::Audit, a.old_size, a.events.len())?),
            None => None,
        };

        {
            let mut insert_record = tx.prepare_cached(INSERT_RECORD).db()?;
            let mut insert_label = tx.prepare_cached(INSERT_LABEL).db()?;
            // Prepared on the first analytics record only: batches without
            // one pay nothing for them.
            let mut insert_analytics: Option<AnalyticsStatements<'_>> = None;
            let mut labels_json = String::with_capacity(256);
            for (expected, rec) in (batch.old_size..).zip(batch.records) {
                if rec.leaf_index != expected {
                    return Err(StoreError::NonConsecutiveIndex {
                        expected,
                        got: rec.leaf_index,
                    });
                }
                // Below new_size, which fits in i64.
                let index = expected as i64;
                let payload = match &rec.payload {
                    Payload::Inline(bytes) => Some(bytes.as_slice()),
                    Payload::External => None,
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
                    .map_err(|e| record_insert_error(e, rec))?;
                for (key, value) in &rec.labels {
                    insert_label
                        .execute(rusqlite::params![key, value, index])
                        .map_err(|e| record_insert_error(e, rec))?;
                }
                if let Some(analytics) = &rec.analytics {
                    if insert_analytics.is_none() {
                        insert_analytics = Some(AnalyticsStatements {
                            event: tx.prepare_cached(INSERT_ANALYTICS).db()?,
                            metric: tx.prepare_cached(INSERT_ANALYTICS_METRIC).db()?,
                        });
                    }
                    if let Some(stmts) = insert_analytics.as_mut() {
                        stmts.insert(index, &rec.ingested_by, analytics)?;
                    }
                }
            }
        }
        write_tiles(&tx, LogId::Evidence, new_size, batch.tiles)?;
        set_size(&tx, LogId::Evidence, batch.old_size, new_size)?;

        if let (Some(audit), Some(audit_new_size)) = (&batch.audit, audit_new_size) {
            {
                let mut insert = tx.prepare_cached(INSERT_AUDIT).db()?;
                for (expected, ev) in (audit.old_size..).zip(audit.events) {
                    if ev.leaf_index != expected {
                        return Err(StoreError::NonConsecutiveIndex {
                            expected,
                            got: ev.leaf_index,
                        });
                    }
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
                        .map_err(|e| audit_insert_error(e, ev))?;
                }
            }
            write_tiles(&tx, LogId::Audit, audit_new_size, audit.tiles)?;
            set_size(&tx, LogId::Audit, audit.old_size, audit_new_size)?;
        }
        tx.commit().db()
    }

    fn read_tiles(&self, log: LogId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql(log).read_tile).db()?;
        let mut out = Vec::with_capacity(tiles.len());
        for &tile in tiles {
            let Ok(index) = i64::try_from(tile.index) else {
                return Err(StoreError::TileUnavailable(tile));
            };
            if tile.width == 0 || tile.width > TILE_WIDTH {
                return Err(StoreError::TileUnavailable(tile));
            }
            let want = tile.byte_len();
            let mut rows = stmt
                .query(rusqlite::params![i64::from(tile.level), index, want as i64])
                .db()?;
            let Some(row) = rows.next().db()? else {
                return Err(StoreError::TileUnavailable(tile));
            };
            let stored = col_i64(row, 0, "tile length")?;
            if stored < 0
                || !(stored as usize).is_multiple_of(HASH_BYTES)
                || stored as usize > TILE_WIDTH as usize * HASH_BYTES
            {
                return Err(corrupt(format!(
                    "stored {log} tile {}/{} has {stored} bytes",
                    tile.level, tile.index
                )));
            }
            if (stored as usize) < want {
                return Err(StoreError::TileUnavailable(tile));
            }
            let data = col_blob(row, 1, "tile data")?;
            if data.len() != want {
                return Err(corrupt(format!(
                    "stored {log} tile {}/{} returned {} bytes, expected {want}",
                    tile.level,
                    tile.index,
                    data.len()
                )));
            }
            out.push(data.to_vec());
        }
        Ok(out)
    }

    fn record_by_id(&self, id: &str) -> Result<Option<EvidenceRow>> {
        query_one_record(&self.readers.get(), "id = ?1", [id])
    }

    fn record_by_index(&self, leaf_index: u64) -> Result<Option<EvidenceRow>> {
        // No record can sit above i64::MAX.
        let Ok(index) = i64::try_from(leaf_index) else {
            return Ok(None);
        };
        query_one_record(&self.readers.get(), "leaf_index = ?1", [index])
    }

    fn record_by_dedup_key(&self, dedup_key: &[u8; 32]) -> Result<Option<EvidenceRow>> {
        query_one_record(
            &self.readers.get(),
            "dedup_key = ?1",
            [dedup_key.as_slice()],
        )
    }

    fn records_by_dedup_keys(&self, keys: &[[u8; 32]]) -> Result<Vec<EvidenceRow>> {
        /// Keys per query. A short last chunk is padded with its last key
        /// (repeats in `IN` are harmless), so one cached statement serves all.
        const CHUNK: usize = 128;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.readers.get();
        // One read transaction: one lock round trip, one snapshot.
        let tx = conn.unchecked_transaction().db()?;
        let placeholders = vec!["?"; CHUNK].join(",");
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM records WHERE dedup_key IN ({placeholders})");
        let mut stmt = tx.prepare_cached(&sql).db()?;
        let mut found = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            let last = chunk[chunk.len() - 1];
            let params = (0..CHUNK).map(|i| chunk.get(i).unwrap_or(&last).to_vec());
            let mut rows = stmt.query(rusqlite::params_from_iter(params)).db()?;
            while let Some(row) = rows.next().db()? {
                found.push(decode_record(row)?);
            }
        }
        drop(stmt);
        tx.finish().db()?;
        Ok(found)
    }

    fn record_by_idempotency_key(&self, principal: &str, key: &str) -> Result<Option<EvidenceRow>> {
        query_one_record(
            &self.readers.get(),
            "ingested_by = ?1 AND idempotency_key = ?2",
            [principal, key],
        )
    }

    fn leaf_data_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        if start > end {
            return Err(invalid(format!("leaf range {start}..{end} is reversed")));
        }
        let conn = self.readers.get();
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

    fn list(&self, query: &ListQuery) -> Result<Page<EvidenceRow>> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let Ok(after) = cursor(query.after_index) else {
            return Ok(empty_page());
        };

        let mut sql = format!("SELECT r.{}", RECORD_COLUMNS.replace(", ", ", r."));
        let mut params: Vec<Value> = Vec::new();
        // A label filter drives the scan through record_labels, whose
        // primary key yields matches in leaf order; further labels are one
        // primary-key probe per candidate.
        let order = if let Some(((key, value), rest)) = query.labels.split_first() {
            sql.push_str(
                " FROM record_labels l0 JOIN records r ON r.leaf_index = l0.leaf_index \
                 WHERE l0.key = ? AND l0.value = ?",
            );
            params.push(Value::Text(key.clone()));
            params.push(Value::Text(value.clone()));
            for (key, value) in rest {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM record_labels l \
                     WHERE l.key = ? AND l.value = ? AND l.leaf_index = r.leaf_index)",
                );
                params.push(Value::Text(key.clone()));
                params.push(Value::Text(value.clone()));
            }
            "l0.leaf_index"
        } else {
            sql.push_str(" FROM records r WHERE 1");
            "r.leaf_index"
        };
        if let Some(after) = after {
            sql.push_str(&format!(" AND {order} > ?"));
            params.push(Value::Integer(after));
        }
        if let Some(ct) = &query.content_type {
            sql.push_str(" AND r.content_type = ?");
            params.push(Value::Text(ct.clone()));
        }
        if let Some(by) = &query.ingested_by {
            sql.push_str(" AND r.ingested_by = ?");
            params.push(Value::Text(by.clone()));
        }
        if let Some(since) = query.since_ms {
            sql.push_str(" AND r.ingested_at_ms >= ?");
            params.push(Value::Integer(since));
        }
        if let Some(until) = query.until_ms {
            sql.push_str(" AND r.ingested_at_ms < ?");
            params.push(Value::Integer(until));
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
        params.push(Value::Integer(i64::from(limit)));

        query_page(
            &self.readers.get(),
            &sql,
            params,
            limit,
            decode_record,
            |r| r.leaf_index,
        )
    }

    fn audit_by_index(&self, leaf_index: u64) -> Result<Option<AuditRow>> {
        let Ok(index) = i64::try_from(leaf_index) else {
            return Ok(None);
        };
        query_one_audit(&self.readers.get(), "leaf_index = ?1", [index])
    }

    fn audit_by_id(&self, id: &str) -> Result<Option<AuditRow>> {
        query_one_audit(&self.readers.get(), "id = ?1", [id])
    }

    fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditRow>> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let Ok(after) = cursor(query.after_index) else {
            return Ok(empty_page());
        };
        // Equalities on principal, operation or outcome scan their index in
        // leaf order (each entry ends in the rowid); SQLite picks one.
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1");
        let mut params: Vec<Value> = Vec::new();
        if let Some(after) = after {
            sql.push_str(" AND leaf_index > ?");
            params.push(Value::Integer(after));
        }
        for (column, value) in [
            ("principal", &query.principal),
            ("operation", &query.operation),
            ("outcome", &query.outcome),
        ] {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                params.push(Value::Text(v.clone()));
            }
        }
        // The outcome index is partial (WHERE outcome <> 'success'); SQLite
        // uses it only if the query states that term itself.
        if query.outcome.as_deref().is_some_and(|o| o != "success") {
            sql.push_str(" AND outcome <> 'success'");
        }
        if let Some(since) = query.since_ms {
            sql.push_str(" AND time_ms >= ?");
            params.push(Value::Integer(since));
        }
        if let Some(until) = query.until_ms {
            sql.push_str(" AND time_ms < ?");
            params.push(Value::Integer(until));
        }
        sql.push_str(" ORDER BY leaf_index LIMIT ?");
        params.push(Value::Integer(i64::from(limit)));

        query_page(
            &self.readers.get(),
            &sql,
            params,
            limit,
            decode_audit,
            |r| r.leaf_index,
        )
    }

    fn analytics_summary(&self, query: &AnalyticsQuery) -> Result<Vec<AnalyticsGroup>> {
        let (filter, params) = analytics_filter(query);
        let conn = self.readers.get();
        // One read transaction: the groups and their metrics see one state.
        let tx = conn.unchecked_transaction().db()?;

        let mut groups: Vec<AnalyticsGroup> = Vec::new();
        {
            let sql = format!(
                "SELECT e.source, e.kind, count(*), min(e.ts_ms), max(e.ts_ms), \
                 count(e.value), min(e.value), max(e.value), avg(e.value), \
                 count(e.unit), min(e.unit), max(e.unit) \
                 FROM analytics_events e WHERE 1{filter} \
                 GROUP BY e.source, e.kind ORDER BY e.source, e.kind"
            );
            let mut stmt = tx.prepare_cached(&sql).db()?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).db()?;
            while let Some(row) = rows.next().db()? {
                let source = col_text(row, 0, "analytics source")?;
                let kind = col_text(row, 1, "analytics kind")?;
                let what = format!("analytics group {source:?}/{kind:?}");
                let count = to_u64(col_i64(row, 2, &what)?, &what)?;
                let units = to_u64(col_i64(row, 9, &what)?, &what)?;
                let min_unit = col_opt_text(row, 10, &what)?;
                let max_unit = col_opt_text(row, 11, &what)?;
                // One unit only if every event has one and they agree.
                let unit = min_unit.filter(|u| units == count && max_unit.as_ref() == Some(u));
                groups.push(AnalyticsGroup {
                    count,
                    first_ms: col_i64(row, 3, &what)?,
                    last_ms: col_i64(row, 4, &what)?,
                    value: decode_stats(row, 5, &what)?,
                    unit,
                    metrics: BTreeMap::new(),
                    source,
                    kind,
                });
            }
        }
        if groups.is_empty() {
            return Ok(groups);
        }

        let sql = format!(
            "SELECT e.source, e.kind, m.name, count(*), min(m.value), max(m.value), \
             avg(m.value) \
             FROM analytics_events e JOIN analytics_metrics m ON m.leaf_index = e.leaf_index \
             WHERE 1{filter} \
             GROUP BY e.source, e.kind, m.name ORDER BY e.source, e.kind, m.name"
        );
        let mut stmt = tx.prepare_cached(&sql).db()?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).db()?;
        while let Some(row) = rows.next().db()? {
            let source = col_text(row, 0, "analytics source")?;
            let kind = col_text(row, 1, "analytics kind")?;
            let name = col_text(row, 2, "analytics metric name")?;
            let what = format!("metric {name:?} of analytics group {source:?}/{kind:?}");
            // Both queries order by BINARY collation, which is Rust's
            // string order.
            let group = groups
                .binary_search_by(|g| {
                    (g.source.as_str(), g.kind.as_str()).cmp(&(source.as_str(), kind.as_str()))
                })
                .ok()
                .and_then(|i| groups.get_mut(i))
                .ok_or_else(|| corrupt(format!("{what} has no event row")))?;
            if let Some(stats) = decode_stats(row, 3, &what)? {
                group.metrics.insert(name, stats);
            }
        }
        Ok(groups)
    }

    fn put_checkpoint(&self, log: LogId, checkpoint: &StoredCheckpoint) -> Result<()> {
        let size = to_i64(checkpoint.size, "checkpoint size")?;
        let conn = self.writer();
        conn.prepare_cached(sql(log).put_checkpoint)
            .db()?
            .execute(rusqlite::params![
                size,
                checkpoint.note,
                checkpoint.created_at_ms
            ])
            .db()?;
        Ok(())
    }

    fn latest_checkpoint(&self, log: LogId) -> Result<Option<StoredCheckpoint>> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql(log).latest_checkpoint).db()?;
        let mut rows = stmt.query([]).db()?;
        rows.next().db()?.map(decode_checkpoint).transpose()
    }

    fn checkpoint_at(&self, log: LogId, size: u64) -> Result<Option<StoredCheckpoint>> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(None);
        };
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql(log).checkpoint_at).db()?;
        let mut rows = stmt.query([size]).db()?;
        rows.next().db()?.map(decode_checkpoint).transpose()
    }

    fn list_checkpoints(
        &self,
        log: LogId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        let Ok(after) = cursor(after) else {
            return Ok(Vec::new());
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql(log).list_checkpoints).db()?;
        let mut rows = stmt.query([after.unwrap_or(-1), i64::from(limit)]).db()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().db()? {
            out.push(decode_checkpoint(row)?);
        }
        Ok(out)
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let conn = self.readers.get();
        let mut stmt = conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .db()?;
        let mut rows = stmt.query([key]).db()?;
        match rows.next().db()? {
            Some(row) => col_text(row, 0, &format!("meta value {key:?}")).map(Some),
            None => Ok(None),
        }
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let conn = self.writer();
        conn.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .db()?
        .execute([key, value])
        .db()?;
        Ok(())
    }
}
