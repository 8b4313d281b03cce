//! `backfill_releases`: records the artifacts of historical releases as
//! evidence, after the fact, from an inventory (CSV or JSON, the task's
//! input file; docs/FORMATS.md).
//!
//! Each artifact becomes one record of content type [`BACKFILL_TYPE`]
//! whose payload is the RFC 8785 canonical JSON of its metadata, labelled
//! [`VERSION_LABEL`] and [`DIGEST_LABEL`]. A file named by the inventory is
//! read only under [`VaultConfig::backfill_dir`](crate::VaultConfig) and
//! hashed by the task (`checksum_verified`); a digest alone is taken as
//! given. An artifact of which a record with both labels exists (anyone's)
//! is `already-present`, so a re-run writes nothing new, and each write
//! carries an idempotency key derived from version and digest, so a retry
//! after a crash cannot log it twice. A dry run writes nothing at all.
//!
//! The result file is the JSON report of every item; while the task runs
//! it holds one JSON line per item done (a journal), from which a task
//! interrupted by a restart resumes.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use evault_store::ListQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::blobs::{StagedBody, StagedPayload};
use crate::tasks::{TaskContext, TaskKind, TaskOutput};
use crate::{PutRequest, Vault};

/// The task kind's name.
pub const KIND: &str = "backfill_releases";
/// Content type of a backfill record.
pub const BACKFILL_TYPE: &str = "application/vnd.evault.release-backfill+json";
/// The `v` member of a backfill record's payload.
pub const BACKFILL_FORMAT: &str = "evault/release-backfill/v1";
/// Content type an artifact's Sigstore bundle is logged with.
pub const SIGSTORE_BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The label the vault sets on a Sigstore bundle record with the outcome of
/// its verification (`verified`, `failed` or `unverifiable`).
pub const SIGSTORE_STATUS_LABEL: &str = "evault.sigstore.status";
/// Label naming the release of a backfilled artifact.
pub const VERSION_LABEL: &str = "release.version";
/// Label naming a backfilled artifact's SHA-256 (lower-case hex).
pub const DIGEST_LABEL: &str = "artifact.sha256";
/// Largest inventory, in bytes.
pub const MAX_INVENTORY: usize = 8 * 1024 * 1024;
/// Most artifacts (CSV rows, or JSON artifacts over all releases) in one
/// inventory.
pub const MAX_ITEMS: usize = 10_000;
/// Longest release version, in bytes.
pub const MAX_VERSION: usize = 128;
/// Longest artifact or bundle path, in bytes.
pub const MAX_PATH: usize = 1024;
/// Longest notes, in bytes.
pub const MAX_NOTES: usize = 4096;
/// Largest artifact the task hashes, in bytes (4 GiB): a bound on the
/// work one inventory line can ask for.
pub const MAX_ARTIFACT_BYTES: u64 = 4 << 30;
/// Items looked up and written together: their records go to the
/// sequencer at once, so they share group commits.
const CHUNK: usize = 64;
/// The CSV header, exactly.
const CSV_HEADER: [&str; 6] = [
    "version",
    "release_date",
    "artifact",
    "sha256",
    "bundle",
    "notes",
];

/// How an inventory is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryFormat {
    /// `text/csv`, header `version,release_date,artifact,sha256,bundle,notes`.
    Csv,
    /// `application/json`, an array of releases.
    Json,
}

impl InventoryFormat {
    /// The format of a media type (`text/csv` or `application/json`, any
    /// parameters), if it is one.
    pub fn from_media_type(ct: &str) -> Option<InventoryFormat> {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("text/csv") {
            Some(InventoryFormat::Csv)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(InventoryFormat::Json)
        } else {
            None
        }
    }

    /// Its name in the task's parameters: `csv` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryFormat::Csv => "csv",
            InventoryFormat::Json => "json",
        }
    }

    fn parse(s: &str) -> Option<InventoryFormat> {
        match s {
            "csv" => Some(InventoryFormat::Csv),
            "json" => Some(InventoryFormat::Json),
            _ => None,
        }
    }
}

/// One artifact of an inventory, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryItem {
    /// The release's version.
    pub version: String,
    /// When it was released: an RFC 3339 date or date-time, as given.
    pub release_date: String,
    /// The artifact's file, relative to the backfill directory.
    pub path: Option<String>,
    /// Its SHA-256 as given, lower-case hex.
    pub sha256: Option<String>,
    /// Its Sigstore bundle's file, relative to the backfill directory.
    pub bundle: Option<String>,
    /// Free text kept in the record.
    pub notes: Option<String>,
}

