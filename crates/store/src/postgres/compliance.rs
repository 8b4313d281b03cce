//! Erasure, legal holds and retention on PostgreSQL.
//!
//! An erasure is the append of its tombstones plus, in the same
//! transaction, for each erased record: its `payloads` row and analytics
//! copies deleted, an `erased_payloads` row (what reads see) and an
//! `erasures` row (who, when, why). The entry itself is never touched.

use deadpool_postgres::GenericClient;

use super::entries::{self, ENTRY_FROM};
use super::lease::Fence;
use super::log::{append_in, i64_of, u64_of};
use super::pg;
use crate::sqlite::error::{corrupt, invalid};
use crate::{
    AppendBatch, ErasureRow, EvidenceRow, HoldRow, Result, RetentionRow, Selector, StoreError,
};

const ERASURE_COLUMNS: &str =
    "leaf_index, tombstone_leaf, reason_sha256, reason, basis, erased_at_ms, erased_by";
const HOLD_COLUMNS: &str = "id, selector, reason_sha256, reason, created_at_ms, created_by, \
     released_at_ms, released_by";
const RETENTION_COLUMNS: &str = "id, name, selector, keep_for_ms, created_at_ms, created_by";

/// [`entries::ENTRY_COLUMNS`] with an inline payload read as empty (it is
/// not needed, and may be large).
pub(super) const SHARER_COLUMNS: &str = "e.leaf_index, e.id, e.content_type, e.sha256, e.size, \
     e.ingested_at_ms, e.ingested_by, e.idempotency_key, e.dedup_key, e.leaf_data, \
     e.labels::text, e.external, CASE WHEN p.leaf_index IS NULL THEN NULL ELSE ''::bytea END, \
     x.tombstone_leaf";

fn hash(v: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| corrupt(format!("{what} has {} bytes, expected 32", v.len())))
}

fn decode_erasure(row: &tokio_postgres::Row) -> Result<ErasureRow> {
    let leaf_index = u64_of(row.try_get(0).map_err(pg)?, "erasure leaf_index")?;
    Ok(ErasureRow {
        leaf_index,
        tombstone_leaf: u64_of(row.try_get(1).map_err(pg)?, "tombstone_leaf")?,
        reason_sha256: hash(
            row.try_get(2).map_err(pg)?,
            &format!("reason_sha256 of the erasure of record {leaf_index}"),
        )?,
        reason: row.try_get(3).map_err(pg)?,
        basis: row.try_get(4).map_err(pg)?,
        erased_at_ms: row.try_get(5).map_err(pg)?,
        erased_by: row.try_get(6).map_err(pg)?,
    })
}

fn decode_selector(text: &str, of: &str) -> Result<Selector> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("selector of {of}: {e}")))
}

fn encode_selector(selector: &Selector) -> Result<String> {
    serde_json::to_string(selector).map_err(|e| invalid(format!("selector: {e}")))
}

fn decode_hold(row: &tokio_postgres::Row) -> Result<HoldRow> {
    let id: String = row.try_get(0).map_err(pg)?;
    let at = |what: &str| format!("{what} of hold {id}");
    let released_at: Option<i64> = row.try_get(6).map_err(pg)?;
    let released_by: Option<String> = row.try_get(7).map_err(pg)?;
    let released = match (released_at, released_by) {
        (Some(t), Some(by)) => Some((t, by)),
        (None, None) => None,
        _ => return Err(corrupt(at("release fields are half set"))),
    };
    let selector: String = row.try_get(1).map_err(pg)?;
    Ok(HoldRow {
        selector: decode_selector(&selector, &at("hold"))?,
        reason_sha256: hash(row.try_get(2).map_err(pg)?, &at("reason_sha256"))?,
        reason: row.try_get(3).map_err(pg)?,
        created_at_ms: row.try_get(4).map_err(pg)?,
        created_by: row.try_get(5).map_err(pg)?,
        released,
        id,
    })
}

