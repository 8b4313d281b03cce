//! Witnessing (C2SP tlog-witness v1.0, the log's side): after each new
//! checkpoint of the evidence log, the configured witnesses are asked to
//! cosign it (`add-checkpoint` with a consistency proof from the size each
//! last cosigned). The cosignature lines that verify with a witness's keys
//! are stored and served appended to the checkpoint; a checkpoint counts as
//! witnessed once `threshold` distinct witnesses cosigned it.
//!
//! The protocol itself (409 resync, 422, back-off, verification) is
//! `evault_witness::Witnesses`; this task feeds it checkpoints and proofs
//! and keeps what it returns. It runs beside the checkpointer and never
//! holds it up: a witness that is slow or down delays only its own answer.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evault_merkle::tiles::TiledHashReader;
use evault_store::{Cosignature, LogId, Store};
use evault_witness::{ProofSource, Transport, WitnessOutcome, WitnessSpec, Witnesses};
use tokio::sync::watch;

use crate::checkpointer::now_ms;
use crate::error::{Result, VaultError};
use crate::proofs::StoreTiles;

/// Which witnesses the evidence log asks, and when a checkpoint counts as
/// witnessed.
#[derive(Clone)]
pub struct WitnessSetup {
    /// The witnesses (name, `add-checkpoint` URL, cosigner keys).
    pub witnesses: Vec<WitnessSpec>,
    /// How many distinct witnesses must cosign a checkpoint (k of n).
    pub threshold: usize,
    /// How requests reach them (HTTP in `evault serve`); it bounds the time
    /// and size of each answer.
    pub transport: Arc<dyn Transport + Send + Sync>,
    /// The least time between two rounds (witnesses rate-limit the logs
    /// they serve): a newer checkpoint waits for it, and one not yet
    /// witnessed is offered again after it.
    pub interval: Duration,
}

impl fmt::Debug for WitnessSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WitnessSetup")
            .field("witnesses", &self.witnesses)
            .field("threshold", &self.threshold)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// One witness, as the log last saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessView {
    /// Its configured name.
    pub name: String,
    /// The size it last cosigned, as far as the vault knows (0: none yet).
    pub acknowledged_size: u64,
    /// Its last failure, until it cosigns again.
    pub last_error: Option<String>,
    /// It answered that a checkpoint is inconsistent with one it cosigned
    /// (HTTP 422): a fork or a rollback, or a faulty witness. An operator
    /// must look.
    pub inconsistent: bool,
}

/// The evidence log's witnessing, for `/api/v1/log` and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessStatus {
    /// How many distinct witnesses must cosign.
    pub threshold: usize,
    /// How many are configured.
    pub total: usize,
    /// The largest checkpoint size that `threshold` distinct witnesses
    /// cosigned; `None` before the first.
    pub witnessed_size: Option<u64>,
    /// Each witness, in configuration order.
    pub witnesses: Vec<WitnessView>,
}

impl WitnessSetup {
    /// Checks the policy and the keys before the vault starts.
    pub(crate) fn witnesses(&self) -> Result<Witnesses> {
        if self.interval.is_zero() {
            return Err(VaultError::Invalid(
                "witnesses: the interval between rounds must not be zero".into(),
            ));
        }
        Witnesses::new(self.witnesses.clone(), self.threshold)
            .map_err(|e| VaultError::Invalid(format!("witnesses: {e}")))
    }

    /// The configured witnesses' names: only they count toward k.
    fn names(&self) -> Vec<String> {
        self.witnesses.iter().map(|w| w.name.clone()).collect()
    }
}

/// Consistency proofs from the log's stored tiles.
struct StoreProofs<'a> {
    store: &'a dyn Store,
    log: LogId,
}

impl ProofSource for StoreProofs<'_> {
    fn consistency_proof(&self, old: u64, new: u64) -> std::result::Result<Vec<[u8; 32]>, String> {
        let reader = TiledHashReader {
            tiles: StoreTiles::uncached(self.store, self.log),
            tree_size: new,
        };
        evault_merkle::consistency_proof(&reader, old, new).map_err(|e| e.to_string())
    }
}

