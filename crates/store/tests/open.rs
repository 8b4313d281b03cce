//! Opening: what the SQLite driver adds to the conformance suite's cases
//! (`evault_store::testing`), which cover what survives a reopen: schema
//! versions and migration, file permissions and WAL mode, concurrent
//! readers and writer, two stores on one file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{StoreTiles, TileBuilder, append_rows, fresh, row, rows};
use evault_merkle::tiles::{TileId, TiledHashReader, tile_inner};
use evault_merkle::{leaf_hash, root};
use evault_store::{EvidenceIndex, ListQuery, LogId, LogStore, SqliteStore, Store, StoreError};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn companion(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

#[test]
fn schema_version_is_recorded_and_a_newer_one_is_refused() {
    let (_dir, path, store) = fresh();
    drop(store);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SqliteStore::SCHEMA_VERSION);
    assert!(v >= 1);
    // Reopening at the same version is fine.
    SqliteStore::open(&path).unwrap();

    conn.pragma_update(None, "user_version", v + 1).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (v + 1, v));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Nothing was changed by the refused open.
    let after: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(after, v + 1);
}

#[test]
fn files_are_private_and_parent_dirs_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/vault.db");
    let store = SqliteStore::open(&path).unwrap();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..3));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    let ix = SqliteStore::index_path(&path);
    assert_eq!(ix, dir.path().join("a/b/vault-index.db"));
    for file in [&path, &ix] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        for suffix in ["-wal", "-shm"] {
            let c = companion(file, suffix);
            assert!(c.exists(), "{} exists in WAL mode", c.display());
            assert_eq!(mode(&c), 0o600, "{}", c.display());
        }
    }
    drop(store);

    // An existing, too-open file is tightened on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 3);
    assert_eq!(store.path(), path.as_path());

    // WAL mode really is on, and persistent.
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let jm: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, 16384);
    // The index database too, with small pages (random inserts).
    let jm: String = conn
        .pragma_query_value(Some("ix"), "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    let page_size: i64 = conn
        .pragma_query_value(Some("ix"), "page_size", |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, 4096);
}

/// The index follower's tables (schema 11: all in the index database).
const FOLLOWER_TABLES: [&str; 5] = [
    "index_state",
    "record_labels",
    "records_by_dedup",
    "records_by_idempotency",
    "records_by_sha256",
];

/// Which of [`FOLLOWER_TABLES`] the database `schema` (`main` or `ix`) of
/// `conn` holds, sorted.
fn follower_tables(conn: &rusqlite::Connection, schema: &str) -> Vec<String> {
    let mut names: Vec<String> = conn
        .prepare(&format!(
            "SELECT name FROM {schema}.sqlite_schema WHERE type IN ('table', 'view') ORDER BY name"
        ))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.retain(|n| FOLLOWER_TABLES.contains(&n.as_str()));
    names
}

/// Checks every record below `size` against every index (nothing missing,
/// nothing ahead) and that each unique key leads to its own record.
fn assert_indexes_whole(store: &SqliteStore, size: u64) {
    for l in store.index_lookups(LogId::Evidence, 0, size).unwrap() {
        assert!(l.missing_from.is_empty() && l.ahead_in.is_empty(), "{l:?}");
        if l.indexed {
            assert_eq!(l.labels, l.labels_indexed, "{l:?}");
        }
    }
    for i in 0..size {
        let r = row(i);
        assert_eq!(
            store.record_by_dedup_key(&r.dedup_key).unwrap(),
            Some(r.clone()),
            "{i}"
        );
        if let Some(key) = r.idempotency_key.as_deref() {
            assert_eq!(
                store
                    .record_by_idempotency_key(&r.ingested_by, key)
                    .unwrap()
                    .map(|r| r.leaf_index),
                Some(i)
            );
        }
    }
}

/// A closed store of 40 records, all indexed.
fn forty_indexed() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..40));
    assert_eq!(store.index_evidence(40, 1000).unwrap(), 40);
    (dir, path)
}

/// Deletes the index database of the database at `path`, with its WAL.
fn remove_index_files(path: &std::path::Path) {
    let ix = SqliteStore::index_path(path);
    for file in [companion(&ix, "-wal"), companion(&ix, "-shm"), ix] {
        let _ = std::fs::remove_file(file);
    }
}

