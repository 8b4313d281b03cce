//! Witness cosignatures (C2SP tlog-cosignature), Ed25519 `cosignature/v1`.
//!
//! A cosignature is a note signature applied to a [checkpoint](crate::Checkpoint)
//! by a cosigner (typically a witness), stating that, as of the given time,
//! the consistent tree head with the largest size it has observed for the
//! log identified by the origin line has the given root hash.
//!
//! - The key ID uses signature type `0x04`
//!   ([`ALG_COSIGNATURE_V1`]):
//!   `SHA-256(name || "\n" || 0x04 || 32-byte Ed25519 public key)[:4]`.
//!   Verifier keys are written `<name>+<key ID>+<base64(0x04 || public
//!   key)>`, signer keys `PRIVATE+KEY+<name>+<key ID>+<base64(0x04 ||
//!   seed)>`.
//! - The signature is a `timestamped_signature`: the `u64` timestamp
//!   (POSIX seconds, big-endian, at most 2^63 - 1) followed by the 64-byte
//!   Ed25519 signature; with the 4-byte key ID the signature line carries 76
//!   bytes.
//! - The Ed25519 signature is over two newline-terminated lines followed by
//!   the whole checkpoint note text (extension lines included):
//!
//! ```text
//! cosignature/v1
//! time 1679315147
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//! ```
//!
//! where the timestamp is ASCII decimal with no leading zeroes.
//!
//! The ML-DSA-44 (`subtree/v1`) type is in [`mldsa`](crate::mldsa).

use core::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::Signer as _;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::b64;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::key::{
    ALG_COSIGNATURE_V1, ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN, KeyError, SignerKeyText,
    VerifierKeyText, ed25519_public_key, generate, is_valid_name, key_id, parse_ed25519_signer_key,
    parse_ed25519_verifier_key,
};
use crate::note::Signature;
use crate::signer::{SignError, Signer};
use crate::verifier::{Verifier, ed25519_verify};

/// The header line of the signed message (domain separation).
const HEADER: &str = "cosignature/v1\n";

/// Length of the timestamp prefix of the signature.
const TIMESTAMP_LEN: usize = 8;

/// Length of the signature bytes after the key ID: timestamp and Ed25519
/// signature.
const SIGNATURE_LEN: usize = TIMESTAMP_LEN + 64;

/// The largest valid timestamp, 2^63 - 1.
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Returns the message an Ed25519 `cosignature/v1` signs:
/// `"cosignature/v1\ntime <timestamp>\n"` followed by the checkpoint note
/// text.
///
/// Neither the timestamp range nor the checkpoint text is checked here.
pub fn cosignature_message(timestamp: u64, checkpoint_text: &str) -> String {
    format!("{HEADER}time {timestamp}\n{checkpoint_text}")
}

/// Why a cosignature's timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosignatureError {
    /// The signature is not canonical standard base64.
    BadBase64,
    /// The signature does not decode to 76 bytes (key ID, timestamp and
    /// Ed25519 signature), so it is not an Ed25519 cosignature.
    WrongLength {
        /// The decoded length in bytes.
        found: usize,
    },
    /// The timestamp exceeds 2^63 - 1.
    TimestampOutOfRange {
        /// The timestamp found.
        timestamp: u64,
    },
}

impl fmt::Display for CosignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CosignatureError::BadBase64 => f.write_str("malformed cosignature: not base64"),
            CosignatureError::WrongLength { found } => write!(
                f,
                "malformed cosignature: {found} bytes, want {}",
                4 + SIGNATURE_LEN
            ),
            CosignatureError::TimestampOutOfRange { timestamp } => write!(
                f,
                "malformed cosignature: timestamp {timestamp} exceeds 2^63 - 1"
            ),
        }
    }
}

impl std::error::Error for CosignatureError {}

/// Returns the timestamp (POSIX seconds) embedded in an Ed25519
/// cosignature found in a note.
///
/// This only decodes the signature; it does not verify it. Use it on
/// signatures from [`Note::verified`](crate::Note::verified), or use
/// [`CosignatureVerifier::verify_timestamp`].
pub fn cosignature_timestamp(sig: &Signature) -> Result<u64, CosignatureError> {
    let raw = b64::decode(&sig.base64).ok_or(CosignatureError::BadBase64)?;
    let (_, rest) = raw
        .split_first_chunk::<4>()
        .ok_or(CosignatureError::WrongLength { found: raw.len() })?;
    if rest.len() != SIGNATURE_LEN {
        return Err(CosignatureError::WrongLength { found: raw.len() });
    }
    let (ts, _) = rest
        .split_first_chunk::<TIMESTAMP_LEN>()
        .ok_or(CosignatureError::WrongLength { found: raw.len() })?;
    let timestamp = u64::from_be_bytes(*ts);
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampOutOfRange { timestamp });
    }
    Ok(timestamp)
}

