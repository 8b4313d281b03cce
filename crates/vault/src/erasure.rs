//! Erasure, legal holds and retention (docs/FORMATS.md "Tombstones",
//! docs/OPERATIONS.md "Erasure").
//!
//! Erasing a record removes its payload bytes, never its leaf: the leaf
//! commits only to the payload's digest and size, so every proof, checkpoint
//! and bundle stays valid. A tombstone record (an ordinary evidence record
//! of [`TOMBSTONE_TYPE`], submitted by [`ERASER`]) is appended in the same
//! transaction as the payload is removed, so a crash leaves either both or
//! neither. Records sharing the payload's digest are erased together, one
//! tombstone each (the blob directory is content-addressed, so the bytes
//! cannot go while a sharer keeps them); an active legal hold on any of
//! them refuses the whole erasure. The reason's text never enters either
//! log: the tombstone carries its SHA-256, the store keeps the text for
//! administrators.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use evault_store::{
    ComplianceStore, ErasureRow, EvidenceRow, HoldRow, ListQuery, Payload, RetentionRow, Selector,
    Store,
};
use evault_verify::evidence::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::checkpointer::now_ms;
use crate::error::{Result, VaultError};
use crate::records::{NewRecord, format_ms};
use crate::sequencer::Pending;
use crate::{Inner, Vault};

/// Content type of a tombstone record.
pub const TOMBSTONE_TYPE: &str = "application/vnd.evault.tombstone+json";
/// The `v` member of a tombstone's payload.
pub const TOMBSTONE_VERSION: &str = "evault/tombstone/v1";
/// Principal of tombstone records and of retention's audit events.
pub const ERASER: &str = "evault";
/// Longest reason text of an erasure or a hold, in bytes.
pub const MAX_REASON: usize = 4096;
/// Longest retention policy name, in bytes.
pub const MAX_NAME: usize = 256;
/// Label naming the erased record's id on its tombstone.
pub const LABEL_ERASES: &str = "evault.erases";
/// Label naming the erased record's leaf index on its tombstone.
pub const LABEL_ERASES_LEAF: &str = "evault.erases.leaf";
/// Label carrying the reason's SHA-256 on a tombstone.
pub const LABEL_REASON: &str = "evault.reason.sha256";
/// How long an erase waits for readers to let go of the write-ahead log
/// before leaving its truncation to the next erase or checkpoint.
const RECLAIM_WAIT: Duration = Duration::from_secs(10);
/// Most active legal holds a vault keeps (each erasure checks them all).
pub const MAX_ACTIVE_HOLDS: usize = 1000;
/// Most retention policies a vault keeps.
pub const MAX_POLICIES: usize = 1000;
/// Most record ids a retention task's summary names (the result file
/// names them all).
pub const SUMMARY_IDS: usize = 100;

/// A tombstone record's payload (canonical JSON, RFC 8785).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// Always [`TOMBSTONE_VERSION`].
    pub v: String,
    /// The record whose payload was erased.
    pub erases: TombstoneTarget,
    /// Lower-case hex SHA-256 of the reason text.
    pub reason_sha256: String,
    /// `request`, or `retention:<policy id>`.
    pub basis: String,
}

/// The erased record, as its tombstone names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TombstoneTarget {
    /// The erased record's id.
    pub id: String,
    /// Its leaf index.
    pub leaf_index: u64,
    /// Lower-case hex SHA-256 of the erased payload (as the leaf says).
    pub sha256: String,
    /// Size of the erased payload in bytes.
    pub size: u64,
}

impl Tombstone {
    /// Parses a tombstone payload; `None` if it is not one.
    pub fn parse(bytes: &[u8]) -> Option<Tombstone> {
        serde_json::from_slice::<Tombstone>(bytes)
            .ok()
            .filter(|t| t.v == TOMBSTONE_VERSION)
    }
}

/// One record erased by [`Vault::erase`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// The erased record's id.
    pub id: String,
    /// Its leaf index.
    pub leaf_index: u64,
    /// The tombstone record's id.
    pub tombstone_id: String,
    /// The tombstone record's leaf index.
    pub tombstone_leaf: u64,
}

