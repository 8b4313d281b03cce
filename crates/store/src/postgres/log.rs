//! The log on PostgreSQL: each log's size, the append transaction, tiles
//! and checkpoints, and the settings table.
//!
//! An append is one transaction: both logs' size rows locked `FOR UPDATE`
//! and checked, the entries, payloads and audit events written with binary
//! `COPY`, the tiles checked against what is stored and written, the sizes
//! advanced. Any error before COMMIT rolls all of it back.
//!
//! Tiles are never updated in place: a full tile is one row of `tiles`
//! (with its inner levels), and a partial tile is the segments of hashes
//! each commit added to it (`tile_segments`), read back in order.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use evault_merkle::tiles::{TILE_WIDTH, TileId, inner_byte_len, tile_inner};
use tokio_postgres::types::{Json, ToSql, Type};

use super::entries::ENTRY_COPY;
use super::lease::{self, Fence};
use super::{cached, pg};
use crate::sqlite::error::{corrupt, invalid};
use crate::{
    AppendBatch, AuditRow, EvidenceRow, LogId, Payload, Result, StoreError, StoredCheckpoint,
    StoredTileKey,
};

/// Bytes of one hash.
const HASH: usize = 32;
/// Bytes of a full tile.
const FULL: usize = TILE_WIDTH as usize * HASH;

pub(super) fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| invalid(format!("{what} {v} does not fit the store")))
}

pub(super) fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(format!("stored {what} is negative ({v})")))
}

/// `log`'s stored tree size.
pub(super) async fn size(c: &impl GenericClient, log: LogId) -> Result<u64> {
    let row = cached::query_opt(
        c,
        "SELECT size FROM log_state WHERE log = $1",
        &[&log.as_str()],
    )
    .await?
    .ok_or_else(|| corrupt(format!("the {log} tree size row is missing")))?;
    u64_of(row.try_get(0).map_err(pg)?, &format!("{log} tree size"))
}

/// The inner levels of each full tile in `tiles` (`None` for the rest),
/// hashed before the transaction starts.
pub(super) fn inner_levels(tiles: &[(TileId, Vec<u8>)]) -> Vec<Option<Vec<u8>>> {
    tiles
        .iter()
        .map(|(tile, data)| {
            (tile.width == TILE_WIDTH)
                .then(|| tile_inner(*tile, data).ok())
                .flatten()
        })
        .collect()
}

/// Appends `batch` in one transaction on `client`, behind `fence`;
/// `inner` is [`inner_levels`] of each log's tiles.
pub(super) async fn append(
    client: &mut deadpool_postgres::Object,
    batch: &AppendBatch<'_>,
    inner: &[Vec<Option<Vec<u8>>>; 2],
    fence: &Fence,
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg)?;
    append_in(&tx, batch, inner, fence).await?;
    tx.commit().await.map_err(pg)
}

