//! `/api/v1/imports` and `/api/v1/mirrors`: evidence bundles of other logs
//! imported as verified mirrors, and reading them back. The vault verifies,
//! stores and decides who reads; this module only translates. A mirrored
//! log is named by its origin (a query parameter: origins hold slashes).

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evault_vault::{MirrorLog, StagedPayload, VaultError};
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::AppState;
use crate::docs::EvidenceDoc;
use crate::guard::Caller;
use crate::params::{QueryParams, format_ms, parse_limit};
use crate::problem::{Problem, ProblemBody};
use crate::tasks::{Task, start_task};

/// The task kind an import runs as.
const IMPORT_KIND: &str = "import_bundle";

/// A mirrored log's latest checkpoint.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MirrorCheckpointView {
    /// Its tree size.
    pub tree_size: u64,
    /// The signed note, verbatim (verify it with the other log's key).
    pub note: String,
    /// When it was first imported (RFC 3339, UTC, milliseconds).
    pub imported: String,
    /// Who imported it.
    pub imported_by: String,
}

/// A log mirrored from imported bundles.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MirrorLogView {
    /// The other log's origin.
    pub origin: String,
    /// Records held.
    pub records: u64,
    /// Checkpoints held.
    pub checkpoints: u64,
    /// The largest checkpoint held.
    pub latest_checkpoint: MirrorCheckpointView,
}

impl From<MirrorLog> for MirrorLogView {
    fn from(l: MirrorLog) -> Self {
        MirrorLogView {
            origin: l.origin,
            records: l.records,
            checkpoints: l.checkpoints,
            latest_checkpoint: MirrorCheckpointView {
                tree_size: l.latest.tree_size,
                note: l.latest.note,
                imported: format_ms(l.latest.imported_ms),
                imported_by: l.latest.imported_by,
            },
        }
    }
}

/// Mirrored logs.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MirrorLogList {
    /// By origin.
    pub items: Vec<MirrorLogView>,
}

/// A page of a mirrored log's records, in leaf order.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MirrorRecordPage {
    /// The records, as the other log logged them.
    #[schema(value_type = Vec<EvidenceDoc>)]
    pub items: Vec<evault_verify::Evidence>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<u64>,
}

/// The key of the bundle's log: C2SP verifier keys hold `+`, which a form
/// query decodes as a space; a key name holds no space, so it is undone.
fn log_key(q: &mut QueryParams) -> Result<String, Problem> {
    let key = q.take_one("key")?.ok_or_else(|| {
        Problem::bad_request(
            "the key query parameter is required: the verifier key of the bundle's log",
        )
    })?;
    Ok(key.trim().replace(' ', "+"))
}

fn origin(q: &mut QueryParams) -> Result<String, Problem> {
    q.take_one("origin")?
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Problem::bad_request("the origin query parameter is required"))
}

fn leaf_index(q: &mut QueryParams) -> Result<u64, Problem> {
    q.take_number("leaf_index")?
        .ok_or_else(|| Problem::bad_request("the leaf_index query parameter is required"))
}

/// Import an evidence bundle of another log.
///
/// The body is the bundle (`.evb`). It is stored, then imported by an
/// `import_bundle` task: read with the hostile-safe reader, verified with
/// `key` (the other log's verifier key), and kept as a mirror of that log
/// (its origin, leaf indexes and checkpoint), never as records of this
/// vault's own log. Follow the task: a bundle that does not verify, is this
/// vault's own, or contradicts what the mirror holds (a fork) fails it and
/// imports nothing.
#[utoipa::path(
    post,
    path = "/api/v1/imports",
    tag = "mirrors",
    params(
        ("key" = String, Query, description = "Verifier key of the bundle's log (C2SP signed-note form `name+hash+base64`; percent-encode `+` as `%2B`)"),
    ),
    request_body(description = "The evidence bundle (`.evb`)", content(("application/octet-stream"))),
    responses(
        (status = 202, description = "The import task, queued", body = Task,
            headers(("Location" = String, description = "URL of the task"))),
        (status = 400, description = "No key, a key that is not a verifier key, or an unknown query parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "The body sent nothing for longer than the server's body idle timeout", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The bundle is larger than the vault's task input limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The vault is shutting down", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn import_bundle(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
    req: Request,
) -> Result<Response, Problem> {
    let key = log_key(&mut q)?;
    q.finish()?;
    // The key is checked before a byte of the body is stored.
    evault_vault::verifiers_of(&key).map_err(Problem::from)?;
    let input = receive(&st, req.into_body()).await?;
    let task = start_task(
        &st,
        &caller,
        IMPORT_KIND,
        json!({ "key": key }),
        Some(input),
    )
    .await?;
    let mut resp = (StatusCode::ACCEPTED, Json(Task::from(task.clone()))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", task.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Streams the body into the vault's task input.
async fn receive(st: &AppState, mut body: Body) -> Result<StagedPayload, Problem> {
    let mut upload = st.vault.upload_task_input();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| crate::evidence::body_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Err(e) = upload.write(&data).await {
            if let VaultError::TooLarge { limit } = e {
                crate::evidence::drain(body).await;
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the bundle is larger than the limit of {limit} bytes"),
                ));
            }
            return Err(e.into());
        }
    }
    Ok(upload.finish().await?)
}

