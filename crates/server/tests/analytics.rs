//! Analytics events over HTTP: put as evidence of content type
//! `application/vnd.evault.analytics+json` (every timestamp form), invalid
//! ones refused with a problem naming the field, and
//! `GET /api/v1/analytics/summary` exact, filtered, scoped to the caller's
//! own events for an ingester, and unchanged by a restart.

mod common;

use base64::Engine as _;
use common::{Resp, TestServer, token_for};
use serde_json::{Value, json};

const ANALYTICS: &str = "application/vnd.evault.analytics+json";
const SUMMARY: &str = "/api/v1/analytics/summary";

/// Six build events, one per timestamp form, 10:00:00Z to 10:00:05.5Z.
const BUILDS: [&str; 6] = [
    r#"{"source":"ci","kind":"build","value":1,"unit":"s","metrics":{"cpu":0.25},"timestamp":"2026-11-23T10:00:00Z"}"#,
    r#"{"source":"ci","kind":"build","value":2,"unit":"s","metrics":{"cpu":0.75,"mem":100},"timestamp":"2026-11-23T11:00:01+01:00"}"#,
    r#"{"source":"ci","kind":"build","value":3.5,"unit":"s","timestamp":"2026-11-23T10:00:02+0000"}"#,
    r#"{"source":"ci","kind":"build","value":5.5,"unit":"s","metrics":{"mem":50},"timestamp":"2026-11-23T12:00:03.250+02"}"#,
    r#"{"source":"ci","kind":"build","value":8,"unit":"s","metadata":{"runner":"r1"},"timestamp":"2026-11-23 10:00:04 UTC"}"#,
    r#"{"source":"ci","kind":"build","value":4,"unit":"s","timestamp":"2026-11-23t04:30:05.5-0530"}"#,
];

/// Two scan events, one without a unit.
const SCANS: [&str; 2] = [
    r#"{"source":"lab","kind":"scan","unit":"n","metrics":{"issues":3},"timestamp":"2026-11-23T10:00:06Z"}"#,
    r#"{"source":"lab","kind":"scan","value":-1.5,"timestamp":"2026-11-23T10:00:07z"}"#,
];

fn put_as(s: &TestServer, token: &str, event: &str) -> Resp {
    s.request_as(
        Some(token),
        "POST",
        "/api/v1/evidence",
        &[("Content-Type", ANALYTICS.as_bytes())],
        event.as_bytes(),
    )
}

fn put(s: &TestServer, event: &str) -> Resp {
    s.post(
        "/api/v1/evidence",
        &[("Content-Type", ANALYTICS.as_bytes())],
        event.as_bytes(),
    )
}

fn put_all(s: &TestServer) {
    for e in BUILDS.iter().chain(&SCANS) {
        let r = put(s, e);
        assert_eq!(r.status, 201, "{e}: {}", r.text());
    }
}

fn summary_as(s: &TestServer, token: &str, query: &str) -> Value {
    s.request_as(Some(token), "GET", &format!("{SUMMARY}{query}"), &[], b"")
        .ok_json()
}

fn build_group() -> Value {
    json!({
        "source": "ci",
        "kind": "build",
        "count": 6,
        "first": "2026-11-23T10:00:00.000Z",
        "last": "2026-11-23T10:00:05.500Z",
        // 1 + 2 + 3.5 + 5.5 + 8 + 4 = 24, over 6.
        "value": {"count": 6, "min": 1.0, "max": 8.0, "mean": 4.0},
        "unit": "s",
        "metrics": {
            "cpu": {"count": 2, "min": 0.25, "max": 0.75, "mean": 0.5},
            "mem": {"count": 2, "min": 50.0, "max": 100.0, "mean": 75.0},
        },
    })
}

fn scan_group() -> Value {
    json!({
        "source": "lab",
        "kind": "scan",
        "count": 2,
        "first": "2026-11-23T10:00:06.000Z",
        "last": "2026-11-23T10:00:07.000Z",
        "value": {"count": 1, "min": -1.5, "max": -1.5, "mean": -1.5},
        "unit": null,
        "metrics": {"issues": {"count": 1, "min": 3.0, "max": 3.0, "mean": 3.0}},
    })
}

fn no_filters() -> Value {
    json!({"source": null, "kind": null, "since": null, "until": null, "ingested_by": null})
}

