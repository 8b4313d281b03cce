//! Hostile request bodies: the parser and the witness never panic, never
//! cosign what they should not, and never change their state on a refusal.

use std::path::PathBuf;

use evault_merkle::{MemoryTree, leaf_hash};
use evault_note::{Checkpoint, CosignatureSigner, Ed25519Signer, Signer, sign};
use evault_witness::{AddCheckpoint, LogConfig, Witness, WitnessConfig, origin_hash};
use proptest::prelude::*;

const ORIGIN: &str = "example.com/log";

fn valid_body(tree: &MemoryTree, key: &Ed25519Signer, old: u64) -> String {
    let size = tree.size();
    let cp = Checkpoint::new(ORIGIN, size, tree.root_at(size).unwrap()).to_text();
    let note = sign(&cp, &[key as &dyn Signer]).unwrap();
    AddCheckpoint {
        old_size: old,
        proof: if old == 0 {
            vec![]
        } else {
            tree.consistency_proof(old, size).unwrap()
        },
        note: &note,
    }
    .encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_parser_takes_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = AddCheckpoint::parse(&body);
    }

    #[test]
    fn mutated_requests_are_refused_or_cosigned_consistently(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hostile-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap();
        let w = Witness::open(
            WitnessConfig {
                state_dir: dir.clone(),
                logs: vec![LogConfig { origin: ORIGIN.into(), keys: vec![key.verifier_key().into_string()] }],
                requests_per_minute: 1_000_000,
            },
            vec![Box::new(CosignatureSigner::from_seed("w.example/w", &[2; 32]).unwrap())],
        )
        .unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..6u8 {
            tree.push(leaf_hash(&[i]));
        }
        w.add_checkpoint(valid_body(&tree, &key, 0).as_bytes()).unwrap();
        let before = w.latest(&origin_hash(ORIGIN)).unwrap().unwrap();
        for i in 6..9u8 {
            tree.push(leaf_hash(&[i]));
        }
        let good = valid_body(&tree, &key, 6);
        let mut body = good.clone().into_bytes();
        for (at, x) in &flips {
            let i = at.index(body.len());
            body[i] ^= x | 1;
        }
        if truncate {
            body.truncate(cut.index(body.len()));
        }
        match w.add_checkpoint(&body) {
            // A flip that still verifies can only be one that leaves the
            // signed checkpoint and a valid proof: the witness then holds
            // the new size.
            Ok(lines) => {
                prop_assert!(lines.starts_with("— w.example/w "));
                let after = w.latest(&origin_hash(ORIGIN)).unwrap().unwrap();
                prop_assert!(after.starts_with(&format!("{ORIGIN}\n9\n")), "{after}");
            }
            Err(e) => {
                prop_assert!([400, 403, 404, 409, 413, 422].contains(&e.status()), "{e}");
                prop_assert_eq!(w.latest(&origin_hash(ORIGIN)).unwrap().unwrap(), before.clone());
                // And the genuine request still succeeds afterwards.
                prop_assert!(w.add_checkpoint(good.as_bytes()).is_ok());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
