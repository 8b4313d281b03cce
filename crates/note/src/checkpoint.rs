//! Transparency log checkpoints (C2SP tlog-checkpoint): the note text that
//! commits to a log's tree head.
//!
//! The note text is a sequence of at least three non-empty lines, each
//! ending in newline (U+000A):
//!
//! ```text
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//! ```
//!
//! 1. the **origin**, a unique, non-empty identifier of the log (it SHOULD
//!    be a schema-less URL, but clients MUST NOT assume so, so only
//!    non-emptiness is checked);
//! 2. the **tree size**, the ASCII decimal number of leaves, with no leading
//!    zeroes (unless the tree is empty: `0`);
//! 3. the **root hash**, the base64 encoding of the 32-byte RFC 6962 Merkle
//!    tree root at that size;
//! 4. optional, non-empty, opaque **extension lines**.
//!
//! Being a signed-note text, a checkpoint also contains no ASCII control
//! characters other than newline.

use core::fmt;
use core::str::FromStr;

use crate::b64;

/// The body of a C2SP tlog-checkpoint: a log's signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The log's origin line (its unique identity), without the newline.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 Merkle tree root hash at `size`.
    pub root_hash: [u8; 32],
    /// Opaque extension lines, without their newlines. Their use is NOT
    /// RECOMMENDED by the specification.
    pub extensions: Vec<String>,
}

/// Why a checkpoint text (or a [`Checkpoint`] value) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// The text is not valid UTF-8 (only from
    /// [`Checkpoint::parse_bytes`]).
    NotUtf8,
    /// The text does not end in newline.
    MissingFinalNewline,
    /// A line contains an ASCII control character (other than its
    /// terminating newline).
    ControlCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// The text has fewer than the three mandatory lines.
    TooFewLines {
        /// The number of lines found.
        found: usize,
    },
    /// The origin line (line 1) is empty.
    EmptyOrigin,
    /// The tree size line (line 2) is empty.
    EmptySize,
    /// The tree size contains a character other than an ASCII digit
    /// (including a sign or white space).
    SizeNotDecimal,
    /// The tree size has a leading zero and is not `0`.
    SizeLeadingZero,
    /// The tree size does not fit in 64 bits.
    SizeOverflow,
    /// The root hash line (line 3) is empty.
    EmptyRootHash,
    /// The root hash is not canonical standard base64.
    RootHashNotBase64,
    /// The root hash does not decode to exactly 32 bytes.
    RootHashLength {
        /// The decoded length in bytes.
        found: usize,
    },
    /// An extension line is empty (which includes a blank line at the end of
    /// the text).
    EmptyExtensionLine {
        /// 1-based line number.
        line: usize,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::NotUtf8 => f.write_str("malformed checkpoint: invalid UTF-8"),
            CheckpointError::MissingFinalNewline => {
                f.write_str("malformed checkpoint: does not end in newline")
            }
            CheckpointError::ControlCharacter { line } => {
                write!(f, "malformed checkpoint: line {line}: control character")
            }
            CheckpointError::TooFewLines { found } => write!(
                f,
                "malformed checkpoint: {found} lines, want at least origin, size and root hash"
            ),
            CheckpointError::EmptyOrigin => f.write_str("malformed checkpoint: empty origin"),
            CheckpointError::EmptySize => f.write_str("malformed checkpoint: empty tree size"),
            CheckpointError::SizeNotDecimal => {
                f.write_str("malformed checkpoint: tree size is not a decimal number")
            }
            CheckpointError::SizeLeadingZero => {
                f.write_str("malformed checkpoint: tree size has a leading zero")
            }
            CheckpointError::SizeOverflow => {
                f.write_str("malformed checkpoint: tree size does not fit in 64 bits")
            }
            CheckpointError::EmptyRootHash => f.write_str("malformed checkpoint: empty root hash"),
            CheckpointError::RootHashNotBase64 => {
                f.write_str("malformed checkpoint: root hash is not base64")
            }
            CheckpointError::RootHashLength { found } => write!(
                f,
                "malformed checkpoint: root hash is {found} bytes, want 32"
            ),
            CheckpointError::EmptyExtensionLine { line } => {
                write!(f, "malformed checkpoint: line {line}: empty extension line")
            }
        }
    }
}

impl std::error::Error for CheckpointError {}

