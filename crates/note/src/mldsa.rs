//! ML-DSA-44 checkpoint cosignatures (C2SP tlog-cosignature v1.1.0-rc.1,
//! signature type `0x06`).
//!
//! C2SP tlog-checkpoint recommends that logs sign their checkpoints with this
//! type, and tlog-cosignature that new witnesses use it: unlike Ed25519 it
//! resists quantum computers, and its signed message names the cosigner.
//!
//! - The key ID is
//!   `SHA-256(name || "\n" || 0x06 || 1312-byte ML-DSA-44 public key)[:4]`;
//!   verifier keys are `<name>+<key ID>+<base64(0x06 || public key)>`.
//! - Signer keys, which no specification defines, follow the Ed25519 form:
//!   `PRIVATE+KEY+<name>+<key ID>+<base64(0x06 || 32-byte seed)>`, where the
//!   seed is FIPS 204's ξ, the input of `ML-DSA.KeyGen_internal`.
//! - The signature is a `timestamped_signature`: the big-endian `u64`
//!   timestamp (at most 2^63 - 1) followed by the 2,420-byte ML-DSA-44
//!   signature, so a signature line carries 4 + 8 + 2,420 bytes.
//! - The ML-DSA-44 signature is pure ML-DSA (FIPS 204 Algorithm 2, empty
//!   context string, hedged) over the TLS-encoded `cosigned_message`:
//!
//! ```text
//! struct {
//!     uint8 label[12] = "subtree/v1\n\0";
//!     opaque cosigner_name<1..2^8-1>;
//!     uint64 timestamp;
//!     opaque log_origin<1..2^8-1>;
//!     uint64 start;            // 0 for a checkpoint
//!     uint64 end;              // the checkpoint's tree size
//!     uint8 hash[32];          // the checkpoint's root hash
//! } cosigned_message;
//! ```
//!
//! Extension lines of the checkpoint are not signed, as the specification
//! says. A timestamp of zero makes no statement about time; that is what a
//! log uses when it signs its own checkpoints.

use core::fmt;

use ml_dsa::{
    EncodedVerifyingKey, ExpandedSigningKey, MlDsa44, Signature as MlDsaSignature, VerifyingKey,
};
use zeroize::Zeroizing;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::signing_time;
use crate::key::{
    ALG_MLDSA44_COSIGNATURE, KeyError, SignerKeyText, VerifierKeyText, is_valid_name, key_id,
    parse_seed_signer_key, parse_verifier_key,
};
use crate::signer::{SignError, Signer};
use crate::verifier::Verifier;

/// Length of an ML-DSA-44 public key (FIPS 204 `pkEncode`).
pub const MLDSA44_PUBLIC_KEY_LEN: usize = 1312;

/// Length of an ML-DSA-44 signature (FIPS 204 `sigEncode`).
pub const MLDSA44_SIGNATURE_LEN: usize = 2420;

/// Length of an ML-DSA key-generation seed ξ.
pub const MLDSA44_SEED_LEN: usize = 32;

/// The label that starts every `cosigned_message`.
const LABEL: &[u8; 12] = b"subtree/v1\n\0";

/// Length of the timestamp prefix of the signature.
const TIMESTAMP_LEN: usize = 8;

/// Length of the signature bytes after the key ID.
const SIGNATURE_LEN: usize = TIMESTAMP_LEN + MLDSA44_SIGNATURE_LEN;

/// The largest valid timestamp, 2^63 - 1.
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// The largest cosigner name or origin, in bytes (`opaque <1..2^8-1>`).
const MAX_LABEL_LEN: usize = 255;

/// Returns the `cosigned_message` that an ML-DSA-44 cosignature by
/// `cosigner` at `timestamp` signs for `checkpoint` (`start` 0, `end` the
/// tree size).
///
/// Fails if the cosigner name or the origin is empty or longer than 255
/// bytes, or the timestamp exceeds 2^63 - 1.
pub fn mldsa_cosignature_message(
    cosigner: &str,
    timestamp: u64,
    checkpoint: &Checkpoint,
) -> Result<Vec<u8>, SignError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(SignError::TimestampOutOfRange { timestamp });
    }
    let name = length_prefixed(cosigner).ok_or_else(|| SignError::InvalidSignerName {
        name: cosigner.to_owned(),
    })?;
    let origin = length_prefixed(&checkpoint.origin).ok_or(SignError::OriginTooLong {
        len: checkpoint.origin.len(),
        max: MAX_LABEL_LEN,
    })?;
    let mut m = Vec::with_capacity(LABEL.len() + name.len() + origin.len() + 3 * 8 + 32);
    m.extend_from_slice(LABEL);
    m.extend_from_slice(&name);
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.extend_from_slice(&origin);
    m.extend_from_slice(&0u64.to_be_bytes());
    m.extend_from_slice(&checkpoint.size.to_be_bytes());
    m.extend_from_slice(&checkpoint.root_hash);
    Ok(m)
}

