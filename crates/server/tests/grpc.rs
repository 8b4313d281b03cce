//! The gRPC API against a real server: the same records, permissions and
//! audit trail as REST; the ingest stream's in-order results, rejections,
//! disconnects and refusals; health and reflection; TLS.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{ORIGIN, TestServer, fixture, token_for, verifiers};
use evault_proto::v1 as pb;
use evault_proto::v1::audit_service_client::AuditServiceClient;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_proto::v1::log_service_client::LogServiceClient;
use evault_verify::ProofBundle;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

type Auth = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;

fn channel(s: &TestServer) -> Channel {
    channel_on(s, &s.rt)
}

/// A channel whose connection lives on `rt` (and dies with it).
fn channel_on(s: &TestServer, rt: &tokio::runtime::Runtime) -> Channel {
    let endpoint = if s.tls {
        let ca = std::fs::read(fixture("ca.pem")).unwrap();
        Endpoint::from_shared(format!("https://localhost:{}", s.grpc_addr.port()))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )
            .unwrap()
    } else {
        Endpoint::from_shared(format!("http://{}", s.grpc_addr)).unwrap()
    };
    rt.block_on(endpoint.connect()).expect("connect")
}

/// Adds `authorization: Bearer <token>` (none for `None`).
fn auth(token: Option<String>) -> Auth {
    Box::new(move |mut req: Request<()>| {
        if let Some(t) = &token {
            let v: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    })
}

fn evidence(
    s: &TestServer,
    key: Option<&str>,
) -> EvidenceServiceClient<InterceptedService<Channel, Auth>> {
    EvidenceServiceClient::with_interceptor(channel(s), auth(key.map(token_for)))
}

fn log(s: &TestServer, key: Option<&str>) -> LogServiceClient<InterceptedService<Channel, Auth>> {
    LogServiceClient::with_interceptor(channel(s), auth(key.map(token_for)))
}

fn audit(s: &TestServer) -> AuditServiceClient<InterceptedService<Channel, Auth>> {
    AuditServiceClient::with_interceptor(channel(s), auth(Some(token_for("auditor"))))
}

fn record(payload: &[u8], labels: &[(&str, &str)]) -> pb::Record {
    pb::Record {
        content_type: "application/json".into(),
        payload: payload.to_vec(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        idempotency_key: String::new(),
    }
}

/// Audit events of gRPC calls to `operation`, oldest first.
fn grpc_events(s: &TestServer, operation: &str) -> Vec<pb::AuditEvent> {
    let mut client = audit(s);
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page =
            s.rt.block_on(client.query(pb::AuditQueryRequest {
                operation: operation.into(),
                limit: 1000,
                cursor: cursor.clone(),
                ..Default::default()
            }))
            .expect("audit query")
            .into_inner();
        out.extend(page.items.into_iter().filter(|e| e.protocol == "grpc"));
        if page.next_cursor.is_empty() {
            return out;
        }
        cursor = page.next_cursor;
    }
}

#[test]
fn put_get_list_and_proofs_mirror_rest_and_verify_offline() {
    let s = TestServer::start();
    let mut ev = evidence(&s, Some("ingester"));
    let put = |ev: &mut EvidenceServiceClient<_>, payload: &[u8]| {
        s.rt.block_on(ev.put(pb::PutRequest {
            record: Some(record(payload, &[("suite", "grpc")])),
        }))
        .expect("put")
        .into_inner()
    };
    let first = put(&mut ev, b"{\"n\":1}");
    let second = put(&mut ev, b"{\"n\":2}");
    let again = put(&mut ev, b"{\"n\":1}");
    let a = first.record.clone().unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.record.unwrap().id, a.id);
    assert_eq!(second.record.as_ref().unwrap().leaf_index, a.leaf_index + 1);
    assert_eq!(a.ingested_by, "test:ingester");
    assert_eq!(a.size, 7);

    // The same record over REST.
    let rest = s.get(&format!("/api/v1/evidence/{}", a.id)).ok_json();
    assert_eq!(rest["sha256"], a.sha256.as_str());
    assert_eq!(rest["leaf_index"], a.leaf_index);

    let got =
        s.rt.block_on(ev.get(pb::GetRequest { id: a.id.clone() }))
            .unwrap()
            .into_inner();
    assert_eq!(got, a);

    let page =
        s.rt.block_on(ev.list(pb::ListRequest {
            labels: [("suite".to_string(), "grpc".to_string())].into(),
            limit: 1,
            ..Default::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(page.items, vec![a.clone()]);
    assert!(!page.next_cursor.is_empty());
    let rest_page =
        s.rt.block_on(ev.list(pb::ListRequest {
            labels: [("suite".to_string(), "grpc".to_string())].into(),
            cursor: page.next_cursor,
            ..Default::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(rest_page.items.len(), 1);
    assert!(rest_page.next_cursor.is_empty());

    s.wait_for_checkpoint(2);
    let mut lg = log(&s, Some("ingester"));
    let info =
        s.rt.block_on(lg.get_log_info(pb::GetLogInfoRequest {}))
            .unwrap()
            .into_inner();
    assert_eq!(info.origin, ORIGIN);
    assert!(info.checkpoint_size >= 2);
    let proof =
        s.rt.block_on(lg.get_inclusion_proof(pb::GetInclusionProofRequest {
            id: a.id.clone(),
            tree_size: 0,
        }))
        .unwrap()
        .into_inner();
    let bundle: ProofBundle = serde_json::from_str(&proof.bundle_json).unwrap();
    let ok = bundle
        .verify(&verifiers(&s), Some(ORIGIN))
        .expect("verifies");
    assert_eq!(ok.leaf_index, a.leaf_index);
    assert_eq!(proof.tree_size, bundle.tree_size);
    assert_eq!(proof.hashes.len(), bundle.inclusion_proof.len());
    assert!(proof.hashes.iter().all(|h| h.len() == 32));
    assert_eq!(proof.checkpoint, bundle.checkpoint);

    let cp =
        s.rt.block_on(lg.get_checkpoint(pb::GetCheckpointRequest {
            size: proof.tree_size,
        }))
        .unwrap()
        .into_inner();
    assert_eq!(cp.note, proof.checkpoint);
    let latest =
        s.rt.block_on(lg.get_latest_checkpoint(pb::GetLatestCheckpointRequest {}))
            .unwrap()
            .into_inner();
    assert!(latest.size >= proof.tree_size);
    let cons =
        s.rt.block_on(lg.get_consistency_proof(pb::GetConsistencyProofRequest {
            from_size: 1,
            to_size: 2,
        }))
        .unwrap()
        .into_inner();
    let rest_cons = s.get("/api/v1/tree/consistency?from=1&to=2").ok_json();
    assert_eq!(
        cons.hashes.len(),
        rest_cons["proof"].as_array().unwrap().len()
    );

    // Every call above is in the audit trail as a gRPC call.
    let puts = grpc_events(&s, "evidence.put");
    assert_eq!(puts.len(), 3);
    assert!(puts.iter().all(|e| e.outcome == "success" && e.status == 0));
    assert!(puts.iter().all(|e| e.principal == "test:ingester"));
    assert_eq!(puts[0].resource, format!("evidence/{}", a.id));
    // Answered reads are queued for the next commit, not awaited.
    assert_eq!(wait_for_events(&s, "evidence.get", 1).len(), 1);
    assert_eq!(wait_for_events(&s, "evidence.list", 2).len(), 2);
    assert_eq!(wait_for_events(&s, "evidence.proof", 1).len(), 1);
}

#[test]
fn status_codes_are_mapped_and_refusals_audited() {
    let s = TestServer::start();
    let code = |r: Result<tonic::Response<pb::Evidence>, Status>| r.unwrap_err().code();

    // UNAUTHENTICATED: no token, a bad token.
    let mut anon = evidence(&s, None);
    let err =
        s.rt.block_on(anon.put(pb::PutRequest {
            record: Some(record(b"x", &[])),
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut bad =
        EvidenceServiceClient::with_interceptor(channel(&s), auth(Some("not.a.token".into())));
    assert_eq!(
        code(s.rt.block_on(bad.get(pb::GetRequest { id: "x".into() }))),
        Code::Unauthenticated
    );

    // PERMISSION_DENIED: an auditor may not put.
    let mut auditor = evidence(&s, Some("auditor"));
    let err =
        s.rt.block_on(auditor.put(pb::PutRequest {
            record: Some(record(b"x", &[])),
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("ingester"), "{}", err.message());

    // INVALID_ARGUMENT: no record, a bad content type, a bad time filter.
    let mut ing = evidence(&s, Some("ingester"));
    let err =
        s.rt.block_on(ing.put(pb::PutRequest { record: None }))
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut r = record(b"x", &[]);
    r.content_type = "json".into();
    let err =
        s.rt.block_on(ing.put(pb::PutRequest { record: Some(r) }))
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("content type"), "{}", err.message());
    let err =
        s.rt.block_on(ing.list(pb::ListRequest {
            since: "yesterday".into(),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(grpc_events(&s, "evidence.put").len(), 4);

    // NOT_FOUND: a missing record, and another principal's (audited denied).
    assert_eq!(
        code(s.rt.block_on(ing.get(pb::GetRequest {
            id: "0190b5f0-0000-7000-8000-000000000000".into()
        }))),
        Code::NotFound
    );
    let mine =
        s.rt.block_on(ing.put(pb::PutRequest {
            record: Some(record(b"mine", &[])),
        }))
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let mut other = evidence(&s, Some("other-ingester"));
    assert_eq!(
        code(s.rt.block_on(other.get(pb::GetRequest {
            id: mine.id.clone()
        }))),
        Code::NotFound
    );

    // RESOURCE_EXHAUSTED: a message over the limit.
    let big = vec![b'x'; 17 * 1024 * 1024];
    let err =
        s.rt.block_on(ing.put(pb::PutRequest {
            record: Some(record(&big, &[])),
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Every refusal and failure above is in the audit trail, with a reason.
    let events = grpc_events(&s, "evidence.put");
    let outcomes: Vec<_> = events
        .iter()
        .map(|e| (e.outcome.as_str(), e.status))
        .collect();
    assert!(outcomes.contains(&("unauthenticated", 16)), "{outcomes:?}");
    assert!(outcomes.contains(&("denied", 7)), "{outcomes:?}");
    assert!(outcomes.contains(&("failed", 3)), "{outcomes:?}");
    let gets = grpc_events(&s, "evidence.get");
    assert!(
        gets.iter()
            .any(|e| e.principal == "test:other" && e.outcome == "denied" && e.status == 5),
        "{gets:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e.outcome != "success")
            .all(|e| !e.reason.is_empty()),
        "{events:?}"
    );
    // Nothing was logged by any refused or invalid call.
    assert_eq!(s.vault.evidence_log().head().size, 1);
}

/// `n` records, every tenth invalid in one of several ways (at indexes
/// `i % 10 == 3`), each valid one unique.
fn mixed_records(n: usize) -> Vec<pb::IngestRequest> {
    (0..n)
        .map(|i| {
            let mut r = record(format!("{{\"i\":{i}}}").as_bytes(), &[("run", "mixed")]);
            if i % 10 == 3 {
                match (i / 10) % 4 {
                    0 => r.content_type = "nope".into(),
                    1 => {
                        r.labels.insert("bad key".into(), "v".into());
                    }
                    2 => r.payload = vec![b'y'; 4096], // over the test inline limit
                    _ => {
                        return pb::IngestRequest { record: None };
                    }
                }
            }
            pb::IngestRequest { record: Some(r) }
        })
        .collect()
}

#[test]
fn ingest_stream_answers_every_record_in_order_and_rejects_bad_ones_alone() {
    let s = TestServer::start();
    let mut ev = evidence(&s, Some("ingester"));
    let n = 2000;
    let input = mixed_records(n);
    let mut dup = input[0].clone();
    dup.record.as_mut().unwrap().labels = [("run".to_string(), "mixed".to_string())].into();
    let mut all = input.clone();
    all.push(dup);
    let results: Vec<pb::IngestResult> = s.rt.block_on(async {
        let out = ev
            .ingest_stream(futures_util::stream::iter(all))
            .await
            .expect("stream");
        let mut out = out.into_inner();
        let mut v = Vec::new();
        while let Some(r) = out.message().await.expect("result") {
            v.push(r);
        }
        v
    });
    assert_eq!(results.len(), n + 1);
    let mut next_leaf = 0;
    let mut ids = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.sequence, i as u64);
        match r.result.as_ref().unwrap() {
            pb::ingest_result::Result::Accepted(a) if i < n => {
                assert!(i % 10 != 3, "record {i} should be rejected");
                assert!(!a.duplicate && !a.replayed);
                assert_eq!(a.leaf_index, next_leaf, "record {i}");
                next_leaf += 1;
                ids.insert(a.id.clone(), i);
            }
            pb::ingest_result::Result::Accepted(a) => {
                assert!(a.duplicate, "the last record repeats the first");
                assert_eq!(a.leaf_index, 0);
            }
            pb::ingest_result::Result::Rejected(why) => {
                assert_eq!(i % 10, 3, "record {i} rejected: {}", why.reason);
                let expect = match (i / 10) % 4 {
                    0 => "content type",
                    1 => "label key",
                    2 => "bytes",
                    _ => "record is missing",
                };
                assert!(why.reason.contains(expect), "{i}: {}", why.reason);
            }
        }
    }
    assert_eq!(next_leaf as usize, n - n / 10);
    assert_eq!(s.vault.evidence_log().head().size, next_leaf);

    // Records are what was sent.
    let (id, i) = ids.iter().nth(17).unwrap();
    let got = s.get(&format!("/api/v1/evidence/{id}/payload"));
    assert_eq!(got.body, format!("{{\"i\":{i}}}").into_bytes());

    // One audit event for the stream, with its counts.
    let events = wait_for_events(&s, "evidence.stream", 1);
    assert_eq!(events[0].outcome, "success");
    assert_eq!(events[0].principal, "test:ingester");
    let expect = format!(
        "accepted {}, rejected {}, duplicates 1, leaves 0..{}",
        n - n / 10,
        n / 10,
        next_leaf - 1
    );
    assert_eq!(events[0].reason, expect);
}

/// Waits for `n` gRPC events of `op`: a stream's is written when the
/// stream ends, which the client may see before the server does, and
/// answered reads are queued rather than awaited.
fn wait_for_events(s: &TestServer, op: &str, n: usize) -> Vec<pb::AuditEvent> {
    for _ in 0..200 {
        let e = grpc_events(s, op);
        if e.len() >= n {
            return e;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no {n} audit events for {op}: {:?}", grpc_events(s, op));
}

#[test]
fn a_client_that_goes_away_keeps_what_was_acknowledged() {
    let s = TestServer::start();
    // The client on its own runtime: shutting that down closes its
    // connection mid-stream, as a crashed or killed client would.
    let client_rt = tokio::runtime::Runtime::new().unwrap();
    let mut ev = EvidenceServiceClient::with_interceptor(
        channel_on(&s, &client_rt),
        auth(Some(token_for("ingester"))),
    );
    let acknowledged: Vec<pb::Accepted> = client_rt.block_on(async {
        let input = futures_util::stream::iter(0u64..).map(|i| pb::IngestRequest {
            record: Some(record(format!("{{\"k\":{i}}}").as_bytes(), &[])),
        });
        let mut out = ev.ingest_stream(input).await.expect("stream").into_inner();
        let mut got = Vec::new();
        while got.len() < 500 {
            match out
                .message()
                .await
                .expect("result")
                .unwrap()
                .result
                .unwrap()
            {
                pb::ingest_result::Result::Accepted(a) => got.push(a),
                other => panic!("{other:?}"),
            }
        }
        got
    });
    client_rt.shutdown_background();
    // The server finishes what it had in flight and writes the audit event.
    let events = wait_for_events(&s, "evidence.stream", 1);
    assert_eq!(events[0].outcome, "failed", "{:?}", events[0]);
    assert!(events[0].reason.contains("accepted"), "{:?}", events[0]);
    let size = s.vault.evidence_log().head().size;
    assert!(size >= acknowledged.len() as u64);
    for (i, a) in acknowledged.iter().enumerate() {
        assert_eq!(a.leaf_index, i as u64);
        let rec = s.get(&format!("/api/v1/evidence/{}", a.id)).ok_json();
        assert_eq!(rec["leaf_index"], a.leaf_index);
    }
    // The log is whole: every leaf up to the size is a readable record, and
    // a checkpoint covers it.
    s.wait_for_checkpoint(size);
    let page = s.get("/api/v1/evidence?limit=1000").ok_json();
    let items = page["items"].as_array().unwrap();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["leaf_index"], i as u64);
    }
}

#[test]
fn an_unauthorised_stream_is_refused_before_any_record_is_read_and_audited() {
    let s = TestServer::start();
    for (key, want) in [
        (None, Code::Unauthenticated),
        (Some("auditor"), Code::PermissionDenied),
    ] {
        let mut ev = evidence(&s, key);
        // A stream that would never end: the refusal cannot wait for it.
        let input =
            futures_util::stream::iter(mixed_records(10)).chain(futures_util::stream::pending());
        let err =
            s.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), async {
                    match ev.ingest_stream(input).await {
                        Err(e) => e,
                        Ok(r) => r.into_inner().message().await.unwrap_err(),
                    }
                })
                .await
            })
            .expect("refused at once");
        assert_eq!(err.code(), want);
    }
    assert_eq!(s.vault.evidence_log().head().size, 0);
    let events = wait_for_events(&s, "evidence.stream", 2);
    let outcomes: Vec<_> = events
        .iter()
        .map(|e| (e.outcome.as_str(), e.status))
        .collect();
    assert_eq!(outcomes, [("unauthenticated", 16), ("denied", 7)]);
}

use futures_util::StreamExt as _;

#[test]
fn health_and_reflection_answer() {
    let s = TestServer::start();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&s));
    for service in ["", "evault.v1.EvidenceService"] {
        let r =
            s.rt.block_on(health.check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            }))
            .expect("health check")
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(channel(&s));
    let services = s.rt.block_on(async {
        let req = tonic_reflection::pb::v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut out = refl
            .server_reflection_info(futures_util::stream::iter([req]))
            .await
            .expect("reflection")
            .into_inner();
        match out
            .message()
            .await
            .unwrap()
            .unwrap()
            .message_response
            .unwrap()
        {
            MessageResponse::ListServicesResponse(l) => {
                l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        }
    });
    for want in [
        "evault.v1.EvidenceService",
        "evault.v1.LogService",
        "evault.v1.AuditService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.iter().any(|s| s == want), "{want} in {services:?}");
    }
}

fn health_status(s: &TestServer, service: &str) -> i32 {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(s));
    s.rt.block_on(health.check(tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    }))
    .expect("health check")
    .into_inner()
    .status
}

#[test]
fn health_is_not_serving_while_the_vault_is_not_ready() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let s = TestServer::start();
    assert_eq!(health_status(&s, ""), ServingStatus::Serving as i32);
    // A watcher hears the change too.
    let mut watcher = tonic_health::pb::health_client::HealthClient::new(channel(&s));
    let mut watch =
        s.rt.block_on(watcher.watch(tonic_health::pb::HealthCheckRequest {
            service: "evault.v1.LogService".into(),
        }))
        .expect("watch")
        .into_inner();
    let first = s.rt.block_on(watch.message()).unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // The sequencer stops: /readyz says 503, and so does gRPC health, for
    // the server and for every evault service.
    s.rt.block_on(s.vault.shutdown()).unwrap();
    assert_eq!(s.get("/readyz").status, 503);
    for service in [
        "",
        "evault.v1.EvidenceService",
        "evault.v1.LogService",
        "evault.v1.AuditService",
    ] {
        assert_eq!(
            health_status(&s, service),
            ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
    // The next message is the change (one message per change of status).
    let next =
        s.rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(20), watch.message()).await
        })
        .expect("the watcher hears of the change")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // A service the server does not have is still NOT_FOUND.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&s));
    let e =
        s.rt.block_on(health.check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".into(),
        }))
        .expect_err("unknown service");
    assert_eq!(e.code(), Code::NotFound);
}

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn grpc_calls_are_counted_with_their_real_status() {
    let s = TestServer::start();
    // No token: UNAUTHENTICATED, carried by an HTTP 200.
    let refused =
        s.rt.block_on(evidence(&s, None).get(pb::GetRequest { id: "x".into() }))
            .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let denied =
        s.rt.block_on(evidence(&s, Some("admin")).get(pb::GetRequest { id: "x".into() }))
            .expect_err("no role");
    assert_eq!(denied.code(), Code::PermissionDenied);
    s.rt.block_on(log(&s, None).get_log_info(pb::GetLogInfoRequest {}))
        .expect("public log info");

    let metrics = s
        .request_as(Some(&token_for("admin")), "GET", "/metrics", &[], b"")
        .text();
    let get = "method=\"/evault.v1.EvidenceService/Get\"";
    assert_eq!(
        sample(
            &metrics,
            "evault_grpc_requests_total",
            &[get, "code=\"UNAUTHENTICATED\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "evault_grpc_requests_total",
            &[get, "code=\"PERMISSION_DENIED\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "evault_grpc_requests_total",
            &[get, "code=\"OK\""]
        ),
        None,
        "a refused call is never counted as OK"
    );
    assert!(
        sample(
            &metrics,
            "evault_grpc_requests_total",
            &["method=\"/evault.v1.LogService/GetLogInfo\"", "code=\"OK\""]
        )
        .is_some(),
        "{metrics}"
    );
    assert!(
        metrics.contains("evault_grpc_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    // gRPC calls are not counted as HTTP requests with status 200.
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("evault_http_requests_total{") && l.contains("evault.v1")),
        "{metrics}"
    );
}

#[test]
fn grpc_over_tls() {
    let s = TestServer::start_with(|_| {}, true);
    let mut ev = evidence(&s, Some("ingester"));
    let put =
        s.rt.block_on(ev.put(pb::PutRequest {
            record: Some(record(b"over tls", &[])),
        }))
        .expect("put over TLS")
        .into_inner();
    assert_eq!(put.record.unwrap().leaf_index, 0);
}

#[test]
fn a_rate_limited_call_is_resource_exhausted_and_audited() {
    let s = TestServer::start_full(
        |_| {},
        |o| {
            o.rate_limit = Some(evault_server::RateLimit {
                per_second: 0.5,
                burst: 2,
            })
        },
        false,
    );
    let mut ev = evidence(&s, Some("ingester"));
    let codes: Vec<Code> = (0..4)
        .map(
            |_| match s.rt.block_on(ev.list(pb::ListRequest::default())) {
                Ok(_) => Code::Ok,
                Err(e) => e.code(),
            },
        )
        .collect();
    assert_eq!(codes[..2], [Code::Ok, Code::Ok]);
    assert_eq!(
        codes[2..],
        [Code::ResourceExhausted, Code::ResourceExhausted]
    );
    let events = wait_for_events(&s, "evidence.list", 4);
    let limited: Vec<_> = events.iter().filter(|e| e.status == 8).collect();
    assert_eq!(limited.len(), 2, "{events:?}");
    assert!(
        limited
            .iter()
            .all(|e| e.outcome == "denied" && e.reason.contains("rate limit"))
    );
}

/// A gRPC length-prefixed message frame.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

#[test]
fn a_message_that_does_not_decode_ends_the_stream_with_a_status_and_keeps_what_came_before() {
    use http_body_util::BodyExt as _;
    use prost::Message as _;
    use tower::ServiceExt as _;

    let s = TestServer::start();
    let mut body = Vec::new();
    for i in 0..3 {
        let m = pb::IngestRequest {
            record: Some(record(format!("{{\"ok\":{i}}}").as_bytes(), &[])),
        };
        body.extend(frame(&m.encode_to_vec()));
    }
    // Field 1, wire type 2, a length running past the end: not protobuf.
    body.extend(frame(&[0x0a, 0xff, 0x01]));
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/evault.v1.EvidenceService/IngestStream",
            s.grpc_addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", token_for("ingester")))
        .body(tonic::body::Body::new(http_body_util::Full::new(
            axum::body::Bytes::from(body),
        )))
        .unwrap();
    let ch = channel(&s);
    let (results, trailers) = s.rt.block_on(async {
        let resp = ch.oneshot(req).await.expect("call");
        let collected = resp.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().expect("trailers");
        let mut data = collected.to_bytes().to_vec();
        let mut results = Vec::new();
        while data.len() >= 5 {
            let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
            results.push(pb::IngestResult::decode(&data[5..5 + len]).unwrap());
            data.drain(..5 + len);
        }
        (results, trailers)
    });
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r.result, Some(pb::ingest_result::Result::Accepted(_))))
    );
    let status = tonic::Status::from_header_map(&trailers).expect("grpc-status");
    // gRPC's status code table: an unparseable request message is INTERNAL.
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(!status.message().is_empty());
    assert_eq!(s.vault.evidence_log().head().size, 3);
    let events = wait_for_events(&s, "evidence.stream", 1);
    assert_eq!(events[0].outcome, "failed");
    assert!(
        events[0].reason.contains("broke after 3 records"),
        "{:?}",
        events[0]
    );
}
