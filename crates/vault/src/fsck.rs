//! `fsck`: a full check that the stored data was never altered.
//!
//! For each log (evidence and audit) it reads every stored leaf in order
//! and
//! - recomputes the leaf from the stored record (evidence: the canonical
//!   leaf of docs/FORMATS.md from the record's columns; audit: the event
//!   parsed from its leaf and compared with its columns);
//! - rebuilds every tile (full and partial, every level) from the leaf
//!   hashes and compares it with the stored one, slot by slot;
//! - checks every stored checkpoint's signature, origin and size, its root
//!   against the tree rebuilt from the leaves at its size, and its
//!   consistency with the next stored checkpoint (an RFC 9162 proof from
//!   the stored tiles);
//! - checks every payload (inline or blob file) against the record's
//!   SHA-256 and size;
//! - checks the indexes against the log: every lookup by a row's own id,
//!   dedup key (recomputed), idempotency key, labels, content type, time
//!   and submitter leads to that row, and no index entry points elsewhere
//!   or past the log.
//!
//! Nothing stops it at the first problem: every disagreement is a
//! [`Finding`] naming the log, the place (leaf index, tile path,
//! checkpoint size, blob digest, index entry) and what was expected and
//! found, at most [`FsckOptions::max_findings_per_kind`] per kind (the rest
//! are counted). It only reads.
//!
//! A disagreement that follows from one already reported is not reported
//! again: a changed leaf makes its level-0 slot differ (reported), and so
//! the tiles above it and the root of every later checkpoint (not
//! reported, counted in the log's `consequential` count).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use evault_merkle::tiles::{TILE_WIDTH, TileBuilder, TileId, TiledHashReader, tile_inner};
use evault_merkle::{EMPTY_ROOT, HASH_SIZE, Hash, leaf_hash};
use evault_note::{Checkpoint, Ed25519Signer, SignerKeyText, Verifiers, verifier_for};
use evault_store::{
    AuditRow, EvidenceRow, IndexLookup, LabelEntry, LogId, Payload, Scanned, SqliteStore, Store,
};
use evault_verify::evidence::hex;
use evault_verify::{AuditEvent, dedup_key};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, VaultError};
use crate::proofs::StoreTiles;
use crate::records::evidence_from_row;

/// Leaves read per store call.
const CHUNK: u64 = 2048;
/// Meta keys of the two logs' origins (as `startup` writes them).
const META_ORIGIN: &str = "origin";
const META_AUDIT_ORIGIN: &str = "audit_origin";

/// What fsck checks and how much it reports.
#[derive(Clone, Debug)]
pub struct FsckOptions {
    /// Findings kept per kind; more are only counted
    /// ([`FsckReport::omitted`]). Default 100.
    pub max_findings_per_kind: usize,
    /// Hash every payload (inline and blob files). Default on; off skips
    /// the payload reads, which dominate on a vault of large blobs.
    pub payloads: bool,
    /// The evidence log's verifier key (`name+hash+base64`); default: the
    /// vault's own, or offline `<data dir>/log.key`.
    pub evidence_key: Option<String>,
    /// The audit log's verifier key; default as for the evidence log
    /// (`<data dir>/audit.key`).
    pub audit_key: Option<String>,
}

impl Default for FsckOptions {
    fn default() -> Self {
        FsckOptions {
            max_findings_per_kind: 100,
            payloads: true,
            evidence_key: None,
            audit_key: None,
        }
    }
}

/// What kind of disagreement a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A leaf row below the tree size is missing, or one is stored at or
    /// beyond it.
    LeafRow,
    /// A stored row cannot be decoded (a value of the wrong shape).
    Unreadable,
    /// An evidence record's columns differ from its stored leaf data (or
    /// the leaf is not a valid evidence leaf).
    Record,
    /// An audit event's columns differ from its leaf, or its leaf is not a
    /// valid, canonical audit leaf.
    AuditEvent,
    /// A leaf's hash differs from its slot in the stored level-0 tile.
    LeafHash,
    /// A stored tile differs from the one rebuilt from the leaves, is
    /// missing, has the wrong width, or lies beyond the tree.
    Tile,
    /// A stored checkpoint does not verify (signature, origin, the size it
    /// is stored under) or lies beyond the tree; or a log with leaves has
    /// none.
    Checkpoint,
    /// A checkpoint's root is not the root of the stored leaves at its size.
    CheckpointRoot,
    /// A checkpoint is not consistent with the next stored one (RFC 9162
    /// proof from the stored tiles).
    CheckpointConsistency,
    /// An inline payload differs from its record's SHA-256 or size.
    Payload,
    /// A blob file is missing or differs from its record's SHA-256 or size.
    Blob,
    /// An index disagrees with the log: a lookup by a row's own value does
    /// not lead to it, a recomputed dedup key differs, or an index entry
    /// points at a row without that value or past the log.
    Index,
    /// An erased record without its erasure row or a valid tombstone naming
    /// it, or whose blob file is still there with no live record sharing it.
    Erasure,
}

impl FindingKind {
    /// The kind's name, as in the JSON report (`leaf_hash`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::LeafRow => "leaf_row",
            FindingKind::Unreadable => "unreadable",
            FindingKind::Record => "record",
            FindingKind::AuditEvent => "audit_event",
            FindingKind::LeafHash => "leaf_hash",
            FindingKind::Tile => "tile",
            FindingKind::Checkpoint => "checkpoint",
            FindingKind::CheckpointRoot => "checkpoint_root",
            FindingKind::CheckpointConsistency => "checkpoint_consistency",
            FindingKind::Payload => "payload",
            FindingKind::Blob => "blob",
            FindingKind::Index => "index",
            FindingKind::Erasure => "erasure",
        }
    }
}

/// One disagreement: where, and what was expected and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of disagreement.
    pub kind: FindingKind,
    /// `evidence` or `audit`.
    pub log: &'static str,
    /// The leaf index it is about, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    /// The tile it is about (C2SP tlog-tiles path, `tile/L/N[.p/W]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<String>,
    /// The size of the checkpoint it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_size: Option<u64>,
    /// The SHA-256 (hex) of the payload or blob it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// The index it is about (`id`, `dedup_key`, `idempotency_key`,
    /// `record_labels`, or a secondary index's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// What the check expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// One line for a person.
    pub detail: String,
}

