//! One read API for each of the vault's two Merkle logs: identity, sizes,
//! checkpoints, inclusion and consistency proofs, tiles and entry bundles.
//! [`Log`] is what callers hold ([`Vault::log`]); [`LogHandle`] is the
//! running log behind it. One implementation serves the evidence log and
//! the audit log alike, so every check lives once.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::tiles::{
    TilePath, TileReader, TiledHashReader, encode_entry_bundle, tile_width,
};
use evault_note::{Checkpoint, Verifiers};
use evault_store::{LogId, Store, StoredCheckpoint};
use evault_verify::{LoggedRecord, ProofBundle};
use tokio::sync::watch;

use crate::error::{Result, VaultError};
use crate::health::{Board, Component};
use crate::integrity;
use crate::keyring::KeyRing;
use crate::proofs::{StoreTiles, TileCache};
use crate::sequencer::TreeHead;
use crate::{ConsistencyProof, LogInfo, LogProof, Reader, Vault};

/// One running log: its identity, its tile cache, and what the sequencer
/// and its checkpointer last announced.
pub(crate) struct LogHandle {
    pub id: LogId,
    pub origin: String,
    /// The log's keys: those that sign now, and every one that ever did
    /// (for opening its checkpoints).
    pub ring: Arc<KeyRing>,
    /// Full tiles recently used by this log's proofs.
    pub tile_cache: TileCache,
    pub heads: watch::Receiver<TreeHead>,
    pub checkpoints: watch::Receiver<u64>,
    /// Where the checkpointer reports a signer that is away.
    pub health: Arc<Board>,
    /// Checkpoints whose signatures were verified, so a proof does not
    /// verify one again per request.
    pub opened: OpenedCheckpoints,
}

/// Stored checkpoints already opened with this log's keys, by their exact
/// note: the ring only ever gains keys, so a note that opened once opens
/// again, and a changed stored note is a different entry that is verified
/// afresh.
#[derive(Default)]
pub(crate) struct OpenedCheckpoints(std::sync::Mutex<Vec<(StoredCheckpoint, Checkpoint)>>);

/// Checkpoints remembered: the latest and a few a client asked for by size.
const OPENED_CAPACITY: usize = 16;

impl OpenedCheckpoints {
    fn get(&self, cp: &StoredCheckpoint) -> Option<Checkpoint> {
        let opened = self.0.lock().ok()?;
        opened
            .iter()
            .find(|(c, _)| c.size == cp.size && c.note == cp.note)
            .map(|(_, body)| body.clone())
    }

    fn put(&self, cp: &StoredCheckpoint, body: &Checkpoint) {
        let Ok(mut opened) = self.0.lock() else {
            return;
        };
        if opened.len() >= OPENED_CAPACITY {
            opened.remove(0);
        }
        opened.push((cp.clone(), body.clone()));
    }
}

