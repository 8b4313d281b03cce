//! The task table: tracked long-running jobs of the vault, behind their
//! own narrow trait, [`TaskStore`].

use std::fmt;

use crate::Result;

/// Where a task is in its life: `pending → running → succeeded | failed |
/// cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Created, waiting for a free slot.
    Pending,
    /// Running.
    Running,
    /// Finished; its result (if the kind makes one) is ready.
    Succeeded,
    /// Ended with an error (or interrupted by a restart).
    Failed,
    /// Stopped at its principal's (or an admin's) request.
    Cancelled,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 5] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// Lower-case name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// The state named `s` (as [`TaskState::as_str`] spells it).
    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the task has ended (it never changes state again).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task as stored. The vault decides every field; the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    /// UUIDv7, canonical lower-case hyphenated text.
    pub id: String,
    /// The kind's name, e.g. `export_bundle`.
    pub kind: String,
    /// The principal that created it: the only one (besides an admin) that
    /// may see it.
    pub principal: String,
    /// Whether the task reads the vault as a reader that sees everything
    /// (else only what its principal submitted).
    pub reads_all: bool,
    /// Its parameters, JSON text.
    pub params: String,
    /// Its state.
    pub state: TaskState,
    /// Steps done so far.
    pub done: u64,
    /// Steps in all, when known.
    pub total: Option<u64>,
    /// The result file's name (under the vault's task directory), once it
    /// succeeded with one; `None` again once the retention removed it.
    pub result_file: Option<String>,
    /// The result file's size in bytes.
    pub result_size: Option<u64>,
    /// The result file's SHA-256, lower-case hex.
    pub result_sha256: Option<String>,
    /// What the kind reported on success, JSON text.
    pub summary: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was created, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it (last) started running.
    pub started_ms: Option<i64>,
    /// When it reached its final state.
    pub finished_ms: Option<i64>,
    /// The last step the kind checkpointed (opaque to the store), from
    /// which a resumable kind continues after a restart.
    pub checkpoint: Option<String>,
}

/// Filters for [`TaskStore::list_tasks`]. All present filters must match;
/// newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Exact principal: a caller lists only its own tasks.
    pub principal: Option<String>,
    /// Exact state.
    pub state: Option<TaskState>,
    /// Exact kind.
    pub kind: Option<String>,
    /// Return tasks with an id less than this (from a previous page's
    /// last id).
    pub before: Option<String>,
    /// Page size, clamped to 1..=1000.
    pub limit: u32,
}

/// The task table. Blocking, like [`Store`](crate::Store).
pub trait TaskStore: Send + Sync {
    /// Stores a new task; [`StoreError::Duplicate`](crate::StoreError::Duplicate)
    /// if its id exists.
    fn insert_task(&self, task: &TaskRow) -> Result<()>;
    /// Replaces every field of the stored task with this id (but its id,
    /// kind, principal, params and creation time, which never change).
    /// Returns whether it existed.
    fn update_task(&self, task: &TaskRow) -> Result<bool>;
    /// The task with this id, if any.
    fn task(&self, id: &str) -> Result<Option<TaskRow>>;
    /// Tasks matching `query`, newest first, at most `query.limit`.
    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRow>>;
    /// Tasks in state `pending` or `running`, oldest first: what a
    /// restart must resume or fail.
    fn unfinished_tasks(&self) -> Result<Vec<TaskRow>>;
    /// Finished tasks that still name a result file and finished before
    /// `before_ms`, oldest first: what the retention removes.
    fn expired_results(&self, before_ms: i64) -> Result<Vec<TaskRow>>;
}
