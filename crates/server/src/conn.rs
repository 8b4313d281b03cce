//! Accepting and driving connections ourselves (rather than `axum::serve`)
//! so that every limit is ours to set: how long a client may take to send
//! its request head, to send the next piece of a body, or to stay idle
//! between requests; how many connections the process holds; HTTP/2's
//! stream and header limits; and that a shutdown can cut off whoever is
//! still there once its time is up.
//!
//! Connections are capped (`Limits::max_connections`, REST and gRPC
//! together) so descriptors never run out. At the cap, the connection idle
//! longest (no request in flight: a half-sent head, a silent socket, an
//! idle keep-alive) is closed to make room; only if every connection is
//! busy is the newcomer refused (plain REST: a 503 problem with
//! `Retry-After`, then close; TLS and gRPC: closed at once).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower_http::timeout::TimeoutBody;
use tower_service::Service as _;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 flow-control windows. h2 closes a connection (GOAWAY
/// ENHANCE_YOUR_CALM) once the DATA frames it holds unread cost more than
/// half the connection window, each frame under 256 bytes costing 256
/// minus its size. A client that streams small records and reads no
/// results is held back by the server not reading; with hyper's 1 MiB
/// per stream it could get ~5,000 small frames in unread and be killed.
/// A 64 KiB stream window under a 2 MiB connection window (budget 1 MiB)
/// keeps one stream of records from 20 bytes up within budget, so it is
/// slowed by flow control instead. (hyper does not expose h2's budget.)
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;

/// Connection and request limits of both listeners.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A new connection must send its first request head within this
    /// (HTTP/1: every request head; it also bounds a TLS handshake).
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long is cut: 408 if the
    /// response has not started, else the stream or connection ends.
    pub body_idle_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub keep_alive_timeout: Duration,
    /// Most connections held at once (REST and gRPC together).
    pub max_connections: usize,
    /// HTTP/2: most concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2: largest header list accepted, in bytes (HTTP/1 heads are
    /// bound by hyper's read buffer, 400 KiB).
    pub max_header_list_size: u32,
    /// HTTP/2: ping an idle peer this often; a ping not answered within
    /// the same time closes the connection.
    pub h2_keep_alive_interval: Duration,
}

impl Default for Limits {
    /// 10 s for a request head, 30 s between body chunks, 60 s idle, the
    /// connection cap of [`default_max_connections`], 128 streams per
    /// HTTP/2 connection, 64 KiB of headers, pings every 30 s.
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
            max_concurrent_streams: 128,
            max_header_list_size: 64 * 1024,
            h2_keep_alive_interval: Duration::from_secs(30),
        }
    }
}

/// 4,096 connections, or three quarters of the process's descriptor limit
/// if that is less: the rest stays for the database, blobs and logs.
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let usable = usize::try_from(soft / 4 * 3).unwrap_or(usize::MAX);
    usable.clamp(16, 4096)
}

/// One connection's state, as the cap and its own watchdog see it.
struct Conn {
    /// Requests whose response body has not ended.
    in_flight: AtomicUsize,
    /// When `in_flight` last became 0 (ms since `Registry::epoch`).
    idle_since: AtomicU64,
    /// Whether a request was ever received (the first head has a
    /// shorter deadline than a keep-alive wait).
    served: AtomicBool,
    /// Wakes the connection's task to close it (evicted at the cap).
    evict: Notify,
}

/// The open connections of both listeners.
pub(crate) struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    limits: Limits,
}

impl Registry {
    pub fn new(limits: Limits) -> Arc<Registry> {
        Arc::new(Registry {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            limits,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a new connection, evicting the one idle longest at the
    /// cap; `None` if every connection is busy.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= self.limits.max_connections.max(1) {
            let victim = conns
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            if let Some(c) = conns.remove(&victim) {
                c.evict.notify_one();
                tracing::debug!("connection cap reached: closed the connection idle longest");
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            served: AtomicBool::new(false),
            evict: Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// What a listener serves.
pub(crate) struct Listener {
    pub app: Router,
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
    /// Whether a refused connection gets an HTTP/1.1 503 (plain REST).
    pub refuse_with_503: bool,
}

/// Accepts connections until `stop` turns true, then lets each finish its
/// requests in flight (HTTP/2: GOAWAY; HTTP/1: close after the response)
/// and returns when all have ended. Dropping the future cuts off every
/// connection still open.
pub(crate) async fn serve(
    l: Listener,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limits = registry.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_interval);
    let builder = Arc::new(builder);
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = l.tcp.accept() => a,
        };
        let (tcp, addr) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off, go on.
                tracing::warn!("accepting a connection: {e}");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Some((id, conn)) = registry.admit() else {
            refuse(&tcp, l.refuse_with_503);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let task = Task {
            app: l.app.clone(),
            builder: builder.clone(),
            registry: registry.clone(),
            conn,
            id,
            addr,
            stop: stop.clone(),
        };
        match &l.tls {
            None => {
                conns.spawn(task.run(tcp));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                conns.spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => task.run(tls).await,
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake with {addr} failed: {e}");
                            task.registry.remove(task.id);
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake with {addr} timed out");
                            task.registry.remove(task.id);
                        }
                    }
                });
            }
        }
    }
    // Stop accepting; wait for the connections to wind down (the caller
    // bounds this and drops us, which aborts whoever is left).
    drop(l.tcp);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Every connection busy: say so if we can without waiting, and close.
