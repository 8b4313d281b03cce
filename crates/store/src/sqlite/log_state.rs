//! Each log's tree state: its size row, its tiles and its checkpoints.
//!
//! The evidence and audit logs have tree tables of the same shape
//! (`tree_state`/`tiles`/`checkpoints` and `audit_state`/`audit_tiles`/
//! `audit_checkpoints`); every tree-level statement is written once, in
//! [`log_sql!`], and instantiated for each log's table names.

use evault_merkle::tiles::{TILE_WIDTH, TileId, inner_byte_len, tile_inner};
use rusqlite::{Connection, OptionalExtension, Row};

use super::error::{DbResult, corrupt, invalid};
use super::query::{self, MAX_PAGE, cursor};
use super::rows::{col_blob, col_i64, col_text, to_i64, to_u64};
use crate::{LogId, Result, StoreError, StoredCheckpoint};

/// Bytes of one hash in a tile.
const HASH_BYTES: usize = 32;

/// The statements of one log's tree: its size row, tiles and checkpoints.
struct LogSql {
    select_size: &'static str,
    update_size: &'static str,
    /// Replaces a tile only by a version that extends it: as wide or wider,
    /// and with the stored contents as prefix. Anything else changes no row.
    upsert_tile: &'static str,
    /// Reads a tile (by [`tile_key`]) cut to a width, with its inner levels
    /// when asked for and the width is the stored one (a full tile's).
    read_tile: &'static str,
    /// Full tiles whose inner levels are not stored, after a position (the
    /// schema-8 conversion, which runs on the tables before schema 12).
    missing_inner: &'static str,
    set_inner: &'static str,
    count_missing_inner: &'static str,
    put_checkpoint: &'static str,
    latest_checkpoint: &'static str,
    checkpoint_at: &'static str,
    list_checkpoints: &'static str,
}

/// [`LogSql`] for the tables named `$state`, `$tiles` and `$checkpoints`.
macro_rules! log_sql {
    ($state:literal, $tiles:literal, $checkpoints:literal) => {
        LogSql {
            select_size: concat!("SELECT size FROM ", $state, " WHERE id = 0"),
            update_size: concat!("UPDATE ", $state, " SET size = ?1 WHERE id = 0"),
            upsert_tile: concat!(
                "INSERT INTO ",
                $tiles,
                " (id, level, idx, data, inner) VALUES (?5, ?1, ?2, ?3, ?4) ",
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, ",
                "inner = excluded.inner ",
                "WHERE length(excluded.data) >= length(",
                $tiles,
                ".data) ",
                "AND substr(excluded.data, 1, length(",
                $tiles,
                ".data)) = ",
                $tiles,
                ".data"
            ),
            read_tile: concat!(
                "SELECT length(data), substr(data, 1, ?2), ",
                "CASE WHEN ?3 AND length(data) = ?2 THEN inner END FROM ",
                $tiles,
                " WHERE id = ?1"
            ),
            missing_inner: concat!(
                "SELECT level, idx, data FROM ",
                $tiles,
                " WHERE inner IS NULL AND length(data) = 8192 AND (level, idx) > (?1, ?2) ",
                "ORDER BY level, idx LIMIT ?3"
            ),
            set_inner: concat!(
                "UPDATE ",
                $tiles,
                " SET inner = ?3 WHERE level = ?1 AND idx = ?2 AND length(data) = 8192"
            ),
            count_missing_inner: concat!(
                "SELECT count(*) FROM ",
                $tiles,
                " WHERE inner IS NULL AND length(data) = 8192"
            ),
            put_checkpoint: concat!(
                "INSERT OR IGNORE INTO ",
                $checkpoints,
                " (size, note, created_at_ms) VALUES (?1, ?2, ?3)"
            ),
            latest_checkpoint: concat!(
                "SELECT size, note, created_at_ms FROM ",
                $checkpoints,
                " ORDER BY size DESC LIMIT 1"
            ),
            checkpoint_at: concat!(
                "SELECT size, note, created_at_ms FROM ",
                $checkpoints,
                " WHERE size = ?1"
            ),
            list_checkpoints: concat!(
                "SELECT size, note, created_at_ms FROM ",
                $checkpoints,
                " WHERE size > ?1 ORDER BY size LIMIT ?2"
            ),
        }
    };
}

