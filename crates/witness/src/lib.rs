//! C2SP tlog-witness (v1.0.0, with the clarifications on C2SP main as of
//! 2026-11: 422 for a same-size checkpoint with another root, for a size-0
//! checkpoint without the empty root and for a proof sent with old size 0).
//!
//! - [`AddCheckpoint`]: the `add-checkpoint` request body, parsed strictly
//!   and encoded (for a log that asks witnesses to cosign).
//! - [`Witness`]: a witness for a configured set of logs. It verifies the
//!   log's signature and the consistency proof from the size it last
//!   cosigned, checks and updates that size atomically, persists the new
//!   checkpoint (fsync'd, before answering), and cosigns with its keys
//!   (Ed25519 `cosignature/v1` and/or ML-DSA-44). Each refusal carries the
//!   HTTP status the specification assigns ([`AddError::status`]).
//!
//! - [`Witnesses`]: the log's side: asks each configured witness to cosign
//!   a new checkpoint (with a proof from the size it last cosigned, retrying
//!   once from the size a 409 names), keeps the cosignatures that verify,
//!   backs failing witnesses off, and applies a k-of-n policy
//!   ([`Round::witnessed`]). HTTP is behind [`Transport`].
//!
//! The HTTP server is `evault witness` (`evault_server::witness_router`);
//! the vault uses [`Witnesses`] in its witnessing task (`evault_vault`).

#![forbid(unsafe_code)]

mod client;
mod request;
mod witness;

pub use client::{
    ProofSource, Response, Round, SetupError, Transport, WitnessOutcome, WitnessSpec, Witnesses,
};
pub use request::{AddCheckpoint, MAX_PROOF_LINES, RequestError};
pub use witness::{
    AddError, ConfigError, LogConfig, MAX_BODY, Witness, WitnessConfig, origin_hash,
};
