//! The single writer of both logs: gathers concurrent evidence puts and
//! audit events into one batch, assigns leaf indexes in each log, extends
//! both trees and their tiles, commits everything in one durable
//! transaction, then acknowledges every caller (group commit). An audit
//! event thus never costs a commit of its own, and a put's event is durable
//! exactly when its record is.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use std::sync::Arc;
use std::time::Duration;

use evault_merkle::tiles::{TileBuilder, TileId, TiledHashReader, TiledReadError};
use evault_merkle::{CompactRange, Hash, leaf_hash};
use evault_store::{AppendBatch, AuditBatch, AuditRow, EvidenceRow, LogId, Payload, Store};
use evault_verify::AuditEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::PutOutcome;
use crate::audit::{AuditOnCommit, to_row};
use crate::cluster::{FOLLOW_EVERY, Role};
use crate::erasure::{EraseJob, Erased};
use crate::error::{Result, VaultError};
use crate::health::{Board, Component};
use crate::proofs::StoreTiles;
use crate::records::evidence_from_row;

/// What the sequencer's queue carries.
pub(crate) enum Pending {
    /// An evidence put, and the builder of its audit event (`None`: no
    /// event, e.g. audit disabled).
    Put {
        row: EvidenceRow,
        audit: Option<AuditOnCommit>,
        ack: oneshot::Sender<Result<PutOutcome>>,
    },
    /// Records of one stream, in order, with no audit event each (the
    /// stream is audited as one call). One result per row.
    Many {
        rows: Vec<EvidenceRow>,
        ack: oneshot::Sender<Vec<Result<PutOutcome>>>,
    },
    /// An audit event on its own (any call but a put).
    Audit {
        event: AuditEvent,
        ack: oneshot::Sender<Result<()>>,
    },
    /// An erasure: its tombstones are appended and its payloads removed in
    /// the same transaction (`erasure.rs`).
    Erase {
        job: EraseJob,
        ack: oneshot::Sender<Result<Vec<Erased>>>,
    },
}

/// Tree size and root after the latest durable commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Tree size in leaves.
    pub size: u64,
    /// Root hash of the tree of that size (RFC 6962 `MTH`).
    pub root: Hash,
}

/// In-memory state the sequencer appends to: the frontier and the
/// rightmost tile of each level.
#[derive(Clone, Debug)]
pub(crate) struct TreeState {
    tiles: TileBuilder,
}

impl TreeState {
    /// Rebuilds the state of `log`'s stored tree of `size` leaves from its
    /// tiles: at most 64 frontier hashes and the rightmost tile of each
    /// level.
    pub fn load(store: &dyn Store, log: LogId, size: u64) -> Result<Self> {
        let reader = TiledHashReader {
            tiles: StoreTiles::uncached(store, log),
            tree_size: size,
        };
        let nodes = CompactRange::nodes_for_size(size);
        let hashes = evault_merkle::HashReader::read_hashes(&reader, &nodes).map_err(|e| {
            VaultError::Inconsistent(format!("reading the {log} tree frontier: {e}"))
        })?;
        let frontier = CompactRange::from_hashes(size, hashes)
            .map_err(|e| VaultError::Inconsistent(e.to_string()))?;
        let tiles = TileBuilder::resume(frontier, &reader.tiles).map_err(|e| match e {
            TiledReadError::Source(e) => VaultError::from(e),
            e => VaultError::Inconsistent(format!("reading the {log} partial tiles: {e}")),
        })?;
        Ok(TreeState { tiles })
    }

    pub fn size(&self) -> u64 {
        self.tiles.size()
    }

    pub fn head(&self) -> TreeHead {
        TreeHead {
            size: self.tiles.size(),
            root: self.tiles.root(),
        }
    }

    /// Appends leaf hashes; returns the full contents of every tile touched.
    fn append(&mut self, leaves: &[Hash]) -> Vec<(TileId, Vec<u8>)> {
        self.tiles.append(leaves)
    }
}

/// Limits of one group commit.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Records after which nothing more joins the group commit; a stream's
    /// unit joins whole, so the last one in may take it past this.
    pub max_batch: usize,
    /// How long after the first request the sequencer waits for more to
    /// fill the batch; zero takes only what is already queued.
    pub max_delay: Duration,
}

