//! Erasure, legal holds and retention policies (role admin; an auditor may
//! list holds and policies). The vault decides (`Vault::erase`,
//! `Vault::create_hold`, ...); these routes translate. Every call is
//! audited by the guard like any other.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use evault_vault::Selector;
use evault_vault::erasure::{Erased, Hold, MAX_REASON, RetentionPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::guard::Caller;
use crate::params::{PathParam, QueryParams};
use crate::problem::{Problem, ProblemBody};

const PROBLEM: &str = "application/problem+json";
/// Largest request body: a reason, a name and a selector.
const MAX_BODY: usize = 64 * 1024;

/// Which records a hold or policy covers: those carrying every label
/// (key and value exact) and, if given, of exactly this content type. `{}`
/// covers every record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectorBody {
    /// Labels a record must all carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Exact content type.
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl From<SelectorBody> for Selector {
    fn from(s: SelectorBody) -> Selector {
        Selector {
            labels: s.labels,
            content_type: s.content_type,
        }
    }
}

impl From<Selector> for SelectorBody {
    fn from(s: Selector) -> SelectorBody {
        SelectorBody {
            labels: s.labels,
            content_type: s.content_type,
        }
    }
}

/// `POST /api/v1/evidence/{id}/erase`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why (1 to 4096 bytes). Kept for administrators; the logs carry only
    /// its SHA-256.
    pub reason: String,
}

/// One erased record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedRecord {
    /// The erased record's id.
    pub id: String,
    /// Its leaf index.
    pub leaf_index: u64,
    /// The tombstone record's id.
    pub tombstone_id: String,
    /// The tombstone record's leaf index.
    pub tombstone_leaf: u64,
}

impl From<Erased> for ErasedRecord {
    fn from(e: Erased) -> Self {
        ErasedRecord {
            id: e.id,
            leaf_index: e.leaf_index,
            tombstone_id: e.tombstone_id,
            tombstone_leaf: e.tombstone_leaf,
        }
    }
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    /// The record asked for and every record sharing its payload bytes,
    /// each with its tombstone.
    pub erased: Vec<ErasedRecord>,
}

/// `POST /api/v1/holds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// The records to hold.
    pub selector: SelectorBody,
    /// Why (1 to 4096 bytes).
    pub reason: String,
}

/// A legal hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldBody {
    /// Its id.
    pub id: String,
    /// The records it holds.
    pub selector: SelectorBody,
    /// Why it was placed.
    pub reason: String,
    /// Lower-case hex SHA-256 of `reason`.
    pub reason_sha256: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Who placed it.
    pub created_by: String,
    /// RFC 3339, UTC; absent while the hold is active.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    /// Who released it.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
}

impl From<Hold> for HoldBody {
    fn from(h: Hold) -> Self {
        HoldBody {
            id: h.id,
            selector: h.selector.into(),
            reason: h.reason,
            reason_sha256: h.reason_sha256,
            created_at: h.created_at,
            created_by: h.created_by,
            released_at: h.released_at,
            released_by: h.released_by,
        }
    }
}

/// Every legal hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldList {
    /// Active and released, oldest first.
    pub holds: Vec<HoldBody>,
}

/// `POST /api/v1/retention`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRetention {
    /// A name for people (1 to 256 bytes).
    pub name: String,
    /// The records whose payloads expire.
    #[serde(default)]
    pub selector: SelectorBody,
    /// How long after ingestion a payload is kept, in seconds (at least 1).
    pub keep_for_seconds: u64,
}

/// A retention policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionBody {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The records whose payloads expire.
    pub selector: SelectorBody,
    /// Seconds a payload is kept after ingestion.
    pub keep_for_seconds: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
}

impl From<RetentionPolicy> for RetentionBody {
    fn from(p: RetentionPolicy) -> Self {
        RetentionBody {
            id: p.id,
            name: p.name,
            selector: p.selector.into(),
            keep_for_seconds: p.keep_for_seconds,
            created_at: p.created_at,
            created_by: p.created_by,
        }
    }
}

/// Every retention policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionList {
    /// Oldest first.
    pub policies: Vec<RetentionBody>,
}

/// Parses a JSON request body, as 400/413/415 problems.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Problem> {
    crate::params::json_body(headers, body, MAX_BODY, "the body", "")
}

