//! Strict parsing of what arrives in URLs and headers: query strings,
//! numbers, cursors, timestamps, labels, `Accept`.
//!
//! Everything here rejects rather than guesses: an unknown query parameter,
//! a repeated single-valued one, a number with a sign or a leading `+`, a
//! percent escape that does not decode to UTF-8, all are 400s. Numbers that
//! reach the store are capped at `i64::MAX`, the largest a SQL integer holds.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evault_vault::ingest::parse_label;

use crate::problem::Problem;

/// Largest number accepted for sizes, indexes and cursors.
pub const MAX_NUMBER: u64 = i64::MAX as u64;

/// Most list items one page may hold, and the default page size.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;

/// A decoded query string: `(name, value)` pairs in order.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        QueryParams::parse(parts.uri.query().unwrap_or(""))
    }
}

impl QueryParams {
    /// Parses `application/x-www-form-urlencoded` query text strictly.
    pub fn parse(query: &str) -> Result<QueryParams, Problem> {
        let mut pairs = Vec::new();
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = decode_component(name)?;
            let value = decode_component(value).map_err(|p| {
                Problem::bad_request(format!("query parameter {name:?}: {}", p.detail))
            })?;
            pairs.push((name, value));
        }
        Ok(QueryParams { pairs })
    }

    /// All values of `name`, removed from the set.
    pub fn take_all(&mut self, name: &str) -> Vec<String> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.pairs = rest;
        mine.into_iter().map(|(_, v)| v).collect()
    }

    /// The value of a single-valued parameter; 400 if repeated.
    pub fn take_one(&mut self, name: &str) -> Result<Option<String>, Problem> {
        let mut all = self.take_all(name);
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            _ => Err(Problem::bad_request(format!(
                "query parameter {name:?} given more than once"
            ))),
        }
    }

    /// A single-valued number parameter.
    pub fn take_number(&mut self, name: &str) -> Result<Option<u64>, Problem> {
        self.take_one(name)?
            .map(|v| parse_number(name, &v))
            .transpose()
    }

    /// A single-valued RFC 3339 date-time parameter, in milliseconds. A
    /// time the reply could not write back (after 9999-12-31T23:59:59.999Z,
    /// e.g. a leap second or a negative offset on the last day) is refused.
    pub fn take_time(&mut self, name: &str) -> Result<Option<i64>, Problem> {
        self.take_one(name)?
            .map(|s| {
                parse_rfc3339_ms(&s)
                    .filter(|ms| *ms <= MAX_TIME_MS)
                    .ok_or_else(|| {
                        Problem::bad_request(format!(
                            "{name} must be an RFC 3339 date-time no later than \
                             9999-12-31T23:59:59.999Z, such as 2026-11-23T11:30:00Z"
                        ))
                    })
            })
            .transpose()
    }

    /// The `format` of a proof: `false` for JSON (default), `true` for C2SP
    /// tlog-proof text.
    pub fn take_proof_format(&mut self) -> Result<bool, Problem> {
        match self.take_one("format")?.as_deref() {
            None | Some("json") => Ok(false),
            Some("tlog-proof") => Ok(true),
            Some(other) => Err(Problem::bad_request(format!(
                "format {other:?}: expected json or tlog-proof"
            ))),
        }
    }

    /// The required `from` and `to` of a consistency proof.
    pub fn take_consistency_sizes(mut self) -> Result<(u64, u64), Problem> {
        let from = self.take_number("from")?;
        let to = self.take_number("to")?;
        self.finish()?;
        match (from, to) {
            (Some(from), Some(to)) => Ok((from, to)),
            _ => Err(Problem::bad_request("both from and to are required")),
        }
    }

    /// Fails on any parameter not taken yet.
    pub fn finish(self) -> Result<(), Problem> {
        match self.pairs.first() {
            None => Ok(()),
            Some((name, _)) => Err(Problem::bad_request(format!(
                "unknown query parameter {name:?}"
            ))),
        }
    }
}

