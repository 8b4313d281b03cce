//! A proof bundle: everything an auditor needs to check, offline, that a
//! record is in the log the vault's key signed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::{Hash, verify_inclusion};
use evault_note::{Checkpoint, OpenError, Verifiers, open};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::audit::AuditEvent;
use crate::evidence::{Evidence, LeafError};
use crate::tlog_proof::TlogProof;

/// A log entry a bundle can prove: anything that knows its own leaf hash
/// and position. One verification path then serves every log.
pub trait LoggedRecord {
    /// RFC 6962 leaf hash of the entry's leaf data.
    fn leaf_hash(&self) -> Result<Hash, LeafError>;
    /// The entry's position in its log.
    fn leaf_index(&self) -> u64;
}

impl LoggedRecord for Evidence {
    fn leaf_hash(&self) -> Result<Hash, LeafError> {
        Evidence::leaf_hash(self)
    }
    fn leaf_index(&self) -> u64 {
        self.leaf_index
    }
}

impl LoggedRecord for AuditEvent {
    fn leaf_hash(&self) -> Result<Hash, LeafError> {
        Ok(AuditEvent::leaf_hash(self))
    }
    fn leaf_index(&self) -> u64 {
        self.leaf_index
    }
}

/// A record, its inclusion proof and the signed checkpoint it leads to.
/// `R` defaults to [`Evidence`], so the evidence bundle's type and JSON are
/// unchanged; the audit log's is [`AuditProofBundle`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle<R = Evidence> {
    /// The record proven; its leaf is recomputed from it, never taken on trust.
    pub record: R,
    /// Position of the record's leaf in the log, 0-based; must equal the
    /// record's own `leaf_index`.
    pub leaf_index: u64,
    /// Tree size in leaves the proof is for; must equal the checkpoint's size.
    pub tree_size: u64,
    /// Base64 hashes, leaf's sibling first (RFC 6962 audit path).
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

/// An audit event with its inclusion proof against an audit checkpoint.
pub type AuditProofBundle = ProofBundle<AuditEvent>;

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The checkpoint's origin line: the log the record is in.
    pub origin: String,
    /// Tree size in leaves of the verified checkpoint.
    pub tree_size: u64,
    /// Position of the record's leaf in that tree, 0-based.
    pub leaf_index: u64,
    /// Names of the keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// Why a bundle did not verify. Each variant is a distinct failure an
