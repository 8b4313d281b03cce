//! The embedded SQLite driver.
//!
//! Two database files in WAL mode: the log database (`evault.db`, with
//! `synchronous=FULL`: a call that returns `Ok` has been committed and
//! fsynced) and the index follower's (`evault-index.db`, `index_db.rs`),
//! attached to every connection as `ix`. One writer connection (behind a
//! mutex; appends are serialised anyway), one follower connection (the
//! only writer of `ix`, so its batches never wait for a commit or hold one
//! up) and a small pool of reader connections, so proof and record reads
//! run concurrently with a commit in progress. See the crate README for
//! the schema.
//!
//! This module opens the store and wires [`Store`] to the modules that own
//! each part of the schema:
//! - `log_state`: each log's tree size, tiles and checkpoints;
//! - `records` (with `labels`), `audit`, `analytics`, `meta`, `tasks`: the
//!   rows of their tables;
//! - `schema`: migrations; `files`: file modes; `pool`: the readers;
//! - `rows`, `query`, `error`: checked values, queries and pages, errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use evault_merkle::tiles::TileId;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{
    AnalyticsGroup, AnalyticsQuery, AppendBatch, AuditIndex, AuditQuery, AuditRow, Cosignature,
    CosignatureStore, EvidenceIndex, EvidenceRow, EvidenceStats, ImportConflict, ImportCounts,
    IndexLookup, LabelEntry, ListQuery, LogId, LogStore, MirrorCheckpoint, MirrorImport, MirrorLog,
    MirrorRecord, MirrorStore, Page, Result, Scanned, StatsQuery, Store, StoredCheckpoint,
    StoredTileKey, TaskQuery, TaskRow, TaskStore,
};

mod analytics;
mod audit;
mod compliance;
mod cosignatures;
pub(crate) mod error;
mod files;
mod filters;
mod follower;
mod index_db;
pub(crate) mod labels;
mod log_state;
mod meta;
mod mirrors;
#[cfg(feature = "testing")]
mod old_schema;
mod pool;
mod query;
mod records;
mod rows;
mod scan;
mod schema;
mod stats;
mod tail;
mod tasks;
mod upgrade;

#[cfg(feature = "testing")]
pub use old_schema::rewrite_as_schema;
pub use upgrade::{Fingerprint, LogFingerprint, MigrationProgress, MigrationStep, OnMigration};

use error::{DbResult, invalid};
use pool::ReaderPool;

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Database page size for new files.
const PAGE_SIZE: i64 = 16384;
/// Prepared statements kept per connection: each log's tree statements,
/// the record and audit statements, and the list queries (one per filter
/// combination used).
const STATEMENT_CACHE: usize = 64;

