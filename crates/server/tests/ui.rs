//! The dashboard's routes (`/ui/`): what they serve, the security headers
//! on every reply, no token needed and no CORS; and the counts its charts
//! read (`/api/v1/stats/evidence`, `/api/v1/audit/stats`), scoped like the
//! records they count, plus the `ingested_by` filter of the evidence list.

mod common;

use std::path::Path;

use common::{Resp, TestServer, token_for};
use evault_server::DashboardOidc;
use serde_json::Value;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; form-action 'none'; frame-ancestors 'none'; \
                   base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

fn anon(s: &TestServer, path: &str, headers: &[(&str, &[u8])]) -> Resp {
    s.request_as(None, "GET", path, headers, b"")
}

fn as_key(s: &TestServer, key: &str, path: &str) -> Resp {
    s.request_as(Some(&token_for(key)), "GET", path, &[], b"")
}

fn assert_secure(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some(CSP),
        "{what}"
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        r.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        r.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        r.header("cross-origin-opener-policy").as_deref(),
        Some("same-origin"),
        "{what}"
    );
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "{what}: the dashboard is same-origin only"
    );
}

/// Every file under web/public, as the server must embed it.
fn public_files() -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let name = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.push((name, std::fs::read(&p).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/public");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn the_page_and_every_asset_are_served_without_a_token_under_a_strict_policy() {
    let s = TestServer::start();
    let config = anon(&s, "/ui/config.json", &[]);
    assert_eq!(config.status, 200, "{}", config.text());
    assert_secure(&config, "config");
    let config = config.json();
    let version = config["version"].as_str().unwrap().to_string();
    assert_eq!(version.len(), 12);
    assert_eq!(config["oidc"], Value::Array(vec![]));

    let page = anon(
        &s,
        "/ui/",
        &[("origin", b"https://elsewhere.example" as &[u8])],
    );
    assert_eq!(page.status, 200);
    assert_secure(&page, "page");
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control").as_deref(), Some("no-cache"));
    let html = page.text();
    assert!(!html.contains("%V%"), "the version is filled in");
    assert!(html.contains(&format!("/ui/s/{version}/")), "{html}");

    let files = public_files();
    assert!(files.iter().any(|(n, _)| n == "index.html"), "{files:?}");
    for (name, bytes) in &files {
        if name == "index.html" {
            continue;
        }
        let r = anon(&s, &format!("/ui/s/{version}/{name}"), &[]);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(&r.body, bytes, "{name} is served as it is in web/public");
        assert_secure(&r, name);
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("public, max-age=31536000, immutable"),
            "{name}"
        );
        let ct = r.header("content-type").unwrap();
        if name.ends_with(".js") {
            assert_eq!(ct, "text/javascript; charset=utf-8", "{name}");
        } else if name.ends_with(".css") {
            assert_eq!(ct, "text/css; charset=utf-8", "{name}");
        }
    }

    // Another version, index.html by its asset path, a traversal, or a
    // file that is not there: 404 problem, with the same headers.
    let first = &files.iter().find(|(n, _)| n != "index.html").unwrap().0;
    for bad in [
        format!("/ui/s/000000000000/{first}"),
        format!("/ui/s/{version}/index.html"),
        format!("/ui/s/{version}/../../Cargo.toml"),
        format!("/ui/s/{version}/%2e%2e/Cargo.toml"),
        format!("/ui/s/{version}/nope.js"),
        format!("/ui/s/{version}"),
    ] {
        let r = anon(&s, &bad, &[]);
        assert_eq!(r.status, 404, "{bad}: {}", r.text());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{bad}"
        );
        assert_secure(&r, &bad);
    }
}

#[test]
fn oidc_token_endpoints_are_the_only_other_origins_the_page_may_call() {
    let s = TestServer::start_full(
        |_| {},
        |o| {
            o.dashboard_oidc = vec![DashboardOidc {
                issuer: "https://id.example".into(),
                client_id: "evault-dashboard".into(),
                authorization_endpoint: "https://id.example/authorize".into(),
                token_endpoint: "https://tokens.example:8443/oauth/token".into(),
                scope: "openid".into(),
                token: "id_token".into(),
            }]
        },
        false,
    );
    let r = anon(&s, "/ui/", &[]);
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self' https://tokens.example:8443;"),
        "{csp}"
    );
    let config = anon(&s, "/ui/config.json", &[]).json();
    assert_eq!(config["oidc"][0]["client_id"], "evault-dashboard");
    assert_eq!(config["oidc"][0]["token"], "id_token");
}

