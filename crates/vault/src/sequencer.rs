//! The single writer of both logs: gathers concurrent evidence puts and
//! audit events into one batch, assigns leaf indexes in each log, extends
//! both trees and their tiles, commits everything in one durable
//! transaction, then acknowledges every caller (group commit). An audit
//! event thus never costs a commit of its own, and a put's event is durable
//! exactly when its record is.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use evault_merkle::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, TiledHashReader, tile_width};
use evault_merkle::{CompactRange, HASH_SIZE, Hash, NodeId, leaf_hash};
use evault_store::{AppendBatch, AuditBatch, AuditRow, EvidenceRow, LogId, Store};
use evault_verify::AuditEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::audit::{AuditOnCommit, to_row};
use crate::error::{Result, VaultError};
use crate::proofs::StoreTiles;
use crate::{PutOutcome, evidence_from_row};

/// Tile levels a u64-sized tree can have (tree levels 0, 8, …, 56).
const TILE_LEVELS: usize = 8;

/// What the sequencer's queue carries.
pub(crate) enum Pending {
    /// An evidence put, and the builder of its audit event (`None`: no
    /// event, e.g. audit disabled).
    Put {
        row: EvidenceRow,
        audit: Option<AuditOnCommit>,
        ack: oneshot::Sender<Result<PutOutcome>>,
    },
    /// An audit event on its own (any call but a put).
    Audit {
        event: AuditEvent,
        ack: oneshot::Sender<Result<()>>,
    },
}

/// Tree size and root after the latest durable commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// The rightmost tile of each level, as the sequencer extends it.
#[derive(Clone, Debug, Default)]
struct TileCache {
    /// Per tile level: (tile index, contents).
    current: Vec<(u64, Vec<u8>)>,
}

/// In-memory state the sequencer appends to.
#[derive(Clone, Debug)]
pub(crate) struct TreeState {
    frontier: CompactRange,
    tiles: TileCache,
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
        let mut current = Vec::with_capacity(TILE_LEVELS);
        for level in 0..TILE_LEVELS as u8 {
            let row_len = size
                .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
                .unwrap_or(0);
            let index = row_len / TILE_WIDTH as u64;
            let data = match tile_width(level, index, size) {
                Some(width) => {
                    let tile = TileId {
                        level,
                        index,
                        width,
                    };
                    store.read_tiles(log, &[tile])?.pop().ok_or_else(|| {
                        VaultError::Inconsistent(format!("missing {log} tile {}", tile.path()))
                    })?
                }
                None => Vec::new(),
            };
            current.push((index, data));
        }
        Ok(TreeState {
            frontier,
            tiles: TileCache { current },
        })
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn head(&self) -> TreeHead {
        TreeHead {
            size: self.frontier.size(),
            root: self.frontier.root(),
        }
    }

    /// Appends leaf hashes; returns the full contents of every tile touched.
    fn append(&mut self, leaves: &[Hash]) -> Vec<(TileId, Vec<u8>)> {
        let mut touched: BTreeSet<(u8, u64)> = BTreeSet::new();
        let mut out = Vec::new();
        let tiles = &mut self.tiles.current;
        self.frontier.extend(leaves, |id: NodeId, hash: &Hash| {
            if !id.level.is_multiple_of(TILE_HEIGHT) {
                return;
            }
            let level = id.level / TILE_HEIGHT;
            let index = id.index / TILE_WIDTH as u64;
            let Some(cur) = tiles.get_mut(level as usize) else {
                return;
            };
            if cur.0 != index {
                // The previous tile at this level just filled up; its last
                // version was flushed below when it got its 256th hash.
                *cur = (index, Vec::with_capacity(TILE_WIDTH as usize * HASH_SIZE));
            }
            cur.1.extend_from_slice(hash);
            if cur.1.len() == TILE_WIDTH as usize * HASH_SIZE {
                out.push((
                    TileId {
                        level,
                        index,
                        width: TILE_WIDTH,
                    },
                    cur.1.clone(),
                ));
                touched.remove(&(level, index));
            } else {
                touched.insert((level, index));
            }
        });
        for (level, index) in touched {
            if let Some((cur_index, data)) = tiles.get(level as usize)
                && *cur_index == index
            {
                let width = (data.len() / HASH_SIZE) as u16;
                out.push((
                    TileId {
                        level,
                        index,
                        width,
                    },
                    data.clone(),
                ));
            }
        }
        out
    }
}

