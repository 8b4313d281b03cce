//! The evault domain. Evidence goes in through [`Vault::put`]; a single
//! sequencer task commits it in groups and acknowledges only what is
//! durable; a checkpointer signs each growing tree; proofs are served from
//! the stored tiles. The vault decides, including who may read what (every
//! read takes a [`Reader`]); the server only translates.
//!
//! Every API call also leaves an audit event in a second Merkle log with
//! its own origin, key, tiles and checkpoints ([`Vault::record_audit`],
//! [`PutRequest::audit`]). The same sequencer commits both logs, so a put's
//! event is in the same transaction as its record. Both logs are read
//! through one API, [`Vault::log`]. [`Vault::shutdown`] stops intake,
//! drains, signs a final checkpoint and joins every task.

pub mod analytics;
mod audit;
pub mod backfill;
mod blobs;
mod bundles;
pub mod calendar;
mod checkpointer;
mod cluster;
mod config;
pub mod copy;
mod datadir;
pub mod erasure;
mod error;
pub mod fsck;
mod head;
mod health;
mod imports;
mod indexer;
pub mod ingest;
mod integrity;
mod keyring;
mod keys;
mod lease;
mod lifecycle;
mod log;
pub mod migrate;
mod mirror;
pub mod pipeline;
mod proofs;
mod reader;
mod records;
pub mod retention;
mod rotation;
mod sequencer;
pub mod sigstore;
mod startup;
mod stream;
mod task_kinds;
pub mod tasks;
mod types;
mod witnessing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use evault_store::{EvidenceRow, ListQuery, Payload, Store};
use evault_verify::{AuditEvent, Evidence};
use tokio::sync::{mpsc, oneshot, watch};

pub use analytics::{ANALYTICS_TYPE, Summary};
pub use audit::{AuditConfig, AuditOnCommit};
pub use blobs::{StagedPayload, Upload};
pub use bundles::{BundleSelection, BundleSummary};
pub use cluster::{Advertise, Role};
pub use config::{LogSigner, StoreLocation, VaultConfig};
pub use error::{ProofFailure, Result, VaultError};
pub use evault_store::TaskState;
pub use evault_store::{
    AnalyticsGroup, AnalyticsQuery, AnalyticsRow, AuditQuery, EvidenceStats, LogId,
    MirrorCheckpoint, MirrorLog, Page, Selector, SqliteStore, Stats, StatsQuery, StoredCheckpoint,
};
/// The witness protocol's client-side types, for building a [`WitnessSetup`].
pub use evault_witness::{Response as WitnessResponse, Transport as WitnessTransport, WitnessSpec};
pub use fsck::{
    Finding, FindingKind, FsckOptions, FsckReport, LogSummary, fsck_data_dir, fsck_stopped_vault,
};
pub use head::{FileHeadStore, HeadKey, HeadStore, SignedHead, SignedHeadStore, default_state_dir};
pub use health::{Component, NotReady};
pub use imports::{ImportSummary, verifiers_of};
pub use integrity::{BlobReader, INTEGRITY_FAILURES};
pub use keyring::{KeyEntry, KeyState};
pub use lease::LeaseConfig;
pub use lifecycle::Stopped;
pub use log::Log;
pub use migrate::{MigratePhase, MigrateReport, migrate_data_dir};
pub use reader::{ReadScope, Reader};

/// Most buckets one [`Vault::evidence_stats`] call may count.
pub const MAX_STATS_BUCKETS: u32 = 1000;

/// Longest window one [`Vault::audit_outcomes`] call may count: the audit
/// log grows with every request, and the count reads every event in it.
pub const MAX_AUDIT_STATS_WINDOW_MS: i64 = 31 * 24 * 3_600_000;
pub use records::evidence_from_row;
pub use rotation::{KEY_EVENT_PRINCIPAL, MAX_OVERLAP};
pub use sequencer::{BatchLimits, TreeHead};
pub use startup::{AUDIT_TILES_PREFIX, EVIDENCE_TILES_PREFIX, tlog_origin};
pub use stream::{StreamRecord, Submitted};
pub use task_kinds::{ExportBundle, Fsck, ImportBundle};
pub use tasks::{
    KindInfo, TaskConfig, TaskContext, TaskFilter, TaskInfo, TaskKind, TaskOutput, TaskResult,
};
pub use types::{ConsistencyProof, LogInfo, LogProof, PayloadData, PutOutcome, PutRequest};
pub use witnessing::{WitnessSetup, WitnessStatus, WitnessView};

use blobs::{BlobDir, StagedBody};
use health::Board;
use lifecycle::Tasks;
use log::LogHandle;
use proofs::TileCache;
use records::NewRecord;
use sequencer::{Outputs, Pending, Trees};
use startup::LogStart;

