//! Checkpoints and metadata.

mod common;

use common::fresh;
use evault_store::{Store, StoreError, StoredCheckpoint};

fn cp(size: u64, note: &str) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        note: format!("example.com/log\n{size}\n{note}\n"),
        created_at_ms: 1_700_000_000_000 + size as i64,
    }
}

#[test]
fn checkpoints_put_latest_at_list() {
    let (_dir, _path, store) = fresh();
    assert_eq!(store.latest_checkpoint().unwrap(), None);
    assert_eq!(store.checkpoint_at(0).unwrap(), None);
    assert!(store.list_checkpoints(None, 10).unwrap().is_empty());

    // Out of order on purpose: latest is the largest size, not the last put.
    for size in [5u64, 1, 100, 42, 0] {
        store.put_checkpoint(&cp(size, "first")).unwrap();
    }
    assert_eq!(store.latest_checkpoint().unwrap(), Some(cp(100, "first")));
    assert_eq!(store.checkpoint_at(42).unwrap(), Some(cp(42, "first")));
    assert_eq!(store.checkpoint_at(0).unwrap(), Some(cp(0, "first")));
    assert_eq!(store.checkpoint_at(43).unwrap(), None);
    assert_eq!(store.checkpoint_at(u64::MAX).unwrap(), None);

    // The same size twice keeps the first.
    store.put_checkpoint(&cp(42, "second")).unwrap();
    assert_eq!(store.checkpoint_at(42).unwrap(), Some(cp(42, "first")));

    let sizes = |v: Vec<StoredCheckpoint>| v.into_iter().map(|c| c.size).collect::<Vec<_>>();
    assert_eq!(
        sizes(store.list_checkpoints(None, 10).unwrap()),
        [0, 1, 5, 42, 100]
    );
    assert_eq!(sizes(store.list_checkpoints(None, 2).unwrap()), [0, 1]);
    assert_eq!(sizes(store.list_checkpoints(Some(1), 2).unwrap()), [5, 42]);
    assert_eq!(
        sizes(store.list_checkpoints(Some(0), 100).unwrap()),
        [1, 5, 42, 100]
    );
    assert!(store.list_checkpoints(Some(100), 10).unwrap().is_empty());
    assert!(
        store
            .list_checkpoints(Some(u64::MAX), 10)
            .unwrap()
            .is_empty()
    );
    // Limit 0 is clamped to 1.
    assert_eq!(sizes(store.list_checkpoints(Some(5), 0).unwrap()), [42]);
    assert_eq!(
        store.list_checkpoints(None, 10).unwrap()[3],
        cp(42, "first")
    );

    // A size SQLite cannot hold is refused.
    assert!(matches!(
        store.put_checkpoint(&cp(u64::MAX, "x")),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn checkpoint_listing_is_limited_to_1000() {
    let (_dir, _path, store) = fresh();
    for size in 1..=1005u64 {
        store.put_checkpoint(&cp(size, "n")).unwrap();
    }
    let page = store.list_checkpoints(None, u32::MAX).unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page.last().map(|c| c.size), Some(1000));
    let rest = store.list_checkpoints(Some(1000), 1000).unwrap();
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