fn decode_retention(row: &tokio_postgres::Row) -> Result<RetentionRow> {
    let id: String = row.try_get(0).map_err(pg)?;
    let selector: String = row.try_get(2).map_err(pg)?;
    Ok(RetentionRow {
        name: row.try_get(1).map_err(pg)?,
        selector: decode_selector(&selector, &format!("retention policy {id}"))?,
        keep_for_ms: row.try_get(3).map_err(pg)?,
        created_at_ms: row.try_get(4).map_err(pg)?,
        created_by: row.try_get(5).map_err(pg)?,
        id,
    })
}

/// Appends `batch` and erases what `erasures` names, in one transaction.
pub(super) async fn erase(
    client: &mut deadpool_postgres::Object,
    batch: &AppendBatch<'_>,
    inner: &[Vec<Option<Vec<u8>>>; 2],
    erasures: &[ErasureRow],
    fence: &Fence,
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg)?;
    // Holds are placed outside the sequencer. Locking their table against
    // writes until COMMIT orders any hold placed meanwhile after this
    // erasure, and this check after every hold placed before it.
    tx.batch_execute("LOCK TABLE legal_holds IN SHARE MODE")
        .await
        .map_err(pg)?;
    append_in(&tx, batch, inner, fence).await?;
    let first = batch.old_size;
    let end = first + batch.records.len() as u64;
    held(&tx, erasures).await?;
    for e in erasures {
        erase_one(&tx, e, first, end).await?;
    }
    tx.commit().await.map_err(pg)
}

