//! Tasks on PostgreSQL: the `tasks` table, as `sqlite/tasks.rs` keeps it.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::entries::{MAX_PAGE, Sql};
use super::log::{i64_of, u64_of};
use super::pg;
use crate::sqlite::error::corrupt;
use crate::{Result, StoreError, TaskQuery, TaskRow, TaskState};

const COLUMNS: &str = "id, kind, principal, reads_all, params, state, done, total, result_file, \
     result_size, result_sha256, summary, error, created_ms, started_ms, finished_ms, checkpoint";

fn opt_i64(v: Option<u64>, what: &str) -> Result<Option<i64>> {
    v.map(|v| i64_of(v, what)).transpose()
}

fn decode(row: &Row) -> Result<TaskRow> {
    let id: String = row.try_get(0).map_err(pg)?;
    let at = |what: &str| format!("{what} of task {id}");
    let state: String = row.try_get(5).map_err(pg)?;
    let state = TaskState::parse(&state)
        .ok_or_else(|| corrupt(format!("task {id} has unknown state {state:?}")))?;
    let opt_u64 = |i: usize, what: &str| -> Result<Option<u64>> {
        row.try_get::<_, Option<i64>>(i)
            .map_err(pg)?
            .map(|v| u64_of(v, &at(what)))
            .transpose()
    };
    Ok(TaskRow {
        kind: row.try_get(1).map_err(pg)?,
        principal: row.try_get(2).map_err(pg)?,
        reads_all: row.try_get(3).map_err(pg)?,
        params: row.try_get(4).map_err(pg)?,
        state,
        done: u64_of(row.try_get(6).map_err(pg)?, &at("done"))?,
        total: opt_u64(7, "total")?,
        result_file: row.try_get(8).map_err(pg)?,
        result_size: opt_u64(9, "result_size")?,
        result_sha256: row.try_get(10).map_err(pg)?,
        summary: row.try_get(11).map_err(pg)?,
        error: row.try_get(12).map_err(pg)?,
        created_ms: row.try_get(13).map_err(pg)?,
        started_ms: row.try_get(14).map_err(pg)?,
        finished_ms: row.try_get(15).map_err(pg)?,
        checkpoint: row.try_get(16).map_err(pg)?,
        id,
    })
}

/// Stores a new task; [`StoreError::Duplicate`] if its id exists.
pub(super) async fn insert(c: &impl GenericClient, t: &TaskRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO tasks ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    c.execute(
        &sql,
        &[
            &t.id,
            &t.kind,
            &t.principal,
            &t.reads_all,
            &t.params,
            &t.state.as_str(),
            &i64_of(t.done, "task done")?,
            &opt_i64(t.total, "task total")?,
            &t.result_file,
            &opt_i64(t.result_size, "task result size")?,
            &t.result_sha256,
            &t.summary,
            &t.error,
            &t.created_ms,
            &t.started_ms,
            &t.finished_ms,
            &t.checkpoint,
        ],
    )
    .await
    .map_err(|e| match e.as_db_error().and_then(|d| d.constraint()) {
        // The primary key, named in the migration.
        Some("tasks_id") => StoreError::Duplicate(format!("task id {}", t.id)),
        _ => pg(e),
    })?;
    Ok(())
}

/// Replaces the mutable fields of the task with `t`'s id; whether it
/// existed.
pub(super) async fn update(c: &impl GenericClient, t: &TaskRow) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE tasks SET state = $2, done = $3, total = $4, result_file = $5, \
             result_size = $6, result_sha256 = $7, summary = $8, error = $9, started_ms = $10, \
             finished_ms = $11, checkpoint = $12 WHERE id = $1",
            &[
                &t.id,
                &t.state.as_str(),
                &i64_of(t.done, "task done")?,
                &opt_i64(t.total, "task total")?,
                &t.result_file,
                &opt_i64(t.result_size, "task result size")?,
                &t.result_sha256,
                &t.summary,
                &t.error,
                &t.started_ms,
                &t.finished_ms,
                &t.checkpoint,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(n > 0)
}

/// The task with this id, if any.
pub(super) async fn by_id(c: &impl GenericClient, id: &str) -> Result<Option<TaskRow>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = $1");
    let row = c.query_opt(&sql, &[&id]).await.map_err(pg)?;
    row.as_ref().map(decode).transpose()
}

/// Tasks matching `q`, newest (largest id) first.
pub(super) async fn list(c: &impl GenericClient, q: &TaskQuery) -> Result<Vec<TaskRow>> {
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM tasks WHERE true"));
    sql.equals("principal", q.principal.as_ref());
    sql.equals("state", q.state.map(|s| s.as_str().to_string()).as_ref());
    sql.equals("kind", q.kind.as_ref());
    if let Some(before) = &q.before {
        let p = sql.param(before.clone());
        sql.push(&format!(" AND id < {p}"));
    }
    let limit = sql.param(i64::from(q.limit.clamp(1, MAX_PAGE)));
    sql.push(&format!(" ORDER BY id DESC LIMIT {limit}"));
    let rows = c.query(&sql.text, &sql.params()).await.map_err(pg)?;
    rows.iter().map(decode).collect()
}

/// Pending and running tasks, oldest first.
pub(super) async fn unfinished(c: &impl GenericClient) -> Result<Vec<TaskRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM tasks WHERE state IN ('pending', 'running') ORDER BY id");
    let rows = c.query(&sql, &[]).await.map_err(pg)?;
    rows.iter().map(decode).collect()
}

/// Finished tasks still naming a result file, finished before
/// `before_ms`, oldest first.
pub(super) async fn expired(c: &impl GenericClient, before_ms: i64) -> Result<Vec<TaskRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks WHERE result_file IS NOT NULL \
         AND finished_ms IS NOT NULL AND finished_ms < $1 ORDER BY id"
    );
    let rows = c.query(&sql, &[&before_ms]).await.map_err(pg)?;
    rows.iter().map(decode).collect()
}
