//! CORS (the Fetch standard's CORS protocol) for the routes anyone may
//! read: the public log data while `public_log_read` is on, and the open
//! routes (health, readiness, the OpenAPI document). A verifier page on
//! another origin can then read checkpoints, tiles and proofs of
//! consistency straight from the vault.
//!
//! Routes that need a token get no CORS headers at all, so no other
//! origin's script can use a browser's credentials or read their replies;
//! the preflight allows no request headers beyond the CORS-safelisted
//! ones, so a cross-origin request cannot carry `Authorization` either.
//! `Access-Control-Allow-Origin: *` is right for data that is public by
//! design, and it never allows credentials.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{Any, CorsLayer};
use tower_layer::Layer as _;
use tower_service::Service as _;

use crate::AppState;
use crate::access;

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

fn layer() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .expose_headers([
            HeaderName::from_static(crate::REQUEST_ID_HEADER),
            header::RETRY_AFTER,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Whether the request reads a route that needs no token: for a
/// preflight, the method it announces (`Access-Control-Request-Method`).
fn is_public_read(st: &AppState, req: &Request) -> bool {
    let method = if req.method() == Method::OPTIONS {
        match req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        {
            Some(m) => m,
            None => return false,
        }
    } else {
        req.method().clone()
    };
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    // The dashboard is same-origin only: no other site may read it.
    access::lookup(&Method::GET, req.uri().path()).is_some_and(|op| {
        !op.name.starts_with("ui.") && !access::needs_token(op, st.opts.public_log_read)
    })
}

async fn with_cors(req: Request, next: Next) -> Response {
    let mut svc = layer().layer(next);
    // Neither the layer nor `next` can fail: their error is `Infallible`.
    let ready = std::future::poll_fn(|cx| svc.poll_ready(cx)).await;
    match ready {
        Ok(()) => match svc.call(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    }
}

/// Answers the CORS preflight of a public read route (behind the guard,
/// so it is audited). Any other `OPTIONS` request goes on to the router,
/// which answers 405 or 404.
pub(crate) async fn preflight(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS && is_public_read(&st, &req) {
        with_cors(req, next).await
    } else {
        next.run(req).await
    }
}

/// Adds the CORS headers to every reply of a public read route, the
/// guard's refusals included.
pub(crate) async fn headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::OPTIONS && is_public_read(&st, &req) {
        with_cors(req, next).await
    } else {
        next.run(req).await
    }
}
