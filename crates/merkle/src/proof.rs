//! Proof generation from stored node hashes.
//!
//! Generation is split in two so that storage stays out of the math: first
//! [`inclusion_ranges`]/[`consistency_ranges`] say which perfect subtrees are
//! needed, then one [`HashReader::read_hashes`] call fetches them, then the
//! ragged ranges are folded. A store can serve the batch from a handful of
//! tiles (see [`crate::tiles`]).

use std::fmt;

use crate::hash::{EMPTY_ROOT, Hash};
use crate::tree::{LeafRange, NodeId, consistency_ranges, fold_subtrees, inclusion_ranges};

/// Reads hashes of perfect subtrees from wherever they are kept.
///
/// Every requested node is complete in the tree size the caller asked about,
/// so a reader backed by immutable storage can always answer.
pub trait HashReader {
    /// Why hashes could not be read; surfaces as [`ProofError::Read`].
    type Error;

    /// Returns the hashes of `nodes`, in the same order.
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    type Error = R::Error;
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        (**self).read_hashes(nodes)
    }
}

/// Why a proof could not be produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ProofError<E> {
    /// The leaf index is not below the tree size.
    IndexOutOfRange {
        /// Leaf index asked for (0-based).
        index: u64,
        /// Tree size in leaves.
        size: u64,
    },
    /// Consistency needs `0 < old_size <= new_size`.
    InvalidSizes {
        /// Size in leaves of the earlier tree.
        old_size: u64,
        /// Size in leaves of the later tree.
        new_size: u64,
    },
    /// The reader returned a different number of hashes than requested.
    ShortRead {
        /// Node hashes asked for.
        requested: usize,
        /// Node hashes returned.
        returned: usize,
    },
    /// The reader failed.
    Read(E),
}

impl<E: fmt::Display> fmt::Display for ProofError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is not below tree size {size}")
            }
            ProofError::InvalidSizes { old_size, new_size } => write!(
                f,
                "no consistency proof from size {old_size} to size {new_size}: need 0 < old <= new"
            ),
            ProofError::ShortRead {
                requested,
                returned,
            } => {
                write!(
                    f,
                    "hash reader returned {returned} hashes for {requested} nodes"
                )
            }
            ProofError::Read(e) => write!(f, "reading node hashes: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ProofError<E> {}

/// Root hash of the tree of `size` leaves (RFC 6962 `MTH`).
pub fn root<R: HashReader>(reader: &R, size: u64) -> Result<Hash, ProofError<R::Error>> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    let hashes = hash_ranges(
        reader,
        &[LeafRange {
            begin: 0,
            end: size,
        }],
    )?;
    Ok(hashes[0])
}

/// Inclusion proof (audit path) for leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<R: HashReader>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    hash_ranges(reader, &inclusion_ranges(index, size))
}

/// Consistency proof from the tree of `old_size` leaves to the tree of
/// `new_size` leaves. Equal sizes give an empty proof.
pub fn consistency_proof<R: HashReader>(
    reader: &R,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::InvalidSizes { old_size, new_size });
    }
    hash_ranges(reader, &consistency_ranges(old_size, new_size))
}

/// The perfect subtrees needed to hash `ranges`, deduplicated and sorted.
pub fn nodes_for_ranges(ranges: &[LeafRange]) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = ranges.iter().flat_map(|r| r.nodes()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Hashes each range with a single batched read.
fn hash_ranges<R: HashReader>(
    reader: &R,
    ranges: &[LeafRange],
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    let per_range: Vec<Vec<NodeId>> = ranges.iter().map(|r| r.nodes()).collect();
    let wanted: Vec<NodeId> = per_range.iter().flatten().copied().collect();
    let hashes = reader.read_hashes(&wanted).map_err(ProofError::Read)?;
    if hashes.len() != wanted.len() {
        return Err(ProofError::ShortRead {
            requested: wanted.len(),
            returned: hashes.len(),
        });
    }
    let mut rest = hashes.as_slice();
    let mut out = Vec::with_capacity(ranges.len());
    for nodes in &per_range {
        let (mine, tail) = rest.split_at(nodes.len());
        rest = tail;
        // Ranges built by this crate are never empty, so the fold has input.
        out.push(fold_subtrees(mine).unwrap_or(EMPTY_ROOT));
    }
    Ok(out)
}