/// Settings of the writer connection, applied on every open (after
/// `journal_mode=WAL`, which is persistent and checked separately).
///
/// - `synchronous=FULL`: every commit fsyncs the WAL; `Ok` means durable.
/// - `foreign_keys=ON`: labels must belong to a record.
/// - `cache_size` 16 MiB: since schema 10 a commit writes no random-keyed
///   index (and since 11 the follower's batches have their own connection
///   and file, `index_db.rs`). At 64 MiB
///   (when the dedup index was written by every commit) the cache filled
///   with the follower's random pages and the 2,000,000-record stream test
///   peaked at 390 MiB resident (its bound is 256 MiB); at 16 MiB, 240 MiB;
///   with the 4 MiB reader caches and the soft heap limit below, 138 MiB.
/// - `wal_autocheckpoint` 1024 pages (16 MiB at 16 KiB pages): the WAL is
///   copied back once it holds 16 MiB, so on a small disk it never takes
///   much more (at 4096 pages it reached 46 MB after 130 commits of 59 KB
///   payloads: what fills a small disk). Index pages rewritten by
///   consecutive batches are still copied back once per 16 MiB.
/// - `secure_delete=ON`: deleted content (an erased payload) is
///   overwritten with zeros, not left in free pages.
/// - `journal_size_limit` 16 MiB: when the WAL restarts after a checkpoint
///   its file is truncated to this instead of staying at its high-water
///   mark. Peak: about 16 MiB plus one group commit (see the README).
/// - `soft_heap_limit` 56 MiB, the caches' sum (the writer's 16 MiB, the
///   follower's 16 MiB for the index database and 2 MiB for the log's,
///   four readers' 4 MiB and 1 MiB, 1 MiB to spare): past it every page cache recycles its own pages
///   instead of growing. Without it a group commit's dirty pages, the
///   follower's sorts and a reader's transaction overshoot the caches
///   together (SQLite's heap reached 118 MiB streaming 2,000,000 records)
///   and the freed overshoot stays in the process as fragmented heap; with
///   the limit (schema 9, a 64 MiB writer cache then) that test peaked at
///   207 MiB resident instead of 226 MiB. The limit is SQLite's,
///   process-wide; every store sets the same value.
const WRITER_PRAGMAS: &str = "
    PRAGMA synchronous = FULL;
    PRAGMA foreign_keys = ON;
    PRAGMA cache_size = -16384;
    PRAGMA temp_store = MEMORY;
    PRAGMA wal_autocheckpoint = 1024;
    PRAGMA journal_size_limit = 16777216;
    PRAGMA secure_delete = ON;
    PRAGMA soft_heap_limit = 58720256;
";

