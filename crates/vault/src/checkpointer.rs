//! Signs a C2SP checkpoint for the new tree size, at most every
//! `checkpoint_interval`, whenever the tree grew. Every checkpoint is kept.
//! One checkpointer runs per log, each with that log's origin and key.
//! When the vault stops, it signs the final tree at once and ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evault_note::{Checkpoint, Signer, sign};
use evault_store::{LogId, Store, StoredCheckpoint};
use tokio::sync::watch;

use crate::cluster::{FOLLOW_EVERY, Role};
use crate::error::{Result, VaultError};
use crate::head::{Alarm, HeadGuard, SignedHead};
use crate::health::{Board, Component};
use crate::sequencer::TreeHead;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What [`make_checkpoint`] did.
pub(crate) enum Signed {
    /// Signed, the head saved, the checkpoint stored.
    Checkpoint(StoredCheckpoint),
    /// Not signed: the tree does not extend the latest signed head.
    Fork(String),
}

/// Signs and stores `log`'s checkpoint for `head`, unless `head` is not
/// consistent with the latest signed head that `guard` keeps. The new head
/// is saved durably before the checkpoint is stored (and so published): a
/// crash in between leaves the guard at most one checkpoint ahead, of a
/// tree already committed, which the next start signs again.
pub(crate) fn make_checkpoint(
    store: &dyn Store,
    log: LogId,
    signers: &[&dyn Signer],
    origin: &str,
    head: TreeHead,
    guard: &HeadGuard,
) -> Result<Signed> {
    // Checked once, before any key signs: no key (ML-DSA-44 included)
    // ever signs a second root for a size.
    if let Err(why) = guard.check(store, head)? {
        return Ok(Signed::Fork(why));
    }
    let body = Checkpoint::new(origin, head.size, head.root).to_text();
    // All signatures in one call: a note is stored whole or not at all.
    let note = sign(&body, signers)?;
    guard.save(&SignedHead {
        size: head.size,
        root: head.root,
        checkpoint: note.clone(),
    })?;
    let cp = StoredCheckpoint {
        size: head.size,
        note,
        created_at_ms: now_ms(),
    };
    store.put_checkpoint(log, &cp)?;
    Ok(Signed::Checkpoint(cp))
}

pub(crate) struct Checkpointer {
    pub store: Arc<dyn Store>,
    pub log: LogId,
    /// The log's keys, read afresh for each checkpoint (rotation).
    pub ring: Arc<crate::keyring::KeyRing>,
    pub origin: String,
    pub interval: Duration,
    pub published: watch::Sender<u64>,
    /// The sequencer's heads of this log; closed when the sequencer ends.
    pub heads: watch::Receiver<TreeHead>,
    /// The latest signed head, kept outside the store.
    pub guard: HeadGuard,
    /// Raised (and the checkpointer ends) when it refuses to sign a fork.
    pub alarm: Alarm,
    /// Where a failure to sign or store is reported until one succeeds.
    pub health: Arc<Board>,
    /// Only a leader signs; a standby publishes the size of the latest
    /// checkpoint the leader stored.
    pub role: watch::Receiver<Role>,
    /// The lease epoch the key set was last read from the store for.
    pub keys_read_for: Option<u64>,
    /// Whether the last read of the key set failed (reported on `health`).
    pub keys_failed: bool,
}

impl Checkpointer {
    /// Runs until the sequencer stops (its head channel closes), then
    /// signs the final head if it is not signed yet. `stopping` turns the
    /// interval off, so the last checkpoints come without delay.
    pub async fn run(mut self, stopping: watch::Receiver<bool>) {
        use futures_util::FutureExt;
        loop {
            // A panic (e.g. in a signer) restarts the loop from the last
            // published checkpoint; the attempt is retried.
            let ran = std::panic::AssertUnwindSafe(self.follow(stopping.clone()))
                .catch_unwind()
                .await;
            if ran.is_ok() {
                return;
            }
            metrics::counter!("evault_task_restarts_total", "task" => "checkpointer").increment(1);
            tracing::error!("the {} checkpointer panicked; restarting it", self.log);
            self.health.set(
                Component::Checkpointer(self.log),
                false,
                "restarted after a panic",
            );
        }
    }

