//! The index follower: writes the evidence indexes keyed by random values
//! (labels, payload digest) behind the log, off the commit path, as
//! Tessera builds its antispam index from the log it follows.
//!
//! It waits for the sequencer's head to move past the store's cursor
//! ([`EvidenceIndex::indexed_through`](evault_store::EvidenceIndex)) and
//! asks the store to index up to it ([`index_evidence`](evault_store::EvidenceIndex::index_evidence)),
//! at most [`MAX_BATCH`] records per transaction so the writer lock is
//! never held long, and at most every [`MIN_INTERVAL`] while it keeps up,
//! so each batch is large and sorted. The cursor moves in the transaction
//! that writes the rows: a crash between batches loses nothing and repeats
//! nothing. Reads never wait for it (the store answers exactly over the
//! index and the unindexed tail); the lag only costs them speed, and the
//! sequencer bounds it ([`MAX_LAG`]).
//!
//! It publishes its cursor on a watch channel, `evault_index_lag_leaves`,
//! the lag in time (`evault_index_lag_seconds`: for each group commit, the
//! time from its head's publication, when its records were acknowledged,
//! to the index batch that covers it; see [`LagClock`]) and the batch
//! figures; a failure is logged, counted
//! (`evault_index_errors_total`), shown on the health board and retried
//! with backoff. At shutdown it ends after the sequencer, once the index
//! covers the final tree, so an offline `fsck` finds it complete; if the
//! store fails then, it ends at once (the next start resumes).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evault_store::Store;
use tokio::sync::watch;

use crate::error::{Result, VaultError};
use crate::health::{Board, Component};
use crate::sequencer::TreeHead;

/// Records indexed per store transaction at most: bounds how long the
/// follower holds the writer lock the sequencer commits under.
pub(crate) const MAX_BATCH: u64 = 16_384;
/// Least time between two batches while the follower keeps up: what
/// commits meanwhile joins the next batch.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The most records the index may lag behind the log before the sequencer
/// waits for it to catch up (at most [`LAG_WAIT`] per group commit): it
/// bounds the unindexed tail every label list and digest lookup reads.
pub(crate) const MAX_LAG: u64 = 65_536;
/// The longest a group commit waits for a lagging index. A follower that
/// fails for longer (it is on the health board) does not stop intake: the
/// reads stay exact, only slower.
pub(crate) const LAG_WAIT: Duration = Duration::from_secs(5);
/// Backoff after a failed batch: doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Heads kept by [`LagClock`] at most. Past it the newest entry grows to
/// the new size and keeps its older time, so the lag reported for those
/// records is an over-estimate, never an under-estimate.
const MAX_HEADS: usize = 65_536;

/// When each evidence head was published (its records acknowledged), for
/// the heads the index does not cover yet: the lag in time of a record is
/// the age of the first head that holds it.
#[derive(Default)]
struct LagClock {
    heads: Mutex<VecDeque<(u64, Instant)>>,
}

impl LagClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Instant)>> {
        // A poisoned clock only skews a metric.
        self.heads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a head of `size` published at `at`.
    fn published(&self, size: u64, at: Instant) {
        let mut heads = self.lock();
        let full = heads.len() >= MAX_HEADS;
        match heads.back_mut() {
            Some(back) if back.0 >= size => {}
            Some(back) if full => back.0 = size,
            _ => heads.push_back((size, at)),
        }
    }

    /// The index now covers the records below `through`: records, for each
    /// head it completes, how long its records waited, and returns the age
    /// of the oldest record still waiting (zero if none).
    fn indexed(&self, through: u64, now: Instant) -> Duration {
        let mut heads = self.lock();
        while let Some(&(size, at)) = heads.front() {
            if size > through {
                return now.saturating_duration_since(at);
            }
            metrics::histogram!("evault_index_lag_seconds")
                .record(now.saturating_duration_since(at).as_secs_f64());
            heads.pop_front();
        }
        Duration::ZERO
    }
}

/// Notes the time of every head the sequencer publishes, until it ends.
/// A separate task, so heads are stamped while the follower is busy
/// writing a batch.
async fn stamp_heads(mut heads: watch::Receiver<TreeHead>, clock: Arc<LagClock>) {
    loop {
        let size = heads.borrow_and_update().size;
        clock.published(size, Instant::now());
        if heads.changed().await.is_err() {
            return;
        }
    }
}

/// Reads the store's cursor: the follower's starting point, published
/// before the sequencer starts.
pub(crate) fn start(store: &dyn Store) -> Result<u64> {
    Ok(store.indexed_through()?)
}

