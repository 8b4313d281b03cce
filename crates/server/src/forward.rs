//! Forwarding: on a standby node (see `evault_vault::Role`), every call but
//! the node's own probes and metrics is passed, as it came, to the leader
//! the write lease names, and the leader's answer is passed back. The
//! leader authenticates, rate-limits, audits and sequences the call, so a
//! call through any node is decided in one place, and its answer (a 201
//! after the durable commit, a proof, a refusal) is the leader's.
//!
//! Why forward whole calls rather than queue appends in the database: a
//! payload crosses the network once and is written once; the caller waits
//! one hop, not an insert, a notification and a poll; the leader's
//! backpressure (its queue, a stream's flow control) reaches the caller;
//! and a call retried after the leader died is answered by the next leader
//! from its idempotency key or dedup, like any retry.
//!
//! One hop only: a forwarded call that reaches a node which is not the
//! leader (the lease moved meanwhile) is refused there with 503 and
//! Retry-After, naming the leader, never forwarded again.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use tokio::sync::Notify;

use crate::AppState;
use crate::problem::Problem;

/// Set on every forwarded call: the node that receives it answers it
/// itself (or refuses it), never forwarding it on.
pub(crate) const FORWARDED: &str = "x-evault-forwarded";
/// The caller's address as the forwarding node saw it; the leader records
/// it in the audit event only beside the right [`CLUSTER_SECRET`].
pub(crate) const FORWARDED_CLIENT: &str = "x-evault-forwarded-client";
/// The cluster's shared secret, proving that a call came from a node.
pub(crate) const CLUSTER_SECRET: &str = "x-evault-cluster-secret";

/// How long connecting to the leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the leader may take to start its answer once the whole request
/// reached it (a stopped or cut-off leader would otherwise hold the call
/// until the caller gives up). Generous: a put's answer waits for a group
/// commit.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers of one hop (RFC 9110 §7.6.1), never passed on. `te` is kept for
/// gRPC, where HTTP/2 allows `te: trailers` and gRPC requires it.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The shared secret of a cluster's nodes, from `--cluster-secret-file`:
/// with it a leader trusts the caller's address a standby forwards.
#[derive(Clone)]
pub struct ClusterSecret(Arc<HeaderValue>);

