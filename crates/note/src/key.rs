//! Key names, key IDs and the text encodings of keys.
//!
//! A key is identified by the pair (key name, key ID). The key name is
//! typically a schema-less URL such as `example.com/log42`; the key ID is a
//! 32-bit hash of the name, the signature type and the public key
//! (C2SP signed-note, "Signatures"):
//!
//! ```text
//! key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]
//! ```
//!
//! interpreted as a big-endian `u32`. Signature type `0x01` is plain
//! Ed25519 ([`ALG_ED25519`]) and `0x04` is the timestamped Ed25519
//! `cosignature/v1` of C2SP tlog-cosignature ([`ALG_COSIGNATURE_V1`]).
//!
//! Keys are exchanged as text in the formats of Go's
//! `golang.org/x/mod/sumdb/note`:
//!
//! - a verifier key is `<name>+<key ID>+<base64(type || public key)>`, e.g.
//!   `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW`;
//! - a signer key is `PRIVATE+KEY+<name>+<key ID>+<base64(type || seed)>`,
//!   where the seed is the 32-byte RFC 8032 Ed25519 private key. Anyone with
//!   a signer key can sign with it, so it must be kept secret; the literal
//!   `PRIVATE+KEY` prefix avoids confusing it with a verifier key.
//!
//! The key ID is written as exactly eight hexadecimal digits (lower case when
//! formatted; upper case is accepted when parsing, as Go does) and the key
//! data in standard, padded base64 (RFC 4648 section 4). Parsing checks that
//! the key ID in the text is the one computed from the name and key.

use core::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::b64;
use zeroize::Zeroize;

/// Signature type byte of plain Ed25519 note signatures (C2SP signed-note).
pub const ALG_ED25519: u8 = 0x01;

/// Signature type byte of timestamped Ed25519 `cosignature/v1` signatures
/// (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Signature type byte of timestamped ML-DSA-44 (sub)tree cosignatures
/// (C2SP tlog-cosignature v1.1, `subtree/v1`).
pub const ALG_MLDSA44_COSIGNATURE: u8 = 0x06;

/// Length in bytes of an Ed25519 public key (RFC 8032).
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// Length in bytes of an Ed25519 private key seed (RFC 8032).
pub const ED25519_SEED_LEN: usize = 32;

/// The literal prefix of every signer key.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Reports whether `name` is a valid key name.
///
/// A key name must be non-empty and must not contain any Unicode white space
/// or plus (U+002B) characters (C2SP signed-note; Go's `isValidName`). This
/// crate also rejects ASCII control characters (below U+0020), which can
/// never appear in a signed note, so a key with such a name could never sign
/// a note that verifies.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < '\u{20}')
}

/// Computes the key ID of the key with the given name, signature type byte
/// and public key encoding:
/// `SHA-256(name || 0x0A || alg || public_key)[:4]` as a big-endian `u32`.
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public_key);
    let sum = h.finalize();
    let mut id = [0u8; 4];
    for (dst, src) in id.iter_mut().zip(sum.iter()) {
        *dst = *src;
    }
    u32::from_be_bytes(id)
}