impl Checkpoint {
    /// Returns a checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root_hash: [u8; 32]) -> Self {
        Checkpoint {
            origin: origin.into(),
            size,
            root_hash,
            extensions: Vec::new(),
        }
    }

    /// Parses a checkpoint note text (the note text only, without the blank
    /// line and signatures).
    ///
    /// Only the canonical encoding is accepted, so for every `text` that
    /// parses, `Checkpoint::parse(text)?.to_text() == text`.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if has_control_character(line) {
                return Err(CheckpointError::ControlCharacter { line: i + 1 });
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { found: lines.len() });
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size)?;
        let root_hash = parse_root_hash(root)?;
        for (i, ext) in extensions.iter().enumerate() {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtensionLine { line: i + 4 });
            }
        }
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root_hash,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// Parses a checkpoint note text given as bytes; see
    /// [`parse`](Self::parse).
    pub fn parse_bytes(text: &[u8]) -> Result<Self, CheckpointError> {
        let text = core::str::from_utf8(text).map_err(|_| CheckpointError::NotUtf8)?;
        Self::parse(text)
    }

    /// Checks that this value encodes to a valid checkpoint text: the origin
    /// and every extension line are non-empty and contain no control
    /// characters (including newline).
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if has_control_character(&self.origin) || self.origin.contains('\n') {
            return Err(CheckpointError::ControlCharacter { line: 1 });
        }
        for (i, ext) in self.extensions.iter().enumerate() {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtensionLine { line: i + 4 });
            }
            if has_control_character(ext) || ext.contains('\n') {
                return Err(CheckpointError::ControlCharacter { line: i + 4 });
            }
        }
        Ok(())
    }

    /// Encodes the checkpoint as note text: `origin\nsize\nbase64(root)\n`
    /// followed by each extension line and a newline.
    ///
    /// The result parses back to an equal value if [`validate`](Self::validate)
    /// succeeds (always the case for a value returned by
    /// [`parse`](Self::parse)).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(
            self.origin.len() + 66 + self.extensions.iter().map(|e| e.len() + 1).sum::<usize>(),
        );
        out.push_str(&self.origin);
        out.push('\n');
        out.push_str(&self.size.to_string());
        out.push('\n');
        out.push_str(&b64::encode(&self.root_hash));
        out.push('\n');
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Checkpoint {
    /// Writes [`to_text`](Checkpoint::to_text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Checkpoint {
    type Err = CheckpointError;

    /// Same as [`Checkpoint::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Checkpoint::parse(s)
    }
}

/// Reports whether `line` contains an ASCII control character other than
/// newline.
fn has_control_character(line: &str) -> bool {
    line.bytes().any(|b| b < 0x20 && b != b'\n')
}

fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    if s.is_empty() {
        return Err(CheckpointError::EmptySize);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::SizeNotDecimal);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(CheckpointError::SizeLeadingZero);
    }
    s.parse().map_err(|_| CheckpointError::SizeOverflow)
}

