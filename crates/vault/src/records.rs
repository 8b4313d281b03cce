//! Evidence records: a new record's stored row, and the API view of a
//! stored one.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use evault_store::{EvidenceRow, Payload};
use evault_verify::evidence::hex;
use evault_verify::{Evidence, dedup_key};

use crate::error::{Result, VaultError};

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn format_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// What a new record is made of, its fields already validated.
pub(crate) struct NewRecord {
    pub content_type: String,
    pub labels: BTreeMap<String, String>,
    pub principal: String,
    pub idempotency_key: Option<String>,
    pub sha256: [u8; 32],
    pub size: u64,
    pub payload: Payload,
}

impl NewRecord {
    /// The record's row (leaf index still 0: the sequencer assigns it).
    pub fn into_row(self) -> Result<EvidenceRow> {
        let ingested_at_ms = crate::checkpointer::now_ms();
        let evidence = Evidence {
            id: uuid::Uuid::now_v7().to_string(),
            leaf_index: 0,
            content_type: self.content_type,
            sha256: hex(&self.sha256),
            size: self.size,
            labels: self.labels,
            ingested_at: format_ms(ingested_at_ms),
            ingested_by: self.principal,
            idempotency_key: self.idempotency_key,
        };
        let leaf_data = evidence
            .leaf_data()
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
        Ok(EvidenceRow {
            leaf_index: 0,
            dedup_key: dedup_key(&self.sha256, &evidence.content_type, &evidence.labels),
            leaf_data,
            id: evidence.id,
            content_type: evidence.content_type,
            sha256: self.sha256,
            size: self.size,
            labels: evidence.labels,
            ingested_at_ms,
            ingested_by: evidence.ingested_by,
            idempotency_key: evidence.idempotency_key,
            payload: self.payload,
            analytics: None,
        })
    }
}

/// The API view of a stored row.
pub fn evidence_from_row(row: &EvidenceRow) -> Evidence {
    Evidence {
        id: row.id.clone(),
        leaf_index: row.leaf_index,
        content_type: row.content_type.clone(),
        sha256: hex(&row.sha256),
        size: row.size,
        labels: row.labels.clone(),
        ingested_at: format_ms(row.ingested_at_ms),
        ingested_by: row.ingested_by.clone(),
        idempotency_key: row.idempotency_key.clone(),
    }
}