const EVIDENCE_SQL: LogSql = log_sql!("tree_state", "tiles", "checkpoints");
const AUDIT_SQL: LogSql = log_sql!("audit_state", "audit_tiles", "audit_checkpoints");

fn sql(log: LogId) -> &'static LogSql {
    match log {
        LogId::Evidence => &EVIDENCE_SQL,
        LogId::Audit => &AUDIT_SQL,
    }
}

/// `log`'s stored tree size.
pub(super) fn read_size(conn: &Connection, log: LogId) -> Result<u64> {
    let size: Option<i64> = conn
        .prepare_cached(sql(log).select_size)
        .db()?
        .query_row([], |row| row.get(0))
        .optional()
        .db()?;
    let size = size.ok_or_else(|| corrupt(format!("the {log} tree size row is missing")))?;
    to_u64(size, &format!("{log} tree size"))
}

/// The rowid of tile (`level`, `index`) in the tile tables (schema 12):
/// `level << 56 | index`, so key order is (level, index) order. `None` for
/// a level above 63 or an index from 2^56 on, which no tree of fewer than
/// 2^63 leaves has.
pub(super) fn tile_key(level: u8, index: u64) -> Option<i64> {
    if level > 63 || index >= 1 << 56 {
        return None;
    }
    i64::try_from((u64::from(level) << 56) | index).ok()
}

/// Checks, inside the append's transaction, that `log` holds `old_size`
/// and can take `count` more leaves; returns the new size.
pub(super) fn check_extend(
    tx: &Connection,
    log: LogId,
    old_size: u64,
    count: usize,
) -> Result<u64> {
    let stored = read_size(tx, log)?;
    if stored != old_size {
        return Err(StoreError::SizeConflict {
            expected: old_size,
            stored,
        });
    }
    let count =
        u64::try_from(count).map_err(|_| invalid(format!("batch has too many {log} leaves")))?;
    let new_size = old_size
        .checked_add(count)
        .ok_or_else(|| invalid(format!("batch overflows the {log} tree size")))?;
    to_i64(new_size, &format!("{log} tree size"))?;
    Ok(new_size)
}

/// Checks that a row of a batch has the leaf index its place gives it.
pub(super) fn check_index(expected: u64, got: u64) -> Result<()> {
    if got != expected {
        return Err(StoreError::NonConsecutiveIndex { expected, got });
    }
    Ok(())
}

/// The inner levels of each full tile in `tiles` (`None` for the rest),
/// computed before the write lock is taken.
pub(super) fn inner_levels(tiles: &[(TileId, Vec<u8>)]) -> Vec<Option<Vec<u8>>> {
    tiles
        .iter()
        .map(|(tile, data)| {
            if tile.width == TILE_WIDTH {
                // A wrong length yields None here and is refused by
                // write_tiles.
                tile_inner(*tile, data).ok()
            } else {
                None
            }
        })
        .collect()
}

/// Upserts `log`'s tiles of a batch that takes the tree to `new_size`:
/// each must have the width that size gives it, the right length, and
/// extend the stored version. `inner` is [`inner_levels`] of `tiles`.
pub(super) fn write_tiles(
    tx: &Connection,
    log: LogId,
    new_size: u64,
    tiles: &[(TileId, Vec<u8>)],
    inner: &[Option<Vec<u8>>],
) -> Result<()> {
    if inner.len() != tiles.len() {
        return Err(invalid(format!(
            "{} {log} tiles with {} inner levels",
            tiles.len(),
            inner.len()
        )));
    }
    let mut upsert = tx.prepare_cached(sql(log).upsert_tile).db()?;
    for ((tile, data), inner) in tiles.iter().zip(inner) {
        crate::check_batch_tile(log, new_size, tile, data)?;
        let key = tile_key(tile.level, tile.index).ok_or_else(|| {
            invalid(format!(
                "{log} tile {} is beyond the largest tree the store keeps",
                tile.path()
            ))
        })?;
        let changed = upsert
            .execute(rusqlite::params![
                i64::from(tile.level),
                to_i64(tile.index, "tile index")?,
                data,
                inner,
                key
            ])
            .db()?;
        if changed == 0 {
            return Err(invalid(format!(
                "{log} tile {} does not extend the stored tile",
                tile.path()
            )));
        }
    }
    Ok(())
}