impl Finding {
    fn new(kind: FindingKind, log: LogId, detail: impl Into<String>) -> Self {
        Finding {
            kind,
            log: log.as_str(),
            leaf_index: None,
            tile: None,
            checkpoint_size: None,
            blob: None,
            index: None,
            expected: None,
            found: None,
            detail: detail.into(),
        }
    }
    fn leaf(mut self, i: u64) -> Self {
        self.leaf_index = Some(i);
        self
    }
    fn tile(mut self, t: TileId) -> Self {
        self.tile = Some(t.path());
        self
    }
    fn checkpoint(mut self, size: u64) -> Self {
        self.checkpoint_size = Some(size);
        self
    }
    fn blob(mut self, sha256: &[u8; 32]) -> Self {
        self.blob = Some(hex(sha256));
        self
    }
    fn index(mut self, name: &str) -> Self {
        self.index = Some(name.to_string());
        self
    }
    fn differs(mut self, expected: impl Into<String>, found: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self.found = Some(found.into());
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} log", self.kind.as_str(), self.log)?;
        if let Some(i) = self.leaf_index {
            write!(f, ", leaf {i}")?;
        }
        if let Some(t) = &self.tile {
            write!(f, ", {t}")?;
        }
        if let Some(s) = self.checkpoint_size {
            write!(f, ", checkpoint of size {s}")?;
        }
        if let Some(b) = &self.blob {
            write!(f, ", blob {b}")?;
        }
        if let Some(x) = &self.index {
            write!(f, ", index {x}")?;
        }
        write!(f, ": {}", self.detail)?;
        if let (Some(e), Some(g)) = (&self.expected, &self.found) {
            write!(f, " (expected {e}, found {g})")?;
        }
        Ok(())
    }
}

/// What fsck covered in one log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    /// `evidence` or `audit`.
    pub log: &'static str,
    /// The log's origin (from the store).
    pub origin: String,
    /// Stored tree size checked.
    pub size: u64,
    /// Leaves read and recomputed.
    pub leaves: u64,
    /// Tiles rebuilt and compared.
    pub tiles: u64,
    /// Stored checkpoints checked.
    pub checkpoints: u64,
    /// Size of the latest stored checkpoint (0 without one).
    pub latest_checkpoint: u64,
    /// Inline payloads hashed.
    pub inline_payloads: u64,
    /// Distinct blob files hashed.
    pub blobs: u64,
    /// Payload bytes hashed.
    pub payload_bytes: u64,
    /// Label index entries checked.
    pub label_entries: u64,
    /// Disagreements that follow from one already reported (the tiles
    /// above a changed leaf, later checkpoints' roots), not reported again.
    pub consequential: u64,
}

/// The result of a run: clean when [`FsckReport::findings`] is empty and the
/// run was complete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// No finding and every check ran.
    pub clean: bool,
    /// False if the run was cancelled before it finished.
    pub complete: bool,
    /// Per log, what was covered. The audit log is left out when the store
    /// has none (audit disabled).
    pub logs: Vec<LogSummary>,
    /// Every finding kept, in the order found.
    pub findings: Vec<Finding>,
    /// Findings beyond the per-kind limit, counted by kind.
    pub omitted: BTreeMap<FindingKind, u64>,
    /// All findings, kept or omitted.
    pub total_findings: u64,
    /// Wall time of the run, milliseconds.
    pub elapsed_ms: u64,
}

/// The findings of a run, bounded per kind.
struct Findings {
    max: usize,
    kept: Vec<Finding>,
    per_kind: HashMap<FindingKind, usize>,
    omitted: BTreeMap<FindingKind, u64>,
    total: u64,
}

impl Findings {
    fn push(&mut self, f: Finding) {
        self.total += 1;
        let n = self.per_kind.entry(f.kind).or_default();
        if *n < self.max {
            *n += 1;
            self.kept.push(f);
        } else {
            *self.omitted.entry(f.kind).or_default() += 1;
        }
    }
}

/// One log to check: its identity, as the vault knows it or as read from
/// a stopped vault's data directory.
struct Subject {
    log: LogId,
    origin: String,
    verifiers: std::sync::Arc<Verifiers>,
}

/// Where fsck reads from.
struct Target<'a> {
    store: &'a dyn Store,
    /// `<data dir>/blobs`.
    blobs: PathBuf,
    logs: Vec<Subject>,
}

/// Progress callback: `(done, total)` in work units (leaves of both logs,
/// then label index entries).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);
/// Cancellation probe: fsck stops soon after it returns true, and returns
/// the report so far with `complete: false`.
pub type Cancelled<'a> = &'a (dyn Fn() -> bool + Send + Sync);

impl crate::Vault {
    /// Runs fsck on this running vault's store (blocking: call it from a
    /// blocking thread). Leaves appended while it runs are not covered: each
    /// log is checked up to its size when the run starts. Keys and
    /// origins are the vault's own unless `options` names keys.
    pub fn fsck(
        &self,
        options: &FsckOptions,
        progress: Progress<'_>,
        cancelled: Cancelled<'_>,
    ) -> Result<FsckReport> {
        let inner = &self.inner;
        let mut logs = Vec::new();
        for handle in std::iter::once(&inner.evidence).chain(inner.audit.as_ref()) {
            // The vault's own: every key the log ever signed with.
            let verifiers = match match handle.id {
                LogId::Evidence => &options.evidence_key,
                LogId::Audit => &options.audit_key,
            } {
                Some(key) => verifiers(handle.id, std::slice::from_ref(key))?,
                None => handle.verifiers(),
            };
            logs.push(Subject {
                log: handle.id,
                origin: handle.origin.clone(),
                verifiers,
            });
        }
        let target = Target {
            store: &*inner.store,
            blobs: inner.config.data_dir.join("blobs"),
            logs,
        };
        run(&target, options, progress, cancelled)
    }
}

/// Runs fsck on a stopped vault's data directory, reading the store
/// directly and writing nothing there ([`SqliteStore::open_read_only`]).
/// Holds a shared lock on `<data dir>/LOCK` while it runs, so `evault
/// serve` cannot start meanwhile; a data directory held by a running
/// server is refused ([`VaultError::Unavailable`]): run the online task
/// there instead. Keys default to `log.key` and `audit.key` in the data
/// directory.
pub fn fsck_data_dir(
    data_dir: &Path,
    options: &FsckOptions,
    progress: Progress<'_>,
    cancelled: Cancelled<'_>,
) -> Result<FsckReport> {
    fsck_stopped_vault(
        data_dir,
        &crate::StoreLocation::Sqlite,
        options,
        progress,
        cancelled,
    )
}

/// [`fsck_data_dir`] for a vault whose logs are in `store`: with
/// PostgreSQL, the database is opened with every transaction read-only,
/// and the data directory (locked the same way) gives the keys and blobs.
pub fn fsck_stopped_vault(
    data_dir: &Path,
    store: &crate::StoreLocation,
    options: &FsckOptions,
    progress: Progress<'_>,
    cancelled: Cancelled<'_>,
) -> Result<FsckReport> {
    if !data_dir.is_dir() {
        return Err(VaultError::NotFound(format!(
            "data directory {}",
            data_dir.display()
        )));
    }
    let _lock = crate::datadir::lock_shared(data_dir)?;
    match store {
        crate::StoreLocation::Sqlite => fsck_stopped(data_dir, options, progress, cancelled),
        crate::StoreLocation::Postgres(url) => {
            let store = evault_store::postgres::PgStore::open_with(
                url,
                evault_store::postgres::PgOptions {
                    read_only: true,
                    ..Default::default()
                },
            )?;
            fsck_store(data_dir, &store, options, progress, cancelled)
        }
    }
}

