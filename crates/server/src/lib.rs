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
mod backfills;
mod compliance;
mod conn;
mod cors;
mod docs;
mod evidence;
mod forward;
mod grpc;
mod guard;
mod keys;
mod log;
mod metrics;
mod mirrors;
mod ops;
mod params;
mod problem;
mod stats;
mod stream;
mod tasks;
mod tlog;
mod tls;
mod ui;
pub mod witness;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use evault_vault::Vault;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use audit::AuditPage;
pub use conn::{Limits, default_max_connections};
pub use evidence::{ENVELOPE_TYPE, EvidenceEnvelope, EvidencePage, PutResponse};
pub use forward::{ClusterRoots, ClusterSecret};
pub use guard::{ANONYMOUS, REQUEST_ID_HEADER};
pub use log::{CheckpointInfo, CheckpointPage, ConsistencyProof, LogInfo};
pub use params::{MAX_LIMIT, parse_rfc3339_ms};
pub use problem::{PROBLEM_JSON, Problem, ProblemBody};
pub use stream::{MAX_LINE, NDJSON_TYPE, StreamSummary, parse_ndjson};
pub use tasks::{NewTask, Task, TaskPage, TaskProgress, TaskResultInfo};
pub use tls::TlsConfig;
pub use ui::DashboardOidc;
pub use witness::witness_router;

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
    /// Timeouts and caps of connections, requests and HTTP/2 streams.
    pub limits: Limits,
    /// OIDC issuers the dashboard (`/ui/`) offers to sign in with.
    pub dashboard_oidc: Vec<DashboardOidc>,
    /// The secret the nodes of a cluster share: a standby sends it with the
    /// calls it forwards, and the leader then records the caller's address
    /// the standby saw (without it, the standby's own). `None`: no secret.
    pub cluster_secret: Option<ClusterSecret>,
    /// Whose certificates a standby trusts when it forwards to a leader
    /// that advertised an `https://` address.
    pub cluster_roots: ClusterRoots,
}

impl ServerOptions {
    /// Defaults: public log read on, no rate limit, 16 MiB envelopes, the
    /// default [`Limits`].
    pub fn new(auth: Authentication) -> ServerOptions {
        ServerOptions {
            auth,
            public_log_read: true,
            rate_limit: None,
            max_envelope: 16 * 1024 * 1024,
            limits: Limits::default(),
            dashboard_oidc: Vec::new(),
            cluster_secret: None,
            cluster_roots: ClusterRoots::default(),
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
    /// A standby's clients to the leader.
    forwarder: Arc<forward::Forwarder>,
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
    let router = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(evidence::put_evidence, evidence::list_evidence))
        .routes(routes!(stream::stream_evidence))
        .routes(routes!(evidence::get_evidence))
        .routes(routes!(evidence::get_payload))
        .routes(routes!(log::get_proof))
        .routes(routes!(analytics::analytics_summary))
        .routes(routes!(stats::evidence_stats))
        .routes(routes!(stats::audit_stats))
        .routes(routes!(log::log_info))
        .routes(routes!(keys::log_keys))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(keys::retire_keys))
        .routes(routes!(log::consistency))
        .routes(routes!(log::list_checkpoints))
        .routes(routes!(log::list_audit_checkpoints))
        .routes(routes!(log::latest_checkpoint))
        .routes(routes!(log::checkpoint_at))
        .routes(routes!(tlog::checkpoint))
        .routes(routes!(tlog::audit_checkpoint))
        .routes(routes!(audit::list_audit))
        .routes(routes!(log::audit_log))
        .routes(routes!(log::audit_consistency))
        .routes(routes!(log::latest_audit_checkpoint))
        .routes(routes!(log::audit_checkpoint_at))
        .routes(routes!(audit::get_audit_event))
        .routes(routes!(log::get_audit_proof))
        .routes(routes!(tasks::create_task, tasks::list_tasks))
        .routes(routes!(tasks::get_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(tasks::task_events))
        .routes(routes!(tasks::task_result))
        .routes(routes!(backfills::create_backfill))
        .routes(routes!(compliance::erase_evidence))
        .routes(routes!(compliance::list_holds, compliance::create_hold))
        .routes(routes!(compliance::release_hold))
        .routes(routes!(
            compliance::list_retention,
            compliance::create_retention
        ))
        .routes(routes!(compliance::delete_retention))
        .routes(routes!(mirrors::import_bundle))
        .routes(routes!(mirrors::list_mirrors))
        .routes(routes!(mirrors::mirror_records))
        .routes(routes!(mirrors::mirror_proof))
        .routes(routes!(mirrors::mirror_payload))
        .routes(routes!(admin::whoami))
        .routes(routes!(admin::list_service_accounts))
        .routes(routes!(admin::reload_service_accounts))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
        .routes(routes!(ui::ui_page))
        .routes(routes!(ui::ui_config));
    WILDCARD_ROUTES.iter().fold(router, |r, (route, _)| {
        r.route(route, wildcard_handler(route))
    })
}

/// Routes whose last parameter spans slashes (`{*path}`), which utoipa-axum
/// cannot register: the axum route and the path `docs::ApiDoc` documents
/// it under.
const WILDCARD_ROUTES: &[(&str, &str)] = &[
    ("/tlog/tile/{*path}", "/tlog/tile/{path}"),
    ("/tlog-audit/tile/{*path}", "/tlog-audit/tile/{path}"),
    (
        "/tlog-audit/tile/entries/{*path}",
        "/tlog-audit/tile/entries/{path}",
    ),
    ("/ui/s/{*path}", "/ui/s/{path}"),
];

fn wildcard_handler(route: &str) -> axum::routing::MethodRouter<AppState> {
    match route {
        "/tlog/tile/{*path}" => get(tlog::tile),
        "/tlog-audit/tile/{*path}" => get(tlog::audit_tile),
        "/tlog-audit/tile/entries/{*path}" => get(tlog::audit_entries),
        "/ui/s/{*path}" => get(ui::ui_asset),
        // WILDCARD_ROUTES lists only the routes above (a test calls each).
        _ => get(problem::not_found),
    }
}

/// Every route of the REST router: method and axum route template, with
/// the path the OpenAPI document gives it. For the schema test, which
/// checks them against the document and the permission table.
pub fn routes() -> Vec<(axum::http::Method, String, String)> {
    use axum::http::Method;
    let doc = api_router().split_for_parts().1;
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let route = WILDCARD_ROUTES
            .iter()
            .find(|(_, documented)| documented == path)
            .map_or_else(|| path.clone(), |(route, _)| route.to_string());
        for (method, op) in [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ] {
            if op.is_some() {
                out.push((method, route.clone(), path.clone()));
            }
        }
    }
    out
}

