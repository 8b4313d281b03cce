//! The read API of both Merkle logs, one implementation parameterised by
//! the log: identity and sizes, checkpoints, consistency and inclusion
//! proofs. The evidence log is at `/api/v1/log`, `/api/v1/tree/consistency`,
//! `/api/v1/checkpoints…` and `/api/v1/evidence/{id}/proof`; the audit log
//! at the same shapes under `/api/v1/audit/…`. Each route below is a
//! one-line binding of a path to a log; the checks live in the vault.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_vault::{LogId, LogProof, StoredCheckpoint, VaultError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::guard::Caller;
use crate::params::{
    CursorKind, PathParam, QueryParams, decode_cursor, encode_cursor, format_ms, parse_limit,
    parse_number, prefers_json,
};
use crate::problem::{Problem, ProblemBody};

/// What a verifier needs to start following the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogInfo {
    /// Checkpoint origin line.
    pub origin: String,
    /// The log's Ed25519 verifier key in note format (`name+hash+base64`);
    /// during a key rotation's overlap, the new key.
    pub verifier_key: String,
    /// Every key that signs the log's new checkpoints, in the order of
    /// their signature lines: its Ed25519 keys (two during a key
    /// rotation's overlap, the older first; `verifier_key` is the last of
    /// them), then an ML-DSA-44 key (C2SP signature type 0x06) when the log
    /// has one. `GET /api/v1/log/keys` lists every key it ever used.
    pub verifier_keys: Vec<String>,
    /// The log's witnesses (C2SP tlog-witness), when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<Witnessing>,
    /// Records durably committed.
    pub tree_size: u64,
    /// Size of the latest signed checkpoint.
    pub checkpoint_size: u64,
}

/// Who cosigns the log's checkpoints, and how far.
#[derive(Debug, Serialize, ToSchema)]
pub struct Witnessing {
    /// How many distinct witnesses must cosign a checkpoint (k of n).
    pub threshold: usize,
    /// How many are configured (n).
    pub total: usize,
    /// The largest checkpoint size `threshold` witnesses cosigned; null
    /// before the first. A checkpoint beyond it is not witnessed yet.
    pub witnessed_size: Option<u64>,
    /// Each witness, in configuration order.
    pub items: Vec<WitnessItem>,
}

/// One witness, as the vault last heard from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WitnessItem {
    /// Its name (its key's name).
    pub name: String,
    /// The checkpoint size it last cosigned (0: none yet since start).
    pub acknowledged_size: u64,
    /// Its last failure, until it cosigns again.
    pub last_error: Option<String>,
    /// It said a checkpoint is inconsistent with one it cosigned (a fork or
    /// a rollback, or a faulty witness): an operator must look.
    pub inconsistent: bool,
}

impl From<evault_vault::WitnessStatus> for Witnessing {
    fn from(s: evault_vault::WitnessStatus) -> Self {
        Witnessing {
            threshold: s.threshold,
            total: s.total,
            witnessed_size: s.witnessed_size,
            items: s
                .witnesses
                .into_iter()
                .map(|w| WitnessItem {
                    name: w.name,
                    acknowledged_size: w.acknowledged_size,
                    last_error: w.last_error,
                    inconsistent: w.inconsistent,
                })
                .collect(),
        }
    }
}

/// A consistency proof between two checkpointed tree sizes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// Older tree size, in leaves.
    pub from: u64,
    /// Newer tree size, in leaves.
    pub to: u64,
    /// RFC 6962 consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointInfo {
    /// Tree size the checkpoint commits to, in leaves.
    pub size: u64,
    /// The signed note (C2SP tlog-checkpoint), verbatim.
    pub note: String,
    /// RFC 3339, UTC, milliseconds.
    pub created_at: String,
}

impl From<StoredCheckpoint> for CheckpointInfo {
    fn from(c: StoredCheckpoint) -> Self {
        CheckpointInfo {
            size: c.size,
            note: c.note,
            created_at: format_ms(c.created_at_ms),
        }
    }
}

/// One page of checkpoints, ascending by size.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointPage {
    /// The checkpoints, at most `limit`, ascending by size.
    pub items: Vec<CheckpointInfo>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<evault_vault::ConsistencyProof> for ConsistencyProof {
    fn from(p: evault_vault::ConsistencyProof) -> Self {
        ConsistencyProof {
            from: p.from,
            to: p.to,
            proof: p.proof.iter().map(|h| STANDARD.encode(h)).collect(),
        }
    }
}

