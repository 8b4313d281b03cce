//! ML-DSA-44 checkpoint cosignatures (C2SP tlog-cosignature, type `0x06`):
//! interoperability with another implementation, FIPS 204 known answers, and
//! the refusals.
//!
//! Vectors, in `testdata/vectors/ml-dsa-44/` (origins and licences in
//! `testdata/README.md`):
//! - `torchwood-vkey.txt`, `torchwood-checkpoint.txt`: the ML-DSA-44 log key
//!   and a checkpoint it signed, from Filippo Valsorda's torchwood
//!   (`cmd/litewitness/testdata/mldsa.txt`), which implements the
//!   specification in Go;
//! - `acvp-internal.json`: NIST ACVP ML-DSA-44 keyGen, sigGen and sigVer
//!   cases (FIPS 204 internal interface).

use std::path::PathBuf;

use evault_note::{
    Checkpoint, Ed25519Signer, KeyError, MlDsaCosignatureVerifier, MlDsaCosigner, OpenError,
    SignError, Signer, Verifier, Verifiers, generate_mldsa44, mldsa_cosignature_message, open,
    sign, sign_note, verifier_for,
};
use serde::Deserialize;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/ml-dsa-44")
}

fn read(name: &str) -> String {
    let path = vectors_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "mandatory vectors missing: cannot read {}: {e} (committed in the repository)",
            path.display()
        )
    })
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const CHECKPOINT: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn cosigner() -> MlDsaCosigner {
    MlDsaCosigner::from_seed("witness.example.com/pq", &[7u8; 32]).unwrap()
}

// ---- interoperability -------------------------------------------------

#[test]
fn opens_a_checkpoint_signed_by_torchwood() {
    let vkey = read("torchwood-vkey.txt");
    let vkey = vkey.trim_end();
    let note = read("torchwood-checkpoint.txt");

    let verifier = MlDsaCosignatureVerifier::from_verifier_key(vkey).unwrap();
    assert_eq!(verifier.name(), "example.com/mldsa-log");
    assert_eq!(verifier.key_id(), 0xb5df45c5);
    assert_eq!(
        verifier.verifier_key().as_str(),
        vkey,
        "re-encodes the same text"
    );

    let known = Verifiers::new().with(verifier.clone()).unwrap();
    let opened = open(note.as_bytes(), &known).unwrap();
    assert_eq!(opened.verified.len(), 1);
    let cp = Checkpoint::parse(&opened.text).unwrap();
    assert_eq!(cp.origin, "example.com/mldsa-log");
    assert_eq!(cp.size, 1);

    // The log signs with timestamp 0: no statement about time.
    let sig = base64_sig(&note);
    assert_eq!(
        verifier.verify_timestamp(opened.text.as_bytes(), &sig[4..]),
        Some(0)
    );

    // verifier_for knows the type.
    let boxed = verifier_for(vkey).unwrap();
    assert!(boxed.verify(opened.text.as_bytes(), &sig[4..]));

    // Any other size, root or origin fails.
    for other in [
        opened.text.replacen("\n1\n", "\n2\n", 1),
        opened.text.replacen("+zo", "+zp", 1),
        opened.text.replacen("mldsa-log", "mldsa-lug", 1),
    ] {
        assert!(!verifier.verify(other.as_bytes(), &sig[4..]), "{other:?}");
    }
}

