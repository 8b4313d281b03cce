//! `evault verify BUNDLE.evb`, offline: a genuine bundle verifies with a
//! line per record; a tampered record fails with exit 1 naming it; a wrong
//! key, a damaged file and an uncheckable newer checkpoint are each said.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use evault_merkle::MemoryTree;
use evault_note::{Checkpoint, CosignatureSigner, Ed25519Signer, MlDsaCosigner, Signer, sign};
use evault_verify::evb::{self, BundleContents, BundleEntry, NewerCheckpoint, Selection};
use evault_verify::{ConsistencyProof, Evidence};
use serde_json::Value;

const ORIGIN: &str = "vault.example/log";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn evault(cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run evault");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn record(i: u64) -> Evidence {
    Evidence {
        id: format!("01936f0e-8f3a-7cc2-9b1e-{i:012x}"),
        leaf_index: i,
        content_type: "application/json".into(),
        sha256: format!("{i:064x}"),
        size: 10 + i,
        labels: BTreeMap::new(),
        ingested_at: "2026-11-23T11:30:00.123Z".into(),
        ingested_by: "sa:ci".into(),
        idempotency_key: None,
    }
}

/// Writes into `dir`: `good.evb` (records 2..7 of a 20-leaf log, with a
/// consistency proof to size 25), `tampered.evb` (record 4 changed after
/// its proof was made), `key` (the log's verifier key), `other.key`,
/// `cp25` and `cp30` (newer checkpoints).
fn setup(dir: &Path) {
    let signer = Ed25519Signer::from_seed(ORIGIN, &[5; 32]).unwrap();
    setup_signed_by(dir, &signer, &[]);
}

/// As [`setup`], with checkpoints signed by `signer` and `also` (written
/// to `also-<n>.key`).
fn setup_signed_by(dir: &Path, signer: &dyn Signer, also: &[&dyn Signer]) {
    let mut tree = MemoryTree::new();
    for i in 0..30 {
        tree.push(record(i).leaf_hash().unwrap());
    }
    let mut signers: Vec<&dyn Signer> = vec![signer];
    signers.extend_from_slice(also);
    let note = |size: u64| {
        let cp = Checkpoint::new(ORIGIN, size, tree.root_at(size).unwrap());
        sign(&cp.to_text(), &signers).unwrap()
    };
    let proof = |i| tree.inclusion_proof(i, 20).unwrap();
    let consistency = ConsistencyProof {
        from: 20,
        to: 25,
        proof: tree
            .consistency_proof(20, 25)
            .unwrap()
            .iter()
            .map(|h| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(h)
            })
            .collect(),
    };
    let contents = BundleContents {
        checkpoint: note(20),
        selection: Selection::default(),
        entries: (2..7)
            .map(|i| BundleEntry {
                record: record(i),
                inclusion_proof: proof(i),
            })
            .collect(),
        erasures: Vec::new(),
        newer: Some(NewerCheckpoint {
            checkpoint: note(25),
            proof: consistency,
        }),
    };
    let write = |name: &str, c: &BundleContents| {
        let mut out = Vec::new();
        evb::write_bundle(&mut out, c, None).unwrap();
        std::fs::write(dir.join(name), out).unwrap();
    };
    write("good.evb", &contents);
    let mut tampered = contents.clone();
    tampered.entries[2].record.ingested_by = "sa:someone-else".into();
    write("tampered.evb", &tampered);
    std::fs::write(dir.join("key"), signer.verifier_key().as_str()).unwrap();
    let other = Ed25519Signer::from_seed(ORIGIN, &[6; 32]).unwrap();
    std::fs::write(dir.join("other.key"), other.verifier_key().as_str()).unwrap();
    std::fs::write(dir.join("cp25"), note(25)).unwrap();
    std::fs::write(dir.join("cp30"), note(30)).unwrap();
    for (n, s) in also.iter().enumerate() {
        std::fs::write(dir.join(format!("also-{n}.key")), s.verifier_key().as_str()).unwrap();
    }
}