/// [`append`] inside `tx`, which the caller commits (an erasure writes
/// more in the same transaction); any error leaves `tx` to roll back.
/// Passes `fence` first, and records the commit in `commits`.
pub(super) async fn append_in(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &AppendBatch<'_>,
    inner: &[Vec<Option<Vec<u8>>>; 2],
    fence: &Fence,
) -> Result<()> {
    lease::enter(tx, fence).await?;
    // Both rows, always in the same order, so two writers cannot deadlock;
    // held to COMMIT, so the sizes cannot move under the checks.
    let rows = cached::query(
        tx,
        "SELECT log, size FROM log_state ORDER BY log FOR UPDATE",
        &[],
    )
    .await?;
    let mut stored = HashMap::new();
    for row in rows {
        let log: String = row.try_get(0).map_err(pg)?;
        stored.insert(log, u64_of(row.try_get(1).map_err(pg)?, "tree size")?);
    }
    let stored_size = |log: LogId| {
        stored
            .get(log.as_str())
            .copied()
            .ok_or_else(|| corrupt(format!("the {log} tree size row is missing")))
    };
    let new_size = check_extend(
        LogId::Evidence,
        stored_size(LogId::Evidence)?,
        batch.old_size,
        batch.records.len(),
    )?;
    let audit_new = match &batch.audit {
        Some(a) => Some(check_extend(
            LogId::Audit,
            stored_size(LogId::Audit)?,
            a.old_size,
            a.events.len(),
        )?),
        None => None,
    };
    check_indexes(batch.old_size, batch.records.iter().map(|r| r.leaf_index))?;
    if let Some(a) = &batch.audit {
        check_indexes(a.old_size, a.events.iter().map(|e| e.leaf_index))?;
    }

    // Tiles first: reading what is stored is cheaper than a COPY undone.
    let evidence_tiles = plan_tiles(tx, LogId::Evidence, new_size, batch.tiles, &inner[0]).await?;
    let audit_tiles = match (&batch.audit, audit_new) {
        (Some(a), Some(n)) => plan_tiles(tx, LogId::Audit, n, a.tiles, &inner[1]).await?,
        _ => TileWrites::default(),
    };

    insert_records(tx, batch.records).await?;
    if let Some(a) = &batch.audit {
        insert_audit(tx, a.events).await?;
    }
    evidence_tiles.write(tx, LogId::Evidence).await?;
    audit_tiles.write(tx, LogId::Audit).await?;
    let set_size = "UPDATE log_state SET size = $2 WHERE log = $1";
    if new_size != batch.old_size {
        cached::execute(
            tx,
            set_size,
            &[&"evidence", &i64_of(new_size, "tree size")?],
        )
        .await?;
    }
    if let (Some(a), Some(n)) = (&batch.audit, audit_new)
        && n != a.old_size
    {
        cached::execute(tx, set_size, &[&"audit", &i64_of(n, "tree size")?]).await?;
    }
    let audit_old = stored_size(LogId::Audit)?;
    cached::execute(
        tx,
        "INSERT INTO commits (epoch, node, evidence_old, evidence_new, audit_old, audit_new) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &fence.epoch,
            &fence.node,
            &i64_of(batch.old_size, "tree size")?,
            &i64_of(new_size, "tree size")?,
            &i64_of(audit_old, "tree size")?,
            &i64_of(audit_new.unwrap_or(audit_old), "tree size")?,
        ],
    )
    .await?;
    Ok(())
}

fn check_extend(log: LogId, stored: u64, old_size: u64, count: usize) -> Result<u64> {
    if stored != old_size {
        return Err(StoreError::SizeConflict {
            expected: old_size,
            stored,
        });
    }
    let new_size = u64::try_from(count)
        .ok()
        .and_then(|n| old_size.checked_add(n))
        .ok_or_else(|| invalid(format!("batch overflows the {log} tree size")))?;
    i64_of(new_size, &format!("{log} tree size"))?;
    Ok(new_size)
}

fn check_indexes(old_size: u64, got: impl Iterator<Item = u64>) -> Result<()> {
    for (expected, got) in (old_size..).zip(got) {
        if got != expected {
            return Err(StoreError::NonConsecutiveIndex { expected, got });
        }
    }
    Ok(())
}

