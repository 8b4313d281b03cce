//! Proof verification exactly as RFC 9162 §2.1.3.2 (inclusion) and
//! §2.1.4.2 (consistency).
//!
//! The verifiers take byte slices, not [`Hash`]es, because proofs arrive
//! from untrusted sources: a hash of the wrong length is an error here, never
//! a panic upstream. Edge cases the RFC leaves open are decided the way the
//! transparency-dev/merkle test vectors decide them:
//! - consistency with `size1 == 0` is rejected (an empty tree proves nothing;
//!   accepting any size against size 0 is a witness-layer policy, C2SP
//!   tlog-witness, and belongs there);
//! - `size1 == size2` verifies iff the proof is empty and the two roots are
//!   byte-for-byte equal.

use std::fmt;

use crate::hash::{HASH_SIZE, Hash, hash_from_slice, node_hash};

/// Why a proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// Inclusion: the leaf index is not below the tree size.
    IndexOutOfRange {
        /// Leaf index claimed (0-based).
        index: u64,
        /// Tree size in leaves.
        size: u64,
    },
    /// Consistency: `size1 > size2`.
    SizesReversed {
        /// Size in leaves of the tree claimed to be older.
        size1: u64,
        /// Size in leaves of the tree claimed to be newer.
        size2: u64,
    },
    /// Consistency: `size1 == 0`.
    EmptyOldTree,
    /// The proof does not have the number of elements the sizes dictate.
    WrongProofLength {
        /// Hashes a proof for these sizes has.
        expected: usize,
        /// Hashes the proof has.
        got: usize,
    },
    /// A leaf hash, root or proof element is not 32 bytes.
    BadHashLength {
        /// Which input: `"leaf hash"`, `"root"`, `"first root"`,
        /// `"second root"` or `"proof element"`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The recomputed root does not match the claimed one.
    RootMismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is not below tree size {size}")
            }
            VerifyError::SizesReversed { size1, size2 } => {
                write!(
                    f,
                    "old tree size {size1} is larger than new tree size {size2}"
                )
            }
            VerifyError::EmptyOldTree => {
                write!(f, "consistency with an empty old tree cannot be proven")
            }
            VerifyError::WrongProofLength { expected, got } => {
                write!(f, "proof has {got} hashes, expected {expected}")
            }
            VerifyError::BadHashLength { what, len } => {
                write!(f, "{what} is {len} bytes, expected {HASH_SIZE}")
            }
            VerifyError::RootMismatch => write!(f, "proof does not lead to the claimed root"),
        }
    }
}

impl std::error::Error for VerifyError {}

fn to_hash(bytes: &[u8], what: &'static str) -> Result<Hash, VerifyError> {
    hash_from_slice(bytes).ok_or(VerifyError::BadHashLength {
        what,
        len: bytes.len(),
    })
}

fn to_hashes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, VerifyError> {
    proof
        .iter()
        .map(|p| to_hash(p.as_ref(), "proof element"))
        .collect()
}

/// Number of elements in the inclusion proof of `index` in a tree of `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    // Levels where the path runs through a node with a sibling: the bits below
    // the highest bit where `index` and the last index differ, plus the left
    // siblings above it (set bits of index there).
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Number of elements in the consistency proof from `size1` to `size2`
/// (`0 < size1 <= size2`).
pub fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    if size1 == 0 || size1 >= size2 {
        return 0;
    }
    let level = size1.trailing_zeros();
    let index = (size1 - 1) >> level;
    let p = inclusion_proof_len(index, ((size2 - 1) >> level) + 1);
    // The old root is itself a node of the new tree when size1 is a power of
    // two; otherwise the proof starts with the node the verifier seeds from.
    if size1.is_power_of_two() { p } else { p + 1 }
}

/// Root reached by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–5).
///
/// Useful when the root is not yet known (e.g. computed against a checkpoint
/// afterwards); [`verify_inclusion`] is the usual entry point.
pub fn root_from_inclusion_proof<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
) -> Result<Hash, VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let leaf = to_hash(leaf_hash, "leaf hash")?;
    let proof = to_hashes(proof)?;

    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = leaf;
    for p in &proof {
        if s_n == 0 {
            return Err(VerifyError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), VerifyError> {
    let root = to_hash(root, "root")?;
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if computed != root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), VerifyError> {
    if size1 > size2 {
        return Err(VerifyError::SizesReversed { size1, size2 });
    }
    if size1 == 0 {
        return Err(VerifyError::EmptyOldTree);
    }
    if size1 == size2 {
        // RFC 9162 step 1: nothing to prove but that the roots are the same.
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    let expected = consistency_proof_len(size1, size2);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let root1 = to_hash(root1, "first root")?;
    let root2 = to_hash(root2, "second root")?;
    let mut proof = to_hashes(proof)?;

    // Step 2: a power-of-two old tree is a node of the new tree; the proof
    // omits it, so seed the path with the old root.
    if size1.is_power_of_two() {
        proof.insert(0, root1);
    }
    let mut f_n = size1 - 1;
    let mut s_n = size2 - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (first, rest) = proof
        .split_first()
        .ok_or(VerifyError::WrongProofLength { expected, got: 0 })?;
    let mut f_r = *first;
    let mut s_r = *first;
    for c in rest {
        if s_n == 0 {
            return Err(VerifyError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if f_r != root1 || s_r != root2 {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}
