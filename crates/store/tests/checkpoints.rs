//! Checkpoints and metadata.

mod common;

use common::fresh;
use evault_store::{LogId, Store, StoreError, StoredCheckpoint};

fn cp(size: u64, note: &str) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        note: format!("example.com/log\n{size}\n{note}\n"),
        created_at_ms: 1_700_000_000_000 + size as i64,
    }
}

#[test]
fn checkpoints_put_latest_at_list() {
    for log in [LogId::Evidence, LogId::Audit] {
        checkpoints_of(log);
    }
}

fn checkpoints_of(log: LogId) {
    let (_dir, _path, store) = fresh();
    assert_eq!(store.latest_checkpoint(log).unwrap(), None);
    assert_eq!(store.checkpoint_at(log, 0).unwrap(), None);
    assert!(store.list_checkpoints(log, None, 10).unwrap().is_empty());

    // Out of order on purpose: latest is the largest size, not the last put.
    for size in [5u64, 1, 100, 42, 0] {
        store.put_checkpoint(log, &cp(size, "first")).unwrap();
    }
    assert_eq!(
        store.latest_checkpoint(log).unwrap(),
        Some(cp(100, "first"))
    );
    assert_eq!(store.checkpoint_at(log, 42).unwrap(), Some(cp(42, "first")));
    assert_eq!(store.checkpoint_at(log, 0).unwrap(), Some(cp(0, "first")));
    assert_eq!(store.checkpoint_at(log, 43).unwrap(), None);
    assert_eq!(store.checkpoint_at(log, u64::MAX).unwrap(), None);

    // The same size twice keeps the first.
    store.put_checkpoint(log, &cp(42, "second")).unwrap();
    assert_eq!(store.checkpoint_at(log, 42).unwrap(), Some(cp(42, "first")));

    let sizes = |v: Vec<StoredCheckpoint>| v.into_iter().map(|c| c.size).collect::<Vec<_>>();
    assert_eq!(
        sizes(store.list_checkpoints(log, None, 10).unwrap()),
        [0, 1, 5, 42, 100]
    );
    assert_eq!(sizes(store.list_checkpoints(log, None, 2).unwrap()), [0, 1]);
    assert_eq!(
        sizes(store.list_checkpoints(log, Some(1), 2).unwrap()),
        [5, 42]
    );
    assert_eq!(
        sizes(store.list_checkpoints(log, Some(0), 100).unwrap()),
        [1, 5, 42, 100]
    );
    assert!(
        store
            .list_checkpoints(log, Some(100), 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_checkpoints(log, Some(u64::MAX), 10)
            .unwrap()
            .is_empty()
    );
    // Limit 0 is clamped to 1.
    assert_eq!(
        sizes(store.list_checkpoints(log, Some(5), 0).unwrap()),
        [42]
    );
    assert_eq!(
        store.list_checkpoints(log, None, 10).unwrap()[3],
        cp(42, "first")
    );

    // A size SQLite cannot hold is refused.
    assert!(matches!(
        store.put_checkpoint(log, &cp(u64::MAX, "x")),
        Err(StoreError::Backend(_))
    ));
}

/// The two logs' checkpoints never mix: same sizes, different notes, each
/// read back from its own table.
#[test]
fn each_log_has_its_own_checkpoints() {
    let (_dir, _path, store) = fresh();
    store
        .put_checkpoint(LogId::Evidence, &cp(3, "evidence"))
        .unwrap();
    store.put_checkpoint(LogId::Audit, &cp(3, "audit")).unwrap();
    store.put_checkpoint(LogId::Audit, &cp(9, "audit")).unwrap();
    assert_eq!(
        store.checkpoint_at(LogId::Evidence, 3).unwrap(),
        Some(cp(3, "evidence"))
    );
    assert_eq!(
        store.checkpoint_at(LogId::Audit, 3).unwrap(),
        Some(cp(3, "audit"))
    );
    assert_eq!(
        store.latest_checkpoint(LogId::Evidence).unwrap(),
        Some(cp(3, "evidence"))
    );
    assert_eq!(
        store.latest_checkpoint(LogId::Audit).unwrap(),
        Some(cp(9, "audit"))
    );
    assert_eq!(store.checkpoint_at(LogId::Evidence, 9).unwrap(), None);
    assert_eq!(
        store
            .list_checkpoints(LogId::Evidence, None, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_checkpoints(LogId::Audit, None, 10)
            .unwrap()
            .len(),
        2
    );
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

#[test]
fn meta_set_get_overwrite() {
    let (_dir, _path, store) = fresh();
    assert_eq!(store.get_meta("origin").unwrap(), None);
    store.set_meta("origin", "example.com/log").unwrap();
    store.set_meta("key_id", "abc").unwrap();
    assert_eq!(
        store.get_meta("origin").unwrap().as_deref(),
        Some("example.com/log")
    );
    store.set_meta("origin", "other").unwrap();
    assert_eq!(store.get_meta("origin").unwrap().as_deref(), Some("other"));
    assert_eq!(store.get_meta("key_id").unwrap().as_deref(), Some("abc"));
    store.set_meta("empty", "").unwrap();
    assert_eq!(store.get_meta("empty").unwrap().as_deref(), Some(""));
}
