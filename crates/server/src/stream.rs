//! `POST /api/v1/evidence/stream`: many records in one request, one JSON
//! object per line (NDJSON), answered line by line as they become durable.
//!
//! The request body is read only as fast as the vault commits: lines go
//! through the bounded [`pipeline`](crate::pipeline), whose window stops
//! reading when the store (or the client reading the answers) lags, so TCP
//! flow control slows the client. The answers go out through a small
//! bounded channel for the same reason.
//!
//! The response starts before the body is read, so the guard cannot audit
//! the request: the ingest runs as a task of its own, which writes the
//! request's one audit event (with the counts) when the stream ends, also
//! when the client went away.

mod lines;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_vault::{ANALYTICS_TYPE, StreamRecord};
use evault_verify::audit::Outcome;
use futures_util::{FutureExt as _, Stream, StreamExt};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::AppState;
use crate::evidence::{drain, expects_continue, unique_map};
use crate::guard::{AuditDone, AuditNote, Caller};
use crate::params::{QueryParams, header_text};
use crate::problem::{Problem, ProblemBody};
use evault_vault::pipeline::{self, Item, ItemResult};
use lines::{Line, LineSplitter, Piece};

/// Media type of the request and of the response.
pub const NDJSON_TYPE: &str = "application/x-ndjson";
/// Longest input line, in bytes, without its line ending. A line is parsed
/// in memory, so this bounds what one line can make the server hold; a
/// record's payload is bounded further by the vault's `inline_max`.
pub const MAX_LINE: usize = 1024 * 1024;
/// How long the summary waits for a signed checkpoint covering the stream.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(10);
/// Answers are sent in chunks of about this size (one per line would cost a
/// frame each).
const FLUSH_AT: usize = 16 * 1024;
/// Chunks of answers waiting for the client.
const OUT_QUEUE: usize = 8;

/// One input line (exactly one of `payload_base64`, `payload`, `analytics`).
#[derive(ToSchema)]
#[schema(as = StreamLine, example = json!({"content_type": "application/json",
    "payload": {"tests": 42}, "labels": {"pipeline": "release"}}))]
#[allow(dead_code)]
pub struct StreamLineDoc {
    /// The record's content type; required with `payload_base64` and
    /// `payload`, absent with `analytics`.
    content_type: Option<String>,
    /// The payload, standard base64 with padding.
    payload_base64: Option<String>,
    /// The payload as any JSON value, stored as the exact bytes sent.
    #[schema(value_type = Option<Object>)]
    payload: Option<()>,
    /// An analytics event (a JSON object), stored as the exact bytes sent
    /// with content type `application/vnd.evault.analytics+json`.
    #[schema(value_type = Option<Object>)]
    analytics: Option<()>,
    /// Labels; keys `[A-Za-z0-9._/-]{1,64}`, values up to 256 bytes.
    labels: Option<BTreeMap<String, String>>,
    /// 1 to 128 visible ASCII characters; a retry with the same key gets
    /// the first result (`replayed`).
    idempotency_key: Option<String>,
}

/// What became of one input line.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    /// Logged as a new record.
    Accepted,
    /// An identical record was already logged; `id` is that record.
    Duplicate,
    /// A retry with a known idempotency key; `id` is the first result.
    Replayed,
    /// Not logged (see `error`); the stream goes on.
    Rejected,
    /// The vault failed; not logged, and the stream stops.
    Failed,
}

/// The answer to one non-blank input line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineResult {
    /// The input line's number, from 1 (blank lines count).
    pub line: u64,
    pub status: LineStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub leaf_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

