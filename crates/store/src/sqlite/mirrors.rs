//! Mirrors: the `mirror_checkpoints`, `mirror_records` and
//! `mirror_payloads` tables.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::error::DbResult;
use super::query::{self, MAX_PAGE};
use super::rows::{col_i64, col_text, to_i64, to_u64};
use crate::{
    ImportConflict, ImportCounts, MirrorCheckpoint, MirrorImport, MirrorLog, MirrorRecord, Result,
};

const CHECKPOINT_COLUMNS: &str = "origin, tree_size, note, imported_ms, imported_by";
const RECORD_COLUMNS: &str = "origin, leaf_index, record, sha256, tree_size, inclusion_proof";

fn decode_checkpoint(row: &Row<'_>) -> Result<MirrorCheckpoint> {
    let origin = col_text(row, 0, "mirror checkpoint origin")?;
    let at = |what: &str| format!("{what} of a mirror checkpoint of {origin}");
    Ok(MirrorCheckpoint {
        tree_size: to_u64(col_i64(row, 1, &at("tree_size"))?, &at("tree_size"))?,
        note: col_text(row, 2, &at("note"))?,
        imported_ms: col_i64(row, 3, &at("imported_ms"))?,
        imported_by: col_text(row, 4, &at("imported_by"))?,
        origin,
    })
}

fn decode_record(row: &Row<'_>) -> Result<MirrorRecord> {
    let origin = col_text(row, 0, "mirror record origin")?;
    let at = |what: &str| format!("{what} of a mirror record of {origin}");
    Ok(MirrorRecord {
        leaf_index: to_u64(col_i64(row, 1, &at("leaf_index"))?, &at("leaf_index"))?,
        record: col_text(row, 2, &at("record"))?,
        sha256: col_text(row, 3, &at("sha256"))?,
        tree_size: to_u64(col_i64(row, 4, &at("tree_size"))?, &at("tree_size"))?,
        inclusion_proof: col_text(row, 5, &at("inclusion_proof"))?,
        origin,
    })
}

pub(super) fn import(
    conn: &mut Connection,
    batch: &MirrorImport,
) -> Result<std::result::Result<ImportCounts, ImportConflict>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let mut counts = ImportCounts::default();
    let cp = &batch.checkpoint;
    let size = to_i64(cp.tree_size, "mirror checkpoint tree_size")?;
    let held: Option<String> = tx
        .prepare_cached("SELECT note FROM mirror_checkpoints WHERE origin = ?1 AND tree_size = ?2")
        .db()?
        .query_row(rusqlite::params![cp.origin, size], |r| r.get(0))
        .optional()
        .db()?;
    match held {
        Some(held) if held != cp.note => {
            return Ok(Err(ImportConflict::Checkpoint {
                tree_size: cp.tree_size,
                held,
            }));
        }
        Some(_) => {}
        None => {
            tx.prepare_cached(&format!(
                "INSERT INTO mirror_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))
            .db()?
            .execute(rusqlite::params![
                cp.origin,
                size,
                cp.note,
                cp.imported_ms,
                cp.imported_by
            ])
            .db()?;
            counts.checkpoint_new = true;
        }
    }
    {
        let mut find = tx
            .prepare_cached(
                "SELECT record FROM mirror_records WHERE origin = ?1 AND leaf_index = ?2",
            )
            .db()?;
        let mut insert = tx
            .prepare_cached(&format!(
                "INSERT INTO mirror_records ({RECORD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))
            .db()?;
        for r in &batch.records {
            let index = to_i64(r.leaf_index, "mirror record leaf_index")?;
            let held: Option<String> = find
                .query_row(rusqlite::params![r.origin, index], |row| row.get(0))
                .optional()
                .db()?;
            match held {
                // The same record, proven before (perhaps against another
                // checkpoint): the first proof stays.
                Some(held) if held == r.record => counts.records_known += 1,
                Some(held) => {
                    return Ok(Err(ImportConflict::Record {
                        leaf_index: r.leaf_index,
                        held,
                    }));
                }
                None => {
                    insert
                        .execute(rusqlite::params![
                            r.origin,
                            index,
                            r.record,
                            r.sha256,
                            to_i64(r.tree_size, "mirror record tree_size")?,
                            r.inclusion_proof
                        ])
                        .db()?;
                    counts.records_new += 1;
                }
            }
        }
        let mut payload = tx
            .prepare_cached("INSERT OR IGNORE INTO mirror_payloads (sha256, data) VALUES (?1, ?2)")
            .db()?;
        for (sha, data) in &batch.payloads {
            counts.payloads_new += payload.execute(rusqlite::params![sha, data]).db()? as u64;
        }
    }
    tx.commit().db()?;
    Ok(Ok(counts))
}

pub(super) fn logs(conn: &Connection) -> Result<Vec<MirrorLog>> {
    // Per origin: the largest checkpoint, the counts.
    let latest = query::all(
        conn,
        &format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM mirror_checkpoints AS c WHERE tree_size = \
             (SELECT MAX(tree_size) FROM mirror_checkpoints WHERE origin = c.origin) ORDER BY origin"
        ),
        [],
        decode_checkpoint,
    )?;
    let mut out = Vec::with_capacity(latest.len());
    for cp in latest {
        let count = |sql: &str| -> Result<u64> {
            let n: i64 = conn
                .prepare_cached(sql)
                .db()?
                .query_row([&cp.origin], |r| r.get(0))
                .db()?;
            to_u64(n, "mirror count")
        };
        out.push(MirrorLog {
            records: count("SELECT COUNT(*) FROM mirror_records WHERE origin = ?1")?,
            checkpoints: count("SELECT COUNT(*) FROM mirror_checkpoints WHERE origin = ?1")?,
            origin: cp.origin.clone(),
            latest: cp,
        });
    }
    Ok(out)
}

pub(super) fn records(
    conn: &Connection,
    origin: &str,
    after: Option<u64>,
    limit: u32,
) -> Result<Vec<MirrorRecord>> {
    let Ok(after) = query::cursor(after) else {
        return Ok(Vec::new());
    };
    query::all(
        conn,
        &format!(
            "SELECT {RECORD_COLUMNS} FROM mirror_records WHERE origin = ?1 AND leaf_index > ?2 \
             ORDER BY leaf_index LIMIT ?3"
        ),
        rusqlite::params![origin, after.unwrap_or(-1), limit.clamp(1, MAX_PAGE)],
        decode_record,
    )
}

pub(super) fn record(
    conn: &Connection,
    origin: &str,
    leaf_index: u64,
) -> Result<Option<MirrorRecord>> {
    let Ok(index) = i64::try_from(leaf_index) else {
        return Ok(None);
    };
    query::first(
        conn,
        &format!(
            "SELECT {RECORD_COLUMNS} FROM mirror_records WHERE origin = ?1 AND leaf_index = ?2"
        ),
        rusqlite::params![origin, index],
        decode_record,
    )
}

pub(super) fn checkpoint(
    conn: &Connection,
    origin: &str,
    tree_size: u64,
) -> Result<Option<MirrorCheckpoint>> {
    let Ok(size) = i64::try_from(tree_size) else {
        return Ok(None);
    };
    query::first(
        conn,
        &format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM mirror_checkpoints WHERE origin = ?1 AND tree_size = ?2"
        ),
        rusqlite::params![origin, size],
        decode_checkpoint,
    )
}

pub(super) fn payload(conn: &Connection, sha256: &str) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT data FROM mirror_payloads WHERE sha256 = ?1")
        .db()?
        .query_row([sha256], |r| r.get(0))
        .optional()
        .db()
}