async fn insert_records(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[EvidenceRow],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::BYTEA,
        Type::JSONB,
        Type::BOOL,
    ];
    let mut writer = std::pin::pin!(cached::copy_in(tx, ENTRY_COPY, &types).await?);
    for r in records {
        let external = match &r.payload {
            Payload::Inline(_) => false,
            Payload::External => true,
            // A new leaf is never erased: erasure names an existing one.
            Payload::Erased { .. } => {
                return Err(invalid(format!(
                    "record {} cannot be appended as erased",
                    r.leaf_index
                )));
            }
        };
        let index = i64_of(r.leaf_index, "leaf index")?;
        let size = i64_of(r.size, "payload size")?;
        let sha256: &[u8] = &r.sha256;
        let dedup: &[u8] = &r.dedup_key;
        let labels = super::labels::encode_map(&r.labels);
        let labels = Json(labels.as_ref());
        let row: [&(dyn ToSql + Sync); 12] = [
            &index,
            &r.id,
            &r.content_type,
            &sha256,
            &size,
            &r.ingested_at_ms,
            &r.ingested_by,
            &r.idempotency_key,
            &dedup,
            &r.leaf_data,
            &labels,
            &external,
        ];
        writer
            .as_mut()
            .write(&row)
            .await
            .map_err(|e| copy_error(e, "record"))?;
    }
    writer.finish().await.map_err(|e| copy_error(e, "record"))?;

    if records
        .iter()
        .any(|r| matches!(r.payload, Payload::Inline(_)))
    {
        let mut writer = std::pin::pin!(
            cached::copy_in(
                tx,
                "COPY payloads (leaf_index, data) FROM STDIN (FORMAT binary)",
                &[Type::INT8, Type::BYTEA],
            )
            .await?
        );
        for r in records {
            if let Payload::Inline(data) = &r.payload {
                let index = r.leaf_index as i64;
                writer.as_mut().write(&[&index, data]).await.map_err(pg)?;
            }
        }
        writer.finish().await.map_err(pg)?;
    }

    let analytics: Vec<&EvidenceRow> = records.iter().filter(|r| r.analytics.is_some()).collect();
    if !analytics.is_empty() {
        let event = tx
            .prepare_cached(
                "INSERT INTO analytics_events (leaf_index, source, kind, ts_ms, value, unit, \
                 ingested_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await
            .map_err(pg)?;
        let metric = tx
            .prepare_cached(
                "INSERT INTO analytics_metrics (leaf_index, name, value) VALUES ($1, $2, $3)",
            )
            .await
            .map_err(pg)?;
        for r in analytics {
            let Some(a) = &r.analytics else { continue };
            let index = r.leaf_index as i64;
            let at = || format!("analytics row of leaf index {index}");
            if a.value.is_some_and(|v| !v.is_finite()) {
                return Err(invalid(format!("{}: value is not finite", at())));
            }
            tx.execute(
                &event,
                &[
                    &index,
                    &a.source,
                    &a.kind,
                    &a.timestamp_ms,
                    &a.value,
                    &a.unit,
                    &r.ingested_by,
                ],
            )
            .await
            .map_err(pg)?;
            for (name, value) in &a.metrics {
                if !value.is_finite() {
                    return Err(invalid(format!("{}: metric {name:?} is not finite", at())));
                }
                tx.execute(&metric, &[&index, name, value])
                    .await
                    .map_err(|e| match e.as_db_error().and_then(|d| d.constraint()) {
                        Some("analytics_metrics_pkey") => {
                            invalid(format!("{}: metric {name:?} given twice", at()))
                        }
                        _ => pg(e),
                    })?;
            }
        }
    }
    Ok(())
}

async fn insert_audit(tx: &deadpool_postgres::Transaction<'_>, events: &[AuditRow]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
    ];
    let mut writer = std::pin::pin!(
        cached::copy_in(
            tx,
            "COPY audit_events (leaf_index, id, time_ms, principal, operation, outcome, \
             leaf_data) FROM STDIN (FORMAT binary)",
            &types,
        )
        .await?
    );
    for e in events {
        let index = i64_of(e.leaf_index, "audit leaf index")?;
        let row: [&(dyn ToSql + Sync); 7] = [
            &index,
            &e.id,
            &e.time_ms,
            &e.principal,
            &e.operation,
            &e.outcome,
            &e.leaf_data,
        ];
        writer
            .as_mut()
            .write(&row)
            .await
            .map_err(|e| copy_error(e, "audit event"))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| copy_error(e, "audit event"))?;
    Ok(())
}

/// A failed COPY of records or events: a repeated id is
/// [`StoreError::Duplicate`], a leaf index already taken is corruption
/// (a row beyond the tree size).
fn copy_error(e: tokio_postgres::Error, what: &str) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return pg(e);
    };
    let detail = db.detail().unwrap_or("").to_string();
    match db.constraint() {
        Some("entries_id" | "audit_events_id") => {
            // "Key (id)=(…) already exists."
            let id = detail
                .split_once(")=(")
                .and_then(|(_, rest)| rest.rsplit_once(") already exists"))
                .map_or(detail.as_str(), |(id, _)| id);
            StoreError::Duplicate(format!("{what} id {id}"))
        }
        Some("entries_pkey" | "audit_events_pkey") => {
            corrupt(format!("a {what} exists beyond the tree size ({detail})"))
        }
        _ => pg(e),
    }
}

