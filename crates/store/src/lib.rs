//! Storage for evault behind narrow traits: [`LogStore`] (the append-only
//! log: sizes, entries, tiles, checkpoints), [`EvidenceIndex`] and
//! [`AuditIndex`] (lookups rebuilt from the log), and [`Store`], all of
//! them plus the optional tables. `use evault_store::prelude::*` brings
//! them into scope.
//!
//! The store keeps what the vault decides for two Merkle logs ([`LogId`]):
//! evidence rows and audit events, each log's tree as C2SP tlog-tiles
//! (256-wide, partial tiles replaced as they grow) and its signed
//! checkpoints, and a little metadata. It does no Merkle math beyond storing
//! and slicing the tiles it is given, and it never acknowledges anything: a
//! call that returns `Ok` has been durably committed.
//!
//! Drivers: [`SqliteStore`] (embedded default, WAL, `synchronous=FULL`)
//! and, with the `postgres` feature, `postgres::PgStore`.

use std::collections::BTreeMap;
use std::fmt;

use evault_merkle::tiles::TileId;

mod compliance;
mod coordination;
mod cosignatures;
mod mirrors;
#[cfg(feature = "postgres")]
pub mod postgres;
mod sqlite;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;

pub use compliance::{ComplianceStore, ErasureRow, HoldRow, Reclaimed, RetentionRow, Selector};
pub use coordination::{Coordination, Lease, LeaseState};
pub use cosignatures::{Cosignature, CosignatureStore};
pub use mirrors::{
    ImportConflict, ImportCounts, MirrorCheckpoint, MirrorImport, MirrorLog, MirrorRecord,
    MirrorStore,
};
pub use sqlite::{
    Fingerprint, LogFingerprint, MigrationProgress, MigrationStep, OnMigration, SqliteStore,
};
pub use tasks::{TaskQuery, TaskRow, TaskState, TaskStore};

/// Which of the two Merkle logs a tree-level call is about. Each has its
/// own size, tiles and checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogId {
    /// The evidence log: one leaf per record.
    Evidence,
    /// The audit trail: one leaf per API call.
    Audit,
}

impl LogId {
    /// Lower-case name, for messages and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LogId::Evidence => "evidence",
            LogId::Audit => "audit",
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One evidence record as stored. The vault builds it; the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceRow {
    /// Position in the log; the store checks these are consecutive.
    pub leaf_index: u64,
    /// UUIDv7, canonical lower-case hyphenated text.
    pub id: String,
    /// Media type of the payload, as submitted.
    pub content_type: String,
    /// SHA-256 of the payload bytes.
    pub sha256: [u8; 32],
    /// Payload size in bytes.
    pub size: u64,
    /// Key-value labels; empty when there are none.
    pub labels: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub ingested_at_ms: i64,
    /// Principal that submitted the record.
    pub ingested_by: String,
    /// The submitter's retry token; unique per `ingested_by`.
    pub idempotency_key: Option<String>,
    /// Identity for deduplication (payload, content type, labels), computed
    /// by the vault; unique in the store.
    pub dedup_key: [u8; 32],
    /// The exact bytes whose RFC 6962 leaf hash is in the tree.
    pub leaf_data: Vec<u8>,
    /// The payload bytes, or where they are kept instead.
    pub payload: Payload,
    /// The typed fields of an analytics event record, which the store
    /// indexes in the record's transaction for
    /// [`Store::analytics_summary`]. Write-only: records read back from the
    /// store have `None` here (the payload is the event; this is a copy of
    /// part of it).
    pub analytics: Option<AnalyticsRow>,
}

/// The typed fields of an analytics event (content type
/// `application/vnd.evault.analytics+json`), validated by the vault.
#[derive(Clone, Debug)]
pub struct AnalyticsRow {
    /// What emitted the event (e.g. `ci/release`), 1 to 128 bytes.
    pub source: String,
    /// What kind of event it is (e.g. `build`), 1 to 128 bytes.
    pub kind: String,
    /// The event's own time (not the ingest time), milliseconds since the
    /// Unix epoch.
    pub timestamp_ms: i64,
    /// Finite.
    pub value: Option<f64>,
    /// Unit of `value` (e.g. `s`), 1 to 32 bytes.
    pub unit: Option<String>,
    /// Distinct names, finite values.
    pub metrics: Vec<(String, f64)>,
}

/// Numbers compare by [`f64::total_cmp`], which makes this a true
/// equivalence (so rows holding one can still be `Eq`).
impl PartialEq for AnalyticsRow {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: f64, b: f64| a.total_cmp(&b).is_eq();
        self.source == other.source
            && self.kind == other.kind
            && self.timestamp_ms == other.timestamp_ms
            && match (self.value, other.value) {
                (Some(a), Some(b)) => same(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
            && self.unit == other.unit
            && self.metrics.len() == other.metrics.len()
            && self
                .metrics
                .iter()
                .zip(&other.metrics)
                .all(|((n, a), (m, b))| n == m && same(*a, *b))
    }
}

impl Eq for AnalyticsRow {}

/// Where a record's payload lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Kept in the store with the record.
    Inline(Vec<u8>),
    /// Kept by the vault in its content-addressed blob directory.
    External,
    /// Erased: the bytes are gone; the tombstone record at
    /// `tombstone_leaf` says so (see [`ComplianceStore::erase`]).
    Erased {
        /// Leaf index of the tombstone record.
        tombstone_leaf: u64,
    },
}

/// One audit event as stored: the leaf data (which is the event) plus the
/// few columns [`Store::list_audit`] filters on, copied out of it by the
/// vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the audit log; the store checks these are consecutive.
    pub leaf_index: u64,
    /// UUIDv7, canonical lower-case hyphenated text; unique.
    pub id: String,
    /// The event's time, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who called, or `anonymous`.
    pub principal: String,
    /// What was asked, e.g. `evidence.put`.
    pub operation: String,
    /// `success`, `denied`, `unauthenticated` or `failed`.
    pub outcome: String,
    /// The exact bytes whose RFC 6962 leaf hash is in the audit tree.
    pub leaf_data: Vec<u8>,
}