/// Generates a new Ed25519 cosigner key pair (signature type `0x04`) for the
/// key name `name`, seeded from the operating system's random number
/// generator.
pub fn generate_cosigner(name: &str) -> Result<(SignerKeyText, VerifierKeyText), KeyError> {
    generate(name, ALG_COSIGNATURE_V1)
}

/// The timestamp a cosigner signs with: `fixed` if set, else the current
/// POSIX time.
pub(crate) fn signing_time(fixed: Option<u64>) -> Result<u64, SignError> {
    match fixed {
        Some(t) => Ok(t),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| SignError::Backend(Box::new(e)))?
            .as_secs()),
    }
}

/// Checks that `msg` is a checkpoint note text and returns it as `&str`.
fn checkpoint_text(msg: &[u8]) -> Result<&str, SignError> {
    let text = core::str::from_utf8(msg)
        .map_err(|_| SignError::NotACheckpoint(CheckpointError::NotUtf8))?;
    Checkpoint::parse(text).map_err(SignError::NotACheckpoint)?;
    Ok(text)
}

/// An Ed25519 `cosignature/v1` signer (signature type `0x04`).
///
/// As a [`Signer`] it signs checkpoint note texts with the current time, or
/// with a fixed time set by [`with_fixed_timestamp`](Self::with_fixed_timestamp).
/// It refuses to sign a text that is not a valid checkpoint.
///
/// The specification requires distinct public keys for distinct cosigners,
/// because the signed message does not commit to the cosigner name.
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
    fixed_timestamp: Option<u64>,
}

impl CosignatureSigner {
    /// Constructs a signer from an encoded signer key
    /// `PRIVATE+KEY+<name>+<key ID>+<base64(0x04 || seed)>`.
    pub fn from_signer_key(skey: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) = parse_ed25519_signer_key(skey, ALG_COSIGNATURE_V1)?;
        Ok(CosignatureSigner {
            name,
            key_id,
            key,
            fixed_timestamp: None,
        })
    }

    /// Constructs a signer from a key name and a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; ED25519_SEED_LEN]) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(CosignatureSigner {
            name: name.to_owned(),
            key_id,
            key,
            fixed_timestamp: None,
        })
    }

    /// Makes [`Signer::sign`] use `timestamp` (POSIX seconds) instead of the
    /// current time.
    pub fn with_fixed_timestamp(mut self, timestamp: u64) -> Self {
        self.fixed_timestamp = Some(timestamp);
        self
    }

    /// Signs the checkpoint note text `msg` as of `timestamp` (POSIX
    /// seconds) and returns the 72-byte `timestamped_signature` (timestamp
    /// then Ed25519 signature).
    ///
    /// Fails if `msg` is not a valid checkpoint or `timestamp` exceeds
    /// 2^63 - 1.
    pub fn sign_at(&self, msg: &[u8], timestamp: u64) -> Result<Vec<u8>, SignError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(SignError::TimestampOutOfRange { timestamp });
        }
        let text = checkpoint_text(msg)?;
        let signed = cosignature_message(timestamp, text);
        let sig = self
            .key
            .try_sign(signed.as_bytes())
            .map_err(|e| SignError::Backend(Box::new(e)))?;
        let mut out = Vec::with_capacity(SIGNATURE_LEN);
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&sig.to_bytes());
        Ok(out)
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    /// Returns the verifier for this cosigner.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Returns the encoded verifier key `<name>+<key ID>+<base64(0x04 ||
    /// public key)>`.
    pub fn verifier_key(&self) -> VerifierKeyText {
        VerifierKeyText::encode(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            &self.public_key(),
        )
    }
}

impl Signer for CosignatureSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_at(msg, signing_time(self.fixed_timestamp)?)
    }

    fn verifier_key(&self) -> VerifierKeyText {
        CosignatureSigner::verifier_key(self)
    }
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("fixed_timestamp", &self.fixed_timestamp)
            .finish_non_exhaustive()
    }
}

