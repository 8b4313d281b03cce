//! `/api/v1/tasks`: tracked long jobs. The vault runs them and decides who
//! sees what (a task is its creator's, or any admin's); this module only
//! translates, and checks the roles a kind names against the caller's.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use evault_vault::{Reader, TaskFilter, TaskInfo, TaskState, Vault};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use utoipa::ToSchema;

use crate::AppState;
use crate::access::{self, Scope};
use crate::guard::Caller;
use crate::params::{PathParam, QueryParams, format_ms, parse_limit};
use crate::problem::{Problem, ProblemBody};

/// Media type of the Server-Sent Events stream.
const EVENT_STREAM: &str = "text/event-stream";
/// Largest accepted request body: the vault's largest params plus room
/// for the kind's name.
const MAX_BODY: usize = evault_vault::tasks::MAX_PARAMS + 1024;

/// Progress of a task.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TaskProgress {
    /// Steps done.
    pub done: u64,
    /// Steps in all; null while unknown.
    pub total: Option<u64>,
}

/// A task's result file.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TaskResultInfo {
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// False once the retention removed the file.
    pub available: bool,
}

/// A tracked task.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Task {
    /// UUIDv7.
    pub id: String,
    /// The kind, e.g. `export_bundle`.
    pub kind: String,
    /// Who created it: only it, or an admin, may see it.
    pub principal: String,
    /// Its parameters, as given.
    #[schema(value_type = Object)]
    pub params: Value,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Steps done, of how many.
    pub progress: TaskProgress,
    /// Its result file, once it succeeded with one.
    pub result: Option<TaskResultInfo>,
    /// What the task reported on success.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// A cancel was asked for; a running task stops within a second.
    pub cancel_requested: bool,
    /// RFC 3339, UTC, millisecond precision.
    pub created: String,
    /// When it (last) started running.
    pub started: Option<String>,
    /// When it ended.
    pub finished: Option<String>,
}

impl From<TaskInfo> for Task {
    fn from(t: TaskInfo) -> Self {
        Task {
            id: t.id,
            kind: t.kind,
            principal: t.principal,
            params: t.params,
            state: t.state.as_str().into(),
            progress: TaskProgress {
                done: t.done,
                total: t.total,
            },
            result: t.result.map(|r| TaskResultInfo {
                size: r.size,
                sha256: r.sha256,
                available: r.available,
            }),
            summary: t.summary,
            error: t.error,
            cancel_requested: t.cancel_requested,
            created: format_ms(t.created_ms),
            started: t.started_ms.map(format_ms),
            finished: t.finished_ms.map(format_ms),
        }
    }
}

/// A page of tasks, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TaskPage {
    /// The tasks, newest first, at most `limit`.
    pub items: Vec<Task>,
    /// Pass as `before` to get the next (older) page; null on the last.
    pub next_before: Option<String>,
}

/// What to run.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The kind of task (the 400 of an unknown one lists the known kinds).
    pub kind: String,
    /// Its parameters (an object the kind validates); default `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// The reader a new task reads the vault as: what the caller may read of
/// the evidence (an ingester its own, an auditor all), whatever its scope
/// on the task routes.
fn task_reader(caller: &Caller) -> Reader {
    let Some(identity) = &caller.identity else {
        // Authentication disabled: every caller may do everything.
        return caller.reader();
    };
    let evidence = access::lookup(&axum::http::Method::GET, "/api/v1/evidence");
    match evidence.and_then(|op| access::scope_for(op, identity.roles.iter().copied())) {
        Some(Scope::All) => Reader::all(caller.principal()),
        _ => Reader::own(caller.principal()),
    }
}

/// Starts a task of `kind` as `caller` (REST and gRPC): 403 unless the
/// caller holds a role the kind names; the vault validates the rest.
pub(crate) async fn start_task(
    st: &AppState,
    caller: &Caller,
    kind: &str,
    params: Value,
    input: Option<evault_vault::StagedPayload>,
) -> Result<TaskInfo, Problem> {
    if let (Some(kind), Some(identity)) = (st.vault.task_kind(kind), &caller.identity)
        && !identity
            .roles
            .iter()
            .any(|r| kind.roles.contains(&r.as_str()))
    {
        let held: Vec<_> = identity.roles.iter().map(|r| r.as_str()).collect();
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "task kind {} needs role {}; the token has {}",
                kind.name,
                kind.roles.join(" or "),
                held.join(", ")
            ),
        ));
    }
    let reader = task_reader(caller);
    Ok(match input {
        Some(input) => {
            st.vault
                .create_task_with_input(&reader, kind, params, input)
                .await?
        }
        None => st.vault.create_task(&reader, kind, params).await?,
    })
}