struct Inner {
    /// Held for the vault's lifetime: one process per data directory.
    _lock: std::fs::File,
    store: Arc<dyn Store>,
    blobs: BlobDir,
    config: VaultConfig,
    evidence: LogHandle,
    /// `None` when audit is disabled.
    audit: Option<LogHandle>,
    tx: mpsc::Sender<Pending>,
    /// In-flight bytes of streamed records ([`VaultConfig::stream_budget`]).
    stream_budget: Arc<tokio::sync::Semaphore>,
    /// Set once by [`Vault::shutdown`]: intake stops.
    stop: watch::Sender<bool>,
    /// The background tasks, until [`Vault::shutdown`] joins them.
    tasks: Mutex<Option<Tasks>>,
    /// Set when a checkpointer refused to sign a fork.
    alarm: head::Alarm,
    /// What the background tasks report as keeping the vault not ready.
    health: Arc<Board>,
    /// Tracked long jobs (`tasks.rs`).
    runner: tasks::Runner,
    /// The evidence log's witnessing, when witnesses are configured.
    witness_status: Option<watch::Receiver<WitnessStatus>>,
    /// Wakes the key retirement timer when a rotation changed the keys.
    key_changes: Arc<tokio::sync::Notify>,
    /// External puts in flight, by payload digest (`erasure.rs`).
    in_flight: erasure::InFlight,
    /// The index follower's cursor (`indexer.rs`).
    index_reach: watch::Receiver<u64>,
    /// Leader or standby (`cluster.rs`); kept here so that the role's
    /// receivers never see it closed while the vault lives.
    role: Arc<watch::Sender<Role>>,
}

impl Inner {
    /// The stored record with this id, or [`VaultError::NotFound`].
    fn record(&self, id: &str) -> Result<EvidenceRow> {
        self.store
            .record_by_id(id)?
            .ok_or_else(|| VaultError::NotFound(format!("evidence {id}")))
    }

    /// The record with this id, if `reader` may see it, its fields checked
    /// against its leaf.
    fn readable_row(&self, reader: &Reader, id: &str) -> Result<EvidenceRow> {
        let row = self.record(id)?;
        reader.check(
            &row.ingested_by,
            || format!("evidence {id}"),
            "the record was submitted by another principal",
        )?;
        integrity::check_record(&row)?;
        Ok(row)
    }

    fn readable_record(&self, reader: &Reader, id: &str) -> Result<Evidence> {
        Ok(evidence_from_row(&self.readable_row(reader, id)?))
    }

    /// A log, or [`VaultError::NotFound`] for the audit log when audit is
    /// disabled.
    fn log(&self, id: LogId) -> Result<&LogHandle> {
        match id {
            LogId::Evidence => Ok(&self.evidence),
            LogId::Audit => self
                .audit
                .as_ref()
                .ok_or_else(|| VaultError::NotFound("audit trail (disabled on this vault)".into())),
        }
    }

    /// The stored audit event with this id, if `reader` may see it (an
    /// ingester sees only events of its own calls).
    fn readable_event(&self, reader: &Reader, id: &str) -> Result<AuditEvent> {
        self.log(LogId::Audit)?;
        let row = self
            .store
            .audit_by_id(id)?
            .ok_or_else(|| VaultError::NotFound(format!("audit event {id}")))?;
        let event = audit::from_row(&row)?;
        reader.check(
            &event.principal,
            || format!("audit event {id}"),
            "the event is of another principal's call",
        )?;
        Ok(event)
    }
}

/// A running vault. Cheap to clone; all clones share one sequencer.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

/// Full tiles kept in memory for evidence proofs: 4096 × 8 KiB = 32 MiB.
const TILE_CACHE_TILES: usize = 4096;
/// The same for audit proofs, asked for far less often: 8 MiB.
const AUDIT_TILE_CACHE_TILES: usize = 1024;

/// A started log: its handle, its tree state and head channel for the
/// The evidence log's witnessing task (to spawn) and its status.
async fn witnessing_task(
    store: &Arc<dyn Store>,
    setup: &witnessing::WitnessSetup,
    evidence: &LogHandle,
    stopping: &watch::Receiver<bool>,
    role: watch::Receiver<Role>,
) -> Result<(witnessing::Witnessing, watch::Receiver<WitnessStatus>)> {
    if store.cosignatures().is_none() {
        return Err(VaultError::Invalid(
            "witnesses are configured, but this store keeps no cosignatures".into(),
        ));
    }
    let witnesses = setup.witnesses()?;
    let (st, s) = (store.clone(), setup.clone());
    let initial = tokio::task::spawn_blocking(move || {
        witnessing::Witnessing::initial_status(&*st, LogId::Evidence, &s)
    })
    .await??;
    let (tx, rx) = watch::channel(initial);
    Ok((
        witnessing::Witnessing {
            store: store.clone(),
            log: LogId::Evidence,
            witnesses: Some(witnesses),
            setup: setup.clone(),
            checkpoints: evidence.checkpoints.clone(),
            status: tx,
            stopping: stopping.clone(),
            role,
        },
        rx,
    ))
}

