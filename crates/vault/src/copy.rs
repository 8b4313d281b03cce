//! Moving a vault's store to another driver: `evault store copy` (SQLite
//! to PostgreSQL and back, or between two databases).
//!
//! Both vaults are stopped: the data directory (keys, blobs) is locked by
//! the caller, and a PostgreSQL destination's write lease is taken for the
//! copy (a source whose lease some node still holds is refused). The
//! source must pass `fsck` first, so a corrupted source is refused before
//! anything is written. Then, through the storage traits only:
//!
//! 1. the settings (`meta`: origins, key sets, cursors);
//! 2. both logs' leaves in order, in batches whose tiles are rebuilt with
//!    the same [`TileBuilder`] the sequencer uses. An erased record is
//!    appended without bytes and erased again in the batch that holds its
//!    tombstone (as the vault did), so its erasure row is the same;
//!    analytics rows are derived again from the payloads (records read
//!    back carry none);
//! 3. every checkpoint and its witness cosignatures, legal holds,
//!    retention policies, tasks and mirrored logs;
//! 4. the destination's follower indexes, built to the end.
//!
//! At the end every row, tile and checkpoint of the destination is
//! compared with the source's (equal tiles are equal roots at every size),
//! and the destination passes `fsck` with the data directory's keys: its
//! checkpoints verify and match the roots of its leaves.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileBuilder;
use evault_store::prelude::*;
use evault_store::{
    AppendBatch, AuditBatch, AuditRow, ComplianceStore, ErasureRow, EvidenceRow, LogId,
    MirrorImport, MirrorRecord, Payload, Scanned, TaskQuery, TaskRow,
};

use crate::error::{Result, VaultError};
use crate::fsck::FsckOptions;

/// Leaves per batch (one store transaction each).
const BATCH: u64 = 4096;
/// The node id a copy holds a PostgreSQL destination's lease as.
pub const COPY_NODE: &str = "evault-store-copy";
/// How long the copy's lease lasts; renewed well before.
const LEASE_TTL: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// What a copy is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyPhase {
    /// `fsck` of the source (units: leaves, then label index entries).
    CheckSource,
    /// Leaves of both logs copied (units: leaves).
    Logs,
    /// Checkpoints, holds, tasks, mirrors (units: rows).
    Rest,
    /// The destination's follower indexes (units: records).
    Index,
    /// Destination compared with the source (units: leaves).
    Compare,
    /// `fsck` of the destination.
    CheckDestination,
}

impl CopyPhase {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            CopyPhase::CheckSource => "checking the source",
            CopyPhase::Logs => "copying the logs",
            CopyPhase::Rest => "copying checkpoints, holds, tasks, mirrors",
            CopyPhase::Index => "indexing",
            CopyPhase::Compare => "comparing with the source",
            CopyPhase::CheckDestination => "checking the copy",
        }
    }
}

/// Progress callback: the phase and `(done, total)` in its units.
pub type CopyProgress<'a> = &'a (dyn Fn(CopyPhase, u64, u64) + Send + Sync);

/// What a copy moved; every figure was compared with the source's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Evidence records (leaves).
    pub evidence: u64,
    /// Audit events (leaves).
    pub audit: u64,
    /// Signed checkpoints, both logs.
    pub checkpoints: u64,
    /// Witness cosignatures.
    pub cosignatures: u64,
    /// Erased records.
    pub erasures: u64,
    /// Analytics rows derived again.
    pub analytics: u64,
    /// Settings.
    pub meta: u64,
    /// Legal holds and retention policies.
    pub policies: u64,
    /// Tasks.
    pub tasks: u64,
    /// Mirrored records.
    pub mirror_records: u64,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
}

