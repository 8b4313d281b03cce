//! Arbitrary inclusion proofs: the verifier must never panic, and whatever
//! it accepts must be self-consistent.
#![no_main]

use evault_merkle::{root_from_inclusion_proof, verify_inclusion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, u64, u64, Vec<Vec<u8>>, Vec<u8>)| {
    let (leaf, index, size, proof, root) = input;
    if verify_inclusion(&leaf, index, size, &proof, &root).is_ok() {
        let computed = root_from_inclusion_proof(&leaf, index, size, &proof)
            .expect("accepted proof must yield a root");
        assert_eq!(computed.as_slice(), root.as_slice());
        assert!(index < size);
    }
});