fn put(s: &TestServer, key: &str, content_type: &str) -> Value {
    // A payload of its own, so no put is a duplicate of another.
    let body = format!("{{\"n\":\"{}\"}}", uuid_like());
    let r = s.request_as(
        Some(&token_for(key)),
        "POST",
        "/api/v1/evidence",
        &[("content-type", content_type.as_bytes())],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[test]
fn stats_count_what_the_caller_may_see() {
    let s = TestServer::start();
    put(&s, "ingester", "application/json");
    put(&s, "ingester", "application/json");
    put(&s, "ingester", "text/plain");
    put(&s, "other-ingester", "application/json");

    // An explicit end an hour ahead: the default (now) would leave out a
    // record stamped in the very millisecond of the query.
    let later = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let all = as_key(
        &s,
        "auditor",
        &format!("/api/v1/stats/evidence?until={later}"),
    )
    .ok_json();
    assert_eq!(all["bucket"], "hour");
    assert_eq!(all["total"], 4, "{all}");
    let buckets: u64 = all["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(buckets, 4);
    assert!(
        all["buckets"][0]["start"]
            .as_str()
            .unwrap()
            .ends_with(":00:00.000Z"),
        "{all}"
    );
    assert_eq!(all["content_types"][0]["content_type"], "application/json");
    assert_eq!(all["content_types"][0]["count"], 3);
    assert_eq!(all["content_types"][1]["content_type"], "text/plain");
    assert_eq!(all["ingested_by"], Value::Null);

    let own = as_key(
        &s,
        "ingester",
        &format!("/api/v1/stats/evidence?bucket=day&until={later}"),
    )
    .ok_json();
    assert_eq!(own["bucket"], "day");
    assert_eq!(own["total"], 3, "{own}");
    assert_eq!(own["ingested_by"], "test:ingester");

    for bad in [
        "/api/v1/stats/evidence?bucket=minute",
        "/api/v1/stats/evidence?since=2020-01-01T00:00:00Z",
        "/api/v1/stats/evidence?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/api/v1/stats/evidence?bogus=1",
        // Exactly 1000 hours, but touching 1001 hour buckets.
        "/api/v1/stats/evidence?since=2026-01-01T00:30:00Z&until=2026-02-11T16:30:00Z",
        // Times a reply could not write back: past year 9999, before 1970.
        "/api/v1/stats/evidence?since=9999-12-31T23:00:00Z&until=9999-12-31T23:59:60Z",
        "/api/v1/stats/evidence?since=9999-12-31T23:00:00Z&until=9999-12-31T23:30:00-01:00",
        "/api/v1/stats/evidence?since=1969-12-31T23:00:00Z&until=1970-01-01T01:00:00Z",
        "/api/v1/audit/stats?since=9999-12-31T23:00:00Z&until=9999-12-31T23:59:60Z",
        "/api/v1/audit/stats?since=2026-01-01T00:00:00Z&until=2026-03-01T00:00:00Z",
        "/api/v1/analytics/summary?until=9999-12-31T23:59:60Z",
    ] {
        let r = as_key(&s, "auditor", bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json")
        );
    }

    // Exactly 1000 aligned buckets is allowed.
    let r = as_key(
        &s,
        "auditor",
        "/api/v1/stats/evidence?since=2026-01-01T00:00:00Z&until=2026-02-11T16:00:00Z",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Audit outcomes: the refused call below is denied (its event is
    // durable before the reply); the eleven 400s above failed (read events
    // are queued for the next group commit, so they are polled for).
    assert_eq!(as_key(&s, "ingester", "/api/v1/audit/stats").status, 403);
    let path = format!("/api/v1/audit/stats?until={later}");
    let count = |r: &Value, outcome: &str| {
        r["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["outcome"] == outcome)
            .map_or(0, |o| o["count"].as_u64().unwrap())
    };
    let outcomes = poll(|| {
        let r = as_key(&s, "auditor", &path).ok_json();
        (count(&r, "failed") == 11).then_some(r)
    });
    assert_eq!(count(&outcomes, "denied"), 1, "{outcomes}");
    assert_eq!(count(&outcomes, "unauthenticated"), 0, "{outcomes}");
    let total: u64 = outcomes["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    assert_eq!(outcomes["total"].as_u64(), Some(total));
    // 4 puts, 2 stats and the 1000-bucket read at least.
    assert!(count(&outcomes, "success") >= 7, "{outcomes}");
}

#[test]
fn assets_are_neither_rate_limited_nor_awaited_but_the_api_is() {
    let s = TestServer::start_full(
        |_| {},
        |o| {
            o.rate_limit = Some(evault_server::RateLimit {
                per_second: 0.001,
                burst: 2,
            })
        },
        false,
    );
    let version = anon(&s, "/ui/config.json", &[]).json()["version"]
        .as_str()
        .unwrap()
        .to_string();
    let asset = public_files()
        .into_iter()
        .find(|(n, _)| n != "index.html")
        .unwrap()
        .0;
    // Far more asset fetches than the anonymous burst allows.
    for _ in 0..20 {
        let r = anon(&s, &format!("/ui/s/{version}/{asset}"), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The page itself and the API are limited: the burst of 2 is spent by
    // config.json above and one page; the next is refused.
    assert_eq!(anon(&s, "/ui/", &[]).status, 200);
    let r = anon(&s, "/ui/", &[]);
    assert_eq!(r.status, 429, "{}", r.text());
}

#[test]
fn an_ingester_filtering_by_another_principal_sees_nothing() {
    let s = TestServer::start();
    put(&s, "ingester", "application/json");
    put(&s, "other-ingester", "application/json");
    let mine = as_key(&s, "ingester", "/api/v1/evidence?ingested_by=test:ingester").ok_json();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let theirs = as_key(&s, "ingester", "/api/v1/evidence?ingested_by=test:other").ok_json();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0, "{theirs}");
    let auditor = as_key(&s, "auditor", "/api/v1/evidence?ingested_by=test:other").ok_json();
    assert_eq!(auditor["items"].as_array().unwrap().len(), 1);
    assert_eq!(auditor["items"][0]["ingested_by"], "test:other");
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` until it gives a value (a read's audit event is committed
/// after its reply is sent).
fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("condition not reached");
}
