//! What goes into the vault and what comes out of it.

use std::collections::BTreeMap;
use std::fmt;

use evault_merkle::Hash;
use evault_verify::{AuditProofBundle, Evidence, ProofBundle};
use serde::Serialize;

use crate::audit::AuditOnCommit;
use crate::blobs::StagedPayload;

/// A submission, validated by [`Vault::put`](crate::Vault::put).
pub struct PutRequest {
    /// The record's content type (`type/subtype[; params]`).
    pub content_type: String,
    /// The record's labels.
    pub labels: BTreeMap<String, String>,
    /// The payload, as uploaded.
    pub payload: StagedPayload,
    /// Who submits it.
    pub principal: String,
    /// A retry with the same key (same principal) gets the first outcome.
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
    /// The logged record (for a duplicate or a replay, the earlier one).
    pub record: Evidence,
    /// An existing record with the same payload, content type and labels.
    pub duplicate: bool,
    /// A retry with a known idempotency key: the first response again.
    pub replayed: bool,
}

/// A payload to serve.
#[derive(Debug)]
pub enum PayloadData {
    /// Held in the store.
    Inline(Vec<u8>),
    /// A blob file in the data directory, checked against the record's
    /// digest as it is read.
    File(Box<crate::BlobReader>),
}

/// What an outside verifier needs to start following a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInfo {
    /// Checkpoint origin line.
    pub origin: String,
    /// The log's Ed25519 verifier key in note format (`name+hash+base64`);
    /// during a key rotation's overlap, the new key.
    pub verifier_key: String,
    /// Every key that signs the log's new checkpoints, in the order of
    /// their signature lines: its Ed25519 keys (two during a key
    /// rotation's overlap, the older first, so `verifier_key` is the last
    /// of them), then ML-DSA-44 if configured.
    pub verifier_keys: Vec<String>,
    /// The log's witnessing, when witnesses are configured (evidence log).
    pub witnesses: Option<crate::WitnessStatus>,
    /// Leaves durably committed.
    pub tree_size: u64,
    /// Size of the latest signed checkpoint.
    pub checkpoint_size: u64,
}

/// A consistency proof between two checkpointed sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// RFC 6962 consistency proof.
    pub proof: Vec<Hash>,
}

/// An inclusion proof of an entry of either log, with the signed checkpoint
/// it leads to. Serialises exactly as the bundle it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LogProof {
    /// An evidence record's.
    Evidence(ProofBundle<Evidence>),
    /// An audit event's.
    Audit(AuditProofBundle),
}

impl LogProof {
    /// Leaf index of the entry.
    pub fn leaf_index(&self) -> u64 {
        match self {
            LogProof::Evidence(b) => b.leaf_index,
            LogProof::Audit(b) => b.leaf_index,
        }
    }

    /// Tree size of the checkpoint.
    pub fn tree_size(&self) -> u64 {
        match self {
            LogProof::Evidence(b) => b.tree_size,
            LogProof::Audit(b) => b.tree_size,
        }
    }

    /// The audit path, base64 hashes.
    pub fn inclusion_proof(&self) -> &[String] {
        match self {
            LogProof::Evidence(b) => &b.inclusion_proof,
            LogProof::Audit(b) => &b.inclusion_proof,
        }
    }

    /// The signed checkpoint note.
    pub fn checkpoint(&self) -> &str {
        match self {
            LogProof::Evidence(b) => &b.checkpoint,
            LogProof::Audit(b) => &b.checkpoint,
        }
    }

    /// The evidence record's bundle; `None` for an audit event's.
    pub fn into_evidence(self) -> Option<ProofBundle<Evidence>> {
        match self {
            LogProof::Evidence(b) => Some(b),
            LogProof::Audit(_) => None,
        }
    }

    /// The audit event's bundle; `None` for an evidence record's.
    pub fn into_audit(self) -> Option<AuditProofBundle> {
        match self {
            LogProof::Audit(b) => Some(b),
            LogProof::Evidence(_) => None,
        }
    }

    /// The proof as C2SP tlog-proof text.
    pub fn to_tlog_proof(&self) -> Result<evault_verify::TlogProof, evault_verify::BundleError> {
        match self {
            LogProof::Evidence(b) => b.to_tlog_proof(),
            LogProof::Audit(b) => b.to_tlog_proof(),
        }
    }
}