/// Encodes `opaque <1..2^8-1>`: a length byte, then the bytes.
fn length_prefixed(s: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(s.len()).ok().filter(|&n| n > 0)?;
    let mut out = Vec::with_capacity(1 + s.len());
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Some(out)
}

/// Parses the note text `msg` as a checkpoint.
fn parse_checkpoint(msg: &[u8]) -> Result<Checkpoint, SignError> {
    let text = core::str::from_utf8(msg)
        .map_err(|_| SignError::NotACheckpoint(CheckpointError::NotUtf8))?;
    Checkpoint::parse(text).map_err(SignError::NotACheckpoint)
}

/// Checks a cosigner name: a valid key name of at most 255 bytes.
fn check_name(name: &str) -> Result<(), KeyError> {
    if is_valid_name(name) && name.len() <= MAX_LABEL_LEN {
        Ok(())
    } else {
        Err(KeyError::InvalidName)
    }
}

/// Generates a new ML-DSA-44 cosigner key pair (signature type `0x06`) for
/// the key name `name`, seeded from the operating system's random number
/// generator.
pub fn generate_mldsa44(name: &str) -> Result<(SignerKeyText, VerifierKeyText), KeyError> {
    check_name(name)?;
    let mut seed = Zeroizing::new([0u8; MLDSA44_SEED_LEN]);
    getrandom::fill(seed.as_mut()).map_err(KeyError::Randomness)?;
    let signer = MlDsaCosigner::from_seed(name, &seed)?;
    let skey = SignerKeyText::encode(name, signer.key_id, ALG_MLDSA44_COSIGNATURE, &seed);
    Ok((skey, signer.verifier_key()))
}

/// An ML-DSA-44 checkpoint cosigner (signature type `0x06`).
///
/// As a [`Signer`] it signs checkpoint note texts with the current time, or
/// with a fixed time set by [`with_fixed_timestamp`](Self::with_fixed_timestamp)
/// (a log signing its own checkpoints uses 0). It refuses to sign a text
/// that is not a valid checkpoint.
pub struct MlDsaCosigner {
    name: String,
    key_id: u32,
    // The expanded key signs (hedged); it is wiped on drop.
    key: ExpandedSigningKey<MlDsa44>,
    public: VerifyingKey<MlDsa44>,
    fixed_timestamp: Option<u64>,
}

impl MlDsaCosigner {
    /// Constructs a signer from a key name and a 32-byte seed ξ.
    pub fn from_seed(name: &str, seed: &[u8; MLDSA44_SEED_LEN]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = ExpandedSigningKey::<MlDsa44>::from_seed(&(*seed).into());
        let public = key.verifying_key();
        let key_id = key_id(name, ALG_MLDSA44_COSIGNATURE, public.encode().as_slice());
        Ok(MlDsaCosigner {
            name: name.to_owned(),
            key_id,
            key,
            public,
            fixed_timestamp: None,
        })
    }

