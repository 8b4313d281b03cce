//! Analytics rows: written with their records in one transaction (or not
//! at all), summarised by SQL aggregation, filtered, and still there after
//! the store is reopened.

mod common;

use std::collections::BTreeMap;

use common::{TileBuilder, append_rows, fresh, row, snapshot};
use evault_merkle::leaf_hash;
use evault_store::{
    AnalyticsGroup, AnalyticsQuery, AnalyticsRow, AppendBatch, EvidenceIndex, EvidenceRow, LogId,
    LogStore, SqliteStore, Stats, StoreError,
};

const ANALYTICS: &str = "application/vnd.evault.analytics+json";

/// Record `i` carrying an analytics event.
fn event(
    i: u64,
    source: &str,
    kind: &str,
    ts: i64,
    value: Option<f64>,
    unit: Option<&str>,
    metrics: &[(&str, f64)],
) -> EvidenceRow {
    let mut r = row(i);
    r.content_type = ANALYTICS.into();
    r.analytics = Some(AnalyticsRow {
        source: source.into(),
        kind: kind.into(),
        timestamp_ms: ts,
        value,
        unit: unit.map(str::to_owned),
        metrics: metrics.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
    });
    r
}

fn stats(count: u64, min: f64, max: f64, mean: f64) -> Stats {
    Stats {
        count,
        min,
        max,
        mean,
    }
}

/// Ten records, eight of them analytics events of three groups, appended
/// in two batches. Record `i` is ingested by alice when `i` is even.
fn populate(store: &SqliteStore) -> TileBuilder {
    let mut tiles = TileBuilder::new();
    let first = vec![
        event(
            0,
            "ci",
            "build",
            1000,
            Some(1.0),
            Some("s"),
            &[("cpu", 0.5)],
        ),
        row(1),
        event(
            2,
            "ci",
            "build",
            3000,
            Some(2.0),
            Some("s"),
            &[("cpu", 1.5), ("mem", 64.0)],
        ),
        event(3, "ci", "build", 2000, None, Some("s"), &[]),
        event(
            4,
            "ci",
            "test",
            5000,
            Some(-4.0),
            None,
            &[("failures", 2.0)],
        ),
    ];
    append_rows(store, &mut tiles, &first);
    let second = vec![
        event(5, "ci", "test", 4000, Some(10.0), Some("ms"), &[]),
        row(6),
        event(
            7,
            "ci",
            "build",
            2500,
            Some(4.5),
            Some("s"),
            &[("cpu", 1.0), ("mem", 32.0)],
        ),
        event(8, "a-lab", "scan", 9000, None, None, &[("issues", 3.0)]),
        event(9, "ci", "test", 6000, Some(0.0), None, &[("failures", 0.0)]),
    ];
    append_rows(store, &mut tiles, &second);
    tiles
}

/// What `populate` stored, summarised by hand.
fn expected_all() -> Vec<AnalyticsGroup> {
    vec![
        AnalyticsGroup {
            source: "a-lab".into(),
            kind: "scan".into(),
            count: 1,
            first_ms: 9000,
            last_ms: 9000,
            value: None,
            unit: None,
            metrics: BTreeMap::from([("issues".into(), stats(1, 3.0, 3.0, 3.0))]),
        },
        AnalyticsGroup {
            source: "ci".into(),
            kind: "build".into(),
            count: 4,
            first_ms: 1000,
            last_ms: 3000,
            // 1 + 2 + 4.5 = 7.5, over 3 events with a value.
            value: Some(stats(3, 1.0, 4.5, 2.5)),
            unit: Some("s".into()),
            metrics: BTreeMap::from([
                ("cpu".into(), stats(3, 0.5, 1.5, 1.0)),
                ("mem".into(), stats(2, 32.0, 64.0, 48.0)),
            ]),
        },
        AnalyticsGroup {
            source: "ci".into(),
            kind: "test".into(),
            count: 3,
            first_ms: 4000,
            last_ms: 6000,
            value: Some(stats(3, -4.0, 10.0, 2.0)),
            // "ms" on one event, none on the others.
            unit: None,
            metrics: BTreeMap::from([("failures".into(), stats(2, 0.0, 2.0, 1.0))]),
        },
    ]
}

fn summary(store: &SqliteStore, q: AnalyticsQuery) -> Vec<AnalyticsGroup> {
    store.analytics_summary(&q).unwrap()
}

#[test]
fn summary_aggregates_per_source_and_kind() {
    let (_dir, _path, store) = fresh();
    assert_eq!(summary(&store, AnalyticsQuery::default()), vec![]);
    populate(&store);
    assert_eq!(summary(&store, AnalyticsQuery::default()), expected_all());
}