/// auditor must be told about.
#[derive(Debug)]
pub enum BundleError {
    /// The checkpoint is not a well-formed signed note, or a signature by a
    /// given key does not verify.
    Signature(OpenError),
    /// The checkpoint is well formed but signed by none of the given keys;
    /// holds the keys that did sign it, as `name+keyid` (hex).
    UnknownSigner(Vec<String>),
    /// The signed text is not a valid tlog checkpoint body.
    Checkpoint(evault_note::CheckpointError),
    /// The checkpoint is for another log than the one asked for.
    WrongOrigin {
        /// Origin the caller asked for.
        expected: String,
        /// Origin line of the checkpoint.
        found: String,
    },
    /// The bundle's `tree_size` is not the checkpoint's size.
    SizeMismatch {
        /// Tree size in leaves the bundle claims.
        bundle: u64,
        /// Tree size in leaves of the checkpoint.
        checkpoint: u64,
    },
    /// The bundle's `leaf_index` is not the record's own.
    IndexMismatch {
        /// Leaf index the bundle claims.
        bundle: u64,
        /// Leaf index in the record.
        record: u64,
    },
    /// Inclusion proof element `n` (0-based) is not standard base64 of 32 bytes.
    BadProofEncoding(usize),
    /// The inclusion proof does not lead from the record's leaf to the
    /// checkpoint's root hash.
    Inclusion(evault_merkle::VerifyError),
    /// The record has no canonical leaf data.
    Leaf(LeafError),
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::Signature(e) => write!(f, "checkpoint signature: {e}"),
            BundleError::UnknownSigner(keys) => write!(
                f,
                "the checkpoint is not signed by the given key; it is signed by {}",
                keys.join(", ")
            ),
            BundleError::Checkpoint(e) => write!(f, "checkpoint body: {e}"),
            BundleError::WrongOrigin { expected, found } => {
                write!(f, "checkpoint origin is {found:?}, expected {expected:?}")
            }
            BundleError::SizeMismatch { bundle, checkpoint } => write!(
                f,
                "bundle claims tree size {bundle} but the checkpoint is for {checkpoint}"
            ),
            BundleError::IndexMismatch { bundle, record } => {
                write!(
                    f,
                    "bundle leaf index {bundle} differs from the record's {record}"
                )
            }
            BundleError::BadProofEncoding(i) => {
                write!(f, "inclusion proof element {i} is not base64")
            }
            BundleError::Inclusion(e) => write!(f, "inclusion proof: {e}"),
            BundleError::Leaf(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BundleError {}

/// Verifies a checkpoint note's signature and parses its body.
pub fn open_checkpoint(
    note: &str,
    verifiers: &Verifiers,
    origin: Option<&str>,
) -> Result<(Checkpoint, Vec<String>), BundleError> {
    let opened = open(note.as_bytes(), verifiers).map_err(|e| match e {
        OpenError::Unverified(n) => BundleError::UnknownSigner(
            n.unverified
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                .collect(),
        ),
        e => BundleError::Signature(e),
    })?;
    let cp = Checkpoint::parse(&opened.text).map_err(BundleError::Checkpoint)?;
    if let Some(expected) = origin
        && cp.origin != expected
    {
        return Err(BundleError::WrongOrigin {
            expected: expected.to_string(),
            found: cp.origin,
        });
    }
    Ok((cp, opened.verified.into_iter().map(|s| s.name).collect()))
}

impl<R: LoggedRecord> ProofBundle<R> {
    /// Checks the checkpoint signature, recomputes the leaf from the record,
    /// and verifies the inclusion proof against the checkpoint's root.
    pub fn verify(
        &self,
        verifiers: &Verifiers,
        origin: Option<&str>,
    ) -> Result<Verified, BundleError> {
        let (cp, signed_by) = open_checkpoint(&self.checkpoint, verifiers, origin)?;
        if cp.size != self.tree_size {
            return Err(BundleError::SizeMismatch {
                bundle: self.tree_size,
                checkpoint: cp.size,
            });
        }
        if self.record.leaf_index() != self.leaf_index {
            return Err(BundleError::IndexMismatch {
                bundle: self.leaf_index,
                record: self.record.leaf_index(),
            });
        }
        let proof = self.decoded_proof()?;
        let leaf = self.record.leaf_hash().map_err(BundleError::Leaf)?;
        verify_inclusion(&leaf, self.leaf_index, cp.size, &proof, &cp.root_hash)
            .map_err(BundleError::Inclusion)?;
        Ok(Verified {
            origin: cp.origin,
            tree_size: cp.size,
            leaf_index: self.leaf_index,
            signed_by,
        })
    }

    /// The same proof in C2SP tlog-proof text (the record travels separately).
    pub fn to_tlog_proof(&self) -> Result<TlogProof, BundleError> {
        Ok(TlogProof {
            extra: None,
            index: self.leaf_index,
            proof: self.decoded_proof()?,
            checkpoint: self.checkpoint.clone(),
        })
    }

    /// The inclusion proof as hashes; element `i` that is not base64 of 32
    /// bytes is [`BundleError::BadProofEncoding`]`(i)`.
    fn decoded_proof(&self) -> Result<Vec<evault_merkle::Hash>, BundleError> {
        self.inclusion_proof
            .iter()
            .enumerate()
            .map(|(i, p)| {
                STANDARD
                    .decode(p)
                    .ok()
                    .and_then(|b| evault_merkle::hash_from_slice(&b))
                    .ok_or(BundleError::BadProofEncoding(i))
            })
            .collect()
    }
}

impl TlogProof {
    /// Verifies this C2SP tlog-proof offline for `record`, which travels
    /// separately (the proof carries only its index): checks the checkpoint
    /// signature, that the record's own index is the proof's, recomputes
    /// the leaf from the record and checks inclusion against the
    /// checkpoint's root.
    pub fn verify<R: LoggedRecord>(
        &self,
        record: &R,
        verifiers: &Verifiers,
        origin: Option<&str>,
    ) -> Result<Verified, BundleError> {
        let (cp, signed_by) = open_checkpoint(&self.checkpoint, verifiers, origin)?;
        if record.leaf_index() != self.index {
            return Err(BundleError::IndexMismatch {
                bundle: self.index,
                record: record.leaf_index(),
            });
        }
        let leaf = record.leaf_hash().map_err(BundleError::Leaf)?;
        verify_inclusion(&leaf, self.index, cp.size, &self.proof, &cp.root_hash)
            .map_err(BundleError::Inclusion)?;
        Ok(Verified {
            origin: cp.origin,
            tree_size: cp.size,
            leaf_index: self.index,
            signed_by,
        })
    }
}
