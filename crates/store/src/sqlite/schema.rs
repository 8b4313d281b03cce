//! Versioned schema: ordered, embedded SQL migrations, the version kept in
//! `PRAGMA user_version`.
//!
//! Migration `i` (0-based) takes the schema from version `i` to `i + 1`.
//! Migrations only ever get appended; a released one is never edited.

use rusqlite::{Connection, TransactionBehavior};

use super::error::{DbResult, corrupt};
use super::upgrade::{MigrationProgress, MigrationStep, OnMigration};
use super::{index_db, log_state};
use crate::{LogId, Result, StoreError};

/// The migrations, in order. `MIGRATIONS.len()` is the schema version this
/// binary writes.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_audit.sql"),
    include_str!("migrations/0003_analytics.sql"),
    include_str!("migrations/0004_tasks.sql"),
    include_str!("migrations/0005_mirrors.sql"),
    include_str!("migrations/0006_cosignatures.sql"),
    include_str!("migrations/0007_compliance.sql"),
    include_str!("migrations/0008_tile_inner.sql"),
    include_str!("migrations/0009_index_follower.sql"),
    include_str!("migrations/0010_unique_keys_follow.sql"),
    include_str!("migrations/0011_index_file.sql"),
    include_str!("migrations/0012_rowid_tiles.sql"),
];

/// The first schema version whose full tiles carry their inner levels.
const INNER_LEVELS_VERSION: u32 = 8;

/// The first schema version without the dedup and idempotency keys'
/// UNIQUE indexes: reaching it rebuilds the `records` table.
const UNIQUE_KEYS_FOLLOW_VERSION: u32 = 10;

/// The first schema version whose follower tables are in the index
/// database (`index_db.rs`): reaching it moves them there in two steps.
pub(crate) const INDEX_FILE_VERSION: u32 = 11;

/// The first schema version whose tile tables are rowid tables.
pub(crate) const ROWID_TILES_VERSION: u32 = 12;

/// The schema version this binary understands.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .db()?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v} is invalid")))
}