/// Parses and checks an inventory: every error names the CSV line or the
/// JSON release and artifact it is about. At most [`MAX_INVENTORY`] bytes
/// and [`MAX_ITEMS`] artifacts.
pub fn parse_inventory(
    bytes: &[u8],
    format: InventoryFormat,
) -> Result<Vec<InventoryItem>, String> {
    if bytes.len() > MAX_INVENTORY {
        return Err(format!(
            "the inventory is {} bytes; at most {MAX_INVENTORY} are allowed",
            bytes.len()
        ));
    }
    let items = match format {
        InventoryFormat::Csv => parse_csv(bytes)?,
        InventoryFormat::Json => parse_json(bytes)?,
    };
    if items.is_empty() {
        return Err("the inventory lists no artifacts".into());
    }
    Ok(items)
}

fn too_many() -> String {
    format!("the inventory lists more than {MAX_ITEMS} artifacts")
}

fn parse_csv(bytes: &[u8]) -> Result<Vec<InventoryItem>, String> {
    // A spreadsheet's UTF-8 byte order mark is not part of the header.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| format!("CSV header: {e}"))?
        .clone();
    if header.iter().map(str::trim).ne(CSV_HEADER) {
        return Err(format!(
            "CSV line 1: the header must be `{}`",
            CSV_HEADER.join(",")
        ));
    }
    let mut items = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("CSV line {}: {}", p.line(), csv_error(&e)),
            None => format!("CSV: {e}"),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if items.len() == MAX_ITEMS {
            return Err(too_many());
        }
        let field = |i: usize| {
            let v = record.get(i).unwrap_or("");
            (!v.is_empty()).then(|| v.to_string())
        };
        let item = InventoryItem {
            version: field(0).unwrap_or_default(),
            release_date: field(1).unwrap_or_default(),
            path: field(2),
            sha256: field(3),
            bundle: field(4),
            notes: field(5),
        };
        items.push(check_item(item).map_err(|why| format!("CSV line {line}: {why}"))?);
    }
    Ok(items)
}

/// A CSV error without the position the caller already names.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRelease {
    version: String,
    release_date: String,
    artifacts: Vec<JsonArtifact>,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonArtifact {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    bundle: Option<String>,
}

fn parse_json(bytes: &[u8]) -> Result<Vec<InventoryItem>, String> {
    // Parsed as values first, so an error in one release names it.
    let releases: Vec<Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("JSON inventory: {e}"))?;
    let mut items = Vec::new();
    for (r, release) in releases.into_iter().enumerate() {
        let release: JsonRelease =
            serde_json::from_value(release).map_err(|e| format!("JSON release {r}: {e}"))?;
        if release.artifacts.is_empty() {
            return Err(format!("JSON release {r}: lists no artifacts"));
        }
        for (a, artifact) in release.artifacts.into_iter().enumerate() {
            if items.len() == MAX_ITEMS {
                return Err(too_many());
            }
            let item = InventoryItem {
                version: release.version.clone(),
                release_date: release.release_date.clone(),
                path: artifact.path.filter(|s| !s.is_empty()),
                sha256: artifact.sha256.filter(|s| !s.is_empty()),
                bundle: artifact.bundle.filter(|s| !s.is_empty()),
                notes: release.notes.clone().filter(|s| !s.is_empty()),
            };
            items.push(
                check_item(item).map_err(|why| format!("JSON release {r}, artifact {a}: {why}"))?,
            );
        }
    }
    Ok(items)
}

fn check_item(mut item: InventoryItem) -> Result<InventoryItem, String> {
    if item.version.is_empty() || item.version.len() > MAX_VERSION {
        return Err(format!("version must be 1 to {MAX_VERSION} bytes"));
    }
    if item.version.chars().any(char::is_control) {
        return Err("version contains control characters".into());
    }
    check_date(&item.release_date).map_err(|why| format!("release_date {why}"))?;
    if item.path.is_none() && item.sha256.is_none() {
        return Err("an artifact needs a path, a sha256 or both".into());
    }
    if let Some(p) = &item.path {
        check_path(p).map_err(|why| format!("artifact path {p:?}: {why}"))?;
    }
    if let Some(p) = &item.bundle {
        check_path(p).map_err(|why| format!("bundle path {p:?}: {why}"))?;
    }
    if let Some(d) = item.sha256.take() {
        item.sha256 = Some(check_digest(&d)?);
    }
    if let Some(n) = &item.notes {
        if n.len() > MAX_NOTES {
            return Err(format!("notes longer than {MAX_NOTES} bytes"));
        }
        if n.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err("notes contain control characters".into());
        }
    }
    Ok(item)
}