/// The erasure of a record, as shown with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErasureInfo {
    /// The tombstone record's id.
    pub tombstone_id: String,
    /// Its leaf index.
    pub tombstone_leaf: u64,
    /// RFC 3339, UTC.
    pub erased_at: String,
    /// Who erased it (`evault` for retention).
    pub erased_by: String,
    /// `request`, or `retention:<policy id>`.
    pub basis: String,
}

/// A legal hold, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// Its id.
    pub id: String,
    /// The records it holds.
    pub selector: Selector,
    /// Why it was placed.
    pub reason: String,
    /// Lower-case hex SHA-256 of `reason`.
    pub reason_sha256: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Who placed it.
    pub created_by: String,
    /// RFC 3339, UTC; absent while it is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    /// Who released it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
}

/// A retention policy, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The records it expires.
    pub selector: Selector,
    /// Seconds a payload is kept after ingestion.
    pub keep_for_seconds: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
}

fn hold_view(h: HoldRow) -> Hold {
    let (released_at, released_by) = match h.released {
        Some((t, by)) => (Some(format_ms(t)), Some(by)),
        None => (None, None),
    };
    Hold {
        id: h.id,
        selector: h.selector,
        reason: h.reason,
        reason_sha256: hex(&h.reason_sha256),
        created_at: format_ms(h.created_at_ms),
        created_by: h.created_by,
        released_at,
        released_by,
    }
}

fn policy_view(p: RetentionRow) -> RetentionPolicy {
    RetentionPolicy {
        id: p.id,
        name: p.name,
        selector: p.selector,
        keep_for_seconds: (p.keep_for_ms / 1000).max(0) as u64,
        created_at: format_ms(p.created_at_ms),
        created_by: p.created_by,
    }
}

/// What the sequencer commits for one erasure: a tombstone per target, in
/// the same order, and the erasure rows (tombstone leaves assigned there).
pub(crate) struct EraseJob {
    pub targets: Vec<EvidenceRow>,
    pub tombstones: Vec<EvidenceRow>,
    pub erasures: Vec<ErasureRow>,
}

/// Whether `row` is a tombstone (these are not erasable).
pub(crate) fn is_tombstone(row: &EvidenceRow) -> bool {
    row.content_type == TOMBSTONE_TYPE && row.ingested_by == ERASER
}

fn compliance(store: &dyn Store) -> Result<&dyn ComplianceStore> {
    store.compliance().ok_or_else(|| {
        VaultError::Invalid("this vault's store keeps no erasure, hold or retention tables".into())
    })
}

/// The active hold covering any of `rows`, if one does.
fn holding(store: &dyn Store, rows: &[EvidenceRow]) -> Result<Option<String>> {
    let holds = compliance(store)?.list_holds()?;
    Ok(holds
        .into_iter()
        .filter(|h| h.released.is_none())
        .find(|h| rows.iter().any(|r| h.selector.matches(r)))
        .map(|h| h.id))
}

/// Checks, inside the sequencer (the one writer, so nothing changes in
/// between), that `job` may still be committed: no target erased already
/// (in the store or earlier in the same batch), none held.
pub(crate) fn check(
    store: &dyn Store,
    job: &EraseJob,
    in_batch: &HashSet<u64>,
    batch_digests: &HashSet<[u8; 32]>,
) -> Result<()> {
    if let Some(first) = job.targets.first() {
        // The sharers were planned outside the sequencer: a record with the
        // same bytes logged since (or earlier in this batch) is not in the
        // job, and the bytes must not go from under it.
        let planned: HashSet<u64> = job.targets.iter().map(|t| t.leaf_index).collect();
        let newcomer = batch_digests.contains(&first.sha256)
            || compliance(store)?
                .records_by_sha256(&first.sha256)?
                .iter()
                .any(|r| is_live(r) && !planned.contains(&r.leaf_index));
        if newcomer {
            return Err(VaultError::Conflict(format!(
                "a record with the same bytes as evidence {} was just logged; retry the erasure",
                first.id
            )));
        }
    }
    for t in &job.targets {
        let now = store
            .record_by_index(t.leaf_index)?
            .ok_or_else(|| VaultError::NotFound(format!("evidence {}", t.id)))?;
        if matches!(now.payload, Payload::Erased { .. }) || in_batch.contains(&t.leaf_index) {
            return Err(VaultError::Conflict(format!(
                "the payload of evidence {} is erased already",
                t.id
            )));
        }
    }
    if let Some(hold) = holding(store, &job.targets)? {
        return Err(held(&job.targets[0].id, &hold));
    }
    Ok(())
}

