//! Verification: the [`Verifier`] trait, its Ed25519 implementation, and the
//! [`Verifiers`] collection of known keys.

use core::fmt;
use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::key::{
    ALG_ED25519, ED25519_PUBLIC_KEY_LEN, KeyError, VerifierKeyText, ed25519_public_key,
    is_valid_name, key_id, parse_ed25519_verifier_key,
};

/// A Verifier verifies messages signed with a specific key.
///
/// The trait is object safe; [`Verifiers`] holds `Box<dyn Verifier>` values.
pub trait Verifier: Send + Sync {
    /// Returns the name associated with the key.
    fn name(&self) -> &str;

    /// Returns the key ID (see [`key_id`]).
    fn key_id(&self) -> u32;

    /// Reports whether `sig` (without the 4-byte key ID prefix) is a valid
    /// signature of `msg` (the note text) by this key.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool;
}

/// An Ed25519 note verifier (signature type `0x01`).
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Ed25519Verifier {
    /// Constructs a verifier from an encoded verifier key
    /// `<name>+<key ID>+<base64(0x01 || public key)>` (Go's
    /// `note.NewVerifier`).
    ///
    /// Rejects the text unless the name is valid, the key ID is eight
    /// hexadecimal digits equal to the computed key ID, the signature type is
    /// `0x01`, and the key is 32 bytes encoding an Ed25519 point.
    pub fn from_verifier_key(vkey: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) = parse_ed25519_verifier_key(vkey, ALG_ED25519)?;
        Ok(Ed25519Verifier { name, key_id, key })
    }

    /// Constructs a verifier from a key name and a 32-byte Ed25519 public
    /// key (Go's `note.NewEd25519VerifierKey`).
    pub fn from_public_key(
        name: &str,
        public_key: &[u8; ED25519_PUBLIC_KEY_LEN],
    ) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = ed25519_public_key(public_key)?;
        Ok(Ed25519Verifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, public_key),
            key,
        })
    }

    /// Builds a verifier from parts already known to be consistent.
    pub(crate) fn from_verifying_key(name: &str, key_id: u32, key: VerifyingKey) -> Self {
        Ed25519Verifier {
            name: name.to_owned(),
            key_id,
            key,
        }
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.key.to_bytes()
    }

    /// Returns the encoded verifier key.
    pub fn verifier_key(&self) -> VerifierKeyText {
        VerifierKeyText::encode(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }
}

/// Verifies an RFC 8032 Ed25519 signature.
///
/// Uses `verify_strict`, which also rejects small-order public keys and `R`
/// values: signatures made by honest signers always pass, and a weak key
/// cannot produce signatures valid for many messages.
pub(crate) fn ed25519_verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    match ed25519_dalek::Signature::from_slice(sig) {
        Ok(sig) => key.verify_strict(msg, &sig).is_ok(),
        Err(_) => false,
    }
}

impl Verifier for Ed25519Verifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ed25519_verify(&self.key, msg, sig)
    }
}

impl fmt::Debug for Ed25519Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ed25519Verifier")
            .field(&self.verifier_key().as_str())
            .finish()
    }
}

/// Why a verifier could not be added to a [`Verifiers`] collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiersError {
    /// The verifier's name is not a valid key name, so no signature line
    /// could ever refer to it.
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A verifier with the same name and key ID is already present. (Go
    /// reports this as an "ambiguous key" when the key is used; rejecting it
    /// up front is simpler.)
    Duplicate {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
}

impl fmt::Display for VerifiersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifiersError::InvalidName { name } => write!(f, "invalid verifier name {name:?}"),
            VerifiersError::Duplicate { name, key_id } => {
                write!(f, "ambiguous key {name}+{key_id:08x}")
            }
        }
    }
}

impl std::error::Error for VerifiersError {}

/// Returns the verifier for an encoded verifier key of any signature type
/// this crate knows: Ed25519 (`0x01`), timestamped Ed25519
/// `cosignature/v1` (`0x04`) and ML-DSA-44 `subtree/v1` cosignatures
/// (`0x06`). Callers that hold a `dyn Signer` use it with
/// [`Signer::verifier_key`](crate::Signer::verifier_key).
pub fn verifier_for(vkey: &str) -> Result<Box<dyn Verifier>, KeyError> {
    let parsed = crate::key::parse_verifier_key(vkey)?;
    match parsed.alg {
        ALG_ED25519 => Ok(Box::new(Ed25519Verifier::from_verifier_key(vkey)?)),
        crate::key::ALG_COSIGNATURE_V1 => Ok(Box::new(
            crate::cosignature::CosignatureVerifier::from_verifier_key(vkey)?,
        )),
        crate::key::ALG_MLDSA44_COSIGNATURE => Ok(Box::new(
            crate::mldsa::MlDsaCosignatureVerifier::from_verifier_key(vkey)?,
        )),
        found => Err(KeyError::UnsupportedAlgorithm {
            found,
            expected: ALG_ED25519,
        }),
    }
}

