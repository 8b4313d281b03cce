//! Verifying a bundle as read, offline, with the log's verifier key: the
//! report names each record (id and leaf index) and every check that
//! failed, rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::{Hash, hash_from_slice, verify_inclusion};
use evault_note::{Checkpoint, Verifiers};
use serde::Serialize;
use serde_json::Value;

use super::{
    CHECKPOINT, CONSISTENCY, ERASURES, ErasureLine, MANIFEST, NEWER_CHECKPOINT, PROOFS, ProofLine,
    RECORDS, ReadBundle, Selection, is_record_time, note_text, payload_member,
};
use crate::bundle::open_checkpoint;
use crate::consistency::{ConsistencyProof, verify_checkpoints};
use crate::evidence::Evidence;

/// Which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The manifest is not in its canonical form, or disagrees with the
    /// checkpoint or with the members.
    Manifest,
    /// A member's SHA-256 is not the manifest's.
    MemberDigest,
    /// The checkpoint's signature (or body, or origin) does not verify.
    Checkpoint,
    /// A record line is not a valid record.
    Record,
    /// A proof line is not a valid proof, or is for another leaf.
    Proof,
    /// Records out of leaf order, repeated, or beyond the checkpoint.
    Order,
    /// The record does not match the manifest's selection.
    Selection,
    /// The record's leaf with its proof does not lead to the signed root.
    Inclusion,
    /// The payload is missing, or its bytes are not what the record says.
    Payload,
    /// An `erasures.jsonl` line is malformed, names a record that is not
    /// in the bundle or whose payload is present, or its tombstone is not
    /// evault's tombstone of that record or is not in the checkpoint.
    Erasure,
    /// The bundle's consistency proof does not verify.
    Consistency,
    /// A newer checkpoint was given, and the bundle has no proof that its
    /// checkpoint is consistent with it.
    ConsistencyUnavailable,
    /// The newer checkpoint given does not verify.
    NewerCheckpoint,
}

/// A failed check of the bundle as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What failed.
    pub check: Check,
    /// The member it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// In words.
    pub detail: String,
}

/// One record's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    /// 1-based line in `records.jsonl`.
    pub line: u64,
    /// The record id (read even from a record that does not parse, if it can be).
    pub id: Option<String>,
    /// Its leaf index (likewise).
    pub leaf_index: Option<u64>,
    /// Whether every check of it passed.
    pub ok: bool,
    /// The id of the tombstone that erased its payload, if the bundle
    /// shows it erased (and the tombstone verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased_by: Option<String>,
    /// The checks that failed.
    pub failures: Vec<Failure>,
}

/// Which newer checkpoint the bundle's was shown consistent with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsistencyChecked {
    /// Its tree size.
    pub to: u64,
    /// `bundle` (carried in it) or `given` (the caller's, proven by the
    /// bundle's proof or equal to the bundle's checkpoint).
    pub source: &'static str,
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    /// Whether everything verified.
    pub verified: bool,
    /// The checkpoint's origin.
    pub origin: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The checkpoint's root hash, base64.
    pub root_hash: String,
    /// Keys whose signatures verified on the checkpoint.
    pub signed_by: Vec<String>,
    /// Number of records.
    pub records: u64,
    /// Number of payloads.
    pub payloads: u64,
    /// Number of records whose payload was erased (each shown so by a
    /// verified tombstone).
    pub erased: u64,
    /// Newer checkpoints the bundle's was shown consistent with.
    pub consistency: Vec<ConsistencyChecked>,
    /// Failures of the bundle as a whole.
    pub failures: Vec<Failure>,
    /// Every record, in bundle order.
    pub entries: Vec<RecordReport>,
}

impl BundleReport {
    /// The records that failed.
    pub fn failed_records(&self) -> impl Iterator<Item = &RecordReport> {
        self.entries.iter().filter(|r| !r.ok)
    }
}

