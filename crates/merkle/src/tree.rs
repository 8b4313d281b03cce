//! Tree-size arithmetic: how RFC 6962 splits a tree of `n` leaves into
//! perfect (power-of-two) subtrees, and which subtrees a proof is made of.
//!
//! Everything here is pure index math; no hashing happens.

use crate::hash::{Hash, node_hash};

/// A perfect subtree: the `2^level` leaves starting at leaf `index << level`.
///
/// Level 0 nodes are leaf hashes. These are the only hashes a store keeps:
/// every other hash (roots of incomplete trees, proof elements over ragged
/// ranges) is computed from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves: the node covers `2^level` leaves; 0 is a leaf.
    pub level: u8,
    /// Position among the nodes of its level, 0 leftmost.
    pub index: u64,
}

impl NodeId {
    /// The node `index` of tree level `level`.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// First leaf covered by this node.
    pub fn first_leaf(self) -> u128 {
        (self.index as u128) << self.level
    }

    /// One past the last leaf covered by this node.
    pub fn end_leaf(self) -> u128 {
        (self.index as u128 + 1) << self.level
    }

    /// Whether the subtree is complete in a tree of `size` leaves.
    pub fn is_complete_in(self, size: u64) -> bool {
        self.level < 64 && self.end_leaf() <= size as u128
    }
}

/// A half-open range of leaves `[begin, end)` whose hash is `MTH(D[begin:end])`.
///
/// Proof elements are hashes of such ranges. Every range that RFC 6962's
/// recursive split produces starts at a multiple of a power of two at least
/// as large as its length, so it decomposes into aligned perfect subtrees,
/// one per set bit of its length, largest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafRange {
    /// First leaf of the range (inclusive).
    pub begin: u64,
    /// One past the last leaf of the range (exclusive).
    pub end: u64,
}

impl LeafRange {
    /// The perfect subtrees covering this range, left to right.
    pub fn nodes(self) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(self.end.saturating_sub(self.begin).count_ones() as usize);
        let mut pos = self.begin;
        // An inverted range is empty rather than a wrap-around.
        let mut len = self.end.saturating_sub(self.begin);
        while len > 0 {
            let level = 63 - len.leading_zeros();
            out.push(NodeId::new(level as u8, pos >> level));
            pos += 1 << level;
            len -= 1 << level;
        }
        out
    }
}

/// The largest power of two strictly less than `n` (`n >= 2`); RFC 6962's `k`.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Leaf ranges whose hashes form the inclusion proof of leaf `index` in a tree
/// of `size` leaves, in proof order (nearest the leaf first): RFC 6962 §2.1.1
/// `PATH(m, D[n])`. The caller checks `index < size`.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<LeafRange> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            out.push(LeafRange {
                begin: lo + k,
                end: hi,
            });
            hi = lo + k;
        } else {
            out.push(LeafRange {
                begin: lo,
                end: lo + k,
            });
            lo += k;
        }
    }
    out.reverse();
    out
}

/// Leaf ranges whose hashes form the consistency proof from `old_size` to
/// `new_size`, in proof order: RFC 6962 §2.1.2 `PROOF(m, D[n])`.
/// Empty unless `0 < old_size < new_size`.
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<LeafRange> {
    let mut out = Vec::new();
    if old_size == 0 || old_size >= new_size {
        return out;
    }
    let (mut lo, mut hi) = (0u64, new_size);
    // `complete` is SUBPROOF's flag b: true while the old tree is still a
    // left-edge subtree whose hash the verifier already knows.
    let mut complete = true;
    loop {
        if old_size == hi {
            if !complete {
                out.push(LeafRange { begin: lo, end: hi });
            }
            break;
        }
        let k = split_point(hi - lo);
        if old_size - lo <= k {
            out.push(LeafRange {
                begin: lo + k,
                end: hi,
            });
            hi = lo + k;
        } else {
            out.push(LeafRange {
                begin: lo,
                end: lo + k,
            });
            lo += k;
            complete = false;
        }
    }
    out.reverse();
    out
}

/// Hash of a range given the hashes of its perfect subtrees, left to right
/// (as returned by [`LeafRange::nodes`]): folded right to left.
pub fn fold_subtrees(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// Hash of a perfect subtree given its `2^k` leftmost-level hashes.
///
/// Used to compute an inner tile node from a tile row. Returns `None` unless
/// the length is a non-zero power of two.
pub fn perfect_subtree_hash(row: &[Hash]) -> Option<Hash> {
    if row.is_empty() || !row.len().is_power_of_two() {
        return None;
    }
    let mut level: Vec<Hash> = row.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
    }
    Some(level[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn ranges_decompose_into_aligned_perfect_nodes() {
        let r = LeafRange { begin: 8, end: 15 };
        assert_eq!(
            r.nodes(),
            vec![NodeId::new(2, 2), NodeId::new(1, 6), NodeId::new(0, 14)]
        );
        assert!(LeafRange { begin: 3, end: 3 }.nodes().is_empty());
    }

    #[test]
    fn inclusion_ranges_match_rfc_example() {
        // RFC 6962 §2.1.3: the path for leaf d0 in a 7-leaf tree is [b, h, i].
        let ranges = inclusion_ranges(0, 7);
        assert_eq!(
            ranges,
            vec![
                LeafRange { begin: 1, end: 2 },
                LeafRange { begin: 2, end: 4 },
                LeafRange { begin: 4, end: 7 },
            ]
        );
        // Leaf d6 (index 6): [j, g] = [MTH(0..4), MTH(4..6)] nearest first.
        assert_eq!(
            inclusion_ranges(6, 7),
            vec![
                LeafRange { begin: 4, end: 6 },
                LeafRange { begin: 0, end: 4 }
            ]
        );
        assert!(inclusion_ranges(0, 1).is_empty());
    }

    #[test]
    fn consistency_ranges_match_rfc_example() {
        // RFC 6962 §2.1.3: PROOF(3, D[7]) = [c, d, g, l].
        assert_eq!(
            consistency_ranges(3, 7),
            vec![
                LeafRange { begin: 2, end: 3 },
                LeafRange { begin: 3, end: 4 },
                LeafRange { begin: 0, end: 2 },
                LeafRange { begin: 4, end: 7 },
            ]
        );
        // PROOF(4, D[7]) = [l]; PROOF(6, D[7]) = [i, j, k].
        assert_eq!(
            consistency_ranges(4, 7),
            vec![LeafRange { begin: 4, end: 7 }]
        );
        assert_eq!(
            consistency_ranges(6, 7),
            vec![
                LeafRange { begin: 4, end: 6 },
                LeafRange { begin: 6, end: 7 },
                LeafRange { begin: 0, end: 4 },
            ]
        );
        assert!(consistency_ranges(5, 5).is_empty());
        assert!(consistency_ranges(0, 5).is_empty());
        assert!(consistency_ranges(6, 5).is_empty());
        assert!(LeafRange { begin: 9, end: 3 }.nodes().is_empty());
        assert!(inclusion_ranges(0, 0).is_empty());
    }

    #[test]
    fn perfect_subtree_hash_needs_power_of_two() {
        assert!(perfect_subtree_hash(&[]).is_none());
        assert!(perfect_subtree_hash(&[[0; 32]; 3]).is_none());
        let h = [[1; 32], [2; 32]];
        assert_eq!(perfect_subtree_hash(&h), Some(node_hash(&h[0], &h[1])));
    }
}
