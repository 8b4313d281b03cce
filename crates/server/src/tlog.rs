//! The C2SP tlog-tiles static API of both logs: the evidence log under
//! `/tlog/`, the audit log under `/tlog-audit/`. Each has its latest
//! checkpoint and immutable hash tiles and entry bundles, for tile-reading
//! clients, monitors and witnesses. The audit log's entry bundles (its
//! events, which name principals and operations) are for auditors; the
//! vault refuses them to any other reader.

use std::io::Write as _;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use evault_merkle::tiles::{TilePath, parse_tile_path};
use evault_vault::LogId;

use crate::AppState;
use crate::guard::Caller;
use crate::params::PathParam;
use crate::problem::{Problem, ProblemBody};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const PROBLEM: &str = "application/problem+json";

async fn checkpoint_of(st: &AppState, log: LogId) -> Result<Response, Problem> {
    let cp = st.vault.log(log)?.latest_checkpoint().await?;
    let mut resp = (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.note,
    )
        .into_response();
    // tlog-tiles: the checkpoint is mutable, so no caching beyond a few
    // seconds; `no-cache` makes every use revalidate.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `tile/<rest>` of `log`, as `caller` may read it; entry bundles only
/// with `bundles`.
async fn tile_of(
    st: &AppState,
    (log, bundles): (LogId, bool),
    caller: &Caller,
    full: String,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let tile = parse_tile_path(&full)
        .map_err(|e| Problem::bad_request(format!("tile path {full:?}: {e}")))?;
    let entries = matches!(tile, TilePath::Entries { .. });
    if entries && !bundles {
        // E.g. `/tlog-audit/tile/entr%69es/000`: the router matched the
        // hash tile route; bundles are served by their own route only.
        return Err(Problem::not_found(format!(
            "{full} is not a hash tile; this log's entry bundles are under tile/entries/"
        )));
    }
    let data = st.vault.log(log)?.tile(&caller.reader(), tile).await?;
    // tlog-tiles: entry bundles SHOULD be compressed at the HTTP layer,
    // with gzip unconditionally or with what the client's Accept-Encoding
    // asks for. We negotiate, so a client that cannot decode gzip still
    // gets the bundle. Hash tiles are hashes: they do not compress.
    let gzip = entries && accepts_gzip(headers);
    let body = if gzip { gzip_bytes(&data)? } else { data };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if entries {
        // Caches keep the gzip and the identity reply apart.
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(resp)
}

fn gzip_bytes(data: &[u8]) -> Result<Vec<u8>, Problem> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(data)
        .and_then(|()| enc.finish())
        .map_err(|e| Problem::internal("io", &format!("gzip of an entry bundle: {e}")))
}

/// Whether `Accept-Encoding` (RFC 9110 §12.5.3) accepts gzip: `gzip` (or
/// `x-gzip`) with a non-zero weight, or `*` with one when gzip is not
/// named. No header: identity only.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0_f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(gzip.unwrap_or(0.0_f32).max(q)),
                "*" => any = Some(q),
                _ => {}
            }
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

// --- the evidence log: /tlog/ -------------------------------------------

