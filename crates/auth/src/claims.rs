//! The time claims and how strict they are ([`TokenPolicy`]), the same
//! for every token kind.
//!
//! - Time claims are integer seconds (a JSON number with no fraction).
//! - A token is expired when `now >= exp`, with no leeway (RFC 7519: `exp`
//!   is the first instant it must not be accepted). The expiry is the
//!   issuer's promise of how long a leaked token is good for; stretching it
//!   would make every token live a minute longer than its holder was told.
//! - The leeway absorbs clock skew where a fast issuer clock would refuse
//!   a fresh token: it is not yet valid when `nbf > now + leeway`, and
//!   `iat > now + leeway` is rejected. `exp - iat` may not exceed the
//!   policy's maximum.
//! - Callers check the signature before any claim, so a forged token
//!   learns nothing about which claims would pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::failure::AuthFailure;

/// How strict the time claims are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Clock skew tolerated on `nbf` and `iat` (never on `exp`).
    pub leeway: Duration,
    /// Longest `exp - iat`: a leaked token is useful for at most this long.
    pub max_lifetime: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            leeway: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// Seconds since the Unix epoch (negative before it).
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A NumericDate claim as integer seconds; `Ok(None)` when absent.
fn time_claim(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<i64>, AuthFailure> {
    let Some(v) = claims.get(claim) else {
        return Ok(None);
    };
    let bad = AuthFailure::NonNumericTimeClaim { claim };
    let Value::Number(n) = v else { return Err(bad) };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    if n.as_u64().is_some() {
        return Ok(Some(i64::MAX));
    }
    // A float such as 1.7e9 is fine if it is a whole number of seconds.
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 => Ok(Some(f as i64)),
        _ => Err(bad),
    }
}

/// Checks `iat`, `exp` (both required) and `nbf` (optional) against the
/// policy at `now`. See the module documentation for the exact rules.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    policy: &TokenPolicy,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let iat = time_claim(claims, "iat")?.ok_or(AuthFailure::MissingTimeClaim { claim: "iat" })?;
    let exp = time_claim(claims, "exp")?.ok_or(AuthFailure::MissingTimeClaim { claim: "exp" })?;
    let nbf = time_claim(claims, "nbf")?;
    let now = unix_secs(now);
    let leeway = secs(policy.leeway);
    if exp <= iat {
        return Err(AuthFailure::ExpiresBeforeIssued);
    }
    let lifetime = exp.saturating_sub(iat);
    if lifetime > secs(policy.max_lifetime) {
        return Err(AuthFailure::LifetimeTooLong {
            lifetime_secs: lifetime,
            max_secs: policy.max_lifetime.as_secs(),
        });
    }
    if iat > now.saturating_add(leeway) {
        return Err(AuthFailure::IssuedInFuture);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(AuthFailure::NotYetValid);
    }
    if now >= exp {
        return Err(AuthFailure::Expired);
    }
    Ok(())
}