/// The content type of tombstone records (the vault's
/// `erasure::TOMBSTONE_TYPE`).
pub const TOMBSTONE_TYPE: &str = "application/vnd.evault.tombstone+json";
/// The principal tombstones are ingested by.
pub const TOMBSTONE_BY: &str = "evault";
/// The tombstone label naming the erased record's id.
pub const TOMBSTONE_ERASES: &str = "evault.erases";
/// The tombstone label naming the erased record's leaf index (decimal).
pub const TOMBSTONE_ERASES_LEAF: &str = "evault.erases.leaf";

/// Why `tombstone` is not evault's tombstone of `erased`, if it is not.
fn tombstone_mismatch(tombstone: &Evidence, erased: &Evidence) -> Option<String> {
    let t = tombstone;
    if t.content_type != TOMBSTONE_TYPE {
        return Some(format!(
            "the tombstone's content type is {:?}, not {TOMBSTONE_TYPE:?}",
            t.content_type
        ));
    }
    if t.ingested_by != TOMBSTONE_BY {
        return Some(format!(
            "the tombstone was ingested by {:?}, not {TOMBSTONE_BY:?}",
            t.ingested_by
        ));
    }
    if t.labels.get(TOMBSTONE_ERASES) != Some(&erased.id) {
        return Some(format!(
            "the tombstone's {TOMBSTONE_ERASES} is {:?}, the record is {}",
            t.labels.get(TOMBSTONE_ERASES),
            erased.id
        ));
    }
    if t.labels.get(TOMBSTONE_ERASES_LEAF) != Some(&erased.leaf_index.to_string()) {
        return Some(format!(
            "the tombstone's {TOMBSTONE_ERASES_LEAF} is {:?}, the record is leaf {}",
            t.labels.get(TOMBSTONE_ERASES_LEAF),
            erased.leaf_index
        ));
    }
    if t.leaf_index <= erased.leaf_index {
        return Some(format!(
            "the tombstone (leaf {}) does not follow the record it erases (leaf {})",
            t.leaf_index, erased.leaf_index
        ));
    }
    None
}

/// Checks that `r`'s leaf with the audit path `proof` (base64) leads to
/// `root` at `tree_size`; the failure as (check, member, detail).
fn inclusion_failure(
    r: &Evidence,
    proof: &[String],
    tree_size: u64,
    root: Option<&Hash>,
) -> Option<(Check, Option<&'static str>, String)> {
    let hashes: Result<Vec<_>, usize> = proof
        .iter()
        .enumerate()
        .map(|(k, h)| {
            STANDARD
                .decode(h)
                .ok()
                .and_then(|b| hash_from_slice(&b))
                .ok_or(k)
        })
        .collect();
    if r.leaf_index >= tree_size {
        return Some((
            Check::Order,
            Some(RECORDS),
            format!(
                "leaf {} is beyond the checkpoint's size {tree_size}",
                r.leaf_index
            ),
        ));
    }
    match (hashes, r.leaf_hash(), root) {
        (Err(k), _, _) => Some((
            Check::Proof,
            Some(PROOFS),
            format!("proof element {k} is not base64 of 32 bytes"),
        )),
        (_, Err(e), _) => Some((Check::Record, Some(RECORDS), e.to_string())),
        (Ok(hashes), Ok(leaf), Some(root)) => {
            verify_inclusion(&leaf, r.leaf_index, tree_size, &hashes, root)
                .err()
                .map(|e| {
                    (
                        Check::Inclusion,
                        None,
                        format!(
                            "the record's leaf and its proof do not lead to the checkpoint's \
                             root: {e}"
                        ),
                    )
                })
        }
        (Ok(_), Ok(_), None) => Some((
            Check::Inclusion,
            None,
            "no checkpoint root to check against".into(),
        )),
    }
}

fn fail(check: Check, member: Option<&str>, detail: impl Into<String>) -> Failure {
    Failure {
        check,
        member: member.map(str::to_string),
        detail: detail.into(),
    }
}

/// Lines of a JSONL member, each with its final `\n` removed; a missing
/// final newline is reported.
fn lines<'a>(bytes: &'a [u8], member: &str, failures: &mut Vec<Failure>) -> Vec<&'a [u8]> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let body = match bytes.strip_suffix(b"\n") {
        Some(b) => b,
        None => {
            failures.push(fail(
                Check::Manifest,
                Some(member),
                "the last line has no final newline",
            ));
            bytes
        }
    };
    body.split(|&b| b == b'\n').collect()
}