/// sequencer, and its checkpointer with the heads it follows (to spawn).
struct Running {
    handle: LogHandle,
    state: sequencer::TreeState,
    heads: watch::Sender<TreeHead>,
    checkpointer: checkpointer::Checkpointer,
}

#[allow(clippy::too_many_arguments)]
fn running(
    id: LogId,
    log: LogStart,
    store: &Arc<dyn Store>,
    interval: Duration,
    cache_tiles: usize,
    alarm: &head::Alarm,
    health: &Arc<Board>,
    role: watch::Receiver<Role>,
) -> Result<Running> {
    let (head_tx, heads) = watch::channel(log.state.head());
    let (cp_tx, checkpoints) = watch::channel(log.published);
    let checkpointer = checkpointer::Checkpointer {
        store: store.clone(),
        log: id,
        ring: log.ring.clone(),
        origin: log.origin.clone(),
        interval,
        published: cp_tx,
        heads: heads.clone(),
        guard: log.guard,
        alarm: alarm.clone(),
        health: health.clone(),
        role,
        keys_read_for: None,
        keys_failed: false,
    };
    let handle = LogHandle {
        id,
        origin: log.origin,
        ring: log.ring,
        tile_cache: TileCache::new(cache_tiles),
        heads,
        checkpoints,
        health: health.clone(),
        opened: Default::default(),
    };
    Ok(Running {
        handle,
        state: log.state,
        heads: head_tx,
        checkpointer,
    })
}

impl Vault {
    /// Opens the vault on the store `config.store` names: the embedded
    /// SQLite store in `config.data_dir` (the default), or a PostgreSQL
    /// database, whose schema must be this build's (an unmigrated or older
    /// one is refused naming `evault migrate --store URL`). The data
    /// directory's lock is taken first: a conversion of an older SQLite
    /// store (`migrate::open_store`) never runs under another process.
    pub async fn open(config: VaultConfig) -> Result<Vault> {
        datadir::create_private(&config.data_dir)?;
        let lock = datadir::lock(&config.data_dir)?;
        let store: Arc<dyn Store> = match &config.store {
            StoreLocation::Sqlite => {
                let dir = config.data_dir.clone();
                Arc::new(tokio::task::spawn_blocking(move || migrate::open_store(&dir)).await??)
            }
            StoreLocation::Postgres(url) => {
                config::check_postgres_options(&config.postgres).map_err(VaultError::Invalid)?;
                let (url, options) = (url.clone(), config.postgres.clone());
                Arc::new(
                    tokio::task::spawn_blocking(move || {
                        evault_store::postgres::PgStore::open_with(&url, options)
                    })
                    .await??,
                )
            }
        };
        Self::with_store_locked(config, store, lock).await
    }

    /// Opens the vault on any store. Checks, for each log, that the stored
    /// tree, its tiles and the latest checkpoint agree, and refuses to
    /// start if they do not. Starts the sequencer, a checkpointer per log
    /// and the audit mirror; [`Vault::shutdown`] stops them.
    pub async fn with_store(config: VaultConfig, store: Arc<dyn Store>) -> Result<Vault> {
        datadir::create_private(&config.data_dir)?;
        let lock = datadir::lock(&config.data_dir)?;
        Self::with_store_locked(config, store, lock).await
    }