impl From<evault_vault::LogInfo> for LogInfo {
    fn from(i: evault_vault::LogInfo) -> Self {
        LogInfo {
            origin: i.origin,
            verifier_key: i.verifier_key,
            verifier_keys: i.verifier_keys,
            witnesses: i.witnesses.map(Witnessing::from),
            tree_size: i.tree_size,
            checkpoint_size: i.checkpoint_size,
        }
    }
}

/// Text note by default; JSON when `Accept` prefers `application/json`.
pub(crate) fn checkpoint_reply(cp: StoredCheckpoint, headers: &HeaderMap) -> Response {
    let mut resp = if prefers_json(headers) {
        Json(CheckpointInfo::from(cp)).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cp.note,
        )
            .into_response()
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    resp
}

// --- one implementation for both logs -------------------------------------

async fn info(st: &AppState, log: LogId) -> Result<Json<LogInfo>, Problem> {
    Ok(Json(st.vault.log(log)?.info().into()))
}

async fn consistency_of(
    st: &AppState,
    log: LogId,
    q: QueryParams,
) -> Result<Json<ConsistencyProof>, Problem> {
    let (from, to) = q.take_consistency_sizes()?;
    Ok(Json(st.vault.log(log)?.consistency(from, to).await?.into()))
}

async fn latest(st: &AppState, log: LogId, headers: &HeaderMap) -> Result<Response, Problem> {
    let cp = st.vault.log(log)?.latest_checkpoint().await?;
    Ok(checkpoint_reply(cp, headers))
}

async fn at_size(
    st: &AppState,
    log: LogId,
    size: &str,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let size = parse_number("size", size)?;
    let cp = st.vault.log(log)?.checkpoint_at(size).await?;
    Ok(checkpoint_reply(cp, headers))
}

/// Inclusion proof of entry `id` of `log`, as the caller may see it: JSON
/// bundle, or C2SP tlog-proof text with `format=tlog-proof`.
pub(crate) async fn inclusion(
    st: &AppState,
    log: LogId,
    caller: &Caller,
    id: &str,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    let tree_size = q.take_number("tree_size")?;
    let tlog = q.take_proof_format()?;
    q.finish()?;
    let proof = st
        .vault
        .log(log)?
        .inclusion(&caller.reader(), id, tree_size)
        .await?;
    proof_reply(&proof, tlog)
}

/// A proof bundle as JSON, or as C2SP tlog-proof text with `tlog`.
pub(crate) fn proof_reply(proof: &LogProof, tlog: bool) -> Result<Response, Problem> {
    if !tlog {
        return Ok(Json(proof).into_response());
    }
    let text = proof
        .to_tlog_proof()
        .map_err(|e| Problem::from(VaultError::Inconsistent(e.to_string())))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_text(),
    )
        .into_response())
}

// --- the routes: each shape once, bound to each log's paths ---------------
//
// One macro per route shape, invoked once per log: the handler is one line,
// and the OpenAPI text (summary, paths, tags, responses) is all that differs.
// Doc strings and attribute values are passed as single tokens (`tt`), which
// utoipa reads exactly as if written in place.

const PROBLEM: &str = "application/problem+json";

/// A log's identity and sizes.
macro_rules! info_route {
    ($(#[doc = $doc:tt])* $name:ident, $log:expr, $path:tt, $tag:tt, $ok:tt $(, $extra:tt)*) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            responses((status = 200, description = $ok, body = LogInfo) $(, $extra)*))]
        pub async fn $name(State(st): State<AppState>) -> Result<Json<LogInfo>, Problem> {
            info(&st, $log).await
        }
    };
}

/// A consistency proof between two of a log's checkpoints.
macro_rules! consistency_route {
    ($(#[doc = $doc:tt])* $name:ident, $log:expr, $path:tt, $tag:tt, $to:tt, $beyond:tt) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            params(
                ("from" = u64, Query, description = "Older tree size, at least 1", minimum = 1),
                ("to" = u64, Query, description = $to, minimum = 1),
            ),
            responses(
                (status = 200, description = "The proof", body = ConsistencyProof),
                (status = 400, description = "Missing or bad sizes", body = ProblemBody, content_type = PROBLEM),
                (status = 404, description = $beyond, body = ProblemBody, content_type = PROBLEM),
            ))]
        pub async fn $name(
            State(st): State<AppState>,
            q: QueryParams,
        ) -> Result<Json<ConsistencyProof>, Problem> {
            consistency_of(&st, $log, q).await
        }
    };
}