/// A batch to append in one durable transaction: evidence records and
/// their tiles, and optionally audit events and theirs. Either log's part
/// may be empty; both are committed together or not at all.
#[derive(Clone, Debug)]
pub struct AppendBatch<'a> {
    /// Evidence tree size the batch extends. If the store holds a different
    /// size the append fails with [`StoreError::SizeConflict`] and nothing
    /// is written: this is what keeps two writers from forking the log.
    pub old_size: u64,
    /// Records with `leaf_index` `old_size`, `old_size + 1`, ...
    pub records: &'a [EvidenceRow],
    /// Full contents of every evidence tile the batch touched, at the new
    /// size.
    pub tiles: &'a [(TileId, Vec<u8>)],
    /// The audit log's part, checked and written the same way; `None`
    /// leaves the audit log untouched (and unchecked).
    pub audit: Option<AuditBatch<'a>>,
}

impl<'a> AppendBatch<'a> {
    /// A batch of evidence records only.
    pub fn new(old_size: u64, records: &'a [EvidenceRow], tiles: &'a [(TileId, Vec<u8>)]) -> Self {
        AppendBatch {
            old_size,
            records,
            tiles,
            audit: None,
        }
    }
}

/// Checks one of a batch's tiles, for every driver: it must have the
/// width a tree of `new_size` gives it and exactly that many hashes.
pub(crate) fn check_batch_tile(
    log: LogId,
    new_size: u64,
    tile: &TileId,
    data: &[u8],
) -> Result<()> {
    use crate::sqlite::error::invalid;
    if evault_merkle::tiles::tile_width(tile.level, tile.index, new_size) != Some(tile.width) {
        return Err(invalid(format!(
            "{log} tile {} does not have the width of a tree of size {new_size}",
            tile.path()
        )));
    }
    if data.len() != tile.byte_len() {
        return Err(invalid(format!(
            "{log} tile {} has {} bytes, expected {}",
            tile.path(),
            data.len(),
            tile.byte_len()
        )));
    }
    Ok(())
}

/// The audit log's part of an [`AppendBatch`].
#[derive(Clone, Copy, Debug)]
pub struct AuditBatch<'a> {
    /// Audit tree size the events extend ([`StoreError::SizeConflict`]
    /// otherwise, and nothing of either log is written).
    pub old_size: u64,
    /// Events with `leaf_index` `old_size`, `old_size + 1`, ...
    pub events: &'a [AuditRow],
    /// Full contents of every audit tile the events touched, at the new
    /// audit size.
    pub tiles: &'a [(TileId, Vec<u8>)],
}

