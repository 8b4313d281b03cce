//! C2SP tlog-proof (<https://c2sp.org/tlog-proof>): a self-contained,
//! offline-verifiable text proof that an entry is in a log.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::{HASH_SIZE, Hash};

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data.
    pub extra: Option<Vec<u8>>,
    /// Position of the entry's leaf in the log, 0-based.
    pub index: u64,
    /// Inclusion proof, leaf's sibling first.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Why a tlog-proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlogProofError {
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    MissingHeader,
    /// The `extra` line's value is not standard base64.
    BadExtra,
    /// No `index <N>` line follows the header (and optional `extra` line).
    MissingIndex,
    /// The index is not a decimal without leading zeros that fits in a u64.
    BadIndex,
    /// Proof line `n` (0-based) is not base64 of 32 bytes.
    BadProofLine(usize),
    /// No empty line follows the proof lines, or no checkpoint follows it.
    MissingCheckpoint,
}

impl fmt::Display for TlogProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlogProofError::MissingHeader => write!(f, "first line must be {HEADER}"),
            TlogProofError::BadExtra => write!(f, "extra line is not base64"),
            TlogProofError::MissingIndex => write!(f, "missing index line"),
            TlogProofError::BadIndex => {
                write!(f, "index must be a decimal without leading zeros")
            }
            TlogProofError::BadProofLine(n) => {
                write!(f, "proof line {n} is not a base64 SHA-256 hash")
            }
            TlogProofError::MissingCheckpoint => {
                write!(f, "missing empty line and checkpoint after the proof")
            }
        }
    }
}

impl std::error::Error for TlogProofError {}

impl TlogProof {
    /// Formats the proof as text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses proof text. The checkpoint is returned verbatim, unverified.
    pub fn parse(text: &str) -> Result<TlogProof, TlogProofError> {
        let rest = text
            .strip_prefix(HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(TlogProofError::MissingHeader)?;
        let (mut line, mut rest) = rest.split_once('\n').ok_or(TlogProofError::MissingIndex)?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(STANDARD.decode(b64).map_err(|_| TlogProofError::BadExtra)?);
            (line, rest) = rest.split_once('\n').ok_or(TlogProofError::MissingIndex)?;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or(TlogProofError::MissingIndex)?;
        if index.is_empty()
            || !index.bytes().all(|b| b.is_ascii_digit())
            || (index.len() > 1 && index.starts_with('0'))
        {
            return Err(TlogProofError::BadIndex);
        }
        let index: u64 = index.parse().map_err(|_| TlogProofError::BadIndex)?;
        let mut proof = Vec::new();
        loop {
            let (line, tail) = rest
                .split_once('\n')
                .ok_or(TlogProofError::MissingCheckpoint)?;
            rest = tail;
            if line.is_empty() {
                break;
            }
            let bytes = STANDARD
                .decode(line)
                .map_err(|_| TlogProofError::BadProofLine(proof.len()))?;
            if bytes.len() != HASH_SIZE {
                return Err(TlogProofError::BadProofLine(proof.len()));
            }
            let mut h = [0u8; HASH_SIZE];
            h.copy_from_slice(&bytes);
            proof.push(h);
        }
        if rest.is_empty() {
            return Err(TlogProofError::MissingCheckpoint);
        }
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: rest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = TlogProof {
            extra: Some(b"ctx".to_vec()),
            index: 73894,
            proof: vec![[1; 32], [2; 32]],
            checkpoint:
                "example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x y\n".into(),
        };
        let text = p.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra Y3R4\nindex 73894\n"));
        assert_eq!(TlogProof::parse(&text), Ok(p.clone()));
        let no_extra = TlogProof {
            extra: None,
            proof: vec![],
            ..p
        };
        assert_eq!(TlogProof::parse(&no_extra.to_text()), Ok(no_extra));
    }

    #[test]
    fn rejects_malformed() {
        use TlogProofError::*;
        for (text, want) in [
            ("", MissingHeader),
            ("c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n", MissingHeader),
            (
                "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n",
                BadExtra,
            ),
            ("c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n", BadIndex),
            ("c2sp.org/tlog-proof@v1\nindex -1\n\ncp\n", BadIndex),
            (
                "c2sp.org/tlog-proof@v1\nindex 99999999999999999999\n\ncp\n",
                BadIndex,
            ),
            ("c2sp.org/tlog-proof@v1\nidx 1\n\ncp\n", MissingIndex),
            (
                "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n",
                BadProofLine(0),
            ),
            ("c2sp.org/tlog-proof@v1\nindex 1\n", MissingCheckpoint),
            ("c2sp.org/tlog-proof@v1\nindex 1\n\n", MissingCheckpoint),
        ] {
            assert_eq!(TlogProof::parse(text), Err(want), "{text:?}");
        }
    }
}