fn parse_root_hash(s: &str) -> Result<[u8; 32], CheckpointError> {
    if s.is_empty() {
        return Err(CheckpointError::EmptyRootHash);
    }
    let raw = b64::decode(s).ok_or(CheckpointError::RootHashNotBase64)?;
    raw.as_slice()
        .try_into()
        .map_err(|_| CheckpointError::RootHashLength { found: raw.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from C2SP tlog-checkpoint.
    const SPEC_EXAMPLE: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const ROOT64: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    #[test]
    fn parse_spec_example() {
        let c = Checkpoint::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20852163);
        assert_eq!(&c.root_hash[..4], &[0x0a, 0xc5, 0x18, 0x6a]);
        assert!(c.extensions.is_empty());
        assert_eq!(c.to_text(), SPEC_EXAMPLE);
        assert_eq!(c.to_string(), SPEC_EXAMPLE);
        assert_eq!(SPEC_EXAMPLE.parse::<Checkpoint>(), Ok(c));
    }

    #[test]
    fn round_trip_with_extensions() {
        let mut c = Checkpoint::new("evault.example/log", 0, [0xab; 32]);
        c.extensions = vec!["ext one".into(), "— ünïcode".into()];
        c.validate().unwrap();
        let text = c.to_text();
        assert_eq!(text.lines().count(), 5);
        assert!(text.starts_with("evault.example/log\n0\n"));
        assert_eq!(Checkpoint::parse(&text), Ok(c));
    }

    #[test]
    fn size_extremes() {
        let max = format!("o\n{}\n{ROOT64}\n", u64::MAX);
        assert_eq!(Checkpoint::parse(&max).unwrap().size, u64::MAX);
        let zero = format!("o\n0\n{ROOT64}\n");
        assert_eq!(Checkpoint::parse(&zero).unwrap().size, 0);
    }

    #[test]
    fn every_rule_has_its_error() {
        let over = format!("{}0", u64::MAX); // 10 * u64::MAX
        let cases: Vec<(String, CheckpointError)> = vec![
            (
                SPEC_EXAMPLE.trim_end().to_owned(),
                CheckpointError::MissingFinalNewline,
            ),
            (String::new(), CheckpointError::MissingFinalNewline),
            ("\n".into(), CheckpointError::TooFewLines { found: 1 }),
            ("o\n5\n".into(), CheckpointError::TooFewLines { found: 2 }),
            (format!("\n5\n{ROOT64}\n"), CheckpointError::EmptyOrigin),
            (
                format!("o\x01\n5\n{ROOT64}\n"),
                CheckpointError::ControlCharacter { line: 1 },
            ),
            (
                format!("o\n5\r\n{ROOT64}\n"),
                CheckpointError::ControlCharacter { line: 2 },
            ),
            (
                format!("o\n5\n{ROOT64}\nx\ty\n"),
                CheckpointError::ControlCharacter { line: 4 },
            ),
            (format!("o\n\n{ROOT64}\n"), CheckpointError::EmptySize),
            (
                format!("o\n+5\n{ROOT64}\n"),
                CheckpointError::SizeNotDecimal,
            ),
            (
                format!("o\n-5\n{ROOT64}\n"),
                CheckpointError::SizeNotDecimal,
            ),
            (
                format!("o\n 5\n{ROOT64}\n"),
                CheckpointError::SizeNotDecimal,
            ),
            (
                format!("o\n5 \n{ROOT64}\n"),
                CheckpointError::SizeNotDecimal,
            ),
            (
                format!("o\n0x5\n{ROOT64}\n"),
                CheckpointError::SizeNotDecimal,
            ),
            (format!("o\n١\n{ROOT64}\n"), CheckpointError::SizeNotDecimal),
            (
                format!("o\n05\n{ROOT64}\n"),
                CheckpointError::SizeLeadingZero,
            ),
            (
                format!("o\n00\n{ROOT64}\n"),
                CheckpointError::SizeLeadingZero,
            ),
            (
                format!("o\n{over}\n{ROOT64}\n"),
                CheckpointError::SizeOverflow,
            ),
            ("o\n5\n\n".into(), CheckpointError::EmptyRootHash),
            (
                "o\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".into(),
                CheckpointError::RootHashNotBase64,
            ),
            (
                "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".into(),
                CheckpointError::RootHashNotBase64,
            ),
            (
                "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".into(),
                CheckpointError::RootHashNotBase64,
            ),
            (
                "o\n5\nAAAA\n".into(),
                CheckpointError::RootHashLength { found: 3 },
            ),
            (
                format!("o\n5\n{}\n", b64::encode(&[0u8; 33])),
                CheckpointError::RootHashLength { found: 33 },
            ),
            (
                format!("o\n5\n{ROOT64}\n\n"),
                CheckpointError::EmptyExtensionLine { line: 4 },
            ),
            (
                format!("o\n5\n{ROOT64}\next\n\nmore\n"),
                CheckpointError::EmptyExtensionLine { line: 5 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn parse_bytes() {
        assert_eq!(
            Checkpoint::parse_bytes(SPEC_EXAMPLE.as_bytes()),
            Checkpoint::parse(SPEC_EXAMPLE)
        );
        assert_eq!(
            Checkpoint::parse_bytes(b"o\xff\n5\nAAAA\n"),
            Err(CheckpointError::NotUtf8)
        );
    }

    #[test]
    fn validate_rejects_values_that_do_not_encode() {
        let ok = Checkpoint::new("o", 1, [0; 32]);
        assert_eq!(ok.validate(), Ok(()));
        let mut c = ok.clone();
        c.origin.clear();
        assert_eq!(c.validate(), Err(CheckpointError::EmptyOrigin));
        let mut c = ok.clone();
        c.origin = "a\nb".into();
        assert_eq!(
            c.validate(),
            Err(CheckpointError::ControlCharacter { line: 1 })
        );
        let mut c = ok.clone();
        c.extensions = vec!["x".into(), String::new()];
        assert_eq!(
            c.validate(),
            Err(CheckpointError::EmptyExtensionLine { line: 5 })
        );
        let mut c = ok;
        c.extensions = vec!["x\ny".into()];
        assert_eq!(
            c.validate(),
            Err(CheckpointError::ControlCharacter { line: 4 })
        );
    }

    #[test]
    fn error_display() {
        assert_eq!(
            CheckpointError::RootHashLength { found: 3 }.to_string(),
            "malformed checkpoint: root hash is 3 bytes, want 32"
        );
        assert_eq!(
            CheckpointError::EmptyExtensionLine { line: 4 }.to_string(),
            "malformed checkpoint: line 4: empty extension line"
        );
    }
}