#[test]
fn events_in_every_timestamp_form_are_summarised_exactly() {
    let s = TestServer::start();
    assert_eq!(
        s.get(SUMMARY).ok_json(),
        json!({"groups": [], "filters": no_filters()})
    );
    put_all(&s);
    // The envelope is the same put: validated the same way.
    let envelope = json!({
        "content_type": ANALYTICS,
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(
            r#"{"source":"env","kind":"k","value":1,"timestamp":"2026-11-23T10:00:00Z"}"#
        ),
    });
    let r = s.post(
        "/api/v1/evidence",
        &[("Content-Type", b"application/vnd.evault.evidence+json")],
        envelope.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // A duplicate record is not counted twice.
    assert_eq!(put(&s, BUILDS[0]).status, 200);

    let got = s.get(SUMMARY).ok_json();
    let env = json!({
        "source": "env", "kind": "k", "count": 1,
        "first": "2026-11-23T10:00:00.000Z", "last": "2026-11-23T10:00:00.000Z",
        "value": {"count": 1, "min": 1.0, "max": 1.0, "mean": 1.0},
        "unit": null, "metrics": {},
    });
    assert_eq!(
        got,
        json!({"groups": [build_group(), env, scan_group()], "filters": no_filters()})
    );
    // The records are ordinary evidence too.
    let (size, count) = s.census();
    assert_eq!((size, count), (9, 9));
}

#[test]
fn invalid_events_are_problems_naming_the_field() {
    let s = TestServer::start();
    put_all(&s);
    let before = s.get(SUMMARY).ok_json();
    let cases = [
        (
            r#"{"kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#,
            "missing field `source`",
        ),
        (
            r#"{"source":"s","kind":"k","timestamp":"2026-13-01T10:00:00Z"}"#,
            "field `timestamp` has month 13",
        ),
        (
            r#"{"source":"s","kind":"k","timestamp":"2026-11-23T10:00:00"}"#,
            "field `timestamp` has no time zone",
        ),
        (
            r#"{"source":"s","kind":"k","timestamp":"2026-11-23T10:00:00+25:00"}"#,
            "field `timestamp` has offset 25:00",
        ),
        (
            r#"{"source":"s","kind":"k","colour":"red","timestamp":"2026-11-23T10:00:00Z"}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"source":"s","kind":"k","kind":"j","timestamp":"2026-11-23T10:00:00Z"}"#,
            "duplicate key \"kind\"",
        ),
        (
            r#"{"source":"s","kind":"k","value":"3","timestamp":"2026-11-23T10:00:00Z"}"#,
            "field `value` must be a finite number",
        ),
        (
            r#"{"source":"s","kind":"k","metrics":{"cpu":"high"},"timestamp":"2026-11-23T10:00:00Z"}"#,
            "field `metrics`: \"cpu\" must be a finite number",
        ),
        (
            r#"{"source":"s","kind":"k","metadata":{"a":1},"timestamp":"2026-11-23T10:00:00Z"}"#,
            "field `metadata`: \"a\" must be a string",
        ),
        ("[]", "must be a JSON object"),
        ("{", "not valid JSON"),
    ];
    for (event, why) in cases {
        let r = put(&s, event);
        assert_eq!(r.status, 400, "{event}: {}", r.text());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(
            detail.starts_with("analytics event: ") && detail.contains(why),
            "{event}: {detail:?} should mention {why:?}"
        );
    }
    // Larger than the inline limit (1024 bytes in tests), however valid.
    let padded = format!("{}{}", " ".repeat(1100), SCANS[0]);
    let r = put(&s, &padded);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["detail"],
        "analytics events must be at most 1024 bytes"
    );
    assert_eq!(s.get(SUMMARY).ok_json(), before);
    assert_eq!(s.census(), (8, 8));
}

