//! Analytics events through the vault: validated on put and on streamed
//! submit (each invalid event rejected on its own, nothing written for
//! it), summarised from the store, and the same after a restart.

#[macro_use]
mod drivers;

use std::collections::BTreeMap;
use std::time::Duration;

use evault_vault::{
    ANALYTICS_TYPE, AnalyticsGroup, AnalyticsQuery, PutOutcome, PutRequest, Reader, Stats,
    StreamRecord, Vault, VaultConfig, VaultError,
};

fn config(dir: &std::path::Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some("test.example/vault".into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = 1024;
    c
}

async fn try_put(
    v: &Vault,
    content_type: &str,
    body: &[u8],
    principal: &str,
) -> Result<PutOutcome, VaultError> {
    let mut up = v.upload();
    for chunk in body.chunks(300) {
        up.write(chunk).await?;
    }
    let payload = up.finish().await?;
    v.put(PutRequest {
        content_type: content_type.into(),
        labels: BTreeMap::new(),
        payload,
        principal: principal.into(),
        idempotency_key: None,
        audit: None,
    })
    .await
}

async fn put_event(v: &Vault, json: &str) -> PutOutcome {
    try_put(v, ANALYTICS_TYPE, json.as_bytes(), "sa:a")
        .await
        .unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn invalid_reason(r: Result<PutOutcome, VaultError>) -> String {
    match r {
        Err(VaultError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn stats(count: u64, min: f64, max: f64, mean: f64) -> Stats {
    Stats {
        count,
        min,
        max,
        mean,
    }
}

async fn summary(v: &Vault) -> Vec<AnalyticsGroup> {
    v.analytics_summary(&Reader::all("test"), AnalyticsQuery::default())
        .await
        .unwrap()
        .groups
}

/// Three build events (two units agree) and one test event, 2026-11-23.
async fn populate(v: &Vault) {
    for json in [
        r#"{"source":"ci","kind":"build","value":1,"unit":"s","metrics":{"cpu":0.5},"timestamp":"2026-11-23T10:00:00Z"}"#,
        r#"{"source":"ci","kind":"build","value":2,"unit":"s","metrics":{"cpu":1.5,"mem":64},"timestamp":"2026-11-23T11:00:00+0100"}"#,
        r#"{"source":"ci","kind":"build","value":4.5,"unit":"s","metadata":{"commit":"abc"},"timestamp":"2026-11-23 10:00:02 UTC"}"#,
        r#"{"source":"ci","kind":"test","metrics":{"failures":2},"timestamp":"2026-11-23T10:00:03.5+00"}"#,
    ] {
        put_event(v, json).await;
    }
}

/// 2026-11-23T10:00:00Z.
const T: i64 = 1_795_428_000_000;

fn expected() -> Vec<AnalyticsGroup> {
    vec![
        AnalyticsGroup {
            source: "ci".into(),
            kind: "build".into(),
            count: 3,
            first_ms: T,
            last_ms: T + 2000,
            value: Some(stats(3, 1.0, 4.5, 2.5)),
            unit: Some("s".into()),
            metrics: BTreeMap::from([
                ("cpu".into(), stats(2, 0.5, 1.5, 1.0)),
                ("mem".into(), stats(1, 64.0, 64.0, 64.0)),
            ]),
        },
        AnalyticsGroup {
            source: "ci".into(),
            kind: "test".into(),
            count: 1,
            first_ms: T + 3500,
            last_ms: T + 3500,
            value: None,
            unit: None,
            metrics: BTreeMap::from([("failures".into(), stats(1, 2.0, 2.0, 2.0))]),
        },
    ]
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_validates_events_and_the_summary_adds_them_up() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        assert_eq!(summary(&v).await, vec![]);
        populate(&v).await;
        assert_eq!(summary(&v).await, expected());

        // The same event again is a duplicate record: counted once.
        let again = put_event(
            &v,
            r#"{"source":"ci","kind":"test","metrics":{"failures":2},"timestamp":"2026-11-23T10:00:03.5+00"}"#,
        )
        .await;
        assert!(again.duplicate);
        assert_eq!(summary(&v).await, expected());

        // Filters reach the store.
        let only_test = v
            .analytics_summary(
                &Reader::all("test"),
                AnalyticsQuery {
                    kind: Some("test".into()),
                    ..AnalyticsQuery::default()
                },
            )
            .await
            .unwrap()
            .groups;
        assert_eq!(only_test, expected()[1..].to_vec());
        let window = v
            .analytics_summary(
                &Reader::all("test"),
                AnalyticsQuery {
                    since_ms: Some(T + 1000),
                    until_ms: Some(T + 3500),
                    ..AnalyticsQuery::default()
                },
            )
            .await
            .unwrap()
            .groups;
        assert_eq!(window.len(), 1);
        assert_eq!(window[0].count, 1);
        assert_eq!(window[0].value, Some(stats(1, 4.5, 4.5, 4.5)));
        let theirs = v
            .analytics_summary(
                &Reader::all("test"),
                AnalyticsQuery {
                    ingested_by: Some("sa:other".into()),
                    ..AnalyticsQuery::default()
                },
            )
            .await
            .unwrap()
            .groups;
        assert_eq!(theirs, vec![]);

        // A content type with parameters is still an analytics event.
        let with_params = format!("{ANALYTICS_TYPE}; charset=utf-8");
        try_put(
            &v,
            &with_params,
            br#"{"source":"other","kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#,
            "sa:other",
        )
        .await
        .unwrap();
        let theirs = v
            .analytics_summary(
                &Reader::all("test"),
                AnalyticsQuery {
                    ingested_by: Some("sa:other".into()),
                    ..AnalyticsQuery::default()
                },
            )
            .await
            .unwrap()
            .groups;
        assert_eq!(theirs.len(), 1);
        assert_eq!((theirs[0].source.as_str(), theirs[0].count), ("other", 1));
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_events_are_rejected_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        populate(&v).await;
        let size = v.evidence_log().head().size;
        let cases = [
            (
                r#"{"kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#,
                "missing field `source`",
            ),
            (
                r#"{"source":"s","kind":"k","timestamp":"2026-11-23T10:00:00Z","colour":"red"}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"source":"s","kind":"k","kind":"j","timestamp":"2026-11-23T10:00:00Z"}"#,
                "duplicate key \"kind\"",
            ),
            (
                r#"{"source":"s","kind":"k","value":"3","timestamp":"2026-11-23T10:00:00Z"}"#,
                "field `value`",
            ),
            (
                r#"{"source":"s","kind":"k","timestamp":"2026-02-30T10:00:00Z"}"#,
                "field `timestamp`",
            ),
            (
                r#"{"source":"s","kind":"k","metrics":{"a b":1},"timestamp":"2026-11-23T10:00:00Z"}"#,
                "field `metrics`",
            ),
            ("not json", "not valid JSON"),
        ];
        for (json, why) in cases {
            let e = invalid_reason(try_put(&v, ANALYTICS_TYPE, json.as_bytes(), "sa:a").await);
            assert!(e.starts_with("analytics event: "), "{e}");
            assert!(e.contains(why), "{json}: {e:?} should mention {why:?}");
        }
        // Too large to be held inline (1024 bytes here), however valid.
        let padded = format!(
            "{}{}",
            " ".repeat(1100),
            r#"{"source":"s","kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#
        );
        let e = invalid_reason(try_put(&v, ANALYTICS_TYPE, padded.as_bytes(), "sa:a").await);
        assert_eq!(e, "analytics events must be at most 1024 bytes");
        assert_eq!(v.evidence_log().head().size, size);
        assert_eq!(summary(&v).await, expected());
        // Neither a blob nor a staged file is left of the refused large event.
        for sub in ["blobs", "staging"] {
            let files = walk(&dir.path().join(sub));
            assert!(files.is_empty(), "{sub}: {files:?}");
        }

        // Other content types are not checked: the same bytes are fine as JSON.
        try_put(&v, "application/json", b"not json", "sa:a")
            .await
            .unwrap();
        assert_eq!(v.evidence_log().head().size, size + 1);
        assert_eq!(summary(&v).await, expected());
    }
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_events_are_checked_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let rec = |json: &str| StreamRecord {
            content_type: ANALYTICS_TYPE.into(),
            payload: json.as_bytes().to_vec(),
            ..StreamRecord::default()
        };
        let submitted = v
            .submit(
                "sa:stream",
                vec![
                    rec(r#"{"source":"ci","kind":"build","value":1,"unit":"s","metrics":{"cpu":0.5},"timestamp":"2026-11-23T10:00:00Z"}"#),
                    rec(r#"{"source":"ci","kind":"build","timestamp":"2026-11-23T10:00:00"}"#),
                    rec(r#"{"source":"ci","kind":"build","value":2,"unit":"s","metrics":{"cpu":1.5,"mem":64},"timestamp":"2026-11-23T11:00:00+0100"}"#),
                    rec(r#"{"source":"ci","kind":"build","value":1e999,"timestamp":"2026-11-23T10:00:00Z"}"#),
                    rec(r#"{"source":"ci","kind":"build","value":4.5,"unit":"s","metadata":{"commit":"abc"},"timestamp":"2026-11-23 10:00:02 UTC"}"#),
                    rec(r#"{"source":"ci","kind":"test","metrics":{"failures":2},"timestamp":"2026-11-23T10:00:03.5+00"}"#),
                ],
            )
            .await
            .unwrap();
        let outcomes = submitted.outcomes().await.unwrap();
        assert_eq!(outcomes.len(), 6);
        for (i, o) in outcomes.iter().enumerate() {
            match (i, o) {
                (1, Err(VaultError::Invalid(why))) => {
                    assert!(why.contains("field `timestamp` has no time zone"), "{why}")
                }
                (3, Err(VaultError::Invalid(why))) => {
                    assert!(why.starts_with("analytics event: "), "{why}")
                }
                (1 | 3, other) => panic!("record {i}: expected a rejection, got {other:?}"),
                (_, Ok(out)) => assert!(!out.duplicate),
                (_, Err(e)) => panic!("record {i}: {e}"),
            }
        }
        assert_eq!(v.evidence_log().head().size, 4);
        let want = expected();
        assert_eq!(summary(&v).await, want);
        let own = v
            .analytics_summary(
                &Reader::all("test"),
                AnalyticsQuery {
                    ingested_by: Some("sa:stream".into()),
                    ..AnalyticsQuery::default()
                },
            )
            .await
            .unwrap()
            .groups;
        assert_eq!(own, want);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_summary_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let v = Vault::open(config(dir.path())).await.unwrap();
            populate(&v).await;
            let s = summary(&v).await;
            v.shutdown().await.unwrap();
            s
        };
        assert_eq!(before, expected());
        let v = Vault::open(config(dir.path())).await.unwrap();
        assert_eq!(v.evidence_log().head().size, 4);
        assert_eq!(summary(&v).await, before);
        // And it keeps counting.
        put_event(
            &v,
            r#"{"source":"ci","kind":"test","metrics":{"failures":0},"timestamp":"2026-11-23T10:00:04Z"}"#,
        )
        .await;
        let after = summary(&v).await;
        assert_eq!(after[1].count, 2);
        assert_eq!(after[1].metrics["failures"], stats(2, 0.0, 2.0, 1.0));
    }
}
