//! What the vault serves about each of its two Merkle logs: identity,
//! checkpoints, inclusion and consistency proofs. One implementation, used
//! for the evidence log and the audit log alike.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::tiles::TiledHashReader;
use evault_note::{Ed25519Signer, Verifiers};
use evault_store::{LogId, Store, StoredCheckpoint};
use evault_verify::{LoggedRecord, ProofBundle};
use tokio::sync::watch;

use crate::error::{Result, VaultError};
use crate::proofs::{StoreTiles, TileCache};
use crate::sequencer::TreeHead;
use crate::{ConsistencyProof, LogInfo};

/// One running log: its identity, its tile cache, and what the sequencer
/// and its checkpointer last announced.
pub(crate) struct LogHandle {
    pub id: LogId,
    pub origin: String,
    pub signer: Arc<Ed25519Signer>,
    /// Holding the log's key only, for opening its checkpoints.
    pub verifiers: Verifiers,
    /// Full tiles recently used by this log's proofs.
    pub tile_cache: TileCache,
    pub heads: watch::Receiver<TreeHead>,
    pub checkpoints: watch::Receiver<u64>,
}

impl LogHandle {
    /// What the log calls its checkpoints in messages.
    fn noun(&self) -> &'static str {
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

    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key().to_string()
    }

    pub fn info(&self) -> LogInfo {
        LogInfo {
            origin: self.origin.clone(),
            verifier_key: self.verifier_key(),
            tree_size: self.head().size,
            checkpoint_size: self.checkpoint_size(),
        }
    }

    pub fn latest_checkpoint(&self, store: &dyn Store) -> Result<StoredCheckpoint> {
        store
            .latest_checkpoint(self.id)?
            .ok_or_else(|| VaultError::NotFound(self.noun().into()))
    }

    pub fn checkpoint_at(&self, store: &dyn Store, size: u64) -> Result<StoredCheckpoint> {
        store
            .checkpoint_at(self.id, size)?
            .ok_or_else(|| VaultError::NotFound(format!("{} of size {size}", self.noun())))
    }

    pub fn list_checkpoints(
        &self,
        store: &dyn Store,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        Ok(store.list_checkpoints(self.id, after, limit)?)
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
            Some(n) => self.checkpoint_at(store, n)?,
            None => store.latest_checkpoint(self.id)?.ok_or_else(|| {
                VaultError::NotFound(format!("{noun} (none signed yet; retry shortly)"))
            })?,
        };
        let leaf_index = record.leaf_index();
        if leaf_index >= cp.size {
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
        let proof = evault_merkle::inclusion_proof(&reader, leaf_index, cp.size)
            .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
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
        let latest = store.latest_checkpoint(self.id)?.map_or(0, |c| c.size);
        if from == 0 || from > to {
            return Err(VaultError::Invalid(format!(
                "need 0 < from <= to, got from={from} to={to}"
            )));
        }
        if to > latest {
            return Err(VaultError::NotFound(format!(
                "{} of size {to} (latest is {latest})",
                self.noun()
            )));
        }
        let reader = TiledHashReader {
            tiles: self.tiles(store),
            tree_size: to,
        };
        let proof = evault_merkle::consistency_proof(&reader, from, to)
            .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
        Ok(ConsistencyProof { from, to, proof })
    }

    /// Waits until a checkpoint of at least `size` is signed, or `timeout`.
    pub async fn wait_for_checkpoint(&self, size: u64, timeout: Duration) -> Result<u64> {
        let mut rx = self.checkpoints.clone();
        let noun = self.noun();
        let wait = rx.wait_for(|&s| s >= size);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => Ok(*s),
            Ok(Err(_)) => Err(VaultError::Unavailable(format!("{noun}er stopped"))),
            Err(_) => Err(VaultError::Unavailable(format!(
                "no {noun} of size {size} within {timeout:?}"
            ))),
        }
    }
}