/// Copies the logs of the stopped vault whose data directory (keys,
/// blobs) is `data_dir` from the store at `from` to the empty one at `to`:
/// SQLite means `<data dir>/evault.db` (the source must exist; the
/// destination must not, and is created), PostgreSQL a database migrated
/// with `evault migrate --store URL`. The data directory is locked for the
/// run, so no server starts on it. A SQLite destination that fails is
/// removed; a PostgreSQL one holds a partial copy (the error says so).
pub fn copy_stopped_vault(
    data_dir: &Path,
    from: &crate::StoreLocation,
    to: &crate::StoreLocation,
    progress: CopyProgress<'_>,
) -> Result<CopyReport> {
    use crate::StoreLocation::{Postgres, Sqlite};
    if from == to {
        return Err(VaultError::Invalid(format!(
            "--from and --to are the same store ({})",
            from.describe()
        )));
    }
    if !data_dir.is_dir() {
        return Err(VaultError::NotFound(format!(
            "data directory {}",
            data_dir.display()
        )));
    }
    let _lock = crate::datadir::lock(data_dir)?;
    let db = data_dir.join("evault.db");
    let source: Box<dyn Store> = match from {
        Sqlite => {
            if !db.exists() {
                return Err(VaultError::NotFound(format!("the store {}", db.display())));
            }
            Box::new(evault_store::SqliteStore::open_read_only(&db)?)
        }
        Postgres(url) => Box::new(evault_store::postgres::PgStore::open_with(
            url,
            evault_store::postgres::PgOptions {
                read_only: true,
                ..Default::default()
            },
        )?),
    };
    match to {
        Postgres(url) => {
            let dest = evault_store::postgres::PgStore::open(url)?;
            let started = Instant::now();
            check_before(&*source, &dest, data_dir, progress)?;
            let mut report = write_and_check(&*source, &dest, data_dir, progress).map_err(|e| {
                VaultError::Inconsistent(format!(
                    "{e}. The database may hold a partial copy: drop it, create it again with \
                     `evault migrate --store URL`, and copy again"
                ))
            })?;
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        }
        Sqlite => {
            // The index file is the store's too: one left from another
            // store must not be taken for this one's.
            let files: Vec<_> = ["evault.db", "evault-index.db"]
                .iter()
                .flat_map(|name| {
                    ["", "-wal", "-shm"].map(|suffix| data_dir.join(format!("{name}{suffix}")))
                })
                .collect();
            if let Some(held) = files.iter().find(|f| f.exists()) {
                return Err(VaultError::Conflict(format!(
                    "{} exists: the destination must be a new store (move evault.db and \
                     evault-index.db away first)",
                    held.display()
                )));
            }
            let result = evault_store::SqliteStore::open(&db)
                .map_err(VaultError::from)
                .and_then(|dest| copy_store(&*source, &dest, data_dir, progress));
            if result.is_err() {
                // Ours, and partial: a later start must not take it for the
                // vault's store.
                for file in &files {
                    let _ = std::fs::remove_file(file);
                }
            }
            result
        }
    }
}

