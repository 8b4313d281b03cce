//! The write lease, for a vault on a shared store (PostgreSQL): taken
//! before the vault writes anything, renewed while it runs, given up when
//! it stops. Only the holder's writes of the logs commit (the store fences
//! each one with the lease's epoch, on the database's clock), so two
//! `evault serve` on one database never both sequence.
//!
//! A node that finds the lease held starts as a standby (`cluster.rs`) and
//! takes the lease as soon as it is free. A leader that loses its lease
//! (the database away past the ttl, or this process stalled) becomes a
//! standby too, or takes it again if it is still free: in between,
//! commits fail with 503, and the sequencer reloads the trees from the
//! store under each new epoch, so it continues from what is stored. The
//! embedded store has no lease (one process owns the data directory).

use std::sync::Arc;
use std::time::Duration;

use evault_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Advertise, Role};
use crate::error::{Result, VaultError};
use crate::health::{Board, Component};

/// How a vault on a shared store holds the write lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long the lease lasts without a renewal: after a holder dies,
    /// another may write after at most this. Renewed every third of it.
    /// Default 3 s.
    pub ttl: Duration,
    /// This node's name in the lease (for operators: `evault` names the
    /// holder when it cannot take the lease). Default
    /// `<host name>-<process id>`.
    pub node: Option<String>,
    /// Where this node takes forwarded calls while it leads; standbys
    /// forward the calls they receive there. Default: nothing, and
    /// standbys refuse calls naming the leader.
    pub advertise: Advertise,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(3),
            node: None,
            advertise: Advertise::default(),
        }
    }
}

impl LeaseConfig {
    fn node(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let host = if host.is_empty() {
                "evault".into()
            } else {
                host
            };
            format!("{host}-{}", std::process::id())
        })
    }

    fn renew_every(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(10))
    }
}

/// Takes this node's role on `store`, if it has a lease (`None` for
/// SQLite, whose one vault always leads): the leader's if the lease is
/// free or expired, else a standby's, which writes nothing.
///
/// A lease held by another may be a dead holder's (this node's previous
/// process, killed): it is watched until it either expires (this node
/// takes it and leads, as a restart should) or is renewed (its holder is
/// alive: this node stands by), which a live holder does every third of
/// its ttl. A database whose logs the holder has not initialised yet (no
/// origin, no first checkpoint) cannot be followed: past twice the ttl and
/// a second, opening fails naming the holder.
pub(crate) async fn take(
    store: &Arc<dyn Store>,
    config: &LeaseConfig,
    audit: bool,
) -> Result<Option<Role>> {
    if store.coordination().is_none() {
        return Ok(None);
    }
    if config.ttl < Duration::from_millis(100) {
        return Err(VaultError::Invalid(format!(
            "lease ttl {:?} is below 100 ms",
            config.ttl
        )));
    }
    config.advertise.check().map_err(VaultError::Invalid)?;
    let node = config.node();
    let advertise = config.advertise.to_column();
    let deadline = tokio::time::Instant::now() + config.ttl * 2 + Duration::from_secs(1);
    // The held lease as first seen: its epoch and when it would expire.
    let mut seen: Option<(u64, tokio::time::Instant)> = None;
    loop {
        let (st, n, ad, ttl) = (store.clone(), node.clone(), advertise.clone(), config.ttl);
        let taken = blocking(move || {
            let c = coordination(&*st)?;
            Ok(match c.acquire(&n, &ad, ttl)? {
                Some(lease) => Ok(lease),
                None => Err((c.lease()?, crate::startup::initialized(&*st, audit)?)),
            })
        })
        .await?;
        let (held, initialized) = match taken {
            Ok(lease) => {
                tracing::info!(epoch = lease.epoch, node = %lease.node, "took the write lease: this node leads");
                return Ok(Some(Role::Leader { epoch: lease.epoch }));
            }
            Err(other) => other,
        };
        let now = tokio::time::Instant::now();
        let expires = now + held.remaining.unwrap_or_default();
        // Renewed (its expiry moved on by more than a round trip's
        // jitter) or taken again: a live holder.
        let alive = seen.is_some_and(|(epoch, first)| {
            held.epoch != epoch || expires > first + Duration::from_millis(100)
        });
        if seen.is_none() {
            seen = Some((held.epoch, expires));
        }
        if initialized && (alive || now >= deadline) {
            tracing::info!(
                holder = %held.holder,
                epoch = held.epoch,
                "another node holds the write lease: this node starts as a standby"
            );
            return Ok(Some(Role::Standby {
                leader: Advertise::from_column(&held.advertise),
                holder: held.holder,
                epoch: held.epoch,
            }));
        }
        if now >= deadline {
            return Err(VaultError::Unavailable(format!(
                "another vault node holds the write lease of this store (node {:?}, epoch {}) \
                 and has not initialised its logs yet; start this node again once it has",
                held.holder, held.epoch
            )));
        }
        tokio::time::sleep(config.renew_every().min(Duration::from_millis(250))).await;
    }
}

