//! The evidence record and its leaf data (docs/FORMATS.md).
//!
//! The leaf is the RFC 8785 (JCS) canonical JSON of the record's metadata,
//! never the payload: anyone can recompute it from what the API returns, and
//! a payload can later be erased without breaking a single proof.

use std::collections::BTreeMap;

use evault_merkle::{Hash, leaf_hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version tag inside every leaf; a new leaf layout gets a new tag.
pub const LEAF_VERSION: &str = "evault/evidence/v1";

/// An evidence record as the API returns it. The format is strict: a
/// member this struct does not know is an error, never silently dropped
/// (an auditor must not take a record with unverified content as checked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// UUIDv7.
    pub id: String,
    /// Position in the evidence log, 0-based; not part of the leaf (the
    /// inclusion proof proves it).
    pub leaf_index: u64,
    /// Media type of the payload, as stored.
    pub content_type: String,
    /// Lower-case hex SHA-256 of the payload.
    pub sha256: String,
    /// Payload size in bytes.
    pub size: u64,
    /// The submitter's key-value labels; empty when there are none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, UTC, millisecond precision (`2026-11-23T11:30:00.123Z`).
    pub ingested_at: String,
    /// Principal that submitted the record.
    pub ingested_by: String,
    /// The submitter's retry token, if one was given; not part of the leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Exactly the fields committed to by the leaf; field names are the JSON
/// member names, and JCS sorts them.
#[derive(Serialize)]
struct LeafFields<'a> {
    v: &'a str,
    id: &'a str,
    sha256: &'a str,
    size: u64,
    content_type: &'a str,
    labels: &'a BTreeMap<String, String>,
    ingested_at: &'a str,
    ingested_by: &'a str,
}

impl Evidence {
    /// The leaf data: canonical JSON of the metadata (RFC 8785). Fails only
    /// for a record JCS cannot represent exactly (a `size` above 2^53).
    pub fn leaf_data(&self) -> Result<Vec<u8>, LeafError> {
        let fields = LeafFields {
            v: LEAF_VERSION,
            id: &self.id,
            sha256: &self.sha256,
            size: self.size,
            content_type: &self.content_type,
            labels: &self.labels,
            ingested_at: &self.ingested_at,
            ingested_by: &self.ingested_by,
        };
        // JSON numbers are IEEE 754 doubles (RFC 8785 §3.2.2.3): a larger
        // size would not survive a round trip through any verifier.
        if self.size > MAX_EXACT_INTEGER {
            return Err(LeafError(format!(
                "size {} is above 2^53, which RFC 8785 cannot represent exactly",
                self.size
            )));
        }
        serde_jcs::to_vec(&fields).map_err(|e| LeafError(e.to_string()))
    }

    /// RFC 6962 leaf hash of [`Evidence::leaf_data`].
    pub fn leaf_hash(&self) -> Result<Hash, LeafError> {
        Ok(leaf_hash(&self.leaf_data()?))
    }
}

/// Largest integer an IEEE 754 double holds exactly.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Why a record has no leaf data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafError(pub String);

impl std::fmt::Display for LeafError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the record has no canonical leaf: {}", self.0)
    }
}

impl std::error::Error for LeafError {}

/// Identity used to deduplicate submissions: the same payload, content type
/// and labels. (Who sent it and when do not count.)
pub fn dedup_key(
    payload_sha256: &[u8; 32],
    content_type: &str,
    labels: &BTreeMap<String, String>,
) -> [u8; 32] {
    #[derive(Serialize)]
    struct Key<'a> {
        sha256: String,
        content_type: &'a str,
        labels: &'a BTreeMap<String, String>,
    }
    let key = Key {
        sha256: hex(payload_sha256),
        content_type,
        labels,
    };
    let canonical = serde_jcs::to_vec(&key).unwrap_or_default();
    Sha256::digest(canonical).into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses 64 hex digits (either case) into 32 bytes.
pub fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Evidence {
        Evidence {
            id: "01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a".into(),
            leaf_index: 7,
            content_type: "application/json".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            size: 0,
            labels: BTreeMap::from([
                ("pipeline".to_string(), "release".to_string()),
                ("commit".to_string(), "ab12".to_string()),
                ("é".to_string(), "\u{1F600}\"\n".to_string()),
            ]),
            ingested_at: "2026-11-23T11:30:00.123Z".into(),
            ingested_by: "sa:ci".into(),
            idempotency_key: Some("retry-1".into()),
        }
    }

    #[test]
    fn leaf_data_is_canonical_and_excludes_index_and_idempotency_key() {
        let e = sample();
        let got = String::from_utf8(e.leaf_data().unwrap()).unwrap();
        let want = concat!(
            r#"{"content_type":"application/json","id":"01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a","#,
            r#""ingested_at":"2026-11-23T11:30:00.123Z","ingested_by":"sa:ci","#,
            r#""labels":{"commit":"ab12","pipeline":"release","é":"😀\"\n"},"#,
            r#""sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","#,
            r#""size":0,"v":"evault/evidence/v1"}"#
        );
        assert_eq!(got, want);
        let mut moved = e.clone();
        moved.leaf_index = 99;
        moved.idempotency_key = None;
        assert_eq!(moved.leaf_data().unwrap(), e.leaf_data().unwrap());
    }

    #[test]
    fn dedup_key_ignores_who_and_when() {
        let labels = sample().labels;
        let a = dedup_key(&[1; 32], "text/plain", &labels);
        assert_eq!(a, dedup_key(&[1; 32], "text/plain", &labels));
        assert_ne!(a, dedup_key(&[2; 32], "text/plain", &labels));
        assert_ne!(a, dedup_key(&[1; 32], "text/html", &labels));
        assert_ne!(a, dedup_key(&[1; 32], "text/plain", &BTreeMap::new()));
    }

    #[test]
    fn hex_round_trip() {
        let b = [0xab; 32];
        assert_eq!(parse_sha256_hex(&hex(&b)), Some(b));
        assert_eq!(parse_sha256_hex(&hex(&b).to_uppercase()), Some(b));
        assert_eq!(parse_sha256_hex("zz"), None);
        assert_eq!(parse_sha256_hex(&"g".repeat(64)), None);
    }
}