/// Checks `record` against the selection; `None` if it matches.
fn selection_mismatch(s: &Selection, r: &Evidence) -> Option<String> {
    if s.leaf_from.is_some_and(|f| r.leaf_index < f) || s.leaf_to.is_some_and(|t| r.leaf_index >= t)
    {
        return Some(format!(
            "leaf {} is outside the selected range",
            r.leaf_index
        ));
    }
    for (k, v) in &s.labels {
        if r.labels.get(k) != Some(v) {
            return Some(format!("it does not carry the selected label {k}={v}"));
        }
    }
    if let Some(ct) = &s.content_type
        && &r.content_type != ct
    {
        return Some(format!(
            "content type {:?} is not the selected {ct:?}",
            r.content_type
        ));
    }
    if let Some(since) = &s.since
        && r.ingested_at.as_str() < since.as_str()
    {
        return Some(format!(
            "ingested at {}, before the selected {since}",
            r.ingested_at
        ));
    }
    if let Some(until) = &s.until
        && r.ingested_at.as_str() >= until.as_str()
    {
        return Some(format!(
            "ingested at {}, not before the selected {until}",
            r.ingested_at
        ));
    }
    if let Some(by) = &s.ingested_by
        && &r.ingested_by != by
    {
        return Some(format!(
            "submitted by {:?}, not the selected {by:?}",
            r.ingested_by
        ));
    }
    None
}