/// The OpenAPI 3.1 document of the API with the default options (public
/// log read on; no public URL), as `openapi.snapshot.json` pins it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_for(true, None)
}

/// The OpenAPI 3.1 document a server with these settings serves at
/// `/api/v1/openapi.json`: which routes need a token follows
/// `public_log_read`; `servers` names `public_url` when it is known.
pub fn openapi_for(public_log_read: bool, public_url: Option<&str>) -> utoipa::openapi::OpenApi {
    let mut doc = api_router().split_for_parts().1;
    docs::complete(&mut doc, public_log_read, public_url);
    doc
}

impl AppState {
    fn new(vault: Vault, opts: ServerOptions) -> AppState {
        let openapi: Arc<str> =
            openapi_for(opts.public_log_read, vault.config().public_url.as_deref())
                .to_pretty_json()
                .unwrap_or_else(|_| "{}".into())
                .into();
        let limiter = opts
            .rate_limit
            .filter(|r| r.per_second > 0.0)
            .map(|r| Arc::new(evault_auth::RateLimiter::new(r.per_second, r.burst)));
        let forwarder = Arc::new(forward::Forwarder::new(opts.cluster_roots.clone()));
        AppState {
            vault,
            opts: Arc::new(opts),
            metrics: metrics::Metrics::new(),
            limiter,
            openapi,
            forwarder,
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
        .fallback(problem::not_found)
        .layer(axum::middleware::from_fn(conn::refuse_transfer_codings))
        .layer(CatchPanicLayer::custom(problem::panic_response))
        .layer(axum::middleware::from_fn(problem::normalize_errors))
        // Inside the guard, so a preflight is authenticated (it needs
        // nothing), rate-limited and audited like any request.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::preflight,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        // Outside the guard, so its refusals (429, 503) of a public read
        // carry CORS headers too and a browser can read them.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::headers,
        ))
        // Outside the guard and CORS: a standby passes the call to the
        // leader, whose own layers answer it whole.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
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

/// Serves `app` (e.g. [`witness_router`]) on `listener` with the
/// connection driver of [`serve`]: `limits` on every connection, plain
/// HTTP/1.1 or HTTPS with `tls`. When `shutdown` completes, stops
/// accepting and returns once the requests in flight have finished;
/// dropping the future before that cuts off every connection still open.
pub async fn serve_router(
    app: Router,
    limits: Limits,
    listener: TcpListener,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = tls
        .as_ref()
        .map(|t| t.load(b"http/1.1").map(tokio_rustls::TlsAcceptor::from))
        .transpose()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let listener = conn::Listener {
        app,
        tcp: listener,
        refuse_with_503: tls.is_none(),
        tls,
    };
    conn::serve(listener, conn::Registry::new(limits), stop_rx).await?;
    Ok(())
}

/// Serves the REST API on `http` and, when given, the gRPC API on `grpc`
/// (HTTP/2, with TLS when `tls` is set), sharing one state: the same
/// authenticator and rate limit apply to both, and `opts.limits` to the
/// connections of both. When `shutdown` completes, stops accepting and
/// returns once the calls in flight have finished; dropping the future
/// before that cuts off every connection still open (the bound of a
/// shutdown is the caller's).
pub async fn serve_all(
    vault: Vault,
    opts: ServerOptions,
    http: TcpListener,
    grpc: Option<TcpListener>,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let registry = conn::Registry::new(opts.limits);
    let state = AppState::new(vault, opts);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let acceptor = |alpn: &[u8]| -> Result<Option<tokio_rustls::TlsAcceptor>, ServeError> {
        tls.as_ref()
            .map(|t| t.load(alpn).map(tokio_rustls::TlsAcceptor::from))
            .transpose()
    };
    let rest = conn::Listener {
        app: rest_router(state.clone()),
        tcp: http,
        tls: acceptor(b"http/1.1")?,
        refuse_with_503: tls.is_none(),
    };
    let rest = conn::serve(rest, registry.clone(), stop_rx.clone());
    match grpc {
        None => rest.await?,
        Some(tcp) => {
            let grpc = conn::Listener {
                app: grpc::router(state),
                tcp,
                tls: acceptor(b"h2")?,
                refuse_with_503: false,
            };
            let grpc = conn::serve(grpc, registry, stop_rx);
            let (a, b) = tokio::join!(rest, grpc);
            a.and(b)?
        }
    }
    Ok(())
}
