//! What the operator configures: the trusted issuers ([`OidcIssuer`]),
//! where their keys come from ([`JwksSource`]) and the algorithms ([`Alg`]).

use std::path::PathBuf;
use std::time::Duration;

/// Where an issuer's signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S); use `https://` outside tests.
    Url(String),
    /// Read from a local file (air-gapped deployments, tests).
    File(PathBuf),
}

/// An asymmetric JWS algorithm accepted for OIDC tokens.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys or larger.
    RS256,
    /// ECDSA P-256 with SHA-256 (fixed-length `r || s` signatures).
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    /// The JOSE name (`RS256`, `ES256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The `alg` header value, exactly (JOSE names are case-sensitive).
    pub fn parse(s: &str) -> Option<Alg> {
        [Alg::RS256, Alg::ES256, Alg::EdDSA]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Alg, String> {
        Alg::parse(s).ok_or_else(|| format!("unknown algorithm {s:?} (RS256, ES256 or EdDSA)"))
    }
}

/// One trusted issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIssuer {
    /// Exactly the tokens' `iss`.
    pub issuer: String,
    /// Must appear in the tokens' `aud` (a string or an array).
    pub audience: String,
    /// Where the issuer's signing keys come from.
    pub jwks: JwksSource,
    /// Algorithms this issuer signs with; anything else is refused even if
    /// a matching key exists (no algorithm confusion).
    pub algorithms: Vec<Alg>,
    /// Claim holding evault role names (default `roles`). Looked up as a
    /// top-level name first, then as a dotted path (`realm_access.roles`).
    pub roles_claim: String,
    /// Least time between two JWKS fetches for this issuer (default 30 s).
    pub min_refresh_interval: Duration,
}

impl OidcIssuer {
    /// An issuer with the defaults: RS256 only, `roles`, 30 s.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        OidcIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            algorithms: vec![Alg::RS256],
            roles_claim: "roles".into(),
            min_refresh_interval: Duration::from_secs(30),
        }
    }
}
