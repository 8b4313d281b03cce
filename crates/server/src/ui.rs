//! The dashboard at `/ui/`: static assets embedded at build time
//! (`build.rs` over `web/public`), served with a strict Content Security
//! Policy. The page is public code; it holds no data. Everything it shows
//! comes from the API with the user's own token, and the proofs are
//! verified by the browser, not here.
//!
//! - `GET /ui/`: `index.html`, with every `%V%` replaced by the asset
//!   version.
//! - `GET /ui/s/<version>/<file>`: an asset, immutable (cached a year);
//!   another version is 404, so a cached page never mixes two releases.
//! - `GET /ui/config.json`: the version and the OIDC issuers the dashboard
//!   may sign in with.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::params::PathParam;
use crate::problem::{Problem, ProblemBody};

const PROBLEM: &str = crate::problem::PROBLEM_JSON;

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The first 12 hex digits of SHA-256 over every asset's name and bytes:
/// it changes whenever any asset does, so asset URLs can be cached forever.
pub(crate) static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, bytes) in ASSETS {
        // Lengths first, so no two asset sets hash alike.
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let digest = h.finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
});

static INDEX: LazyLock<Option<Vec<u8>>> = LazyLock::new(|| {
    let (_, bytes) = ASSETS.iter().find(|(n, _)| *n == "index.html")?;
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.replace("%V%", &VERSION).into_bytes())
});

/// One OIDC issuer the dashboard offers to sign in with (authorization
/// code flow with PKCE, RFC 7636, as a public client).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DashboardOidc {
    /// The issuer, as in its tokens' `iss`.
    pub issuer: String,
    /// The dashboard's client id at that issuer.
    pub client_id: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where the browser exchanges the code for tokens (allowed by the
    /// page's `connect-src`).
    pub token_endpoint: String,
    /// Scopes asked for, space-separated.
    pub scope: String,
    /// Which token the dashboard sends as its bearer token: `id_token` or
    /// `access_token`.
    pub token: String,
}

/// What the dashboard reads before anything else.
#[derive(Serialize, ToSchema)]
pub struct UiConfig {
    /// The asset version in this binary.
    version: String,
    /// Issuers to offer on the sign-in page, in configuration order.
    oidc: Vec<DashboardOidc>,
}

/// The type of an asset, by its name's extension. `build.rs` embeds any
/// file; one of an unknown kind is served as bytes, never as something a
/// browser would run.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The page's Content Security Policy: only this origin's scripts, styles
/// and images; no inline code, no eval, no framing, no base or form
/// targets; Trusted Types with no policy, so any string reaching an HTML
/// sink (`innerHTML` and the like) throws. `connect-src` adds the OIDC
/// token endpoints the page must call.
pub(crate) fn csp(token_endpoints: &[String]) -> String {
    let mut connect = String::from("'self'");
    for endpoint in token_endpoints {
        if let Some(origin) = origin_of(endpoint) {
            connect.push(' ');
            connect.push_str(&origin);
        }
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; object-src 'none'; form-action 'none'; frame-ancestors 'none'; \
         base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    )
}

/// `scheme://host[:port]` of an http(s) URL whose authority holds only
/// safe characters (it goes into a header), else `None`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| format!("{scheme}://{authority}"))
}

/// Security headers on every `/ui/` reply, errors included.
fn secure(st: &AppState, mut resp: Response, cache: &'static str) -> Response {
    let endpoints: Vec<String> = st
        .opts
        .dashboard_oidc
        .iter()
        .map(|o| o.token_endpoint.clone())
        .collect();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp(&endpoints)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, cache),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

fn not_found(st: &AppState, what: &str) -> Response {
    let resp = Problem::not_found(format!("no dashboard file {what}")).into_response();
    secure(st, resp, "no-cache")
}

/// The dashboard's page.
///
/// An HTML page that loads the versioned assets. It needs no token: it
/// holds no data, and signs in with a token the user pastes or an OIDC
/// issuer.
#[utoipa::path(
    get,
    path = "/ui/",
    tag = "dashboard",
    responses(
        (status = 200, description = "The dashboard page", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, description = "This binary was built without the dashboard", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn ui_page(State(st): State<AppState>) -> Response {
    let Some(page) = INDEX.as_ref() else {
        return not_found(&st, "index.html");
    };
    let mut resp = page.clone().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(&st, resp, "no-cache")
}

/// The dashboard's settings.
///
/// The asset version of this binary and the OIDC issuers its sign-in page
/// offers (configured per issuer as `[oidc.dashboard]`).
#[utoipa::path(
    get,
    path = "/ui/config.json",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's settings", body = UiConfig, content_type = "application/json"))
)]
pub async fn ui_config(State(st): State<AppState>) -> Response {
    let config = UiConfig {
        version: VERSION.clone(),
        oidc: st.opts.dashboard_oidc.clone(),
    };
    let resp = axum::Json(config).into_response();
    secure(&st, resp, "no-cache")
}

/// A dashboard asset: `<version>/<file>`.
///
/// Immutable: a file of another version than this binary's is 404.
#[utoipa::path(
    get,
    path = "/ui/s/{path}",
    tag = "dashboard",
    params(("path" = String, Path, description = "`<version>/<file>`, e.g. `0123456789ab/js/app.js`; may contain slashes")),
    responses(
        (status = 200, description = "The file", content(
            ("text/javascript; charset=utf-8"),
            ("text/css; charset=utf-8"),
            ("image/svg+xml"),
            ("application/octet-stream"),
        )),
        (status = 404, description = "No such file in this version", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn ui_asset(State(st): State<AppState>, PathParam(rest): PathParam) -> Response {
    let Some((version, name)) = rest.split_once('/') else {
        return not_found(&st, &rest);
    };
    // index.html is served at /ui/ only, with its version filled in.
    if version != VERSION.as_str() || name == "index.html" {
        return not_found(&st, &rest);
    }
    let Some((_, bytes)) = ASSETS.iter().find(|(n, _)| *n == name) else {
        return not_found(&st, &rest);
    };
    let mut resp = (StatusCode::OK, *bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    secure(&st, resp, "public, max-age=31536000, immutable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_token_endpoints() {
        assert_eq!(
            origin_of("https://id.example:8443/oauth/token?x=1").as_deref(),
            Some("https://id.example:8443")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9/t").as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("https://a b/"), None);
        assert_eq!(origin_of("https://a;script-src *"), None);
        assert_eq!(origin_of("ftp://x/"), None);
        assert_eq!(origin_of("https:///x"), None);
    }

    #[test]
    fn csp_is_strict() {
        let p = csp(&["https://id.example/token".into(), "bad value".into()]);
        assert!(p.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"));
        assert!(p.contains("connect-src 'self' https://id.example;"));
        for directive in [
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(p.contains(directive), "{directive}");
        }
        assert!(!p.contains("unsafe"));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("icon.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
        assert_eq!(VERSION.len(), 12);
    }
}