/// Limits of one group commit.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub max_batch: usize,
    pub max_delay: Duration,
}

/// The trees the sequencer extends; `audit` is `None` when audit is off.
#[derive(Clone, Debug)]
pub(crate) struct Trees {
    pub evidence: TreeState,
    pub audit: Option<TreeState>,
}

/// Where the sequencer announces what it committed.
pub(crate) struct Outputs {
    pub evidence_heads: watch::Sender<TreeHead>,
    pub audit_heads: Option<watch::Sender<TreeHead>>,
    /// The JSON-lines mirror, fed after the callers are acknowledged.
    pub mirror: Option<mpsc::Sender<Vec<AuditEvent>>>,
}

/// Runs until every sender is dropped.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Pending>,
    store: Arc<dyn Store>,
    mut trees: Trees,
    limits: BatchLimits,
    out: Outputs,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + limits.max_delay;
        while batch.len() < limits.max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if limits.max_delay.is_zero() {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => batch.push(p),
                        _ => break,
                    }
                }
            }
        }
        metrics::histogram!("evault_ingest_batch_records").record(batch.len() as f64);
        let store = store.clone();
        let started = std::time::Instant::now();
        // `trees` comes back whatever happens inside: a panic (e.g. in an
        // audit builder) drops the batch's acks (callers see Unavailable)
        // and leaves the trees as they were.
        let joined = tokio::task::spawn_blocking(move || {
            let done =
                std::panic::catch_unwind(AssertUnwindSafe(|| commit(&*store, &trees, batch)));
            (trees, done)
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
        trees = unchanged;
        let Ok(done) = done else {
            tracing::error!("sequencer commit panicked; its batch was not committed");
            continue;
        };
        if let Some(next) = done.trees {
            metrics::counter!("evault_records_appended_total")
                .increment(next.evidence.size() - trees.evidence.size());
            trees = next;
        }
        metrics::counter!("evault_audit_events_total").increment(done.events.len() as u64);
        announce(&out.evidence_heads, trees.evidence.head());
        if let (Some(tx), Some(audit)) = (&out.audit_heads, &trees.audit) {
            announce(tx, audit.head());
        }
        for reply in done.replies {
            reply.send();
        }
        // After the acks: a full mirror queue delays the next batch, never
        // this one's callers.
        if let Some(mirror) = &out.mirror
            && !done.events.is_empty()
            && mirror.send(done.events).await.is_err()
        {
            metrics::counter!("evault_audit_mirror_errors_total").increment(1);
            tracing::error!("the audit mirror has stopped; events are not mirrored");
        }
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
    Audit(oneshot::Sender<Result<()>>, Result<()>),
}

impl Reply {
    fn send(self) {
        match self {
            Reply::Put(ack, r) => drop(ack.send(r)),
            Reply::Audit(ack, r) => drop(ack.send(r)),
        }
    }

    /// The same caller, told the batch failed.
    fn failed(self, msg: &str) -> Reply {
        match self {
            Reply::Put(ack, _) => Reply::Put(ack, Err(unavailable(msg))),
            Reply::Audit(ack, _) => Reply::Audit(ack, Err(unavailable(msg))),
        }
    }
}

impl Pending {
    /// The caller of a request that will not be committed.
    fn refused(self, msg: &str) -> Reply {
        match self {
            Pending::Put { ack, .. } => Reply::Put(ack, Err(unavailable(msg))),
            Pending::Audit { ack, .. } => Reply::Audit(ack, Err(unavailable(msg))),
        }
    }
}

fn unavailable(msg: &str) -> VaultError {
    VaultError::Unavailable(msg.to_string())
}

/// What one group commit did.
struct Committed {
    /// The extended trees; `None` when nothing was written (failure, or a
    /// batch of duplicates only).
    trees: Option<Trees>,
    replies: Vec<Reply>,
    /// The audit events committed, with ids and indexes, for the mirror.
    events: Vec<AuditEvent>,
}

/// One group commit. On failure nothing of either log was written, the
/// trees are unchanged and every caller gets [`VaultError::Unavailable`].
fn commit(store: &dyn Store, trees: &Trees, batch: Vec<Pending>) -> Committed {
    let old_size = trees.evidence.size();
    let audit_old_size = trees.audit.as_ref().map_or(0, TreeState::size);
    let mut rows: Vec<EvidenceRow> = Vec::with_capacity(batch.len());
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut audit_rows: Vec<AuditRow> = Vec::new();
    let mut replies = Vec::with_capacity(batch.len());
    let mut by_dedup: HashMap<[u8; 32], usize> = HashMap::new();
    let mut by_idem: HashMap<(String, String), usize> = HashMap::new();

    let lookup = |row: &EvidenceRow| -> Result<Option<PutOutcome>> {
        if let Some(key) = &row.idempotency_key
            && let Some(r) = store.record_by_idempotency_key(&row.ingested_by, key)?
        {
            return Ok(Some(outcome(&r, false, true)));
        }
        Ok(store
            .record_by_dedup_key(&row.dedup_key)?
            .map(|r| outcome(&r, true, false)))
    };

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
                        events.push(event);
                        replies.push(Reply::Audit(ack, Ok(())));
                    }
                    Err(why) => replies.push(Reply::Audit(
                        ack,
                        Err(VaultError::Invalid(format!("audit event: {why}"))),
                    )),
                }
                continue;
            }
            Pending::Put { row, audit, ack } => (row, audit, ack),
        };
        let idem = row
            .idempotency_key
            .clone()
            .map(|k| (row.ingested_by.clone(), k));
        // The put's outcome, and its row if it is a new leaf.
        let (new_row, done) = if let Some(&i) = idem.as_ref().and_then(|k| by_idem.get(k)) {
            (None, outcome(&rows[i], false, true))
        } else if let Some(&i) = by_dedup.get(&row.dedup_key) {
            (None, outcome(&rows[i], true, false))
        } else {
            match lookup(&row) {
                Ok(Some(existing)) => (None, existing),
                Ok(None) => {
                    let mut row = row;
                    row.leaf_index = old_size + rows.len() as u64;
                    let done = outcome(&row, false, false);
                    (Some(row), done)
                }
                Err(e) => {
                    // Nothing is written: every caller of the batch, the
                    // ones not planned yet included, is told so.
                    metrics::counter!("evault_store_errors_total", "op" => "lookup").increment(1);
                    let msg = e.to_string();
                    let replies = replies
                        .into_iter()
                        .map(|r| r.failed(&msg))
                        .chain(std::iter::once(Reply::Put(ack, Err(unavailable(&msg)))))
                        .chain(batch.map(|p| p.refused(&msg)))
                        .collect();
                    return Committed {
                        trees: None,
                        replies,
                        events: Vec::new(),
                    };
                }
            }
        };
        // The event is built from the outcome and goes into the same
        // transaction; a put whose event cannot be logged is not committed.
        if let (Some(build), true) = (audit, trees.audit.is_some()) {
            let mut event = build(&done);
            let index = audit_old_size + audit_rows.len() as u64;
            match to_row(&mut event, index) {
                Ok(r) => {
                    audit_rows.push(r);
                    events.push(event);
                }
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
            let i = rows.len();
            by_dedup.insert(row.dedup_key, i);
            if let Some(k) = idem {
                by_idem.insert(k, i);
            }
            rows.push(row);
        }
        replies.push(Reply::Put(ack, Ok(done)));
    }

    if rows.is_empty() && audit_rows.is_empty() {
        // Duplicates and replays only: nothing to write.
        return Committed {
            trees: None,
            replies,
            events,
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
    if let Err(e) = store.append(&batch) {
        metrics::counter!("evault_store_errors_total", "op" => "append").increment(1);
        tracing::error!(
            "group commit of {} records and {} audit events failed: {e}",
            rows.len(),
            audit_rows.len()
        );
        let msg = format!("commit failed: {e}");
        return Committed {
            trees: None,
            replies: replies.into_iter().map(|r| r.failed(&msg)).collect(),
            events: Vec::new(),
        };
    }
    Committed {
        trees: Some(next),
        replies,
        events,
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
