//! Compact range ("frontier") of a growing log.
//!
//! A tree of `n` leaves is fully summarised by the roots of its perfect
//! subtrees along the right edge, one per set bit of `n`. Appending a leaf
//! hashes only the subtrees it completes, so `k` appends to a tree of size
//! `n` cost `k` leaf-level merges amortised (at most `2k + log n` node
//! hashes) and never re-read the tree.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::tree::{LeafRange, NodeId, fold_subtrees};

/// The right-edge perfect subtrees of a tree, enough to append and to root it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// Hashes of the perfect subtrees, largest (leftmost) first; one per set
    /// bit of `size`.
    hashes: Vec<Hash>,
}

/// Why stored frontier hashes could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontierMismatch {
    /// Tree size in leaves the hashes were given for.
    pub size: u64,
    /// Hashes a tree of that size has: the number of set bits of `size`.
    pub expected: usize,
    /// Hashes given.
    pub got: usize,
}

impl std::fmt::Display for FrontierMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a tree of size {} has {} frontier hashes, got {}",
            self.size, self.expected, self.got
        )
    }
}

impl std::error::Error for FrontierMismatch {}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes whose hashes [`CompactRange::from_hashes`] needs to resume a
    /// tree of `size` leaves, in the order it expects them.
    pub fn nodes_for_size(size: u64) -> Vec<NodeId> {
        LeafRange {
            begin: 0,
            end: size,
        }
        .nodes()
    }

    /// Resumes a tree from the hashes of [`CompactRange::nodes_for_size`].
    pub fn from_hashes(size: u64, hashes: Vec<Hash>) -> Result<Self, FrontierMismatch> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(FrontierMismatch {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(CompactRange { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Root hash of the tree (RFC 6962 `MTH`).
    pub fn root(&self) -> Hash {
        fold_subtrees(&self.hashes).unwrap_or(EMPTY_ROOT)
    }

    /// Appends one leaf hash. `on_node` sees every node hash that becomes
    /// complete, the leaf first, then each parent it completes, so a store can
    /// persist them (e.g. into tiles).
    pub fn append(&mut self, leaf: Hash, mut on_node: impl FnMut(NodeId, &Hash)) {
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        on_node(NodeId::new(level, index), &hash);
        while index & 1 == 1 {
            // A set low bit means a left sibling of equal size is waiting on
            // the frontier; merge with it.
            let Some(left) = self.hashes.pop() else { break };
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            on_node(NodeId::new(level, index), &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// Appends many leaf hashes; see [`CompactRange::append`].
    pub fn extend<'a>(
        &mut self,
        leaves: impl IntoIterator<Item = &'a Hash>,
        mut on_node: impl FnMut(NodeId, &Hash),
    ) {
        for leaf in leaves {
            self.append(*leaf, &mut on_node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn reports_every_completed_node_once() {
        let mut cr = CompactRange::new();
        let mut seen = Vec::new();
        for i in 0..8u8 {
            cr.append(leaf_hash(&[i]), |id, _| seen.push(id));
        }
        // 8 leaves + 4 + 2 + 1 parents.
        assert_eq!(seen.len(), 15);
        assert!(seen.contains(&NodeId::new(3, 0)));
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), seen.len());
    }

    #[test]
    fn resumes_from_stored_frontier() {
        let mut a = CompactRange::new();
        for i in 0..13u8 {
            a.append(leaf_hash(&[i]), |_, _| {});
        }
        assert_eq!(CompactRange::nodes_for_size(13).len(), 3);
        let mut b = CompactRange::from_hashes(13, a.hashes().to_vec()).unwrap();
        assert!(CompactRange::from_hashes(12, a.hashes().to_vec()).is_err());
        a.append(leaf_hash(b"x"), |_, _| {});
        b.append(leaf_hash(b"x"), |_, _| {});
        assert_eq!(a, b);
        assert_eq!(CompactRange::new().root(), EMPTY_ROOT);
    }
}