/// Follows the evidence log's heads from `through` until the sequencer has
/// ended and the index covers its final head; publishes each new cursor on
/// `reach`. Only a leader writes the index (`role`); a standby publishes
/// the cursor the leader's follower stored, until it leads.
pub(crate) async fn follow(
    store: Arc<dyn Store>,
    mut heads: watch::Receiver<TreeHead>,
    reach: watch::Sender<u64>,
    health: Arc<Board>,
    mut role: watch::Receiver<crate::cluster::Role>,
) {
    let mut through = *reach.borrow();
    // Heads published before this start are stamped now: their records'
    // wait is counted from the start, not from before the restart.
    let clock = Arc::new(LagClock::default());
    tokio::spawn(stamp_heads(heads.clone(), clock.clone()));
    let mut backoff = FIRST_BACKOFF;
    let mut last_batch: Option<Instant> = None;
    loop {
        let mut closed = false;
        while heads.borrow_and_update().size <= through {
            if heads.changed().await.is_err() {
                closed = true;
                break;
            }
        }
        if closed && heads.borrow().size <= through {
            metrics::gauge!("evault_index_lag_leaves").set(0.0);
            metrics::gauge!("evault_index_oldest_unindexed_seconds").set(0.0);
            return;
        }
        // The sequencer has ended (shutdown): nothing more will commit.
        let closed = closed || heads.has_changed().is_err();
        if !role.borrow_and_update().is_leader() {
            if closed {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(crate::cluster::FOLLOW_EVERY) => {}
                _ = crate::cluster::changed(&mut role) => {}
            }
            let st = store.clone();
            if let Ok(Ok(stored)) = tokio::task::spawn_blocking(move || start(&*st)).await
                && stored > through
            {
                through = stored;
                reach.send_replace(through);
            }
            continue;
        }
        let behind = heads.borrow().size - through;
        if !closed
            && behind < MAX_BATCH
            && let Some(t) = last_batch
        {
            tokio::time::sleep(MIN_INTERVAL.saturating_sub(t.elapsed())).await;
        }
        let target = heads.borrow().size;
        // Stamped here too, in case the stamping task has not run since
        // this head was published (a no-op if it has).
        clock.published(target, Instant::now());
        last_batch = Some(Instant::now());
        let st = store.clone();
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                st.index_evidence(target, MAX_BATCH)
                    .map_err(VaultError::from)
            }))
            .unwrap_or_else(|_| {
                Err(VaultError::Unavailable(
                    "the index follower panicked while indexing".into(),
                ))
            })
        })
        .await;
        let result = match joined {
            Ok(r) => r,
            Err(e) => {
                // Only when the runtime shuts down.
                metrics::counter!("evault_index_errors_total").increment(1);
                tracing::error!("the index follower stopped: {e}");
                return;
            }
        };
        match result {
            Ok(reached) => {
                let rows = reached.saturating_sub(through);
                metrics::histogram!("evault_index_batch_rows").record(rows as f64);
                metrics::histogram!("evault_index_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                through = reached;
                reach.send_replace(through);
                metrics::gauge!("evault_index_lag_leaves")
                    .set(heads.borrow().size.saturating_sub(through) as f64);
                let waiting = clock.indexed(through, Instant::now());
                metrics::gauge!("evault_index_oldest_unindexed_seconds").set(waiting.as_secs_f64());
                health.clear(Component::Indexer);
                backoff = FIRST_BACKOFF;
            }
            Err(e) => {
                metrics::counter!("evault_index_errors_total").increment(1);
                if closed {
                    // Shutdown does not wait on a store that keeps failing:
                    // the next start resumes from the durable cursor.
                    tracing::error!(
                        "index follower: stopping with evidence from leaf {through} on not \
                         indexed; the next start resumes there: {e}"
                    );
                    return;
                }
                health.set(
                    Component::Indexer,
                    e.is_storage_full(),
                    format!(
                        "evidence from leaf {through} on is not in the label and digest \
                         indexes yet (reads stay exact, only slower): {e}"
                    ),
                );
                tracing::error!(
                    "index follower: evidence from leaf {through} on is not indexed yet \
                     (retrying in {backoff:?}): {e}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Waits, before a group commit, while the index lags more than
/// [`MAX_LAG`] records behind `size`, but at most [`LAG_WAIT`]. Returns
/// at once without a follower.
pub(crate) async fn wait_for_lag(reach: Option<&mut watch::Receiver<u64>>, size: u64) {
    let Some(reach) = reach else { return };
    if size.saturating_sub(*reach.borrow()) <= MAX_LAG {
        return;
    }
    let started = Instant::now();
    let caught_up = reach.wait_for(|&through| size.saturating_sub(through) <= MAX_LAG);
    match tokio::time::timeout(LAG_WAIT, caught_up).await {
        Ok(_) => {
            metrics::histogram!("evault_index_wait_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Err(_) => {
            tracing::warn!(
                "the index lags more than {MAX_LAG} records behind the log for {LAG_WAIT:?}; \
                 committing anyway (reads stay exact, only slower)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_of_a_head_runs_from_its_publication_to_the_batch_that_covers_it() {
        let clock = LagClock::default();
        let t0 = Instant::now();
        clock.published(10, t0);
        clock.published(20, t0 + Duration::from_secs(1));
        // A repeated or smaller head adds nothing.
        clock.published(20, t0 + Duration::from_secs(2));
        clock.published(30, t0 + Duration::from_secs(3));
        assert_eq!(clock.lock().len(), 3);
        // Leaves 0..15 indexed: the first head is done; leaf 15 came with
        // the second, published at t0 + 1 s.
        let now = t0 + Duration::from_secs(4);
        assert_eq!(clock.indexed(15, now), Duration::from_secs(3));
        assert_eq!(clock.lock().front().map(|h| h.0), Some(20));
        // Everything indexed: nothing waits.
        assert_eq!(clock.indexed(30, now), Duration::ZERO);
        assert!(clock.lock().is_empty());
    }

    #[test]
    fn a_full_clock_over_estimates_rather_than_under_estimates() {
        let clock = LagClock::default();
        let t0 = Instant::now();
        for i in 0..MAX_HEADS as u64 {
            clock.published(i + 1, t0);
        }
        // Full: the newest entry takes the new size and keeps its time.
        clock.published(MAX_HEADS as u64 + 100, t0 + Duration::from_secs(9));
        assert_eq!(clock.lock().len(), MAX_HEADS);
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            clock.indexed(MAX_HEADS as u64 + 50, now),
            Duration::from_secs(10)
        );
        assert_eq!(clock.indexed(MAX_HEADS as u64 + 100, now), Duration::ZERO);
    }
}