impl ClusterSecret {
    /// At least 16 printable ASCII characters (it travels as a header).
    pub fn new(secret: &str) -> Result<ClusterSecret, String> {
        let s = secret.trim();
        if s.len() < 16 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the cluster secret must be at least 16 printable ASCII characters (no spaces)"
                    .into(),
            );
        }
        let mut v = HeaderValue::from_str(s).map_err(|e| e.to_string())?;
        v.set_sensitive(true);
        Ok(ClusterSecret(Arc::new(v)))
    }

    /// Whether `presented` is this secret, compared in constant time.
    fn matches(&self, presented: &HeaderValue) -> bool {
        use subtle::ConstantTimeEq;
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Whose certificates a standby trusts when the leader advertises an
/// `https://` address: the system's roots, or the cluster's own CA
/// (`--cluster-ca-file`). Either way the certificate must name the host of
/// the advertised address.
#[derive(Clone, Debug, Default)]
pub enum ClusterRoots {
    /// The operating system's trusted roots.
    #[default]
    System,
    /// These certificates only (e.g. the CA that signs the nodes').
    Only(Arc<rustls::RootCertStore>),
}

impl ClusterRoots {
    /// The certificates of the PEM file at `path`: one at least, each one
    /// rustls can use as a trust anchor.
    pub fn from_pem_file(path: &std::path::Path) -> Result<ClusterRoots, String> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("reading certificates from {}: {e}", path.display()))?
        {
            let cert =
                cert.map_err(|e| format!("parsing certificates in {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("a certificate in {}: {e}", path.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("no certificate in {}", path.display()));
        }
        Ok(ClusterRoots::Only(Arc::new(roots)))
    }

    /// The roots as rustls takes them. The system's certificates that
    /// cannot be read or used are skipped with a warning, as
    /// rustls-native-certs advises.
    fn store(&self) -> rustls::RootCertStore {
        match self {
            ClusterRoots::Only(roots) => (**roots).clone(),
            ClusterRoots::System => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!("the system's trusted certificates: {e}");
                }
                let (_, skipped) = roots.add_parsable_certificates(found.certs);
                if skipped > 0 {
                    tracing::warn!("{skipped} of the system's trusted certificates were skipped");
                }
                roots
            }
        }
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The clients a standby forwards with: HTTP/1.1 for REST, HTTP/2 for
/// gRPC, each over TLS to an `https://` address (verified against the
/// [`ClusterRoots`]) or in the clear to an `http://` one. Connections to
/// the leader are pooled.
pub(crate) struct Forwarder {
    roots: ClusterRoots,
    /// The REST and gRPC clients, or why there are none (said in every
    /// refusal to forward); made at the first forwarded call, so that a
    /// node that never forwards never reads the system's roots.
    clients: std::sync::OnceLock<Result<(HttpsClient, HttpsClient), String>>,
}

impl Forwarder {
    pub(crate) fn new(roots: ClusterRoots) -> Forwarder {
        Forwarder {
            roots,
            clients: std::sync::OnceLock::new(),
        }
    }

    fn clients(&self) -> Result<&(HttpsClient, HttpsClient), String> {
        self.clients
            .get_or_init(|| Forwarder::make(&self.roots))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn make(roots: &ClusterRoots) -> Result<(HttpsClient, HttpsClient), String> {
        let mut c = HttpConnector::new();
        c.set_connect_timeout(Some(CONNECT_TIMEOUT));
        c.set_nodelay(true);
        // The TLS layer above takes the https:// addresses.
        c.enforce_http(false);
        let roots = roots.store();
        let tls = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(roots.clone())
                    .with_no_client_auth()
            })
            .map_err(|e| format!("TLS to the leader cannot be set up: {e}"))
        };
        tls()
            .and_then(|rest| Ok((rest, tls()?)))
            .map(|(rest, grpc)| {
                let rest = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(rest)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(c.clone());
                let grpc = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(grpc)
                    .https_or_http()
                    .enable_http2()
                    .wrap_connector(c);
                (
                    Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(30))
                        .build(rest),
                    Client::builder(TokioExecutor::new())
                        .http2_only(true)
                        .build(grpc),
                )
            })
    }
}

/// The caller's address for the audit event: the one a node forwarded, if
/// it proved itself with the cluster's secret; otherwise the peer's.
pub(crate) fn client_address(st: &AppState, req: &Request) -> String {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.to_string());
    let forwarded = req
        .headers()
        .get(FORWARDED_CLIENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.parse::<SocketAddr>().is_ok());
    match (
        forwarded,
        &st.opts.cluster_secret,
        req.headers().get(CLUSTER_SECRET),
    ) {
        (Some(client), Some(secret), Some(presented)) if secret.matches(presented) => {
            client.to_string()
        }
        _ => peer,
    }
}

/// The REST API's forwarding layer (outside the guard: the leader's guard
/// decides and audits a forwarded call).
pub(crate) async fn forward(State(st): State<AppState>, req: Request, next: Next) -> Response {
    forward_as(false, st, req, next).await
}

/// The gRPC API's forwarding layer.
pub(crate) async fn forward_grpc(State(st): State<AppState>, req: Request, next: Next) -> Response {
    forward_as(true, st, req, next).await
}

/// Calls a node answers itself whatever its role: its own health and
/// metrics.
fn local(grpc: bool, path: &str) -> bool {
    if grpc {
        path.starts_with("/grpc.health.v1.Health/")
    } else {
        matches!(path, "/healthz" | "/readyz" | "/metrics")
    }
}

