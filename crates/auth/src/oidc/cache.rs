//! The JWKS cache of one issuer: fetched lazily, refreshed when a token
//! names an unknown `kid` but at most once per `min_refresh_interval`, and
//! failing closed (503) when nothing could ever be fetched.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::config::{JwksSource, OidcIssuer};
use super::jwk::{Jwk, KeySet, parse_jwks};
use crate::failure::AuthFailure;

/// How long a JWKS fetch may take in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document read.
const MAX_JWKS_LEN: u64 = 1024 * 1024;

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
pub(super) struct IssuerState {
    pub(super) cfg: OidcIssuer,
    /// Read on every request; replaced whole by a successful fetch.
    keys: RwLock<Arc<KeySet>>,
    /// Held across a fetch so concurrent misses wait for one fetch instead
    /// of each starting their own.
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl IssuerState {
    /// An issuer whose keys have not been fetched yet.
    pub(super) fn new(cfg: OidcIssuer) -> IssuerState {
        IssuerState {
            cfg,
            keys: RwLock::new(Arc::new(KeySet::new())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    fn cached(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The key named `kid`, refreshing the JWKS if it is unknown and the
    /// last attempt is old enough.
    pub(super) async fn key(&self, kid: &str) -> Result<Arc<Jwk>, AuthFailure> {
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

    /// Test hook: pretends the last fetch happened `by` earlier.
    #[cfg(test)]
    pub(super) async fn backdate_refresh(&self, by: Duration) {
        let mut st = self.refresh.lock().await;
        st.last_attempt = st.last_attempt.and_then(|t| t.checked_sub(by));
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::atomic::Ordering;

    use serde_json::json;

    use super::*;
    use crate::claims::TokenPolicy;
    use crate::oidc::OidcVerifier;
    use crate::oidc::tests::{ALL, ISS, JwksServer, TestKey, claims, issuer, jwks, now};

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
}