/// Why a key text (or a key name) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A signer key does not begin with `PRIVATE+KEY+`.
    MissingPrivateKeyPrefix,
    /// The text does not have the three `+`-separated fields
    /// `<name>+<key ID>+<key data>`.
    MissingField,
    /// The key name is empty or contains white space, `+` or a control
    /// character (see [`is_valid_name`]).
    InvalidName,
    /// The key ID field is not exactly eight hexadecimal digits.
    InvalidKeyIdHex,
    /// The key data field is not canonical standard base64.
    InvalidBase64,
    /// The key data field decodes to zero bytes (no signature type byte).
    EmptyKeyData,
    /// The key ID written in the text is not the one computed from the name,
    /// signature type and public key.
    KeyIdMismatch {
        /// The key ID written in the text.
        declared: u32,
        /// The key ID computed from the name and key.
        computed: u32,
    },
    /// The signature type byte is not the one this key type requires.
    UnsupportedAlgorithm {
        /// The signature type byte found in the key data.
        found: u8,
        /// The signature type byte this key type requires.
        expected: u8,
    },
    /// The key material after the signature type byte has the wrong length.
    WrongKeyLength {
        /// The required length in bytes.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// The public key is not the encoding of an Ed25519 curve point.
    InvalidPublicKey,
    /// The operating system's random number generator failed while
    /// generating a key.
    Randomness(getrandom::Error),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::MissingPrivateKeyPrefix => {
                f.write_str("malformed signer key: missing \"PRIVATE+KEY+\" prefix")
            }
            KeyError::MissingField => {
                f.write_str("malformed key: want <name>+<hex key ID>+<base64 key data>")
            }
            KeyError::InvalidName => f.write_str(
                "invalid key name: must be non-empty, without spaces, '+' or control characters",
            ),
            KeyError::InvalidKeyIdHex => {
                f.write_str("malformed key ID: want exactly 8 hexadecimal digits")
            }
            KeyError::InvalidBase64 => f.write_str("malformed key data: not standard base64"),
            KeyError::EmptyKeyData => f.write_str("malformed key data: empty"),
            KeyError::KeyIdMismatch { declared, computed } => write!(
                f,
                "key ID {declared:08x} does not match the key (computed {computed:08x})"
            ),
            KeyError::UnsupportedAlgorithm { found, expected } => write!(
                f,
                "unsupported key algorithm 0x{found:02x} (want 0x{expected:02x})"
            ),
            KeyError::WrongKeyLength { expected, found } => {
                write!(f, "wrong key length {found} (want {expected})")
            }
            KeyError::InvalidPublicKey => f.write_str("public key is not a valid Ed25519 point"),
            KeyError::Randomness(e) => write!(f, "generating key: random source failed: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// An encoded verifier key: `<name>+<key ID>+<base64(type || public key)>`.
///
/// Verifier keys are public; give them to whoever must verify signatures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifierKeyText(String);

impl VerifierKeyText {
    /// Encodes a verifier key from a key name, a signature type byte and the
    /// public key bytes, computing the key ID.
    ///
    /// Fails with [`KeyError::InvalidName`] or [`KeyError::EmptyKeyData`]
    /// (empty `public_key`). The key material itself is not checked here;
    /// the typed constructors such as
    /// [`Ed25519Verifier::verifier_key`](crate::Ed25519Verifier::verifier_key)
    /// only ever encode valid keys.
    pub fn new(name: &str, alg: u8, public_key: &[u8]) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        if public_key.is_empty() {
            return Err(KeyError::EmptyKeyData);
        }
        Ok(Self::encode(
            name,
            key_id(name, alg, public_key),
            alg,
            public_key,
        ))
    }

    /// Encodes without validation; callers guarantee a valid name.
    pub(crate) fn encode(name: &str, id: u32, alg: u8, public_key: &[u8]) -> Self {
        let mut data = Vec::with_capacity(1 + public_key.len());
        data.push(alg);
        data.extend_from_slice(public_key);
        VerifierKeyText(format!("{name}+{id:08x}+{}", b64::encode(&data)))
    }

    /// Returns the encoded key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the encoded key as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for VerifierKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for VerifierKeyText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An encoded signer key: `PRIVATE+KEY+<name>+<key ID>+<base64(type ||
/// seed)>`.
///
/// This is secret key material. It has no `Display`, its `Debug` output is
/// redacted, and its bytes are overwritten with zeros when it is dropped.
pub struct SignerKeyText(String);

impl SignerKeyText {
    /// Encodes without validation; callers guarantee a valid name.
    pub(crate) fn encode(name: &str, id: u32, alg: u8, seed: &[u8; ED25519_SEED_LEN]) -> Self {
        let mut data = [0u8; 1 + ED25519_SEED_LEN];
        data[0] = alg;
        data[1..].copy_from_slice(seed);
        let mut data64 = b64::encode(&data);
        data.zeroize();
        // One allocation of the final size, so no partial copies of the
        // secret are left behind by reallocation.
        let mut text =
            String::with_capacity(PRIVATE_KEY_PREFIX.len() + name.len() + 10 + data64.len());
        text.push_str(PRIVATE_KEY_PREFIX);
        text.push_str(name);
        text.push('+');
        text.push_str(&format!("{id:08x}"));
        text.push('+');
        text.push_str(&data64);
        data64.zeroize();
        SignerKeyText(text)
    }

    /// Returns the encoded secret key, for storing it or passing it to
    /// [`Ed25519Signer::from_signer_key`](crate::Ed25519Signer::from_signer_key).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SignerKeyText {
    /// Wraps signer key text read from storage so that it is wiped on drop.
    /// The text is not validated until it is parsed.
    fn from(text: String) -> Self {
        SignerKeyText(text)
    }
}

impl fmt::Debug for SignerKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignerKeyText(<redacted>)")
    }
}