/// The elector: every third of the ttl the leader renews its lease and a
/// standby tries to take it, until `stop` turns true; then a held lease is
/// given up. Each change of role is published on `role` (the sequencer,
/// checkpointers, index follower and timers act on it) and shown on the
/// health board: a standby is not ready, naming the leader.
pub(crate) fn keep(
    store: Arc<dyn Store>,
    config: LeaseConfig,
    role: Arc<watch::Sender<Role>>,
    mut stop: watch::Receiver<bool>,
    health: Arc<Board>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let node = config.node();
        let advertise = config.advertise.to_column();
        show(&health, &role.borrow());
        let mut ticks = tokio::time::interval(config.renew_every());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let leading = role.borrow().leading();
            let (st, n, ad, ttl) = (store.clone(), node.clone(), advertise.clone(), config.ttl);
            let round = blocking(move || {
                let c = coordination(&*st)?;
                if leading.is_some() && c.renew()? {
                    return Ok(None);
                }
                Ok(Some(match c.acquire(&n, &ad, ttl)? {
                    Some(lease) => Role::Leader { epoch: lease.epoch },
                    None => {
                        let held = c.lease()?;
                        Role::Standby {
                            leader: Advertise::from_column(&held.advertise),
                            holder: held.holder,
                            epoch: held.epoch,
                        }
                    }
                }))
            })
            .await;
            match round {
                Ok(None) => health.clear(Component::Lease),
                Ok(Some(next)) => {
                    match (&leading, &next) {
                        (Some(old), Role::Leader { epoch }) => {
                            tracing::warn!(old, epoch, "the write lease was lost; took it again")
                        }
                        (None, Role::Leader { epoch }) => {
                            tracing::warn!(epoch, "took the write lease: this node leads now")
                        }
                        (Some(old), Role::Standby { holder, epoch, .. }) => tracing::error!(
                            old, %holder, epoch,
                            "the write lease was lost to another node: this node is a standby now"
                        ),
                        (None, Role::Standby { .. }) => {}
                    }
                    show(&health, &next);
                    role.send_if_modified(|r| {
                        let changed = *r != next;
                        *r = next;
                        changed
                    });
                }
                Err(e) => {
                    // The database decides: once the lease expires there,
                    // commits fail and the next round takes it again.
                    tracing::warn!("renewing the write lease failed: {e}");
                    health.set(
                        Component::Lease,
                        false,
                        format!("cannot reach the write lease: {e}"),
                    );
                }
            }
        }
        if role.borrow().is_leader() {
            let st = store.clone();
            if let Err(e) = blocking(move || coordination(&*st)?.release()).await {
                tracing::warn!("giving up the write lease failed (it expires by itself): {e}");
            }
        }
    })
}

/// A role on the health board: a standby is ready when it can forward
/// calls to the leader (which advertised where), not ready otherwise.
fn show(health: &Board, role: &Role) {
    match role.refusal() {
        Some(why) if role.forward_to().is_none() => health.set(Component::Lease, false, why),
        _ => health.clear(Component::Lease),
    }
}

/// The store's lease part (present: [`take`] and [`keep`] run only then).
fn coordination(store: &dyn Store) -> evault_store::Result<&dyn evault_store::Coordination> {
    store
        .coordination()
        .ok_or_else(|| evault_store::StoreError::Backend("this store has no write lease".into()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> evault_store::Result<T> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}