/// The trees the sequencer extends; `audit` is `None` when audit is off.
#[derive(Clone, Debug)]
pub(crate) struct Trees {
    pub evidence: TreeState,
    pub audit: Option<TreeState>,
}

/// Where the sequencer announces what it committed (the checkpointers and
/// the audit mirror follow these). Dropped when it ends.
pub(crate) struct Outputs {
    pub evidence_heads: watch::Sender<TreeHead>,
    pub audit_heads: Option<watch::Sender<TreeHead>>,
}

/// The sequencer under supervision: if it panics (outside a commit, which
/// is guarded on its own), it is restarted on the same queue with its trees
/// reloaded from the store, and counted in `evault_task_restarts_total`.
/// Ends when [`run`] ends: every sender dropped, or stopped and drained.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn supervise(
    mut rx: mpsc::Receiver<Pending>,
    store: Arc<dyn Store>,
    trees: Trees,
    limits: BatchLimits,
    out: Outputs,
    mut stopping: watch::Receiver<bool>,
    health: Arc<Board>,
    mut index_reach: Option<watch::Receiver<u64>>,
    mut role: watch::Receiver<Role>,
    led: Option<u64>,
) {
    let audit = trees.audit.is_some();
    let mut trees = Some(trees);
    let mut led = led;
    loop {
        let ran = AssertUnwindSafe(run(
            &mut rx,
            &store,
            (&mut trees, &mut led),
            audit,
            limits,
            &out,
            &mut stopping,
            &health,
            index_reach.as_mut(),
            &mut role,
        ))
        .catch_unwind()
        .await;
        if ran.is_ok() {
            return;
        }
        metrics::counter!("evault_task_restarts_total", "task" => "sequencer").increment(1);
        tracing::error!("the sequencer panicked; restarting it from the stored state");
        health.set(
            Component::Sequencer,
            false,
            "restarted after a panic; reloading the trees from the store",
        );
        // What was in memory may be ahead of what committed.
        trees = None;
    }
}

/// Rebuilds both trees from what the store committed.
pub(crate) fn reload(store: &dyn Store, audit: bool) -> Result<Trees> {
    let size = store.tree_size(LogId::Evidence)?;
    let evidence = TreeState::load(store, LogId::Evidence, size)?;
    let audit = if audit {
        let size = store.tree_size(LogId::Audit)?;
        Some(TreeState::load(store, LogId::Audit, size)?)
    } else {
        None
    };
    Ok(Trees { evidence, audit })
}

