//! One service-account key ([`ServiceAccountKey`]) and the rules every
//! key in a keystore must follow.

use std::time::SystemTime;

use super::secret::{MIN_SECRET_LEN, Secret};
use crate::rfc3339::format_time;
use crate::roles::Role;

/// Longest key id or principal; they appear in logs and the audit trail.
const MAX_NAME_LEN: usize = 256;

/// One service-account key: who signs with it and what it may claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// Named by the token's `kid`; unique in the keystore.
    pub key_id: String,
    /// The only `sub` a token signed with this key may carry.
    pub principal: String,
    /// Roles a token signed with this key may claim.
    pub roles: Vec<Role>,
    /// What tokens signed with this key are signed with.
    pub secret: Secret,
    /// After this instant the key verifies nothing (rotation grace periods).
    pub expires_at: Option<SystemTime>,
}

impl ServiceAccountKey {
    /// Whether the key has expired at `now` (no leeway: it is our clock).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Whether tokens signed with this key may claim `role`.
    pub fn grants(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// `expires_at` as RFC 3339 (UTC, seconds).
    /// (`None` as well for a time RFC 3339 cannot hold; `validate` refuses
    /// those.)
    pub fn expires_at_rfc3339(&self) -> Option<String> {
        self.expires_at.and_then(format_time)
    }

    /// Checks the fields a file could get wrong; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let label = key_label(&self.key_id);
        check_name(&self.key_id).map_err(|e| format!("{label}: key_id {e}"))?;
        check_name(&self.principal).map_err(|e| format!("{label}: principal {e}"))?;
        if RESERVED_PRINCIPALS.contains(&self.principal.as_str()) {
            return Err(format!(
                "{label}: principal {:?} is reserved (the vault logs its own records, e.g. key \
                 rotation events, under it)",
                self.principal
            ));
        }
        if self.roles.is_empty() {
            return Err(format!("{label}: roles must not be empty"));
        }
        if self.expires_at.is_some_and(|t| format_time(t).is_none()) {
            return Err(format!(
                "{label}: expires_at must be between 1970 and the end of 9999"
            ));
        }
        if self.secret.0.len() < MIN_SECRET_LEN {
            return Err(format!(
                "{label}: secret is shorter than {MIN_SECRET_LEN} bytes"
            ));
        }
        Ok(())
    }
}

/// Principals no service account may have: the vault's own (its key
/// rotation records are logged as `evault`; monitors trust only those).
/// OIDC principals (`issuer#sub`) can never be one.
pub const RESERVED_PRINCIPALS: &[&str] = &["evault"];

/// How a key is named in an error message.
pub(super) fn key_label(key_id: &str) -> String {
    format!("key {:?}", crate::failure::clip(key_id))
}

/// Key ids and principals: non-empty visible ASCII, bounded.
fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} bytes"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII (no spaces or control characters)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::keystore::tests::test_key;
    use crate::rfc3339::{MAX_UNIX_SECS, parse_time};

    #[test]
    fn expiry_must_be_writable() {
        let mut k = test_key("k", "p", &[Role::Admin]);
        k.expires_at = Some(UNIX_EPOCH + Duration::from_secs(MAX_UNIX_SECS + 1));
        assert_eq!(k.expires_at_rfc3339(), None);
        assert!(k.validate().unwrap_err().contains("9999"));
        k.expires_at = Some(UNIX_EPOCH + Duration::from_secs(MAX_UNIX_SECS));
        assert_eq!(
            k.expires_at_rfc3339().as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        k.validate().unwrap();
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
    }
}
