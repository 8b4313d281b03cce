//! Mirrors on PostgreSQL: the `mirror_checkpoints`, `mirror_records` and
//! `mirror_payloads` tables, as `sqlite/mirrors.rs` keeps them.
//!
//! An import is one transaction under a transaction advisory lock, so
//! imports run one at a time as SQLite's `BEGIN IMMEDIATE` runs them:
//! what one finds held cannot change before it commits, and two imports
//! of one bundle do not both find it new. Readers are not blocked.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::entries::MAX_PAGE;
use super::log::{i64_of, u64_of};
use super::pg;
use crate::{
    ImportConflict, ImportCounts, MirrorCheckpoint, MirrorImport, MirrorLog, MirrorRecord, Result,
};

const CHECKPOINT_COLUMNS: &str = "origin, tree_size, note, imported_ms, imported_by";
const RECORD_COLUMNS: &str = "origin, leaf_index, record, sha256, tree_size, inclusion_proof";

/// The advisory lock imports hold to COMMIT: "evault", then 3 (the
/// migration that made the mirror tables) and 1 (its first lock).
const IMPORT_LOCK: i64 = 0x6576_6175_6c74_0301;

/// Decodes [`CHECKPOINT_COLUMNS`], the first columns of `row`.
fn decode_checkpoint(row: &Row) -> Result<MirrorCheckpoint> {
    let origin: String = row.try_get(0).map_err(pg)?;
    let size = u64_of(
        row.try_get(1).map_err(pg)?,
        &format!("tree_size of a mirror checkpoint of {origin}"),
    )?;
    Ok(MirrorCheckpoint {
        tree_size: size,
        note: row.try_get(2).map_err(pg)?,
        imported_ms: row.try_get(3).map_err(pg)?,
        imported_by: row.try_get(4).map_err(pg)?,
        origin,
    })
}

/// Decodes [`RECORD_COLUMNS`].
fn decode_record(row: &Row) -> Result<MirrorRecord> {
    let origin: String = row.try_get(0).map_err(pg)?;
    let at = |what: &str| format!("{what} of a mirror record of {origin}");
    Ok(MirrorRecord {
        leaf_index: u64_of(row.try_get(1).map_err(pg)?, &at("leaf_index"))?,
        record: row.try_get(2).map_err(pg)?,
        sha256: row.try_get(3).map_err(pg)?,
        tree_size: u64_of(row.try_get(4).map_err(pg)?, &at("tree_size"))?,
        inclusion_proof: row.try_get(5).map_err(pg)?,
        origin,
    })
}

/// Stores `batch` in one transaction on `client`; a conflict rolls it
/// back and is returned as `Ok(Err(_))`.
pub(super) async fn import(
    client: &mut deadpool_postgres::Object,
    batch: &MirrorImport,
) -> Result<std::result::Result<ImportCounts, ImportConflict>> {
    let tx = client.transaction().await.map_err(pg)?;
    // First, so every read below sees what earlier imports committed.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&IMPORT_LOCK])
        .await
        .map_err(pg)?;
    let mut counts = ImportCounts::default();
    let cp = &batch.checkpoint;
    let size = i64_of(cp.tree_size, "mirror checkpoint tree_size")?;
    let held = tx
        .query_opt(
            "SELECT note FROM mirror_checkpoints WHERE origin = $1 AND tree_size = $2",
            &[&cp.origin, &size],
        )
        .await
        .map_err(pg)?;
    let held: Option<String> = held.map(|r| r.try_get(0)).transpose().map_err(pg)?;
    match held {
        Some(held) if held != cp.note => {
            tx.rollback().await.map_err(pg)?;
            return Ok(Err(ImportConflict::Checkpoint {
                tree_size: cp.tree_size,
                held,
            }));
        }
        Some(_) => {}
        None => {
            tx.execute(
                &format!(
                    "INSERT INTO mirror_checkpoints ({CHECKPOINT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5)"
                ),
                &[
                    &cp.origin,
                    &size,
                    &cp.note,
                    &cp.imported_ms,
                    &cp.imported_by,
                ],
            )
            .await
            .map_err(pg)?;
            counts.checkpoint_new = true;
        }
    }

    // The records held at the batch's leaves, in one query; then the batch
    // in order, as SQLite goes through it row by row (a leaf given twice
    // is compared with its first copy).
    let (origins, indexes): (Vec<&str>, Vec<i64>) = batch
        .records
        .iter()
        .filter_map(|r| Some((r.origin.as_str(), i64::try_from(r.leaf_index).ok()?)))
        .unzip();
    let rows = tx
        .query(
            "SELECT origin, leaf_index, record FROM mirror_records \
             WHERE (origin, leaf_index) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
            &[&origins, &indexes],
        )
        .await
        .map_err(pg)?;
    // (origin, leaf index) -> record, held or added by this batch.
    let mut held: HashMap<(&str, i64), &str> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let key = (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        held.insert(key, row.try_get(2).map_err(pg)?);
    }
    let mut new = NewRecords::default();
    for r in &batch.records {
        let index = i64_of(r.leaf_index, "mirror record leaf_index")?;
        match held.get(&(r.origin.as_str(), index)) {
            // The same record, proven before (perhaps against another
            // checkpoint): the first proof stays.
            Some(&held) if held == r.record => counts.records_known += 1,
            Some(&held) => {
                let held = held.to_string();
                tx.rollback().await.map_err(pg)?;
                return Ok(Err(ImportConflict::Record {
                    leaf_index: r.leaf_index,
                    held,
                }));
            }
            None => {
                new.push(r, index)?;
                held.insert((r.origin.as_str(), index), r.record.as_str());
                counts.records_new += 1;
            }
        }
    }
    new.insert(&tx).await?;

    if !batch.payloads.is_empty() {
        let shas: Vec<&str> = batch.payloads.iter().map(|(s, _)| s.as_str()).collect();
        let data: Vec<&[u8]> = batch.payloads.iter().map(|(_, d)| d.as_slice()).collect();
        // DO NOTHING skips a payload held, or given twice in the batch.
        counts.payloads_new = tx
            .execute(
                "INSERT INTO mirror_payloads (sha256, data) \
                 SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (sha256) DO NOTHING",
                &[&shas, &data],
            )
            .await
            .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(Ok(counts))
}

/// The records an import adds, as columns for one `unnest` insert.
#[derive(Default)]
struct NewRecords<'a> {
    origins: Vec<&'a str>,
    indexes: Vec<i64>,
    records: Vec<&'a str>,
    shas: Vec<&'a str>,
    sizes: Vec<i64>,
    proofs: Vec<&'a str>,
}