/// Copies the store `from` into the empty store `to`, for the vault whose
/// data directory (keys, blobs) is `data_dir`; the caller holds its lock.
/// Nothing is written to `to` unless `from` passes `fsck`; on an error
/// after that, `to` holds a partial copy the caller must discard.
pub fn copy_store(
    from: &dyn Store,
    to: &dyn Store,
    data_dir: &Path,
    progress: CopyProgress<'_>,
) -> Result<CopyReport> {
    let started = Instant::now();
    check_before(from, to, data_dir, progress)?;
    let mut report = write_and_check(from, to, data_dir, progress)?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// fsck as the copy runs it: every check, a few findings per kind.
fn fsck_options() -> FsckOptions {
    FsckOptions {
        max_findings_per_kind: 3,
        ..FsckOptions::default()
    }
}

/// The first finding of a report that is not clean, for a message.
fn first_finding(report: &crate::fsck::FsckReport) -> String {
    report
        .findings
        .first()
        .map(|f| format!("; first: {f}"))
        .unwrap_or_default()
}

/// What must hold before anything is written: no node writes the source,
/// the destination is empty, and the source passes fsck.
fn check_before(
    from: &dyn Store,
    to: &dyn Store,
    data_dir: &Path,
    progress: CopyProgress<'_>,
) -> Result<()> {
    refuse_running(from)?;
    check_empty(to)?;
    let report = crate::fsck::fsck_store(
        data_dir,
        from,
        &fsck_options(),
        &|done, total| progress(CopyPhase::CheckSource, done, total),
        &|| false,
    )?;
    if !report.clean {
        return Err(VaultError::Inconsistent(format!(
            "the source does not pass fsck ({} finding{}{}); nothing was copied. Run `evault \
             fsck` on it and repair it first",
            report.total_findings,
            if report.total_findings == 1 { "" } else { "s" },
            first_finding(&report)
        )));
    }
    Ok(())
}

/// The copy proper, then the comparison and the destination's fsck.
fn write_and_check(
    from: &dyn Store,
    to: &dyn Store,
    data_dir: &Path,
    progress: CopyProgress<'_>,
) -> Result<CopyReport> {
    let mut copy = Copy {
        from,
        to,
        lease: Lease::take(to)?,
        blobs: crate::blobs::BlobDir::open(data_dir)?,
        progress,
        report: CopyReport::default(),
    };
    copy.meta()?;
    copy.logs()?;
    copy.rest()?;
    copy.index()?;
    copy.compare()?;
    let report = crate::fsck::fsck_store(
        data_dir,
        to,
        &fsck_options(),
        &|done, total| progress(CopyPhase::CheckDestination, done, total),
        &|| false,
    )?;
    if !report.clean {
        return Err(VaultError::Inconsistent(format!(
            "the copy does not pass fsck ({} findings{})",
            report.total_findings,
            first_finding(&report)
        )));
    }
    copy.lease.release()?;
    Ok(copy.report)
}

/// Refuses a shared source some node still writes to.
fn refuse_running(from: &dyn Store) -> Result<()> {
    if let Some(c) = from.coordination() {
        let lease = c.lease()?;
        if lease.remaining.is_some() && !lease.holder.is_empty() {
            return Err(VaultError::Unavailable(format!(
                "node {:?} holds the source's write lease: stop every vault node first (or \
                 wait {} s for the lease to expire)",
                lease.holder,
                lease.remaining.unwrap_or_default().as_secs() + 1
            )));
        }
    }
    Ok(())
}

/// Refuses a destination that holds anything of a vault.
fn check_empty(to: &dyn Store) -> Result<()> {
    let mut held = Vec::new();
    for log in [LogId::Evidence, LogId::Audit] {
        let size = to.tree_size(log)?;
        if size > 0 {
            held.push(format!("{size} {log} leaves"));
        }
        if to.latest_checkpoint(log)?.is_some() {
            held.push(format!("{log} checkpoints"));
        }
    }
    let meta = to.meta_entries()?;
    if !meta.is_empty() {
        held.push(format!("{} settings (meta)", meta.len()));
    }
    if let Some(t) = to.tasks()
        && !t
            .list_tasks(&TaskQuery {
                limit: 1,
                ..Default::default()
            })?
            .is_empty()
    {
        held.push("tasks".into());
    }
    if let Some(m) = to.mirrors()
        && !m.mirror_logs()?.is_empty()
    {
        held.push("mirrored logs".into());
    }
    if let Some(c) = to.compliance()
        && (!c.list_holds()?.is_empty() || !c.list_retention()?.is_empty())
    {
        held.push("legal holds or retention policies".into());
    }
    if held.is_empty() {
        Ok(())
    } else {
        Err(VaultError::Conflict(format!(
            "the destination is not empty (it holds {}): copy into a new, empty store",
            held.join(", ")
        )))
    }
}

/// A destination's write lease, held for the copy and renewed as it goes.
struct Lease<'a> {
    coordination: Option<&'a dyn evault_store::Coordination>,
    renewed: Instant,
}

