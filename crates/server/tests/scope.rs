//! The vault decides who reads what: a walk over every route and RPC that
//! gives ingesters their own scope, asked by another ingester for what one
//! ingester submitted. Each answers 404 / NOT_FOUND (audited as denied) or
//! an empty list, while the owner gets the thing. The walk is driven by the
//! permission table, so a new route with ingester scope fails here until
//! the walk knows what it must answer.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, token_for, with_task_kinds};
use evault_auth::Role;
use evault_proto::v1 as pb;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_proto::v1::log_service_client::LogServiceClient;
use evault_proto::v1::task_service_client::TaskServiceClient;
use evault_server::access::{Access, GRPC_METHODS, OPERATIONS, Scope};
use evault_verify::AuditEvent;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

const OWNER: &str = "ingester";
const OTHER: &str = "other-ingester";

/// Operations where an ingester reads with scope `own`.
fn own_scoped() -> Vec<&'static str> {
    OPERATIONS
        .iter()
        .filter(|op| match op.access {
            Access::Roles(roles) => roles.contains(&(Role::Ingester, Scope::Own)),
            _ => false,
        })
        .map(|op| op.name)
        .collect()
}

/// Polls the audit trail until `found` picks something out of the
/// events matching `query` (reads are audited asynchronously).
fn poll_audit<T>(
    s: &TestServer,
    query: evault_store::AuditQuery,
    what: &str,
    found: impl Fn(Vec<AuditEvent>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page =
            s.rt.block_on(s.vault.audit_list(
                &evault_vault::Reader::all("test"),
                evault_store::AuditQuery {
                    limit: 1000,
                    ..query.clone()
                },
            ))
            .unwrap();
        // Few events in this test: one page holds them all.
        if let Some(t) = found(page.items) {
            return t;
        }
        assert!(Instant::now() < deadline, "never audited: {what}");
        std::thread::yield_now();
    }
}

/// The audit event of the request with this id, once it is committed.
fn event_of(s: &TestServer, request_id: &str) -> AuditEvent {
    poll_audit(s, Default::default(), request_id, |events| {
        events.into_iter().find(|e| e.request_id == request_id)
    })
}

fn with_token<T>(msg: T, key: &str) -> Request<T> {
    let mut req = Request::new(msg);
    let v: MetadataValue<_> = format!("Bearer {}", token_for(key)).parse().unwrap();
    req.metadata_mut().insert("authorization", v);
    req
}