/// The evidence log's latest signed checkpoint (C2SP tlog-checkpoint).
///
/// The tlog-tiles entry point: a tile client starts here, verifies the
/// note with the log's verifier key (`GET /api/v1/log`) and fetches the
/// tiles the checkpoint's size needs. Mutable, so `Cache-Control: no-cache`.
#[utoipa::path(
    get,
    path = "/tlog/checkpoint",
    tag = "tlog-tiles",
    responses(
        (status = 200, description = "The signed checkpoint note", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No checkpoint signed yet", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn checkpoint(State(st): State<AppState>) -> Result<Response, Problem> {
    checkpoint_of(&st, LogId::Evidence).await
}

/// A hash tile or entry bundle of the evidence log (C2SP tlog-tiles).
///
/// `path` is `<L>/<N>[.p/<W>]` (hash tile of level L) or
/// `entries/<N>[.p/<W>]` (entry bundle; entries are the records' leaf
/// data), with `N` in the x-prefixed 3-digit path encoding. Every tile is
/// immutable: a partial tile is served at exactly the width asked for.
/// Entry bundles are gzip-compressed (`Content-Encoding: gzip`) when
/// `Accept-Encoding` accepts gzip, and sent as they are otherwise.
#[utoipa::path(
    get,
    path = "/tlog/tile/{path}",
    tag = "tlog-tiles",
    params(("path" = String, Path, description = "Tile path after `tile/`, e.g. `0/x001/234.p/8` or `entries/000`; may contain slashes", pattern = r"^(entries|[0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$")),
    responses(
        (status = 200, description = "Tile contents; an entry bundle gzip-encoded if the client accepts it", content(("application/octet-stream"))),
        (status = 400, description = "Malformed tile path", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "The tile does not exist (yet) at that width", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn tile(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(rest): PathParam,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    tile_of(
        &st,
        (LogId::Evidence, true),
        &caller,
        format!("tile/{rest}"),
        &headers,
    )
    .await
}

// --- the audit log: /tlog-audit/ ------------------------------------------

/// The audit log's latest signed checkpoint (C2SP tlog-checkpoint).
///
/// The entry point for monitors and witnesses of the audit trail: verify
/// the note with the audit log's verifier key (`GET /api/v1/audit/log`),
/// then fetch its hash tiles under `/tlog-audit/tile/`. Public like the
/// evidence log's; `Cache-Control: no-cache`.
#[utoipa::path(
    get,
    path = "/tlog-audit/checkpoint",
    tag = "tlog-tiles",
    responses(
        (status = 200, description = "The signed audit checkpoint note", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No audit checkpoint, or the audit trail is disabled", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn audit_checkpoint(State(st): State<AppState>) -> Result<Response, Problem> {
    checkpoint_of(&st, LogId::Audit).await
}

/// A hash tile of the audit log (C2SP tlog-tiles).
///
/// `path` is `<L>/<N>[.p/<W>]`, as for the evidence log. Public: the hashes
/// reveal nothing about the events. The audit log's entry bundles are at
/// `/tlog-audit/tile/entries/…`, for auditors only.
#[utoipa::path(
    get,
    path = "/tlog-audit/tile/{path}",
    tag = "tlog-tiles",
    params(("path" = String, Path, description = "Hash tile path after `tile/`, e.g. `0/x001/234.p/8`; may contain slashes", pattern = r"^([0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$")),
    responses(
        (status = 200, description = "Tile contents", content(("application/octet-stream"))),
        (status = 400, description = "Malformed tile path", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "The tile does not exist (yet) at that width, or the audit trail is disabled", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn audit_tile(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(rest): PathParam,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    tile_of(
        &st,
        (LogId::Audit, false),
        &caller,
        format!("tile/{rest}"),
        &headers,
    )
    .await
}

/// An entry bundle of the audit log (C2SP tlog-tiles; role auditor).
///
/// Up to 256 audit events' leaf data (RFC 8785 canonical JSON,
/// docs/FORMATS.md), each hashing to its entry in the level-0 tile. The
/// events name principals and operations, so the bundles need the auditor
/// role, unlike the hash tiles. gzip-compressed (`Content-Encoding: gzip`)
/// when `Accept-Encoding` accepts gzip, sent as they are otherwise.
#[utoipa::path(
    get,
    path = "/tlog-audit/tile/entries/{path}",
    tag = "tlog-tiles",
    params(("path" = String, Path, description = "Bundle index after `entries/`, e.g. `x001/234` or `000.p/17`; may contain slashes", pattern = r"^(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$")),
    responses(
        (status = 200, description = "The entry bundle; gzip-encoded if the client accepts it", content(("application/octet-stream"))),
        (status = 400, description = "Malformed bundle path", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "The bundle does not exist (yet) at that width, or the audit trail is disabled", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn audit_entries(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(rest): PathParam,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    tile_of(
        &st,
        (LogId::Audit, true),
        &caller,
        format!("tile/entries/{rest}"),
        &headers,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn gzip_is_negotiated_as_rfc_9110_says() {
        assert!(!accepts(&[]));
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["GZip, identity"]));
        assert!(accepts(&["br;q=1.0, gzip;q=0.5"]));
        assert!(accepts(&["identity", "x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0.000, *"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=nonsense"]));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let data = b"\x00\x03abc\x00\x03abc".repeat(100);
        let z = gzip_bytes(&data).unwrap();
        assert!(z.len() < data.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
