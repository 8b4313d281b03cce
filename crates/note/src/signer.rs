//! Signing: the [`Signer`] trait and its Ed25519 file-key implementation.

use core::fmt;

use ed25519_dalek::Signer as _;
use ed25519_dalek::SigningKey;

use crate::checkpoint::CheckpointError;
use crate::key::{
    ALG_ED25519, ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN, KeyError, VerifierKeyText,
    is_valid_name, key_id, parse_ed25519_signer_key,
};
use crate::verifier::Ed25519Verifier;

/// A Signer signs messages using a specific key.
///
/// The trait is object safe, so [`sign`](crate::sign) takes `&dyn Signer`
/// values: a key loaded from a file ([`Ed25519Signer`]), a timestamping
/// witness key ([`CosignatureSigner`](crate::CosignatureSigner)), or a key
/// held in a PKCS#11 token or a cloud KMS can all sign the same note.
pub trait Signer: Send + Sync {
    /// Returns the name associated with the key (typically the log or
    /// witness name, a schema-less URL).
    fn name(&self) -> &str;

    /// Returns the key ID (see [`key_id`]).
    fn key_id(&self) -> u32;

    /// Returns a signature for the given message (the note text), without
    /// the 4-byte key ID prefix.
    ///
    /// May block (a hardware token, a remote KMS): async callers run it on a
    /// blocking thread.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError>;

    /// Returns the verifier key of this signer,
    /// `<name>+<key ID>+<base64(type || public key)>`, which is what a
    /// verifier publishes and [`verifier_for`](crate::verifier_for) turns
    /// back into a [`Verifier`](crate::Verifier).
    fn verifier_key(&self) -> VerifierKeyText;
}

/// Why signing failed.
#[derive(Debug)]
pub enum SignError {
    /// The note text does not end in a newline (U+000A).
    TextMissingFinalNewline,
    /// The note text contains an ASCII control character other than newline
    /// at this byte offset.
    TextControlCharacter {
        /// Byte offset of the character in the text.
        offset: usize,
    },
    /// A signer's name is not a valid key name (see
    /// [`is_valid_name`]).
    InvalidSignerName {
        /// The rejected name.
        name: String,
    },
    /// A signer returned an empty signature, which cannot be encoded.
    EmptySignature {
        /// The signer's name.
        name: String,
    },
    /// A signature already present in the note passed to
    /// [`sign_note`](crate::sign_note) is malformed (invalid name, bad
    /// base64, fewer than 5 bytes, or a key ID that does not match the
    /// encoded bytes).
    MalformedExistingSignature {
        /// The signature's name.
        name: String,
    },
    /// There would be no signature at all in the note.
    NoSignatures,
    /// The note would have more signatures than [`open`](crate::open)
    /// accepts.
    TooManySignatures {
        /// The number of signatures the note would have.
        count: usize,
        /// The maximum, [`MAX_SIGNATURES`](crate::MAX_SIGNATURES).
        max: usize,
    },
    /// A cosigner was asked to sign a text that is not a checkpoint.
    NotACheckpoint(CheckpointError),
    /// A cosignature timestamp is above 2^63 - 1 (C2SP tlog-cosignature).
    TimestampOutOfRange {
        /// The rejected timestamp, in seconds since the Unix epoch.
        timestamp: u64,
    },
    /// The checkpoint's origin is too long for the ML-DSA-44 cosigned
    /// message, whose `log_origin` holds at most 255 bytes.
    OriginTooLong {
        /// The origin's length in bytes.
        len: usize,
        /// The maximum, 255.
        max: usize,
    },
    /// The signing backend (HSM, KMS, clock, ...) failed.
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::TextMissingFinalNewline => {
                f.write_str("malformed note text: does not end in newline")
            }
            SignError::TextControlCharacter { offset } => write!(
                f,
                "malformed note text: control character at byte offset {offset}"
            ),
            SignError::InvalidSignerName { name } => write!(f, "invalid signer name {name:?}"),
            SignError::EmptySignature { name } => {
                write!(f, "signer {name:?} returned an empty signature")
            }
            SignError::MalformedExistingSignature { name } => {
                write!(f, "malformed existing signature by {name:?}")
            }
            SignError::NoSignatures => f.write_str("note would have no signatures"),
            SignError::TooManySignatures { count, max } => {
                write!(f, "note would have {count} signatures (maximum {max})")
            }
            SignError::NotACheckpoint(e) => write!(f, "cosigned text is not a checkpoint: {e}"),
            SignError::TimestampOutOfRange { timestamp } => {
                write!(f, "cosignature timestamp {timestamp} exceeds 2^63 - 1")
            }
            SignError::OriginTooLong { len, max } => write!(
                f,
                "checkpoint origin is {len} bytes; an ML-DSA-44 cosignature allows at most {max}"
            ),
            SignError::Backend(e) => write!(f, "signing backend failed: {e}"),
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignError::NotACheckpoint(e) => Some(e),
            SignError::Backend(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// An Ed25519 note signer (signature type `0x01`) holding its private key in
/// memory.
///
/// The private key is erased when the signer is dropped, and the `Debug`
/// output shows only the name and key ID.
pub struct Ed25519Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl Ed25519Signer {
    /// Constructs a signer from an encoded signer key
    /// `PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>` (Go's
    /// `note.NewSigner`).
    ///
    /// The key ID in the text must match the one computed from the derived
    /// public key.
    pub fn from_signer_key(skey: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) = parse_ed25519_signer_key(skey, ALG_ED25519)?;
        Ok(Ed25519Signer { name, key_id, key })
    }

    /// Constructs a signer from a key name and a 32-byte RFC 8032 Ed25519
    /// private key seed.
    pub fn from_seed(name: &str, seed: &[u8; ED25519_SEED_LEN]) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(Ed25519Signer {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    /// Returns the verifier for this signer's key.
    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier::from_verifying_key(&self.name, self.key_id, self.key.verifying_key())
    }

    /// Returns the encoded verifier key `<name>+<key ID>+<base64(0x01 ||
    /// public key)>`.
    pub fn verifier_key(&self) -> VerifierKeyText {
        VerifierKeyText::encode(&self.name, self.key_id, ALG_ED25519, &self.public_key())
    }
}

impl Signer for Ed25519Signer {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let sig = self
            .key
            .try_sign(msg)
            .map_err(|e| SignError::Backend(Box::new(e)))?;
        Ok(sig.to_bytes().to_vec())
    }

    fn verifier_key(&self) -> VerifierKeyText {
        Ed25519Signer::verifier_key(self)
    }
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::Verifier;

    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    #[test]
    fn from_signer_key() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        assert_eq!(s.name(), "PeterNeumann");
        assert_eq!(s.key_id(), 0xc74f20a3);
        assert_eq!(s.verifier_key().as_str(), PETER_VKEY);
    }

