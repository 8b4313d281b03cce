//! The evault REST server: a thin translation of HTTP into [`Vault`] calls.
//!
//! The vault decides everything (validation, deduplication, idempotency,
//! what exists); this crate parses requests strictly, streams payloads in
//! and out, maps errors to RFC 9457 problem+json, counts requests for
//! Prometheus and describes itself in OpenAPI 3.1. See the crate README for
//! the routes and their exact rules.

mod docs;
mod evidence;
mod log;
mod metrics;
mod ops;
mod params;
mod problem;
mod tlog;
mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use evault_vault::Vault;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use evidence::{ENVELOPE_TYPE, EvidenceEnvelope, EvidencePage, PutResponse};
pub use log::{CheckpointInfo, CheckpointPage, ConsistencyProof, LogInfo};
pub use params::{MAX_LIMIT, parse_rfc3339_ms};
pub use problem::{PROBLEM_JSON, Problem, ProblemBody};
pub use tls::TlsConfig;

/// How the server behaves; the vault's own limits live in its config.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Principal recorded as `ingested_by` for every submission, until
    /// authentication lands.
    pub principal_for_unauthenticated: String,
    /// Largest JSON envelope accepted, in bytes (the envelope is parsed in
    /// memory; raw bodies are streamed and only bound by the vault's
    /// `max_upload`). The effective cap is also at most what base64 of a
    /// `max_upload` payload plus 64 KiB of metadata needs.
    pub max_envelope: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            principal_for_unauthenticated: "anonymous".into(),
            max_envelope: 16 * 1024 * 1024,
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    vault: Vault,
    opts: Arc<ServerOptions>,
    metrics: Arc<metrics::Metrics>,
    openapi: Arc<str>,
}

impl AppState {
    /// Envelope size cap: the option, and no more than a maximal payload needs.
    fn envelope_limit(&self) -> u64 {
        let max_upload = self.vault.config().max_upload;
        let needed = max_upload
            .div_ceil(3)
            .saturating_mul(4)
            .saturating_add(64 * 1024);
        self.opts.max_envelope.min(needed)
    }
}

/// Routes documented in the OpenAPI document, without state.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(evidence::put_evidence, evidence::list_evidence))
        .routes(routes!(evidence::get_evidence))
        .routes(routes!(evidence::get_payload))
        .routes(routes!(evidence::get_proof))
        .routes(routes!(log::log_info))
        .routes(routes!(log::consistency))
        .routes(routes!(log::list_checkpoints))
        .routes(routes!(log::latest_checkpoint))
        .routes(routes!(log::checkpoint_at))
        .routes(routes!(tlog::checkpoint))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        // Documented as /tlog/tile/{path} by ApiDoc; the wildcard spans slashes.
        .route("/tlog/tile/{*path}", get(tlog::tile))
}

/// The OpenAPI 3.1 document of the API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole HTTP API over `vault`.
pub fn router(vault: Vault, opts: ServerOptions) -> Router {
    let (routes, api) = api_router().split_for_parts();
    let openapi: Arc<str> = api.to_pretty_json().unwrap_or_else(|_| "{}".into()).into();
    let state = AppState {
        vault,
        opts: Arc::new(opts),
        metrics: metrics::Metrics::new(),
        openapi,
    };
    routes
        .route("/api/v1/openapi.json", get(ops::openapi_json))
        .fallback(problem::not_found)
        .layer(CatchPanicLayer::custom(problem::panic_response))
        .layer(axum::middleware::from_fn(problem::normalize_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Why serving failed.
#[derive(Debug)]
pub enum ServeError {
    /// The certificate or key could not be loaded.
    Tls(String),
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Tls(e) => write!(f, "TLS: {e}"),
            ServeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        ServeError::Io(e)
    }
}

/// Serves the API on `listener` (plain HTTP/1.1, or HTTPS with `tls`) until
/// `shutdown` completes, then stops accepting and lets requests in flight
/// finish. Bind the listener to `127.0.0.1` unless the API is meant to be
/// reachable from elsewhere.
pub async fn serve(
    vault: Vault,
    opts: ServerOptions,
    listener: TcpListener,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = router(vault, opts);
    match tls {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls.load()?)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    Ok(())
}