impl<'a> Lease<'a> {
    fn take(to: &'a dyn Store) -> Result<Lease<'a>> {
        let coordination = to.coordination();
        if let Some(c) = coordination
            && c.acquire(COPY_NODE, "", LEASE_TTL)?.is_none()
        {
            let holder = c.lease()?.holder;
            return Err(VaultError::Unavailable(format!(
                "node {holder:?} holds the destination's write lease: stop every vault node \
                 on it first"
            )));
        }
        Ok(Lease {
            coordination,
            renewed: Instant::now(),
        })
    }

    /// Renews the lease if it is due; a lost lease ends the copy.
    fn keep(&mut self) -> Result<()> {
        if let Some(c) = self.coordination
            && self.renewed.elapsed() >= RENEW_EVERY
        {
            if !c.renew()? {
                return Err(VaultError::Unavailable(
                    "the copy lost the destination's write lease (another node took it)".into(),
                ));
            }
            self.renewed = Instant::now();
        }
        Ok(())
    }

    fn release(&self) -> Result<()> {
        if let Some(c) = self.coordination {
            c.release()?;
        }
        Ok(())
    }
}

struct Copy<'a> {
    from: &'a dyn Store,
    to: &'a dyn Store,
    lease: Lease<'a>,
    blobs: crate::blobs::BlobDir,
    progress: CopyProgress<'a>,
    report: CopyReport,
}

/// A scanned row, or the reason it cannot be copied (the source passed
/// fsck, so this is a row changed since).
fn decoded<T>(row: Scanned<T>, log: LogId) -> Result<T> {
    row.map_err(|u| {
        VaultError::Inconsistent(format!(
            "{log} leaf {} of the source cannot be read: {}",
            u.leaf_index, u.why
        ))
    })
}

/// Every erasure, in leaf order.
fn all_erasures(c: &dyn ComplianceStore) -> Result<Vec<ErasureRow>> {
    let mut all: Vec<ErasureRow> = Vec::new();
    loop {
        let page = c.list_erasures(all.last().map(|e| e.leaf_index), 1000)?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

fn compliance<'s>(store: &'s dyn Store, side: &str) -> Result<&'s dyn ComplianceStore> {
    store.compliance().ok_or_else(|| {
        VaultError::Invalid(format!(
            "the {side} store keeps no erasures, holds or retention policies"
        ))
    })
}

