//! Every case of `testdata/sigstore/` (from sigstore-conformance) through
//! [`evault_sigstore::verify`], and the policies over their outcomes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use evault_sigstore::{Outcome, Policy, Status, TrustRoots, is_sigstore_bundle, verify};

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore")
}

/// The case's own trusted root when it has one, else the production root
/// alone (so a bundle of another instance cannot verify).
fn roots(case: &str) -> TrustRoots {
    let own = testdata().join(case).join("trusted_root.json");
    let path = if own.exists() {
        own
    } else {
        testdata().join("trusted_root.json")
    };
    TrustRoots::load(&[path]).expect("trusted root")
}

fn run(case: &str) -> Outcome {
    let dir = testdata().join(case);
    let bundle = std::fs::read(dir.join("bundle.sigstore.json"))
        .unwrap_or_else(|e| panic!("{case}: testdata missing ({e}); see testdata/README.md"));
    let media: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let ct = media["mediaType"].as_str().unwrap();
    assert!(is_sigstore_bundle(ct), "{case}: {ct}");
    let artifact = std::fs::read(dir.join("artifact"))
        .or_else(|_| std::fs::read(testdata().join("a.txt")))
        .unwrap();
    let digest: [u8; 32] = sha2_digest(&artifact);
    verify(ct, &bundle, Some(digest), &roots(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Each committed case: its status and a substring of its reason.
const CASES: &[(&str, Status, &str)] = &[
    ("happy-path-v0.1", Status::Verified, ""),
    ("happy-path-v0.2", Status::Verified, ""),
    ("happy-path-v0.3", Status::Verified, ""),
    ("happy-path-v0.3-new-mediaType", Status::Verified, ""),
    ("happy-path-intoto-in-dsse-v3", Status::Verified, ""),
    ("rekor2-happy-path", Status::Verified, ""),
    ("rekor2-dsse-happy-path", Status::Verified, ""),
    (
        "inclusion-proof-corrupted-hash_fail",
        Status::Failed,
        "invalid inclusion proof",
    ),
    (
        "invalid-inclusion-proof_fail",
        Status::Failed,
        "inclusion proof has no checkpoint",
    ),
    (
        "checkpoint-wrong-roothash_fail",
        Status::Failed,
        "inclusion proof root hash does not match checkpoint root hash",
    ),
    (
        "rekor2-no-timestamp_fail",
        Status::Failed,
        "no verified timestamp",
    ),
    (
        "intoto-expired-certificate_fail",
        Status::Failed,
        "CertNotValidYet",
    ),
    (
        "signature-mismatch_fail",
        Status::Failed,
        "signature invalid",
    ),
    (
        "bundle-from-wrong-instance_fail",
        Status::Failed,
        "No log key valid",
    ),
];

#[test]
fn every_committed_case_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(testdata())
        .expect("testdata/sigstore is missing; see testdata/README.md")
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.0.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn each_case_verifies_or_fails_as_expected() {
    for &(case, status, reason) in CASES {
        let o = run(case);
        assert_eq!(o.status, status, "{case}: {:?}", o.reason);
        assert_eq!(
            case.ends_with("_fail"),
            status != Status::Verified,
            "{case}"
        );
        let tlog = o
            .tlog
            .as_deref()
            .unwrap_or_else(|| panic!("{case}: no tlog"));
        assert!(
            tlog.starts_with(if case.starts_with("rekor2") {
                "rekor-v2:"
            } else {
                "rekor-v1:"
            }),
            "{case}: {tlog}"
        );
        assert!(o.artifact.is_some(), "{case}");
        if status == Status::Verified {
            assert_eq!(o.reason, None, "{case}");
            assert_eq!(o.identity.as_deref(), Some(IDENTITY), "{case}");
            assert_eq!(o.issuer.as_deref(), Some(ISSUER), "{case}");
            assert!(o.time.is_some() && o.root.is_some(), "{case}");
            let labels = o.labels(256);
            assert_eq!(labels["evault.sigstore.status"], "verified");
            assert_eq!(labels["evault.sigstore.san"], IDENTITY);
        } else {
            let why = o.reason.as_deref().unwrap();
            assert!(why.contains(reason), "{case}: {why}");
            // An unverified certificate's claims are never reported.
            assert_eq!(
                (&o.identity, &o.issuer, &o.workflow, &o.repository, &o.time),
                (&None, &None, &None, &None, &None),
                "{case}"
            );
            let labels = o.labels(256);
            assert_eq!(labels["evault.sigstore.status"], "failed");
            assert!(!labels.contains_key("evault.sigstore.san"), "{case}");
        }
    }
}

#[test]
fn the_bundles_own_digest_is_used_when_none_is_given() {
    for case in [
        "happy-path-v0.3",
        "happy-path-intoto-in-dsse-v3",
        "rekor2-dsse-happy-path",
    ] {
        let bundle = std::fs::read(testdata().join(case).join("bundle.sigstore.json")).unwrap();
        let o = verify(
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            &bundle,
            None,
            &roots(case),
        )
        .unwrap();
        assert_eq!(o.status, Status::Verified, "{case}: {:?}", o.reason);
        assert_eq!(
            o.artifact,
            Some(sha2_digest(
                &std::fs::read(testdata().join("a.txt")).unwrap()
            ))
        );
    }
}

#[test]
fn another_artifact_digest_fails() {
    let bundle = std::fs::read(testdata().join("happy-path-v0.3/bundle.sigstore.json")).unwrap();
    let o = verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &bundle,
        Some([7; 32]),
        &roots("happy-path-v0.3"),
    )
    .unwrap();
    assert_eq!(o.status, Status::Failed);
    assert!(o.reason.unwrap().starts_with(&format!(
        "the artifact digest given (sha256:{}) is not the one the bundle signs",
        "07".repeat(32)
    )));
}

#[test]
fn no_root_is_unverifiable() {
    let bundle = std::fs::read(testdata().join("happy-path-v0.3/bundle.sigstore.json")).unwrap();
    let o = verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &bundle,
        None,
        &TrustRoots::none(),
    )
    .unwrap();
    assert_eq!(o.status, Status::Unverifiable);
    assert_eq!(
        o.reason.as_deref(),
        Some("no Sigstore trusted root is configured")
    );
    assert_eq!(o.identity, None);
}

#[test]
fn content_type_and_media_type_must_agree() {
    let v01 = std::fs::read(testdata().join("happy-path-v0.1/bundle.sigstore.json")).unwrap();
    let roots = roots("happy-path-v0.1");
    let e = verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &v01,
        None,
        &roots,
    )
    .unwrap_err();
    assert!(e.contains("declares bundle version 0.3"), "{e}");
    // Case-insensitive essence, the version parameter decides.
    let o = verify(
        "Application/Vnd.Dev.Sigstore.Bundle+JSON; version=0.1",
        &v01,
        None,
        &roots,
    )
    .unwrap();
    assert_eq!(o.status, Status::Verified);
    let e = verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        b"{\"x\":1}",
        None,
        &roots,
    )
    .unwrap_err();
    assert!(e.starts_with("not a Sigstore bundle"), "{e}");
}

