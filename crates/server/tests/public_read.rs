//! The public read of both logs as an outside monitor sees it: the audit
//! log followed without a token through C2SP tlog-tiles (`/tlog-audit/`),
//! its hash tiles checked against its signed checkpoint, its entry bundles
//! for auditors only; gzip of entry bundles as tlog-tiles says; CORS on the
//! public read routes only; origins from the public URL; a public route
//! answers a caller whose token does not verify.

mod common;

use std::io::Read as _;

use common::{Resp, TestServer, token_for};
use evault_merkle::tiles::{TileId, TileReader, TiledHashReader, parse_entry_bundle};
use evault_note::{Ed25519Verifier, Verifiers};
use serde_json::Value;

/// A GET with no Authorization header at all.
fn anon(s: &TestServer, path: &str, headers: &[(&str, &[u8])]) -> Resp {
    s.request_as(None, "GET", path, headers, b"")
}

fn as_key(s: &TestServer, key: &str, path: &str, headers: &[(&str, &[u8])]) -> Resp {
    s.request_as(Some(&token_for(key)), "GET", path, headers, b"")
}

/// Whether some `Vary` header of `r` names `field`.
fn varies_on(r: &Resp, field: &str) -> bool {
    r.headers.iter().filter(|(k, _)| k == "vary").any(|(_, v)| {
        String::from_utf8_lossy(v)
            .split(',')
            .any(|f| f.trim().eq_ignore_ascii_case(field))
    })
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Hash tiles fetched over HTTP without a token, as a monitor does.
struct HttpTiles<'a> {
    server: &'a TestServer,
    prefix: &'a str,
}

impl TileReader for HttpTiles<'_> {
    type Error = String;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, String> {
        tiles
            .iter()
            .map(|t| {
                let r = anon(self.server, &format!("{}/{}", self.prefix, t.path()), &[]);
                if r.status != 200 {
                    return Err(format!("{}: {} {}", t.path(), r.status, r.text()));
                }
                assert_eq!(
                    r.header("content-type").as_deref(),
                    Some("application/octet-stream")
                );
                Ok(r.body)
            })
            .collect()
    }
}

/// Waits (polling) until the audit log has a checkpoint of at least `size`.
fn wait_for_audit_checkpoint(s: &TestServer, size: u64) {
    s.rt.block_on(
        s.vault
            .audit_log()
            .unwrap()
            .wait_for_checkpoint(size, std::time::Duration::from_secs(20)),
    )
    .unwrap();
}