/// Runs until every sender is dropped, or until `stopping` turns true:
/// then it takes nothing new, commits what is queued, and ends.
///
/// `trees` is `None` when the in-memory state cannot be trusted (after a
/// failed commit or a panic): it is reloaded from the store before the next
/// batch, and while that fails every batch is refused with the reason.
///
/// Only a leader commits (`role`), with trees read under its own lease:
/// `led` is the lease epoch `trees` were last reloaded for, and a new
/// epoch reloads them first. A standby refuses every batch naming the
/// leader, and follows the store instead: every [`FOLLOW_EVERY`] it
/// reloads the trees if they grew there, and announces their heads.
#[allow(clippy::too_many_arguments)]
async fn run(
    rx: &mut mpsc::Receiver<Pending>,
    store: &Arc<dyn Store>,
    (trees, led): (&mut Option<Trees>, &mut Option<u64>),
    audit: bool,
    limits: BatchLimits,
    out: &Outputs,
    stopping: &mut watch::Receiver<bool>,
    health: &Board,
    mut index_reach: Option<&mut watch::Receiver<u64>>,
    role: &mut watch::Receiver<Role>,
) {
    let mut follow = tokio::time::interval(FOLLOW_EVERY);
    follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let standby = !role.borrow_and_update().is_leader();
        let mut follow_due = false;
        let first = tokio::select! {
            // Queued work first: a stop never overtakes what was accepted.
            biased;
            p = rx.recv() => p,
            _ = stopping.wait_for(|s| *s), if !rx.is_closed() => {
                // Senders now fail; what is buffered is still received.
                rx.close();
                continue;
            }
            _ = follow.tick(), if standby => {
                follow_due = true;
                None
            }
            _ = crate::cluster::changed(role) => continue,
        };
        if follow_due {
            follow_store(store, trees, audit, out).await;
            continue;
        }
        let Some(first) = first else { break };
        // Counted in records: a stream's unit weighs as many as it holds.
        let mut records = first.records();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + limits.max_delay;
        while records < limits.max_batch {
            let next = match rx.try_recv() {
                Ok(p) => p,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if limits.max_delay.is_zero() {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => p,
                        _ => break,
                    }
                }
            };
            records += next.records();
            batch.push(next);
        }
        metrics::histogram!("evault_ingest_batch_records").record(records as f64);
        let epoch = match role.borrow().clone() {
            Role::Leader { epoch } => epoch,
            standby @ Role::Standby { .. } => {
                let refused = Failure {
                    full: false,
                    msg: standby.refusal().unwrap_or_default(),
                };
                for p in batch {
                    p.refused(&refused).send();
                }
                continue;
            }
        };
        if *led != Some(epoch) {
            // Another node may have written since these trees were read.
            *trees = None;
            *led = Some(epoch);
        }
        let current = match trees.take() {
            Some(t) => t,
            None => match reload_async(store, audit).await {
                Ok(t) => {
                    announce_all(out, &t);
                    t
                }
                Err(f) => {
                    health.set(
                        Component::Sequencer,
                        f.full,
                        format!("cannot reload the trees from the store: {}", f.msg),
                    );
                    for p in batch {
                        p.refused(&f).send();
                    }
                    continue;
                }
            },
        };
        // Backpressure from the index follower: the unindexed tail, which
        // label lists and digest lookups scan, stays bounded.
        crate::indexer::wait_for_lag(index_reach.as_deref_mut(), current.evidence.head().size)
            .await;
        let st = store.clone();
        let started = std::time::Instant::now();
        // `current` comes back whatever happens inside: a panic (e.g. in an
        // audit builder) drops the batch's acks (callers see Unavailable).
        let joined = tokio::task::spawn_blocking(move || {
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| commit(&*st, &current, batch)));
            (current, done)
        })
        .await;
        metrics::histogram!("evault_ingest_commit_seconds").record(started.elapsed().as_secs_f64());
        let (unchanged, done) = match joined {
            Ok(r) => r,
            Err(e) => {
                // Only when the runtime shuts down: nothing left to serve.
                tracing::error!("sequencer commit task failed: {e}");
                return;
            }
        };
        let Ok(done) = done else {
            tracing::error!("sequencer commit panicked; its batch was not committed");
            health.set(
                Component::Sequencer,
                false,
                "a group commit panicked; reloading the trees from the store",
            );
            // Reloaded before the next batch: the panic may have come after
            // the store committed.
            continue;
        };
        let mut current = unchanged;
        if let Some(f) = &done.failure {
            // What is in memory is what the store had before the batch,
            // unless the store committed and then failed: reload to be sure.
            health.set(
                Component::Sequencer,
                f.full,
                format!("the last group commit failed: {}", f.msg),
            );
            match reload_async(store, audit).await {
                Ok(t) => current = t,
                Err(_) => {
                    // Retried before the next batch.
                    for reply in done.replies {
                        reply.send();
                    }
                    continue;
                }
            }
        } else {
            health.clear(Component::Sequencer);
        }
        if let Some(next) = done.trees {
            metrics::counter!("evault_records_appended_total")
                .increment(next.evidence.size() - current.evidence.size());
            current = next;
        }
        metrics::counter!("evault_audit_events_total").increment(done.events as u64);
        announce_all(out, &current);
        *trees = Some(current);
        for reply in done.replies {
            reply.send();
        }
    }
}

/// [`reload`] off the runtime.
async fn reload_async(store: &Arc<dyn Store>, audit: bool) -> std::result::Result<Trees, Failure> {
    let st = store.clone();
    match tokio::task::spawn_blocking(move || reload(&*st, audit)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Failure::of(&e)),
        Err(e) => Err(Failure::of(&VaultError::from(e))),
    }
}