#[test]
fn with_several_roots_the_staging_bundle_verifies_unless_a_policy_pins_the_root() {
    // The wrong-instance bundle is a valid staging bundle: trusting staging
    // as well as production makes it verify, by the staging root; an
    // identity policy alone then accepts it, one pinned to production not.
    let dir = testdata();
    let roots = TrustRoots::load_named(&[
        ("production".into(), dir.join("trusted_root.json")),
        (
            "staging".into(),
            dir.join("rekor2-happy-path/trusted_root.json"),
        ),
    ])
    .unwrap();
    let bundle =
        std::fs::read(dir.join("bundle-from-wrong-instance_fail/bundle.sigstore.json")).unwrap();
    let o = verify(
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        &bundle,
        Some(sha2_digest(&std::fs::read(dir.join("a.txt")).unwrap())),
        &roots,
    )
    .unwrap();
    assert_eq!(o.status, Status::Verified, "{:?}", o.reason);
    assert_eq!(o.root.as_deref(), Some("staging"));
    let labels = BTreeMap::new();
    let identity = Policy {
        name: "release".into(),
        identity: Some(IDENTITY.into()),
        ..Policy::default()
    };
    identity.check(&o, &labels).unwrap();
    let pinned = Policy {
        roots: vec!["production".into()],
        ..identity
    };
    pinned.validate().unwrap();
    assert_eq!(
        pinned.check(&o, &labels).unwrap_err(),
        "sigstore policy `release`: requires a bundle verified under root production, \
         it verified under staging"
    );
    // A production bundle passes it.
    let prod = verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &std::fs::read(dir.join("happy-path-v0.3/bundle.sigstore.json")).unwrap(),
        None,
        &roots,
    )
    .unwrap();
    assert_eq!(prod.root.as_deref(), Some("production"));
    pinned.check(&prod, &labels).unwrap();
}

#[test]
fn roots_are_named_by_file_stem_and_names_are_distinct() {
    let dir = testdata();
    let roots = TrustRoots::load(&[dir.join("trusted_root.json")]).unwrap();
    assert_eq!(roots.names().collect::<Vec<_>>(), ["trusted_root"]);
    let e = TrustRoots::load(&[
        dir.join("trusted_root.json"),
        dir.join("rekor2-happy-path/trusted_root.json"),
    ])
    .unwrap_err();
    assert!(e.contains("two roots are named \"trusted_root\""), "{e}");
    // The path stays out of the public label.
    let o = verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &std::fs::read(dir.join("happy-path-v0.3/bundle.sigstore.json")).unwrap(),
        None,
        &roots,
    )
    .unwrap();
    assert_eq!(o.root.as_deref(), Some("trusted_root"));
}