/// Verifies a bundle read by [`super::read_bundle`] with the log's
/// `verifiers` (and the expected `origin`, if given); `newer` is a newer
/// signed checkpoint of the log, given by the caller, that the bundle's
/// checkpoint must be consistent with.
pub fn verify_bundle(
    bundle: &ReadBundle,
    verifiers: &Verifiers,
    origin: Option<&str>,
    newer: Option<&str>,
) -> BundleReport {
    let m = &bundle.manifest;
    let mut failures = Vec::new();

    // The manifest: canonical bytes (so no byte of it is unchecked), and
    // every member's digest as listed.
    match serde_json::to_vec(m) {
        Ok(mut canonical) => {
            canonical.push(b'\n');
            if canonical != bundle.manifest_bytes {
                failures.push(fail(
                    Check::Manifest,
                    Some(MANIFEST),
                    "the manifest is not in its canonical form (compact JSON in the format's \
                     member order, one final newline)",
                ));
            }
        }
        Err(e) => failures.push(fail(Check::Manifest, Some(MANIFEST), e.to_string())),
    }
    for member in &m.members {
        match bundle.digests.get(&member.name) {
            Some(d) if *d == member.sha256 => {}
            Some(d) => failures.push(fail(
                Check::MemberDigest,
                Some(&member.name),
                format!("SHA-256 is {d}, the manifest lists {}", member.sha256),
            )),
            None => failures.push(fail(Check::MemberDigest, Some(&member.name), "not read")),
        }
    }
    for (what, t) in [("since", &m.selection.since), ("until", &m.selection.until)] {
        if let Some(t) = t
            && !is_record_time(t)
        {
            failures.push(fail(
                Check::Manifest,
                Some(MANIFEST),
                format!("selection {what} {t:?} is not of the form YYYY-MM-DDTHH:MM:SS.mmmZ"),
            ));
        }
    }

    // The checkpoint: its signature, then that the manifest describes it.
    let note = String::from_utf8_lossy(&bundle.checkpoint).into_owned();
    let mut signed_by = Vec::new();
    let mut signed = false;
    match open_checkpoint(&note, verifiers, origin) {
        Ok((_, by)) => {
            signed_by = by;
            signed = true;
        }
        Err(e) => failures.push(fail(Check::Checkpoint, Some(CHECKPOINT), e.to_string())),
    }
    // Records are checked against the root the checkpoint states even if
    // its signature failed; the report fails either way.
    let body = Checkpoint::parse(note_text(&note)).ok();
    let (tree_size, root) = match &body {
        Some(cp) => {
            if cp.origin != m.origin
                || cp.size != m.tree_size
                || STANDARD.encode(cp.root_hash) != m.root_hash
            {
                failures.push(fail(
                    Check::Manifest,
                    Some(MANIFEST),
                    format!(
                        "the manifest describes {} at size {} root {}, the checkpoint is {} at \
                         size {} root {}",
                        m.origin,
                        m.tree_size,
                        m.root_hash,
                        cp.origin,
                        cp.size,
                        STANDARD.encode(cp.root_hash)
                    ),
                ));
            }
            (cp.size, Some(cp.root_hash))
        }
        None => {
            if signed {
                failures.push(fail(
                    Check::Checkpoint,
                    Some(CHECKPOINT),
                    "no checkpoint body",
                ));
            }
            (m.tree_size, None)
        }
    };

    // Payloads present, by declared digest.
    let payloads: BTreeMap<&str, &super::read::PayloadSeen> = bundle
        .payloads
        .iter()
        .map(|p| (p.name_sha256.as_str(), p))
        .collect();
    let mut referenced: BTreeSet<String> = BTreeSet::new();

    let records = lines(&bundle.records, RECORDS, &mut failures);
    let proofs = lines(&bundle.proofs, PROOFS, &mut failures);
    if records.len() as u64 != m.records {
        failures.push(fail(
            Check::Manifest,
            Some(RECORDS),
            format!("{} records, the manifest says {}", records.len(), m.records),
        ));
    }
    if proofs.len() != records.len() {
        failures.push(fail(
            Check::Proof,
            Some(PROOFS),
            format!("{} proofs for {} records", proofs.len(), records.len()),
        ));
    }

    // Erased payloads, by the erased record's leaf: each line is used by
    // the record it names; what is left over names no record.
    let mut erasures: BTreeMap<u64, (usize, ErasureLine)> = BTreeMap::new();
    if let Some(bytes) = &bundle.erasures {
        let lines = lines(bytes, ERASURES, &mut failures);
        if lines.len() as u64 != m.erasures {
            failures.push(fail(
                Check::Manifest,
                Some(ERASURES),
                format!("{} erasures, the manifest says {}", lines.len(), m.erasures),
            ));
        }
        if !m.selection.payloads {
            failures.push(fail(
                Check::Erasure,
                Some(ERASURES),
                "a bundle without payloads lists erased payloads",
            ));
        }
        let mut last: Option<u64> = None;
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_slice::<ErasureLine>(line) {
                Err(e) => failures.push(fail(
                    Check::Erasure,
                    Some(ERASURES),
                    format!("line {}: not a valid erasure line: {e}", i + 1),
                )),
                Ok(x) => {
                    if last.is_some_and(|l| x.leaf_index <= l) {
                        failures.push(fail(
                            Check::Erasure,
                            Some(ERASURES),
                            format!(
                                "line {}: leaf {} does not follow leaf {}",
                                i + 1,
                                x.leaf_index,
                                last.unwrap_or_default()
                            ),
                        ));
                    }
                    last = Some(x.leaf_index);
                    erasures.insert(x.leaf_index, (i + 1, x));
                }
            }
        }
    }
    let mut erased = 0u64;

    let mut entries = Vec::with_capacity(records.len());
    let mut previous: Option<u64> = None;
    for (i, line) in records.iter().enumerate() {
        let mut rf = Vec::new();
        let record: Option<Evidence> = match serde_json::from_slice(line) {
            Ok(r) => Some(r),
            Err(e) => {
                rf.push(fail(
                    Check::Record,
                    Some(RECORDS),
                    format!("not a valid record: {e}"),
                ));
                None
            }
        };
        // A record that does not parse is still named by what can be read.
        let (id, leaf_index) = match &record {
            Some(r) => (Some(r.id.clone()), Some(r.leaf_index)),
            None => {
                let loose: Option<Value> = serde_json::from_slice(line).ok();
                (
                    loose
                        .as_ref()
                        .and_then(|v| v.get("id")?.as_str().map(str::to_string)),
                    loose.as_ref().and_then(|v| v.get("leaf_index")?.as_u64()),
                )
            }
        };
        let mut report = RecordReport {
            line: i as u64 + 1,
            id,
            leaf_index,
            ok: false,
            erased_by: None,
            failures: Vec::new(),
        };
        let proof: Option<ProofLine> = match proofs.get(i).map(|p| serde_json::from_slice(p)) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                rf.push(fail(
                    Check::Proof,
                    Some(PROOFS),
                    format!("not a valid proof line: {e}"),
                ));
                None
            }
            None => {
                rf.push(fail(Check::Proof, Some(PROOFS), "no proof line"));
                None
            }
        };
        if let Some(r) = &record {
            if previous.is_some_and(|p| r.leaf_index <= p) {
                rf.push(fail(
                    Check::Order,
                    Some(RECORDS),
                    format!(
                        "leaf {} does not follow leaf {}",
                        r.leaf_index,
                        previous.unwrap_or_default()
                    ),
                ));
            }
            previous = Some(r.leaf_index);
            if r.leaf_index >= tree_size {
                rf.push(fail(
                    Check::Order,
                    Some(RECORDS),
                    format!(
                        "leaf {} is beyond the checkpoint's size {tree_size}",
                        r.leaf_index
                    ),
                ));
            }
            if let Some(why) = selection_mismatch(&m.selection, r) {
                rf.push(fail(Check::Selection, Some(RECORDS), why));
            }
            let erasure = erasures.remove(&r.leaf_index);
            if let Some((n, x)) = &erasure {
                let why = |d: String| {
                    fail(
                        Check::Erasure,
                        Some(ERASURES),
                        format!("line {n} (tombstone {}): {d}", x.tombstone.id),
                    )
                };
                let before = rf.len();
                if payloads.contains_key(r.sha256.as_str()) {
                    rf.push(why(
                        "the bundle lists the payload as erased, yet carries it".into(),
                    ));
                }
                if let Some(d) = tombstone_mismatch(&x.tombstone, r) {
                    rf.push(why(d));
                }
                if let Some((_, _, d)) =
                    inclusion_failure(&x.tombstone, &x.inclusion_proof, tree_size, root.as_ref())
                {
                    rf.push(why(format!("the tombstone is not in the checkpoint: {d}")));
                }
                if rf.len() == before {
                    erased += 1;
                    report.erased_by = Some(x.tombstone.id.clone());
                }
            } else if m.selection.payloads {
                referenced.insert(r.sha256.clone());
                let member = payload_member(&r.sha256);
                match payloads.get(r.sha256.as_str()) {
                    None => rf.push(fail(
                        Check::Payload,
                        Some(&member),
                        "the payload is not in the bundle",
                    )),
                    Some(p) if p.actual_sha256 != r.sha256 => rf.push(fail(
                        Check::Payload,
                        Some(&member),
                        format!(
                            "the payload's SHA-256 is {}, the record says {}",
                            p.actual_sha256, r.sha256
                        ),
                    )),
                    Some(p) if p.size != r.size => rf.push(fail(
                        Check::Payload,
                        Some(&member),
                        format!(
                            "the payload is {} bytes, the record says {}",
                            p.size, r.size
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
        if let (Some(r), Some(p)) = (&record, &proof) {
            if p.leaf_index != r.leaf_index {
                rf.push(fail(
                    Check::Proof,
                    Some(PROOFS),
                    format!(
                        "the proof is for leaf {}, the record is leaf {}",
                        p.leaf_index, r.leaf_index
                    ),
                ));
            } else if r.leaf_index < tree_size
                && let Some((check, member, detail)) =
                    inclusion_failure(r, &p.inclusion_proof, tree_size, root.as_ref())
            {
                rf.push(fail(check, member, detail));
            }
        }
        report.ok = rf.is_empty();
        report.failures = rf;
        entries.push(report);
    }
    for (leaf, (n, x)) in &erasures {
        failures.push(fail(
            Check::Erasure,
            Some(ERASURES),
            format!(
                "line {n} (tombstone {}) names leaf {leaf}, which is not a record of the bundle",
                x.tombstone.id
            ),
        ));
    }
    for p in &bundle.payloads {
        if !referenced.contains(&p.name_sha256) {
            failures.push(fail(
                Check::Payload,
                Some(&payload_member(&p.name_sha256)),
                "no record in the bundle has this payload",
            ));
        }
    }

    let mut consistency = Vec::new();
    check_consistency(
        bundle,
        &note,
        verifiers,
        origin,
        newer,
        tree_size,
        &mut consistency,
        &mut failures,
    );

    let verified = failures.is_empty() && entries.iter().all(|r| r.ok);
    BundleReport {
        verified,
        origin: body
            .as_ref()
            .map(|c| c.origin.clone())
            .unwrap_or_else(|| m.origin.clone()),
        tree_size,
        root_hash: root.map(|r| STANDARD.encode(r)).unwrap_or_default(),
        signed_by,
        records: records.len() as u64,
        payloads: bundle.payloads.len() as u64,
        erased,
        consistency,
        failures,
        entries,
    }
}

/// The bundle's own consistency proof, then the caller's newer checkpoint.
#[allow(clippy::too_many_arguments)]
fn check_consistency(
    bundle: &ReadBundle,
    note: &str,
    verifiers: &Verifiers,
    origin: Option<&str>,
    newer: Option<&str>,
    tree_size: u64,
    checked: &mut Vec<ConsistencyChecked>,
    failures: &mut Vec<Failure>,
) {
    // The bundle's newer checkpoint and proof, once verified.
    let mut carried: Option<(String, ConsistencyProof, u64)> = None;
    if let (Some(cp), Some(json)) = (&bundle.newer_checkpoint, &bundle.consistency) {
        let cp = String::from_utf8_lossy(cp).into_owned();
        match serde_json::from_slice::<ConsistencyProof>(json) {
            Err(e) => failures.push(fail(
                Check::Consistency,
                Some(CONSISTENCY),
                format!("not a consistency proof: {e}"),
            )),
            Ok(proof) => match verify_checkpoints(note, &cp, &proof, verifiers, origin) {
                Ok(c) => {
                    checked.push(ConsistencyChecked {
                        to: c.new_size,
                        source: "bundle",
                    });
                    carried = Some((cp, proof, c.new_size));
                }
                Err(e) => failures.push(fail(
                    Check::Consistency,
                    Some(NEWER_CHECKPOINT),
                    format!(
                        "the bundle's checkpoint is not shown consistent with its newer one: {e}"
                    ),
                )),
            },
        }
    }
    let Some(given) = newer else {
        return;
    };
    let given_cp = match open_checkpoint(given, verifiers, origin) {
        Ok((cp, _)) => cp,
        Err(e) => {
            failures.push(fail(Check::NewerCheckpoint, None, e.to_string()));
            return;
        }
    };
    let proof = if given_cp.size == tree_size {
        // Same size: the roots must be equal; no proof needed.
        Some(ConsistencyProof {
            from: tree_size,
            to: tree_size,
            proof: Vec::new(),
        })
    } else {
        carried
            .as_ref()
            .filter(|(_, _, size)| *size == given_cp.size)
            .map(|(_, p, _)| p.clone())
    };
    let Some(proof) = proof else {
        let has = match &carried {
            Some((_, _, size)) => format!("it carries one to size {size} only"),
            None => "it carries none".into(),
        };
        let detail = if given_cp.size < tree_size {
            format!(
                "the given checkpoint (size {}) is older than the bundle's (size {tree_size}); a \
                 bundle proves consistency only to a newer one",
                given_cp.size
            )
        } else {
            format!(
                "cannot check the given checkpoint (size {}): the bundle has no consistency proof \
                 from size {tree_size} to it ({has})",
                given_cp.size
            )
        };
        failures.push(fail(Check::ConsistencyUnavailable, None, detail));
        return;
    };
    match verify_checkpoints(note, given, &proof, verifiers, origin) {
        Ok(c) => checked.push(ConsistencyChecked {
            to: c.new_size,
            source: "given",
        }),
        Err(e) => failures.push(fail(
            Check::Consistency,
            None,
            format!("the bundle's checkpoint is not consistent with the given one: {e}"),
        )),
    }
}