/// A standby's round: reloads the trees if the leader's commits grew
/// either log in the store, and announces their heads (never a smaller
/// one). A store that cannot be read is tried again next round.
async fn follow_store(
    store: &Arc<dyn Store>,
    trees: &mut Option<Trees>,
    audit: bool,
    out: &Outputs,
) {
    let st = store.clone();
    let sizes = tokio::task::spawn_blocking(move || -> Result<(u64, Option<u64>)> {
        let audit = if audit {
            Some(st.tree_size(LogId::Audit)?)
        } else {
            None
        };
        Ok((st.tree_size(LogId::Evidence)?, audit))
    })
    .await;
    let (evidence, audit_size) = match sizes {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("a standby could not read the log sizes: {e}");
            return;
        }
        Err(_) => return,
    };
    let known = trees
        .as_ref()
        .map(|t| (t.evidence.size(), t.audit.as_ref().map(TreeState::size)));
    if let Some((e, a)) = known
        && e >= evidence
        && a >= audit_size
    {
        return;
    }
    if let Ok(t) = reload_async(store, audit).await {
        let grew = known.is_none_or(|(e, a)| {
            t.evidence.size() >= e && t.audit.as_ref().map(TreeState::size) >= a
        });
        if grew {
            announce_all(out, &t);
            *trees = Some(t);
        }
    }
}

/// Publishes the heads of both trees.
fn announce_all(out: &Outputs, trees: &Trees) {
    announce(&out.evidence_heads, trees.evidence.head());
    if let (Some(tx), Some(audit)) = (&out.audit_heads, &trees.audit) {
        announce(tx, audit.head());
    }
}

/// Publishes a new head, waking the checkpointer only if it changed.
fn announce(tx: &watch::Sender<TreeHead>, head: TreeHead) {
    tx.send_if_modified(|h| {
        let changed = *h != head;
        *h = head;
        changed
    });
}

/// A caller's answer, sent once the batch is durable (or failed).
enum Reply {
    Put(oneshot::Sender<Result<PutOutcome>>, Result<PutOutcome>),
    Many(
        oneshot::Sender<Vec<Result<PutOutcome>>>,
        Vec<Result<PutOutcome>>,
    ),
    Audit(oneshot::Sender<Result<()>>, Result<()>),
    Erase(oneshot::Sender<Result<Vec<Erased>>>, Result<Vec<Erased>>),
}

impl Reply {
    fn send(self) {
        match self {
            Reply::Put(ack, r) => drop(ack.send(r)),
            Reply::Many(ack, r) => drop(ack.send(r)),
            Reply::Audit(ack, r) => drop(ack.send(r)),
            Reply::Erase(ack, r) => drop(ack.send(r)),
        }
    }

    /// The same caller, told the batch failed.
    fn failed(self, f: &Failure) -> Reply {
        match self {
            Reply::Put(ack, _) => Reply::Put(ack, Err(f.error())),
            Reply::Many(ack, r) => {
                let n = r.len();
                Reply::Many(ack, (0..n).map(|_| Err(f.error())).collect())
            }
            Reply::Audit(ack, _) => Reply::Audit(ack, Err(f.error())),
            Reply::Erase(ack, _) => Reply::Erase(ack, Err(f.error())),
        }
    }
}

impl Pending {
    /// The caller of a request that will not be committed.
    fn refused(self, f: &Failure) -> Reply {
        match self {
            Pending::Put { ack, .. } => Reply::Put(ack, Err(f.error())),
            Pending::Many { rows, ack } => {
                Reply::Many(ack, rows.iter().map(|_| Err(f.error())).collect())
            }
            Pending::Audit { ack, .. } => Reply::Audit(ack, Err(f.error())),
            Pending::Erase { ack, .. } => Reply::Erase(ack, Err(f.error())),
        }
    }

    /// Evidence records this request carries (an audit event counts as one).
    fn records(&self) -> usize {
        match self {
            Pending::Many { rows, .. } => rows.len().max(1),
            Pending::Erase { job, .. } => job.tombstones.len().max(1),
            Pending::Put { .. } | Pending::Audit { .. } => 1,
        }
    }
}