/// Decodes one `x-www-form-urlencoded` component: `+` is a space, `%XX` a
/// byte, and the bytes must be UTF-8.
fn decode_component(s: &str) -> Result<String, Problem> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad_escape)?;
                let hi = (hex[0] as char).to_digit(16).ok_or_else(bad_escape)?;
                let lo = (hex[1] as char).to_digit(16).ok_or_else(bad_escape)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Problem::bad_request("query string does not decode to UTF-8 text"))
}

fn bad_escape() -> Problem {
    Problem::bad_request("query string has a malformed percent escape")
}

/// A decimal from 0 to `i64::MAX`: digits only, no sign, no spaces.
pub fn parse_number(name: &str, s: &str) -> Result<u64, Problem> {
    let err = || Problem::bad_request(format!("{name} must be an integer from 0 to {MAX_NUMBER}"));
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    s.parse::<u64>()
        .ok()
        .filter(|&n| n <= MAX_NUMBER)
        .ok_or_else(err)
}

/// The page size: 1 to 1000, default 100.
pub fn parse_limit(q: &mut QueryParams) -> Result<u32, Problem> {
    let err = || Problem::bad_request(format!("limit must be an integer from 1 to {MAX_LIMIT}"));
    match q.take_one("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => parse_number("limit", &v)
            .ok()
            .filter(|n| (1..=u64::from(MAX_LIMIT)).contains(n))
            .map(|n| n as u32)
            .ok_or_else(err),
    }
}

/// What a cursor points into; a cursor of one list is rejected by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorKind {
    Evidence,
    Checkpoints,
    Audit,
}

impl CursorKind {
    fn tag(self) -> u8 {
        match self {
            CursorKind::Evidence => b'e',
            CursorKind::Checkpoints => b'c',
            CursorKind::Audit => b'a',
        }
    }
}

/// An opaque cursor: base64url (no padding) of a kind tag and a big-endian
/// u64 position.
pub fn encode_cursor(kind: CursorKind, position: u64) -> String {
    let mut raw = [0u8; 9];
    raw[0] = kind.tag();
    raw[1..].copy_from_slice(&position.to_be_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(kind: CursorKind, cursor: &str) -> Result<u64, Problem> {
    let err = || Problem::bad_request("cursor is not one this list handed out");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| err())?;
    if raw.len() != 9 || raw[0] != kind.tag() {
        return Err(err());
    }
    let mut be = [0u8; 8];
    be.copy_from_slice(&raw[1..]);
    Some(u64::from_be_bytes(be))
        .filter(|&n| n <= MAX_NUMBER)
        .ok_or_else(err)
}

/// Parses RFC 3339 date-time (`2026-11-23T11:30:00.123Z`, offsets allowed)
/// into milliseconds since the Unix epoch; sub-millisecond digits are cut.
/// The same grammar as the keystore's times (`evault_auth`).
pub use evault_auth::parse_rfc3339_ms;

/// 9999-12-31T23:59:59.999Z: the last time RFC 3339 (and [`format_ms`])
/// can write.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// RFC 3339 with milliseconds, UTC, as the vault writes `ingested_at`.
pub fn format_ms(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.clamp(0, MAX_TIME_MS) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Adds a `key=value` (or `key:value`) label, refusing a key given twice.
pub fn add_label(
    labels: &mut BTreeMap<String, String>,
    text: &str,
    source: &str,
) -> Result<(), Problem> {
    let (k, v) = parse_label(text).map_err(|e| Problem::bad_request(format!("{source}: {e}")))?;
    if labels.contains_key(&k) {
        return Err(Problem::bad_request(format!(
            "{source}: label {k:?} given more than once"
        )));
    }
    labels.insert(k, v);
    Ok(())
}

/// Header value as UTF-8 text (header bytes beyond ASCII are allowed, as
/// long as they are UTF-8).
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Problem> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::bad_request(format!(
            "header {name} given more than once"
        )));
    }
    std::str::from_utf8(first.as_bytes())
        .map(|s| Some(s.trim()))
        .map_err(|_| Problem::bad_request(format!("header {name} is not UTF-8 text")))
}

