//! Sigstore bundles over the APIs: a policy refusal is a 422
//! problem+json naming the policy and why (audited as failed, nothing
//! written), a line of an NDJSON stream is rejected on its own, gRPC
//! answers FAILED_PRECONDITION; `X-Evault-Artifact-Digest` names the
//! artifact.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{TestServer, token_for, wait_for_audit_event};
use evault_proto::v1 as pb;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_vault::sigstore::{Policy, SigstoreConfig, TrustRoots};
use serde_json::Value;
use tonic::Code;
use tonic::metadata::MetadataValue;

const V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The `mediaType` of the happy-path-v0.3 bundle.
const V03_PARAM: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const OTHER: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore")
}

fn bundle(case: &str) -> Vec<u8> {
    std::fs::read(testdata().join(case).join("bundle.sigstore.json"))
        .unwrap_or_else(|e| panic!("{case}: testdata missing ({e}); see testdata/README.md"))
}

/// Production root; a `release` policy requiring another identity.
fn server() -> TestServer {
    TestServer::start_with(
        |c| {
            // Bundles are verified in memory: they must be inline (the test
            // server's default is 1 KiB; bundles are ~10 KiB).
            c.inline_max = 64 * 1024;
            c.sigstore = SigstoreConfig {
                trusted_roots: TrustRoots::load_named(&[(
                    "production".into(),
                    testdata().join("trusted_root.json"),
                )])
                .unwrap(),
                policies: vec![Policy {
                    name: "release".into(),
                    labels: BTreeMap::from([("kind".into(), "release".into())]),
                    identity: Some(OTHER.into()),
                    ..Policy::default()
                }],
            }
        },
        false,
    )
}

fn size(s: &TestServer) -> u64 {
    s.get("/api/v1/log").json()["tree_size"].as_u64().unwrap()
}

#[test]
fn a_refused_bundle_is_a_422_problem_audited_as_failed() {
    let s = server();
    let before = size(&s);
    let r = s.post(
        "/api/v1/evidence?label=kind%3Drelease",
        &[("Content-Type", V03.as_bytes())],
        &bundle("happy-path-v0.3"),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(
        r.json()["detail"],
        format!(
            "sigstore policy `release`: requires identity {OTHER}, the certificate names {IDENTITY}"
        )
    );
    let event = wait_for_audit_event(&s, &r.header("x-request-id").unwrap());
    assert_eq!(event.operation, "evidence.put");
    assert_eq!(event.outcome, evault_verify::Outcome::Failed);
    assert_eq!(event.status, 422);
    assert_eq!(size(&s), before, "nothing written");

    // A negative: refused with its verification failure.
    let r = s.post(
        "/api/v1/evidence?label=kind%3Drelease",
        &[("Content-Type", V03.as_bytes())],
        &bundle("inclusion-proof-corrupted-hash_fail"),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.starts_with(
            "sigstore policy `release`: bundle not verified (failed): invalid inclusion proof"
        ),
        "{detail}"
    );

    // Outside the selector: logged, labelled verified.
    let r = s.post(
        "/api/v1/evidence?label=kind%3Dnightly",
        &[("Content-Type", V03.as_bytes())],
        &bundle("happy-path-v0.3"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["record"]["labels"]["evault.sigstore.status"],
        "verified"
    );
    assert_eq!(
        r.json()["record"]["labels"]["evault.sigstore.san"],
        IDENTITY
    );
    assert_eq!(size(&s), before + 1);

    // The vault's namespace is not the client's.
    let r = s.post(
        "/api/v1/evidence?label=evault.sigstore.status%3Dverified",
        &[("Content-Type", b"text/plain")],
        b"x",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("set by the vault only")
    );
}

#[test]
fn the_artifact_digest_header() {
    let s = server();
    let a_txt = std::fs::read(testdata().join("a.txt")).unwrap();
    let digest = {
        use sha2::Digest;
        let d: [u8; 32] = sha2::Sha256::digest(&a_txt).into();
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let post = |digest: &str, label: &str| {
        s.post(
            &format!("/api/v1/evidence?label=try%3D{label}"),
            &[
                ("Content-Type", V03.as_bytes()),
                ("X-Evault-Artifact-Digest", digest.as_bytes()),
            ],
            &bundle("happy-path-v0.3"),
        )
    };
    let r = post(&format!("sha256:{digest}"), "1");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["record"]["labels"]["evault.sigstore.status"],
        "verified"
    );
    let r = post(&format!("sha256:{}", "00".repeat(32)), "2");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["record"]["labels"]["evault.sigstore.status"],
        "failed"
    );
    assert!(
        r.json()["record"]["labels"]
            .get("evault.sigstore.san")
            .is_none()
    );
    let r = post("md5:abc", "3");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("expected sha256:<64 hex digits>")
    );
}

