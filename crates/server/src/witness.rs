//! The HTTP side of a C2SP tlog-witness (v1.0.0): `evault witness`.
//!
//! [`Witness`] decides; this module only moves bytes. Every reply is plain
//! text, as the specification's clients expect (409 carries
//! `text/x.tlog.size`), not problem+json like the vault's API.
//!
//! - `POST /add-checkpoint`: the body is capped at [`MAX_BODY`] (413 before
//!   any of it is read when `Content-Length` says more); the decision, which
//!   verifies signatures and fsyncs, runs on the blocking pool, at most
//!   `concurrency` at once (beyond that 503 with `Retry-After`).
//! - `GET /{origin hash}/checkpoint`: the latest cosigned checkpoint of the
//!   log whose origin hashes (SHA-256, lowercase hex) to it.
//! - `GET /healthz`, `GET /metrics` (the request metrics of
//!   `evault_http_requests_total` and its histogram, by route template).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest as _, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use evault_witness::{AddError, MAX_BODY, Witness};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

use crate::metrics::Metrics;

/// How many `add-checkpoint` requests `evault witness` decides at once by
/// default (each holds a blocking thread while it verifies and fsyncs).
pub const DEFAULT_CONCURRENCY: usize = 16;

const TEXT: &str = "text/plain; charset=utf-8";

#[derive(Clone)]
struct WitnessState {
    witness: Arc<Witness>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// The witness's HTTP API over `witness`, deciding at most `concurrency`
/// `add-checkpoint` requests at once (0 refuses every one with 503: the
/// monitoring view only). Serve it with [`serve_router`](crate::serve_router).
pub fn witness_router(witness: Arc<Witness>, concurrency: usize) -> Router {
    let state = WitnessState {
        witness,
        permits: Arc::new(Semaphore::new(concurrency.min(Semaphore::MAX_PERMITS))),
        metrics: Metrics::new(),
    };
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(latest))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            crate::conn::refuse_transfer_codings,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The reply to a refused request, as the specification assigns it.
fn refusal(e: &AddError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = text(status, e.content_type(), e.body());
    if let AddError::RateLimited { retry_after } = e {
        // Whole seconds, rounded up, so a client that waits is let in.
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    resp
}

async fn add_checkpoint(State(st): State<WitnessState>, req: Request) -> Response {
    // The body limit refuses only once that much was read; a declared
    // length over it is refused before any is (a client that sent `Expect:
    // 100-continue` then never sends it).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return refusal(&AddError::TooLarge);
    }
    let body = match Bytes::from_request(req, &()).await {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refusal(&AddError::TooLarge);
        }
        Err(rejection) if crate::conn::is_body_timeout(&rejection) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                TEXT,
                "the request body stalled\n".into(),
            );
        }
        Err(rejection) => {
            return text(
                rejection.status(),
                TEXT,
                format!("{}\n", rejection.body_text()),
            );
        }
    };
    // Held by the blocking task itself, so a client that hangs up does not
    // free its slot before the work is done.
    let Ok(permit) = st.permits.clone().try_acquire_owned() else {
        let mut resp = text(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the witness is busy; retry shortly\n".into(),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    let witness = st.witness.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        witness.add_checkpoint(&body)
    })
    .await;
    match decided {
        Ok(Ok(cosignatures)) => text(StatusCode::OK, TEXT, cosignatures),
        Ok(Err(e)) => {
            match &e {
                AddError::Inconsistent(_) => tracing::warn!(
                    "add-checkpoint refused a checkpoint inconsistent with one cosigned \
                     (a fork or a rollback of the log, or a client's error): {e}"
                ),
                AddError::Internal(_) => tracing::error!("add-checkpoint failed: {e}"),
                _ => tracing::debug!("add-checkpoint refused: {e}"),
            }
            refusal(&e)
        }
        Err(join) => {
            tracing::error!("add-checkpoint task failed: {join}");
            refusal(&AddError::Internal(
                "the request could not be decided".into(),
            ))
        }
    }
}

async fn latest(State(st): State<WitnessState>, Path(origin_hash): Path<String>) -> Response {
    let well_formed = origin_hash.len() == 64
        && origin_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return text(
            StatusCode::BAD_REQUEST,
            TEXT,
            "the path must be /<SHA-256 of the origin, 64 lowercase hex digits>/checkpoint\n"
                .into(),
        );
    }
    let witness = st.witness.clone();
    match tokio::task::spawn_blocking(move || witness.latest(&origin_hash)).await {
        Ok(Ok(Some(note))) => text(StatusCode::OK, TEXT, note),
        Ok(Ok(None)) => text(
            StatusCode::NOT_FOUND,
            TEXT,
            "no checkpoint cosigned for this log\n".into(),
        ),
        Ok(Err(e)) => {
            tracing::error!("reading the witness state: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "the witness state cannot be read\n".into(),
            )
        }
        Err(join) => {
            tracing::error!("reading the witness state: {join}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "the witness state cannot be read\n".into(),
            )
        }
    }
}

async fn healthz() -> Response {
    text(StatusCode::OK, TEXT, "ok\n".into())
}

async fn metrics(State(st): State<WitnessState>) -> Response {
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        st.metrics.render_requests(),
    )
}

async fn not_found(req: Request) -> Response {
    text(
        StatusCode::NOT_FOUND,
        TEXT,
        format!("no resource at {}\n", req.uri().path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a witness request handler panicked");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        TEXT,
        "witness error\n".into(),
    )
}

/// Counts and times every request by its route template.
async fn track(State(st): State<WitnessState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = crate::metrics::method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    st.metrics.observe(
        method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
