//! The OpenAPI document: top-level metadata, and schemas for the types that
//! live in crates without utoipa (`Evidence`, `ProofBundle`). Those mirrors
//! are checked against the real types' JSON in a test below.

use std::collections::BTreeMap;

use utoipa::OpenApi;
use utoipa::ToSchema;

/// An evidence record's metadata. Its leaf in the log is the RFC 8785
/// canonical JSON of these fields minus `leaf_index` and `idempotency_key`.
#[derive(ToSchema)]
#[schema(as = Evidence)]
#[allow(dead_code)]
pub struct EvidenceDoc {
    /// UUIDv7.
    id: String,
    /// Position in the log.
    leaf_index: u64,
    content_type: String,
    /// Lower-case hex SHA-256 of the payload.
    sha256: String,
    /// Payload size in bytes.
    size: u64,
    labels: BTreeMap<String, String>,
    /// RFC 3339, UTC, millisecond precision.
    ingested_at: String,
    /// Principal that submitted the record.
    ingested_by: String,
    /// Present when the submission carried one.
    #[schema(nullable = false)]
    idempotency_key: Option<String>,
}

/// Everything an auditor needs to check a record's inclusion offline.
#[derive(ToSchema)]
#[schema(as = ProofBundle)]
#[allow(dead_code)]
pub struct ProofBundleDoc {
    record: EvidenceDoc,
    leaf_index: u64,
    /// Size of the checkpoint the proof leads to.
    tree_size: u64,
    /// Base64 hashes, leaf's sibling first (RFC 6962 audit path).
    inclusion_proof: Vec<String>,
    /// The signed checkpoint note, verbatim.
    checkpoint: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "evault",
        description = "Tamper-evident evidence vault: records in an RFC 6962 Merkle log with \
                       C2SP signed checkpoints. Every error is `application/problem+json` (RFC 9457).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(crate::tlog::tile),
    tags(
        (name = "evidence", description = "Submit, read, list and prove evidence records"),
        (name = "log", description = "The log's identity, size and consistency proofs"),
        (name = "checkpoints", description = "Signed checkpoints"),
        (name = "tlog-tiles", description = "C2SP tlog-tiles static API (outside /api/v1)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub(crate) struct ApiDoc;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use evault_verify::{Evidence, ProofBundle};
    use serde_json::Value;

    fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {schema} missing"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn mirrored_schemas_match_the_real_types() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let record = Evidence {
            id: "x".into(),
            leaf_index: 0,
            content_type: "a/b".into(),
            sha256: "00".into(),
            size: 0,
            labels: Default::default(),
            ingested_at: "t".into(),
            ingested_by: "p".into(),
            idempotency_key: Some("k".into()),
        };
        let bundle = ProofBundle {
            record: record.clone(),
            leaf_index: 0,
            tree_size: 1,
            inclusion_proof: vec![],
            checkpoint: String::new(),
        };
        assert_eq!(
            properties(&doc, "Evidence"),
            keys(&serde_json::to_value(&record).unwrap())
        );
        assert_eq!(
            properties(&doc, "ProofBundle"),
            keys(&serde_json::to_value(&bundle).unwrap())
        );
    }
}