/// The running task.
pub(crate) struct Witnessing {
    pub store: Arc<dyn Store>,
    pub log: LogId,
    /// Each witness's state; `None` only while a round runs in the
    /// blocking pool, which hands it back.
    pub witnesses: Option<Witnesses>,
    pub setup: WitnessSetup,
    /// The log's signed checkpoint sizes.
    pub checkpoints: watch::Receiver<u64>,
    pub status: watch::Sender<WitnessStatus>,
    /// Set when the vault stops: a round in flight sends no more requests.
    pub stopping: watch::Receiver<bool>,
    /// Only the leader asks witnesses: one node's rounds, not one per node.
    pub role: watch::Receiver<crate::cluster::Role>,
}

/// The transport, refusing new requests once the vault stops, so a round
/// in the blocking pool ends after the request in flight (at most its
/// timeout) instead of asking every witness in turn.
struct StopAware {
    inner: Arc<dyn Transport + Send + Sync>,
    stopping: watch::Receiver<bool>,
}

impl Transport for StopAware {
    fn post(
        &self,
        url: &str,
        body: &[u8],
    ) -> std::result::Result<evault_witness::Response, String> {
        if *self.stopping.borrow() {
            return Err("the vault is stopping".into());
        }
        self.inner.post(url, body)
    }
}

impl Witnessing {
    /// The status before the first round: what the store holds.
    pub fn initial_status(
        store: &dyn Store,
        log: LogId,
        setup: &WitnessSetup,
    ) -> Result<WitnessStatus> {
        let witnessed_size = match store.cosignatures() {
            Some(c) => c.witnessed_size(log, setup.threshold, &setup.names())?,
            None => None,
        };
        Ok(WitnessStatus {
            threshold: setup.threshold,
            total: setup.witnesses.len(),
            witnessed_size,
            witnesses: setup
                .witnesses
                .iter()
                .map(|w| WitnessView {
                    name: w.name.clone(),
                    ..WitnessView::default()
                })
                .collect(),
        })
    }