    async fn follow(&mut self, mut stopping: watch::Receiver<bool>) {
        let mut last = *self.published.borrow();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !self.role.borrow_and_update().is_leader() {
                if self.heads.has_changed().is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                    _ = crate::cluster::changed(&mut self.role) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                last = self.follow_leader(last).await;
                continue;
            }
            // Sleep until the tree grows past the last checkpoint (a failed
            // attempt retries on the next tick) or the sequencer ends; a
            // lost lease wakes it too.
            let mut closed = false;
            let mut demoted = false;
            while self.heads.borrow_and_update().size <= last {
                tokio::select! {
                    changed = self.heads.changed() => if changed.is_err() {
                        closed = true;
                        break;
                    },
                    _ = crate::cluster::changed(&mut self.role) => {
                        demoted = !self.role.borrow().is_leader();
                        if demoted {
                            break;
                        }
                    }
                }
            }
            if demoted {
                continue;
            }
            if closed && self.heads.borrow().size <= last {
                return;
            }
            // At most once per interval, unless the vault is stopping.
            if !closed && !*stopping.borrow() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.wait_for(|s| *s) => {}
                }
            }
            let head = *self.heads.borrow_and_update();
            if head.size <= last || !self.role.borrow().is_leader() {
                continue;
            }
            // The first signature of each lead: another node may have
            // rotated or retired keys since this node last looked.
            let epoch = self.role.borrow().leading();
            if self.keys_read_for != epoch {
                if !self.refresh_keys().await {
                    if closed || *stopping.borrow() {
                        return;
                    }
                    continue;
                }
                self.keys_read_for = epoch;
            }
            let store = self.store.clone();
            let signers = self.ring.signing_set();
            let origin = self.origin.clone();
            let log = self.log;
            let guard = self.guard.clone();
            // Off the runtime: a hardware or remote signer may block.
            let made = tokio::task::spawn_blocking(move || {
                let keys: Vec<&dyn Signer> = signers.iter().map(|s| &**s).collect();
                make_checkpoint(&*store, log, &keys, &origin, head, &guard)
            })
            .await;
            match made {
                Ok(Ok(Signed::Checkpoint(cp))) => {
                    last = cp.size;
                    let _ = self.published.send(cp.size);
                    self.health.clear(Component::Checkpointer(self.log));
                    self.health.clear(Component::Signer(self.log));
                }
                Ok(Err(e @ VaultError::Signing(_))) => {
                    // The signer is away (a token removed, a service
                    // down): checkpoints wait for it, and what needs one
                    // is refused quickly until the next signature works.
                    tracing::error!(
                        "{log} checkpoint at size {}: {e} (retrying every {:?})",
                        head.size,
                        self.interval,
                        log = self.log
                    );
                    metrics::counter!("evault_signing_failures_total", "log" => self.log.to_string())
                        .increment(1);
                    self.health.set(
                        Component::Signer(self.log),
                        false,
                        format!("cannot sign the checkpoint of size {}: {e}", head.size),
                    );
                }
                Ok(Err(e)) => {
                    tracing::error!(
                        "{log} checkpoint at size {}: {e} (retrying)",
                        head.size,
                        log = self.log
                    );
                    self.health.set(
                        Component::Checkpointer(self.log),
                        e.is_storage_full(),
                        format!(
                            "cannot sign or store the checkpoint of size {}: {e}",
                            head.size
                        ),
                    );
                }
                Err(e) => {
                    tracing::error!("{} checkpoint task failed: {e}", self.log);
                    self.health.set(
                        Component::Checkpointer(self.log),
                        false,
                        format!("the checkpoint task failed: {e}"),
                    );
                }
                Ok(Ok(Signed::Fork(why))) => {
                    // Signing again cannot help: the stored tree is not the
                    // one this log's key has vouched for. Stop signing and
                    // make the vault not ready until an operator acts.
                    tracing::error!("{why}; no checkpoint will be signed (see docs/OPERATIONS.md)");
                    metrics::counter!("evault_fork_refusals_total", "log" => log.to_string())
                        .increment(1);
                    self.health
                        .set(Component::Checkpointer(self.log), false, why.clone());
                    self.alarm.raise(why);
                    return;
                }
            }
            if closed && last < head.size {
                // The vault is stopping and the final checkpoint failed:
                // the next start signs it (`Vault::shutdown` says so).
                return;
            }
        }
    }

    /// Takes up the key set the store holds ([`KeyRing::refresh`]); on
    /// failure reports the signer not ready, naming the key this node
    /// lacks, and returns false: it must not sign with keys the log has
    /// moved on from.
    ///
    /// [`KeyRing::refresh`]: crate::keyring::KeyRing::refresh
    async fn refresh_keys(&mut self) -> bool {
        let (store, ring) = (self.store.clone(), self.ring.clone());
        let refreshed = tokio::task::spawn_blocking(move || ring.refresh(&*store)).await;
        match refreshed {
            Ok(Ok(changed)) => {
                if changed {
                    tracing::info!(
                        "the {} log's keys changed on another node; taken up",
                        self.log
                    );
                }
                if self.keys_failed {
                    self.keys_failed = false;
                    self.health.clear(Component::Signer(self.log));
                }
                true
            }
            Ok(Err(e)) => {
                if !self.keys_failed {
                    tracing::error!("{e}");
                }
                self.keys_failed = true;
                self.health.set(
                    Component::Signer(self.log),
                    false,
                    format!("cannot sign with the log's keys: {e}"),
                );
                false
            }
            Err(e) => {
                tracing::error!("reading the {} log's keys: {e}", self.log);
                false
            }
        }
    }

    /// A standby's round: the size of the latest checkpoint in the store,
    /// published if it is past `last` (the leader signed it); and the
    /// key set, which the leader may have changed.
    async fn follow_leader(&mut self, last: u64) -> u64 {
        self.refresh_keys().await;
        let (store, log) = (self.store.clone(), self.log);
        let latest = tokio::task::spawn_blocking(move || store.latest_checkpoint(log)).await;
        match latest {
            Ok(Ok(Some(cp))) if cp.size > last => {
                let _ = self.published.send(cp.size);
                cp.size
            }
            Ok(Err(e)) => {
                tracing::debug!("a standby could not read the latest {log} checkpoint: {e}");
                last
            }
            _ => last,
        }
    }
}