/// The signature bytes (key ID first) of the only signature line.
fn base64_sig(note: &str) -> Vec<u8> {
    use base64::Engine as _;
    let line = note.lines().last().unwrap();
    let b64 = line.rsplit(' ').next().unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

// ---- FIPS 204 known answers (NIST ACVP) -------------------------------

#[derive(Deserialize)]
struct Acvp {
    #[serde(rename = "keyGen")]
    key_gen: Vec<KeyGen>,
    #[serde(rename = "sigGen")]
    sig_gen: Vec<SigGen>,
    #[serde(rename = "sigVer")]
    sig_ver: Vec<SigVer>,
}

#[derive(Deserialize)]
struct KeyGen {
    #[serde(rename = "tcId")]
    tc_id: u32,
    seed: String,
    pk: String,
}

#[derive(Deserialize)]
struct SigGen {
    #[serde(rename = "tcId")]
    tc_id: u32,
    sk: String,
    message: String,
    rnd: Option<String>,
    signature: String,
}

#[derive(Deserialize)]
struct SigVer {
    #[serde(rename = "tcId")]
    tc_id: u32,
    pk: String,
    message: String,
    signature: String,
    #[serde(rename = "testPassed")]
    test_passed: bool,
}

fn acvp() -> Acvp {
    serde_json::from_str(&read("acvp-internal.json")).expect("acvp-internal.json parses")
}

#[test]
fn acvp_key_generation_gives_the_known_public_keys() {
    let v = acvp();
    assert_eq!(v.key_gen.len(), 10);
    for case in &v.key_gen {
        let seed: [u8; 32] = hex(&case.seed).try_into().unwrap();
        let signer = MlDsaCosigner::from_seed("acvp.example/keygen", &seed).unwrap();
        assert_eq!(
            signer.public_key(),
            hex(&case.pk),
            "keyGen tcId {}",
            case.tc_id
        );
    }
}

#[test]
#[allow(deprecated)] // ACVP gives expanded keys; the seed form is what evault stores.
fn acvp_signatures_match_the_known_answers() {
    use ml_dsa::{ExpandedSigningKey, ExpandedSigningKeyBytes, MlDsa44};
    let v = acvp();
    assert_eq!(v.sig_gen.len(), 20);
    for case in &v.sig_gen {
        let sk = ExpandedSigningKeyBytes::<MlDsa44>::try_from(hex(&case.sk).as_slice()).unwrap();
        let key = ExpandedSigningKey::<MlDsa44>::from_expanded(&sk);
        let rnd: [u8; 32] = match &case.rnd {
            Some(r) => hex(r).try_into().unwrap(),
            None => [0; 32], // the deterministic variant
        };
        let sig = key.sign_internal(&[&hex(&case.message)], &rnd.into());
        assert_eq!(
            sig.encode().to_vec(),
            hex(&case.signature),
            "sigGen tcId {}",
            case.tc_id
        );
    }
}

#[test]
fn acvp_verification_accepts_and_refuses_as_known() {
    use ml_dsa::{EncodedVerifyingKey, MlDsa44, Signature, VerifyingKey};
    let v = acvp();
    assert_eq!(v.sig_ver.len(), 15);
    let mut refused = 0;
    for case in &v.sig_ver {
        let pk = EncodedVerifyingKey::<MlDsa44>::try_from(hex(&case.pk).as_slice()).unwrap();
        let key = VerifyingKey::<MlDsa44>::decode(&pk);
        let ok = Signature::<MlDsa44>::try_from(hex(&case.signature).as_slice())
            .is_ok_and(|sig| key.verify_internal(&hex(&case.message), &sig));
        assert_eq!(ok, case.test_passed, "sigVer tcId {}", case.tc_id);
        refused += usize::from(!ok);
    }
    assert_eq!(refused, 12);
}

// ---- the signed message -------------------------------------------------

#[test]
fn signed_message_layout() {
    let cp = Checkpoint::parse(CHECKPOINT).unwrap();
    let got = mldsa_cosignature_message("witness.example.com/pq", 1679315147, &cp).unwrap();
    let mut want = b"subtree/v1\n\0".to_vec();
    want.push(22);
    want.extend_from_slice(b"witness.example.com/pq");
    want.extend_from_slice(&1679315147u64.to_be_bytes());
    want.push(27);
    want.extend_from_slice(b"example.com/behind-the-sofa");
    want.extend_from_slice(&0u64.to_be_bytes());
    want.extend_from_slice(&20852163u64.to_be_bytes());
    want.extend_from_slice(&cp.root_hash);
    assert_eq!(got, want);
}

#[test]
fn message_refuses_what_it_cannot_encode() {
    let mut cp = Checkpoint::parse(CHECKPOINT).unwrap();
    assert!(matches!(
        mldsa_cosignature_message("w", 1 << 63, &cp),
        Err(SignError::TimestampOutOfRange { .. })
    ));
    assert!(matches!(
        mldsa_cosignature_message("", 0, &cp),
        Err(SignError::InvalidSignerName { .. })
    ));
    assert!(matches!(
        mldsa_cosignature_message(&"n".repeat(256), 0, &cp),
        Err(SignError::InvalidSignerName { .. })
    ));
    cp.origin = "o".repeat(256);
    let e = mldsa_cosignature_message("w", 0, &cp).unwrap_err();
    assert!(matches!(e, SignError::OriginTooLong { len: 256, max: 255 }));
    assert_eq!(
        e.to_string(),
        "checkpoint origin is 256 bytes; an ML-DSA-44 cosignature allows at most 255"
    );
    cp.origin = "o".repeat(255);
    assert!(mldsa_cosignature_message("w", 0, &cp).is_ok());
}

// ---- signing and verifying ----------------------------------------------

#[test]
fn signs_and_verifies_with_a_timestamp() {
    let c = cosigner();
    let sig = c.sign_at(CHECKPOINT.as_bytes(), 1679315147).unwrap();
    assert_eq!(sig.len(), 8 + 2420);
    assert_eq!(&sig[..8], &1679315147u64.to_be_bytes());
    let v = c.verifier();
    assert_eq!(
        v.verify_timestamp(CHECKPOINT.as_bytes(), &sig),
        Some(1679315147)
    );
    // Hedged: two signatures of the same message differ, and both verify.
    let again = c.sign_at(CHECKPOINT.as_bytes(), 1679315147).unwrap();
    assert_ne!(sig, again);
    assert!(v.verify(CHECKPOINT.as_bytes(), &again));

    // A changed timestamp, signature byte or length is refused.
    let mut bad = sig.clone();
    bad[7] ^= 1;
    assert!(!v.verify(CHECKPOINT.as_bytes(), &bad));
    let mut bad = sig.clone();
    bad[100] ^= 1;
    assert!(!v.verify(CHECKPOINT.as_bytes(), &bad));
    assert!(!v.verify(CHECKPOINT.as_bytes(), &sig[..sig.len() - 1]));
    let mut long = sig.clone();
    long.push(0);
    assert!(!v.verify(CHECKPOINT.as_bytes(), &long));
    assert!(!v.verify(CHECKPOINT.as_bytes(), &[]));
    // A timestamp above 2^63 - 1 is refused before any verification.
    let mut high = sig.clone();
    high[0] = 0x80;
    assert_eq!(v.verify_timestamp(CHECKPOINT.as_bytes(), &high), None);
}

#[test]
fn the_message_commits_to_the_cosigner_name() {
    // Unlike Ed25519 cosignature/v1, the same key under another name does
    // not verify.
    let c = cosigner();
    let sig = c.sign_at(CHECKPOINT.as_bytes(), 5).unwrap();
    let renamed =
        MlDsaCosignatureVerifier::from_public_key("other.example/pq", &c.public_key()).unwrap();
    assert!(!renamed.verify(CHECKPOINT.as_bytes(), &sig));
    assert!(c.verifier().verify(CHECKPOINT.as_bytes(), &sig));
}

#[test]
fn extension_lines_are_not_signed() {
    let c = cosigner().with_fixed_timestamp(0);
    let sig = c.sign(CHECKPOINT.as_bytes()).unwrap();
    assert_eq!(&sig[..8], &[0; 8]);
    let extended = format!("{CHECKPOINT}an extension line\n");
    assert!(c.verifier().verify(extended.as_bytes(), &sig));
}

#[test]
fn refuses_to_sign_or_verify_what_is_not_a_checkpoint() {
    let c = cosigner();
    for text in ["hello\n", "o\n01\nAAAA\n", "\u{80}"] {
        assert!(
            matches!(c.sign(text.as_bytes()), Err(SignError::NotACheckpoint(_))),
            "{text:?}"
        );
    }
    let invalid_utf8 = [0xffu8, b'\n'];
    assert!(matches!(
        c.sign(&invalid_utf8),
        Err(SignError::NotACheckpoint(_))
    ));
    let sig = c.sign_at(CHECKPOINT.as_bytes(), 1).unwrap();
    assert!(!c.verifier().verify(b"hello\n", &sig));
    assert!(matches!(
        c.sign_at(CHECKPOINT.as_bytes(), 1 << 63),
        Err(SignError::TimestampOutOfRange { .. })
    ));
}

#[test]
fn current_time_is_used_unless_fixed() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let c = cosigner();
    let sig = c.sign(CHECKPOINT.as_bytes()).unwrap();
    let t = c
        .verifier()
        .verify_timestamp(CHECKPOINT.as_bytes(), &sig)
        .unwrap();
    assert!(t >= before, "{t} < {before}");
    let fixed = cosigner().with_fixed_timestamp(42);
    let sig = fixed.sign(CHECKPOINT.as_bytes()).unwrap();
    assert_eq!(
        fixed
            .verifier()
            .verify_timestamp(CHECKPOINT.as_bytes(), &sig),
        Some(42)
    );
}

