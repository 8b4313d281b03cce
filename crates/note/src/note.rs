//! Signed notes (C2SP signed-note): encoding with [`sign`] and
//! [`sign_note`], decoding and verification with [`open`].
//!
//! A signed note consists of a text ending in newline (U+000A), followed by
//! a blank line (only a newline), followed by one or more signature lines of
//! this form: em dash (U+2014), space (U+0020), key name, space,
//! base64-encoded signature, newline:
//!
//! ```text
//! If you think cryptography is the answer to your problem,
//! then you don't know what your problem is.
//!
//! — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=
//! ```
//!
//! Signed notes must be valid UTF-8 and must not contain any ASCII control
//! characters (those below U+0020) other than newline. The note text
//! includes its final newline but not the separating blank line; the text
//! may contain empty lines, and is separated from the signatures by the
//! last empty line in the note.
//!
//! A signature is the base64 encoding of 4+n bytes: the big-endian `u32`
//! key ID followed by the n signature bytes over the note text.

use core::fmt;
use std::collections::HashSet;

use crate::b64;
use crate::key::is_valid_name;
use crate::signer::{SignError, Signer};
use crate::verifier::Verifiers;

/// The maximum number of signature lines [`open`] accepts (and [`sign`]
/// produces).
///
/// C2SP signed-note: "Verifiers SHOULD apply a maximum limit to the number
/// of signatures in a note [...], but MUST accept at least up to 16
/// signatures." Go's `note.Open` rejects notes with more than 100
/// signatures ("Avoid spending forever parsing a note with many
/// signatures"); this crate uses the same limit. Every signature line
/// counts, including unknown and duplicate ones.
pub const MAX_SIGNATURES: usize = 100;

/// The prefix of every signature line: em dash (U+2014) and space.
const SIG_PREFIX: &str = "\u{2014} ";

/// A note text and its signatures, as returned by [`open`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Note {
    /// The text of the note, including its final newline but not the blank
    /// line that separates it from the signatures.
    pub text: String,
    /// Signatures by known keys, all verified. A key that signed more than
    /// once is listed once.
    pub verified: Vec<Signature>,
    /// Signatures by unknown keys, not verified. Repeated identical
    /// signature lines are listed once.
    pub unverified: Vec<Signature>,
}

/// A single signature found in a note, verified or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The name of the key that made the signature.
    pub name: String,
    /// The key ID of the key that made the signature.
    pub key_id: u32,
    /// The base64 encoding of the key ID followed by the signature bytes,
    /// exactly as it appears in the signature line.
    pub base64: String,
}

impl Signature {
    /// Decodes [`base64`](Self::base64) and returns the signature bytes
    /// after the 4-byte key ID.
    ///
    /// Returns `None` if the encoding is not canonical base64, is shorter
    /// than 5 bytes, or starts with a key ID other than
    /// [`key_id`](Self::key_id).
    pub fn signature_bytes(&self) -> Option<Vec<u8>> {
        let raw = b64::decode(&self.base64)?;
        let (id, sig) = split_key_id(&raw)?;
        (id == self.key_id).then(|| sig.to_vec())
    }
}

/// Splits decoded signature bytes into the key ID and the signature proper;
/// `None` if fewer than 5 bytes.
fn split_key_id(raw: &[u8]) -> Option<(u32, &[u8])> {
    let (id, sig) = raw.split_first_chunk::<4>()?;
    if sig.is_empty() {
        return None;
    }
    Some((u32::from_be_bytes(*id), sig))
}

