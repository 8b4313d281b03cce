//! Errors of the vault, grouped by what a caller should do about them. A
//! variant that wraps a lower-level failure keeps it as its
//! [`source`](std::error::Error::source), so a log line or a test can walk
//! the whole chain.

use std::fmt;

use evault_note::{KeyError, SignError};
use evault_store::StoreError;

/// Why a proof could not be built from a log's stored tiles.
pub type ProofFailure = evault_merkle::ProofError<evault_merkle::tiles::TiledReadError<StoreError>>;

/// Why a vault operation failed.
#[derive(Debug)]
pub enum VaultError {
    /// The request is malformed or violates a limit; nothing was written.
    Invalid(String),
    /// The payload exceeds the configured upload limit; nothing was written.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The thing asked for does not exist.
    NotFound(String),
    /// The thing exists but the reader may not see it. Callers answer it
    /// exactly like [`VaultError::NotFound`] (its existence is not
    /// revealed) and record the refusal.
    Hidden {
        /// What was asked for, as [`VaultError::NotFound`] names it.
        what: String,
        /// Why the reader may not see it, for the audit trail only.
        reason: String,
    },
    /// The record exists but its payload was erased; the tombstone record
    /// with this id says when and on what basis.
    Gone {
        /// The erased record's id.
        id: String,
        /// Id of the tombstone record that erased it.
        tombstone_id: String,
    },
    /// The request conflicts with the current state of what it names
    /// (e.g. cancelling a task that has ended); nothing was changed.
    Conflict(String),
    /// The vault's stored state does not add up; it refuses to serve.
    Inconsistent(String),
    /// Stored data failed an integrity check on read (changed at rest:
    /// tampering or corruption). It is not served; the failure is logged
    /// and counted. The fault is the server's storage, not the request.
    Corrupt {
        /// What failed: `payload`, `record`, `checkpoint`,
        /// `audit_checkpoint`, `audit_event`, `entries`, `tile` or `task`.
        what: &'static str,
        /// Which entry and how, for the operator's log only.
        detail: String,
    },
    /// A proof could not be built from the stored tree.
    Proof(ProofFailure),
    /// The vault is shutting down or its sequencer has stopped.
    Unavailable(String),
    /// The disk holding the store or the blobs is full: nothing was
    /// written; the same request succeeds once space is freed.
    StorageFull(String),
    /// A blocking task of the vault died (it panicked or the runtime is
    /// shutting down).
    Task(tokio::task::JoinError),
    /// Storage failed.
    Store(StoreError),
    /// Filesystem failure (blobs, keys, the audit mirror).
    Io(std::io::Error),
    /// A signing key file could not be read as a key.
    Key {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// Signing a checkpoint failed.
    Signing(SignError),
    /// The log's signer is unavailable (its token was taken away, its
    /// service is down), so what needs a new checkpoint cannot be done
    /// now; nothing was written. The text names the log, not the signer.
    SignerUnavailable(String),
    /// A long operation (an export) stopped because its caller cancelled
    /// it; it left nothing behind.
    Cancelled,
    /// An operator's policy refuses the record (e.g. a Sigstore policy
    /// whose identity the bundle's certificate does not name); nothing was
    /// written. The text names the policy and why.
    Refused(String),
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultError::Invalid(why) => write!(f, "invalid request: {why}"),
            VaultError::TooLarge { limit } => {
                write!(f, "payload exceeds the limit of {limit} bytes")
            }
            VaultError::NotFound(what) | VaultError::Hidden { what, .. } => {
                write!(f, "{what} not found")
            }
            VaultError::Gone { id, tombstone_id } => write!(
                f,
                "the payload of evidence {id} was erased (tombstone {tombstone_id})"
            ),
            VaultError::Conflict(why) => write!(f, "conflict: {why}"),
            VaultError::Inconsistent(why) => write!(f, "vault state is inconsistent: {why}"),
            VaultError::Corrupt { what, detail } => {
                write!(f, "stored {what} failed its integrity check: {detail}")
            }
            VaultError::Proof(e) => write!(f, "vault state is inconsistent: proof: {e}"),
            VaultError::Unavailable(why) => write!(f, "vault unavailable: {why}"),
            VaultError::StorageFull(why) => write!(f, "storage full: {why}"),
            VaultError::Task(e) => write!(f, "vault unavailable: a vault task failed: {e}"),
            VaultError::Store(e) => write!(f, "{e}"),
            VaultError::Io(e) => write!(f, "i/o: {e}"),
            VaultError::Key { path, source } => write!(f, "key {}: {source}", path.display()),
            VaultError::Signing(e) => write!(f, "signing: {e}"),
            VaultError::SignerUnavailable(why) => write!(f, "signer unavailable: {why}"),
            VaultError::Cancelled => write!(f, "cancelled"),
            VaultError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl std::error::Error for VaultError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VaultError::Proof(e) => Some(e),
            VaultError::Task(e) => Some(e),
            VaultError::Store(e) => Some(e),
            VaultError::Io(e) => Some(e),
            VaultError::Key { source, .. } => Some(source),
            VaultError::Signing(e) => Some(e),
            VaultError::Invalid(_)
            | VaultError::TooLarge { .. }
            | VaultError::NotFound(_)
            | VaultError::Hidden { .. }
            | VaultError::Conflict(_)
            | VaultError::Gone { .. }
            | VaultError::Inconsistent(_)
            | VaultError::Corrupt { .. }
            | VaultError::Unavailable(_)
            | VaultError::SignerUnavailable(_)
            | VaultError::StorageFull(_)
            | VaultError::Cancelled
            | VaultError::Refused(_) => None,
        }
    }
}

