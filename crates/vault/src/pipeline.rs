//! The in-order ingest pipeline behind every streaming ingest (the NDJSON
//! stream over HTTP, `IngestStream` over gRPC): items in, one result per
//! item out, in the same order.
//!
//! Items are handed to [`Vault::submit`] in units of what is ready (at
//! most [`MAX_UNIT`] records), and at most [`WINDOW`] units are in flight.
//! Everything is pulled, never pushed: when the output is not polled, no
//! unit completes, the window stays full and the input is not read, so a
//! slow store (or a slow reader of the results) slows the client instead
//! of filling memory. The vault's stream budget bounds all streams
//! together on top of that.

use std::collections::VecDeque;

use crate::{PutOutcome, StreamRecord, Submitted, Vault, VaultError};
use futures_util::{Stream, StreamExt};

/// Most records handed to the vault as one unit (their leaves are
/// consecutive, and they share one acknowledgement).
pub const MAX_UNIT: usize = 1024;
/// Units of one stream submitted but not yet answered. Enough to keep the
/// sequencer's group commit full while results travel back.
pub const WINDOW: usize = 8;

/// One input item of a stream, in order.
pub enum Item {
    /// A parsed record, to be checked and logged by the vault.
    Record(StreamRecord),
    /// Refused before reaching the vault (unreadable line, bad JSON, ...):
    /// keeps its place in the order, with the reason.
    Rejected(String),
}

/// One result per item, in the same order.
#[derive(Debug)]
pub enum ItemResult {
    /// Durably logged, or found to be a duplicate or a replay.
    Logged(PutOutcome),
    /// Not logged, and why; the stream goes on.
    Rejected(String),
    /// The vault could not commit the record's unit (store failure,
    /// shutdown). The stream ends after the unit's results.
    Failed(VaultError),
}

/// Submits items in units of what is ready (up to [`MAX_UNIT`] records),
/// keeps at most [`WINDOW`] units in flight, and yields results in input
/// order. Bounded everywhere: if the output is not polled, input stops
/// being read.
///
/// A failure of a whole unit gives [`ItemResult::Failed`] for each of its
/// records (items rejected before the vault keep their
/// [`ItemResult::Rejected`]), and the stream ends after that unit without
/// reading more input. Units already in flight behind it may still have
/// been committed; their results are not reported (a client retrying with
/// idempotency keys gets them as replays).
pub fn run(
    vault: Vault,
    principal: String,
    input: impl Stream<Item = Item> + Send + 'static,
) -> impl Stream<Item = ItemResult> + Send + 'static {
    let units = input
        .ready_chunks(MAX_UNIT)
        .then(move |unit| {
            let vault = vault.clone();
            let principal = principal.clone();
            async move { Queued::submit(&vault, &principal, unit).await }
        })
        .map(Queued::results)
        .buffered(WINDOW);
    futures_util::stream::unfold(
        Output {
            units: Box::pin(units),
            ready: VecDeque::new(),
            stop: false,
        },
        |mut out| async move {
            let next = out.next().await?;
            Some((next, out))
        },
    )
}

/// Where an item of a unit went.
enum Slot {
    /// To the vault: takes the next of the unit's outcomes.
    Record,
    Rejected(String),
}

/// A unit handed to the vault (or refused by it as a whole).
struct Queued {
    slots: Vec<Slot>,
    submitted: Result<Option<Submitted>, VaultError>,
}

impl Queued {
    /// Queues the unit's records; waits for room in the vault (this wait is
    /// the backpressure), not for the commit.
    async fn submit(vault: &Vault, principal: &str, unit: Vec<Item>) -> Queued {
        let mut slots = Vec::with_capacity(unit.len());
        let mut records = Vec::with_capacity(unit.len());
        for item in unit {
            match item {
                Item::Record(r) => {
                    slots.push(Slot::Record);
                    records.push(r);
                }
                Item::Rejected(why) => slots.push(Slot::Rejected(why)),
            }
        }
        let submitted = if records.is_empty() {
            Ok(None)
        } else {
            vault.submit(principal, records).await.map(Some)
        };
        Queued { slots, submitted }
    }

