//! Two nodes on one PostgreSQL database, each serving REST and gRPC: a call
//! to the standby is passed to the leader, which decides, audits and
//! answers it; only a node's own probes stay local. Each test creates and
//! drops its own database; without a server they skip loudly
//! (`EVAULT_REQUIRE_POSTGRES=1` makes them fail).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestServer, token_for, wait_for_audit_event};
use evault_proto::v1 as pb;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_server::ClusterSecret;
use evault_store::testing::postgres::TestDb;
use evault_vault::{Role, StoreLocation};
use evault_verify::Outcome;
use tonic::metadata::MetadataValue;

const SECRET: &str = "a-cluster-secret-of-the-test";

/// Node `name` on the database at `url`; a standby takes the leader's log
/// keys from `keys` (every node signs with the same keys).
fn node(url: &str, name: &str, keys: Option<&Path>, secret: Option<&str>) -> TestServer {
    node_with(
        url,
        name,
        keys,
        |o| o.cluster_secret = secret.map(|s| ClusterSecret::new(s).unwrap()),
        false,
    )
}

/// [`node`] serving TLS (the fixture certificate, for `localhost`) or
/// not, with its server options set by `server`.
fn node_with(
    url: &str,
    name: &str,
    keys: Option<&Path>,
    server: impl FnOnce(&mut evault_server::ServerOptions),
    tls: bool,
) -> TestServer {
    TestServer::start_full(
        |c| {
            c.store = StoreLocation::Postgres(url.into());
            c.lease.node = Some(name.into());
            if let Some(from) = keys {
                std::fs::create_dir_all(&c.data_dir).unwrap();
                for k in ["log.key", "audit.key"] {
                    std::fs::copy(from.join(k), c.data_dir.join(k)).unwrap();
                }
            }
        },
        server,
        tls,
    )
}

fn data_dir(s: &TestServer) -> std::path::PathBuf {
    s.dir.path().join("data")
}

/// Polls `done` for at most a minute.
fn eventually(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One GET with `headers` on a connection of our own: the answer's request
/// id, and the address the request came from.
fn get_from(to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, SocketAddr) {
    let mut tcp = TcpStream::connect(to).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let from = tcp.local_addr().unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {}\r\n",
        token_for("all")
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let id = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_string)
        })
        .expect("a request id");
    (status, id, from)
}

type Auth = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

fn evidence_client(
    s: &TestServer,
) -> EvidenceServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>,
> {
    let endpoint = if s.tls {
        let ca = std::fs::read(common::fixture("ca.pem")).unwrap();
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", s.grpc_addr.port()))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )
            .unwrap()
    } else {
        tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc_addr)).unwrap()
    };
    let channel = s.rt.block_on(endpoint.connect()).expect("connect");
    let bearer: MetadataValue<_> = format!("Bearer {}", token_for("ingester")).parse().unwrap();
    let auth: Auth = Box::new(move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", bearer.clone());
        Ok(req)
    });
    EvidenceServiceClient::with_interceptor(channel, auth)
}

fn record(payload: &[u8]) -> pb::Record {
    pb::Record {
        content_type: "text/plain".into(),
        payload: payload.to_vec(),
        labels: Default::default(),
        idempotency_key: String::new(),
    }
}