/// Fails with [`StoreError::SchemaTooNew`] if the database is newer than
/// this binary.
pub(crate) fn check_not_too_new(found: u32) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`]. The migrations up to 10 run
/// in one immediate transaction (all of them or none); the move of the
/// follower's tables to the index database (11) follows in its two
/// repeatable steps, then the copy of the tiles into rowid tables (12) in
/// one transaction. `conn` has the index database attached as `ix`. At
/// version 11, an index database that is missing or incomplete (deleted,
/// say) is created empty: the follower rebuilds it from the records.
/// `progress` hears of each step.
pub(crate) fn migrate(conn: &mut Connection, progress: OnMigration<'_>) -> Result<()> {
    migrate_log_tables(conn, progress)?;
    if version(conn)? == INDEX_FILE_VERSION - 1 {
        move_index_tables(conn, progress)?;
    }
    if version(conn)? == ROWID_TILES_VERSION - 1 {
        rowid_tiles(conn, progress)?;
    }
    if index_db::version(conn)? == 1 {
        tracing::info!("converting the index database to version 2 (sorted runs)");
        let step = |done| {
            progress(MigrationProgress {
                step: MigrationStep::ConvertIndex,
                done,
                total: 1,
            })
        };
        step(0);
        index_db::convert_v1(conn)?;
        step(1);
    }
    if !index_db::is_current(conn)? {
        tracing::warn!(
            "the index database is missing or incomplete: created empty; the index follower \
             rebuilds it from the records (listings and lookups stay exact meanwhile)"
        );
        index_db::create_empty(conn)?;
    } else if let Some(why) = index_db::not_of_this_log(conn)? {
        tracing::warn!(
            "the index database is not this log's: {why}; created empty, the index follower \
             rebuilds it from the records"
        );
        index_db::create_empty(conn)?;
    }
    Ok(())
}

/// Schema 11's two steps, each repeatable: fill `ix` from the log
/// database's tables (one transaction of `ix`), then drop those tables and
/// set the version (one transaction of the log database).
fn move_index_tables(conn: &mut Connection, progress: OnMigration<'_>) -> Result<()> {
    let started = std::time::Instant::now();
    let unindexed: i64 = conn
        .query_row("SELECT count(*) FROM main.records_by_dedup", [], |row| {
            row.get(0)
        })
        .db()?;
    let step = |done| {
        progress(MigrationProgress {
            step: MigrationStep::MoveIndex,
            done,
            total: u64::try_from(unindexed).unwrap_or(0),
        })
    };
    step(0);
    if unindexed > 0 {
        tracing::info!(
            "schema {INDEX_FILE_VERSION}: moving the index of {unindexed} records to the index database"
        );
    }
    index_db::fill_from_log(conn)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    // Re-read under the write lock: another process may have moved them.
    if version(&tx)? != INDEX_FILE_VERSION - 1 {
        return Ok(());
    }
    if !index_db::matches_log(&tx)? {
        return Err(corrupt(
            "the index database's copy does not match the log database's index cursor \
             (another process wrote it?); nothing was dropped"
                .to_string(),
        ));
    }
    tx.execute_batch(MIGRATIONS[INDEX_FILE_VERSION as usize - 1])
        .db()?;
    tx.pragma_update(None, "user_version", i64::from(INDEX_FILE_VERSION))
        .db()?;
    tx.commit().db()?;
    step(u64::try_from(unindexed).unwrap_or(0));
    if unindexed > 0 {
        tracing::info!(
            "store schema migrated from version {} to {INDEX_FILE_VERSION} in {:.1} s",
            INDEX_FILE_VERSION - 1,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Schema 12: both logs' tiles copied into rowid tables, in key order, in
/// one immediate transaction with the version bump (a crash leaves 11,
/// which the next start converts again). 13.7 s at 10,000,000 records
/// (80,647 tiles of both logs; bench/README.md).
fn rowid_tiles(conn: &mut Connection, progress: OnMigration<'_>) -> Result<()> {
    let started = std::time::Instant::now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    // Re-read under the write lock: another process may have converted.
    if version(&tx)? != ROWID_TILES_VERSION - 1 {
        return Ok(());
    }
    let tiles: i64 = tx
        .query_row(
            "SELECT (SELECT count(*) FROM tiles) + (SELECT count(*) FROM audit_tiles)",
            [],
            |row| row.get(0),
        )
        .db()?;
    let tiles = u64::try_from(tiles).unwrap_or(0);
    let step = |done| {
        progress(MigrationProgress {
            step: MigrationStep::RowidTiles,
            done,
            total: tiles,
        })
    };
    step(0);
    tx.execute_batch(MIGRATIONS[ROWID_TILES_VERSION as usize - 1])
        .db()?;
    tx.pragma_update(None, "user_version", i64::from(ROWID_TILES_VERSION))
        .db()?;
    tx.commit().db()?;
    step(tiles);
    if tiles > 0 {
        tracing::info!(
            "store schema migrated from version {} to {ROWID_TILES_VERSION} \
             ({tiles} tiles into rowid tables) in {:.1} s",
            ROWID_TILES_VERSION - 1,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The migrations up to version 10 (the log database's own tables), in one
/// immediate transaction: either every one is applied and the version
/// advanced, or nothing changes.
fn migrate_log_tables(conn: &mut Connection, progress: OnMigration<'_>) -> Result<()> {
    // Rebuilding `records` drops the table other tables reference: foreign
    // key enforcement is off for that transaction (it cannot change inside
    // one), as SQLite's procedure for such a change asks. The rows keep
    // their leaf indexes, so every reference still holds afterwards.
    let rebuild = version(conn)? < UNIQUE_KEYS_FOLLOW_VERSION;
    if rebuild {
        conn.pragma_update(None, "foreign_keys", false).db()?;
    }
    let migrated = migrate_in_one_transaction(conn, progress);
    if rebuild {
        conn.pragma_update(None, "foreign_keys", true).db()?;
    }
    migrated
}

fn migrate_in_one_transaction(conn: &mut Connection, progress: OnMigration<'_>) -> Result<()> {
    let started = std::time::Instant::now();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    // Re-read under the write lock: another process may have migrated.
    let found = version(&tx)?;
    check_not_too_new(found)?;
    let target = INDEX_FILE_VERSION - 1;
    if found >= target {
        return Ok(());
    }
    // Version 1 created `records`.
    let records: u64 = if found >= 1 {
        let n: i64 = tx
            .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
            .db()?;
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    };
    let step = |done| {
        progress(MigrationProgress {
            step: MigrationStep::LogTables {
                from: found,
                to: target,
            },
            done,
            total: records,
        })
    };
    if found > 0 {
        step(0);
    }
    if (1..UNIQUE_KEYS_FOLLOW_VERSION).contains(&found) && records > 0 {
        // One statement copies the table: seconds per million records.
        tracing::info!(
            "schema {UNIQUE_KEYS_FOLLOW_VERSION}: rebuilding the records table \
             ({records} records) without its dedup and idempotency key indexes"
        );
    }
    for sql in &MIGRATIONS[found as usize..target as usize] {
        tx.execute_batch(sql).db()?;
    }
    if found < INNER_LEVELS_VERSION {
        // About one hash per leaf: seconds at ten million records, logged
        // as it goes. In the migration's transaction, so a crash leaves
        // the old version, which the next start migrates again.
        for log in [LogId::Evidence, LogId::Audit] {
            let mut last_logged = std::time::Instant::now();
            let filled = log_state::backfill_inner(&tx, log, &mut |log, done, total| {
                progress(MigrationProgress {
                    step: MigrationStep::InnerLevels(log),
                    done,
                    total,
                });
                if last_logged.elapsed() >= std::time::Duration::from_secs(2) {
                    last_logged = std::time::Instant::now();
                    tracing::info!(
                        "schema {INNER_LEVELS_VERSION}: inner levels of {done} of {total} full {log} tiles"
                    );
                }
            })?;
            if filled > 0 {
                tracing::info!(
                    "schema {INNER_LEVELS_VERSION}: stored the inner levels of {filled} full {log} tiles"
                );
            }
        }
    }
    tx.pragma_update(None, "user_version", i64::from(target))
        .db()?;
    tx.commit().db()?;
    if found > 0 {
        step(records);
        tracing::info!(
            "store schema migrated from version {found} to {target} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
