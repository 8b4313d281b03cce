//! The vault's background tasks and their orderly end. [`Vault::shutdown`]
//! stops intake, lets the sequencer commit what is queued, has each
//! checkpointer sign the final tree, lets the audit mirror and the index
//! follower catch up, and joins them all; nothing is left running and nothing acknowledged is
//! left unsigned.

use tokio::task::JoinHandle;

use crate::error::{Result, VaultError};
use crate::{LogId, Vault};

/// The tasks a running vault owns.
pub(crate) struct Tasks {
    pub sequencer: JoinHandle<()>,
    /// One per log.
    pub checkpointers: Vec<JoinHandle<()>>,
    /// The audit mirror, if on.
    pub mirror: Option<JoinHandle<()>>,
    /// The index follower.
    pub indexer: JoinHandle<()>,
    /// The evidence log's witnessing, if witnesses are configured.
    pub witnessing: Option<JoinHandle<()>>,
    /// Retires old keys when a rotation's overlap ends.
    pub key_timer: Option<JoinHandle<()>>,
    /// Starts retention sweeps on schedule.
    pub retention_timer: Option<JoinHandle<()>>,
    /// Resumes the tasks a lost leader left when this node takes over.
    pub promotions: Option<JoinHandle<()>>,
    /// Renews the write lease of a shared store; told to stop (and give
    /// the lease up) after the last write.
    pub lease: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
}

/// What [`Vault::shutdown`] left behind: each log's final size and the
/// size of its final signed checkpoint (equal, unless signing failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Evidence tree size after the last commit.
    pub evidence_size: u64,
    /// Size of the evidence log's last signed checkpoint.
    pub evidence_checkpoint: u64,
    /// The same two for the audit log, when audit is on.
    pub audit: Option<(u64, u64)>,
}

impl Vault {
    /// Stops the vault: refuses new work ([`VaultError::Unavailable`]),
    /// commits everything already queued (callers get their answers), signs
    /// a final checkpoint of each log, lets the audit mirror catch up, and
    /// joins every background task. Reads keep working on the clones still
    /// held. Calling it again returns the same figures at once.
    ///
    /// Fails if a task died or a final checkpoint could not be signed (the
    /// records stay durable; the next start signs them).
    pub async fn shutdown(&self) -> Result<Stopped> {
        // Tracked tasks first: they may still write (and audit) through the
        // sequencer until they have stopped.
        self.stop_tasks().await;
        let tasks = self
            .inner
            .tasks
            .lock()
            .map_err(|_| VaultError::Unavailable("shutdown state poisoned".into()))?
            .take();
        self.inner.stop.send_replace(true);
        if let Some(tasks) = tasks {
            // Cosignatures are extra, and a witness may be slow to answer:
            // not waited for. A round in flight in the blocking pool sends
            // no more requests once `stop` is set (at most the one in
            // flight, bounded by the transport's timeout, finishes).
            if let Some(w) = &tasks.witnessing {
                w.abort();
            }
            // A retirement cut short is finished at the next start (its
            // record is replayed under the same idempotency key).
            if let Some(k) = &tasks.key_timer {
                k.abort();
            }
            // A sweep it started is a task: the runner stops it.
            if let Some(r) = &tasks.retention_timer {
                r.abort();
            }
            if let Some(p) = &tasks.promotions {
                p.abort();
            }
            // Order matters: the checkpointers sign the sequencer's last
            // head, and the mirror follows the audit log's.
            tasks.sequencer.await?;
            for c in tasks.checkpointers {
                c.await?;
            }
            if let Some(m) = tasks.mirror {
                m.await?;
            }
            // It ends once the index covers the final head: an offline
            // fsck then finds the index complete.
            tasks.indexer.await?;
            // Nothing writes any more: another node may take over at once.
            if let Some((stop, keeper)) = tasks.lease {
                stop.send_replace(true);
                keeper.await?;
            }
        }
        let stopped = Stopped {
            evidence_size: self.inner.evidence.head().size,
            evidence_checkpoint: self.inner.evidence.checkpoint_size(),
            audit: self
                .inner
                .audit
                .as_ref()
                .map(|a| (a.head().size, a.checkpoint_size())),
        };
        for (log, (size, signed)) in [(
            LogId::Evidence,
            (stopped.evidence_size, stopped.evidence_checkpoint),
        )]
        .into_iter()
        .chain(stopped.audit.map(|a| (LogId::Audit, a)))
        {
            // A standby signs nothing: the leader signs what it committed.
            if signed < size && self.inner.role.borrow().is_leader() {
                return Err(VaultError::Unavailable(format!(
                    "the final {log} checkpoint was not signed: tree size {size}, last \
                     checkpoint {signed}; the next start signs it"
                )));
            }
        }
        Ok(stopped)
    }

    /// Whether [`Vault::shutdown`] has been called.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.stop.borrow()
    }
}