fn unavailable(msg: &str) -> VaultError {
    VaultError::Unavailable(msg.to_string())
}

/// Why a batch was not committed, as every caller of it is told: a full
/// disk ([`VaultError::StorageFull`]) or another failure
/// ([`VaultError::Unavailable`]).
#[derive(Clone, Debug)]
struct Failure {
    full: bool,
    msg: String,
}

impl Failure {
    fn of(e: &VaultError) -> Failure {
        Failure {
            full: e.is_storage_full(),
            msg: e.to_string(),
        }
    }

    fn error(&self) -> VaultError {
        if self.full {
            VaultError::StorageFull(self.msg.clone())
        } else {
            VaultError::Unavailable(self.msg.clone())
        }
    }
}

/// What one group commit did.
struct Committed {
    /// The extended trees; `None` when nothing was written (failure, or a
    /// batch of duplicates only).
    trees: Option<Trees>,
    replies: Vec<Reply>,
    /// How many audit events were committed.
    events: usize,
    /// Why the store refused the batch, if it did.
    failure: Option<Failure>,
}

/// The evidence rows of one group commit, as they are planned: new leaves
/// get the next indexes; duplicates and replays (in the store or earlier in
/// the batch) get the existing record.
struct Planner<'a> {
    store: &'a dyn Store,
    /// Stored records with a dedup key of this batch, looked up at once.
    stored: HashMap<[u8; 32], EvidenceRow>,
    old_size: u64,
    rows: Vec<EvidenceRow>,
    by_dedup: HashMap<[u8; 32], usize>,
    by_idem: HashMap<(String, String), usize>,
}

impl Planner<'_> {
    /// The put's outcome, and its row with its leaf index if it is a new
    /// leaf (to [`Planner::accept`]).
    fn plan(&self, row: EvidenceRow) -> Result<(Option<EvidenceRow>, PutOutcome)> {
        if let Some(key) = &row.idempotency_key {
            let idem = (row.ingested_by.clone(), key.clone());
            if let Some(&i) = self.by_idem.get(&idem) {
                return Ok((None, outcome(&self.rows[i], false, true)));
            }
        }
        if let Some(&i) = self.by_dedup.get(&row.dedup_key) {
            return Ok((None, outcome(&self.rows[i], true, false)));
        }
        if let Some(key) = &row.idempotency_key
            && let Some(r) = self
                .store
                .record_by_idempotency_key(&row.ingested_by, key)?
        {
            return Ok((None, outcome(&r, false, true)));
        }
        if let Some(r) = self.stored.get(&row.dedup_key) {
            return Ok((None, outcome(r, true, false)));
        }
        let mut row = row;
        row.leaf_index = self.old_size + self.rows.len() as u64;
        let done = outcome(&row, false, false);
        Ok((Some(row), done))
    }

    fn accept(&mut self, row: EvidenceRow) {
        let i = self.rows.len();
        self.by_dedup.insert(row.dedup_key, i);
        if let Some(k) = &row.idempotency_key {
            self.by_idem.insert((row.ingested_by.clone(), k.clone()), i);
        }
        self.rows.push(row);
    }
}

/// Every caller of a batch told that nothing was written: the ones answered
/// so far, `current`, and the ones not planned yet.
fn all_failed(
    replies: Vec<Reply>,
    current: Reply,
    rest: impl Iterator<Item = Pending>,
    e: &VaultError,
) -> Committed {
    metrics::counter!("evault_store_errors_total", "op" => "lookup").increment(1);
    let f = Failure::of(e);
    let replies = replies
        .into_iter()
        .chain(std::iter::once(current))
        .map(|r| r.failed(&f))
        .chain(rest.map(|p| p.refused(&f)))
        .collect();
    Committed {
        trees: None,
        replies,
        events: 0,
        failure: Some(f),
    }
}

