//! RFC 6962 §2.1 hashing: domain-separated leaf and interior-node hashes.

use sha2::{Digest, Sha256};

/// Length in bytes of every hash in the tree (SHA-256).
pub const HASH_SIZE: usize = 32;

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; HASH_SIZE];

/// Root of the empty tree: `SHA-256("")` (RFC 6962 §2.1, `MTH({})`).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Leaf hash `SHA-256(0x00 || data)`.
///
/// The 0x00 prefix keeps a leaf from ever colliding with an interior node,
/// which is what makes second-preimage attacks on proofs impossible.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// Interior node hash `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_SIZE];
    buf[0] = 0x01;
    buf[1..1 + HASH_SIZE].copy_from_slice(left);
    buf[1 + HASH_SIZE..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// Converts a byte slice to a [`Hash`], or `None` if it is not exactly 32 bytes.
pub fn hash_from_slice(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let computed: Hash = Sha256::digest([]).into();
        assert_eq!(computed, EMPTY_ROOT);
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        let a = leaf_hash(b"x");
        let mut joined = vec![0x01];
        joined.extend_from_slice(&a);
        joined.extend_from_slice(&a);
        assert_eq!(leaf_hash(&joined[1..]), {
            let mut h = Sha256::new();
            h.update([0x00]);
            h.update(&joined[1..]);
            <Hash>::from(h.finalize())
        });
        assert_ne!(node_hash(&a, &a), leaf_hash(&joined[1..]));
        assert_eq!(node_hash(&a, &a), <Hash>::from(Sha256::digest(&joined)));
    }

    #[test]
    fn hash_from_slice_checks_length() {
        assert!(hash_from_slice(&[0; 31]).is_none());
        assert!(hash_from_slice(&[0; 33]).is_none());
        assert_eq!(hash_from_slice(&[7; 32]), Some([7; 32]));
    }
}