#[test]
fn summary_filters_by_source_kind_time_and_ingester() {
    let (_dir, _path, store) = fresh();
    populate(&store);
    let all = expected_all();

    let q = AnalyticsQuery {
        source: Some("ci".into()),
        ..AnalyticsQuery::default()
    };
    assert_eq!(summary(&store, q), all[1..].to_vec());
    let q = AnalyticsQuery {
        kind: Some("scan".into()),
        ..AnalyticsQuery::default()
    };
    assert_eq!(summary(&store, q), all[..1].to_vec());
    let q = AnalyticsQuery {
        source: Some("ci".into()),
        kind: Some("test".into()),
        ..AnalyticsQuery::default()
    };
    assert_eq!(summary(&store, q), all[2..].to_vec());
    let q = AnalyticsQuery {
        source: Some("nobody".into()),
        ..AnalyticsQuery::default()
    };
    assert_eq!(summary(&store, q), vec![]);

    // since is inclusive, until exclusive: [2000, 4000) holds events 3
    // (2000), 7 (2500) and 2 (3000).
    let q = AnalyticsQuery {
        since_ms: Some(2000),
        until_ms: Some(4000),
        ..AnalyticsQuery::default()
    };
    assert_eq!(
        summary(&store, q),
        vec![AnalyticsGroup {
            source: "ci".into(),
            kind: "build".into(),
            count: 3,
            first_ms: 2000,
            last_ms: 3000,
            value: Some(stats(2, 2.0, 4.5, 3.25)),
            unit: Some("s".into()),
            metrics: BTreeMap::from([
                ("cpu".into(), stats(2, 1.0, 1.5, 1.25)),
                ("mem".into(), stats(2, 32.0, 64.0, 48.0)),
            ]),
        }]
    );
    let q = AnalyticsQuery {
        until_ms: Some(1000),
        ..AnalyticsQuery::default()
    };
    assert_eq!(summary(&store, q), vec![]);
    let q = AnalyticsQuery {
        since_ms: Some(9000),
        ..AnalyticsQuery::default()
    };
    assert_eq!(summary(&store, q), all[..1].to_vec());

    // alice ingested the even records: 0, 2, 4, 8.
    let q = AnalyticsQuery {
        ingested_by: Some("alice".into()),
        ..AnalyticsQuery::default()
    };
    let got = summary(&store, q);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], all[0]);
    assert_eq!(
        got[1],
        AnalyticsGroup {
            source: "ci".into(),
            kind: "build".into(),
            count: 2,
            first_ms: 1000,
            last_ms: 3000,
            value: Some(stats(2, 1.0, 2.0, 1.5)),
            unit: Some("s".into()),
            metrics: BTreeMap::from([
                ("cpu".into(), stats(2, 0.5, 1.5, 1.0)),
                ("mem".into(), stats(1, 64.0, 64.0, 64.0)),
            ]),
        }
    );
    assert_eq!(
        got[2],
        AnalyticsGroup {
            source: "ci".into(),
            kind: "test".into(),
            count: 1,
            first_ms: 5000,
            last_ms: 5000,
            value: Some(stats(1, -4.0, -4.0, -4.0)),
            unit: None,
            metrics: BTreeMap::from([("failures".into(), stats(1, 2.0, 2.0, 2.0))]),
        }
    );
    // All filters at once.
    let q = AnalyticsQuery {
        source: Some("ci".into()),
        kind: Some("build".into()),
        since_ms: Some(1001),
        until_ms: Some(10_000),
        ingested_by: Some("bob".into()),
    };
    let got = summary(&store, q);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].count, got[0].first_ms, got[0].last_ms),
        (2, 2000, 2500)
    );
    assert_eq!(got[0].value, Some(stats(1, 4.5, 4.5, 4.5)));
}

#[test]
fn records_read_back_without_their_analytics_copy() {
    let (_dir, _path, store) = fresh();
    populate(&store);
    let mut want = event(2, "ci", "build", 3000, Some(2.0), Some("s"), &[]);
    want.analytics = None;
    assert_eq!(store.record_by_index(2).unwrap(), Some(want));
}

/// Appends `batch` after `tiles`, expecting an error, and checks that
/// nothing (records, analytics rows, metrics) was written.
fn assert_rejected(
    store: &SqliteStore,
    path: &std::path::Path,
    tiles: &TileBuilder,
    batch: &[EvidenceRow],
    check: impl Fn(&StoreError) -> bool,
) {
    let leaves: Vec<_> = batch.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let t = tiles.clone().append(&leaves);
    let before = snapshot(store, path);
    let err = store
        .append(&AppendBatch::new(tiles.size(), batch, &t))
        .unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(snapshot(store, path), before, "after {err}");
}

