//! The evault REST server: a thin translation of HTTP into [`Vault`] calls.
//!
//! The vault decides everything (validation, deduplication, idempotency,
//! what exists); this crate parses requests strictly, streams payloads in
//! and out, maps errors to RFC 9457 problem+json, counts requests for
//! Prometheus and describes itself in OpenAPI 3.1. See the crate README for
//! the routes and their exact rules.

pub mod access;
mod admin;
mod analytics;
mod audit;
mod docs;
mod evidence;
mod grpc;
mod guard;
mod log;
mod metrics;
mod ops;
mod params;
mod problem;
mod stream;
mod tlog;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
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

pub use audit::AuditPage;
pub use evidence::{ENVELOPE_TYPE, EvidenceEnvelope, EvidencePage, PutResponse};
pub use guard::{ANONYMOUS, REQUEST_ID_HEADER};
pub use log::{CheckpointInfo, CheckpointPage, ConsistencyProof, LogInfo};
pub use params::{MAX_LIMIT, parse_rfc3339_ms};
pub use problem::{PROBLEM_JSON, Problem, ProblemBody};
pub use stream::{MAX_LINE, NDJSON_TYPE, StreamSummary, parse_ndjson};
pub use tls::TlsConfig;

/// How callers prove who they are.
#[derive(Clone)]
pub enum Authentication {
    /// Bearer tokens: service-account HS256 tokens and OIDC tokens.
    Tokens(Arc<evault_auth::Authenticator>),
    /// No authentication at all: every caller is `anonymous` and may do
    /// everything. For local experiments only; `evault serve` says so loudly.
    InsecureDisabled,
}

/// A per-principal token bucket.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed in a burst.
    pub burst: u32,
}

/// How the server behaves; the vault's own limits live in its config.
#[derive(Clone)]
pub struct ServerOptions {
    /// How callers are authenticated.
    pub auth: Authentication,
    /// Anyone may read the public log data (checkpoints, tiles, consistency
    /// proofs, the log's key) without a token, so outside verifiers need no
    /// account.
    pub public_log_read: bool,
    /// Per-principal request rate limit; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Largest JSON envelope accepted, in bytes (the envelope is parsed in
    /// memory; raw bodies are streamed and only bound by the vault's
    /// `max_upload`). The effective cap is also at most what base64 of a
    /// `max_upload` payload plus 64 KiB of metadata needs.
    pub max_envelope: u64,
}

impl ServerOptions {
    /// Defaults: public log read on, no rate limit, 16 MiB envelopes.
    pub fn new(auth: Authentication) -> ServerOptions {
        ServerOptions {
            auth,
            public_log_read: true,
            rate_limit: None,
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
    limiter: Option<Arc<evault_auth::RateLimiter>>,
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
        .routes(routes!(stream::stream_evidence))
        .routes(routes!(evidence::get_evidence))
        .routes(routes!(evidence::get_payload))
        .routes(routes!(log::get_proof))
        .routes(routes!(analytics::analytics_summary))
        .routes(routes!(log::log_info))
        .routes(routes!(log::consistency))
        .routes(routes!(log::list_checkpoints))
        .routes(routes!(log::latest_checkpoint))
        .routes(routes!(log::checkpoint_at))
        .routes(routes!(tlog::checkpoint))
        .routes(routes!(audit::list_audit))
        .routes(routes!(log::audit_log))
        .routes(routes!(log::audit_consistency))
        .routes(routes!(log::latest_audit_checkpoint))
        .routes(routes!(log::audit_checkpoint_at))
        .routes(routes!(audit::get_audit_event))
        .routes(routes!(log::get_audit_proof))
        .routes(routes!(admin::whoami))
        .routes(routes!(admin::list_service_accounts))
        .routes(routes!(admin::reload_service_accounts))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        // Documented as /tlog/tile/{path} by ApiDoc; the wildcard spans slashes.
        .route("/tlog/tile/{*path}", get(tlog::tile))
}

/// The OpenAPI 3.1 document of the API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    docs::add_guard_responses(&mut doc);
    doc
}

impl AppState {
    fn new(vault: Vault, opts: ServerOptions) -> AppState {
        let openapi: Arc<str> = openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".into())
            .into();
        let limiter = opts
            .rate_limit
            .filter(|r| r.per_second > 0.0)
            .map(|r| Arc::new(evault_auth::RateLimiter::new(r.per_second, r.burst)));
        AppState {
            vault,
            opts: Arc::new(opts),
            metrics: metrics::Metrics::new(),
            limiter,
            openapi,
        }
    }
}

/// The whole HTTP API over `vault`.
pub fn router(vault: Vault, opts: ServerOptions) -> Router {
    rest_router(AppState::new(vault, opts))
}

/// The gRPC API over `vault` (see `proto/evault/v1`), with health and
/// reflection; it must be served over HTTP/2.
pub fn grpc_router(vault: Vault, opts: ServerOptions) -> Router {
    grpc::router(AppState::new(vault, opts))
}

fn rest_router(state: AppState) -> Router {
    let (routes, _) = api_router().split_for_parts();
    routes
        .route("/api/v1/openapi.json", get(ops::openapi_json))
        .fallback(problem::not_found)
        .layer(CatchPanicLayer::custom(problem::panic_response))
        .layer(axum::middleware::from_fn(problem::normalize_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
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
    /// Listening, accepting or serving a connection failed.
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
    serve_all(vault, opts, listener, None, tls, shutdown).await
}

/// Serves the REST API on `http` and, when given, the gRPC API on `grpc`
/// (HTTP/2, with TLS when `tls` is set), sharing one state: the same
/// authenticator and rate limit apply to both. Stops both when `shutdown`
/// completes, letting calls in flight finish.
pub async fn serve_all(
    vault: Vault,
    opts: ServerOptions,
    http: TcpListener,
    grpc: Option<TcpListener>,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = AppState::new(vault, opts);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let rest = serve_one(
        rest_router(state.clone()),
        http,
        tls.as_ref(),
        b"http/1.1",
        stopped(),
    );
    match grpc {
        None => rest.await,
        Some(listener) => {
            let grpc = serve_one(
                grpc::router(state),
                listener,
                tls.as_ref(),
                b"h2",
                stopped(),
            );
            let (a, b) = tokio::join!(rest, grpc);
            a.and(b)
        }
    }
}

async fn serve_one(
    app: Router,
    listener: TcpListener,
    tls: Option<&TlsConfig>,
    alpn: &[u8],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // ConnectInfo gives the guard each client's address (plain and TLS
    // listeners are both wrapped in `tap_io`, which axum knows how to ask).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
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
            let listener = tls::TlsListener::new(listener, tls.load(alpn)?)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    Ok(())
}
