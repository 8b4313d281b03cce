//! [`PgStore`]: the storage traits on PostgreSQL. Opening checks the
//! schema; every call takes a pooled connection and runs to a deadline.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};

use super::{PgError, backend, check_schema, redact};
use crate::{Result, StoreError};

/// How a [`PgStore`] connects and how long it waits.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections in the pool, at most.
    pub pool_size: usize,
    /// How long a call may take, waiting for a connection included; past
    /// it the call fails with [`StoreError::Unavailable`] (and the server
    /// cancels the statement: `statement_timeout` is set to it too).
    pub call_timeout: Duration,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// Every transaction read-only (`default_transaction_read_only`): for
    /// an offline `evault fsck`, which must write nothing.
    pub read_only: bool,
    /// After a connection could not be made, no new one is tried for
    /// this long; each further failure in a row doubles the wait, up to
    /// [`PgOptions::reconnect_backoff_max`] (each wait is jittered down to
    /// half, so that nodes do not reconnect in step). Meanwhile a call
    /// that needs a new connection fails at once with
    /// [`StoreError::Unavailable`] rather than queueing another attempt
    /// on a database that is restarting.
    pub reconnect_backoff: Duration,
    /// The longest wait between attempts to connect.
    pub reconnect_backoff_max: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            read_only: false,
            // Short enough that a node renews its write lease (ttl 3 s by
            // default) soon after the database is back.
            reconnect_backoff: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(1),
        }
    }
}

/// The PostgreSQL store. Cheap to share: `Send + Sync`, put it in an `Arc`.
///
/// The traits block, and their callers are on blocking threads (or have
/// no runtime at all: the suite, `evault migrate`, an offline fsck), so
/// the store runs its connections on a small runtime of its own and each
/// call waits on the calling thread for its query's future. That works
/// from any thread, inside another runtime too.
pub struct PgStore {
    /// `Some` until dropped: a runtime dropped on an async thread must not
    /// block, so `Drop` shuts it down in the background.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    url: String,
    options: PgOptions,
    backoff: super::backoff::Backoff,
    /// The sequencing lease this store holds, if any (`lease.rs`).
    pub(super) lease: std::sync::Mutex<Option<crate::Lease>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // A lease given up now lets another node take over at once rather
        // than after its ttl; briefly, for the database may be away.
        if let Ok(fence) = self.fence() {
            let _ = super::lease::release(self, &fence, Some(Duration::from_secs(1)));
        }
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Opens the store in the database at `url` with default options. The
    /// schema must be this build's: an unmigrated or older one is refused
    /// with a message naming `evault migrate --store URL`, a newer one with
    /// [`StoreError::SchemaTooNew`].
    pub fn open(url: &str) -> Result<PgStore> {
        Self::open_with(url, PgOptions::default())
    }

    /// [`PgStore::open`] with `options`.
    pub fn open_with(url: &str, options: PgOptions) -> Result<PgStore> {
        check_schema(url)?;
        let super::tls::Target { mut config, tls } = super::tls::target(url)?;
        config.connect_timeout(options.connect_timeout);
        config.application_name("evault");
        // Durable on COMMIT whatever the server's default; statements the
        // call deadline gave up on are cancelled by the server as well.
        config.options(format!(
            "-c synchronous_commit=on -c statement_timeout={} -c idle_in_transaction_session_timeout={}{}",
            options.call_timeout.as_millis(),
            options.call_timeout.as_millis() * 2,
            if options.read_only {
                " -c default_transaction_read_only=on"
            } else {
                ""
            }
        ));
        let rt = super::runtime()?;
        let recycle = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            None => Manager::from_config(config, tokio_postgres::NoTls, recycle()),
            Some(tls) => Manager::from_config(config, tls, recycle()),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.call_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| backend(format!("PostgreSQL pool for {}: {e}", redact(url))))?;
        let store = PgStore {
            rt: Some(rt),
            pool,
            url: redact(url),
            backoff: super::backoff::Backoff::new(
                options.reconnect_backoff,
                options.reconnect_backoff_max,
            ),
            options,
            lease: std::sync::Mutex::new(None),
        };
        // Fail now, not on the first call, if no connection can be made.
        store.run(|_| async { Ok(()) })?;
        Ok(store)
    }

    /// The database's URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` with a pooled connection on this thread, to the call
    /// deadline.
    pub(super) fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_within(None, f)
    }

    /// [`PgStore::run`] to `deadline` if given (else the call deadline).
    pub(super) fn run_within<T, F, Fut>(&self, deadline: Option<Duration>, f: F) -> Result<T>
    where
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(rt) = &self.rt else {
            return Err(StoreError::Unavailable("the store is closed".into()));
        };
        // The pool's timers and new connections belong to the store's
        // runtime; the future itself is polled here.
        let _context = rt.enter();
        let deadline = deadline.unwrap_or(self.options.call_timeout);
        let call = async {
            // Every idle connection may be broken (the database restarted),
            // so only a pool with none idle is a new connection for sure.
            if self.pool.status().available == 0
                && let Some(why) = self.backoff.refusal(std::time::Instant::now())
            {
                return Err(StoreError::Unavailable(why));
            }
            let client = match self.pool.get().await {
                Ok(client) => client,
                Err(e) => {
                    let connecting = matches!(
                        e,
                        PoolError::Backend(_)
                            | PoolError::Timeout(deadpool_postgres::TimeoutType::Create)
                    );
                    let e = pool_error(e);
                    if connecting {
                        self.backoff
                            .failed(std::time::Instant::now(), &e.to_string());
                    }
                    return Err(e);
                }
            };
            let result = f(client).await;
            if !matches!(result, Err(StoreError::Unavailable(_))) {
                self.backoff.connected();
            }
            result
        };
        match futures_executor::block_on(tokio::time::timeout(deadline, call)) {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {deadline:?}"
            ))),
        }
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no PostgreSQL connection became free in time".into())
        }
        e => StoreError::Unavailable(format!("PostgreSQL connection pool: {e}")),
    }
}