#[test]
fn another_ingester_sees_nothing_of_mine_on_any_route_or_rpc() {
    let s = TestServer::start_with(with_task_kinds, false);
    // What the owner submitted: a record and an analytics event.
    let put = |key: &str, ct: &str, body: &[u8]| {
        let r = s.request_as(
            Some(&token_for(key)),
            "POST",
            "/api/v1/evidence",
            &[("Content-Type", ct.as_bytes())],
            body,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["record"]["id"].as_str().unwrap().to_string()
    };
    let mine = put(OWNER, "text/plain", b"the owner's record");
    put(
        OWNER,
        "application/vnd.evault.analytics+json",
        br#"{"source":"ci","kind":"build","value":1,"timestamp":"2026-11-29T10:00:00Z"}"#,
    );
    s.wait_for_checkpoint(2);
    // And a task, run to its end.
    let r = s.request_as(
        Some(&token_for(OWNER)),
        "POST",
        "/api/v1/tasks",
        &[("Content-Type", b"application/json")],
        br#"{"kind":"count","params":{"n":1}}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let task = r.json()["id"].as_str().unwrap().to_string();
    // Waited for through the vault: polling the route would flood the
    // audit trail this test reads.
    s.rt.block_on(async {
        let mut rx = s
            .vault
            .watch_task(&evault_vault::Reader::all("test"), &task)
            .await
            .unwrap();
        let ended = rx.wait_for(|t| t.state.is_final());
        let waited = tokio::time::timeout(Duration::from_secs(30), ended)
            .await
            .expect("the task never ended")
            .map(|t| t.state);
        // Err: the runner let go of it; the value held is the final one.
        let state = waited.unwrap_or_else(|_| rx.borrow().state);
        assert_eq!(state, evault_vault::TaskState::Succeeded);
    });

    // --- REST: every route the table gives ingesters with `own` scope.
    let scoped = own_scoped();
    assert!(scoped.len() >= 5, "{scoped:?}");
    for name in &scoped {
        let op = OPERATIONS.iter().find(|o| o.name == *name).unwrap();
        let id = if name.starts_with("task.") {
            &task
        } else {
            &mine
        };
        let path = op.path.replace("{id}", id);
        let method = op.method.as_str();
        let ask = |key: &str| s.request_as(Some(&token_for(key)), method, &path, &[], b"");
        let (owner, other) = (ask(OWNER), ask(OTHER));
        // The owner reads it; cancelling its ended task is a conflict.
        let expected = if *name == "task.cancel" { 409 } else { 200 };
        assert_eq!(
            owner.status,
            expected,
            "{name}: the owner reads it: {}",
            owner.text()
        );
        match *name {
            "evidence.get" | "evidence.payload" | "evidence.proof" | "task.get" | "task.events"
            | "task.result" | "task.cancel" => {
                assert_eq!(other.status, 404, "{name}: {}", other.text());
                let rid = other.header("x-request-id").unwrap();
                let e = event_of(&s, &rid);
                assert_eq!(
                    (e.principal.as_str(), e.outcome.as_str(), e.status),
                    ("test:other", "denied", 404),
                    "{name}"
                );
                assert!(e.reason.is_some(), "{name}: a denial says why");
            }
            "task.list" => {
                assert_eq!(other.status, 200, "{name}");
                assert_eq!(owner.json()["items"].as_array().unwrap().len(), 1);
                assert_eq!(other.json()["items"], serde_json::json!([]), "{name}");
            }
            "evidence.list" => {
                assert_eq!(other.status, 200, "{name}");
                assert_eq!(owner.json()["items"].as_array().unwrap().len(), 2);
                assert_eq!(other.json()["items"], serde_json::json!([]), "{name}");
            }
            "analytics.summary" => {
                assert_eq!(other.status, 200, "{name}");
                assert_eq!(owner.json()["groups"].as_array().unwrap().len(), 1);
                assert_eq!(other.json()["groups"], serde_json::json!([]), "{name}");
                assert_eq!(other.json()["filters"]["ingested_by"], "test:other");
            }
            "stats.evidence" => {
                assert_eq!(other.status, 200, "{name}");
                assert_eq!(owner.json()["total"], 2, "{name}");
                assert_eq!(other.json()["total"], 0, "{name}");
                assert_eq!(other.json()["buckets"], serde_json::json!([]), "{name}");
                assert_eq!(other.json()["content_types"], serde_json::json!([]));
                assert_eq!(other.json()["ingested_by"], "test:other");
            }
            unknown => panic!(
                "operation {unknown} gives ingesters their own scope: add what another \
                 ingester must get to this walk"
            ),
        }
    }

    // --- gRPC: every method mapped to one of those operations.
    let channel =
        s.rt.block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc_addr))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let mut ev = EvidenceServiceClient::new(channel.clone());
    let mut lg = LogServiceClient::new(channel.clone());
    let mut tk = TaskServiceClient::new(channel);
    let methods: Vec<_> = GRPC_METHODS
        .iter()
        .filter(|(_, op)| scoped.contains(op))
        .collect();
    assert!(methods.len() >= 3, "{methods:?}");
    for (method, _) in methods {
        match *method {
            "/evault.v1.EvidenceService/Get" => {
                let get = |key| with_token(pb::GetRequest { id: mine.clone() }, key);
                s.rt.block_on(ev.get(get(OWNER)))
                    .expect("the owner reads it");
                let err = s.rt.block_on(ev.get(get(OTHER))).unwrap_err();
                assert_eq!(err.code(), Code::NotFound, "{method}");
            }
            "/evault.v1.EvidenceService/List" => {
                let list = |key| with_token(pb::ListRequest::default(), key);
                let owner = s.rt.block_on(ev.list(list(OWNER))).unwrap().into_inner();
                let other = s.rt.block_on(ev.list(list(OTHER))).unwrap().into_inner();
                assert_eq!((owner.items.len(), other.items.len()), (2, 0), "{method}");
            }
            "/evault.v1.LogService/GetInclusionProof" => {
                let prove = |key| {
                    with_token(
                        pb::GetInclusionProofRequest {
                            id: mine.clone(),
                            tree_size: 0,
                        },
                        key,
                    )
                };
                s.rt.block_on(lg.get_inclusion_proof(prove(OWNER)))
                    .expect("the owner proves it");
                let err =
                    s.rt.block_on(lg.get_inclusion_proof(prove(OTHER)))
                        .unwrap_err();
                assert_eq!(err.code(), Code::NotFound, "{method}");
                // Also when asked at a checkpoint size: nothing about the
                // record leaks before the refusal.
                let mut at = prove(OTHER);
                at.get_mut().tree_size = 1;
                let err = s.rt.block_on(lg.get_inclusion_proof(at)).unwrap_err();
                assert_eq!(err.code(), Code::NotFound, "{method} at size 1");
            }
            "/evault.v1.TaskService/Get"
            | "/evault.v1.TaskService/Watch"
            | "/evault.v1.TaskService/GetResult"
            | "/evault.v1.TaskService/Cancel" => {
                let id = task.clone();
                let other = match *method {
                    "/evault.v1.TaskService/Get" => {
                        s.rt.block_on(tk.get(with_token(pb::GetTaskRequest { id }, OTHER)))
                            .map(|_| ())
                    }
                    "/evault.v1.TaskService/Watch" => {
                        s.rt.block_on(tk.watch(with_token(pb::WatchTaskRequest { id }, OTHER)))
                            .map(|_| ())
                    }
                    "/evault.v1.TaskService/GetResult" => s
                        .rt
                        .block_on(tk.get_result(with_token(pb::GetTaskResultRequest { id }, OTHER)))
                        .map(|_| ()),
                    _ => {
                        s.rt.block_on(tk.cancel(with_token(pb::CancelTaskRequest { id }, OTHER)))
                            .map(|_| ())
                    }
                };
                assert_eq!(other.unwrap_err().code(), Code::NotFound, "{method}");
                let get = pb::GetTaskRequest { id: task.clone() };
                s.rt.block_on(tk.get(with_token(get, OWNER)))
                    .expect("the owner sees it");
            }
            "/evault.v1.TaskService/List" => {
                let list = |key| with_token(pb::ListTasksRequest::default(), key);
                let owner = s.rt.block_on(tk.list(list(OWNER))).unwrap().into_inner();
                let other = s.rt.block_on(tk.list(list(OTHER))).unwrap().into_inner();
                assert_eq!((owner.items.len(), other.items.len()), (1, 0), "{method}");
            }
            unknown => panic!(
                "RPC {unknown} gives ingesters their own scope: add what another ingester \
                 must get to this walk"
            ),
        }
    }
    // Each gRPC refusal is audited as denied, like REST's.
    let denied = evault_store::AuditQuery {
        principal: Some("test:other".into()),
        outcome: Some("denied".into()),
        ..Default::default()
    };
    // Get and two inclusion proofs of the record; Get, Watch, GetResult
    // and Cancel of the task.
    poll_audit(&s, denied, "the 7 gRPC denials", |events| {
        (events.iter().filter(|e| e.protocol == "grpc").count() == 7).then_some(())
    });
}

