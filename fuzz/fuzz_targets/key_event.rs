//! Fuzzes the key event records a monitor reads from a log's leaves
//! (`evault_verify::key_event`): rebuilding the signed statement from
//! hostile labels and checking it must never panic, and whatever verifies
//! must round-trip through `labels` to the same event and note. Input:
//! label keys and values separated by 0xFF bytes (key, value, key, …).

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use evault_note::{Ed25519Signer, Verifiers, verifier_for};
use evault_verify::KeyEvent;
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "example.com/log";

fn trusted() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| {
        let mut v = Verifiers::new();
        for seed in [1u8, 2] {
            let key = Ed25519Signer::from_seed(ORIGIN, &[seed; 32]).expect("fixed seed");
            v.insert_boxed(verifier_for(key.verifier_key().as_str()).expect("key"))
                .expect("distinct keys");
        }
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let fields: Vec<String> = data
        .split(|b| *b == 0xff)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let labels: BTreeMap<String, String> = fields
        .chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect();
    let Ok(Some((event, note))) = KeyEvent::from_labels(&labels) else {
        return;
    };
    if event.open(&note, trusted()).is_ok() {
        let again = event.labels(&note).expect("a verified event has labels");
        let (back, rebuilt) = KeyEvent::from_labels(&again)
            .expect("its own labels parse")
            .expect("and are a key event");
        assert_eq!(back, event);
        assert_eq!(rebuilt, note);
    }
});
