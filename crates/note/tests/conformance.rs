//! Conformance with Go's `golang.org/x/mod/sumdb/note`, using the vectors of
//! its `note_test.go` stored in `testdata/conformance/note/go-sumdb-note.json`.

use std::path::{Path, PathBuf};

use evault_note::{
    Ed25519Signer, Ed25519Verifier, KeyError, Note, OpenError, Signature, Signer, Verifier,
    Verifiers, open, parse_verifier_key, sign,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Vectors {
    signer_key: String,
    verifier_key: String,
    other_verifier_key: String,
    text: String,
    signed_note_expected: String,
    two_signature_note: String,
    rejected_verifier_keys: Vec<String>,
}

fn vectors_path() -> PathBuf {
    // The in-repo copy, so that a fresh clone tests itself (testdata/README.md).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/conformance/note/go-sumdb-note.json")
}

fn vectors() -> Vectors {
    let path = vectors_path();
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "mandatory conformance vectors missing: cannot read {}: {e} \
             (it is committed in the repository: testdata/README.md)",
            path.display()
        )
    });
    serde_json::from_str(&data)
        .unwrap_or_else(|e| panic!("malformed conformance vectors {}: {e}", path.display()))
}

fn verifiers(keys: &[&str]) -> Verifiers {
    let mut v = Verifiers::new();
    for k in keys {
        v.insert(Ed25519Verifier::from_verifier_key(k).unwrap())
            .unwrap();
    }
    v
}

/// Every substring `key[i..j]` other than the whole key (Go's
/// `TestNewVerifier` / `TestNewSigner`).
fn proper_substrings(key: &str) -> Vec<&str> {
    let n = key.len();
    let mut out = Vec::new();
    for i in 0..=n {
        for j in i + 1..=n {
            if (i, j) != (0, n) {
                // The keys are ASCII, so every byte range is a str.
                out.push(key.get(i..j).expect("conformance keys are ASCII"));
            }
        }
    }
    out
}

/// The key with each byte in turn incremented by one (wrapping).
fn single_byte_increments(key: &str) -> Vec<String> {
    (0..key.len())
        .map(|i| {
            let mut b = key.as_bytes().to_vec();
            b[i] = b[i].wrapping_add(1);
            // Incrementing an ASCII byte other than 0x7f gives an ASCII
            // byte, so the mutant is still a str and can be passed to the
            // &str parsers; check that rather than silently skip.
            String::from_utf8(b).expect("incremented ASCII key is valid UTF-8")
        })
        .collect()
}

#[test]
fn vectors_file_is_present_and_complete() {
    let v = vectors();
    assert!(v.text.ends_with('\n'));
    assert_eq!(v.rejected_verifier_keys.len(), 2);
    assert!(v.signed_note_expected.starts_with(&v.text));
    assert!(v.two_signature_note.starts_with(&v.signed_note_expected));
}

#[test]
fn signing_reproduces_go_byte_for_byte() {
    let v = vectors();
    let signer = Ed25519Signer::from_signer_key(&v.signer_key).unwrap();
    let msg = sign(&v.text, &[&signer]).unwrap();
    assert_eq!(msg, v.signed_note_expected);
}

#[test]
fn keys_parse_and_agree() {
    let v = vectors();
    let signer = Ed25519Signer::from_signer_key(&v.signer_key).unwrap();
    let verifier = Ed25519Verifier::from_verifier_key(&v.verifier_key).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(verifier.name(), signer.name());
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(verifier.key_id(), signer.key_id());
    assert_eq!(signer.public_key(), verifier.public_key());
    assert_eq!(signer.verifier_key().as_str(), v.verifier_key);
    assert_eq!(verifier.verifier_key().as_str(), v.verifier_key);

    let other = Ed25519Verifier::from_verifier_key(&v.other_verifier_key).unwrap();
    assert_eq!(other.name(), "EnochRoot");
    assert_eq!(other.key_id(), 0xaf0cfe78);

    // The signer's signatures verify with the verifier.
    let sig = signer.sign(b"hi").unwrap();
    assert!(verifier.verify(b"hi", &sig));
    assert!(!other.verify(b"hi", &sig));
}

#[test]
fn every_proper_substring_of_the_verifier_key_is_rejected() {
    let v = vectors();
    let subs = proper_substrings(&v.verifier_key);
    assert_eq!(
        subs.len(),
        v.verifier_key.len() * (v.verifier_key.len() + 1) / 2 - 1
    );
    for s in subs {
        assert!(
            Ed25519Verifier::from_verifier_key(s).is_err(),
            "accepted verifier key substring {s:?}"
        );
        assert!(
            parse_verifier_key(s).is_err(),
            "parse_verifier_key accepted substring {s:?}"
        );
    }
}

#[test]
fn every_proper_substring_of_the_signer_key_is_rejected() {
    let v = vectors();
    let subs = proper_substrings(&v.signer_key);
    assert_eq!(
        subs.len(),
        v.signer_key.len() * (v.signer_key.len() + 1) / 2 - 1
    );
    for s in subs {
        assert!(
            Ed25519Signer::from_signer_key(s).is_err(),
            "accepted signer key substring {s:?}"
        );
    }
}

#[test]
fn every_single_byte_increment_of_the_verifier_key_is_rejected() {
    let v = vectors();
    let mutants = single_byte_increments(&v.verifier_key);
    assert_eq!(mutants.len(), v.verifier_key.len());
    for m in mutants {
        assert!(
            Ed25519Verifier::from_verifier_key(&m).is_err(),
            "accepted mutated verifier key {m:?}"
        );
    }
}

