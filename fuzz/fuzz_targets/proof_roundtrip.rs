//! Real proofs from a small real tree verify; any change the fuzzer makes to
//! them, to the index or to the sizes is rejected.
#![no_main]

use evault_merkle::{Hash, MemoryTree, leaf_hash, verify_consistency, verify_inclusion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, u16, Vec<(u8, u8, u8)>)| {
    let (size, a, b, edits) = input;
    let size = u64::from(size % 2048) + 1;
    let mut tree = MemoryTree::new();
    for i in 0..size {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    let root = tree.root();
    let index = u64::from(a) % size;
    let leaf = leaf_hash(&index.to_le_bytes());
    let proof = tree.inclusion_proof(index, size).expect("in range");
    assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());

    let old = u64::from(b) % size + 1;
    let old_root = tree.root_at(old).expect("old root");
    let cproof = tree.consistency_proof(old, size).expect("valid sizes");
    assert!(verify_consistency(old, size, &cproof, &old_root, &root).is_ok());

    let edit = |p: &[Hash]| {
        let mut p = p.to_vec();
        for &(op, pos, val) in &edits {
            let n = p.len();
            match op % 3 {
                0 if n > 0 => p[pos as usize % n][val as usize % 32] ^= 1 << (op % 8),
                1 if n > 0 => {
                    p.remove(pos as usize % n);
                }
                _ => p.insert(pos as usize % (n + 1), [val; 32]),
            }
        }
        p
    };
    let bad = edit(&proof);
    if bad != proof {
        assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
    }
    let bad = edit(&cproof);
    if bad != cproof {
        assert!(verify_consistency(old, size, &bad, &old_root, &root).is_err());
    }
});
