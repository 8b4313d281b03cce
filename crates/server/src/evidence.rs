//! `/api/v1/evidence`: submit, read, list and prove records.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_store::ListQuery;
use evault_vault::{
    AuditOnCommit, BlobReader, PayloadData, PutOutcome, PutRequest, StagedPayload, Upload,
    VaultError, ingest,
};
use evault_verify::Evidence;
use http_body_util::BodyExt;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::docs::EvidenceDoc;
use crate::guard::{AuditDone, AuditNote, Caller};
use crate::params::{
    CursorKind, PathParam, QueryParams, add_label, decode_cursor, encode_cursor, header_text,
    parse_limit, parse_number,
};
use crate::problem::{Problem, ProblemBody};

/// Media type of the JSON envelope; any other `Content-Type` is a raw payload.
pub const ENVELOPE_TYPE: &str = "application/vnd.evault.evidence+json";
/// One label per header line: `key=value`.
pub const LABEL_HEADER: &str = "x-evault-label";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on a reply that repeats an earlier one for the same idempotency key.
pub const REPLAYED_HEADER: &str = "x-evault-replayed";

/// After rejecting a request, read (and drop) at most this much of the rest
/// of its body, so that the client, still sending, sees the reply instead
/// of a reset connection.
const DRAIN_MAX: u64 = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// Chunk size when reading payload files and feeding decoded envelopes.
const CHUNK: usize = 64 * 1024;

/// A submission as a JSON document, for clients that cannot send raw bodies.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"content_type": "application/json",
    "payload_base64": "eyJ0ZXN0cyI6NDJ9", "labels": {"pipeline": "release"}}))]
pub struct EvidenceEnvelope {
    /// The record's content type (`type/subtype[; params]`).
    pub content_type: String,
    /// The payload, standard base64 with padding (RFC 4648 §4).
    pub payload_base64: String,
    /// Labels; keys `[A-Za-z0-9._/-]{1,64}`, values up to 256 bytes.
    #[serde(default, deserialize_with = "unique_map")]
    pub labels: BTreeMap<String, String>,
}

/// A JSON object of strings whose keys must be distinct.
pub(crate) fn unique_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of string labels")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = m.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("label {k:?} given twice")));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// How long a `wait=checkpoint` submission waits for its checkpoint.
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reply to a submission.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutResponse {
    /// The logged record: the new one, or for a duplicate or a replay the
    /// one already in the log.
    #[schema(value_type = EvidenceDoc)]
    pub record: Evidence,
    /// True when an identical record (same payload, content type and
    /// labels) was already in the log; `record` is that record.
    pub duplicate: bool,
    /// With `wait=checkpoint`: the size of the signed checkpoint that
    /// covers the record (its inclusion proof is ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_size: Option<u64>,
    /// With `wait=checkpoint`: true when no checkpoint covered the record
    /// in time (the record is logged all the same; its proof follows).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub checkpoint_pending: bool,
}

/// One page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidencePage {
    /// The records, oldest first, at most `limit`.
    #[schema(value_type = Vec<EvidenceDoc>)]
    pub items: Vec<Evidence>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// How far the label and payload-digest indexes reached when the page
    /// was read: they hold exactly the records below this leaf index; the
    /// vault writes them behind the log. The page is exact either way (the
    /// records past it are read directly), so a client never needs to
    /// wait for it; a value far below the tree size means slower label
    /// filters.
    pub indexed_through: u64,
}