/// Start a task.
///
/// The task runs as the caller: it reads what the caller may read, and
/// only the caller (or an admin) may see, cancel or download it. Each
/// kind names the roles that may start it; the answer comes at once, with
/// the task `pending` (or already `running`).
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body(content = NewTask, content_type = "application/json"),
    responses(
        (status = 202, description = "The task, queued", body = Task),
        (status = 400, description = "Not a JSON object of `kind` and `params`, an unknown kind (the detail lists the known ones), or params the kind refuses", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token's roles do not include one the kind needs", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 65 KiB", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_task(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let req: NewTask = crate::params::json_body(
        &headers,
        &body,
        MAX_BODY,
        "the body is not a task request",
        ": {\"kind\": \"...\", \"params\": {...}}",
    )?;
    let params = req
        .params
        .unwrap_or_else(|| Value::Object(Default::default()));
    let task = start_task(&st, &caller, &req.kind, params, None).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(Task::from(task.clone()))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/tasks/{}", task.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// List tasks, newest first.
///
/// The caller's own tasks; an admin's list holds everyone's.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(
        ("state" = Option<String>, Query, description = "`pending`, `running`, `succeeded`, `failed` or `cancelled`"),
        ("kind" = Option<String>, Query, description = "Exact kind"),
        ("before" = Option<String>, Query, description = "`next_before` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of tasks", body = TaskPage),
        (status = 400, description = "Unknown parameter, bad state or limit", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_tasks(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<TaskPage>, Problem> {
    let state = q
        .take_one("state")?
        .map(|s| {
            TaskState::parse(&s).ok_or_else(|| {
                Problem::bad_request(format!(
                    "state {s:?}: expected pending, running, succeeded, failed or cancelled"
                ))
            })
        })
        .transpose()?;
    let kind = q.take_one("kind")?;
    let before = q.take_one("before")?;
    let limit = parse_limit(&mut q)?;
    q.finish()?;
    let items = st
        .vault
        .tasks(
            &caller.reader(),
            TaskFilter {
                state,
                kind,
                before,
                limit,
            },
        )
        .await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|t| t.id.clone()))
        .flatten();
    Ok(Json(TaskPage {
        items: items.into_iter().map(Task::from).collect(),
        next_before,
    }))
}

/// One task.
///
/// Its state, progress, result (size and SHA-256), summary or error. Only
/// its creator, or an admin, may see it: anyone else gets 404.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id (UUIDv7)")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "No such task, or another principal's", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_task(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Json<Task>, Problem> {
    Ok(Json(st.vault.task(&caller.reader(), &id).await?.into()))
}

/// Cancel a task.
///
/// A pending task is cancelled at once; a running one is told to stop and
/// the answer waits (up to 5 s) for it to end. Its partial output is
/// deleted.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id (UUIDv7)")),
    responses(
        (status = 200, description = "The task, `cancelled` (or still `running` with `cancel_requested` if it has not stopped yet)", body = Task),
        (status = 404, description = "No such task, or another principal's", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The task has ended already", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_task(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Json<Task>, Problem> {
    Ok(Json(
        st.vault.cancel_task(&caller.reader(), &id).await?.into(),
    ))
}

/// Follow a task (Server-Sent Events).
///
/// One event per change: `state` when the state changed (the first event
/// is always one), `progress` when only the progress did; `data` is the
/// task as JSON. The stream ends after the event of the final state
/// (`succeeded`, `failed` or `cancelled`).
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}/events",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id (UUIDv7)")),
    responses(
        (status = 200, description = "`text/event-stream` of `state` and `progress` events, each with the task as JSON", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such task, or another principal's", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn task_events(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let follow = Follow::start(&st.vault, caller.reader(), id).await?;
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let (name, task) = f.event().await?;
        let data = serde_json::to_string(&Task::from(task)).unwrap_or_default();
        Some((
            Ok::<_, Infallible>(Event::default().event(name).data(data)),
            f,
        ))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The state of an event stream (REST's SSE and gRPC's `Watch`).
pub(crate) struct Follow {
    rx: tokio::sync::watch::Receiver<TaskInfo>,
    vault: Vault,
    reader: Reader,
    id: String,
    last: Option<TaskState>,
    ended: bool,
}

impl Follow {
    /// Follows task `id` as `reader` (404 if it may not see it).
    pub(crate) async fn start(vault: &Vault, reader: Reader, id: String) -> Result<Self, Problem> {
        let rx = vault.watch_task(&reader, &id).await?;
        Ok(Follow {
            rx,
            vault: vault.clone(),
            reader,
            id,
            last: None,
            ended: false,
        })
    }

    /// The next event, `state` or `progress`, with the task as it is;
    /// `None` after the event of the final state.
    pub(crate) async fn event(&mut self) -> Option<(&'static str, TaskInfo)> {
        let task = self.next().await?;
        let name = match &self.last {
            Some(prev) if *prev == task.state => "progress",
            _ => "state",
        };
        self.ended = task.state.is_final();
        self.last = Some(task.state);
        Some((name, task))
    }

    /// The next task state to send; `None` once the final one was sent.
    async fn next(&mut self) -> Option<TaskInfo> {
        if self.ended {
            return None;
        }
        if self.last.is_none() {
            return Some(self.rx.borrow_and_update().clone());
        }
        match self.rx.changed().await {
            Ok(()) => Some(self.rx.borrow_and_update().clone()),
            // The runner let go of the task: it has ended; send its final
            // state as stored, unless that was sent already.
            Err(_) => {
                let last = self.rx.borrow().clone();
                if last.state.is_final() && self.last != Some(last.state) {
                    return Some(last);
                }
                match self.vault.task(&self.reader, &self.id).await {
                    Ok(t) if t.state.is_final() => Some(t),
                    _ => None,
                }
            }
        }
    }
}

/// Download a task's result.
///
/// The file the task made, as `application/octet-stream`, with its SHA-256
/// in `ETag` (and `X-Evault-Sha256`) so the client can check what it got.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}/result",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id (UUIDv7)")),
    responses(
        (status = 200, description = "The result file", content(("application/octet-stream"))),
        (status = 404, description = "No such task, another principal's, or it has no result (none made, or the retention removed it)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The task has not succeeded", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn task_result(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParam(id): PathParam,
) -> Result<Response, Problem> {
    let (task, file) = st.vault.task_result(&caller.reader(), &id).await?;
    let stream = futures_util::stream::try_unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), f)))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(r) = &task.result {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.size));
        if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", r.sha256)) {
            h.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&r.sha256) {
            h.insert("x-evault-sha256", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.result\"",
        task.kind, task.id
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