/// Whether the client prefers `application/json` over `text/plain`, by
/// the q-value of the most specific `Accept` range matching each (RFC 9110
/// §12.5.1); ties and a missing header choose text.
pub fn prefers_json(headers: &HeaderMap) -> bool {
    // (specificity, q) of the best-matching range, per type.
    let mut json = (0u8, 0.0f32);
    let mut text = (0u8, 0.0f32);
    for value in headers.get_all(axum::http::header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| v.trim().parse::<f32>().ok())?
                })
                .next()
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            let (for_json, for_text) = match media.as_str() {
                "application/json" => (3, 0),
                "text/plain" => (0, 3),
                "application/*" => (2, 0),
                "text/*" => (0, 2),
                "*/*" => (1, 1),
                _ => (0, 0),
            };
            if for_json > json.0 {
                json = (for_json, q);
            }
            if for_text > text.0 {
                text = (for_text, q);
            }
        }
    }
    json.1 > text.1
}

/// A path parameter with a problem+json rejection.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(s)) => Ok(PathParam(s)),
            Err(e) => Err(Problem::bad_request(e.body_text())),
        }
    }
}

/// Parses a JSON request body of at most `max` bytes into `T`: 415 when the
/// `Content-Type` is not `application/json` (`hint` shows the expected
/// shape), 413 when it is larger, 400 (naming `what`) when it does not parse.
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    max: usize,
    what: &str,
    hint: &str,
) -> Result<T, Problem> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be application/json{hint}"),
        ));
    }
    if body.len() > max {
        return Err(Problem::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| Problem::bad_request(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let mut q = QueryParams::parse("label=a%3Db&label=c:d+e&&limit=5&x").unwrap();
        assert_eq!(q.take_all("label"), vec!["a=b", "c:d e"]);
        assert_eq!(q.take_number("limit").unwrap(), Some(5));
        assert!(q.finish().is_err(), "x is unknown");
        assert!(QueryParams::parse("a=%FF").is_err());
        assert!(QueryParams::parse("a=%4").is_err());
        assert!(QueryParams::parse("a=%G0").is_err());
        assert_eq!(
            QueryParams::parse("a=%C3%A9")
                .unwrap()
                .take_one("a")
                .unwrap()
                .unwrap(),
            "é"
        );
        let mut q = QueryParams::parse("limit=1&limit=2").unwrap();
        assert!(q.take_one("limit").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("n", "0").unwrap(), 0);
        assert_eq!(
            parse_number("n", "9223372036854775807").unwrap(),
            MAX_NUMBER
        );
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "9223372036854775808",
            "99999999999999999999",
            "x",
        ] {
            assert!(parse_number("n", bad).is_err(), "{bad:?}");
        }
        let limit = |s: &str| parse_limit(&mut QueryParams::parse(s).unwrap());
        assert_eq!(limit("").unwrap(), 100);
        assert_eq!(limit("limit=1000").unwrap(), 1000);
        assert!(limit("limit=0").is_err());
        assert!(limit("limit=1001").is_err());
    }

    #[test]
    fn cursors() {
        let c = encode_cursor(CursorKind::Evidence, 42);
        assert_eq!(decode_cursor(CursorKind::Evidence, &c).unwrap(), 42);
        assert!(decode_cursor(CursorKind::Checkpoints, &c).is_err());
        assert!(decode_cursor(CursorKind::Evidence, "zz").is_err());
        assert!(decode_cursor(CursorKind::Evidence, "").is_err());
        let huge = encode_cursor(CursorKind::Evidence, u64::MAX);
        assert!(decode_cursor(CursorKind::Evidence, &huge).is_err());
    }

    #[test]
    fn accept_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(axum::http::header::ACCEPT, v.parse().unwrap());
            prefers_json(&m)
        };
        assert!(!prefers_json(&HeaderMap::new()));
        assert!(h("application/json"));
        assert!(!h("*/*"));
        assert!(!h("text/plain"));
        assert!(h("application/json, text/plain;q=0.5"));
        assert!(!h("application/json;q=0.4, text/plain"));
        assert!(h("application/*"));
        assert!(!h("text/*, application/json;q=0"));
    }
}