/// Filters for [`Store::list`]. All present filters must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Label pairs a record must all carry, key and value exact.
    pub labels: Vec<(String, String)>,
    /// Exact `content_type`.
    pub content_type: Option<String>,
    /// Exact `ingested_by`: an ingester lists only its own records.
    pub ingested_by: Option<String>,
    /// Inclusive lower bound on `ingested_at_ms`.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on `ingested_at_ms`.
    pub until_ms: Option<i64>,
    /// Return records with `leaf_index` greater than this (from a previous
    /// page's `next`).
    pub after_index: Option<u64>,
    /// Page size, clamped to 1..=1000.
    pub limit: u32,
}

/// Filters for [`Store::list_audit`]. All present filters must match;
/// results come in leaf order, paged like [`Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Exact `principal`.
    pub principal: Option<String>,
    /// Exact `operation`.
    pub operation: Option<String>,
    /// Exact `outcome`: `success`, `denied`, `unauthenticated` or `failed`.
    pub outcome: Option<String>,
    /// Inclusive lower bound on `time_ms`.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on `time_ms`.
    pub until_ms: Option<i64>,
    /// Return events with `leaf_index` greater than this (from a previous
    /// page's `next`).
    pub after_index: Option<u64>,
    /// Page size, clamped to 1..=1000.
    pub limit: u32,
}

/// Filters for [`Store::analytics_summary`]. All present filters must
/// match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyticsQuery {
    /// Exact `source`.
    pub source: Option<String>,
    /// Exact `kind`.
    pub kind: Option<String>,
    /// Inclusive lower bound on the event's timestamp.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on the event's timestamp.
    pub until_ms: Option<i64>,
    /// Exact `ingested_by`: an ingester summarises only its own events.
    pub ingested_by: Option<String>,
}

/// Count, minimum, maximum and mean of a set of numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// How many numbers; at least 1 (the store gives no `Stats` for none).
    pub count: u64,
    /// Smallest number.
    pub min: f64,
    /// Largest number.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// The summary of the analytics events of one source and kind.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyticsGroup {
    /// The `source` of every event in the group.
    pub source: String,
    /// The `kind` of every event in the group.
    pub kind: String,
    /// Events in the group.
    pub count: u64,
    /// Earliest event timestamp, milliseconds since the Unix epoch.
    pub first_ms: i64,
    /// Latest event timestamp, milliseconds since the Unix epoch.
    pub last_ms: i64,
    /// Over the events that have a `value`; `None` if none has.
    pub value: Option<Stats>,
    /// The unit, if every event of the group has the same one.
    pub unit: Option<String>,
    /// Per metric name, over the events that have that metric.
    pub metrics: BTreeMap<String, Stats>,
}

/// What [`Store::evidence_stats`] counts: the records ingested in
/// `since_ms..until_ms`, per bucket of `bucket_ms` and per content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    /// Inclusive lower bound on `ingested_at_ms`.
    pub since_ms: i64,
    /// Exclusive upper bound on `ingested_at_ms`.
    pub until_ms: i64,
    /// Bucket width in milliseconds (at least 1); buckets start at
    /// multiples of it since the Unix epoch.
    pub bucket_ms: i64,
    /// Exact `ingested_by`: an ingester counts only its own records.
    pub ingested_by: Option<String>,
    /// At most this many content types, the most frequent first.
    pub top_content_types: u32,
}

/// Record counts of a [`StatsQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvidenceStats {
    /// `(bucket start ms, records)` for each non-empty bucket, in time order.
    pub buckets: Vec<(i64, u64)>,
    /// `(content type, records)`, most records first, then by type.
    pub content_types: Vec<(String, u64)>,
    /// Records in the window.
    pub total: u64,
}

/// One page of results; `next` is the cursor for the following page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The results, in leaf order, at most the query's `limit`.
    pub items: Vec<T>,
    /// `after_index` for the following page: the last item's leaf index
    /// when the page is full (the next may still be empty), else `None`.
    pub next: Option<u64>,
}

/// A stored signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size in leaves the checkpoint commits to; at most one
    /// checkpoint per size and log.
    pub size: u64,
    /// The signed note text, exactly as served.
    pub note: String,
    /// When the vault signed it, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A row a scan found but could not decode (a wrong-size hash, malformed
