//! Importing evidence bundles of *other* logs: a verified mirror of their
//! records, kept apart from this vault's own logs (never a leaf of its
//! trees). Each mirrored record keeps its original origin, leaf index and
//! the signed checkpoint its inclusion proof is against, so it can be
//! proven again, offline, with the other log's key alone.
//!
//! Only readers that see everything (auditors, admins) read mirrors: the
//! records name principals of another vault, not of this one.

use std::io::Read;
use std::path::Path;

use evault_note::{Verifiers, log_verifier};
use evault_store::{
    ImportConflict, MirrorCheckpoint, MirrorImport, MirrorLog, MirrorRecord, MirrorStore,
};
use evault_verify::evb::{self, PayloadSink, ReadLimits};
use evault_verify::{Evidence, ProofBundle};

use sha2::Digest as _;

use crate::error::{Result, VaultError};
use crate::{ReadScope, Reader, Vault};

/// What an import added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    /// The bundle's log.
    pub origin: String,
    /// The size of the checkpoint the bundle is against.
    pub tree_size: u64,
    /// Records in the bundle.
    pub records: u64,
    /// Of those, the ones this vault did not hold yet.
    pub records_new: u64,
    /// Payloads stored now.
    pub payloads_new: u64,
    /// Whether the checkpoint was new to this vault.
    pub checkpoint_new: bool,
}

/// Keeps every payload of a bundle as it is read (bounded by the reader's
/// limits).
#[derive(Default)]
struct Keep(Vec<(String, Vec<u8>)>);

impl PayloadSink for Keep {
    fn payload(&mut self, sha256: &str, data: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)?;
        self.0.push((sha256.to_string(), bytes));
        Ok(())
    }
}

fn invalid(why: impl Into<String>) -> VaultError {
    VaultError::Invalid(why.into())
}

/// The mirror tables of the vault's store.
fn table(store: &dyn evault_store::Store) -> Result<&dyn MirrorStore> {
    store
        .mirrors()
        .ok_or_else(|| VaultError::Unavailable("this vault's store keeps no mirrors".into()))
}

/// Mirrors are read only by a reader that sees everything.
fn check_reader(reader: &Reader, what: &str) -> Result<()> {
    if reader.scope() == ReadScope::All {
        return Ok(());
    }
    Err(VaultError::Hidden {
        what: what.to_string(),
        reason: "mirrored logs are read with a scope over all records only".into(),
    })
}

/// The verifiers of a log key given as a C2SP verifier key (Ed25519 or
/// ML-DSA-44).
pub fn verifiers_of(key: &str) -> Result<Verifiers> {
    let v = log_verifier(key.trim()).map_err(|e| invalid(format!("the bundle's log key: {e}")))?;
    let mut set = Verifiers::new();
    set.insert_boxed(v)
        .map_err(|e| invalid(format!("the bundle's log key: {e}")))?;
    Ok(set)
}