impl LogHandle {
    /// What the log calls its checkpoints in messages.
    pub fn noun(&self) -> &'static str {
        match self.id {
            LogId::Evidence => "checkpoint",
            LogId::Audit => "audit checkpoint",
        }
    }

    /// The log's tiles, through its cache.
    pub fn tiles<'a>(&'a self, store: &'a dyn Store) -> StoreTiles<'a> {
        StoreTiles {
            store,
            log: self.id,
            cache: Some(&self.tile_cache),
        }
    }

    pub fn head(&self) -> TreeHead {
        *self.heads.borrow()
    }

    pub fn checkpoint_size(&self) -> u64 {
        *self.checkpoints.borrow()
    }

    /// [`VaultError::SignerUnavailable`] while the log's last signing
    /// attempt failed: no new checkpoint can be signed until one works.
    pub fn signer_trouble(&self) -> Option<VaultError> {
        self.health.get(Component::Signer(self.id)).map(|_| {
            VaultError::SignerUnavailable(format!(
                "the {} log's signer is unavailable, so no new {} can be signed until it is \
                 back; retry later",
                self.id,
                self.noun()
            ))
        })
    }

    pub fn verifier_key(&self) -> String {
        self.ring.primary().verifier_key().to_string()
    }

    /// Every key the log ever signed with.
    pub fn verifiers(&self) -> Arc<Verifiers> {
        self.ring.verifiers()
    }

    pub fn info(&self) -> LogInfo {
        LogInfo {
            origin: self.origin.clone(),
            verifier_key: self.verifier_key(),
            verifier_keys: self.ring.active_keys(),
            witnesses: None,
            tree_size: self.head().size,
            checkpoint_size: self.checkpoint_size(),
        }
    }

    /// A stored checkpoint, verified before it is served: signed by this
    /// log's key for its origin and the size it is stored under, and (with
    /// `root`) naming the root the stored tree has at that size.
    fn verified(
        &self,
        store: &dyn Store,
        cp: StoredCheckpoint,
        root: bool,
    ) -> Result<(StoredCheckpoint, Checkpoint)> {
        let body = match self.opened.get(&cp) {
            Some(body) => body,
            None => {
                let body = integrity::open_stored(self.id, &cp, &self.verifiers(), &self.origin)?;
                self.opened.put(&cp, &body);
                body
            }
        };
        if root {
            let what = match self.id {
                LogId::Evidence => "checkpoint",
                LogId::Audit => "audit_checkpoint",
            };
            integrity::check_root(self.id, &body, self.tiles(store), what)?;
        }
        Ok((cp, body))
    }

    /// The latest checkpoint, with the witnesses' cosignatures it has.
    pub fn latest_checkpoint(&self, store: &dyn Store) -> Result<StoredCheckpoint> {
        let cp = store
            .latest_checkpoint(self.id)?
            .ok_or_else(|| VaultError::NotFound(self.noun().into()))?;
        Ok(self.cosigned(store, self.verified(store, cp, true)?.0))
    }

    /// `cp` with the cosignature lines witnesses returned for it appended
    /// (C2SP tlog-cosignature): verified when received, and served only if
    /// the whole note still opens (at most 100 signatures, as Go's
    /// `sumdb/note` accepts). A store that cannot say serves it as signed.
    fn cosigned(&self, store: &dyn Store, mut cp: StoredCheckpoint) -> StoredCheckpoint {
        let Some(cs) = store.cosignatures() else {
            return cp;
        };
        let lines = match cs.cosignatures_at(self.id, cp.size) {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(
                    "cosignatures of the {} of size {}: {e}; served without them",
                    self.noun(),
                    cp.size
                );
                return cp;
            }
        };
        if lines.is_empty() {
            return cp;
        }
        let mut note = cp.note.clone();
        for c in &lines {
            if !note.lines().any(|l| l == c.line) {
                note.push_str(&c.line);
                note.push('\n');
            }
        }
        match evault_note::open(note.as_bytes(), &self.verifiers()) {
            Ok(_) => cp.note = note,
            Err(e) => tracing::warn!(
                "the {} of size {} with its {} cosignatures does not open ({e}); served without \
                 them",
                self.noun(),
                cp.size,
                lines.len()
            ),
        }
        cp
    }

    /// The checkpoint of `size`. A size beyond the latest checkpoint is
    /// not found, whatever the store holds.
    pub fn checkpoint_at(&self, store: &dyn Store, size: u64) -> Result<StoredCheckpoint> {
        self.check_published(size)?;
        let cp = store
            .checkpoint_at(self.id, size)?
            .ok_or_else(|| VaultError::NotFound(format!("{} of size {size}", self.noun())))?;
        Ok(self.cosigned(store, self.verified(store, cp, true)?.0))
    }

    /// `NotFound` when `size` is beyond the latest signed checkpoint.
    pub fn check_published(&self, size: u64) -> Result<()> {
        let latest = self.checkpoint_size();
        if size > latest {
            return Err(VaultError::NotFound(format!(
                "{} of size {size} (the latest is {latest})",
                self.noun()
            )));
        }
        Ok(())
    }

    pub fn list_checkpoints(
        &self,
        store: &dyn Store,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        // Signatures only: a root check per listed checkpoint would read
        // the tree's right edge up to a thousand times.
        store
            .list_checkpoints(self.id, after, limit)?
            .into_iter()
            .map(|cp| Ok(self.verified(store, cp, false)?.0))
            .collect()
    }

    /// Inclusion proof of `record` (named `what` in messages) against the
    /// checkpoint of size `tree_size` (default: the latest), with that
    /// checkpoint.
    pub fn inclusion<R: LoggedRecord>(
        &self,
        store: &dyn Store,
        record: R,
        what: &str,
        tree_size: Option<u64>,
    ) -> Result<ProofBundle<R>> {
        let noun = self.noun();
        let cp = match tree_size {
            Some(n) => {
                self.check_published(n)?;
                store
                    .checkpoint_at(self.id, n)?
                    .ok_or_else(|| VaultError::NotFound(format!("{} of size {n}", self.noun())))?
            }
            None => store.latest_checkpoint(self.id)?.ok_or_else(|| {
                VaultError::NotFound(format!("{noun} (none signed yet; retry shortly)"))
            })?,
        };
        // The proof is checked against the signed root below, which covers
        // the root check.
        let (cp, body) = self.verified(store, cp, false)?;
        let leaf_index = record.leaf_index();
        if leaf_index >= cp.size {
            if tree_size.is_none()
                && let Some(e) = self.signer_trouble()
            {
                return Err(e);
            }
            return Err(VaultError::NotFound(format!(
                "{what} (leaf {leaf_index}) in {noun} of size {}; it will be in the next \
                 {noun}, retry shortly",
                cp.size
            )));
        }
        let reader = TiledHashReader {
            tiles: self.tiles(store),
            tree_size: cp.size,
        };
        let proof = evault_merkle::inclusion_proof(&reader, leaf_index, cp.size)?;
        // A changed tile hash must not go out in a proof that fails for
        // the client: check it against the signed root first (a few hashes).
        let leaf = record
            .leaf_hash()
            .map_err(|e| VaultError::Inconsistent(format!("{what}: {e}")))?;
        if let Err(e) =
            evault_merkle::verify_inclusion(&leaf, leaf_index, cp.size, &proof, &body.root_hash)
        {
            return Err(integrity::failure(
                "proof",
                format!(
                    "{} inclusion proof of {what} (leaf {leaf_index}) at size {} does not \
                     verify against its signed checkpoint: {e}",
                    self.id, cp.size
                ),
            ));
        }
        Ok(ProofBundle {
            record,
            leaf_index,
            tree_size: cp.size,
            inclusion_proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
            checkpoint: cp.note,
        })
    }

    /// Consistency proof between two tree sizes no larger than the latest
    /// checkpoint.
    pub fn consistency(&self, store: &dyn Store, from: u64, to: u64) -> Result<ConsistencyProof> {
        if from == 0 || from > to {
            return Err(VaultError::Invalid(format!(
                "need 0 < from <= to, got from={from} to={to}"
            )));
        }
        self.check_published(to)?;
        let reader = TiledHashReader {
            tiles: self.tiles(store),
            tree_size: to,
        };
        let proof = evault_merkle::consistency_proof(&reader, from, to)?;
        Ok(ConsistencyProof { from, to, proof })
    }

    /// Waits until a checkpoint of at least `size` is signed, or `timeout`.
    /// While the signer is away ([`LogHandle::signer_trouble`]) it fails
    /// at once, unless such a checkpoint is already signed.
    pub async fn wait_for_checkpoint(&self, size: u64, timeout: Duration) -> Result<u64> {
        let mut rx = self.checkpoints.clone();
        let noun = self.noun();
        let signed = *rx.borrow();
        if signed >= size {
            return Ok(signed);
        }
        if let Some(e) = self.signer_trouble() {
            return Err(e);
        }
        let wait = rx.wait_for(|&s| s >= size);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => Ok(*s),
            Ok(Err(_)) => Err(VaultError::Unavailable(format!("{noun}er stopped"))),
            Err(_) => Err(self.signer_trouble().unwrap_or_else(|| {
                VaultError::Unavailable(format!("no {noun} of size {size} within {timeout:?}"))
            })),
        }
    }
}

