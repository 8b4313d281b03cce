//! What an entry must be beyond hashing to its leaf: nothing for an
//! arbitrary tlog-tiles log; for an evault log, the canonical leaf of an
//! evidence record or audit event (docs/FORMATS.md), byte for byte.

use std::collections::BTreeMap;

use evault_verify::{AuditEvent, Evidence, KEY_EVENT_TYPE, KeyEvent, LEAF_VERSION};
use serde::Deserialize;

use crate::state::LogKind;

/// The members of an evidence leaf (`Evidence::leaf_data`), no more.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceLeaf {
    v: String,
    id: String,
    sha256: String,
    size: u64,
    content_type: String,
    labels: BTreeMap<String, String>,
    ingested_at: String,
    ingested_by: String,
}

/// Checks that `entry`, leaf `leaf_index` of a log of `kind`, is what such
/// a log holds: for evault logs, a record whose canonical leaf re-encodes
/// to exactly these bytes.
pub fn check_entry(kind: LogKind, entry: &[u8], leaf_index: u64) -> Result<(), String> {
    match kind {
        LogKind::Tlog => Ok(()),
        LogKind::EvaultAudit => AuditEvent::from_leaf_data(entry, leaf_index).map(|_| ()),
        LogKind::EvaultEvidence => {
            let f: EvidenceLeaf = serde_json::from_slice(entry)
                .map_err(|e| format!("not an {LEAF_VERSION} leaf: {e}"))?;
            if f.v != LEAF_VERSION {
                return Err(format!(
                    "evidence leaf has version {:?}, expected {LEAF_VERSION:?}",
                    f.v
                ));
            }
            let record = Evidence {
                id: f.id,
                leaf_index,
                content_type: f.content_type,
                sha256: f.sha256,
                size: f.size,
                labels: f.labels,
                ingested_at: f.ingested_at,
                ingested_by: f.ingested_by,
                idempotency_key: None,
            };
            let canonical = record.leaf_data().map_err(|e| e.to_string())?;
            if canonical != entry {
                return Err("evidence leaf is not in RFC 8785 canonical form".into());
            }
            Ok(())
        }
    }
}

/// The key event an evault evidence leaf holds, if it is one the log
/// itself logged (ingested by `evault`), with its signed note rebuilt from
/// the labels. Records of other principals that carry key event labels
/// are no key events. The leaf must have passed [`check_entry`].
pub fn key_event(kind: LogKind, entry: &[u8]) -> Result<Option<(KeyEvent, String)>, String> {
    if kind != LogKind::EvaultEvidence {
        return Ok(None);
    }
    let f: EvidenceLeaf =
        serde_json::from_slice(entry).map_err(|e| format!("not an {LEAF_VERSION} leaf: {e}"))?;
    if f.ingested_by != KEY_EVENT_PRINCIPAL || f.content_type != KEY_EVENT_TYPE {
        return Ok(None);
    }
    KeyEvent::from_labels(&f.labels)
}

/// Who the vault logs its own key events as.
const KEY_EVENT_PRINCIPAL: &str = "evault";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_leaf_must_be_canonical() {
        let record = Evidence {
            id: "01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a".into(),
            leaf_index: 3,
            content_type: "text/plain".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            size: 0,
            labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ingested_at: "2026-11-23T11:30:00.123Z".into(),
            ingested_by: "sa:ci".into(),
            idempotency_key: None,
        };
        let leaf = record.leaf_data().unwrap();
        assert_eq!(check_entry(LogKind::EvaultEvidence, &leaf, 3), Ok(()));
        // Same members, not canonical: a space.
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&leaf);
        assert!(check_entry(LogKind::EvaultEvidence, &spaced, 3).is_err());
        let unknown = String::from_utf8(leaf.clone())
            .unwrap()
            .replacen('{', "{\"extra\":1,", 1);
        assert!(check_entry(LogKind::EvaultEvidence, unknown.as_bytes(), 3).is_err());
        assert!(check_entry(LogKind::EvaultEvidence, b"\x00\x01", 3).is_err());
        assert!(check_entry(LogKind::EvaultAudit, &leaf, 3).is_err());
        assert_eq!(check_entry(LogKind::Tlog, b"\x00\x01", 3), Ok(()));
    }
}
