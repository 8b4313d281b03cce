//! Verifying an OIDC token: the issuer, the algorithm it may use, the key
//! from its JWKS, the signature, then audience, times, subject and roles.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::cache::IssuerState;
use super::config::{Alg, JwksSource, OidcIssuer};
use crate::claims::{TokenPolicy, check_times};
use crate::failure::AuthFailure;
use crate::jws::{Jws, parse_compact};
use crate::roles::{AuthMethod, Identity, Role};

/// Verifies tokens of the configured issuers.
#[derive(Debug, Default)]
pub struct OidcVerifier {
    issuers: Vec<IssuerState>,
}

impl OidcVerifier {
    /// A verifier of `issuers`; none fetches its keys before a token needs
    /// them. An issuer listed twice is used once (the first), with a
    /// warning, as is a JWKS URL that is not `https://`.
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
            states.push(IssuerState::new(cfg));
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
    pub(super) async fn backdate_refresh(&self, issuer: &str, by: std::time::Duration) {
        for s in self.issuers.iter().filter(|s| s.cfg.issuer == issuer) {
            s.backdate_refresh(by).await;
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oidc::tests::{ALL, AUD, ISS, NOW, TestKey, claims, issuer, jwks, now};

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
}
