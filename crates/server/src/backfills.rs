//! `/api/v1/backfills`: starts a `backfill_releases` task with the
//! inventory in the body. The inventory is checked here first (a bad one is
//! a 400 naming its line or release, and nothing is stored); the vault runs
//! the task and decides everything else.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evault_vault::backfill::{self, InventoryFormat, MAX_INVENTORY};
use http_body_util::BodyExt as _;
use serde_json::json;

use crate::AppState;
use crate::guard::Caller;
use crate::params::QueryParams;
use crate::problem::{Problem, ProblemBody};
use crate::tasks::{Task, start_task};

/// Backfill releases.
///
/// The body is an inventory of historical releases (docs/FORMATS.md):
/// CSV (`text/csv`, header `version,release_date,artifact,sha256,bundle,notes`)
/// or JSON (`application/json`, an array of releases), at most 8 MiB and
/// 10,000 artifacts. A `backfill_releases` task logs each artifact's digest
/// as a record (`application/vnd.evault.release-backfill+json`, labelled
/// `release.version` and `artifact.sha256`); artifact files are read from
/// the vault's backfill directory only. An artifact already logged is
/// skipped, so a re-run changes nothing; `dry_run=true` writes nothing.
/// Follow the task; its result is the JSON report of every item.
#[utoipa::path(
    post,
    path = "/api/v1/backfills",
    tag = "tasks",
    params(
        ("dry_run" = Option<bool>, Query, description = "`true`: report what would be logged, log nothing (default `false`)"),
    ),
    request_body(description = "The inventory", content(("text/csv"), ("application/json"))),
    responses(
        (status = 202, description = "The backfill task, queued", body = Task,
            headers(("Location" = String, description = "URL of the task"))),
        (status = 400, description = "An inventory that does not parse or breaks a rule (the detail names the CSV line or JSON release), a bad `dry_run`, or an unknown query parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token's roles include neither ingester nor admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "The body sent nothing for longer than the server's body idle timeout", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The inventory is larger than 8 MiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither `text/csv` nor `application/json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The vault is shutting down", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_backfill(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
    req: Request,
) -> Result<Response, Problem> {
    let dry_run = match q.take_one("dry_run")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "dry_run {other:?}: expected true or false"
            )));
        }
    };
    q.finish()?;
    let format = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(InventoryFormat::from_media_type)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the inventory must be text/csv or application/json",
            )
        })?;
    let bytes = receive(req.into_body()).await?;
    backfill::parse_inventory(&bytes, format)
        .map_err(|why| Problem::bad_request(format!("the inventory is refused: {why}")))?;
    let mut upload = st.vault.upload_task_input();
    upload.write(&bytes).await?;
    let input = upload.finish().await?;
    let task = start_task(
        &st,
        &caller,
        backfill::KIND,
        json!({ "format": format.as_str(), "dry_run": dry_run }),
        Some(input),
    )
    .await?;
    let mut resp = (StatusCode::ACCEPTED, Json(Task::from(task.clone()))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", task.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The body, in memory (it is parsed before anything is stored), up to
/// [`MAX_INVENTORY`] bytes.
async fn receive(mut body: Body) -> Result<Vec<u8>, Problem> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| crate::evidence::body_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > MAX_INVENTORY {
            crate::evidence::drain(body).await;
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the inventory is larger than the limit of {MAX_INVENTORY} bytes"),
            ));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}
