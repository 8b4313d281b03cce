//! Exporting a selection of evidence as an evidence bundle (`.evb`,
//! docs/FORMATS.md): the records a reader may see, each with its inclusion
//! proof against the latest checkpoint, optionally their payloads, written
//! by `evault_verify::evb` so that `evault verify` checks it offline.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use evault_merkle::tiles::TiledHashReader;
use evault_store::{EvidenceRow, ListQuery, Payload};
use evault_verify::Evidence;
use evault_verify::evb::{self, BundleContents, BundleEntry, PayloadSource, Selection};

use crate::error::{Result, VaultError};
use crate::records::format_ms;
use crate::{Reader, Vault, evidence_from_row, ingest, integrity};

/// Which records an export takes, like a listing's filters ([`ListQuery`]);
/// every present criterion must hold. The reader's scope applies on top
/// (an `Own` reader exports only its own records).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleSelection {
    /// Lowest leaf index, inclusive.
    pub leaf_from: Option<u64>,
    /// Leaf index bound, exclusive.
    pub leaf_to: Option<u64>,
    /// Labels a record must all carry, key and value exact.
    pub labels: BTreeMap<String, String>,
    /// Exact content type.
    pub content_type: Option<String>,
    /// Inclusive lower bound on `ingested_at`, milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on `ingested_at`, milliseconds since the epoch.
    pub until_ms: Option<i64>,
    /// Whether the payloads go into the bundle.
    pub payloads: bool,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    /// The bundle file.
    pub path: PathBuf,
    /// Records in it.
    pub records: u64,
    /// Payloads in it.
    pub payloads: u64,
    /// Records in it whose payloads were erased (each carried as its
    /// tombstone, in `erasures.jsonl`).
    pub erased: u64,
    /// Tree size of the checkpoint it is built against.
    pub tree_size: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 of its manifest (lower-case hex), which names its content.
    pub manifest_sha256: String,
}

/// Records read per store page; also how often cancellation is polled
/// while listing.
const PAGE: u32 = 250;
/// Proofs built between progress reports and cancellation polls.
const STEP: u64 = 100;
/// `9999-12-31T23:59:59.999Z`: the last instant the records' form holds.
const MAX_MS: i64 = 253_402_300_799_999;

fn cancelled_error() -> VaultError {
    VaultError::Cancelled
}

/// The selection as the bundle's manifest states it.
fn manifest_selection(s: &BundleSelection, reader: &Reader) -> Result<Selection> {
    for (what, t) in [("since", s.since_ms), ("until", s.until_ms)] {
        if t.is_some_and(|t| !(0..=MAX_MS).contains(&t)) {
            return Err(VaultError::Invalid(format!(
                "{what} must lie between 1970-01-01 and 9999-12-31"
            )));
        }
    }
    if let (Some(a), Some(b)) = (s.leaf_from, s.leaf_to)
        && a > b
    {
        return Err(VaultError::Invalid(format!(
            "leaf range {a}..{b} is reversed"
        )));
    }
    if let (Some(a), Some(b)) = (s.since_ms, s.until_ms)
        && a > b
    {
        return Err(VaultError::Invalid("since is after until".into()));
    }
    let labels: Vec<(String, String)> = s.labels.clone().into_iter().collect();
    ingest::validate_label_filters(&labels)?;
    Ok(Selection {
        leaf_from: s.leaf_from,
        leaf_to: s.leaf_to,
        labels: s.labels.clone(),
        content_type: s.content_type.clone(),
        since: s.since_ms.map(format_ms),
        until: s.until_ms.map(format_ms),
        ingested_by: reader.only_owner(),
        payloads: s.payloads,
    })
}

/// Payload bytes for the writer: inline ones kept from the listing, blobs
/// opened from the data directory (the writer checks both against their
/// record); polls for cancellation before each.
struct Payloads<'a> {
    inline: BTreeMap<String, Vec<u8>>,
    vault: &'a Vault,
    cancelled: &'a (dyn Fn() -> bool + Send + Sync),
}

