//! The task routes over a vault with test-defined kinds: create, show,
//! list, the SSE stream ending with the final state, the result and its
//! digest, cancel, and every refusal as a problem body (400, 403, 404
//! audited as denied, 409, 415).

mod common;

use std::time::{Duration, Instant};

use common::{Resp, TestServer, token_for, with_task_kinds};
use evault_verify::AuditEvent;
use serde_json::{Value, json};
use sha2::Digest as _;

fn start() -> TestServer {
    TestServer::start_with(with_task_kinds, false)
}

fn create(s: &TestServer, key: &str, body: &Value) -> Resp {
    s.request_as(
        Some(&token_for(key)),
        "POST",
        "/api/v1/tasks",
        &[("Content-Type", b"application/json")],
        body.to_string().as_bytes(),
    )
}

fn get(s: &TestServer, key: &str, path: &str) -> Resp {
    s.request_as(Some(&token_for(key)), "GET", path, &[], b"")
}

fn post(s: &TestServer, key: &str, path: &str) -> Resp {
    s.request_as(Some(&token_for(key)), "POST", path, &[], b"")
}

/// A problem+json reply with this status whose detail contains `needle`.
fn assert_problem(r: &Resp, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
    assert_eq!(r.json()["status"], status);
}

/// The `(event, data)` pairs of an SSE body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if let Some(name) = name {
            out.push((name, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

/// Polls the task until `done` holds (up to 30 s).
fn wait_task(s: &TestServer, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(s, key, &format!("/api/v1/tasks/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        if done(&r.json()) {
            return r.json();
        }
        assert!(
            Instant::now() < deadline,
            "task never got there: {}",
            r.text()
        );
        std::thread::yield_now();
    }
}

/// The audit event of the request with this id, once committed.
fn event_of(s: &TestServer, request_id: &str) -> AuditEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page =
            s.rt.block_on(s.vault.audit_list(
                &evault_vault::Reader::all("test"),
                evault_store::AuditQuery {
                    limit: 1000,
                    ..Default::default()
                },
            ))
            .unwrap();
        if let Some(e) = page.items.into_iter().find(|e| e.request_id == request_id) {
            return e;
        }
        assert!(Instant::now() < deadline, "never audited: {request_id}");
        std::thread::yield_now();
    }
}

