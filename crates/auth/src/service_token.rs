//! HS256 service-account tokens: verification against the keystore's
//! keys, and minting (what `evault token mint` prints).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde_json::{Map, Value, json};

use super::claims::{TokenPolicy, check_times};
use super::failure::AuthFailure;
use super::jws::{Jws, parse_compact};
use super::keystore::{Keys, ServiceAccountKey};
use super::roles::{AuthMethod, Identity, Role};

/// The `roles` claim of a service-account token: a non-empty array of
/// evault role names.
fn service_roles(claims: &Map<String, Value>) -> Result<BTreeSet<Role>, AuthFailure> {
    let items = match claims.get("roles") {
        None | Some(Value::Null) => return Err(AuthFailure::MissingRoles),
        Some(Value::Array(a)) if a.is_empty() => return Err(AuthFailure::MissingRoles),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(AuthFailure::InvalidRoles),
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => s
                .parse::<Role>()
                .map_err(|_| AuthFailure::UnknownRole { role: s.clone() }),
            _ => Err(AuthFailure::InvalidRoles),
        })
        .collect()
}

/// Verifies an HS256 service-account token against `keys` at `now`.
pub fn verify_service_token(
    token: &str,
    keys: &Keys,
    policy: &TokenPolicy,
    now: SystemTime,
) -> Result<Identity, AuthFailure> {
    verify_service_jws(&parse_compact(token)?, keys, policy, now)
}

/// [`verify_service_token`] on an already parsed token.
pub(crate) fn verify_service_jws(
    jws: &Jws<'_>,
    keys: &Keys,
    policy: &TokenPolicy,
    now: SystemTime,
) -> Result<Identity, AuthFailure> {
    let alg = jws.alg()?;
    if alg != "HS256" {
        return Err(AuthFailure::AlgNotHs256 { alg: alg.into() });
    }
    jws.check_crit()?;
    let kid = jws.kid()?;
    let key = keys
        .get(kid)
        .ok_or_else(|| AuthFailure::UnknownKey { kid: kid.into() })?;
    if key.is_expired(now) {
        return Err(AuthFailure::KeyExpired { kid: kid.into() });
    }
    // ring compares in constant time.
    let hkey = hmac::Key::new(hmac::HMAC_SHA256, key.secret.expose());
    hmac::verify(&hkey, jws.signing_input, &jws.signature)
        .map_err(|_| AuthFailure::BadSignature)?;
    let sub = jws.subject()?;
    if sub != key.principal {
        return Err(AuthFailure::SubjectMismatch);
    }
    let roles = service_roles(&jws.claims)?;
    if let Some(role) = roles.iter().find(|r| !key.grants(**r)) {
        return Err(AuthFailure::RoleNotGranted { role: *role });
    }
    check_times(&jws.claims, policy, now)?;
    Ok(Identity {
        principal: key.principal.clone(),
        roles,
        key_id: Some(key.key_id.clone()),
        method: AuthMethod::ServiceAccount,
    })
}

