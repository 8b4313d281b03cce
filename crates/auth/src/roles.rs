//! Who a request is and what it may do: the three evault roles and the
//! authenticated [`Identity`] handed to handlers.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a principal may do. The permission table (which route needs which
/// role) lives with the routes; this type only names the roles so that a
/// typo in a keystore or a token is an error rather than a silent no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Puts evidence in.
    Ingester,
    /// Reads evidence, proofs and the audit trail.
    Auditor,
    /// Operates the vault.
    Admin,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 3] = [Role::Ingester, Role::Auditor, Role::Admin];

    /// The role's name as written in keystores and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingester => "ingester",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    /// Exact, lowercase names only: roles are security decisions, so
    /// "Admin" or " admin" are rejected rather than normalised.
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {:?} (expected ingester, auditor or admin)",
                    super::failure::clip(s)
                )
            })
    }
}

/// How an identity was established; recorded in the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// An HS256 token signed with a keystore key.
    ServiceAccount,
    /// A token from an external OpenID Connect issuer.
    Oidc {
        /// The token's `iss`, a configured issuer.
        issuer: String,
    },
}

impl AuthMethod {
    /// The method's name in the audit trail: `service-account` or `oidc`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::ServiceAccount => "service-account",
            AuthMethod::Oidc { .. } => "oidc",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Stable name of the caller: the key's principal for service accounts,
    /// `"{issuer}#{sub}"` for OIDC (so two issuers cannot collide).
    pub principal: String,
    /// The roles the token carries (never more than its key grants).
    pub roles: BTreeSet<Role>,
    /// The key that verified the token (`kid`).
    pub key_id: Option<String>,
    /// How the token was verified.
    pub method: AuthMethod,
}

impl Identity {
    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_text_round_trips() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(r.to_string(), r.as_str());
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
            assert_eq!(
                serde_json::from_str::<Role>(&format!("\"{r}\"")).unwrap(),
                r
            );
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("root".parse::<Role>().unwrap_err().contains("root"));
        assert_eq!(AuthMethod::ServiceAccount.as_str(), "service-account");
        assert_eq!(
            AuthMethod::Oidc {
                issuer: "https://i".into()
            }
            .as_str(),
            "oidc"
        );
    }
}
