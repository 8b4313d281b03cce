//! Converting a data directory written by an older release: `evault
//! migrate` ([`migrate_data_dir`]) and `evault serve` at start
//! ([`open_store`]).
//!
//! The conversion is the store's (its migrations, each in its own
//! transaction, so a crash leaves the last committed version, which the
//! next run converts again). Around it, both logs' fingerprints (every
//! leaf with its record's columns, tile, tree size and checkpoint, hashed
//! in key order; the same SQL for every schema version) are read before
//! and after and must be equal. The ones read before are kept in
//! `<data dir>/CONVERTING` (fsync'd) until they are matched, so a crash
//! between the conversion's commit and the comparison, or a refused start,
//! does not skip the check next time: every start compares with that file
//! while it is there. `evault migrate` then indexes every record and runs
//! the full offline fsck, so the converted directory is checked end to end
//! before a server opens it.

use std::path::Path;
use std::time::Instant;

use evault_store::prelude::*;
use evault_store::{
    Fingerprint, LogFingerprint, LogId, MigrationProgress, MigrationStep, SqliteStore,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::fsck::{FsckOptions, FsckReport};

/// Records indexed per store transaction after the conversion.
const INDEX_BATCH: u64 = 65_536;

/// The fingerprints read before a conversion, kept in the data directory
/// until the same are read after it.
pub const PENDING_FILE: &str = "CONVERTING";

/// How often the start-up conversion logs its progress within a step.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What [`migrate_data_dir`] is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigratePhase {
    /// Reading both logs' fingerprints (before or after the conversion).
    Fingerprint,
    /// A step of the store's conversion.
    Convert(MigrationStep),
    /// Indexing the records the index does not cover yet, after the
    /// conversion.
    Index,
    /// The full fsck of the converted directory.
    Check,
}

impl std::fmt::Display for MigratePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigratePhase::Fingerprint => f.write_str("reading both logs"),
            MigratePhase::Convert(step) => write!(f, "{step}"),
            MigratePhase::Index => f.write_str("indexing the rest of the records"),
            MigratePhase::Check => f.write_str("checking (fsck)"),
        }
    }
}

/// Progress callback: the phase and `(done, total)` in its units (0 of 0
/// when it has none).
pub type MigrateProgress<'a> = &'a (dyn Fn(MigratePhase, u64, u64) + Send + Sync);

/// One log's fingerprint, as kept in [`PENDING_FILE`] and reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPrint {
    /// `evidence` or `audit`.
    pub log: String,
    /// False for an audit log the schema did not have yet (schema 1).
    pub present: bool,
    /// The tree size.
    pub size: u64,
    /// Leaf rows.
    pub leaves: u64,
    /// Tiles.
    pub tiles: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// The fingerprint (hex SHA-256).
    pub digest: String,
}

impl LogPrint {
    fn of(log: LogId, f: Option<&LogFingerprint>) -> LogPrint {
        LogPrint {
            log: log.to_string(),
            present: f.is_some(),
            size: f.map_or(0, |f| f.size),
            leaves: f.map_or(0, |f| f.leaves),
            tiles: f.map_or(0, |f| f.tiles),
            checkpoints: f.map_or(0, |f| f.checkpoints),
            digest: f.map_or(String::new(), |f| evault_verify::evidence::hex(&f.digest)),
        }
    }

    fn empty(&self) -> bool {
        (self.size, self.leaves, self.tiles, self.checkpoints) == (0, 0, 0, 0)
    }

    /// The same log; a log the old schema lacked equals an empty one.
    fn same_as(&self, other: &LogPrint) -> bool {
        match (self.present, other.present) {
            (true, true) | (false, false) => self == other,
            (false, true) => other.empty(),
            (true, false) => self.empty(),
        }
    }
}

fn prints(f: &Fingerprint) -> Vec<LogPrint> {
    vec![
        LogPrint::of(LogId::Evidence, Some(&f.evidence)),
        LogPrint::of(LogId::Audit, f.audit.as_ref()),
    ]
}

/// One log before and after the conversion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogComparison {
    /// `evidence` or `audit`.
    pub log: String,
    /// Whether the two are the same log.
    pub unchanged: bool,
    /// Before (from [`PENDING_FILE`] if an earlier run left it).
    pub before: LogPrint,
    /// After.
    pub after: LogPrint,
}