/// An RFC 3339 date (`2024-05-01`) or date-time.
fn check_date(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is missing".into());
    }
    let full;
    let t = if s.len() == 10 {
        full = format!("{s}T00:00:00Z");
        &full
    } else {
        s
    };
    crate::analytics::parse_timestamp(t)
        .map(|_| ())
        .map_err(|why| format!("{s:?} is not an RFC 3339 date or date-time: {why}"))
}

/// A relative path of normal components: no root, no `..`, no `.`.
fn check_path(p: &str) -> Result<(), String> {
    if p.len() > MAX_PATH {
        return Err(format!("longer than {MAX_PATH} bytes"));
    }
    if p.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    if p.starts_with('/') {
        return Err("must be relative to the backfill directory".into());
    }
    // `Path::components` would quietly drop `.` and empty segments, so two
    // spellings of one file would make two records.
    if p.split('/').any(|seg| seg.is_empty() || seg == ".") {
        return Err("must not contain empty or `.` segments".into());
    }
    for c in Path::new(p).components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err("must not contain `..`".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the backfill directory".into());
            }
            Component::CurDir => return Err("must not contain `.` components".into()),
        }
    }
    Ok(())
}

/// 64 hex digits, with or without `sha256:`; returned lower-case.
fn check_digest(d: &str) -> Result<String, String> {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("sha256 {d:?} is not 64 hex digits"));
    }
    Ok(hex.to_ascii_lowercase())
}

/// An item's state in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemStatus {
    /// Not processed yet.
    Pending,
    /// Logged by this run.
    Backfilled,
    /// A record of this version and digest existed already.
    AlreadyPresent,
    /// A dry run's: it would have been backfilled.
    DryRun,
    /// Not backfilled: see the reason.
    Error,
}

impl ItemStatus {
    /// Every status, in the report's order.
    pub const ALL: [ItemStatus; 5] = [
        ItemStatus::Pending,
        ItemStatus::Backfilled,
        ItemStatus::AlreadyPresent,
        ItemStatus::DryRun,
        ItemStatus::Error,
    ];

    /// Its name: `pending`, `backfilled`, `already-present`, `dry-run` or
    /// `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Backfilled => "backfilled",
            ItemStatus::AlreadyPresent => "already-present",
            ItemStatus::DryRun => "dry-run",
            ItemStatus::Error => "error",
        }
    }

    /// Whether the item ended logged (or, in a dry run, would be): a
    /// later item of the same version and digest is then a duplicate.
    fn settled(self) -> bool {
        matches!(
            self,
            ItemStatus::Backfilled | ItemStatus::AlreadyPresent | ItemStatus::DryRun
        )
    }
}

/// One item of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportItem {
    /// The release's version.
    pub version: String,
    /// The artifact's path, if the inventory gave one.
    pub artifact: Option<String>,
    /// Its SHA-256 (computed, or as given); null if the file could not be
    /// read.
    pub sha256: Option<String>,
    /// What happened to it.
    pub status: ItemStatus,
    /// Why it is an error, or what else is worth knowing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The backfill record: the one written, or the one found (if the
    /// task's principal may read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The task hashed the file and it matched the inventory's digest (or
    /// the inventory gave none).
    pub checksum_verified: bool,
    /// `original` (its Sigstore bundle verified), `backfilled` (no
    /// bundle) or `unknown` (a bundle that did not verify); null when
    /// nothing was or would be written.
    pub verification_status: Option<String>,
}

/// The task's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether it was a dry run (nothing written).
    pub dry_run: bool,
    /// Items per status (every status named, `pending` 0 once finished).
    pub counts: BTreeMap<String, u64>,
    /// Every item, in inventory order.
    pub items: Vec<ReportItem>,
}

impl Report {
    fn new(dry_run: bool, items: Vec<ReportItem>) -> Report {
        let mut counts: BTreeMap<String, u64> = ItemStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for i in &items {
            *counts.entry(i.status.as_str().to_string()).or_default() += 1;
        }
        Report {
            dry_run,
            counts,
            items,
        }
    }
}

/// The task's parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// `csv` or `json`.
    format: String,
    #[serde(default)]
    dry_run: bool,
}

fn params(v: &Value) -> Result<(InventoryFormat, bool), String> {
    let p: Params = serde_json::from_value(v.clone()).map_err(|e| {
        format!("{KIND} parameters ({{\"format\": \"csv\"|\"json\", \"dry_run\": bool}}): {e}")
    })?;
    let format = InventoryFormat::parse(&p.format).ok_or_else(|| {
        format!(
            "{KIND} parameter format {:?}: expected csv or json",
            p.format
        )
    })?;
    Ok((format, p.dry_run))
}