/// The last line of the response.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StreamSummary {
    /// Input lines read, blank ones included.
    pub lines: u64,
    /// Lines answered `accepted`: records newly logged.
    pub accepted: u64,
    /// Lines answered `rejected`: not logged, the stream went on.
    pub rejected: u64,
    /// Lines answered `duplicate` or `replayed`.
    pub duplicates: u64,
    /// Lines answered `failed`; only present when there were some.
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(nullable = false)]
    pub failed: u64,
    /// Lowest leaf index of the stream's new records.
    pub first_leaf_index: Option<u64>,
    /// Highest leaf index of the stream's new records.
    pub last_leaf_index: Option<u64>,
    /// Size of a signed checkpoint covering every leaf index answered;
    /// null when none was.
    pub checkpoint_size: Option<u64>,
    /// True when no such checkpoint was signed within 10 s:
    /// `checkpoint_size` is then the latest one's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(nullable = false)]
    pub checkpoint_pending: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A line of the response: an answer, or the final summary.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StreamReplyLine {
    Result(LineResult),
    Summary { summary: StreamSummary },
}

/// Submit many records in one streamed request (NDJSON).
///
/// The body (`Content-Type: application/x-ndjson`, usually sent chunked)
/// holds one JSON object per line: `{"content_type", "payload_base64"}`,
/// `{"content_type", "payload": <any JSON>}` (stored as the exact bytes of
/// the value) or `{"analytics": {...}}`, each with optional `labels` and
/// `idempotency_key`. Lines may be split anywhere across chunks; `\n` or
/// `\r\n` end them; blank lines are skipped but counted. A line longer than
/// 1 MiB, malformed JSON or an invalid record is rejected on its own, with
/// its line number; the lines around it go on.
///
/// The response streams one line per non-blank input line, in input order,
/// once the record is durable (`accepted`, `duplicate`, `replayed`) or
/// rejected, then a `{"summary": {...}}` line. If the vault fails, the
/// failed lines are answered `failed` and the stream stops. The server
/// reads the body only as fast as the vault commits. The request's audit
/// event is written when the stream ends, with the counts.
#[utoipa::path(
    post,
    path = "/api/v1/evidence/stream",
    tag = "evidence",
    request_body(
        description = "One record per line",
        content((StreamLineDoc = "application/x-ndjson"))
    ),
    responses(
        (status = 200, description = "One answer per non-blank input line, then the summary", body = StreamReplyLine, content_type = "application/x-ndjson"),
        (status = 400, description = "Unknown query parameters", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "`Content-Type` is not application/x-ndjson, or a `Content-Encoding` other than identity", body = ProblemBody, content_type = "application/problem+json"),
        (status = 501, description = "A `Transfer-Encoding` other than `chunked`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn stream_evidence(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(p) = check_head(&parts.headers, parts.uri.query()) {
        if !expects_continue(&parts.headers) {
            drain(body).await;
        }
        return p.into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    // A task of its own: when the client goes away hyper drops the response
    // body, but what was submitted still completes, and the stream's audit
    // event is still written.
    tokio::spawn(ingest(st, caller, body, tx));
    let answers = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(answers));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp.extensions_mut().insert(AuditDone);
    resp
}

/// Checks what the request head says, before a byte of the body is read.
fn check_head(headers: &HeaderMap, query: Option<&str>) -> Result<(), Problem> {
    QueryParams::parse(query.unwrap_or(""))?.finish()?;
    if let Some(enc) = header_text(headers, header::CONTENT_ENCODING.as_str())?
        && !enc
            .split(',')
            .all(|e| e.trim().eq_ignore_ascii_case("identity"))
    {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {enc:?} is not supported; send the stream unencoded"),
        ));
    }
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str())?.unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(NDJSON_TYPE) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type must be {NDJSON_TYPE} (one JSON object per line), not {content_type:?}"
            ),
        ));
    }
    Ok(())
}

/// Shared between the body reader and the task answering.
#[derive(Default)]
struct Progress {
    /// Lines read from the body so far.
    lines: AtomicU64,
    /// The client is gone: read no more.
    stop: AtomicBool,
    /// Why reading the body failed (the client went away mid-body).
    broken: OnceLock<String>,
}

