//! Streaming ingest: many small records from one caller, validated one by
//! one, committed by the sequencer as one unit of its group commit, and
//! answered in order.
//!
//! Memory is bounded twice: a caller waits for room in the sequencer's
//! queue ([`Vault::submit`] is where backpressure reaches the socket), and
//! every record in flight holds a share of one vault-wide byte budget
//! ([`VaultConfig::stream_budget`]) until its result is out. A stream thus
//! never buffers more than its window, and all streams together never more
//! than the budget, however slow the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::{Result, VaultError};
use crate::records::NewRecord;
use crate::sequencer::Pending;
use crate::{PutOutcome, Vault, VaultConfig, ingest};
use evault_store::{AnalyticsRow, Payload};

/// One record of a stream. Its payload is held in memory, so it may be at
/// most [`VaultConfig::inline_max`] bytes; larger payloads go through
/// [`Vault::put`], which streams them to disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRecord {
    /// Media type of the payload, checked as for [`Vault::put`].
    pub content_type: String,
    /// Key-value labels, checked as for [`Vault::put`].
    pub labels: BTreeMap<String, String>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Retry token, scoped to the stream's principal: a key already used is
    /// answered with the record first logged under it (a replay), and
    /// nothing new is logged.
    pub idempotency_key: Option<String>,
}

/// Bookkeeping cost of a record in the in-flight budget, beyond its payload:
/// its row (id, labels, leaf data), its outcome and the server's copies of
/// both come to roughly 2 to 5 KiB (estimated from the peak memory of the
/// 2-million-record stream test).
const RECORD_OVERHEAD: usize = 2048;

/// Records of one stream handed to the sequencer; await [`Submitted::outcomes`]
/// for their results.
pub struct Submitted {
    /// Per record: `Some(error)` when it was rejected before queueing.
    rejected: Vec<Option<VaultError>>,
    /// Results of the queued records, in order; `None` when none was valid.
    done: Option<oneshot::Receiver<Vec<Result<PutOutcome>>>>,
    /// Released when the results are out.
    _budget: OwnedSemaphorePermit,
}

impl Submitted {
    /// One result per submitted record, in submission order, once every
    /// valid one is durably committed (or found to be a duplicate or a
    /// replay). `Err` only when the whole unit failed (store error,
    /// shutdown): then nothing of it was committed.
    pub async fn outcomes(self) -> Result<Vec<Result<PutOutcome>>> {
        let mut committed = match self.done {
            Some(rx) => rx
                .await
                .map_err(|_| VaultError::Unavailable("the sequencer dropped the request".into()))?
                .into_iter(),
            None => Vec::new().into_iter(),
        };
        let mut out = Vec::with_capacity(self.rejected.len());
        for slot in self.rejected {
            match slot {
                Some(e) => out.push(Err(e)),
                None => out.push(committed.next().ok_or_else(|| {
                    VaultError::Inconsistent("the sequencer answered too few records".into())
                })?),
            }
        }
        Ok(out)
    }
}

/// Checks one stream record; its error names the first problem. Returns
/// the analytics fields of an analytics event record.
fn check(config: &VaultConfig, r: &StreamRecord) -> Result<Option<AnalyticsRow>> {
    ingest::validate_content_type(&r.content_type)?;
    ingest::validate_labels(&r.labels)?;
    crate::sigstore::refuse_reserved(&r.labels)?;
    if let Some(k) = &r.idempotency_key {
        ingest::validate_idempotency_key(k)?;
    }
    if r.payload.len() > config.inline_max {
        return Err(VaultError::Invalid(format!(
            "payload of {} bytes is larger than the {} bytes a streamed record may carry; \
             submit it on its own (POST /api/v1/evidence)",
            r.payload.len(),
            config.inline_max
        )));
    }
    crate::analytics::check(&r.content_type, &r.payload)
}

impl Vault {
    /// Validates `records` one by one and queues the valid ones for the
    /// sequencer, all in one unit so that their leaves are consecutive and
    /// in order. Waits for room in the in-flight budget and in the
    /// sequencer's queue (backpressure), not for the commit: await
    /// [`Submitted::outcomes`] for that. Submitting again before then
    /// pipelines the stream; results of successive submissions of one
    /// caller come in submission order.
    pub async fn submit(&self, principal: &str, records: Vec<StreamRecord>) -> Result<Submitted> {
        if principal.is_empty() {
            return Err(VaultError::Invalid("missing principal".into()));
        }
        let budget = &self.inner.stream_budget;
        let cost: usize = records
            .iter()
            .map(|r| r.payload.len() + RECORD_OVERHEAD)
            .sum();
        // A unit larger than the whole budget takes all of it.
        let permits = u32::try_from(cost.min(self.inner.config.stream_budget.max(1)))
            .unwrap_or(u32::MAX)
            .max(1);
        let permit = Arc::clone(budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| VaultError::Unavailable("the vault is shutting down".into()))?;

        let mut rejected = Vec::with_capacity(records.len());
        let mut rows = Vec::with_capacity(records.len());
        for mut r in records {
            let analytics = match check(&self.inner.config, &r) {
                Ok(analytics) => analytics,
                Err(e) => {
                    rejected.push(Some(e));
                    continue;
                }
            };
            // A Sigstore bundle is verified (and its policies applied) like
            // a single put's; a refusal rejects this record only.
            if let Err(e) = crate::sigstore::apply(
                &self.inner.config.sigstore,
                &r.content_type,
                &r.payload,
                &mut r.labels,
                None,
            )
            .await
            {
                rejected.push(Some(e));
                continue;
            }
            let sha256: [u8; 32] = Sha256::digest(&r.payload).into();
            let row = NewRecord {
                content_type: r.content_type,
                labels: r.labels,
                principal: principal.to_string(),
                idempotency_key: r.idempotency_key,
                sha256,
                size: r.payload.len() as u64,
                payload: Payload::Inline(r.payload),
            }
            .into_row();
            match row {
                Ok(mut row) => {
                    row.analytics = analytics;
                    rows.push(row);
                    rejected.push(None);
                }
                Err(e) => rejected.push(Some(e)),
            }
        }
        let done = if rows.is_empty() {
            None
        } else {
            let (ack, done) = oneshot::channel();
            self.enqueue(Pending::Many { rows, ack }).await?;
            Some(done)
        };
        Ok(Submitted {
            rejected,
            done,
            _budget: permit,
        })
    }

    /// Records of a stream a caller may have in flight before
    /// [`Vault::submit`] waits: the budget, in bytes.
    pub fn stream_budget(&self) -> usize {
        self.inner.config.stream_budget
    }
}

/// The shared budget for a vault with this configuration.
pub(crate) fn budget(config: &VaultConfig) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        config.stream_budget.clamp(1, Semaphore::MAX_PERMITS),
    ))
}