/// A log's latest signed checkpoint.
macro_rules! latest_route {
    ($(#[doc = $doc:tt])* $name:ident, $log:expr, $path:tt, $tag:tt, $none:tt) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            responses(
                (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
                    (String = "text/plain"),
                    (CheckpointInfo = "application/json"),
                )),
                (status = 404, description = $none, body = ProblemBody, content_type = PROBLEM),
            ))]
        pub async fn $name(
            State(st): State<AppState>,
            headers: HeaderMap,
        ) -> Result<Response, Problem> {
            latest(&st, $log, &headers).await
        }
    };
}

/// A log's signed checkpoint of one tree size.
macro_rules! at_size_route {
    ($(#[doc = $doc:tt])* $name:ident, $log:expr, $path:tt, $tag:tt, $none:tt) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            params(("size" = u64, Path, description = "Tree size")),
            responses(
                (status = 200, description = "The signed note as text, or JSON with `Accept: application/json`", content(
                    (String = "text/plain"),
                    (CheckpointInfo = "application/json"),
                )),
                (status = 400, description = "Size is not a number", body = ProblemBody, content_type = PROBLEM),
                (status = 404, description = $none, body = ProblemBody, content_type = PROBLEM),
            ))]
        pub async fn $name(
            State(st): State<AppState>,
            PathParam(size): PathParam,
            headers: HeaderMap,
        ) -> Result<Response, Problem> {
            at_size(&st, $log, &size, &headers).await
        }
    };
}

/// The inclusion proof of one entry of a log.
macro_rules! proof_route {
    ($(#[doc = $doc:tt])* $name:ident, $log:expr, $path:tt, $tag:tt, $id:tt, $size:tt, $bundle:ty, $none:tt) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            params(
                ("id" = String, Path, description = $id, pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
                ("tree_size" = Option<u64>, Query, description = $size, minimum = 1),
                ("format" = Option<crate::docs::ProofFormat>, Query, description = "`json` (default) or `tlog-proof`"),
            ),
            responses(
                (status = 200, description = "The proof", content(
                    ($bundle = "application/json"),
                    (String = "text/plain"),
                )),
                (status = 400, description = "Bad tree_size or format", body = ProblemBody, content_type = PROBLEM),
                (status = 404, description = $none, body = ProblemBody, content_type = PROBLEM),
            ))]
        pub async fn $name(
            State(st): State<AppState>,
            Extension(caller): Extension<Caller>,
            PathParam(id): PathParam,
            q: QueryParams,
        ) -> Result<Response, Problem> {
            inclusion(&st, $log, &caller, &id, q).await
        }
    };
}

info_route!(
    /// The log's identity and sizes.
    ///
    /// The checkpoint origin and verifier key a verifier needs to open the
    /// log's checkpoints, the number of records committed, and the size of
    /// the latest signed checkpoint. Public log data.
    log_info, LogId::Evidence, "/api/v1/log", "log", "Origin, verifier key and sizes"
);
info_route!(
    /// The audit log's identity and sizes.
    ///
    /// The audit log's own origin and verifier key (never the evidence
    /// log's), its size and its latest checkpoint's size. Public log data,
    /// like the evidence log's: a monitor follows the audit trail with it.
    audit_log, LogId::Audit, "/api/v1/audit/log", "audit",
    "The audit log's origin, verifier key and sizes",
    (status = 404, description = "The audit trail is disabled", body = ProblemBody, content_type = PROBLEM)
);

consistency_route!(
    /// Consistency proof between two tree sizes.
    ///
    /// Both sizes must be at most the latest checkpoint's, and `0 < from <= to`.
    consistency, LogId::Evidence, "/api/v1/tree/consistency", "log",
    "Newer tree size, at most the latest checkpoint's",
    "`to` is beyond the latest checkpoint"
);
consistency_route!(
    /// Consistency proof between two audit checkpoints.
    ///
    /// Both sizes must be at most the latest audit checkpoint's, and
    /// `0 < from <= to`. Public log data.
    audit_consistency, LogId::Audit, "/api/v1/audit/consistency", "audit",
    "Newer tree size, at most the latest audit checkpoint's",
    "`to` is beyond the latest audit checkpoint"
);

