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

/// One audit event: one API request, allowed or refused. Its leaf in the
/// audit log is the RFC 8785 canonical JSON of these fields minus
/// `leaf_index` (docs/FORMATS.md).
#[derive(ToSchema)]
#[schema(as = AuditEvent)]
#[allow(dead_code)]
pub struct AuditEventDoc {
    /// UUIDv7.
    id: String,
    /// Position in the audit log.
    leaf_index: u64,
    /// When the request arrived: RFC 3339, UTC, millisecond precision.
    time: String,
    /// Also sent to the client as `X-Request-Id`.
    request_id: String,
    /// Who called; `anonymous` without an identity (see `reason`).
    principal: String,
    /// The service-account key or OIDC key the token was checked with.
    #[schema(nullable = false)]
    key_id: Option<String>,
    /// `service-account`, `oidc` or `none`.
    auth_method: String,
    /// `http` (or `grpc`).
    protocol: String,
    /// Operation name from the permission table (docs/SECURITY.md), or `unknown`.
    operation: String,
    /// What the request addressed (path, or the record it created).
    resource: String,
    /// `success`, `denied`, `unauthenticated` or `failed`.
    outcome: String,
    /// HTTP status of the reply.
    status: u16,
    /// Client address.
    client: String,
    /// Lower-case hex SHA-256 of the request's parameters (never secrets or payload bytes).
    params_digest: String,
    /// Why it was refused or failed, or why the caller is anonymous.
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// Everything an auditor needs to check an audit event's inclusion offline.
#[derive(ToSchema)]
#[schema(as = AuditProofBundle)]
#[allow(dead_code)]
pub struct AuditProofBundleDoc {
    record: AuditEventDoc,
    leaf_index: u64,
    /// Size of the audit checkpoint the proof leads to.
    tree_size: u64,
    /// Base64 hashes, leaf's sibling first (RFC 6962 audit path).
    inclusion_proof: Vec<String>,
    /// The signed audit checkpoint note, verbatim.
    checkpoint: String,
}

/// How an inclusion proof is returned.
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum ProofFormat {
    /// A JSON proof bundle (the default).
    Json,
    /// C2SP tlog-proof text.
    TlogProof,
}

/// The audit outcomes a listing can be filtered by.
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum OutcomeFilter {
    Success,
    Denied,
    Unauthenticated,
    Failed,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "evault",
        description = "Tamper-evident evidence vault: records in an RFC 6962 Merkle log with \
                       C2SP signed checkpoints. Every error is `application/problem+json` (RFC 9457).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(crate::tlog::tile, crate::tlog::audit_tile, crate::tlog::audit_entries, crate::ui::ui_asset),
    components(schemas(ProofFormat, OutcomeFilter)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "evidence", description = "Submit, read, list and prove evidence records"),
        (name = "analytics", description = "Summaries of typed analytics events (`application/vnd.evault.analytics+json` records)"),
        (name = "log", description = "The log's identity, size and consistency proofs"),
        (name = "checkpoints", description = "Signed checkpoints"),
        (name = "tlog-tiles", description = "C2SP tlog-tiles static API (outside /api/v1): the evidence log under /tlog/, the audit log under /tlog-audit/"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "audit", description = "The audit trail: every request, in its own Merkle log. Its events and their proofs need role auditor; its identity, checkpoints and consistency proofs are public log data"),
        (name = "tasks", description = "Tracked long jobs (exports, fsck): each bound to the principal that started it (an admin sees all), with progress as Server-Sent Events and a result file"),
        (name = "compliance", description = "Erasure of payloads (their leaves, proofs and bundles stay valid; a tombstone record says what was erased), legal holds that block it, and retention policies that erase expired payloads on schedule: changes need role admin, listing auditor or admin"),
        (name = "mirrors", description = "Evidence bundles of other logs imported as verified mirrors (their origin, leaf indexes and signed checkpoint kept as provenance, never leaves of this vault's logs), and reading them back: import needs role admin, reading auditor or admin"),
        (name = "identity", description = "Who the caller is, and service-account administration"),
        (name = "dashboard", description = "The web dashboard (`/ui/`): its page, settings and embedded assets, served to anyone under a strict Content Security Policy. It reads the API with the user's own token and verifies proofs in the browser"),
    )
)]
pub(crate) struct ApiDoc;

/// Bearer tokens (service-account HS256 JWS or OIDC JWT), on every route
/// that needs one ([`complete`] marks the others); which role each route
/// needs is in docs/SECURITY.md.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A service-account token (`evault token mint`) or an OIDC token from \
                         a configured issuer. Operations with `security: []` need none: the \
                         open routes, and the public log data while `public_log_read` is on.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Completes the generated document with what the permission table and