/// One of the vault's logs, for reading: the same API for the evidence log
/// and the audit log ([`Vault::log`]). Cheap to clone.
#[derive(Clone)]
pub struct Log {
    vault: Vault,
    id: LogId,
}

impl Log {
    pub(crate) fn new(vault: Vault, id: LogId) -> Log {
        Log { vault, id }
    }

    fn handle(&self) -> &LogHandle {
        // A `Log` is only made for a log the vault runs (see `Vault::log`).
        match self.id {
            LogId::Evidence => &self.vault.inner.evidence,
            LogId::Audit => self
                .vault
                .inner
                .audit
                .as_ref()
                .unwrap_or(&self.vault.inner.evidence),
        }
    }

    /// Which log this is.
    pub fn id(&self) -> LogId {
        self.id
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.handle().origin
    }

    /// The verifier key in note format (`name+hash+base64`).
    pub fn verifier_key(&self) -> String {
        self.handle().verifier_key()
    }

    /// Verifiers holding every key this log ever signed with (rotation
    /// keeps retired keys), for opening its checkpoints.
    pub fn verifiers(&self) -> Arc<Verifiers> {
        self.handle().verifiers()
    }

    /// Origin, verifier keys, sizes, and witnessing.
    pub fn info(&self) -> LogInfo {
        let mut info = self.handle().info();
        if self.id == LogId::Evidence {
            info.witnesses = self.vault.witness_status();
        }
        info
    }

