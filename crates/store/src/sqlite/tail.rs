//! The unique keys of the records the follower has not indexed yet (schema
//! 10): the dedup key and the (submitter, idempotency key) pair of every
//! record at or past `index_state.evidence_through`, in memory.
//!
//! The two keys are random, so their indexes are the follower's
//! (`records_by_dedup`, `records_by_idempotency`), written in sorted
//! batches behind the log. A lookup must still be exact the moment a
//! commit returns (the sequencer decides from it whether a put is a new
//! leaf), so the store answers from this tail first and from the indexes
//! after. It changes in three places:
//!
//! - a commit adds its records after its transaction commits (under the
//!   writer lock, so in leaf order);
//! - the follower removes the records below its new cursor after its
//!   transaction of the index database commits (the indexes hold them by
//!   then), under the follower's lock;
//! - on open, it is rebuilt from the records at or past the cursor.
//!
//! So at every moment each committed record is in the tail or visible in a
//! read snapshot taken afterwards: a reader that checks the tail first and
//! the indexes second misses nothing committed before its read began. The
//! follower may index a batch before its commit has added it here; those
//! keys then stay (found in both, at the same leaf) until its next batch.
//! Only the instance that writes the database keeps it whole: one writing
//! `SqliteStore` per database, as the vault's data directory lock ensures.

use std::collections::{HashMap, VecDeque};

use rusqlite::Connection;

use super::error::DbResult;
use super::rows::{col_hash, col_i64, col_opt_text, col_text, to_i64, to_u64};
use crate::{EvidenceRow, Result};

/// One tail record's keys, in leaf order, for trimming.
struct Keys {
    leaf: u64,
    dedup: [u8; 32],
    idem: Option<(String, String)>,
}

#[derive(Default)]
pub(super) struct Tail {
    /// Leaf order: the front is trimmed first.
    order: VecDeque<Keys>,
    /// The first leaf holding each key (a twin, a bug fsck names, keeps the
    /// first).
    dedup: HashMap<[u8; 32], u64>,
    idem: HashMap<(String, String), u64>,
}

impl Tail {
    /// The keys of the records from `from` on, read in one scan.
    pub(super) fn load(conn: &Connection, from: u64) -> Result<Tail> {
        let mut tail = Tail::default();
        let mut stmt = conn
            .prepare(
                "SELECT leaf_index, dedup_key, ingested_by, idempotency_key FROM records \
                 WHERE leaf_index >= ?1 ORDER BY leaf_index",
            )
            .db()?;
        let mut rows = stmt.query([to_i64(from, "index cursor")?]).db()?;
        while let Some(row) = rows.next().db()? {
            let leaf = to_u64(col_i64(row, 0, "leaf_index")?, "leaf_index")?;
            let at = |what: &str| format!("{what} of record {leaf}");
            let dedup = col_hash(row, 1, &at("dedup_key"))?;
            let idem = match col_opt_text(row, 3, &at("idempotency_key"))? {
                Some(key) => Some((col_text(row, 2, &at("ingested_by"))?, key)),
                None => None,
            };
            tail.push(Keys { leaf, dedup, idem });
        }
        Ok(tail)
    }

    fn push(&mut self, keys: Keys) {
        self.dedup.entry(keys.dedup).or_insert(keys.leaf);
        if let Some(idem) = &keys.idem {
            self.idem.entry(idem.clone()).or_insert(keys.leaf);
        }
        self.order.push_back(keys);
    }

    /// Adds a committed batch's records.
    pub(super) fn committed(&mut self, records: &[EvidenceRow]) {
        for r in records {
            self.push(Keys {
                leaf: r.leaf_index,
                dedup: r.dedup_key,
                idem: r
                    .idempotency_key
                    .as_ref()
                    .map(|k| (r.ingested_by.clone(), k.clone())),
            });
        }
    }

    /// Drops the records below `cursor`, which the indexes now hold.
    pub(super) fn indexed(&mut self, cursor: u64) {
        while let Some(front) = self.order.front() {
            if front.leaf >= cursor {
                break;
            }
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if self.dedup.get(&k.dedup) == Some(&k.leaf) {
                self.dedup.remove(&k.dedup);
            }
            if let Some(idem) = k.idem
                && self.idem.get(&idem) == Some(&k.leaf)
            {
                self.idem.remove(&idem);
            }
        }
    }

    pub(super) fn by_dedup_key(&self, key: &[u8; 32]) -> Option<u64> {
        self.dedup.get(key).copied()
    }

    pub(super) fn by_idempotency_key(&self, principal: &str, key: &str) -> Option<u64> {
        // The map's key is owned; a lookup by borrowed parts would need a
        // second map shape for one clone per keyed put.
        self.idem
            .get(&(principal.to_string(), key.to_string()))
            .copied()
    }

    /// How many records the tail holds.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}
