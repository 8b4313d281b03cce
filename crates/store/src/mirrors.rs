//! Mirrors: evidence of *other* logs, imported from verified evidence
//! bundles, behind their own narrow trait, [`MirrorStore`]. Kept apart
//! from this vault's own logs (never a leaf of its trees): each record
//! keeps its original origin, leaf index and the signed checkpoint that
//! proves it, as provenance.

use crate::Result;

/// A signed checkpoint of a mirrored log, as imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorCheckpoint {
    /// The log's origin (the checkpoint's first line).
    pub origin: String,
    /// Its tree size.
    pub tree_size: u64,
    /// The signed note, exactly as in the bundle.
    pub note: String,
    /// When it was first imported, milliseconds since the Unix epoch.
    pub imported_ms: i64,
    /// The principal that imported it.
    pub imported_by: String,
}

/// One mirrored record: its API JSON as in the bundle, with its inclusion
/// proof against the checkpoint of `tree_size`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRecord {
    /// The log's origin.
    pub origin: String,
    /// The record's leaf index in that log.
    pub leaf_index: u64,
    /// The record (its API JSON, one line of `records.jsonl`).
    pub record: String,
    /// Its payload's SHA-256, lower-case hex.
    pub sha256: String,
    /// The size of the checkpoint its proof is against.
    pub tree_size: u64,
    /// RFC 6962 audit path, a JSON array of standard base64 hashes.
    pub inclusion_proof: String,
}

/// Everything one verified bundle adds, stored in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorImport {
    /// The checkpoint every record's proof is against.
    pub checkpoint: MirrorCheckpoint,
    /// The records, in leaf order.
    pub records: Vec<MirrorRecord>,
    /// Payloads by SHA-256 (lower-case hex), when the bundle carried them.
    pub payloads: Vec<(String, Vec<u8>)>,
}

/// What an import changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Records stored now.
    pub records_new: u64,
    /// Records that were there already, identical.
    pub records_known: u64,
    /// Payloads stored now.
    pub payloads_new: u64,
    /// Whether the checkpoint was new (else the same note was there).
    pub checkpoint_new: bool,
}

/// A mirrored log, in summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorLog {
    /// Its origin.
    pub origin: String,
    /// Records held.
    pub records: u64,
    /// Checkpoints held.
    pub checkpoints: u64,
    /// The largest checkpoint held.
    pub latest: MirrorCheckpoint,
}

/// Why an import was refused as a whole (nothing was stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportConflict {
    /// Another checkpoint is held for the same origin and size: the log
    /// signed two different trees of one size (a fork), or one is forged.
    Checkpoint {
        /// The size both are of.
        tree_size: u64,
        /// The note held.
        held: String,
    },
    /// Another record is held at the same origin and leaf index.
    Record {
        /// The leaf index.
        leaf_index: u64,
        /// The record held.
        held: String,
    },
}

/// The mirror tables. Blocking, like [`Store`](crate::Store).
pub trait MirrorStore: Send + Sync {
    /// Stores `batch` in one transaction: records and payloads already
    /// held identically are skipped. A different checkpoint of the same
    /// size, or a different record at the same leaf index, refuses the
    /// whole batch (`Ok(Err(conflict))`, nothing stored).
    fn import(
        &self,
        batch: &MirrorImport,
    ) -> Result<std::result::Result<ImportCounts, ImportConflict>>;
    /// Every mirrored log, by origin.
    fn mirror_logs(&self) -> Result<Vec<MirrorLog>>;
    /// Records of `origin` with a leaf index after `after`, in leaf order,
    /// at most `limit` (clamped to 1..=1000).
    fn mirror_records(
        &self,
        origin: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MirrorRecord>>;
    /// The record of `origin` at `leaf_index`, if held.
    fn mirror_record(&self, origin: &str, leaf_index: u64) -> Result<Option<MirrorRecord>>;
    /// The checkpoint of `origin` at `tree_size`, if held.
    fn mirror_checkpoint(&self, origin: &str, tree_size: u64) -> Result<Option<MirrorCheckpoint>>;
    /// A mirrored payload by SHA-256 (lower-case hex), if held.
    fn mirror_payload(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
}
