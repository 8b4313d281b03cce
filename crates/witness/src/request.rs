//! The `add-checkpoint` request body (C2SP tlog-witness v1.0.0):
//!
//! ```text
//! old <size>\n
//! <base64 hash>\n        (0 to 63 consistency proof lines)
//! \n
//! <signed checkpoint note>
//! ```

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::Hash;

/// The most consistency proof lines a client may send.
pub const MAX_PROOF_LINES: usize = 63;

/// A parsed `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint<'a> {
    /// The size of the checkpoint the client believes the witness last
    /// cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub note: &'a str,
}

/// Why a request body is not an `add-checkpoint` request (400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The body is not UTF-8.
    NotUtf8,
    /// The first line is not `old <decimal>`.
    BadOldLine,
    /// The old size has a leading zero or does not fit in 64 bits.
    BadOldSize,
    /// A proof line is not the base64 of a 32-byte hash.
    BadProofLine {
        /// The 1-based line number.
        line: usize,
    },
    /// More than 63 proof lines.
    TooManyProofLines,
    /// No empty line before the checkpoint.
    MissingSeparator,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotUtf8 => f.write_str("request body is not UTF-8"),
            RequestError::BadOldLine => {
                f.write_str("first line must be \"old <size>\" and end in a newline")
            }
            RequestError::BadOldSize => f.write_str(
                "old size must be a decimal with no leading zeroes that fits in 64 bits",
            ),
            RequestError::BadProofLine { line } => {
                write!(f, "line {line}: not the base64 of a 32-byte hash")
            }
            RequestError::TooManyProofLines => {
                write!(f, "more than {MAX_PROOF_LINES} consistency proof lines")
            }
            RequestError::MissingSeparator => {
                f.write_str("no empty line between the proof and the checkpoint")
            }
        }
    }
}

impl std::error::Error for RequestError {}

impl<'a> AddCheckpoint<'a> {
    /// Parses a request body strictly: every line ends in a newline, the
    /// old size is canonical decimal, every proof line is canonical base64
    /// of 32 bytes. The checkpoint note is returned unparsed.
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        let body = core::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
        let (first, mut rest) = body.split_once('\n').ok_or(RequestError::BadOldLine)?;
        let digits = first.strip_prefix("old ").ok_or(RequestError::BadOldLine)?;
        let old_size = parse_decimal(digits).ok_or(RequestError::BadOldSize)?;
        let mut proof = Vec::new();
        let mut line = 1;
        loop {
            line += 1;
            let (l, after) = rest
                .split_once('\n')
                .ok_or(RequestError::MissingSeparator)?;
            rest = after;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let hash = STANDARD
                .decode(l)
                .ok()
                .and_then(|b| Hash::try_from(b.as_slice()).ok())
                .filter(|h| STANDARD.encode(h) == l)
                .ok_or(RequestError::BadProofLine { line })?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: rest,
        })
    }

    /// Encodes the request body, for a log sending it.
    pub fn encode(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(self.note);
        out
    }
}

/// Parses ASCII decimal with no leading zeroes (`0` itself allowed).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    #[test]
    fn parses_the_spec_example() {
        let body = format!(
            "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\n{NOTE}"
        );
        let req = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(req.old_size, 20852014);
        assert_eq!(req.proof.len(), 4);
        assert_eq!(req.note, NOTE);
        assert_eq!(req.encode(), body);
    }

    #[test]
    fn old_zero_and_no_proof() {
        let body = format!("old 0\n\n{NOTE}");
        let req = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!((req.old_size, req.proof.len()), (0, 0));
        assert_eq!(req.encode(), body);
    }

    #[test]
    fn refusals() {
        let h = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=";
        let cases: Vec<(Vec<u8>, RequestError)> = vec![
            (vec![0xff, b'\n'], RequestError::NotUtf8),
            (b"old 1".to_vec(), RequestError::BadOldLine),
            (b"new 1\n\n".to_vec(), RequestError::BadOldLine),
            (b"old  1\n\n".to_vec(), RequestError::BadOldSize),
            (b"old 01\n\n".to_vec(), RequestError::BadOldSize),
            (b"old -1\n\n".to_vec(), RequestError::BadOldSize),
            (
                b"old 18446744073709551616\n\n".to_vec(),
                RequestError::BadOldSize,
            ),
            (b"old \n\n".to_vec(), RequestError::BadOldSize),
            (b"old 1\n".to_vec(), RequestError::MissingSeparator),
            (
                format!("old 1\n{h}\n").into_bytes(),
                RequestError::MissingSeparator,
            ),
            (
                b"old 1\nAAAA\n\n".to_vec(),
                RequestError::BadProofLine { line: 2 },
            ),
            (
                format!("old 1\n{h}\n{}\n\n", &h[..43]).into_bytes(),
                RequestError::BadProofLine { line: 3 },
            ),
            (
                // Non-canonical base64 (padding bits set).
                format!("old 1\n{}F=\n\n", &h[..42]).into_bytes(),
                RequestError::BadProofLine { line: 2 },
            ),
            (
                format!("old 1\n{h} \n\n").into_bytes(),
                RequestError::BadProofLine { line: 2 },
            ),
            (
                format!("old 1\n{}\n", format!("{h}\n").repeat(64)).into_bytes(),
                RequestError::TooManyProofLines,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                AddCheckpoint::parse(&body),
                Err(want.clone()),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
            assert!(!want.to_string().is_empty());
        }
        // 63 lines are fine.
        let body = format!("old 1\n{}\n{NOTE}", format!("{h}\n").repeat(63));
        assert_eq!(
            AddCheckpoint::parse(body.as_bytes()).unwrap().proof.len(),
            63
        );
        assert_eq!(u64::MAX, parse_decimal("18446744073709551615").unwrap());
    }
}