/// A record whose payload is still there (not erased, not a tombstone).
fn is_live(r: &EvidenceRow) -> bool {
    !matches!(r.payload, Payload::Erased { .. }) && !is_tombstone(r)
}

/// Whether the vault itself logged `row` (tombstones, key events): such
/// records are part of the vault's own history and are never erased.
fn is_vaults_own(row: &EvidenceRow) -> bool {
    row.ingested_by == ERASER
}

pub(crate) fn held(id: &str, hold: &str) -> VaultError {
    VaultError::Conflict(format!(
        "evidence {id} (or a record sharing its payload) is under legal hold {hold}; \
         release the hold first"
    ))
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(VaultError::Invalid("a reason is required".into()));
    }
    if reason.len() > MAX_REASON {
        return Err(VaultError::Invalid(format!(
            "the reason is longer than {MAX_REASON} bytes"
        )));
    }
    Ok(())
}

fn check_selector(selector: &Selector) -> Result<()> {
    crate::ingest::validate_labels(&selector.labels)?;
    if let Some(t) = &selector.content_type {
        crate::ingest::validate_content_type(t)?;
    }
    Ok(())
}

/// The tombstone record of `target` and its erasure row (tombstone leaf
/// still 0: the sequencer assigns it).
fn tombstone(
    target: &EvidenceRow,
    reason: &str,
    basis: &str,
    by: &str,
) -> Result<(EvidenceRow, ErasureRow)> {
    let reason_sha256: [u8; 32] = Sha256::digest(reason.as_bytes()).into();
    let body = Tombstone {
        v: TOMBSTONE_VERSION.into(),
        erases: TombstoneTarget {
            id: target.id.clone(),
            leaf_index: target.leaf_index,
            sha256: hex(&target.sha256),
            size: target.size,
        },
        reason_sha256: hex(&reason_sha256),
        basis: basis.into(),
    };
    let bytes = serde_jcs::to_vec(&body)
        .map_err(|e| VaultError::Inconsistent(format!("tombstone JSON: {e}")))?;
    let labels = BTreeMap::from([
        (LABEL_ERASES.to_owned(), target.id.clone()),
        (LABEL_ERASES_LEAF.to_owned(), target.leaf_index.to_string()),
        (LABEL_REASON.to_owned(), hex(&reason_sha256)),
    ]);
    let row = NewRecord {
        content_type: TOMBSTONE_TYPE.into(),
        labels,
        principal: ERASER.into(),
        idempotency_key: None,
        sha256: Sha256::digest(&bytes).into(),
        size: bytes.len() as u64,
        payload: Payload::Inline(bytes),
    }
    .into_row()?;
    let erasure = ErasureRow {
        leaf_index: target.leaf_index,
        tombstone_leaf: 0,
        reason_sha256,
        reason: reason.into(),
        basis: basis.into(),
        erased_at_ms: row.ingested_at_ms,
        erased_by: by.into(),
    };
    Ok((row, erasure))
}

