//! The `Authorization: Bearer <token>` header (RFC 6750 §2.1).

use super::failure::AuthFailure;

/// The token of an `Authorization` header. No header: `Ok(None)` (the
/// caller decides whether anonymous access is allowed). Otherwise it must
/// be `Bearer <token>` (scheme case-insensitive, RFC 7235) with a token of
/// visible ASCII.
pub fn bearer_token(authorization: Option<&[u8]>) -> Result<Option<&str>, AuthFailure> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthFailure::MalformedAuthorization);
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Err(AuthFailure::EmptyToken);
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(AuthFailure::TokenNotAscii);
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| AuthFailure::TokenNotAscii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(None), Ok(None));
        assert_eq!(
            bearer_token(Some(b"Bearer abc.def.ghi")),
            Ok(Some("abc.def.ghi"))
        );
        assert_eq!(bearer_token(Some(b"bearer   abc ")), Ok(Some("abc")));
        assert_eq!(bearer_token(Some(b"BEARER x")), Ok(Some("x")));
        assert_eq!(
            bearer_token(Some(b"Basic dXNlcjpwYXNz")),
            Err(AuthFailure::MalformedAuthorization)
        );
        assert_eq!(
            bearer_token(Some(b"Bearerabc")),
            Err(AuthFailure::MalformedAuthorization)
        );
        assert_eq!(
            bearer_token(Some(b"")),
            Err(AuthFailure::MalformedAuthorization)
        );
        assert_eq!(bearer_token(Some(b"Bearer")), Err(AuthFailure::EmptyToken));
        assert_eq!(
            bearer_token(Some(b"Bearer   ")),
            Err(AuthFailure::EmptyToken)
        );
        assert_eq!(
            bearer_token(Some(b"Bearer a b")),
            Err(AuthFailure::TokenNotAscii)
        );
        assert_eq!(
            bearer_token(Some(b"Bearer a\x01")),
            Err(AuthFailure::TokenNotAscii)
        );
        assert_eq!(
            bearer_token(Some("Bearer \u{e9}".as_bytes())),
            Err(AuthFailure::TokenNotAscii)
        );
        for f in [
            AuthFailure::MalformedAuthorization,
            AuthFailure::EmptyToken,
            AuthFailure::TokenNotAscii,
        ] {
            assert_eq!(f.status(), 401);
        }
    }
}
