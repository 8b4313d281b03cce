//! `evault.v1.TaskService`: tracked tasks, exactly as `/api/v1/tasks` (the
//! same vault calls, role check and audit trail; `Watch` is the SSE stream
//! as gRPC server streaming).

use std::pin::Pin;

use evault_vault::{TaskFilter, TaskInfo, TaskState};
use futures_util::Stream;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tonic::{Request, Response, Status};

use super::{caller, filter, limit_field, pb, vault_status};
use crate::AppState;
use crate::params::format_ms;
use crate::problem::Problem;
use crate::tasks::{Follow, start_task};

pub(crate) struct Service(pub AppState);

/// Largest `params_json`, as the REST body's bound.
const MAX_PARAMS: usize = evault_vault::tasks::MAX_PARAMS;
/// Bytes per result chunk.
const CHUNK: usize = 64 * 1024;

/// A task as its message; JSON members as compact JSON text.
fn task_msg(t: TaskInfo) -> pb::Task {
    pb::Task {
        id: t.id,
        kind: t.kind,
        principal: t.principal,
        params_json: t.params.to_string(),
        state: t.state.as_str().into(),
        done: t.done,
        total: t.total,
        result: t.result.map(|r| pb::TaskResultInfo {
            size: r.size,
            sha256: r.sha256,
            available: r.available,
        }),
        summary_json: t.summary.map(|s| s.to_string()).unwrap_or_default(),
        error: t.error.unwrap_or_default(),
        cancel_requested: t.cancel_requested,
        created: format_ms(t.created_ms),
        started: t.started_ms.map(format_ms).unwrap_or_default(),
        finished: t.finished_ms.map(format_ms).unwrap_or_default(),
    }
}

/// The params of a `Start`: a JSON object; empty is `{}`.
fn params(json: &str) -> Result<Value, Status> {
    if json.len() > MAX_PARAMS {
        return Err(Status::resource_exhausted(format!(
            "params_json is larger than {MAX_PARAMS} bytes"
        )));
    }
    if json.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(json) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Status::invalid_argument(
            "params_json must be a JSON object",
        )),
        Err(e) => Err(Status::invalid_argument(format!(
            "params_json is not JSON: {e}"
        ))),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TaskEvent, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::TaskResultChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::task_service_server::TaskService for Service {
    async fn start(
        &self,
        req: Request<pb::StartTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let params = params(&r.params_json)?;
        let task = start_task(&self.0, &caller, &r.kind, params, None).await?;
        Ok(Response::new(task_msg(task)))
    }

    async fn get(&self, req: Request<pb::GetTaskRequest>) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let task = self
            .0
            .vault
            .task(&caller.reader(), &id)
            .await
            .map_err(vault_status)?;
        Ok(Response::new(task_msg(task)))
    }

    async fn list(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = caller(&req)?;
        let q = req.into_inner();
        let state = match filter(q.state) {
            None => None,
            Some(s) => Some(TaskState::parse(&s).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "state {s:?}: expected pending, running, succeeded, failed or cancelled"
                ))
            })?),
        };
        let limit = limit_field(q.limit)?;
        let items = self
            .0
            .vault
            .tasks(
                &caller.reader(),
                TaskFilter {
                    state,
                    kind: filter(q.kind),
                    before: filter(q.before),
                    limit,
                },
            )
            .await
            .map_err(vault_status)?;
        let next_before = if items.len() == limit as usize {
            items.last().map(|t| t.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListTasksResponse {
            items: items.into_iter().map(task_msg).collect(),
            next_before,
        }))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let task = self
            .0
            .vault
            .cancel_task(&caller.reader(), &id)
            .await
            .map_err(vault_status)?;
        Ok(Response::new(task_msg(task)))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchTaskRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let follow = Follow::start(&self.0.vault, caller.reader(), id).await?;
        let stream = futures_util::stream::unfold(follow, |mut f| async move {
            let (event, task) = f.event().await?;
            let msg = pb::TaskEvent {
                event: event.into(),
                task: Some(task_msg(task)),
            };
            Some((Ok(msg), f))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type GetResultStream = ChunkStream;

    async fn get_result(
        &self,
        req: Request<pb::GetTaskResultRequest>,
    ) -> Result<Response<Self::GetResultStream>, Status> {
        let caller = caller(&req)?;
        let id = req.into_inner().id;
        let (task, file) = self
            .0
            .vault
            .task_result(&caller.reader(), &id)
            .await
            .map_err(vault_status)?;
        let (size, sha256) = task.result.map(|r| (r.size, r.sha256)).unwrap_or_default();
        // The first chunk carries the size and digest, even for an empty file.
        let first = Some((size, sha256));
        let stream = futures_util::stream::try_unfold(
            (file, first, false),
            |(mut f, mut first, ended)| async move {
                if ended {
                    return Ok(None);
                }
                let mut data = vec![0u8; CHUNK];
                let n = f
                    .read(&mut data)
                    .await
                    .map_err(|e| Status::from(Problem::from(evault_vault::VaultError::Io(e))))?;
                data.truncate(n);
                let head = first.take();
                if n == 0 && head.is_none() {
                    return Ok(None);
                }
                let (size, sha256) = head.unwrap_or_default();
                let chunk = pb::TaskResultChunk { data, size, sha256 };
                Ok(Some((chunk, (f, first, n == 0))))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