/// [`StoreError::Held`] if an active hold covers a record to erase.
async fn held(c: &impl GenericClient, erasures: &[ErasureRow]) -> Result<()> {
    let holds = c
        .query(
            &format!("SELECT {HOLD_COLUMNS} FROM legal_holds WHERE released_at_ms IS NULL"),
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(decode_hold)
        .collect::<Result<Vec<_>>>()?;
    if holds.is_empty() {
        return Ok(());
    }
    for e in erasures {
        let Some(row) = entries::by_index(c, e.leaf_index).await? else {
            continue;
        };
        if let Some(h) = holds.iter().find(|h| h.selector.matches(&row)) {
            return Err(StoreError::Held {
                hold: h.id.clone(),
                leaf_index: e.leaf_index,
            });
        }
    }
    Ok(())
}

async fn erase_one(c: &impl GenericClient, e: &ErasureRow, first: u64, end: u64) -> Result<()> {
    if !(first..end).contains(&e.tombstone_leaf) {
        return Err(invalid(format!(
            "the tombstone of record {} (leaf {}) is not in the batch",
            e.leaf_index, e.tombstone_leaf
        )));
    }
    let index = i64_of(e.leaf_index, "leaf index")?;
    let tombstone = i64_of(e.tombstone_leaf, "tombstone leaf")?;
    // The erased record must exist below the batch and not be erased yet.
    let marked = c
        .execute(
            "INSERT INTO erased_payloads (leaf_index, tombstone_leaf) \
             SELECT leaf_index, $2 FROM entries WHERE leaf_index = $1 AND leaf_index < $3 \
             ON CONFLICT DO NOTHING",
            &[&index, &tombstone, &i64_of(first, "size")?],
        )
        .await
        .map_err(pg)?;
    if marked != 1 {
        return Err(invalid(format!(
            "record {} does not exist or is erased already",
            e.leaf_index
        )));
    }
    // The payload and its analytics copies go; the entry stays.
    for sql in [
        "DELETE FROM payloads WHERE leaf_index = $1",
        "DELETE FROM analytics_metrics WHERE leaf_index = $1",
        "DELETE FROM analytics_events WHERE leaf_index = $1",
    ] {
        c.execute(sql, &[&index]).await.map_err(pg)?;
    }
    let reason_sha256: &[u8] = &e.reason_sha256;
    c.execute(
        &format!("INSERT INTO erasures ({ERASURE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &index,
            &tombstone,
            &reason_sha256,
            &e.reason,
            &e.basis,
            &e.erased_at_ms,
            &e.erased_by,
        ],
    )
    .await
    .map_err(|err| match err.as_db_error().map(|d| d.code().code()) {
        Some("23505") => StoreError::Duplicate(format!("erasure of record {}", e.leaf_index)),
        _ => pg(err),
    })?;
    Ok(())
}

pub(super) async fn erasure(c: &impl GenericClient, leaf_index: u64) -> Result<Option<ErasureRow>> {
    let Ok(index) = i64::try_from(leaf_index) else {
        return Ok(None);
    };
    let row = c
        .query_opt(
            &format!("SELECT {ERASURE_COLUMNS} FROM erasures WHERE leaf_index = $1"),
            &[&index],
        )
        .await
        .map_err(pg)?;
    row.as_ref().map(decode_erasure).transpose()
}

pub(super) async fn list_erasures(
    c: &impl GenericClient,
    after: Option<u64>,
    limit: u32,
) -> Result<Vec<ErasureRow>> {
    let after = after.map_or(Ok(-1), i64::try_from).unwrap_or(i64::MAX);
    let limit = i64::from(limit.clamp(1, entries::MAX_PAGE));
    c.query(
        &format!(
            "SELECT {ERASURE_COLUMNS} FROM erasures WHERE leaf_index > $1 \
             ORDER BY leaf_index LIMIT $2"
        ),
        &[&after, &limit],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(decode_erasure)
    .collect()
}

/// Every record with this payload digest, in leaf order, inline bytes
/// read as empty.
pub(super) async fn records_by_sha256(
    c: &impl GenericClient,
    sha256: &[u8; 32],
) -> Result<Vec<EvidenceRow>> {
    let key: &[u8] = sha256;
    c.query(
        &format!(
            "SELECT {SHARER_COLUMNS} FROM {ENTRY_FROM} WHERE e.sha256 = $1 ORDER BY e.leaf_index"
        ),
        &[&key],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(entries::decode)
    .collect()
}

pub(super) async fn put_hold(c: &impl GenericClient, hold: &HoldRow) -> Result<()> {
    let (released_at, released_by) = match &hold.released {
        Some((t, by)) => (Some(*t), Some(by.as_str())),
        None => (None, None),
    };
    let reason_sha256: &[u8] = &hold.reason_sha256;
    c.execute(
        &format!(
            "INSERT INTO legal_holds ({HOLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            &hold.id,
            &encode_selector(&hold.selector)?,
            &reason_sha256,
            &hold.reason,
            &hold.created_at_ms,
            &hold.created_by,
            &released_at,
            &released_by,
        ],
    )
    .await
    .map_err(|e| match e.as_db_error().map(|d| d.code().code()) {
        Some("23505") => StoreError::Duplicate(format!("hold {}", hold.id)),
        _ => pg(e),
    })?;
    Ok(())
}

pub(super) async fn list_holds(c: &impl GenericClient) -> Result<Vec<HoldRow>> {
    c.query(
        &format!("SELECT {HOLD_COLUMNS} FROM legal_holds ORDER BY created_at_ms, id"),
        &[],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(decode_hold)
    .collect()
}

pub(super) async fn release_hold(
    c: &impl GenericClient,
    id: &str,
    at_ms: i64,
    by: &str,
) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE legal_holds SET released_at_ms = $2, released_by = $3 \
             WHERE id = $1 AND released_at_ms IS NULL",
            &[&id, &at_ms, &by],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}

pub(super) async fn put_retention(c: &impl GenericClient, policy: &RetentionRow) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO retention_policies ({RETENTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ),
        &[
            &policy.id,
            &policy.name,
            &encode_selector(&policy.selector)?,
            &policy.keep_for_ms,
            &policy.created_at_ms,
            &policy.created_by,
        ],
    )
    .await
    .map_err(|e| match e.as_db_error().map(|d| d.code().code()) {
        Some("23505") => StoreError::Duplicate(format!("retention policy {}", policy.id)),
        _ => pg(e),
    })?;
    Ok(())
}

pub(super) async fn list_retention(c: &impl GenericClient) -> Result<Vec<RetentionRow>> {
    c.query(
        &format!("SELECT {RETENTION_COLUMNS} FROM retention_policies ORDER BY created_at_ms, id"),
        &[],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(decode_retention)
    .collect()
}

pub(super) async fn delete_retention(c: &impl GenericClient, id: &str) -> Result<bool> {
    let n = c
        .execute("DELETE FROM retention_policies WHERE id = $1", &[&id])
        .await
        .map_err(pg)?;
    Ok(n == 1)
}
