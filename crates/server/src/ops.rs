//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evault_vault::VaultError;

use crate::AppState;
use crate::problem::{Problem, ProblemBody};

/// Liveness: the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the vault's store answers a read and none of its tasks
/// reports trouble (a failed commit, e.g. a full disk; a checkpoint that
/// cannot be signed or stored; an audit mirror behind). The 503's detail
/// lists the reasons; readiness returns by itself once they clear.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready; the detail says why", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(st): State<AppState>) -> Result<&'static str, Problem> {
    if let Err(e) = st.vault.evidence_log().list_checkpoints(None, 1).await {
        tracing::warn!("readiness check failed: {e}");
        return Err(not_ready("the vault's store does not answer".into()));
    }
    let reasons = st.vault.health();
    if reasons.is_empty() {
        return Ok("ready\n");
    }
    let detail = reasons
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    tracing::warn!("not ready: {detail}");
    Err(not_ready(format!("not ready: {detail}")))
}

fn not_ready(detail: String) -> Problem {
    let mut p = Problem::from(VaultError::Unavailable(detail.clone()));
    p.status = StatusCode::SERVICE_UNAVAILABLE;
    p.detail = detail;
    p
}

/// Prometheus metrics (text exposition format 0.0.4).
///
/// `evault_http_requests_total` and `evault_http_request_duration_seconds`
/// by method, route template and status; `evault_vault_errors_total` by
/// kind; gauges `evault_tree_size`, `evault_checkpoint_size` and
/// `evault_checkpoint_age_seconds`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let log = st.vault.evidence_log();
    let info = log.info();
    let created = log.latest_checkpoint().await.ok().map(|c| c.created_at_ms);
    let text = st
        .metrics
        .render(info.tree_size, info.checkpoint_size, created);
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// This API's OpenAPI 3.1 document.
pub async fn openapi_json(State(st): State<AppState>) -> Response {
    let mut resp = st.openapi.to_string().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