/// A tile as stored: full (with its inner levels), or the concatenation
/// of its segments.
enum Stored {
    Full { data: Vec<u8>, inner: Vec<u8> },
    Partial(Vec<u8>),
}

impl Stored {
    fn data(&self) -> &[u8] {
        match self {
            Stored::Full { data, .. } => data,
            Stored::Partial(data) => data,
        }
    }
}

/// The stored versions of `keys` (level, index) of `log`; a tile with no
/// rows is absent.
async fn stored_tiles(
    c: &impl GenericClient,
    log: LogId,
    keys: &[(i16, i64)],
) -> Result<HashMap<(i16, i64), Stored>> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let levels: Vec<i16> = keys.iter().map(|k| k.0).collect();
    let indexes: Vec<i64> = keys.iter().map(|k| k.1).collect();
    // Full tiles, then the segments of the others in order.
    let rows = cached::query(c, "SELECT level, idx, -1::smallint, data, inner_levels FROM tiles \
             WHERE log = $1 AND (level, idx) IN (SELECT * FROM unnest($2::smallint[], $3::bigint[])) \
             UNION ALL \
             SELECT s.level, s.idx, s.start, s.hashes, NULL FROM tile_segments s \
             WHERE s.log = $1 AND (s.level, s.idx) IN (SELECT * FROM unnest($2::smallint[], $3::bigint[])) \
             AND NOT EXISTS (SELECT 1 FROM tiles t WHERE t.log = s.log AND t.level = s.level AND t.idx = s.idx) \
             ORDER BY 1, 2, 3",
            &[&log.as_str(), &levels, &indexes]).await?;
    for row in rows {
        let key: (i16, i64) = (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        let start: i16 = row.try_get(2).map_err(pg)?;
        let data: Vec<u8> = row.try_get(3).map_err(pg)?;
        let at = || format!("stored {log} tile {}/{}", key.0, key.1);
        if start < 0 {
            let inner: Vec<u8> = row.try_get(4).map_err(pg)?;
            if data.len() != FULL {
                return Err(corrupt(format!("{} has {} bytes", at(), data.len())));
            }
            if inner.len() != inner_byte_len(TILE_WIDTH) {
                return Err(corrupt(format!(
                    "{} has {} bytes of inner levels, expected {}",
                    at(),
                    inner.len(),
                    inner_byte_len(TILE_WIDTH)
                )));
            }
            out.insert(key, Stored::Full { data, inner });
            continue;
        }
        let Stored::Partial(have) = out
            .entry(key)
            .or_insert_with(|| Stored::Partial(Vec::new()))
        else {
            continue;
        };
        if start as usize * HASH != have.len()
            || data.is_empty()
            || !data.len().is_multiple_of(HASH)
        {
            return Err(corrupt(format!(
                "{} has a segment of {} bytes at hash {start} after {} bytes",
                at(),
                data.len(),
                have.len()
            )));
        }
        have.extend_from_slice(&data);
        if have.len() > FULL {
            return Err(corrupt(format!("{} has {} bytes", at(), have.len())));
        }
    }
    Ok(out)
}

/// What an append writes of one log's tiles.
#[derive(Default)]
struct TileWrites {
    /// (level, index, data, inner) of tiles that became full.
    full: Vec<(i16, i64, Vec<u8>, Vec<u8>)>,
    /// (level, index, start, hashes) of partial tiles' growth.
    segments: Vec<(i16, i64, i16, Vec<u8>)>,
}

