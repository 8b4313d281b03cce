//! `/api/v1/audit`: the audit trail's events, for auditors. The audit log's
//! checkpoints and proofs are served by `log`, the same code as the
//! evidence log's.

use axum::Json;
use axum::extract::{Extension, State};
use evault_store::AuditQuery;
use evault_verify::audit::{AuditEvent, Outcome};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::docs::AuditEventDoc;
use crate::guard::Caller;
use crate::params::{
    CursorKind, PathParam, QueryParams, decode_cursor, encode_cursor, parse_limit,
};
use crate::problem::{Problem, ProblemBody};

/// One page of audit events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The events, oldest first, at most `limit`.
    #[schema(value_type = Vec<AuditEventDoc>)]
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
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
        ("outcome" = Option<crate::docs::OutcomeFilter>, Query, description = "`success`, `denied`, `unauthenticated` or `failed`"),
        ("since" = Option<String>, Query, description = "RFC 3339; events at or after", format = DateTime),
        ("until" = Option<String>, Query, description = "RFC 3339; events before", format = DateTime),
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
    Extension(caller): Extension<Caller>,
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
        .audit_list(
            &caller.reader(),
            AuditQuery {
                principal,
                operation,
                outcome,
                since_ms,
                until_ms,
                after_index,
                limit,
            },
        )
        .await?;
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: page.next.map(|n| encode_cursor(CursorKind::Audit, n)),
    }))
}

/// One audit event.
///
/// The event of one API request (role auditor); its inclusion proof is at
/// `…/proof`.
#[utoipa::path(
    get,
    path = "/api/v1/audit/events/{id}",
    tag = "audit",
    params(("id" = String, Path, description = "Event id (UUIDv7)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The event", body = AuditEventDoc),
        (status = 404, description = "No such event", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_audit_event(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Json<AuditEvent>, Problem> {
    Ok(Json(st.vault.audit_event(&caller.reader(), &id).await?))
}
