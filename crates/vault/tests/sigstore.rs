//! Sigstore bundles through the vault: verified on put and on streamed
//! submit, the outcome in vault-set `evault.sigstore.*` labels (so in the
//! leaf), client labels in the `evault.` namespace refused, and policies
//! refusing records with their exact reasons and nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evault_vault::sigstore::{Policy, SigstoreConfig, TrustRoots};
use evault_vault::{PutOutcome, PutRequest, StreamRecord, Vault, VaultConfig, VaultError};
use sha2::{Digest, Sha256};

#[macro_use]
mod drivers;

const V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const OTHER: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore")
}

fn bundle(case: &str) -> Vec<u8> {
    std::fs::read(testdata().join(case).join("bundle.sigstore.json"))
        .unwrap_or_else(|e| panic!("{case}: testdata missing ({e}); see testdata/README.md"))
}

fn content_type(bundle: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    v["mediaType"].as_str().unwrap().to_string()
}

/// Production and the staging root of the Rekor v2 cases (but not the
/// staging root the wrong-instance bundle needs: its rekor key differs).
fn roots() -> TrustRoots {
    TrustRoots::load_named(&[
        ("production".into(), testdata().join("trusted_root.json")),
        (
            "staging-rekor2".into(),
            testdata().join("rekor2-happy-path/trusted_root.json"),
        ),
        (
            "staging-rekor2-dsse".into(),
            testdata().join("rekor2-dsse-happy-path/trusted_root.json"),
        ),
    ])
    .unwrap()
}

/// The production root alone, named `production`.
fn production() -> TrustRoots {
    TrustRoots::load_named(&[("production".into(), testdata().join("trusted_root.json"))]).unwrap()
}

fn config(dir: &Path, sigstore: SigstoreConfig) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    c.state_dir = Some(dir.join("state"));
    c.origin = Some("test.example/vault".into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.sigstore = sigstore;
    c
}

async fn put(
    v: &Vault,
    ct: &str,
    body: &[u8],
    labels: &[(&str, &str)],
    artifact: Option<[u8; 32]>,
) -> Result<PutOutcome, VaultError> {
    let mut up = v.upload();
    up.write(body).await?;
    let payload = up.finish().await?;
    v.put_with_artifact(
        PutRequest {
            content_type: ct.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payload,
            principal: "sa:ci".into(),
            idempotency_key: None,
            audit: None,
        },
        artifact,
    )
    .await
}

fn size(v: &Vault) -> u64 {
    v.evidence_log().info().tree_size
}

fn a_txt() -> [u8; 32] {
    Sha256::digest(std::fs::read(testdata().join("a.txt")).unwrap()).into()
}

/// Case, log entry, earliest verified time (deterministic: the bundle's
/// own), root that verified it.
const POSITIVES: &[(&str, &str, &str, &str)] = &[
    (
        "happy-path-v0.1",
        "rekor-v1:27246492",
        "2023-07-12T15:56:36Z",
        "production",
    ),
    (
        "happy-path-v0.2",
        "rekor-v1:27246492",
        "2023-07-12T15:56:36Z",
        "production",
    ),
    (
        "happy-path-v0.3",
        "rekor-v1:79571823",
        "2024-03-19T17:26:26Z",
        "production",
    ),
    (
        "happy-path-v0.3-new-mediaType",
        "rekor-v1:79571823",
        "2024-03-19T17:26:26Z",
        "production",
    ),
    (
        "happy-path-intoto-in-dsse-v3",
        "rekor-v1:155690850",
        "2024-12-16T18:42:56Z",
        "production",
    ),
    (
        "rekor2-happy-path",
        "rekor-v2:735",
        "2025-06-12T12:02:20Z",
        "staging-rekor2",
    ),
    (
        "rekor2-dsse-happy-path",
        "rekor-v2:4026478",
        "2026-05-13T19:23:33Z",
        "staging-rekor2-dsse",
    ),
];

