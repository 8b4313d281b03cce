//! The single writer: gathers concurrent appends into one batch, assigns
//! leaf indexes, extends the tree and its tiles, commits everything in one
//! durable transaction, then acknowledges every caller (group commit).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use evault_merkle::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, TiledHashReader, tile_width};
use evault_merkle::{CompactRange, HASH_SIZE, Hash, NodeId, leaf_hash};
use evault_store::{AppendBatch, EvidenceRow, Store};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Result, VaultError};
use crate::proofs::StoreTiles;

/// Tile levels a u64-sized tree can have (tree levels 0, 8, …, 56).
const TILE_LEVELS: usize = 8;

/// How an append ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// A new leaf.
    New(EvidenceRow),
    /// The same payload, content type and labels were logged before.
    Duplicate(EvidenceRow),
    /// The same principal retried with the same idempotency key.
    Replayed(EvidenceRow),
}

pub(crate) struct Pending {
    pub row: EvidenceRow,
    pub ack: oneshot::Sender<Result<Appended>>,
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
    /// Rebuilds the state of a stored tree of `size` leaves from its tiles:
    /// at most 64 frontier hashes and the rightmost tile of each level.
    pub fn load(store: &dyn Store, size: u64) -> Result<Self> {
        let reader = TiledHashReader {
            tiles: StoreTiles::uncached(store),
            tree_size: size,
        };
        let nodes = CompactRange::nodes_for_size(size);
        let hashes = evault_merkle::HashReader::read_hashes(&reader, &nodes)
            .map_err(|e| VaultError::Inconsistent(format!("reading the tree frontier: {e}")))?;
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
                    store.read_tiles(&[tile])?.pop().ok_or_else(|| {
                        VaultError::Inconsistent(format!("missing tile {}", tile.path()))
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

/// Runs until every sender is dropped.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Pending>,
    store: Arc<dyn Store>,
    mut state: TreeState,
    limits: BatchLimits,
    head_tx: watch::Sender<TreeHead>,
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
        let before = state.clone();
        let started = std::time::Instant::now();
        let joined = tokio::task::spawn_blocking(move || commit(&*store, state, batch)).await;
        metrics::histogram!("evault_ingest_commit_seconds").record(started.elapsed().as_secs_f64());
        match joined {
            Ok((next, acks)) => {
                metrics::counter!("evault_records_appended_total")
                    .increment(next.frontier.size() - before.frontier.size());
                state = next;
                let _ = head_tx.send(state.head());
                for (ack, outcome) in acks {
                    let _ = ack.send(outcome);
                }
            }
            Err(e) => {
                // The commit task panicked: its callers' acks were dropped
                // (they see Unavailable); the tree state is the one before.
                tracing::error!("sequencer commit task failed: {e}");
                state = before;
            }
        }
    }
}

type Acks = Vec<(oneshot::Sender<Result<Appended>>, Result<Appended>)>;

/// One group commit. Returns the state to continue from and each caller's
/// outcome. On failure nothing was written and the state is unchanged.
fn commit(store: &dyn Store, state: TreeState, batch: Vec<Pending>) -> (TreeState, Acks) {
    let old_size = state.frontier.size();
    enum Plan {
        New(usize),
        Existing(Box<Appended>),
        SameAs(usize, bool),
    }
    let mut rows: Vec<EvidenceRow> = Vec::with_capacity(batch.len());
    let mut plans = Vec::with_capacity(batch.len());
    let mut acks = Vec::with_capacity(batch.len());
    let mut by_dedup: HashMap<[u8; 32], usize> = HashMap::new();
    let mut by_idem: HashMap<(String, String), usize> = HashMap::new();

    let lookup = |p: &Pending| -> Result<Option<Appended>> {
        if let Some(key) = &p.row.idempotency_key
            && let Some(r) = store.record_by_idempotency_key(&p.row.ingested_by, key)?
        {
            return Ok(Some(Appended::Replayed(r)));
        }
        Ok(store
            .record_by_dedup_key(&p.row.dedup_key)?
            .map(Appended::Duplicate))
    };

    for p in batch {
        let idem = p
            .row
            .idempotency_key
            .clone()
            .map(|k| (p.row.ingested_by.clone(), k));
        let plan = if let Some(&i) = idem.as_ref().and_then(|k| by_idem.get(k)) {
            Plan::SameAs(i, true)
        } else if let Some(&i) = by_dedup.get(&p.row.dedup_key) {
            Plan::SameAs(i, false)
        } else {
            match lookup(&p) {
                Ok(Some(existing)) => Plan::Existing(Box::new(existing)),
                Ok(None) => {
                    let i = rows.len();
                    let mut row = p.row.clone();
                    row.leaf_index = old_size + i as u64;
                    by_dedup.insert(row.dedup_key, i);
                    if let Some(k) = idem {
                        by_idem.insert(k, i);
                    }
                    rows.push(row);
                    Plan::New(i)
                }
                Err(e) => return fail_all(state, p, acks, e),
            }
        };
        plans.push(plan);
        acks.push(p.ack);
    }

    let mut next = state.clone();
    let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let tiles = next.append(&leaves);
    if !rows.is_empty() {
        let batch = AppendBatch {
            old_size,
            records: &rows,
            tiles: &tiles,
        };
        if let Err(e) = store.append(&batch) {
            metrics::counter!("evault_store_errors_total", "op" => "append").increment(1);
            tracing::error!("group commit of {} records failed: {e}", rows.len());
            let msg = format!("commit failed: {e}");
            let out = acks
                .into_iter()
                .map(|a| (a, Err(VaultError::Unavailable(msg.clone()))))
                .collect();
            return (state, out);
        }
    }
    let out = acks
        .into_iter()
        .zip(plans)
        .map(|(ack, plan)| {
            let outcome = match plan {
                Plan::New(i) => Appended::New(rows[i].clone()),
                Plan::Existing(a) => *a,
                Plan::SameAs(i, true) => Appended::Replayed(rows[i].clone()),
                Plan::SameAs(i, false) => Appended::Duplicate(rows[i].clone()),
            };
            (ack, Ok(outcome))
        })
        .collect();
    (next, out)
}

fn fail_all(
    state: TreeState,
    current: Pending,
    mut acks: Vec<oneshot::Sender<Result<Appended>>>,
    e: VaultError,
) -> (TreeState, Acks) {
    acks.push(current.ack);
    metrics::counter!("evault_store_errors_total", "op" => "lookup").increment(1);
    let msg = e.to_string();
    let out = acks
        .into_iter()
        .map(|a| (a, Err(VaultError::Unavailable(msg.clone()))))
        .collect();
    (state, out)
}
