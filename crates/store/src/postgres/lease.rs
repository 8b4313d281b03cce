//! The sequencing lease on PostgreSQL (migration 6): [`Coordination`] for
//! [`PgStore`], and the fence every write of the logs passes first.
//!
//! The lease is one row (`lease`), judged on the database's clock only, so
//! no node's clock matters. Each write of the logs runs `SELECT
//! evault_fence(epoch, ttl)` first in its own transaction: it fails
//! (SQLSTATE `EV002`, [`StoreError::Fenced`]) unless the epoch holds an
//! unexpired lease, and locks the row `FOR SHARE` until COMMIT, so a
//! takeover waits for the commit in flight. It also bounds the
//! transaction's statements and idle time by the ttl, so a holder stopped
//! mid-transaction (SIGSTOP, a cut network) releases the row to the next
//! holder instead of keeping it locked; one stopped inside a COPY, which no
//! timeout ends, is terminated by the next node's `acquire`.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::log::{i64_of, u64_of};
use super::store::PgStore;
use super::{cached, pg};
use crate::{Coordination, Lease, LeaseState, Result, StoreError};

/// The held lease, as a write's transaction presents it.
#[derive(Clone, Debug)]
pub(super) struct Fence {
    pub(super) epoch: i64,
    pub(super) ttl_ms: i64,
    pub(super) node: String,
}

/// Passes the fence at the start of `tx`: the epoch must hold the lease,
/// unexpired, until `tx` commits.
pub(super) async fn enter(tx: &impl GenericClient, fence: &Fence) -> Result<()> {
    cached::execute(
        tx,
        "SELECT evault_fence($1, $2)",
        &[&fence.epoch, &fence.ttl_ms],
    )
    .await?;
    Ok(())
}

fn ttl_ms(ttl: Duration) -> Result<i64> {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    if ms < 1 {
        return Err(crate::sqlite::error::invalid(
            "a lease's ttl must be at least 1 ms",
        ));
    }
    Ok(ms)
}

impl PgStore {
    /// The fence of the lease this store holds, or [`StoreError::Fenced`].
    pub(super) fn fence(&self) -> Result<Fence> {
        let held = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        match &*held {
            Some(l) => Ok(Fence {
                epoch: i64_of(l.epoch, "lease epoch")?,
                ttl_ms: ttl_ms(l.ttl)?,
                node: l.node.clone(),
            }),
            None => Err(StoreError::Fenced(
                "this store holds no sequencing lease (acquire one first)".into(),
            )),
        }
    }

    fn set_held(&self, lease: Option<Lease>) {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease;
    }
}

impl Coordination for PgStore {
    fn acquire(&self, node: &str, advertise: &str, ttl: Duration) -> Result<Option<Lease>> {
        let ms = ttl_ms(ttl)?;
        // Waits for the row's FOR SHARE locks: a commit of the old epoch in
        // flight lands before the new epoch begins. But a holder stopped
        // in the middle of a COPY (SIGSTOP, a cut network) would hold them
        // for ever: a backend waiting for COPY data acts on no statement
        // or idle timeout, only on termination. So once the lease has
        // expired, a transaction that holds a lock on `lease` and began
        // more than a ttl ago (no fenced transaction may live that long)
        // is terminated first: at worst a commit fails and its callers
        // retry; nothing acknowledged is lost.
        let row = self.run(|c| async move {
            if let Err(e) = cached::execute(&c, END_STUCK_HOLDERS, &[&ms]).await {
                tracing::warn!("ending a stuck lease holder's transaction: {e}");
            }
            cached::query_opt(
                &c,
                "UPDATE lease SET epoch = epoch + 1, holder = $1, advertise = $2, \
             expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond' \
             WHERE id = 1 AND expires_at <= clock_timestamp() RETURNING epoch",
                &[&node, &advertise, &ms],
            )
            .await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let lease = Lease {
            epoch: u64_of(row.try_get(0).map_err(pg)?, "lease epoch")?,
            node: node.to_string(),
            ttl,
        };
        self.set_held(Some(lease.clone()));
        Ok(Some(lease))
    }

    fn renew(&self) -> Result<bool> {
        let fence = match self.fence() {
            Ok(f) => f,
            Err(StoreError::Fenced(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let renewed = self.run(|c| async move {
            cached::execute(
                &c,
                "UPDATE lease SET expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond' \
             WHERE id = 1 AND epoch = $1 AND holder = $2 AND expires_at > clock_timestamp()",
                &[&fence.epoch, &fence.node, &fence.ttl_ms],
            )
            .await
        })?;
        if renewed == 0 {
            self.set_held(None);
        }
        Ok(renewed == 1)
    }

    fn release(&self) -> Result<()> {
        let fence = match self.fence() {
            Ok(f) => f,
            Err(StoreError::Fenced(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.set_held(None);
        release(self, &fence, None)
    }

    fn held(&self) -> Option<Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lease(&self) -> Result<LeaseState> {
        let row = self.run(|c| async move {
            cached::query_one(
                &c,
                "SELECT epoch, holder, advertise, CASE WHEN expires_at > clock_timestamp() \
             THEN (extract(epoch FROM expires_at - clock_timestamp()) * 1000000)::bigint END \
             FROM lease WHERE id = 1",
                &[],
            )
            .await
        })?;
        let micros: Option<i64> = row.try_get(3).map_err(pg)?;
        Ok(LeaseState {
            epoch: u64_of(row.try_get(0).map_err(pg)?, "lease epoch")?,
            holder: row.try_get(1).map_err(pg)?,
            advertise: row.try_get(2).map_err(pg)?,
            remaining: micros.map(|m| Duration::from_micros(m.max(0) as u64)),
        })
    }
}

/// Terminates the sessions whose transactions hold a lock on `lease`,
/// began more than `$1` ms ago, while the lease is expired (the caller's
/// own session aside). Same-role sessions may be terminated without
/// superuser rights (PostgreSQL 14+); a refusal is only logged.
const END_STUCK_HOLDERS: &str = "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l \
     JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'relation' AND l.relation = 'lease'::regclass AND l.granted \
     AND l.pid <> pg_backend_pid() AND a.datname = current_database() \
     AND a.xact_start < clock_timestamp() - $1::bigint * interval '1 millisecond' \
     AND EXISTS (SELECT 1 FROM lease WHERE id = 1 AND expires_at <= clock_timestamp())";

/// Expires `fence`'s lease now if it is still current (within `deadline`
/// if given: a store dropped while the database is away must not hang).
pub(super) fn release(store: &PgStore, fence: &Fence, deadline: Option<Duration>) -> Result<()> {
    let epoch = fence.epoch;
    store.run_within(deadline, |c| async move {
        cached::execute(
            &c,
            "UPDATE lease SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1",
            &[&epoch],
        )
        .await
        .map(|_| ())
    })
}
