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

/// Readiness: the vault is open and its store answers a read.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "The store does not answer", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(st): State<AppState>) -> Result<&'static str, Problem> {
    // Not ready either once the vault refused to sign a fork: it serves
    // what it has but signs nothing more until an operator acts.
    if let Some(why) = st.vault.not_ready() {
        let mut p = Problem::from(VaultError::Unavailable(why.clone()));
        p.status = StatusCode::SERVICE_UNAVAILABLE;
        p.detail = why;
        return Err(p);
    }
    match st.vault.evidence_log().list_checkpoints(None, 1).await {
        Ok(_) => Ok("ready\n"),
        Err(e) => {
            tracing::warn!("readiness check failed: {e}");
            let mut p = Problem::from(VaultError::Unavailable(e.to_string()));
            p.status = StatusCode::SERVICE_UNAVAILABLE;
            p.detail = "the vault's store does not answer".into();
            Err(p)
        }
    }
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
