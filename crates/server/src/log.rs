//! The read API of both Merkle logs, one implementation parameterised by
//! the log: identity and sizes, checkpoints, consistency and inclusion
//! proofs. The evidence log is at `/api/v1/log`, `/api/v1/tree/consistency`,
//! `/api/v1/checkpoints…` and `/api/v1/evidence/{id}/proof`; the audit log
//! at the same shapes under `/api/v1/audit/…`. Each route below is a
//! one-line binding of a path to a log; the checks live in the vault.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_vault::{LogId, LogProof, StoredCheckpoint, VaultError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::guard::Caller;
use crate::params::{
    CursorKind, PathParam, QueryParams, decode_cursor, encode_cursor, format_ms, parse_limit,
    parse_number, prefers_json,
};
use crate::problem::{Problem, ProblemBody};

/// What a verifier needs to start following the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogInfo {
    /// Checkpoint origin line.
    pub origin: String,
    /// The log's Ed25519 verifier key in note format (`name+hash+base64`).
    pub verifier_key: String,
    /// Records durably committed.
    pub tree_size: u64,
    /// Size of the latest signed checkpoint.
    pub checkpoint_size: u64,
}

/// A consistency proof between two checkpointed tree sizes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// Older tree size, in leaves.
    pub from: u64,
    /// Newer tree size, in leaves.
    pub to: u64,
    /// RFC 6962 consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointInfo {
    /// Tree size the checkpoint commits to, in leaves.
    pub size: u64,
    /// The signed note (C2SP tlog-checkpoint), verbatim.
    pub note: String,
    /// RFC 3339, UTC, milliseconds.
    pub created_at: String,
}

impl From<StoredCheckpoint> for CheckpointInfo {
    fn from(c: StoredCheckpoint) -> Self {
        CheckpointInfo {
            size: c.size,
            note: c.note,
            created_at: format_ms(c.created_at_ms),
        }
    }
}

/// One page of checkpoints, ascending by size.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointPage {
    /// The checkpoints, at most `limit`, ascending by size.
    pub items: Vec<CheckpointInfo>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<evault_vault::ConsistencyProof> for ConsistencyProof {
    fn from(p: evault_vault::ConsistencyProof) -> Self {
        ConsistencyProof {
            from: p.from,
            to: p.to,
            proof: p.proof.iter().map(|h| STANDARD.encode(h)).collect(),
        }
    }
}

impl From<evault_vault::LogInfo> for LogInfo {
    fn from(i: evault_vault::LogInfo) -> Self {
        LogInfo {
            origin: i.origin,
            verifier_key: i.verifier_key,
            tree_size: i.tree_size,
            checkpoint_size: i.checkpoint_size,
        }
    }
}

/// Text note by default; JSON when `Accept` prefers `application/json`.
pub(crate) fn checkpoint_reply(cp: StoredCheckpoint, headers: &HeaderMap) -> Response {
    let mut resp = if prefers_json(headers) {
        Json(CheckpointInfo::from(cp)).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cp.note,
        )
            .into_response()
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    resp
}

// --- one implementation for both logs -------------------------------------

async fn info(st: &AppState, log: LogId) -> Result<Json<LogInfo>, Problem> {
    Ok(Json(st.vault.log(log)?.info().into()))
}

async fn consistency_of(
    st: &AppState,
    log: LogId,
    q: QueryParams,
) -> Result<Json<ConsistencyProof>, Problem> {
    let (from, to) = q.take_consistency_sizes()?;
    Ok(Json(st.vault.log(log)?.consistency(from, to).await?.into()))
}

async fn latest(st: &AppState, log: LogId, headers: &HeaderMap) -> Result<Response, Problem> {
    let cp = st.vault.log(log)?.latest_checkpoint().await?;
    Ok(checkpoint_reply(cp, headers))
}

async fn at_size(
    st: &AppState,
    log: LogId,
    size: &str,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let size = parse_number("size", size)?;
    let cp = st.vault.log(log)?.checkpoint_at(size).await?;
    Ok(checkpoint_reply(cp, headers))
}

/// Inclusion proof of entry `id` of `log`, as the caller may see it: JSON
/// bundle, or C2SP tlog-proof text with `format=tlog-proof`.
pub(crate) async fn inclusion(
    st: &AppState,
    log: LogId,
    caller: &Caller,
    id: &str,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    let tree_size = q.take_number("tree_size")?;
    let tlog = q.take_proof_format()?;
    q.finish()?;
    let proof = st
        .vault
        .log(log)?
        .inclusion(&caller.reader(), id, tree_size)
        .await?;
    proof_reply(&proof, tlog)
}

/// A proof bundle as JSON, or as C2SP tlog-proof text with `tlog`.
pub(crate) fn proof_reply(proof: &LogProof, tlog: bool) -> Result<Response, Problem> {
    if !tlog {
        return Ok(Json(proof).into_response());
    }
    let text = proof
        .to_tlog_proof()
        .map_err(|e| Problem::from(VaultError::Inconsistent(e.to_string())))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_text(),
    )
        .into_response())
}

// --- the evidence log -------------------------------------------------------

/// The log's identity and sizes.
#[utoipa::path(
    get,
    path = "/api/v1/log",
    tag = "log",
    responses((status = 200, description = "Origin, verifier key and sizes", body = LogInfo))
)]
pub async fn log_info(State(st): State<AppState>) -> Result<Json<LogInfo>, Problem> {
    info(&st, LogId::Evidence).await
}