/// Checks a batch's tiles of `log` (each of the width `new_size` gives it,
/// of the right length, extending what is stored) and works out the rows
/// that store them.
async fn plan_tiles(
    tx: &impl GenericClient,
    log: LogId,
    new_size: u64,
    tiles: &[(TileId, Vec<u8>)],
    inner: &[Option<Vec<u8>>],
) -> Result<TileWrites> {
    if inner.len() != tiles.len() {
        return Err(invalid(format!(
            "{} {log} tiles with {} inner levels",
            tiles.len(),
            inner.len()
        )));
    }
    let mut keys = Vec::with_capacity(tiles.len());
    for (tile, data) in tiles {
        crate::check_batch_tile(log, new_size, tile, data)?;
        keys.push(tile_key(log, *tile)?);
    }
    let stored = stored_tiles(tx, log, &keys).await?;
    let mut writes = TileWrites::default();
    for (((tile, data), inner), key) in tiles.iter().zip(inner).zip(&keys) {
        let have = stored.get(key).map_or(&[][..], Stored::data);
        if have.len() > data.len() || data[..have.len()] != *have {
            return Err(invalid(format!(
                "{log} tile {} does not extend the stored tile",
                tile.path()
            )));
        }
        if have.len() == data.len() {
            continue;
        }
        if tile.width == TILE_WIDTH {
            let inner = inner
                .clone()
                .ok_or_else(|| invalid(format!("{log} tile {}: no inner levels", tile.path())))?;
            writes.full.push((key.0, key.1, data.clone(), inner));
        } else {
            let start = (have.len() / HASH) as i16;
            writes
                .segments
                .push((key.0, key.1, start, data[have.len()..].to_vec()));
        }
    }
    Ok(writes)
}

fn tile_key(log: LogId, tile: TileId) -> Result<(i16, i64)> {
    match i64::try_from(tile.index) {
        Ok(index) if tile.level <= 63 => Ok((i16::from(tile.level), index)),
        _ => Err(invalid(format!(
            "{log} tile {} is beyond the largest tree the store keeps",
            tile.path()
        ))),
    }
}

impl TileWrites {
    async fn write(&self, tx: &impl GenericClient, log: LogId) -> Result<()> {
        if !self.full.is_empty() {
            let levels: Vec<i16> = self.full.iter().map(|t| t.0).collect();
            let indexes: Vec<i64> = self.full.iter().map(|t| t.1).collect();
            let data: Vec<&[u8]> = self.full.iter().map(|t| &t.2[..]).collect();
            let inner: Vec<&[u8]> = self.full.iter().map(|t| &t.3[..]).collect();
            tx.execute(
                "INSERT INTO tiles (log, level, idx, data, inner_levels) \
                 SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::bytea[], $5::bytea[])",
                &[&log.as_str(), &levels, &indexes, &data, &inner],
            )
            .await
            .map_err(pg)?;
        }
        if !self.segments.is_empty() {
            let levels: Vec<i16> = self.segments.iter().map(|t| t.0).collect();
            let indexes: Vec<i64> = self.segments.iter().map(|t| t.1).collect();
            let starts: Vec<i16> = self.segments.iter().map(|t| t.2).collect();
            let hashes: Vec<&[u8]> = self.segments.iter().map(|t| &t.3[..]).collect();
            tx.execute(
                "INSERT INTO tile_segments (log, level, idx, start, hashes) \
                 SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::smallint[], $5::bytea[])",
                &[&log.as_str(), &levels, &indexes, &starts, &hashes],
            )
            .await
            .map_err(pg)?;
        }
        Ok(())
    }
}

/// Each tile at its width, with its inner levels when asked for and the
/// tile is read full.
#[allow(clippy::type_complexity)]
pub(super) async fn read_tiles(
    c: &impl GenericClient,
    log: LogId,
    tiles: &[TileId],
    with_inner: bool,
) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    let mut keys = Vec::with_capacity(tiles.len());
    for &tile in tiles {
        if tile.width == 0 || tile.width > TILE_WIDTH {
            return Err(StoreError::TileUnavailable(tile));
        }
        keys.push(tile_key(log, tile).map_err(|_| StoreError::TileUnavailable(tile))?);
    }
    let stored = stored_tiles(c, log, &keys).await?;
    let mut out = Vec::with_capacity(tiles.len());
    for (&tile, key) in tiles.iter().zip(&keys) {
        let Some(s) = stored.get(key) else {
            return Err(StoreError::TileUnavailable(tile));
        };
        let want = tile.byte_len();
        if s.data().len() < want {
            return Err(StoreError::TileUnavailable(tile));
        }
        let inner = match s {
            Stored::Full { inner, .. } if with_inner && tile.width == TILE_WIDTH => {
                Some(inner.clone())
            }
            _ => None,
        };
        out.push((s.data()[..want].to_vec(), inner));
    }
    Ok(out)
}

