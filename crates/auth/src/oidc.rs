//! Tokens from external OpenID Connect issuers, verified against each
//! issuer's JWKS (RFC 7517) with ring: RS256, ES256 and EdDSA (Ed25519).
//!
//! Keys are fetched lazily on first use and cached by `kid`. An unknown
//! `kid` triggers a refresh (the issuer may have rotated), at most once per
//! `min_refresh_interval` per issuer so that garbage `kid`s cannot make the
//! vault hammer the identity provider. When the JWKS cannot be fetched and
//! nothing is cached the vault fails closed with a 503.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use serde_json::{Map, Value};

use super::claims::{TokenPolicy, check_times};
use super::failure::AuthFailure;
use super::jws::{Jws, parse_compact};
use super::roles::{AuthMethod, Identity, Role};

/// How long a JWKS fetch may take in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document read.
const MAX_JWKS_LEN: u64 = 1024 * 1024;

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

/// A public key from a JWKS.
#[derive(Debug)]
enum JwkKey {
    /// Big-endian modulus and exponent, leading zeros stripped.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed point `0x04 || x || y`.
    P256 { point: Vec<u8> },
    /// The 32-byte public key.
    Ed25519 { x: Vec<u8> },
}

#[derive(Debug)]
struct Jwk {
    key: JwkKey,
    /// The JWK's own `alg`, when it pins one.
    alg: Option<String>,
}

impl Jwk {
    /// Whether this key may verify `alg` signatures: the key type must be
    /// the algorithm's, and a pinned `alg` must agree.
    fn fits(&self, alg: Alg) -> bool {
        let kind = matches!(
            (&self.key, alg),
            (JwkKey::Rsa { .. }, Alg::RS256)
                | (JwkKey::P256 { .. }, Alg::ES256)
                | (JwkKey::Ed25519 { .. }, Alg::EdDSA)
        );
        kind && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            JwkKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            JwkKey::P256 { point } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok(),
            JwkKey::Ed25519 { x } => UnparsedPublicKey::new(&ED25519, x).verify(msg, sig).is_ok(),
        }
    }
}

type KeySet = HashMap<String, Arc<Jwk>>;

/// Base64url as found in JWKS documents: unpadded per RFC 7518, trailing
/// `=` tolerated (the document is configuration we chose to trust).
fn jwk_b64(obj: &Map<String, Value>, field: &str) -> Result<Vec<u8>, String> {
    let text = obj
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {field:?}"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{field:?} is not base64url"))
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let lead = v.iter().take_while(|b| **b == 0).count();
    v.drain(..lead);
    v
}

fn parse_jwk(obj: &Map<String, Value>) -> Result<Jwk, String> {
    let crv = obj.get("crv").and_then(Value::as_str);
    let key = match obj.get("kty").and_then(Value::as_str) {
        Some("RSA") => JwkKey::Rsa {
            n: strip_zeros(jwk_b64(obj, "n")?),
            e: strip_zeros(jwk_b64(obj, "e")?),
        },
        Some("EC") if crv == Some("P-256") => {
            let (x, y) = (jwk_b64(obj, "x")?, jwk_b64(obj, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            JwkKey::P256 { point }
        }
        Some("OKP") if crv == Some("Ed25519") => {
            let x = jwk_b64(obj, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 keys must be 32 bytes".into());
            }
            JwkKey::Ed25519 { x }
        }
        Some(kty) => return Err(format!("unsupported key type {kty:?} / curve {crv:?}")),
        None => return Err("no \"kty\"".into()),
    };
    Ok(Jwk {
        key,
        alg: obj.get("alg").and_then(Value::as_str).map(str::to_string),
    })
}

/// The usable signing keys of a JWKS document. Keys without a `kid`, for
/// encryption (`use` other than `sig`) or of unsupported types are skipped
/// (logged), not fatal: a provider may publish more than we use.
fn parse_jwks(text: &str, issuer: &str) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("JWKS has no \"keys\" array")?;
    let mut out = KeySet::new();
    for k in keys {
        let Some(obj) = k.as_object() else { continue };
        let Some(kid) = obj.get("kid").and_then(Value::as_str) else {
            tracing::debug!(issuer, "JWKS key without kid skipped");
            continue;
        };
        if obj
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        match parse_jwk(obj) {
            Ok(jwk) => {
                if out.contains_key(kid) {
                    tracing::warn!(issuer, kid, "duplicate kid in JWKS; the first one is used");
                } else {
                    out.insert(kid.to_string(), Arc::new(jwk));
                }
            }
            Err(e) => tracing::debug!(issuer, kid, error = %e, "JWKS key skipped"),
        }
    }
    Ok(out)
}

fn fetch_url(url: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(true)
        .max_redirects(3)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("fetching {url}: {e}"))?;
    resp.body_mut()
        .with_config()
        .limit(MAX_JWKS_LEN)
        .read_to_string()
        .map_err(|e| format!("reading {url}: {e}"))
}

