//! A vault node's part in a cluster on a shared store (PostgreSQL): the
//! **leader** holds the write lease and sequences, checkpoints, indexes
//! and runs the timers and tasks; a **standby** writes nothing, follows
//! the database (heads, checkpoints, the index's reach) so that it can
//! take over at once, and answers calls with 503 naming the leader. Roles
//! change only through the lease ([`crate::lease`]), whose epoch fences
//! every write of the logs in the database: a node that lost its lease
//! cannot commit, whatever it still believes.
//!
//! The embedded store has no lease: its one vault is the leader, always.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Inner, Vault};

/// How often a standby reads the database for what the leader committed
/// and signed (each read is one indexed query per log).
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// What this node does in its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Holds the write lease of `epoch` (0 on the embedded store, which
    /// has none) and sequences.
    Leader {
        /// The lease's fencing token.
        epoch: u64,
    },
    /// Another node (`holder`, under lease `epoch`) writes; this one
    /// follows it and takes over when that lease lapses.
    Standby {
        /// The lease holder's node name, as it gave it.
        holder: String,
        /// The holder's epoch.
        epoch: u64,
    },
}

impl Role {
    /// Whether this node may write.
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader { .. })
    }

    /// The leader's epoch, if this node leads.
    pub(crate) fn leading(&self) -> Option<u64> {
        match self {
            Role::Leader { epoch } => Some(*epoch),
            Role::Standby { .. } => None,
        }
    }

    /// Why a standby takes no calls, naming the leader; `None` for the
    /// leader.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Role::Leader { .. } => None,
            Role::Standby { holder, epoch } => Some(standby_reason(holder, *epoch)),
        }
    }
}

/// The reason a standby gives, on the health board and to callers.
pub(crate) fn standby_reason(holder: &str, epoch: u64) -> String {
    format!(
        "this vault node is a standby: node {holder:?} holds the write lease (epoch {epoch}) and \
         takes the calls; this node takes over when that lease lapses"
    )
}

/// Waits until `role` changes or its sender is gone (then forever: the
/// vault is ending, and its other branches say so).
pub(crate) async fn changed(role: &mut watch::Receiver<Role>) {
    if role.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resumes, each time this node takes the lead from another, the tasks the
/// old leader left pending or running (as a restart does). `leading` is
/// the role the vault opened with (whose tasks it recovered then).
pub(crate) async fn on_promotion(
    inner: Weak<Inner>,
    mut role: watch::Receiver<Role>,
    mut leading: bool,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        let now = role.borrow_and_update().is_leader();
        if now && !leading {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if let Err(e) = (Vault { inner }).recover_tasks().await {
                tracing::error!("resuming the previous leader's tasks: {e}");
            }
        }
        leading = now;
        tokio::select! {
            changed = role.changed() => if changed.is_err() {
                return;
            },
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
