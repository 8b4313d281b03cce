//! `Store::list`: filters, leaf order, limits and cursors.

mod common;

use common::{T0, TileBuilder, append_rows, fresh, rows};
use evault_store::{EvidenceRow, ListQuery, SqliteStore, Store};

const N: u64 = 1200;

fn store_with_records() -> (tempfile::TempDir, SqliteStore, Vec<EvidenceRow>) {
    let (dir, _path, store) = fresh();
    let mut tb = TileBuilder::new();
    let all = rows(0..N);
    for chunk in all.chunks(500) {
        append_rows(&store, &mut tb, chunk);
    }
    (dir, store, all)
}

fn label(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Pages through `query` with `limit`, checking every page's shape, and
/// returns all items.
fn collect_pages(store: &SqliteStore, query: &ListQuery, limit: u32) -> Vec<EvidenceRow> {
    let mut q = query.clone();
    q.limit = limit;
    let mut out: Vec<EvidenceRow> = Vec::new();
    for _ in 0..10_000 {
        let page = store.list(&q).unwrap();
        assert!(page.items.len() <= limit as usize);
        assert!(
            page.items
                .windows(2)
                .all(|w| w[0].leaf_index < w[1].leaf_index)
        );
        if let (Some(prev), Some(first)) = (out.last(), page.items.first()) {
            assert!(prev.leaf_index < first.leaf_index);
        }
        if page.items.len() == limit as usize {
            assert_eq!(page.next, page.items.last().map(|r| r.leaf_index));
        } else {
            assert_eq!(page.next, None);
        }
        out.extend(page.items);
        match page.next {
            Some(n) => q.after_index = Some(n),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

fn expect(all: &[EvidenceRow], pred: impl Fn(&EvidenceRow) -> bool) -> Vec<EvidenceRow> {
    all.iter().filter(|r| pred(r)).cloned().collect()
}

#[test]
fn filters_select_exactly_the_matching_records() {
    let (_dir, store, all) = store_with_records();
    type Pred = Box<dyn Fn(&EvidenceRow) -> bool>;
    let cases: Vec<(ListQuery, Pred)> = vec![
        (ListQuery::default(), Box::new(|_| true)),
        (
            ListQuery {
                labels: vec![label("case", "case-1")],
                ..Default::default()
            },
            Box::new(|r| r.leaf_index % 3 == 1),
        ),
        (
            ListQuery {
                labels: vec![label("case", "case-1"), label("source", "src-0")],
                ..Default::default()
            },
            Box::new(|r| r.leaf_index % 3 == 1 && r.leaf_index % 2 == 0),
        ),
        (
            // Two values of one key: nothing has both.
            ListQuery {
                labels: vec![label("case", "case-1"), label("case", "case-2")],
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            ListQuery {
                labels: vec![label("case", "nope")],
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            ListQuery {
                content_type: Some("application/pdf".into()),
                ..Default::default()
            },
            Box::new(|r| r.leaf_index % 4 == 0),
        ),
        (
            // since inclusive, until exclusive.
            ListQuery {
                since_ms: Some(T0 + 500),
                until_ms: Some(T0 + 1000),
                ..Default::default()
            },
            Box::new(|r| (50..100).contains(&r.leaf_index)),
        ),
        (
            ListQuery {
                since_ms: Some(T0 + 11_000),
                ..Default::default()
            },
            Box::new(|r| r.leaf_index >= 1100),
        ),
        (
            ListQuery {
                until_ms: Some(T0 + 30),
                ..Default::default()
            },
            Box::new(|r| r.leaf_index < 3),
        ),
        (
            ListQuery {
                labels: vec![label("source", "src-0")],
                content_type: Some("application/json".into()),
                since_ms: Some(T0 + 2000),
                until_ms: Some(T0 + 9000),
                ..Default::default()
            },
            Box::new(|r| {
                r.leaf_index % 2 == 0 && r.leaf_index % 4 != 0 && (200..900).contains(&r.leaf_index)
            }),
        ),
        (
            ListQuery {
                ingested_by: Some("alice".into()),
                ..Default::default()
            },
            Box::new(|r| r.ingested_by == "alice"),
        ),
        (
            ListQuery {
                ingested_by: Some("bob".into()),
                labels: vec![label("case", "case-2")],
                ..Default::default()
            },
            Box::new(|r| r.ingested_by == "bob" && r.leaf_index % 3 == 2),
        ),
        (
            ListQuery {
                ingested_by: Some("mallory".into()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            ListQuery {
                after_index: Some(1150),
                ..Default::default()
            },
            Box::new(|r| r.leaf_index > 1150),
        ),
        (
            ListQuery {
                labels: vec![label("case", "case-0")],
                after_index: Some(600),
                ..Default::default()
            },
            Box::new(|r| r.leaf_index % 3 == 0 && r.leaf_index > 600),
        ),
    ];
    for (n, (query, pred)) in cases.iter().enumerate() {
        let want = expect(&all, pred);
        // One big page (when it fits), and small pages covering everything
        // exactly once; records come back whole, labels included.
        if want.len() < 1000 {
            let page = store
                .list(&ListQuery {
                    limit: 1000,
                    ..query.clone()
                })
                .unwrap();
            assert_eq!(page.items, want, "case {n}");
            assert_eq!(page.next, None, "case {n}");
        }
        for limit in [7, 100] {
            assert_eq!(
                collect_pages(&store, query, limit),
                want,
                "case {n} limit {limit}"
            );
        }
    }
}

#[test]
fn limit_is_clamped_and_full_pages_carry_a_cursor() {
    let (_dir, store, all) = store_with_records();
    // 0 means 1.
    let page = store.list(&ListQuery::default()).unwrap();
    assert_eq!(page.items, all[..1].to_vec());
    assert_eq!(page.next, Some(0));
    // At most 1000.
    let page = store
        .list(&ListQuery {
            limit: u32::MAX,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items.len(), 1000);
    assert_eq!(page.next, Some(999));
    let rest = store
        .list(&ListQuery {
            limit: 1000,
            after_index: page.next,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rest.items, all[1000..].to_vec());
    assert_eq!(rest.next, None);
    // A full last page has a cursor; the page after it is empty.
    let page = store
        .list(&ListQuery {
            limit: 200,
            after_index: Some(999),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.next, Some(N - 1));
    let page = store
        .list(&ListQuery {
            limit: 200,
            after_index: page.next,
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
    // A cursor past anything storable is just the end.
    let page = store
        .list(&ListQuery {
            limit: 10,
            after_index: Some(u64::MAX),
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}

#[test]
fn empty_store_lists_nothing() {
    let (_dir, _path, store) = fresh();
    let page = store
        .list(&ListQuery {
            labels: vec![label("a", "b")],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}