async fn fetch_jwks(source: &JwksSource, issuer: &str) -> Result<KeySet, String> {
    let text = match source {
        JwksSource::Url(url) => {
            let url = url.clone();
            tokio::task::spawn_blocking(move || fetch_url(&url))
                .await
                .map_err(|e| format!("JWKS fetch task: {e}"))??
        }
        JwksSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?,
    };
    parse_jwks(&text, issuer)
}

/// When the JWKS was last fetched and how it went.
#[derive(Debug, Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_ok: bool,
}

/// An issuer and its cached keys.
#[derive(Debug)]
struct IssuerState {
    cfg: OidcIssuer,
    /// Read on every request; replaced whole by a successful fetch.
    keys: RwLock<Arc<KeySet>>,
    /// Held across a fetch so concurrent misses wait for one fetch instead
    /// of each starting their own.
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl IssuerState {
    fn cached(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The key named `kid`, refreshing the JWKS if it is unknown and the
    /// last attempt is old enough.
    async fn key(&self, kid: &str) -> Result<Arc<Jwk>, AuthFailure> {
        if let Some(k) = self.cached().get(kid) {
            return Ok(Arc::clone(k));
        }
        let mut state = self.refresh.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.cached().get(kid) {
            return Ok(Arc::clone(k));
        }
        let due = state
            .last_attempt
            .is_none_or(|t| t.elapsed() >= self.cfg.min_refresh_interval);
        if due {
            state.last_attempt = Some(Instant::now());
            match fetch_jwks(&self.cfg.jwks, &self.cfg.issuer).await {
                Ok(keys) => {
                    tracing::info!(issuer = %self.cfg.issuer, keys = keys.len(), "JWKS fetched");
                    state.last_ok = true;
                    *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.cfg.issuer, error = %e, "JWKS fetch failed");
                    state.last_ok = false;
                }
            }
        }
        let keys = self.cached();
        if let Some(k) = keys.get(kid) {
            return Ok(Arc::clone(k));
        }
        if keys.is_empty() && !state.last_ok {
            return Err(AuthFailure::JwksUnavailable {
                issuer: self.cfg.issuer.clone(),
            });
        }
        Err(AuthFailure::UnknownKey { kid: kid.into() })
    }
}

/// Verifies tokens of the configured issuers.
#[derive(Debug, Default)]
pub struct OidcVerifier {
    issuers: Vec<IssuerState>,
}

impl OidcVerifier {
    pub fn new(issuers: Vec<OidcIssuer>) -> Self {
        let mut states: Vec<IssuerState> = Vec::with_capacity(issuers.len());
        for cfg in issuers {
            if states.iter().any(|s| s.cfg.issuer == cfg.issuer) {
                tracing::warn!(issuer = %cfg.issuer, "issuer configured twice; the first one is used");
                continue;
            }
            if let JwksSource::Url(u) = &cfg.jwks
                && !u.starts_with("https://")
            {
                tracing::warn!(issuer = %cfg.issuer, url = %u, "JWKS URL is not https");
            }
            states.push(IssuerState {
                cfg,
                keys: RwLock::new(Arc::new(KeySet::new())),
                refresh: tokio::sync::Mutex::new(RefreshState::default()),
            });
        }
        OidcVerifier { issuers: states }
    }

