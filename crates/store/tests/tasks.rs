//! The task table: insert, update, read back, list by every filter with
//! paging, the unfinished tasks a restart looks for, expired results, and
//! rows that survive a reopen.

mod common;

use common::fresh;
use evault_store::{SqliteStore, Store, StoreError, TaskQuery, TaskRow, TaskState, TaskStore};

fn task(n: u32, principal: &str, kind: &str, state: TaskState) -> TaskRow {
    TaskRow {
        // Ids sort like UUIDv7 text: by creation.
        id: format!("0000000{n:02}-0000-7000-8000-000000000000"),
        kind: kind.into(),
        principal: principal.into(),
        reads_all: n.is_multiple_of(4),
        params: format!("{{\"n\":{n}}}"),
        state,
        done: 0,
        total: None,
        result_file: None,
        result_size: None,
        result_sha256: None,
        summary: None,
        error: None,
        created_ms: 1_000 + i64::from(n),
        started_ms: None,
        finished_ms: None,
        checkpoint: None,
    }
}

fn tasks(store: &SqliteStore) -> &dyn TaskStore {
    store.tasks().expect("SQLite keeps tasks")
}

#[test]
fn round_trip_update_and_duplicate() {
    let (_dir, path, store) = fresh();
    let t = tasks(&store);
    let mut row = task(1, "sa:a", "count", TaskState::Pending);
    t.insert_task(&row).unwrap();
    assert_eq!(t.task(&row.id).unwrap(), Some(row.clone()));
    assert!(matches!(
        t.insert_task(&row),
        Err(StoreError::Duplicate(d)) if d.contains(&row.id)
    ));

    row.state = TaskState::Succeeded;
    row.done = 7;
    row.total = Some(7);
    row.result_file = Some("x.result".into());
    row.result_size = Some(12);
    row.result_sha256 = Some("ab".repeat(32));
    row.summary = Some("{}".into());
    row.started_ms = Some(5);
    row.finished_ms = Some(6);
    row.checkpoint = Some("step 7".into());
    assert!(t.update_task(&row).unwrap());
    assert_eq!(t.task(&row.id).unwrap(), Some(row.clone()));
    // Updating a task that does not exist changes nothing.
    let ghost = task(99, "sa:a", "count", TaskState::Running);
    assert!(!t.update_task(&ghost).unwrap());
    assert_eq!(t.task(&ghost.id).unwrap(), None);

    // The row survives a reopen.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(tasks(&store).task(&row.id).unwrap(), Some(row));
}

#[test]
fn lists_filter_page_and_find_unfinished_and_expired() {
    let (_dir, _path, store) = fresh();
    let t = tasks(&store);
    let states = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];
    for n in 0..20u32 {
        let principal = if n.is_multiple_of(2) { "sa:a" } else { "sa:b" };
        let kind = if n.is_multiple_of(3) { "fsck" } else { "count" };
        let mut row = task(n, principal, kind, states[n as usize % 5]);
        if row.state.is_final() {
            row.finished_ms = Some(100 + i64::from(n));
            row.result_file = (row.state == TaskState::Succeeded).then(|| format!("{n}.result"));
        }
        t.insert_task(&row).unwrap();
    }
    let ids = |q: TaskQuery| -> Vec<u32> {
        t.list_tasks(&q)
            .unwrap()
            .iter()
            .map(|r| r.id[7..9].parse().unwrap())
            .collect()
    };
    let all = TaskQuery {
        limit: 100,
        ..TaskQuery::default()
    };
    assert_eq!(ids(all.clone()), (0..20).rev().collect::<Vec<_>>());
    assert_eq!(
        ids(TaskQuery {
            principal: Some("sa:b".into()),
            ..all.clone()
        }),
        vec![19, 17, 15, 13, 11, 9, 7, 5, 3, 1]
    );
    assert_eq!(
        ids(TaskQuery {
            principal: Some("sa:a".into()),
            kind: Some("fsck".into()),
            ..all.clone()
        }),
        vec![18, 12, 6, 0]
    );
    assert_eq!(
        ids(TaskQuery {
            state: Some(TaskState::Running),
            ..all.clone()
        }),
        vec![16, 11, 6, 1]
    );
    // Paging: newest first, then before the last id seen.
    let first = t
        .list_tasks(&TaskQuery {
            limit: 3,
            ..TaskQuery::default()
        })
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(
        ids(TaskQuery {
            before: Some(first[2].id.clone()),
            limit: 3,
            ..TaskQuery::default()
        }),
        vec![16, 15, 14]
    );

    let unfinished: Vec<_> = t
        .unfinished_tasks()
        .unwrap()
        .iter()
        .map(|r| (r.id[7..9].parse::<u32>().unwrap(), r.state))
        .collect();
    assert_eq!(
        unfinished.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![0, 1, 5, 6, 10, 11, 15, 16]
    );
    assert!(unfinished.iter().all(|u| !u.1.is_final()));

    // Succeeded tasks with a result file, finished before 112: 2 and 7.
    let expired: Vec<_> = t
        .expired_results(112)
        .unwrap()
        .iter()
        .map(|r| r.id[7..9].parse::<u32>().unwrap())
        .collect();
    assert_eq!(expired, vec![2, 7]);
}