/// Plans the erasure of `target` and every live record sharing its payload.
fn plan(
    inner: &Inner,
    target: EvidenceRow,
    reason: &str,
    basis: &str,
    by: &str,
) -> Result<EraseJob> {
    let c = compliance(&*inner.store)?;
    if is_tombstone(&target) {
        return Err(VaultError::Conflict(format!(
            "evidence {} is a tombstone; tombstones are not erasable",
            target.id
        )));
    }
    if let Payload::Erased { tombstone_leaf } = target.payload {
        return Err(VaultError::Conflict(format!(
            "the payload of evidence {} is erased already (tombstone at leaf {tombstone_leaf})",
            target.id
        )));
    }
    if is_vaults_own(&target) {
        return Err(VaultError::Conflict(format!(
            "evidence {} was logged by the vault itself ({}); it is not erasable",
            target.id, target.content_type
        )));
    }
    let mut targets: Vec<EvidenceRow> = c
        .records_by_sha256(&target.sha256)?
        .into_iter()
        .filter(is_live)
        .collect();
    if !targets.iter().any(|r| r.leaf_index == target.leaf_index) {
        targets.push(target);
    }
    if let Some(own) = targets.iter().find(|r| is_vaults_own(r)) {
        return Err(VaultError::Conflict(format!(
            "evidence {} shares its payload with record {}, which the vault logged itself; \
             the bytes cannot be erased",
            targets[0].id, own.id
        )));
    }
    if let Some(hold) = holding(&*inner.store, &targets)? {
        return Err(held(&targets[0].id, &hold));
    }
    let mut job = EraseJob {
        targets: Vec::new(),
        tombstones: Vec::new(),
        erasures: Vec::new(),
    };
    for t in targets {
        let (row, e) = tombstone(&t, reason, basis, by)?;
        job.tombstones.push(row);
        job.erasures.push(e);
        job.targets.push(t);
    }
    Ok(job)
}

/// What a retention sweep does with one expired record.
enum SweepStep {
    /// Erase it (and its sharers).
    Erase(EraseJob),
    /// An active hold covers it or a sharer.
    Held,
    /// A sharer of its bytes is not expired under any policy (or was
    /// logged by the vault itself): the bytes stay.
    Shared,
}

/// Plans the retention erasure of `row`: only if every live record holding
/// the same bytes is expired under some policy and none is held.
fn sweep_plan(
    inner: &Inner,
    row: EvidenceRow,
    policies: &[RetentionRow],
    reason: &str,
    basis: &str,
) -> Result<SweepStep> {
    let c = compliance(&*inner.store)?;
    let mut sharers: Vec<EvidenceRow> = c
        .records_by_sha256(&row.sha256)?
        .into_iter()
        .filter(is_live)
        .collect();
    if !sharers.iter().any(|r| r.leaf_index == row.leaf_index) {
        sharers.push(row.clone());
    }
    if holding(&*inner.store, &sharers)?.is_some() {
        return Ok(SweepStep::Held);
    }
    let now = now_ms();
    let expired = |r: &EvidenceRow| {
        !is_vaults_own(r)
            && policies.iter().any(|p| {
                p.selector.matches(r) && r.ingested_at_ms <= now.saturating_sub(p.keep_for_ms)
            })
    };
    if !sharers.iter().all(expired) {
        return Ok(SweepStep::Shared);
    }
    plan(inner, row, reason, basis, ERASER).map(SweepStep::Erase)
}

/// After an erasure committed: unlinks the blob file unless a live record
/// still holds those bytes externally, then gives the freed pages back and
/// truncates the write-ahead log.
fn finish(inner: &Inner, sha256: &[u8; 32]) {
    let Some(c) = inner.store.compliance() else {
        return;
    };
    // The erasure is durable already: a failure here leaves an orphan blob
    // (removed at the next start, reported by fsck) or an untruncated log
    // (truncated at the next erasure or start), not a failed erasure.
    // A put of the same bytes in flight removes it when it ends, if it
    // turns out to need it no more.
    if let Err(e) = drop_unreferenced_blob(inner, sha256) {
        tracing::warn!(
            "an erased payload's blob file was not removed ({e}); it is removed at the next \
             start"
        );
    }
    let r = match c.reclaim(RECLAIM_WAIT) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "after an erasure, giving pages back failed ({e}); retried at the next erasure \
                 or start"
            );
            return;
        }
    };
    if !r.wal_truncated {
        tracing::warn!(
            "after an erasure, readers kept the write-ahead log busy; it is truncated at the \
             next erasure or start"
        );
    }
    if r.free_pages > 0 {
        tracing::warn!(
            free_pages = r.free_pages,
            "the database keeps free pages (zeroed); run `evault compact` on the stopped vault \
             to give them back"
        );
    }
}