/// A database error as a [`StoreError`]: [`StoreError::Unavailable`] when
/// the server cannot be reached, is shutting down, cancelled the statement
/// or asks for a retry; [`StoreError::Backend`] otherwise.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    // evault_fence() and the fence triggers (migration 6).
    if let Some(db) = e.as_db_error()
        && db.code().code() == "EV002"
    {
        return StoreError::Fenced(db.message().to_string());
    }
    let unavailable = match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            // 08: connection exception; 57: operator intervention
            // (shutdown, statement timeout, cannot connect now); 53: out of
            // resources (too many connections); 40001/40P01: retry.
            code.starts_with("08")
                || code.starts_with("57")
                || code.starts_with("53")
                || code == "40001"
                || code == "40P01"
        }
        None => {
            use std::error::Error as _;
            e.is_closed()
                || e.source()
                    .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
        }
    };
    if unavailable {
        StoreError::Unavailable(PgError(e).to_string())
    } else {
        StoreError::Backend(Box::new(PgError(e)))
    }
}

/// Runs `$body` with `$c` a pooled connection (`&Object`).
macro_rules! with {
    ($self:ident, |$c:ident| $body:expr) => {
        $self.run(|$c| async move {
            let $c = &$c;
            $body.await
        })
    };
}

/// Runs `$body` with `$c` a read-only REPEATABLE READ transaction: the
/// reads in it see one snapshot.
macro_rules! snapshot {
    ($self:ident, |$c:ident| $body:expr) => {
        $self.run(|mut client| async move {
            let $c = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let out = {
                let $c = &$c;
                $body.await
            }?;
            $c.commit().await.map_err(pg_error)?;
            Ok(out)
        })
    };
}

use super::{entries, index, log};
use crate::{
    AnalyticsGroup, AnalyticsQuery, AppendBatch, AuditIndex, AuditQuery, AuditRow, EvidenceIndex,
    EvidenceRow, EvidenceStats, IndexLookup, LabelEntry, ListQuery, LogId, LogStore, Page, Scanned,
    StatsQuery, Store, StoredCheckpoint, StoredTileKey,
};
use evault_merkle::tiles::TileId;

impl LogStore for PgStore {
    fn tree_size(&self, log: LogId) -> Result<u64> {
        with!(self, |c| log::size(c, log))
    }

    fn append(&self, batch: &AppendBatch<'_>) -> Result<()> {
        // Hashed before a connection is taken.
        let inner = [
            log::inner_levels(batch.tiles),
            batch
                .audit
                .as_ref()
                .map(|a| log::inner_levels(a.tiles))
                .unwrap_or_default(),
        ];
        let fence = self.fence()?;
        self.run(|mut c| async move { log::append(&mut c, batch, &inner, &fence).await })
    }