/// Schema 11 moves the follower's tables in two steps, each repeatable: a
/// start that stopped after the first (the index database filled) and
/// before the second (the log's tables dropped with the version bump)
/// finds version 10 and moves them again, whatever the index database then
/// holds: nothing (a crash before the first step's commit) or an older,
/// stale copy.
#[test]
fn the_move_to_the_index_database_is_repeatable() {
    for stale in [false, true] {
        let (_dir, path, store) = fresh();
        let mut tb = TileBuilder::new();
        append_rows(&store, &mut tb, &rows(0..40));
        assert_eq!(store.index_evidence(30, 1000).unwrap(), 30);
        drop(store);
        // Back to version 10 with the first step done: the log database has
        // its own follower tables again (as 0009/0010 made them, holding
        // what the index database holds).
        let conn = SqliteStore::raw_connection(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE main.index_state (
                 id INTEGER PRIMARY KEY CHECK (id = 0),
                 evidence_through INTEGER NOT NULL CHECK (evidence_through >= 0)) STRICT;
             CREATE TABLE main.record_labels (key TEXT NOT NULL, value TEXT NOT NULL,
                 leaf_index INTEGER NOT NULL REFERENCES records (leaf_index),
                 PRIMARY KEY (key, value, leaf_index)) STRICT, WITHOUT ROWID;
             CREATE TABLE main.records_by_sha256 (sha256 BLOB NOT NULL, leaf_index INTEGER NOT NULL,
                 PRIMARY KEY (sha256, leaf_index)) STRICT, WITHOUT ROWID;
             CREATE TABLE main.records_by_dedup (dedup_key BLOB NOT NULL, leaf_index INTEGER NOT NULL,
                 PRIMARY KEY (dedup_key, leaf_index)) STRICT, WITHOUT ROWID;
             CREATE TABLE main.records_by_idempotency (ingested_by TEXT NOT NULL,
                 idempotency_key TEXT NOT NULL, leaf_index INTEGER NOT NULL,
                 PRIMARY KEY (ingested_by, idempotency_key, leaf_index)) STRICT, WITHOUT ROWID;
             INSERT INTO main.index_state SELECT * FROM ix.index_state;
             INSERT INTO main.record_labels SELECT * FROM ix.record_labels;
             INSERT INTO main.records_by_sha256 SELECT * FROM ix.records_by_sha256;
             INSERT INTO main.records_by_dedup SELECT * FROM ix.records_by_dedup;
             INSERT INTO main.records_by_idempotency SELECT * FROM ix.records_by_idempotency;
             PRAGMA main.user_version = 10;",
        )
        .unwrap();
        if stale {
            // An older copy in the index database, still marked complete.
            conn.execute_batch(
                "DELETE FROM ix.label_runs WHERE leaf_index >= 20;
                 DELETE FROM ix.dedup_runs WHERE leaf_index >= 20;
                 UPDATE ix.index_state SET evidence_through = 20;",
            )
            .unwrap();
            drop(conn);
        } else {
            drop(conn);
            remove_index_files(&path);
        }

        let store = SqliteStore::open(&path).unwrap();
        let conn = SqliteStore::raw_connection(&path).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        // Schema 11's move, then 12's copy of the tiles.
        assert_eq!(v, 12, "stale {stale}");
        assert_eq!(follower_tables(&conn, "main"), Vec::<String>::new());
        assert_eq!(follower_tables(&conn, "ix"), FOLLOWER_TABLES);
        assert_eq!(store.indexed_through().unwrap(), 30, "stale {stale}");
        assert_eq!(store.unindexed_keys(), 10);
        assert_eq!(store.label_index_len().unwrap(), 60, "stale {stale}");
        assert_indexes_whole(&store, 40);
        assert_eq!(store.index_evidence(40, 1000).unwrap(), 40);
        assert_indexes_whole(&store, 40);
    }
}