impl Vault {
    /// Imports the evidence bundle at `bundle` as a mirror of its log:
    /// read with the hostile-safe reader, verified with `key` (the other
    /// log's verifier key) and stored in one transaction, or refused as a
    /// whole with [`VaultError::Invalid`] (not a bundle, does not verify, a
    /// bundle of this vault's own logs) or [`VaultError::Conflict`] (this
    /// vault holds another checkpoint of the same size, a fork, or another
    /// record at one of its indexes). Blocking: call it from a blocking
    /// thread. `progress(done, total)` counts records; `cancelled` is
    /// polled between the steps.
    pub fn import_bundle(
        &self,
        principal: &str,
        bundle: &Path,
        key: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<ImportSummary> {
        let verifiers = verifiers_of(key)?;
        let file = std::fs::File::open(bundle)?;
        let mut payloads = Keep::default();
        let read = evb::read_bundle(
            std::io::BufReader::new(file),
            &ReadLimits::default(),
            &mut payloads,
        )
        .map_err(|e| invalid(format!("not a valid evidence bundle: {e}")))?;
        let origin = read.manifest.origin.clone();
        let own: Vec<String> = std::iter::once(&self.inner.evidence)
            .chain(self.inner.audit.as_ref())
            .map(|h| h.origin.clone())
            .collect();
        if own.contains(&origin) {
            return Err(invalid(format!(
                "the bundle is of this vault's own log {origin}: its records are in the log \
                 already (import bundles of other logs)"
            )));
        }
        // A mirror keeps records with their payloads or, from a bundle
        // without payloads, records only; an erased payload is neither,
        // and mirroring its tombstone is not supported.
        if read.manifest.erasures > 0 {
            return Err(invalid(format!(
                "the bundle lists {} record(s) whose payloads were erased ({}); importing \
                 erased records is not supported: import a bundle exported without payloads, \
                 or one whose selection leaves the erased records out",
                read.manifest.erasures,
                evb::ERASURES
            )));
        }
        if cancelled() {
            return Err(VaultError::Cancelled);
        }
        let report = evb::verify_bundle(&read, &verifiers, None, None);
        if !report.verified {
            let first = report
                .failed_records()
                .next()
                .and_then(|r| {
                    r.failures.first().map(|f| {
                        format!(
                            "record {} (leaf {}): {}",
                            r.id.as_deref().unwrap_or("?"),
                            r.leaf_index
                                .map_or_else(|| "?".to_string(), |i| i.to_string()),
                            f.detail
                        )
                    })
                })
                .or_else(|| {
                    report.failures.first().map(|f| match &f.member {
                        Some(m) => format!("{m}: {}", f.detail),
                        None => f.detail.clone(),
                    })
                })
                .unwrap_or_default();
            return Err(invalid(format!(
                "the bundle does not verify with the given key; nothing was imported. {} \
                 record(s) failed; first: {first}",
                report.failed_records().count()
            )));
        }
        let total = report.records;
        progress(0, total);
        if cancelled() {
            return Err(VaultError::Cancelled);
        }

        let note = String::from_utf8(read.checkpoint.clone())
            .map_err(|_| invalid("the bundle's checkpoint is not UTF-8"))?;
        let tree_size = report.tree_size;
        let proofs = lines(&read.proofs);
        let mut records = Vec::with_capacity(total as usize);
        for (line, proof) in lines(&read.records).into_iter().zip(proofs) {
            // Verified above: each line is a record with its proof.
            let r: Evidence = serde_json::from_str(line)
                .map_err(|e| invalid(format!("{}: {e}", evb::RECORDS)))?;
            let p: evb::ProofLine = serde_json::from_str(proof)
                .map_err(|e| invalid(format!("{}: {e}", evb::PROOFS)))?;
            records.push(MirrorRecord {
                origin: origin.clone(),
                leaf_index: r.leaf_index,
                record: line.to_string(),
                sha256: r.sha256,
                tree_size,
                inclusion_proof: serde_json::to_string(&p.inclusion_proof)
                    .map_err(|e| invalid(e.to_string()))?,
            });
        }
        let batch = MirrorImport {
            checkpoint: MirrorCheckpoint {
                origin: origin.clone(),
                tree_size,
                note,
                imported_ms: crate::checkpointer::now_ms(),
                imported_by: principal.to_string(),
            },
            records,
            payloads: payloads.0,
        };
        let counts = match table(&*self.inner.store)?.import(&batch)? {
            Ok(c) => c,
            Err(ImportConflict::Checkpoint { tree_size, .. }) => {
                return Err(VaultError::Conflict(format!(
                    "this vault holds another signed checkpoint of {origin} at size {tree_size}: \
                     the log signed two different trees of one size (a fork), or one of them is \
                     forged; nothing was imported"
                )));
            }
            Err(ImportConflict::Record { leaf_index, .. }) => {
                return Err(VaultError::Conflict(format!(
                    "this vault holds another record of {origin} at leaf {leaf_index}; nothing \
                     was imported"
                )));
            }
        };
        progress(total, total);
        Ok(ImportSummary {
            origin,
            tree_size,
            records: total,
            records_new: counts.records_new,
            payloads_new: counts.payloads_new,
            checkpoint_new: counts.checkpoint_new,
        })
    }

    /// Every mirrored log, by origin.
    pub async fn mirrored_logs(&self, reader: &Reader) -> Result<Vec<MirrorLog>> {
        if reader.scope() != ReadScope::All {
            return Ok(Vec::new());
        }
        self.blocking(|i| Ok(table(&*i.store)?.mirror_logs()?))
            .await
    }

    /// Records of mirrored log `origin` after leaf `after`, in leaf order,
    /// at most `limit`; each as its record and leaf index.
    pub async fn mirrored_records(
        &self,
        reader: &Reader,
        origin: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Evidence>> {
        check_reader(reader, &format!("mirrored log {origin}"))?;
        let origin = origin.to_string();
        self.blocking(move |i| {
            table(&*i.store)?
                .mirror_records(&origin, after, limit)?
                .iter()
                .map(stored_record)
                .collect()
        })
        .await
    }

    /// A mirrored record with its inclusion proof against the checkpoint
    /// it was imported with: a proof bundle `evault verify` checks with
    /// the other log's key alone.
    pub async fn mirrored_proof(
        &self,
        reader: &Reader,
        origin: &str,
        leaf_index: u64,
    ) -> Result<ProofBundle> {
        let what = format!("record {leaf_index} of mirrored log {origin}");
        check_reader(reader, &what)?;
        let origin = origin.to_string();
        self.blocking(move |i| {
            let t = table(&*i.store)?;
            let row = t
                .mirror_record(&origin, leaf_index)?
                .ok_or_else(|| VaultError::NotFound(what.clone()))?;
            let cp = t
                .mirror_checkpoint(&origin, row.tree_size)?
                .ok_or_else(|| corrupt(&row, "its checkpoint is missing"))?;
            let inclusion_proof: Vec<String> = serde_json::from_str(&row.inclusion_proof)
                .map_err(|e| corrupt(&row, &format!("its proof: {e}")))?;
            Ok(ProofBundle {
                record: stored_record(&row)?,
                leaf_index: row.leaf_index,
                tree_size: row.tree_size,
                inclusion_proof,
                checkpoint: cp.note,
            })
        })
        .await
    }

    /// The payload of a mirrored record, if the bundle it came in carried
    /// payloads.
    pub async fn mirrored_payload(
        &self,
        reader: &Reader,
        origin: &str,
        leaf_index: u64,
    ) -> Result<(Evidence, Vec<u8>)> {
        let what = format!("record {leaf_index} of mirrored log {origin}");
        check_reader(reader, &what)?;
        let origin = origin.to_string();
        self.blocking(move |i| {
            let t = table(&*i.store)?;
            let row = t
                .mirror_record(&origin, leaf_index)?
                .ok_or_else(|| VaultError::NotFound(what.clone()))?;
            let record = stored_record(&row)?;
            let data = t.mirror_payload(&row.sha256)?.ok_or_else(|| {
                VaultError::NotFound(format!(
                    "the payload of {what} (its bundle carried no payloads)"
                ))
            })?;
            // Checked on the way out, like this vault's own payloads.
            let digest = evault_verify::evidence::hex(&sha2::Sha256::digest(&data));
            if digest != record.sha256 {
                return Err(corrupt(&row, "its payload's SHA-256 is not the record's"));
            }
            Ok((record, data))
        })
        .await
    }
}

fn corrupt(row: &MirrorRecord, why: &str) -> VaultError {
    VaultError::Corrupt {
        what: "record",
        detail: format!(
            "mirrored record {} of {}: {why}",
            row.leaf_index, row.origin
        ),
    }
}

fn stored_record(row: &MirrorRecord) -> Result<Evidence> {
    let r: Evidence = serde_json::from_str(&row.record)
        .map_err(|e| corrupt(row, &format!("not a record: {e}")))?;
    if r.leaf_index != row.leaf_index {
        return Err(corrupt(row, "its leaf index is not the row's"));
    }
    Ok(r)
}

/// The lines of a JSONL member, split as the verifier splits them (it
/// checked each ends with a newline and parses).
fn lines(bytes: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    match text.strip_suffix('\n') {
        Some(body) => body.split('\n').collect(),
        None => Vec::new(),
    }
}