    fn read_tiles(&self, log: LogId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
        let read = with!(self, |c| log::read_tiles(c, log, tiles, false))?;
        Ok(read.into_iter().map(|(d, _)| d).collect())
    }

    fn read_tiles_with_inner(
        &self,
        log: LogId,
        tiles: &[TileId],
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        with!(self, |c| log::read_tiles(c, log, tiles, true))
    }

    fn record_by_index(&self, leaf_index: u64) -> Result<Option<EvidenceRow>> {
        with!(self, |c| entries::by_index(c, leaf_index))
    }

    fn audit_by_index(&self, leaf_index: u64) -> Result<Option<AuditRow>> {
        let Ok(leaf) = i64::try_from(leaf_index) else {
            return Ok(None);
        };
        with!(self, |c| entries::audit_one(c, "leaf_index = $1", &leaf))
    }

    fn leaf_data_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        snapshot!(self, |c| entries::leaf_data_range(c, start, end))
    }

    fn put_checkpoint(&self, log: LogId, checkpoint: &StoredCheckpoint) -> Result<()> {
        let fence = self.fence()?;
        self.run(|mut c| async move { log::put_checkpoint(&mut c, log, checkpoint, &fence).await })
    }

    fn latest_checkpoint(&self, log: LogId) -> Result<Option<StoredCheckpoint>> {
        let found = with!(self, |c| log::checkpoints(
            c,
            log,
            "ORDER BY size DESC LIMIT 1",
            &[]
        ))?;
        Ok(found.into_iter().next())
    }

    fn checkpoint_at(&self, log: LogId, size: u64) -> Result<Option<StoredCheckpoint>> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(None);
        };
        let found = with!(self, |c| log::checkpoints(
            c,
            log,
            "AND size = $2",
            &[&size]
        ))?;
        Ok(found.into_iter().next())
    }

    fn list_checkpoints(
        &self,
        log: LogId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        let after = match after.map(i64::try_from).transpose() {
            Ok(a) => a.unwrap_or(-1),
            Err(_) => return Ok(Vec::new()),
        };
        let limit = i64::from(limit.clamp(1, entries::MAX_PAGE));
        with!(self, |c| log::checkpoints(
            c,
            log,
            "AND size > $2 ORDER BY size LIMIT $3",
            &[&after, &limit]
        ))
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        with!(self, |c| log::get_meta(c, key))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        with!(self, |c| log::set_meta(c, key, value))
    }

    fn meta_entries(&self) -> Result<Vec<(String, String)>> {
        with!(self, |c| log::meta_entries(c))
    }

    fn scan_records(&self, start: u64, end: u64) -> Result<Vec<Scanned<EvidenceRow>>> {
        let sql = entries::scan_records_sql();
        with!(self, |c| entries::scan(
            c,
            &sql,
            start,
            end,
            entries::decode
        ))
    }

    fn scan_audit(&self, start: u64, end: u64) -> Result<Vec<Scanned<AuditRow>>> {
        let sql = entries::scan_audit_sql();
        with!(self, |c| entries::scan(
            c,
            &sql,
            start,
            end,
            entries::decode_audit
        ))
    }

    fn leaf_rows(&self, log: LogId) -> Result<(u64, Option<u64>)> {
        with!(self, |c| entries::leaf_rows(c, log))
    }

    fn tile_keys(&self, log: LogId) -> Result<Vec<StoredTileKey>> {
        with!(self, |c| log::tile_keys(c, log))
    }

    fn stored_tile(&self, log: LogId, level: u8, index: u64) -> Result<Option<Vec<u8>>> {
        with!(self, |c| log::stored_tile(c, log, level, index))
    }
}

impl EvidenceIndex for PgStore {
    fn record_by_id(&self, id: &str) -> Result<Option<EvidenceRow>> {
        with!(self, |c| entries::one(c, "e.id = $1", &[&id]))
    }

    fn record_by_dedup_key(&self, dedup_key: &[u8; 32]) -> Result<Option<EvidenceRow>> {
        let key: &[u8] = dedup_key;
        with!(self, |c| entries::one(c, "e.dedup_key = $1", &[&key]))
    }

    fn records_by_dedup_keys(&self, keys: &[[u8; 32]]) -> Result<Vec<EvidenceRow>> {
        with!(self, |c| entries::by_dedup_keys(c, keys))
    }

    fn record_by_idempotency_key(&self, principal: &str, key: &str) -> Result<Option<EvidenceRow>> {
        with!(self, |c| entries::one(
            c,
            "e.idempotency_key IS NOT NULL AND e.ingested_by = $1 AND e.idempotency_key = $2",
            &[&principal, &key]
        ))
    }