#[test]
fn a_bundle_signed_with_ml_dsa_44_verifies_with_either_key() {
    // Checkpoints signed with Ed25519 and ML-DSA-44 (C2SP tlog-checkpoint's
    // recommendation): either key alone verifies the bundle, the other
    // signature line being skipped as an unknown key's.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ed = Ed25519Signer::from_seed(ORIGIN, &[5; 32]).unwrap();
    let pq = MlDsaCosigner::from_seed(ORIGIN, &[5; 32])
        .unwrap()
        .with_fixed_timestamp(0);
    setup_signed_by(d, &ed, &[&pq]);
    for key in ["key", "also-0.key"] {
        let out = evault(d, &["verify", "good.evb", "--key", key]);
        assert_eq!(out.code, 0, "{key}: {out:?}");
        assert_eq!(
            out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
            5
        );
        let out = evault(d, &["verify", "tampered.evb", "--key", key]);
        assert_eq!(out.code, 1, "{key}: {out:?}");
    }
    // Another ML-DSA-44 key of the same name does not verify it.
    let stranger = MlDsaCosigner::from_seed(ORIGIN, &[6; 32]).unwrap();
    std::fs::write(d.join("stranger.key"), stranger.verifier_key().as_str()).unwrap();
    let out = evault(d, &["verify", "good.evb", "--key", "stranger.key"]);
    assert_eq!(out.code, 1, "{out:?}");
    // A witness's cosignature key is not a log's key: a usage error.
    let witness = CosignatureSigner::from_seed("w.example/w", &[7; 32]).unwrap();
    std::fs::write(d.join("witness.key"), witness.verifier_key().as_str()).unwrap();
    let out = evault(d, &["verify", "good.evb", "--key", "witness.key"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not a log's verifier key"), "{out:?}");
}

#[test]
fn a_genuine_bundle_verifies_with_a_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let d = dir.path();
    let out = evault(d, &["verify", "good.evb", "--key", "key"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        5
    );
    assert!(
        out.stdout.contains(&format!("leaf 4  {}", record(4).id)),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(
            "verified: 5 records of vault.example/log at tree size 20, checkpoint signed by \
             vault.example/log; consistent with tree size 25 (bundle)"
        ),
        "{out:?}"
    );

    let out = evault(
        d,
        &[
            "--json", "verify", "good.evb", "--key", "key", "--origin", ORIGIN,
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["format"], "evb");
    assert_eq!(v["entries"].as_array().unwrap().len(), 5);
    assert_eq!(v["entries"][0]["leaf_index"], 2);

    // Given the newer checkpoint the bundle proves consistency to.
    let out = evault(
        d,
        &["verify", "good.evb", "--key", "key", "--checkpoint", "cp25"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("consistent with tree size 25 (given)"),
        "{out:?}"
    );

    // Found by its magic through --proof too.
    let out = evault(d, &["verify", "--proof", "good.evb", "--key", "key"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn failures_exit_1_naming_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let d = dir.path();
    let id = record(4).id;

    let out = evault(d, &["verify", "tampered.evb", "--key", "key"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("NOT VERIFIED"), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "1 of 5 records failed; first: record {id} (leaf 4): inclusion"
        )),
        "{out:?}"
    );
    let failed: Vec<_> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAILED"))
        .collect();
    assert_eq!(failed.len(), 1, "{out:?}");
    assert!(
        failed[0].contains(&id) && failed[0].contains("inclusion"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("verified:"), "{out:?}");

    let out = evault(d, &["--json", "verify", "tampered.evb", "--key", "key"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["exit_code"], 1);
    let bad: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["id"], id.as_str());
    assert_eq!(bad[0]["failures"][0]["check"], "inclusion");

    let out = evault(d, &["verify", "good.evb", "--key", "other.key"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("not signed by the given key"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("hint: --key is vault.example/log+"),
        "{out:?}"
    );

    let out = evault(
        d,
        &["verify", "good.evb", "--key", "key", "--checkpoint", "cp30"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("consistency_unavailable"), "{out:?}");
    assert!(out.stderr.contains("size 30"), "{out:?}");

    // A damaged file: refused as it is, exit 1.
    let good = std::fs::read(d.join("good.evb")).unwrap();
    std::fs::write(d.join("cut.evb"), &good[..good.len() / 2]).unwrap();
    let out = evault(d, &["verify", "cut.evb", "--key", "key"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("the bundle is truncated"), "{out:?}");

    // Usage: --record is for a single proof; a missing file.
    let out = evault(
        d,
        &["verify", "good.evb", "--key", "key", "--record", "key"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = evault(d, &["verify", "nope.evb", "--key", "key"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = evault(d, &["verify", "--key", "key"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn erased_payloads_are_shown_with_their_tombstones() {
    // Records 0..3, then the tombstones (leaves 3..6) that erased each of
    // their payloads: a bundle with payloads holds none, only tombstones.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let signer = Ed25519Signer::from_seed(ORIGIN, &[5; 32]).unwrap();
    let tombstone = |erased: u64| Evidence {
        content_type: evb::TOMBSTONE_TYPE.into(),
        labels: BTreeMap::from([
            (evb::TOMBSTONE_ERASES.to_string(), record(erased).id),
            (evb::TOMBSTONE_ERASES_LEAF.to_string(), erased.to_string()),
        ]),
        ingested_by: evb::TOMBSTONE_BY.into(),
        ..record(erased + 3)
    };
    let mut tree = MemoryTree::new();
    for r in (0..3).map(record).chain((0..3).map(tombstone)) {
        tree.push(r.leaf_hash().unwrap());
    }
    let cp = Checkpoint::new(ORIGIN, 6, tree.root_at(6).unwrap());
    let contents = BundleContents {
        checkpoint: sign(&cp.to_text(), &[&signer as &dyn Signer]).unwrap(),
        selection: Selection {
            payloads: true,
            ..Selection::default()
        },
        entries: (0..3)
            .map(|i| BundleEntry {
                record: record(i),
                inclusion_proof: tree.inclusion_proof(i, 6).unwrap(),
            })
            .collect(),
        erasures: (0..3)
            .map(|i| evb::ErasureEntry {
                erased_leaf: i,
                tombstone: tombstone(i),
                inclusion_proof: tree.inclusion_proof(i + 3, 6).unwrap(),
            })
            .collect(),
        newer: None,
    };
    let mut out = Vec::new();
    evb::write_bundle(&mut out, &contents, None).unwrap();
    std::fs::write(d.join("erased.evb"), out).unwrap();
    std::fs::write(d.join("key"), signer.verifier_key().as_str()).unwrap();

    let out = evault(d, &["verify", "erased.evb", "--key", "key"]);
    assert_eq!(out.code, 0, "{out:?}");
    for i in 0..3 {
        assert!(
            out.stdout.contains(&format!(
                "ok      leaf {i}  {}  (payload erased by tombstone {})",
                record(i).id,
                tombstone(i).id
            )),
            "{out:?}"
        );
    }
    assert!(
        out.stdout.contains(
            "verified: 3 records (3 with payloads erased, each by a verified tombstone) of \
             vault.example/log at tree size 6"
        ),
        "{out:?}"
    );
    let out = evault(d, &["--json", "verify", "erased.evb", "--key", "key"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["erased"], 3, "{v}");
    assert_eq!(v["entries"][1]["erased_by"], tombstone(1).id);
}