/// REST and gRPC calls to a standby are the leader's: written there,
/// audited there with the caller's own address, refused there; the
/// standby is ready, and answers its own probes.
#[test]
fn a_standby_passes_calls_to_the_leader() {
    let Some(db) = TestDb::create("a_standby_passes_calls_to_the_leader") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let leader = node(db.url(), "node-1", None, Some(SECRET));
    assert!(leader.vault.role().is_leader());
    let standby = node(db.url(), "node-2", Some(&data_dir(&leader)), Some(SECRET));
    let role = standby.vault.role();
    assert!(
        matches!(&role, Role::Standby { holder, .. } if holder == "node-1"),
        "{role:?}"
    );
    assert_eq!(
        role.forward_to().unwrap().rest,
        Some(format!("http://{}", leader.addr))
    );
    let ready = standby.get("/readyz");
    assert_eq!(
        ready.status,
        200,
        "a standby that forwards is ready: {}",
        ready.text()
    );

    // A put through the standby: the leader's answer, after its commit.
    let put = standby.post(
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"through the standby",
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let v = put.json();
    assert_eq!(v["record"]["leaf_index"], 0);
    let id = v["record"]["id"].as_str().unwrap().to_string();
    assert_eq!(leader.vault.evidence_log().head().size, 1);
    let event = wait_for_audit_event(&leader, &put.header("x-request-id").unwrap());
    assert_eq!((event.status, event.outcome), (201, Outcome::Success));
    eventually(
        || standby.vault.evidence_log().head().size == 1,
        "the standby to follow the leader's head",
    );
    let got = standby.get(&format!("/api/v1/evidence/{id}/payload"));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"through the standby");

    // A refusal is the leader's too, and audited there.
    let refused = standby.request_as(
        Some("not-a-token"),
        "POST",
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"refused",
    );
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(refused.header("www-authenticate").is_some());
    let event = wait_for_audit_event(&leader, &refused.header("x-request-id").unwrap());
    assert_eq!(event.outcome, Outcome::Unauthenticated);

    // The leader records the caller's address the standby saw...
    let (status, rid, from) = get_from(standby.addr, "/api/v1/log", &[]);
    assert_eq!(status, 200);
    assert_eq!(wait_for_audit_event(&leader, &rid).client, from.to_string());
    // ...but only from a node that knows the secret.
    let forged = [("x-evault-forwarded-client", "192.0.2.7:4711")];
    let (_, rid, from) = get_from(
        leader.addr,
        "/api/v1/log",
        &[
            forged[0],
            ("x-evault-cluster-secret", "not-the-secret-of-it"),
        ],
    );
    assert_eq!(wait_for_audit_event(&leader, &rid).client, from.to_string());
    let (_, rid, _) = get_from(
        leader.addr,
        "/api/v1/log",
        &[forged[0], ("x-evault-cluster-secret", SECRET)],
    );
    assert_eq!(wait_for_audit_event(&leader, &rid).client, "192.0.2.7:4711");

    // One hop only: a forwarded call to a node that does not lead is
    // refused there, naming the leader.
    let looped = standby.post(
        "/api/v1/evidence",
        &[
            ("content-type", b"text/plain"),
            ("x-evault-forwarded", b"1"),
        ],
        b"looped",
    );
    assert_eq!(looped.status, 503, "{}", looped.text());
    assert!(looped.header("retry-after").is_some());
    assert!(looped.text().contains("node-1"), "{}", looped.text());

    // gRPC through the standby: a put, then a stream (HTTP/2 both ways,
    // the status in trailers).
    let mut ev = evidence_client(&standby);
    let put = standby
        .rt
        .block_on(ev.put(pb::PutRequest {
            record: Some(record(b"over gRPC")),
        }))
        .expect("put through the standby")
        .into_inner();
    assert_eq!(put.record.unwrap().leaf_index, 1);
    let n = 200;
    let requests: Vec<pb::IngestRequest> = (0..n)
        .map(|i| pb::IngestRequest {
            record: Some(record(format!("streamed {i}").as_bytes())),
        })
        .collect();
    let results = standby.rt.block_on(async {
        let mut out = ev
            .ingest_stream(futures_util::stream::iter(requests))
            .await
            .expect("stream")
            .into_inner();
        let mut v = Vec::new();
        while let Some(r) = out.message().await.expect("result") {
            v.push(r);
        }
        v
    });
    assert_eq!(results.len(), n);
    for (i, r) in results.iter().enumerate() {
        match r.result.as_ref().unwrap() {
            pb::ingest_result::Result::Accepted(a) => assert_eq!(a.leaf_index, 2 + i as u64),
            other => panic!("{i}: {other:?}"),
        }
    }
    assert_eq!(leader.vault.evidence_log().head().size, 2 + n as u64);
    let mut metrics = standby.get("/metrics").text();
    metrics.retain(|c| c != '"');
    assert!(
        metrics.contains("evault_forwarded_calls_total{api=grpc}")
            && metrics.contains("evault_forwarded_calls_total{api=rest}"),
        "the standby counts what it forwards (its own /metrics): {}",
        metrics
            .lines()
            .filter(|l| l.contains("forward"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A standby whose leader does not answer says so (503, Retry-After,
/// naming it); once the leader's lease is given up, the standby leads and
/// answers the same calls itself.
#[test]
fn a_standby_answers_itself_once_it_leads() {
    let Some(db) = TestDb::create("a_standby_answers_itself_once_it_leads") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let mut leader = node(db.url(), "node-1", None, None);
    let standby = node(db.url(), "node-2", Some(&data_dir(&leader)), None);
    let first = standby.post(
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"one",
    );
    assert_eq!(first.status, 201, "{}", first.text());

    // The leader's server stops; its vault still holds the lease.
    leader.stop().unwrap();
    let gone = standby.post(
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"two",
    );
    assert_eq!(gone.status, 503, "{}", gone.text());
    assert!(gone.header("retry-after").is_some());
    assert!(
        gone.text().contains("could not reach the leader") && gone.text().contains("node-1"),
        "{}",
        gone.text()
    );

    leader.rt.block_on(leader.vault.shutdown()).unwrap();
    eventually(
        || standby.vault.role().is_leader(),
        "the standby to take the lease",
    );
    let two = standby.post(
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"two",
    );
    assert_eq!(two.status, 201, "{}", two.text());
    assert_eq!(two.json()["record"]["leaf_index"], 1);
    let event = wait_for_audit_event(&standby, &two.header("x-request-id").unwrap());
    assert_eq!(event.status, 201);
}

/// TLS between nodes: a leader serving TLS advertises `https://`, and a
/// standby that trusts the cluster's CA forwards REST and gRPC calls to it
/// over TLS (HTTP/2 by ALPN for gRPC). A standby that trusts only the
/// system's roots does not send the call unverified: it answers 503 with
/// Retry-After, naming the certificate error, and nothing is written.
#[test]
fn a_standby_forwards_over_tls_only_to_a_verified_leader() {
    let Some(db) = TestDb::create("a_standby_forwards_over_tls_only_to_a_verified_leader") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let ca = evault_server::ClusterRoots::from_pem_file(&common::fixture("ca.pem")).unwrap();
    let leader = node_with(db.url(), "node-1", None, |_| {}, true);
    assert!(leader.vault.role().is_leader());
    let keys = data_dir(&leader);
    let standby = node_with(
        db.url(),
        "node-2",
        Some(&keys),
        |o| o.cluster_roots = ca,
        true,
    );
    assert_eq!(
        standby.vault.role().forward_to().unwrap().rest,
        Some(format!("https://localhost:{}", leader.addr.port()))
    );
    let put = standby.post(
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"over TLS, through the standby",
    );
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.json()["record"]["leaf_index"], 0);
    let event = wait_for_audit_event(&leader, &put.header("x-request-id").unwrap());
    assert_eq!((event.status, event.outcome), (201, Outcome::Success));
    let mut ev = evidence_client(&standby);
    let grpc_put = standby
        .rt
        .block_on(ev.put(pb::PutRequest {
            record: Some(record(b"gRPC over TLS, through the standby")),
        }))
        .expect("a gRPC put through the standby")
        .into_inner();
    assert_eq!(grpc_put.record.unwrap().leaf_index, 1);
    assert_eq!(leader.vault.evidence_log().head().size, 2);

    // The fixture's CA is no system root: this standby cannot verify the
    // leader, so it forwards nothing.
    let doubter = node_with(db.url(), "node-3", Some(&keys), |_| {}, true);
    let refused = doubter.post(
        "/api/v1/evidence",
        &[("content-type", b"text/plain")],
        b"never sent",
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused.text().contains("could not reach the leader")
            && refused.text().contains("certificate"),
        "{}",
        refused.text()
    );
    let mut ev = evidence_client(&doubter);
    let status = doubter
        .rt
        .block_on(ev.put(pb::PutRequest {
            record: Some(record(b"never sent either")),
        }))
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("certificate"), "{status:?}");
    assert_eq!(leader.vault.evidence_log().head().size, 2);
}