/// The index database holds only what the records give: a lost one (the
/// file deleted) is created empty at cursor 0 on open, lookups stay exact
/// from the in-memory tail meanwhile, and the follower indexes every record
/// again.
#[test]
fn a_lost_index_database_is_rebuilt_by_the_follower() {
    let (_dir, path) = forty_indexed();
    remove_index_files(&path);
    let ix = SqliteStore::index_path(&path);
    // fsck's read-only open refuses it and creates nothing.
    let err = SqliteStore::open_read_only(&path).unwrap_err().to_string();
    assert!(err.contains("index database"), "{err}");
    assert!(!ix.exists());

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(mode(&ix), 0o600);
    assert_eq!(store.indexed_through().unwrap(), 0);
    assert_eq!(store.unindexed_keys(), 40);
    assert_eq!(store.label_index_len().unwrap(), 0);
    assert_indexes_whole(&store, 40);
    let page = store
        .list(&ListQuery {
            ingested_by: Some("bob".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items.len(), 20);
    assert_eq!(store.index_evidence(40, 1000).unwrap(), 40);
    assert_eq!(store.unindexed_keys(), 0);
    assert_eq!(store.label_index_len().unwrap(), 80);
    assert_indexes_whole(&store, 40);
}

/// A start that finds more records unindexed than the store keeps keys of
/// in memory (65,536: the follower's lag bound) indexes the rest first, in
/// resumable transactions, so the key tail stays bounded; whether the
/// follower had fallen behind or the index database was lost.
#[test]
fn a_start_far_behind_the_log_indexes_before_it_opens() {
    const RECORDS: u64 = 70_000;
    const OPEN_LAG: u64 = 65_536;
    let (_dir, path, store) = fresh();
    let mut tb = TileBuilder::new();
    for chunk in (0..RECORDS).step_by(10_000) {
        append_rows(&store, &mut tb, &rows(chunk..chunk + 10_000));
    }
    assert_eq!(store.unindexed_keys(), RECORDS as usize);
    drop(store);

    let check = |store: &SqliteStore| {
        assert_eq!(store.indexed_through().unwrap(), RECORDS - OPEN_LAG);
        assert_eq!(store.unindexed_keys(), OPEN_LAG as usize);
        for i in [
            0,
            1,
            RECORDS - OPEN_LAG - 1,
            RECORDS - OPEN_LAG,
            RECORDS - 1,
        ] {
            let r = row(i);
            assert_eq!(
                store.record_by_dedup_key(&r.dedup_key).unwrap(),
                Some(r),
                "{i}"
            );
        }
        let lookups = store
            .index_lookups(
                LogId::Evidence,
                RECORDS - OPEN_LAG - 100,
                RECORDS - OPEN_LAG + 100,
            )
            .unwrap();
        assert_eq!(lookups.len(), 200);
        for l in lookups {
            assert!(l.missing_from.is_empty() && l.ahead_in.is_empty(), "{l:?}");
        }
    };
    // The follower never ran.
    check(&SqliteStore::open(&path).unwrap());
    // The index database lost: rebuilt to the same point.
    remove_index_files(&path);
    check(&SqliteStore::open(&path).unwrap());
    // Within the bound a start indexes nothing; past it, only the excess.
    let store = SqliteStore::open(&path).unwrap();
    check(&store);
    append_rows(&store, &mut tb, &rows(RECORDS..RECORDS + 10));
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.indexed_through().unwrap(), RECORDS + 10 - OPEN_LAG);
    assert_eq!(store.unindexed_keys(), OPEN_LAG as usize);
}

/// Copies the index database of `from` (its files) over that of `to`.
fn copy_index_files(from: &std::path::Path, to: &std::path::Path) {
    remove_index_files(to);
    let (a, b) = (SqliteStore::index_path(from), SqliteStore::index_path(to));
    for suffix in ["", "-wal"] {
        if companion(&a, suffix).exists() {
            std::fs::copy(companion(&a, suffix), companion(&b, suffix)).unwrap();
        }
    }
}

/// An index database that is complete as a file but not of this log's
/// records (the data directories' files mixed; no cursor) is rebuilt, as a
/// trusted one would make lookups miss this log's keys (a duplicate would
/// become a second leaf) or find another log's; an older index of this
/// log is kept.
#[test]
fn an_index_database_of_another_log_is_rebuilt() {
    let (_dir_a, path_a) = forty_indexed();
    // Another log: other records at the same leaves.
    let (dir_b, path_b, store) = fresh();
    let other: Vec<_> = rows(0..50)
        .into_iter()
        .map(|mut r| {
            r.dedup_key[0] ^= 0xff;
            r
        })
        .collect();
    append_rows(&store, &mut TileBuilder::new(), &other);
    assert_eq!(store.index_evidence(10, 1000).unwrap(), 10);
    drop(store);
    let older = dir_b.path().join("older.db");
    copy_index_files(&path_b, &older);
    let exact = |store: &SqliteStore| {
        for r in &other {
            assert_eq!(
                store.record_by_dedup_key(&r.dedup_key).unwrap().as_ref(),
                Some(r)
            );
        }
        assert_eq!(store.record_by_dedup_key(&row(5).dedup_key).unwrap(), None);
    };

    // A's index, cursor 40 (within B's 50 records), beside B's log.
    copy_index_files(&path_a, &path_b);
    let store = SqliteStore::open(&path_b).unwrap();
    assert_eq!(store.indexed_through().unwrap(), 0);
    exact(&store);
    assert_eq!(store.index_evidence(30, 1000).unwrap(), 30);
    exact(&store);
    drop(store);

    // B's own older index (cursor 10) is kept.
    copy_index_files(&older, &path_b);
    let store = SqliteStore::open(&path_b).unwrap();
    assert_eq!(store.indexed_through().unwrap(), 10);
    exact(&store);
    drop(store);

    // No cursor row.
    let conn = SqliteStore::raw_connection(&path_b).unwrap();
    conn.execute("DELETE FROM ix.index_state", []).unwrap();
    drop(conn);
    let store = SqliteStore::open(&path_b).unwrap();
    assert_eq!(store.indexed_through().unwrap(), 0);
    exact(&store);
}

/// The follower's runs (index database version 2): batches of 3 records
/// make runs of level 0, every 8 runs of a level merge into one of the
/// next, and lookups, lists and the index scans stay exact at every step.
#[test]
fn runs_merge_and_lookups_stay_exact() {
    let (_dir, path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..250));
    let mut through = 0;
    while through < 250 {
        through = store.index_evidence(through + 3, 3).unwrap();
        if through % 24 == 0 || through == 250 {
            assert_indexes_whole(&store, 250);
            let page = store
                .list(&ListQuery {
                    labels: vec![("case".into(), "case-1".into())],
                    limit: 1000,
                    ..Default::default()
                })
                .unwrap();
            let want: Vec<u64> = (0..250).filter(|i| i % 3 == 1).collect();
            assert_eq!(
                page.items.iter().map(|r| r.leaf_index).collect::<Vec<_>>(),
                want,
                "at {through}"
            );
        }
    }
    assert_eq!(store.label_index_len().unwrap(), 500);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let runs: Vec<(i64, i64, i64)> = conn
        .prepare("SELECT run, level, end_leaf FROM ix.index_runs ORDER BY run")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // 84 batches (83 of 3 and one of 1): every 8 runs of a level merge
    // into one of the next (far below the size cap): one run of 192
    // records (level 2), two of 24 (level 1), three of 3 and one of 1
    // (level 0), covering [0, 250) in order.
    let levels: Vec<i64> = runs.iter().map(|r| r.1).collect();
    assert_eq!(levels, [2, 1, 1, 0, 0, 0, 0], "{runs:?}");
    assert_eq!(runs[0], (0, 2, 192));
    assert!(store.index_layout().unwrap().is_empty());
    let mut next = 0;
    for (run, _, end) in &runs {
        assert_eq!(*run, next);
        next = *end;
    }
    assert_eq!(next, 250);
}

