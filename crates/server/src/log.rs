//! `/api/v1/log`, `/api/v1/tree/consistency` and `/api/v1/checkpoints`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_store::StoredCheckpoint;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
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
    pub from: u64,
    pub to: u64,
    /// RFC 6962 consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointInfo {
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
    pub items: Vec<CheckpointInfo>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The log's identity and sizes.
#[utoipa::path(
    get,
    path = "/api/v1/log",
    tag = "log",
    responses((status = 200, description = "Origin, verifier key and sizes", body = LogInfo))
)]
pub async fn log_info(State(st): State<AppState>) -> Json<LogInfo> {
    Json(st.vault.log_info().into())
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
    let (from, to) = q.take_consistency_sizes()?;
    Ok(Json(st.vault.consistency(from, to).await?.into()))
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
    Ok(checkpoint_reply(
        st.vault.latest_checkpoint().await?,
        &headers,
    ))
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
    let size = parse_number("size", &size)?;
    let latest = st.vault.checkpoint_size();
    if size > latest {
        return Err(Problem::not_found(format!(
            "checkpoint of size {size} not found (the latest is {latest})"
        )));
    }
    Ok(checkpoint_reply(
        st.vault.checkpoint_at(size).await?,
        &headers,
    ))
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
    let mut items = st.vault.list_checkpoints(after, limit + 1).await?;
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
