//! The C2SP tlog-tiles static API under `/tlog/`: the latest checkpoint
//! and immutable hash tiles and entry bundles, for tile-reading clients
//! and witnesses.

use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use evault_merkle::tiles::parse_tile_path;

use crate::AppState;
use crate::guard::Caller;
use crate::params::PathParam;
use crate::problem::{Problem, ProblemBody};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The latest signed checkpoint (C2SP tlog-checkpoint), never cached.
#[utoipa::path(
    get,
    path = "/tlog/checkpoint",
    tag = "tlog-tiles",
    responses(
        (status = 200, description = "The signed checkpoint note", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No checkpoint signed yet", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn checkpoint(State(st): State<AppState>) -> Result<Response, Problem> {
    let cp = st.vault.evidence_log().latest_checkpoint().await?;
    let mut resp = (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.note,
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// A hash tile or entry bundle (C2SP tlog-tiles).
///
/// `path` is `<L>/<N>[.p/<W>]` (hash tile of level L) or
/// `entries/<N>[.p/<W>]` (entry bundle; entries are the records' leaf
/// data), with `N` in the x-prefixed 3-digit path encoding. Every tile is
/// immutable: a partial tile is served at exactly the width asked for.
#[utoipa::path(
    get,
    path = "/tlog/tile/{path}",
    tag = "tlog-tiles",
    params(("path" = String, Path, description = "Tile path after `tile/`, e.g. `0/x001/234.p/8` or `entries/000`; may contain slashes", pattern = r"^(entries|[0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$")),
    responses(
        (status = 200, description = "Tile contents", content(("application/octet-stream"))),
        (status = 400, description = "Malformed tile path", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The tile does not exist (yet) at that width", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn tile(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(rest): PathParam,
) -> Result<Response, Problem> {
    let full = format!("tile/{rest}");
    let tile = parse_tile_path(&full)
        .map_err(|e| Problem::bad_request(format!("tile path {full:?}: {e}")))?;
    let data = st.vault.evidence_log().tile(&caller.reader(), tile).await?;
    let mut resp = data.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    Ok(resp)
}
