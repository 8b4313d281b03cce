//! The evidence log's signing keys: the key set (public, like the log's
//! identity), and rotation (role admin). The vault does the work
//! (`Vault::rotate_key`, `Vault::retire_keys`); these routes translate.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use evault_vault::{KeyEntry, LogId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::params::{QueryParams, format_ms};
use crate::problem::{Problem, ProblemBody};

const PROBLEM: &str = "application/problem+json";
/// The overlap when none is asked for: a week, so that verifiers that
/// update their keys weekly never see a checkpoint without a known key.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);

/// The log's keys, past and present.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogKeys {
    /// Checkpoint origin line (every key is named after it).
    pub origin: String,
    /// Every key the log ever signed with, oldest first.
    pub keys: Vec<KeyInfo>,
}

/// One key of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Verifier key in note format (`name+hash+base64`).
    pub verifier_key: String,
    /// `active` (signs), `retiring` (signs until `retire_after`),
    /// `retired` (signs nothing; older checkpoints stay verifiable) or
    /// `pending` (made by a rotation not logged yet).
    pub state: String,
    /// Leaf index of the key event record that added it; absent for the
    /// log's first key.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_at: Option<u64>,
    /// When a retiring key's overlap ends (RFC 3339).
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_after: Option<String>,
    /// Leaf index of the key event record that retired it: a checkpoint of
    /// a larger tree needs another key's signature.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

fn reply(st: &AppState, keys: Vec<KeyEntry>) -> Json<LogKeys> {
    Json(LogKeys {
        origin: st.vault.evidence_log().origin().to_string(),
        keys: keys
            .into_iter()
            .map(|k| KeyInfo {
                verifier_key: k.verifier_key,
                state: k.state.as_str().to_string(),
                added_at: k.added_at,
                retire_after: k.retire_after_ms.map(format_ms),
                retired_at: k.retired_at,
            })
            .collect(),
    })
}

/// The log's keys, past and present.
///
/// Every key the evidence log ever signed checkpoints with, and where each
/// stands. Each change is also a key event record in the log itself
/// (content type `application/vnd.evault.key-event`), signed by the old and
/// the new key: verify those, not this list, to follow a rotation without
/// trusting the server. Public log data.
#[utoipa::path(
    get,
    path = "/api/v1/log/keys",
    tag = "log",
    responses(
        (status = 200, description = "The key set", body = LogKeys),
    )
)]
pub async fn log_keys(State(st): State<AppState>) -> Result<Json<LogKeys>, Problem> {
    Ok(reply(&st, st.vault.keys(LogId::Evidence)?))
}

/// Rotate the log's signing key.
///
/// Makes a new Ed25519 key in the data directory, logs a key event record
/// signed by the keys in use and the new one, and from the next checkpoint
/// on signs with both. After `overlap_seconds` (default a week) the old key
/// is retired by a second key event and only the new key signs. Role
/// admin.
#[utoipa::path(
    post,
    path = "/api/v1/log/keys/rotate",
    tag = "log",
    params(
        ("overlap_seconds" = Option<u64>, Query, description = "How long the old key keeps signing beside the new one (default 604800, a week; at most 366 days)", maximum = 31622400),
    ),
    responses(
        (status = 200, description = "Rotated; the key set", body = LogKeys),
        (status = 400, description = "Unknown parameter or an overlap too long", body = ProblemBody, content_type = PROBLEM),
        (status = 409, description = "An earlier rotation's overlap is still running", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn rotate_key(
    State(st): State<AppState>,
    mut q: QueryParams,
) -> Result<Json<LogKeys>, Problem> {
    let overlap = q
        .take_number("overlap_seconds")?
        .map_or(DEFAULT_OVERLAP, Duration::from_secs);
    q.finish()?;
    Ok(reply(
        &st,
        st.vault.rotate_key(LogId::Evidence, overlap).await?,
    ))
}

/// End a rotation's overlap now.
///
/// Retires every retiring key at once (each by a key event record signed
/// by it and its successor); from the next checkpoint on only the new key
/// signs. Nothing to do answers the key set unchanged. Role admin.
#[utoipa::path(
    post,
    path = "/api/v1/log/keys/retire",
    tag = "log",
    responses(
        (status = 200, description = "The key set after the retirement", body = LogKeys),
        (status = 400, description = "Unknown parameter", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn retire_keys(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<LogKeys>, Problem> {
    q.finish()?;
    Ok(reply(&st, st.vault.retire_keys(LogId::Evidence).await?))
}