/// [`fsck_data_dir`] for a caller that holds the data directory's lock
/// already (`evault migrate`).
pub(crate) fn fsck_stopped(
    data_dir: &Path,
    options: &FsckOptions,
    progress: Progress<'_>,
    cancelled: Cancelled<'_>,
) -> Result<FsckReport> {
    let store = SqliteStore::open_read_only(&data_dir.join("evault.db"))?;
    fsck_store(data_dir, &store, options, progress, cancelled)
}

/// The check of `store`, with keys (unless given) and blobs from
/// `data_dir`.
pub(crate) fn fsck_store(
    data_dir: &Path,
    store: &dyn Store,
    options: &FsckOptions,
    progress: Progress<'_>,
    cancelled: Cancelled<'_>,
) -> Result<FsckReport> {
    let mut logs = Vec::new();
    for (log, meta, file, given) in [
        (
            LogId::Evidence,
            META_ORIGIN,
            "log.key",
            &options.evidence_key,
        ),
        (
            LogId::Audit,
            META_AUDIT_ORIGIN,
            "audit.key",
            &options.audit_key,
        ),
    ] {
        let Some(origin) = store.get_meta(meta)? else {
            if log == LogId::Audit
                && store.tree_size(log)? == 0
                && store.latest_checkpoint(log)?.is_none()
            {
                // Audit was never enabled on this vault.
                continue;
            }
            return Err(VaultError::Inconsistent(format!(
                "the store has no {log} log origin (meta key {meta:?})"
            )));
        };
        // Given, else every key of the stored key set (after a rotation),
        // else the key file's.
        let keys = match (given, crate::keyring::load_entries(store, log)?) {
            (Some(k), _) => vec![k.clone()],
            (None, Some(entries)) => entries
                .into_iter()
                .filter(|e| e.state != crate::keyring::KeyState::Pending)
                .map(|e| e.verifier_key)
                .collect(),
            (None, None) => vec![key_file_verifier(&data_dir.join(file), log)?],
        };
        logs.push(Subject {
            log,
            origin,
            verifiers: verifiers(log, &keys)?,
        });
    }
    let target = Target {
        store,
        blobs: data_dir.join("blobs"),
        logs,
    };
    run(&target, options, progress, cancelled)
}

/// The verifier key of the signer key file at `path`, read only.
fn key_file_verifier(path: &Path, log: LogId) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            VaultError::NotFound(format!(
                "the {log} log's key file {} (give its verifier key instead)",
                path.display()
            ))
        } else {
            e.into()
        }
    })?;
    let text = SignerKeyText::from(text.trim().to_string());
    let signer =
        Ed25519Signer::from_signer_key(text.expose_secret()).map_err(|source| VaultError::Key {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(signer.verifier_key().as_str().to_string())
}

fn verifiers(log: LogId, keys: &[String]) -> Result<std::sync::Arc<Verifiers>> {
    let mut v = Verifiers::new();
    for key in keys {
        v.insert_boxed(
            verifier_for(key)
                .map_err(|e| VaultError::Invalid(format!("the {log} log's verifier key: {e}")))?,
        )
        .map_err(|e| VaultError::Invalid(e.to_string()))?;
    }
    Ok(std::sync::Arc::new(v))
}

/// The run over every log of `target`.
fn run(
    target: &Target<'_>,
    options: &FsckOptions,
    progress: Progress<'_>,
    cancelled: Cancelled<'_>,
) -> Result<FsckReport> {
    let started = Instant::now();
    let mut findings = Findings {
        max: options.max_findings_per_kind.max(1),
        kept: Vec::new(),
        per_kind: HashMap::new(),
        omitted: BTreeMap::new(),
        total: 0,
    };
    let sizes: Vec<u64> = target
        .logs
        .iter()
        .map(|s| target.store.tree_size(s.log))
        .collect::<std::result::Result<_, _>>()?;
    let labels = if target.logs.iter().any(|s| s.log == LogId::Evidence) {
        target.store.label_index_len()?
    } else {
        0
    };
    let total = sizes.iter().sum::<u64>() + labels;
    let mut done = 0u64;
    progress(done, total);
    let mut summaries = Vec::new();
    let mut complete = true;
    for (subject, &size) in target.logs.iter().zip(&sizes) {
        let mut run = LogRun {
            target,
            subject,
            options,
            size,
            findings: &mut findings,
            summary: LogSummary {
                log: subject.log.as_str(),
                origin: subject.origin.clone(),
                size,
                ..LogSummary::default()
            },
            tainted: HashSet::new(),
            checked_blobs: HashSet::new(),
            label_count: 0,
            label_mismatch: false,
        };
        let finished = run.check(
            &mut |n| {
                done += n;
                progress(done, total);
            },
            cancelled,
        )?;
        summaries.push(run.summary);
        if !finished {
            complete = false;
            break;
        }
    }
    if complete {
        let total = total.max(done);
        progress(total, total);
    }
    Ok(FsckReport {
        clean: complete && findings.total == 0,
        complete,
        logs: summaries,
        findings: findings.kept,
        omitted: findings.omitted,
        total_findings: findings.total,
        elapsed_ms: elapsed_ms(started),
    })
}

/// The check of one log.
struct LogRun<'a> {
    target: &'a Target<'a>,
    subject: &'a Subject,
    options: &'a FsckOptions,
    size: u64,
    findings: &'a mut Findings,
    summary: LogSummary,
    /// Tiles (level, index) whose rebuilt contents differ from the stored
    /// ones: a difference in the tile above at their slot follows from it.
    tainted: HashSet<(u8, u64)>,
    /// Blob digests already hashed (records may share a blob).
    checked_blobs: HashSet<[u8; 32]>,
    /// Labels the records carry, to compare with the label index's length.
    label_count: u64,
    /// Whether a record's labels were found not all indexed.
    label_mismatch: bool,
}

/// A stored checkpoint, opened.
struct OpenedCheckpoint {
    size: u64,
    /// `None` if it did not verify (already reported).
    body: Option<Checkpoint>,
}