/// The kind. Its input file is the inventory; its parameters
/// `{"format": "csv"|"json", "dry_run": bool}`.
#[derive(Default)]
pub struct BackfillReleases {
    /// Held from an item's lookup to its write: two backfills running at
    /// once cannot both find an artifact absent and both log it.
    writing: Mutex<()>,
}

impl TaskKind for BackfillReleases {
    fn name(&self) -> &'static str {
        KIND
    }

    fn roles(&self) -> &'static [&'static str] {
        &["ingester", "admin"]
    }

    fn validate(&self, params: &Value) -> Result<(), String> {
        self::params(params).map(|_| ())
    }

    fn resumable(&self) -> bool {
        true
    }

    fn takes_input(&self) -> bool {
        true
    }

    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        let (format, dry_run) = params(ctx.params())?;
        let input = ctx
            .input_path()
            .ok_or("backfill_releases has no input file")?;
        let mut bytes = Vec::new();
        std::fs::File::open(input)
            .and_then(|f| f.take(MAX_INVENTORY as u64 + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("reading the inventory: {e}"))?;
        let inventory = parse_inventory(&bytes, format)?;
        drop(bytes);
        let total = inventory.len() as u64;

        let mut journal = Journal::open(ctx.output_path())?;
        let mut items = journal.take_done(&inventory)?;
        if !items.is_empty() {
            tracing::info!(task = ctx.id(), done = items.len(), "backfill resumes");
        }
        // Only items that ended logged (or would be, in a dry run): a
        // later duplicate of a failed item is processed on its own.
        let mut seen: HashSet<(String, String)> = items
            .iter()
            .filter(|i| i.status.settled())
            .filter_map(|i| i.sha256.clone().map(|d| (i.version.clone(), d)))
            .collect();
        ctx.progress(items.len() as u64, Some(total));
        let run = Run {
            ctx,
            vault: ctx.vault(),
            dir: ctx.vault().config().backfill_dir.clone(),
            dry_run,
            backfill_date: crate::records::format_ms(crate::checkpointer::now_ms()),
        };
        while items.len() < inventory.len() {
            if ctx.cancelled() {
                return Err("cancelled".into());
            }
            let end = (items.len() + CHUNK).min(inventory.len());
            let chunk = &inventory[items.len()..end];
            let done = {
                let _one_writer = self.writing.lock().unwrap_or_else(|e| e.into_inner());
                run.chunk(chunk, &mut seen, items.len())?
            };
            journal.append(&done)?;
            items.extend(done);
            ctx.checkpoint(&items.len().to_string());
            ctx.progress(items.len() as u64, Some(total));
        }

        let report = Report::new(dry_run, items);
        journal.finish(&report)?;
        Ok(TaskOutput {
            summary: Some(json!({
                "dry_run": dry_run,
                "counts": report.counts,
                "items": report.items.len(),
            })),
        })
    }
}

/// What is being backfilled, by whom.
struct Run<'a> {
    ctx: &'a TaskContext,
    vault: &'a Vault,
    dir: Option<PathBuf>,
    dry_run: bool,
    backfill_date: String,
}

/// An item checked and found absent, to be written.
struct ToWrite {
    slot: usize,
    item: InventoryItem,
    sha256: String,
    checksum_verified: bool,
    bundle: Option<Vec<u8>>,
}

