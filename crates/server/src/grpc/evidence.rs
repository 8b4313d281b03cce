//! `evault.v1.EvidenceService`: put, get, list, and the ingest stream.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use evault_store::ListQuery;
use evault_vault::{PutOutcome, PutRequest, StreamRecord};
use evault_verify::audit::Outcome;
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{caller, evidence_msg, limit_field, pb, size_status, time_field, vault_status};
use crate::AppState;
use crate::guard::{AuditDone, AuditNote, Caller};
use crate::params::{CursorKind, decode_cursor, encode_cursor};
use evault_vault::pipeline::{self, Item, ItemResult, Tally};

pub(crate) struct Service(pub AppState);

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::IngestResult, Status>> + Send>>;

/// A record's fields, validated by the vault later.
fn record_parts(r: Option<pb::Record>) -> Result<StreamRecord, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("record is missing"))?;
    Ok(StreamRecord {
        content_type: r.content_type,
        labels: r.labels.into_iter().collect(),
        payload: r.payload,
        idempotency_key: (!r.idempotency_key.is_empty()).then_some(r.idempotency_key),
    })
}

/// The put's audit event, completed inside the transaction that commits
/// the record (as for REST).
fn audit_on_commit(caller: &Caller) -> evault_vault::AuditOnCommit {
    let caller = caller.clone();
    Box::new(move |outcome: &PutOutcome| {
        let note = AuditNote {
            resource: Some(format!("evidence/{}", outcome.record.id)),
            ..AuditNote::default()
        };
        caller.finish(tonic::Code::Ok as u16, Some(&note))
    })
}

#[tonic::async_trait]
impl pb::evidence_service_server::EvidenceService for Service {
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let caller = caller(&req)?;
        let record = record_parts(req.into_inner().record)?;
        let vault = &self.0.vault;
        let mut upload = vault.upload();
        upload.write(&record.payload).await.map_err(vault_status)?;
        let staged = upload.finish().await.map_err(vault_status)?;
        let outcome = vault
            .put(PutRequest {
                content_type: record.content_type,
                labels: record.labels,
                payload: staged,
                principal: caller.principal().to_string(),
                idempotency_key: record.idempotency_key,
                audit: Some(audit_on_commit(&caller)),
            })
            .await
            .map_err(vault_status)?;
        let mut resp = Response::new(pb::PutResponse {
            record: Some(evidence_msg(outcome.record)),
            duplicate: outcome.duplicate,
            replayed: outcome.replayed,
        });
        resp.extensions_mut().insert(AuditDone);
        Ok(resp)
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Evidence>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let record = self
            .0
            .vault
            .get(&caller.reader(), &id)
            .await
            .map_err(vault_status)?;
        Ok(Response::new(evidence_msg(record)))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = caller(&req)?;
        let q = req.into_inner();
        // The vault checks the label filters (their number and keys).
        let after_index = match q.cursor.as_str() {
            "" => None,
            c => Some(decode_cursor(CursorKind::Evidence, c)?),
        };
        // Read first: the page covers at least what it says.
        let indexed_through = self.0.vault.indexed_through();
        let page = self
            .0
            .vault
            .list(
                &caller.reader(),
                ListQuery {
                    labels: q.labels.into_iter().collect(),
                    content_type: (!q.content_type.is_empty()).then_some(q.content_type),
                    since_ms: time_field("since", &q.since)?,
                    until_ms: time_field("until", &q.until)?,
                    after_index,
                    limit: limit_field(q.limit)?,
                    ..ListQuery::default()
                },
            )
            .await
            .map_err(vault_status)?;
        Ok(Response::new(pb::ListResponse {
            items: page.items.into_iter().map(evidence_msg).collect(),
            next_cursor: page
                .next
                .map(|n| encode_cursor(CursorKind::Evidence, n))
                .unwrap_or_default(),
            indexed_through,
        }))
    }

    type IngestStreamStream = ResultStream;

    async fn ingest_stream(
        &self,
        req: Request<Streaming<pb::IngestRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        let caller = caller(&req)?;
        let vault = self.0.vault.clone();
        // A message that does not decode, or a broken connection, ends the
        // input: gRPC cannot resync inside a stream. What came before it
        // stands; the error goes into the stream's audit event.
        let broken = Arc::new(Mutex::new(None::<Status>));
        let seen = broken.clone();
        let input = req.into_inner().scan((), move |_, msg| {
            let item = match msg {
                Ok(m) => match record_parts(m.record) {
                    Ok(record) => Item::Record(record),
                    Err(s) => Item::Rejected(s.message().to_string()),
                },
                Err(s) => {
                    let s = size_status(s);
                    tracing::debug!("ingest stream input ended: {s}");
                    if let Ok(mut b) = seen.lock() {
                        *b = Some(s);
                    }
                    return std::future::ready(None);
                }
            };
            std::future::ready(Some(item))
        });
        let results = pipeline::run(vault.clone(), caller.principal().to_string(), input);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::IngestResult, Status>>(64);
        tokio::spawn(forward(vault, caller, results, tx, broken));
        let out = tokio_stream_from(rx);
        let mut resp = Response::new(Box::pin(out) as ResultStream);
        resp.extensions_mut().insert(AuditDone);
        Ok(resp)
    }
}