/// the guard decide for every operation, so it lists every status a client
/// can get and the auth each route actually enforces:
///
/// - `security: []` on routes that need no token (open routes, and the
///   public log data while `public_log_read` is on); the document's
///   bearer requirement stays on every other one.
/// - 401 only where a token is needed (a route that needs none ignores a
///   token that does not verify), 403 only where some role is not granted
///   (an operation every role may call cannot be refused for roles).
/// - 429 everywhere (anonymous callers are limited per address).
/// - 400 wherever a path parameter can be malformed (not UTF-8).
/// - 503 and 507 everywhere but the probes: the request's audit event
///   cannot be written, or the disk is full. The probes never wait for the
///   audit trail; `/readyz` documents its own 503.
///
/// Statuses an operation documents itself keep its own description. Also
/// sets `servers`: the public URL when it is known, else this server.
pub(crate) fn complete(
    doc: &mut utoipa::openapi::OpenApi,
    public_log_read: bool,
    public_url: Option<&str>,
) {
    use axum::http::Method;
    use utoipa::openapi::Ref;
    use utoipa::openapi::content::Content;
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::response::Response;
    use utoipa::openapi::server::Server;

    use crate::access::{self, Access};

    let problem = |description: &str| {
        Response::builder()
            .description(description)
            .content(
                crate::problem::PROBLEM_JSON,
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (Method::GET, item.get.as_mut()),
            (Method::POST, item.post.as_mut()),
            (Method::PUT, item.put.as_mut()),
            (Method::DELETE, item.delete.as_mut()),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            // Every documented operation is in the table (a test checks).
            let Some(row) = access::lookup(&method, path) else {
                continue;
            };
            let needs_token = access::needs_token(row, public_log_read);
            if !needs_token {
                op.security = Some(Vec::new());
            }
            let has_path_param = op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Path);
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| problem(description).into());
            };
            if has_path_param {
                add(
                    "400",
                    "A path parameter is malformed (e.g. a percent escape that is not UTF-8)",
                );
            }
            if needs_token {
                add(
                    "401",
                    match row.access {
                        Access::PublicLog => {
                            "No token, or one that does not verify (`public_log_read` is off \
                             on this server)"
                        }
                        _ => "No token, or one that does not verify",
                    },
                );
            }
            if access::can_forbid(row) {
                add(
                    "403",
                    "The token's roles do not grant this operation (docs/SECURITY.md)",
                );
            }
            add(
                "429",
                "The caller's rate limit is exhausted; retry after `Retry-After` seconds",
            );
            if !matches!(row.name, "health.live" | "health.ready") {
                add(
                    "503",
                    if needs_token {
                        "The vault is unavailable or shutting down, the audit trail cannot be \
                         written, or an OIDC issuer does not answer; retry after `Retry-After`"
                    } else {
                        "The vault is unavailable or shutting down, or the audit trail cannot \
                         be written; retry after `Retry-After`"
                    },
                );
                add(
                    "507",
                    "The disk holding the vault is full: the write or the request's audit \
                     event cannot be stored; retry after `Retry-After`",
                );
            }
        }
    }
    let server = match public_url {
        Some(url) => Server::builder()
            .url(url.trim_end_matches('/'))
            .description(Some("The vault's public URL (`--public-url`)"))
            .build(),
        None => Server::builder()
            .url("/")
            .description(Some(
                "The server this document is served by (at `/api/v1/openapi.json`)",
            ))
            .build(),
    };
    doc.servers = Some(vec![server]);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use evault_verify::audit::{AuditEvent, Outcome};
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
        let event = AuditEvent {
            id: "x".into(),
            leaf_index: 0,
            time: "t".into(),
            request_id: "r".into(),
            principal: "p".into(),
            key_id: Some("k".into()),
            auth_method: "none".into(),
            protocol: "http".into(),
            operation: "o".into(),
            resource: "/".into(),
            outcome: Outcome::Failed,
            status: 400,
            client: "c".into(),
            params_digest: "00".into(),
            reason: Some("why".into()),
        };
        let audit_bundle = ProofBundle {
            record: event.clone(),
            leaf_index: 0,
            tree_size: 1,
            inclusion_proof: vec![],
            checkpoint: String::new(),
        };
        assert_eq!(
            properties(&doc, "AuditEvent"),
            keys(&serde_json::to_value(&event).unwrap())
        );
        assert_eq!(
            properties(&doc, "AuditProofBundle"),
            keys(&serde_json::to_value(&audit_bundle).unwrap())
        );
    }
}