    /// Constructs a signer from an encoded signer key
    /// `PRIVATE+KEY+<name>+<key ID>+<base64(0x06 || seed)>`, checking the key
    /// ID against the derived public key.
    pub fn from_signer_key(skey: &str) -> Result<Self, KeyError> {
        let (name, declared, seed) = parse_seed_signer_key(skey, ALG_MLDSA44_COSIGNATURE)?;
        let signer = Self::from_seed(&name, &seed)?;
        if signer.key_id != declared {
            return Err(KeyError::KeyIdMismatch {
                declared,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// Makes [`Signer::sign`] use `timestamp` (POSIX seconds) instead of the
    /// current time. Zero states nothing about time.
    pub fn with_fixed_timestamp(mut self, timestamp: u64) -> Self {
        self.fixed_timestamp = Some(timestamp);
        self
    }

    /// Signs the checkpoint note text `msg` as of `timestamp` and returns the
    /// 2,428-byte `timestamped_signature` (timestamp, then ML-DSA-44
    /// signature).
    pub fn sign_at(&self, msg: &[u8], timestamp: u64) -> Result<Vec<u8>, SignError> {
        let checkpoint = parse_checkpoint(msg)?;
        let signed = mldsa_cosignature_message(&self.name, timestamp, &checkpoint)?;
        let sig = self
            .key
            .sign_randomized(&signed, &[], &mut getrandom::SysRng)
            .map_err(|e| SignError::Backend(format!("ML-DSA-44 signing failed: {e}").into()))?;
        let mut out = Vec::with_capacity(SIGNATURE_LEN);
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(sig.encode().as_slice());
        Ok(out)
    }

    /// Returns the 1,312-byte ML-DSA-44 public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.public.encode().to_vec()
    }

    /// Returns the verifier for this cosigner.
    pub fn verifier(&self) -> MlDsaCosignatureVerifier {
        MlDsaCosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.public.clone(),
        }
    }

    /// Returns the encoded verifier key `<name>+<key ID>+<base64(0x06 ||
    /// public key)>`.
    pub fn verifier_key(&self) -> VerifierKeyText {
        VerifierKeyText::encode(
            &self.name,
            self.key_id,
            ALG_MLDSA44_COSIGNATURE,
            &self.public_key(),
        )
    }
}

impl Signer for MlDsaCosigner {
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
        MlDsaCosigner::verifier_key(self)
    }
}

impl fmt::Debug for MlDsaCosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlDsaCosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("fixed_timestamp", &self.fixed_timestamp)
            .finish_non_exhaustive()
    }
}

/// An ML-DSA-44 checkpoint cosignature verifier (signature type `0x06`).
///
/// As a [`Verifier`] it accepts a signature only if the note text is a valid
/// checkpoint, the signature is 2,428 bytes with a timestamp of at most
/// 2^63 - 1, and the ML-DSA-44 signature over the `cosigned_message`
/// verifies.
#[derive(Clone, PartialEq)]
pub struct MlDsaCosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey<MlDsa44>,
}

impl MlDsaCosignatureVerifier {
    /// Constructs a verifier from an encoded verifier key
    /// `<name>+<key ID>+<base64(0x06 || 1312-byte public key)>`.
    pub fn from_verifier_key(vkey: &str) -> Result<Self, KeyError> {
        let parsed = parse_verifier_key(vkey)?;
        if parsed.alg != ALG_MLDSA44_COSIGNATURE {
            return Err(KeyError::UnsupportedAlgorithm {
                found: parsed.alg,
                expected: ALG_MLDSA44_COSIGNATURE,
            });
        }
        let mut v = Self::from_public_key(&parsed.name, &parsed.public_key)?;
        v.key_id = parsed.key_id;
        Ok(v)
    }

    /// Constructs a verifier from a cosigner name and a 1,312-byte ML-DSA-44
    /// public key.
    pub fn from_public_key(name: &str, public_key: &[u8]) -> Result<Self, KeyError> {
        check_name(name)?;
        let encoded = EncodedVerifyingKey::<MlDsa44>::try_from(public_key).map_err(|_| {
            KeyError::WrongKeyLength {
                expected: MLDSA44_PUBLIC_KEY_LEN,
                found: public_key.len(),
            }
        })?;
        Ok(MlDsaCosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_MLDSA44_COSIGNATURE, public_key),
            key: VerifyingKey::decode(&encoded),
        })
    }

    /// Returns the 1,312-byte ML-DSA-44 public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.encode().to_vec()
    }

    /// Returns the encoded verifier key.
    pub fn verifier_key(&self) -> VerifierKeyText {
        VerifierKeyText::encode(
            &self.name,
            self.key_id,
            ALG_MLDSA44_COSIGNATURE,
            &self.public_key(),
        )
    }

    /// Verifies the cosignature `sig` (without key ID) over the checkpoint
    /// note text `msg` and returns its timestamp if valid.
    pub fn verify_timestamp(&self, msg: &[u8], sig: &[u8]) -> Option<u64> {
        if sig.len() != SIGNATURE_LEN {
            return None;
        }
        let (ts, body) = sig.split_first_chunk::<TIMESTAMP_LEN>()?;
        let timestamp = u64::from_be_bytes(*ts);
        let checkpoint = parse_checkpoint(msg).ok()?;
        let signed = mldsa_cosignature_message(&self.name, timestamp, &checkpoint).ok()?;
        let sigma = MlDsaSignature::<MlDsa44>::try_from(body).ok()?;
        self.key
            .verify_with_context(&signed, &[], &sigma)
            .then_some(timestamp)
    }
}

impl Verifier for MlDsaCosignatureVerifier {
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

impl fmt::Debug for MlDsaCosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlDsaCosignatureVerifier")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}