/// Each run's Bloom filter is stored with it and read back at open; one
/// that is missing or unreadable is rebuilt from its run's rows, so
/// lookups stay exact.
#[test]
fn run_filters_are_stored_and_rebuilt() {
    let (_dir, path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..100));
    let mut through = 0;
    while through < 100 {
        through = store.index_evidence(through + 7, 7).unwrap();
    }
    drop(store);
    let filters = |path: &std::path::Path| -> Vec<Option<Vec<u8>>> {
        let conn = SqliteStore::raw_connection(path).unwrap();
        conn.prepare("SELECT filter FROM ix.index_runs ORDER BY run")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let stored = filters(&path);
    assert!(
        stored.len() > 1 && stored.iter().all(Option::is_some),
        "{stored:?}"
    );
    assert_indexes_whole(&SqliteStore::open(&path).unwrap(), 100);

    let conn = SqliteStore::raw_connection(&path).unwrap();
    conn.execute_batch(
        "UPDATE ix.index_runs SET filter = NULL WHERE run = 0;
         UPDATE ix.index_runs SET filter = x'00' WHERE run > 0;",
    )
    .unwrap();
    drop(conn);
    assert_indexes_whole(&SqliteStore::open(&path).unwrap(), 100);
    assert_eq!(filters(&path), stored);
}