/// The embedded SQLite store. Cheap to share: `Send + Sync`, put it in an
/// `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// The index follower's connection: the only one that writes `ix`.
    follower: Mutex<Connection>,
    readers: ReaderPool,
    /// The unique keys of the records past the follower's cursor
    /// (`tail.rs`); changed only under the writer lock.
    tail: Mutex<tail::Tail>,
    /// A Bloom filter per run of the follower's unique-key indexes
    /// (`filters.rs`): read after the tail, before a lookup's snapshot.
    filters: RwLock<filters::Filters>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and its index
    /// database ([`SqliteStore::index_path`]), applies pending migrations,
    /// and restricts both files and their `-wal`/`-shm` companions to mode
    /// 0600. A missing parent directory is created with mode 0700.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_progress(path, &|_| {})
    }

    /// [`SqliteStore::open`], reporting the steps of a migration (and of
    /// the indexing at open) to `progress` as they run.
    pub fn open_with_progress(path: &Path, progress: OnMigration<'_>) -> Result<Self> {
        files::create_private_file(path)?;
        let ix_path = index_db::path_for(path);
        files::create_private_file(&ix_path)?;

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
        // Incremental auto-vacuum lets an erasure give the pages of the
        // erased bytes back to the file system; like page_size it only
        // takes effect on a new file (`evault compact` converts old ones).
        writer
            .pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .db()?;
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
        index_db::attach(&writer, &ix_path)?;
        index_db::configure_writer(&writer, &ix_path)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut writer, progress)?;
        files::restrict_companions(path)?;
        files::restrict_companions(&ix_path)?;

        // The writer leaves `ix` to the follower: a `BEGIN IMMEDIATE` takes
        // the write lock of every attached file, so with `ix` attached each
        // commit would wait for a follower batch, and it writes no table
        // there.
        writer.flush_prepared_statement_cache();
        writer.execute("DETACH DATABASE ix", []).db()?;

        let mut follower = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        follower.busy_timeout(BUSY_TIMEOUT).db()?;
        index_db::attach(&follower, &ix_path)?;
        follower.execute_batch(index_db::FOLLOWER_PRAGMAS).db()?;
        follower.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Bounds the tail below (a lost index database starts at cursor
        // 0). A failure here is the follower's to retry: the store opens
        // with the longer tail, exact as ever.
        if let Err(e) = follower::catch_up(&mut follower, progress) {
            tracing::warn!("indexing at open failed ({e}); the index follower will retry");
        }
        let tail = tail::Tail::load(&follower, follower::indexed_through(&follower)?)?;
        let filters = filters::Filters::load(&follower, true)?;

        let readers = ReaderPool::open(path, &ix_path)?;
        // Opening readers can create the -shm files; restrict them too.
        files::restrict_companions(path)?;
        files::restrict_companions(&ix_path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            follower: Mutex::new(follower),
            readers,
            tail: Mutex::new(tail),
            filters: RwLock::new(filters),
        })
    }

    /// The schema versions and both logs' fingerprints of the database at
    /// `path`, read without writing to its directory, from any schema
    /// version: equal fingerprints before and after a conversion mean it
    /// changed no leaf, tile, tree size or checkpoint.
    pub fn fingerprint(path: &Path) -> Result<Fingerprint> {
        upgrade::fingerprint(path)
    }

    /// Whether [`SqliteStore::open`] would convert the existing database
    /// at `path` (its schema or its index database's is older than this
    /// binary's, or the index database is missing). Reads only the two
    /// version numbers.
    pub fn needs_migration(path: &Path) -> Result<bool> {
        upgrade::needs_migration(path)
    }

    /// The index database of the log database at `path`
    /// (`evault.db` → `evault-index.db`): the index follower's tables,
    /// derived from the records; a missing one is rebuilt by the follower.
    pub fn index_path(path: &Path) -> PathBuf {
        index_db::path_for(path)
    }

    /// Opens an existing database for reading only, changing nothing in
    /// its directory: no file is created, migrated or chmod'ed, and every
    /// write fails. For `evault fsck` on a stopped vault. A database whose
    /// write-ahead log was checkpointed away (a clean shutdown) is opened
    /// `immutable` (no `-wal`/`-shm` is created); one with a non-empty
    /// `-wal` (a crash) is opened read-only so the committed transactions
    /// in the log are read too, and SQLite may then create the `-shm`
    /// index of that log (derived state, no data). The index database is
    /// opened the same way and must be complete. The schema must be the
    /// one this binary writes: an older one is refused (`evault serve`
    /// migrates it), a newer one is [`StoreError::SchemaTooNew`].
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(invalid(format!("no database file at {}", path.display())));
        }
        let ix_path = index_db::path_for(path);
        let uri = read_only_uri(path);
        let ix_uri = read_only_uri(&ix_path);
        let open = || -> Result<Connection> {
            let conn = Connection::open_with_flags(
                &uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .db()?;
            pool::configure_reader(&conn)?;
            if ix_path.is_file() {
                index_db::attach_uri(&conn, &ix_uri)?;
                conn.execute_batch(index_db::READER_PRAGMAS).db()?;
            }
            Ok(conn)
        };
        let writer = open()?;
        let found = schema::version(&writer)?;
        schema::check_not_too_new(found)?;
        if found != schema::SCHEMA_VERSION {
            return Err(invalid(format!(
                "{} has schema version {found}, this binary reads {}: convert it with \
                 `evault migrate` (or start `evault serve` on it once)",
                path.display(),
                schema::SCHEMA_VERSION
            )));
        }
        if !ix_path.is_file() || !index_db::is_current(&writer)? {
            return Err(invalid(format!(
                "the index database {} is missing or incomplete: rebuild it with `evault \
                 migrate` (or start `evault serve` on the data directory once)",
                ix_path.display()
            )));
        }
        let tail = tail::Tail::load(&writer, follower::indexed_through(&writer)?)?;
        let filters = filters::Filters::load(&writer, false)?;
        let follower = open()?;
        let readers = ReaderPool::open_with(open)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            follower: Mutex::new(follower),
            readers,
            tail: Mutex::new(tail),
            filters: RwLock::new(filters),
        })
    }

    /// A plain connection to the database at `path` with its index
    /// database attached as `ix`, so every table has the name the store's
    /// queries use: for tests that inspect or damage the files, and for
    /// benchmarks. Not an API.
    #[doc(hidden)]
    pub fn raw_connection(path: &Path) -> rusqlite::Result<Connection> {
        use std::os::unix::ffi::OsStrExt;
        let conn = Connection::open(path)?;
        let ix = index_db::path_for(path);
        conn.execute("ATTACH DATABASE ?1 AS ix", [ix.as_os_str().as_bytes()])?;
        Ok(conn)
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

    fn follower(&self) -> MutexGuard<'_, Connection> {
        self.follower.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn filters(&self) -> std::sync::RwLockReadGuard<'_, filters::Filters> {
        // Each change is whole before the lock is released.
        self.filters.read().unwrap_or_else(|e| e.into_inner())
    }

    fn tail(&self) -> MutexGuard<'_, tail::Tail> {
        // Each change is whole before the lock is released (no await, no
        // fallible step in between), so a poisoned lock holds a whole tail.
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many committed records the store's in-memory key tail holds:
    /// those past the index follower's cursor (see `tail.rs`).
    pub fn unindexed_keys(&self) -> usize {
        self.tail().len()
    }
}

