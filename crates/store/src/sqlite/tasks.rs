//! Tasks: the `tasks` table.

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::error::{DbResult, corrupt, violated_key};
use super::query::{self, MAX_PAGE};
use super::rows::{col_i64, col_opt_text, col_text, to_i64, to_u64};
use crate::{Result, StoreError, TaskQuery, TaskRow, TaskState};

const COLUMNS: &str = "id, kind, principal, reads_all, params, state, done, total, result_file, \
     result_size, result_sha256, summary, error, created_ms, started_ms, finished_ms, checkpoint";

fn opt_u64(v: Option<u64>, what: &str) -> Result<Option<i64>> {
    v.map(|v| to_i64(v, what)).transpose()
}

fn col_opt_i64(row: &Row<'_>, idx: usize, what: &str) -> Result<Option<i64>> {
    match row.get_ref(idx).db()? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => col_i64(row, idx, what).map(Some),
    }
}

fn decode(row: &Row<'_>) -> Result<TaskRow> {
    let id = col_text(row, 0, "task id")?;
    let at = |what: &str| format!("{what} of task {id}");
    let state_text = col_text(row, 5, &at("state"))?;
    let state = TaskState::parse(&state_text)
        .ok_or_else(|| corrupt(format!("task {id} has unknown state {state_text:?}")))?;
    let opt_u64 = |idx: usize, what: &str| -> Result<Option<u64>> {
        col_opt_i64(row, idx, &at(what))?
            .map(|v| to_u64(v, &at(what)))
            .transpose()
    };
    Ok(TaskRow {
        kind: col_text(row, 1, &at("kind"))?,
        principal: col_text(row, 2, &at("principal"))?,
        reads_all: match col_i64(row, 3, &at("reads_all"))? {
            0 => false,
            1 => true,
            v => return Err(corrupt(format!("task {id} has reads_all {v}"))),
        },
        params: col_text(row, 4, &at("params"))?,
        state,
        done: to_u64(col_i64(row, 6, &at("done"))?, &at("done"))?,
        total: opt_u64(7, "total")?,
        result_file: col_opt_text(row, 8, &at("result_file"))?,
        result_size: opt_u64(9, "result_size")?,
        result_sha256: col_opt_text(row, 10, &at("result_sha256"))?,
        summary: col_opt_text(row, 11, &at("summary"))?,
        error: col_opt_text(row, 12, &at("error"))?,
        created_ms: col_i64(row, 13, &at("created_ms"))?,
        started_ms: col_opt_i64(row, 14, &at("started_ms"))?,
        finished_ms: col_opt_i64(row, 15, &at("finished_ms"))?,
        checkpoint: col_opt_text(row, 16, &at("checkpoint"))?,
        id,
    })
}

pub(super) fn insert(conn: &Connection, t: &TaskRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO tasks ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    );
    conn.prepare_cached(&sql)
        .db()?
        .execute(rusqlite::params![
            t.id,
            t.kind,
            t.principal,
            i64::from(t.reads_all),
            t.params,
            t.state.as_str(),
            to_i64(t.done, "task done")?,
            opt_u64(t.total, "task total")?,
            t.result_file,
            opt_u64(t.result_size, "task result size")?,
            t.result_sha256,
            t.summary,
            t.error,
            t.created_ms,
            t.started_ms,
            t.finished_ms,
            t.checkpoint,
        ])
        .map_err(|e| match violated_key(&e).as_deref() {
            Some("tasks.id") => StoreError::Duplicate(format!("task id {}", t.id)),
            _ => StoreError::Backend(Box::new(e)),
        })?;
    Ok(())
}

pub(super) fn update(conn: &Connection, t: &TaskRow) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tasks SET state = ?2, done = ?3, total = ?4, result_file = ?5, \
             result_size = ?6, result_sha256 = ?7, summary = ?8, error = ?9, started_ms = ?10, \
             finished_ms = ?11, checkpoint = ?12 WHERE id = ?1",
        )
        .db()?
        .execute(rusqlite::params![
            t.id,
            t.state.as_str(),
            to_i64(t.done, "task done")?,
            opt_u64(t.total, "task total")?,
            t.result_file,
            opt_u64(t.result_size, "task result size")?,
            t.result_sha256,
            t.summary,
            t.error,
            t.started_ms,
            t.finished_ms,
            t.checkpoint,
        ])
        .db()?;
    Ok(n > 0)
}

pub(super) fn by_id(conn: &Connection, id: &str) -> Result<Option<TaskRow>> {
    query::first(
        conn,
        &format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"),
        [id],
        decode,
    )
}

pub(super) fn list(conn: &Connection, q: &TaskQuery) -> Result<Vec<TaskRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM tasks WHERE 1");
    let mut params: Vec<Value> = Vec::new();
    let mut term = |column: &str, op: &str, v: Option<String>| {
        if let Some(v) = v {
            params.push(Value::Text(v));
            sql.push_str(&format!(" AND {column} {op} ?{}", params.len()));
        }
    };
    term("principal", "=", q.principal.clone());
    term("state", "=", q.state.map(|s| s.as_str().to_string()));
    term("kind", "=", q.kind.clone());
    term("id", "<", q.before.clone());
    params.push(Value::Integer(i64::from(q.limit.clamp(1, MAX_PAGE))));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", params.len()));
    query::all(conn, &sql, rusqlite::params_from_iter(params), decode)
}

pub(super) fn unfinished(conn: &Connection) -> Result<Vec<TaskRow>> {
    query::all(
        conn,
        &format!("SELECT {COLUMNS} FROM tasks WHERE state IN ('pending', 'running') ORDER BY id"),
        [],
        decode,
    )
}

pub(super) fn expired(conn: &Connection, before_ms: i64) -> Result<Vec<TaskRow>> {
    query::all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM tasks WHERE result_file IS NOT NULL \
             AND finished_ms IS NOT NULL AND finished_ms < ?1 ORDER BY id"
        ),
        [before_ms],
        decode,
    )
}