/// What `fsck` sees of the runs: a well-formed filter that lacks its
/// run's keys (lookups through it miss them: the index scan's lookups go
/// through the filters too, so each such row is named), a gap between
/// runs, an entry outside its run's leaves, a cursor past the runs.
#[test]
fn run_layout_and_filter_faults_are_seen() {
    let (_dir, path, store) = fresh();
    append_rows(&store, &mut TileBuilder::new(), &rows(0..40));
    let mut through = 0;
    while through < 40 {
        through = store.index_evidence(through + 10, 10).unwrap();
    }
    assert!(store.index_layout().unwrap().is_empty());
    for l in store.index_lookups(LogId::Evidence, 0, 40).unwrap() {
        assert_eq!(l.by_dedup_key, Some(l.leaf_index), "{l:?}");
    }
    drop(store);

    // Run [10, 20)'s filter: the stored format with every bit clear.
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let blob: Vec<u8> = conn
        .query_row("SELECT filter FROM ix.index_runs WHERE run = 10", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut empty = blob[..5].to_vec();
    empty.resize(blob.len(), 0);
    conn.execute(
        "UPDATE ix.index_runs SET filter = ?1 WHERE run = 10",
        [&empty],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open_read_only(&path).unwrap();
    for l in store.index_lookups(LogId::Evidence, 0, 40).unwrap() {
        let blind = (10..20).contains(&l.leaf_index);
        assert_eq!(l.by_dedup_key.is_none(), blind, "{l:?}");
    }
    assert!(store.index_layout().unwrap().is_empty());
    drop(store);

    let conn = SqliteStore::raw_connection(&path).unwrap();
    conn.execute_batch(
        "UPDATE ix.label_runs SET leaf_index = 25 WHERE run = 0 AND leaf_index = 5;
         DELETE FROM ix.index_runs WHERE run = 20;
         UPDATE ix.index_state SET evidence_through = 39;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open_read_only(&path).unwrap();
    let faults = store.index_layout().unwrap();
    let has = |s: &str| faults.iter().any(|f| f.contains(s));
    assert!(has("should start at leaf 20"), "{faults:?}");
    assert!(has("the index cursor is 39"), "{faults:?}");
    assert!(has("entries of label_runs lie outside"), "{faults:?}");
    assert!(has("entries of dedup_runs lie outside"), "{faults:?}");
}

/// An index database of version 1 (one B-tree per index) is converted at
/// open, not rebuilt: each index becomes one run below the cursor, which
/// the follower's merges never touch, and the follower goes on from the
/// cursor.
#[test]
fn a_version_1_index_database_is_converted_to_runs() {
    let (_dir, path, store) = fresh();
    let mut tb = TileBuilder::new();
    append_rows(&store, &mut tb, &rows(0..40));
    assert_eq!(store.index_evidence(30, 1000).unwrap(), 30);
    drop(store);
    // Back to version 1, holding what version 2 holds.
    let conn = SqliteStore::raw_connection(&path).unwrap();
    conn.execute_batch(
        "CREATE TEMP TABLE s AS SELECT * FROM ix.index_state;
         CREATE TEMP TABLE l AS SELECT * FROM ix.record_labels;
         CREATE TEMP TABLE h AS SELECT * FROM ix.records_by_sha256;
         CREATE TEMP TABLE d AS SELECT * FROM ix.records_by_dedup;
         CREATE TEMP TABLE i AS SELECT * FROM ix.records_by_idempotency;
         DROP VIEW ix.record_labels; DROP VIEW ix.records_by_sha256;
         DROP VIEW ix.records_by_dedup; DROP VIEW ix.records_by_idempotency;
         DROP TABLE ix.label_runs; DROP TABLE ix.sha256_runs; DROP TABLE ix.dedup_runs;
         DROP TABLE ix.idempotency_runs; DROP TABLE ix.index_runs; DROP TABLE ix.index_state;",
    )
    .unwrap();
    conn.execute_batch(include_str!("../src/sqlite/migrations/index_1.sql"))
        .unwrap();
    conn.execute_batch(
        "INSERT INTO ix.index_state SELECT * FROM s;
         INSERT INTO ix.record_labels SELECT * FROM l;
         INSERT INTO ix.records_by_sha256 SELECT * FROM h;
         INSERT INTO ix.records_by_dedup SELECT * FROM d;
         INSERT INTO ix.records_by_idempotency SELECT * FROM i;
         PRAGMA ix.user_version = 1;",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.indexed_through().unwrap(), 30);
    assert_eq!(store.label_index_len().unwrap(), 60);
    assert_indexes_whole(&store, 40);
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(Some("ix"), "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let runs = || -> Vec<(i64, i64, i64)> {
        conn.prepare("SELECT run, level, end_leaf FROM ix.index_runs ORDER BY run")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(runs(), [(0, 63, 30)]);
    // The follower goes on in runs of its own; the converted one stays.
    let mut through = 30;
    while through < 40 {
        through = store.index_evidence(through + 1, 1).unwrap();
    }
    assert_indexes_whole(&store, 40);
    let after = runs();
    assert_eq!(after[0], (0, 63, 30));
    assert_eq!(after.len(), 1 + 1 + 2, "{after:?}"); // 10 runs of 1: one merged run of 8, two of 1
}

/// A commit never waits for the index database: with another connection
/// holding its write lock (as a long follower batch does), batches still
/// commit (a wait would end in SQLITE_BUSY after the busy timeout) and are
/// found by every key at once.
#[test]
fn a_commit_does_not_wait_for_the_index_database() {
    let (_dir, path, store) = fresh();
    let mut tb = TileBuilder::new();
    append_rows(&store, &mut tb, &rows(0..10));
    let ix = rusqlite::Connection::open(SqliteStore::index_path(&path)).unwrap();
    ix.execute_batch(
        "BEGIN IMMEDIATE; UPDATE index_state SET evidence_through = evidence_through;",
    )
    .unwrap();
    append_rows(&store, &mut tb, &rows(10..20));
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 20);
    assert_indexes_whole(&store, 20);
    ix.execute_batch("COMMIT").unwrap();
    assert_eq!(store.index_evidence(20, 1000).unwrap(), 20);
    assert_indexes_whole(&store, 20);
}

#[test]
fn open_fails_cleanly_on_a_non_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Backend(_))
    ));
}

