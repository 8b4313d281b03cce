//! Readiness: what keeps the vault from doing its work right now. Each
//! background task reports its trouble here (and clears it once it has
//! recovered by itself); [`Vault::health`](crate::Vault::health) lists
//! them, and the server's `/readyz` answers 503 with the reasons while the
//! list is not empty. Liveness does not depend on it.

use std::fmt;
use std::sync::Mutex;

use evault_store::LogId;

/// A part of the vault that can be not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// The sequencer: group commits of both logs.
    Sequencer,
    /// The checkpointer of one log.
    Checkpointer(LogId),
    /// The signer of one log (a token taken away, a signing service
    /// down): no checkpoint of that log can be signed until it is back.
    Signer(LogId),
    /// The audit trail's JSON-lines mirror.
    AuditMirror,
    /// The index follower (labels and payload digests, behind the log).
    Indexer,
    /// The write lease of a shared store (PostgreSQL): lost, or not
    /// renewed, so this node's commits fail until it holds it again.
    Lease,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Sequencer => f.write_str("sequencer"),
            Component::Checkpointer(log) => write!(f, "{log} checkpointer"),
            Component::Signer(log) => write!(f, "{log} signer"),
            Component::AuditMirror => f.write_str("audit mirror"),
            Component::Indexer => f.write_str("index follower"),
            Component::Lease => f.write_str("write lease"),
        }
    }
}

/// Why the vault is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// Which part is in trouble.
    pub component: Component,
    /// Whether the trouble is a full disk (the server answers writes 507).
    pub storage_full: bool,
    /// What is wrong, for an operator.
    pub reason: String,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.component, self.reason)
    }
}

/// The current trouble of each component (at most one entry each).
#[derive(Default)]
pub(crate) struct Board {
    entries: Mutex<Vec<NotReady>>,
}

impl Board {
    /// Records `component`'s trouble, replacing what it reported before.
    pub fn set(&self, component: Component, storage_full: bool, reason: impl Into<String>) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|n| n.component != component);
        e.push(NotReady {
            component,
            storage_full,
            reason: reason.into(),
        });
    }

    /// `component` works again.
    pub fn clear(&self, component: Component) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|n| n.component != component);
    }

    /// What `component` reported, if it is in trouble.
    pub fn get(&self, component: Component) -> Option<NotReady> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|n| n.component == component)
            .cloned()
    }

    pub fn list(&self) -> Vec<NotReady> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_component_until_cleared() {
        let b = Board::default();
        assert!(b.list().is_empty());
        b.set(Component::Sequencer, true, "disk full");
        b.set(Component::Sequencer, false, "reload failed");
        b.set(Component::Checkpointer(LogId::Audit), false, "signing");
        let l = b.list();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].to_string(), "sequencer: reload failed");
        assert!(!l[0].storage_full);
        b.clear(Component::Sequencer);
        assert_eq!(b.list()[0].component, Component::Checkpointer(LogId::Audit));
        b.clear(Component::Checkpointer(LogId::Audit));
        assert!(b.list().is_empty());
    }
}