/// labels, …): where it is and why. Scans report it and go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableRow {
    /// The row's leaf index.
    pub leaf_index: u64,
    /// Why it could not be read.
    pub why: String,
}

/// One row of a scan: decoded, or why not.
pub type Scanned<T> = std::result::Result<T, UnreadableRow>;

/// A stored tile's position and the length of its stored contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredTileKey {
    /// Tile level.
    pub level: u8,
    /// Tile index within its level.
    pub index: u64,
    /// Bytes stored (32 per hash).
    pub bytes: u64,
}

/// What the store's lookup indexes answer for one stored leaf row, for
/// `fsck`: each lookup by the row's own values, through that index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexLookup {
    /// The row looked up.
    pub leaf_index: u64,
    /// The leaf its id leads to, if any.
    pub by_id: Option<u64>,
    /// Evidence: the leaf its dedup key leads to, if any; `None` for audit.
    pub by_dedup_key: Option<u64>,
    /// Evidence: whether the row has an idempotency key.
    pub has_idempotency_key: bool,
    /// Evidence with an idempotency key: the leaf (submitter, key) leads
    /// to, if any; `None` without a key and for audit.
    pub by_idempotency_key: Option<u64>,
    /// Evidence: how many labels the row has (`None` if its labels do not
    /// parse); `Some(0)` for audit.
    pub labels: Option<u64>,
    /// Evidence: how many of the row's labels the label index holds for
    /// this leaf (`None` if its labels do not parse); `Some(0)` for audit.
    pub labels_indexed: Option<u64>,
    /// Secondary indexes (by name) that do not list this row under its own
    /// values.
    pub missing_from: Vec<&'static str>,
    /// Whether the row lies below the index follower's cursor
    /// ([`EvidenceIndex::indexed_through`]); `labels_indexed` is compared
    /// with `labels` only then. Always true for audit.
    pub indexed: bool,
    /// Follower-written indexes (by name) that hold an entry for this row
    /// although it lies at or past their cursor: the follower would write
    /// it a second time.
    pub ahead_in: Vec<&'static str>,
}

/// One entry of the evidence label index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelEntry {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
    /// The record it points to.
    pub leaf_index: u64,
    /// Where the driver keeps the entry, to resume a scan after it
    /// ([`EvidenceIndex::label_index_page`]): for SQLite, its run's first
    /// leaf and level. Empty where the entry alone says it.
    pub position: Vec<i64>,
}