    /// Whether no issuer is configured (OIDC tokens are then refused).
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The configured issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &OidcIssuer> {
        self.issuers.iter().map(|s| &s.cfg)
    }

    /// Verifies an OIDC token at `now`.
    pub async fn verify(
        &self,
        token: &str,
        policy: &TokenPolicy,
        now: SystemTime,
    ) -> Result<Identity, AuthFailure> {
        let jws = parse_compact(token)?;
        self.verify_jws(&jws, policy, now).await
    }

    /// [`OidcVerifier::verify`] on an already parsed token. Order: alg,
    /// issuer, alg allowed, kid, key, signature, then claims.
    pub(crate) async fn verify_jws(
        &self,
        jws: &Jws<'_>,
        policy: &TokenPolicy,
        now: SystemTime,
    ) -> Result<Identity, AuthFailure> {
        if self.issuers.is_empty() {
            return Err(AuthFailure::OidcNotConfigured);
        }
        let alg_text = jws.alg()?;
        let alg = Alg::parse(alg_text).ok_or_else(|| AuthFailure::UnsupportedAlg {
            alg: alg_text.into(),
        })?;
        jws.check_crit()?;
        let issuer = match jws.claims.get("iss") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => return Err(AuthFailure::MissingIssuer),
        };
        let state = self
            .issuers
            .iter()
            .find(|s| s.cfg.issuer == issuer)
            .ok_or_else(|| AuthFailure::UnknownIssuer {
                issuer: issuer.into(),
            })?;
        let cfg = &state.cfg;
        if !cfg.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgNotAllowed {
                alg: alg.as_str().into(),
                issuer: cfg.issuer.clone(),
            });
        }
        let kid = jws.kid()?;
        let key = state.key(kid).await?;
        if !key.fits(alg) {
            return Err(AuthFailure::KeyAlgMismatch {
                kid: kid.into(),
                alg: alg.as_str().into(),
            });
        }
        if !key.verify(jws.signing_input, &jws.signature) {
            return Err(AuthFailure::BadSignature);
        }
        check_audience(&jws.claims, &cfg.audience)?;
        check_times(&jws.claims, policy, now)?;
        let sub = jws.subject()?;
        let roles = oidc_roles(&jws.claims, &cfg.roles_claim)?;
        Ok(Identity {
            principal: format!("{}#{sub}", cfg.issuer),
            roles,
            key_id: Some(kid.into()),
            method: AuthMethod::Oidc {
                issuer: cfg.issuer.clone(),
            },
        })
    }

    /// Test hook: pretends the last JWKS fetch of `issuer` happened `by`
    /// earlier, instead of sleeping through `min_refresh_interval`.
    #[cfg(test)]
    async fn backdate_refresh(&self, issuer: &str, by: Duration) {
        for s in self.issuers.iter().filter(|s| s.cfg.issuer == issuer) {
            let mut st = s.refresh.lock().await;
            st.last_attempt = st.last_attempt.and_then(|t| t.checked_sub(by));
        }
    }
}

/// `aud` is a string or an array of strings and must include `expected`.
fn check_audience(claims: &Map<String, Value>, expected: &str) -> Result<(), AuthFailure> {
    let ok = match claims.get("aud") {
        Some(Value::String(a)) => a == expected,
        Some(Value::Array(list)) if !list.is_empty() && list.iter().all(Value::is_string) => {
            list.iter().any(|a| a.as_str() == Some(expected))
        }
        _ => return Err(AuthFailure::MissingAudience),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthFailure::WrongAudience {
            expected: expected.into(),
        })
    }
}

