//! Service-account keys: the key material ([`Secret`]), one key and its
//! rules ([`ServiceAccountKey`]), the JSON keystore file and its atomic
//! rewrite ([`KeystoreFile`]), and the live [`Keystore`] the server
//! verifies tokens against, reloaded when the file changes.

mod file;
mod key;
mod live;
mod secret;

pub use file::KeystoreFile;
pub use key::ServiceAccountKey;
pub use live::{KeySource, KeySourceError, Keys, KeysVersion, Keystore};
pub use secret::{MIN_SECRET_LEN, Secret, generate_key_id, generate_secret};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::roles::Role;

    pub(crate) fn test_key(key_id: &str, principal: &str, roles: &[Role]) -> ServiceAccountKey {
        ServiceAccountKey {
            key_id: key_id.into(),
            principal: principal.into(),
            roles: roles.to_vec(),
            secret: Secret(vec![7u8; 32]),
            expires_at: None,
        }
    }
}
