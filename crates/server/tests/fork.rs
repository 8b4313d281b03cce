//! Once the vault refuses to sign a fork, `/readyz` says so (503 with the
//! reason as problem+json), and so does gRPC health (NOT_SERVING), while the
//! rest keeps serving what it has.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ORIGIN, TestServer};
use evault_vault::{HeadKey, HeadStore, Result, SignedHead, SignedHeadStore};

/// Heads held in memory by the test, keyed by origin (standing in for an
/// HSM, and for another copy of the log signing with the same key).
#[derive(Clone, Default)]
struct MemHeads(Arc<Mutex<BTreeMap<String, SignedHead>>>);

impl SignedHeadStore for MemHeads {
    fn load(&self, log: HeadKey<'_>) -> Result<Option<SignedHead>> {
        Ok(self.0.lock().unwrap().get(log.origin).cloned())
    }
    fn save(&self, log: HeadKey<'_>, head: &SignedHead) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .insert(log.origin.to_string(), head.clone());
        Ok(())
    }
    fn describe(&self, log: HeadKey<'_>) -> String {
        format!("memory:{}", log.origin)
    }
}

#[test]
fn readiness_fails_with_the_reason_once_a_fork_is_refused() {
    let heads = MemHeads::default();
    let h = heads.clone();
    let s = TestServer::start_with(move |c| c.head_store = Some(HeadStore(Arc::new(h))), false);
    let put = |body: &[u8]| {
        let r = s.post("/api/v1/evidence", &[("Content-Type", b"text/plain")], body);
        assert_eq!(r.status, 201, "{}", r.text());
    };
    put(b"one");
    s.wait_for_checkpoint(1);
    assert_eq!(s.get("/readyz").status, 200);

    // Someone else signed another tree of size 1 with this log's key.
    heads
        .0
        .lock()
        .unwrap()
        .get_mut(ORIGIN)
        .expect("the evidence head")
        .root = [5; 32];
    put(b"two");
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = s.get("/readyz");
        if r.status != 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "/readyz stayed 200 after a fork");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/problem+json")
    );
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("refusing to sign a fork of the evidence log"),
        "{detail}"
    );
    // gRPC health follows the same readiness.
    let channel =
        s.rt.block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc_addr))
                .unwrap()
                .connect(),
        )
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "evault.v1.LogService"] {
        let status =
            s.rt.block_on(health.check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            }))
            .expect("health check")
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
    // Reads still work; the refused tree was never signed.
    let log = s.get("/api/v1/log").json();
    assert_eq!(log["tree_size"], 2);
    assert_eq!(log["checkpoint_size"], 1);
}
