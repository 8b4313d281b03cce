//! What an auditor runs alone: the evidence record and audit event formats
//! and their canonical leaves (RFC 8785), C2SP tlog-proof text, offline
//! verification of either against a signed checkpoint of its log, and
//! consistency of two checkpoints (RFC 9162), and evidence bundles
//! (`.evb`: write, read hostile files safely, verify). Depends on no store
//! and no server.

pub mod audit;
mod bundle;
pub mod consistency;
pub mod evb;
pub mod evidence;
pub mod key_event;
pub mod tlog_proof;

pub use audit::{AUDIT_LEAF_VERSION, AuditEvent, Outcome};
pub use bundle::{
    AuditProofBundle, BundleError, LoggedRecord, ProofBundle, Verified, open_checkpoint,
};
pub use consistency::{ConsistencyError, ConsistencyProof, Consistent, verify_checkpoints};
pub use evidence::{Evidence, LEAF_VERSION, LeafError, dedup_key};
pub use key_event::{KEY_EVENT_TYPE, KeyAction, KeyEvent};
pub use tlog_proof::{TlogProof, TlogProofError};