impl Copy<'_> {
    fn meta(&mut self) -> Result<()> {
        for (key, value) in self.from.meta_entries()? {
            self.to.set_meta(&key, &value)?;
            self.report.meta += 1;
        }
        Ok(())
    }

    fn logs(&mut self) -> Result<()> {
        let evidence = self.from.tree_size(LogId::Evidence)?;
        let audit = self.from.tree_size(LogId::Audit)?;
        let total = evidence + audit;
        // Erasures by the tombstone that made them.
        let mut by_tombstone: BTreeMap<u64, Vec<ErasureRow>> = BTreeMap::new();
        if let Some(c) = self.from.compliance() {
            for e in all_erasures(c)? {
                by_tombstone.entry(e.tombstone_leaf).or_default().push(e);
            }
        }
        if !by_tombstone.is_empty() {
            compliance(self.to, "destination")?;
        }

        let mut tiles = TileBuilder::new();
        let mut next = 0u64;
        while next < evidence {
            let end = (next + BATCH).min(evidence);
            let mut rows = Vec::with_capacity((end - next) as usize);
            for row in self.from.scan_records(next, end)? {
                rows.push(self.writable(decoded(row, LogId::Evidence)?)?);
            }
            if rows.len() as u64 != end - next {
                return Err(VaultError::Inconsistent(format!(
                    "the source's evidence leaves {next}..{end} have gaps"
                )));
            }
            // Cut the batch after each tombstone, whose erasure goes with
            // it, and before it after the last record it erases (an
            // erasure names records below its batch).
            let mut cut = 0usize;
            while cut < rows.len() {
                let first = next + cut as u64;
                let tomb = by_tombstone.range(first..end).next();
                let (upto, erasures) = match tomb {
                    None => (rows.len(), None),
                    Some((&t, erased)) => {
                        let last_erased = erased.iter().map(|e| e.leaf_index).max().unwrap_or(0);
                        if last_erased >= first {
                            ((last_erased + 1 - next) as usize, None)
                        } else {
                            ((t + 1 - next) as usize, Some(erased))
                        }
                    }
                };
                let part = &rows[cut..upto];
                let hashes: Vec<_> = part.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
                let new_tiles = tiles.append(&hashes);
                let batch = AppendBatch::new(first, part, &new_tiles);
                match erasures {
                    Some(erasures) => {
                        compliance(self.to, "destination")?.erase(&batch, erasures)?;
                        self.report.erasures += erasures.len() as u64;
                    }
                    None => self.to.append(&batch)?,
                }
                cut = upto;
            }
            self.lease.keep()?;
            next = end;
            (self.progress)(CopyPhase::Logs, next, total);
        }
        self.report.evidence = evidence;

        let mut tiles = TileBuilder::new();
        let mut next = 0u64;
        while next < audit {
            let end = (next + BATCH).min(audit);
            let events: Vec<AuditRow> = self
                .from
                .scan_audit(next, end)?
                .into_iter()
                .map(|r| decoded(r, LogId::Audit))
                .collect::<Result<_>>()?;
            if events.len() as u64 != end - next {
                return Err(VaultError::Inconsistent(format!(
                    "the source's audit leaves {next}..{end} have gaps"
                )));
            }
            let hashes: Vec<_> = events.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
            let new_tiles = tiles.append(&hashes);
            self.to.append(&AppendBatch {
                old_size: evidence,
                records: &[],
                tiles: &[],
                audit: Some(AuditBatch {
                    old_size: next,
                    events: &events,
                    tiles: &new_tiles,
                }),
            })?;
            self.lease.keep()?;
            next = end;
            (self.progress)(CopyPhase::Logs, evidence + next, total);
        }
        self.report.audit = audit;
        Ok(())
    }

    /// A source record as the destination's append takes it: an erased
    /// payload as an external one without bytes (erased again with its
    /// tombstone), and the analytics row its payload gives.
    fn writable(&mut self, mut row: EvidenceRow) -> Result<EvidenceRow> {
        let bytes = match &row.payload {
            Payload::Erased { .. } => {
                row.payload = Payload::External;
                return Ok(row);
            }
            Payload::Inline(b) => {
                if !crate::analytics::is_analytics(&row.content_type) {
                    return Ok(row);
                }
                b.clone()
            }
            Payload::External => {
                if !crate::analytics::is_analytics(&row.content_type) {
                    return Ok(row);
                }
                std::fs::read(self.blobs.path_for(&row.sha256))?
            }
        };
        row.analytics = crate::analytics::check(&row.content_type, &bytes).map_err(|e| {
            VaultError::Inconsistent(format!(
                "evidence leaf {}: its analytics event does not parse again: {e}",
                row.leaf_index
            ))
        })?;
        if row.analytics.is_some() {
            self.report.analytics += 1;
        }
        Ok(row)
    }

    fn rest(&mut self) -> Result<()> {
        let step = |copy: &mut Self| {
            (copy.progress)(CopyPhase::Rest, copy.rest_done(), 0);
        };
        for log in [LogId::Evidence, LogId::Audit] {
            let mut after = None;
            loop {
                let page = self.from.list_checkpoints(log, after, 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.size);
                for cp in &page {
                    self.to.put_checkpoint(log, cp)?;
                    self.report.checkpoints += 1;
                    if let Some(c) = self.from.cosignatures() {
                        let cosigs = c.cosignatures_at(log, cp.size)?;
                        if !cosigs.is_empty() {
                            let to = self.to.cosignatures().ok_or_else(|| {
                                VaultError::Invalid(
                                    "the destination store keeps no cosignatures".into(),
                                )
                            })?;
                            to.put_cosignatures(log, cp.size, &cosigs)?;
                            self.report.cosignatures += cosigs.len() as u64;
                        }
                    }
                }
                self.lease.keep()?;
                step(self);
            }
        }
        if let Some(c) = self.from.compliance() {
            let holds = c.list_holds()?;
            let retention = c.list_retention()?;
            if !holds.is_empty() || !retention.is_empty() {
                let to = compliance(self.to, "destination")?;
                for hold in holds {
                    to.put_hold(&evault_store::HoldRow {
                        released: None,
                        ..hold.clone()
                    })?;
                    if let Some((at, by)) = &hold.released {
                        to.release_hold(&hold.id, *at, by)?;
                    }
                    self.report.policies += 1;
                }
                for policy in retention {
                    to.put_retention(&policy)?;
                    self.report.policies += 1;
                }
            }
        }
        if let Some(t) = self.from.tasks() {
            let mut before = None;
            loop {
                let page = t.list_tasks(&TaskQuery {
                    before: before.clone(),
                    limit: 1000,
                    ..Default::default()
                })?;
                let Some(last) = page.last() else { break };
                before = Some(last.id.clone());
                let to = self.to.tasks().ok_or_else(|| {
                    VaultError::Invalid("the destination store keeps no tasks".into())
                })?;
                for task in &page {
                    to.insert_task(task)?;
                    self.report.tasks += 1;
                }
                step(self);
            }
        }
        self.mirrors()?;
        Ok(())
    }

    fn rest_done(&self) -> u64 {
        let r = &self.report;
        r.checkpoints + r.policies + r.tasks + r.mirror_records
    }

    /// Each mirrored log, one import per checkpoint its records' proofs
    /// are against (as the bundles brought them), then its latest.
    fn mirrors(&mut self) -> Result<()> {
        let Some(m) = self.from.mirrors() else {
            return Ok(());
        };
        let logs = m.mirror_logs()?;
        if logs.is_empty() {
            return Ok(());
        }
        let to = self
            .to
            .mirrors()
            .ok_or_else(|| VaultError::Invalid("the destination store keeps no mirrors".into()))?;
        for log in logs {
            let mut by_size: BTreeMap<u64, Vec<MirrorRecord>> = BTreeMap::new();
            let mut after = None;
            loop {
                let page = m.mirror_records(&log.origin, after, 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.leaf_index);
                for r in page {
                    by_size.entry(r.tree_size).or_default().push(r);
                }
            }
            by_size.entry(log.latest.tree_size).or_default();
            if by_size.len() as u64 != log.checkpoints {
                return Err(VaultError::Invalid(format!(
                    "mirrored log {:?} holds {} checkpoints, of which only {} prove a record or \
                     are the latest; the others cannot be copied",
                    log.origin,
                    log.checkpoints,
                    by_size.len()
                )));
            }
            for (size, records) in by_size {
                let checkpoint = m.mirror_checkpoint(&log.origin, size)?.ok_or_else(|| {
                    VaultError::Inconsistent(format!(
                        "mirrored log {:?}: no checkpoint of size {size}, which its records' \
                         proofs are against",
                        log.origin
                    ))
                })?;
                let mut payloads = Vec::new();
                for r in &records {
                    if let Some(bytes) = m.mirror_payload(&r.sha256)? {
                        payloads.push((r.sha256.clone(), bytes));
                    }
                }
                let n = records.len() as u64;
                to.import(&MirrorImport {
                    checkpoint,
                    records,
                    payloads,
                })?
                .map_err(|conflict| {
                    VaultError::Inconsistent(format!(
                        "mirrored log {:?}: the destination refused an import: {conflict:?}",
                        log.origin
                    ))
                })?;
                self.report.mirror_records += n;
                (self.progress)(CopyPhase::Rest, self.rest_done(), 0);
            }
        }
        Ok(())
    }

    fn index(&mut self) -> Result<()> {
        let size = self.to.tree_size(LogId::Evidence)?;
        let mut at = self.to.indexed_through()?;
        while at < size {
            at = self.to.index_evidence(size, 65_536)?;
            (self.progress)(CopyPhase::Index, at, size);
        }
        Ok(())
    }

    /// Every row, tile, checkpoint and table of the destination equals the
    /// source's.
    fn compare(&mut self) -> Result<()> {
        let (from, to) = (self.from, self.to);
        let differs = |what: String| {
            VaultError::Inconsistent(format!("the copy differs from the source: {what}"))
        };
        let evidence = from.tree_size(LogId::Evidence)?;
        let audit = from.tree_size(LogId::Audit)?;
        let total = evidence + audit;
        for log in [LogId::Evidence, LogId::Audit] {
            if from.tree_size(log)? != to.tree_size(log)? {
                return Err(differs(format!("{log} tree size")));
            }
            let keys = from.tile_keys(log)?;
            if keys != to.tile_keys(log)? {
                return Err(differs(format!("the set of {log} tiles")));
            }
            for k in keys {
                if from.stored_tile(log, k.level, k.index)?
                    != to.stored_tile(log, k.level, k.index)?
                {
                    return Err(differs(format!("{log} tile {}/{}", k.level, k.index)));
                }
            }
            let mut after = None;
            loop {
                let a = from.list_checkpoints(log, after, 1000)?;
                let b = to.list_checkpoints(log, after, 1000)?;
                if a != b {
                    return Err(differs(format!("{log} checkpoints after size {after:?}")));
                }
                let Some(last) = a.last() else { break };
                after = Some(last.size);
                for cp in &a {
                    if let (Some(x), Some(y)) = (from.cosignatures(), to.cosignatures())
                        && x.cosignatures_at(log, cp.size)? != y.cosignatures_at(log, cp.size)?
                    {
                        return Err(differs(format!("cosignatures of {log} size {}", cp.size)));
                    }
                }
            }
        }
        let mut next = 0;
        while next < evidence {
            let end = (next + BATCH).min(evidence);
            if from.scan_records(next, end)? != to.scan_records(next, end)? {
                return Err(differs(format!("evidence leaves {next}..{end}")));
            }
            next = end;
            (self.progress)(CopyPhase::Compare, next, total);
        }
        let mut next = 0;
        while next < audit {
            let end = (next + BATCH).min(audit);
            if from.scan_audit(next, end)? != to.scan_audit(next, end)? {
                return Err(differs(format!("audit leaves {next}..{end}")));
            }
            next = end;
            (self.progress)(CopyPhase::Compare, evidence + next, total);
        }
        if from.meta_entries()? != to.meta_entries()? {
            return Err(differs("settings (meta)".into()));
        }
        if let Some(a) = from.compliance() {
            let b = compliance(to, "destination")?;
            if a.list_holds()? != b.list_holds()? {
                return Err(differs("legal holds".into()));
            }
            if a.list_retention()? != b.list_retention()? {
                return Err(differs("retention policies".into()));
            }
            if all_erasures(a)? != all_erasures(b)? {
                return Err(differs("erasures".into()));
            }
        }
        if let Some(a) = from.tasks() {
            let b = to
                .tasks()
                .ok_or_else(|| differs("the destination keeps no tasks".into()))?;
            let mut before = None;
            loop {
                let q = TaskQuery {
                    before: before.clone(),
                    limit: 1000,
                    ..Default::default()
                };
                let page: Vec<TaskRow> = a.list_tasks(&q)?;
                if page != b.list_tasks(&q)? {
                    return Err(differs("tasks".into()));
                }
                let Some(last) = page.last() else { break };
                before = Some(last.id.clone());
            }
        }
        if let Some(a) = from.mirrors() {
            let logs = a.mirror_logs()?;
            let held = match to.mirrors() {
                Some(b) => b.mirror_logs()?,
                None => Vec::new(),
            };
            if logs != held {
                return Err(differs("mirrored logs".into()));
            }
        }
        Ok(())
    }
}