/// The evault roles named by the roles claim; other names (an IdP's own
/// groups) are ignored, but at least one evault role must remain.
fn oidc_roles(claims: &Map<String, Value>, claim: &str) -> Result<BTreeSet<Role>, AuthFailure> {
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.get(p))
    });
    let missing = || AuthFailure::RolesClaimMissing {
        claim: claim.into(),
    };
    let list = match value {
        None | Some(Value::Null) => return Err(missing()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(AuthFailure::RolesClaimInvalid {
                claim: claim.into(),
            });
        }
    };
    let mut roles = BTreeSet::new();
    for v in list {
        let Value::String(s) = v else {
            return Err(AuthFailure::RolesClaimInvalid {
                claim: claim.into(),
            });
        };
        if let Ok(r) = s.parse::<Role>() {
            roles.insert(r);
        }
    }
    if roles.is_empty() {
        return Err(AuthFailure::NoKnownRoles {
            claim: claim.into(),
        });
    }
    Ok(roles)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
        RsaKeyPair, RsaPublicKeyComponents,
    };
    use serde_json::json;

    use super::*;

    pub(crate) const ISS: &str = "https://idp.example";
    pub(crate) const AUD: &str = "evault";
    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn b64(b: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    /// A signing key of each algorithm and its public JWK.
    pub(crate) enum TestKey {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    impl TestKey {
        pub(crate) fn rsa() -> TestKey {
            let der = include_bytes!("../tests/fixtures/rsa2048.pk8");
            TestKey::Rsa(RsaKeyPair::from_pkcs8(der).unwrap())
        }

        pub(crate) fn ec() -> TestKey {
            let rng = SystemRandom::new();
            let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            TestKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pk8.as_ref(), &rng)
                    .unwrap(),
            )
        }

        pub(crate) fn ed() -> TestKey {
            let pk8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            TestKey::Ed(Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap())
        }

        pub(crate) fn alg(&self) -> &'static str {
            match self {
                TestKey::Rsa(_) => "RS256",
                TestKey::Ec(_) => "ES256",
                TestKey::Ed(_) => "EdDSA",
            }
        }

        pub(crate) fn jwk(&self, kid: &str) -> Value {
            match self {
                TestKey::Rsa(k) => {
                    let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
                }
                TestKey::Ec(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..65])})
                }
                TestKey::Ed(k) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": b64(k.public_key())})
                }
            }
        }

        fn sign(&self, msg: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                TestKey::Rsa(k) => {
                    let mut sig = vec![0u8; k.public().modulus_len()];
                    k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
                    sig
                }
                TestKey::Ec(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
                TestKey::Ed(k) => k.sign(msg).as_ref().to_vec(),
            }
        }

        /// A token with `alg` overridden if given.
        pub(crate) fn token_alg(&self, alg: &str, kid: &str, claims: &Value) -> String {
            let header = json!({"alg": alg, "kid": kid, "typ": "at+jwt"});
            let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
            let sig = self.sign(input.as_bytes());
            format!("{input}.{}", b64(sig))
        }

        pub(crate) fn token(&self, kid: &str, claims: &Value) -> String {
            self.token_alg(self.alg(), kid, claims)
        }
    }

    /// Good claims, `extra` merged over them (`null` removes one).
    pub(crate) fn claims(extra: Value) -> Value {
        let mut c = json!({
            "iss": ISS, "aud": AUD, "sub": "alice",
            "roles": ["auditor", "idp-admins"],
            "iat": NOW - 10, "exp": NOW + 300,
        });
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(&k);
                } else {
                    c.insert(k, v);
                }
            }
        }
        c
    }

    fn jwks(keys: &[(&TestKey, &str)]) -> String {
        json!({"keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>()}).to_string()
    }

    fn issuer(jwks: JwksSource, algs: &[Alg]) -> OidcIssuer {
        OidcIssuer {
            algorithms: algs.to_vec(),
            ..OidcIssuer::new(ISS, AUD, jwks)
        }
    }

    const ALL: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

    /// A one-thread HTTP/1.1 server answering every request with `body`
    /// and counting requests.
    pub(crate) struct JwksServer {
        pub url: String,
        pub hits: Arc<AtomicUsize>,
        pub body: Arc<Mutex<String>>,
    }

    impl JwksServer {
        pub(crate) fn start(body: String) -> JwksServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let body = Arc::new(Mutex::new(body));
            let (h, b) = (Arc::clone(&hits), Arc::clone(&body));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = b.lock().unwrap().clone();
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            JwksServer { url, hits, body }
        }
    }

    #[tokio::test]
    async fn valid_token_for_each_alg_from_a_jwks_file() {
        let (rsa, ec, ed) = (TestKey::rsa(), TestKey::ec(), TestKey::ed());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks(&[(&rsa, "r1"), (&ec, "e1"), (&ed, "d1")])).unwrap();
        let v = OidcVerifier::new(vec![issuer(JwksSource::File(path), &ALL)]);
        let policy = TokenPolicy::default();
        for (key, kid) in [(&rsa, "r1"), (&ec, "e1"), (&ed, "d1")] {
            let id = v
                .verify(&key.token(kid, &claims(json!({}))), &policy, now())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
            assert_eq!(id.principal, format!("{ISS}#alice"));
            assert_eq!(id.roles, BTreeSet::from([Role::Auditor]));
            assert_eq!(id.key_id.as_deref(), Some(kid));
            assert_eq!(id.method, AuthMethod::Oidc { issuer: ISS.into() });
        }
        // aud as an array, roles under a nested claim.
        let mut nested = issuer(JwksSource::File(dir.path().join("jwks.json")), &ALL);
        nested.roles_claim = "realm_access.roles".into();
        let v2 = OidcVerifier::new(vec![nested]);
        let c = claims(
            json!({"aud": ["other", AUD], "roles": null, "realm_access": {"roles": ["admin"]}}),
        );
        let id = v2
            .verify(&ec.token("e1", &c), &policy, now())
            .await
            .unwrap();
        assert_eq!(id.roles, BTreeSet::from([Role::Admin]));
    }

    #[tokio::test]
    async fn rejections_each_have_their_reason() {
        use AuthFailure as F;
        let (rsa, ec, ed) = (TestKey::rsa(), TestKey::ec(), TestKey::ed());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks(&[(&rsa, "r1"), (&ec, "e1"), (&ed, "d1")])).unwrap();
        let v = OidcVerifier::new(vec![issuer(
            JwksSource::File(path),
            &[Alg::ES256, Alg::EdDSA],
        )]);
        let c = |extra| claims(extra);
        let other_ec = TestKey::ec();
        let rows: Vec<(&str, String, AuthFailure)> = vec![
            (
                "wrong audience",
                ec.token("e1", &c(json!({"aud": "someone-else"}))),
                F::WrongAudience {
                    expected: AUD.into(),
                },
            ),
            (
                "audience array without us",
                ec.token("e1", &c(json!({"aud": ["a", "b"]}))),
                F::WrongAudience {
                    expected: AUD.into(),
                },
            ),
            (
                "missing audience",
                ec.token("e1", &c(json!({"aud": null}))),
                F::MissingAudience,
            ),
            (
                "alg not allowed",
                rsa.token("r1", &c(json!({}))),
                F::AlgNotAllowed {
                    alg: "RS256".into(),
                    issuer: ISS.into(),
                },
            ),
            (
                "unsupported alg",
                ec.token_alg("PS256", "e1", &c(json!({}))),
                F::UnsupportedAlg {
                    alg: "PS256".into(),
                },
            ),
            (
                "alg none",
                ec.token_alg("none", "e1", &c(json!({}))),
                F::UnsupportedAlg { alg: "none".into() },
            ),
            (
                "unknown issuer",
                ec.token("e1", &c(json!({"iss": "https://evil.example"}))),
                F::UnknownIssuer {
                    issuer: "https://evil.example".into(),
                },
            ),
            (
                "missing issuer",
                ec.token("e1", &c(json!({"iss": null}))),
                F::MissingIssuer,
            ),
            (
                "key of another type",
                ed.token_alg("ES256", "d1", &c(json!({}))),
                F::KeyAlgMismatch {
                    kid: "d1".into(),
                    alg: "ES256".into(),
                },
            ),
            (
                "bad signature",
                other_ec.token("e1", &c(json!({}))),
                F::BadSignature,
            ),
            (
                "unknown kid",
                ec.token("nope", &c(json!({}))),
                F::UnknownKey { kid: "nope".into() },
            ),
            (
                "expired",
                ec.token("e1", &c(json!({"iat": NOW - 7200, "exp": NOW - 3600}))),
                F::Expired,
            ),
            (
                "lifetime too long",
                ec.token("e1", &c(json!({"iat": NOW, "exp": NOW + 48 * 3600}))),
                F::LifetimeTooLong {
                    lifetime_secs: 48 * 3600,
                    max_secs: 24 * 3600,
                },
            ),
            (
                "no iat",
                ec.token("e1", &c(json!({"iat": null}))),
                F::MissingTimeClaim { claim: "iat" },
            ),
            (
                "no sub",
                ec.token("e1", &c(json!({"sub": null}))),
                F::MissingSubject,
            ),
            (
                "roles missing",
                ec.token("e1", &c(json!({"roles": null}))),
                F::RolesClaimMissing {
                    claim: "roles".into(),
                },
            ),
            (
                "roles not strings",
                ec.token("e1", &c(json!({"roles": ["admin", 3]}))),
                F::RolesClaimInvalid {
                    claim: "roles".into(),
                },
            ),
            (
                "roles a string",
                ec.token("e1", &c(json!({"roles": "admin"}))),
                F::RolesClaimInvalid {
                    claim: "roles".into(),
                },
            ),
            (
                "no evault role",
                ec.token("e1", &c(json!({"roles": ["idp-admins"]}))),
                F::NoKnownRoles {
                    claim: "roles".into(),
                },
            ),
        ];
        let policy = TokenPolicy::default();
        for (name, token, want) in rows {
            let got = v.verify(&token, &policy, now()).await;
            assert_eq!(got.as_ref().err(), Some(&want), "row {name:?}: {got:?}");
            assert_eq!(want.status(), 401);
        }
        let none = OidcVerifier::new(vec![]);
        assert_eq!(
            none.verify(&ec.token("e1", &c(json!({}))), &policy, now())
                .await,
            Err(F::OidcNotConfigured)
        );
        assert_eq!(
            F::OidcNotConfigured.reason(),
            "OIDC tokens are not accepted: no issuer configured"
        );
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_at_most_once_per_interval() {
        let (k1, k2) = (TestKey::ec(), TestKey::ed());
        let server = JwksServer::start(jwks(&[(&k1, "k1")]));
        let mut cfg = issuer(JwksSource::Url(server.url.clone()), &ALL);
        cfg.min_refresh_interval = Duration::from_secs(3600);
        let v = OidcVerifier::new(vec![cfg]);
        let policy = TokenPolicy::default();
        assert_eq!(server.hits.load(Ordering::SeqCst), 0, "fetch is lazy");

        v.verify(&k1.token("k1", &claims(json!({}))), &policy, now())
            .await
            .unwrap();
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);
        v.verify(&k1.token("k1", &claims(json!({}))), &policy, now())
            .await
            .unwrap();
        assert_eq!(server.hits.load(Ordering::SeqCst), 1, "cached");

        // The issuer rotates in k2; within the interval nothing is fetched.
        *server.body.lock().unwrap() = jwks(&[(&k1, "k1"), (&k2, "k2")]);
        let t2 = k2.token("k2", &claims(json!({})));
        for _ in 0..3 {
            assert_eq!(
                v.verify(&t2, &policy, now()).await,
                Err(AuthFailure::UnknownKey { kid: "k2".into() })
            );
        }
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);

        // Once the interval has passed, concurrent misses share one fetch.
        v.backdate_refresh(ISS, Duration::from_secs(3600)).await;
        let (a, b, c) = tokio::join!(
            v.verify(&t2, &policy, now()),
            v.verify(&t2, &policy, now()),
            v.verify(&t2, &policy, now()),
        );
        for r in [a, b, c] {
            assert_eq!(r.unwrap().key_id.as_deref(), Some("k2"));
        }
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);

        // Another unknown kid right after: no fetch, 401.
        let t3 = k2.token("k3", &claims(json!({})));
        assert_eq!(
            v.verify(&t3, &policy, now()).await,
            Err(AuthFailure::UnknownKey { kid: "k3".into() })
        );
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn jwks_down_without_cached_keys_fails_closed_with_503() {
        // A port nobody listens on.
        let url = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/jwks.json", l.local_addr().unwrap())
        };
        let k = TestKey::ec();
        let v = OidcVerifier::new(vec![issuer(JwksSource::Url(url), &ALL)]);
        let t = k.token("k1", &claims(json!({})));
        let policy = TokenPolicy::default();
        for _ in 0..2 {
            let err = v.verify(&t, &policy, now()).await.unwrap_err();
            assert_eq!(err, AuthFailure::JwksUnavailable { issuer: ISS.into() });
            assert_eq!(err.status(), 503);
        }
        // A missing file behaves the same.
        let v = OidcVerifier::new(vec![issuer(
            JwksSource::File(PathBuf::from("/nonexistent/jwks.json")),
            &ALL,
        )]);
        assert_eq!(
            v.verify(&t, &policy, now()).await.unwrap_err().status(),
            503
        );
    }

    #[tokio::test]
    async fn jwks_down_with_other_keys_cached_is_401_unknown_key() {
        let k = TestKey::ec();
        let server = JwksServer::start(jwks(&[(&k, "k1")]));
        let mut cfg = issuer(JwksSource::Url(server.url.clone()), &ALL);
        cfg.min_refresh_interval = Duration::ZERO;
        let v = OidcVerifier::new(vec![cfg]);
        let policy = TokenPolicy::default();
        v.verify(&k.token("k1", &claims(json!({}))), &policy, now())
            .await
            .unwrap();
        // The server now answers garbage: the refresh fails, k1 stays.
        *server.body.lock().unwrap() = "not json".into();
        assert_eq!(
            v.verify(&k.token("k9", &claims(json!({}))), &policy, now())
                .await,
            Err(AuthFailure::UnknownKey { kid: "k9".into() })
        );
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
        v.verify(&k.token("k1", &claims(json!({}))), &policy, now())
            .await
            .unwrap();
    }

    #[test]
    fn jwks_parsing_skips_what_it_cannot_use() {
        let ed = TestKey::ed();
        let mut enc = ed.jwk("enc");
        enc["use"] = json!("enc");
        let doc = json!({"keys": [
            ed.jwk("d1"),
            enc,
            {"kty": "oct", "kid": "hmac", "k": "AAAA"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "x": b64([1u8; 32])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": b64([1u8; 8])},
        ]});
        let keys = parse_jwks(&doc.to_string(), ISS).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["d1"]);
        assert!(keys["d1"].fits(Alg::EdDSA));
        assert!(!keys["d1"].fits(Alg::ES256));
        assert!(parse_jwks("[]", ISS).is_err());
        assert!(parse_jwks("nope", ISS).is_err());
        assert_eq!("ES256".parse::<Alg>().unwrap(), Alg::ES256);
        assert!("es256".parse::<Alg>().is_err());
    }
}
