//! The evault domain. Evidence goes in through [`Vault::put`]; a single
//! sequencer task commits it in groups and acknowledges only what is
//! durable; a checkpointer signs the growing tree; proofs are served from
//! the stored tiles. The vault decides; the server only translates.

mod blobs;
mod checkpointer;
mod error;
pub mod ingest;
mod keys;
mod proofs;
mod sequencer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::tiles::{TilePath, TileReader, TiledHashReader, encode_entry_bundle};
use evault_merkle::{Hash, NodeId, leaf_hash};
use evault_note::{Checkpoint, Ed25519Signer, Verifiers};
use evault_store::{EvidenceRow, ListQuery, Payload, Store, StoredCheckpoint};
use evault_verify::evidence::hex;
use evault_verify::{Evidence, ProofBundle, dedup_key, open_checkpoint};
use tokio::sync::{mpsc, oneshot, watch};

pub use blobs::{StagedPayload, Upload};
pub use error::{Result, VaultError};
pub use evault_store::{Page, SqliteStore};
pub use sequencer::{Appended, BatchLimits, TreeHead};

use blobs::{BlobDir, StagedBody};
use proofs::{StoreTiles, TileCache};
use sequencer::{Pending, TreeState};

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
}

impl VaultConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        VaultConfig {
            data_dir: data_dir.into(),
            origin: None,
            key_file: None,
            inline_max: 64 * 1024,
            max_upload: 64 * 1024 * 1024,
            max_batch: 4096,
            max_delay: Duration::ZERO,
            checkpoint_interval: Duration::from_millis(500),
            queue_depth: 16 * 1024,
        }
    }
}

/// A submission, validated by [`Vault::put`].
#[derive(Debug)]
pub struct PutRequest {
    pub content_type: String,
    pub labels: BTreeMap<String, String>,
    pub payload: StagedPayload,
    pub principal: String,
    pub idempotency_key: Option<String>,
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

/// What an outside verifier needs to start following the log.
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
    origin: String,
    signer: Arc<Ed25519Signer>,
    verifiers: Verifiers,
    config: VaultConfig,
    /// Full (immutable) tiles recently used by proofs.
    tile_cache: TileCache,
    tx: mpsc::Sender<Pending>,
    heads: watch::Receiver<TreeHead>,
    checkpoints: watch::Receiver<u64>,
}

impl Inner {
    /// The stored record with this id, or [`VaultError::NotFound`].
    fn record(&self, id: &str) -> Result<EvidenceRow> {
        self.store
            .record_by_id(id)?
            .ok_or_else(|| VaultError::NotFound(format!("evidence {id}")))
    }
}

/// A running vault. Cheap to clone; all clones share one sequencer.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

