//! Erasure, legal holds and retention policies: what the vault decides
//! about removing payloads, kept by the store ([`ComplianceStore`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{AppendBatch, EvidenceRow, Result};

/// Which records a legal hold or a retention policy covers: those carrying
/// every label of `labels` (key and value exact) and, if given, of exactly
/// `content_type` (compared by media-type essence, ASCII case-insensitive,
/// parameters ignored: `Application/JSON; charset=utf-8` is
/// `application/json`). An empty selector covers every record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Labels a record must all carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Exact content type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl Selector {
    /// Whether `row` is covered.
    pub fn matches(&self, row: &EvidenceRow) -> bool {
        self.content_type
            .as_ref()
            .is_none_or(|t| essence(t).eq_ignore_ascii_case(essence(&row.content_type)))
            && self
                .labels
                .iter()
                .all(|(k, v)| row.labels.get(k) == Some(v))
    }
}

/// A media type without its parameters, trimmed.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

/// One erased record: written with its tombstone, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureRow {
    /// The erased record's leaf.
    pub leaf_index: u64,
    /// The leaf of the tombstone record that names it.
    pub tombstone_leaf: u64,
    /// SHA-256 of the reason text (what the tombstone carries).
    pub reason_sha256: [u8; 32],
    /// The reason text, for administrators; never in either log.
    pub reason: String,
    /// `request` or `retention:<policy id>`.
    pub basis: String,
    /// When, milliseconds since the Unix epoch.
    pub erased_at_ms: i64,
    /// Who asked (a principal, or `evault` for retention).
    pub erased_by: String,
}

/// A legal hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRow {
    /// Unique id (a UUIDv7).
    pub id: String,
    /// The records it holds.
    pub selector: Selector,
    /// SHA-256 of the reason text.
    pub reason_sha256: [u8; 32],
    /// Why the hold was placed.
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Who placed it.
    pub created_by: String,
    /// When and by whom it was released; `None` while it is active.
    pub released: Option<(i64, String)>,
}

/// A retention policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRow {
    /// Unique id (a UUIDv7).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The records it expires.
    pub selector: Selector,
    /// How long after ingestion a payload is kept, in milliseconds (> 0).
    pub keep_for_ms: i64,
    /// When, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: String,
}

/// What [`ComplianceStore::reclaim`] achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Whether the write-ahead log was checkpointed in full and truncated
    /// (false: readers kept it busy until the deadline; the next erase, or
    /// the vault's next start, retries: automatic checkpoints are PASSIVE
    /// and do not truncate).
    pub wal_truncated: bool,
    /// Free pages still in the file after the incremental vacuum (0 on a
    /// database created with `auto_vacuum=INCREMENTAL`; an older one keeps
    /// its free pages, zeroed, until `evault compact`).
    pub free_pages: u64,
}

/// The store's erasure, hold and retention tables.
pub trait ComplianceStore: Send + Sync {
    /// Appends `batch` (the tombstone records, and audit events) exactly
    /// like [`Store::append`](crate::Store::append), and in the same
    /// transaction erases the payload of each record `erasures` names
    /// (payload set to NULL, marked with its tombstone, its analytics rows
    /// deleted) and stores the erasure rows. Each erased record must exist,
    /// not be erased already, and each tombstone leaf must be in the batch.
    fn erase(&self, batch: &AppendBatch<'_>, erasures: &[ErasureRow]) -> Result<()>;
    /// The erasure of the record at `leaf_index`, if it was erased.
    fn erasure(&self, leaf_index: u64) -> Result<Option<ErasureRow>>;
    /// Erasures with leaf index above `after`, ascending, at most `limit`.
    fn list_erasures(&self, after: Option<u64>, limit: u32) -> Result<Vec<ErasureRow>>;
    /// Every record with this payload digest, in leaf order.
    fn records_by_sha256(&self, sha256: &[u8; 32]) -> Result<Vec<EvidenceRow>>;
    /// Like [`Store::list`](crate::Store::list), but only records whose
    /// payload is not erased, and without inline payload bytes (an inline
    /// payload reads as empty): the retention sweep's candidates.
    fn unerased(&self, query: &crate::ListQuery) -> Result<crate::Page<EvidenceRow>>;
    /// After an erase: gives free pages back to the file system (where the
    /// database allows) and checkpoints and truncates the write-ahead log,
    /// retrying while readers hold it until `deadline` passes. Writers are
    /// not held up while it waits: each attempt takes the write lock only
    /// for one checkpoint that does not wait.
    fn reclaim(&self, deadline: std::time::Duration) -> Result<Reclaimed>;

    /// Stores a new hold (its id must be new).
    fn put_hold(&self, hold: &HoldRow) -> Result<()>;
    /// Every hold, active and released, oldest first.
    fn list_holds(&self) -> Result<Vec<HoldRow>>;
    /// Releases an active hold; `Ok(false)` if there is no such active hold.
    fn release_hold(&self, id: &str, at_ms: i64, by: &str) -> Result<bool>;

    /// Stores a new retention policy (its id must be new).
    fn put_retention(&self, policy: &RetentionRow) -> Result<()>;
    /// Every retention policy, oldest first.
    fn list_retention(&self) -> Result<Vec<RetentionRow>>;
    /// Deletes a policy; `Ok(false)` if there is none with this id.
    fn delete_retention(&self, id: &str) -> Result<bool>;
}
