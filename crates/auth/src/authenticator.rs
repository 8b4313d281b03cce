//! [`Authenticator`]: one entry point for a request's bearer token,
//! whatever its kind; the token's `alg` picks the verifier.

use std::sync::Arc;
use std::time::SystemTime;

use crate::bearer::bearer_token;
use crate::claims::TokenPolicy;
use crate::failure::AuthFailure;
use crate::keystore::Keystore;
use crate::oidc::{Alg, OidcVerifier};
use crate::roles::Identity;
use crate::{jws, service_token};

/// Verifies the bearer token of a request, whatever its kind.
#[derive(Debug)]
pub struct Authenticator {
    keystore: Arc<Keystore>,
    oidc: OidcVerifier,
    policy: TokenPolicy,
}

impl Authenticator {
    /// Service-account tokens are checked against `keystore`, OIDC tokens
    /// by `oidc`, and both kinds' time claims by `policy`.
    pub fn new(keystore: Arc<Keystore>, oidc: OidcVerifier, policy: TokenPolicy) -> Self {
        Authenticator {
            keystore,
            oidc,
            policy,
        }
    }

    /// Authenticates an `Authorization` header value at the current time.
    /// `Ok(None)`: no Authorization header at all (the route decides
    /// whether anonymous access is allowed).
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Option<Identity>, AuthFailure> {
        self.authenticate_at(authorization, SystemTime::now()).await
    }

    /// [`Authenticator::authenticate`] at `now`.
    pub async fn authenticate_at(
        &self,
        authorization: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Option<Identity>, AuthFailure> {
        match bearer_token(authorization)? {
            None => Ok(None),
            Some(token) => self.verify_at(token, now).await.map(Some),
        }
    }

    /// Verifies a bare token at `now`: HS256 goes to the keystore, RS256,
    /// ES256 and EdDSA to the OIDC issuers, anything else is refused.
    pub async fn verify_at(&self, token: &str, now: SystemTime) -> Result<Identity, AuthFailure> {
        let jws = jws::parse_compact(token)?;
        let alg = jws.alg()?;
        if alg == "HS256" {
            let keys = self.keystore.keys();
            return service_token::verify_service_jws(&jws, &keys, &self.policy, now);
        }
        if Alg::parse(alg).is_none() {
            return Err(AuthFailure::UnsupportedAlg { alg: alg.into() });
        }
        self.oidc.verify_jws(&jws, &self.policy, now).await
    }

    /// The service-account keystore.
    pub fn keystore(&self) -> &Arc<Keystore> {
        &self.keystore
    }

    /// The OIDC verifier and its issuers.
    pub fn oidc(&self) -> &OidcVerifier {
        &self.oidc
    }

    /// The time-claim policy.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;
    use crate::keystore::{KeystoreFile, Secret, ServiceAccountKey};
    use crate::oidc::tests::{AUD, ISS, TestKey, claims};
    use crate::oidc::{JwksSource, OidcIssuer};
    use crate::ratelimit::RateLimiter;
    use crate::roles::Role;
    use crate::service_token::{mint_service_token, verify_service_token};

    fn keystore_with(dir: &std::path::Path, keys: Vec<ServiceAccountKey>) -> Arc<Keystore> {
        let path = dir.join("keys.json");
        KeystoreFile { keys }.save(&path).unwrap();
        Keystore::open(&path).unwrap()
    }

    fn key(id: &str, roles: &[Role]) -> ServiceAccountKey {
        ServiceAccountKey {
            key_id: id.into(),
            principal: "ci".into(),
            roles: roles.to_vec(),
            secret: Secret::generate().unwrap(),
            expires_at: None,
        }
    }

    fn header(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[tokio::test]
    async fn dispatches_by_alg() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("ci-1", &[Role::Ingester]);
        let ks = keystore_with(dir.path(), vec![k.clone()]);
        let ec = TestKey::ec();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, json!({"keys": [ec.jwk("e1")]}).to_string()).unwrap();
        let issuer = OidcIssuer {
            algorithms: vec![Alg::ES256],
            ..OidcIssuer::new(ISS, AUD, JwksSource::File(jwks))
        };
        let auth = Authenticator::new(
            Arc::clone(&ks),
            OidcVerifier::new(vec![issuer]),
            TokenPolicy::default(),
        );
        assert_eq!(auth.authenticate(None).await, Ok(None));

        let now = SystemTime::now();
        let sa = mint_service_token(&k, &[Role::Ingester], Duration::from_secs(60), now).unwrap();
        let id = auth
            .authenticate(Some(&header(&sa)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.principal, "ci");
        assert_eq!(id.method.as_str(), "service-account");

        let secs = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let c = claims(json!({"iat": secs, "exp": secs + 60}));
        let id = auth
            .authenticate(Some(&header(&ec.token("e1", &c))))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.principal, format!("{ISS}#alice"));
        assert_eq!(id.roles, BTreeSet::from([Role::Auditor]));

        let none = ec.token_alg("none", "e1", &c);
        assert_eq!(
            auth.authenticate(Some(&header(&none))).await,
            Err(AuthFailure::UnsupportedAlg { alg: "none".into() })
        );
        assert_eq!(
            auth.authenticate(Some(b"Basic x".as_slice())).await,
            Err(AuthFailure::MalformedAuthorization)
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer a.b".as_slice())).await,
            Err(AuthFailure::NotThreeParts { parts: 2 })
        );

        let no_oidc = Authenticator::new(ks, OidcVerifier::default(), TokenPolicy::default());
        let err = no_oidc
            .authenticate(Some(&header(&ec.token("e1", &c))))
            .await
            .unwrap_err();
        assert_eq!(err, AuthFailure::OidcNotConfigured);
        assert_eq!(err.status(), 401);
    }

