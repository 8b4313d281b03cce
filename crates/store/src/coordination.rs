//! Which node may write: the sequencing lease.
//!
//! A store shared by several vault nodes (PostgreSQL) lets exactly one of
//! them write the logs at a time: the holder of the lease, for its epoch,
//! until the lease expires on the database's clock. The store keeps the
//! lease it holds and fences every write of the logs with it, inside the
//! write's own transaction, so a node that lost the lease (expired, or
//! taken over by another) can never commit: its writes fail with
//! [`crate::StoreError::Fenced`] and change nothing. A takeover is ordered
//! after any commit in flight.
//!
//! The embedded store has no such part ([`crate::Store::coordination`] is
//! `None`): one process owns its data directory and always writes.

use std::time::Duration;

use crate::Result;

/// A lease a store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The fencing token: raised by one at every takeover.
    pub epoch: u64,
    /// The holder's node id.
    pub node: String,
    /// How long the lease lasts after each acquire or renewal.
    pub ttl: Duration,
}

/// The lease as stored, whoever holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// The current epoch (0: never taken).
    pub epoch: u64,
    /// The holder's node id (empty: never taken).
    pub holder: String,
    /// Where the holder takes appends from other nodes (empty: nowhere).
    pub advertise: String,
    /// Time left on the database's clock; `None` once expired (or
    /// released), when any node may take it.
    pub remaining: Option<Duration>,
}

/// The lease of a shared store. Every method is one short transaction.
pub trait Coordination: Send + Sync {
    /// Takes the lease for `node` for `ttl` if it is free or expired, and
    /// holds it in this store from then on (its writes are fenced with the
    /// new epoch): the lease taken, or `None` if another holds it. A store
    /// that held an older lease holds only the new one.
    fn acquire(&self, node: &str, advertise: &str, ttl: Duration) -> Result<Option<Lease>>;
    /// Extends the held lease to its ttl from now. `false` if it was lost
    /// (expired, or taken by another epoch) or none is held; this store
    /// then holds none, and must [`Coordination::acquire`] a new epoch
    /// (and read the logs' state again) before it writes.
    fn renew(&self) -> Result<bool>;
    /// Gives the held lease up, so another node may take it at once. A
    /// lease already lost is not an error.
    fn release(&self) -> Result<()>;
    /// The lease this store holds, as far as it knows (a lease past its
    /// ttl since the last renewal is still returned: the database decides).
    fn held(&self) -> Option<Lease>;
    /// The stored lease.
    fn lease(&self) -> Result<LeaseState>;
}