/// Advances `log`'s stored size (checked by [`check_extend`], so it fits).
pub(super) fn set_size(tx: &Connection, log: LogId, old_size: u64, new_size: u64) -> Result<()> {
    if new_size != old_size {
        tx.prepare_cached(sql(log).update_size)
            .db()?
            .execute([new_size as i64])
            .db()?;
    }
    Ok(())
}

/// Contents of each of `log`'s tiles at its width: a prefix of the stored
/// version, or [`StoreError::TileUnavailable`] if that is narrower.
pub(super) fn read_tiles(conn: &Connection, log: LogId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
    Ok(read_tiles_inner(conn, log, tiles, false)?
        .into_iter()
        .map(|(d, _)| d)
        .collect())
}

/// [`read_tiles`], each tile with its stored inner levels when `inner` is
/// asked for and the tile is read at its full stored width.
#[allow(clippy::type_complexity)]
pub(super) fn read_tiles_inner(
    conn: &Connection,
    log: LogId,
    tiles: &[TileId],
    inner: bool,
) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    let mut stmt = conn.prepare_cached(sql(log).read_tile).db()?;
    let mut out = Vec::with_capacity(tiles.len());
    for &tile in tiles {
        let Some(key) = tile_key(tile.level, tile.index) else {
            return Err(StoreError::TileUnavailable(tile));
        };
        if tile.width == 0 || tile.width > TILE_WIDTH {
            return Err(StoreError::TileUnavailable(tile));
        }
        let want = tile.byte_len();
        let mut rows = stmt
            .query(rusqlite::params![key, want as i64, inner])
            .db()?;
        let Some(row) = rows.next().db()? else {
            return Err(StoreError::TileUnavailable(tile));
        };
        let stored = col_i64(row, 0, "tile length")?;
        if stored < 0
            || !(stored as usize).is_multiple_of(HASH_BYTES)
            || stored as usize > TILE_WIDTH as usize * HASH_BYTES
        {
            return Err(corrupt(format!(
                "stored {log} tile {}/{} has {stored} bytes",
                tile.level, tile.index
            )));
        }
        if (stored as usize) < want {
            return Err(StoreError::TileUnavailable(tile));
        }
        let data = col_blob(row, 1, "tile data")?;
        if data.len() != want {
            return Err(corrupt(format!(
                "stored {log} tile {}/{} returned {} bytes, expected {want}",
                tile.level,
                tile.index,
                data.len()
            )));
        }
        let inner: Option<Vec<u8>> = row.get(2).db()?;
        let inner = match inner {
            Some(i) if i.len() != inner_byte_len(tile.width) => {
                return Err(corrupt(format!(
                    "stored {log} tile {}/{} has {} bytes of inner levels, expected {}",
                    tile.level,
                    tile.index,
                    i.len(),
                    inner_byte_len(tile.width)
                )));
            }
            other => other,
        };
        out.push((data.to_vec(), inner));
    }
    Ok(out)
}

