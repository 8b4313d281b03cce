//! A Bloom filter per run of the follower's unique-key indexes (index
//! database version 2): each run's dedup keys and (principal, idempotency
//! key) pairs. Every group commit asks the index for every key of its
//! batch; a lookup searches each live run, so the store first asks these
//! filters and searches only for keys one of them may hold (about 1 % of
//! the keys it never saw).
//!
//! Exactness (a false negative would let a duplicate become a second leaf):
//! a lookup reads the tail, then the filters, then starts its read
//! transaction; the follower adds a run's filter before the commit that
//! makes the run visible and drops a merged-away run's filter after the
//! commit that drops the run. A key in the lookup's snapshot is then in
//! the tail it read (its run committed later) or under a filter it read.
//! A "maybe" runs the plain query over every live run, exact by itself.

use std::collections::BTreeMap;

use fastbloom::BloomFilter;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::error::{DbResult, corrupt};
use crate::Result;

/// False positives the filters are sized for.
const FALSE_POSITIVE: f64 = 0.01;

/// The stored filter's format: its first byte. Names the pinned
/// `fastbloom` version's placement of bits; a filter of another format is
/// rebuilt from its run's rows.
const FORMAT: u8 = 1;

/// A run: (first leaf, level).
pub(super) type RunId = (i64, i64);

/// The source hash of a dedup key: its first 8 bytes (it is a SHA-256).
fn dedup_hash(key: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    u64::from_le_bytes(b)
}

/// The source hash of an idempotency key of `principal`: a SHA-256 of
/// both, length-prefixed, in another domain than the dedup keys'. Bytes,
/// so a damaged (non-UTF-8) row still hashes and stops nothing.
fn idempotency_hash(principal: &[u8], key: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"evault idempotency filter\0");
    h.update((principal.len() as u64).to_le_bytes());
    h.update(principal);
    h.update(key);
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// One run's filter.
pub(super) struct RunFilter(BloomFilter);

impl RunFilter {
    /// Builds the filter of run `id` from its rows in `conn`'s `ix`.
    pub(super) fn build(conn: &Connection, id: RunId) -> Result<RunFilter> {
        let count: i64 = conn
            .prepare_cached(
                "SELECT (SELECT count(*) FROM dedup_runs WHERE run = ?1 AND level = ?2) \
                      + (SELECT count(*) FROM idempotency_runs WHERE run = ?1 AND level = ?2)",
            )
            .db()?
            .query_row([id.0, id.1], |row| row.get(0))
            .db()?;
        let mut bloom = BloomFilter::with_false_pos(FALSE_POSITIVE)
            .expected_items(usize::try_from(count).unwrap_or(0).max(1));
        let mut stmt = conn
            .prepare_cached("SELECT dedup_key FROM dedup_runs WHERE run = ?1 AND level = ?2")
            .db()?;
        let mut rows = stmt.query([id.0, id.1]).db()?;
        while let Some(row) = rows.next().db()? {
            let key: Vec<u8> = row.get(0).db()?;
            if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
                bloom.insert_hash(dedup_hash(&key));
            }
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT ingested_by, idempotency_key FROM idempotency_runs \
                 WHERE run = ?1 AND level = ?2",
            )
            .db()?;
        let mut rows = stmt.query([id.0, id.1]).db()?;
        while let Some(row) = rows.next().db()? {
            let bytes = |i| -> Result<&[u8]> {
                row.get_ref(i)
                    .db()?
                    .as_bytes()
                    .map_err(|e| corrupt(format!("an idempotency index row: {e}")))
            };
            let (principal, key) = (bytes(0)?, bytes(1)?);
            bloom.insert_hash(idempotency_hash(principal, key));
        }
        Ok(RunFilter(bloom))
    }

    /// The stored form: the format, the number of hashes, the words.
    pub(super) fn to_blob(&self) -> Vec<u8> {
        let words = self.0.as_slice();
        let mut out = Vec::with_capacity(5 + words.len() * 8);
        out.push(FORMAT);
        out.extend_from_slice(&self.0.num_hashes().to_le_bytes());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// A stored filter, or `None` if it is of another format or damaged
    /// (then it is rebuilt from its run).
    pub(super) fn from_blob(blob: &[u8]) -> Option<RunFilter> {
        let (&format, rest) = blob.split_first()?;
        if format != FORMAT || rest.len() < 4 || (rest.len() - 4) % 8 != 0 || rest.len() == 4 {
            return None;
        }
        let hashes = u32::from_le_bytes(rest[..4].try_into().ok()?);
        if hashes == 0 {
            return None;
        }
        let words: Vec<u64> = rest[4..]
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        Some(RunFilter(BloomFilter::from_vec(words).hashes(hashes)))
    }

    fn may_hold_dedup(&self, key: &[u8; 32]) -> bool {
        self.0.contains_hash(dedup_hash(key))
    }

    fn may_hold_idempotency(&self, principal: &str, key: &str) -> bool {
        self.0
            .contains_hash(idempotency_hash(principal.as_bytes(), key.as_bytes()))
    }
}