/// Why [`open`] rejected a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The message is not valid UTF-8.
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The message contains an ASCII control character other than newline.
    ControlCharacter {
        /// Byte offset of the character.
        offset: usize,
    },
    /// The message has no blank line, so no signature block.
    MissingSignatureBlock,
    /// Nothing follows the last blank line: there are no signature lines.
    EmptySignatureBlock,
    /// The last signature line does not end in newline.
    MissingFinalNewline,
    /// The message has more than [`MAX_SIGNATURES`] signature lines.
    TooManySignatures {
        /// The number of signature lines.
        count: usize,
        /// The maximum, [`MAX_SIGNATURES`].
        max: usize,
    },
    /// A signature line does not begin with an em dash (U+2014) and a space.
    MissingEmDash {
        /// 1-based line number in the message.
        line: usize,
    },
    /// A signature line has no space between key name and signature.
    MissingSpace {
        /// 1-based line number in the message.
        line: usize,
    },
    /// A signature line's key name is not valid (see
    /// [`is_valid_name`]).
    InvalidKeyName {
        /// 1-based line number in the message.
        line: usize,
    },
    /// A signature line's signature is not canonical standard base64.
    BadBase64 {
        /// 1-based line number in the message.
        line: usize,
    },
    /// A signature decodes to fewer than 5 bytes (4-byte key ID and at least
    /// one signature byte).
    SignatureTooShort {
        /// 1-based line number in the message.
        line: usize,
        /// The decoded length in bytes.
        len: usize,
    },
    /// A signature by a known key failed to verify. (C2SP signed-note: "If a
    /// signature from a known key fails to verify, clients SHOULD reject the
    /// whole note.")
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// The note is well formed but no signature is by a known key, so
    /// nothing was verified (Go's `UnverifiedNoteError`). The parsed note,
    /// with all its signatures in `unverified`, is included; its text must
    /// not be trusted.
    Unverified(Box<Note>),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotUtf8 { offset } => {
                write!(f, "malformed note: invalid UTF-8 at byte offset {offset}")
            }
            OpenError::ControlCharacter { offset } => write!(
                f,
                "malformed note: control character at byte offset {offset}"
            ),
            OpenError::MissingSignatureBlock => {
                f.write_str("malformed note: no blank line before signatures")
            }
            OpenError::EmptySignatureBlock => {
                f.write_str("malformed note: no signature lines after blank line")
            }
            OpenError::MissingFinalNewline => {
                f.write_str("malformed note: last signature line does not end in newline")
            }
            OpenError::TooManySignatures { count, max } => {
                write!(f, "malformed note: {count} signature lines (maximum {max})")
            }
            OpenError::MissingEmDash { line } => write!(
                f,
                "malformed note: line {line}: signature line does not begin with \"\u{2014} \""
            ),
            OpenError::MissingSpace { line } => write!(
                f,
                "malformed note: line {line}: no space between key name and signature"
            ),
            OpenError::InvalidKeyName { line } => {
                write!(f, "malformed note: line {line}: invalid key name")
            }
            OpenError::BadBase64 { line } => {
                write!(f, "malformed note: line {line}: signature is not base64")
            }
            OpenError::SignatureTooShort { line, len } => write!(
                f,
                "malformed note: line {line}: signature is {len} bytes (minimum 5)"
            ),
            OpenError::InvalidSignature { name, key_id } => {
                write!(f, "invalid signature for key {name}+{key_id:08x}")
            }
            OpenError::Unverified(_) => f.write_str("note has no verifiable signatures"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Opens and parses the message `msg`, checking signatures from the known
/// verifiers.
///
/// For each signature line, `open` looks up the key by (name, key ID) in
/// `known`:
///
/// - if the key is unknown, the signature is recorded in
///   [`Note::unverified`] (identical repeated lines once);
/// - if the key is known, the signature is verified over the note text; if
///   it verifies it is recorded in [`Note::verified`] (once per key), and if
///   it does not, `open` fails with [`OpenError::InvalidSignature`].
///
/// If the note is well formed but no known key signed it, `open` fails with
/// [`OpenError::Unverified`], which carries the parsed note.
///
/// Malformed messages fail with the other [`OpenError`] variants. `open`
/// never panics, whatever the input.
pub fn open(msg: &[u8], known: &Verifiers) -> Result<Note, OpenError> {
    // Must be valid UTF-8 with no ASCII control characters but newline.
    let msg = core::str::from_utf8(msg).map_err(|e| OpenError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some(offset) = find_control_character(msg) {
        return Err(OpenError::ControlCharacter { offset });
    }

    // The text ends at the last blank line; the signature block follows.
    let split = msg.rfind("\n\n").ok_or(OpenError::MissingSignatureBlock)?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if sigs.is_empty() {
        return Err(OpenError::EmptySignatureBlock);
    }
    if !sigs.ends_with('\n') {
        return Err(OpenError::MissingFinalNewline);
    }
    let count = sigs.bytes().filter(|&b| b == b'\n').count();
    if count > MAX_SIGNATURES {
        return Err(OpenError::TooManySignatures {
            count,
            max: MAX_SIGNATURES,
        });
    }

    let mut note = Note {
        text: text.to_owned(),
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    // Line number of the first signature line: the text's lines, then the
    // blank line.
    let first_line = text.bytes().filter(|&b| b == b'\n').count() + 2;
    let mut seen_unverified: HashSet<&str> = HashSet::new();
    let mut seen_verified_lines: HashSet<&str> = HashSet::new();
    let mut verified_keys: HashSet<(&str, u32)> = HashSet::new();

    for (i, line) in sigs.split_terminator('\n').enumerate() {
        let lineno = first_line + i;
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(OpenError::MissingEmDash { line: lineno })?;
        let (name, sig64) = rest
            .split_once(' ')
            .ok_or(OpenError::MissingSpace { line: lineno })?;
        if !is_valid_name(name) {
            return Err(OpenError::InvalidKeyName { line: lineno });
        }
        let raw = b64::decode(sig64).ok_or(OpenError::BadBase64 { line: lineno })?;
        let (key_id, sig) = split_key_id(&raw).ok_or(OpenError::SignatureTooShort {
            line: lineno,
            len: raw.len(),
        })?;
        let signature = || Signature {
            name: name.to_owned(),
            key_id,
            base64: sig64.to_owned(),
        };

        let Some(verifier) = known.get(name, key_id) else {
            // Unknown key: ignore, but report it. Drop repeated identical
            // lines.
            if seen_unverified.insert(line) {
                note.unverified.push(signature());
            }
            continue;
        };
        // Known key: every distinct signature by it must verify.
        if !seen_verified_lines.insert(line) {
            continue;
        }
        if !verifier.verify(text.as_bytes(), sig) {
            return Err(OpenError::InvalidSignature {
                name: name.to_owned(),
                key_id,
            });
        }
        if verified_keys.insert((name, key_id)) {
            note.verified.push(signature());
        }
    }

    if note.verified.is_empty() {
        return Err(OpenError::Unverified(Box::new(note)));
    }
    Ok(note)
}

/// Returns the byte offset of the first ASCII control character other than
/// newline.
fn find_control_character(s: &str) -> Option<usize> {
    s.bytes().position(|b| b < 0x20 && b != b'\n')
}

/// Checks the rules a note text must follow: it ends in newline and has no
/// ASCII control characters other than newline. (Being a `&str`, it is valid
/// UTF-8.)
fn check_text(text: &str) -> Result<(), SignError> {
    if !text.ends_with('\n') {
        return Err(SignError::TextMissingFinalNewline);
    }
    if let Some(offset) = find_control_character(text) {
        return Err(SignError::TextControlCharacter { offset });
    }
    Ok(())
}

/// Signs `text` with each of the signers and returns the encoded signed
/// note.
///
/// The text must end in newline and must not contain ASCII control
/// characters other than newline. It may contain empty lines. At least one
/// and at most [`MAX_SIGNATURES`] signers are required.
///
/// The result always opens with [`open`] given the signers' verifiers.
pub fn sign(text: &str, signers: &[&dyn Signer]) -> Result<String, SignError> {
    let note = Note {
        text: text.to_owned(),
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    sign_note(&note, signers)
}

/// Adds signatures to a note and returns the encoded signed note (Go's
/// `note.Sign`).
///
/// The existing signatures in `note.verified` and then `note.unverified` are
/// emitted first, followed by the new signatures in the order of `signers`.
/// An existing signature by the same (name, key ID) as one of the signers is
/// replaced by the new one. This is how a witness adds its cosignature to a
/// checkpoint signed by the log.
///
/// Existing signatures are checked for well-formedness (not verified); see
/// [`SignError`] for every failure.
pub fn sign_note(note: &Note, signers: &[&dyn Signer]) -> Result<String, SignError> {
    check_text(&note.text)?;

    let mut replaced: HashSet<(&str, u32)> = HashSet::new();
    for s in signers {
        let name = s.name();
        if !is_valid_name(name) {
            return Err(SignError::InvalidSignerName {
                name: name.to_owned(),
            });
        }
        replaced.insert((name, s.key_id()));
    }

    let mut kept: Vec<&Signature> = Vec::new();
    for sig in note.verified.iter().chain(&note.unverified) {
        if replaced.contains(&(sig.name.as_str(), sig.key_id)) {
            continue;
        }
        if !is_valid_name(&sig.name) || sig.signature_bytes().is_none() {
            return Err(SignError::MalformedExistingSignature {
                name: sig.name.clone(),
            });
        }
        kept.push(sig);
    }

    let count = kept.len() + signers.len();
    if count == 0 {
        return Err(SignError::NoSignatures);
    }
    if count > MAX_SIGNATURES {
        return Err(SignError::TooManySignatures {
            count,
            max: MAX_SIGNATURES,
        });
    }

    let mut out = String::with_capacity(note.text.len() + 1 + count * 128);
    out.push_str(&note.text);
    out.push('\n');
    for sig in kept {
        push_signature_line(&mut out, &sig.name, &sig.base64);
    }
    for s in signers {
        let sig = s.sign(note.text.as_bytes())?;
        if sig.is_empty() {
            return Err(SignError::EmptySignature {
                name: s.name().to_owned(),
            });
        }
        let mut raw = Vec::with_capacity(4 + sig.len());
        raw.extend_from_slice(&s.key_id().to_be_bytes());
        raw.extend_from_slice(&sig);
        push_signature_line(&mut out, s.name(), &b64::encode(&raw));
    }
    Ok(out)
}

fn push_signature_line(out: &mut String, name: &str, sig64: &str) {
    out.push_str(SIG_PREFIX);
    out.push_str(name);
    out.push(' ');
    out.push_str(sig64);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::Ed25519Signer;
    use crate::verifier::{Ed25519Verifier, Verifier};

    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> Ed25519Verifier {
        Ed25519Verifier::from_verifier_key(PETER_VKEY).unwrap()
    }

    fn enoch() -> Ed25519Verifier {
        Ed25519Verifier::from_verifier_key(ENOCH_VKEY).unwrap()
    }

    fn peter_only() -> Verifiers {
        Verifiers::new().with(peter()).unwrap()
    }

    fn peter_signature() -> Signature {
        Signature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3,
            base64: "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=".into(),
        }
    }

    fn enoch_signature() -> Signature {
        Signature {
            name: "EnochRoot".into(),
            key_id: 0xaf0cfe78,
            base64: "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=".into(),
        }
    }

    /// Signers with deterministic keys.
    fn test_signers(n: usize) -> Vec<Ed25519Signer> {
        (0..n)
            .map(|i| {
                let seed = [u8::try_from(i).unwrap(); 32];
                Ed25519Signer::from_seed(&format!("witness{i}.example"), &seed).unwrap()
            })
            .collect()
    }

    #[test]
    fn sign_matches_go() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let msg = sign(TEXT, &[&s]).unwrap();
        assert_eq!(msg, format!("{TEXT}\n{PETER_SIG}"));
    }

    #[test]
    fn open_one_verified_one_unverified() {
        let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let n = open(msg.as_bytes(), &peter_only()).unwrap();
        assert_eq!(n.text, TEXT);
        assert_eq!(n.verified, vec![peter_signature()]);
        assert_eq!(n.unverified, vec![enoch_signature()]);
    }

    #[test]
    fn open_both_verified() {
        let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let known = Verifiers::new()
            .with(peter())
            .unwrap()
            .with(enoch())
            .unwrap();
        let n = open(msg.as_bytes(), &known).unwrap();
        assert_eq!(n.verified, vec![peter_signature(), enoch_signature()]);
        assert!(n.unverified.is_empty());
    }

    #[test]
    fn open_none_verified() {
        let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let err = open(msg.as_bytes(), &Verifiers::new()).unwrap_err();
        assert_eq!(err.to_string(), "note has no verifiable signatures");
        let OpenError::Unverified(n) = err else {
            panic!("want Unverified, got {err:?}");
        };
        assert_eq!(n.text, TEXT);
        assert!(n.verified.is_empty());
        assert_eq!(n.unverified, vec![peter_signature(), enoch_signature()]);
    }

    #[test]
    fn open_same_name_or_same_id_is_unknown() {
        // A known key shares the name (but not the ID) with the signature:
        // the signature is ignored, not treated as invalid.
        let other = Ed25519Signer::from_seed("PeterNeumann", &[9u8; 32]).unwrap();
        let known = Verifiers::new().with(other.verifier()).unwrap();
        let msg = format!("{TEXT}\n{PETER_SIG}");
        assert!(matches!(
            open(msg.as_bytes(), &known),
            Err(OpenError::Unverified(_))
        ));
    }

    #[test]
    fn open_duplicates() {
        // Go's "Duplicated verified and unverified signatures" case.
        let enoch_abcd = format!("{}ABCD{}", &ENOCH_SIG[..62], &ENOCH_SIG[62..]);
        let msg = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{enoch_abcd}");
        let n = open(msg.as_bytes(), &peter_only()).unwrap();
        assert_eq!(n.verified, vec![peter_signature()]);
        assert_eq!(n.unverified.len(), 2);
        assert_eq!(n.unverified[0], enoch_signature());
        assert!(n.unverified[1].base64.contains("ABCD"));
    }

    /// Accepts exactly the signatures `b"one"` and `b"two"`.
    struct TwoSigs;
    impl Verifier for TwoSigs {
        fn name(&self) -> &str {
            "two.example"
        }
        fn key_id(&self) -> u32 {
            0x01020304
        }
        fn verify(&self, _: &[u8], sig: &[u8]) -> bool {
            sig == b"one" || sig == b"two"
        }
    }

    fn two_sigs_line(sig: &[u8]) -> String {
        let raw = [0x01020304u32.to_be_bytes().as_slice(), sig].concat();
        format!("\u{2014} two.example {}\n", b64::encode(&raw))
    }

    #[test]
    fn open_verifies_every_signature_by_a_known_key() {
        let known = Verifiers::new().with(TwoSigs).unwrap();
        // Two different valid signatures by one key: both verified, the key
        // is listed once (with the first signature).
        let msg = format!("{TEXT}\n{}{}", two_sigs_line(b"one"), two_sigs_line(b"two"));
        let n = open(msg.as_bytes(), &known).unwrap();
        assert_eq!(n.verified.len(), 1);
        assert_eq!(n.verified[0].signature_bytes().unwrap(), b"one");
        // A later invalid signature by the same key rejects the note.
        let msg = format!("{TEXT}\n{}{}", two_sigs_line(b"one"), two_sigs_line(b"bad"));
        assert_eq!(
            open(msg.as_bytes(), &known),
            Err(OpenError::InvalidSignature {
                name: "two.example".into(),
                key_id: 0x01020304
            })
        );
    }

    #[test]
    fn open_invalid_signature() {
        let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        let msg = format!("{TEXT}\n{bad}");
        let err = open(msg.as_bytes(), &peter_only()).unwrap_err();
        assert_eq!(
            err,
            OpenError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid signature for key PeterNeumann+c74f20a3"
        );
    }

    #[test]
    fn open_invalid_signature_even_with_a_valid_one() {
        let s = test_signers(1).remove(0);
        let good = sign(TEXT, &[&s]).unwrap();
        let good_line = good.lines().last().unwrap();
        // Flip the last signature byte (keep base64 canonical by changing a
        // middle character).
        let mut chars: Vec<char> = good_line.chars().collect();
        let mid = chars.len() - 10;
        chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
        let bad_line: String = chars.into_iter().collect();
        let msg = format!("{good}{bad_line}\n");
        let known = Verifiers::new().with(s.verifier()).unwrap();
        assert!(matches!(
            open(msg.as_bytes(), &known),
            Err(OpenError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn open_tampered_text() {
        let msg = format!("{}\n{PETER_SIG}", TEXT.replace("answer", "Answer"));
        assert!(matches!(
            open(msg.as_bytes(), &peter_only()),
            Err(OpenError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn open_malformed() {
        let v = peter_only();
        let no_nl = &PETER_SIG[..PETER_SIG.len() - 1];
        let first_sig_line = 4;
        let cases: Vec<(Vec<u8>, OpenError)> = vec![
            (TEXT.into(), OpenError::MissingSignatureBlock),
            (format!("{TEXT}\n").into(), OpenError::EmptySignatureBlock),
            (
                format!("{TEXT}\n{no_nl}").into(),
                OpenError::MissingFinalNewline,
            ),
            (
                format!("\x01{TEXT}\n{PETER_SIG}").into(),
                OpenError::ControlCharacter { offset: 0 },
            ),
            (
                format!("{TEXT}\n{}\r\n", no_nl).into(),
                OpenError::ControlCharacter {
                    offset: TEXT.len() + 1 + no_nl.len(),
                },
            ),
            (
                [b"\xff".as_slice(), TEXT.as_bytes(), b"\n", PETER_SIG.as_bytes()].concat(),
                OpenError::NotUtf8 { offset: 0 },
            ),
            (
                // Go's "Bad Name" case: the name ends at the first space, so
                // "Name x08go..." is taken as the (invalid) base64.
                format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").into(),
                OpenError::BadBase64 { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} Bad+Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").into(),
                OpenError::InvalidKeyName { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} Bad\u{a0}Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").into(),
                OpenError::InvalidKeyName { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n{PETER_SIG}Unexpected line.\n").into(),
                OpenError::MissingEmDash { line: first_sig_line + 1 },
            ),
            (
                format!("{TEXT}\n- PeterNeumann AAAAAAAA\n").into(),
                OpenError::MissingEmDash { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014}PeterNeumann AAAAAAAA\n").into(),
                OpenError::MissingEmDash { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann\n").into(),
                OpenError::MissingSpace { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014}  AAAAAAAA\n").into(),
                OpenError::InvalidKeyName { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann AAAA!AAA\n").into(),
                OpenError::BadBase64 { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann AAAAAAA\n").into(),
                OpenError::BadBase64 { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann AAAAAAAA \n").into(),
                OpenError::BadBase64 { line: first_sig_line },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann x08gow==\n").into(),
                OpenError::SignatureTooShort { line: first_sig_line, len: 4 },
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann \n").into(),
                OpenError::SignatureTooShort { line: first_sig_line, len: 0 },
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(
                open(&msg, &v),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(&msg)
            );
        }
    }

    #[test]
    fn open_error_display() {
        assert_eq!(
            OpenError::MissingEmDash { line: 4 }.to_string(),
            "malformed note: line 4: signature line does not begin with \"\u{2014} \""
        );
        assert_eq!(
            OpenError::TooManySignatures {
                count: 101,
                max: 100
            }
            .to_string(),
            "malformed note: 101 signature lines (maximum 100)"
        );
    }

    #[test]
    fn sixteen_signatures_are_accepted() {
        let signers = test_signers(16);
        let refs: Vec<&dyn Signer> = signers.iter().map(|s| s as &dyn Signer).collect();
        let msg = sign(TEXT, &refs).unwrap();
        let mut known = Verifiers::new();
        for s in &signers {
            known.insert(s.verifier()).unwrap();
        }
        let n = open(msg.as_bytes(), &known).unwrap();
        assert_eq!(n.verified.len(), 16);
        assert!(n.unverified.is_empty());
        for (sig, s) in n.verified.iter().zip(&signers) {
            assert_eq!(sig.name, s.name());
            assert_eq!(sig.key_id, s.key_id());
        }
        // With only one of them known, the other 15 are unverified.
        let one = Verifiers::new().with(signers[7].verifier()).unwrap();
        let n = open(msg.as_bytes(), &one).unwrap();
        assert_eq!(n.verified.len(), 1);
        assert_eq!(n.unverified.len(), 15);
    }

    #[test]
    fn max_signatures_accepted_one_more_rejected() {
        let ok = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES));
        let n = open(ok.as_bytes(), &peter_only()).unwrap();
        assert_eq!(n.verified.len(), 1);
        let too_many = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
        let want = OpenError::TooManySignatures {
            count: 101,
            max: 100,
        };
        assert_eq!(open(too_many.as_bytes(), &peter_only()), Err(want.clone()));
        assert_eq!(open(too_many.as_bytes(), &Verifiers::new()), Err(want));
    }

    #[test]
    fn sign_rejects_too_many_signers() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let refs: Vec<&dyn Signer> = vec![&s; MAX_SIGNATURES + 1];
        assert!(matches!(
            sign(TEXT, &refs),
            Err(SignError::TooManySignatures {
                count: 101,
                max: 100
            })
        ));
        assert!(sign(TEXT, &refs[..MAX_SIGNATURES]).is_ok());
    }

    #[test]
    fn sign_text_rules() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        assert!(matches!(
            sign("abc", &[&s]),
            Err(SignError::TextMissingFinalNewline)
        ));
        assert!(matches!(
            sign("", &[&s]),
            Err(SignError::TextMissingFinalNewline)
        ));
        assert!(matches!(
            sign("a\tb\n", &[&s]),
            Err(SignError::TextControlCharacter { offset: 1 })
        ));
        assert!(matches!(
            sign("a\r\n", &[&s]),
            Err(SignError::TextControlCharacter { offset: 1 })
        ));
        assert!(matches!(sign(TEXT, &[]), Err(SignError::NoSignatures)));
    }

    #[test]
    fn sign_and_open_texts_with_empty_lines() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let known = peter_only();
        for text in [
            "\n",
            "\n\n",
            "a\n\nb\n",
            "a\n\n\n",
            "line\n\n\u{2014} PeterNeumann AAAA\n",
            "ünïcödé ✓\n",
        ] {
            let msg = sign(text, &[&s]).unwrap();
            let n = open(msg.as_bytes(), &known).unwrap();
            assert_eq!(n.text, text);
            assert_eq!(n.verified.len(), 1);
        }
    }

    struct BadNameSigner(Ed25519Signer);
    impl Signer for BadNameSigner {
        fn name(&self) -> &str {
            "bad name"
        }
        fn key_id(&self) -> u32 {
            self.0.key_id()
        }
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
            self.0.sign(msg)
        }
        fn verifier_key(&self) -> crate::VerifierKeyText {
            self.0.verifier_key()
        }
    }

    struct FailingSigner;
    impl Signer for FailingSigner {
        fn name(&self) -> &str {
            "kms.example/key1"
        }
        fn key_id(&self) -> u32 {
            1
        }
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Err(SignError::Backend("surprise!".into()))
        }
        fn verifier_key(&self) -> crate::VerifierKeyText {
            crate::VerifierKeyText::encode(self.name(), 1, 1, &[0; 32])
        }
    }

    struct EmptySigner;
    impl Signer for EmptySigner {
        fn name(&self) -> &str {
            "empty"
        }
        fn key_id(&self) -> u32 {
            2
        }
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Ok(Vec::new())
        }
        fn verifier_key(&self) -> crate::VerifierKeyText {
            crate::VerifierKeyText::encode(self.name(), 2, 1, &[0; 32])
        }
    }

    #[test]
    fn sign_signer_failures() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let bad = BadNameSigner(Ed25519Signer::from_signer_key(PETER_SKEY).unwrap());
        assert!(matches!(
            sign(TEXT, &[&s, &bad]),
            Err(SignError::InvalidSignerName { name }) if name == "bad name"
        ));
        let err = sign(TEXT, &[&FailingSigner]).unwrap_err();
        assert!(matches!(err, SignError::Backend(_)));
        assert!(err.to_string().contains("surprise!"));
        assert!(matches!(
            sign(TEXT, &[&EmptySigner]),
            Err(SignError::EmptySignature { name }) if name == "empty"
        ));
    }

    #[test]
    fn sign_note_replaces_existing_signature() {
        // Go's TestSign: an existing signature by the same key is replaced.
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let note = Note {
            text: TEXT.into(),
            verified: vec![Signature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3,
                base64: "BADSIGN=".into(),
            }],
            unverified: vec![],
        };
        assert_eq!(
            sign_note(&note, &[&s]).unwrap(),
            format!("{TEXT}\n{PETER_SIG}")
        );
    }

    #[test]
    fn sign_note_keeps_other_signatures_first() {
        let msg = format!("{TEXT}\n{ENOCH_SIG}");
        let OpenError::Unverified(note) = open(msg.as_bytes(), &peter_only()).unwrap_err() else {
            panic!("want unverified");
        };
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        let out = sign_note(&note, &[&s]).unwrap();
        assert_eq!(out, format!("{TEXT}\n{ENOCH_SIG}{PETER_SIG}"));
        // Re-encoding an opened note with no new signers lists verified
        // signatures before unverified ones (as Go does).
        let n = open(out.as_bytes(), &peter_only()).unwrap();
        let again = sign_note(&n, &[]).unwrap();
        assert_eq!(again, format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}"));
        assert_eq!(open(again.as_bytes(), &peter_only()), Ok(n));
    }

    #[test]
    fn sign_note_rejects_malformed_existing_signatures() {
        let s = Ed25519Signer::from_signer_key(PETER_SKEY).unwrap();
        for bad in [
            Signature {
                name: "a+b".into(),
                key_id: 0,
                base64: "AAAAAAAA".into(),
            },
            Signature {
                name: "EnochRoot".into(),
                key_id: 0xaf0cfe78,
                base64: "BADHASH=".into(),
            },
            Signature {
                name: "EnochRoot".into(),
                key_id: 0xaf0cfe78,
                base64: "not base64".into(),
            },
            Signature {
                name: "EnochRoot".into(),
                key_id: 0xaf0cfe78,
                base64: "rwz+eA==".into(),
            },
        ] {
            let note = Note {
                text: TEXT.into(),
                verified: vec![],
                unverified: vec![bad],
            };
            assert!(matches!(
                sign_note(&note, &[&s]),
                Err(SignError::MalformedExistingSignature { .. })
            ));
        }
    }

    #[test]
    fn signature_bytes() {
        let p = peter_signature();
        let bytes = p.signature_bytes().unwrap();
        assert_eq!(bytes.len(), 64);
        assert!(peter().verify(TEXT.as_bytes(), &bytes));
        let mut wrong_id = p.clone();
        wrong_id.key_id ^= 1;
        assert_eq!(wrong_id.signature_bytes(), None);
    }
}