// ---- beside Ed25519 in one note ----------------------------------------

#[test]
fn a_dual_signed_checkpoint_opens_for_old_and_new_verifiers() {
    let ed = Ed25519Signer::from_seed("example.com/behind-the-sofa", &[1u8; 32]).unwrap();
    let pq = MlDsaCosigner::from_seed("example.com/behind-the-sofa", &[2u8; 32])
        .unwrap()
        .with_fixed_timestamp(0);
    let note = sign(CHECKPOINT, &[&ed, &pq]).unwrap();
    assert_eq!(note.lines().filter(|l| l.starts_with("— ")).count(), 2);

    // An Ed25519-only verifier (Go's sumdb/note rules) skips the unknown
    // ML-DSA line and accepts the note.
    let old = Verifiers::new().with(ed.verifier()).unwrap();
    let opened = open(note.as_bytes(), &old).unwrap();
    assert_eq!(opened.verified.len(), 1);
    assert_eq!(opened.unverified.len(), 1);
    assert_eq!(opened.unverified[0].key_id, pq.key_id());

    // A post-quantum-only verifier does the reverse.
    let new = Verifiers::new().with(pq.verifier()).unwrap();
    let opened = open(note.as_bytes(), &new).unwrap();
    assert_eq!(opened.verified[0].key_id, pq.key_id());

    // Both: both verified.
    let mut both = Verifiers::new();
    both.insert_boxed(verifier_for(ed.verifier_key().as_str()).unwrap())
        .unwrap();
    both.insert_boxed(verifier_for(pq.verifier_key().as_str()).unwrap())
        .unwrap();
    let opened_both = open(note.as_bytes(), &both).unwrap();
    assert_eq!(opened_both.verified.len(), 2);

    // The same log name and seed give different key IDs per type.
    assert_ne!(ed.key_id(), pq.key_id());

    // A broken ML-DSA signature by a known key rejects the whole note.
    let tampered = tamper_last_signature(&note);
    assert!(matches!(
        open(tampered.as_bytes(), &new),
        Err(OpenError::InvalidSignature { .. })
    ));

    // A cosignature can be added to an already signed note.
    let witness = cosigner();
    let cosigned = sign_note(&opened_both, &[&witness]).unwrap();
    let all = Verifiers::new()
        .with(ed.verifier())
        .unwrap()
        .with(pq.verifier())
        .unwrap()
        .with(witness.verifier())
        .unwrap();
    assert_eq!(open(cosigned.as_bytes(), &all).unwrap().verified.len(), 3);
}

