//! `Store::evidence_stats` and `Store::audit_outcomes`: the dashboard's
//! counts, checked against counts computed here from the rows appended.

mod common;

use std::collections::BTreeMap;

use common::{T0, Trees, append_both, audit_rows, fresh, rows};
use evault_store::{AuditIndex, EvidenceIndex, EvidenceRow, EvidenceStats, StatsQuery};

const N: u64 = 1000;

/// The expected counts of `all` in the query's window.
fn reference(all: &[EvidenceRow], q: &StatsQuery) -> EvidenceStats {
    let mut buckets = BTreeMap::new();
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    for r in all.iter().filter(|r| {
        r.ingested_at_ms >= q.since_ms
            && r.ingested_at_ms < q.until_ms
            && q.ingested_by.as_ref().is_none_or(|p| *p == r.ingested_by)
    }) {
        *buckets
            .entry(r.ingested_at_ms / q.bucket_ms * q.bucket_ms)
            .or_insert(0) += 1;
        *types.entry(r.content_type.clone()).or_default() += 1;
    }
    let mut types: Vec<_> = types.into_iter().collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    types.truncate(q.top_content_types as usize);
    EvidenceStats {
        total: buckets.values().sum(),
        buckets: buckets.into_iter().collect(),
        content_types: types,
    }
}

#[test]
fn counts_per_bucket_and_content_type_match_the_rows() {
    let (_dir, _path, store) = fresh();
    let mut trees = Trees::new();
    let all = rows(0..N);
    let events = audit_rows(0..N);
    for (r, e) in all.chunks(250).zip(events.chunks(250)) {
        append_both(&store, &mut trees, r, e).unwrap();
    }
    // Records are 10 ms apart from T0: windows cut through buckets.
    let cases = [
        (T0, T0 + 10 * N as i64, 1000, None),
        (T0 + 5, T0 + 4_005, 700, None),
        (T0, T0 + 10 * N as i64, 3_000, Some("alice")),
        (T0 + 2_000, T0 + 2_001, 1, Some("bob")),
        (T0 - 1_000, T0, 100, None),
    ];
    for (since_ms, until_ms, bucket_ms, who) in cases {
        for top in [1, 50] {
            let q = StatsQuery {
                since_ms,
                until_ms,
                bucket_ms,
                ingested_by: who.map(str::to_owned),
                top_content_types: top,
            };
            let got = store.evidence_stats(&q).unwrap();
            assert_eq!(got, reference(&all, &q), "{q:?}");
        }
    }
    let zero = StatsQuery {
        since_ms: T0,
        until_ms: T0 + 1,
        bucket_ms: 0,
        ingested_by: None,
        top_content_types: 1,
    };
    assert!(
        store.evidence_stats(&zero).is_err(),
        "a zero bucket is refused"
    );

    // Audit outcomes: every event in the window, per outcome.
    for (since, until, who) in [
        (T0, T0 + 10 * N as i64, None),
        (T0 + 1_000, T0 + 3_000, Some("alice")),
        (T0 + 1_000, T0 + 3_000, Some("nobody")),
    ] {
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.time_ms >= since && e.time_ms < until)
            .filter(|e| who.is_none_or(|p| e.principal == p))
        {
            *want.entry(e.outcome.clone()).or_default() += 1;
        }
        let got = store.audit_outcomes(since, until, who).unwrap();
        assert_eq!(
            got,
            want.into_iter().collect::<Vec<_>>(),
            "{since} {until} {who:?}"
        );
    }
}