impl Drop for SignerKeyText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A verifier key text split into its parts, with the key ID checked.
///
/// The signature type and key length are not checked: that is up to the
/// verifier type that uses the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedVerifierKey {
    /// The key name.
    pub name: String,
    /// The key ID (equal to the one computed from the other fields).
    pub key_id: u32,
    /// The signature type byte.
    pub alg: u8,
    /// The public key bytes after the signature type byte.
    pub public_key: Vec<u8>,
}

/// Parses a verifier key `<name>+<key ID>+<base64(type || public key)>`.
///
/// Checks, in order: the three fields are present, the name is valid, the
/// key ID is eight hexadecimal digits, the key data is canonical base64 of
/// at least one byte, and the key ID matches the one computed from the name
/// and key data.
pub fn parse_verifier_key(text: &str) -> Result<ParsedVerifierKey, KeyError> {
    let (name, declared, data) = split_fields(text)?;
    let (alg, public_key) = data.split_first().ok_or(KeyError::EmptyKeyData)?;
    let computed = key_id(name, *alg, public_key);
    if computed != declared {
        return Err(KeyError::KeyIdMismatch { declared, computed });
    }
    Ok(ParsedVerifierKey {
        name: name.to_owned(),
        key_id: declared,
        alg: *alg,
        public_key: public_key.to_vec(),
    })
}

/// Splits `<name>+<key ID>+<base64 data>` and checks each field's syntax.
fn split_fields(text: &str) -> Result<(&str, u32, Vec<u8>), KeyError> {
    let (name, rest) = text.split_once('+').ok_or(KeyError::MissingField)?;
    let (hex, data64) = rest.split_once('+').ok_or(KeyError::MissingField)?;
    if !is_valid_name(name) {
        return Err(KeyError::InvalidName);
    }
    let id = parse_key_id_hex(hex).ok_or(KeyError::InvalidKeyIdHex)?;
    let data = b64::decode(data64).ok_or(KeyError::InvalidBase64)?;
    if data.is_empty() {
        return Err(KeyError::EmptyKeyData);
    }
    Ok((name, id, data))
}

/// Parses exactly eight hexadecimal digits.
fn parse_key_id_hex(hex: &str) -> Option<u32> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Parses an Ed25519 verifier key of signature type `alg`.
pub(crate) fn parse_ed25519_verifier_key(
    text: &str,
    alg: u8,
) -> Result<(String, u32, VerifyingKey), KeyError> {
    let parsed = parse_verifier_key(text)?;
    if parsed.alg != alg {
        return Err(KeyError::UnsupportedAlgorithm {
            found: parsed.alg,
            expected: alg,
        });
    }
    let key = ed25519_public_key(&parsed.public_key)?;
    Ok((parsed.name, parsed.key_id, key))
}

/// Decodes 32 bytes as an Ed25519 public key.
pub(crate) fn ed25519_public_key(bytes: &[u8]) -> Result<VerifyingKey, KeyError> {
    let bytes: &[u8; ED25519_PUBLIC_KEY_LEN] =
        bytes.try_into().map_err(|_| KeyError::WrongKeyLength {
            expected: ED25519_PUBLIC_KEY_LEN,
            found: bytes.len(),
        })?;
    VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)
}

/// Parses an Ed25519 signer key of signature type `alg`, derives the public
/// key and checks the key ID against it.
pub(crate) fn parse_ed25519_signer_key(
    text: &str,
    alg: u8,
) -> Result<(String, u32, SigningKey), KeyError> {
    let rest = text
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(KeyError::MissingPrivateKeyPrefix)?;
    let (name, declared, mut data) = split_fields(rest)?;
    let result = signing_key_from_data(name, declared, &data, alg);
    data.zeroize();
    result
}