impl PayloadSource for Payloads<'_> {
    fn open(&mut self, record: &Evidence) -> io::Result<Box<dyn Read + '_>> {
        if (self.cancelled)() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        if let Some(bytes) = self.inline.get(&record.sha256) {
            return Ok(Box::new(io::Cursor::new(bytes.as_slice())));
        }
        let sha = evault_verify::evidence::parse_sha256_hex(&record.sha256)
            .ok_or_else(|| io::Error::other(format!("record {}: malformed sha256", record.id)))?;
        let path = self.vault.inner.blobs.path_for(&sha);
        let file = File::open(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the payload blob of record {}: {e}", record.id),
            )
        })?;
        Ok(Box::new(io::BufReader::new(file)))
    }
}

impl Vault {
    /// Writes the records `selection` picks that `reader` may see, each
    /// with its inclusion proof against the latest checkpoint (records not
    /// under it yet are left out), as an evidence bundle at `out`.
    ///
    /// Blocking (store reads, proofs, file I/O): call it from a blocking
    /// thread. `progress(done, total)` is called as proofs are built;
    /// `cancelled` is polled at least every few hundred records and before
    /// each payload, and a `true` ends the export with
    /// [`VaultError::Cancelled`]. The bundle is written to a temporary file
    /// beside `out` and renamed onto it only when complete, so a failed or
    /// cancelled export leaves no file (and an existing `out` untouched).
    pub fn export_bundle(
        &self,
        reader: &Reader,
        selection: &BundleSelection,
        out: &Path,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<BundleSummary> {
        let manifest_selection = manifest_selection(selection, reader)?;
        let inner = &self.inner;
        let store = &*inner.store;
        let log = &inner.evidence;
        let cp = log.latest_checkpoint(store)?;
        let (body, _) =
            evault_verify::open_checkpoint(&cp.note, &log.verifiers(), Some(&log.origin))
                .map_err(|e| VaultError::Inconsistent(format!("the latest checkpoint: {e}")))?;
        let bound = selection.leaf_to.map_or(body.size, |t| t.min(body.size));

        // The records, in log order, narrowed to the reader's own.
        let mut rows: Vec<EvidenceRow> = Vec::new();
        let mut query = ListQuery {
            labels: selection.labels.clone().into_iter().collect(),
            content_type: selection.content_type.clone(),
            ingested_by: reader.only_owner(),
            since_ms: selection.since_ms,
            until_ms: selection.until_ms,
            after_index: selection.leaf_from.and_then(|f| f.checked_sub(1)),
            limit: PAGE,
        };
        'pages: loop {
            if cancelled() {
                return Err(cancelled_error());
            }
            let page = store.list(&query)?;
            for mut row in page.items {
                if row.leaf_index >= bound {
                    break 'pages;
                }
                integrity::check_record(&row)?;
                // An erased payload goes out as its tombstone, which must be
                // under the same checkpoint to be proven by it; a tombstone
                // newer than the latest checkpoint is covered by the next.
                if selection.payloads
                    && let Payload::Erased { tombstone_leaf } = row.payload
                    && tombstone_leaf >= body.size
                {
                    return Err(VaultError::Conflict(format!(
                        "the payload of evidence {} was erased by the tombstone at leaf \
                         {tombstone_leaf}, which the latest checkpoint (size {}) does not cover \
                         yet; retry shortly",
                        row.id, body.size
                    )));
                }
                if !selection.payloads {
                    row.payload = Payload::External;
                }
                rows.push(row);
            }
            match page.next {
                Some(n) => query.after_index = Some(n),
                None => break,
            }
        }

        let total = rows.len() as u64;
        progress(0, total);
        let tiles = TiledHashReader {
            tiles: log.tiles(store),
            tree_size: body.size,
        };
        let mut entries = Vec::with_capacity(rows.len());
        let mut erasures = Vec::new();
        let mut inline = BTreeMap::new();
        for (done, mut row) in rows.into_iter().enumerate() {
            let done = done as u64;
            if done.is_multiple_of(STEP) {
                if cancelled() {
                    return Err(cancelled_error());
                }
                progress(done, total);
            }
            let record = evidence_from_row(&row);
            let proof = evault_merkle::inclusion_proof(&tiles, row.leaf_index, body.size)?;
            // A changed tile must not go out in a bundle that fails for
            // its reader: check each proof against the signed root.
            let leaf = evault_merkle::leaf_hash(&row.leaf_data);
            if let Err(e) = evault_merkle::verify_inclusion(
                &leaf,
                row.leaf_index,
                body.size,
                &proof,
                &body.root_hash,
            ) {
                return Err(integrity::failure(
                    "proof",
                    format!(
                        "evidence inclusion proof of {} (leaf {}) at size {} does not verify \
                         against its signed checkpoint: {e}",
                        row.id, row.leaf_index, body.size
                    ),
                ));
            }
            if let Payload::Erased { tombstone_leaf } = row.payload {
                let proof = evault_merkle::inclusion_proof(&tiles, tombstone_leaf, body.size)?;
                erasures.push(self.erasure_entry(&row, tombstone_leaf, proof, &body)?);
            }
            if let Payload::Inline(bytes) = std::mem::replace(&mut row.payload, Payload::External) {
                integrity::check_inline(&row, &bytes)?;
                inline.insert(record.sha256.clone(), bytes);
            }
            entries.push(BundleEntry {
                record,
                inclusion_proof: proof,
            });
        }
        progress(total, total);

        let contents = BundleContents {
            checkpoint: cp.note,
            selection: manifest_selection,
            entries,
            erasures,
            newer: None,
        };
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".evault-export-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        let mut source = Payloads {
            inline,
            vault: self,
            cancelled,
        };
        let written = {
            let mut w = BufWriter::new(tmp.as_file());
            let written =
                evb::write_bundle(&mut w, &contents, Some(&mut source)).map_err(|e| match e {
                    evb::WriteError::Io(e) if e.kind() == io::ErrorKind::Interrupted => {
                        cancelled_error()
                    }
                    evb::WriteError::Io(e) => VaultError::Io(e),
                    evb::WriteError::Payload { .. } => integrity::failure("payload", e.to_string()),
                    evb::WriteError::Invalid(m) => VaultError::Inconsistent(m),
                })?;
            io::Write::flush(&mut w)?;
            written
        };
        if cancelled() {
            return Err(cancelled_error());
        }
        tmp.as_file().sync_all()?;
        tmp.persist(out).map_err(|e| VaultError::Io(e.error))?;
        // The rename is durable once the directory is.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(BundleSummary {
            path: out.to_path_buf(),
            records: written.records,
            payloads: written.payloads,
            erased: written.erasures,
            tree_size: written.tree_size,
            bytes: written.bytes,
            manifest_sha256: written.manifest_sha256,
        })
    }

    /// The tombstone of `row` (erased by the record at `tombstone_leaf`)
    /// with its inclusion `proof` against the checkpoint `body`, checked
    /// before it goes out like every record's.
    fn erasure_entry(
        &self,
        row: &EvidenceRow,
        tombstone_leaf: u64,
        proof: Vec<evault_merkle::Hash>,
        body: &evault_note::Checkpoint,
    ) -> Result<evb::ErasureEntry> {
        let store = &*self.inner.store;
        let tombstone = store.record_by_index(tombstone_leaf)?.ok_or_else(|| {
            integrity::failure(
                "erasure",
                format!(
                    "the tombstone of evidence {} (leaf {tombstone_leaf}) is not in the store",
                    row.id
                ),
            )
        })?;
        integrity::check_record(&tombstone)?;
        let leaf = evault_merkle::leaf_hash(&tombstone.leaf_data);
        if let Err(e) = evault_merkle::verify_inclusion(
            &leaf,
            tombstone_leaf,
            body.size,
            &proof,
            &body.root_hash,
        ) {
            return Err(integrity::failure(
                "proof",
                format!(
                    "inclusion proof of the tombstone {} (leaf {tombstone_leaf}) at size {} does \
                     not verify against its signed checkpoint: {e}",
                    tombstone.id, body.size
                ),
            ));
        }
        Ok(evb::ErasureEntry {
            erased_leaf: row.leaf_index,
            tombstone: evidence_from_row(&tombstone),
            inclusion_proof: proof,
        })
    }
}