/// One group commit. On failure nothing of either log was written, the
/// trees are unchanged and every caller gets [`VaultError::Unavailable`].
fn commit(store: &dyn Store, trees: &Trees, batch: Vec<Pending>) -> Committed {
    let old_size = trees.evidence.size();
    let audit_old_size = trees.audit.as_ref().map_or(0, TreeState::size);
    let keys: Vec<[u8; 32]> = batch
        .iter()
        .flat_map(|p| match p {
            Pending::Put { row, .. } => std::slice::from_ref(row),
            Pending::Many { rows, .. } => rows.as_slice(),
            Pending::Audit { .. } | Pending::Erase { .. } => &[],
        })
        .map(|r| r.dedup_key)
        .collect();
    let stored = match store.records_by_dedup_keys(&keys) {
        Ok(found) => found.into_iter().map(|r| (r.dedup_key, r)).collect(),
        Err(e) => {
            metrics::counter!("evault_store_errors_total", "op" => "lookup").increment(1);
            let f = Failure::of(&VaultError::from(e));
            return Committed {
                trees: None,
                replies: batch.into_iter().map(|p| p.refused(&f)).collect(),
                events: 0,
                failure: Some(f),
            };
        }
    };
    let mut plan = Planner {
        store,
        stored,
        old_size,
        rows: Vec::with_capacity(batch.len()),
        by_dedup: HashMap::new(),
        by_idem: HashMap::new(),
    };
    let mut audit_rows: Vec<AuditRow> = Vec::new();
    let mut replies = Vec::with_capacity(batch.len());
    // Erasures of this batch: committed with its records, in the same
    // transaction.
    let mut erasures = Vec::new();
    let mut erased_here = std::collections::HashSet::new();

    let mut batch = batch.into_iter();
    while let Some(p) = batch.next() {
        let (row, audit, ack) = match p {
            Pending::Audit { mut event, ack } => {
                if trees.audit.is_none() {
                    // Audit is off: nothing to write (the vault does not
                    // queue events then; this is only defensive).
                    replies.push(Reply::Audit(ack, Ok(())));
                    continue;
                }
                let index = audit_old_size + audit_rows.len() as u64;
                match to_row(&mut event, index) {
                    Ok(r) => {
                        audit_rows.push(r);
                        replies.push(Reply::Audit(ack, Ok(())));
                    }
                    Err(why) => replies.push(Reply::Audit(
                        ack,
                        Err(VaultError::Invalid(format!("audit event: {why}"))),
                    )),
                }
                continue;
            }
            Pending::Many { rows, ack } => {
                let n = rows.len();
                let mut results = Vec::with_capacity(n);
                for row in rows {
                    match plan.plan(row) {
                        Ok((new_row, done)) => {
                            if let Some(r) = new_row {
                                plan.accept(r);
                            }
                            results.push(Ok(done));
                        }
                        Err(e) => {
                            // `failed` gives each of the n records the error.
                            let all = (0..n).map(|_| Err(unavailable(""))).collect();
                            return all_failed(replies, Reply::Many(ack, all), batch, &e);
                        }
                    }
                }
                replies.push(Reply::Many(ack, results));
                continue;
            }
            Pending::Erase { job, ack } => {
                let digests = plan
                    .rows
                    .iter()
                    .filter(|r| !matches!(r.payload, Payload::Erased { .. }))
                    .map(|r| r.sha256)
                    .collect();
                if let Err(e) = crate::erasure::check(store, &job, &erased_here, &digests) {
                    replies.push(Reply::Erase(ack, Err(e)));
                    continue;
                }
                let mut done = Vec::with_capacity(job.targets.len());
                let parts = job
                    .targets
                    .into_iter()
                    .zip(job.tombstones)
                    .zip(job.erasures);
                for ((target, mut tomb), mut erasure) in parts {
                    // Tombstones name their target's id: never duplicates.
                    tomb.leaf_index = plan.old_size + plan.rows.len() as u64;
                    erasure.tombstone_leaf = tomb.leaf_index;
                    erased_here.insert(target.leaf_index);
                    done.push(Erased {
                        id: target.id,
                        leaf_index: target.leaf_index,
                        tombstone_id: tomb.id.clone(),
                        tombstone_leaf: tomb.leaf_index,
                    });
                    plan.accept(tomb);
                    erasures.push(erasure);
                }
                replies.push(Reply::Erase(ack, Ok(done)));
                continue;
            }
            Pending::Put { row, audit, ack } => (row, audit, ack),
        };
        // The put's outcome, and its row if it is a new leaf.
        let (new_row, done) = match plan.plan(row) {
            Ok(planned) => planned,
            Err(e) => {
                return all_failed(replies, Reply::Put(ack, Err(unavailable(""))), batch, &e);
            }
        };
        // The event is built from the outcome and goes into the same
        // transaction; a put whose event cannot be logged is not committed.
        if let (Some(build), true) = (audit, trees.audit.is_some()) {
            let mut event = build(&done);
            let index = audit_old_size + audit_rows.len() as u64;
            match to_row(&mut event, index) {
                Ok(r) => audit_rows.push(r),
                Err(why) => {
                    tracing::error!("the audit event of a put is invalid, put refused: {why}");
                    replies.push(Reply::Put(
                        ack,
                        Err(VaultError::Unavailable(format!(
                            "the audit event cannot be written: {why}"
                        ))),
                    ));
                    continue;
                }
            }
        }
        if let Some(row) = new_row {
            plan.accept(row);
        }
        replies.push(Reply::Put(ack, Ok(done)));
    }
    let rows = plan.rows;

    if rows.is_empty() && audit_rows.is_empty() {
        // Duplicates and replays only: nothing to write.
        return Committed {
            trees: None,
            replies,
            events: 0,
            failure: None,
        };
    }
    let mut next = trees.clone();
    let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let tiles = next.evidence.append(&leaves);
    let audit_leaves: Vec<Hash> = audit_rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let audit_tiles = match &mut next.audit {
        Some(t) if !audit_leaves.is_empty() => t.append(&audit_leaves),
        _ => Vec::new(),
    };
    let batch = AppendBatch {
        old_size,
        records: &rows,
        tiles: &tiles,
        audit: (!audit_rows.is_empty()).then_some(AuditBatch {
            old_size: audit_old_size,
            events: &audit_rows,
            tiles: &audit_tiles,
        }),
    };
    let appended = if erasures.is_empty() {
        store.append(&batch)
    } else {
        match store.compliance() {
            Some(c) => c.erase(&batch, &erasures),
            // `erasure.rs` refuses to plan an erasure without these.
            None => Err(evault_store::StoreError::Corrupt(
                "an erasure reached a store without erasure tables".into(),
            )),
        }
    };
    if let Err(evault_store::StoreError::Held { hold, leaf_index }) = &appended {
        // A hold placed after the check: the store refused in the erase
        // transaction and wrote nothing. Not a store failure; the erasure
        // is refused, the rest of the batch asked to retry.
        let why = crate::erasure::held(&format!("at leaf {leaf_index}"), hold);
        let replies = replies
            .into_iter()
            .map(|r| match r {
                Reply::Erase(ack, _) => {
                    Reply::Erase(ack, Err(VaultError::Conflict(why.to_string())))
                }
                other => other.failed(&Failure {
                    full: false,
                    msg: "a legal hold placed meanwhile refused an erasure in the same group \
                          commit; retry"
                        .into(),
                }),
            })
            .collect();
        return Committed {
            trees: None,
            replies,
            events: 0,
            failure: None,
        };
    }
    if let Err(e) = appended {
        metrics::counter!("evault_store_errors_total", "op" => "append").increment(1);
        tracing::error!(
            "group commit of {} records and {} audit events failed: {e}",
            rows.len(),
            audit_rows.len()
        );
        let f = Failure {
            full: e.is_storage_full(),
            msg: format!("commit failed: {e}"),
        };
        return Committed {
            trees: None,
            replies: replies.into_iter().map(|r| r.failed(&f)).collect(),
            events: 0,
            failure: Some(f),
        };
    }
    Committed {
        trees: Some(next),
        replies,
        events: audit_rows.len(),
        failure: None,
    }
}

/// A put's outcome for a stored (or batched) row.
fn outcome(row: &EvidenceRow, duplicate: bool, replayed: bool) -> PutOutcome {
    PutOutcome {
        record: evidence_from_row(row),
        duplicate,
        replayed,
    }
}