    /// [`Vault::with_store`] with the data directory's lock already held.
    async fn with_store_locked(
        config: VaultConfig,
        store: Arc<dyn Store>,
        lock: std::fs::File,
    ) -> Result<Vault> {
        let blobs = BlobDir::open(&config.data_dir)?;
        // Before anything is written: on a shared store only the lease
        // holder's writes commit, and a standby writes nothing.
        let taken = lease::take(&store, &config.lease, config.audit.enabled).await?;
        let first = taken.clone().unwrap_or(Role::Leader { epoch: 0 });
        let role = Arc::new(watch::channel(first.clone()).0);
        let health = Arc::new(Board::default());
        // Kept from now on: a long start-up must not let the lease lapse.
        let keeper = taken.map(|_| {
            let (stop, stopped) = watch::channel(false);
            let keeper = lease::keep(
                store.clone(),
                config.lease.clone(),
                role.clone(),
                stopped,
                health.clone(),
            );
            (stop, keeper)
        });
        let cfg = config.clone();
        let st = store.clone();
        let started = tokio::task::spawn_blocking(move || startup::startup(&cfg, &*st)).await??;
        if first.is_leader() {
            let (st, b) = (store.clone(), blobs.clone());
            tokio::task::spawn_blocking(move || erasure::remove_orphan_blobs(&*st, &b)).await??;
        }

        let interval = config.checkpoint_interval;
        let alarm = head::Alarm::default();
        let evidence = running(
            LogId::Evidence,
            started.evidence,
            &store,
            interval,
            TILE_CACHE_TILES,
            &alarm,
            &health,
            role.subscribe(),
        )?;
        let audit = match started.audit {
            Some(log) => Some(running(
                LogId::Audit,
                log,
                &store,
                interval,
                AUDIT_TILE_CACHE_TILES,
                &alarm,
                &health,
                role.subscribe(),
            )?),
            None => None,
        };
        // The mirror follows the audit log from its own durable cursor.
        let mirror = match (startup::mirror_dir(&config), &audit) {
            (Some(dir), Some(a)) => {
                let st = store.clone();
                let h = health.clone();
                let m =
                    tokio::task::spawn_blocking(move || mirror::Mirror::open(dir, st, h)).await??;
                Some((m, a.handle.heads.clone()))
            }
            _ => None,
        };

        let mut trees = Trees {
            evidence: evidence.state,
            audit: None,
        };
        let mut outputs = Outputs {
            evidence_heads: evidence.heads,
            audit_heads: None,
        };
        let mut checkpointers = vec![evidence.checkpointer];
        let audit = audit.map(|a| {
            trees.audit = Some(a.state);
            outputs.audit_heads = Some(a.heads);
            checkpointers.push(a.checkpointer);
            a.handle
        });
        let evidence = evidence.handle;
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let limits = BatchLimits {
            max_batch: config.max_batch.max(1),
            max_delay: config.max_delay,
        };
        let (stop, stopping) = watch::channel(false);
        // The index follower writes the label and digest indexes behind the
        // log; the sequencer bounds how far it may lag.
        let st = store.clone();
        let indexed = tokio::task::spawn_blocking(move || indexer::start(&*st)).await??;
        let (reach, reach_rx) = watch::channel(indexed);
        let index_reach = reach_rx.clone();
        let indexer_heads = evidence.heads.clone();
        let witnessing = match &config.witnesses {
            Some(setup) => {
                Some(witnessing_task(&store, setup, &evidence, &stopping, role.subscribe()).await?)
            }
            None => None,
        };
        let witness_status = witnessing.as_ref().map(|(_, rx)| rx.clone());
        let tasks = Tasks {
            sequencer: tokio::spawn(sequencer::supervise(
                rx,
                store.clone(),
                trees,
                limits,
                outputs,
                stopping.clone(),
                health.clone(),
                Some(reach_rx),
                role.subscribe(),
                first.leading(),
            )),
            indexer: tokio::spawn(indexer::follow(
                store.clone(),
                indexer_heads,
                reach,
                health.clone(),
                role.subscribe(),
            )),
            checkpointers: checkpointers
                .into_iter()
                .map(|c| tokio::spawn(c.run(stopping.clone())))
                .collect(),
            mirror: mirror.map(|(m, heads)| tokio::spawn(m.follow(heads))),
            witnessing: witnessing.map(|(w, _)| tokio::spawn(w.run())),
            key_timer: None,
            retention_timer: None,
            promotions: None,
            lease: keeper,
        };

        let stream_budget = stream::budget(&config);
        let runner = tasks::Runner::new(&config.tasks, &config.data_dir)?;
        let vault = Vault {
            inner: Arc::new(Inner {
                _lock: lock,
                store,
                blobs,
                config,
                evidence,
                audit,
                tx,
                stream_budget,
                stop,
                tasks: Mutex::new(Some(tasks)),
                alarm,
                health,
                runner,
                witness_status,
                key_changes: Arc::new(tokio::sync::Notify::new()),
                in_flight: erasure::InFlight::default(),
                index_reach,
                role,
            }),
        };
        let timer = tokio::spawn(rotation::retirement_timer(
            Arc::downgrade(&vault.inner),
            stopping.clone(),
        ));
        let retention = (!vault.inner.config.retention_interval.is_zero()).then(|| {
            tokio::spawn(retention::retention_timer(
                Arc::downgrade(&vault.inner),
                vault.inner.config.retention_interval,
                stopping.clone(),
            ))
        });
        let promotions = tokio::spawn(cluster::on_promotion(
            Arc::downgrade(&vault.inner),
            vault.inner.role.subscribe(),
            first.is_leader(),
            stopping.clone(),
        ));
        if let Ok(mut t) = vault.inner.tasks.lock()
            && let Some(t) = t.as_mut()
        {
            t.key_timer = Some(timer);
            t.retention_timer = retention;
            t.promotions = Some(promotions);
        }
        // A standby's tasks are the leader's: it resumes them when it
        // takes over.
        if first.is_leader() {
            vault.recover_tasks().await?;
        }
        Ok(vault)
    }

