//! Fuzzes a witness's `add-checkpoint` handling (C2SP tlog-witness): the
//! request parser, its encoder (what parses re-encodes to the same bytes),
//! and the whole decision on hostile bodies, which must answer a 4xx and
//! never panic. The witness (and its state directory under the temporary
//! directory) lives for the process, as a server's does, so a finding may
//! need the inputs before it to reproduce.

#![no_main]

use std::sync::OnceLock;

use evault_note::{CosignatureSigner, Ed25519Signer};
use evault_witness::{AddCheckpoint, LogConfig, Witness, WitnessConfig};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "example.com/log";

fn witness() -> &'static Witness {
    static W: OnceLock<Witness> = OnceLock::new();
    W.get_or_init(|| {
        let log = Ed25519Signer::from_seed(ORIGIN, &[1; 32]).expect("fixed seed");
        let cosigner =
            CosignatureSigner::from_seed("witness.example/w", &[2; 32]).expect("fixed seed");
        let dir = std::env::temp_dir().join(format!("evault-fuzz-witness-{}", std::process::id()));
        Witness::open(
            WitnessConfig {
                state_dir: dir,
                logs: vec![LogConfig {
                    origin: ORIGIN.into(),
                    keys: vec![log.verifier_key().to_string()],
                }],
                requests_per_minute: u32::MAX,
            },
            vec![Box::new(cosigner)],
        )
        .expect("witness")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = AddCheckpoint::parse(data) {
        // The parser is strict (canonical numbers and base64, every line
        // ended): what it accepts is exactly what the encoder writes.
        assert_eq!(req.encode().as_bytes(), data);
    }
    match witness().add_checkpoint(data) {
        Ok(lines) => assert!(lines.lines().all(|l| l.starts_with("\u{2014} "))),
        Err(e) => {
            let status = e.status();
            // 500 is the witness failing to sign or persist: never the
            // request's doing.
            assert!((400..500).contains(&status), "{status}: {e}");
            let _ = (e.body(), e.content_type());
        }
    }
});