fn happy_v03() -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(testdata().join("happy-path-v0.3/bundle.sigstore.json")).unwrap(),
    )
    .unwrap()
}

fn verify_json(bundle: &serde_json::Value) -> Result<Outcome, String> {
    verify(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &serde_json::to_vec(bundle).unwrap(),
        None,
        &roots("happy-path-v0.3"),
    )
}

#[test]
fn a_wrong_length_message_digest_fails() {
    let mut b = happy_v03();
    // 31 bytes of SHA2_256 digest.
    b["messageSignature"]["messageDigest"]["digest"] =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==".into();
    let o = verify_json(&b).unwrap();
    assert_eq!(o.status, Status::Failed);
    assert_eq!(
        o.reason.as_deref(),
        Some("the bundle's SHA2_256 messageDigest is 31 bytes, not 32")
    );
    assert_eq!(o.identity, None);
}

#[test]
fn managed_key_bundles_are_unverifiable() {
    let mut b = happy_v03();
    let vm = b["verificationMaterial"].as_object_mut().unwrap();
    vm.remove("certificate");
    vm.insert("publicKey".into(), serde_json::json!({"hint": "a-key"}));
    let o = verify_json(&b).unwrap();
    assert_eq!(o.status, Status::Unverifiable);
    assert_eq!(o.reason.as_deref(), Some(evault_sigstore::MANAGED_KEY));
    assert_eq!(o.identity, None);
}

#[test]
fn unknown_bundle_versions_are_refused() {
    let bundle = std::fs::read(testdata().join("happy-path-v0.3/bundle.sigstore.json")).unwrap();
    for ct in [
        "application/vnd.dev.sigstore.bundle.v0.4+json",
        "application/vnd.dev.sigstore.bundle+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.4",
    ] {
        assert!(is_sigstore_bundle(ct), "{ct}");
        let e = verify(ct, &bundle, None, &roots("happy-path-v0.3")).unwrap_err();
        assert!(e.contains(ct), "{ct}: {e}");
    }
}

fn policy(f: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = Policy {
        name: "release".into(),
        labels: BTreeMap::from([("kind".into(), "release".into())]),
        ..Policy::default()
    };
    f(&mut p);
    p.validate().unwrap();
    p
}

#[test]
fn policies_over_the_cases() {
    let release = BTreeMap::from([("kind".to_string(), "release".to_string())]);
    let other = BTreeMap::from([("kind".to_string(), "nightly".to_string())]);
    let happy = run("happy-path-v0.3");
    let exact = policy(|p| {
        p.identity = Some(IDENTITY.into());
        p.issuer = Some(ISSUER.into());
    });
    exact.check(&happy, &release).unwrap();
    let prefix =
        policy(|p| p.identity_prefix = Some("https://github.com/sigstore-conformance/".into()));
    prefix.check(&happy, &release).unwrap();

    // Wrong identity: a happy path under a policy naming someone else.
    let wrong = policy(|p| {
        p.identity =
            Some("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main".into())
    });
    assert_eq!(
        wrong.check(&happy, &release).unwrap_err(),
        format!(
            "sigstore policy `release`: requires identity https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main, the certificate names {IDENTITY}"
        )
    );
    // The selector decides whether it applies at all.
    wrong.check(&happy, &other).unwrap();
    let issuer = policy(|p| p.issuer = Some("https://accounts.google.com".into()));
    assert_eq!(
        issuer.check(&happy, &release).unwrap_err(),
        format!(
            "sigstore policy `release`: requires issuer https://accounts.google.com, the certificate names {ISSUER}"
        )
    );
    let prefix_wrong = policy(|p| p.identity_prefix = Some("https://github.com/acme/".into()));
    assert!(
        prefix_wrong
            .check(&happy, &release)
            .unwrap_err()
            .contains("requires an identity starting with https://github.com/acme/")
    );

    // Every negative case is refused by an identity policy and by
    // require_verified, with its verification failure as the reason.
    let verified_only = policy(|p| p.require_verified = true);
    for &(case, status, reason) in CASES.iter().filter(|c| c.1 != Status::Verified) {
        let o = run(case);
        for p in [&exact, &verified_only] {
            let e = p.check(&o, &release).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "sigstore policy `release`: bundle not verified ({status}): "
                )),
                "{case}: {e}"
            );
            assert!(e.contains(reason), "{case}: {e}");
        }
    }
}
