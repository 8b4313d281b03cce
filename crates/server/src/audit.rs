//! `/api/v1/audit`: the audit trail, for auditors. Events, their inclusion
//! proofs against the audit log's own signed checkpoints, and consistency
//! between those checkpoints: the same shapes as for evidence.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use evault_store::AuditQuery;
use evault_verify::audit::{AuditEvent, Outcome};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::docs::AuditEventDoc;
use crate::evidence::proof_reply;
use crate::log::{ConsistencyProof, LogInfo, checkpoint_reply};
use crate::params::{
    CursorKind, PathParam, QueryParams, decode_cursor, encode_cursor, parse_limit, parse_number,
};
use crate::problem::{Problem, ProblemBody};

/// One page of audit events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<AuditEventDoc>)]
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn disabled() -> Problem {
    Problem::not_found("the audit trail is disabled on this server")
}

/// List audit events, oldest first.
///
/// All given filters must match; `since` is inclusive and `until`
/// exclusive, both compared with the event's `time`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(
        ("principal" = Option<String>, Query, description = "Exact principal (`anonymous` for callers without one)"),
        ("operation" = Option<String>, Query, description = "Operation name, e.g. `evidence.put` (docs/SECURITY.md lists them)"),
        ("outcome" = Option<String>, Query, description = "`success`, `denied`, `unauthenticated` or `failed`"),
        ("since" = Option<String>, Query, description = "RFC 3339; events at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; events before"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of events", body = AuditPage),
        (status = 400, description = "Bad filter, cursor or limit", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_audit(
    State(st): State<AppState>,
    mut q: QueryParams,
) -> Result<Json<AuditPage>, Problem> {
    let principal = q.take_one("principal")?;
    let operation = q.take_one("operation")?;
    let outcome = q
        .take_one("outcome")?
        .map(|o| {
            o.parse::<Outcome>()
                .map(|o| o.as_str().to_string())
                .map_err(|_| {
                    Problem::bad_request(format!(
                        "outcome {o:?}: expected success, denied, unauthenticated or failed"
                    ))
                })
        })
        .transpose()?;
    let since_ms = q.take_time("since")?;
    let until_ms = q.take_time("until")?;
    let after_index = q
        .take_one("cursor")?
        .map(|c| decode_cursor(CursorKind::Audit, &c))
        .transpose()?;
    let limit = parse_limit(&mut q)?;
    q.finish()?;
    let page = st
        .vault
        .audit_list(AuditQuery {
            principal,
            operation,
            outcome,
            since_ms,
            until_ms,
            after_index,
            limit,
        })
        .await?;
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: page.next.map(|n| encode_cursor(CursorKind::Audit, n)),
    }))
}

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
    Ok(Json(st.vault.audit_log_info().ok_or_else(disabled)?.into()))
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
    let (from, to) = q.take_consistency_sizes()?;
    Ok(Json(st.vault.audit_consistency(from, to).await?.into()))
}

/// The latest signed audit checkpoint.
#[utoipa::path(
    get,
    path = "/api/v1/audit/checkpoints/latest",
    tag = "audit",
    responses(
        (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
            (String = "text/plain"),
            (crate::log::CheckpointInfo = "application/json"),
        )),
        (status = 404, description = "No audit checkpoint, or the audit trail is disabled", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn latest_audit_checkpoint(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    Ok(checkpoint_reply(
        st.vault.audit_latest_checkpoint().await?,
        &headers,
    ))
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
            (crate::log::CheckpointInfo = "application/json"),
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
    let size = parse_number("size", &size)?;
    Ok(checkpoint_reply(
        st.vault.audit_checkpoint_at(size).await?,
        &headers,
    ))
}

/// One audit event.
#[utoipa::path(
    get,
    path = "/api/v1/audit/events/{id}",
    tag = "audit",
    params(("id" = String, Path, description = "Event id (UUIDv7)")),
    responses(
        (status = 200, description = "The event", body = AuditEventDoc),
        (status = 404, description = "No such event", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_audit_event(
    State(st): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<AuditEvent>, Problem> {
    Ok(Json(st.vault.audit_event(&id).await?))
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
    PathParam(id): PathParam,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    let tree_size = q.take_number("tree_size")?;
    let tlog = q.take_proof_format()?;
    q.finish()?;
    proof_reply(st.vault.audit_inclusion(&id, tree_size).await?, tlog)
}