/// A `file:` URI that opens the database at `path` without writing: one
/// whose write-ahead log was checkpointed away is `immutable` (nothing is
/// created beside it), one with a non-empty `-wal` is `mode=ro`.
fn read_only_uri(path: &Path) -> String {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_len = std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len());
    format!(
        "file:{}?{}",
        uri_path(path),
        if wal_len == 0 {
            "immutable=1"
        } else {
            "mode=ro"
        }
    )
}

/// `path` for a `file:` URI: every byte outside the unreserved set is
/// percent-encoded, so `?`, `#` and `%` in a directory name stay part of
/// the path.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inner levels of a batch's full tiles, per log: hashed before the
/// write lock is taken, so the lock covers only the writes.
pub(super) struct BatchInner {
    evidence: Vec<Option<Vec<u8>>>,
    audit: Vec<Option<Vec<u8>>>,
}

impl BatchInner {
    pub(super) fn of(batch: &AppendBatch<'_>) -> Self {
        BatchInner {
            evidence: log_state::inner_levels(batch.tiles),
            audit: batch
                .audit
                .as_ref()
                .map(|a| log_state::inner_levels(a.tiles))
                .unwrap_or_default(),
        }
    }
}

/// Writes `batch` inside `tx` (an immediate transaction): both logs' sizes
/// are checked before anything is written; any error leaves `tx` to be
/// dropped, which rolls back both logs' parts. `inner` is
/// [`BatchInner::of`] the batch.
pub(super) fn append_in(
    tx: &Connection,
    batch: &AppendBatch<'_>,
    inner: &BatchInner,
) -> Result<()> {
    let new_size =
        log_state::check_extend(tx, LogId::Evidence, batch.old_size, batch.records.len())?;
    let audit_new_size = match &batch.audit {
        Some(a) => Some(log_state::check_extend(
            tx,
            LogId::Audit,
            a.old_size,
            a.events.len(),
        )?),
        None => None,
    };

    records::insert(tx, batch.old_size, batch.records)?;
    log_state::write_tiles(tx, LogId::Evidence, new_size, batch.tiles, &inner.evidence)?;
    log_state::set_size(tx, LogId::Evidence, batch.old_size, new_size)?;

    if let (Some(audit), Some(audit_new_size)) = (&batch.audit, audit_new_size) {
        audit::insert(tx, audit.old_size, audit.events)?;
        log_state::write_tiles(tx, LogId::Audit, audit_new_size, audit.tiles, &inner.audit)?;
        log_state::set_size(tx, LogId::Audit, audit.old_size, audit_new_size)?;
    }
    Ok(())
}

impl LogStore for SqliteStore {
    fn tree_size(&self, log: LogId) -> Result<u64> {
        log_state::read_size(&self.readers.get(), log)
    }

    fn append(&self, batch: &AppendBatch<'_>) -> Result<()> {
        let inner = BatchInner::of(batch);
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        append_in(&tx, batch, &inner)?;
        tx.commit().db()?;
        // Still under the writer lock: see `tail.rs`.
        self.tail().committed(batch.records);
        Ok(())
    }