/// Readers keep answering (with consistent data) while the writer appends.
#[test]
fn readers_run_alongside_the_writer() {
    let (_dir, _path, store) = fresh();
    let store = Arc::new(store);
    let mut tb = TileBuilder::new();
    append_rows(&store, &mut tb, &rows(0..10));
    let done = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..6u64 {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        handles.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut last_size = 0;
            while !done.load(Ordering::Relaxed) || reads < 20 {
                let size = store.tree_size(LogId::Evidence).unwrap();
                assert!(size >= last_size, "tree size went backwards");
                last_size = size;
                let i = (reads * 7 + t) % size;
                assert_eq!(store.record_by_index(i).unwrap(), Some(row(i)));
                let data = store.leaf_data_range(0, size).unwrap();
                assert_eq!(data.len() as u64, size);
                assert_eq!(leaf_hash(&data[i as usize]), leaf_hash(&row(i).leaf_data));
                let page = store
                    .list(&ListQuery {
                        limit: 5,
                        ..Default::default()
                    })
                    .unwrap();
                assert_eq!(page.items.len(), 5);
                let reader = TiledHashReader {
                    tiles: StoreTiles(&store, LogId::Evidence),
                    tree_size: size,
                };
                root(&reader, size).unwrap();
                reads += 1;
            }
            reads
        }));
    }
    for start in (10..1010).step_by(50) {
        append_rows(&store, &mut tb, &rows(start..start + 50));
    }
    done.store(true, Ordering::Relaxed);
    for h in handles {
        assert!(h.join().unwrap() >= 20);
    }
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 1010);
}

/// Two stores on one file (two processes, in effect) cannot fork the log:
/// the second writer's stale old_size is refused.
#[test]
fn second_writer_gets_a_size_conflict() {
    let (_dir, path, a) = fresh();
    let b = SqliteStore::open(&path).unwrap();
    let mut tb = TileBuilder::new();
    let mut stale = tb.clone();
    append_rows(&a, &mut tb, &rows(0..5));
    let recs = rows(0..5);
    let leaves: Vec<_> = recs.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let tiles = stale.append(&leaves);
    let err = b
        .append(&evault_store::AppendBatch::new(0, &recs, &tiles))
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::SizeConflict {
            expected: 0,
            stored: 5
        }
    ));
    assert_eq!(b.tree_size(LogId::Evidence).unwrap(), 5);
}