async fn forward_as(grpc: bool, st: AppState, req: Request, next: Next) -> Response {
    let role = st.vault.role();
    let base = role
        .forward_to()
        .and_then(|a| if grpc { a.grpc.clone() } else { a.rest.clone() });
    let Some(base) = base else {
        // The leader (or a standby whose leader advertised nothing: its
        // guard refuses the call, naming the leader).
        return next.run(req).await;
    };
    if local(grpc, req.uri().path()) || req.headers().contains_key(FORWARDED) {
        return next.run(req).await;
    }
    let leader = match &role {
        evault_vault::Role::Standby { holder, .. } => holder.clone(),
        evault_vault::Role::Leader { .. } => String::new(),
    };
    metrics::counter!("evault_forwarded_calls_total", "api" => if grpc { "grpc" } else { "rest" })
        .increment(1);
    match send(&st, grpc, &base, req).await {
        Ok(resp) => resp,
        Err(why) => {
            let why = format!(
                "this vault node is a standby and could not reach the leader, node {leader:?} at \
                 {base}: {why}; retry (a new leader takes over if it is gone)"
            );
            tracing::warn!("{why}");
            if grpc {
                tonic::Status::unavailable(why).into_http::<Body>()
            } else {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, why)
                    .retry_after(1)
                    .into_response()
            }
        }
    }
}

async fn send(st: &AppState, grpc: bool, base: &str, req: Request) -> Result<Response, String> {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{base}{path}")
        .parse::<Uri>()
        .map_err(|e| format!("bad address: {e}"))?;
    parts.version = if grpc {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    strip_hop_by_hop(&mut parts.headers);
    for h in [FORWARDED_CLIENT, CLUSTER_SECRET] {
        parts.headers.remove(h);
    }
    parts
        .headers
        .insert(FORWARDED, HeaderValue::from_static("1"));
    if let (Some(secret), Some(client)) = (&st.opts.cluster_secret, client)
        && let Ok(v) = HeaderValue::from_str(&client)
    {
        parts.headers.insert(CLUSTER_SECRET, (*secret.0).clone());
        parts.headers.insert(FORWARDED_CLIENT, v);
    }
    // This node's own extensions (the peer address, the matched route)
    // mean nothing to the leader.
    parts.extensions = Default::default();
    let sent = Arc::new(Notify::new());
    let body = Body::new(Watched::new(body, sent.clone()));
    let out = Request::from_parts(parts, body);
    let (rest, grpc_client) = st.forwarder.clients()?;
    let answer = if grpc {
        grpc_client.request(out)
    } else {
        rest.request(out)
    };
    let resp = tokio::select! {
        r = answer => r.map_err(|e| {
            // The source says why (refused, reset); hyper's own text is
            // only "client error".
            let mut why = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                why = format!("{why}: {s}");
                src = s.source();
            }
            why
        })?,
        _ = async {
            sent.notified().await;
            tokio::time::sleep(ANSWER_TIMEOUT).await;
        } => {
            return Err(format!("no answer within {ANSWER_TIMEOUT:?} of the request"));
        }
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are of this hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
}

/// A request body that says when it has been sent whole (so the wait for
/// the answer starts then, however long an upload takes).
struct Watched {
    inner: Body,
    sent: Option<Arc<Notify>>,
}

impl Watched {
    fn new(inner: Body, sent: Arc<Notify>) -> Watched {
        use http_body::Body as _;
        // An empty body may never be polled: it is sent already.
        if inner.is_end_stream() {
            sent.notify_one();
            return Watched { inner, sent: None };
        }
        Watched {
            inner,
            sent: Some(sent),
        }
    }
}

impl http_body::Body for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if (matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream())
            && let Some(n) = self.sent.take()
        {
            n.notify_one();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_spaced_secret_is_refused() {
        assert!(ClusterSecret::new("short").is_err());
        assert!(ClusterSecret::new("sixteen chars ok").is_err());
        let s = ClusterSecret::new("  0123456789abcdef\n").unwrap();
        assert!(s.matches(&HeaderValue::from_static("0123456789abcdef")));
        assert!(!s.matches(&HeaderValue::from_static("0123456789abcdeF")));
        assert!(!s.matches(&HeaderValue::from_static("0123456789abcdef0")));
        assert_eq!(format!("{s:?}"), "ClusterSecret(<redacted>)");
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::HOST, HeaderValue::from_static("node-b"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["te", "authorization"]);
    }

    #[test]
    fn probes_and_metrics_stay_local() {
        assert!(local(false, "/readyz"));
        assert!(local(false, "/metrics"));
        assert!(!local(false, "/api/v1/evidence"));
        assert!(local(true, "/grpc.health.v1.Health/Check"));
        assert!(!local(true, "/evault.v1.EvidenceService/Put"));
    }
}
