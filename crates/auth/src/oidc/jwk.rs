//! JWKS documents (RFC 7517): the public keys they hold, which algorithm
//! each may verify, and the signature check itself (ring).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use serde_json::{Map, Value};

use super::config::Alg;

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
pub(super) struct Jwk {
    key: JwkKey,
    /// The JWK's own `alg`, when it pins one.
    alg: Option<String>,
}

impl Jwk {
    /// Whether this key may verify `alg` signatures: the key type must be
    /// the algorithm's, and a pinned `alg` must agree.
    pub(super) fn fits(&self, alg: Alg) -> bool {
        let kind = matches!(
            (&self.key, alg),
            (JwkKey::Rsa { .. }, Alg::RS256)
                | (JwkKey::P256 { .. }, Alg::ES256)
                | (JwkKey::Ed25519 { .. }, Alg::EdDSA)
        );
        kind && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
    }

    pub(super) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
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

pub(super) type KeySet = HashMap<String, Arc<Jwk>>;

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
pub(super) fn parse_jwks(text: &str, issuer: &str) -> Result<KeySet, String> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oidc::tests::{ISS, TestKey, b64};

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