    fn read_tiles(&self, log: LogId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
        log_state::read_tiles(&self.readers.get(), log, tiles)
    }

    fn read_tiles_with_inner(
        &self,
        log: LogId,
        tiles: &[TileId],
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        log_state::read_tiles_inner(&self.readers.get(), log, tiles, true)
    }

    fn record_by_index(&self, leaf_index: u64) -> Result<Option<EvidenceRow>> {
        records::by_index(&self.readers.get(), leaf_index)
    }

    fn leaf_data_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        records::leaf_data_range(&self.readers.get(), start, end)
    }

    fn audit_by_index(&self, leaf_index: u64) -> Result<Option<AuditRow>> {
        audit::by_index(&self.readers.get(), leaf_index)
    }

    fn put_checkpoint(&self, log: LogId, checkpoint: &StoredCheckpoint) -> Result<()> {
        log_state::put_checkpoint(&self.writer(), log, checkpoint)
    }

    fn latest_checkpoint(&self, log: LogId) -> Result<Option<StoredCheckpoint>> {
        log_state::latest_checkpoint(&self.readers.get(), log)
    }

    fn checkpoint_at(&self, log: LogId, size: u64) -> Result<Option<StoredCheckpoint>> {
        log_state::checkpoint_at(&self.readers.get(), log, size)
    }

    fn list_checkpoints(
        &self,
        log: LogId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        log_state::list_checkpoints(&self.readers.get(), log, after, limit)
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        meta::get(&self.readers.get(), key)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        meta::set(&self.writer(), key, value)
    }

    fn meta_entries(&self) -> Result<Vec<(String, String)>> {
        meta::all(&self.readers.get())
    }

    fn scan_records(&self, start: u64, end: u64) -> Result<Vec<Scanned<EvidenceRow>>> {
        scan::records(&self.readers.get(), start, end)
    }

    fn scan_audit(&self, start: u64, end: u64) -> Result<Vec<Scanned<AuditRow>>> {
        scan::audit(&self.readers.get(), start, end)
    }

    fn leaf_rows(&self, log: LogId) -> Result<(u64, Option<u64>)> {
        scan::row_bounds(&self.readers.get(), log)
    }

    fn tile_keys(&self, log: LogId) -> Result<Vec<StoredTileKey>> {
        scan::tile_keys(&self.readers.get(), log)
    }

    fn stored_tile(&self, log: LogId, level: u8, index: u64) -> Result<Option<Vec<u8>>> {
        scan::tile(&self.readers.get(), log, level, index)
    }
}

impl EvidenceIndex for SqliteStore {
    fn record_by_id(&self, id: &str) -> Result<Option<EvidenceRow>> {
        records::by_id(&self.readers.get(), id)
    }

    // Each unique-key lookup asks the in-memory tail first and the
    // follower's index after, in that order (`tail.rs` says why). A key
    // found in both (twins, which the sequencer never writes) leads to
    // the lower leaf, the index's.
    fn record_by_dedup_key(&self, dedup_key: &[u8; 32]) -> Result<Option<EvidenceRow>> {
        let in_tail = self.tail().by_dedup_key(dedup_key);
        let ranges = self.filters().dedup_ranges(dedup_key);
        let conn = self.readers.get();
        match records::by_dedup_key(&conn, dedup_key, &ranges)? {
            Some(r) => Ok(Some(r)),
            None => in_tail.map_or(Ok(None), |leaf| records::by_index(&conn, leaf)),
        }
    }