/// Submit evidence.
///
/// **Raw** (default): the body is the payload, streamed to disk as it
/// arrives; `Content-Type` becomes the record's content type; labels come
/// from `X-Evault-Label: key=value` headers (one label per header line,
/// the value is everything after the first `=`, UTF-8) and/or `label=key=value`
/// query parameters.
///
/// **Envelope**: when `Content-Type` is `application/vnd.evault.evidence+json`
/// the body is an `EvidenceEnvelope` and labels must be inside it (label
/// headers or query parameters are then rejected). The envelope is held in
/// memory, so its size is capped separately; send large payloads raw.
///
/// `Content-Encoding` other than `identity` is refused (415). A retry with
/// the same `Idempotency-Key` (same principal) gets the first reply again.
///
/// With `wait=checkpoint` the reply waits (up to 10 s) for a signed
/// checkpoint that covers the record and names its size. While the log's
/// signer is unavailable (e.g. its PKCS#11 token was removed) such a write
/// is refused with 503 and `Retry-After` before anything is written.
#[utoipa::path(
    post,
    path = "/api/v1/evidence",
    tag = "evidence",
    params(
        ("label" = Option<Vec<String>>, Query, description = "Label `key=value` (raw mode only); repeatable. Keys beginning `evault.` (any case) are the vault's and refused", pattern = r"^[A-Za-z0-9._/-]{1,64}(=.{0,256}|:[^=]{0,256})$"),
        ("wait" = Option<String>, Query, description = "`checkpoint`: reply once a signed checkpoint covers the record (up to 10 s; 503 at once, writing nothing, while the signer is unavailable)", pattern = "^checkpoint$"),
        ("X-Evault-Label" = Option<String>, Header, description = "Label `key=value` (raw mode only); repeat the header for more labels. Keys beginning `evault.` (any case) are the vault's and refused", pattern = r"^[A-Za-z0-9._/-]{1,64}(=.{0,256}|:[^=]{0,256})$"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a retry with the same key returns the first reply", pattern = r"^[!-~]{1,128}$"),
        ("X-Evault-Artifact-Digest" = Option<String>, Header, description = "For a Sigstore bundle: the artifact it must sign (default: the digest the bundle states); a bundle that signs another is labelled `failed`. Refused with any other content type", pattern = r"^sha256:[0-9a-fA-F]{64}$"),
    ),
    request_body(
        description = "The payload (any media type), or an envelope",
        content(
            ("*/*"),
            (EvidenceEnvelope = "application/vnd.evault.evidence+json"),
        )
    ),
    responses(
        (status = 201, description = "Logged as a new record (also the replay of such a reply)", body = PutResponse,
            headers(("Location" = String, description = "URL of the record"))),
        (status = 200, description = "An identical record exists; it is returned with `duplicate: true`", body = PutResponse),
        (status = 400, description = "Malformed request, labels, content type or envelope", body = ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "The body sent nothing for longer than the server's body idle timeout", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Payload larger than the vault's upload limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "A `Content-Encoding` other than identity", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A Sigstore policy refuses the bundle; `detail` names the policy and why. Nothing was written", body = ProblemBody, content_type = "application/problem+json"),
        (status = 501, description = "A `Transfer-Encoding` other than `chunked`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The vault is shutting down, or (with `wait=checkpoint`) the log's signer is unavailable; nothing was written", body = ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn put_evidence(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let result = match Submission::from_request(&st, &parts.headers, parts.uri.query()) {
        Ok(sub) => sub.run(&st, &caller, body).await,
        Err(p) => {
            if !expects_continue(&parts.headers) {
                drain(body).await;
            }
            Err(p)
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A client that sent `Expect: 100-continue` has not sent the body and
/// will not if refused: nothing to drain.
pub(crate) fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// What the request head says, checked before a byte of the body is read.
struct Submission {
    envelope: bool,
    /// Raw mode: the record's content type.
    content_type: Option<String>,
    labels: BTreeMap<String, String>,
    idempotency_key: Option<String>,
    declared_len: Option<u64>,
    /// `wait=checkpoint`: reply once a checkpoint covers the record.
    wait_checkpoint: bool,
    /// `X-Evault-Artifact-Digest`: the artifact a Sigstore bundle must sign.
    artifact_digest: Option<[u8; 32]>,
}

/// The header naming the artifact a Sigstore bundle is for, as
/// `sha256:<64 hex digits>`.
pub const ARTIFACT_DIGEST_HEADER: &str = "x-evault-artifact-digest";

/// Parses `sha256:<64 lowercase or uppercase hex digits>`.
fn parse_artifact_digest(v: &str) -> Result<[u8; 32], Problem> {
    let bad = || {
        Problem::bad_request(format!(
            "header X-Evault-Artifact-Digest {v:?}: expected sha256:<64 hex digits>"
        ))
    };
    let hex = v.trim().strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl Submission {
    fn from_request(
        st: &AppState,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Self, Problem> {
        if let Some(enc) = header_text(headers, header::CONTENT_ENCODING.as_str())?
            && !enc
                .split(',')
                .all(|e| e.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {enc:?} is not supported; send the payload unencoded"),
            ));
        }
        let content_type = header_text(headers, header::CONTENT_TYPE.as_str())?
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Problem::bad_request(
                    "Content-Type is required: it becomes the record's content type (or use \
                     application/vnd.evault.evidence+json for a JSON envelope)",
                )
            })?;
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let envelope = essence.eq_ignore_ascii_case(ENVELOPE_TYPE);

        let mut q = QueryParams::parse(query.unwrap_or(""))?;
        let query_labels = q.take_all("label");
        let wait_checkpoint = match q.take_one("wait")?.as_deref() {
            None => false,
            Some("checkpoint") => true,
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "wait={other:?} is not known; the only value is \"checkpoint\""
                )));
            }
        };
        q.finish()?;
        let mut labels = BTreeMap::new();
        for l in &query_labels {
            add_label(&mut labels, l, "query parameter label")?;
        }
        for value in headers.get_all(LABEL_HEADER) {
            let text = std::str::from_utf8(value.as_bytes())
                .map_err(|_| Problem::bad_request("header X-Evault-Label is not UTF-8 text"))?;
            add_label(&mut labels, text.trim(), "header X-Evault-Label")?;
        }
        if envelope && !labels.is_empty() {
            return Err(Problem::bad_request(
                "with a JSON envelope, labels go in its \"labels\" member, not in headers or the query",
            ));
        }
        // The vault checks the key's syntax (1 to 128 visible ASCII characters).
        let idempotency_key = header_text(headers, IDEMPOTENCY_HEADER)?.map(str::to_string);
        let artifact_digest = header_text(headers, ARTIFACT_DIGEST_HEADER)?
            .map(parse_artifact_digest)
            .transpose()?;
        // The vault validates again in `put`; checking here first spares
        // streaming a whole body only to refuse its labels.
        if !envelope {
            ingest::validate_content_type(content_type)?;
            ingest::validate_labels(&labels)?;
        }
        if let Some(k) = &idempotency_key {
            ingest::validate_idempotency_key(k)?;
        }
        let declared_len = match header_text(headers, header::CONTENT_LENGTH.as_str())? {
            Some(v) => Some(parse_number("Content-Length", v)?),
            None => None,
        };
        let limit = if envelope {
            st.envelope_limit()
        } else {
            st.vault.config().max_upload
        };
        if declared_len.is_some_and(|n| n > limit) {
            return Err(too_large(envelope, limit));
        }
        // Last, so a bad request is a 400 whatever the signer's state; and
        // before a byte is read, so nothing is written: the client asked
        // for a checkpoint the vault cannot sign now.
        if wait_checkpoint && let Some(e) = st.vault.evidence_log().signer_unavailable() {
            return Err(e.into());
        }
        Ok(Submission {
            envelope,
            content_type: (!envelope).then(|| content_type.to_string()),
            labels,
            idempotency_key,
            declared_len,
            wait_checkpoint,
            artifact_digest,
        })
    }

    async fn run(self, st: &AppState, caller: &Caller, body: Body) -> Result<Response, Problem> {
        let (content_type, labels, payload) = if self.envelope {
            let env = read_envelope(st, body, self.declared_len).await?;
            let payload = decode_envelope_payload(st, &env.payload_base64).await?;
            (env.content_type, env.labels, payload)
        } else {
            let ct = self.content_type.unwrap_or_default();
            (ct, self.labels, stream_raw(st, body).await?)
        };
        let outcome = st
            .vault
            .put_with_artifact(
                PutRequest {
                    content_type,
                    labels,
                    payload,
                    principal: caller.principal().to_string(),
                    idempotency_key: self.idempotency_key,
                    audit: Some(audit_on_commit(caller)),
                },
                self.artifact_digest,
            )
            .await?;
        // A replay repeats the first reply: that one created the record (a
        // request whose record was a duplicate stored no idempotency key).
        let status = if outcome.duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let location = format!("/api/v1/evidence/{}", outcome.record.id);
        // The record is committed and audited as such: a signer that fails
        // now makes the checkpoint pending, never the write a failure.
        let (checkpoint_size, checkpoint_pending) = if self.wait_checkpoint {
            let log = st.vault.evidence_log();
            match log
                .wait_for_checkpoint(outcome.record.leaf_index + 1, CHECKPOINT_WAIT)
                .await
            {
                Ok(size) => (Some(size), false),
                Err(_) => (None, true),
            }
        } else {
            (None, false)
        };
        let mut resp = (
            status,
            Json(PutResponse {
                record: outcome.record,
                duplicate: outcome.duplicate,
                checkpoint_size,
                checkpoint_pending,
            }),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        if outcome.replayed {
            resp.headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        resp.extensions_mut().insert(AuditDone);
        Ok(resp)
    }
}

/// The put's audit event, completed by the vault inside the transaction
/// that commits the record (so neither exists without the other).
fn audit_on_commit(caller: &Caller) -> AuditOnCommit {
    let caller = caller.clone();
    Box::new(move |outcome: &PutOutcome| {
        let status = if outcome.duplicate { 200 } else { 201 };
        let note = AuditNote {
            resource: Some(format!("/api/v1/evidence/{}", outcome.record.id)),
            ..AuditNote::default()
        };
        caller.finish(status, Some(&note))
    })
}

fn too_large(envelope: bool, limit: u64) -> Problem {
    let detail = if envelope {
        format!("JSON envelope exceeds {limit} bytes; send large payloads as a raw body")
    } else {
        format!("payload exceeds the limit of {limit} bytes")
    };
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
}

/// Streams a raw body into the vault's upload, chunk by chunk.
async fn stream_raw(st: &AppState, mut body: Body) -> Result<StagedPayload, Problem> {
    let mut upload: Upload = st.vault.upload();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Err(e) = upload.write(&data).await {
            drop(upload);
            if matches!(e, VaultError::TooLarge { .. }) {
                drain(body).await;
            }
            return Err(e.into());
        }
    }
    Ok(upload.finish().await?)
}

pub(crate) fn body_error(e: &axum::Error) -> Problem {
    if crate::conn::is_body_timeout(e) {
        return Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body sent nothing for too long (the server's body idle timeout)",
        );
    }
    Problem::bad_request(format!("reading the request body failed: {e}"))
}

/// Reads the envelope, at most the envelope limit, and parses it.
async fn read_envelope(
    st: &AppState,
    mut body: Body,
    declared: Option<u64>,
) -> Result<EvidenceEnvelope, Problem> {
    let limit = st.envelope_limit();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buf.len() + data.len()) as u64 > limit {
            drain(body).await;
            return Err(too_large(true, limit));
        }
        buf.extend_from_slice(&data);
    }
    serde_json::from_slice(&buf)
        .map_err(|e| Problem::bad_request(format!("malformed evidence envelope: {e}")))
}

