//! Fuzzes signed-note opening and key-text parsing: arbitrary bytes must
//! never make them panic.

#![no_main]

use std::sync::OnceLock;

use evault_note::{
    CosignatureSigner, CosignatureVerifier, Ed25519Signer, Ed25519Verifier, OpenError, Verifiers,
    open, parse_verifier_key,
};
use libfuzzer_sys::fuzz_target;

/// Go's sumdb/note test verifier key (also in the conformance vectors).
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
/// Go's second test verifier key.
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
/// A cosignature/v1 (type 0x04) verifier key, from transparency-dev/formats'
/// tests.
const WITNESS_VKEY: &str = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";

fn verifiers() -> &'static Verifiers {
    static KNOWN: OnceLock<Verifiers> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known = Verifiers::new();
        for vkey in [PETER_VKEY, ENOCH_VKEY] {
            known
                .insert(Ed25519Verifier::from_verifier_key(vkey).expect("fixed verifier key"))
                .expect("distinct verifier keys");
        }
        known
            .insert(CosignatureVerifier::from_verifier_key(WITNESS_VKEY).expect("fixed key"))
            .expect("distinct verifier keys");
        known
    })
}

fuzz_target!(|data: &[u8]| {
    match open(data, verifiers()) {
        Ok(note) => {
            // A note that opens has a verified signature and a text that is
            // a prefix of the message ending in newline.
            assert!(!note.verified.is_empty());
            assert!(note.text.ends_with('\n'));
            assert!(data.starts_with(note.text.as_bytes()));
        }
        Err(OpenError::Unverified(note)) => {
            assert!(note.verified.is_empty());
            assert!(!note.unverified.is_empty());
        }
        Err(_) => {}
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Ed25519Signer::from_signer_key(text);
        let _ = Ed25519Verifier::from_verifier_key(text);
        let _ = CosignatureSigner::from_signer_key(text);
        let _ = CosignatureVerifier::from_verifier_key(text);
        if let Ok(parsed) = parse_verifier_key(text) {
            // The key ID was checked against the parsed parts.
            assert_eq!(
                parsed.key_id,
                evault_note::key_id(&parsed.name, parsed.alg, &parsed.public_key)
            );
        }
    }
});