/// The filters of the runs the store knows of (a superset of the live
/// runs of any snapshot a lookup takes after reading them).
#[derive(Default)]
pub(super) struct Filters {
    /// Each run's filter and its end leaf: a run holds `[run, end)`.
    runs: BTreeMap<RunId, (i64, RunFilter)>,
}

/// Leaves `[lo, hi)`: the records of a run a filter says may hold a key.
/// A lookup searches the live runs of its snapshot that overlap the range,
/// not the run itself, which a merge may have replaced since its filter
/// was read (the merged run holds the same leaves).
pub(super) type LeafRange = (i64, i64);

impl Filters {
    /// The filters stored beside the live runs of `conn`'s `ix`; a missing
    /// or unreadable one is built from its run's rows (and stored, if
    /// `persist`: not on a read-only store).
    pub(super) fn load(conn: &Connection, persist: bool) -> Result<Filters> {
        let stored: Vec<(i64, i64, i64, Option<Vec<u8>>)> = conn
            .prepare("SELECT run, level, end_leaf, filter FROM index_runs ORDER BY run")
            .db()?
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?;
        let mut filters = Filters::default();
        for (run, level, end, blob) in stored {
            let filter = match blob.as_deref().and_then(RunFilter::from_blob) {
                Some(f) => f,
                None => {
                    let f = RunFilter::build(conn, (run, level))?;
                    if persist {
                        store(conn, (run, level), &f)?;
                    }
                    f
                }
            };
            filters.runs.insert((run, level), (end, filter));
        }
        Ok(filters)
    }

    /// Adds (or replaces) run `id`'s filter; the run ends at leaf `end`.
    pub(super) fn add(&mut self, id: RunId, end: i64, filter: RunFilter) {
        self.runs.insert(id, (end, filter));
    }

    /// Drops the filters of the runs not in `live`.
    pub(super) fn keep_only(&mut self, live: &[Run]) {
        self.runs
            .retain(|id, _| live.iter().any(|r| (r.run, r.level) == *id));
    }

    /// The leaf ranges of the runs that may hold dedup key `key`.
    pub(super) fn dedup_ranges(&self, key: &[u8; 32]) -> Vec<LeafRange> {
        self.runs
            .iter()
            .filter(|(_, (_, f))| f.may_hold_dedup(key))
            .map(|(&(run, _), &(end, _))| (run, end))
            .collect()
    }

    /// The leaf ranges of the runs that may hold `principal`'s idempotency
    /// key `key`.
    pub(super) fn idempotency_ranges(&self, principal: &str, key: &str) -> Vec<LeafRange> {
        self.runs
            .iter()
            .filter(|(_, (_, f))| f.may_hold_idempotency(principal, key))
            .map(|(&(run, _), &(end, _))| (run, end))
            .collect()
    }
}

/// Stores run `id`'s filter beside it.
pub(super) fn store(conn: &Connection, id: RunId, filter: &RunFilter) -> Result<()> {
    conn.prepare_cached("UPDATE index_runs SET filter = ?3 WHERE run = ?1 AND level = ?2")
        .db()?
        .execute(rusqlite::params![id.0, id.1, filter.to_blob()])
        .db()?;
    Ok(())
}

/// A live run of the follower's indexes: the records `[run, end)` at
/// `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) run: i64,
    pub(super) level: i64,
    pub(super) end: i64,
}

/// The live runs of `conn`'s `ix`, in leaf order.
pub(super) fn live_runs(conn: &Connection) -> Result<Vec<Run>> {
    conn.prepare_cached("SELECT run, level, end_leaf FROM index_runs ORDER BY run")
        .db()?
        .query_map([], |row| {
            Ok(Run {
                run: row.get(0)?,
                level: row.get(1)?,
                end: row.get(2)?,
            })
        })
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()
}
