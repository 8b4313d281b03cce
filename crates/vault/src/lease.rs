//! The write lease, for a vault on a shared store (PostgreSQL): taken
//! before the vault writes anything, renewed while it runs, given up when
//! it stops. Only the holder's writes of the logs commit (the store fences
//! each one with the lease's epoch, on the database's clock), so two
//! `evault serve` on one database never both sequence.
//!
//! A lease lost (the database away past the ttl, or this process stalled)
//! is taken again once it is free: in between, commits fail with 503, and
//! the sequencer reloads the trees from the store after a failed commit,
//! so it continues from what is stored. The embedded store has no lease
//! (one process owns the data directory).

use std::sync::Arc;
use std::time::Duration;

use evault_store::{Lease, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(3),
            node: None,
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

/// Takes the lease of `store`, if it has one (`None` for SQLite). A lease
/// held by another node is waited for until it could have expired (a
/// holder that died leaves one behind); past that, another node is alive
/// and writing, and opening fails naming it.
pub(crate) async fn take(store: &Arc<dyn Store>, config: &LeaseConfig) -> Result<Option<Lease>> {
    if store.coordination().is_none() {
        return Ok(None);
    }
    if config.ttl < Duration::from_millis(100) {
        return Err(VaultError::Invalid(format!(
            "lease ttl {:?} is below 100 ms",
            config.ttl
        )));
    }
    let node = config.node();
    let deadline = tokio::time::Instant::now() + config.ttl * 2 + Duration::from_secs(1);
    loop {
        let (st, n, ttl) = (store.clone(), node.clone(), config.ttl);
        let taken = blocking(move || coordination(&*st)?.acquire(&n, "", ttl)).await?;
        if let Some(lease) = taken {
            tracing::info!(epoch = lease.epoch, node = %lease.node, "took the write lease");
            return Ok(Some(lease));
        }
        if tokio::time::Instant::now() >= deadline {
            let st = store.clone();
            let held = blocking(move || coordination(&*st)?.lease()).await?;
            return Err(VaultError::Unavailable(format!(
                "another vault node holds the write lease of this store (node {:?}, epoch {}); \
                 only one `evault serve` may run on a database for now",
                held.holder, held.epoch
            )));
        }
        tokio::time::sleep(config.renew_every().min(Duration::from_millis(250))).await;
    }
}

/// Renews the lease every third of its ttl until `stop` turns true, then
/// gives it up. A lease lost is reported on the health board and taken
/// again as soon as it is free.
pub(crate) fn keep(
    store: Arc<dyn Store>,
    config: LeaseConfig,
    mut stop: watch::Receiver<bool>,
    health: Arc<Board>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let node = config.node();
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
            let (st, n, ttl) = (store.clone(), node.clone(), config.ttl);
            let round = blocking(move || {
                let c = coordination(&*st)?;
                if c.renew()? {
                    return Ok(Renewal::Kept);
                }
                Ok(match c.acquire(&n, "", ttl)? {
                    Some(lease) => Renewal::Retaken(lease.epoch),
                    None => Renewal::Lost(c.lease()?),
                })
            })
            .await;
            match round {
                Ok(Renewal::Kept) => health.clear(Component::Lease),
                Ok(Renewal::Retaken(epoch)) => {
                    tracing::warn!(epoch, "the write lease was lost; took it again");
                    health.clear(Component::Lease);
                }
                Ok(Renewal::Lost(held)) => {
                    let why = format!(
                        "the write lease is held by node {:?} (epoch {}); this node cannot commit",
                        held.holder, held.epoch
                    );
                    tracing::error!("{why}");
                    health.set(Component::Lease, false, why);
                }
                Err(e) => {
                    // The database decides: once the lease expires there,
                    // commits fail and the next round takes it again.
                    tracing::warn!("renewing the write lease failed: {e}");
                    health.set(
                        Component::Lease,
                        false,
                        format!("cannot renew the write lease: {e}"),
                    );
                }
            }
        }
        let st = store.clone();
        if let Err(e) = blocking(move || coordination(&*st)?.release()).await {
            tracing::warn!("giving up the write lease failed (it expires by itself): {e}");
        }
    })
}

/// The store's lease part (present: [`take`] and [`keep`] run only then).
fn coordination(store: &dyn Store) -> evault_store::Result<&dyn evault_store::Coordination> {
    store
        .coordination()
        .ok_or_else(|| evault_store::StoreError::Backend("this store has no write lease".into()))
}

enum Renewal {
    Kept,
    Retaken(u64),
    Lost(evault_store::LeaseState),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> evault_store::Result<T> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}