    fn list(&self, query: &ListQuery) -> Result<Page<EvidenceRow>> {
        with!(self, |c| entries::list(c, query))
    }

    fn analytics_summary(&self, query: &AnalyticsQuery) -> Result<Vec<AnalyticsGroup>> {
        snapshot!(self, |c| index::analytics_summary(c, query))
    }

    fn evidence_stats(&self, query: &StatsQuery) -> Result<EvidenceStats> {
        snapshot!(self, |c| index::evidence_stats(c, query))
    }

    fn label_index_len(&self) -> Result<u64> {
        with!(self, |c| index::label_index_len(c))
    }

    fn label_index_page(&self, after: Option<&LabelEntry>, limit: u32) -> Result<Vec<LabelEntry>> {
        with!(self, |c| index::label_index_page(c, after, limit))
    }

    fn label_entry_matches(&self, entry: &LabelEntry) -> Result<bool> {
        with!(self, |c| index::label_entry_matches(c, entry))
    }

    fn index_layout(&self) -> Result<Vec<String>> {
        // One B-tree, kept by the database: no layout of the driver's own.
        Ok(Vec::new())
    }

    fn indexed_through(&self) -> Result<u64> {
        with!(self, |c| index::indexed_through(c))
    }

    fn index_evidence(&self, through: u64, max_rows: u64) -> Result<u64> {
        let fence = self.fence()?;
        self.run(
            |mut c| async move { index::index_evidence(&mut c, through, max_rows, &fence).await },
        )
    }
}

impl AuditIndex for PgStore {
    fn audit_by_id(&self, id: &str) -> Result<Option<AuditRow>> {
        with!(self, |c| entries::audit_one(c, "id = $1", &id))
    }

    fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditRow>> {
        with!(self, |c| entries::list_audit(c, query))
    }

    fn audit_outcomes(
        &self,
        since_ms: i64,
        until_ms: i64,
        principal: Option<&str>,
    ) -> Result<Vec<(String, u64)>> {
        with!(self, |c| index::audit_outcomes(
            c, since_ms, until_ms, principal
        ))
    }
}

impl Store for PgStore {
    fn index_lookups(&self, log: LogId, start: u64, end: u64) -> Result<Vec<IndexLookup>> {
        snapshot!(self, |c| index::index_lookups(c, log, start, end))
    }

    fn tasks(&self) -> Option<&dyn TaskStore> {
        Some(self)
    }

    fn mirrors(&self) -> Option<&dyn MirrorStore> {
        Some(self)
    }

    fn cosignatures(&self) -> Option<&dyn CosignatureStore> {
        Some(self)
    }

    fn compliance(&self) -> Option<&dyn crate::ComplianceStore> {
        Some(self)
    }

    fn coordination(&self) -> Option<&dyn crate::Coordination> {
        Some(self)
    }
}

impl crate::ComplianceStore for PgStore {
    fn erase(&self, batch: &AppendBatch<'_>, erasures: &[crate::ErasureRow]) -> Result<()> {
        let inner = [
            log::inner_levels(batch.tiles),
            batch
                .audit
                .as_ref()
                .map(|a| log::inner_levels(a.tiles))
                .unwrap_or_default(),
        ];
        let fence = self.fence()?;
        self.run(|mut c| async move {
            super::compliance::erase(&mut c, batch, &inner, erasures, &fence).await
        })
    }

    fn erasure(&self, leaf_index: u64) -> Result<Option<crate::ErasureRow>> {
        with!(self, |c| super::compliance::erasure(c, leaf_index))
    }

    fn list_erasures(&self, after: Option<u64>, limit: u32) -> Result<Vec<crate::ErasureRow>> {
        with!(self, |c| super::compliance::list_erasures(c, after, limit))
    }

    fn records_by_sha256(&self, sha256: &[u8; 32]) -> Result<Vec<EvidenceRow>> {
        with!(self, |c| super::compliance::records_by_sha256(c, sha256))
    }

    fn unerased(&self, query: &ListQuery) -> Result<Page<EvidenceRow>> {
        with!(self, |c| entries::list_where(
            c,
            query,
            super::compliance::SHARER_COLUMNS,
            " AND x.leaf_index IS NULL"
        ))
    }