const NEGATIVES: &[(&str, &str)] = &[
    (
        "inclusion-proof-corrupted-hash_fail",
        "invalid inclusion proof: ",
    ),
    (
        "invalid-inclusion-proof_fail",
        "inclusion proof has no checkpoint",
    ),
    (
        "checkpoint-wrong-roothash_fail",
        "inclusion proof root hash does not match checkpoint root hash",
    ),
    ("rekor2-no-timestamp_fail", "no verified timestamp: "),
    ("signature-mismatch_fail", "signature invalid"),
    (
        "bundle-from-wrong-instance_fail",
        "No log key valid at integrated time",
    ),
];

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn positives_are_labelled_verified_with_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            trusted_roots: roots(),
            policies: vec![],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        let artifact = format!("sha256:{}", hex(&a_txt()));
        for &(case, tlog, time, root) in POSITIVES {
            let b = bundle(case);
            let o = put(&v, &content_type(&b), &b, &[("kind", "release")], None)
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let l = &o.record.labels;
            assert_eq!(l["evault.sigstore.status"], "verified", "{case}: {l:?}");
            assert!(!l.contains_key("evault.sigstore.reason"), "{case}");
            assert_eq!(l["evault.sigstore.artifact"], artifact, "{case}");
            assert_eq!(l["evault.sigstore.tlog"], tlog, "{case}");
            assert_eq!(l["evault.sigstore.san"], IDENTITY, "{case}");
            assert_eq!(l["evault.sigstore.issuer"], ISSUER, "{case}");
            assert_eq!(l["evault.sigstore.workflow"], IDENTITY, "{case}");
            assert_eq!(
                l["evault.sigstore.repository"],
                "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon",
                "{case}"
            );
            assert_eq!(l["evault.sigstore.time"], time, "{case}");
            assert_eq!(l["evault.sigstore.root"], root, "{case}");
            assert_eq!(l["kind"], "release");
            // The labels are in the leaf: the stored record reads them back.
            let stored = v
                .get(&evault_vault::Reader::all("test"), &o.record.id)
                .await
                .unwrap();
            assert_eq!(&stored.labels, l, "{case}");
        }
        assert_eq!(size(&v), POSITIVES.len() as u64);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn negatives_are_logged_as_failed_without_identity_labels() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            // The wrong-instance bundle is checked against production only.
            trusted_roots: production(),
            policies: vec![],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        for &(case, reason) in NEGATIVES {
            let b = bundle(case);
            let o = put(&v, &content_type(&b), &b, &[], None)
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let l = &o.record.labels;
            assert_eq!(l["evault.sigstore.status"], "failed", "{case}: {l:?}");
            assert!(
                l["evault.sigstore.reason"].contains(reason),
                "{case}: {l:?}"
            );
            for k in ["san", "issuer", "workflow", "repository", "time", "root"] {
                assert!(
                    !l.contains_key(&format!("evault.sigstore.{k}")),
                    "{case}: {k}"
                );
            }
        }
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reserved_labels_limits_and_digests() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path(), SigstoreConfig::default()))
            .await
            .unwrap();
        let b = bundle("happy-path-v0.3");

        // No root configured: logged as unverifiable.
        let o = put(&v, V03, &b, &[], None).await.unwrap();
        assert_eq!(o.record.labels["evault.sigstore.status"], "unverifiable");
        assert_eq!(
            o.record.labels["evault.sigstore.reason"],
            "no Sigstore trusted root is configured"
        );
        let before = size(&v);

        let invalid = |r: Result<PutOutcome, VaultError>| match r {
            Err(VaultError::Invalid(why)) => why,
            other => panic!("expected Invalid, got {other:?}"),
        };
        // A client may not set the vault's labels, on any record.
        for ct in [V03, "text/plain"] {
            let why = invalid(put(&v, ct, &b, &[("evault.sigstore.status", "verified")], None).await);
            assert_eq!(
                why,
                "label \"evault.sigstore.status\": labels beginning with \"evault.\" are set by the vault only"
            );
        }
        let why = invalid(put(&v, "text/plain", b"x", &[("evault.key.event", "x")], None).await);
        assert!(why.contains("set by the vault only"), "{why}");
        // Room is kept for the vault's labels.
        let many: Vec<(String, String)> = (0..23).map(|i| (format!("k{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let why = invalid(put(&v, V03, &b, &many, None).await);
        assert!(
            why.contains("a Sigstore record may carry at most 22"),
            "{why}"
        );
        // The content type must be the bundle's version.
        let why = invalid(
            put(
                &v,
                "application/vnd.dev.sigstore.bundle+json;version=0.1",
                &b,
                &[],
                None,
            )
            .await,
        );
        assert!(why.contains("declares bundle version 0.1"), "{why}");
        let why = invalid(put(&v, V03, b"{}", &[], None).await);
        assert!(why.starts_with("not a Sigstore bundle"), "{why}");
        let why = invalid(put(&v, "text/plain", b"x", &[], Some([1; 32])).await);
        assert_eq!(
            why,
            "an artifact digest is only taken with a Sigstore bundle"
        );
        // Too large to verify in memory.
        let mut big = b.clone();
        big.extend(std::iter::repeat_n(b' ', v.config().inline_max));
        let why = invalid(put(&v, V03, &big, &[], None).await);
        assert!(why.starts_with("Sigstore bundles must be at most"), "{why}");
        assert_eq!(size(&v), before, "nothing written for a refused put");
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_given_artifact_digest_must_be_the_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            trusted_roots: roots(),
            policies: vec![],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        let b = bundle("happy-path-v0.3");
        let o = put(&v, V03, &b, &[], Some(a_txt())).await.unwrap();
        assert_eq!(o.record.labels["evault.sigstore.status"], "verified");
        let o = put(&v, V03, &b, &[("try", "2")], Some([0xab; 32]))
            .await
            .unwrap();
        assert_eq!(o.record.labels["evault.sigstore.status"], "failed");
        assert_eq!(
            o.record.labels["evault.sigstore.artifact"],
            format!("sha256:{}", "ab".repeat(32))
        );
        assert!(o.record.labels["evault.sigstore.reason"].starts_with("the artifact digest given"));
        assert!(!o.record.labels.contains_key("evault.sigstore.san"));
    }
}

fn release_policy(f: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = Policy {
        name: "release".into(),
        labels: BTreeMap::from([("kind".into(), "release".into())]),
        ..Policy::default()
    };
    f(&mut p);
    p
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_identity_policy_refuses_the_others_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            trusted_roots: production(),
            policies: vec![release_policy(|p| {
                p.identity = Some(OTHER.into());
                p.issuer = Some(ISSUER.into());
            })],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        let b = bundle("happy-path-v0.3");

        // Wrong identity: a valid bundle, but someone else's.
        let r = put(&v, V03, &b, &[("kind", "release")], None).await;
        match r {
            Err(VaultError::Refused(why)) => assert_eq!(
                why,
                format!(
                    "sigstore policy `release`: requires identity {OTHER}, the certificate names {IDENTITY}"
                )
            ),
            other => panic!("expected Refused, got {other:?}"),
        }
        // Each negative: refused with its verification failure.
        for &(case, reason) in NEGATIVES {
            let b = bundle(case);
            match put(&v, &content_type(&b), &b, &[("kind", "release")], None).await {
                Err(VaultError::Refused(why)) => {
                    assert!(
                        why.starts_with("sigstore policy `release`: bundle not verified (failed): "),
                        "{case}: {why}"
                    );
                    assert!(why.contains(reason), "{case}: {why}");
                }
                other => panic!("{case}: expected Refused, got {other:?}"),
            }
        }
        assert_eq!(size(&v), 0, "nothing written");
        // Outside the selector the policy does not apply.
        let o = put(&v, V03, &b, &[("kind", "nightly")], None)
            .await
            .unwrap();
        assert_eq!(o.record.labels["evault.sigstore.status"], "verified");
        assert_eq!(size(&v), 1);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn require_verified_refuses_unverifiable_and_streams_reject_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            trusted_roots: TrustRoots::none(),
            policies: vec![release_policy(|p| p.require_verified = true)],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        let b = bundle("happy-path-v0.3");
        match put(&v, V03, &b, &[("kind", "release")], None).await {
            Err(VaultError::Refused(why)) => assert_eq!(
                why,
                "sigstore policy `release`: bundle not verified (unverifiable): no Sigstore trusted root is configured"
            ),
            other => panic!("expected Refused, got {other:?}"),
        }
        assert_eq!(size(&v), 0);

        let rec = |labels: &[(&str, &str)]| StreamRecord {
            content_type: V03.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payload: b.clone(),
            ..StreamRecord::default()
        };
        let outcomes = v
            .submit(
                "sa:stream",
                vec![
                    rec(&[("kind", "release")]),
                    rec(&[("kind", "nightly")]),
                    rec(&[("evault.sigstore.status", "verified")]),
                ],
            )
            .await
            .unwrap()
            .outcomes()
            .await
            .unwrap();
        assert!(
            matches!(&outcomes[0], Err(VaultError::Refused(why)) if why.contains("bundle not verified (unverifiable)"))
        );
        let ok = outcomes[1].as_ref().unwrap();
        assert_eq!(ok.record.labels["evault.sigstore.status"], "unverifiable");
        assert!(
            matches!(&outcomes[2], Err(VaultError::Invalid(why)) if why.contains("set by the vault only"))
        );
        assert_eq!(size(&v), 1);
    }
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn invalid(r: Result<PutOutcome, VaultError>) -> String {
    match r {
        Err(VaultError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bundle_declared_as_something_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            trusted_roots: production(),
            policies: vec![Policy {
                name: "all".into(),
                identity: Some(OTHER.into()),
                ..Policy::default()
            }],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        let b = bundle("happy-path-v0.3-new-mediaType");
        // The policy would refuse it: declaring plain JSON must not skip it.
        for ct in ["application/json", "text/plain", "application/octet-stream"] {
            assert_eq!(
                invalid(put(&v, ct, &b, &[], None).await),
                format!(
                    "the payload is a Sigstore bundle (mediaType {V03}): declare its content type {V03} so it is verified"
                ),
                "{ct}"
            );
        }
        let v01 = bundle("happy-path-v0.1");
        let why = invalid(put(&v, "application/json", &v01, &[], None).await);
        assert!(
            why.contains("(mediaType application/vnd.dev.sigstore.bundle+json;version=0.1)"),
            "{why}"
        );
        // An unknown version of the family, declared or in the body.
        let v04 = "application/vnd.dev.sigstore.bundle.v0.4+json";
        let why = invalid(put(&v, v04, &b, &[], None).await);
        assert!(
            why.contains("is not a supported Sigstore bundle type") && why.contains(V03),
            "{why}"
        );
        let body = format!(r#" {{"mediaType": "{v04}", "x": 1}}"#);
        let why = invalid(put(&v, "application/json", body.as_bytes(), &[], None).await);
        assert!(
            why.contains(&format!("declare its content type {v04}")),
            "{why}"
        );
        // Streamed records too.
        let outcomes = v
            .submit(
                "sa:stream",
                vec![StreamRecord {
                    content_type: "application/json".into(),
                    payload: b.clone(),
                    ..StreamRecord::default()
                }],
            )
            .await
            .unwrap()
            .outcomes()
            .await
            .unwrap();
        assert!(
            matches!(&outcomes[0], Err(VaultError::Invalid(why)) if why.starts_with("the payload is a Sigstore bundle")),
            "{outcomes:?}"
        );
        assert_eq!(size(&v), 0, "nothing written");
        // JSON that only mentions the media type is JSON.
        let o = put(
            &v,
            "application/json",
            format!(r#"{{"note": "{V03}"}}"#).as_bytes(),
            &[],
            None,
        )
        .await
        .unwrap();
        assert!(!o.record.labels.contains_key("evault.sigstore.status"));
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_bundle_bodies_are_invalid_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = SigstoreConfig {
            trusted_roots: production(),
            policies: vec![],
        };
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();
        let b = bundle("happy-path-v0.3");
        let mut json: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let mut wrong_types = json.clone();
        wrong_types["verificationMaterial"]["tlogEntries"] = serde_json::json!("nope");
        let mut wrong_digest = json.clone();
        wrong_digest["messageSignature"]["messageDigest"]["digest"] = serde_json::json!(42);
        json["messageSignature"]["signature"] = serde_json::json!("AAAA");
        let deep = format!(
            r#"{{"mediaType": "{V03}", "x": {}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let bodies: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", b[..b.len() / 2].to_vec()),
            ("wrong types", serde_json::to_vec(&wrong_types).unwrap()),
            (
                "digest of the wrong type",
                serde_json::to_vec(&wrong_digest).unwrap(),
            ),
            ("deeply nested", deep.into_bytes()),
            ("not UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
            ("bad signature", serde_json::to_vec(&json).unwrap()),
        ];
        for (what, body) in &bodies {
            for ct in [V03, "application/json"] {
                match put(&v, ct, body, &[], None).await {
                    Err(VaultError::Invalid(_)) => {}
                    Ok(o) if ct == V03 => {
                        assert_eq!(
                            o.record.labels["evault.sigstore.status"], "failed",
                            "{what}"
                        )
                    }
                    // Not parseable as a bundle: plain JSON (or bytes).
                    Ok(o) => assert!(
                        !o.record.labels.contains_key("evault.sigstore.status"),
                        "{what}"
                    ),
                    Err(e) => panic!("{what} as {ct}: expected Invalid or failed, got {e:?}"),
                }
            }
        }
        // The bad signature is well-formed: logged as failed, not refused.
        let o = put(&v, V03, &bodies[5].1, &[("try", "again")], None)
            .await
            .unwrap();
        assert_eq!(o.record.labels["evault.sigstore.status"], "failed");
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_certificate_fails_and_a_policy_pinned_to_production_refuses_staging() {
        let dir = tempfile::tempdir().unwrap();
        let expired = testdata().join("intoto-expired-certificate_fail");
        let sigstore = SigstoreConfig {
            // The expired case's root first: its reason comes first.
            trusted_roots: TrustRoots::load_named(&[
                ("expired-case".into(), expired.join("trusted_root.json")),
                ("production".into(), testdata().join("trusted_root.json")),
                (
                    "staging".into(),
                    testdata().join("rekor2-happy-path/trusted_root.json"),
                ),
            ])
            .unwrap(),
            policies: vec![release_policy(|p| {
                p.identity = Some(IDENTITY.into());
                p.roots = vec!["production".into()];
            })],
        };
        sigstore.validate().unwrap();
        let v = Vault::open(config(dir.path(), sigstore)).await.unwrap();

        // The certificate is outside its validity window: failed, no claims.
        let b = std::fs::read(expired.join("bundle.sigstore.json")).unwrap();
        let artifact: [u8; 32] =
            Sha256::digest(std::fs::read(expired.join("artifact")).unwrap()).into();
        let o = put(&v, &content_type(&b), &b, &[], Some(artifact))
            .await
            .unwrap();
        let l = &o.record.labels;
        assert_eq!(l["evault.sigstore.status"], "failed", "{l:?}");
        let reason = &l["evault.sigstore.reason"];
        assert!(
            reason.starts_with("root expired-case: ") && reason.contains("CertNotValidYet"),
            "{l:?}"
        );
        assert!(!l.contains_key("evault.sigstore.san"));

        // A staging bundle verifies (under `staging`), with the identity the
        // policy wants, but not under the production root the policy pins.
        let staging = bundle("bundle-from-wrong-instance_fail");
        match put(
            &v,
            &content_type(&staging),
            &staging,
            &[("kind", "release")],
            None,
        )
        .await
        {
            Err(VaultError::Refused(why)) => assert_eq!(
                why,
                "sigstore policy `release`: requires a bundle verified under root production, it verified under staging"
            ),
            other => panic!("expected Refused, got {other:?}"),
        }
        let before = size(&v);
        // Outside the selector it is logged, labelled with the root's name.
        let o = put(&v, &content_type(&staging), &staging, &[], None)
            .await
            .unwrap();
        assert_eq!(o.record.labels["evault.sigstore.root"], "staging");
        assert_eq!(size(&v), before + 1);
        // A production bundle passes.
        let prod = bundle("happy-path-v0.3");
        let o = put(&v, V03, &prod, &[("kind", "release")], None)
            .await
            .unwrap();
        assert_eq!(o.record.labels["evault.sigstore.root"], "production");
    }
}
