//! The dashboard's counts through the vault: who counts what (an owner
//! only its own records), and what windows it refuses before touching the
//! store (no bucket, reversed, before 1970, more than 1000 buckets, audit
//! windows past 31 days), and the audit counts of a vault without audit.

#[macro_use]
mod drivers;

use std::collections::BTreeMap;
use std::time::Duration;

use evault_vault::{
    MAX_AUDIT_STATS_WINDOW_MS, PutRequest, Reader, StatsQuery, Vault, VaultConfig, VaultError,
};

const HOUR: i64 = 3_600_000;

fn config(dir: &std::path::Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    c.state_dir = Some(dir.join("state"));
    c.origin = Some("test.example/stats".into());
    c.checkpoint_interval = Duration::from_millis(20);
    c
}

async fn put(v: &Vault, content_type: &str, principal: &str, n: u32) {
    let mut up = v.upload();
    up.write(format!("record {n} of {principal}").as_bytes())
        .await
        .unwrap();
    let payload = up.finish().await.unwrap();
    v.put(PutRequest {
        content_type: content_type.into(),
        labels: BTreeMap::new(),
        payload,
        principal: principal.into(),
        idempotency_key: None,
        audit: None,
    })
    .await
    .unwrap();
}

fn query(since_ms: i64, until_ms: i64, bucket_ms: i64) -> StatsQuery {
    StatsQuery {
        since_ms,
        until_ms,
        bucket_ms,
        ingested_by: None,
        top_content_types: 50,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

on_every_store! {
    #[tokio::test]
    async fn an_owner_counts_its_own_records_and_bad_windows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        for n in 0..3 {
            put(&v, "application/json", "sa:a", n).await;
        }
        put(&v, "text/plain", "sa:b", 0).await;
        let window = query(now_ms() - HOUR, now_ms() + HOUR, HOUR);

        let all = v
            .evidence_stats(&Reader::all("auditor"), window.clone())
            .await
            .unwrap();
        assert_eq!(all.total, 4);
        assert_eq!(
            all.content_types,
            vec![
                ("application/json".to_string(), 3),
                ("text/plain".to_string(), 1)
            ]
        );
        // An owner asking for someone else's counts still gets only its own.
        let mut theirs = window.clone();
        theirs.ingested_by = Some("sa:a".into());
        let own = v
            .evidence_stats(&Reader::own("sa:b"), theirs)
            .await
            .unwrap();
        assert_eq!(own.total, 1);
        assert_eq!(own.content_types, vec![("text/plain".to_string(), 1)]);

        let t = 1_767_225_600_000; // 2026-01-01T00:00:00Z, on an hour boundary
        for (bad, why) in [
            (query(t, t + HOUR, 0), "bucket"),
            (query(t, t, HOUR), "since"),
            (query(t + 1, t, HOUR), "since"),
            (query(-HOUR, HOUR, HOUR), "since"),
            // 1000 hours from half past: 1001 buckets touched.
            (
                query(t + HOUR / 2, t + HOUR / 2 + 1000 * HOUR, HOUR),
                "1000 buckets",
            ),
        ] {
            match v.evidence_stats(&Reader::all("auditor"), bad.clone()).await {
                Err(VaultError::Invalid(e)) => assert!(e.contains(why), "{bad:?}: {e}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Exactly 1000 aligned buckets is allowed.
        v.evidence_stats(&Reader::all("auditor"), query(t, t + 1000 * HOUR, HOUR))
            .await
            .unwrap();

        // Audit outcomes: the four puts above were not audited (no request);
        // windows are bounded.
        let reader = Reader::all("auditor");
        assert!(
            v.audit_outcomes(&reader, t, t + MAX_AUDIT_STATS_WINDOW_MS)
                .await
                .is_ok()
        );
        for (since, until) in [(t, t + MAX_AUDIT_STATS_WINDOW_MS + 1), (t, t), (t, t - 1)] {
            assert!(
                matches!(
                    v.audit_outcomes(&reader, since, until).await,
                    Err(VaultError::Invalid(_))
                ),
                "{since}..{until}"
            );
        }
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    #[tokio::test]
    async fn audit_counts_are_not_found_without_an_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.audit.enabled = false;
        let v = Vault::open(c).await.unwrap();
        let t = now_ms();
        assert!(matches!(
            v.audit_outcomes(&Reader::all("auditor"), t - HOUR, t).await,
            Err(VaultError::NotFound(_))
        ));
        v.shutdown().await.unwrap();
    }
}
