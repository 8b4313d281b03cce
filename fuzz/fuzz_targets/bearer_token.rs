//! Fuzzes the service-account token path: the Authorization header parser
//! and the HS256 JWS verifier must refuse anything with a reason, never
//! panic. The first byte picks the mode: raw header bytes, or a header and
//! claims (split at the first NUL) signed with the known key, so the fuzzer
//! reaches the claim checks behind the signature.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evault_auth::{
    Keys, Role, Secret, ServiceAccountKey, TokenPolicy, bearer_token, verify_service_token,
};
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [42; 32];

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        Keys::new([ServiceAccountKey {
            key_id: "k".into(),
            principal: "ci".into(),
            roles: vec![Role::Ingester, Role::Auditor],
            secret: Secret::from_base64url(&URL_SAFE_NO_PAD.encode(SECRET)).expect("secret"),
            expires_at: None,
        }])
    })
}

fn signed(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &SECRET);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let policy = TokenPolicy::default();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(Some(token)) = bearer_token(Some(rest)) {
            let _ = verify_service_token(token, keys(), &policy, now);
        }
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&b"{\"alg\":\"HS256\",\"kid\":\"k\"}"[..], rest),
        };
        let token = signed(header, claims);
        if let Err(failure) = verify_service_token(&token, keys(), &policy, now) {
            // Every refusal has a reason, a code and a 4xx/503 status.
            assert!(!failure.reason().is_empty());
            assert!(!failure.code().is_empty());
            assert!(matches!(failure.status(), 401 | 503));
        }
    }
});
