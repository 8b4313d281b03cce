//! The evault domain. Evidence goes in through [`Vault::put`]; a single
//! sequencer task commits it in groups and acknowledges only what is
//! durable; a checkpointer signs the growing tree; proofs are served from
//! the stored tiles. The vault decides; the server only translates.
//!
//! Every API call also leaves an audit event in a second Merkle log with
//! its own origin, key, tiles and checkpoints ([`Vault::record_audit`],
//! [`PutRequest::audit`]). The same sequencer commits both logs, so a put's
//! event is in the same transaction as its record, and the audit read API
//! (`audit_*`) shares its implementation with the evidence one.

pub mod analytics;
mod audit;
mod blobs;
pub mod calendar;
mod checkpointer;
mod error;
pub mod ingest;
mod keys;
mod logs;
mod mirror;
mod proofs;
mod sequencer;
mod startup;
mod stream;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use evault_merkle::Hash;
use evault_merkle::tiles::{TilePath, TileReader, encode_entry_bundle};
use evault_note::Verifiers;
use evault_store::{EvidenceRow, ListQuery, Payload, Store, StoredCheckpoint};
use evault_verify::evidence::hex;
use evault_verify::{AuditEvent, AuditProofBundle, Evidence, ProofBundle, dedup_key};
use tokio::sync::{mpsc, oneshot, watch};

pub use analytics::ANALYTICS_TYPE;
pub use audit::{AuditConfig, AuditOnCommit};
pub use blobs::{StagedPayload, Upload};
pub use error::{Result, VaultError};
pub use evault_store::{
    AnalyticsGroup, AnalyticsQuery, AnalyticsRow, AuditQuery, LogId, Page, SqliteStore, Stats,
};
pub use sequencer::{BatchLimits, TreeHead};
pub use stream::{StreamRecord, Submitted};

use blobs::{BlobDir, StagedBody};
use logs::LogHandle;
use proofs::TileCache;
use sequencer::{Outputs, Pending, Trees};
use startup::LogStart;

/// How the vault runs. Defaults are the documented ones.
#[derive(Clone, Debug)]
pub struct VaultConfig {
    pub data_dir: PathBuf,
    /// Checkpoint origin for a new log; must match a stored one.
    pub origin: Option<String>,
    /// Log signing key; default `<data dir>/log.key`, generated if missing.
    pub key_file: Option<PathBuf>,
    /// Payloads up to this size are kept in the store, larger ones as blobs.
    pub inline_max: usize,
    /// Largest accepted payload.
    pub max_upload: u64,
    pub max_batch: usize,
    /// Extra time the sequencer waits to fill a batch (0: take what queued).
    pub max_delay: Duration,
    pub checkpoint_interval: Duration,
    /// Appends waiting for the sequencer before callers are slowed.
    pub queue_depth: usize,
    /// Bytes of streamed records (payload plus a fixed overhead each) all
    /// streams together may have in flight before they are slowed.
    pub stream_budget: usize,
    /// The audit trail (on by default).
    pub audit: AuditConfig,
}

impl VaultConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        VaultConfig {
            data_dir: data_dir.into(),
            origin: None,
            key_file: None,
            inline_max: 64 * 1024,
            max_upload: 64 * 1024 * 1024,
            max_batch: 16 * 1024,
            max_delay: Duration::ZERO,
            checkpoint_interval: Duration::from_millis(500),
            queue_depth: 16 * 1024,
            stream_budget: 64 * 1024 * 1024,
            audit: AuditConfig::default(),
        }
    }
}

/// A submission, validated by [`Vault::put`].
pub struct PutRequest {
    pub content_type: String,
    pub labels: BTreeMap<String, String>,
    pub payload: StagedPayload,
    pub principal: String,
    pub idempotency_key: Option<String>,
    /// Builds the put's audit event, committed with the record (see
    /// [`AuditOnCommit`]); `None`: the caller audits the put itself.
    pub audit: Option<AuditOnCommit>,
}

impl fmt::Debug for PutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutRequest")
            .field("content_type", &self.content_type)
            .field("labels", &self.labels)
            .field("payload", &self.payload)
            .field("principal", &self.principal)
            .field("idempotency_key", &self.idempotency_key)
            .field("audit", &self.audit.as_ref().map(|_| "FnOnce(&PutOutcome)"))
            .finish()
    }
}