/// The vault applies the scope itself, whoever calls it: the same walk
/// one layer down, for Rust callers that use the vault directly.
#[test]
fn the_vault_applies_the_reader_scope_itself() {
    use evault_vault::{LogId, Reader, VaultError};
    let s = TestServer::start();
    let r = s.request_as(
        Some(&token_for(OWNER)),
        "POST",
        "/api/v1/evidence",
        &[("Content-Type", b"text/plain")],
        b"x",
    );
    let id = r.json()["record"]["id"].as_str().unwrap().to_string();
    s.wait_for_checkpoint(1);
    let (owner, other) = (Reader::own("test:ingester"), Reader::own("test:other"));
    let v = &s.vault;
    let hidden = |r: Result<(), VaultError>| matches!(r, Err(VaultError::Hidden { .. }));
    s.rt.block_on(async {
        assert!(v.get(&owner, &id).await.is_ok());
        assert!(hidden(v.get(&other, &id).await.map(drop)));
        assert!(hidden(v.payload(&other, &id).await.map(drop)));
        let log = v.evidence_log();
        assert!(log.inclusion(&owner, &id, None).await.is_ok());
        assert!(hidden(log.inclusion(&other, &id, None).await.map(drop)));
        let all = v.list(&other, Default::default()).await.unwrap();
        assert!(all.items.is_empty());
        // An ingester's audit reads see only its own calls.
        let audit = v.log(LogId::Audit).unwrap();
        let theirs = v
            .audit_list(&owner, evault_store::AuditQuery::default())
            .await
            .unwrap();
        assert!(!theirs.items.is_empty());
        assert!(theirs.items.iter().all(|e| e.principal == "test:ingester"));
        let event = &theirs.items[0];
        assert!(hidden(v.audit_event(&other, &event.id).await.map(drop)));
        assert!(hidden(
            audit.inclusion(&other, &event.id, None).await.map(drop)
        ));
        assert!(v.audit_event(&owner, &event.id).await.is_ok());
    });
}