/// A database written by the version-1 schema (before the audit log) opens
/// with this binary: migrated to the current version in place, every
/// record, tile, checkpoint and setting kept, and both logs append on.
#[test]
fn a_version_1_database_is_migrated_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let mut trees = common::Trees::new();
    let old = rows(0..300);
    {
        // What the version-1 binary wrote: its schema, its rows.
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(include_str!("../src/sqlite/migrations/0001_init.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let tx = conn.transaction().unwrap();
        for r in &old {
            let payload = match &r.payload {
                evault_store::Payload::Inline(p) => Some(p.clone()),
                evault_store::Payload::External | evault_store::Payload::Erased { .. } => None,
            };
            tx.execute(
                "INSERT INTO records (leaf_index, id, content_type, sha256, size, \
                 ingested_at_ms, ingested_by, idempotency_key, dedup_key, leaf_data, payload, \
                 labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                rusqlite::params![
                    r.leaf_index as i64,
                    r.id,
                    r.content_type,
                    r.sha256.as_slice(),
                    r.size as i64,
                    r.ingested_at_ms,
                    r.ingested_by,
                    r.idempotency_key,
                    r.dedup_key.as_slice(),
                    r.leaf_data,
                    payload,
                    serde_json::to_string(&r.labels).unwrap(),
                ],
            )
            .unwrap();
            for (k, v) in &r.labels {
                tx.execute(
                    "INSERT INTO record_labels (key, value, leaf_index) VALUES (?1, ?2, ?3)",
                    rusqlite::params![k, v, r.leaf_index as i64],
                )
                .unwrap();
            }
        }
        let leaves: Vec<_> = old.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
        for (t, data) in trees.evidence.append(&leaves) {
            tx.execute(
                "INSERT INTO tiles (level, idx, data) VALUES (?1, ?2, ?3)",
                rusqlite::params![i64::from(t.level), t.index as i64, data],
            )
            .unwrap();
        }
        tx.execute("UPDATE tree_state SET size = 300 WHERE id = 0", [])
            .unwrap();
        tx.execute(
            "INSERT INTO checkpoints (size, note, created_at_ms) VALUES (300, 'note', 5)",
            [],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('origin', 'example.com/log')",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    let conn = SqliteStore::raw_connection(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SqliteStore::SCHEMA_VERSION);
    assert_eq!(v, 12);
    // Version 11 moved the follower's tables to the index database.
    assert_eq!(follower_tables(&conn, "main"), Vec::<String>::new());
    // Version 12 made both tile tables rowid tables.
    for table in ["tiles", "audit_tiles"] {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("id    INTEGER PRIMARY KEY"), "{sql}");
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    }
    assert_eq!(follower_tables(&conn, "ix"), FOLLOWER_TABLES);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 300);
    // The compliance tables came with the migrations, empty; the migrated
    // records are not erased.
    let compliance = store.compliance().expect("SQLite keeps erasures");
    assert!(compliance.list_holds().unwrap().is_empty());
    assert!(compliance.list_erasures(None, 10).unwrap().is_empty());
    assert!(!matches!(
        store.record_by_index(0).unwrap().unwrap().payload,
        evault_store::Payload::Erased { .. }
    ));
    // And the cosignature table, empty.
    let cosignatures = store.cosignatures().expect("SQLite keeps cosignatures");
    assert!(
        cosignatures
            .cosignatures_at(LogId::Evidence, 1)
            .unwrap()
            .is_empty()
    );
    // The task table came with the migrations, empty.
    let tasks = store.tasks().expect("SQLite keeps tasks");
    assert_eq!(tasks.unfinished_tasks().unwrap(), Vec::new());
    // So did the mirror tables.
    let mirrors = store.mirrors().expect("SQLite keeps mirrors");
    assert!(mirrors.mirror_logs().unwrap().is_empty());
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 0);
    for i in [0, 1, 150, 299] {
        assert_eq!(store.record_by_index(i).unwrap(), Some(row(i)));
    }
    let reader = TiledHashReader {
        tiles: StoreTiles(&store, LogId::Evidence),
        tree_size: 300,
    };
    assert_eq!(root(&reader, 300).unwrap(), trees.evidence.root());
    // Version 8 filled in the inner levels of the one full tile; the
    // partial tile has none.
    let full = TileId {
        level: 0,
        index: 0,
        width: 256,
    };
    let partial = TileId {
        level: 0,
        index: 1,
        width: 44,
    };
    let read = store
        .read_tiles_with_inner(LogId::Evidence, &[full, partial])
        .unwrap();
    assert_eq!(read[0].1, Some(tile_inner(full, &read[0].0).unwrap()));
    assert_eq!(read[1].1, None);
    assert_eq!(
        store
            .latest_checkpoint(LogId::Evidence)
            .unwrap()
            .map(|c| c.size),
        Some(300)
    );
    assert_eq!(store.latest_checkpoint(LogId::Audit).unwrap(), None);
    assert_eq!(
        store.get_meta("origin").unwrap().as_deref(),
        Some("example.com/log")
    );
    // The new index serves old rows too.
    let page = store
        .list(&ListQuery {
            ingested_by: Some("bob".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items.len(), 150);
    assert!(page.items.iter().all(|r| r.ingested_by == "bob"));
    // Version 9 filled the digest index and set the follower's cursor to
    // the tree size: the label index (written by version 1) and the digest
    // index hold every old record, each once.
    assert_eq!(store.indexed_through().unwrap(), 300);
    assert_eq!(store.label_index_len().unwrap(), 600);
    for l in store.index_lookups(LogId::Evidence, 0, 300).unwrap() {
        assert!(
            l.indexed && l.missing_from.is_empty() && l.ahead_in.is_empty(),
            "{l:?}"
        );
        assert_eq!(l.labels, l.labels_indexed);
        // Version 10 moved the unique keys into the follower's tables.
        assert_eq!(l.by_dedup_key, Some(l.leaf_index));
        if l.has_idempotency_key {
            assert_eq!(l.by_idempotency_key, Some(l.leaf_index));
        }
    }
    for i in [0, 5, 150, 295] {
        let r = row(i);
        assert_eq!(
            store.record_by_dedup_key(&r.dedup_key).unwrap(),
            Some(r.clone())
        );
        let key = r.idempotency_key.as_deref().unwrap();
        assert_eq!(
            store
                .record_by_idempotency_key(&r.ingested_by, key)
                .unwrap(),
            Some(r)
        );
    }
    // ... and rebuilt `records` without the random keys' indexes; the
    // references to it still hold.
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'records' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "records_content_type",
            "records_ingested_at",
            "records_ingested_by",
            "sqlite_autoindex_records_1"
        ]
    );
    let dangling: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
    let sharers = store
        .compliance()
        .unwrap()
        .records_by_sha256(&row(150).sha256)
        .unwrap();
    assert_eq!(sharers.len(), 1);
    assert_eq!(sharers[0].leaf_index, 150);
    // Both logs continue.
    common::append_both(
        &store,
        &mut trees,
        &rows(300..310),
        &common::audit_rows(0..5),
    )
    .unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 310);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 5);
    // The follower picks up from the migrated cursor.
    assert_eq!(store.index_evidence(310, 1000).unwrap(), 310);
    assert_eq!(store.label_index_len().unwrap(), 620);
    drop(store);
    // Reopening at the current version changes nothing.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 5);
    assert_eq!(store.record_by_index(305).unwrap(), Some(row(305)));
}

