//! The Merkle core of evault: RFC 6962 hashing, tree math, proof generation
//! from stored hashes, RFC 9162 verification and C2SP tlog-tiles addressing.
//!
//! Pure: no I/O, no async, no allocation beyond proof- and tile-sized
//! vectors. Storage plugs in through [`HashReader`] (node hashes) or
//! [`tiles::TileReader`] (tiles); verification needs nothing but hashes, so
//! an auditor can run it offline.
//!
//! Specifications followed exactly:
//! - RFC 6962 §2.1: leaf hash `SHA-256(0x00 || d)`, node hash
//!   `SHA-256(0x01 || l || r)`, empty root `SHA-256("")`, `PATH` and `PROOF`.
//! - RFC 9162 §2.1.3.2 and §2.1.4.2: inclusion and consistency verification,
//!   with edge cases decided by the transparency-dev/merkle test vectors.
//! - C2SP tlog-tiles: tile coordinates, paths and entry bundles.

mod compact;
mod hash;
mod memory;
mod proof;
pub mod tiles;
mod tree;
mod verify;

pub use compact::{CompactRange, FrontierMismatch};
pub use hash::{EMPTY_ROOT, HASH_SIZE, Hash, hash_from_slice, leaf_hash, node_hash};
pub use memory::{MemoryTree, MissingNode};
pub use proof::{
    HashReader, ProofError, consistency_proof, inclusion_proof, nodes_for_ranges, root,
};
pub use tree::{
    LeafRange, NodeId, consistency_ranges, fold_subtrees, inclusion_ranges, perfect_subtree_hash,
    split_point,
};
pub use verify::{
    VerifyError, consistency_proof_len, inclusion_proof_len, root_from_inclusion_proof,
    verify_consistency, verify_inclusion,
};

/// Keeps the README's example compiling and correct.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