/// Reads the body, submits its lines, answers them, then writes the
/// summary and the request's audit event.
async fn ingest(st: AppState, caller: Caller, body: Body, tx: mpsc::Sender<Bytes>) {
    let progress = Arc::new(Progress::default());
    // Line numbers of the items in the pipeline, in order: one result comes
    // back per item. Bounded by what the pipeline holds.
    let (numbers_tx, numbers) = std::sync::mpsc::channel::<u64>();
    let input = pieces(body, progress.clone())
        .filter_map(|piece| std::future::ready(item_of(piece)))
        .map(move |(number, item)| {
            let _ = numbers_tx.send(number);
            item
        });
    let mut out = Answers {
        tx,
        buf: Vec::with_capacity(FLUSH_AT * 2),
        gone: false,
    };
    let mut tally = Tally::default();
    {
        // In a block of its own: when the answers end, the pipeline and the
        // request body go (a failed stream reads no more of it).
        let results = pipeline::run(st.vault.clone(), caller.principal().to_string(), input);
        let mut results = std::pin::pin!(results);
        loop {
            // Flush only when the next answer is not ready yet: a fast
            // stream gets full chunks, a slow one its answers at once.
            let next = match results.next().now_or_never() {
                Some(next) => next,
                None => {
                    out.flush().await;
                    results.next().await
                }
            };
            let Some(result) = next else {
                break;
            };
            let line = numbers.try_recv().unwrap_or_default();
            out.push(&StreamReplyLine::Result(tally.count(line, result)));
            if out.buf.len() >= FLUSH_AT {
                out.flush().await;
            }
            if out.gone {
                // Nobody reads the answers: read no more lines. Units
                // already submitted still complete (and are counted for the
                // audit).
                progress.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    let lines = progress.lines.load(Ordering::Relaxed);
    let disconnected = out.gone || progress.broken.get().is_some();
    let mut summary = tally.summary(lines);
    if !disconnected && let Some(cover) = tally.counts.cover {
        let log = st.vault.evidence_log();
        match log.wait_for_checkpoint(cover + 1, CHECKPOINT_WAIT).await {
            Ok(size) => summary.checkpoint_size = Some(size),
            Err(_) => {
                summary.checkpoint_size = Some(log.checkpoint_size());
                summary.checkpoint_pending = true;
            }
        }
    }

    // The audit event is durable before the summary goes out: a client that
    // got the summary knows the stream is on the audit trail.
    let counts = tally.counts();
    let note = if disconnected {
        let why = progress
            .broken
            .get()
            .map(|e| format!(" (reading the body: {e})"))
            .unwrap_or_default();
        AuditNote {
            outcome: Some(Outcome::Failed),
            reason: Some(format!(
                "client disconnected after {lines} lines{why}; {counts}"
            )),
            ..AuditNote::default()
        }
    } else if let Some(failure) = &tally.failure {
        AuditNote {
            outcome: Some(Outcome::Failed),
            reason: Some(format!(
                "the vault failed after {lines} lines: {failure}; {counts}"
            )),
            ..AuditNote::default()
        }
    } else {
        AuditNote {
            reason: Some(counts),
            ..AuditNote::default()
        }
    };
    let event = caller.finish(StatusCode::OK.as_u16(), Some(&note));
    if let Err(e) = st.vault.record_audit(event).await {
        // The answers are out already; all that is left is to say so.
        tracing::error!(
            request_id = caller.event.request_id,
            "audit event of an evidence stream not written: {e}"
        );
    }
    out.push(&StreamReplyLine::Summary { summary });
    out.flush().await;
}

/// The buffered answers and where they go.
struct Answers {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    /// The client went away (the response body was dropped).
    gone: bool,
}

impl Answers {
    fn push(&mut self, line: &StreamReplyLine) {
        if self.gone {
            return;
        }
        match serde_json::to_writer(&mut self.buf, line) {
            Ok(()) => self.buf.push(b'\n'),
            Err(e) => tracing::error!("an answer line could not be serialised: {e}"),
        }
    }

    async fn flush(&mut self) {
        if self.buf.is_empty() || self.gone {
            self.buf.clear();
            return;
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(FLUSH_AT * 2),
        ));
        if self.tx.send(chunk).await.is_err() {
            self.gone = true;
        }
    }
}

/// The answers of a stream so far, and its counts.
#[derive(Default)]
struct Tally {
    counts: pipeline::Tally,
    /// What the vault said when it failed.
    failure: Option<String>,
}

impl Tally {
    fn count(&mut self, line: u64, result: ItemResult) -> LineResult {
        self.counts.add(&result);
        let mut answer = LineResult {
            line,
            status: LineStatus::Rejected,
            id: None,
            leaf_index: None,
            error: None,
        };
        match result {
            ItemResult::Logged(o) => {
                answer.status = if o.replayed {
                    LineStatus::Replayed
                } else if o.duplicate {
                    LineStatus::Duplicate
                } else {
                    LineStatus::Accepted
                };
                answer.leaf_index = Some(o.record.leaf_index);
                answer.id = Some(o.record.id);
            }
            ItemResult::Rejected(why) => answer.error = Some(why),
            ItemResult::Failed(e) => {
                // Internal causes are logged, not sent (as for any reply);
                // once: the rest of a failed unit fails the same way.
                let detail = match &self.failure {
                    Some(d) => d.clone(),
                    None => {
                        let d = Problem::from(e).detail;
                        self.failure = Some(d.clone());
                        d
                    }
                };
                answer.status = LineStatus::Failed;
                answer.error = Some(detail);
            }
        }
        answer
    }

    fn summary(&self, lines: u64) -> StreamSummary {
        let c = &self.counts;
        StreamSummary {
            lines,
            accepted: c.accepted,
            rejected: c.rejected,
            duplicates: c.duplicates,
            failed: c.failed,
            first_leaf_index: c.first,
            last_leaf_index: c.last,
            checkpoint_size: None,
            checkpoint_pending: false,
        }
    }

    /// The counts for the audit trail.
    fn counts(&self) -> String {
        self.counts.counts()
    }
}

/// The body's lines, as they arrive. Ends when the body does, when reading
/// it fails (the unfinished last line is dropped: it may be cut short), or
/// when `progress.stop` is set.
fn pieces(body: Body, progress: Arc<Progress>) -> impl Stream<Item = Piece> + Send + 'static {
    let reader = LineReader {
        body: body.into_data_stream(),
        splitter: LineSplitter::new(MAX_LINE),
        ready: VecDeque::new(),
        done: false,
        progress,
    };
    futures_util::stream::unfold(reader, |mut r| async move {
        let piece = r.next().await?;
        Some((piece, r))
    })
}

struct LineReader {
    body: BodyDataStream,
    splitter: LineSplitter,
    /// Lines of the last chunk not handed out yet.
    ready: VecDeque<Piece>,
    done: bool,
    progress: Arc<Progress>,
}

impl LineReader {
    async fn next(&mut self) -> Option<Piece> {
        loop {
            if self.progress.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(p) = self.ready.pop_front() {
                return Some(p);
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(data)) => self.splitter.feed(&data, &mut self.ready),
                Some(Err(e)) => {
                    self.done = true;
                    let _ = self.progress.broken.set(e.to_string());
                }
                None => {
                    self.done = true;
                    self.ready.extend(self.splitter.finish());
                }
            }
            self.progress
                .lines
                .store(self.splitter.lines(), Ordering::Relaxed);
        }
    }
}