    /// Tree size and root after the latest durable commit.
    pub fn head(&self) -> TreeHead {
        self.handle().head()
    }

    /// Size of the latest signed checkpoint.
    pub fn checkpoint_size(&self) -> u64 {
        self.handle().checkpoint_size()
    }

    /// [`VaultError::SignerUnavailable`] while the log's signer is away
    /// (its last signing attempt failed), else `None`. What needs a new
    /// checkpoint is refused with it, before anything is written.
    pub fn signer_unavailable(&self) -> Option<VaultError> {
        self.handle().signer_trouble()
    }

    /// The latest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<StoredCheckpoint> {
        self.read(|h, store| h.latest_checkpoint(store)).await
    }

    /// The signed checkpoint of `size`; not found beyond the latest.
    pub async fn checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint> {
        self.read(move |h, store| h.checkpoint_at(store, size))
            .await
    }

    /// Signed checkpoints in ascending size, after `after`, at most `limit`.
    pub async fn list_checkpoints(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.read(move |h, store| h.list_checkpoints(store, after, limit))
            .await
    }

    /// Consistency proof between two tree sizes no larger than the latest
    /// checkpoint.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof> {
        self.read(move |h, store| h.consistency(store, from, to))
            .await
    }

    /// Inclusion proof of the entry `id` (a record of the evidence log, an
    /// event of the audit log) against the checkpoint of size `tree_size`
    /// (default: the latest), with that checkpoint. An entry `reader` may
    /// not see is [`VaultError::Hidden`], before anything else about it is
    /// revealed (such as whether it is checkpointed yet).
    pub async fn inclusion(
        &self,
        reader: &Reader,
        id: &str,
        tree_size: Option<u64>,
    ) -> Result<LogProof> {
        if let Some(n) = tree_size {
            self.handle().check_published(n)?;
        }
        let (id, reader) = (id.to_string(), reader.clone());
        let log = self.id;
        self.vault
            .blocking(move |i| {
                let h = i.log(log)?;
                let store = &*i.store;
                Ok(match log {
                    LogId::Evidence => {
                        let record = i.readable_record(&reader, &id)?;
                        LogProof::Evidence(h.inclusion(
                            store,
                            record,
                            &format!("evidence {id}"),
                            tree_size,
                        )?)
                    }
                    LogId::Audit => {
                        let event = i.readable_event(&reader, &id)?;
                        LogProof::Audit(h.inclusion(
                            store,
                            event,
                            &format!("audit event {id}"),
                            tree_size,
                        )?)
                    }
                })
            })
            .await
    }

    /// Contents of a C2SP tlog-tiles resource of this log: a hash tile, or
    /// an entry bundle (the leaf data of up to 256 entries). Only what the
    /// tree has at its current size exists, at exactly the width asked for.
    ///
    /// Hash tiles of both logs, and the evidence log's entry bundles, are
    /// public log data: any reader gets them. An entry bundle of the audit
    /// log holds the events of every principal's calls, so only a reader
    /// that sees everything ([`ReadScope::All`](crate::ReadScope)) gets
    /// one; anyone else is [`VaultError::Hidden`], before the bundle is
    /// looked up.
    pub async fn tile(&self, reader: &Reader, path: TilePath) -> Result<Vec<u8>> {
        if let (LogId::Audit, TilePath::Entries { index, width }) = (self.id, path)
            && reader.scope() != crate::ReadScope::All
        {
            return Err(VaultError::Hidden {
                what: format!(
                    "audit entry bundle {}",
                    evault_merkle::tiles::entries_path(index, width)
                ),
                reason: "an audit entry bundle holds every principal's events; it needs a \
                         reader that may see them all"
                    .into(),
            });
        }
        // Checked before the store is asked: absurd indexes never reach it.
        let size = self.head().size;
        let (level, index, width) = match path {
            TilePath::Hashes(t) => (t.level, t.index, t.width),
            TilePath::Entries { index, width } => (0, index, width),
        };
        if tile_width(level, index, size).is_none_or(|w| width > w) {
            let name = match path {
                TilePath::Hashes(t) => t.path(),
                TilePath::Entries { index, width } => {
                    evault_merkle::tiles::entries_path(index, width)
                }
            };
            return Err(VaultError::NotFound(format!("{name} at tree size {size}")));
        }
        self.read(move |h, store| match path {
            TilePath::Hashes(tile) => {
                let data = h
                    .tiles(store)
                    .read_tiles(&[tile])?
                    .pop()
                    .ok_or(VaultError::NotFound(tile.path()))?;
                let head = h.head();
                integrity::check_hash_tile(
                    h.id,
                    tile,
                    &data,
                    h.tiles(store),
                    head.size,
                    &head.root,
                )?;
                Ok(data)
            }
            TilePath::Entries { index, width } => {
                let missing = || {
                    VaultError::NotFound(format!(
                        "entry bundle {}",
                        evault_merkle::tiles::entries_path(index, width)
                    ))
                };
                let start = index.checked_mul(256).ok_or_else(missing)?;
                let end = start.checked_add(u64::from(width)).ok_or_else(missing)?;
                if end > store.tree_size(h.id)? {
                    return Err(missing());
                }
                let entries = match h.id {
                    LogId::Evidence => store.leaf_data_range(start, end)?,
                    // Audit bundles are rare (auditors mirror the log):
                    // one lookup per entry is enough.
                    LogId::Audit => (start..end)
                        .map(|i| {
                            store
                                .audit_by_index(i)?
                                .map(|e| e.leaf_data)
                                .ok_or_else(|| {
                                    VaultError::Inconsistent(format!("audit leaf {i} is missing"))
                                })
                        })
                        .collect::<Result<Vec<_>>>()?,
                };
                integrity::check_entries(h.id, index, &entries, &h.tiles(store))?;
                encode_entry_bundle(&entries).map_err(|e| VaultError::Inconsistent(e.to_string()))
            }
        })
        .await
    }

    /// Waits until a checkpoint of at least `size` is signed, or `timeout`.
    pub async fn wait_for_checkpoint(&self, size: u64, timeout: Duration) -> Result<u64> {
        self.handle().wait_for_checkpoint(size, timeout).await
    }

    /// Runs `f` on a blocking thread with this log and the store.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LogHandle, &dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let log = self.id;
        self.vault
            .blocking(move |i| f(i.log(log)?, &*i.store))
            .await
    }
}
