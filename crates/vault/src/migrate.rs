//! `evault migrate`: converts a stopped vault's data directory to this
//! binary's store schema, then shows the conversion changed nothing.
//!
//! The conversion is the one `evault serve` runs at start (the store's
//! migrations, each in its own transaction, so a crash leaves the last
//! committed version, which the next run converts again). Around it, this
//! reads a fingerprint of both logs (every leaf, tile, tree size and
//! checkpoint, hashed in key order; the same SQL for every schema version)
//! before and after, and refuses to report success unless they are equal;
//! then it indexes every record and runs the full offline fsck (every
//! signature, every checkpoint's root from the stored leaves, every
//! index), so the converted directory is checked end to end before a
//! server opens it.

use std::path::Path;
use std::time::Instant;

use evault_store::prelude::*;
use evault_store::{Fingerprint, LogFingerprint, LogId, MigrationStep, SqliteStore};
use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::fsck::{FsckOptions, FsckReport};

/// Records indexed per store transaction after the conversion.
const INDEX_BATCH: u64 = 65_536;

/// What [`migrate_data_dir`] is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigratePhase {
    /// Reading both logs' fingerprints (before or after the conversion).
    Fingerprint,
    /// A step of the store's conversion.
    Convert(MigrationStep),
    /// Indexing the records the index does not cover yet.
    Index,
    /// The full fsck of the converted directory.
    Check,
}

impl std::fmt::Display for MigratePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigratePhase::Fingerprint => f.write_str("reading both logs"),
            MigratePhase::Convert(step) => write!(f, "{step}"),
            MigratePhase::Index => f.write_str("indexing records"),
            MigratePhase::Check => f.write_str("checking (fsck)"),
        }
    }
}

/// Progress callback: the phase and `(done, total)` in its units (0 of 0
/// when it has none).
pub type MigrateProgress<'a> = &'a (dyn Fn(MigratePhase, u64, u64) + Send + Sync);

/// One log as it was before and is after the conversion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogComparison {
    /// `evidence` or `audit`.
    pub log: &'static str,
    /// The tree size.
    pub size: u64,
    /// Leaf rows.
    pub leaves: u64,
    /// Tiles.
    pub tiles: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// The fingerprint before (hex SHA-256; `none` for an audit log the
    /// old schema did not have).
    pub before: String,
    /// The fingerprint after (equal to `before`, or the run fails).
    pub after: String,
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
    /// False when the directory was already current (nothing converted;
    /// it is still fingerprinted and checked).
    pub converted: bool,
    /// Records indexed after the conversion.
    pub indexed: u64,
    /// Both logs, before and after.
    pub logs: Vec<LogComparison>,
    /// The full check of the converted directory.
    pub fsck: FsckReport,
    /// Wall time of the conversion (not the check), milliseconds.
    pub convert_ms: u64,
    /// Wall time of the whole run, milliseconds.
    pub elapsed_ms: u64,
}

impl MigrateReport {
    /// Converted (or current), both logs unchanged (else the run is an
    /// error), and fsck found nothing.
    pub fn clean(&self) -> bool {
        self.fsck.clean
    }
}

/// Converts the stopped vault's data directory `data_dir` to this binary's
/// store schema and checks it: both logs' fingerprints must be equal
/// before and after (else [`VaultError::Inconsistent`]), every record is
/// indexed, and the full fsck runs (its findings are in the report; a
/// converted directory with findings is not [`MigrateReport::clean`]).
/// Takes the data directory's lock: a running server is
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

    progress(MigratePhase::Fingerprint, 0, 0);
    let before = SqliteStore::fingerprint(&db)?;
    let converted = before.needs_migration();
    if converted {
        tracing::info!(
            "converting {} from store schema {} to {}",
            db.display(),
            before.schema_version,
            before.current_version
        );
    }
    // Opening converts; indexing the rest leaves the follower nothing to do
    // at the server's start and lets fsck check every index entry.
    let store = SqliteStore::open_with_progress(&db, &|p| {
        progress(MigratePhase::Convert(p.step), p.done, p.total)
    })?;
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
    let indexed = at - from;
    drop(store);
    let convert_ms = elapsed_ms(started);

    progress(MigratePhase::Fingerprint, 0, 0);
    let after = SqliteStore::fingerprint(&db)?;
    let logs = compare(&before, &after)?;
    if after.needs_migration() {
        return Err(VaultError::Inconsistent(format!(
            "{} is at store schema {} (index {:?}) after the conversion, not {}",
            db.display(),
            after.schema_version,
            after.index_version,
            after.current_version
        )));
    }

    let check = |done, total| progress(MigratePhase::Check, done, total);
    let fsck = crate::fsck::fsck_stopped(data_dir, options, &check, &|| false)?;
    Ok(MigrateReport {
        from_version: before.schema_version,
        to_version: after.schema_version,
        from_index_version: before.index_version,
        to_index_version: after.index_version,
        converted,
        indexed,
        logs,
        fsck,
        convert_ms,
        elapsed_ms: elapsed_ms(started),
    })
}

