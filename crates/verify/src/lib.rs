//! What an auditor runs alone: the evidence record format and its canonical
//! leaf (RFC 8785), C2SP tlog-proof text, and offline verification of a
//! record against a signed checkpoint. Depends on no store and no server.

mod bundle;
pub mod evidence;
pub mod tlog_proof;

pub use bundle::{BundleError, ProofBundle, Verified, open_checkpoint};
pub use evidence::{Evidence, LEAF_VERSION, dedup_key};
pub use tlog_proof::{TlogProof, TlogProofError};