#[test]
fn every_single_byte_increment_of_the_signer_key_is_rejected() {
    let v = vectors();
    let mutants = single_byte_increments(&v.signer_key);
    assert_eq!(mutants.len(), v.signer_key.len());
    for m in mutants {
        assert!(
            Ed25519Signer::from_signer_key(&m).is_err(),
            "accepted mutated signer key {m:?}"
        );
    }
}

#[test]
fn listed_bad_verifier_keys_are_rejected() {
    let v = vectors();
    for k in &v.rejected_verifier_keys {
        let err = Ed25519Verifier::from_verifier_key(k).unwrap_err();
        // Wrong key length (whose base64 also has non-zero pad bits, which
        // the canonical decoder rejects first) and unknown algorithm.
        assert!(
            matches!(
                err,
                KeyError::InvalidBase64
                    | KeyError::WrongKeyLength { .. }
                    | KeyError::UnsupportedAlgorithm { .. }
            ),
            "{k}: unexpected error {err:?}"
        );
    }
    assert_eq!(
        Ed25519Verifier::from_verifier_key(&v.rejected_verifier_keys[1]).unwrap_err(),
        KeyError::UnsupportedAlgorithm {
            found: 0x65,
            expected: 0x01
        }
    );
}

fn peter_sig(v: &Vectors) -> Signature {
    let line = v.signed_note_expected.lines().last().unwrap();
    let b64 = line.rsplit(' ').next().unwrap();
    Signature {
        name: "PeterNeumann".into(),
        key_id: 0xc74f20a3,
        base64: b64.into(),
    }
}

fn enoch_sig(v: &Vectors) -> Signature {
    let line = v.two_signature_note.lines().last().unwrap();
    let b64 = line.rsplit(' ').next().unwrap();
    Signature {
        name: "EnochRoot".into(),
        key_id: 0xaf0cfe78,
        base64: b64.into(),
    }
}

#[test]
fn signed_note_opens() {
    let v = vectors();
    let n = open(
        v.signed_note_expected.as_bytes(),
        &verifiers(&[&v.verifier_key]),
    )
    .unwrap();
    assert_eq!(n.text, v.text);
    assert_eq!(n.verified, vec![peter_sig(&v)]);
    assert!(n.unverified.is_empty());
}

#[test]
fn two_signature_note_with_peter_known() {
    let v = vectors();
    let n = open(
        v.two_signature_note.as_bytes(),
        &verifiers(&[&v.verifier_key]),
    )
    .unwrap();
    assert_eq!(n.text, v.text);
    assert_eq!(n.verified, vec![peter_sig(&v)]);
    assert_eq!(n.unverified, vec![enoch_sig(&v)]);
}

#[test]
fn two_signature_note_with_enoch_known() {
    let v = vectors();
    let n = open(
        v.two_signature_note.as_bytes(),
        &verifiers(&[&v.other_verifier_key]),
    )
    .unwrap();
    assert_eq!(n.text, v.text);
    assert_eq!(n.verified, vec![enoch_sig(&v)]);
    assert_eq!(n.unverified, vec![peter_sig(&v)]);
}

#[test]
fn two_signature_note_with_both_known() {
    let v = vectors();
    let n = open(
        v.two_signature_note.as_bytes(),
        &verifiers(&[&v.verifier_key, &v.other_verifier_key]),
    )
    .unwrap();
    assert_eq!(n.verified, vec![peter_sig(&v), enoch_sig(&v)]);
    assert!(n.unverified.is_empty());
}

#[test]
fn two_signature_note_with_no_known_verifier() {
    let v = vectors();
    let err = open(v.two_signature_note.as_bytes(), &Verifiers::new()).unwrap_err();
    assert_eq!(err.to_string(), "note has no verifiable signatures");
    assert_eq!(
        err,
        OpenError::Unverified(Box::new(Note {
            text: v.text.clone(),
            verified: vec![],
            unverified: vec![peter_sig(&v), enoch_sig(&v)],
        }))
    );
}

#[test]
fn tampered_text_fails() {
    let v = vectors();
    let known = verifiers(&[&v.verifier_key, &v.other_verifier_key]);
    let tampered = v.two_signature_note.replacen("problem,", "problem;", 1);
    assert_ne!(tampered, v.two_signature_note);
    assert_eq!(
        open(tampered.as_bytes(), &known),
        Err(OpenError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );
    // Tampering is caught by either known key alone.
    let enoch_only = verifiers(&[&v.other_verifier_key]);
    assert_eq!(
        open(tampered.as_bytes(), &enoch_only),
        Err(OpenError::InvalidSignature {
            name: "EnochRoot".into(),
            key_id: 0xaf0cfe78
        })
    );
    // Without the blank line there is no signature block.
    let merged = v.signed_note_expected.replacen("is.\n\n", "is.\n", 1);
    assert_eq!(
        open(merged.as_bytes(), &known),
        Err(OpenError::MissingSignatureBlock)
    );
}

#[test]
fn tampered_signature_fails() {
    let v = vectors();
    let known = verifiers(&[&v.verifier_key]);
    // Go's "Invalid signature" case: 4 base64 characters inserted.
    let sig_line_start = v.text.len() + 1;
    let at = sig_line_start + 60;
    let tampered = format!(
        "{}ABCD{}",
        &v.signed_note_expected[..at],
        &v.signed_note_expected[at..]
    );
    assert_eq!(
        open(tampered.as_bytes(), &known),
        Err(OpenError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );
}