/// Flips one bit in the middle of the last signature's ML-DSA bytes.
fn tamper_last_signature(note: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (head, last) = note.trim_end().rsplit_once('\n').unwrap();
    let (prefix, sig) = last.rsplit_once(' ').unwrap();
    let mut raw = b64.decode(sig).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 1;
    format!("{head}\n{prefix} {}\n", b64.encode(raw))
}

// ---- keys ----------------------------------------------------------------

#[test]
fn generated_keys_round_trip() {
    let (skey, vkey) = generate_mldsa44("example.com/pq-log").unwrap();
    let signer = MlDsaCosigner::from_signer_key(skey.expose_secret()).unwrap();
    assert_eq!(signer.verifier_key(), vkey);
    assert!(vkey.as_str().starts_with("example.com/pq-log+"));
    let verifier = MlDsaCosignatureVerifier::from_verifier_key(vkey.as_str()).unwrap();
    let sig = signer.sign(CHECKPOINT.as_bytes()).unwrap();
    assert!(verifier.verify(CHECKPOINT.as_bytes(), &sig));
    // The secret is never printed.
    let dbg = format!("{signer:?} {skey:?}");
    assert!(!dbg.contains(skey.expose_secret()), "{dbg}");
    assert!(dbg.contains("MlDsaCosigner"));
    assert!(format!("{verifier:?}").contains("example.com/pq-log"));
}

