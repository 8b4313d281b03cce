//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evault_vault::VaultError;

use crate::AppState;
use crate::problem::{Problem, ProblemBody};

/// Liveness: the process serves requests.
///
/// Answers `ok` whatever state the vault is in: it never waits for the
/// audit trail (its audit event is offered, and dropped if it cannot be
/// queued). Needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: whether the vault can do its work.
///
/// Ready when the vault's store answers a read and none of its tasks
/// reports trouble (a failed commit, e.g. a full disk; a checkpoint that
/// cannot be signed or stored, or a fork refused; an audit mirror behind).
/// The 503's detail lists the reasons; readiness returns by itself once
/// they clear. A 200's second line says how many committed records the
/// label and digest indexes do not hold yet. gRPC's `grpc.health.v1.Health` reports the same. Needs no
/// token.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready; the detail says why", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(st): State<AppState>) -> Result<String, Problem> {
    match readiness(&st.vault).await {
        // The first line is the answer; the second how far the label and
        // digest indexes lag behind the log (they never hold reads up).
        // Not the tree size: this route needs no token, and the size is
        // log data that `public_log_read` may keep to callers with one.
        Ok(()) => {
            let size = st.vault.evidence_log().info().tree_size;
            let behind = size.saturating_sub(st.vault.indexed_through());
            Ok(format!("ready\nindex: {behind} records behind the log\n"))
        }
        Err(detail) => {
            tracing::warn!("{detail}");
            Err(not_ready(detail))
        }
    }
}

/// The one readiness check of both APIs (`/readyz` and gRPC health):
/// `Err` with the reasons when the vault is not ready.
pub(crate) async fn readiness(vault: &evault_vault::Vault) -> Result<(), String> {
    if let Err(e) = vault.evidence_log().list_checkpoints(None, 1).await {
        tracing::warn!("readiness check failed: {e}");
        return Err("the vault's store does not answer".into());
    }
    let mut reasons: Vec<String> = vault.health().iter().map(|r| r.to_string()).collect();
    // A refused fork is on the health board too; the alarm is the part of
    // it that never clears, so it is named even if the board was changed.
    if let Some(fork) = vault.not_ready()
        && !reasons.iter().any(|r| r.contains(&fork))
    {
        reasons.push(fork);
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(format!("not ready: {}", reasons.join("; ")))
    }
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
/// by method, route template and status; `evault_grpc_requests_total` and
/// `evault_grpc_request_duration_seconds` by gRPC method and status code;
/// `evault_vault_errors_total` by kind; gauges `evault_tree_size`,
/// `evault_checkpoint_size` and `evault_checkpoint_age_seconds`; then the
/// vault's own metrics (the server README lists them all).
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
///
/// Generated from the code (the committed `openapi.snapshot.json` pins
/// it). Which routes need a token follows this server's `public_log_read`;
/// `servers` names its public URL when it has one. Needs no token.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
pub async fn openapi_json(State(st): State<AppState>) -> Response {
    let mut resp = st.openapi.to_string().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