    /// Offers the latest checkpoint until it is witnessed, at most one
    /// round per `interval`; ends when the checkpointer does or the vault
    /// stops.
    pub async fn run(mut self) {
        let mut stopping = self.stopping.clone();
        loop {
            if self.checkpoints.has_changed().is_err() {
                // The checkpointer has ended: nothing new will come.
                return;
            }
            if !self.role.borrow_and_update().is_leader() {
                tokio::select! {
                    _ = crate::cluster::changed(&mut self.role) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                continue;
            }
            let size = *self.checkpoints.borrow_and_update();
            if size > 0 && self.status.borrow().witnessed_size < Some(size) {
                self.round(size).await;
                tokio::select! {
                    _ = tokio::time::sleep(self.setup.interval) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                continue;
            }
            tokio::select! {
                changed = self.checkpoints.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    }

    /// Asks every witness about the checkpoint of `size` and keeps what
    /// they cosigned.
    async fn round(&mut self, size: u64) {
        let store = self.store.clone();
        let log = self.log;
        let transport = StopAware {
            inner: self.setup.transport.clone(),
            stopping: self.stopping.clone(),
        };
        let threshold = self.setup.threshold;
        let names = self.setup.names();
        let Some(mut witnesses) = self.witnesses.take() else {
            return;
        };
        let ran = tokio::task::spawn_blocking(move || {
            let result = ask_and_keep(
                &*store,
                log,
                size,
                &mut witnesses,
                &transport,
                (threshold, &names),
            );
            (witnesses, result)
        })
        .await;
        let (witnesses, result) = match ran {
            Ok(done) => done,
            Err(e) => {
                // The state went with the task: start over, as after a
                // restart (witnesses answer 409 with their sizes).
                tracing::error!("witnessing of the {log} checkpoint of size {size} failed: {e}");
                self.witnesses = self.setup.witnesses().ok();
                return;
            }
        };
        let acked = witnesses.acknowledged();
        self.witnesses = Some(witnesses);
        match result {
            Ok((round, witnessed_size)) => {
                let mut status = self.status.borrow().clone();
                status.witnessed_size = witnessed_size;
                for (view, (name, outcome)) in status.witnesses.iter_mut().zip(&round) {
                    debug_assert_eq!(&view.name, name);
                    view.acknowledged_size =
                        acked.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
                    let label = match outcome {
                        WitnessOutcome::Cosigned(_) => {
                            view.last_error = None;
                            view.inconsistent = false;
                            "cosigned"
                        }
                        WitnessOutcome::BackingOff { .. } => "backing_off",
                        WitnessOutcome::Failed(e) => {
                            tracing::warn!("witness {name}, {log} checkpoint {size}: {e}");
                            view.last_error = Some(e.clone());
                            "failed"
                        }
                        WitnessOutcome::Inconsistent(e) => {
                            tracing::error!(
                                "witness {name} says the {log} checkpoint of size {size} is \
                                 inconsistent with one it cosigned: {e}"
                            );
                            view.last_error = Some(e.clone());
                            view.inconsistent = true;
                            "inconsistent"
                        }
                    };
                    metrics::counter!(
                        "evault_witness_requests_total",
                        "witness" => name.clone(),
                        "outcome" => label
                    )
                    .increment(1);
                    metrics::gauge!("evault_witness_acknowledged_size", "witness" => name.clone())
                        .set(view.acknowledged_size as f64);
                }
                if let Some(w) = witnessed_size {
                    metrics::gauge!("evault_witnessed_size", "log" => log.to_string())
                        .set(w as f64);
                }
                self.status.send_replace(status);
            }
            Err(e) => {
                tracing::error!("witnessing of the {log} checkpoint of size {size}: {e}");
            }
        }
    }
}

type RoundOutcomes = Vec<(String, WitnessOutcome)>;

/// Runs one round for the stored checkpoint of `size`, stores the verified
/// cosignatures, and returns the outcomes and the witnessed size.
fn ask_and_keep(
    store: &dyn Store,
    log: LogId,
    size: u64,
    witnesses: &mut Witnesses,
    transport: &dyn Transport,
    (threshold, names): (usize, &[String]),
) -> Result<(RoundOutcomes, Option<u64>)> {
    let cp = store.checkpoint_at(log, size)?.ok_or_else(|| {
        VaultError::Inconsistent(format!("the {log} checkpoint of size {size} is not stored"))
    })?;
    let proofs = StoreProofs { store, log };
    let round = witnesses.cosign(&cp.note, size, &proofs, transport, Instant::now());
    let Some(cs) = store.cosignatures() else {
        return Err(VaultError::Unavailable(
            "this vault's store keeps no cosignatures".into(),
        ));
    };
    let received_ms = now_ms();
    for (name, outcome) in &round.outcomes {
        if let WitnessOutcome::Cosigned(lines) = outcome {
            let rows: Vec<Cosignature> = lines
                .iter()
                .filter_map(|l| {
                    let line = l.trim_end_matches('\n');
                    Some(Cosignature {
                        witness: name.clone(),
                        key: line_key(line)?,
                        line: line.to_string(),
                        received_ms,
                    })
                })
                .collect();
            cs.put_cosignatures(log, size, &rows)?;
        }
    }
    let witnessed = cs.witnessed_size(log, threshold, names)?;
    Ok((round.outcomes, witnessed))
}

/// `<key name>+<key id hex>` of a signature line `— <name> <base64>`, whose
/// base64 starts with the 4-byte key ID (C2SP signed-note). The lines were
/// verified, so this holds; `None` otherwise.
fn line_key(line: &str) -> Option<String> {
    use base64::Engine as _;
    let (name, sig) = line.strip_prefix("\u{2014} ")?.rsplit_once(' ')?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(sig).ok()?;
    let id = bytes.get(..4)?;
    Some(format!(
        "{name}+{:08x}",
        u32::from_be_bytes([id[0], id[1], id[2], id[3]])
    ))
}