/// What a put did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    pub record: Evidence,
    /// An existing record with the same payload, content type and labels.
    pub duplicate: bool,
    /// A retry with a known idempotency key: the first response again.
    pub replayed: bool,
}

/// A payload to serve.
#[derive(Debug)]
pub enum PayloadData {
    Inline(Vec<u8>),
    File(PathBuf),
}

/// What an outside verifier needs to start following a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInfo {
    pub origin: String,
    pub verifier_key: String,
    pub tree_size: u64,
    pub checkpoint_size: u64,
}

/// A consistency proof between two checkpointed sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<Hash>,
}

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
}

impl Inner {
    /// The stored record with this id, or [`VaultError::NotFound`].
    fn record(&self, id: &str) -> Result<EvidenceRow> {
        self.store
            .record_by_id(id)?
            .ok_or_else(|| VaultError::NotFound(format!("evidence {id}")))
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

    /// The stored audit event with this id.
    fn audit_event(&self, id: &str) -> Result<AuditEvent> {
        self.log(LogId::Audit)?;
        let row = self
            .store
            .audit_by_id(id)?
            .ok_or_else(|| VaultError::NotFound(format!("audit event {id}")))?;
        audit::from_row(&row)
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
/// sequencer, and its checkpointer with the heads it follows (to spawn).
struct Running {
    handle: LogHandle,
    state: sequencer::TreeState,
    heads: watch::Sender<TreeHead>,
    checkpointer: (checkpointer::Checkpointer, watch::Receiver<TreeHead>),
}

fn running(
    id: LogId,
    log: LogStart,
    store: &Arc<dyn Store>,
    interval: Duration,
    cache_tiles: usize,
) -> Result<Running> {
    let signer = Arc::new(log.signer);
    let verifiers = Verifiers::new()
        .with(signer.verifier())
        .map_err(|e| VaultError::Invalid(e.to_string()))?;
    let (head_tx, heads) = watch::channel(log.state.head());
    let (cp_tx, checkpoints) = watch::channel(log.published);
    let checkpointer = checkpointer::Checkpointer {
        store: store.clone(),
        log: id,
        signer: signer.clone(),
        origin: log.origin.clone(),
        interval,
        published: cp_tx,
    };
    let handle = LogHandle {
        id,
        origin: log.origin,
        signer,
        verifiers,
        tile_cache: TileCache::new(cache_tiles),
        heads: heads.clone(),
        checkpoints,
    };
    Ok(Running {
        handle,
        state: log.state,
        heads: head_tx,
        checkpointer: (checkpointer, heads),
    })
}

impl Vault {
    /// Opens the vault on its embedded SQLite store in `config.data_dir`.
    pub async fn open(config: VaultConfig) -> Result<Vault> {
        create_private_dir(&config.data_dir)?;
        let db = config.data_dir.join("evault.db");
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&db))
            .await
            .map_err(|e| VaultError::Unavailable(e.to_string()))??;
        Self::with_store(config, Arc::new(store)).await
    }

    /// Opens the vault on any store. Checks, for each log, that the stored
    /// tree, its tiles and the latest checkpoint agree, and refuses to
    /// start if they do not.
    pub async fn with_store(config: VaultConfig, store: Arc<dyn Store>) -> Result<Vault> {
        create_private_dir(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let blobs = BlobDir::open(&config.data_dir)?;
        let cfg = config.clone();
        let st = store.clone();
        let started = tokio::task::spawn_blocking(move || startup::startup(&cfg, &*st))
            .await
            .map_err(|e| VaultError::Unavailable(e.to_string()))??;
        let mirror = match startup::mirror_dir(&config) {
            Some(dir) => Some(mirror::start(dir)?),
            None => None,
        };

        let interval = config.checkpoint_interval;
        let evidence = running(
            LogId::Evidence,
            started.evidence,
            &store,
            interval,
            TILE_CACHE_TILES,
        )?;
        let audit = match started.audit {
            Some(log) => Some(running(
                LogId::Audit,
                log,
                &store,
                interval,
                AUDIT_TILE_CACHE_TILES,
            )?),
            None => None,
        };

        let mut trees = Trees {
            evidence: evidence.state,
            audit: None,
        };
        let mut outputs = Outputs {
            evidence_heads: evidence.heads,
            audit_heads: None,
            mirror,
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
        tokio::spawn(sequencer::run(rx, store.clone(), trees, limits, outputs));
        for (c, heads) in checkpointers {
            tokio::spawn(c.run(heads));
        }

        let stream_budget = stream::budget(&config);
        Ok(Vault {
            inner: Arc::new(Inner {
                _lock: lock,
                store,
                blobs,
                config,
                evidence,
                audit,
                tx,
                stream_budget,
            }),
        })
    }

    pub fn origin(&self) -> &str {
        &self.inner.evidence.origin
    }

    /// The log's verifier key in note format (`name+hash+base64`).
    pub fn verifier_key(&self) -> String {
        self.inner.evidence.verifier_key()
    }

    /// Verifiers holding the log key, for opening its checkpoints.
    pub fn verifiers(&self) -> &Verifiers {
        &self.inner.evidence.verifiers
    }

    pub fn config(&self) -> &VaultConfig {
        &self.inner.config
    }

    /// Tree size and root after the latest durable commit.
    pub fn head(&self) -> TreeHead {
        self.inner.evidence.head()
    }

    /// Size of the latest signed checkpoint.
    pub fn checkpoint_size(&self) -> u64 {
        self.inner.evidence.checkpoint_size()
    }

    /// Starts receiving a payload (hashed as it streams, spilled to disk past
    /// the inline size, rejected past the upload limit).
    pub fn upload(&self) -> Upload {
        let c = &self.inner.config;
        self.inner.blobs.upload(c.inline_max, c.max_upload)
    }

    /// Validates and logs a submission. Returns once it is durably committed
    /// (or found to be a duplicate or a replay).
    pub async fn put(&self, req: PutRequest) -> Result<PutOutcome> {
        ingest::validate_content_type(&req.content_type)?;
        ingest::validate_labels(&req.labels)?;
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
        if matches!(staged.body, StagedBody::File(_)) {
            let blobs = self.inner.blobs.clone();
            staged =
                tokio::task::spawn_blocking(move || blobs.persist(&mut staged).map(|_| staged))
                    .await
                    .map_err(|e| VaultError::Unavailable(e.to_string()))??;
        }
        let payload = match staged.body {
            StagedBody::Inline(bytes) => Payload::Inline(bytes),
            StagedBody::File(_) => Payload::External,
        };
        let mut row = new_row(
            req.content_type,
            req.labels,
            req.principal,
            req.idempotency_key,
            staged.sha256,
            staged.size,
            payload,
        );
        row.analytics = analytics;
        // Audit off: the event builder is dropped uncalled.
        let audit = req.audit.filter(|_| self.inner.audit.is_some());
        let (ack, done) = oneshot::channel();
        self.enqueue(Pending::Put { row, audit, ack }).await?;
        done.await
            .map_err(|_| VaultError::Unavailable("the sequencer dropped the request".into()))?
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
        done.await
            .map_err(|_| VaultError::Unavailable("the sequencer dropped the request".into()))?
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
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| VaultError::Unavailable(e.to_string()))?
    }

    pub async fn get(&self, id: &str) -> Result<Evidence> {
        let id = id.to_string();
        self.blocking(move |i| Ok(evidence_from_row(&i.record(&id)?)))
            .await
    }

    /// A record's payload and content type.
    pub async fn payload(&self, id: &str) -> Result<(Evidence, PayloadData)> {
        let id = id.to_string();
        self.blocking(move |i| {
            let row = i.record(&id)?;
            let data = match &row.payload {
                Payload::Inline(b) => PayloadData::Inline(b.clone()),
                Payload::External => {
                    let path = i.blobs.path_for(&row.sha256);
                    if !path.exists() {
                        return Err(VaultError::NotFound(format!("payload of evidence {id}")));
                    }
                    PayloadData::File(path)
                }
            };
            Ok((evidence_from_row(&row), data))
        })
        .await
    }

    pub async fn list(&self, query: ListQuery) -> Result<Page<Evidence>> {
        self.blocking(move |i| {
            let page = i.store.list(&query)?;
            Ok(Page {
                items: page.items.iter().map(evidence_from_row).collect(),
                next: page.next,
            })
        })
        .await
    }

    /// Per source and kind, counts and statistics of the analytics events
    /// matching `query` ([`ANALYTICS_TYPE`] records), aggregated by the
    /// store from what it holds.
    pub async fn analytics_summary(&self, query: AnalyticsQuery) -> Result<Vec<AnalyticsGroup>> {
        self.blocking(move |i| Ok(i.store.analytics_summary(&query)?))
            .await
    }

    /// Inclusion proof of a record against the checkpoint of size
    /// `tree_size` (default: the latest), with that checkpoint.
    pub async fn inclusion(&self, id: &str, tree_size: Option<u64>) -> Result<ProofBundle> {
        let id = id.to_string();
        self.blocking(move |i| {
            let record = evidence_from_row(&i.record(&id)?);
            i.evidence
                .inclusion(&*i.store, record, &format!("evidence {id}"), tree_size)
        })
        .await
    }

    /// Consistency proof between two tree sizes no larger than the latest
    /// checkpoint.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof> {
        self.blocking(move |i| i.evidence.consistency(&*i.store, from, to))
            .await
    }

    pub async fn latest_checkpoint(&self) -> Result<StoredCheckpoint> {
        self.blocking(|i| i.evidence.latest_checkpoint(&*i.store))
            .await
    }

    pub async fn checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint> {
        self.blocking(move |i| i.evidence.checkpoint_at(&*i.store, size))
            .await
    }

    pub async fn list_checkpoints(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.blocking(move |i| i.evidence.list_checkpoints(&*i.store, after, limit))
            .await
    }

    pub fn log_info(&self) -> LogInfo {
        self.inner.evidence.info()
    }

    /// Contents of a C2SP tlog-tiles resource (hash tile or entry bundle).
    pub async fn tile(&self, path: TilePath) -> Result<Vec<u8>> {
        self.blocking(move |i| match path {
            TilePath::Hashes(tile) => i
                .evidence
                .tiles(&*i.store)
                .read_tiles(&[tile])?
                .pop()
                .ok_or(VaultError::NotFound(tile.path())),
            TilePath::Entries { index, width } => {
                let start = index
                    .checked_mul(256)
                    .ok_or_else(|| VaultError::NotFound("entry bundle".into()))?;
                let end = start
                    .checked_add(u64::from(width))
                    .ok_or_else(|| VaultError::NotFound("entry bundle".into()))?;
                if end > i.store.tree_size(LogId::Evidence)? {
                    return Err(VaultError::NotFound(format!(
                        "entry bundle {}",
                        evault_merkle::tiles::entries_path(index, width)
                    )));
                }
                let entries = i.store.leaf_data_range(start, end)?;
                encode_entry_bundle(&entries).map_err(|e| VaultError::Inconsistent(e.to_string()))
            }
        })
        .await
    }

    /// Waits until a checkpoint of at least `size` is signed, or `timeout`.
    pub async fn wait_for_checkpoint(&self, size: u64, timeout: Duration) -> Result<u64> {
        self.inner.evidence.wait_for_checkpoint(size, timeout).await
    }

    // --- the audit trail: the same reads, on the audit log ----------------

    /// Audit events matching `query`, in log order. [`VaultError::NotFound`]
    /// when audit is disabled (as for every `audit_*` read).
    pub async fn audit_list(&self, query: AuditQuery) -> Result<Page<AuditEvent>> {
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

    pub async fn audit_event(&self, id: &str) -> Result<AuditEvent> {
        let id = id.to_string();
        self.blocking(move |i| i.audit_event(&id)).await
    }

    /// Inclusion proof of an audit event against the audit checkpoint of
    /// size `tree_size` (default: the latest), with that checkpoint.
    pub async fn audit_inclusion(
        &self,
        id: &str,
        tree_size: Option<u64>,
    ) -> Result<AuditProofBundle> {
        let id = id.to_string();
        self.blocking(move |i| {
            let event = i.audit_event(&id)?;
            i.log(LogId::Audit)?.inclusion(
                &*i.store,
                event,
                &format!("audit event {id}"),
                tree_size,
            )
        })
        .await
    }

    /// Consistency proof between two audit tree sizes no larger than the
    /// latest audit checkpoint.
    pub async fn audit_consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof> {
        self.blocking(move |i| i.log(LogId::Audit)?.consistency(&*i.store, from, to))
            .await
    }

    pub async fn audit_latest_checkpoint(&self) -> Result<StoredCheckpoint> {
        self.blocking(|i| i.log(LogId::Audit)?.latest_checkpoint(&*i.store))
            .await
    }

    pub async fn audit_checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint> {
        self.blocking(move |i| i.log(LogId::Audit)?.checkpoint_at(&*i.store, size))
            .await
    }

    pub async fn audit_list_checkpoints(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.blocking(move |i| {
            i.log(LogId::Audit)?
                .list_checkpoints(&*i.store, after, limit)
        })
        .await
    }

    /// The audit log's origin, verifier key and sizes; `None` when audit is
    /// disabled.
    pub fn audit_log_info(&self) -> Option<LogInfo> {
        self.inner.audit.as_ref().map(LogHandle::info)
    }

    /// The audit log's verifier key in note format; `None` when disabled.
    pub fn audit_verifier_key(&self) -> Option<String> {
        self.inner.audit.as_ref().map(LogHandle::verifier_key)
    }

    /// Verifiers holding the audit key only; `None` when disabled.
    pub fn audit_verifiers(&self) -> Option<&Verifiers> {
        self.inner.audit.as_ref().map(|a| &a.verifiers)
    }

    /// Audit tree size and root after the latest durable commit; `None`
    /// when disabled.
    pub fn audit_head(&self) -> Option<TreeHead> {
        self.inner.audit.as_ref().map(LogHandle::head)
    }

    /// Waits until an audit checkpoint of at least `size` is signed, or
    /// `timeout`.
    pub async fn wait_for_audit_checkpoint(&self, size: u64, timeout: Duration) -> Result<u64> {
        self.inner
            .log(LogId::Audit)?
            .wait_for_checkpoint(size, timeout)
            .await
    }
}

/// Takes an exclusive lock on `<data dir>/LOCK`, released when the process
/// exits however it exits (it is an OS file lock, not a marker file).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(VaultError::Unavailable(format!(
            "data directory {} is in use by another evault process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    Ok(())
}

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn format_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A new record's row (leaf index still 0: the sequencer assigns it), from
/// fields already validated.
fn new_row(
    content_type: String,
    labels: BTreeMap<String, String>,
    principal: String,
    idempotency_key: Option<String>,
    sha256: [u8; 32],
    size: u64,
    payload: Payload,
) -> EvidenceRow {
    let ingested_at_ms = checkpointer::now_ms();
    let evidence = Evidence {
        id: uuid::Uuid::now_v7().to_string(),
        leaf_index: 0,
        content_type,
        sha256: hex(&sha256),
        size,
        labels,
        ingested_at: format_ms(ingested_at_ms),
        ingested_by: principal,
        idempotency_key,
    };
    EvidenceRow {
        leaf_index: 0,
        dedup_key: dedup_key(&sha256, &evidence.content_type, &evidence.labels),
        leaf_data: evidence.leaf_data(),
        id: evidence.id,
        content_type: evidence.content_type,
        sha256,
        size,
        labels: evidence.labels,
        ingested_at_ms,
        ingested_by: evidence.ingested_by,
        idempotency_key: evidence.idempotency_key,
        payload,
        analytics: None,
    }
}

/// The API view of a stored row.
pub fn evidence_from_row(row: &EvidenceRow) -> Evidence {
    Evidence {
        id: row.id.clone(),
        leaf_index: row.leaf_index,
        content_type: row.content_type.clone(),
        sha256: hex(&row.sha256),
        size: row.size,
        labels: row.labels.clone(),
        ingested_at: format_ms(row.ingested_at_ms),
        ingested_by: row.ingested_by.clone(),
        idempotency_key: row.idempotency_key.clone(),
    }
}