    /// The unit's results in item order, once its records are durable.
    async fn results(self) -> Vec<ItemResult> {
        let outcomes = match self.submitted {
            Ok(Some(s)) => s.outcomes().await,
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        let mut out = Vec::with_capacity(self.slots.len());
        match outcomes {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for slot in self.slots {
                    out.push(match slot {
                        Slot::Rejected(why) => ItemResult::Rejected(why),
                        Slot::Record => match outcomes.next() {
                            Some(Ok(o)) => ItemResult::Logged(o),
                            Some(Err(e)) => match rejection(&e) {
                                Some(why) => ItemResult::Rejected(why),
                                None => ItemResult::Failed(e),
                            },
                            None => ItemResult::Failed(VaultError::Inconsistent(
                                "the vault answered fewer records than were submitted".into(),
                            )),
                        },
                    });
                }
            }
            Err(e) => {
                // One error for the whole unit: each record gets it (the
                // first the original, the others a copy).
                let mut first = Some(e);
                let mut copy = None;
                for slot in self.slots {
                    out.push(match slot {
                        Slot::Rejected(why) => ItemResult::Rejected(why),
                        Slot::Record => match first.take() {
                            Some(e) => {
                                copy = Some(copy_error(&e));
                                ItemResult::Failed(e)
                            }
                            None => ItemResult::Failed(match &copy {
                                Some(c) => copy_error(c),
                                None => VaultError::Unavailable("the unit failed".into()),
                            }),
                        },
                    });
                }
            }
        }
        out
    }
}

/// The reason when a record's error is about the record itself (the
/// stream goes on); `None` when it is the vault's (the stream ends).
fn rejection(e: &VaultError) -> Option<String> {
    match e {
        VaultError::Invalid(why) => Some(why.clone()),
        VaultError::TooLarge { .. } | VaultError::Refused(_) => Some(e.to_string()),
        _ => None,
    }
}

/// An equivalent error (`VaultError` is not `Clone`: errors that wrap a
/// cause become `Unavailable` with their text).
fn copy_error(e: &VaultError) -> VaultError {
    match e {
        VaultError::Invalid(s) => VaultError::Invalid(s.clone()),
        VaultError::TooLarge { limit } => VaultError::TooLarge { limit: *limit },
        VaultError::NotFound(s) => VaultError::NotFound(s.clone()),
        VaultError::Hidden { what, reason } => VaultError::Hidden {
            what: what.clone(),
            reason: reason.clone(),
        },
        VaultError::Inconsistent(s) => VaultError::Inconsistent(s.clone()),
        VaultError::Conflict(s) => VaultError::Conflict(s.clone()),
        VaultError::Gone { id, tombstone_id } => VaultError::Gone {
            id: id.clone(),
            tombstone_id: tombstone_id.clone(),
        },
        VaultError::Unavailable(s) => VaultError::Unavailable(s.clone()),
        VaultError::SignerUnavailable(s) => VaultError::SignerUnavailable(s.clone()),
        VaultError::Corrupt { what, detail } => VaultError::Corrupt {
            what,
            detail: detail.clone(),
        },
        VaultError::StorageFull(s) => VaultError::StorageFull(s.clone()),
        VaultError::Cancelled => VaultError::Cancelled,
        VaultError::Refused(s) => VaultError::Refused(s.clone()),
        e if e.is_storage_full() => VaultError::StorageFull(e.to_string()),
        VaultError::Proof(_)
        | VaultError::Task(_)
        | VaultError::Store(_)
        | VaultError::Io(_)
        | VaultError::Key { .. }
        | VaultError::Signing(_) => VaultError::Unavailable(e.to_string()),
    }
}

/// Flattens units into results, and ends after a failed unit.
struct Output<S> {
    units: std::pin::Pin<Box<S>>,
    ready: VecDeque<ItemResult>,
    stop: bool,
}

impl<S: Stream<Item = Vec<ItemResult>>> Output<S> {
    async fn next(&mut self) -> Option<ItemResult> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.stop {
                // Dropping `units` here would also do; returning `None`
                // without polling it is what stops the input being read.
                return None;
            }
            let unit = self.units.next().await?;
            self.stop = unit.iter().any(|r| matches!(r, ItemResult::Failed(_)));
            self.ready = unit.into();
        }
    }
}

/// What a stream did so far, counted the same way for both streams (and
/// written the same way into their audit events).
#[derive(Debug, Default)]
pub struct Tally {
    /// Records newly logged.
    pub accepted: u64,
    /// Items refused, before reaching the vault or by it.
    pub rejected: u64,
    /// Duplicates and replays.
    pub duplicates: u64,
    /// Records whose unit the vault could not commit.
    pub failed: u64,
    /// Lowest leaf index of a newly logged record.
    pub first: Option<u64>,
    /// Highest leaf index of a newly logged record.
    pub last: Option<u64>,
    /// Highest leaf index answered (new or not).
    pub cover: Option<u64>,
}

impl Tally {
    /// Counts one item's result.
    pub fn add(&mut self, result: &ItemResult) {
        match result {
            ItemResult::Logged(o) => {
                let leaf = o.record.leaf_index;
                if o.replayed || o.duplicate {
                    self.duplicates += 1;
                } else {
                    self.accepted += 1;
                    self.first = Some(self.first.map_or(leaf, |f| f.min(leaf)));
                    self.last = Some(self.last.map_or(leaf, |l| l.max(leaf)));
                }
                self.cover = Some(self.cover.map_or(leaf, |c| c.max(leaf)));
            }
            ItemResult::Rejected(_) => self.rejected += 1,
            ItemResult::Failed(_) => self.failed += 1,
        }
    }