/// At startup: a crash between an erasure's commit and its unlink leaves
/// the blob file behind; removes every such orphan. Returns how many.
pub(crate) fn remove_orphan_blobs(store: &dyn Store, blobs: &crate::blobs::BlobDir) -> Result<u64> {
    let Some(c) = store.compliance() else {
        return Ok(0);
    };
    let mut removed = 0;
    let mut after = None;
    let mut any = false;
    loop {
        let page = c.list_erasures(after, 1000)?;
        any |= !page.is_empty();
        let Some(last) = page.last() else { break };
        after = Some(last.leaf_index);
        for e in &page {
            let Some(row) = store.record_by_index(e.leaf_index)? else {
                continue;
            };
            let path = blobs.path_for(&row.sha256);
            if !path.exists() {
                continue;
            }
            let live = c
                .records_by_sha256(&row.sha256)?
                .iter()
                .any(|r| matches!(r.payload, Payload::External));
            if !live {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed the blob files of erased payloads a crash left behind"
        );
    }
    if any {
        // A crash, or readers, may have left erased bytes in the
        // write-ahead log: automatic checkpoints never truncate it.
        let r = c.reclaim(RECLAIM_WAIT)?;
        if !r.wal_truncated {
            tracing::warn!("at start, the write-ahead log could not be truncated");
        }
    }
    Ok(removed)
}

/// A new UUIDv7, for holds and policies.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Vault {
    /// Erases the payload of evidence `id` (and of every record sharing
    /// its bytes), on `principal`'s request with `reason`. The leaves stay;
    /// a tombstone record per erased record is appended in the same
    /// transaction. [`VaultError::Conflict`] if a legal hold covers any of
    /// them, if it is erased already, or if it is a tombstone;
    /// [`VaultError::Invalid`] for a missing or over-long reason.
    pub async fn erase(&self, principal: &str, id: &str, reason: &str) -> Result<Vec<Erased>> {
        check_reason(reason)?;
        let (id, reason, by) = (id.to_string(), reason.to_string(), principal.to_string());
        let job = self
            .blocking(move |i| {
                let target = i.record(&id)?;
                plan(i, target, &reason, "request", &by)
            })
            .await?;
        self.commit_erase(job).await
    }

    /// Sends `job` through the sequencer, then removes the blob and
    /// reclaims space.
    pub(crate) async fn commit_erase(&self, job: EraseJob) -> Result<Vec<Erased>> {
        let sha = job.targets.first().map(|t| t.sha256);
        let (ack, done) = oneshot::channel();
        self.enqueue(Pending::Erase { job, ack }).await?;
        let erased = done
            .await
            .map_err(|_| VaultError::Unavailable("the sequencer dropped the request".into()))??;
        if let Some(sha) = sha
            && let Err(e) = self
                .blocking(move |i| {
                    finish(i, &sha);
                    Ok(())
                })
                .await
        {
            tracing::warn!("after an erasure, clean-up did not run: {e}");
        }
        Ok(erased)
    }

    /// The erasure of record `id`, if its payload was erased (and `reader`
    /// may see the record).
    pub async fn erasure(&self, reader: &crate::Reader, id: &str) -> Result<Option<ErasureInfo>> {
        let (id, reader) = (id.to_string(), reader.clone());
        self.blocking(move |i| {
            let row = i.readable_row(&reader, &id)?;
            erasure_info(&*i.store, &row)
        })
        .await
    }

    /// Places a legal hold on the records `selector` covers.
    pub async fn create_hold(
        &self,
        principal: &str,
        selector: Selector,
        reason: &str,
    ) -> Result<Hold> {
        check_reason(reason)?;
        check_selector(&selector)?;
        let row = HoldRow {
            id: new_id(),
            selector,
            reason_sha256: Sha256::digest(reason.as_bytes()).into(),
            reason: reason.into(),
            created_at_ms: now_ms(),
            created_by: principal.into(),
            released: None,
        };
        self.blocking(move |i| {
            let c = compliance(&*i.store)?;
            let active = c
                .list_holds()?
                .iter()
                .filter(|h| h.released.is_none())
                .count();
            if active >= MAX_ACTIVE_HOLDS {
                return Err(VaultError::Conflict(format!(
                    "{active} legal holds are active, the most a vault keeps is \
                     {MAX_ACTIVE_HOLDS}; release one first"
                )));
            }
            c.put_hold(&row)?;
            Ok(hold_view(row))
        })
        .await
    }

    /// Every legal hold, active and released, oldest first.
    pub async fn holds(&self) -> Result<Vec<Hold>> {
        self.blocking(|i| {
            Ok(compliance(&*i.store)?
                .list_holds()?
                .into_iter()
                .map(hold_view)
                .collect())
        })
        .await
    }

    /// Releases an active hold: [`VaultError::NotFound`] if there is no
    /// hold `id`, [`VaultError::Conflict`] if it is released already.
    pub async fn release_hold(&self, principal: &str, id: &str) -> Result<Hold> {
        let (id, by) = (id.to_string(), principal.to_string());
        self.blocking(move |i| {
            let c = compliance(&*i.store)?;
            if !c.release_hold(&id, now_ms(), &by)? {
                return Err(match c.list_holds()?.iter().any(|h| h.id == id) {
                    true => VaultError::Conflict(format!("hold {id} is released already")),
                    false => VaultError::NotFound(format!("hold {id}")),
                });
            }
            c.list_holds()?
                .into_iter()
                .find(|h| h.id == id)
                .map(hold_view)
                .ok_or_else(|| VaultError::NotFound(format!("hold {id}")))
        })
        .await
    }

    /// Creates a retention policy: payloads of the records `selector`
    /// covers are erased `keep_for` after ingestion by the scheduled
    /// `retention_sweep`.
    pub async fn create_retention(
        &self,
        principal: &str,
        name: &str,
        selector: Selector,
        keep_for: Duration,
    ) -> Result<RetentionPolicy> {
        if name.trim().is_empty() || name.len() > MAX_NAME {
            return Err(VaultError::Invalid(format!(
                "a policy needs a name of 1 to {MAX_NAME} bytes"
            )));
        }
        check_selector(&selector)?;
        let keep_for_ms = match i64::try_from(keep_for.as_millis()) {
            Ok(ms) if ms >= 1000 => ms,
            Ok(_) => {
                return Err(VaultError::Invalid(
                    "keep_for must be at least one second".into(),
                ));
            }
            Err(_) => {
                return Err(VaultError::Invalid(format!(
                    "keep_for must be at most {} seconds",
                    i64::MAX / 1000
                )));
            }
        };
        let row = RetentionRow {
            id: new_id(),
            name: name.into(),
            selector,
            keep_for_ms,
            created_at_ms: now_ms(),
            created_by: principal.into(),
        };
        self.blocking(move |i| {
            let c = compliance(&*i.store)?;
            let n = c.list_retention()?.len();
            if n >= MAX_POLICIES {
                return Err(VaultError::Conflict(format!(
                    "{n} retention policies exist, the most a vault keeps is {MAX_POLICIES}; \
                     delete one first"
                )));
            }
            c.put_retention(&row)?;
            Ok(policy_view(row))
        })
        .await
    }

    /// Every retention policy, oldest first.
    pub async fn retention_policies(&self) -> Result<Vec<RetentionPolicy>> {
        self.blocking(|i| {
            Ok(compliance(&*i.store)?
                .list_retention()?
                .into_iter()
                .map(policy_view)
                .collect())
        })
        .await
    }

    /// Deletes a retention policy ([`VaultError::NotFound`] if none).
    pub async fn delete_retention(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.blocking(move |i| {
            if compliance(&*i.store)?.delete_retention(&id)? {
                Ok(())
            } else {
                Err(VaultError::NotFound(format!("retention policy {id}")))
            }
        })
        .await
    }

    /// One retention sweep: erases the payloads every policy has expired,
    /// skipping held records, each erasure audited as `evault`. Blocking
    /// callers use [`crate::TaskContext::runtime`]. Returns what it did.
    pub async fn sweep_retention(
        &self,
        progress: &(dyn Fn(u64) + Send + Sync),
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<SweepReport> {
        let policies = self
            .blocking(|i| Ok(compliance(&*i.store)?.list_retention()?))
            .await?;
        let mut report = SweepReport::default();
        let policies_all = std::sync::Arc::new(policies.clone());
        for policy in policies {
            if cancelled() {
                break;
            }
            let basis = format!("retention:{}", policy.id);
            let until = now_ms().saturating_sub(policy.keep_for_ms);
            let mut query = ListQuery {
                labels: policy.selector.labels.clone().into_iter().collect(),
                content_type: policy.selector.content_type.clone(),
                until_ms: Some(until),
                limit: 500,
                ..ListQuery::default()
            };
            loop {
                let q = query.clone();
                let page = self
                    .blocking(move |i| Ok(compliance(&*i.store)?.unerased(&q)?))
                    .await?;
                for row in &page.items {
                    if cancelled() {
                        return Ok(report);
                    }
                    if !is_live(row) || is_vaults_own(row) {
                        continue;
                    }
                    report.examined += 1;
                    let (r, b, all) = (row.clone(), basis.clone(), policies_all.clone());
                    let reason = format!("retention policy {} ({})", policy.id, policy.name);
                    let step = self
                        .blocking(move |i| sweep_plan(i, r, &all, &reason, &b))
                        .await;
                    let outcome = match step {
                        Ok(SweepStep::Erase(job)) => self.commit_erase(job).await,
                        Ok(SweepStep::Held) => {
                            report.held.push(row.id.clone());
                            progress(report.examined);
                            continue;
                        }
                        Ok(SweepStep::Shared) => {
                            report.skipped_shared.push(row.id.clone());
                            progress(report.examined);
                            continue;
                        }
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(erased) => {
                            for e in &erased {
                                self.audit_retention(e, &basis).await;
                            }
                            report.erased.extend(erased.into_iter().map(|e| e.id));
                        }
                        // Refused at commit: held meanwhile, erased meanwhile
                        // as a sharer, or a new sharer logged. Which one is
                        // read again, not parsed from the message.
                        Err(VaultError::Conflict(_)) => {
                            let r = row.clone();
                            let held_now = self
                                .blocking(move |i| Ok(holding(&*i.store, &[r])?.is_some()))
                                .await?;
                            if held_now {
                                report.held.push(row.id.clone());
                            }
                        }
                        Err(e) => return Err(e),
                    }
                    progress(report.examined);
                }
                match page.next {
                    Some(n) => query.after_index = Some(n),
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// The audit event of an erasure retention made (there is no API call
    /// to audit it).
    async fn audit_retention(&self, e: &Erased, basis: &str) {
        let event = evault_verify::AuditEvent {
            id: String::new(),
            leaf_index: 0,
            time: format_ms(now_ms()),
            request_id: e.tombstone_id.clone(),
            principal: ERASER.into(),
            key_id: None,
            auth_method: "none".into(),
            protocol: "vault".into(),
            operation: "evidence.erase".into(),
            resource: format!("/api/v1/evidence/{}", e.id),
            outcome: evault_verify::audit::Outcome::Success,
            status: 0,
            client: "vault".into(),
            params_digest: hex(&Sha256::digest(basis.as_bytes())),
            reason: Some(basis.into()),
        };
        if let Err(err) = self.record_audit(event).await {
            tracing::error!("the audit event of a retention erasure was not written: {err}");
        }
    }
}

/// What one retention sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Expired, unerased records looked at.
    pub examined: u64,
    /// Ids of the records whose payload was erased (sharers included).
    pub erased: Vec<String>,
    /// Ids of expired records left alone because a legal hold covers them
    /// (or a record sharing their bytes).
    pub held: Vec<String>,
    /// Ids of expired records left alone because a record sharing their
    /// bytes is not expired under any policy.
    pub skipped_shared: Vec<String>,
}

/// The erasure of `row`, if its payload was erased.
pub(crate) fn erasure_info(store: &dyn Store, row: &EvidenceRow) -> Result<Option<ErasureInfo>> {
    let Payload::Erased { tombstone_leaf } = row.payload else {
        return Ok(None);
    };
    let c = compliance(store)?;
    let e = c.erasure(row.leaf_index)?.ok_or_else(|| {
        VaultError::Inconsistent(format!(
            "evidence {} is marked erased but has no erasure row",
            row.id
        ))
    })?;
    Ok(Some(ErasureInfo {
        tombstone_id: tombstone_id(store, tombstone_leaf)?,
        tombstone_leaf,
        erased_at: format_ms(e.erased_at_ms),
        erased_by: e.erased_by,
        basis: e.basis,
    }))
}

/// The id of the tombstone record at `leaf`.
pub(crate) fn tombstone_id(store: &dyn Store, leaf: u64) -> Result<String> {
    store
        .record_by_index(leaf)?
        .map(|r| r.id)
        .ok_or_else(|| VaultError::Inconsistent(format!("tombstone at leaf {leaf} is missing")))
}

/// `evault compact`: rewrites the stopped vault's database in `data_dir`
/// (`VACUUM`, switching it to incremental auto-vacuum), so no free page
/// keeps a stale copy of erased bytes. Takes the data directory's lock: a
/// running vault is [`VaultError::Unavailable`]. Returns the database
/// file's size before and after.
pub fn compact_data_dir(data_dir: &std::path::Path) -> Result<(u64, u64)> {
    let db = data_dir.join("evault.db");
    if !db.is_file() {
        return Err(VaultError::NotFound(format!("database {}", db.display())));
    }
    let _lock = crate::datadir::lock(data_dir)?;
    Ok(evault_store::SqliteStore::compact(&db)?)
}

/// Payload digests of external puts in flight (blob persisted, not yet
/// committed): an erasure does not unlink a blob one of them may need, and
/// the last of them to finish removes it if it turned out to belong only to
/// erased records (a re-upload of erased bytes must not bring them back).
#[derive(Debug, Default)]
pub(crate) struct InFlight(std::sync::Mutex<std::collections::HashMap<[u8; 32], usize>>);

/// One put in flight; leaves on drop.
pub(crate) struct InFlightGuard<'a> {
    set: &'a InFlight,
    sha256: [u8; 32],
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a put of `sha256` in flight until the guard drops.
    pub(crate) fn enter(&self, sha256: [u8; 32]) -> InFlightGuard<'_> {
        *self.lock().entry(sha256).or_default() += 1;
        InFlightGuard { set: self, sha256 }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.set.lock();
        if let Some(n) = map.get_mut(&self.sha256) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.sha256);
            }
        }
    }
}

