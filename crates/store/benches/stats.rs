//! The dashboard's counts (`Store::evidence_stats`, `Store::audit_outcomes`)
//! over a store of `EVAULT_BENCH_RECORDS` records and as many audit events
//! (default 1,000,000 each, 10 ms apart: a window of ~2.8 hours), beside a
//! raw-SQLite baseline in the same run: `count(*)` over the same window on
//! the same time index, which reads the index alone and so is the least
//! any count of that window costs.
//!
//!   cargo bench -p evault-store --bench stats

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{T0, Trees, append_both, audit_rows, rows};
use evault_store::{AuditIndex, EvidenceIndex, SqliteStore, StatsQuery};
use rusqlite::{Connection, params};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Median wall time of `rounds` calls of `f`, in milliseconds.
fn median_ms(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let n = env_u64("EVAULT_BENCH_RECORDS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evault.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut trees = Trees::new();
    let started = Instant::now();
    let batch = 10_000;
    let mut at = 0;
    while at < n {
        let end = (at + batch).min(n);
        append_both(&store, &mut trees, &rows(at..end), &audit_rows(at..end)).unwrap();
        at = end;
    }
    eprintln!(
        "filled {n} records and {n} audit events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (since, until) = (T0, T0 + 10 * n as i64);
    let raw = Connection::open(&path).unwrap();
    let count = |table: &str, column: &str| {
        let sql = format!("SELECT count(*) FROM {table} WHERE {column} >= ?1 AND {column} < ?2");
        raw.query_row(&sql, params![since, until], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let rounds = 5;
    let base_records = median_ms(rounds, || {
        assert_eq!(count("records", "ingested_at_ms") as u64, n);
    });
    let base_audit = median_ms(rounds, || {
        assert_eq!(count("audit_events", "time_ms") as u64, n);
    });
    let query = |owner: Option<&str>| StatsQuery {
        since_ms: since,
        until_ms: until,
        bucket_ms: 3_600_000,
        ingested_by: owner.map(str::to_owned),
        top_content_types: 50,
    };
    let all = median_ms(rounds, || {
        assert_eq!(store.evidence_stats(&query(None)).unwrap().total, n);
    });
    let owner = median_ms(rounds, || {
        assert_eq!(
            store.evidence_stats(&query(Some("alice"))).unwrap().total,
            n.div_ceil(2)
        );
    });
    let audit = median_ms(rounds, || {
        let got = store.audit_outcomes(since, until, None).unwrap();
        assert_eq!(got.iter().map(|(_, c)| c).sum::<u64>(), n);
    });
    let per_s = |ms: f64| n as f64 / (ms / 1e3) / 1e6;
    println!(
        "| count over a window of {n} rows | ms (median of {rounds}) | M rows/s | vs baseline |"
    );
    println!("|---|---|---|---|");
    for (what, ms, base) in [
        (
            "baseline: raw `count(*)` on records_ingested_at",
            base_records,
            base_records,
        ),
        (
            "evidence_stats, all readers (buckets + content types)",
            all,
            base_records,
        ),
        (
            "evidence_stats, one owner (half the rows)",
            owner,
            base_records,
        ),
        (
            "baseline: raw `count(*)` on audit_events_time",
            base_audit,
            base_audit,
        ),
        ("audit_outcomes", audit, base_audit),
    ] {
        println!(
            "| {what} | {ms:.1} | {:.2} | {:.1}× |",
            per_s(ms),
            ms / base
        );
    }
}