/// The result of [`migrate_data_dir`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// The store schema version found.
    pub from_version: u32,
    /// The version it has now (this binary's).
    pub to_version: u32,
    /// The index database's version found (none: missing).
    pub from_index_version: Option<i64>,
    /// The index database's version now.
    pub to_index_version: Option<i64>,
    /// False when the directory was already current.
    pub converted: bool,
    /// An earlier run's fingerprints ([`PENDING_FILE`]) were the ones
    /// compared with: it stopped before its comparison.
    pub resumed: bool,
    /// Both logs are the ones found before the conversion.
    pub unchanged: bool,
    /// Records indexed after the conversion.
    pub indexed: u64,
    /// Both logs, before and after.
    pub logs: Vec<LogComparison>,
    /// The full check of the converted directory (none if it could not
    /// run: see `check_error`).
    pub fsck: Option<FsckReport>,
    /// Why the check could not run (a key file missing, say).
    pub check_error: Option<String>,
    /// Wall time of the conversion and indexing, milliseconds.
    pub convert_ms: u64,
    /// Wall time of the whole run, milliseconds.
    pub elapsed_ms: u64,
}

impl MigrateReport {
    /// Both logs unchanged and fsck ran and found nothing.
    pub fn clean(&self) -> bool {
        self.unchanged && self.fsck.as_ref().is_some_and(|f| f.clean)
    }
}

/// A conversion checked against the fingerprints read before it.
struct Checked {
    before: Fingerprint,
    after: Fingerprint,
    converted: bool,
    resumed: bool,
    logs: Vec<LogComparison>,
    store: SqliteStore,
}

impl Checked {
    fn unchanged(&self) -> bool {
        self.logs.iter().all(|l| l.unchanged)
    }
}

/// Fingerprints, converts (if the store is older) and fingerprints again,
/// comparing with [`PENDING_FILE`] if an earlier run left it, else with
/// the fingerprints just read (written there first when converting).
/// Removes the file once they match; keeps it otherwise.
fn convert_checked(
    data_dir: &Path,
    step: &dyn Fn(MigrationProgress),
    phase: &dyn Fn(MigratePhase),
) -> Result<Checked> {
    let db = data_dir.join("evault.db");
    let pending_path = data_dir.join(PENDING_FILE);
    let pending = read_pending(&pending_path)?;
    phase(MigratePhase::Fingerprint);
    let before = SqliteStore::fingerprint(&db)?;
    let converted = before.needs_migration();
    let resumed = pending.is_some();
    let reference = match pending {
        Some(p) => p,
        None => prints(&before),
    };
    if converted && !resumed {
        let text = serde_json::to_vec_pretty(&reference)
            .map_err(|e| VaultError::Inconsistent(format!("encoding the fingerprints: {e}")))?;
        crate::datadir::write_durably(&pending_path, &text)?;
    }
    let store = SqliteStore::open_with_progress(&db, step)?;
    phase(MigratePhase::Fingerprint);
    let after = SqliteStore::fingerprint(&db)?;
    let logs: Vec<LogComparison> = reference
        .into_iter()
        .zip(prints(&after))
        .map(|(before, after)| LogComparison {
            log: after.log.clone(),
            unchanged: before.same_as(&after),
            before,
            after,
        })
        .collect();
    let checked = Checked {
        before,
        after,
        converted,
        resumed,
        logs,
        store,
    };
    if checked.unchanged() && (converted || resumed) {
        crate::datadir::remove_durably(&pending_path)?;
    }
    Ok(checked)
}

/// The fingerprints an earlier run kept, if it left them.
fn read_pending(path: &Path) -> Result<Option<Vec<LogPrint>>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match serde_json::from_slice::<Vec<LogPrint>>(&text) {
        Ok(p) if p.len() == 2 => Ok(Some(p)),
        Ok(_) => Err(unreadable_pending(path, "not two logs")),
        Err(e) => Err(unreadable_pending(path, &e.to_string())),
    }
}

fn unreadable_pending(path: &Path, why: &str) -> VaultError {
    VaultError::Inconsistent(format!(
        "{} (the fingerprints an interrupted conversion read before it) is unreadable: {why}; \
         check the data directory with `evault fsck` (or restore the backup), then remove it",
        path.display()
    ))
}