/// An Ed25519 `cosignature/v1` verifier (signature type `0x04`).
///
/// As a [`Verifier`] it accepts a signature only if the note text is a valid
/// checkpoint, the signature is 72 bytes with a timestamp of at most
/// 2^63 - 1, and the Ed25519 signature over the `cosignature/v1` message
/// verifies.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Constructs a verifier from an encoded verifier key
    /// `<name>+<key ID>+<base64(0x04 || public key)>`.
    pub fn from_verifier_key(vkey: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) = parse_ed25519_verifier_key(vkey, ALG_COSIGNATURE_V1)?;
        Ok(CosignatureVerifier { name, key_id, key })
    }

    /// Constructs a verifier from a cosigner name and a 32-byte Ed25519
    /// public key.
    pub fn from_public_key(
        name: &str,
        public_key: &[u8; ED25519_PUBLIC_KEY_LEN],
    ) -> Result<Self, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = ed25519_public_key(public_key)?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, public_key),
            key,
        })
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.key.to_bytes()
    }

    /// Returns the encoded verifier key.
    pub fn verifier_key(&self) -> VerifierKeyText {
        VerifierKeyText::encode(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// Verifies the cosignature `sig` (without key ID) over the checkpoint
    /// note text `msg` and returns its timestamp if valid.
    pub fn verify_timestamp(&self, msg: &[u8], sig: &[u8]) -> Option<u64> {
        let (ts, ed_sig) = sig.split_first_chunk::<TIMESTAMP_LEN>()?;
        if sig.len() != SIGNATURE_LEN {
            return None;
        }
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp > MAX_TIMESTAMP {
            return None;
        }
        let text = checkpoint_text(msg).ok()?;
        let signed = cosignature_message(timestamp, text);
        ed25519_verify(&self.key, signed.as_bytes(), ed_sig).then_some(timestamp)
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify_timestamp(msg, sig).is_some()
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CosignatureVerifier")
            .field(&self.verifier_key().as_str())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{OpenError, open, sign, sign_note};
    use crate::signer::Ed25519Signer;
    use crate::verifier::Verifiers;

    const CHECKPOINT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> CosignatureSigner {
        CosignatureSigner::from_seed("witness.example.com/w1", &[42u8; 32])
            .unwrap()
            .with_fixed_timestamp(1679315147)
    }

    #[test]
    fn signed_message_format() {
        assert_eq!(
            cosignature_message(1679315147, CHECKPOINT),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        assert_eq!(
            cosignature_message(0, "o\n0\nx\n"),
            "cosignature/v1\ntime 0\no\n0\nx\n"
        );
    }

    #[test]
    fn signature_layout() {
        let w = witness();
        let sig = w.sign(CHECKPOINT.as_bytes()).unwrap();
        assert_eq!(sig.len(), 72);
        assert_eq!(&sig[..8], &1679315147u64.to_be_bytes());
        // The Ed25519 part is a plain signature over the cosignature/v1
        // message.
        let plain = Ed25519Signer::from_seed("witness.example.com/w1", &[42u8; 32]).unwrap();
        let expected = plain
            .sign(cosignature_message(1679315147, CHECKPOINT).as_bytes())
            .unwrap();
        assert_eq!(&sig[8..], expected.as_slice());
    }

    #[test]
    fn key_id_uses_type_0x04() {
        let w = witness();
        let plain = Ed25519Signer::from_seed("witness.example.com/w1", &[42u8; 32]).unwrap();
        assert_eq!(w.public_key(), plain.public_key());
        assert_eq!(
            w.key_id(),
            key_id("witness.example.com/w1", 0x04, &w.public_key())
        );
        assert_ne!(w.key_id(), plain.key_id());
        let vkey = w.verifier_key();
        assert!(
            vkey.as_str()
                .starts_with(&format!("witness.example.com/w1+{:08x}+B", w.key_id()))
        );
        let v = CosignatureVerifier::from_verifier_key(vkey.as_str()).unwrap();
        assert_eq!(v, w.verifier());
        assert_eq!(
            CosignatureVerifier::from_public_key("witness.example.com/w1", &w.public_key())
                .unwrap(),
            v
        );
    }

    #[test]
    fn parses_third_party_vkey() {
        // A native type-0x04 verifier key from transparency-dev/formats'
        // tests.
        let v = CosignatureVerifier::from_verifier_key(
            "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
        )
        .unwrap();
        assert_eq!(v.name(), "remora.n621.de");
        assert_eq!(v.key_id(), 0xda77ade7);
        // A plain Ed25519 (0x01) key is not a cosignature key.
        assert_eq!(
            CosignatureVerifier::from_verifier_key(
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .err(),
            Some(KeyError::UnsupportedAlgorithm {
                found: 0x01,
                expected: 0x04
            })
        );
    }

    #[test]
    fn round_trip_through_notes() {
        let log = Ed25519Signer::from_seed("example.com/behind-the-sofa", &[1u8; 32]).unwrap();
        let w = witness();
        let msg = sign(CHECKPOINT, &[&log, &w]).unwrap();

        let known = Verifiers::new()
            .with(log.verifier())
            .unwrap()
            .with(w.verifier())
            .unwrap();
        let n = open(msg.as_bytes(), &known).unwrap();
        assert_eq!(n.verified.len(), 2);
        assert_eq!(n.verified[1].name, "witness.example.com/w1");
        assert_eq!(cosignature_timestamp(&n.verified[1]), Ok(1679315147));
        assert_eq!(Checkpoint::parse(&n.text).unwrap().size, 20852163);

        let sig = n.verified[1].signature_bytes().unwrap();
        assert_eq!(
            w.verifier().verify_timestamp(n.text.as_bytes(), &sig),
            Some(1679315147)
        );
    }

    #[test]
    fn witness_adds_cosignature_to_log_signed_checkpoint() {
        let log = Ed25519Signer::from_seed("example.com/behind-the-sofa", &[1u8; 32]).unwrap();
        let signed = sign(CHECKPOINT, &[&log]).unwrap();
        let log_only = Verifiers::new().with(log.verifier()).unwrap();
        let note = open(signed.as_bytes(), &log_only).unwrap();
        let w = witness();
        let cosigned = sign_note(&note, &[&w]).unwrap();
        assert!(cosigned.starts_with(&signed));
        let witness_only = Verifiers::new().with(w.verifier()).unwrap();
        let n = open(cosigned.as_bytes(), &witness_only).unwrap();
        assert_eq!(n.verified[0].name, "witness.example.com/w1");
        assert_eq!(n.unverified[0].name, "example.com/behind-the-sofa");
    }

    #[test]
    fn tampered_checkpoint_is_rejected() {
        let w = witness();
        let msg = sign(CHECKPOINT, &[&w]).unwrap();
        let known = Verifiers::new().with(w.verifier()).unwrap();
        for tampered in [
            msg.replace("20852163", "20852164"),
            msg.replace("behind-the-sofa", "under-the-bed"),
            msg.replace("CsUYap", "CsUYaq"),
            msg.replacen("jxq2I=\n", "jxq2I=\nextension\n", 1),
        ] {
            assert!(
                matches!(
                    open(tampered.as_bytes(), &known),
                    Err(OpenError::InvalidSignature { .. })
                ),
                "{tampered}"
            );
        }
    }

    #[test]
    fn extension_lines_are_signed() {
        let w = witness();
        let text = format!("{CHECKPOINT}ext\n");
        let sig = w.sign(text.as_bytes()).unwrap();
        let v = w.verifier();
        assert!(v.verify(text.as_bytes(), &sig));
        assert!(!v.verify(format!("{CHECKPOINT}exu\n").as_bytes(), &sig));
        assert!(!v.verify(CHECKPOINT.as_bytes(), &sig));
    }

    #[test]
    fn timestamp_is_signed() {
        let w = witness();
        let v = w.verifier();
        let mut sig = w.sign(CHECKPOINT.as_bytes()).unwrap();
        assert!(v.verify(CHECKPOINT.as_bytes(), &sig));
        sig[7] ^= 1;
        assert!(!v.verify(CHECKPOINT.as_bytes(), &sig));
    }

    #[test]
    fn refuses_non_checkpoints() {
        let w = witness();
        assert!(matches!(
            w.sign(b"just a note\n"),
            Err(SignError::NotACheckpoint(_))
        ));
        assert!(matches!(
            sign("just a note\n", &[&w]),
            Err(SignError::NotACheckpoint(_))
        ));
        assert!(matches!(
            w.sign(b"\xff\n"),
            Err(SignError::NotACheckpoint(CheckpointError::NotUtf8))
        ));
        // And a valid-looking signature over a non-checkpoint never verifies.
        let plain = Ed25519Signer::from_seed("witness.example.com/w1", &[42u8; 32]).unwrap();
        let text = "just a note\n";
        let mut sig = 5u64.to_be_bytes().to_vec();
        sig.extend(plain.sign(cosignature_message(5, text).as_bytes()).unwrap());
        assert!(!w.verifier().verify(text.as_bytes(), &sig));
    }

    #[test]
    fn timestamp_range() {
        let w = witness();
        let max = w.sign_at(CHECKPOINT.as_bytes(), i64::MAX as u64).unwrap();
        assert_eq!(
            w.verifier().verify_timestamp(CHECKPOINT.as_bytes(), &max),
            Some(i64::MAX as u64)
        );
        assert!(matches!(
            w.sign_at(CHECKPOINT.as_bytes(), 1 << 63),
            Err(SignError::TimestampOutOfRange { timestamp }) if timestamp == 1 << 63
        ));
        // A signature with an out-of-range timestamp is rejected even if the
        // Ed25519 part is valid.
        let plain = Ed25519Signer::from_seed("witness.example.com/w1", &[42u8; 32]).unwrap();
        let ts = 1u64 << 63;
        let mut sig = ts.to_be_bytes().to_vec();
        sig.extend(
            plain
                .sign(cosignature_message(ts, CHECKPOINT).as_bytes())
                .unwrap(),
        );
        assert!(!w.verifier().verify(CHECKPOINT.as_bytes(), &sig));
    }

    #[test]
    fn verify_rejects_wrong_lengths() {
        let w = witness();
        let v = w.verifier();
        let sig = w.sign(CHECKPOINT.as_bytes()).unwrap();
        assert!(!v.verify(CHECKPOINT.as_bytes(), &sig[..71]));
        assert!(!v.verify(CHECKPOINT.as_bytes(), &sig[..7]));
        assert!(!v.verify(CHECKPOINT.as_bytes(), &[]));
        let mut long = sig.clone();
        long.push(0);
        assert!(!v.verify(CHECKPOINT.as_bytes(), &long));
    }

    #[test]
    fn current_time_is_used_without_fixed_timestamp() {
        let w = CosignatureSigner::from_seed("w", &[3u8; 32]).unwrap();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sig = w.sign(CHECKPOINT.as_bytes()).unwrap();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ts = w
            .verifier()
            .verify_timestamp(CHECKPOINT.as_bytes(), &sig)
            .unwrap();
        assert!(before <= ts && ts <= after);
    }

    #[test]
    fn timestamp_extraction_vectors() {
        // The cosignature line of the C2SP tlog-cosignature example
        // ("time 1679315147").
        let spec = Signature {
            name: "witness.example.com/w1".into(),
            key_id: 0x8d66cf3f,
            base64: "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==".into(),
        };
        assert_eq!(cosignature_timestamp(&spec), Ok(1679315147));
        // transparency-dev/formats' CosignatureTimestamp test vector.
        let td = Signature {
            name: "x".into(),
            key_id: 0,
            base64: "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==".into(),
        };
        assert_eq!(cosignature_timestamp(&td), Ok(1727964367));
        // A plain Ed25519 note signature (68 bytes) is not a cosignature.
        let plain = Signature {
            name: "x".into(),
            key_id: 0,
            base64: "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=".into(),
        };
        assert_eq!(
            cosignature_timestamp(&plain),
            Err(CosignatureError::WrongLength { found: 68 })
        );
        let gibberish = Signature {
            name: "x".into(),
            key_id: 0,
            base64: "5%/$!\n 2".into(),
        };
        assert_eq!(
            cosignature_timestamp(&gibberish),
            Err(CosignatureError::BadBase64)
        );
        let short = Signature {
            name: "x".into(),
            key_id: 0,
            base64: "AAA=".into(),
        };
        assert_eq!(
            cosignature_timestamp(&short),
            Err(CosignatureError::WrongLength { found: 2 })
        );
        let mut raw = vec![0u8; 4];
        raw.extend((1u64 << 63).to_be_bytes());
        raw.extend([0u8; 64]);
        let big = Signature {
            name: "x".into(),
            key_id: 0,
            base64: b64::encode(&raw),
        };
        assert_eq!(
            cosignature_timestamp(&big),
            Err(CosignatureError::TimestampOutOfRange { timestamp: 1 << 63 })
        );
    }

    #[test]
    fn signer_key_round_trip() {
        let (skey, vkey) = generate_cosigner("witness.example/w2").unwrap();
        let s = CosignatureSigner::from_signer_key(skey.expose_secret())
            .unwrap()
            .with_fixed_timestamp(10);
        let v = CosignatureVerifier::from_verifier_key(vkey.as_str()).unwrap();
        assert_eq!(s.verifier_key(), vkey);
        assert_eq!(s.key_id(), v.key_id());
        let sig = s.sign(CHECKPOINT.as_bytes()).unwrap();
        assert_eq!(v.verify_timestamp(CHECKPOINT.as_bytes(), &sig), Some(10));
        // An Ed25519 (0x01) signer key is not accepted as a cosigner key.
        assert!(matches!(
            CosignatureSigner::from_signer_key(
                "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
            ),
            Err(KeyError::UnsupportedAlgorithm {
                found: 0x01,
                expected: 0x04
            })
        ));
        let dbg = format!("{s:?}");
        assert!(dbg.contains("witness.example/w2") && !dbg.contains("key:"));
    }
}