#[test]
fn filters_select_and_bad_parameters_are_refused() {
    let s = TestServer::start();
    put_all(&s);
    let all = token_for("all");
    let groups = |q: &str| summary_as(&s, &all, q)["groups"].clone();

    assert_eq!(groups("?source=ci"), json!([build_group()]));
    assert_eq!(groups("?kind=scan"), json!([scan_group()]));
    assert_eq!(groups("?source=ci&kind=scan"), json!([]));
    assert_eq!(groups("?source=nobody"), json!([]));
    // since inclusive, until exclusive, on the event timestamps:
    // [10:00:02, 10:00:06) holds values 3.5, 5.5, 8 and 4.
    let got = summary_as(
        &s,
        &all,
        "?since=2026-11-23T10:00:02Z&until=2026-11-23T10:00:06Z",
    );
    assert_eq!(
        got,
        json!({
            "groups": [{
                "source": "ci", "kind": "build", "count": 4,
                "first": "2026-11-23T10:00:02.000Z", "last": "2026-11-23T10:00:05.500Z",
                "value": {"count": 4, "min": 3.5, "max": 8.0, "mean": 5.25},
                "unit": "s",
                "metrics": {"mem": {"count": 1, "min": 50.0, "max": 50.0, "mean": 50.0}},
            }],
            "filters": {
                "source": null, "kind": null,
                "since": "2026-11-23T10:00:02.000Z", "until": "2026-11-23T10:00:06.000Z",
                "ingested_by": null,
            },
        })
    );
    // An offset in the filter is honoured (+ escaped in a query string).
    assert_eq!(
        groups("?since=2026-11-23T11:00:06%2B01:00&source=lab"),
        json!([scan_group()])
    );
    assert_eq!(
        groups("?until=2026-11-23T10:00:06.001Z&kind=scan")[0]["count"],
        1
    );

    for (query, why) in [
        ("?colour=red", "unknown query parameter \"colour\""),
        ("?since=yesterday", "since must be an RFC 3339 date-time"),
        ("?until=2026-11-23", "until must be an RFC 3339 date-time"),
        // An unescaped + is a space in a query string.
        ("?since=2026-11-23T10:00:00+01:00", "since must be"),
        ("?source=a&source=b", "given more than once"),
        ("?source=", "source must be 1 to 128 bytes"),
        ("?kind=", "kind must be 1 to 128 bytes"),
    ] {
        let r = s.get(&format!("{SUMMARY}{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(why), "{query}: {detail:?}");
    }
}

#[test]
fn an_ingester_sees_only_its_own_events() {
    let s = TestServer::start();
    let mine = token_for("ingester");
    let theirs = token_for("other-ingester");
    for e in BUILDS {
        assert_eq!(put_as(&s, &mine, e).status, 201);
    }
    for e in SCANS {
        assert_eq!(put_as(&s, &theirs, e).status, 201);
    }
    // And one build event of theirs, an hour earlier.
    let extra = r#"{"source":"ci","kind":"build","value":100,"unit":"s","timestamp":"2026-11-23T09:00:00Z"}"#;
    assert_eq!(put_as(&s, &theirs, extra).status, 201);

    let own = summary_as(&s, &mine, "");
    assert_eq!(
        own,
        json!({
            "groups": [build_group()],
            "filters": {"source": null, "kind": null, "since": null, "until": null,
                        "ingested_by": "test:ingester"},
        })
    );
    let other = summary_as(&s, &theirs, "?source=ci");
    assert_eq!(other["filters"]["ingested_by"], "test:other");
    assert_eq!(other["groups"].as_array().unwrap().len(), 1);
    assert_eq!(other["groups"][0]["count"], 1);
    assert_eq!(other["groups"][0]["first"], "2026-11-23T09:00:00.000Z");

    // Auditors and admins see everything.
    for who in ["auditor", "admin"] {
        let all = summary_as(&s, &token_for(who), "");
        assert_eq!(all["filters"], no_filters(), "{who}");
        let groups = all["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2, "{who}");
        assert_eq!(groups[0]["count"], 7, "{who}");
        assert_eq!(groups[0]["first"], "2026-11-23T09:00:00.000Z", "{who}");
        assert_eq!(groups[0]["value"]["max"], 100.0, "{who}");
        assert_eq!(groups[1], scan_group(), "{who}");
    }
    // Without a token: 401.
    let r = s.request_as(None, "GET", SUMMARY, &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn the_summary_is_the_same_after_a_restart() {
    let mut first = TestServer::start();
    put_all(&first);
    let before = first.get(SUMMARY).ok_json();
    let filtered = first.get(&format!("{SUMMARY}?kind=build")).ok_json();
    assert_eq!(before["groups"], json!([build_group(), scan_group()]));

    // Keep the data directory; stop the server and its vault.
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    drop(first);
    let data = dir.path().join("data");
    let second = TestServer::start_with(|c| c.data_dir = data, false);
    assert_eq!(second.census(), (8, 8));
    assert_eq!(second.get(SUMMARY).ok_json(), before);
    assert_eq!(
        second.get(&format!("{SUMMARY}?kind=build")).ok_json(),
        filtered
    );
    // And it counts on from there.
    let r = put(
        &second,
        r#"{"source":"lab","kind":"scan","value":1.5,"timestamp":"2026-11-23T10:00:08Z"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let after = second.get(&format!("{SUMMARY}?source=lab")).ok_json();
    assert_eq!(after["groups"][0]["count"], 3);
    assert_eq!(
        after["groups"][0]["value"],
        json!({"count": 2, "min": -1.5, "max": 1.5, "mean": 0.0})
    );
    drop(second);
    drop(dir);
}
