//! Every malformed request gets a 4xx problem+json reply, never a 5xx, and
//! leaves the log exactly as it was.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{TestServer, chunked};
use serde_json::Value;

const MAX_UPLOAD: u64 = 1000;

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    /// Expected status; 0 means any 4xx.
    status: u16,
}

fn case(name: &'static str, method: &'static str, path: impl Into<String>, status: u16) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        status,
    }
}

impl Case {
    fn header(mut self, k: &'static str, v: impl AsRef<[u8]>) -> Case {
        self.headers.push((k, v.as_ref().to_vec()));
        self
    }
    fn body(mut self, b: impl AsRef<[u8]>) -> Case {
        self.body = b.as_ref().to_vec();
        self
    }
    fn envelope(self, json: &str) -> Case {
        self.header("Content-Type", "application/vnd.evault.evidence+json")
            .body(json)
    }
}

#[test]
fn bad_input_is_a_4xx_problem_and_changes_nothing() {
    let s = TestServer::start_with(|c| c.max_upload = MAX_UPLOAD, false);
    // One good record, checkpointed, for the proof and tile cases.
    let ok = s.post(
        "/api/v1/evidence",
        &[("Content-Type", b"text/plain")],
        b"the one record",
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    let id = ok.json()["record"]["id"].as_str().unwrap().to_string();
    s.wait_for_checkpoint(1);
    let before = s.census();
    assert_eq!(before, (1, 1));

    let ev = "/api/v1/evidence";
    let b64 = |b: &[u8]| STANDARD.encode(b);
    let big_env = format!(
        r#"{{"content_type":"text/plain","payload_base64":"{}"}}"#,
        b64(&vec![b'x'; MAX_UPLOAD as usize + 1])
    );
    let huge_env = format!(
        r#"{{"content_type":"text/plain","payload_base64":"{}"}}"#,
        "A".repeat(200_000)
    );
    let many_labels: String = (0..33).map(|i| format!("label=k{i}=v&")).collect();
    // A well-formed cursor of the checkpoint list, used where an evidence
    // cursor is expected.
    let checkpoint_cursor =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b'c', 0, 0, 0, 0, 0, 0, 0, 0]);
    let evidence_cursor =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([b'e', 0, 0, 0, 0, 0, 0, 0, 0]);
    let text: (&str, &str) = ("Content-Type", "text/plain");

    let cases = vec![
        // JSON envelope.
        case("envelope: not JSON", "POST", ev, 400).envelope("{not json"),
        case("envelope: empty body", "POST", ev, 400).envelope(""),
        case("envelope: JSON array", "POST", ev, 400).envelope("[1,2]"),
        case("envelope: missing payload", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain"}"#),
        case("envelope: missing content_type", "POST", ev, 400)
            .envelope(r#"{"payload_base64":""}"#),
        case("envelope: unknown member", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain","payload_base64":"","extra":1}"#),
        case("envelope: bad base64", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain","payload_base64":"!!!not base64"}"#),
        case("envelope: unpadded base64", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain","payload_base64":"YWI"}"#),
        case("envelope: labels not strings", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain","payload_base64":"","labels":{"a":1}}"#),
        case("envelope: duplicate label", "POST", ev, 400).envelope(
            r#"{"content_type":"text/plain","payload_base64":"","labels":{"a":"1","a":"2"}}"#,
        ),
        case("envelope: bad label key", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain","payload_base64":"","labels":{"a b":"1"}}"#),
        case("envelope: bad content type", "POST", ev, 400)
            .envelope(r#"{"content_type":"nonsense","payload_base64":""}"#),
        case("envelope: label header too", "POST", ev, 400)
            .envelope(r#"{"content_type":"text/plain","payload_base64":""}"#)
            .header("X-Evault-Label", "a=b"),
        case("envelope: payload over max_upload", "POST", ev, 413).envelope(&big_env),
        case("envelope: body over the envelope cap", "POST", ev, 413).envelope(&huge_env),
        case("envelope: body over the cap, chunked", "POST", ev, 413)
            .header("Content-Type", "application/vnd.evault.evidence+json")
            .header("Transfer-Encoding", "chunked")
            .body(chunked(&[huge_env.as_bytes()])),
        // Raw bodies.
        case("raw: over max_upload", "POST", ev, 413)
            .header(text.0, text.1)
            .body(vec![0u8; MAX_UPLOAD as usize + 1]),
        case("raw: over max_upload, chunked", "POST", ev, 413)
            .header(text.0, text.1)
            .header("Transfer-Encoding", "chunked")
            .body(chunked(&[&[1u8; 600], &[2u8; 600], &[3u8; 600]])),
        case("raw: no content type", "POST", ev, 400).body("x"),
        case("raw: empty content type", "POST", ev, 400)
            .header("Content-Type", "")
            .body("x"),
        case("raw: bad content type", "POST", ev, 400)
            .header("Content-Type", "nonsense")
            .body("x"),
        case("raw: two content types", "POST", ev, 400)
            .header(text.0, text.1)
            .header(text.0, "text/html")
            .body("x"),
        case("raw: gzip", "POST", ev, 415)
            .header(text.0, text.1)
            .header("Content-Encoding", "gzip")
            .body("x"),
        case("raw: br after identity", "POST", ev, 415)
            .header(text.0, text.1)
            .header("Content-Encoding", "identity, br")
            .body("x"),
        case("raw: bad idempotency key", "POST", ev, 400)
            .header(text.0, text.1)
            .header("Idempotency-Key", "has space")
            .body("x"),
        case("raw: long idempotency key", "POST", ev, 400)
            .header(text.0, text.1)
            .header("Idempotency-Key", "k".repeat(129))
            .body("x"),
        // Labels in headers.
        case("label header: bad key", "POST", ev, 400)
            .header(text.0, text.1)
            .header("X-Evault-Label", "bad key=v")
            .body("x"),
        case("label header: no value", "POST", ev, 400)
            .header(text.0, text.1)
            .header("X-Evault-Label", "novalue")
            .body("x"),
        case("label header: empty key", "POST", ev, 400)
            .header(text.0, text.1)
            .header("X-Evault-Label", "=v")
            .body("x"),
        case("label header: not UTF-8", "POST", ev, 400)
            .header(text.0, text.1)
            .header("X-Evault-Label", b"k=\xff\xfe")
            .body("x"),
        case("label header: value too long", "POST", ev, 400)
            .header(text.0, text.1)
            .header("X-Evault-Label", format!("k={}", "v".repeat(300)))
            .body("x"),
        case("label header: given twice", "POST", ev, 400)
            .header(text.0, text.1)
            .header("X-Evault-Label", "k=1")
            .header("X-Evault-Label", "k=2")
            .body("x"),
        // Labels in the query.
        case(
            "label query: no value",
            "POST",
            format!("{ev}?label=novalue"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        case(
            "label query: bad key",
            "POST",
            format!("{ev}?label=a%20b%3Dc"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        case(
            "label query: not UTF-8",
            "POST",
            format!("{ev}?label=k%3D%FF"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        case(
            "label query: bad escape",
            "POST",
            format!("{ev}?label=k%3D%G0"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        case(
            "label query: control char",
            "POST",
            format!("{ev}?label=k%3Da%07"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        case(
            "label query: too many",
            "POST",
            format!("{ev}?{many_labels}"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        case(
            "label query and header clash",
            "POST",
            format!("{ev}?label=k=1"),
            400,
        )
        .header(text.0, text.1)
        .header("X-Evault-Label", "k=2")
        .body("x"),
        case(
            "unknown query parameter on POST",
            "POST",
            format!("{ev}?lable=a=b"),
            400,
        )
        .header(text.0, text.1)
        .body("x"),
        // Listing.
        case(
            "list: garbage cursor",
            "GET",
            format!("{ev}?cursor=garbage!"),
            400,
        ),
        case(
            "list: cursor of checkpoints",
            "GET",
            format!("{ev}?cursor={checkpoint_cursor}"),
            400,
        ),
        case("list: limit 0", "GET", format!("{ev}?limit=0"), 400),
        case("list: limit 1001", "GET", format!("{ev}?limit=1001"), 400),
        case("list: negative limit", "GET", format!("{ev}?limit=-1"), 400),
        case(
            "list: huge limit",
            "GET",
            format!("{ev}?limit=99999999999999999999999"),
            400,
        ),
        case(
            "list: limit not a number",
            "GET",
            format!("{ev}?limit=ten"),
            400,
        ),
        case(
            "list: limit twice",
            "GET",
            format!("{ev}?limit=1&limit=2"),
            400,
        ),
        case(
            "list: bad since",
            "GET",
            format!("{ev}?since=yesterday"),
            400,
        ),
        case(
            "list: bad until",
            "GET",
            format!("{ev}?until=2026-13-01T00:00:00Z"),
            400,
        ),
        case(
            "list: label without value",
            "GET",
            format!("{ev}?label=batch"),
            400,
        ),
        case(
            "list: label not UTF-8",
            "GET",
            format!("{ev}?label=a:%FF"),
            400,
        ),
        case(
            "list: unknown parameter",
            "GET",
            format!("{ev}?colour=red"),
            400,
        ),
        // Records and proofs.
        case(
            "get: unknown id",
            "GET",
            format!("{ev}/0190aaaa-0000-7000-8000-000000000000"),
            404,
        ),
        case("get: id not UTF-8", "GET", format!("{ev}/%FF%FE"), 400),
        case(
            "payload: unknown id",
            "GET",
            format!("{ev}/nope/payload"),
            404,
        ),
        case("proof: unknown id", "GET", format!("{ev}/nope/proof"), 404),
        case(
            "proof: negative tree_size",
            "GET",
            format!("{ev}/{id}/proof?tree_size=-1"),
            400,
        ),
        case(
            "proof: tree_size not a number",
            "GET",
            format!("{ev}/{id}/proof?tree_size=abc"),
            400,
        ),
        case(
            "proof: tree_size overflows u64",
            "GET",
            format!("{ev}/{id}/proof?tree_size=99999999999999999999"),
            400,
        ),
        case(
            "proof: tree_size u64::MAX",
            "GET",
            format!("{ev}/{id}/proof?tree_size=18446744073709551615"),
            400,
        ),
        case(
            "proof: tree_size i64::MAX",
            "GET",
            format!("{ev}/{id}/proof?tree_size=9223372036854775807"),
            404,
        ),
        case(
            "proof: tree_size 0",
            "GET",
            format!("{ev}/{id}/proof?tree_size=0"),
            0,
        ),
        case(
            "proof: tree_size empty",
            "GET",
            format!("{ev}/{id}/proof?tree_size="),
            400,
        ),
        case(
            "proof: bad format",
            "GET",
            format!("{ev}/{id}/proof?format=xml"),
            400,
        ),
        // Consistency.
        case(
            "consistency: from 0",
            "GET",
            "/api/v1/tree/consistency?from=0&to=1",
            400,
        ),
        case(
            "consistency: reversed",
            "GET",
            "/api/v1/tree/consistency?from=2&to=1",
            400,
        ),
        case(
            "consistency: missing to",
            "GET",
            "/api/v1/tree/consistency?from=1",
            400,
        ),
        case(
            "consistency: nothing",
            "GET",
            "/api/v1/tree/consistency",
            400,
        ),
        case(
            "consistency: negative",
            "GET",
            "/api/v1/tree/consistency?from=-1&to=1",
            400,
        ),
        case(
            "consistency: not numbers",
            "GET",
            "/api/v1/tree/consistency?from=a&to=b",
            400,
        ),
        case(
            "consistency: huge to",
            "GET",
            "/api/v1/tree/consistency?from=1&to=9223372036854775807",
            404,
        ),
        case(
            "consistency: overflowing to",
            "GET",
            "/api/v1/tree/consistency?from=1&to=18446744073709551616",
            400,
        ),
        // Checkpoints.
        case(
            "checkpoints: limit 0",
            "GET",
            "/api/v1/checkpoints?limit=0",
            400,
        ),
        case(
            "checkpoints: bad cursor",
            "GET",
            "/api/v1/checkpoints?cursor=%%%",
            400,
        ),
        case(
            "checkpoints: evidence cursor",
            "GET",
            format!("/api/v1/checkpoints?cursor={evidence_cursor}"),
            400,
        ),
        case(
            "checkpoint: size not a number",
            "GET",
            "/api/v1/checkpoints/abc",
            400,
        ),
        case(
            "checkpoint: negative size",
            "GET",
            "/api/v1/checkpoints/-1",
            400,
        ),
        case(
            "checkpoint: overflowing size",
            "GET",
            "/api/v1/checkpoints/99999999999999999999",
            400,
        ),
        case(
            "checkpoint: huge size",
            "GET",
            "/api/v1/checkpoints/9223372036854775807",
            404,
        ),
        // Tiles.
        case("tile: not a tile", "GET", "/tlog/tile/abc", 400),
        case("tile: bad index", "GET", "/tlog/tile/0/001x", 400),
        case("tile: width 0", "GET", "/tlog/tile/0/000.p/0", 400),
        case("tile: width 256", "GET", "/tlog/tile/0/000.p/256", 400),
        case("tile: level 64", "GET", "/tlog/tile/64/000", 400),
        case("tile: leading zero level", "GET", "/tlog/tile/01/000", 400),
        case(
            "tile: non-canonical index",
            "GET",
            "/tlog/tile/0/x000/001",
            400,
        ),
        case(
            "tile: trailing data",
            "GET",
            "/tlog/tile/0/000.p/1/extra",
            400,
        ),
        case(
            "tile: index overflows",
            "GET",
            "/tlog/tile/entries/x999/x999/x999/x999/x999/x999/999",
            400,
        ),
        case(
            "tile: full tile of a 1-leaf tree",
            "GET",
            "/tlog/tile/0/000",
            404,
        ),
        case(
            "tile: wider than the tree",
            "GET",
            "/tlog/tile/0/000.p/2",
            404,
        ),
        case("tile: far away", "GET", "/tlog/tile/0/x999/999", 404),
        case("tile: level 63", "GET", "/tlog/tile/63/000.p/1", 404),
        case(
            "tile: entries at u64::MAX",
            "GET",
            "/tlog/tile/entries/x018/x446/x744/x073/x709/x551/615",
            404,
        ),
        case(
            "tile: entries beyond",
            "GET",
            "/tlog/tile/entries/000.p/2",
            404,
        ),
        case("tile: empty path", "GET", "/tlog/tile/", 404),
        // Routing.
        case("unknown route", "GET", "/api/v1/nope", 404),
        case("unknown version", "GET", "/api/v2/evidence", 404),
        case("trailing slash", "GET", "/api/v1/log/", 404),
        case("root", "GET", "/", 404),
        case("wrong method: DELETE evidence", "DELETE", ev, 405),
        case("wrong method: PUT log", "PUT", "/api/v1/log", 405).body("x"),
        case(
            "wrong method: POST checkpoint",
            "POST",
            "/tlog/checkpoint",
            405,
        ),
        case(
            "wrong method: POST record",
            "POST",
            format!("{ev}/{id}"),
            405,
        )
        .header(text.0, text.1)
        .body("x"),
    ];

    let mut failures = Vec::new();
    for c in &cases {
        let headers: Vec<(&str, &[u8])> =
            c.headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let r = s.request(c.method, &c.path, &headers, &c.body);
        let mut problems = Vec::new();
        if c.status != 0 && r.status != c.status {
            problems.push(format!("status {} (want {})", r.status, c.status));
        }
        if !(400..500).contains(&r.status) {
            problems.push(format!("status {} is not 4xx", r.status));
        }
        if r.header("content-type").as_deref() != Some("application/problem+json") {
            problems.push(format!("content-type {:?}", r.header("content-type")));
        }
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(v) => {
                if v["status"].as_u64() != Some(u64::from(r.status)) {
                    problems.push(format!("body status {}", v["status"]));
                }
                for field in ["type", "title", "detail"] {
                    if v[field].as_str().is_none_or(str::is_empty) {
                        problems.push(format!("no {field}"));
                    }
                }
            }
            Err(e) => problems.push(format!("body is not JSON: {e}")),
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} {} -> {}\n    body: {}",
                c.name,
                c.method,
                c.path.chars().take(80).collect::<String>(),
                problems.join("; "),
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let r = s.request("DELETE", ev, &[], b"");
    let allow = r.header("allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow:?}"
    );

    assert_eq!(s.census(), before, "bad input changed the log");
    let staging = s.dir.path().join("data/staging");
    assert_eq!(
        std::fs::read_dir(staging).unwrap().count(),
        0,
        "staged uploads left behind"
    );
    // And the server still works.
    let r = s.post(
        "/api/v1/evidence",
        &[("Content-Type", b"text/plain")],
        b"after all that",
    );
    assert_eq!(r.status, 201);
}

#[test]
fn identity_encoding_and_json_payloads_are_raw() {
    let s = TestServer::start();
    // application/json is a payload, not an envelope; identity is accepted.
    let body = br#"{"content_type":"text/plain","payload_base64":"eA=="}"#;
    let r = s.post(
        "/api/v1/evidence",
        &[
            ("Content-Type", b"application/json"),
            ("Content-Encoding", b"identity"),
        ],
        body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rec = &r.json()["record"];
    assert_eq!(rec["content_type"], "application/json");
    assert_eq!(rec["size"], body.len());
    // The envelope media type matches case-insensitively and with parameters.
    let r = s.post(
        "/api/v1/evidence",
        &[(
            "Content-Type",
            b"Application/Vnd.Evault.Evidence+JSON; charset=utf-8",
        )],
        br#"{"content_type":"text/plain","payload_base64":"eA=="}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["record"]["content_type"], "text/plain");
    assert_eq!(r.json()["record"]["size"], 1);
}

#[test]
fn expect_continue_is_refused_without_waiting_for_the_body() {
    let s = TestServer::start_with(|c| c.max_upload = MAX_UPLOAD, false);
    let start = std::time::Instant::now();
    // Only the head is sent: the client waits for 100 Continue.
    let r = s.request(
        "POST",
        "/api/v1/evidence",
        &[
            ("Content-Type", b"text/plain"),
            ("Content-Length", b"5000"),
            ("Expect", b"100-continue"),
        ],
        b"",
    );
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert!(
        start.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.census(), (0, 0));
}