/// Erase a record's payload.
///
/// Removes the payload bytes of the record, and of every record sharing
/// them, from the store and the blob directory; the leaves stay, so every
/// proof and bundle still verifies. A tombstone record per erased record
/// (`application/vnd.evault.tombstone+json`) is appended in the same
/// transaction; it carries the reason's SHA-256, never its text. Reading
/// an erased payload then answers 410 with the tombstone's id.
#[utoipa::path(
    post,
    path = "/api/v1/evidence/{id}/erase",
    tag = "compliance",
    params(("id" = String, Path, description = "Record id")),
    request_body(content = EraseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Erased; each record with its tombstone", body = Erasure),
        (status = 400, description = "No reason, a reason over 4096 bytes, or a body that is not an erase request", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles do not include admin", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such record", body = ProblemBody, content_type = PROBLEM),
        (status = 409, description = "A legal hold covers the record or one sharing its payload (the detail names the hold), it is erased already, or it is a tombstone", body = ProblemBody, content_type = PROBLEM),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = PROBLEM),
        (status = 503, description = "The vault is shutting down", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn erase_evidence(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
    q: QueryParams,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Erasure>, Problem> {
    q.finish()?;
    let req: EraseRequest = json_body(&headers, &body)?;
    if req.reason.len() > MAX_REASON {
        return Err(Problem::bad_request(format!(
            "the reason is longer than {MAX_REASON} bytes"
        )));
    }
    let erased = st.vault.erase(caller.principal(), &id, &req.reason).await?;
    Ok(Json(Erasure {
        erased: erased.into_iter().map(Into::into).collect(),
    }))
}

/// List legal holds.
///
/// Every hold placed, oldest first: active ones block erasure, by request
/// and by retention, of every record their selector covers; released ones
/// stay listed with who released them and when.
#[utoipa::path(
    get,
    path = "/api/v1/holds",
    tag = "compliance",
    responses(
        (status = 200, description = "Every hold, active and released", body = HoldList),
        (status = 400, description = "An unknown query parameter", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles include neither auditor nor admin", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn list_holds(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<HoldList>, Problem> {
    q.finish()?;
    let holds = st.vault.holds().await?;
    Ok(Json(HoldList {
        holds: holds.into_iter().map(Into::into).collect(),
    }))
}

/// Place a legal hold.
///
/// While it is active, no record the selector covers can be erased, by
/// request or by retention.
#[utoipa::path(
    post,
    path = "/api/v1/holds",
    tag = "compliance",
    request_body(content = NewHold, content_type = "application/json"),
    responses(
        (status = 201, description = "The hold", body = HoldBody),
        (status = 400, description = "No reason, a reason over 4096 bytes, a malformed selector, or a body that is not a hold", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles do not include admin", body = ProblemBody, content_type = PROBLEM),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn create_hold(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryParams,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    q.finish()?;
    let req: NewHold = json_body(&headers, &body)?;
    let hold = st
        .vault
        .create_hold(caller.principal(), req.selector.into(), &req.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(HoldBody::from(hold))).into_response())
}

/// Release a legal hold.
///
/// From then on the records it covered can be erased again (unless another
/// active hold covers them). The hold stays listed, released.
#[utoipa::path(
    post,
    path = "/api/v1/holds/{id}/release",
    tag = "compliance",
    params(("id" = String, Path, description = "Hold id")),
    responses(
        (status = 200, description = "The released hold", body = HoldBody),
        (status = 400, description = "An unknown query parameter", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles do not include admin", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such hold", body = ProblemBody, content_type = PROBLEM),
        (status = 409, description = "The hold is released already", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn release_hold(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
    q: QueryParams,
) -> Result<Json<HoldBody>, Problem> {
    q.finish()?;
    let hold = st.vault.release_hold(caller.principal(), &id).await?;
    Ok(Json(hold.into()))
}

/// List retention policies.
///
/// Every policy, oldest first: which records it covers and how long their
/// payloads are kept before a `retention_sweep` erases them.
#[utoipa::path(
    get,
    path = "/api/v1/retention",
    tag = "compliance",
    responses(
        (status = 200, description = "Every policy", body = RetentionList),
        (status = 400, description = "An unknown query parameter", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles include neither auditor nor admin", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn list_retention(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<RetentionList>, Problem> {
    q.finish()?;
    let policies = st.vault.retention_policies().await?;
    Ok(Json(RetentionList {
        policies: policies.into_iter().map(Into::into).collect(),
    }))
}

/// Create a retention policy.
///
/// A `retention_sweep` task, started by the vault on schedule, erases the
/// payloads of the records the selector covers once `keep_for_seconds`
/// have passed since they were ingested, skipping held records; each such
/// erasure is audited as principal `evault`.
#[utoipa::path(
    post,
    path = "/api/v1/retention",
    tag = "compliance",
    request_body(content = NewRetention, content_type = "application/json"),
    responses(
        (status = 201, description = "The policy", body = RetentionBody),
        (status = 400, description = "No name, a `keep_for_seconds` of 0, a malformed selector, or a body that is not a policy", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles do not include admin", body = ProblemBody, content_type = PROBLEM),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn create_retention(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryParams,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    q.finish()?;
    let req: NewRetention = json_body(&headers, &body)?;
    // Longer than a thousand years is a mistake, not a policy.
    if req.keep_for_seconds > 1000 * 366 * 24 * 3600 {
        return Err(Problem::bad_request("keep_for_seconds is too large"));
    }
    let policy = st
        .vault
        .create_retention(
            caller.principal(),
            &req.name,
            req.selector.into(),
            Duration::from_secs(req.keep_for_seconds),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RetentionBody::from(policy))).into_response())
}

/// Delete a retention policy.
///
/// Sweeps stop erasing by it from then on; payloads it erased already stay
/// erased (their tombstones are in the log).
#[utoipa::path(
    delete,
    path = "/api/v1/retention/{id}",
    tag = "compliance",
    params(("id" = String, Path, description = "Policy id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "An unknown query parameter", body = ProblemBody, content_type = PROBLEM),
        (status = 403, description = "The token's roles do not include admin", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such policy", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn delete_retention(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    q: QueryParams,
) -> Result<StatusCode, Problem> {
    q.finish()?;
    st.vault.delete_retention(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