impl Run<'_> {
    /// Processes `chunk` (the items from `first` on): checks each, then
    /// writes those to be written together.
    fn chunk(
        &self,
        chunk: &[InventoryItem],
        seen: &mut HashSet<(String, String)>,
        first: usize,
    ) -> Result<Vec<ReportItem>, String> {
        let mut out: Vec<ReportItem> = Vec::with_capacity(chunk.len());
        let mut writes = Vec::new();
        let mut pending = HashSet::new();
        for item in chunk {
            if self.ctx.cancelled() {
                return Err("cancelled".into());
            }
            let slot = out.len();
            let (report, write) = self.check(item, seen, first + slot);
            if let Some(w) = write {
                // A duplicate of an item written in this chunk: the chunk
                // ends before it, so it is checked again once the first
                // one's outcome is known (and counted only if that one
                // was logged).
                if !pending.insert((w.item.version.clone(), w.sha256.clone())) {
                    break;
                }
                writes.push(ToWrite { slot, ..w });
            }
            out.push(report);
        }
        if self.dry_run {
            seen.extend(pending);
        } else if !writes.is_empty() {
            let written = self.ctx.runtime().block_on(futures_util::future::join_all(
                writes.iter().map(|w| self.write(w)),
            ));
            for (w, result) in writes.iter().zip(written) {
                let r = &mut out[w.slot];
                match result {
                    Ok((status, record_id, verification)) => {
                        seen.insert((w.item.version.clone(), w.sha256.clone()));
                        r.status = status;
                        r.record_id = Some(record_id);
                        r.verification_status = Some(verification.into());
                        if status == ItemStatus::AlreadyPresent {
                            r.reason = Some("logged already with the same idempotency key".into());
                        }
                    }
                    Err(why) => {
                        r.status = ItemStatus::Error;
                        r.reason = Some(format!("item {}: {why}", first + w.slot));
                        r.verification_status = None;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Checks one item: its file, its digest, whether it is present. The
    /// report says what happened (for one to write, what a dry run says).
    fn check(
        &self,
        item: &InventoryItem,
        seen: &mut HashSet<(String, String)>,
        index: usize,
    ) -> (ReportItem, Option<ToWrite>) {
        let mut r = ReportItem {
            version: item.version.clone(),
            artifact: item.path.clone(),
            sha256: item.sha256.clone(),
            status: ItemStatus::Error,
            reason: None,
            record_id: None,
            checksum_verified: false,
            verification_status: None,
        };
        let error = |mut r: ReportItem, why: String| {
            r.reason = Some(format!("item {index}: {why}"));
            (r, None)
        };
        if let Some(path) = &item.path {
            let computed = match self.resolve(path).and_then(|p| hash_file(&p)) {
                Ok(d) => d,
                Err(why) => return error(r, format!("artifact {path:?}: {why}")),
            };
            if let Some(given) = &item.sha256
                && *given != computed
            {
                return error(
                    r,
                    format!(
                        "checksum mismatch: the inventory says sha256 {given}, \
                         the file {path:?} hashes to {computed}"
                    ),
                );
            }
            r.sha256 = Some(computed);
            r.checksum_verified = true;
        }
        let Some(sha256) = r.sha256.clone() else {
            return error(r, "no digest".into());
        };
        let bundle = match &item.bundle {
            Some(b) => match self.read_bundle(b) {
                Ok(bytes) => Some(bytes),
                Err(why) => return error(r, format!("bundle {b:?}: {why}")),
            },
            None => None,
        };
        if seen.contains(&(item.version.clone(), sha256.clone())) {
            r.status = ItemStatus::AlreadyPresent;
            r.reason = Some("listed earlier in the inventory".into());
            return (r, None);
        }
        match self.existing(&item.version, &sha256) {
            Ok(Some(found)) => {
                seen.insert((item.version.clone(), sha256.clone()));
                r.status = ItemStatus::AlreadyPresent;
                r.record_id = Some(found);
                return (r, None);
            }
            Ok(None) => {}
            Err(why) => return error(r, format!("looking up existing records: {why}")),
        }
        // A dry run says what a run would; a bundle's verification is
        // not known before it is logged.
        r.status = ItemStatus::DryRun;
        r.verification_status = Some(
            if bundle.is_some() {
                "unknown"
            } else {
                "backfilled"
            }
            .into(),
        );
        let write = ToWrite {
            slot: 0,
            item: item.clone(),
            sha256,
            checksum_verified: r.checksum_verified,
            bundle,
        };
        (r, Some(write))
    }

    /// `rel` under the backfill directory, refused if it resolves
    /// anywhere else (through a symbolic link) or is not a regular file.
    fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        let dir = self.dir.as_ref().ok_or(
            "this vault has no backfill directory (backfill_dir): name artifacts by sha256 only",
        )?;
        let base = dir
            .canonicalize()
            .map_err(|e| format!("the backfill directory {}: {e}", dir.display()))?;
        // Checked when parsed; again here, whoever made the input.
        check_path(rel)?;
        let full = base
            .join(rel)
            .canonicalize()
            .map_err(|e| format!("cannot be opened: {e}"))?;
        if !full.starts_with(&base) {
            return Err("resolves outside the backfill directory".into());
        }
        let meta = std::fs::metadata(&full).map_err(|e| format!("cannot be opened: {e}"))?;
        if !meta.is_file() {
            return Err("is not a regular file".into());
        }
        Ok(full)
    }

    /// A bundle's bytes: logged inline, so at most the vault's
    /// `inline_max`.
    fn read_bundle(&self, rel: &str) -> Result<Vec<u8>, String> {
        let path = self.resolve(rel)?;
        let max = self.vault.config().inline_max;
        let mut bytes = Vec::new();
        open_regular(&path, MAX_ARTIFACT_BYTES)?
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if bytes.len() > max {
            return Err(format!(
                "larger than the vault's inline limit of {max} bytes"
            ));
        }
        Ok(bytes)
    }

    /// The id of a backfill record labelled with `version` and `sha256`
    /// that the task's principal may read, if any. Only records of
    /// [`BACKFILL_TYPE`] count (a record of another type that carries the
    /// labels cannot block a backfill), and only those the principal may
    /// read: another team's record is absent to an owner-scoped ingester,
    /// so the status says nothing about what others logged.
    fn existing(&self, version: &str, sha256: &str) -> Result<Option<String>, String> {
        let query = ListQuery {
            labels: vec![
                (VERSION_LABEL.to_string(), version.to_string()),
                (DIGEST_LABEL.to_string(), sha256.to_string()),
            ],
            content_type: Some(BACKFILL_TYPE.to_string()),
            ingested_by: self.ctx.reader().only_owner(),
            limit: 1,
            ..ListQuery::default()
        };
        let page = self
            .vault
            .inner
            .store
            .list(&query)
            .map_err(|e| e.to_string())?;
        Ok(page.items.first().map(|row| row.id.clone()))
    }

    /// Logs an item (its bundle first): its status, record id and
    /// verification status.
    async fn write(&self, w: &ToWrite) -> Result<(ItemStatus, String, &'static str), String> {
        let principal = self.ctx.reader().principal().to_string();
        let labels = BTreeMap::from([
            (VERSION_LABEL.to_string(), w.item.version.clone()),
            (DIGEST_LABEL.to_string(), w.sha256.clone()),
        ]);
        let key = idempotency_suffix(&w.item.version, &w.sha256);
        let mut verification = "backfilled";
        if let Some(bundle) = &w.bundle {
            // Verified against this artifact: a bundle that signs another
            // one is `failed`, so the record's status is `unknown`.
            let mut artifact = [0u8; 32];
            for (i, b) in artifact.iter_mut().enumerate() {
                *b = u8::from_str_radix(&w.sha256[2 * i..2 * i + 2], 16)
                    .map_err(|e| format!("sha256 {}: {e}", w.sha256))?;
            }
            let outcome = self
                .vault
                .put_with_artifact(
                    PutRequest {
                        content_type: bundle_media_type(bundle),
                        labels: labels.clone(),
                        payload: inline(bundle.clone()),
                        principal: principal.clone(),
                        idempotency_key: Some(format!("evault-backfill-bundle-v1:{key}")),
                        audit: None,
                    },
                    Some(artifact),
                )
                .await
                .map_err(|e| format!("its Sigstore bundle was refused: {e}"))?;
            verification = match outcome.record.labels.get(SIGSTORE_STATUS_LABEL) {
                Some(s) if s == "verified" => "original",
                _ => "unknown",
            };
        }
        let payload = record_payload(&RecordFields {
            version: &w.item.version,
            artifact: w.item.path.as_deref(),
            sha256: &w.sha256,
            original_release_date: &w.item.release_date,
            backfill_date: &self.backfill_date,
            backfill_identity: &principal,
            verification_status: verification,
            checksum_verified: w.checksum_verified,
            notes: w.item.notes.as_deref(),
        })?;
        let outcome = self
            .vault
            .put(PutRequest {
                content_type: BACKFILL_TYPE.into(),
                labels,
                payload: inline(payload),
                principal,
                idempotency_key: Some(format!("evault-backfill-v1:{key}")),
                audit: None,
            })
            .await
            .map_err(|e| format!("the record was refused: {e}"))?;
        let status = if outcome.replayed || outcome.duplicate {
            ItemStatus::AlreadyPresent
        } else {
            ItemStatus::Backfilled
        };
        Ok((status, outcome.record.id, verification))
    }
}

/// The content type a bundle is logged with: its own `mediaType` (the
/// vault refuses a content type that disagrees with it), else
/// [`SIGSTORE_BUNDLE_TYPE`] (and the vault says what is wrong with it).
fn bundle_media_type(bundle: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Head>(bundle)
        .ok()
        .and_then(|h| h.media_type)
        .filter(|t| is_sigstore_bundle(t) && crate::ingest::validate_content_type(t).is_ok())
        .unwrap_or_else(|| SIGSTORE_BUNDLE_TYPE.to_string())
}

fn is_sigstore_bundle(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence
        .to_ascii_lowercase()
        .starts_with("application/vnd.dev.sigstore.bundle")
}

/// Hex SHA-256 of version and digest: the same artifact of the same
/// release gets the same idempotency key in every run.
fn idempotency_suffix(version: &str, sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update([0]);
    h.update(sha256.as_bytes());
    evault_verify::evidence::hex(&h.finalize())
}

fn inline(bytes: Vec<u8>) -> StagedPayload {
    StagedPayload {
        sha256: Sha256::digest(&bytes).into(),
        size: bytes.len() as u64,
        body: StagedBody::Inline(bytes),
    }
}

fn hash_file(path: &Path) -> Result<String, String> {
    let mut f = open_regular(path, MAX_ARTIFACT_BYTES)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(evault_verify::evidence::hex(&h.finalize()))
}

/// Opens a file that [`Run::resolve`] checked, without trusting that
/// check: a symlink or a FIFO swapped in since is refused (`O_NOFOLLOW`,
/// `O_NONBLOCK`: opening a FIFO would block the task), and the opened
/// handle itself must be a regular file of at most `max` bytes.
fn open_regular(path: &Path, max: u64) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("is {} bytes; at most {max} are hashed", meta.len()));
    }
    Ok(f)
}

