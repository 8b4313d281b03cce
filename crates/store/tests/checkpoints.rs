//! Checkpoints: what the SQLite driver adds to the conformance suite's
//! cases (`evault_store::testing`), which cover the rest: the limits of its
//! integers and of a page.

mod common;

use common::fresh;
use evault_store::{LogId, LogStore, StoreError, StoredCheckpoint};

fn cp(size: u64, note: &str) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        note: format!("example.com/log\n{size}\n{note}\n"),
        created_at_ms: 1_700_000_000_000 + size as i64,
    }
}

/// A size SQLite's INTEGER cannot hold is refused, in either log.
#[test]
fn a_checkpoint_size_beyond_i64_is_refused() {
    let (_dir, _path, store) = fresh();
    for log in [LogId::Evidence, LogId::Audit] {
        assert!(matches!(
            store.put_checkpoint(log, &cp(u64::MAX, "x")),
            Err(StoreError::Backend(_))
        ));
        assert_eq!(store.latest_checkpoint(log).unwrap(), None);
    }
}

#[test]
fn checkpoint_listing_is_limited_to_1000() {
    let (_dir, _path, store) = fresh();
    for size in 1..=1005u64 {
        store
            .put_checkpoint(LogId::Evidence, &cp(size, "n"))
            .unwrap();
    }
    let page = store
        .list_checkpoints(LogId::Evidence, None, u32::MAX)
        .unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page.last().map(|c| c.size), Some(1000));
    let rest = store
        .list_checkpoints(LogId::Evidence, Some(1000), 1000)
        .unwrap();
    assert_eq!(rest.len(), 5);
}
