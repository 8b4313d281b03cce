//! Why a request was not authenticated: one variant per reason, so tests,
//! metrics and the audit trail can tell them apart, and one place that
//! decides what a client is told (never the token, never a secret).

use std::fmt;

use super::roles::Role;

/// Longest piece of client-supplied text (a `kid`, an `alg`, a role name)
/// echoed back in a reason; the rest is cut so a reason stays one line.
const ECHO_MAX: usize = 64;

/// `s` cut to at most [`ECHO_MAX`] characters, for echoing client input.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// One of the three parts of a compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPart {
    /// The JOSE header, before the first dot.
    Header,
    /// The claims, between the dots.
    Payload,
    /// The signature, after the second dot.
    Signature,
}

impl TokenPart {
    /// The part's name, as used in failure reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPart::Header => "header",
            TokenPart::Payload => "payload",
            TokenPart::Signature => "signature",
        }
    }
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why authentication failed. Every variant is a 401 except
/// [`AuthFailure::JwksUnavailable`], a 503: when an issuer's keys cannot be
/// fetched the vault fails closed but tells the client to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// The route needs a token and the request has no Authorization header.
    MissingCredentials,
    /// The Authorization header is not `Bearer <token>`.
    MalformedAuthorization,
    /// `Bearer` with nothing after it, or an empty token string.
    EmptyToken,
    /// The token holds bytes other than visible ASCII.
    TokenNotAscii,
    /// The token is longer than any token evault issues or accepts.
    TokenTooLong {
        /// The token's length in bytes.
        len: usize,
        /// [`MAX_TOKEN_LEN`](crate::MAX_TOKEN_LEN).
        max: usize,
    },
    /// Not `header.payload.signature`.
    NotThreeParts {
        /// How many dot-separated parts it has.
        parts: usize,
    },
    /// A part is not strict (unpadded, canonical) base64url.
    BadBase64 {
        /// The part that does not decode.
        part: TokenPart,
    },
    /// The header or payload does not decode to UTF-8.
    NotUtf8 {
        /// The header or the payload.
        part: TokenPart,
    },
    /// The header or payload is not a JSON object.
    NotJsonObject {
        /// The header or the payload.
        part: TokenPart,
    },
    /// The header has no `alg` string.
    MissingAlg,
    /// A service-account token that is not HS256 (`none` included).
    AlgNotHs256 {
        /// The header's `alg`.
        alg: String,
    },
    /// An algorithm evault accepts for no kind of token.
    UnsupportedAlg {
        /// The header's `alg`.
        alg: String,
    },
    /// The header has a `crit` member; no extension is understood, so
    /// RFC 7515 §4.1.11 requires rejecting it.
    CriticalHeader,
    /// The header has no `kid` string.
    MissingKid,
    /// No key with that id (for OIDC: not even after refreshing the JWKS).
    UnknownKey {
        /// The header's `kid`.
        kid: String,
    },
    /// The keystore key's `expires_at` has passed.
    KeyExpired {
        /// The header's `kid`.
        kid: String,
    },
    /// The signature does not verify.
    BadSignature,
    /// No `sub` claim, or not a non-empty string.
    MissingSubject,
    /// A service-account token whose `sub` is not the key's principal.
    SubjectMismatch,
    /// No `roles` claim, or an empty array.
    MissingRoles,
    /// `roles` is not an array of strings.
    InvalidRoles,
    /// `roles` names something that is not an evault role.
    UnknownRole {
        /// The unknown name, as the token has it.
        role: String,
    },
    /// The token claims a role its key does not grant.
    RoleNotGranted {
        /// The first role claimed that the key does not grant.
        role: Role,
    },
    /// `iat` or `exp` is absent.
    MissingTimeClaim {
        /// `iat` or `exp`.
        claim: &'static str,
    },
    /// `iat`, `exp` or `nbf` is not an integer number of seconds.
    NonNumericTimeClaim {
        /// `iat`, `exp` or `nbf`.
        claim: &'static str,
    },
    /// `exp` has passed (no leeway).
    Expired,
    /// `nbf` is later than now plus leeway.
    NotYetValid,
    /// `iat` is later than now plus leeway.
    IssuedInFuture,
    /// `exp` is not after `iat`.
    ExpiresBeforeIssued,
    /// `exp - iat` is longer than the policy allows.
    LifetimeTooLong {
        /// `exp - iat`, in seconds.
        lifetime_secs: i64,
        /// The policy's `max_lifetime`, in seconds.
        max_secs: u64,
    },
    /// An OIDC-style token arrived and no issuer is configured.
    OidcNotConfigured,
    /// No `iss` string in an OIDC token.
    MissingIssuer,
    /// `iss` is not a configured issuer.
    UnknownIssuer {
        /// The token's `iss`.
        issuer: String,
    },
    /// No `aud` claim (or not a string / array of strings).
    MissingAudience,
    /// `aud` does not include the configured audience.
    WrongAudience {
        /// The configured audience.
        expected: String,
    },
    /// The issuer is not configured to use this algorithm.
    AlgNotAllowed {
        /// The header's `alg`.
        alg: String,
        /// The token's issuer.
        issuer: String,
    },
    /// The JWK named by `kid` is not a key for this algorithm.
    KeyAlgMismatch {
        /// The header's `kid`.
        kid: String,
        /// The header's `alg`.
        alg: String,
    },
    /// The issuer's JWKS could not be fetched and no key is cached (503).
    JwksUnavailable {
        /// The issuer whose keys are missing.
        issuer: String,
    },
    /// The configured roles claim is absent.
    RolesClaimMissing {
        /// The configured roles claim.
        claim: String,
    },
    /// The roles claim is not an array of strings.
    RolesClaimInvalid {
        /// The configured roles claim.
        claim: String,
    },
    /// The roles claim names no evault role.
    NoKnownRoles {
        /// The configured roles claim.
        claim: String,
    },
}

