//! Signed notes, transparency-log checkpoints and witness cosignatures.
//!
//! This crate implements the text formats that evault uses to publish and
//! verify signed statements about its Merkle log:
//!
//! - [C2SP signed-note] (`c2sp.org/signed-note`): a text ending in newline,
//!   a blank line, and one or more signature lines of the form
//!   `— <key name> base64(key ID || signature)`. See [`sign`], [`sign_note`]
//!   and [`open`].
//! - [C2SP tlog-checkpoint] (`c2sp.org/tlog-checkpoint`): the note text that
//!   commits to a log's origin, tree size and root hash. See [`Checkpoint`].
//! - [C2SP tlog-cosignature] (`c2sp.org/tlog-cosignature`, v1.1.0-rc.1):
//!   timestamped signatures over a checkpoint, Ed25519 `cosignature/v1`
//!   ([`CosignatureSigner`], [`CosignatureVerifier`]) and post-quantum
//!   ML-DSA-44 `subtree/v1` ([`MlDsaCosigner`],
//!   [`MlDsaCosignatureVerifier`]), which C2SP tlog-checkpoint recommends
//!   logs use for their own signature too.
//! - The verifier and signer key encodings of Go's
//!   [`golang.org/x/mod/sumdb/note`] package: `<name>+<hex key ID>+<base64
//!   key>` and `PRIVATE+KEY+<name>+<hex key ID>+<base64 seed>`. See
//!   [`key`].
//!
//! Signature types `0x01` (Ed25519), `0x04` (Ed25519 cosignature) and
//! `0x06` (ML-DSA-44 cosignature, FIPS 204) are implemented. Signing
//! goes through the object-safe [`Signer`] trait and verification through the
//! [`Verifier`] trait, so that keys held in a file, a PKCS#11 token or a cloud
//! KMS can be plugged in without changing the note code.
//!
//! Parsing never panics on untrusted input: every malformed input is reported
//! through a precise error enum ([`OpenError`], [`CheckpointError`],
//! [`KeyError`], [`CosignatureError`]).
//!
//! # Example
//!
//! ```
//! use evault_note::{open, sign, Ed25519Signer, Ed25519Verifier, Verifiers};
//!
//! let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
//! let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
//!
//! let signer = Ed25519Signer::from_signer_key(skey)?;
//! let msg = sign("hello, world\n", &[&signer])?;
//!
//! let mut known = Verifiers::new();
//! known.insert(Ed25519Verifier::from_verifier_key(vkey)?)?;
//! let note = open(msg.as_bytes(), &known)?;
//! assert_eq!(note.text, "hello, world\n");
//! assert_eq!(note.verified[0].name, "PeterNeumann");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [C2SP signed-note]: https://c2sp.org/signed-note
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
//! [C2SP tlog-cosignature]: https://c2sp.org/tlog-cosignature
//! [`golang.org/x/mod/sumdb/note`]: https://pkg.go.dev/golang.org/x/mod/sumdb/note

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cosignature;
pub mod key;
pub mod mldsa;
pub mod note;
pub mod signer;
pub mod verifier;

mod b64;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use cosignature::{
    CosignatureError, CosignatureSigner, CosignatureVerifier, cosignature_message,
    cosignature_timestamp, generate_cosigner,
};
pub use key::{
    KeyError, ParsedVerifierKey, SignerKeyText, VerifierKeyText, generate_ed25519, is_valid_name,
    key_id, parse_verifier_key,
};
pub use mldsa::{
    MLDSA44_PUBLIC_KEY_LEN, MLDSA44_SIGNATURE_LEN, MlDsaCosignatureVerifier, MlDsaCosigner,
    generate_mldsa44, mldsa_cosignature_message,
};
pub use note::{MAX_SIGNATURES, Note, OpenError, Signature, open, sign, sign_note};
pub use signer::{Ed25519Signer, SignError, Signer};
pub use verifier::{
    Ed25519Verifier, Verifier, Verifiers, VerifiersError, log_verifier, verifier_for,
};

/// Compiles and runs the example in `README.md` as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