    /// Handlers run on a multi-threaded runtime: the futures must be Send.
    #[test]
    fn authenticator_is_shareable_and_its_futures_are_send() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Authenticator>();
        send_sync::<Keystore>();
        send_sync::<RateLimiter>();
        let dir = tempfile::tempdir().unwrap();
        let ks = keystore_with(dir.path(), vec![]);
        let auth = Authenticator::new(ks, OidcVerifier::default(), TokenPolicy::default());
        send(&auth.authenticate(None));
    }

    /// Waits (up to `limit`) until `cond` holds.
    async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cond()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_key_stops_verifying_after_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (key("a", &[Role::Ingester]), key("b", &[Role::Ingester]));
        let ks = keystore_with(dir.path(), vec![a.clone(), b.clone()]);
        let watcher = ks.spawn_watcher(Duration::from_millis(200));
        let now = SystemTime::now();
        let ta = mint_service_token(&a, &[Role::Ingester], Duration::from_secs(60), now).unwrap();
        let tb = mint_service_token(&b, &[Role::Ingester], Duration::from_secs(60), now).unwrap();
        let policy = TokenPolicy::default();
        assert!(verify_service_token(&ta, &ks.keys(), &policy, now).is_ok());

        // Revoke "a" by rewriting the file.
        let mut file = KeystoreFile::load(&dir.path().join("keys.json")).unwrap();
        file.keys.retain(|k| k.key_id != "a");
        file.save(&dir.path().join("keys.json")).unwrap();
        let revoked = eventually(Duration::from_secs(1), || {
            verify_service_token(&ta, &ks.keys(), &policy, now)
                == Err(AuthFailure::UnknownKey { kid: "a".into() })
        })
        .await;
        assert!(revoked, "revoked key still verifies after 1 s");
        assert!(verify_service_token(&tb, &ks.keys(), &policy, now).is_ok());

        // A broken file keeps the keys in force.
        std::fs::write(dir.path().join("keys.json"), "{ not json").unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(verify_service_token(&tb, &ks.keys(), &policy, now).is_ok());
        watcher.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sighup_reloads_the_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let ks = keystore_with(dir.path(), vec![key("a", &[Role::Admin])]);
        // Polling effectively off: only SIGHUP can trigger the reload. The
        // handler is installed before spawn_watcher returns, so the signal
        // cannot kill the test process.
        let watcher = ks.spawn_watcher(Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Write the new file behind the watcher's back (the first poll tick
        // already ran) and signal.
        KeystoreFile::default()
            .save(&dir.path().join("keys.json"))
            .unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let reloaded = eventually(Duration::from_secs(5), || ks.keys().is_empty()).await;
        assert!(reloaded, "SIGHUP did not reload the keystore");
        watcher.abort();
    }
}