#[test]
fn the_audit_log_is_followed_without_a_token() {
    let s = TestServer::start();
    // Enough requests for a full level-0 tile and a partial one: every
    // request leaves an audit event.
    for i in 0..300 {
        let r = s.post(
            "/api/v1/evidence",
            &[("content-type", b"text/plain")],
            format!("record {i}").as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    wait_for_audit_checkpoint(&s, 300);

    // The audit log's identity, without a token.
    let info = anon(&s, "/api/v1/audit/log", &[]).ok_json();
    let origin = info["origin"].as_str().unwrap().to_string();
    assert_ne!(
        origin,
        anon(&s, "/api/v1/log", &[]).ok_json()["origin"],
        "each log has its own origin"
    );
    let key = Ed25519Verifier::from_verifier_key(info["verifier_key"].as_str().unwrap()).unwrap();
    let verifiers = Verifiers::new().with(key).unwrap();

    // Its checkpoint, as tlog-tiles serves it.
    let r = anon(&s, "/tlog-audit/checkpoint", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));
    let (cp, _) = evault_verify::open_checkpoint(&r.text(), &verifiers, Some(&origin))
        .expect("the audit checkpoint verifies with the audit key");
    assert!(cp.size >= 300, "{}", cp.size);

    // The root recomputed from the public hash tiles is the signed one.
    let reader = TiledHashReader {
        tiles: HttpTiles {
            server: &s,
            prefix: "/tlog-audit",
        },
        tree_size: cp.size,
    };
    let root = evault_merkle::root(&reader, cp.size).expect("tiles for the checkpoint");
    assert_eq!(root, cp.root_hash);

    // A consistency proof between two listed checkpoints, without a token.
    let page = anon(&s, "/api/v1/audit/checkpoints?limit=1000", &[]).ok_json();
    let items = page["items"].as_array().unwrap();
    assert!(items.len() >= 2, "{page}");
    let sizes: Vec<u64> = items.iter().map(|c| c["size"].as_u64().unwrap()).collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    for c in items {
        evault_verify::open_checkpoint(c["note"].as_str().unwrap(), &verifiers, Some(&origin))
            .expect("every listed audit checkpoint verifies");
    }
    let first = sizes.iter().copied().find(|&n| n > 0).unwrap();
    let proof = anon(
        &s,
        &format!("/api/v1/audit/consistency?from={first}&to={}", cp.size),
        &[],
    )
    .ok_json();
    assert_eq!(proof["to"], cp.size);
    // Paging: one at a time, the cursor leads on.
    let one = anon(&s, "/api/v1/audit/checkpoints?limit=1", &[]).ok_json();
    let cursor = one["next_cursor"].as_str().expect("a next page");
    let next = anon(
        &s,
        &format!("/api/v1/audit/checkpoints?limit=1&cursor={cursor}"),
        &[],
    )
    .ok_json();
    assert_eq!(next["items"][0]["size"], sizes[1]);
    for path in [
        "/api/v1/audit/checkpoints/latest",
        &format!("/api/v1/audit/checkpoints/{}", cp.size),
    ] {
        assert_eq!(anon(&s, path, &[]).status, 200, "{path}");
    }

    // Entry bundles name principals and operations: auditors only.
    let bundle = "/tlog-audit/tile/entries/000";
    let r = anon(&s, bundle, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(as_key(&s, "ingester", bundle, &[]).status, 403);
    assert_eq!(as_key(&s, "admin", bundle, &[]).status, 403);
    let r = as_key(&s, "auditor", bundle, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let entries = parse_entry_bundle(&r.body).unwrap();
    assert_eq!(entries.len(), 256);
    // Each entry hashes to its leaf in the public level-0 tile.
    let tile = anon(&s, "/tlog-audit/tile/0/000", &[]);
    assert_eq!(tile.status, 200);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            evault_merkle::leaf_hash(e).as_slice(),
            &tile.body[i * 32..(i + 1) * 32]
        );
        let event: Value = serde_json::from_slice(e).unwrap();
        assert!(event["operation"].is_string());
    }
    // A partial bundle at the checkpoint's width, too.
    let width = cp.size % 256;
    if width > 0 {
        let r = as_key(
            &s,
            "auditor",
            &format!("/tlog-audit/tile/entries/001.p/{width}"),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(parse_entry_bundle(&r.body).unwrap().len() as u64, width);
    }
    // No other path to a bundle: an escaped `entries` reaches the hash
    // tile route, which serves no bundles; and the vault would not give
    // one to a reader that may not see every event anyway.
    for key in [None, Some("ingester"), Some("auditor")] {
        for path in [
            "/tlog-audit/tile/entr%69es/000",
            "/tlog-audit/tile/%65ntries/000.p/3",
        ] {
            let r = match key {
                Some(k) => as_key(&s, k, path, &[]),
                None => anon(&s, path, &[]),
            };
            assert_eq!(r.status, 404, "{path} as {key:?}: {}", r.text());
        }
    }
    // The evidence log's entries stay public, and its prefix unchanged.
    assert_eq!(anon(&s, "/tlog/tile/entries/000.p/5", &[]).status, 200);
    assert_eq!(anon(&s, "/tlog/checkpoint", &[]).status, 200);
    // Malformed and absent tiles of the audit log.
    assert_eq!(anon(&s, "/tlog-audit/tile/0/0", &[]).status, 400);
    assert_eq!(anon(&s, "/tlog-audit/tile/0/x999/000", &[]).status, 404);
    assert_eq!(
        as_key(&s, "auditor", "/tlog-audit/tile/entries/9", &[]).status,
        400
    );
}

#[test]
fn public_reads_need_a_token_when_public_log_read_is_off() {
    let s = TestServer::start_full(|_| {}, |o| o.public_log_read = false, false);
    for path in [
        "/tlog-audit/checkpoint",
        "/api/v1/audit/checkpoints",
        "/tlog/checkpoint",
    ] {
        assert_eq!(anon(&s, path, &[]).status, 401, "{path}");
        assert_eq!(as_key(&s, "ingester", path, &[]).status, 200, "{path}");
    }
    // The served document says so.
    let doc = anon(&s, "/api/v1/openapi.json", &[]).ok_json();
    assert!(doc["paths"]["/tlog-audit/checkpoint"]["get"]["security"].is_null());
    assert!(doc["paths"]["/tlog-audit/checkpoint"]["get"]["responses"]["401"].is_object());
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
}

#[test]
fn entry_bundles_are_gzip_when_the_client_accepts_it() {
    let s = TestServer::start();
    for i in 0..20 {
        let r = s.post(
            "/api/v1/evidence",
            &[("content-type", b"application/json")],
            format!("{{\"n\": {i}, \"padding\": \"the same words again and again\"}}").as_bytes(),
        );
        assert_eq!(r.status, 201);
    }
    wait_for_audit_checkpoint(&s, 20);
    for (path, key) in [
        ("/tlog/tile/entries/000.p/20", None),
        ("/tlog-audit/tile/entries/000.p/20", Some("auditor")),
    ] {
        let get = |headers: &[(&str, &[u8])]| match key {
            Some(k) => as_key(&s, k, path, headers),
            None => anon(&s, path, headers),
        };
        let plain = get(&[]);
        assert_eq!(plain.status, 200, "{path}: {}", plain.text());
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert!(varies_on(&plain, "accept-encoding"), "{path}");
        assert_eq!(parse_entry_bundle(&plain.body).unwrap().len(), 20);

        let zipped = get(&[("accept-encoding", b"gzip, identity")]);
        assert_eq!(zipped.status, 200);
        assert_eq!(zipped.header("content-encoding").as_deref(), Some("gzip"));
        assert!(varies_on(&zipped, "accept-encoding"), "{path}");
        assert_eq!(
            zipped.header("content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert!(zipped.body.len() < plain.body.len(), "{path}");
        assert_eq!(gunzip(&zipped.body), plain.body, "{path}");

        // gzip refused explicitly: identity.
        let refused = get(&[("accept-encoding", b"gzip;q=0, identity")]);
        assert_eq!(refused.header("content-encoding"), None);
        assert_eq!(refused.body, plain.body);
    }
    // Hash tiles are never compressed (hashes do not compress).
    let tile = anon(&s, "/tlog/tile/0/000.p/20", &[("accept-encoding", b"gzip")]);
    assert_eq!(tile.status, 200);
    assert_eq!(tile.header("content-encoding"), None);
    assert_eq!(tile.body.len(), 20 * 32);
}

const ORIGIN: (&str, &[u8]) = ("origin", b"https://verifier.example");

#[test]
fn cors_on_public_read_routes_only() {
    let s = TestServer::start();
    let r = s.post("/api/v1/evidence", &[("content-type", b"text/plain")], b"x");
    assert_eq!(r.status, 201);
    s.wait_for_checkpoint(1);

    for path in [
        "/tlog/checkpoint",
        "/tlog/tile/0/000.p/1",
        "/tlog-audit/checkpoint",
        "/api/v1/log",
        "/api/v1/audit/log",
        "/api/v1/checkpoints",
        "/api/v1/audit/checkpoints",
        "/api/v1/checkpoints/latest",
        "/healthz",
        "/api/v1/openapi.json",
    ] {
        let r = anon(&s, path, &[ORIGIN]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
        assert!(
            r.header("access-control-expose-headers")
                .is_some_and(|h| h.contains("x-request-id")),
            "{path}"
        );
        assert_eq!(r.header("access-control-allow-credentials"), None);
    }
    // A refusal of a public read carries them too (a browser can read it).
    let r = anon(&s, "/tlog/tile/0/x999/000", &[ORIGIN]);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    // Routes that need a token: none, whether allowed or refused.
    for (path, key) in [
        ("/api/v1/evidence", Some("auditor")),
        ("/api/v1/audit", Some("auditor")),
        ("/metrics", Some("admin")),
        ("/api/v1/whoami", Some("auditor")),
        ("/tlog-audit/tile/entries/000.p/1", Some("auditor")),
        ("/tlog-audit/tile/entries/000.p/1", None),
        ("/api/v1/evidence", None),
    ] {
        let r = match key {
            Some(k) => as_key(&s, k, path, &[ORIGIN]),
            None => anon(&s, path, &[ORIGIN]),
        };
        assert!(matches!(r.status, 200 | 401), "{path}: {}", r.status);
        assert_eq!(r.header("access-control-allow-origin"), None, "{path}");
    }

    // A preflight of a public read is answered, audited, and allows GET
    // with no credentials and no Authorization header.
    let pre = s.request_as(
        None,
        "OPTIONS",
        "/tlog-audit/checkpoint",
        &[ORIGIN, ("access-control-request-method", b"GET")],
        b"",
    );
    assert!(pre.status == 200 || pre.status == 204, "{}", pre.status);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let methods = pre.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("GET") && !methods.contains("POST"),
        "{methods}"
    );
    assert!(pre.header("access-control-max-age").is_some());
    assert_eq!(pre.header("access-control-allow-credentials"), None);
    assert!(
        !pre.header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("authorization")
    );
    let id = pre
        .header("x-request-id")
        .expect("audited like any request");
    let event = common::wait_for_audit_event(&s, &id);
    assert_eq!(event.operation, "cors.preflight");
    assert_eq!(event.principal, common::ANONYMOUS);

    // A preflight of a route that needs a token, or of a write: no CORS.
    for (path, method) in [
        ("/api/v1/evidence", "GET"),
        ("/api/v1/evidence", "POST"),
        ("/tlog-audit/tile/entries/000.p/1", "GET"),
        ("/tlog/checkpoint", "DELETE"),
    ] {
        let pre = s.request_as(
            None,
            "OPTIONS",
            path,
            &[ORIGIN, ("access-control-request-method", method.as_bytes())],
            b"",
        );
        assert_eq!(pre.status, 405, "{method} {path}");
        assert_eq!(
            pre.header("access-control-allow-origin"),
            None,
            "{method} {path}"
        );
    }
}

#[test]
fn public_routes_answer_a_caller_whose_token_does_not_verify() {
    let s = TestServer::start();
    for path in ["/healthz", "/api/v1/log", "/tlog-audit/checkpoint"] {
        let r = s.request_as(Some("not.a.token"), "GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // Where a token is needed, it is still refused.
    let r = s.request_as(Some("not.a.token"), "GET", "/api/v1/evidence", &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn a_public_url_gives_the_origins_and_the_documents_server() {
    let s = TestServer::start_with(
        |c| {
            c.origin = None;
            c.public_url = Some("https://vault.example.com/evault/".into());
        },
        false,
    );
    let log = anon(&s, "/api/v1/log", &[]).ok_json();
    assert_eq!(log["origin"], "vault.example.com/evault/tlog");
    let audit = anon(&s, "/api/v1/audit/log", &[]).ok_json();
    assert_eq!(audit["origin"], "vault.example.com/evault/tlog-audit");
    let cp = anon(&s, "/tlog-audit/checkpoint", &[]);
    assert!(
        cp.text()
            .starts_with("vault.example.com/evault/tlog-audit\n"),
        "{}",
        cp.text()
    );
    let doc = anon(&s, "/api/v1/openapi.json", &[]).ok_json();
    assert_eq!(doc["servers"][0]["url"], "https://vault.example.com/evault");
}