    /// The read API of one log; [`VaultError::NotFound`] for the audit log
    /// when audit is disabled.
    pub fn log(&self, id: LogId) -> Result<Log> {
        self.inner.log(id)?;
        Ok(Log::new(self.clone(), id))
    }

    /// The evidence log's read API (it always exists).
    pub fn evidence_log(&self) -> Log {
        Log::new(self.clone(), LogId::Evidence)
    }

    /// The audit log's read API; `None` when audit is disabled.
    pub fn audit_log(&self) -> Option<Log> {
        self.log(LogId::Audit).ok()
    }

    /// The evidence log's witnessing (k of n, each witness's last answer);
    /// `None` when no witnesses are configured.
    pub fn witness_status(&self) -> Option<WitnessStatus> {
        self.inner
            .witness_status
            .as_ref()
            .map(|rx| rx.borrow().clone())
    }

    /// Why the vault should not be considered ready, if it should not: a
    /// checkpointer refused to sign a tree that is not consistent with the
    /// log's latest signed head (a fork), and signs nothing more.
    pub fn not_ready(&self) -> Option<String> {
        self.inner.alarm.reason()
    }

    /// Why the vault is not ready, one entry per component in trouble;
    /// empty when it is ready. Entries clear themselves when the component
    /// recovers (e.g. the next commit succeeds once disk space is freed).
    /// A stopped sequencer (the vault shut down, or it ended) is listed too.
    pub fn health(&self) -> Vec<NotReady> {
        let mut list = self.inner.health.list();
        if self.inner.tx.is_closed() {
            list.push(NotReady {
                component: Component::Sequencer,
                storage_full: false,
                reason: "stopped; the vault takes no more writes".into(),
            });
        }
        list
    }

    /// Like [`Vault::queue_audit`], but never waits: when the sequencer's
    /// queue is full or closed the event is dropped, counted in
    /// `evault_audit_events_dropped_total`, and `false` returned. For
    /// liveness and readiness probes, which must answer even when the
    /// audit trail cannot be written.
    pub fn offer_audit(&self, event: AuditEvent) -> bool {
        if self.inner.audit.is_none() {
            return true;
        }
        if audit::check_event(&event).is_err() {
            return false;
        }
        if !self.inner.role.borrow().is_leader() {
            metrics::counter!("evault_audit_events_dropped_total").increment(1);
            return false;
        }
        let (ack, _) = oneshot::channel();
        let ok = self
            .inner
            .tx
            .try_send(Pending::Audit { event, ack })
            .is_ok();
        if !ok {
            metrics::counter!("evault_audit_events_dropped_total").increment(1);
        }
        ok
    }

    /// This node's role: the leader, which writes, or a standby, which
    /// follows the leader through the shared store and takes over when its
    /// lease lapses (`Role::Leader { epoch: 0 }` on the embedded store).
    pub fn role(&self) -> Role {
        self.inner.role.borrow().clone()
    }

    /// The vault's configuration.
    pub fn config(&self) -> &VaultConfig {
        &self.inner.config
    }

    /// Starts receiving a payload (hashed as it streams, spilled to disk past
    /// the inline size, rejected past the upload limit).
    pub fn upload(&self) -> Upload {
        let c = &self.inner.config;
        self.inner.blobs.upload(c.inline_max, c.max_upload)
    }

    /// Validates and logs a submission. Returns once it is durably committed
    /// (or found to be a duplicate or a replay). A Sigstore bundle is
    /// verified first (see [`sigstore`]) against the digest the bundle
    /// states; labels beginning with `evault.` are refused.
    pub async fn put(&self, req: PutRequest) -> Result<PutOutcome> {
        self.put_checked(req, None, false).await
    }

    /// [`Vault::put`] of a Sigstore bundle for the artifact of this SHA-256
    /// (when the client names it): a bundle that signs another artifact is
    /// labelled `failed`. Refused for any other content type.
    pub async fn put_with_artifact(
        &self,
        req: PutRequest,
        artifact_digest: Option<[u8; 32]>,
    ) -> Result<PutOutcome> {
        self.put_checked(req, artifact_digest, false).await
    }