    #[test]
    fn from_seed_matches_signer_key() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let seed = s.key.to_bytes();
        let t = Ed25519Signer::from_seed("PeterNeumann", &seed).unwrap();
        assert_eq!(t.key_id(), 0xc74f20a3);
        assert_eq!(t.public_key(), s.public_key());
        assert_eq!(
            Ed25519Signer::from_seed("Peter Neumann", &seed).err(),
            Some(KeyError::InvalidName)
        );
    }

    #[test]
    fn sign_then_verify() {
        // Go's testSignerAndVerifier.
        let s = Ed25519Signer::from_seed("EnochRoot", &[7u8; 32]).unwrap();
        let v = s.verifier();
        assert_eq!(v.name(), s.name());
        assert_eq!(v.key_id(), s.key_id());
        let mut msg = b"hi".to_vec();
        let mut sig = s.sign(&msg).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(v.verify(&msg, &sig));
        sig[0] = sig[0].wrapping_add(1);
        assert!(!v.verify(&msg, &sig));
        sig[0] = sig[0].wrapping_sub(1);
        msg[0] += 1;
        assert!(!v.verify(&msg, &sig));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("PeterNeumann"));
        assert!(dbg.contains("c74f20a3"));
        let seed_hex: String = s
            .key
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!dbg.contains(&seed_hex));
        assert!(!dbg.contains("secret"));
    }

    #[test]
    fn signer_is_object_safe_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Signer>();
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let d: &dyn Signer = &s;
        assert_eq!(d.key_id(), 0xc74f20a3);
    }

    #[test]
    fn error_display_and_source() {
        use std::error::Error as _;
        let e = SignError::TooManySignatures {
            count: 101,
            max: 100,
        };
        assert_eq!(
            e.to_string(),
            "note would have 101 signatures (maximum 100)"
        );
        assert!(e.source().is_none());
        let e = SignError::Backend("token unplugged".into());
        assert!(e.to_string().contains("token unplugged"));
        assert!(e.source().is_some());
    }
}
