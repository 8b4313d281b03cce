//! Token times over real HTTP: an expired token is refused the second it
//! expires (no leeway on `exp`), while the leeway (60 s by default) still
//! absorbs an issuer clock that runs ahead (`nbf`, `iat`).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::TestServer;
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 token of test key `ingester` (see `common::test_key`) with
/// these time claims.
fn token(times: Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "ingester"});
    let mut claims = json!({"sub": "test:ingester", "roles": ["ingester"]});
    for (k, v) in times.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        format!("{:-<40}", "ingester").as_bytes(),
    );
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn whoami(s: &TestServer, token: &str) -> common::Resp {
    s.request_as(Some(token), "GET", "/api/v1/whoami", &[], b"")
}

#[test]
fn an_expired_token_is_refused_at_once() {
    let s = TestServer::start();
    let t = now();
    // Expired one second ago: well inside the 60 s leeway, still refused.
    for exp in [t - 1, t] {
        let r = whoami(&s, &token(json!({"iat": t - 600, "exp": exp})));
        assert_eq!(r.status, 401, "exp = now{:+}: {}", exp - t, r.text());
        assert!(r.text().contains("expired"), "{}", r.text());
        let www = r.header("www-authenticate").unwrap();
        assert!(www.contains("invalid_token"), "{www}");
    }
    // Valid until its last second.
    let r = whoami(&s, &token(json!({"iat": t - 600, "exp": t + 30})));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_leeway_still_covers_nbf_and_iat_in_the_future() {
    let s = TestServer::start();
    let t = now();
    // An issuer whose clock runs 30 s ahead: accepted.
    let r = whoami(
        &s,
        &token(json!({"iat": t + 30, "nbf": t + 30, "exp": t + 600})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["principal"], "test:ingester");
    // Beyond the leeway: not yet valid.
    let r = whoami(
        &s,
        &token(json!({"iat": t, "nbf": t + 600, "exp": t + 1200})),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("not valid yet"), "{}", r.text());
}