/// The in-memory key tail (schema 10) holds exactly the records past the
/// follower's cursor: it grows with each commit, shrinks with each
/// follower batch, and a reopen (a restart, or a kill) rebuilds it from
/// the records, read-only opens included.
#[test]
fn the_key_tail_holds_the_unindexed_records_across_reopens() {
    let (_dir, path, store) = fresh();
    let mut tb = TileBuilder::new();
    assert_eq!(store.unindexed_keys(), 0);
    append_rows(&store, &mut tb, &rows(0..40));
    assert_eq!(store.unindexed_keys(), 40);
    assert_eq!(store.index_evidence(25, 1000).unwrap(), 25);
    assert_eq!(store.unindexed_keys(), 15);
    append_rows(&store, &mut tb, &rows(40..50));
    assert_eq!(store.unindexed_keys(), 25);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.unindexed_keys(), 25);
    for i in [0, 24, 25, 49] {
        let r = row(i);
        assert_eq!(
            store.record_by_dedup_key(&r.dedup_key).unwrap(),
            Some(r),
            "{i}"
        );
    }
    assert_eq!(store.index_evidence(50, 1000).unwrap(), 50);
    assert_eq!(store.unindexed_keys(), 0);
    append_rows(&store, &mut tb, &rows(50..53));
    drop(store);
    let read_only = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(read_only.unindexed_keys(), 3);
    let r = row(52);
    assert_eq!(
        read_only.record_by_dedup_key(&r.dedup_key).unwrap(),
        Some(r)
    );
}

/// An index database that reaches past the log (the log database restored
/// from an older copy beside a newer index database) is rebuilt on open:
/// its rows may name leaves this log does not hold.
#[test]
fn an_index_database_past_the_log_is_rebuilt() {
    let (_dir, path) = forty_indexed();
    let conn = SqliteStore::raw_connection(&path).unwrap();
    conn.execute_batch(
        "UPDATE ix.index_state SET evidence_through = 100;
         INSERT INTO ix.dedup_runs (run, level, dedup_key, leaf_index) VALUES (0, 0, zeroblob(32), 77);",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.indexed_through().unwrap(), 0);
    assert_eq!(store.unindexed_keys(), 40);
    assert_eq!(store.record_by_dedup_key(&[0; 32]).unwrap(), None);
    assert_indexes_whole(&store, 40);
    assert_eq!(store.index_evidence(40, 1000).unwrap(), 40);
    assert_indexes_whole(&store, 40);
}