/// Opens the store at `db` for [`crate::Vault::open`]. An older schema is
/// converted as `evault migrate` converts it, with each step and its
/// progress in the log (every few seconds), and with both logs'
/// fingerprints compared before and after: a conversion that changed
/// either is refused (the server does not start). The full fsck is left
/// to `evault migrate` or `evault fsck`.
pub(crate) fn open_store(db: &Path) -> Result<SqliteStore> {
    if !db.is_file() || !SqliteStore::needs_migration(db)? {
        return Ok(SqliteStore::open(db)?);
    }
    let started = Instant::now();
    tracing::info!(
        "{} is of an older schema (or its index database is missing): converting it \
         (reading both logs first, to compare after)",
        db.display()
    );
    let before = SqliteStore::fingerprint(db)?;
    let last = std::sync::Mutex::new((None::<MigrationStep>, Instant::now()));
    let store = SqliteStore::open_with_progress(db, &|p| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.0 != Some(p.step)
            || last.1.elapsed() >= PROGRESS_EVERY
            || (p.done == p.total && p.total > 0);
        if due {
            tracing::info!("converting: {}: {} of {}", p.step, p.done, p.total);
            *last = (Some(p.step), Instant::now());
        }
    })?;
    let after = SqliteStore::fingerprint(db)?;
    let logs = compare(&before, &after)?;
    tracing::info!(
        "converted {} from store schema {} to {} in {:.1} s; both logs unchanged ({}); run \
         `evault fsck` on a stopped vault for the full check",
        db.display(),
        before.schema_version,
        after.schema_version,
        started.elapsed().as_secs_f64(),
        logs.iter()
            .map(|l| format!("{} size {}, {} checkpoints", l.log, l.size, l.checkpoints))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(store)
}

/// How often the start-up conversion logs its progress within a step.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Both logs before and after; an audit log that schema 1 did not have
/// compares as an empty one.
fn compare(before: &Fingerprint, after: &Fingerprint) -> Result<Vec<LogComparison>> {
    let mut out = Vec::new();
    for (name, b, a) in [
        ("evidence", Some(&before.evidence), Some(&after.evidence)),
        ("audit", before.audit.as_ref(), after.audit.as_ref()),
    ] {
        let same = match (b, a) {
            (Some(b), Some(a)) => b == a,
            (None, None) => true,
            (Some(l), None) | (None, Some(l)) => counts(l) == (0, 0, 0, 0),
        };
        let show = |l: Option<&LogFingerprint>| {
            l.map_or("none".to_string(), |l| {
                evault_verify::evidence::hex(&l.digest)
            })
        };
        let count = |l: Option<&LogFingerprint>| l.map_or((0, 0, 0, 0), counts);
        let (bc, ac) = (count(b), count(a));
        if !same {
            return Err(VaultError::Inconsistent(format!(
                "the conversion changed the {name} log (size {} → {}, leaves {} → {}, tiles {} → \
                 {}, checkpoints {} → {}, fingerprint {} → {}); restore the data directory from \
                 a backup and report this",
                bc.0,
                ac.0,
                bc.1,
                ac.1,
                bc.2,
                ac.2,
                bc.3,
                ac.3,
                show(b),
                show(a)
            )));
        }
        out.push(LogComparison {
            log: name,
            size: ac.0,
            leaves: ac.1,
            tiles: ac.2,
            checkpoints: ac.3,
            before: show(b),
            after: show(a),
        });
    }
    Ok(out)
}

/// Size, leaves, tiles, checkpoints.
fn counts(l: &LogFingerprint) -> (u64, u64, u64, u64) {
    (l.size, l.leaves, l.tiles, l.checkpoints)
}