    /// [`Vault::put`] for the vault's own records (key events), which carry
    /// labels in its reserved `evault.` namespace. Never for a client's
    /// request: the server and the CLI only call [`Vault::put`] and
    /// [`Vault::put_with_artifact`] (tests use it to write a key event as
    /// the vault would).
    pub async fn put_trusted(&self, req: PutRequest) -> Result<PutOutcome> {
        self.put_checked(req, None, true).await
    }

    async fn put_checked(
        &self,
        mut req: PutRequest,
        artifact_digest: Option<[u8; 32]>,
        internal: bool,
    ) -> Result<PutOutcome> {
        ingest::validate_content_type(&req.content_type)?;
        ingest::validate_labels(&req.labels)?;
        if !internal {
            sigstore::refuse_reserved(&req.labels)?;
        }
        if let Some(k) = &req.idempotency_key {
            ingest::validate_idempotency_key(k)?;
        }
        if req.principal.is_empty() {
            return Err(VaultError::Invalid("missing principal".into()));
        }
        let mut staged = req.payload;
        // Analytics events are validated in memory, so they must be inline.
        let analytics = match &staged.body {
            StagedBody::Inline(bytes) => analytics::check(&req.content_type, bytes)?,
            StagedBody::File(_) if analytics::is_analytics(&req.content_type) => {
                return Err(analytics::too_large(self.inner.config.inline_max));
            }
            StagedBody::File(_) => None,
        };
        // Sigstore bundles are verified in memory too.
        match &staged.body {
            StagedBody::Inline(bytes) => {
                let config = &self.inner.config;
                sigstore::apply(
                    &config.sigstore,
                    &req.content_type,
                    bytes,
                    &mut req.labels,
                    artifact_digest,
                )
                .await?;
            }
            StagedBody::File(_) if sigstore::is_sigstore_bundle(&req.content_type) => {
                return Err(sigstore::too_large(self.inner.config.inline_max));
            }
            StagedBody::File(_) if artifact_digest.is_some() => {
                return Err(VaultError::Invalid(
                    "an artifact digest is only taken with a Sigstore bundle".into(),
                ));
            }
            StagedBody::File(_) => {}
        }
        let external = matches!(staged.body, StagedBody::File(_));
        let sha256 = staged.sha256;
        let flight = external.then(|| self.inner.in_flight.enter(sha256));
        if matches!(staged.body, StagedBody::File(_)) {
            let blobs = self.inner.blobs.clone();
            staged =
                tokio::task::spawn_blocking(move || blobs.persist(&mut staged).map(|_| staged))
                    .await??;
        }
        let payload = match staged.body {
            StagedBody::Inline(bytes) => Payload::Inline(bytes),
            StagedBody::File(_) => Payload::External,
        };
        let mut row = NewRecord {
            content_type: req.content_type,
            labels: req.labels,
            principal: req.principal,
            idempotency_key: req.idempotency_key,
            sha256: staged.sha256,
            size: staged.size,
            payload,
        }
        .into_row()?;
        row.analytics = analytics;
        // Audit off: the event builder is dropped uncalled.
        let audit = req.audit.filter(|_| self.inner.audit.is_some());
        let (ack, done) = oneshot::channel();
        self.enqueue(Pending::Put { row, audit, ack }).await?;
        let outcome = done.await.map_err(|_| dropped())??;
        drop(flight);
        if external && (outcome.duplicate || outcome.replayed) {
            // The blob was persisted before the sequencer found the
            // record; if that record's payload was erased, the bytes must
            // not come back. One row read decides; the sharer lookup runs
            // only then.
            let leaf = outcome.record.leaf_index;
            self.blocking(move |i| erasure::drop_if_erased(i, leaf, &sha256))
                .await?;
        }
        Ok(outcome)
    }

    /// Durably appends one audit event on its own (any call but a put,
    /// whose event goes with its record: [`PutRequest::audit`]). The vault
    /// assigns `id` (a new UUIDv7) and `leaf_index`; `time` stays the
    /// caller's. Returns after the commit; with audit disabled, at once,
    /// writing nothing. An event that breaks the format (see
    /// docs/FORMATS.md) is [`VaultError::Invalid`]; a failed commit is
    /// [`VaultError::Unavailable`].
    pub async fn record_audit(&self, event: AuditEvent) -> Result<()> {
        if self.inner.audit.is_none() {
            return Ok(());
        }
        audit::check_event(&event)
            .map_err(|why| VaultError::Invalid(format!("audit event: {why}")))?;
        let (ack, done) = oneshot::channel();
        self.enqueue(Pending::Audit { event, ack }).await?;
        done.await.map_err(|_| dropped())?
    }