    fn reclaim(&self, _deadline: Duration) -> Result<crate::Reclaimed> {
        // The erased rows are dead tuples until VACUUM: run it on the
        // tables an erasure deletes from, so their space is reused (it
        // needs no exclusive lock). PostgreSQL's own WAL is recycled by
        // its checkpoints; the bytes leave the table files for good only
        // with VACUUM FULL, an operator's call (docs/OPERATIONS.md).
        with!(self, |c| async move {
            c.batch_execute("VACUUM payloads, analytics_events, analytics_metrics")
                .await
                .map_err(pg_error)
        })?;
        Ok(crate::Reclaimed {
            wal_truncated: true,
            free_pages: 0,
        })
    }

    fn put_hold(&self, hold: &crate::HoldRow) -> Result<()> {
        with!(self, |c| super::compliance::put_hold(c, hold))
    }

    fn list_holds(&self) -> Result<Vec<crate::HoldRow>> {
        with!(self, |c| super::compliance::list_holds(c))
    }

    fn release_hold(&self, id: &str, at_ms: i64, by: &str) -> Result<bool> {
        with!(self, |c| super::compliance::release_hold(c, id, at_ms, by))
    }

    fn put_retention(&self, policy: &crate::RetentionRow) -> Result<()> {
        with!(self, |c| super::compliance::put_retention(c, policy))
    }

    fn list_retention(&self) -> Result<Vec<crate::RetentionRow>> {
        with!(self, |c| super::compliance::list_retention(c))
    }

    fn delete_retention(&self, id: &str) -> Result<bool> {
        with!(self, |c| super::compliance::delete_retention(c, id))
    }
}

use super::{cosignatures, mirrors, tasks};
use crate::{
    Cosignature, CosignatureStore, ImportConflict, ImportCounts, MirrorCheckpoint, MirrorImport,
    MirrorLog, MirrorRecord, MirrorStore, TaskQuery, TaskRow, TaskStore,
};

impl TaskStore for PgStore {
    fn insert_task(&self, task: &TaskRow) -> Result<()> {
        with!(self, |c| tasks::insert(c, task))
    }

    fn update_task(&self, task: &TaskRow) -> Result<bool> {
        with!(self, |c| tasks::update(c, task))
    }

    fn task(&self, id: &str) -> Result<Option<TaskRow>> {
        with!(self, |c| tasks::by_id(c, id))
    }

    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRow>> {
        with!(self, |c| tasks::list(c, query))
    }

    fn unfinished_tasks(&self) -> Result<Vec<TaskRow>> {
        with!(self, |c| tasks::unfinished(c))
    }

    fn expired_results(&self, before_ms: i64) -> Result<Vec<TaskRow>> {
        with!(self, |c| tasks::expired(c, before_ms))
    }
}

impl CosignatureStore for PgStore {
    fn put_cosignatures(&self, log: LogId, size: u64, cosignatures: &[Cosignature]) -> Result<()> {
        with!(self, |c| cosignatures::put(c, log, size, cosignatures))
    }

    fn cosignatures_at(&self, log: LogId, size: u64) -> Result<Vec<Cosignature>> {
        with!(self, |c| cosignatures::at(c, log, size))
    }

    fn witnessed_size(
        &self,
        log: LogId,
        threshold: usize,
        witnesses: &[String],
    ) -> Result<Option<u64>> {
        with!(self, |c| cosignatures::witnessed_size(
            c, log, threshold, witnesses
        ))
    }
}

impl MirrorStore for PgStore {
    fn import(
        &self,
        batch: &MirrorImport,
    ) -> Result<std::result::Result<ImportCounts, ImportConflict>> {
        self.run(|mut c| async move { mirrors::import(&mut c, batch).await })
    }

    fn mirror_logs(&self) -> Result<Vec<MirrorLog>> {
        with!(self, |c| mirrors::logs(c))
    }

    fn mirror_records(
        &self,
        origin: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MirrorRecord>> {
        with!(self, |c| mirrors::records(c, origin, after, limit))
    }

    fn mirror_record(&self, origin: &str, leaf_index: u64) -> Result<Option<MirrorRecord>> {
        with!(self, |c| mirrors::record(c, origin, leaf_index))
    }

    fn mirror_checkpoint(&self, origin: &str, tree_size: u64) -> Result<Option<MirrorCheckpoint>> {
        with!(self, |c| mirrors::checkpoint(c, origin, tree_size))
    }

    fn mirror_payload(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        with!(self, |c| mirrors::payload(c, sha256))
    }
}