/// What the NDJSON stream makes of `input` when it arrives in pieces cut
/// at `cuts` (byte offsets, any order, out-of-range ones ignored), with
/// lines limited to `max_line` bytes: per non-blank line, its number and
/// its record or the reason it is rejected. The same code as the route,
/// without the network, for fuzzing and tests.
pub fn parse_ndjson(
    input: &[u8],
    cuts: &[usize],
    max_line: usize,
) -> Vec<(u64, Result<StreamRecord, String>)> {
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c <= input.len()).collect();
    cuts.sort_unstable();
    let mut splitter = LineSplitter::new(max_line);
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(input.len())) {
        splitter.feed(&input[start..cut], &mut pieces);
        start = cut;
    }
    pieces.extend(splitter.finish());
    pieces
        .into_iter()
        .filter_map(|p| {
            let (number, item) = item_of_limited(p, max_line)?;
            Some((
                number,
                match item {
                    Item::Record(r) => Ok(r),
                    Item::Rejected(why) => Err(why),
                },
            ))
        })
        .collect()
}

/// The pipeline item of a line, with its number; `None` for a blank line.
fn item_of(piece: Piece) -> Option<(u64, Item)> {
    item_of_limited(piece, MAX_LINE)
}

fn item_of_limited(piece: Piece, max_line: usize) -> Option<(u64, Item)> {
    let item = match piece.line {
        Line::TooLong => Item::Rejected(format!("line too long: more than {max_line} bytes")),
        Line::Text(bytes) => {
            // JSON's whitespace: a line of it is blank.
            if bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                return None;
            }
            match parse_line(&bytes) {
                Ok(record) => Item::Record(record),
                Err(why) => Item::Rejected(why),
            }
        }
    };
    Some((piece.number, item))
}