#[test]
fn create_follow_show_list_and_download() {
    let s = start();
    let r = create(&s, "auditor", &json!({"kind": "count", "params": {"n": 5}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let task = r.json();
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/api/v1/tasks/{id}").as_str())
    );
    assert_eq!(task["principal"], "test:auditor");
    assert_eq!(task["params"], json!({"n": 5}));

    // The stream ends after the final state.
    let events = get(&s, "auditor", &format!("/api/v1/tasks/{id}/events"));
    assert_eq!(events.status, 200);
    assert_eq!(
        events.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let events = sse_events(&events.text());
    assert_eq!(events[0].0, "state");
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "state");
    assert_eq!(last["state"], "succeeded");
    assert_eq!(last["progress"], json!({"done": 5, "total": 5}));
    assert_eq!(last["summary"], json!({"counted": 5}));
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|(_, t)| t["state"] != "succeeded"),
        "nothing after the final state"
    );

    let shown = get(&s, "auditor", &format!("/api/v1/tasks/{id}")).json();
    assert_eq!(shown["state"], "succeeded");
    let result = get(&s, "auditor", &format!("/api/v1/tasks/{id}/result"));
    assert_eq!(result.status, 200);
    assert_eq!(result.body, b"0\n1\n2\n3\n4\n");
    let digest: String = sha2::Sha256::digest(&result.body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(result.header("x-evault-sha256"), Some(digest.clone()));
    assert_eq!(shown["result"]["sha256"], digest);
    assert_eq!(shown["result"]["size"], 10);

    let list = get(&s, "auditor", "/api/v1/tasks").json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_before"], Value::Null);
    let none = get(&s, "auditor", "/api/v1/tasks?state=failed&kind=count").json();
    assert_eq!(none["items"], json!([]));
    assert_problem(
        &get(&s, "auditor", "/api/v1/tasks?state=done"),
        400,
        "expected pending, running",
    );
    assert_problem(&get(&s, "auditor", "/api/v1/tasks?x=1"), 400, "x");

    // Cancelling an ended task is a conflict.
    assert_problem(
        &post(&s, "auditor", &format!("/api/v1/tasks/{id}/cancel")),
        409,
        "ended already",
    );
}

#[test]
fn cancel_a_running_task() {
    let s = start();
    let r = create(
        &s,
        "ingester",
        &json!({"kind": "count", "params": {"wait": true}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    wait_task(&s, "ingester", &id, |t| t["state"] == "running");
    let c = post(&s, "ingester", &format!("/api/v1/tasks/{id}/cancel"));
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["state"], "cancelled");
    assert_eq!(c.json()["cancel_requested"], true);
    // Its stream is just the final state; its result is a conflict.
    let events = sse_events(&get(&s, "ingester", &format!("/api/v1/tasks/{id}/events")).text());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["state"], "cancelled");
    assert_problem(
        &get(&s, "ingester", &format!("/api/v1/tasks/{id}/result")),
        409,
        "only a succeeded task has a result",
    );
}

#[test]
fn refusals_are_problems_and_other_principals_get_404() {
    let s = start();
    // Unknown kind: 400 naming the known ones.
    assert_problem(
        &create(&s, "auditor", &json!({"kind": "nope"})),
        400,
        "known kinds: audit_only, count",
    );
    // The kind's roles: an ingester may not start an auditor's kind.
    assert_problem(
        &create(&s, "ingester", &json!({"kind": "audit_only"})),
        403,
        "task kind audit_only needs role auditor",
    );
    assert_problem(
        &create(
            &s,
            "ingester",
            &json!({"kind": "count", "params": {"n": -1}}),
        ),
        400,
        "n must be an integer",
    );
    assert_problem(
        &create(&s, "ingester", &json!({"kind": "count", "extra": 1})),
        400,
        "unknown field",
    );
    assert_problem(
        &s.request_as(
            Some(&token_for("ingester")),
            "POST",
            "/api/v1/tasks",
            &[("Content-Type", b"text/plain")],
            b"{}",
        ),
        415,
        "application/json",
    );
    assert_problem(
        &get(
            &s,
            "ingester",
            "/api/v1/tasks/0193aaaa-0000-7000-8000-000000000000",
        ),
        404,
        "not found",
    );

    // Another ingester's task: 404 everywhere, audited as denied.
    let r = create(
        &s,
        "ingester",
        &json!({"kind": "count", "params": {"n": 2}}),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    wait_task(&s, "ingester", &id, |t| t["state"] == "succeeded");
    for (method, path) in [
        ("GET", format!("/api/v1/tasks/{id}")),
        ("GET", format!("/api/v1/tasks/{id}/events")),
        ("GET", format!("/api/v1/tasks/{id}/result")),
        ("POST", format!("/api/v1/tasks/{id}/cancel")),
    ] {
        let r = s.request_as(Some(&token_for("other-ingester")), method, &path, &[], b"");
        assert_problem(&r, 404, &format!("task {id} not found"));
        let e = event_of(&s, &r.header("x-request-id").unwrap());
        assert_eq!(
            (e.principal.as_str(), e.outcome.as_str(), e.status),
            ("test:other", "denied", 404),
            "{path}"
        );
        assert!(e.reason.unwrap().contains("another principal"));
    }
    let theirs = get(&s, "other-ingester", "/api/v1/tasks").json();
    assert_eq!(theirs["items"], json!([]));
    // An admin sees it, lists it and downloads its result.
    assert_eq!(get(&s, "admin", &format!("/api/v1/tasks/{id}")).status, 200);
    let all = get(&s, "admin", "/api/v1/tasks").json();
    assert_eq!(all["items"][0]["id"], id.as_str());
    assert_eq!(
        get(&s, "admin", &format!("/api/v1/tasks/{id}/result")).body,
        b"0\n1\n"
    );
    // The task's own state changes are in the audit trail too.
    let page =
        s.rt.block_on(s.vault.audit_list(
            &evault_vault::Reader::all("test"),
            evault_store::AuditQuery {
                limit: 1000,
                ..Default::default()
            },
        ))
        .unwrap();
    let ops: Vec<_> = page
        .items
        .iter()
        .filter(|e| e.request_id == id)
        .map(|e| e.operation.as_str())
        .collect();
    assert_eq!(ops, ["task.pending", "task.running", "task.succeeded"]);
}