impl AuthFailure {
    /// HTTP status: 503 when the failure is ours (JWKS unreachable), 401
    /// for everything about the token.
    pub fn status(&self) -> u16 {
        match self {
            AuthFailure::JwksUnavailable { .. } => 503,
            _ => 401,
        }
    }

    /// A stable slug for metrics, logs and problem+json.
    pub fn code(&self) -> &'static str {
        use AuthFailure::*;
        match self {
            MissingCredentials => "missing_credentials",
            MalformedAuthorization => "malformed_authorization",
            EmptyToken => "empty_token",
            TokenNotAscii => "token_not_ascii",
            TokenTooLong { .. } => "token_too_long",
            NotThreeParts { .. } => "malformed_token",
            BadBase64 { .. } => "bad_base64",
            NotUtf8 { .. } => "not_utf8",
            NotJsonObject { .. } => "not_json_object",
            MissingAlg => "missing_alg",
            AlgNotHs256 { .. } => "alg_not_hs256",
            UnsupportedAlg { .. } => "unsupported_alg",
            CriticalHeader => "crit_header",
            MissingKid => "missing_kid",
            UnknownKey { .. } => "unknown_key",
            KeyExpired { .. } => "key_expired",
            BadSignature => "bad_signature",
            MissingSubject => "missing_sub",
            SubjectMismatch => "subject_mismatch",
            MissingRoles => "missing_roles",
            InvalidRoles => "invalid_roles",
            UnknownRole { .. } => "unknown_role",
            RoleNotGranted { .. } => "role_not_granted",
            MissingTimeClaim { .. } => "missing_time_claim",
            NonNumericTimeClaim { .. } => "non_numeric_time_claim",
            Expired => "token_expired",
            NotYetValid => "token_not_yet_valid",
            IssuedInFuture => "issued_in_future",
            ExpiresBeforeIssued => "exp_before_iat",
            LifetimeTooLong { .. } => "lifetime_too_long",
            OidcNotConfigured => "oidc_not_configured",
            MissingIssuer => "missing_iss",
            UnknownIssuer { .. } => "unknown_issuer",
            MissingAudience => "missing_aud",
            WrongAudience { .. } => "wrong_audience",
            AlgNotAllowed { .. } => "alg_not_allowed",
            KeyAlgMismatch { .. } => "key_alg_mismatch",
            JwksUnavailable { .. } => "jwks_unavailable",
            RolesClaimMissing { .. } => "roles_claim_missing",
            RolesClaimInvalid { .. } => "roles_claim_invalid",
            NoKnownRoles { .. } => "no_known_roles",
        }
    }

    /// A sentence for the client. Client-supplied text is clipped and
    /// quoted; the token itself and key material never appear.
    pub fn reason(&self) -> String {
        use AuthFailure::*;
        let q = |s: &str| format!("{:?}", clip(s));
        match self {
            MissingCredentials => "this request needs a bearer token".into(),
            MalformedAuthorization => "the Authorization header is not \"Bearer <token>\"".into(),
            EmptyToken => "the bearer token is empty".into(),
            TokenNotAscii => "the token contains characters other than visible ASCII".into(),
            TokenTooLong { len, max } => {
                format!("the token is {len} bytes long; at most {max} are accepted")
            }
            NotThreeParts { parts } => format!(
                "the token is not a compact JWS (three dot-separated parts); it has {parts} part{}",
                if *parts == 1 { "" } else { "s" }
            ),
            BadBase64 { part } => format!("the token's {part} is not unpadded base64url"),
            NotUtf8 { part } => format!("the token's {part} is not UTF-8"),
            NotJsonObject { part } => format!("the token's {part} is not a JSON object"),
            MissingAlg => "the token header has no \"alg\" string".into(),
            AlgNotHs256 { alg } => format!(
                "service-account tokens must be signed with HS256; this one says alg {}",
                q(alg)
            ),
            UnsupportedAlg { alg } => format!(
                "algorithm {} is not accepted (HS256 for service accounts; RS256, ES256 or EdDSA for OIDC)",
                q(alg)
            ),
            CriticalHeader => {
                "the token header lists critical extensions (\"crit\"), which are not supported"
                    .into()
            }
            MissingKid => "the token header has no \"kid\" (key id) string".into(),
            UnknownKey { kid } => format!("unknown key id {}", q(kid)),
            KeyExpired { kid } => format!("key {} has expired", q(kid)),
            BadSignature => "the token's signature does not verify".into(),
            MissingSubject => "the token has no \"sub\" claim (a non-empty string)".into(),
            SubjectMismatch => "token subject is not the key's principal".into(),
            MissingRoles => "the token has no \"roles\" claim, or it is empty".into(),
            InvalidRoles => "the token's \"roles\" claim is not an array of strings".into(),
            UnknownRole { role } => format!(
                "the token claims role {}, which does not exist (ingester, auditor, admin)",
                q(role)
            ),
            RoleNotGranted { role } => {
                format!("the token claims role {role}, which its key does not grant")
            }
            MissingTimeClaim { claim } => format!("the token has no {claim:?} claim"),
            NonNumericTimeClaim { claim } => {
                format!("the token's {claim:?} claim is not an integer number of seconds")
            }
            Expired => "the token has expired".into(),
            NotYetValid => "the token is not valid yet (\"nbf\" is in the future)".into(),
            IssuedInFuture => "the token was issued in the future (\"iat\")".into(),
            ExpiresBeforeIssued => "the token expires before it was issued".into(),
            LifetimeTooLong {
                lifetime_secs,
                max_secs,
            } => format!(
                "the token's lifetime (exp - iat) is {lifetime_secs} s; at most {max_secs} s is accepted"
            ),
            OidcNotConfigured => "OIDC tokens are not accepted: no issuer configured".into(),
            MissingIssuer => "the token has no \"iss\" (issuer) string".into(),
            UnknownIssuer { issuer } => format!("issuer {} is not trusted", q(issuer)),
            MissingAudience => "the token has no \"aud\" (audience) claim".into(),
            WrongAudience { expected } => {
                format!("the token's audience does not include {expected:?}")
            }
            AlgNotAllowed { alg, issuer } => format!(
                "algorithm {} is not allowed for issuer {}",
                q(alg),
                q(issuer)
            ),
            KeyAlgMismatch { kid, alg } => {
                format!("key {} is not a key for algorithm {}", q(kid), q(alg))
            }
            JwksUnavailable { issuer } => format!(
                "the signing keys of issuer {} cannot be fetched right now; retry later",
                q(issuer)
            ),
            RolesClaimMissing { claim } => format!("the token has no {claim:?} claim"),
            RolesClaimInvalid { claim } => {
                format!("the token's {claim:?} claim is not an array of strings")
            }
            NoKnownRoles { claim } => {
                format!("the token's {claim:?} claim names no evault role")
            }
        }
    }

    /// The `WWW-Authenticate` value for this failure (RFC 6750 §3).
    pub fn www_authenticate(&self) -> String {
        match self {
            AuthFailure::MissingCredentials => "Bearer realm=\"evault\"".into(),
            AuthFailure::MalformedAuthorization | AuthFailure::EmptyToken => {
                "Bearer realm=\"evault\", error=\"invalid_request\"".into()
            }
            _ => {
                let desc: String = self
                    .reason()
                    .chars()
                    .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
                    .collect();
                format!(
                    "Bearer realm=\"evault\", error=\"invalid_token\", error_description=\"{desc}\""
                )
            }
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for AuthFailure {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn clip_cuts_long_input_on_a_char_boundary() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(100);
        assert_eq!(clip(&long).chars().count(), ECHO_MAX + 3);
    }

    #[test]
    fn only_jwks_unavailable_is_503() {
        assert_eq!(
            AuthFailure::JwksUnavailable { issuer: "i".into() }.status(),
            503
        );
        assert_eq!(AuthFailure::Expired.status(), 401);
        assert!(
            AuthFailure::Expired
                .www_authenticate()
                .contains("error=\"invalid_token\"")
        );
    }

    #[test]
    fn every_reason_is_distinct() {
        use AuthFailure as F;
        let all = [
            F::MissingCredentials,
            F::MalformedAuthorization,
            F::EmptyToken,
            F::TokenNotAscii,
            F::NotThreeParts { parts: 2 },
            F::BadBase64 {
                part: TokenPart::Header,
            },
            F::BadBase64 {
                part: TokenPart::Payload,
            },
            F::BadBase64 {
                part: TokenPart::Signature,
            },
            F::NotUtf8 {
                part: TokenPart::Header,
            },
            F::NotJsonObject {
                part: TokenPart::Payload,
            },
            F::MissingAlg,
            F::AlgNotHs256 { alg: "none".into() },
            F::MissingKid,
            F::UnknownKey { kid: "k".into() },
            F::KeyExpired { kid: "k".into() },
            F::BadSignature,
            F::MissingSubject,
            F::SubjectMismatch,
            F::MissingRoles,
            F::InvalidRoles,
            F::RoleNotGranted { role: Role::Admin },
            F::MissingTimeClaim { claim: "iat" },
            F::MissingTimeClaim { claim: "exp" },
            F::NonNumericTimeClaim { claim: "iat" },
            F::Expired,
            F::NotYetValid,
            F::IssuedInFuture,
            F::LifetimeTooLong {
                lifetime_secs: 2,
                max_secs: 1,
            },
        ];
        let reasons: BTreeSet<String> = all.iter().map(|f| f.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(
            F::AlgNotHs256 { alg: "none".into() }
                .reason()
                .contains("none")
        );
        assert!(
            F::BadBase64 {
                part: TokenPart::Signature
            }
            .reason()
            .contains("signature")
        );
        assert_eq!(
            F::SubjectMismatch.reason(),
            "token subject is not the key's principal"
        );
    }
}