    /// The counts for the audit trail.
    pub fn counts(&self) -> String {
        let leaves = match (self.first, self.last) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "none".into(),
        };
        let failed = if self.failed > 0 {
            format!(", failed {}", self.failed)
        } else {
            String::new()
        };
        format!(
            "accepted {}, rejected {}, duplicates {}{failed}, leaves {leaves}",
            self.accepted, self.rejected, self.duplicates
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::VaultConfig;
    use futures_util::stream;

    use super::*;

    async fn vault(dir: &tempfile::TempDir) -> Vault {
        let mut config = VaultConfig::new(dir.path().join("data"));
        config.state_dir = Some(dir.path().join("state"));
        config.origin = Some("test.example/pipeline".into());
        config.checkpoint_interval = Duration::from_millis(20);
        Vault::open(config).await.unwrap()
    }

    fn record(i: usize) -> StreamRecord {
        StreamRecord {
            content_type: "text/plain".into(),
            payload: format!("record {i}").into_bytes(),
            ..StreamRecord::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_come_in_input_order_with_rejections_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir).await;
        // Every 7th item is rejected before the vault, every 11th by the
        // vault (bad label key); every 13th repeats an earlier record.
        let n = 5000;
        let items = (0..n).map(|i| {
            if i % 7 == 3 {
                Item::Rejected(format!("line {i}"))
            } else if i % 11 == 5 {
                let mut r = record(i);
                r.labels.insert("bad key".into(), "v".into());
                Item::Record(r)
            } else if i % 13 == 12 {
                Item::Record(record(0))
            } else {
                Item::Record(record(i))
            }
        });
        // Trickle the input in bursts so that units have different sizes.
        let input = stream::iter(items).then(|item| async move {
            tokio::task::yield_now().await;
            item
        });
        let results: Vec<ItemResult> = run(v.clone(), "test:pipeline".into(), input)
            .collect()
            .await;
        assert_eq!(results.len(), n);
        let mut next_leaf = 0;
        for (i, r) in results.iter().enumerate() {
            match r {
                ItemResult::Rejected(why) if i % 7 == 3 => assert_eq!(why, &format!("line {i}")),
                ItemResult::Rejected(why) if i % 11 == 5 => {
                    assert!(why.contains("label key"), "{i}: {why}")
                }
                ItemResult::Logged(o) if i % 13 == 12 => {
                    assert!(o.duplicate, "{i}");
                    assert_eq!(o.record.leaf_index, 0, "{i}");
                }
                ItemResult::Logged(o) => {
                    assert!(!o.duplicate && !o.replayed, "{i}");
                    assert_eq!(o.record.leaf_index, next_leaf, "{i}: leaves in input order");
                    next_leaf += 1;
                }
                other => panic!("item {i}: unexpected {other:?}"),
            }
        }
        assert_eq!(v.evidence_log().head().size, next_leaf);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn input_is_not_read_while_the_output_is_not_polled() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir).await;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        // An endless, always-ready generator.
        let input = stream::iter(0..).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            Item::Record(record(i))
        });
        let mut results = Box::pin(run(v.clone(), "test:pipeline".into(), input));
        for _ in 0..10 {
            assert!(matches!(results.next().await, Some(ItemResult::Logged(_))));
        }
        // Not polled any more: whatever was in flight completes, nothing
        // more is read.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stalled = pulled.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pulled.load(Ordering::SeqCst), stalled);
        // At most: the window, the unit being submitted and the unit being
        // handed out.
        assert!(stalled <= MAX_UNIT * (WINDOW + 2), "{stalled} items pulled");
        // Reading on reads on.
        for _ in 0..(3 * MAX_UNIT) {
            assert!(results.next().await.is_some());
        }
        assert!(pulled.load(Ordering::SeqCst) > stalled);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_unit_fails_its_records_and_ends_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir).await;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let input = stream::iter(0..).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            if i == 1 {
                Item::Rejected("bad line".into())
            } else {
                Item::Record(record(i))
            }
        });
        // The vault refuses a unit without a principal as a whole.
        let results: Vec<ItemResult> = run(v.clone(), String::new(), input).collect().await;
        assert!(!results.is_empty() && results.len() <= MAX_UNIT);
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (1, ItemResult::Rejected(why)) => assert_eq!(why, "bad line"),
                (_, ItemResult::Failed(e)) => assert!(e.to_string().contains("principal"), "{e}"),
                (_, other) => panic!("item {i}: unexpected {other:?}"),
            }
        }
        // The stream ended: the endless input was read no further than the
        // units submitted before the failure was seen.
        assert!(pulled.load(Ordering::SeqCst) <= MAX_UNIT * (WINDOW + 2));
        assert_eq!(v.evidence_log().head().size, 0);
    }
}
