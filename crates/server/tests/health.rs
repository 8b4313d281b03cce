//! Liveness never depends on the audit trail; readiness says why the vault
//! cannot work.

mod common;

use common::TestServer;

#[test]
fn with_the_sequencer_stopped_healthz_answers_and_readyz_says_why() {
    let s = TestServer::start();
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);

    // Nothing can be committed any more: no audit event either.
    s.rt.block_on(s.vault.shutdown()).unwrap();
    let live = s.get("/healthz");
    assert_eq!(live.status, 200, "{}", live.text());
    let ready = s.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(
        ready.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let detail = ready.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.contains("sequencer"), "{detail}");
    // Everything else that needs its audit event refuses cleanly.
    let put = s.post("/api/v1/evidence", &[("content-type", b"text/plain")], b"x");
    assert_eq!(put.status, 503, "{}", put.text());
}
