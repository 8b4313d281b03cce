//! A bundle made the way the vault makes one verifies offline; any change to
//! the record, the proof, the checkpoint or the key is caught.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::MemoryTree;
use evault_note::{Checkpoint, Ed25519Signer, Verifiers, sign};
use evault_verify::{BundleError, Evidence, ProofBundle, TlogProof};

const ORIGIN: &str = "vault.example/log";

fn record(i: u64) -> Evidence {
    Evidence {
        id: format!("01936f0e-8f3a-7cc2-9b1e-{i:012x}"),
        leaf_index: i,
        content_type: "application/json".into(),
        sha256: format!("{:064x}", i),
        size: 10 + i,
        labels: BTreeMap::from([("build".to_string(), i.to_string())]),
        ingested_at: "2026-11-23T11:30:00.123Z".into(),
        ingested_by: "sa:ci".into(),
        idempotency_key: None,
    }
}

fn setup() -> (ProofBundle, Verifiers, Ed25519Signer) {
    let signer = Ed25519Signer::from_seed(ORIGIN, &[9; 32]).unwrap();
    let verifiers = Verifiers::new().with(signer.verifier()).unwrap();
    let mut tree = MemoryTree::new();
    for i in 0..37 {
        tree.push(record(i).leaf_hash().unwrap());
    }
    let cp = Checkpoint::new(ORIGIN, 37, tree.root());
    let note = sign(&cp.to_text(), &[&signer]).unwrap();
    let idx = 21;
    let bundle = ProofBundle {
        record: record(idx),
        leaf_index: idx,
        tree_size: 37,
        inclusion_proof: tree
            .inclusion_proof(idx, 37)
            .unwrap()
            .iter()
            .map(|h| STANDARD.encode(h))
            .collect(),
        checkpoint: note,
    };
    (bundle, verifiers, signer)
}

#[test]
fn genuine_bundle_verifies() {
    let (bundle, verifiers, _) = setup();
    let v = bundle.verify(&verifiers, Some(ORIGIN)).unwrap();
    assert_eq!((v.tree_size, v.leaf_index), (37, 21));
    assert_eq!(v.signed_by, vec![ORIGIN.to_string()]);
    // Round trip through JSON as the CLI writes it.
    let json = serde_json::to_string(&bundle).unwrap();
    let back: ProofBundle = serde_json::from_str(&json).unwrap();
    assert!(back.verify(&verifiers, None).is_ok());
    // And through C2SP tlog-proof text.
    let text = bundle.to_tlog_proof().unwrap().to_text();
    let parsed = TlogProof::parse(&text).unwrap();
    assert_eq!(parsed.index, 21);
    assert_eq!(parsed.checkpoint, bundle.checkpoint);
}

#[test]
fn every_tampering_is_caught() {
    let (bundle, verifiers, _) = setup();

    let mut b = bundle.clone();
    b.record.labels.insert("build".into(), "evil".into());
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::Inclusion(_))
    ));

    let mut b = bundle.clone();
    b.record.size += 1;
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::Inclusion(_))
    ));

    let mut b = bundle.clone();
    b.inclusion_proof.swap(0, 1);
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::Inclusion(_))
    ));

    let mut b = bundle.clone();
    b.inclusion_proof[0] = "not base64!".into();
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::BadProofEncoding(0))
    ));

    let mut b = bundle.clone();
    b.tree_size = 36;
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::SizeMismatch { .. })
    ));

    let mut b = bundle.clone();
    b.leaf_index = 20;
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::IndexMismatch { .. })
    ));

    let mut b = bundle.clone();
    b.checkpoint = b.checkpoint.replacen("37\n", "38\n", 1);
    assert!(matches!(
        b.verify(&verifiers, None),
        Err(BundleError::Signature(_))
    ));

    assert!(matches!(
        bundle.verify(&verifiers, Some("other.example/log")),
        Err(BundleError::WrongOrigin { .. })
    ));

    // A wrong key is named, with the key that did sign.
    let stranger = Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap();
    let wrong_key = Verifiers::new().with(stranger.verifier()).unwrap();
    let err = bundle.verify(&wrong_key, None).unwrap_err();
    let signer = evault_note::parse_verifier_key(setup().2.verifier_key().as_str()).unwrap();
    let want = format!("{ORIGIN}+{:08x}", signer.key_id);
    assert!(
        matches!(&err, BundleError::UnknownSigner(keys) if keys == std::slice::from_ref(&want)),
        "{err:?}"
    );
    assert!(err.to_string().contains(&want), "{err}");
}

#[test]
fn a_tlog_proof_verifies_with_its_record() {
    let (bundle, verifiers, _) = setup();
    let text = bundle.to_tlog_proof().unwrap().to_text();
    let proof = TlogProof::parse(&text).unwrap();
    let v = proof
        .verify(&bundle.record, &verifiers, Some(ORIGIN))
        .unwrap();
    assert_eq!((v.tree_size, v.leaf_index), (37, 21));
    // Another record, or the same one altered, does not.
    assert!(matches!(
        proof.verify(&record(20), &verifiers, None),
        Err(BundleError::IndexMismatch { .. })
    ));
    let mut altered = bundle.record.clone();
    altered.ingested_by = "someone-else".into();
    assert!(matches!(
        proof.verify(&altered, &verifiers, None),
        Err(BundleError::Inclusion(_))
    ));
    assert!(matches!(
        proof.verify(&bundle.record, &verifiers, Some("other.example/log")),
        Err(BundleError::WrongOrigin { .. })
    ));
}

/// The record format is strict: an unknown member is an error, in the
/// record and in the bundle.
#[test]
fn unknown_members_are_rejected() {
    let (bundle, _, _) = setup();
    let mut v = serde_json::to_value(&bundle).unwrap();
    assert!(serde_json::from_value::<ProofBundle>(v.clone()).is_ok());
    v["record"]["approved_by"] = "mallory".into();
    let err = serde_json::from_value::<ProofBundle>(v.clone()).unwrap_err();
    assert!(err.to_string().contains("approved_by"), "{err}");
    v["record"].as_object_mut().unwrap().remove("approved_by");
    v["note"] = "x".into();
    assert!(serde_json::from_value::<ProofBundle>(v).is_err());
    let mut e = serde_json::to_value(record(1)).unwrap();
    e["extra"] = 1.into();
    assert!(serde_json::from_value::<Evidence>(e).is_err());
}

/// Making the bundle generic changed neither its type for existing users
/// (`ProofBundle` is `ProofBundle<Evidence>`) nor a byte of its JSON.
#[test]
fn evidence_bundle_json_is_unchanged() {
    let bundle: ProofBundle = ProofBundle {
        record: record(1),
        leaf_index: 1,
        tree_size: 2,
        inclusion_proof: vec![STANDARD.encode([0u8; 32])],
        checkpoint: "o\n2\nr\n\n— o x\n".into(),
    };
    let want = concat!(
        r#"{"record":{"id":"01936f0e-8f3a-7cc2-9b1e-000000000001","leaf_index":1,"#,
        r#""content_type":"application/json","#,
        r#""sha256":"0000000000000000000000000000000000000000000000000000000000000001","#,
        r#""size":11,"labels":{"build":"1"},"ingested_at":"2026-11-23T11:30:00.123Z","#,
        r#""ingested_by":"sa:ci"},"leaf_index":1,"tree_size":2,"#,
        r#""inclusion_proof":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="],"#,
        r#""checkpoint":"o\n2\nr\n\n— o x\n"}"#
    );
    assert_eq!(serde_json::to_string(&bundle).unwrap(), want);
}