/// Parses a signer key `PRIVATE+KEY+<name>+<key ID>+<base64(alg || 32-byte
/// seed)>` of signature type `alg` into its name, declared key ID and seed.
///
/// The key ID is not checked: the caller derives the public key from the
/// seed and compares.
pub(crate) fn parse_seed_signer_key(
    text: &str,
    alg: u8,
) -> Result<(String, u32, zeroize::Zeroizing<[u8; 32]>), KeyError> {
    let rest = text
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(KeyError::MissingPrivateKeyPrefix)?;
    let (name, declared, data) = split_fields(rest)?;
    let data = zeroize::Zeroizing::new(data);
    let (found, seed) = data.split_first().ok_or(KeyError::EmptyKeyData)?;
    if *found != alg {
        return Err(KeyError::UnsupportedAlgorithm {
            found: *found,
            expected: alg,
        });
    }
    let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::WrongKeyLength {
        expected: 32,
        found: seed.len(),
    })?;
    Ok((name.to_owned(), declared, zeroize::Zeroizing::new(seed)))
}

fn signing_key_from_data(
    name: &str,
    declared: u32,
    data: &[u8],
    alg: u8,
) -> Result<(String, u32, SigningKey), KeyError> {
    let (found, seed) = data.split_first().ok_or(KeyError::EmptyKeyData)?;
    if *found != alg {
        return Err(KeyError::UnsupportedAlgorithm {
            found: *found,
            expected: alg,
        });
    }
    let seed: &[u8; ED25519_SEED_LEN] = seed.try_into().map_err(|_| KeyError::WrongKeyLength {
        expected: ED25519_SEED_LEN,
        found: seed.len(),
    })?;
    let key = SigningKey::from_bytes(seed);
    let computed = key_id(name, alg, key.verifying_key().as_bytes());
    if computed != declared {
        return Err(KeyError::KeyIdMismatch { declared, computed });
    }
    Ok((name.to_owned(), declared, key))
}

/// Generates a new Ed25519 key pair for signature type `alg`.
pub(crate) fn generate(name: &str, alg: u8) -> Result<(SignerKeyText, VerifierKeyText), KeyError> {
    if !is_valid_name(name) {
        return Err(KeyError::InvalidName);
    }
    let mut seed = [0u8; ED25519_SEED_LEN];
    getrandom::fill(&mut seed).map_err(KeyError::Randomness)?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    let id = key_id(name, alg, &public);
    let skey = SignerKeyText::encode(name, id, alg, &seed);
    seed.zeroize();
    Ok((skey, VerifierKeyText::encode(name, id, alg, &public)))
}