/// Decodes the envelope's base64 payload into the vault's upload.
async fn decode_envelope_payload(st: &AppState, b64: &str) -> Result<StagedPayload, Problem> {
    let bytes = STANDARD.decode(b64).map_err(|e| {
        Problem::bad_request(format!("payload_base64 is not standard padded base64: {e}"))
    })?;
    let mut upload = st.vault.upload();
    for chunk in bytes.chunks(CHUNK) {
        upload.write(chunk).await?;
    }
    Ok(upload.finish().await?)
}

/// Reads and discards what is left of a body, within bounds.
pub(crate) async fn drain(mut body: Body) {
    let read = async {
        let mut total = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                total += d.len() as u64;
                if total > DRAIN_MAX {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// Get a record.
///
/// The record's metadata (not its payload: `…/payload`). An ingester sees
/// only the records it submitted; another principal's record is 404, as
/// if it did not exist.
#[utoipa::path(
    get,
    path = "/api/v1/evidence/{id}",
    tag = "evidence",
    params(("id" = String, Path, description = "Record id (UUIDv7)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The record", body = EvidenceDoc),
        (status = 404, description = "No such record", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_evidence(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let reader = caller.reader();
    let record = st.vault.get(&reader, &id).await?;
    // An erased record's metadata says so (and which tombstone erased it).
    let Some(erased) = st.vault.erasure(&reader, &id).await? else {
        return Ok(Json(record).into_response());
    };
    let mut doc = serde_json::to_value(&record).map_err(|e| Problem::internal("json", &e))?;
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "erased".into(),
            serde_json::json!({
                "tombstone_id": erased.tombstone_id,
                "tombstone_leaf": erased.tombstone_leaf,
                "erased_at": erased.erased_at,
                "basis": erased.basis,
            }),
        );
    }
    Ok(Json(doc).into_response())
}

/// Download a record's payload.
///
/// Served with the record's content type as an attachment, with
/// `X-Content-Type-Options: nosniff` and a sandboxing CSP, so a payload is
/// never rendered as part of this origin. `ETag` is the payload's SHA-256.
#[utoipa::path(
    get,
    path = "/api/v1/evidence/{id}/payload",
    tag = "evidence",
    params(("id" = String, Path, description = "Record id (UUIDv7)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The payload bytes, exactly as submitted, with the record's content type", content(("*/*"))),
        (status = 404, description = "No such record, or its payload is gone", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "The payload was erased; `tombstone_id` names the tombstone record that erased it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 500, description = "The stored payload or record failed its integrity check (changed at rest): not served. A blob that fails only at its end is cut short instead: the connection closes before Content-Length bytes", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_payload(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let (record, data) = st.vault.payload(&caller.reader(), &id).await?;
    let (body, len) = match data {
        PayloadData::Inline(bytes) => {
            let len = bytes.len() as u64;
            (Body::from(bytes), len)
        }
        PayloadData::File(blob) => {
            // The reader checks the digest as it goes; on a mismatch the
            // stream ends in an error before its last chunk, so hyper cuts
            // the connection short of Content-Length.
            let len = blob.len();
            (Body::from_stream(blob_stream(*blob)), len)
        }
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    let ct = HeaderValue::from_str(&record.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    let disposition = format!(
        "attachment; filename=\"{}\"",
        record.id.replace(['"', '\\'], "_")
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", record.sha256)) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

fn blob_stream(
    blob: BlobReader,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::try_unfold(blob, |mut b| async move {
        Ok(b.next_chunk().await?.map(|c| (Bytes::from(c), b)))
    })
}

/// List records, oldest first.
///
/// All given filters must match. `label` is `key:value` (or `key=value`)
/// and may repeat (all must match); `since` (inclusive) and `until`
/// (exclusive) are RFC 3339 date-times compared with `ingested_at`.
#[utoipa::path(
    get,
    path = "/api/v1/evidence",
    tag = "evidence",
    params(
        ("label" = Option<Vec<String>>, Query, description = "`key:value` (or `key=value`); repeatable, all must match", pattern = r"^[A-Za-z0-9._/-]{1,64}(=.{0,256}|:[^=]{0,256})$"),
        ("content_type" = Option<String>, Query, description = "Exact content type"),
        ("ingested_by" = Option<String>, Query, description = "Exact principal that submitted the record; an ingester asking for another principal's gets an empty page"),
        ("since" = Option<String>, Query, description = "RFC 3339; records ingested at or after", format = DateTime),
        ("until" = Option<String>, Query, description = "RFC 3339; records ingested before", format = DateTime),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of records", body = EvidencePage),
        (status = 400, description = "Bad filter (or more than 32 `label` filters), cursor or limit", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_evidence(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<EvidencePage>, Problem> {
    let mut labels = BTreeMap::new();
    for l in q.take_all("label") {
        add_label(&mut labels, &l, "query parameter label")?;
    }
    let content_type = q.take_one("content_type")?;
    let ingested_by = q.take_one("ingested_by")?;
    let since_ms = q.take_time("since")?;
    let until_ms = q.take_time("until")?;
    let after_index = q
        .take_one("cursor")?
        .map(|c| decode_cursor(CursorKind::Evidence, &c))
        .transpose()?;
    let limit = parse_limit(&mut q)?;
    q.finish()?;
    let query = ListQuery {
        labels: labels.into_iter().collect(),
        content_type,
        ingested_by,
        since_ms,
        until_ms,
        after_index,
        limit,
    };
    // Read first: the page covers at least what it says.
    let indexed_through = st.vault.indexed_through();
    let page = st.vault.list(&caller.reader(), query).await?;
    Ok(Json(EvidencePage {
        items: page.items,
        next_cursor: page.next.map(|n| encode_cursor(CursorKind::Evidence, n)),
        indexed_through,
    }))
}