latest_route!(
    /// The latest signed checkpoint.
    ///
    /// The C2SP tlog-checkpoint note as text, or with its size and signing
    /// time as JSON when `Accept` prefers `application/json`.
    latest_checkpoint, LogId::Evidence, "/api/v1/checkpoints/latest", "checkpoints",
    "No checkpoint signed yet"
);
latest_route!(
    /// The latest signed audit checkpoint.
    ///
    /// As for the evidence log, signed with the audit log's own key. Public
    /// log data.
    latest_audit_checkpoint, LogId::Audit, "/api/v1/audit/checkpoints/latest", "audit",
    "No audit checkpoint, or the audit trail is disabled"
);

at_size_route!(
    /// The signed checkpoint of one tree size.
    ///
    /// Every checkpoint is kept; a size beyond the latest one is 404. Text,
    /// or JSON when `Accept` prefers `application/json`.
    checkpoint_at, LogId::Evidence, "/api/v1/checkpoints/{size}", "checkpoints",
    "No checkpoint of that size"
);
at_size_route!(
    /// The signed audit checkpoint of one tree size.
    ///
    /// As for the evidence log; public log data.
    audit_checkpoint_at, LogId::Audit, "/api/v1/audit/checkpoints/{size}", "audit",
    "No audit checkpoint of that size"
);

proof_route!(
    /// Inclusion proof of a record.
    ///
    /// Against the checkpoint of size `tree_size` (default: the latest). JSON
    /// proof bundle by default; `format=tlog-proof` gives C2SP tlog-proof text.
    /// A record newer than the latest checkpoint is 404 until the next one.
    get_proof, LogId::Evidence, "/api/v1/evidence/{id}/proof", "evidence",
    "Record id (UUIDv7)", "Size of a signed checkpoint (default: the latest)",
    crate::docs::ProofBundleDoc,
    "No such record or checkpoint, or the record is not in it yet"
);
proof_route!(
    /// Inclusion proof of an audit event.
    ///
    /// Against the audit checkpoint of size `tree_size` (default: the latest).
    /// The bundle has the evidence proof bundle's shape with the event as
    /// `record`; `format=tlog-proof` gives C2SP tlog-proof text. An event
    /// newer than the latest audit checkpoint is 404 until the next one.
    get_audit_proof, LogId::Audit, "/api/v1/audit/events/{id}/proof", "audit",
    "Event id (UUIDv7)", "Size of a signed audit checkpoint (default: the latest)",
    crate::docs::AuditProofBundleDoc,
    "No such event or checkpoint, or the event is not in it yet"
);

// --- checkpoint listings ------------------------------------------------------

async fn list_of(
    st: &AppState,
    log: LogId,
    mut q: QueryParams,
) -> Result<Json<CheckpointPage>, Problem> {
    let after = q
        .take_one("cursor")?
        .map(|c| decode_cursor(CursorKind::Checkpoints, &c))
        .transpose()?;
    let limit = parse_limit(&mut q)?;
    q.finish()?;
    // One more than asked tells whether there is a next page.
    let mut items = st
        .vault
        .log(log)?
        .list_checkpoints(after, limit + 1)
        .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = match items.last() {
        Some(last) if more => Some(encode_cursor(CursorKind::Checkpoints, last.size)),
        _ => None,
    };
    Ok(Json(CheckpointPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// All signed checkpoints, ascending by size.
///
/// Every checkpoint the log has signed is kept; a witness or monitor that
/// was away walks them with `cursor` and checks each against the next with
/// a consistency proof. Each note is verified against the log's key before
/// it is listed.
#[utoipa::path(
    get,
    path = "/api/v1/checkpoints",
    tag = "checkpoints",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of checkpoints", body = CheckpointPage),
        (status = 400, description = "Bad cursor or limit", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn list_checkpoints(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<CheckpointPage>, Problem> {
    list_of(&st, LogId::Evidence, q).await
}

/// All signed audit checkpoints, ascending by size.
///
/// The audit log's checkpoints are public log data like the evidence
/// log's, so a monitor or witness can follow the audit trail without a
/// token; same paging as `GET /api/v1/checkpoints`.
#[utoipa::path(
    get,
    path = "/api/v1/audit/checkpoints",
    tag = "audit",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of audit checkpoints", body = CheckpointPage),
        (status = 400, description = "Bad cursor or limit", body = ProblemBody, content_type = PROBLEM),
        (status = 404, description = "The audit trail is disabled", body = ProblemBody, content_type = PROBLEM),
    )
)]
pub async fn list_audit_checkpoints(
    State(st): State<AppState>,
    q: QueryParams,
) -> Result<Json<CheckpointPage>, Problem> {
    list_of(&st, LogId::Audit, q).await
}