/// A backfill record's payload fields (docs/FORMATS.md).
#[derive(Serialize)]
struct RecordFields<'a> {
    version: &'a str,
    artifact: Option<&'a str>,
    sha256: &'a str,
    original_release_date: &'a str,
    backfill_date: &'a str,
    backfill_identity: &'a str,
    verification_status: &'a str,
    checksum_verified: bool,
    notes: Option<&'a str>,
}

/// The payload: RFC 8785 canonical JSON of the fields and `v`.
fn record_payload(f: &RecordFields<'_>) -> Result<Vec<u8>, String> {
    let mut v = serde_json::to_value(f).map_err(|e| e.to_string())?;
    if let Value::Object(m) = &mut v {
        m.insert("v".into(), BACKFILL_FORMAT.into());
    }
    serde_jcs::to_vec(&v).map_err(|e| format!("canonical JSON: {e}"))
}

/// The result file while the task runs: one JSON line per item done.
struct Journal {
    path: PathBuf,
    file: std::fs::File,
    done: Vec<ReportItem>,
}

impl Journal {
    /// Opens (creating, 0600) the journal at `path`, keeping the items a
    /// previous run of the task wrote to it; a torn last line is dropped.
    fn open(path: &Path) -> Result<Journal, String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let err = |e: std::io::Error| format!("the task's journal: {e}");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        let mut done = Vec::new();
        let mut good = 0u64;
        let mut lines = std::io::BufReader::new(&file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = lines.read_line(&mut line).map_err(err)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            match serde_json::from_str::<ReportItem>(line.trim_end()) {
                Ok(item) => done.push(item),
                Err(_) => break,
            }
            good += n as u64;
        }
        file.set_len(good).map_err(err)?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(good)).map_err(err)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            done,
        })
    }

    /// The items done before, if they are the inventory's first ones (else
    /// none: the journal is of something else, and is started afresh).
    fn take_done(&mut self, inventory: &[InventoryItem]) -> Result<Vec<ReportItem>, String> {
        let done = std::mem::take(&mut self.done);
        let matches = done.len() <= inventory.len()
            && done
                .iter()
                .zip(inventory)
                .all(|(d, i)| d.version == i.version && d.artifact == i.path);
        if matches {
            return Ok(done);
        }
        self.file
            .set_len(0)
            .and_then(|()| std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(0)))
            .map_err(|e| format!("the task's journal: {e}"))?;
        Ok(Vec::new())
    }

    /// Appends items, durably: a restart resumes after them.
    fn append(&mut self, items: &[ReportItem]) -> Result<(), String> {
        let mut buf = Vec::new();
        for i in items {
            serde_json::to_writer(&mut buf, i).map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("the task's journal: {e}"))
    }

    /// Replaces the journal with the report (written aside, then renamed
    /// over it: a crash leaves one or the other).
    fn finish(self, report: &Report) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let err = |e: std::io::Error| format!("the report: {e}");
        let aside = self.path.with_extension("report");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)
            .map_err(err)?;
        serde_json::to_writer_pretty(&mut f, report).map_err(|e| format!("the report: {e}"))?;
        f.write_all(b"\n")
            .and_then(|()| f.sync_all())
            .map_err(err)?;
        std::fs::rename(&aside, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn csv_errors_name_the_line() {
        let bad_header = "version,date\n1,2024-01-01\n";
        assert!(
            parse_inventory(bad_header.as_bytes(), InventoryFormat::Csv)
                .unwrap_err()
                .contains("line 1")
        );
        let text = format!(
            "version,release_date,artifact,sha256,bundle,notes\n\
             1.0,2024-01-01,a.tar.gz,{D},,\n\
             1.1,yesterday,b.tar.gz,,,\n"
        );
        let e = parse_inventory(text.as_bytes(), InventoryFormat::Csv).unwrap_err();
        assert!(e.starts_with("CSV line 3: release_date"), "{e}");
        let text = "version,release_date,artifact,sha256,bundle,notes\n1.0,2024-01-01,../x,,,\n";
        let e = parse_inventory(text.as_bytes(), InventoryFormat::Csv).unwrap_err();
        assert!(e.contains("line 2") && e.contains("`..`"), "{e}");
        let text =
            "version,release_date,artifact,sha256,bundle,notes\n1.0,2024-01-01,/etc/passwd,,,\n";
        let e = parse_inventory(text.as_bytes(), InventoryFormat::Csv).unwrap_err();
        assert!(e.contains("relative"), "{e}");
        let text = "\u{feff}version,release_date,artifact,sha256,bundle,notes\n\
                    \"1.0\",2024-01-01,\"dir/a b.tar.gz\",,,\"multi\nline, notes\"\n";
        let items = parse_inventory(text.as_bytes(), InventoryFormat::Csv).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].path.as_deref(), Some("dir/a b.tar.gz"));
        assert_eq!(items[0].notes.as_deref(), Some("multi\nline, notes"));
        let text = "version,release_date,artifact,sha256,bundle,notes\n1.0,2024-01-01,a,,\n";
        let e = parse_inventory(text.as_bytes(), InventoryFormat::Csv).unwrap_err();
        assert!(e.contains("line 2") && e.contains("5 fields"), "{e}");
    }

    #[test]
    fn json_is_strict() {
        let e = parse_inventory(
            br#"[{"version":"1","release_date":"2024-01-01","artifacts":[{"sha256":"x"}]}]"#,
            InventoryFormat::Json,
        )
        .unwrap_err();
        assert!(e.contains("release 0, artifact 0"), "{e}");
        let e = parse_inventory(
            br#"[{"version":"1","release_date":"2024-01-01","artifacts":[],"extra":1}]"#,
            InventoryFormat::Json,
        )
        .unwrap_err();
        assert!(e.contains("release 0") && e.contains("extra"), "{e}");
        let ok = format!(
            r#"[{{"version":"1","release_date":"2024-01-01T10:00:00Z","artifacts":[{{"sha256":"sha256:{}"}}],"notes":"n"}}]"#,
            D.to_uppercase()
        );
        let items = parse_inventory(ok.as_bytes(), InventoryFormat::Json).unwrap();
        assert_eq!(items[0].sha256.as_deref(), Some(D));
    }

    fn item(version: &str, path: &str) -> InventoryItem {
        InventoryItem {
            version: version.into(),
            release_date: "2024-01-01".into(),
            path: Some(path.into()),
            sha256: None,
            bundle: None,
            notes: None,
        }
    }

    fn done(version: &str, path: &str) -> ReportItem {
        ReportItem {
            version: version.into(),
            artifact: Some(path.into()),
            sha256: Some(D.into()),
            status: ItemStatus::Backfilled,
            reason: None,
            record_id: Some("r".into()),
            checksum_verified: true,
            verification_status: Some("backfilled".into()),
        }
    }

    /// A restarted task keeps the items its journal holds (a torn last
    /// line is dropped), only if they are the inventory's first ones.
    #[test]
    fn the_journal_resumes_after_the_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.partial");
        let inventory = [item("1", "a"), item("2", "b"), item("3", "c")];
        let mut j = Journal::open(&path).unwrap();
        assert!(j.take_done(&inventory).unwrap().is_empty());
        j.append(&[done("1", "a"), done("2", "b")]).unwrap();
        drop(j);
        // A crash in the middle of the next line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"version":"3","arti"#).unwrap();
        drop(f);

        let mut j = Journal::open(&path).unwrap();
        assert_eq!(
            j.take_done(&inventory).unwrap(),
            [done("1", "a"), done("2", "b")]
        );
        j.append(&[done("3", "c")]).unwrap();
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<ReportItem>(l).is_ok())
        );

        // Another inventory: started afresh.
        let mut j = Journal::open(&path).unwrap();
        assert!(j.take_done(&[item("9", "z")]).unwrap().is_empty());
        j.append(&[done("9", "z")]).unwrap();
        drop(j);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn payload_is_canonical() {
        let p = record_payload(&RecordFields {
            version: "1.0",
            artifact: None,
            sha256: D,
            original_release_date: "2024-01-01",
            backfill_date: "2026-11-30T00:00:00.000Z",
            backfill_identity: "sa:ci",
            verification_status: "backfilled",
            checksum_verified: false,
            notes: None,
        })
        .unwrap();
        let text = String::from_utf8(p).unwrap();
        assert!(
            text.starts_with(r#"{"artifact":null,"backfill_date""#),
            "{text}"
        );
        assert!(text.ends_with(r#""v":"evault/release-backfill/v1","verification_status":"backfilled","version":"1.0"}"#), "{text}");
    }
}
