//! Evidence bundles (`.evb`, `evault/bundle/v1`): a selection of evidence
//! records with an inclusion proof of each against one signed checkpoint,
//! optionally their payloads and a consistency proof to a newer
//! checkpoint, in one zstd-compressed ustar archive (docs/FORMATS.md,
//! "Evidence bundle").
//!
//! - [`write_bundle`]: inputs → bytes, byte for byte reproducible.
//! - [`read_bundle`]: a hostile-safe reader (no links, no paths outside the
//!   archive, exactly the members the manifest lists, bounded sizes and
//!   compression ratio); it keeps everything in memory and writes nothing.
//! - [`verify_bundle`]: checks what was read, offline, and reports per
//!   record what failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod check;
mod read;
mod write;

pub use check::{
    BundleReport, Check, ConsistencyChecked, Failure, RecordReport, TOMBSTONE_BY, TOMBSTONE_ERASES,
    TOMBSTONE_ERASES_LEAF, TOMBSTONE_TYPE, verify_bundle,
};
pub use read::{
    NoPayloadSink, PayloadSeen, PayloadSink, ReadBundle, ReadError, ReadLimits, read_bundle,
};
pub use write::{
    BundleContents, BundleEntry, BundleWritten, ErasureEntry, NewerCheckpoint, PayloadSource,
    WriteError, write_bundle,
};

/// The manifest's `format`: the version of this layout.
pub const BUNDLE_FORMAT: &str = "evault/bundle/v1";

/// The first four bytes of every bundle (a zstd frame), by which
/// `evault verify` tells a bundle from a JSON proof.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The zstd level bundles are written with. Fixed, with no multithreading,
/// so the same inputs give the same bytes.
pub const ZSTD_LEVEL: i32 = 3;

/// Member names, in their fixed order (payloads last, by digest).
pub const MANIFEST: &str = "manifest.json";
/// The signed checkpoint every proof is against.
pub const CHECKPOINT: &str = "checkpoint";
/// One record (its API JSON) per line.
pub const RECORDS: &str = "records.jsonl";
/// One inclusion proof per line, in the order of the records.
pub const PROOFS: &str = "proofs.jsonl";
/// One line per erased record, in leaf order: the tombstone record that
/// erased its payload and the tombstone's inclusion proof (optional;
/// present only when the selection has payloads and some were erased).
pub const ERASURES: &str = "erasures.jsonl";
/// A newer signed checkpoint of the same log (optional).
pub const NEWER_CHECKPOINT: &str = "newer-checkpoint";
/// The consistency proof from `checkpoint` to `newer-checkpoint`.
pub const CONSISTENCY: &str = "consistency.json";
/// Directory of payload members, each named by its SHA-256 in lower-case hex.
pub const PAYLOADS_DIR: &str = "payloads/";

/// Whether `bytes` start like a bundle (the zstd frame magic).
pub fn is_bundle(bytes: &[u8]) -> bool {
    bytes.starts_with(&ZSTD_MAGIC)
}

/// The manifest, `manifest.json`: the first member, written as compact JSON
/// with its members in this order and a final newline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The log's origin (the checkpoint's first line).
    pub origin: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The checkpoint's root hash, standard base64.
    pub root_hash: String,
    /// What the records were selected by.
    pub selection: Selection,
    /// Number of records (lines of `records.jsonl`).
    pub records: u64,
    /// Number of payload members.
    pub payloads: u64,
    /// Number of erased records (lines of `erasures.jsonl`); absent when
    /// none, so bundles without erasures keep their bytes. A reader that
    /// predates it refuses the manifest (unknown field): it fails closed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub erasures: u64,
    /// Every member after the manifest, in archive order.
    pub members: Vec<MemberDigest>,
}

/// A member's name, size and SHA-256, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberDigest {
    /// Member path inside the archive.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the member's bytes, lower-case hex.
    pub sha256: String,
}

/// What selected the records: every present criterion holds for every
/// record in the bundle (the verifier checks it). It does not prove that
/// the log holds no other matching record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Lowest leaf index, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_from: Option<u64>,
    /// Leaf index bound, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_to: Option<u64>,
    /// Labels every record carries, key and value exact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Exact content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `ingested_at` at or after this (RFC 3339 UTC with milliseconds,
    /// the records' own form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// `ingested_at` before this (same form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only records this principal submitted (an exporter that may read
    /// only its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested_by: Option<String>,
    /// Whether the payloads are in the bundle.
    pub payloads: bool,
}

/// One line of `proofs.jsonl`: with the record of the same line and the
/// checkpoint, exactly the members of an `evault prove` proof bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofLine {
    /// The record's leaf index.
    pub leaf_index: u64,
    /// RFC 6962 audit path, standard base64 hashes, leaf's sibling first.
    pub inclusion_proof: Vec<String>,
}

/// One line of `erasures.jsonl`: the payload of the record at
/// `leaf_index` is absent because the tombstone `tombstone` (a record of the
/// same log, in the same JSON form as `records.jsonl` lines) erased it;
/// `inclusion_proof` proves the tombstone against the bundle's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureLine {
    /// The erased record's leaf index.
    pub leaf_index: u64,
    /// The tombstone record.
    pub tombstone: crate::evidence::Evidence,
    /// RFC 6962 audit path of the tombstone's leaf (`tombstone.leaf_index`),
    /// standard base64 hashes, leaf's sibling first.
    pub inclusion_proof: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The member name of the payload with this SHA-256 (lower-case hex).
pub fn payload_member(sha256_hex: &str) -> String {
    format!("{PAYLOADS_DIR}{sha256_hex}")
}

/// Whether `s` is 64 lower-case hex digits.
fn is_lower_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` has the records' timestamp form, `YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// so that it orders as a string exactly as in time.
fn is_record_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The checkpoint body (the signed note's text, up to its blank line), not
/// verified: for reading the size and root of a note whose signature is
/// checked separately.
fn note_text(note: &str) -> &str {
    match note.find("\n\n") {
        Some(i) => &note[..=i],
        None => note,
    }
}
