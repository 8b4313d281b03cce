//! Key material: the HMAC [`Secret`] and fresh secrets and key ids for new
//! service-account keys.

use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};

/// Shortest accepted HMAC secret: RFC 7518 §3.2 asks for a key at least as
/// long as the SHA-256 output.
pub const MIN_SECRET_LEN: usize = 32;

/// Secrets in the file may be padded or not (hand-written files vary);
/// tokens themselves are parsed strictly elsewhere.
const LENIENT_B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An HMAC secret. Its `Debug` prints `[redacted]` so that a key can be
/// logged or put in an error without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    /// 32 fresh random bytes.
    pub fn generate() -> Result<Secret, String> {
        let mut bytes = vec![0u8; MIN_SECRET_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the system random number generator failed".to_string())?;
        Ok(Secret(bytes))
    }

    /// Decodes base64url (padded or not); at least [`MIN_SECRET_LEN`] bytes.
    /// The error never quotes the text.
    pub fn from_base64url(text: &str) -> Result<Secret, String> {
        let bytes = LENIENT_B64URL
            .decode(text.trim_end_matches('=').as_bytes())
            .map_err(|_| "secret is not base64url".to_string())?;
        if bytes.len() < MIN_SECRET_LEN {
            return Err(format!(
                "secret decodes to {} bytes; at least {MIN_SECRET_LEN} are required",
                bytes.len()
            ));
        }
        Ok(Secret(bytes))
    }

    /// Unpadded base64url, as written to the keystore file.
    pub(crate) fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// The raw key bytes, for HMAC only.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A fresh secret as unpadded base64url (32 random bytes).
pub fn generate_secret() -> Result<String, String> {
    Secret::generate().map(|s| s.to_base64url())
}

/// A fresh key id: `"<principal>-<8 hex digits>"`.
pub fn generate_key_id(principal: &str) -> Result<String, String> {
    let mut bytes = [0u8; 4];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_string())?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{principal}-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::KeystoreFile;
    use crate::keystore::tests::test_key;
    use crate::roles::Role;

    #[test]
    fn debug_never_prints_the_secret() {
        let k = test_key("k", "p", &[Role::Admin]);
        let dbg = format!(
            "{k:?} {:?}",
            KeystoreFile {
                keys: vec![k.clone()]
            }
        );
        assert!(dbg.contains("[redacted]"));
        assert!(!dbg.contains(&k.secret.to_base64url()));
        assert!(!dbg.contains("7, 7"));
    }

    #[test]
    fn generated_secrets_and_ids() {
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 43);
        assert_eq!(Secret::from_base64url(&s).unwrap().expose().len(), 32);
        assert_ne!(s, generate_secret().unwrap());
        let id = generate_key_id("ci").unwrap();
        assert!(id.starts_with("ci-") && id.len() == 11, "{id}");
    }
}