    /// Like [`Vault::record_audit`], but returns once the event is queued
    /// for the sequencer (in order, behind the bounded queue), not after its
    /// commit: for reads, which change nothing and should not wait for the
    /// disk. It goes into the next group commit; a crash before that commit,
    /// or a failed commit, loses it without telling the caller.
    pub async fn queue_audit(&self, event: AuditEvent) -> Result<()> {
        if self.inner.audit.is_none() {
            return Ok(());
        }
        audit::check_event(&event)
            .map_err(|why| VaultError::Invalid(format!("audit event: {why}")))?;
        // Nobody waits for the acknowledgement; the sequencer's send to the
        // dropped receiver is ignored.
        let (ack, _) = oneshot::channel();
        self.enqueue(Pending::Audit { event, ack }).await
    }

    async fn enqueue(&self, p: Pending) -> Result<()> {
        if *self.inner.stop.borrow() {
            return Err(VaultError::Unavailable("the vault is shutting down".into()));
        }
        if let Some(why) = self.inner.role.borrow().refusal() {
            return Err(VaultError::Unavailable(why));
        }
        self.inner
            .tx
            .send(p)
            .await
            .map_err(|_| VaultError::Unavailable("the sequencer has stopped".into()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }

    /// A record, if `reader` may see it ([`VaultError::Hidden`] if not).
    pub async fn get(&self, reader: &Reader, id: &str) -> Result<Evidence> {
        let (id, reader) = (id.to_string(), reader.clone());
        self.blocking(move |i| i.readable_record(&reader, &id))
            .await
    }

    /// A record's payload and content type, if `reader` may see it. An
    /// inline payload is checked against the record's digest before it is
    /// returned; a blob is checked as it is read ([`BlobReader`]). Either
    /// failure is [`VaultError::Corrupt`], logged and counted.
    pub async fn payload(&self, reader: &Reader, id: &str) -> Result<(Evidence, PayloadData)> {
        let (id, reader) = (id.to_string(), reader.clone());
        enum Stored {
            Inline(Vec<u8>),
            Blob(std::path::PathBuf),
        }
        let (row, stored) = self
            .blocking(move |i| {
                let mut row = i.readable_row(&reader, &id)?;
                let stored = match std::mem::replace(&mut row.payload, Payload::External) {
                    Payload::Inline(b) => {
                        integrity::check_inline(&row, &b)?;
                        Stored::Inline(b)
                    }
                    Payload::External => Stored::Blob(i.blobs.path_for(&row.sha256)),
                    Payload::Erased { tombstone_leaf } => {
                        return Err(VaultError::Gone {
                            tombstone_id: erasure::tombstone_id(&*i.store, tombstone_leaf)?,
                            id: row.id,
                        });
                    }
                };
                Ok((row, stored))
            })
            .await?;
        let data = match stored {
            Stored::Inline(b) => PayloadData::Inline(b),
            Stored::Blob(path) => match BlobReader::open(path, &row).await {
                Ok(r) => PayloadData::File(Box::new(r)),
                // An erasure may have unlinked the blob since the row was
                // read: then the answer is Gone, not NotFound.
                Err(VaultError::NotFound(what)) => {
                    let leaf = row.leaf_index;
                    return Err(self
                        .blocking(move |i| {
                            if let Some(r) = i.store.record_by_index(leaf)?
                                && let Payload::Erased { tombstone_leaf } = r.payload
                            {
                                return Ok(VaultError::Gone {
                                    tombstone_id: erasure::tombstone_id(&*i.store, tombstone_leaf)?,
                                    id: r.id,
                                });
                            }
                            Ok(VaultError::NotFound(what))
                        })
                        .await?);
                }
                Err(e) => return Err(e),
            },
        };
        Ok((evidence_from_row(&row), data))
    }

    /// How far the index follower has reached: the label and
    /// payload-digest indexes hold exactly the evidence records below this
    /// leaf index. Reads never depend on it ([`Vault::list`] and erasure
    /// read the records past it directly); it says what they cost.
    pub fn indexed_through(&self) -> u64 {
        *self.inner.index_reach.borrow()
    }

    /// Waits until the label and digest indexes hold every record below
    /// `through`, at most `timeout`; returns how far they reach then.
    pub async fn wait_indexed(&self, through: u64, timeout: std::time::Duration) -> u64 {
        let mut reach = self.inner.index_reach.clone();
        let _ = tokio::time::timeout(timeout, reach.wait_for(|&r| r >= through)).await;
        *reach.borrow()
    }

    /// Records matching `query` that `reader` may see, in log order.
    /// Refuses (`Invalid`) more than [`ingest::MAX_LABEL_FILTERS`] label
    /// filters or a malformed label key.
    pub async fn list(&self, reader: &Reader, mut query: ListQuery) -> Result<Page<Evidence>> {
        ingest::validate_label_filters(&query.labels)?;
        if let Some(owner) = reader.only_owner() {
            // Asking for another principal's records: there are none this
            // reader may see.
            if query.ingested_by.as_ref().is_some_and(|p| *p != owner) {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            query.ingested_by = Some(owner);
        }
        self.blocking(move |i| {
            let page = i.store.list(&query)?;
            for row in &page.items {
                integrity::check_record(row)?;
            }
            Ok(Page {
                items: page.items.iter().map(evidence_from_row).collect(),
                next: page.next,
            })
        })
        .await
    }

    /// Per source and kind, counts and statistics of the analytics events
    /// matching `query` ([`ANALYTICS_TYPE`] records) that `reader` may see,
    /// aggregated by the store from what it holds; with the query as
    /// applied.
    pub async fn analytics_summary(
        &self,
        reader: &Reader,
        mut query: AnalyticsQuery,
    ) -> Result<Summary> {
        if let Some(owner) = reader.only_owner() {
            query.ingested_by = Some(owner);
        }
        self.blocking(move |i| {
            let groups = i.store.analytics_summary(&query)?;
            Ok(Summary { groups, query })
        })
        .await
    }

    /// Counts of the records `reader` may see in the query's window, per
    /// time bucket and per content type (the dashboard's charts). The
    /// window holds at most [`MAX_STATS_BUCKETS`] buckets.
    pub async fn evidence_stats(
        &self,
        reader: &Reader,
        mut query: StatsQuery,
    ) -> Result<EvidenceStats> {
        if query.bucket_ms < 1 || query.since_ms < 0 || query.until_ms <= query.since_ms {
            return Err(VaultError::Invalid(
                "stats need a bucket of at least 1 ms and 0 <= since < until".into(),
            ));
        }
        // Buckets start at multiples of the width: count those the window
        // touches, the partial ones at either end included.
        let first = query.since_ms.div_euclid(query.bucket_ms);
        let last = (query.until_ms - 1).div_euclid(query.bucket_ms);
        if last - first + 1 > i64::from(MAX_STATS_BUCKETS) {
            return Err(VaultError::Invalid(format!(
                "the window touches more than {MAX_STATS_BUCKETS} buckets; narrow it or widen the bucket"
            )));
        }
        if let Some(owner) = reader.only_owner() {
            query.ingested_by = Some(owner);
        }
        self.blocking(move |i| Ok(i.store.evidence_stats(&query)?))
            .await
    }

    /// Audit events in `since_ms..until_ms` (at most
    /// [`MAX_AUDIT_STATS_WINDOW_MS`]) per outcome, of those `reader` may
    /// see. [`VaultError::NotFound`] when audit is disabled.
    pub async fn audit_outcomes(
        &self,
        reader: &Reader,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<(String, u64)>> {
        if until_ms <= since_ms || until_ms - since_ms > MAX_AUDIT_STATS_WINDOW_MS {
            return Err(VaultError::Invalid(
                "audit stats need since before until, at most 31 days apart".into(),
            ));
        }
        let principal = reader.only_owner();
        self.blocking(move |i| {
            i.log(LogId::Audit)?;
            Ok(i.store
                .audit_outcomes(since_ms, until_ms, principal.as_deref())?)
        })
        .await
    }

    /// Audit events matching `query` that `reader` may see, in log order.
    /// [`VaultError::NotFound`] when audit is disabled.
    pub async fn audit_list(
        &self,
        reader: &Reader,
        mut query: AuditQuery,
    ) -> Result<Page<AuditEvent>> {
        if let Some(owner) = reader.only_owner() {
            query.principal = Some(owner);
        }
        self.blocking(move |i| {
            i.log(LogId::Audit)?;
            let page = i.store.list_audit(&query)?;
            Ok(Page {
                items: page
                    .items
                    .iter()
                    .map(audit::from_row)
                    .collect::<Result<_>>()?,
                next: page.next,
            })
        })
        .await
    }

    /// One audit event, if `reader` may see it.
    pub async fn audit_event(&self, reader: &Reader, id: &str) -> Result<AuditEvent> {
        let (id, reader) = (id.to_string(), reader.clone());
        self.blocking(move |i| i.readable_event(&reader, &id)).await
    }
}

fn dropped() -> VaultError {
    VaultError::Unavailable("the sequencer dropped the request".into())
}