/// Every stored tile of `log`, by level and index, with its stored length.
pub(super) async fn tile_keys(c: &impl GenericClient, log: LogId) -> Result<Vec<StoredTileKey>> {
    let rows = c
        .query(
            "SELECT level, idx, length(data)::bigint FROM tiles WHERE log = $1 \
             UNION ALL \
             SELECT s.level, s.idx, sum(length(s.hashes))::bigint FROM tile_segments s \
             WHERE s.log = $1 AND NOT EXISTS (SELECT 1 FROM tiles t \
               WHERE t.log = s.log AND t.level = s.level AND t.idx = s.idx) \
             GROUP BY s.level, s.idx ORDER BY 1, 2",
            &[&log.as_str()],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|row| {
            let level: i16 = row.try_get(0).map_err(pg)?;
            Ok(StoredTileKey {
                level: u8::try_from(level).unwrap_or(u8::MAX),
                index: u64_of(row.try_get(1).map_err(pg)?, "tile index")?,
                bytes: u64_of(row.try_get(2).map_err(pg)?, "tile length")?,
            })
        })
        .collect()
}

/// A tile's stored contents, whole: the full row, or every segment in
/// order (a gap or overlap shows as contents that do not match).
pub(super) async fn stored_tile(
    c: &impl GenericClient,
    log: LogId,
    level: u8,
    index: u64,
) -> Result<Option<Vec<u8>>> {
    let Ok(index) = i64::try_from(index) else {
        return Ok(None);
    };
    let level = i16::from(level);
    let row = cached::query_one(
        c,
        "SELECT coalesce((SELECT data FROM tiles WHERE log = $1 AND level = $2 AND idx = $3), \
             (SELECT string_agg(hashes, ''::bytea ORDER BY start) FROM tile_segments \
              WHERE log = $1 AND level = $2 AND idx = $3))",
        &[&log.as_str(), &level, &index],
    )
    .await?;
    row.try_get(0).map_err(pg)
}

fn decode_checkpoint(row: &tokio_postgres::Row) -> Result<StoredCheckpoint> {
    let size = u64_of(row.try_get(0).map_err(pg)?, "checkpoint size")?;
    Ok(StoredCheckpoint {
        size,
        note: row.try_get(1).map_err(pg)?,
        created_at_ms: row.try_get(2).map_err(pg)?,
    })
}

/// Stores a checkpoint; the first stored for a size wins.
pub(super) async fn put_checkpoint(
    client: &mut deadpool_postgres::Object,
    log: LogId,
    cp: &StoredCheckpoint,
    fence: &Fence,
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg)?;
    lease::enter(&tx, fence).await?;
    cached::execute(
        &tx,
        "INSERT INTO checkpoints (log, size, note, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (log, size) DO NOTHING",
        &[
            &log.as_str(),
            &i64_of(cp.size, "checkpoint size")?,
            &cp.note,
            &cp.created_at_ms,
        ],
    )
    .await?;
    tx.commit().await.map_err(pg)
}

/// Checkpoints of `log` selected by `tail` (SQL after the log's WHERE term).
pub(super) async fn checkpoints(
    c: &impl GenericClient,
    log: LogId,
    tail: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<StoredCheckpoint>> {
    let sql = format!("SELECT size, note, created_at_ms FROM checkpoints WHERE log = $1 {tail}");
    let name = log.as_str();
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![&name];
    all.extend_from_slice(params);
    let rows = cached::query(c, &sql, &all).await?;
    rows.iter().map(decode_checkpoint).collect()
}

pub(super) async fn get_meta(c: &impl GenericClient, key: &str) -> Result<Option<String>> {
    let row = cached::query_opt(c, "SELECT value FROM meta WHERE key = $1", &[&key]).await?;
    row.map(|r| r.try_get(0).map_err(pg)).transpose()
}

pub(super) async fn meta_entries(c: &impl GenericClient) -> Result<Vec<(String, String)>> {
    let rows = c
        .query(
            "SELECT key, value FROM meta ORDER BY key COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
        .collect()
}

pub(super) async fn set_meta(c: &impl GenericClient, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