#[test]
fn a_failed_append_writes_no_analytics_rows() {
    let (_dir, path, store) = fresh();
    let tiles = populate(&store);
    let before = summary(&store, AnalyticsQuery::default());
    let batch = || {
        vec![
            event(
                10,
                "ci",
                "build",
                100,
                Some(7.0),
                Some("s"),
                &[("cpu", 9.0)],
            ),
            event(11, "new", "kind", 100, Some(1.0), None, &[("m", 1.0)]),
            row(12),
        ]
    };

    // The last record duplicates a stored one, after both analytics rows
    // were inserted.
    let mut dup = batch();
    dup[2].id = row(1).id;
    assert_rejected(
        &store,
        &path,
        &tiles,
        &dup,
        |e| matches!(e, StoreError::Duplicate(m) if m.starts_with("record id")),
    );
    // A metric named twice in one event.
    let mut twice = batch();
    if let Some(a) = twice[1].analytics.as_mut() {
        a.metrics.push(("m".into(), 2.0));
    }
    assert_rejected(
        &store,
        &path,
        &tiles,
        &twice,
        |e| matches!(e, StoreError::Backend(b) if b.to_string().contains("given twice")),
    );
    // Numbers SQLite cannot aggregate.
    for bad in [f64::NAN, f64::INFINITY] {
        let mut nan = batch();
        if let Some(a) = nan[1].analytics.as_mut() {
            a.value = Some(bad);
        }
        assert_rejected(
            &store,
            &path,
            &tiles,
            &nan,
            |e| matches!(e, StoreError::Backend(b) if b.to_string().contains("not finite")),
        );
        let mut nan = batch();
        if let Some(a) = nan[0].analytics.as_mut() {
            a.metrics[0].1 = bad;
        }
        assert_rejected(
            &store,
            &path,
            &tiles,
            &nan,
            |e| matches!(e, StoreError::Backend(b) if b.to_string().contains("not finite")),
        );
    }
    // A bad tile fails the batch after every row was inserted.
    let ok = batch();
    let leaves: Vec<_> = ok.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let mut t = tiles.clone().append(&leaves);
    t[0].1[0] ^= 1;
    let snap = snapshot(&store, &path);
    assert!(
        store
            .append(&AppendBatch::new(tiles.size(), &ok, &t))
            .is_err()
    );
    assert_eq!(snapshot(&store, &path), snap);
    assert_eq!(summary(&store, AnalyticsQuery::default()), before);

    // The correct batch is then taken, analytics and all.
    let mut tiles = tiles;
    append_rows(&store, &mut tiles, &ok);
    let after = summary(&store, AnalyticsQuery::default());
    assert_eq!(after.len(), 4);
    assert_eq!(after[1].count, 5);
    assert_eq!(after[1].first_ms, 100);
    assert_eq!(after[1].metrics["cpu"], stats(4, 0.5, 9.0, 3.0));
    assert_eq!(after[3].source, "new");
}

#[test]
fn summary_survives_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evault.db");
    let before = {
        let store = SqliteStore::open(&path).unwrap();
        populate(&store);
        summary(&store, AnalyticsQuery::default())
    };
    assert_eq!(before, expected_all());
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 10);
    assert_eq!(summary(&store, AnalyticsQuery::default()), before);
}

#[test]
fn many_events_aggregate_in_sql() {
    let (_dir, _path, store) = fresh();
    let mut tiles = TileBuilder::new();
    let all: Vec<EvidenceRow> = (0..2000u64)
        .map(|i| {
            let src = if i % 2 == 0 { "even" } else { "odd" };
            event(
                i,
                src,
                "k",
                i as i64,
                Some(i as f64),
                Some("u"),
                &[("twice", 2.0 * i as f64)],
            )
        })
        .collect();
    for chunk in all.chunks(500) {
        append_rows(&store, &mut tiles, chunk);
    }
    let got = summary(&store, AnalyticsQuery::default());
    assert_eq!(got.len(), 2);
    // Even: 0, 2, ..., 1998 (mean 999); odd: 1, ..., 1999 (mean 1000).
    assert_eq!(got[0].source, "even");
    assert_eq!(got[0].value, Some(stats(1000, 0.0, 1998.0, 999.0)));
    assert_eq!(got[0].metrics["twice"], stats(1000, 0.0, 3996.0, 1998.0));
    assert_eq!(got[1].value, Some(stats(1000, 1.0, 1999.0, 1000.0)));
    assert_eq!(got[1].unit.as_deref(), Some("u"));
}