#[test]
fn a_refused_line_of_a_stream_is_rejected_on_its_own() {
    let s = server();
    let before = size(&s);
    let line = |labels: &str| {
        format!(
            "{{\"content_type\":\"{V03}\",\"payload_base64\":\"{}\",\"labels\":{labels}}}\n",
            STANDARD.encode(bundle("happy-path-v0.3"))
        )
    };
    let body = line("{\"kind\":\"release\"}") + &line("{\"kind\":\"nightly\"}");
    let r = s.post(
        "/api/v1/evidence/stream",
        &[("Content-Type", b"application/x-ndjson")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let lines: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["status"], "rejected", "{}", lines[0]);
    assert_eq!(
        lines[0]["error"],
        format!(
            "refused: sigstore policy `release`: requires identity {OTHER}, the certificate names {IDENTITY}"
        )
    );
    assert_eq!(lines[1]["status"], "accepted", "{}", lines[1]);
    assert_eq!(size(&s), before + 1);
}

#[test]
fn grpc_refuses_with_failed_precondition() {
    let s = server();
    let channel =
        s.rt.block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc_addr))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let token: MetadataValue<_> = format!("Bearer {}", token_for("ingester")).parse().unwrap();
    let mut client =
        EvidenceServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", token.clone());
            Ok(req)
        });
    let record = |kind: &str| pb::Record {
        content_type: V03.into(),
        payload: bundle("happy-path-v0.3"),
        labels: [("kind".to_string(), kind.to_string())].into(),
        idempotency_key: String::new(),
    };
    let err =
        s.rt.block_on(client.put(pb::PutRequest {
            record: Some(record("release")),
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        format!(
            "sigstore policy `release`: requires identity {OTHER}, the certificate names {IDENTITY}"
        )
    );
    let ok =
        s.rt.block_on(client.put(pb::PutRequest {
            record: Some(record("nightly")),
        }))
        .unwrap()
        .into_inner();
    let labels = ok.record.unwrap().labels;
    assert_eq!(labels["evault.sigstore.status"], "verified");
}

#[test]
fn grpc_ingest_stream_rejects_reserved_labels_refused_and_undeclared_bundles_alone() {
    let s = server();
    let before = size(&s);
    let channel =
        s.rt.block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc_addr))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let token: MetadataValue<_> = format!("Bearer {}", token_for("ingester")).parse().unwrap();
    let mut client =
        EvidenceServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", token.clone());
            Ok(req)
        });
    let record = |ct: &str, labels: &[(&str, &str)]| pb::IngestRequest {
        record: Some(pb::Record {
            content_type: ct.into(),
            payload: bundle("happy-path-v0.3"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            idempotency_key: String::new(),
        }),
    };
    let input = vec![
        record(V03, &[("Evault.sigstore.status", "verified")]),
        record(V03, &[("kind", "release")]),
        record("application/json", &[("kind", "nightly")]),
        record(V03, &[("kind", "nightly")]),
    ];
    let results: Vec<pb::IngestResult> = s.rt.block_on(async {
        let mut out = client
            .ingest_stream(futures_util::stream::iter(input))
            .await
            .expect("stream")
            .into_inner();
        let mut v = Vec::new();
        while let Some(r) = out.message().await.expect("result") {
            v.push(r);
        }
        v
    });
    assert_eq!(results.len(), 4);
    let rejected = |i: usize| match results[i].result.as_ref().unwrap() {
        pb::ingest_result::Result::Rejected(why) => why.reason.clone(),
        other => panic!("record {i}: expected a rejection, got {other:?}"),
    };
    assert!(
        rejected(0).contains("set by the vault only"),
        "{}",
        rejected(0)
    );
    assert!(
        rejected(1).contains(&format!(
            "sigstore policy `release`: requires identity {OTHER}, the certificate names {IDENTITY}"
        )),
        "{}",
        rejected(1)
    );
    assert!(
        rejected(2).contains(&format!(
            "the payload is a Sigstore bundle (mediaType {V03_PARAM}): declare its content type {V03_PARAM}"
        )),
        "{}",
        rejected(2)
    );
    match results[3].result.as_ref().unwrap() {
        pb::ingest_result::Result::Accepted(a) => assert_eq!(a.leaf_index, before),
        other => panic!("expected the nightly bundle accepted, got {other:?}"),
    }
    assert_eq!(size(&s), before + 1);
}

#[test]
fn undeclared_and_hostile_bundles_are_400_or_failed_never_5xx() {
    let s = server();
    let b = bundle("happy-path-v0.3");
    // Declared as JSON to dodge the policy: refused, naming the type.
    let r = s.post(
        "/api/v1/evidence?label=kind%3Drelease",
        &[("Content-Type", b"application/json")],
        &b,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["detail"],
        format!(
            "the payload is a Sigstore bundle (mediaType {V03_PARAM}): declare its content type {V03_PARAM} so it is verified"
        )
    );
    // An unknown version of the family.
    let r = s.post(
        "/api/v1/evidence",
        &[(
            "Content-Type",
            b"application/vnd.dev.sigstore.bundle.v0.4+json".as_slice(),
        )],
        &b,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("is not a supported Sigstore bundle type"),
        "{}",
        r.text()
    );

    let mut wrong_types: Value = serde_json::from_slice(&b).unwrap();
    wrong_types["verificationMaterial"] = serde_json::json!([1, 2]);
    let deep = format!(
        r#"{{"mediaType": "{V03}", "x": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let bodies = [
        b[..b.len() / 3].to_vec(),
        serde_json::to_vec(&wrong_types).unwrap(),
        deep.into_bytes(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        for ct in [V03.as_bytes(), b"application/json".as_slice()] {
            let r = s.post("/api/v1/evidence", &[("Content-Type", ct)], body);
            assert!(
                r.status == 400
                    || (r.status == 201
                        && r.json()["record"]["labels"]
                            .get("evault.sigstore.status")
                            .is_none_or(|s| s == "failed")),
                "body {i} as {}: {} {}",
                String::from_utf8_lossy(ct),
                r.status,
                r.text()
            );
            if r.status == 400 {
                assert_eq!(
                    r.header("content-type").as_deref(),
                    Some("application/problem+json")
                );
            }
        }
    }
}