const META_ORIGIN: &str = "origin";
/// Full tiles kept in memory for proofs: 4096 × 8 KiB = 32 MiB.
const TILE_CACHE_TILES: usize = 4096;

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

    /// Opens the vault on any store. Checks that the stored tree, its tiles
    /// and the latest checkpoint agree, and refuses to start if they do not.
    pub async fn with_store(config: VaultConfig, store: Arc<dyn Store>) -> Result<Vault> {
        create_private_dir(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let blobs = BlobDir::open(&config.data_dir)?;
        let cfg = config.clone();
        let st = store.clone();
        let (origin, signer, state, published) =
            tokio::task::spawn_blocking(move || startup(&cfg, &*st))
                .await
                .map_err(|e| VaultError::Unavailable(e.to_string()))??;
        let verifiers = Verifiers::new()
            .with(signer.verifier())
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
        let signer = Arc::new(signer);

        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let (head_tx, heads) = watch::channel(state.head());
        let (cp_tx, checkpoints) = watch::channel(published);
        let limits = BatchLimits {
            max_batch: config.max_batch.max(1),
            max_delay: config.max_delay,
        };
        tokio::spawn(sequencer::run(rx, store.clone(), state, limits, head_tx));
        let cp = checkpointer::Checkpointer {
            store: store.clone(),
            signer: signer.clone(),
            origin: origin.clone(),
            interval: config.checkpoint_interval,
            published: cp_tx,
        };
        tokio::spawn(cp.run(heads.clone()));

        Ok(Vault {
            inner: Arc::new(Inner {
                _lock: lock,
                store,
                blobs,
                origin,
                signer,
                verifiers,
                config,
                tile_cache: TileCache::new(TILE_CACHE_TILES),
                tx,
                heads,
                checkpoints,
            }),
        })
    }

    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The log's verifier key in note format (`name+hash+base64`).
    pub fn verifier_key(&self) -> String {
        self.inner.signer.verifier_key().to_string()
    }

    /// Verifiers holding the log key, for opening its checkpoints.
    pub fn verifiers(&self) -> &Verifiers {
        &self.inner.verifiers
    }

    pub fn config(&self) -> &VaultConfig {
        &self.inner.config
    }

    /// Tree size and root after the latest durable commit.
    pub fn head(&self) -> TreeHead {
        *self.inner.heads.borrow()
    }

    /// Size of the latest signed checkpoint.
    pub fn checkpoint_size(&self) -> u64 {
        *self.inner.checkpoints.borrow()
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
        if matches!(staged.body, StagedBody::File(_)) {
            let blobs = self.inner.blobs.clone();
            staged =
                tokio::task::spawn_blocking(move || blobs.persist(&mut staged).map(|_| staged))
                    .await
                    .map_err(|e| VaultError::Unavailable(e.to_string()))??;
        }
        let id = uuid::Uuid::now_v7();
        let ingested_at_ms = checkpointer::now_ms();
        let evidence = Evidence {
            id: id.to_string(),
            leaf_index: 0,
            content_type: req.content_type,
            sha256: hex(&staged.sha256),
            size: staged.size,
            labels: req.labels,
            ingested_at: format_ms(ingested_at_ms),
            ingested_by: req.principal,
            idempotency_key: req.idempotency_key,
        };
        let payload = match staged.body {
            StagedBody::Inline(bytes) => Payload::Inline(bytes),
            StagedBody::File(_) => Payload::External,
        };
        let row = EvidenceRow {
            leaf_index: 0,
            dedup_key: dedup_key(&staged.sha256, &evidence.content_type, &evidence.labels),
            leaf_data: evidence.leaf_data(),
            id: evidence.id,
            content_type: evidence.content_type,
            sha256: staged.sha256,
            size: staged.size,
            labels: evidence.labels,
            ingested_at_ms,
            ingested_by: evidence.ingested_by,
            idempotency_key: evidence.idempotency_key,
            payload,
        };
        let (ack, done) = oneshot::channel();
        self.inner
            .tx
            .send(Pending { row, ack })
            .await
            .map_err(|_| VaultError::Unavailable("the sequencer has stopped".into()))?;
        let appended = done
            .await
            .map_err(|_| VaultError::Unavailable("the sequencer dropped the request".into()))??;
        let (row, duplicate, replayed) = match appended {
            Appended::New(r) => (r, false, false),
            Appended::Duplicate(r) => (r, true, false),
            Appended::Replayed(r) => (r, false, true),
        };
        Ok(PutOutcome {
            record: evidence_from_row(&row),
            duplicate,
            replayed,
        })
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

    /// Inclusion proof of a record against the checkpoint of size
    /// `tree_size` (default: the latest), with that checkpoint.
    pub async fn inclusion(&self, id: &str, tree_size: Option<u64>) -> Result<ProofBundle> {
        let id = id.to_string();
        self.blocking(move |i| {
            let row = i.record(&id)?;
            let cp = match tree_size {
                Some(n) => i
                    .store
                    .checkpoint_at(n)?
                    .ok_or(VaultError::NotFound(format!("checkpoint of size {n}")))?,
                None => i.store.latest_checkpoint()?.ok_or(VaultError::NotFound(
                    "checkpoint (none signed yet; retry shortly)".into(),
                ))?,
            };
            if row.leaf_index >= cp.size {
                return Err(VaultError::NotFound(format!(
                    "evidence {id} (leaf {}) in checkpoint of size {}; it will be in the next \
                     checkpoint, retry shortly",
                    row.leaf_index, cp.size
                )));
            }
            let reader = TiledHashReader {
                tiles: StoreTiles {
                    store: &*i.store,
                    cache: Some(&i.tile_cache),
                },
                tree_size: cp.size,
            };
            let proof = evault_merkle::inclusion_proof(&reader, row.leaf_index, cp.size)
                .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
            Ok(ProofBundle {
                record: evidence_from_row(&row),
                leaf_index: row.leaf_index,
                tree_size: cp.size,
                inclusion_proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
                checkpoint: cp.note,
            })
        })
        .await
    }

    /// Consistency proof between two tree sizes no larger than the latest
    /// checkpoint.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof> {
        self.blocking(move |i| {
            let latest = i.store.latest_checkpoint()?.map_or(0, |c| c.size);
            if from == 0 || from > to {
                return Err(VaultError::Invalid(format!(
                    "need 0 < from <= to, got from={from} to={to}"
                )));
            }
            if to > latest {
                return Err(VaultError::NotFound(format!(
                    "checkpoint of size {to} (latest is {latest})"
                )));
            }
            let reader = TiledHashReader {
                tiles: StoreTiles {
                    store: &*i.store,
                    cache: Some(&i.tile_cache),
                },
                tree_size: to,
            };
            let proof = evault_merkle::consistency_proof(&reader, from, to)
                .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
            Ok(ConsistencyProof { from, to, proof })
        })
        .await
    }

    pub async fn latest_checkpoint(&self) -> Result<StoredCheckpoint> {
        self.blocking(|i| {
            i.store
                .latest_checkpoint()?
                .ok_or(VaultError::NotFound("checkpoint".into()))
        })
        .await
    }

    pub async fn checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint> {
        self.blocking(move |i| {
            i.store
                .checkpoint_at(size)?
                .ok_or(VaultError::NotFound(format!("checkpoint of size {size}")))
        })
        .await
    }

    pub async fn list_checkpoints(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.blocking(move |i| Ok(i.store.list_checkpoints(after, limit)?))
            .await
    }

    pub fn log_info(&self) -> LogInfo {
        LogInfo {
            origin: self.inner.origin.clone(),
            verifier_key: self.verifier_key(),
            tree_size: self.head().size,
            checkpoint_size: self.checkpoint_size(),
        }
    }

    /// Contents of a C2SP tlog-tiles resource (hash tile or entry bundle).
    pub async fn tile(&self, path: TilePath) -> Result<Vec<u8>> {
        self.blocking(move |i| match path {
            TilePath::Hashes(tile) => {
                let tiles = StoreTiles {
                    store: &*i.store,
                    cache: Some(&i.tile_cache),
                };
                tiles
                    .read_tiles(&[tile])?
                    .pop()
                    .ok_or(VaultError::NotFound(tile.path()))
            }
            TilePath::Entries { index, width } => {
                let start = index
                    .checked_mul(256)
                    .ok_or_else(|| VaultError::NotFound("entry bundle".into()))?;
                let end = start
                    .checked_add(u64::from(width))
                    .ok_or_else(|| VaultError::NotFound("entry bundle".into()))?;
                if end > i.store.tree_size()? {
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
        let mut rx = self.inner.checkpoints.clone();
        let wait = rx.wait_for(|&s| s >= size);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => Ok(*s),
            Ok(Err(_)) => Err(VaultError::Unavailable("checkpointer stopped".into())),
            Err(_) => Err(VaultError::Unavailable(format!(
                "no checkpoint of size {size} within {timeout:?}"
            ))),
        }
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
fn format_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
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

/// Everything checked before serving: origin and key, the stored tree
/// against its tiles and records, and the latest checkpoint against both.
fn startup(
    config: &VaultConfig,
    store: &dyn Store,
) -> Result<(String, Ed25519Signer, TreeState, u64)> {
    let stored_origin = store.get_meta(META_ORIGIN)?;
    let origin = match (&stored_origin, &config.origin) {
        (Some(s), Some(c)) if s != c => {
            return Err(VaultError::Inconsistent(format!(
                "the log's origin is {s:?} but the configuration asks for {c:?}; an existing \
                 log cannot change origin"
            )));
        }
        (Some(s), _) => s.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => format!(
            "evault.local/{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ),
    };
    let key_path = config
        .key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("log.key"));
    let has_history = store.latest_checkpoint()?.is_some() || store.tree_size()? > 0;
    let signer = keys::load_or_create(&key_path, &origin, !has_history)?;
    if stored_origin.is_none() {
        store.set_meta(META_ORIGIN, &origin)?;
    }

    let size = store.tree_size()?;
    let state = TreeState::load(store, size)?;
    let reader = TiledHashReader {
        tiles: StoreTiles::uncached(store),
        tree_size: size,
    };
    if size > 0 {
        let last = store.record_by_index(size - 1)?.ok_or_else(|| {
            VaultError::Inconsistent(format!(
                "tree size is {size} but record {} is missing",
                size - 1
            ))
        })?;
        let in_tree = evault_merkle::HashReader::read_hashes(&reader, &[NodeId::new(0, size - 1)])
            .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
        if in_tree.first() != Some(&leaf_hash(&last.leaf_data)) {
            return Err(VaultError::Inconsistent(format!(
                "record {} does not match its leaf hash in the tiles",
                size - 1
            )));
        }
    }
    let mut published = 0;
    let latest = store.latest_checkpoint()?;
    if latest.is_none() {
        // A log always has a checkpoint to serve, even empty (tlog-tiles
        // clients start from /checkpoint); later ones follow as it grows.
        let cp = checkpointer::make_checkpoint(store, &signer, &origin, state.head())?;
        published = cp.size;
    }
    if let Some(cp) = latest {
        let verifiers = Verifiers::new()
            .with(signer.verifier())
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
        let (body, _) = open_checkpoint(&cp.note, &verifiers, Some(&origin)).map_err(|e| {
            VaultError::Inconsistent(format!("latest checkpoint (size {}): {e}", cp.size))
        })?;
        check_checkpoint(&body, size, &reader)?;
        published = body.size;
    }
    Ok((origin, signer, state, published))
}

fn check_checkpoint<R: evault_merkle::HashReader>(
    cp: &Checkpoint,
    tree_size: u64,
    reader: &R,
) -> Result<()>
where
    R::Error: std::fmt::Display,
{
    if cp.size > tree_size {
        return Err(VaultError::Inconsistent(format!(
            "the latest checkpoint is for size {} but the store holds only {tree_size} records \
             (was the database restored from an older backup?)",
            cp.size
        )));
    }
    let root = evault_merkle::root(reader, cp.size).map_err(|e| {
        VaultError::Inconsistent(format!("computing the root at size {}: {e}", cp.size))
    })?;
    if root != cp.root_hash {
        return Err(VaultError::Inconsistent(format!(
            "the stored tree at size {} does not have the root the latest checkpoint signed",
            cp.size
        )));
    }
    Ok(())
}
