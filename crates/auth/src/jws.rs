//! Compact JWS (RFC 7515): splitting and decoding a token, shared by
//! every token kind, before any signature or claim is checked.
//!
//! Decisions, so that they are made once:
//! - Base64url is strict: unpadded, canonical, URL alphabet only.
//! - `typ` is ignored: `alg`, `kid` and the signature decide, and OIDC
//!   access tokens use `at+jwt` where service tokens use `JWT`.
//! - `crit` is refused: no extension is understood.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::failure::{AuthFailure, TokenPart};

/// Longest token accepted, so a huge header costs nothing to reject.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`, what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
}

impl Jws<'_> {
    /// The header's `alg`.
    pub fn alg(&self) -> Result<&str, AuthFailure> {
        match self.header.get("alg") {
            Some(Value::String(a)) => Ok(a),
            _ => Err(AuthFailure::MissingAlg),
        }
    }

    /// The header's non-empty `kid`.
    pub fn kid(&self) -> Result<&str, AuthFailure> {
        match self.header.get("kid") {
            Some(Value::String(k)) if !k.is_empty() => Ok(k),
            _ => Err(AuthFailure::MissingKid),
        }
    }

    /// Rejects `crit`: no extension is understood (RFC 7515 §4.1.11).
    pub fn check_crit(&self) -> Result<(), AuthFailure> {
        if self.header.contains_key("crit") {
            return Err(AuthFailure::CriticalHeader);
        }
        Ok(())
    }

    /// The non-empty `sub` string.
    pub fn subject(&self) -> Result<&str, AuthFailure> {
        match self.claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(AuthFailure::MissingSubject),
        }
    }
}

/// Splits and decodes a compact JWS. Checks, in order: empty, length,
/// visible ASCII, three parts, base64url of each part, then UTF-8 and
/// JSON object for the header and the payload.
pub(crate) fn parse_compact(token: &str) -> Result<Jws<'_>, AuthFailure> {
    if token.is_empty() {
        return Err(AuthFailure::EmptyToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthFailure::TokenTooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthFailure::TokenNotAscii);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(AuthFailure::NotThreeParts { parts: parts.len() });
    };
    let decode = |text: &str, part| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| AuthFailure::BadBase64 { part })
    };
    let header = decode(h, TokenPart::Header)?;
    let payload = decode(p, TokenPart::Payload)?;
    let signature = decode(s, TokenPart::Signature)?;
    let header = json_object(&header, TokenPart::Header)?;
    let claims = json_object(&payload, TokenPart::Payload)?;
    Ok(Jws {
        header,
        claims,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
    })
}

fn json_object(bytes: &[u8], part: TokenPart) -> Result<Map<String, Value>, AuthFailure> {
    let text = std::str::from_utf8(bytes).map_err(|_| AuthFailure::NotUtf8 { part })?;
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(AuthFailure::NotJsonObject { part }),
    }
}