impl VaultError {
    /// Whether the failure is a full disk ([`VaultError::StorageFull`], or
    /// a store or file error that says so): worth retrying once space is
    /// freed, and answered differently from other failures.
    pub fn is_storage_full(&self) -> bool {
        match self {
            VaultError::StorageFull(_) => true,
            VaultError::Store(e) => e.is_storage_full(),
            VaultError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        match e {
            // A database that is down or slow: a 503 with Retry-After.
            StoreError::Unavailable(why) => VaultError::Unavailable(why),
            // This node lost the sequencing lease: another writes (or will,
            // once one takes the lease). The client retries.
            StoreError::Fenced(why) => {
                VaultError::Unavailable(format!("this node does not hold the write lease: {why}"))
            }
            e => VaultError::Store(e),
        }
    }
}

impl From<std::io::Error> for VaultError {
    fn from(e: std::io::Error) -> Self {
        VaultError::Io(e)
    }
}

impl From<tokio::task::JoinError> for VaultError {
    fn from(e: tokio::task::JoinError) -> Self {
        VaultError::Task(e)
    }
}

impl From<ProofFailure> for VaultError {
    fn from(e: ProofFailure) -> Self {
        VaultError::Proof(e)
    }
}

impl From<SignError> for VaultError {
    fn from(e: SignError) -> Self {
        VaultError::Signing(e)
    }
}

/// The vault's result type.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn wrapped_causes_are_sources() {
        let io = VaultError::from(std::io::Error::other("disk on fire"));
        assert_eq!(
            io.source().map(|s| s.to_string()),
            Some("disk on fire".into())
        );
        let key = VaultError::Key {
            path: "/k".into(),
            source: KeyError::InvalidName,
        };
        assert!(key.source().is_some());
        assert!(key.to_string().starts_with("key /k: "));
        let hidden = VaultError::Hidden {
            what: "evidence x".into(),
            reason: "another principal's".into(),
        };
        // Reads exactly like a missing record.
        assert_eq!(
            hidden.to_string(),
            VaultError::NotFound("evidence x".into()).to_string()
        );
        assert!(hidden.source().is_none());
    }

    #[test]
    fn a_full_disk_is_recognised_through_the_chain() {
        let enospc = VaultError::from(std::io::Error::from_raw_os_error(28));
        assert!(enospc.is_storage_full());
        let wrapped = VaultError::Store(StoreError::Backend(Box::new(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        ))));
        assert!(wrapped.is_storage_full());
        assert!(VaultError::StorageFull("x".into()).is_storage_full());
        assert!(!VaultError::Unavailable("x".into()).is_storage_full());
        assert!(!VaultError::from(std::io::Error::other("eio")).is_storage_full());
    }

    #[test]
    fn an_unreachable_database_is_unavailable_not_a_store_failure() {
        // So the server answers 503 with Retry-After, not 500.
        let e = VaultError::from(StoreError::Unavailable("connection refused".into()));
        assert!(matches!(&e, VaultError::Unavailable(why) if why == "connection refused"));
        assert!(matches!(
            VaultError::from(StoreError::Fenced("epoch 3 expired".into())),
            VaultError::Unavailable(why) if why.contains("epoch 3 expired")
        ));
        assert!(matches!(
            VaultError::from(StoreError::Corrupt("x".into())),
            VaultError::Store(StoreError::Corrupt(_))
        ));
    }
}