/// Consistency proof between two tree sizes.
///
/// Both sizes must be at most the latest checkpoint's, and `0 < from <= to`.
#[utoipa::path(
    get,
    path = "/api/v1/tree/consistency",
    tag = "log",
    params(
        ("from" = u64, Query, description = "Older tree size, at least 1"),
        ("to" = u64, Query, description = "Newer tree size, at most the latest checkpoint's"),
    ),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "Missing or bad sizes", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`to` is beyond the latest checkpoint", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn consistency(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<ConsistencyProof>, Problem> {
    consistency_of(&st, LogId::Evidence, q).await
}

/// The latest signed checkpoint.
#[utoipa::path(
    get,
    path = "/api/v1/checkpoints/latest",
    tag = "checkpoints",
    responses(
        (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
            (String = "text/plain"),
            (CheckpointInfo = "application/json"),
        )),
        (status = 404, description = "No checkpoint signed yet", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn latest_checkpoint(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    latest(&st, LogId::Evidence, &headers).await
}

/// The signed checkpoint of one tree size.
#[utoipa::path(
    get,
    path = "/api/v1/checkpoints/{size}",
    tag = "checkpoints",
    params(("size" = u64, Path, description = "Tree size")),
    responses(
        (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
            (String = "text/plain"),
            (CheckpointInfo = "application/json"),
        )),
        (status = 400, description = "Size is not a number", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No checkpoint of that size", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn checkpoint_at(
    State(st): State<AppState>,
    PathParam(size): PathParam,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    at_size(&st, LogId::Evidence, &size, &headers).await
}

/// All signed checkpoints, ascending by size.
#[utoipa::path(
    get,
    path = "/api/v1/checkpoints",
    tag = "checkpoints",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of checkpoints", body = CheckpointPage),
        (status = 400, description = "Bad cursor or limit", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_checkpoints(
    State(st): State<AppState>,
    mut q: QueryParams,
) -> Result<Json<CheckpointPage>, Problem> {
    let after = q
        .take_one("cursor")?
        .map(|c| decode_cursor(CursorKind::Checkpoints, &c))
        .transpose()?;
    let limit = parse_limit(&mut q)?;
    q.finish()?;
    // One more than asked tells whether there is a next page.
    let mut items = st
        .vault
        .evidence_log()
        .list_checkpoints(after, limit + 1)
        .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = match items.last() {
        Some(last) if more => Some(encode_cursor(CursorKind::Checkpoints, last.size)),
        _ => None,
    };
    Ok(Json(CheckpointPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

// --- the audit log: the same shapes under /api/v1/audit --------------------

/// The audit log's identity and sizes.
#[utoipa::path(
    get,
    path = "/api/v1/audit/log",
    tag = "audit",
    responses(
        (status = 200, description = "The audit log's origin, verifier key and sizes", body = LogInfo),
        (status = 404, description = "The audit trail is disabled", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn audit_log(State(st): State<AppState>) -> Result<Json<LogInfo>, Problem> {
    info(&st, LogId::Audit).await
}

/// Consistency proof between two audit checkpoints.
#[utoipa::path(
    get,
    path = "/api/v1/audit/consistency",
    tag = "audit",
    params(
        ("from" = u64, Query, description = "Older tree size, at least 1"),
        ("to" = u64, Query, description = "Newer tree size, at most the latest audit checkpoint's"),
    ),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "Missing or bad sizes", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`to` is beyond the latest audit checkpoint", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn audit_consistency(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<ConsistencyProof>, Problem> {
    consistency_of(&st, LogId::Audit, q).await
}

/// The latest signed audit checkpoint.
#[utoipa::path(
    get,
    path = "/api/v1/audit/checkpoints/latest",
    tag = "audit",
    responses(
        (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
            (String = "text/plain"),
            (CheckpointInfo = "application/json"),
        )),
        (status = 404, description = "No audit checkpoint, or the audit trail is disabled", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn latest_audit_checkpoint(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    latest(&st, LogId::Audit, &headers).await
}

/// The signed audit checkpoint of one tree size.
#[utoipa::path(
    get,
    path = "/api/v1/audit/checkpoints/{size}",
    tag = "audit",
    params(("size" = u64, Path, description = "Tree size")),
    responses(
        (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
            (String = "text/plain"),
            (CheckpointInfo = "application/json"),
        )),
        (status = 400, description = "Size is not a number", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No audit checkpoint of that size", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn audit_checkpoint_at(
    State(st): State<AppState>,
    PathParam(size): PathParam,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    at_size(&st, LogId::Audit, &size, &headers).await
}

/// Inclusion proof of an audit event.
///
/// Against the audit checkpoint of size `tree_size` (default: the latest).
/// The bundle has the evidence proof bundle's shape with the event as
/// `record`; `format=tlog-proof` gives C2SP tlog-proof text. An event
/// newer than the latest audit checkpoint is 404 until the next one.
#[utoipa::path(
    get,
    path = "/api/v1/audit/events/{id}/proof",
    tag = "audit",
    params(
        ("id" = String, Path, description = "Event id (UUIDv7)"),
        ("tree_size" = Option<u64>, Query, description = "Size of a signed audit checkpoint (default: the latest)"),
        ("format" = Option<String>, Query, description = "`json` (default) or `tlog-proof`"),
    ),
    responses(
        (status = 200, description = "The proof", content(
            (crate::docs::AuditProofBundleDoc = "application/json"),
            (String = "text/plain"),
        )),
        (status = 400, description = "Bad tree_size or format", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such event or checkpoint, or the event is not in it yet", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_audit_proof(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
    q: QueryParams,
) -> Result<Response, Problem> {
    inclusion(&st, LogId::Audit, &caller, &id, q).await
}