    fn records_by_dedup_keys(&self, keys: &[[u8; 32]]) -> Result<Vec<EvidenceRow>> {
        let in_tail: Vec<([u8; 32], u64)> = {
            let tail = self.tail();
            keys.iter()
                .filter_map(|k| tail.by_dedup_key(k).map(|leaf| (*k, leaf)))
                .collect()
        };
        // Only the keys a run's filter may hold are searched for, and only
        // in the leaves of those runs.
        let mut maybe: std::collections::BTreeMap<filters::LeafRange, Vec<[u8; 32]>> =
            std::collections::BTreeMap::new();
        {
            let filters = self.filters();
            for k in keys {
                for range in filters.dedup_ranges(k) {
                    maybe.entry(range).or_default().push(*k);
                }
            }
        }
        let conn = self.readers.get();
        let mut found = records::by_dedup_keys(&conn, &maybe)?;
        let indexed: std::collections::HashSet<[u8; 32]> =
            found.iter().map(|r| r.dedup_key).collect();
        let leaves: Vec<u64> = in_tail
            .into_iter()
            .filter(|(k, _)| !indexed.contains(k))
            .map(|(_, leaf)| leaf)
            .collect();
        found.extend(records::by_indexes(&conn, &leaves)?);
        Ok(found)
    }

    fn record_by_idempotency_key(&self, principal: &str, key: &str) -> Result<Option<EvidenceRow>> {
        let in_tail = self.tail().by_idempotency_key(principal, key);
        let ranges = self.filters().idempotency_ranges(principal, key);
        let conn = self.readers.get();
        match records::by_idempotency_key(&conn, principal, key, &ranges)? {
            Some(r) => Ok(Some(r)),
            None => in_tail.map_or(Ok(None), |leaf| records::by_index(&conn, leaf)),
        }
    }

    fn list(&self, query: &ListQuery) -> Result<Page<EvidenceRow>> {
        records::list(&self.readers.get(), query)
    }

    fn analytics_summary(&self, query: &AnalyticsQuery) -> Result<Vec<AnalyticsGroup>> {
        analytics::summary(&self.readers.get(), query)
    }

    fn evidence_stats(&self, query: &StatsQuery) -> Result<EvidenceStats> {
        stats::evidence(&self.readers.get(), query)
    }

    fn label_index_len(&self) -> Result<u64> {
        scan::label_index_len(&self.readers.get())
    }

    fn label_index_page(&self, after: Option<&LabelEntry>, limit: u32) -> Result<Vec<LabelEntry>> {
        scan::label_index_page(&self.readers.get(), after, limit)
    }

    fn label_entry_matches(&self, entry: &LabelEntry) -> Result<bool> {
        scan::has_label(&self.readers.get(), entry)
    }

    fn index_layout(&self) -> Result<Vec<String>> {
        follower::layout(&self.readers.get())
    }

    fn indexed_through(&self) -> Result<u64> {
        follower::indexed_through(&self.readers.get())
    }

    fn index_evidence(&self, through: u64, max_rows: u64) -> Result<u64> {
        let mut conn = self.follower();
        // Deferred, not immediate: an immediate transaction takes the write
        // lock of every attached file, the log's too, which is what the
        // index database exists to avoid. This one reads the log (a WAL
        // snapshot, never waiting for a commit) and writes `ix`, whose only
        // writer is this connection, so its upgrade to a write lock cannot
        // find a newer `ix` snapshot than the one it read.
        let tx = conn.transaction().db()?;
        let before = filters::live_runs(&tx)?;
        let reached = follower::index_evidence(&tx, through, max_rows)?;
        // The new runs' filters (the batch's, a merge's), stored with them
        // and known to lookups before the commit makes the runs visible
        // (`filters.rs`).
        // Built without the lock, which every lookup reads, for every run
        // this transaction made, even one the map names already: a failed
        // commit of an earlier try may have left a filter under the same
        // id, for fewer records.
        let live = filters::live_runs(&tx)?;
        let mut built = Vec::new();
        for run in live.iter().copied().filter(|r| !before.contains(r)) {
            let id = (run.run, run.level);
            let f = filters::RunFilter::build(&tx, id)?;
            filters::store(&tx, id, &f)?;
            built.push((id, run.end, f));
        }
        {
            let mut filters = self.filters.write().unwrap_or_else(|e| e.into_inner());
            for (id, end, f) in built {
                filters.add(id, end, f);
            }
        }
        tx.commit().db()?;
        // After the commit: the merged-away runs are gone from every new
        // snapshot, and the indexes hold these records (`tail.rs`).
        self.filters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .keep_only(&live);
        self.tail().indexed(reached);
        Ok(reached)
    }
}