/// Returns the verifier for a **log's** key: Ed25519 (`0x01`) or ML-DSA-44
/// (`0x06`, which C2SP tlog-checkpoint recommends for a log's own
/// signature). A witness's Ed25519 `cosignature/v1` key (`0x04`) is refused:
/// it states that a witness saw a checkpoint, not that the log signed it.
pub fn log_verifier(vkey: &str) -> Result<Box<dyn Verifier>, KeyError> {
    let parsed = crate::key::parse_verifier_key(vkey)?;
    match parsed.alg {
        ALG_ED25519 | crate::key::ALG_MLDSA44_COSIGNATURE => verifier_for(vkey),
        found => Err(KeyError::UnsupportedAlgorithm {
            found,
            expected: ALG_ED25519,
        }),
    }
}

/// A collection of known verifier keys, looked up by (name, key ID).
///
/// Signatures whose (name, key ID) pair is not in the collection are
/// ignored by [`open`](crate::open) (reported as unverified), as C2SP
/// signed-note requires, even if they share the name or the ID (but not
/// both) with a known key.
#[derive(Default)]
pub struct Verifiers {
    by_id: HashMap<u32, Vec<Box<dyn Verifier>>>,
    len: usize,
}

impl Verifiers {
    /// Returns an empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a verifier. Fails if its name is invalid or a verifier with the
    /// same name and key ID is already present.
    pub fn insert<V: Verifier + 'static>(&mut self, verifier: V) -> Result<(), VerifiersError> {
        self.insert_boxed(Box::new(verifier))
    }

    /// Adds a boxed verifier; see [`insert`](Self::insert).
    pub fn insert_boxed(&mut self, verifier: Box<dyn Verifier>) -> Result<(), VerifiersError> {
        let name = verifier.name();
        if !is_valid_name(name) {
            return Err(VerifiersError::InvalidName {
                name: name.to_owned(),
            });
        }
        let key_id = verifier.key_id();
        if self.get(name, key_id).is_some() {
            return Err(VerifiersError::Duplicate {
                name: name.to_owned(),
                key_id,
            });
        }
        self.by_id.entry(key_id).or_default().push(verifier);
        self.len += 1;
        Ok(())
    }

    /// Adds a verifier and returns the collection, for chaining.
    pub fn with<V: Verifier + 'static>(mut self, verifier: V) -> Result<Self, VerifiersError> {
        self.insert(verifier)?;
        Ok(self)
    }

    /// Returns the verifier for the key identified by `name` and `key_id`,
    /// if known.
    pub fn get(&self, name: &str, key_id: u32) -> Option<&dyn Verifier> {
        self.by_id
            .get(&key_id)?
            .iter()
            .find(|v| v.name() == name && v.key_id() == key_id)
            .map(|v| v.as_ref())
    }

    /// Returns the number of verifiers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Reports whether the collection is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<String> = self
            .by_id
            .values()
            .flatten()
            .map(|v| format!("{}+{:08x}", v.name(), v.key_id()))
            .collect();
        keys.sort();
        f.debug_set().entries(keys).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{Ed25519Signer, Signer};

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";

    #[test]
    fn from_verifier_key() {
        let v = Ed25519Verifier::from_verifier_key(PETER_VKEY).unwrap();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), 0xc74f20a3);
        assert_eq!(v.verifier_key().as_str(), PETER_VKEY);
        assert_eq!(format!("{v:?}"), format!("Ed25519Verifier({PETER_VKEY:?})"));
    }

    #[test]
    fn from_public_key() {
        let v = Ed25519Verifier::from_verifier_key(PETER_VKEY).unwrap();
        let w = Ed25519Verifier::from_public_key("PeterNeumann", &v.public_key()).unwrap();
        assert_eq!(v, w);
        assert_eq!(
            Ed25519Verifier::from_public_key("a+b", &v.public_key()).err(),
            Some(KeyError::InvalidName)
        );
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            Ed25519Verifier::from_public_key("x", &not_a_point).err(),
            Some(KeyError::InvalidPublicKey)
        );
    }

    #[test]
    fn verify_rejects_wrong_lengths() {
        let s = Ed25519Signer::from_seed("n", &[1u8; 32]).unwrap();
        let v = s.verifier();
        let sig = s.sign(b"msg\n").unwrap();
        assert!(v.verify(b"msg\n", &sig));
        assert!(!v.verify(b"msg\n", &sig[..63]));
        let mut long = sig.clone();
        long.push(0);
        assert!(!v.verify(b"msg\n", &long));
        assert!(!v.verify(b"msg\n", &[]));
    }

    #[test]
    fn verify_rejects_weak_key() {
        // The identity point (small order): a "signature" R = identity,
        // s = 0 satisfies the cofactorless equation for every message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let v = Ed25519Verifier::from_public_key("weak", &identity).unwrap();
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(!v.verify(b"anything\n", &sig));
    }

    #[test]
    fn verifiers_lookup() {
        let peter = Ed25519Verifier::from_verifier_key(PETER_VKEY).unwrap();
        let enoch = Ed25519Verifier::from_verifier_key(ENOCH_VKEY).unwrap();
        let list = Verifiers::new().with(peter).unwrap().with(enoch).unwrap();
        assert_eq!(list.len(), 2);
        assert!(!list.is_empty());
        assert_eq!(
            list.get("PeterNeumann", 0xc74f20a3).map(|v| v.key_id()),
            Some(0xc74f20a3)
        );
        assert_eq!(
            list.get("EnochRoot", 0xaf0cfe78).map(|v| v.name()),
            Some("EnochRoot")
        );
        // Same name, other ID; same ID, other name.
        assert!(list.get("PeterNeumann", 0xc74f20a4).is_none());
        assert!(list.get("PeterNeuman", 0xc74f20a3).is_none());
        assert!(list.get("EnochRoot", 0xc74f20a3).is_none());
        assert_eq!(
            format!("{list:?}"),
            "{\"EnochRoot+af0cfe78\", \"PeterNeumann+c74f20a3\"}"
        );
    }

    #[test]
    fn verifiers_reject_duplicates_and_invalid_names() {
        let mut list = Verifiers::new();
        list.insert(Ed25519Verifier::from_verifier_key(ENOCH_VKEY).unwrap())
            .unwrap();
        assert_eq!(
            list.insert(Ed25519Verifier::from_verifier_key(ENOCH_VKEY).unwrap()),
            Err(VerifiersError::Duplicate {
                name: "EnochRoot".into(),
                key_id: 0xaf0cfe78
            })
        );
        assert_eq!(
            VerifiersError::Duplicate {
                name: "EnochRoot".into(),
                key_id: 0xaf0cfe78
            }
            .to_string(),
            "ambiguous key EnochRoot+af0cfe78"
        );

        struct Misnamed;
        impl Verifier for Misnamed {
            fn name(&self) -> &str {
                "bad name"
            }
            fn key_id(&self) -> u32 {
                1
            }
            fn verify(&self, _: &[u8], _: &[u8]) -> bool {
                true
            }
        }
        assert_eq!(
            list.insert(Misnamed),
            Err(VerifiersError::InvalidName {
                name: "bad name".into()
            })
        );
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn verifier_is_object_safe_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Verifier>();
        assert_send_sync::<Verifiers>();
    }

    #[test]
    fn log_verifier_takes_ed25519_and_mldsa44_only() {
        let ed = crate::Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap();
        let pq = crate::MlDsaCosigner::from_seed("example.com/log", &[1; 32]).unwrap();
        let witness = crate::CosignatureSigner::from_seed("w.example/w", &[1; 32]).unwrap();
        for s in [&ed as &dyn crate::Signer, &pq] {
            let v = log_verifier(s.verifier_key().as_str()).unwrap();
            assert_eq!((v.name(), v.key_id()), (s.name(), s.key_id()));
        }
        assert!(matches!(
            log_verifier(witness.verifier_key().as_str()),
            Err(KeyError::UnsupportedAlgorithm {
                found: 0x04,
                expected: 0x01
            })
        ));
        assert!(log_verifier("not a key").is_err());
    }

    #[test]
    fn verifier_for_any_known_type() {
        use crate::Signer;
        let ed = crate::Ed25519Signer::from_seed("log.example", &[1; 32]).unwrap();
        let co = crate::CosignatureSigner::from_seed("witness.example", &[2; 32]).unwrap();
        for s in [&ed as &dyn Signer, &co] {
            let v = verifier_for(Signer::verifier_key(s).as_str()).unwrap();
            assert_eq!((v.name(), v.key_id()), (s.name(), s.key_id()));
        }
        let sig = ed.sign(b"hello\n").unwrap();
        let v = verifier_for(Signer::verifier_key(&ed).as_str()).unwrap();
        assert!(v.verify(b"hello\n", &sig));
        let unknown = VerifierKeyText::encode("x", key_id("x", 0x09, &[1; 32]), 0x09, &[1; 32]);
        assert!(matches!(
            verifier_for(unknown.as_str()),
            Err(KeyError::UnsupportedAlgorithm { found: 0x09, .. })
        ));
    }
}
