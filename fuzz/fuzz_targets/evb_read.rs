//! Fuzzes the evidence bundle reader and verifier with hostile archives:
//! any bytes are refused with a `ReadError` or read, never a panic, and
//! nothing reads past the limits; what is read is verified without
//! panicking. The first byte picks the layer the rest attacks: the zstd
//! stream as given, or a tar stream the target compresses itself (so the
//! fuzzer reaches the archive and manifest checks).

#![no_main]

use evault_note::{Ed25519Signer, Verifiers};
use evault_verify::evb::{self, NoPayloadSink, ReadLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let compressed;
    let input = if mode & 1 == 0 {
        rest
    } else {
        compressed = match zstd::encode_all(rest, 1) {
            Ok(c) => c,
            Err(_) => return,
        };
        &compressed[..]
    };
    // Small limits: a bomb must stop at them, fast.
    let limits = ReadLimits {
        max_manifest: 1 << 16,
        max_member: 1 << 20,
        max_total: 4 << 20,
        max_ratio: 100,
        ratio_floor: 1 << 20,
    };
    if let Ok(bundle) = evb::read_bundle(input, &limits, &mut NoPayloadSink) {
        let signer = Ed25519Signer::from_seed("vault.example/log", &[9; 32]).expect("signer");
        let verifiers = Verifiers::new().with(signer.verifier()).expect("verifiers");
        let report = evb::verify_bundle(&bundle, &verifiers, None, None);
        assert_eq!(
            report.verified,
            report.failures.is_empty() && report.entries.iter().all(|e| e.ok)
        );
    }
});
