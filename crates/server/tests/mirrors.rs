//! `/api/v1/imports` and `/api/v1/mirrors` over a real server: a bundle of
//! another vault uploaded by an admin becomes an `import_bundle` task and a
//! verified mirror, read back by auditors (records, a proof that verifies
//! with the other log's key, the payload); every refusal is a problem body
//! (400, 403, 404) and nothing is imported.

mod common;

use std::time::{Duration, Instant};

use common::{Resp, TestServer, token_for};
use evault_vault::{BundleSelection, Reader};
use serde_json::Value;

fn upload(s: &TestServer, key: &str, query: &str, body: &[u8]) -> Resp {
    s.request_as(
        Some(&token_for(key)),
        "POST",
        &format!("/api/v1/imports{query}"),
        &[("Content-Type", b"application/octet-stream")],
        body,
    )
}

fn get(s: &TestServer, key: &str, path: &str) -> Resp {
    s.request_as(Some(&token_for(key)), "GET", path, &[], b"")
}

fn problem(r: &Resp, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
}

/// Percent-encodes a query value (origins hold `/`, keys `+`).
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn wait_ended(s: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = get(s, "admin", &format!("/api/v1/tasks/{id}")).ok_json();
        if ["succeeded", "failed", "cancelled"].contains(&t["state"].as_str().unwrap_or("")) {
            return t;
        }
        assert!(Instant::now() < deadline, "task never ended: {t}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_uploaded_bundle_becomes_a_verified_mirror() {
    // The other vault: records, some with large payloads, exported.
    let a = TestServer::start_with(|c| c.origin = Some("a.example/vault".into()), false);
    for i in 0..30 {
        let body = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 100));
        let r = a.request_as(
            Some(&token_for("ingester")),
            "POST",
            "/api/v1/evidence?label=team%3Dci",
            &[("Content-Type", b"application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    a.rt.block_on(
        a.vault
            .evidence_log()
            .wait_for_checkpoint(30, Duration::from_secs(30)),
    )
    .unwrap();
    let key = a.vault.evidence_log().verifier_key();
    let file = a.dir.path().join("a.evb");
    let (v, f) = (a.vault.clone(), file.clone());
    a.rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            v.export_bundle(
                &Reader::all("auditor"),
                &BundleSelection {
                    payloads: true,
                    ..BundleSelection::default()
                },
                &f,
                &|_, _| {},
                &|| false,
            )
        })
        .await
    })
    .unwrap()
    .unwrap();
    let bundle = std::fs::read(&file).unwrap();

    let b = TestServer::start();
    // Refusals: who, how, and what; nothing imported by any.
    problem(
        &upload(&b, "auditor", &format!("?key={}", q(&key)), &bundle),
        403,
        "role",
    );
    problem(
        &upload(&b, "ingester", &format!("?key={}", q(&key)), &bundle),
        403,
        "role",
    );
    problem(
        &upload(&b, "admin", "", &bundle),
        400,
        "key query parameter is required",
    );
    problem(&upload(&b, "admin", "?key=nope", &bundle), 400, "log key");
    problem(
        &upload(&b, "admin", &format!("?key={}&x=1", q(&key)), &bundle),
        400,
        "unknown query parameter",
    );
    // Not a bundle: the task fails, saying why.
    let r = upload(
        &b,
        "admin",
        &format!("?key={}", q(&key)),
        b"{\"not\":\"a bundle\"}",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let t = wait_ended(&b, r.json()["id"].as_str().unwrap());
    assert_eq!(t["state"], "failed");
    assert!(
        t["error"]
            .as_str()
            .unwrap()
            .contains("not a valid evidence bundle"),
        "{t}"
    );
    assert_eq!(
        get(&b, "auditor", "/api/v1/mirrors").ok_json()["items"],
        serde_json::json!([])
    );

    // The import: a `+` left unencoded in the key (a hand-written query) is
    // read back as `+`.
    let raw_key = key.replace('/', "%2F");
    let r = upload(&b, "admin", &format!("?key={raw_key}"), &bundle);
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["kind"], "import_bundle");
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/api/v1/tasks/{id}").as_str())
    );
    let t = wait_ended(&b, &id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["summary"]["records_new"], 30);
    assert_eq!(t["summary"]["origin"], "a.example/vault");

    let logs = get(&b, "auditor", "/api/v1/mirrors").ok_json();
    assert_eq!(logs["items"][0]["origin"], "a.example/vault");
    assert_eq!(logs["items"][0]["records"], 30);
    assert_eq!(logs["items"][0]["latest_checkpoint"]["tree_size"], 30);
    assert_eq!(
        logs["items"][0]["latest_checkpoint"]["imported_by"],
        "test:admin"
    );
    problem(&get(&b, "ingester", "/api/v1/mirrors"), 403, "role");

    let origin = q("a.example/vault");
    let page = get(
        &b,
        "admin",
        &format!("/api/v1/mirrors/records?origin={origin}&limit=10&after=4"),
    )
    .ok_json();
    let leaves: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["leaf_index"].as_u64().unwrap())
        .collect();
    assert_eq!(leaves, (5..15).collect::<Vec<_>>());
    assert_eq!(page["next_after"], 14);
    problem(
        &get(&b, "auditor", "/api/v1/mirrors/records"),
        400,
        "origin query parameter is required",
    );
    problem(
        &get(
            &b,
            "auditor",
            &format!("/api/v1/mirrors/records?origin={origin}&limit=0"),
        ),
        400,
        "limit",
    );

    // A proof that verifies with A's key alone.
    let proof = get(
        &b,
        "auditor",
        &format!("/api/v1/mirrors/proof?origin={origin}&leaf_index=7"),
    )
    .ok_json();
    let bundle: evault_verify::ProofBundle = serde_json::from_value(proof).unwrap();
    let verifiers = evault_note::Verifiers::new()
        .with(evault_note::Ed25519Verifier::from_verifier_key(&key).unwrap())
        .unwrap();
    let v = bundle.verify(&verifiers, Some("a.example/vault")).unwrap();
    assert_eq!((v.leaf_index, v.tree_size), (7, 30));
    problem(
        &get(
            &b,
            "auditor",
            &format!("/api/v1/mirrors/proof?origin={origin}&leaf_index=30"),
        ),
        404,
        "not found",
    );
    problem(
        &get(
            &b,
            "auditor",
            &format!("/api/v1/mirrors/proof?origin={origin}"),
        ),
        400,
        "leaf_index",
    );

    // The payload, never rendered as this origin's.
    let r = get(
        &b,
        "auditor",
        &format!("/api/v1/mirrors/payload?origin={origin}&leaf_index=7"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.body,
        format!("{{\"i\":7,\"pad\":\"{}\"}}", "x".repeat(700)).as_bytes()
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        r.header("x-evault-sha256").as_deref(),
        Some(bundle.record.sha256.as_str())
    );
    // B's own log holds none of A's records.
    assert_eq!(b.vault.evidence_log().head().size, 0);
}
