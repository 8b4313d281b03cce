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
        /// Where the holder takes calls from other nodes (empty when it
        /// advertised nothing: then this node refuses calls, naming it).
        leader: Advertise,
    },
}

/// Where a node takes calls that other nodes forward to it while it leads:
/// the base URLs of its REST and gRPC APIs as the other nodes reach them
/// (e.g. `https://vault-1.internal:8470`, or `http://10.0.0.5:8470` on a
/// private network).
/// Written into the lease when the node takes it, so the standbys know
/// where to forward.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertise {
    /// The REST API's base URL.
    pub rest: Option<String>,
    /// The gRPC API's base URL.
    pub grpc: Option<String>,
}

impl Advertise {
    /// Checks the URLs: `https://HOST:PORT` (the node serves TLS; the
    /// others verify its certificate for HOST) or `http://HOST:PORT`, with
    /// no path, query or user.
    pub fn check(&self) -> Result<(), String> {
        for (what, url) in [("REST", &self.rest), ("gRPC", &self.grpc)] {
            let Some(url) = url else { continue };
            let Some(rest) = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
            else {
                return Err(format!(
                    "advertised {what} address {url:?}: expected https://HOST:PORT, or \
                     http://HOST:PORT if the node serves no TLS"
                ));
            };
            let host_port = rest.strip_suffix('/').unwrap_or(rest);
            let ok = !host_port.is_empty()
                && !host_port.contains(['/', '?', '#', '@', ' '])
                && host_port
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(format!(
                    "advertised {what} address {url:?}: expected https://HOST:PORT or \
                     http://HOST:PORT"
                ));
            }
        }
        Ok(())
    }

    /// The lease row's `advertise` text: `rest=URL grpc=URL`, each part
    /// present when known (URLs hold no space).
    pub(crate) fn to_column(&self) -> String {
        let mut parts = Vec::new();
        if let Some(u) = &self.rest {
            parts.push(format!("rest={}", u.trim_end_matches('/')));
        }
        if let Some(u) = &self.grpc {
            parts.push(format!("grpc={}", u.trim_end_matches('/')));
        }
        parts.join(" ")
    }

    /// Reads [`Advertise::to_column`]'s text; unknown or malformed parts
    /// are ignored (a newer node may write more).
    pub(crate) fn from_column(text: &str) -> Advertise {
        let mut a = Advertise::default();
        for part in text.split_whitespace() {
            match part.split_once('=') {
                Some(("rest", u)) => a.rest = Some(u.to_string()),
                Some(("grpc", u)) => a.grpc = Some(u.to_string()),
                _ => {}
            }
        }
        if a.check().is_err() {
            return Advertise::default();
        }
        a
    }
}

impl Role {
    /// Whether this node may write.
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader { .. })
    }

    /// Where the leader takes forwarded calls, if this node is a standby
    /// and the leader advertised an address.
    pub fn forward_to(&self) -> Option<&Advertise> {
        match self {
            Role::Standby { leader, .. } if leader.rest.is_some() || leader.grpc.is_some() => {
                Some(leader)
            }
            _ => None,
        }
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
            Role::Standby { holder, epoch, .. } => Some(standby_reason(holder, *epoch)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_address_round_trips_through_the_lease_column() {
        let a = Advertise {
            rest: Some("http://10.0.0.5:8470/".into()),
            grpc: Some("http://[::1]:9090".into()),
        };
        a.check().unwrap();
        assert_eq!(
            a.to_column(),
            "rest=http://10.0.0.5:8470 grpc=http://[::1]:9090"
        );
        let back = Advertise::from_column(&a.to_column());
        assert_eq!(back.rest.as_deref(), Some("http://10.0.0.5:8470"));
        assert_eq!(back.grpc.as_deref(), Some("http://[::1]:9090"));
        assert_eq!(Advertise::from_column(""), Advertise::default());
        // A newer node's extra part is ignored.
        assert_eq!(
            Advertise::from_column("rest=http://a:1 raft=x")
                .rest
                .as_deref(),
            Some("http://a:1")
        );
    }

    #[test]
    fn only_a_scheme_host_and_port_is_advertised() {
        let tls = Advertise {
            rest: Some("https://vault-1.internal:8470".into()),
            grpc: Some("https://[::1]:9090/".into()),
        };
        tls.check().unwrap();
        assert_eq!(
            Advertise::from_column(&tls.to_column()).grpc.as_deref(),
            Some("https://[::1]:9090")
        );
        for bad in [
            "ftp://a:1",
            "https://a",
            "https://a:1/path",
            "http://a",
            "http://a:0",
            "http://a:1/path",
            "http://u@a:1",
            "http://:1",
            "a:1",
        ] {
            let a = Advertise {
                rest: Some(bad.into()),
                grpc: None,
            };
            assert!(a.check().is_err(), "{bad}");
            assert_eq!(
                Advertise::from_column(&format!("rest={bad}")),
                Advertise::default()
            );
        }
    }

    #[test]
    fn a_standby_forwards_only_where_the_leader_advertised() {
        let quiet = Role::Standby {
            holder: "a".into(),
            epoch: 1,
            leader: Advertise::default(),
        };
        assert!(quiet.forward_to().is_none());
        let open = Role::Standby {
            holder: "a".into(),
            epoch: 1,
            leader: Advertise {
                rest: Some("http://a:1".into()),
                grpc: None,
            },
        };
        assert!(open.forward_to().is_some());
        assert!(Role::Leader { epoch: 1 }.forward_to().is_none());
    }
}
