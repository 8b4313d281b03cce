//! Arbitrary consistency proofs: the verifier must never panic.
#![no_main]

use evault_merkle::verify_consistency;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, u64, Vec<Vec<u8>>, Vec<u8>, Vec<u8>)| {
    let (size1, size2, proof, root1, root2) = input;
    if verify_consistency(size1, size2, &proof, &root1, &root2).is_ok() {
        assert!(0 < size1 && size1 <= size2);
    }
});