/// Why a store call failed.
#[derive(Debug)]
pub enum StoreError {
    /// The batch's `old_size` (of either log) is not the stored tree size.
    SizeConflict {
        /// The batch's `old_size`.
        expected: u64,
        /// The tree size in the store.
        stored: u64,
    },
    /// A record's or event's `leaf_index` does not follow the previous one.
    NonConsecutiveIndex {
        /// The index that would follow: `old_size` plus the rows before it.
        expected: u64,
        /// The row's `leaf_index`.
        got: u64,
    },
    /// A record or an audit event with this id exists already. (Dedup and
    /// idempotency keys are not refused here: see
    /// [`EvidenceIndex::record_by_dedup_key`].)
    Duplicate(String),
    /// A tile was asked for at a width the store does not hold (yet).
    TileUnavailable(TileId),
    /// The schema in the database is newer than this binary understands.
    SchemaTooNew {
        /// Schema version in the database.
        found: u32,
        /// Highest schema version this binary knows.
        supported: u32,
    },
    /// Stored data is not what it must be (corruption, manual edits).
    Corrupt(String),
    /// An erasure was refused because an active legal hold covers one of
    /// its records (checked inside the erase transaction); nothing was
    /// written.
    Held {
        /// The hold's id.
        hold: String,
        /// The held record's leaf index.
        leaf_index: u64,
    },
    /// The database cannot be reached or did not answer in time (a lost
    /// connection, a server restarting, a pool or statement timeout). A
    /// write that fails so may or may not have committed: the caller reads
    /// the state back before it retries. Worth retrying later.
    Unavailable(String),
    /// A write of the logs was refused because this store does not hold
    /// the current, unexpired sequencing lease (see [`Coordination`]);
    /// nothing was written. Another node writes now, or none until a
    /// lease is acquired again.
    Fenced(String),
    /// The database failed.
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::SizeConflict { expected, stored } => write!(
                f,
                "append expected tree size {expected} but the store holds {stored}"
            ),
            StoreError::NonConsecutiveIndex { expected, got } => {
                write!(f, "record has leaf index {got}, expected {expected}")
            }
            StoreError::Duplicate(what) => write!(f, "duplicate {what}"),
            StoreError::TileUnavailable(t) => write!(f, "tile {} is not available", t.path()),
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "database schema version {found} is newer than this binary supports ({supported})"
            ),
            StoreError::Corrupt(why) => write!(f, "store is inconsistent: {why}"),
            StoreError::Held { hold, leaf_index } => {
                write!(f, "record {leaf_index} is under legal hold {hold}")
            }
            StoreError::Unavailable(why) => write!(f, "storage unavailable: {why}"),
            StoreError::Fenced(why) => write!(f, "write fenced off: {why}"),
            StoreError::Backend(e) => write!(f, "storage backend: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Backend(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl StoreError {
    /// Whether the failure is the disk (or file system quota) being full:
    /// SQLite's `SQLITE_FULL`, or an I/O error `ENOSPC`/`EDQUOT`. Nothing
    /// was written; the same call may succeed once space is freed.
    pub fn is_storage_full(&self) -> bool {
        let StoreError::Backend(e) = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(c) = cause {
            if let Some(rusqlite::Error::SqliteFailure(f, _)) = c.downcast_ref::<rusqlite::Error>()
                && f.code == rusqlite::ErrorCode::DiskFull
            {
                return true;
            }
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

/// Result of a store call; the error is a [`StoreError`] unless given.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

// The storage seam, in four parts (as Tessera's appender and `LogReader`,
// and Go's `sumdb/storage`, keep the log apart from what is looked up in
// it): the append-only log, the two logs' lookup indexes, and the whole
// store. Every trait is blocking: callers on an async runtime run it on a
// blocking thread. Implementations are safe to share between threads;
// appends are serialised by the vault's single sequencer, and `old_size`
// makes any second writer fail rather than fork. A call that returns `Ok`
// has been durably committed.

/// The append-only log: each log's size, its entries in log order, its
/// tiles, its signed checkpoints, and a little metadata. It is all the
/// commit path writes and all a proof reads.
pub trait LogStore: Send + Sync {
    /// Current size of `log`'s tree (number of leaves).
    fn tree_size(&self, log: LogId) -> Result<u64>;

    /// Appends records, audit events and their tiles, and advances each
    /// log's size, in one durable transaction (so an audit event is never
    /// without the record it describes, and costs no commit of its own).
    /// Returns only after the commit is durable. A record whose id is
    /// stored already is refused ([`StoreError::Duplicate`]); its dedup and
    /// idempotency keys are not checked (the caller's lookups are, below).
    fn append(&self, batch: &AppendBatch<'_>) -> Result<()>;

    /// Contents of each of `log`'s tiles, exactly `width × 32` bytes, in
    /// order. A tile at width `w` is a prefix of every later version of it.
    fn read_tiles(&self, log: LogId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>>;

    /// [`LogStore::read_tiles`], each full tile with its inner levels
    /// (`evault_merkle::tiles::tile_inner`) where the driver keeps them, so
    /// a proof reads its nodes instead of rehashing rows. A driver must
    /// keep them for every full tile it stores; for a partial tile, or a
    /// full one read at a smaller width, it returns `None`. The default
    /// keeps none.
    #[allow(clippy::type_complexity)]
    fn read_tiles_with_inner(
        &self,
        log: LogId,
        tiles: &[TileId],
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        Ok(self
            .read_tiles(log, tiles)?
            .into_iter()
            .map(|d| (d, None))
            .collect())
    }

    /// The record at `leaf_index` of the evidence log, if the log has one.
    fn record_by_index(&self, leaf_index: u64) -> Result<Option<EvidenceRow>>;
    /// The event at `leaf_index` of the audit log, if the log has one.
    fn audit_by_index(&self, leaf_index: u64) -> Result<Option<AuditRow>>;
    /// Leaf data of evidence records `[start, end)`, for entry bundles.
    fn leaf_data_range(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>>;

    /// Stores a checkpoint of `log`; storing the same size twice keeps the
    /// first.
    fn put_checkpoint(&self, log: LogId, checkpoint: &StoredCheckpoint) -> Result<()>;
    /// `log`'s checkpoint of the largest tree size, if any is stored.
    fn latest_checkpoint(&self, log: LogId) -> Result<Option<StoredCheckpoint>>;
    /// `log`'s checkpoint of exactly `size` leaves, if one is stored.
    fn checkpoint_at(&self, log: LogId, size: u64) -> Result<Option<StoredCheckpoint>>;
    /// `log`'s checkpoints with size greater than `after`, ascending.
    fn list_checkpoints(
        &self,
        log: LogId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>>;

    /// Small persistent settings (log origin, key ids).
    fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets setting `key` to `value`, replacing any earlier value.
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Every setting, ordered by key (for `evault store copy`, which
    /// moves them all without knowing each).
    fn meta_entries(&self) -> Result<Vec<(String, String)>>;

    // Whole-log reads for `fsck`; each is one short read.

    /// Evidence rows with leaf index in `[start, end)`, in leaf order, as
    /// stored (gaps show as missing indexes; a row that does not decode is
    /// an [`UnreadableRow`], and the scan goes on).
    fn scan_records(&self, start: u64, end: u64) -> Result<Vec<Scanned<EvidenceRow>>>;
    /// Audit rows with leaf index in `[start, end)`, like
    /// [`LogStore::scan_records`].
    fn scan_audit(&self, start: u64, end: u64) -> Result<Vec<Scanned<AuditRow>>>;
    /// How many leaf rows `log` stores, and the largest leaf index.
    fn leaf_rows(&self, log: LogId) -> Result<(u64, Option<u64>)>;
    /// Every stored tile of `log`: position and stored length, ordered by
    /// level and index.
    fn tile_keys(&self, log: LogId) -> Result<Vec<StoredTileKey>>;
    /// A tile's stored contents, whole (not cut to any width), if stored.
    fn stored_tile(&self, log: LogId, level: u8, index: u64) -> Result<Option<Vec<u8>>>;
}

/// The evidence log's lookup indexes: by id, dedup key, idempotency key,
/// labels and time, and the counts the dashboard shows. Everything here
/// can be rebuilt from the log's entries.
pub trait EvidenceIndex: Send + Sync {
    /// The record with this id, if any.
    fn record_by_id(&self, id: &str) -> Result<Option<EvidenceRow>>;
    /// The first record with this dedup key, if any.
    ///
    /// Exact the moment an append returns, however far the index follower
    /// lags: the sequencer decides from this and
    /// [`record_by_idempotency_key`](Self::record_by_idempotency_key)
    /// whether a put becomes a new leaf, and it alone keeps both keys
    /// unique (the store does not refuse a twin: its unique indexes would
    /// be written on every commit at a random page; `fsck` reports twins).
    fn record_by_dedup_key(&self, dedup_key: &[u8; 32]) -> Result<Option<EvidenceRow>>;
    /// The first stored record holding each of `keys` as dedup key, in no
    /// particular order. The sequencer asks once per group commit; a driver
    /// should answer in a few queries, not one per key (this default does).
    fn records_by_dedup_keys(&self, keys: &[[u8; 32]]) -> Result<Vec<EvidenceRow>> {
        let mut found = Vec::new();
        for key in keys {
            found.extend(self.record_by_dedup_key(key)?);
        }
        Ok(found)
    }
    /// The first record `principal` submitted with idempotency key `key`,
    /// if any: keys are scoped to the principal that sent them. Exact as
    /// [`record_by_dedup_key`](Self::record_by_dedup_key).
    fn record_by_idempotency_key(&self, principal: &str, key: &str) -> Result<Option<EvidenceRow>>;

    /// Records matching `query`, in leaf order, at most `query.limit`.
    fn list(&self, query: &ListQuery) -> Result<Page<EvidenceRow>>;

    /// Per source and kind (ordered by both, bytewise), the count, time
    /// span and statistics of the stored analytics events matching
    /// `query`, aggregated by the database.
    fn analytics_summary(&self, query: &AnalyticsQuery) -> Result<Vec<AnalyticsGroup>>;

    /// Counts of the records matching `query`, per time bucket and per
    /// content type, read in one transaction.
    fn evidence_stats(&self, query: &StatsQuery) -> Result<EvidenceStats>;

    // The label index as stored, for `fsck`.

    /// Number of entries in the evidence label index.
    fn label_index_len(&self) -> Result<u64>;
    /// Label index entries after `after`, in index order, at most `limit`
    /// (clamped to 1..=10,000).
    fn label_index_page(&self, after: Option<&LabelEntry>, limit: u32) -> Result<Vec<LabelEntry>>;
    /// Whether the entry's record exists and carries that label.
    fn label_entry_matches(&self, entry: &LabelEntry) -> Result<bool>;
    /// Faults in the driver's own layout of the follower-written indexes,
    /// each in a sentence, for `fsck`; empty when sound. For SQLite: the
    /// live runs cover the indexed leaves without gap or overlap, and
    /// every entry lies in a live run, within its leaves.
    fn index_layout(&self) -> Result<Vec<String>>;

    // The follower-written indexes. A driver may keep an index keyed by a
    // random value (labels, payload digest) off the commit path and have
    // the vault's index follower write it behind the log. Reads stay
    // exact: a driver answers from such an index below its cursor and
    // from the records themselves at or past it.

    /// The follower's durable cursor: the follower-written indexes hold
    /// exactly the evidence records below this leaf index. A driver that
    /// writes every index on the commit path answers the tree size.
    fn indexed_through(&self) -> Result<u64>;
    /// Indexes the records from [`indexed_through`](Self::indexed_through)
    /// on, up to `through` but at most `max_rows` of them and never past
    /// the tree size, and moves the cursor there in the same transaction.
    /// Returns the new cursor. Only the vault's index follower calls it.
    fn index_evidence(&self, through: u64, max_rows: u64) -> Result<u64>;
}

/// The audit log's lookup indexes: by id, by filter, and outcome counts.
pub trait AuditIndex: Send + Sync {
    /// The audit event with this id, if any.
    fn audit_by_id(&self, id: &str) -> Result<Option<AuditRow>>;
    /// Audit events matching `query`, in leaf order, at most `query.limit`.
    fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditRow>>;
    /// Audit events with `since_ms <= time_ms < until_ms` (and of
    /// `principal`, if given) per outcome, ordered by outcome.
    fn audit_outcomes(
        &self,
        since_ms: i64,
        until_ms: i64,
        principal: Option<&str>,
    ) -> Result<Vec<(String, u64)>>;
}

/// A whole store: the log, both logs' indexes, and the optional tables
/// (tasks, mirrors, cosignatures, compliance) a driver may keep. The vault
/// holds one; a part of it that needs less takes the narrower trait.
pub trait Store: LogStore + EvidenceIndex + AuditIndex {
    /// For each `log` row in `[start, end)`, in leaf order, what the
    /// store's indexes answer when looked up by the row's own values (for
    /// `fsck`: it spans the log and its indexes).
    fn index_lookups(&self, log: LogId, start: u64, end: u64) -> Result<Vec<IndexLookup>>;
    /// The store's task table, if it keeps one (the vault's task runner
    /// needs it; a store without one runs no tasks). A wrapper store
    /// should pass its inner store's through.
    fn tasks(&self) -> Option<&dyn TaskStore> {
        None
    }
    /// The store's mirror tables (evidence of other logs, imported from
    /// bundles), if it keeps them. A wrapper store should pass its inner
    /// store's through.
    fn mirrors(&self) -> Option<&dyn MirrorStore> {
        None
    }
    /// The store's witness cosignatures of the vault's checkpoints, if it
    /// keeps them (the vault asks witnesses only then). A wrapper store
    /// should pass its inner store's through.
    fn cosignatures(&self) -> Option<&dyn CosignatureStore> {
        None
    }
    /// The store's erasure, legal hold and retention tables, if it keeps
    /// them (without them the vault cannot erase). A wrapper store should
    /// pass its inner store's through.
    fn compliance(&self) -> Option<&dyn ComplianceStore> {
        None
    }
    /// The lease that lets one node of several write a shared store, if
    /// the store is shared (PostgreSQL): its writes of the logs then fail
    /// with [`StoreError::Fenced`] unless it holds the lease. `None` for a
    /// store one process owns (SQLite), which always writes. A wrapper
    /// store should pass its inner store's through.
    fn coordination(&self) -> Option<&dyn Coordination> {
        None
    }
}

/// The storage traits, for `use evault_store::prelude::*`: a method of a
/// part is callable on a `dyn Store` only with its trait in scope.
pub mod prelude {
    pub use crate::{AuditIndex, EvidenceIndex, LogStore, Store};
}