/// The two logs' differences, for a message.
fn describe_changes(logs: &[LogComparison]) -> String {
    logs.iter()
        .filter(|l| !l.unchanged)
        .map(|l| {
            let (b, a) = (&l.before, &l.after);
            format!(
                "the {} log: size {} → {}, leaves {} → {}, tiles {} → {}, checkpoints {} → {}, \
                 fingerprint {} → {}",
                l.log,
                b.size,
                a.size,
                b.leaves,
                a.leaves,
                b.tiles,
                a.tiles,
                b.checkpoints,
                a.checkpoints,
                b.digest,
                a.digest
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Converts the stopped vault's data directory `data_dir` to this binary's
/// store schema and checks it: both logs' fingerprints before (or those
/// an interrupted run kept) and after, every record indexed, and the full
/// fsck. A changed log is in the report (`unchanged: false`, not
/// [`MigrateReport::clean`]), as are fsck's findings, or why it could not
/// run. Takes the data directory's lock: a running server is
/// [`VaultError::Unavailable`]. Keys for fsck as for
/// [`crate::fsck_data_dir`].
pub fn migrate_data_dir(
    data_dir: &Path,
    options: &FsckOptions,
    progress: MigrateProgress<'_>,
) -> Result<MigrateReport> {
    let started = Instant::now();
    let db = data_dir.join("evault.db");
    if !db.is_file() {
        return Err(VaultError::NotFound(format!(
            "vault database {} (is {} a vault's data directory?)",
            db.display(),
            data_dir.display()
        )));
    }
    let _lock = crate::datadir::lock(data_dir)?;
    let checked = convert_checked(
        data_dir,
        &|p| progress(MigratePhase::Convert(p.step), p.done, p.total),
        &|phase| progress(phase, 0, 0),
    )?;

    // Indexing the rest leaves the follower nothing to do at the server's
    // start and lets fsck check every index entry.
    let store = &checked.store;
    let size = store.tree_size(LogId::Evidence)?;
    let from = store.indexed_through()?;
    let mut at = from;
    if at < size {
        progress(MigratePhase::Index, 0, size - from);
    }
    while at < size {
        let reached = store.index_evidence(size, INDEX_BATCH)?;
        if reached <= at {
            return Err(VaultError::Inconsistent(format!(
                "indexing stopped at record {at} of {size}"
            )));
        }
        at = reached;
        progress(MigratePhase::Index, at - from, size - from);
    }
    let unchanged = checked.unchanged();
    let Checked {
        before,
        after,
        converted,
        resumed,
        logs,
        store,
    } = checked;
    drop(store);
    let convert_ms = crate::fsck::elapsed_ms(started);

    progress(MigratePhase::Check, 0, 0);
    let check = |done, total| progress(MigratePhase::Check, done, total);
    let (fsck, check_error) = match crate::fsck::fsck_stopped(data_dir, options, &check, &|| false)
    {
        Ok(report) => (Some(report), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(MigrateReport {
        from_version: before.schema_version,
        to_version: after.schema_version,
        from_index_version: before.index_version,
        to_index_version: after.index_version,
        converted,
        resumed,
        unchanged,
        indexed: at - from,
        logs,
        fsck,
        check_error,
        convert_ms,
        elapsed_ms: crate::fsck::elapsed_ms(started),
    })
}

/// Opens the store in `data_dir` for [`crate::Vault::open`] (which holds
/// the directory's lock). An older schema (or a missing index database)
/// is converted as `evault migrate` converts it, each step and its
/// progress in the log every few seconds, with both logs' fingerprints
/// compared: a changed log, now or left by an interrupted start
/// ([`PENDING_FILE`]), refuses the start. The full fsck is left to `evault
/// migrate` or `evault fsck`.
pub(crate) fn open_store(data_dir: &Path) -> Result<SqliteStore> {
    let db = data_dir.join("evault.db");
    let pending = data_dir.join(PENDING_FILE).exists();
    if !pending && (!db.is_file() || !SqliteStore::needs_migration(&db)?) {
        return Ok(SqliteStore::open(&db)?);
    }
    let started = Instant::now();
    tracing::info!(
        "{} is of an older schema, its index database is missing, or a conversion was \
         interrupted: converting it (both logs read first, to compare after)",
        db.display()
    );
    let last = std::sync::Mutex::new((None::<MigrationStep>, Instant::now()));
    let checked = convert_checked(
        data_dir,
        &|p| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.0 != Some(p.step)
                || last.1.elapsed() >= PROGRESS_EVERY
                || (p.done == p.total && p.total > 0);
            if due {
                tracing::info!("converting: {}: {} of {}", p.step, p.done, p.total);
                *last = (Some(p.step), Instant::now());
            }
        },
        &|_| {},
    )?;
    if !checked.unchanged() {
        return Err(VaultError::Inconsistent(format!(
            "converting {} changed {}. The server will not start: restore the data directory \
             from its backup; {} keeps the fingerprints read before the conversion, and every \
             start compares with it while it is there",
            db.display(),
            describe_changes(&checked.logs),
            data_dir.join(PENDING_FILE).display()
        )));
    }
    tracing::info!(
        "converted {} from store schema {} to {} in {:.1} s; both logs unchanged ({}); run \
         `evault fsck` on the stopped vault for the full check",
        db.display(),
        checked.before.schema_version,
        checked.after.schema_version,
        started.elapsed().as_secs_f64(),
        checked
            .logs
            .iter()
            .map(|l| format!(
                "{} size {}, {} checkpoints",
                l.log, l.after.size, l.after.checkpoints
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(checked.store)
}

/// For `evault migrate`'s report: what changed, if anything.
pub fn changes(report: &MigrateReport) -> String {
    describe_changes(&report.logs)
}