impl LogRun<'_> {
    fn log(&self) -> LogId {
        self.subject.log
    }

    fn report(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// Returns false if cancelled.
    fn check(&mut self, advance: &mut dyn FnMut(u64), cancelled: Cancelled<'_>) -> Result<bool> {
        let log = self.log();
        let checkpoints = self.open_checkpoints()?;
        // The sizes at which the rebuilt root is taken.
        let mut wanted: Vec<u64> = checkpoints
            .iter()
            .filter(|c| c.body.is_some() && c.size <= self.size)
            .map(|c| c.size)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut roots: HashMap<u64, (Hash, bool)> = HashMap::new();
        if wanted.first() == Some(&0) {
            roots.insert(0, (EMPTY_ROOT, false));
        }
        let mut wanted = wanted.into_iter().filter(|&s| s > 0).peekable();

        let mut builder = TileBuilder::new();
        // The latest contents of each level's rightmost tile, by level.
        let mut partial: BTreeMap<u8, (TileId, Vec<u8>)> = BTreeMap::new();
        // Whether a leaf below the current position was found changed.
        let mut leaf_tainted = false;
        let mut next = 0u64;
        while next < self.size {
            if cancelled() {
                return Ok(false);
            }
            let end = (next + CHUNK).min(self.size);
            let hashes = self.check_leaves(next, end)?;
            self.check_indexes(next, end)?;
            // Feed the builder in pieces that end at each checkpoint size.
            let mut at = 0usize;
            while at < hashes.len() {
                let upto = match wanted.peek() {
                    Some(&s) if s <= end => (s - next) as usize,
                    _ => hashes.len(),
                };
                let tiles = builder.append(&hashes[at..upto]);
                at = upto;
                for (tile, data) in tiles {
                    if tile.width == TILE_WIDTH {
                        partial.remove(&tile.level);
                        leaf_tainted |= self.compare_tile(tile, &data)?;
                    } else {
                        partial.insert(tile.level, (tile, data));
                    }
                }
                if wanted.peek() == Some(&(next + upto as u64)) {
                    let s = next + upto as u64;
                    // The partial tiles of this size decide its root too.
                    let mut taint = leaf_tainted;
                    for (tile, data) in partial.values() {
                        taint |= self.partial_differs(*tile, data)?;
                    }
                    roots.insert(s, (builder.root(), taint));
                    wanted.next();
                }
            }
            self.summary.leaves += end - next;
            advance(end - next);
            next = end;
        }
        for (tile, data) in std::mem::take(&mut partial).into_values() {
            self.compare_tile(tile, &data)?;
        }
        self.check_extra_rows()?;
        self.check_stored_tile_set()?;
        self.check_checkpoints(&checkpoints, &roots)?;
        if log == LogId::Evidence && !self.check_label_index(advance, cancelled)? {
            return Ok(false);
        }
        Ok(true)
    }

    /// Every stored checkpoint, opened with the log's key: a failure is
    /// reported and the checkpoint is then skipped by the root and
    /// consistency checks.
    fn open_checkpoints(&mut self) -> Result<Vec<OpenedCheckpoint>> {
        let log = self.log();
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.target.store.list_checkpoints(log, after, 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.size);
            for cp in page {
                let body = match evault_verify::open_checkpoint(
                    &cp.note,
                    &self.subject.verifiers,
                    Some(&self.subject.origin),
                ) {
                    Ok((body, _)) if body.size != cp.size => {
                        self.report(
                            Finding::new(
                                FindingKind::Checkpoint,
                                log,
                                "the checkpoint is signed for another size than it is stored \
                                 under",
                            )
                            .checkpoint(cp.size)
                            .differs(format!("size {}", cp.size), format!("size {}", body.size)),
                        );
                        None
                    }
                    Ok((body, _)) if body.size > self.size => {
                        // Online the log grows while fsck runs: a checkpoint
                        // signed after this run read the tree size is newer,
                        // not wrong. Beyond what the store holds now, it is.
                        if body.size <= self.target.store.tree_size(log)? {
                            continue;
                        }
                        self.report(
                            Finding::new(
                                FindingKind::Checkpoint,
                                log,
                                "the checkpoint is beyond the stored tree",
                            )
                            .checkpoint(cp.size)
                            .differs(
                                format!("size at most {}", self.size),
                                format!("size {}", cp.size),
                            ),
                        );
                        None
                    }
                    Ok((body, _)) => Some(body),
                    Err(e) => {
                        self.report(
                            Finding::new(
                                FindingKind::Checkpoint,
                                log,
                                format!("the checkpoint does not verify: {e}"),
                            )
                            .checkpoint(cp.size)
                            .differs(
                                format!(
                                    "a note for {} signed by the log's key",
                                    self.subject.origin
                                ),
                                "a note that does not open".to_string(),
                            ),
                        );
                        None
                    }
                };
                self.summary.checkpoints += 1;
                self.summary.latest_checkpoint = self.summary.latest_checkpoint.max(cp.size);
                out.push(OpenedCheckpoint {
                    size: cp.size,
                    body,
                });
            }
        }
        if out.is_empty() {
            self.report(Finding::new(
                FindingKind::Checkpoint,
                log,
                "the log has no stored checkpoint (a vault signs one when it creates a log)",
            ));
        }
        Ok(out)
    }

    /// Leaves `[start, end)`: each row recomputed and its payload checked.
    /// Returns the leaf hashes the tree is rebuilt from; for a missing or
    /// unreadable row, the stored level-0 hash (so one bad row is reported
    /// once, not again by every tile above it).
    fn check_leaves(&mut self, start: u64, end: u64) -> Result<Vec<Hash>> {
        let log = self.log();
        let mut hashes = Vec::with_capacity((end - start) as usize);
        let mut expect = start;
        let fill_to = |run: &mut Self, upto: u64, hashes: &mut Vec<Hash>| -> Result<()> {
            while (hashes.len() as u64) < upto - start {
                let i = start + hashes.len() as u64;
                hashes.push(run.stored_leaf_hash(i)?);
            }
            Ok(())
        };
        match log {
            LogId::Evidence => {
                for row in self.target.store.scan_records(start, end)? {
                    let i = scanned_index(&row);
                    for missing in expect..i {
                        self.missing_row(missing);
                    }
                    fill_to(self, i, &mut hashes)?;
                    match row {
                        Ok(row) => {
                            self.check_record(&row)?;
                            hashes.push(leaf_hash(&row.leaf_data));
                        }
                        Err(bad) => {
                            self.unreadable(bad.leaf_index, &bad.why);
                            hashes.push(self.stored_leaf_hash(i)?);
                        }
                    }
                    expect = i + 1;
                }
            }
            LogId::Audit => {
                for row in self.target.store.scan_audit(start, end)? {
                    let i = scanned_index(&row);
                    for missing in expect..i {
                        self.missing_row(missing);
                    }
                    fill_to(self, i, &mut hashes)?;
                    match row {
                        Ok(row) => {
                            self.check_audit(&row);
                            hashes.push(leaf_hash(&row.leaf_data));
                        }
                        Err(bad) => {
                            self.unreadable(bad.leaf_index, &bad.why);
                            hashes.push(self.stored_leaf_hash(i)?);
                        }
                    }
                    expect = i + 1;
                }
            }
        }
        for missing in expect..end {
            self.missing_row(missing);
        }
        fill_to(self, end, &mut hashes)?;
        Ok(hashes)
    }

    fn missing_row(&mut self, i: u64) {
        let f = Finding::new(
            FindingKind::LeafRow,
            self.log(),
            "the leaf's row is missing below the tree size",
        )
        .leaf(i)
        .differs("a stored row", "none");
        self.report(f);
    }

    fn unreadable(&mut self, i: u64, why: &str) {
        let f = Finding::new(FindingKind::Unreadable, self.log(), why.to_string()).leaf(i);
        self.report(f);
    }

    /// The hash the stored level-0 tile holds for leaf `i` (zero if none).
    fn stored_leaf_hash(&self, i: u64) -> Result<Hash> {
        let index = i / u64::from(TILE_WIDTH);
        let slot = (i % u64::from(TILE_WIDTH)) as usize;
        let data = self.target.store.stored_tile(self.log(), 0, index)?;
        Ok(data
            .as_deref()
            .and_then(|d| d.get(slot * HASH_SIZE..(slot + 1) * HASH_SIZE))
            .and_then(evault_merkle::hash_from_slice)
            .unwrap_or([0u8; HASH_SIZE]))
    }

    /// An evidence row: its leaf recomputed from its columns, its dedup key
    /// recomputed, its payload hashed.
    fn check_record(&mut self, row: &EvidenceRow) -> Result<()> {
        let log = self.log();
        let i = row.leaf_index;
        match evidence_from_row(row).leaf_data() {
            Ok(leaf) if leaf == row.leaf_data => {}
            Ok(leaf) => {
                let (expected, found) = leaf_difference(&leaf, &row.leaf_data);
                self.report(
                    Finding::new(
                        FindingKind::Record,
                        log,
                        "the record's columns differ from its stored leaf data",
                    )
                    .leaf(i)
                    .differs(expected, found),
                );
            }
            Err(e) => self.report(
                Finding::new(
                    FindingKind::Record,
                    log,
                    format!("the record's columns make no leaf: {e}"),
                )
                .leaf(i),
            ),
        }
        let dedup = dedup_key(&row.sha256, &row.content_type, &row.labels);
        if dedup != row.dedup_key {
            self.report(
                Finding::new(
                    FindingKind::Index,
                    log,
                    "the stored dedup key is not the one the record's payload digest, content \
                     type and labels give",
                )
                .leaf(i)
                .index("dedup_key")
                .differs(hex(&dedup), hex(&row.dedup_key)),
            );
        }
        if self.options.payloads || matches!(row.payload, Payload::Erased { .. }) {
            self.check_payload(row)?;
        }
        Ok(())
    }

    /// An erased record: its erasure row and tombstone agree with it, and
    /// no blob file keeps its bytes unless a live record shares them.
    fn check_erased(&mut self, row: &EvidenceRow, tombstone_leaf: u64) -> Result<()> {
        let log = self.log();
        let i = row.leaf_index;
        let finding = |detail: String| {
            Finding::new(FindingKind::Erasure, log, detail)
                .leaf(i)
                .blob(&row.sha256)
        };
        let Some(c) = self.target.store.compliance() else {
            self.report(finding(
                "the record is marked erased but the store keeps no erasures".into(),
            ));
            return Ok(());
        };
        match c.erasure(i)? {
            Some(e) if e.tombstone_leaf == tombstone_leaf => {}
            Some(e) => self.report(finding(format!(
                "the erasure row names tombstone leaf {}, the record {tombstone_leaf}",
                e.tombstone_leaf
            ))),
            None => self.report(finding(
                "the record is marked erased but has no erasure row".into(),
            )),
        }
        let tombstone = self
            .target
            .store
            .record_by_index(tombstone_leaf)?
            .filter(crate::erasure::is_tombstone)
            .and_then(|t| match t.payload {
                Payload::Inline(b) => crate::erasure::Tombstone::parse(&b),
                _ => None,
            });
        match tombstone {
            Some(t)
                if t.erases.id == row.id
                    && t.erases.leaf_index == i
                    && t.erases.sha256 == hex(&row.sha256)
                    && t.erases.size == row.size => {}
            Some(_) => self.report(finding(format!(
                "the tombstone at leaf {tombstone_leaf} names another record"
            ))),
            None => self.report(finding(format!(
                "no valid tombstone at leaf {tombstone_leaf}"
            ))),
        }
        let h = hex(&row.sha256);
        let path = self.target.blobs.join(&h[0..2]).join(&h[2..4]).join(&h);
        if path.exists() {
            let live = c
                .records_by_sha256(&row.sha256)?
                .iter()
                .any(|r| matches!(r.payload, Payload::External));
            if !live {
                self.report(finding(format!(
                    "the blob file {} of an erased payload is still there (a crash between \
                     the erasure and its unlink; remediable: `evault serve` removes it at \
                     start, or delete the file)",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    fn check_payload(&mut self, row: &EvidenceRow) -> Result<()> {
        let log = self.log();
        let i = row.leaf_index;
        match &row.payload {
            Payload::Inline(bytes) => {
                self.summary.inline_payloads += 1;
                self.summary.payload_bytes += bytes.len() as u64;
                let digest: [u8; 32] = Sha256::digest(bytes).into();
                if digest != row.sha256 || bytes.len() as u64 != row.size {
                    self.report(
                        Finding::new(
                            FindingKind::Payload,
                            log,
                            "the inline payload differs from the record's SHA-256 and size",
                        )
                        .leaf(i)
                        .blob(&row.sha256)
                        .differs(
                            format!("sha256 {} and {} bytes", hex(&row.sha256), row.size),
                            format!("sha256 {} and {} bytes", hex(&digest), bytes.len()),
                        ),
                    );
                }
            }
            Payload::Erased { tombstone_leaf } => {
                let tombstone_leaf = *tombstone_leaf;
                self.check_erased(row, tombstone_leaf)?;
            }
            Payload::External => {
                if !self.checked_blobs.insert(row.sha256) {
                    return Ok(());
                }
                let h = hex(&row.sha256);
                let path = self.target.blobs.join(&h[0..2]).join(&h[2..4]).join(&h);
                let expected = format!("sha256 {h} and {} bytes", row.size);
                match hash_file(&path) {
                    Ok((digest, len)) => {
                        self.summary.blobs += 1;
                        self.summary.payload_bytes += len;
                        if digest != row.sha256 || len != row.size {
                            self.report(
                                Finding::new(
                                    FindingKind::Blob,
                                    log,
                                    format!(
                                        "the blob file {} differs from the record's SHA-256 and \
                                         size",
                                        path.display()
                                    ),
                                )
                                .leaf(i)
                                .blob(&row.sha256)
                                .differs(
                                    expected,
                                    format!("sha256 {} and {len} bytes", hex(&digest)),
                                ),
                            );
                        }
                    }
                    Err(e) => self.report(
                        Finding::new(
                            FindingKind::Blob,
                            log,
                            format!("the blob file {} cannot be read: {e}", path.display()),
                        )
                        .leaf(i)
                        .blob(&row.sha256)
                        .differs(expected, "no readable file"),
                    ),
                }
            }
        }
        Ok(())
    }

    /// An audit row: its leaf parsed (canonical form only) and compared
    /// with its columns.
    fn check_audit(&mut self, row: &AuditRow) {
        let log = self.log();
        let i = row.leaf_index;
        let event = match AuditEvent::from_leaf_data(&row.leaf_data, i) {
            Ok(e) => e,
            Err(why) => {
                self.report(
                    Finding::new(
                        FindingKind::AuditEvent,
                        log,
                        format!("the stored leaf is not a valid audit event: {why}"),
                    )
                    .leaf(i),
                );
                return;
            }
        };
        let time_ms = crate::audit::check_event(&event);
        let leaf = (
            event.id.as_str(),
            event.principal.as_str(),
            event.operation.as_str(),
            event.outcome.as_str(),
            time_ms.as_ref().ok().copied(),
        );
        let columns = (
            row.id.as_str(),
            row.principal.as_str(),
            row.operation.as_str(),
            row.outcome.as_str(),
            Some(row.time_ms),
        );
        if let Err(why) = &time_ms {
            self.report(
                Finding::new(
                    FindingKind::AuditEvent,
                    log,
                    format!("the stored leaf breaks the audit format: {why}"),
                )
                .leaf(i),
            );
        } else if leaf != columns {
            let names = ["id", "principal", "operation", "outcome", "time_ms"];
            let l = [
                leaf.0.to_string(),
                leaf.1.to_string(),
                leaf.2.to_string(),
                leaf.3.to_string(),
                format!("{:?}", leaf.4),
            ];
            let c = [
                columns.0.to_string(),
                columns.1.to_string(),
                columns.2.to_string(),
                columns.3.to_string(),
                format!("{:?}", columns.4),
            ];
            let (mut e, mut f) = (Vec::new(), Vec::new());
            for ((n, a), b) in names.iter().zip(&l).zip(&c) {
                if a != b {
                    e.push(format!("{n} {a:?}"));
                    f.push(format!("{n} {b:?}"));
                }
            }
            self.report(
                Finding::new(
                    FindingKind::AuditEvent,
                    log,
                    "the event's columns differ from its leaf",
                )
                .leaf(i)
                .differs(
                    format!("(from the leaf) {}", e.join(", ")),
                    format!("(in the columns) {}", f.join(", ")),
                ),
            );
        }
    }

    /// What the indexes answer for rows `[start, end)`.
    fn check_indexes(&mut self, start: u64, end: u64) -> Result<()> {
        let log = self.log();
        for l in self.target.store.index_lookups(log, start, end)? {
            self.check_lookup(&l);
        }
        Ok(())
    }

    fn check_lookup(&mut self, l: &IndexLookup) {
        let log = self.log();
        let i = l.leaf_index;
        let lookup = |run: &mut Self, name: &str, got: Option<u64>| {
            if got != Some(i) {
                run.report(
                    Finding::new(
                        FindingKind::Index,
                        log,
                        format!("a lookup by the row's {name} does not lead to it"),
                    )
                    .leaf(i)
                    .index(name)
                    .differs(
                        format!("leaf {i}"),
                        got.map_or("nothing".to_string(), |g| format!("leaf {g}")),
                    ),
                );
            }
        };
        lookup(self, "id", l.by_id);
        if log == LogId::Evidence {
            lookup(self, "dedup_key", l.by_dedup_key);
            if l.has_idempotency_key {
                lookup(self, "idempotency_key", l.by_idempotency_key);
            }
        }
        for name in &l.missing_from {
            self.report(
                Finding::new(
                    FindingKind::Index,
                    log,
                    "the index does not list the row under its own value",
                )
                .leaf(i)
                .index(name)
                .differs(format!("an entry for leaf {i}"), "none"),
            );
        }
        for name in &l.ahead_in {
            self.label_mismatch |= *name == "record_labels";
            self.report(
                Finding::new(
                    FindingKind::Index,
                    log,
                    "the index holds an entry for a row its follower has not reached",
                )
                .leaf(i)
                .index(name)
                .differs(
                    "no entry at or past the index cursor",
                    format!("an entry for leaf {i}"),
                ),
            );
        }
        if !l.indexed {
            // The follower indexes this row later: nothing to compare yet.
            return;
        }
        if let Some(labels) = l.labels {
            // The label index holds exactly the indexed rows' labels.
            self.label_count += labels;
        }
        if log == LogId::Evidence
            && let (Some(labels), Some(indexed)) = (l.labels, l.labels_indexed)
            && labels != indexed
        {
            self.label_mismatch = true;
            self.report(
                Finding::new(
                    FindingKind::Index,
                    log,
                    "the label index lacks entries for some of the record's labels",
                )
                .leaf(i)
                .index("record_labels")
                .differs(format!("{labels} entries"), format!("{indexed} entries")),
            );
        }
    }

    /// Compares a rebuilt tile with the stored one, slot by slot. Returns
    /// whether a level-0 slot differed (a changed leaf). The stored tile
    /// must have exactly the rebuilt width.
    fn compare_tile(&mut self, tile: TileId, rebuilt: &[u8]) -> Result<bool> {
        let log = self.log();
        self.summary.tiles += 1;
        let Some(stored) = self.target.store.stored_tile(log, tile.level, tile.index)? else {
            self.report(
                Finding::new(FindingKind::Tile, log, "the tile is not stored")
                    .tile(tile)
                    .differs(format!("{} hashes", tile.width), "none"),
            );
            self.tainted.insert((tile.level, tile.index));
            return Ok(false);
        };
        // A partial tile of a live store may have grown with the tree since
        // the run took its size: then only its prefix is this tree's.
        let grown = stored.len() > rebuilt.len()
            && tile.width < TILE_WIDTH
            && self.target.store.tree_size(log)? > self.size;
        let stored = if grown {
            stored[..rebuilt.len()].to_vec()
        } else {
            stored
        };
        if stored.len() != rebuilt.len() {
            self.report(
                Finding::new(
                    FindingKind::Tile,
                    log,
                    "the stored tile does not have the width the tree gives it",
                )
                .tile(tile)
                .differs(
                    format!("{} bytes", rebuilt.len()),
                    format!("{} bytes", stored.len()),
                ),
            );
            self.tainted.insert((tile.level, tile.index));
        }
        // For a full tile whose contents differ: whether the stored tile
        // still hashes to its node in the stored tile above. If it does,
        // what changed is below it (a leaf); if not, the tile itself.
        let agrees_above = if tile.width == TILE_WIDTH && stored != rebuilt {
            self.agrees_with_parent(tile, &stored)?
        } else {
            None
        };
        let mut leaf_changed = false;
        for (slot, (a, b)) in rebuilt
            .chunks_exact(HASH_SIZE)
            .zip(stored.chunks(HASH_SIZE))
            .enumerate()
        {
            if a == b {
                continue;
            }
            self.tainted.insert((tile.level, tile.index));
            let below = tile.index * u64::from(TILE_WIDTH) + slot as u64;
            if tile.level == 0 && agrees_above == Some(false) {
                self.report(
                    Finding::new(
                        FindingKind::Tile,
                        log,
                        "the stored level-0 tile differs from the leaf's hash at its slot and \
                         does not hash to its node in the tile above: the tile was changed",
                    )
                    .leaf(below)
                    .tile(tile)
                    .differs(hex(a), hex(b)),
                );
            } else if tile.level == 0 {
                leaf_changed = true;
                self.report(
                    Finding::new(
                        FindingKind::LeafHash,
                        log,
                        "the leaf's hash differs from its slot in the stored level-0 tile",
                    )
                    .leaf(below)
                    .tile(tile)
                    .differs(hex(a), hex(b)),
                );
            } else if self.tainted.contains(&(tile.level - 1, below)) {
                self.summary.consequential += 1;
            } else {
                self.report(
                    Finding::new(
                        FindingKind::Tile,
                        log,
                        format!(
                            "slot {slot} differs from the hash of the tiles below (rebuilt from \
                             the leaves)"
                        ),
                    )
                    .tile(tile)
                    .differs(hex(a), hex(b)),
                );
            }
        }
        // Only under a row that agrees: a changed row is reported above,
        // and its inner levels then differ as a consequence.
        if tile.width == TILE_WIDTH && stored == rebuilt {
            self.compare_inner(tile, rebuilt)?;
        }
        Ok(leaf_changed)
    }

    /// Compares a full tile's stored inner levels, which proofs read in
    /// place of its row, with those of its row (stored and rebuilt alike).
    /// A driver that keeps none has nothing to compare.
    fn compare_inner(&mut self, tile: TileId, row: &[u8]) -> Result<()> {
        let log = self.log();
        let Some((_, Some(stored))) = self
            .target
            .store
            .read_tiles_with_inner(log, &[tile])?
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        let want = tile_inner(tile, row)
            .map_err(|e| VaultError::Inconsistent(format!("{log} tile: {e}")))?;
        if let Some((slot, (a, b))) = want
            .chunks_exact(HASH_SIZE)
            .zip(stored.chunks(HASH_SIZE))
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            self.report(
                Finding::new(
                    FindingKind::Tile,
                    log,
                    format!(
                        "the tile's stored inner levels, which proofs read, differ from those \
                         of its row (first at inner hash {slot})"
                    ),
                )
                .tile(tile)
                .differs(hex(a), hex(b)),
            );
        }
        Ok(())
    }

    /// Whether the stored full `tile` hashes to its node in the stored
    /// tile above; `None` if that tile or slot is not stored.
    fn agrees_with_parent(&self, tile: TileId, stored: &[u8]) -> Result<Option<bool>> {
        let parent = self.target.store.stored_tile(
            self.log(),
            tile.level + 1,
            tile.index / u64::from(TILE_WIDTH),
        )?;
        let slot = (tile.index % u64::from(TILE_WIDTH)) as usize;
        let Some(node) = parent
            .as_deref()
            .and_then(|p| p.get(slot * HASH_SIZE..(slot + 1) * HASH_SIZE))
        else {
            return Ok(None);
        };
        let folded = crate::integrity::subtree_hash(&crate::integrity::split_hashes(stored));
        Ok(Some(folded[..] == *node))
    }

    /// Whether the stored contents of a partial tile differ from `rebuilt`
    /// (without reporting: the final comparison does).
    fn partial_differs(&self, tile: TileId, rebuilt: &[u8]) -> Result<bool> {
        let stored = self
            .target
            .store
            .stored_tile(self.log(), tile.level, tile.index)?;
        Ok(!stored.is_some_and(|s| s.starts_with(rebuilt)))
    }

    /// Rows stored at or beyond the tree size.
    fn check_extra_rows(&mut self) -> Result<()> {
        let log = self.log();
        let (count, max) = self.target.store.leaf_rows(log)?;
        if let Some(max) = max
            && max >= self.size
        {
            // The tree may have grown since the run started (online).
            let now = self.target.store.tree_size(log)?;
            if max >= now {
                self.report(
                    Finding::new(
                        FindingKind::LeafRow,
                        log,
                        format!("{count} rows are stored, some at or beyond the tree size"),
                    )
                    .leaf(max)
                    .differs(
                        format!("leaf indexes below {now}"),
                        format!("leaf index {max}"),
                    ),
                );
            }
        }
        Ok(())
    }

    /// Stored tiles the tree does not have (beyond it), or wider than it
    /// makes them.
    fn check_stored_tile_set(&mut self) -> Result<()> {
        let log = self.log();
        let keys = self.target.store.tile_keys(log)?;
        // Read after the keys: a tile grows only with the size.
        let now = self.target.store.tree_size(log)?;
        for k in keys {
            let at_start = evault_merkle::tiles::tile_width(k.level, k.index, self.size);
            let at_now = evault_merkle::tiles::tile_width(k.level, k.index, now);
            let max = at_now.map_or(0, |w| u64::from(w) * HASH_SIZE as u64);
            let tile = TileId {
                level: k.level,
                index: k.index,
                width: at_start.or(at_now).unwrap_or(TILE_WIDTH),
            };
            if at_now.is_none() {
                self.report(
                    Finding::new(FindingKind::Tile, log, "a tile is stored beyond the tree")
                        .tile(tile)
                        .differs("no tile", format!("{} bytes", k.bytes)),
                );
            } else if at_start.is_none() && k.bytes > max {
                // A tile that appeared since the run took its size (a
                // tile of the checked tree was compared whole already).
                self.report(
                    Finding::new(
                        FindingKind::Tile,
                        log,
                        "the stored tile does not have the width the tree gives it",
                    )
                    .tile(tile)
                    .differs(format!("{max} bytes"), format!("{} bytes", k.bytes)),
                );
            }
        }
        Ok(())
    }

    /// Each checkpoint's root against the tree rebuilt at its size, and its
    /// consistency with the next one from the stored tiles.
    fn check_checkpoints(
        &mut self,
        checkpoints: &[OpenedCheckpoint],
        roots: &HashMap<u64, (Hash, bool)>,
    ) -> Result<()> {
        let log = self.log();
        let mut previous: Option<&Checkpoint> = None;
        for cp in checkpoints {
            let Some(body) = &cp.body else { continue };
            match roots.get(&cp.size) {
                Some((root, tainted)) if *root != body.root_hash => {
                    if *tainted {
                        self.summary.consequential += 1;
                    } else {
                        self.report(
                            Finding::new(
                                FindingKind::CheckpointRoot,
                                log,
                                "the signed root is not the root of the stored leaves at its \
                                 size",
                            )
                            .checkpoint(cp.size)
                            .differs(hex(root), hex(&body.root_hash)),
                        );
                    }
                }
                _ => {}
            }
            if let Some(prev) = previous
                && prev.size > 0
            {
                self.check_consistency(prev, body)?;
            }
            previous = Some(body);
        }
        Ok(())
    }

    fn check_consistency(&mut self, old: &Checkpoint, new: &Checkpoint) -> Result<()> {
        let log = self.log();
        let reader = TiledHashReader {
            tiles: StoreTiles::uncached(self.target.store, log),
            tree_size: new.size,
        };
        let outcome = evault_merkle::consistency_proof(&reader, old.size, new.size)
            .map_err(|e| e.to_string())
            .and_then(|proof| {
                evault_merkle::verify_consistency(
                    old.size,
                    new.size,
                    &proof,
                    &old.root_hash,
                    &new.root_hash,
                )
                .map_err(|e| e.to_string())
            });
        if let Err(why) = outcome {
            let tiles_bad = !self.tainted.is_empty();
            if tiles_bad {
                self.summary.consequential += 1;
                return Ok(());
            }
            self.report(
                Finding::new(
                    FindingKind::CheckpointConsistency,
                    log,
                    format!(
                        "the checkpoint is not consistent with the next one, of size {}: {why}",
                        new.size
                    ),
                )
                .checkpoint(old.size)
                .differs(
                    format!("a tree of size {} extending it", new.size),
                    "no valid consistency proof from the stored tiles",
                ),
            );
        }
        Ok(())
    }

    /// Every label index entry points at a record below the tree size that
    /// carries that label. When the per-record lookups found each record's
    /// labels indexed and the index has exactly as many entries, that is
    /// proven by counting; otherwise every entry is looked at, to name the
    /// stray ones.
    fn check_label_index(
        &mut self,
        advance: &mut dyn FnMut(u64),
        cancelled: Cancelled<'_>,
    ) -> Result<bool> {
        let log = self.log();
        let store = self.target.store;
        let now = store.tree_size(log)?;
        let len = store.label_index_len()?;
        let cursor = store.indexed_through()?;
        if cursor > now {
            self.report(
                Finding::new(
                    FindingKind::Index,
                    log,
                    "the index follower's cursor lies past the log: lists by label and \
                     digest lookups would miss the records between",
                )
                .index("index_state")
                .differs(format!("at most {now}"), cursor.to_string()),
            );
        }
        for fault in store.index_layout()? {
            self.report(
                Finding::new(
                    FindingKind::Index,
                    log,
                    format!("the follower's indexes are laid out wrong: {fault}"),
                )
                .index("index_runs")
                .differs(
                    "runs covering the indexed leaves, each entry in its run",
                    fault,
                ),
            );
        }
        if !self.label_mismatch && now == self.size && len == self.label_count {
            // Every record's labels each have their entry (the per-record
            // lookups), entries are unique (the index's key), and there are
            // as many as labels: so no other entry exists. Nothing to scan.
            self.summary.label_entries = len;
            advance(len);
            return Ok(true);
        }
        let mut after: Option<LabelEntry> = None;
        loop {
            if cancelled() {
                return Ok(false);
            }
            let page = store.label_index_page(after.as_ref(), 4096)?;
            // Read after the page: the cursor only grows, so an entry at
            // or past it was there before the follower reached its row.
            let cursor = store.indexed_through()?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for e in &page {
                if e.leaf_index >= cursor && e.leaf_index < now {
                    self.report(
                        Finding::new(
                            FindingKind::Index,
                            log,
                            format!(
                                "a label index entry {}={} points past the index cursor",
                                e.key, e.value
                            ),
                        )
                        .leaf(e.leaf_index)
                        .index("record_labels")
                        .differs(
                            format!("a leaf below {cursor}"),
                            format!("leaf {}", e.leaf_index),
                        ),
                    );
                } else if e.leaf_index >= now {
                    self.report(
                        Finding::new(
                            FindingKind::Index,
                            log,
                            format!(
                                "a label index entry {}={} points past the log",
                                e.key, e.value
                            ),
                        )
                        .leaf(e.leaf_index)
                        .index("record_labels")
                        .differs(
                            format!("a leaf below {now}"),
                            format!("leaf {}", e.leaf_index),
                        ),
                    );
                } else if e.leaf_index < self.size && !store.label_entry_matches(e)? {
                    self.report(
                        Finding::new(
                            FindingKind::Index,
                            log,
                            format!(
                                "a label index entry {}={} points at a record without that label",
                                e.key, e.value
                            ),
                        )
                        .leaf(e.leaf_index)
                        .index("record_labels")
                        .differs(
                            format!("the record carries {}={}", e.key, e.value),
                            "it does not",
                        ),
                    );
                }
            }
            self.summary.label_entries += page.len() as u64;
            advance(page.len() as u64);
            after = Some(last);
        }
        Ok(true)
    }
}

fn scanned_index<T: HasIndex>(row: &Scanned<T>) -> u64 {
    match row {
        Ok(r) => r.index(),
        Err(bad) => bad.leaf_index,
    }
}

trait HasIndex {
    fn index(&self) -> u64;
}

impl HasIndex for EvidenceRow {
    fn index(&self) -> u64 {
        self.leaf_index
    }
}

impl HasIndex for AuditRow {
    fn index(&self) -> u64 {
        self.leaf_index
    }
}

/// The members in which a recomputed evidence leaf and the stored one
/// differ, as (expected, found) text; the whole leaves if either is not a
/// JSON object.
fn leaf_difference(recomputed: &[u8], stored: &[u8]) -> (String, String) {
    let parse =
        |b: &[u8]| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(b).ok();
    match (parse(recomputed), parse(stored)) {
        (Some(r), Some(s)) => {
            let mut keys: Vec<&String> = r.keys().chain(s.keys()).collect();
            keys.sort();
            keys.dedup();
            let (mut e, mut f) = (Vec::new(), Vec::new());
            for k in keys {
                let (a, b) = (r.get(k), s.get(k));
                if a != b {
                    let show = |v: Option<&serde_json::Value>| {
                        v.map_or("(absent)".to_string(), |v| v.to_string())
                    };
                    e.push(format!("{k}: {}", show(a)));
                    f.push(format!("{k}: {}", show(b)));
                }
            }
            (
                format!("(from the columns) {}", e.join(", ")),
                format!("(in the leaf) {}", f.join(", ")),
            )
        }
        _ => (
            String::from_utf8_lossy(recomputed).into_owned(),
            String::from_utf8_lossy(stored).into_owned(),
        ),
    }
}

/// SHA-256 and length of a file, read in chunks.
fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize().into(), len))
}

/// Milliseconds since `since`, saturating.
pub(crate) fn elapsed_ms(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