/// Logs mirrored from imported bundles.
///
/// Each with its record count and the largest signed checkpoint held.
#[utoipa::path(
    get,
    path = "/api/v1/mirrors",
    tag = "mirrors",
    responses(
        (status = 200, description = "The mirrored logs, by origin", body = MirrorLogList),
        (status = 400, description = "An unknown query parameter", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_mirrors(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryParams,
) -> Result<Json<MirrorLogList>, Problem> {
    q.finish()?;
    let logs = st.vault.mirrored_logs(&caller.reader()).await?;
    Ok(Json(MirrorLogList {
        items: logs.into_iter().map(MirrorLogView::from).collect(),
    }))
}

/// Records of a mirrored log.
///
/// In leaf order, as the other log logged them (its leaf indexes).
#[utoipa::path(
    get,
    path = "/api/v1/mirrors/records",
    tag = "mirrors",
    params(
        ("origin" = String, Query, description = "The mirrored log's origin", min_length = 1),
        ("after" = Option<u64>, Query, description = "`next_after` of the previous page: records after this leaf index"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of records", body = MirrorRecordPage),
        (status = 400, description = "No origin, a bad `after` or `limit`, or an unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn mirror_records(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<MirrorRecordPage>, Problem> {
    let origin = origin(&mut q)?;
    let after = q.take_number("after")?;
    let limit = parse_limit(&mut q)?;
    q.finish()?;
    let items = st
        .vault
        .mirrored_records(&caller.reader(), &origin, after, limit)
        .await?;
    let next_after = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.leaf_index))
        .flatten();
    Ok(Json(MirrorRecordPage { items, next_after }))
}

/// Inclusion proof of a mirrored record.
///
/// The proof bundle it was imported with: its record, its inclusion proof
/// and the other log's signed checkpoint. `evault verify` checks it
/// offline with that log's key alone.
#[utoipa::path(
    get,
    path = "/api/v1/mirrors/proof",
    tag = "mirrors",
    params(
        ("origin" = String, Query, description = "The mirrored log's origin", min_length = 1),
        ("leaf_index" = u64, Query, description = "The record's leaf index in that log"),
    ),
    responses(
        (status = 200, description = "The proof bundle", body = crate::docs::ProofBundleDoc),
        (status = 400, description = "No origin or leaf index, or an unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such mirrored record", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn mirror_proof(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<evault_verify::ProofBundle>, Problem> {
    let origin = origin(&mut q)?;
    let index = leaf_index(&mut q)?;
    q.finish()?;
    Ok(Json(
        st.vault
            .mirrored_proof(&caller.reader(), &origin, index)
            .await?,
    ))
}

/// Payload of a mirrored record.
///
/// When its bundle carried payloads; served with the record's content
/// type, its SHA-256 checked on the way out.
#[utoipa::path(
    get,
    path = "/api/v1/mirrors/payload",
    tag = "mirrors",
    params(
        ("origin" = String, Query, description = "The mirrored log's origin", min_length = 1),
        ("leaf_index" = u64, Query, description = "The record's leaf index in that log"),
    ),
    responses(
        (status = 200, description = "The payload bytes, with the record's content type", content(("*/*"))),
        (status = 400, description = "No origin or leaf index, or an unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such mirrored record, or its bundle carried no payloads", body = ProblemBody, content_type = "application/problem+json"),
        (status = 500, description = "The stored payload failed its integrity check (changed at rest): not served", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn mirror_payload(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Response, Problem> {
    let origin = origin(&mut q)?;
    let index = leaf_index(&mut q)?;
    q.finish()?;
    let (record, data) = st
        .vault
        .mirrored_payload(&caller.reader(), &origin, index)
        .await?;
    let mut resp = Body::from(data).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&record.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&record.sha256) {
        h.insert("x-evault-sha256", v);
    }
    // Never rendered as part of this origin (as /api/v1/evidence/{id}/payload).
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    Ok(resp)
}
