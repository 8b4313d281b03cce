//! An in-memory tree that keeps every perfect-subtree hash.
//!
//! The reference [`HashReader`] for tests and benchmarks, and a model of what
//! a store keeps: level 0 holds leaf hashes, level `l` holds the hashes of the
//! complete `2^l`-leaf subtrees.

use crate::compact::CompactRange;
use crate::hash::Hash;
use crate::proof::{self, HashReader, ProofError};
use crate::tree::NodeId;

/// A Merkle tree held entirely in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: CompactRange,
}

/// A node that is not (yet) stored in a [`MemoryTree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingNode(pub NodeId);

impl std::fmt::Display for MissingNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {:?} is not in the tree", self.0)
    }
}

impl std::error::Error for MissingNode {}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Current root hash.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends a leaf hash (not leaf data: hash it with [`crate::leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.frontier.append(leaf, |id, hash| {
            let level = id.level as usize;
            if levels.len() <= level {
                levels.push(Vec::new());
            }
            levels[level].push(*hash);
        });
    }

    /// Root of the tree as it was at `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError<MissingNode>> {
        proof::root(self, size)
    }

    /// Inclusion proof of leaf `index` in the tree as it was at `size` leaves
    /// (RFC 6962 §2.1.1 `PATH`), nearest the leaf first.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, ProofError<MissingNode>> {
        proof::inclusion_proof(self, index, size)
    }

    /// Consistency proof from the tree at `old_size` leaves to the tree at
    /// `new_size` leaves (RFC 6962 §2.1.2 `PROOF`); needs
    /// `0 < old_size <= new_size`, and is empty when the sizes are equal.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, ProofError<MissingNode>> {
        proof::consistency_proof(self, old_size, new_size)
    }

    /// The stored hash of a perfect subtree.
    pub fn node(&self, id: NodeId) -> Option<&Hash> {
        self.levels
            .get(id.level as usize)?
            .get(usize::try_from(id.index).ok()?)
    }
}

impl HashReader for MemoryTree {
    type Error = MissingNode;

    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, MissingNode> {
        nodes
            .iter()
            .map(|&id| self.node(id).copied().ok_or(MissingNode(id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn asking_past_the_end_is_an_error_not_a_panic() {
        let mut t = MemoryTree::new();
        for i in 0..5u8 {
            t.push(leaf_hash(&[i]));
        }
        assert_eq!(
            t.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert!(matches!(
            t.inclusion_proof(0, 6),
            Err(ProofError::Read(MissingNode(_)))
        ));
        assert_eq!(
            t.consistency_proof(0, 5),
            Err(ProofError::InvalidSizes {
                old_size: 0,
                new_size: 5
            })
        );
        assert_eq!(t.consistency_proof(5, 5), Ok(vec![]));
    }
}