impl<'a> NewRecords<'a> {
    fn push(&mut self, r: &'a MirrorRecord, index: i64) -> Result<()> {
        self.sizes
            .push(i64_of(r.tree_size, "mirror record tree_size")?);
        self.origins.push(&r.origin);
        self.indexes.push(index);
        self.records.push(&r.record);
        self.shas.push(&r.sha256);
        self.proofs.push(&r.inclusion_proof);
        Ok(())
    }

    async fn insert(&self, tx: &impl GenericClient) -> Result<()> {
        if self.origins.is_empty() {
            return Ok(());
        }
        tx.execute(
            &format!(
                "INSERT INTO mirror_records ({RECORD_COLUMNS}) SELECT * FROM \
                 unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])"
            ),
            &[
                &self.origins,
                &self.indexes,
                &self.records,
                &self.shas,
                &self.sizes,
                &self.proofs,
            ],
        )
        .await
        .map_err(pg)?;
        Ok(())
    }
}

/// Every mirrored log with its largest checkpoint and counts, by origin
/// (one statement: one snapshot).
pub(super) async fn logs(c: &impl GenericClient) -> Result<Vec<MirrorLog>> {
    let rows = c
        .query(
            &format!(
                "WITH latest AS (SELECT DISTINCT ON (origin) {CHECKPOINT_COLUMNS}, \
                   count(*) OVER (PARTITION BY origin) AS checkpoints \
                   FROM mirror_checkpoints ORDER BY origin, tree_size DESC) \
                 SELECT {CHECKPOINT_COLUMNS}, checkpoints, \
                   (SELECT count(*) FROM mirror_records r WHERE r.origin = l.origin) \
                 FROM latest l ORDER BY origin"
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|row| {
            let latest = decode_checkpoint(row)?;
            Ok(MirrorLog {
                checkpoints: u64_of(row.try_get(5).map_err(pg)?, "mirror count")?,
                records: u64_of(row.try_get(6).map_err(pg)?, "mirror count")?,
                origin: latest.origin.clone(),
                latest,
            })
        })
        .collect()
}

/// Records of `origin` after leaf `after`, in leaf order, at most `limit`
/// (clamped).
pub(super) async fn records(
    c: &impl GenericClient,
    origin: &str,
    after: Option<u64>,
    limit: u32,
) -> Result<Vec<MirrorRecord>> {
    // Past any leaf the store can hold: an empty page.
    let Ok(after) = after.map(i64::try_from).transpose() else {
        return Ok(Vec::new());
    };
    let limit = i64::from(limit.clamp(1, MAX_PAGE));
    let rows = c
        .query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM mirror_records WHERE origin = $1 \
                 AND leaf_index > $2 ORDER BY leaf_index LIMIT $3"
            ),
            &[&origin, &after.unwrap_or(-1), &limit],
        )
        .await
        .map_err(pg)?;
    rows.iter().map(decode_record).collect()
}

/// The record of `origin` at `leaf_index`, if held.
pub(super) async fn record(
    c: &impl GenericClient,
    origin: &str,
    leaf_index: u64,
) -> Result<Option<MirrorRecord>> {
    let Ok(index) = i64::try_from(leaf_index) else {
        return Ok(None);
    };
    let row = c
        .query_opt(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM mirror_records WHERE origin = $1 AND leaf_index = $2"
            ),
            &[&origin, &index],
        )
        .await
        .map_err(pg)?;
    row.as_ref().map(decode_record).transpose()
}

/// The checkpoint of `origin` at `tree_size`, if held.
pub(super) async fn checkpoint(
    c: &impl GenericClient,
    origin: &str,
    tree_size: u64,
) -> Result<Option<MirrorCheckpoint>> {
    let Ok(size) = i64::try_from(tree_size) else {
        return Ok(None);
    };
    let row = c
        .query_opt(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM mirror_checkpoints \
                 WHERE origin = $1 AND tree_size = $2"
            ),
            &[&origin, &size],
        )
        .await
        .map_err(pg)?;
    row.as_ref().map(decode_checkpoint).transpose()
}

/// A payload by SHA-256 (lower-case hex), if held.
pub(super) async fn payload(c: &impl GenericClient, sha256: &str) -> Result<Option<Vec<u8>>> {
    let row = c
        .query_opt(
            "SELECT data FROM mirror_payloads WHERE sha256 = $1",
            &[&sha256],
        )
        .await
        .map_err(pg)?;
    row.map(|r| r.try_get(0).map_err(pg)).transpose()
}
