//! Erasure, legal holds and retention over REST: admin only (403 for
//! others; auditors may list), 400 for a missing reason, 409 under a hold,
//! 410 with the tombstone's id for an erased payload, and every call in
//! the audit trail.

mod common;

use common::{Resp, TestServer, token_for, wait_for_audit_event};
use serde_json::{Value, json};

const JSON: (&str, &[u8]) = ("Content-Type", b"application/json");

fn call(s: &TestServer, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let headers: &[(&str, &[u8])] = if bytes.is_empty() { &[] } else { &[JSON] };
    s.request_as(Some(&token_for(key)), method, path, headers, &bytes)
}

fn assert_problem(r: &Resp, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
}

fn put(s: &TestServer, body: &[u8], label: &str) -> String {
    let r = s.post(
        &format!("/api/v1/evidence?label=case%3D{label}"),
        &[("Content-Type", b"application/json")],
        body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["record"]["id"].as_str().unwrap().to_string()
}

/// The operation of the audit event of the request `r` answered.
fn audited(s: &TestServer, r: &Resp) -> evault_verify::AuditEvent {
    let rid = r.header("x-request-id").unwrap();
    wait_for_audit_event(s, &rid)
}

#[test]
fn erase_hold_and_retention_routes() {
    let s = TestServer::start();
    let id = put(&s, b"{\"secret\":\"s3cr3t-payload\"}", "c1");
    let held = put(&s, b"{\"held\":true}", "c2");

    // Only admins erase; a reason is required.
    for key in ["ingester", "auditor"] {
        let r = call(
            &s,
            key,
            "POST",
            &format!("/api/v1/evidence/{id}/erase"),
            Some(json!({"reason": "x"})),
        );
        assert_problem(&r, 403, "");
        assert_eq!(audited(&s, &r).operation, "evidence.erase");
    }
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{id}/erase"),
        Some(json!({})),
    );
    assert_problem(&r, 400, "reason");
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{id}/erase"),
        Some(json!({"reason": " "})),
    );
    assert_problem(&r, 400, "reason");
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{id}/erase"),
        Some(json!({"reason": "x".repeat(5000)})),
    );
    assert_problem(&r, 400, "reason");
    let r = s.request_as(
        Some(&token_for("admin")),
        "POST",
        &format!("/api/v1/evidence/{id}/erase"),
        &[("Content-Type", b"text/plain")],
        b"reason",
    );
    assert_problem(&r, 415, "application/json");
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/evidence/0190b5a0-0000-7000-8000-000000000000/erase",
        Some(json!({"reason": "x"})),
    );
    assert_problem(&r, 404, "not found");

    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{id}/erase"),
        Some(json!({"reason": "GDPR request 17"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let erased = r.json()["erased"].clone();
    assert_eq!(erased[0]["id"], id.as_str());
    let tombstone = erased[0]["tombstone_id"].as_str().unwrap().to_string();
    let ev = audited(&s, &r);
    assert_eq!(ev.operation, "evidence.erase");
    assert_eq!(ev.principal, "test:admin");

    // The payload is gone: 410 naming the tombstone; metadata says so.
    let r = s.get(&format!("/api/v1/evidence/{id}/payload"));
    assert_problem(&r, 410, &tombstone);
    assert_eq!(r.json()["tombstone_id"], tombstone.as_str());
    let meta = s.get(&format!("/api/v1/evidence/{id}")).ok_json();
    assert_eq!(meta["erased"]["tombstone_id"], tombstone.as_str());
    assert_eq!(meta["erased"]["basis"], "request");
    let t = s.get(&format!("/api/v1/evidence/{tombstone}")).ok_json();
    assert_eq!(t["content_type"], "application/vnd.evault.tombstone+json");
    assert_eq!(t["labels"]["evault.erases"], id.as_str());
    assert!(t.get("erased").is_none());
    // Twice: 409; a tombstone: 409.
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{id}/erase"),
        Some(json!({"reason": "again"})),
    );
    assert_problem(&r, 409, "erased already");
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{tombstone}/erase"),
        Some(json!({"reason": "x"})),
    );
    assert_problem(&r, 409, "tombstone");

    // Holds: admin creates and releases; auditor lists; others 403.
    let r = call(
        &s,
        "auditor",
        "POST",
        "/api/v1/holds",
        Some(json!({"selector": {"labels": {"case": "c2"}}, "reason": "lit"})),
    );
    assert_problem(&r, 403, "");
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/holds",
        Some(json!({"selector": {"labels": {"case": "c2"}}})),
    );
    assert_problem(&r, 400, "reason");
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/holds",
        Some(json!({"selector": {"labels": {"case": "c2"}, "extra": 1}, "reason": "x"})),
    );
    assert_problem(&r, 400, "");
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/holds",
        Some(json!({"selector": {"labels": {"case": "c2"}}, "reason": "litigation"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(audited(&s, &r).operation, "holds.create");
    let hold = r.json()["id"].as_str().unwrap().to_string();
    let list = call(&s, "auditor", "GET", "/api/v1/holds", None);
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["holds"][0]["id"], hold.as_str());
    assert_problem(&call(&s, "ingester", "GET", "/api/v1/holds", None), 403, "");
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/evidence/{held}/erase"),
        Some(json!({"reason": "x"})),
    );
    assert_problem(&r, 409, &hold);
    assert!(s.get(&format!("/api/v1/evidence/{held}/payload")).status == 200);
    let r = call(
        &s,
        "auditor",
        "POST",
        &format!("/api/v1/holds/{hold}/release"),
        None,
    );
    assert_problem(&r, 403, "");
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/holds/{hold}/release"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["released_by"], "test:admin");
    assert_eq!(audited(&s, &r).operation, "holds.release");
    let r = call(
        &s,
        "admin",
        "POST",
        &format!("/api/v1/holds/{hold}/release"),
        None,
    );
    assert_problem(&r, 409, "released already");
    let r = call(&s, "admin", "POST", "/api/v1/holds/nope/release", None);
    assert_problem(&r, 404, "not found");

    // Retention policies.
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/retention",
        Some(json!({"name": "n", "keep_for_seconds": 0})),
    );
    assert_problem(&r, 400, "keep_for");
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/retention",
        Some(json!({"name": "", "keep_for_seconds": 60})),
    );
    assert_problem(&r, 400, "name");
    let r = call(
        &s,
        "ingester",
        "POST",
        "/api/v1/retention",
        Some(json!({"name": "n", "keep_for_seconds": 60})),
    );
    assert_problem(&r, 403, "");
    let r = call(
        &s,
        "admin",
        "POST",
        "/api/v1/retention",
        Some(
            json!({"name": "ci logs", "selector": {"labels": {"case": "c9"}}, "keep_for_seconds": 86400}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(audited(&s, &r).operation, "retention.create");
    let policy = r.json()["id"].as_str().unwrap().to_string();
    let list = call(&s, "auditor", "GET", "/api/v1/retention", None).ok_json();
    assert_eq!(list["policies"][0]["keep_for_seconds"], 86400);
    let r = call(
        &s,
        "auditor",
        "DELETE",
        &format!("/api/v1/retention/{policy}"),
        None,
    );
    assert_problem(&r, 403, "");
    let r = call(
        &s,
        "admin",
        "DELETE",
        &format!("/api/v1/retention/{policy}"),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(audited(&s, &r).operation, "retention.delete");
    let r = call(
        &s,
        "admin",
        "DELETE",
        &format!("/api/v1/retention/{policy}"),
        None,
    );
    assert_problem(&r, 404, "not found");
}