/// Removes the blob of `sha256` unless a live record holds it externally
/// or a put of it is in flight. Returns whether a file was removed.
pub(crate) fn drop_unreferenced_blob(inner: &Inner, sha256: &[u8; 32]) -> Result<bool> {
    let Some(c) = inner.store.compliance() else {
        return Ok(false);
    };
    // Held from the busy check to the unlink: a put of the same bytes
    // enters either before (and the file stays) or after the unlink (and
    // its persist writes the file anew, finding none).
    let flights = inner.in_flight.lock();
    if flights.get(sha256).is_some_and(|n| *n > 0) {
        return Ok(false);
    }
    let rows = c.records_by_sha256(sha256)?;
    let erased = rows
        .iter()
        .any(|r| matches!(r.payload, Payload::Erased { .. }));
    let live = rows.iter().any(|r| matches!(r.payload, Payload::External));
    if !erased || live {
        return Ok(false);
    }
    let removed = match std::fs::remove_file(inner.blobs.path_for(sha256)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    };
    drop(flights);
    removed
}

/// After a duplicate or replayed external put of `sha256`, answered with
/// the record at `leaf`: removes the just-persisted blob if that record's
/// payload was erased (one row read; the sharer lookup only then).
pub(crate) fn drop_if_erased(inner: &Inner, leaf: u64, sha256: &[u8; 32]) -> Result<()> {
    let Some(row) = inner.store.record_by_index(leaf)? else {
        return Ok(());
    };
    if matches!(row.payload, Payload::Erased { .. }) || row.sha256 != *sha256 {
        drop_unreferenced_blob(inner, sha256)?;
    }
    Ok(())
}