/// One line as sent. The vault validates content type, labels and key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRecord {
    content_type: Option<String>,
    payload_base64: Option<String>,
    /// Any JSON value, `null` included (hence not a plain `Option`).
    #[serde(default, deserialize_with = "raw_value")]
    payload: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "raw_value")]
    analytics: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "unique_map")]
    labels: BTreeMap<String, String>,
    idempotency_key: Option<String>,
}

fn raw_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// The record of a (non-blank) line, or why it is rejected.
fn parse_line(bytes: &[u8]) -> Result<StreamRecord, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("line is not valid UTF-8 (at byte {})", e.valid_up_to() + 1))?;
    let line: LineRecord = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("invalid record: {e}"),
        _ => format!("malformed JSON: {e}"),
    })?;
    let given = [
        line.payload_base64.is_some(),
        line.payload.is_some(),
        line.analytics.is_some(),
    ]
    .iter()
    .filter(|&&g| g)
    .count();
    if given != 1 {
        return Err(
            "exactly one of \"payload_base64\", \"payload\" and \"analytics\" is required".into(),
        );
    }
    let (content_type, payload) = if let Some(raw) = line.analytics {
        if line.content_type.is_some() {
            return Err(format!(
                "an \"analytics\" line takes no \"content_type\" (it is {ANALYTICS_TYPE})"
            ));
        }
        if !raw.get().starts_with('{') {
            return Err("\"analytics\" must be a JSON object".into());
        }
        (ANALYTICS_TYPE.to_string(), raw.get().as_bytes().to_vec())
    } else {
        let content_type = line
            .content_type
            .ok_or("\"content_type\" is required (unless the line is \"analytics\")")?;
        let payload = match (line.payload_base64, line.payload) {
            (Some(b64), _) => STANDARD
                .decode(b64)
                .map_err(|e| format!("\"payload_base64\" is not standard padded base64: {e}"))?,
            (None, Some(raw)) => raw.get().as_bytes().to_vec(),
            (None, None) => Vec::new(),
        };
        (content_type, payload)
    };
    Ok(StreamRecord {
        content_type,
        labels: line.labels,
        payload,
        idempotency_key: line.idempotency_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ndjson_is_the_same_however_the_body_is_cut() {
        let body =
            "{\"content_type\":\"text/plain\",\"payload\":\"é€😀\",\"labels\":{\"k\":\"€\"}}\r\n\n\
                    not json\n{\"content_type\":\"a/b\",\"payload_base64\":\"aGk=\"}"
                .as_bytes();
        let whole = parse_ndjson(body, &[], 1024);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].0, 1);
        assert_eq!(whole[0].1.as_ref().unwrap().payload, "\"é€😀\"".as_bytes());
        assert!(whole[1].1.is_err());
        assert_eq!(whole[2].0, 4);
        for cut in 0..=body.len() {
            assert_eq!(parse_ndjson(body, &[cut], 1024), whole, "cut at {cut}");
        }
        let every: Vec<usize> = (0..=body.len()).collect();
        assert_eq!(parse_ndjson(body, &every, 1024), whole);
        let short = parse_ndjson(body, &[], 20);
        assert_eq!(short[0].1, Err("line too long: more than 20 bytes".into()));
    }

    #[test]
    fn line_forms() {
        let r = parse_line(br#"{"content_type":"text/plain","payload_base64":"aGk=","labels":{"a":"b"},"idempotency_key":"k1"}"#).unwrap();
        assert_eq!(r.payload, b"hi");
        assert_eq!(r.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(r.idempotency_key.as_deref(), Some("k1"));

        // The exact bytes of the value, as sent.
        let r =
            parse_line(br#"{"content_type":"application/json","payload": {"b": 1.50, "a" :[ ]} }"#)
                .unwrap();
        assert_eq!(r.payload, br#"{"b": 1.50, "a" :[ ]}"#);
        let r = parse_line(br#"{"content_type":"application/json","payload":null}"#).unwrap();
        assert_eq!(r.payload, b"null");

        let r = parse_line(br#"{"analytics":{"source":"x"},"labels":{"k":"v"}}"#).unwrap();
        assert_eq!(r.content_type, ANALYTICS_TYPE);
        assert_eq!(r.payload, br#"{"source":"x"}"#);
    }

    #[test]
    fn line_errors() {
        let err = |l: &[u8]| parse_line(l).unwrap_err();
        assert!(err(b"{").starts_with("malformed JSON"));
        assert!(err(br#"{"content_type":"t/p","payload":1} {}"#).starts_with("malformed JSON"));
        assert!(err(b"\xff{}").contains("UTF-8"));
        assert!(err(br#"{"content_type":"t/p","payload":1,"x":2}"#).contains("unknown field"));
        assert!(err(br#"{"content_type":"t/p","payload_base64":"@@"}"#).contains("base64"));
        assert!(err(br#"{"content_type":"t/p"}"#).contains("exactly one"));
        assert!(
            err(br#"{"content_type":"t/p","payload":1,"payload_base64":""}"#)
                .contains("exactly one")
        );
        assert!(err(br#"{"payload":1}"#).contains("content_type"));
        assert!(err(br#"{"analytics":[1]}"#).contains("object"));
        assert!(err(br#"{"analytics":{},"content_type":"a/b"}"#).contains("no \"content_type\""));
        assert!(
            err(br#"{"content_type":"t/p","payload":1,"labels":{"a":"1","a":"2"}}"#)
                .contains("given twice")
        );
        assert!(err(br#"[1]"#).starts_with("invalid record"));
    }

    #[test]
    fn blank_lines_are_skipped_and_too_long_ones_rejected() {
        let piece = |line| Piece { number: 7, line };
        assert!(item_of(piece(Line::Text(b" \t\r".to_vec()))).is_none());
        assert!(item_of(piece(Line::Text(Vec::new()))).is_none());
        match item_of(piece(Line::TooLong)) {
            Some((7, Item::Rejected(why))) => {
                assert_eq!(why, format!("line too long: more than {MAX_LINE} bytes"))
            }
            _ => panic!("a too-long line is rejected"),
        }
    }

    #[test]
    fn reply_lines() {
        let line = |v: &StreamReplyLine| serde_json::to_string(v).unwrap();
        let mut t = Tally::default();
        let r = t.count(3, ItemResult::Rejected("bad".into()));
        assert_eq!(
            line(&StreamReplyLine::Result(r)),
            r#"{"line":3,"status":"rejected","error":"bad"}"#
        );
        assert_eq!(
            line(&StreamReplyLine::Summary {
                summary: t.summary(4)
            }),
            r#"{"summary":{"lines":4,"accepted":0,"rejected":1,"duplicates":0,"first_leaf_index":null,"last_leaf_index":null,"checkpoint_size":null}}"#
        );
        assert_eq!(
            t.counts(),
            "accepted 0, rejected 1, duplicates 0, leaves none"
        );
    }
}