/// Generates a new Ed25519 note-signing key pair (signature type `0x01`)
/// for the key name `name`, seeded from the operating system's random number
/// generator.
///
/// Returns the secret signer key text and the public verifier key text, in
/// the formats of Go's `note.GenerateKey`.
pub fn generate_ed25519(name: &str) -> Result<(SignerKeyText, VerifierKeyText), KeyError> {
    generate(name, ALG_ED25519)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    #[test]
    fn names() {
        assert!(is_valid_name("PeterNeumann"));
        assert!(is_valid_name("example.com/log42"));
        assert!(is_valid_name("quasimodo.example/salvatore"));
        assert!(is_valid_name("日本語"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a+b"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a\tb"));
        assert!(!is_valid_name("a\nb"));
        assert!(!is_valid_name("a\u{a0}b")); // no-break space
        assert!(!is_valid_name("a\u{2003}b")); // em space
        assert!(!is_valid_name("a\u{3000}b")); // ideographic space
        assert!(!is_valid_name("a\u{1}b")); // control character
    }

    #[test]
    fn key_id_matches_go() {
        let parsed = parse_verifier_key(PETER_VKEY).unwrap();
        assert_eq!(parsed.key_id, 0xc74f20a3);
        assert_eq!(
            key_id("PeterNeumann", ALG_ED25519, &parsed.public_key),
            0xc74f20a3
        );
        // The signature type byte is part of the hash.
        assert_ne!(
            key_id("PeterNeumann", ALG_COSIGNATURE_V1, &parsed.public_key),
            0xc74f20a3
        );
    }

    #[test]
    fn parse_verifier_key_fields() {
        let p = parse_verifier_key(PETER_VKEY).unwrap();
        assert_eq!(p.name, "PeterNeumann");
        assert_eq!(p.alg, ALG_ED25519);
        assert_eq!(p.public_key.len(), 32);
        let text = VerifierKeyText::new(&p.name, p.alg, &p.public_key).unwrap();
        assert_eq!(text.as_str(), PETER_VKEY);
        assert_eq!(text.to_string(), PETER_VKEY);
    }

    #[test]
    fn upper_case_key_id_is_accepted() {
        let upper = PETER_VKEY.replace("c74f20a3", "C74F20A3");
        assert_eq!(parse_verifier_key(&upper).unwrap().key_id, 0xc74f20a3);
    }

    #[test]
    fn verifier_key_errors() {
        let cases: &[(&str, KeyError)] = &[
            ("PeterNeumann", KeyError::MissingField),
            ("PeterNeumann+c74f20a3", KeyError::MissingField),
            ("+c74f20a3+ARpc", KeyError::InvalidName),
            ("Peter Neumann+c74f20a3+ARpc", KeyError::InvalidName),
            ("PeterNeumann+c74f20a+ARpc", KeyError::InvalidKeyIdHex),
            ("PeterNeumann+c74f20a30+ARpc", KeyError::InvalidKeyIdHex),
            ("PeterNeumann+c74f20ag+ARpc", KeyError::InvalidKeyIdHex),
            ("PeterNeumann+-74f20a3+ARpc", KeyError::InvalidKeyIdHex),
            ("PeterNeumann+c74f20a3+AR!c", KeyError::InvalidBase64),
            ("PeterNeumann+c74f20a3+ARp", KeyError::InvalidBase64),
            ("PeterNeumann+c74f20a3+", KeyError::EmptyKeyData),
        ];
        for (text, want) in cases {
            assert_eq!(parse_verifier_key(text).as_ref(), Err(want), "{text}");
        }
        let bad_id = PETER_VKEY.replace("c74f20a3", "c74f20a4");
        assert_eq!(
            parse_verifier_key(&bad_id),
            Err(KeyError::KeyIdMismatch {
                declared: 0xc74f20a4,
                computed: 0xc74f20a3
            })
        );
    }

    #[test]
    fn ed25519_verifier_key_type_and_length() {
        // Go's test vectors: wrong length and unknown algorithm, each with a
        // key ID adjusted to match. The first one's "BADKEY==" ends in
        // non-zero pad bits, which Go's lenient decoder accepts and this
        // crate's canonical decoder rejects before the length check.
        let long = "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==";
        assert_eq!(
            parse_ed25519_verifier_key(long, ALG_ED25519).err(),
            Some(KeyError::InvalidBase64)
        );
        let p = parse_verifier_key(PETER_VKEY).unwrap();
        for len in [0, 31, 33, 64] {
            let mut key = p.public_key.clone();
            key.resize(len, 7);
            let mut data = vec![ALG_ED25519];
            data.extend_from_slice(&key);
            let text = format!(
                "PeterNeumann+{:08x}+{}",
                key_id("PeterNeumann", ALG_ED25519, &key),
                b64::encode(&data)
            );
            assert_eq!(
                parse_ed25519_verifier_key(&text, ALG_ED25519).err(),
                Some(KeyError::WrongKeyLength {
                    expected: 32,
                    found: len
                }),
                "{text}"
            );
        }
        let alg = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_eq!(
            parse_ed25519_verifier_key(alg, ALG_ED25519).err(),
            Some(KeyError::UnsupportedAlgorithm {
                found: 0x65,
                expected: ALG_ED25519
            })
        );
        assert_eq!(
            parse_ed25519_verifier_key(PETER_VKEY, ALG_COSIGNATURE_V1).err(),
            Some(KeyError::UnsupportedAlgorithm {
                found: ALG_ED25519,
                expected: ALG_COSIGNATURE_V1
            })
        );
    }

    #[test]
    fn invalid_point_is_rejected() {
        // y = 2 is not the y coordinate of a point on edwards25519.
        let mut y = [0u8; 32];
        y[0] = 2;
        assert!(VerifyingKey::from_bytes(&y).is_err());
        let text = VerifierKeyText::new("bad", ALG_ED25519, &y).unwrap();
        assert_eq!(
            parse_ed25519_verifier_key(text.as_str(), ALG_ED25519).err(),
            Some(KeyError::InvalidPublicKey)
        );
    }

    #[test]
    fn signer_key_parses_and_matches_verifier() {
        let (name, id, key) = parse_ed25519_signer_key(PETER_SKEY, ALG_ED25519).unwrap();
        let (vname, vid, vkey) = parse_ed25519_verifier_key(PETER_VKEY, ALG_ED25519).unwrap();
        assert_eq!((name.as_str(), id), (vname.as_str(), vid));
        assert_eq!(key.verifying_key(), vkey);
    }

    #[test]
    fn signer_key_errors() {
        assert_eq!(
            parse_ed25519_signer_key(PETER_VKEY, ALG_ED25519).err(),
            Some(KeyError::MissingPrivateKeyPrefix)
        );
        assert_eq!(
            parse_ed25519_signer_key("PRIVATE+KEY+PeterNeumann", ALG_ED25519).err(),
            Some(KeyError::MissingField)
        );
        assert_eq!(
            parse_ed25519_signer_key(PETER_SKEY, ALG_COSIGNATURE_V1).err(),
            Some(KeyError::UnsupportedAlgorithm {
                found: ALG_ED25519,
                expected: ALG_COSIGNATURE_V1
            })
        );
        let bad_id = PETER_SKEY.replace("c74f20a3", "00000000");
        assert_eq!(
            parse_ed25519_signer_key(&bad_id, ALG_ED25519).err(),
            Some(KeyError::KeyIdMismatch {
                declared: 0,
                computed: 0xc74f20a3
            })
        );
        let short = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK";
        assert_eq!(
            parse_ed25519_signer_key(short, ALG_ED25519).err(),
            Some(KeyError::WrongKeyLength {
                expected: 32,
                found: 2
            })
        );
    }

    #[test]
    fn generated_keys_round_trip() {
        let (skey, vkey) = generate_ed25519("example.com/log42").unwrap();
        assert!(
            skey.expose_secret()
                .starts_with("PRIVATE+KEY+example.com/log42+")
        );
        assert!(vkey.as_str().starts_with("example.com/log42+"));
        let (sname, sid, sk) = parse_ed25519_signer_key(skey.expose_secret(), ALG_ED25519).unwrap();
        let (vname, vid, vk) = parse_ed25519_verifier_key(vkey.as_str(), ALG_ED25519).unwrap();
        assert_eq!(sname, vname);
        assert_eq!(sid, vid);
        assert_eq!(sk.verifying_key(), vk);
        // Two generated keys differ.
        let (skey2, _) = generate_ed25519("example.com/log42").unwrap();
        assert_ne!(skey.expose_secret(), skey2.expose_secret());
    }

    #[test]
    fn generate_rejects_invalid_name() {
        assert_eq!(
            generate_ed25519("bad name").err(),
            Some(KeyError::InvalidName)
        );
        assert_eq!(generate_ed25519("").err(), Some(KeyError::InvalidName));
    }

    #[test]
    fn signer_key_text_is_redacted() {
        let skey = SignerKeyText::from(PETER_SKEY.to_owned());
        let dbg = format!("{skey:?}");
        assert_eq!(dbg, "SignerKeyText(<redacted>)");
        assert!(!dbg.contains("AYEK"));
        assert_eq!(skey.expose_secret(), PETER_SKEY);
    }

    #[test]
    fn encode_signer_key_matches_go() {
        let (_, _, key) = parse_ed25519_signer_key(PETER_SKEY, ALG_ED25519).unwrap();
        let text = SignerKeyText::encode("PeterNeumann", 0xc74f20a3, ALG_ED25519, key.as_bytes());
        assert_eq!(text.expose_secret(), PETER_SKEY);
    }

    #[test]
    fn verifier_key_text_new_errors() {
        assert_eq!(
            VerifierKeyText::new("a+b", ALG_ED25519, &[1]),
            Err(KeyError::InvalidName)
        );
        assert_eq!(
            VerifierKeyText::new("ab", ALG_ED25519, &[]),
            Err(KeyError::EmptyKeyData)
        );
    }

    #[test]
    fn errors_display() {
        let e = KeyError::KeyIdMismatch {
            declared: 1,
            computed: 0xc74f20a3,
        };
        assert_eq!(
            e.to_string(),
            "key ID 00000001 does not match the key (computed c74f20a3)"
        );
        assert!(KeyError::InvalidBase64.to_string().contains("base64"));
    }
}