impl AuditIndex for SqliteStore {
    fn audit_by_id(&self, id: &str) -> Result<Option<AuditRow>> {
        audit::by_id(&self.readers.get(), id)
    }

    fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditRow>> {
        audit::list(&self.readers.get(), query)
    }

    fn audit_outcomes(
        &self,
        since_ms: i64,
        until_ms: i64,
        principal: Option<&str>,
    ) -> Result<Vec<(String, u64)>> {
        stats::audit_outcomes(&self.readers.get(), since_ms, until_ms, principal)
    }
}

impl Store for SqliteStore {
    fn index_lookups(&self, log: LogId, start: u64, end: u64) -> Result<Vec<IndexLookup>> {
        // The filters are read before the lookups' snapshot and held to
        // its end, as a lookup of the store's own reads them.
        let filters = self.filters();
        scan::index_lookups(&self.readers.get(), &filters, log, start, end)
    }

    fn tasks(&self) -> Option<&dyn TaskStore> {
        Some(self)
    }

    fn mirrors(&self) -> Option<&dyn MirrorStore> {
        Some(self)
    }

    fn compliance(&self) -> Option<&dyn crate::ComplianceStore> {
        Some(self)
    }

    fn cosignatures(&self) -> Option<&dyn CosignatureStore> {
        Some(self)
    }
}

impl CosignatureStore for SqliteStore {
    fn put_cosignatures(&self, log: LogId, size: u64, cosignatures: &[Cosignature]) -> Result<()> {
        cosignatures::put(&self.writer(), log, size, cosignatures)
    }

    fn cosignatures_at(&self, log: LogId, size: u64) -> Result<Vec<Cosignature>> {
        cosignatures::at(&self.readers.get(), log, size)
    }

    fn witnessed_size(
        &self,
        log: LogId,
        threshold: usize,
        witnesses: &[String],
    ) -> Result<Option<u64>> {
        cosignatures::witnessed_size(&self.readers.get(), log, threshold, witnesses)
    }
}

impl MirrorStore for SqliteStore {
    fn import(
        &self,
        batch: &MirrorImport,
    ) -> Result<std::result::Result<ImportCounts, ImportConflict>> {
        mirrors::import(&mut self.writer(), batch)
    }

    fn mirror_logs(&self) -> Result<Vec<MirrorLog>> {
        mirrors::logs(&self.readers.get())
    }

    fn mirror_records(
        &self,
        origin: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MirrorRecord>> {
        mirrors::records(&self.readers.get(), origin, after, limit)
    }

    fn mirror_record(&self, origin: &str, leaf_index: u64) -> Result<Option<MirrorRecord>> {
        mirrors::record(&self.readers.get(), origin, leaf_index)
    }

    fn mirror_checkpoint(&self, origin: &str, tree_size: u64) -> Result<Option<MirrorCheckpoint>> {
        mirrors::checkpoint(&self.readers.get(), origin, tree_size)
    }

    fn mirror_payload(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        mirrors::payload(&self.readers.get(), sha256)
    }
}

impl TaskStore for SqliteStore {
    fn insert_task(&self, task: &TaskRow) -> Result<()> {
        tasks::insert(&self.writer(), task)
    }

    fn update_task(&self, task: &TaskRow) -> Result<bool> {
        tasks::update(&self.writer(), task)
    }

    fn task(&self, id: &str) -> Result<Option<TaskRow>> {
        tasks::by_id(&self.readers.get(), id)
    }

    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRow>> {
        tasks::list(&self.readers.get(), query)
    }

    fn unfinished_tasks(&self) -> Result<Vec<TaskRow>> {
        tasks::unfinished(&self.readers.get())
    }

    fn expired_results(&self, before_ms: i64) -> Result<Vec<TaskRow>> {
        tasks::expired(&self.readers.get(), before_ms)
    }
}