fn refuse(tcp: &TcpStream, with_503: bool) {
    metrics::counter!("evault_connections_refused_total").increment(1);
    if with_503 {
        const BODY: &str = "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\
            \"status\":503,\"detail\":\"too many connections; retry shortly\"}";
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        // A fresh socket's send buffer takes this at once; never block.
        let _ = tcp.try_write(resp.as_bytes());
    }
}

struct Task {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    registry: Arc<Registry>,
    conn: Arc<Conn>,
    id: u64,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
}

impl Task {
    async fn run<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Task {
            app,
            builder,
            registry,
            conn,
            id,
            addr,
            mut stop,
        } = self;
        let limits = registry.limits;
        let svc_conn = conn.clone();
        let svc_registry = registry.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(|b| Body::new(TimeoutBody::new(limits.body_idle_timeout, b)));
            req.extensions_mut().insert(ConnectInfo(addr));
            let guard = InFlight::start(svc_conn.clone(), svc_registry.clone());
            let mut app = app.clone();
            async move {
                let resp = app.call(req).await?;
                Ok::<_, Infallible>(resp.map(|b| {
                    Body::new(Tracked {
                        inner: b,
                        _guard: guard,
                    })
                }))
            }
        });
        let http = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(http);
        let mut stopping = false;
        loop {
            let idle_for = if conn.served.load(Ordering::Acquire) {
                limits.keep_alive_timeout
            } else {
                limits.header_read_timeout
            };
            // Busy: look again later (the deadline then counts from when
            // the last request ended).
            let deadline = if conn.in_flight.load(Ordering::Acquire) > 0 {
                Instant::now() + idle_for
            } else {
                let since = conn.idle_since.load(Ordering::Acquire);
                registry.epoch + Duration::from_millis(since) + idle_for
            };
            tokio::select! {
                r = http.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection from {addr}: {e}");
                    }
                    break;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    http.as_mut().graceful_shutdown();
                }
                _ = conn.evict.notified() => break,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = registry.now_ms();
                    let since = conn.idle_since.load(Ordering::Acquire);
                    if conn.in_flight.load(Ordering::Acquire) == 0
                        && now.saturating_sub(since) >= u64::try_from(idle_for.as_millis()).unwrap_or(u64::MAX)
                    {
                        tracing::debug!("connection from {addr} idle for {idle_for:?}: closed");
                        break;
                    }
                }
            }
        }
        registry.remove(id);
    }
}

/// Counts a request in flight from its head to the end of its response
/// body, so that an idle connection can be told from a busy one.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn start(conn: Arc<Conn>, registry: Arc<Registry>) -> InFlight {
        conn.served.store(true, Ordering::Release);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { conn, registry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.registry.now_ms(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that ends its request's [`InFlight`] when dropped.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Refuses (501) a request whose `Transfer-Encoding` is anything but
/// `chunked`: hyper decodes the chunked framing of `gzip, chunked` and
/// would hand over the compressed bytes as the payload. Runs before any
/// handler reads the body.
pub(crate) async fn refuse_transfer_codings(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let codings: Vec<String> = req
        .headers()
        .get_all(axum::http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    if codings.is_empty() || codings == ["chunked"] {
        return next.run(req).await;
    }
    use axum::response::IntoResponse as _;
    crate::problem::Problem::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        format!(
            "Transfer-Encoding {:?} is not supported; send the body as is or chunked",
            codings.join(", ")
        ),
    )
    .into_response()
}

/// Whether a body error is the idle timeout of [`Limits::body_idle_timeout`].
pub(crate) fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = e.source();
    }
    false
}