#[test]
fn key_texts_are_checked() {
    let (skey, vkey) = generate_mldsa44("example.com/pq-log").unwrap();
    let s = skey.expose_secret();
    // Another name keeps the seed but not the key ID.
    let renamed = s.replacen("example.com/pq-log", "example.com/pq-lug", 1);
    assert!(matches!(
        MlDsaCosigner::from_signer_key(&renamed),
        Err(KeyError::KeyIdMismatch { .. })
    ));
    assert!(matches!(
        MlDsaCosigner::from_signer_key(s.strip_prefix("PRIVATE+KEY+").unwrap()),
        Err(KeyError::MissingPrivateKeyPrefix)
    ));
    // An Ed25519 signer key is not an ML-DSA one, and the reverse.
    let (ed_skey, ed_vkey) = evault_note::generate_ed25519("example.com/log").unwrap();
    assert!(matches!(
        MlDsaCosigner::from_signer_key(ed_skey.expose_secret()),
        Err(KeyError::UnsupportedAlgorithm {
            found: 0x01,
            expected: 0x06
        })
    ));
    assert!(matches!(
        MlDsaCosignatureVerifier::from_verifier_key(ed_vkey.as_str()),
        Err(KeyError::UnsupportedAlgorithm {
            found: 0x01,
            expected: 0x06
        })
    ));
    assert!(matches!(
        Ed25519Signer::from_signer_key(s),
        Err(KeyError::UnsupportedAlgorithm { .. })
    ));
    // A short key is refused with its length.
    let short = evault_note::key::VerifierKeyText::new("example.com/x", 0x06, &[1; 1311]).unwrap();
    assert!(matches!(
        MlDsaCosignatureVerifier::from_verifier_key(short.as_str()),
        Err(KeyError::WrongKeyLength {
            expected: 1312,
            found: 1311
        })
    ));
    assert!(matches!(
        verifier_for(short.as_str()),
        Err(KeyError::WrongKeyLength { .. })
    ));
    // A seed of the wrong length.
    let seed33 = evault_note::key::VerifierKeyText::new("example.com/x", 0x06, &[1; 33]).unwrap();
    let skey33 = format!("PRIVATE+KEY+{}", seed33.as_str());
    assert!(matches!(
        MlDsaCosigner::from_signer_key(&skey33),
        Err(KeyError::WrongKeyLength {
            expected: 32,
            found: 33
        })
    ));
    // Names the message cannot carry.
    assert!(matches!(
        MlDsaCosigner::from_seed(&"n".repeat(256), &[0; 32]),
        Err(KeyError::InvalidName)
    ));
    assert!(matches!(
        generate_mldsa44("bad name"),
        Err(KeyError::InvalidName)
    ));
    assert!(matches!(
        MlDsaCosignatureVerifier::from_public_key("", &[0; 1312]),
        Err(KeyError::InvalidName)
    ));
    // The verifier key round-trips through its text.
    let v = MlDsaCosignatureVerifier::from_verifier_key(vkey.as_str()).unwrap();
    assert_eq!(v.verifier_key(), vkey);
    assert_eq!(v.public_key().len(), 1312);
}
