//! Converting a data directory written by an older release: every schema
//! version since 1, made from one store's data by
//! `evault_store::testing::rewrite_as_schema`, converts to this binary's
//! with both logs' fingerprints unchanged, its steps reported as they run.

mod common;

use std::sync::Mutex;

use common::{Trees, append_both, fresh};
use evault_store::prelude::*;
use evault_store::testing::{audit_rows, rewrite_as_schema, row, rows};
use evault_store::{LogId, MigrationProgress, MigrationStep, SqliteStore, StoredCheckpoint};

/// A closed store of 600 records (two full tiles and a partial one) and
/// 300 audit events, with checkpoints in both logs, indexed up to 500.
fn filled() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path, store) = fresh();
    let mut trees = Trees::new();
    for (from, to) in [(0, 250), (250, 600)] {
        let events = audit_rows(from / 2..to / 2);
        append_both(&store, &mut trees, &rows(from..to), &events).unwrap();
        for log in [LogId::Evidence, LogId::Audit] {
            let size = if log == LogId::Evidence { to } else { to / 2 };
            store
                .put_checkpoint(
                    log,
                    &StoredCheckpoint {
                        size,
                        note: format!("{log} checkpoint at {size}\n"),
                        created_at_ms: 5,
                    },
                )
                .unwrap();
        }
    }
    assert_eq!(store.index_evidence(500, 10_000).unwrap(), 500);
    drop(store);
    (dir, path)
}

#[test]
fn every_older_schema_converts_with_both_logs_unchanged() {
    let current = {
        let (_dir, path) = filled();
        SqliteStore::fingerprint(&path).unwrap()
    };
    assert!(!current.needs_migration());
    assert_eq!(current.evidence.size, 600);
    assert_eq!(current.evidence.checkpoints, 2);
    for version in 1..current.current_version {
        let (_dir, path) = filled();
        rewrite_as_schema(&path, version).unwrap();
        let before = SqliteStore::fingerprint(&path).unwrap();
        assert_eq!(before.schema_version, version);
        // Schema 11 brought the index database; rewritten as 11 it is kept.
        let index_version = (version >= 11).then_some(2);
        assert_eq!(before.index_version, index_version, "{version}");
        assert!(before.needs_migration());
        // The same log as the store it was made from.
        assert_eq!(before.evidence, current.evidence, "{version}");
        if version >= 2 {
            assert_eq!(before.audit, current.audit, "{version}");
        } else {
            assert_eq!(before.audit, None);
        }

        let seen = Mutex::new(Vec::<MigrationProgress>::new());
        let store =
            SqliteStore::open_with_progress(&path, &|p| seen.lock().unwrap().push(p)).unwrap();
        let seen = seen.into_inner().unwrap();
        let steps: Vec<MigrationStep> = seen.iter().map(|p| p.step).collect();
        let log_tables = MigrationStep::LogTables {
            from: version,
            to: 10,
        };
        if version < 10 {
            assert!(steps.contains(&log_tables), "{version}: {steps:?}");
            let ends = seen.iter().filter(|p| p.step == log_tables);
            assert_eq!(
                ends.map(|p| (p.done, p.total)).collect::<Vec<_>>(),
                [(0, 600), (600, 600)],
                "{version}"
            );
        }
        if version < 8 {
            // Two full evidence tiles at level 0: their inner levels.
            let inner = seen
                .iter()
                .rfind(|p| p.step == MigrationStep::InnerLevels(LogId::Evidence))
                .unwrap();
            assert_eq!((inner.done, inner.total), (2, 2), "{version}");
        }
        assert_eq!(
            steps.contains(&MigrationStep::MoveIndex),
            version < 11,
            "{version}: {steps:?}"
        );
        // Every version before 12 copies both logs' tiles into rowid tables.
        let tiles = before.evidence.tiles + before.audit.as_ref().map_or(0, |a| a.tiles);
        assert!(tiles >= 4, "{version}: {tiles}");
        let copies = seen.iter().filter(|p| p.step == MigrationStep::RowidTiles);
        assert_eq!(
            copies.map(|p| (p.done, p.total)).collect::<Vec<_>>(),
            [(0, tiles), (tiles, tiles)],
            "{version}"
        );
        for p in &seen {
            assert!(p.done <= p.total, "{version}: {p:?}");
        }

        // Every record is found by its unique keys, indexed or not.
        for i in [0, 1, 5, 499, 500, 595, 599] {
            let r = row(i);
            assert_eq!(
                store
                    .record_by_dedup_key(&r.dedup_key)
                    .unwrap()
                    .map(|r| r.leaf_index),
                Some(i),
                "{version}: {i}"
            );
        }
        drop(store);
        let after = SqliteStore::fingerprint(&path).unwrap();
        assert!(!after.needs_migration(), "{version}: {after:?}");
        assert_eq!(after.evidence, before.evidence, "{version}");
        if version >= 2 {
            assert_eq!(after.audit, before.audit, "{version}");
        } else {
            // Schema 2 created an empty audit log.
            assert_eq!(after.audit.as_ref().map(|a| a.size), Some(0));
        }
    }
}

#[test]
fn a_fingerprint_sees_every_part_of_a_log() {
    let (_dir, path) = filled();
    let base = SqliteStore::fingerprint(&path).unwrap();
    for (what, sql) in [
        (
            "a leaf",
            "UPDATE records SET leaf_data = x'00' WHERE leaf_index = 7",
        ),
        (
            "a payload",
            "UPDATE records SET payload = x'01' WHERE leaf_index = 0",
        ),
        (
            "labels",
            "UPDATE records SET labels = '{}' WHERE leaf_index = 9",
        ),
        ("the tree size", "UPDATE tree_state SET size = 599"),
        (
            "a tile",
            "UPDATE tiles SET data = zeroblob(32) WHERE level = 1 AND idx = 0",
        ),
        (
            "a checkpoint",
            "UPDATE checkpoints SET note = 'x' WHERE size = 250",
        ),
        (
            "an audit leaf",
            "UPDATE audit_events SET leaf_data = x'00' WHERE leaf_index = 3",
        ),
    ] {
        let copy = tempfile::tempdir().unwrap();
        let to = copy.path().join("evault.db");
        std::fs::copy(&path, &to).unwrap();
        // The copy alone changes nothing (a clean close left no WAL).
        let copied = SqliteStore::fingerprint(&to).unwrap();
        assert_eq!(
            (&copied.evidence, &copied.audit),
            (&base.evidence, &base.audit),
            "{what}"
        );
        let conn = rusqlite::Connection::open(&to).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let changed = SqliteStore::fingerprint(&to).unwrap();
        assert_ne!(
            (
                changed.evidence.digest,
                changed.audit.as_ref().map(|a| a.digest)
            ),
            (base.evidence.digest, base.audit.as_ref().map(|a| a.digest)),
            "{what}"
        );
    }
}

#[test]
fn a_fingerprint_refuses_what_is_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("evault.db");
    assert!(SqliteStore::fingerprint(&missing).is_err());
    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let e = SqliteStore::fingerprint(&empty).unwrap_err();
    assert!(e.to_string().contains("no evault schema"), "{e}");
}