/// Signs `header.payload` with HS256 and returns the compact token.
fn sign_hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Mints a token for `key` carrying `roles`, valid from `now` for `ttl`
/// (whole seconds). Refuses roles the key does not grant, an empty role
/// list, a zero ttl and an expired key: a token the server would reject
/// is better refused here with a clear message. Each token gets a fresh
/// `jti` so the audit trail can tell two tokens apart.
pub fn mint_service_token(
    key: &ServiceAccountKey,
    roles: &[Role],
    ttl: Duration,
    now: SystemTime,
) -> Result<String, String> {
    if ttl.as_secs() == 0 {
        return Err("the token lifetime must be at least one second".into());
    }
    if roles.is_empty() {
        return Err("a token needs at least one role".into());
    }
    if let Some(r) = roles.iter().find(|r| !key.grants(**r)) {
        return Err(format!(
            "key {:?} does not grant role {r} (it grants {})",
            key.key_id,
            key.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if key.is_expired(now) {
        return Err(format!("key {:?} has expired", key.key_id));
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970".to_string())?
        .as_secs();
    let exp = iat
        .checked_add(ttl.as_secs())
        .ok_or_else(|| "the token lifetime is too long".to_string())?;
    let roles: BTreeSet<Role> = roles.iter().copied().collect();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.key_id});
    let claims = json!({
        "sub": key.principal,
        "roles": roles,
        "iat": iat,
        "exp": exp,
        "jti": uuid::Uuid::now_v7().to_string(),
    });
    Ok(sign_hs256(key.secret.expose(), &header, &claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::TokenPart;
    use crate::jws::MAX_TOKEN_LEN;
    use crate::keystore::tests::test_key;

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token from raw header and payload text, signed with HS256.
    fn signed(secret: &[u8], header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn keys() -> Keys {
        let mut expired = test_key("old", "ci", &[Role::Ingester]);
        expired.expires_at = Some(now() - Duration::from_secs(1));
        Keys::new([
            test_key("ci-1", "ci", &[Role::Ingester, Role::Auditor]),
            expired,
        ])
    }

    fn secret() -> Vec<u8> {
        keys().get("ci-1").unwrap().secret.expose().to_vec()
    }

    const HDR: &str = r#"{"alg":"HS256","kid":"ci-1"}"#;

    /// Claims with `iat`/`exp` around NOW, `extra` merged over them
    /// (`null` removes a claim).
    fn claims(extra: Value) -> String {
        let mut c = json!({"sub": "ci", "roles": ["ingester"], "iat": NOW - 10, "exp": NOW + 600});
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(&k);
                } else {
                    c.insert(k, v);
                }
            }
        }
        c.to_string()
    }

    fn tok(header: &str, extra: Value) -> String {
        signed(&secret(), header, &claims(extra))
    }

    fn ok_token() -> String {
        tok(HDR, json!({}))
    }

    #[test]
    fn rejects_each_malformed_token_with_its_own_reason() {
        use AuthFailure as F;
        let good = ok_token();
        let (gh, gp, gs) = {
            let v: Vec<&str> = good.split('.').collect();
            (v[0].to_string(), v[1].to_string(), v[2].to_string())
        };
        let leeway = 60;
        let max = 24 * 3600;
        let rows: Vec<(&str, String, AuthFailure)> = vec![
            ("empty", String::new(), F::EmptyToken),
            (
                "too long",
                "a".repeat(MAX_TOKEN_LEN + 1),
                F::TokenTooLong {
                    len: MAX_TOKEN_LEN + 1,
                    max: MAX_TOKEN_LEN,
                },
            ),
            (
                "not ascii",
                format!("{gh}.{gp}.{gs}\u{e9}"),
                F::TokenNotAscii,
            ),
            ("space inside", format!("{gh}. {gp}.{gs}"), F::TokenNotAscii),
            (
                "two parts",
                format!("{gh}.{gp}"),
                F::NotThreeParts { parts: 2 },
            ),
            (
                "four parts",
                format!("{gh}.{gp}.{gs}.x"),
                F::NotThreeParts { parts: 4 },
            ),
            (
                "header padded",
                format!("{}=.{gp}.{gs}", b64("{\"a\":1}")),
                F::BadBase64 {
                    part: TokenPart::Header,
                },
            ),
            (
                "payload std alphabet",
                format!("{gh}.{}+.{gs}", &gp[..gp.len() - 1]),
                F::BadBase64 {
                    part: TokenPart::Payload,
                },
            ),
            (
                "signature bad char",
                format!("{gh}.{gp}.{}*", &gs[..gs.len() - 1]),
                F::BadBase64 {
                    part: TokenPart::Signature,
                },
            ),
            (
                "header not utf8",
                format!("{}.{gp}.{gs}", b64([0xff, 0xfe])),
                F::NotUtf8 {
                    part: TokenPart::Header,
                },
            ),
            (
                "payload not utf8",
                format!("{gh}.{}.{gs}", b64([0xc3, 0x28])),
                F::NotUtf8 {
                    part: TokenPart::Payload,
                },
            ),
            (
                "header array",
                format!("{}.{gp}.{gs}", b64("[1]")),
                F::NotJsonObject {
                    part: TokenPart::Header,
                },
            ),
            (
                "payload number",
                format!("{gh}.{}.{gs}", b64("42")),
                F::NotJsonObject {
                    part: TokenPart::Payload,
                },
            ),
            (
                "payload not json",
                format!("{gh}.{}.{gs}", b64("{sub")),
                F::NotJsonObject {
                    part: TokenPart::Payload,
                },
            ),
            (
                "alg none",
                format!("{}.{gp}.", b64(r#"{"alg":"none","kid":"ci-1"}"#)),
                F::AlgNotHs256 { alg: "none".into() },
            ),
            (
                "alg RS256",
                tok(r#"{"alg":"RS256","kid":"ci-1"}"#, json!({})),
                F::AlgNotHs256 {
                    alg: "RS256".into(),
                },
            ),
            (
                "alg lowercase",
                tok(r#"{"alg":"hs256","kid":"ci-1"}"#, json!({})),
                F::AlgNotHs256 {
                    alg: "hs256".into(),
                },
            ),
            ("no alg", tok(r#"{"kid":"ci-1"}"#, json!({})), F::MissingAlg),
            (
                "crit",
                tok(r#"{"alg":"HS256","kid":"ci-1","crit":["b64"]}"#, json!({})),
                F::CriticalHeader,
            ),
            (
                "no kid",
                tok(r#"{"alg":"HS256"}"#, json!({})),
                F::MissingKid,
            ),
            (
                "empty kid",
                tok(r#"{"alg":"HS256","kid":""}"#, json!({})),
                F::MissingKid,
            ),
            (
                "unknown kid",
                tok(r#"{"alg":"HS256","kid":"nope"}"#, json!({})),
                F::UnknownKey { kid: "nope".into() },
            ),
            (
                "expired key",
                tok(r#"{"alg":"HS256","kid":"old"}"#, json!({})),
                F::KeyExpired { kid: "old".into() },
            ),
            (
                "wrong secret",
                signed(&[9u8; 32], HDR, &claims(json!({}))),
                F::BadSignature,
            ),
            ("empty signature", format!("{gh}.{gp}."), F::BadSignature),
            (
                "payload swapped",
                format!("{gh}.{}.{gs}", b64(claims(json!({"roles": ["auditor"]})))),
                F::BadSignature,
            ),
            ("no sub", tok(HDR, json!({"sub": null})), F::MissingSubject),
            (
                "sub not string",
                tok(HDR, json!({"sub": 7})),
                F::MissingSubject,
            ),
            (
                "sub other",
                tok(HDR, json!({"sub": "someone-else"})),
                F::SubjectMismatch,
            ),
            (
                "no roles",
                tok(HDR, json!({"roles": null})),
                F::MissingRoles,
            ),
            (
                "empty roles",
                tok(HDR, json!({"roles": []})),
                F::MissingRoles,
            ),
            (
                "roles string",
                tok(HDR, json!({"roles": "ingester"})),
                F::InvalidRoles,
            ),
            (
                "roles numbers",
                tok(HDR, json!({"roles": [1]})),
                F::InvalidRoles,
            ),
            (
                "unknown role",
                tok(HDR, json!({"roles": ["ingester", "root"]})),
                F::UnknownRole {
                    role: "root".into(),
                },
            ),
            (
                "role not granted",
                tok(HDR, json!({"roles": ["ingester", "admin"]})),
                F::RoleNotGranted { role: Role::Admin },
            ),
            (
                "no iat",
                tok(HDR, json!({"iat": null})),
                F::MissingTimeClaim { claim: "iat" },
            ),
            (
                "no exp",
                tok(HDR, json!({"exp": null})),
                F::MissingTimeClaim { claim: "exp" },
            ),
            (
                "iat string",
                tok(HDR, json!({"iat": "1800000000"})),
                F::NonNumericTimeClaim { claim: "iat" },
            ),
            (
                "exp fraction",
                tok(HDR, json!({"exp": (NOW as f64) + 0.5})),
                F::NonNumericTimeClaim { claim: "exp" },
            ),
            (
                "nbf bool",
                tok(HDR, json!({"nbf": true})),
                F::NonNumericTimeClaim { claim: "nbf" },
            ),
            (
                "expired at exp exactly (no leeway on exp)",
                tok(HDR, json!({"iat": NOW - 600, "exp": NOW})),
                F::Expired,
            ),
            (
                "expired one second ago, well inside the leeway",
                tok(HDR, json!({"iat": NOW - 600, "exp": NOW - 1})),
                F::Expired,
            ),
            (
                "expired long ago",
                tok(HDR, json!({"iat": NOW - 7200, "exp": NOW - 3600})),
                F::Expired,
            ),
            (
                "nbf in the future",
                tok(HDR, json!({"nbf": NOW + leeway + 1})),
                F::NotYetValid,
            ),
            (
                "iat in the future",
                tok(HDR, json!({"iat": NOW + leeway + 1, "exp": NOW + 3600})),
                F::IssuedInFuture,
            ),
            (
                "exp equals iat",
                tok(HDR, json!({"exp": NOW - 10})),
                F::ExpiresBeforeIssued,
            ),
            (
                "lifetime too long",
                tok(HDR, json!({"iat": NOW, "exp": NOW + max + 1})),
                F::LifetimeTooLong {
                    lifetime_secs: max as i64 + 1,
                    max_secs: max,
                },
            ),
        ];
        let keys = keys();
        let policy = TokenPolicy::default();
        let mut codes = BTreeSet::new();
        for (name, token, want) in rows {
            let got = verify_service_token(&token, &keys, &policy, now());
            assert_eq!(got.as_ref().err(), Some(&want), "row {name:?}: {got:?}");
            assert_eq!(want.status(), 401, "row {name:?}");
            let reason = want.reason();
            assert!(!reason.is_empty());
            if token.len() > 20 {
                assert!(!reason.contains(&token), "row {name:?} echoes the token");
            }
            codes.insert(want.code());
        }
        assert!(codes.len() >= 25, "codes should be distinct: {codes:?}");
    }

    #[test]
    fn last_second_before_exp_and_nbf_iat_inside_the_leeway_are_accepted() {
        let keys = keys();
        let policy = TokenPolicy::default();
        for extra in [
            json!({"iat": NOW - 600, "exp": NOW + 1}),
            json!({"nbf": NOW + 60}),
            json!({"iat": NOW + 60, "exp": NOW + 600}),
            json!({"iat": NOW, "exp": NOW + 24 * 3600}),
            json!({"iat": (NOW as f64), "exp": NOW + 5}),
        ] {
            let t = tok(HDR, extra.clone());
            assert!(
                verify_service_token(&t, &keys, &policy, now()).is_ok(),
                "{extra}"
            );
        }
    }

    #[test]
    fn mint_then_verify_round_trip() {
        let keys = keys();
        let key = keys.get("ci-1").unwrap();
        let t =
            mint_service_token(key, &[Role::Auditor], Duration::from_secs(3600), now()).unwrap();
        let id = verify_service_token(&t, &keys, &TokenPolicy::default(), now()).unwrap();
        assert_eq!(id.principal, "ci");
        assert_eq!(id.roles, BTreeSet::from([Role::Auditor]));
        assert_eq!(id.key_id.as_deref(), Some("ci-1"));
        assert_eq!(id.method, AuthMethod::ServiceAccount);
        let jws = parse_compact(&t).unwrap();
        assert!(jws.claims.get("jti").and_then(Value::as_str).is_some());
        assert_eq!(jws.header.get("typ"), Some(&json!("JWT")));
        // Expires at the end of its ttl: the leeway never extends `exp`.
        let later = now() + Duration::from_secs(3600);
        assert_eq!(
            verify_service_token(&t, &keys, &TokenPolicy::default(), later),
            Err(AuthFailure::Expired)
        );
        // Both roles.
        let t = mint_service_token(
            key,
            &[Role::Ingester, Role::Auditor],
            Duration::from_secs(60),
            now(),
        )
        .unwrap();
        let id = verify_service_token(&t, &keys, &TokenPolicy::default(), now()).unwrap();
        assert_eq!(id.roles.len(), 2);
    }

    #[test]
    fn mint_refuses_what_the_server_would_reject() {
        let keys = keys();
        let key = keys.get("ci-1").unwrap();
        let hour = Duration::from_secs(3600);
        assert!(
            mint_service_token(key, &[Role::Admin], hour, now())
                .unwrap_err()
                .contains("admin")
        );
        assert!(mint_service_token(key, &[], hour, now()).is_err());
        assert!(mint_service_token(key, &[Role::Ingester], Duration::ZERO, now()).is_err());
        assert!(
            mint_service_token(key, &[Role::Ingester], Duration::from_millis(500), now()).is_err()
        );
        let old = keys.get("old").unwrap();
        assert!(
            mint_service_token(old, &[Role::Ingester], hour, now())
                .unwrap_err()
                .contains("expired")
        );
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let keys = keys();
        let key = keys.get("ci-1").unwrap();
        let secret_b64 = key.secret.to_base64url();
        let dbg = format!("{key:?} {keys:?}");
        assert!(dbg.contains("[redacted]"));
        assert!(!dbg.contains(&secret_b64));
        assert!(!dbg.contains("7, 7, 7"));
        let err = verify_service_token(
            &tok(HDR, json!({"sub": "x"})),
            &keys,
            &TokenPolicy::default(),
            now(),
        )
        .unwrap_err();
        assert!(!err.reason().contains(&secret_b64));
    }
}