/// The receiving end of a channel as a stream.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}

/// Sends each result to the client as it comes, counts them, and writes
/// the stream's one audit event when it ends, however it ends.
async fn forward(
    vault: evault_vault::Vault,
    caller: Caller,
    results: impl Stream<Item = ItemResult> + Send,
    tx: tokio::sync::mpsc::Sender<Result<pb::IngestResult, Status>>,
    broken: Arc<Mutex<Option<Status>>>,
) {
    let mut results = std::pin::pin!(results);
    let mut tally = Tally::default();
    let mut failure: Option<(tonic::Code, String)> = None;
    let mut sequence = 0u64;
    while let Some(r) = results.next().await {
        tally.add(&r);
        let msg = match r {
            ItemResult::Logged(o) => pb::ingest_result::Result::Accepted(pb::Accepted {
                id: o.record.id,
                leaf_index: o.record.leaf_index,
                duplicate: o.duplicate,
                replayed: o.replayed,
            }),
            ItemResult::Rejected(reason) => {
                pb::ingest_result::Result::Rejected(pb::Rejected { reason })
            }
            ItemResult::Failed(e) => {
                let status = vault_status(e);
                failure = Some((status.code(), status.message().to_string()));
                let _ = tx.send(Err(status)).await;
                break;
            }
        };
        let sent = tx
            .send(Ok(pb::IngestResult {
                sequence,
                result: Some(msg),
            }))
            .await;
        sequence += 1;
        if sent.is_err() {
            failure = Some((
                tonic::Code::Cancelled,
                format!("client went away after {sequence} results"),
            ));
            break;
        }
    }
    if failure.is_none()
        && let Some(s) = broken.lock().ok().and_then(|mut b| b.take())
    {
        // The input broke: a message that does not decode (INTERNAL, as
        // gRPC's status table has it for an unparseable request) or a
        // connection gone. The client, if still there, learns why.
        failure = Some((
            s.code(),
            format!(
                "the client's stream broke after {sequence} records: {}",
                s.message()
            ),
        ));
        let _ = tx.send(Err(s)).await;
    }
    let (code, reason) = match failure {
        Some((code, why)) => (code, format!("{why}; {}", tally.counts())),
        None => (tonic::Code::Ok, tally.counts()),
    };
    let note = AuditNote {
        // A client that went away is a failed call, whatever code says so.
        outcome: (code != tonic::Code::Ok).then_some(Outcome::Failed),
        resource: Some("evidence/stream".into()),
        reason: Some(reason),
    };
    let event = caller.finish(code as u16, Some(&note));
    if let Err(e) = vault.record_audit(event).await {
        tracing::error!("the audit event of an ingest stream was not written: {e}");
    }
}