/// Fills in the inner levels of every full tile of `log` stored without
/// them (a database from before schema version 8), inside the migration's
/// transaction `tx`; `progress` gets (done, total) after each chunk.
pub(super) fn backfill_inner(
    tx: &Connection,
    log: LogId,
    progress: &mut dyn FnMut(LogId, u64, u64),
) -> Result<u64> {
    const CHUNK: i64 = 1024;
    let total: i64 = tx
        .prepare_cached(sql(log).count_missing_inner)
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    let total = to_u64(total, "tile count")?;
    let mut done = 0u64;
    let mut after = (-1i64, -1i64);
    loop {
        let mut chunk: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        {
            let mut stmt = tx.prepare_cached(sql(log).missing_inner).db()?;
            let mut rows = stmt
                .query(rusqlite::params![after.0, after.1, CHUNK])
                .db()?;
            while let Some(row) = rows.next().db()? {
                chunk.push((
                    col_i64(row, 0, "tile level")?,
                    col_i64(row, 1, "tile index")?,
                    col_blob(row, 2, "tile data")?.to_vec(),
                ));
            }
        }
        let Some(last) = chunk.last() else {
            break;
        };
        after = (last.0, last.1);
        let mut set = tx.prepare_cached(sql(log).set_inner).db()?;
        for (level, index, data) in &chunk {
            let tile = TileId {
                level: u8::try_from(*level)
                    .map_err(|_| corrupt(format!("{log} tile level {level}")))?,
                index: to_u64(*index, "tile index")?,
                width: TILE_WIDTH,
            };
            let inner = tile_inner(tile, data).map_err(|e| corrupt(format!("{log} {e}")))?;
            set.execute(rusqlite::params![level, index, inner]).db()?;
        }
        done += chunk.len() as u64;
        progress(log, done, total);
    }
    Ok(done)
}

fn decode_checkpoint(row: &Row<'_>) -> Result<StoredCheckpoint> {
    let size = to_u64(col_i64(row, 0, "checkpoint size")?, "checkpoint size")?;
    Ok(StoredCheckpoint {
        size,
        note: col_text(row, 1, &format!("note of checkpoint {size}"))?,
        created_at_ms: col_i64(row, 2, &format!("created_at_ms of checkpoint {size}"))?,
    })
}

/// Stores a checkpoint of `log`; the first stored for a size wins.
pub(super) fn put_checkpoint(
    conn: &Connection,
    log: LogId,
    checkpoint: &StoredCheckpoint,
) -> Result<()> {
    let size = to_i64(checkpoint.size, "checkpoint size")?;
    conn.prepare_cached(sql(log).put_checkpoint)
        .db()?
        .execute(rusqlite::params![
            size,
            checkpoint.note,
            checkpoint.created_at_ms
        ])
        .db()?;
    Ok(())
}

pub(super) fn latest_checkpoint(conn: &Connection, log: LogId) -> Result<Option<StoredCheckpoint>> {
    query::first(conn, sql(log).latest_checkpoint, [], decode_checkpoint)
}

pub(super) fn checkpoint_at(
    conn: &Connection,
    log: LogId,
    size: u64,
) -> Result<Option<StoredCheckpoint>> {
    let Ok(size) = i64::try_from(size) else {
        return Ok(None);
    };
    query::first(conn, sql(log).checkpoint_at, [size], decode_checkpoint)
}

/// `log`'s checkpoints with size greater than `after`, ascending.
pub(super) fn list_checkpoints(
    conn: &Connection,
    log: LogId,
    after: Option<u64>,
    limit: u32,
) -> Result<Vec<StoredCheckpoint>> {
    let Ok(after) = cursor(after) else {
        return Ok(Vec::new());
    };
    let limit = limit.clamp(1, MAX_PAGE);
    query::all(
        conn,
        sql(log).list_checkpoints,
        [after.unwrap_or(-1), i64::from(limit)],
        decode_checkpoint,
    )
}

#[cfg(test)]
mod tests {
    use super::tile_key;

    #[test]
    fn tile_keys_keep_level_then_index_order_and_refuse_what_does_not_fit() {
        let last = (1u64 << 56) - 1;
        let keys = [
            tile_key(0, 0),
            tile_key(0, 1),
            tile_key(0, last),
            tile_key(1, 0),
            tile_key(63, last),
        ];
        let keys: Vec<i64> = keys.into_iter().map(Option::unwrap).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(keys[0], 0);
        assert_eq!(keys[3], 1 << 56);
        assert!(keys[4] > 0);
        assert_eq!(tile_key(0, 1 << 56), None);
        assert_eq!(tile_key(64, 0), None);
        assert_eq!(tile_key(u8::MAX, u64::MAX), None);
    }
}
