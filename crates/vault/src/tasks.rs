//! Tasks: long jobs (an export, an fsck) tracked in the store and bound to
//! the principal that created them.
//!
//! A kind of task is a [`TaskKind`] registered in [`TaskConfig`]. The
//! runner starts at most [`TaskConfig::concurrency`] tasks at once and
//! queues the rest in creation order (FIFO). A task goes `pending →
//! running → succeeded | failed | cancelled`; every change is stored and
//! logged as an audit event (`task.<state>`, protocol `vault`), and its
//! progress is broadcast to watchers and stored at most once a second.
//! Only its principal, or a reader that sees everything (an admin), may
//! see, cancel or download it: anyone else gets [`VaultError::Hidden`].
//!
//! A kind writes its result file at [`TaskContext::output_path`]; on
//! success the runner renames it into place (0600, under
//! `<data dir>/tasks/`) and records its size and SHA-256; on failure or
//! cancellation it deletes it. Results are kept for
//! [`TaskConfig::retention`] after the task ends, then deleted (the task's
//! row stays, as history).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evault_store::{Store, TaskQuery, TaskRow, TaskState};
use evault_verify::audit::{AuditEvent, Outcome};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::blobs::{StagedPayload, Upload};
use crate::error::{Result, VaultError};
use crate::{ReadScope, Reader, Vault};

/// Largest accepted task parameters, as JSON text.
pub const MAX_PARAMS: usize = 64 * 1024;
/// Longest error message kept for a failed task.
const MAX_ERROR: usize = 4096;
/// Least time between two stored progress updates of a task.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long [`Vault::cancel_task`] waits for a running task to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// The reason a task that was running when the vault stopped fails with.
pub const INTERRUPTED: &str = "interrupted by a restart";

/// A kind of task. Registered in [`TaskConfig`]; the vault runs
/// [`TaskKind::run`] on a blocking thread.
pub trait TaskKind: Send + Sync + 'static {
    /// Its name, e.g. `export_bundle`: what a client asks for.
    fn name(&self) -> &'static str;
    /// The roles (as the server's permission table spells them: `ingester`,
    /// `auditor`, `admin`) any one of which allows starting it. The server
    /// enforces them; the vault only keeps them with the kind.
    fn roles(&self) -> &'static [&'static str];
    /// Checks the parameters before anything is stored; the error says
    /// what is wrong with them (the client sees it).
    fn validate(&self, params: &Value) -> std::result::Result<(), String>;
    /// Whether a task of this kind that was running when the vault stopped
    /// continues after a restart from its last
    /// [`TaskContext::checkpoint`] (else it fails with
    /// [`INTERRUPTED`]).
    fn resumable(&self) -> bool {
        false
    }
    /// Whether a task of this kind is started with an input file (an
    /// uploaded evidence bundle), by [`Vault::create_task_with_input`]; it
    /// reads it at [`TaskContext::input_path`]. A kind that takes one is
    /// refused without one, and the other way round.
    fn takes_input(&self) -> bool {
        false
    }
    /// Does the work. Should report progress, check
    /// [`TaskContext::cancelled`] often (a cancelled task must stop within
    /// a second) and write its result, if any, at
    /// [`TaskContext::output_path`]. The error is what the task's
    /// principal reads.
    fn run(&self, ctx: &TaskContext) -> std::result::Result<TaskOutput, String>;
}

/// What a kind returns on success.
#[derive(Clone, Debug, Default)]
pub struct TaskOutput {
    /// A short report (e.g. counts), shown with the task.
    pub summary: Option<Value>,
}

/// How tasks run. Defaults are the documented ones.
#[derive(Clone)]
pub struct TaskConfig {
    /// The kinds of task this vault runs (by default the vault's own:
    /// `export_bundle`, `import_bundle`, `fsck`, `backfill_releases` and
    /// `retention_sweep`).
    pub kinds: Vec<Arc<dyn TaskKind>>,
    /// Tasks running at once; more wait in a FIFO queue. Default 2.
    pub concurrency: usize,
    /// How long a finished task's result file is kept. Default 7 days.
    pub retention: Duration,
}

impl TaskConfig {
    /// Adds a kind.
    pub fn register(&mut self, kind: impl TaskKind) -> &mut Self {
        self.kinds.push(Arc::new(kind));
        self
    }
}

impl Default for TaskConfig {
    /// The vault's own kinds (`export_bundle`, `import_bundle`, `fsck`,
    /// `backfill_releases`, `retention_sweep`), 2 at once, results kept 7
    /// days.
    fn default() -> Self {
        TaskConfig {
            kinds: vec![
                Arc::new(crate::task_kinds::ExportBundle),
                Arc::new(crate::task_kinds::ImportBundle),
                Arc::new(crate::task_kinds::Fsck),
                Arc::new(crate::backfill::BackfillReleases::default()),
                Arc::new(crate::retention::RetentionSweep),
            ],
            concurrency: 2,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl fmt::Debug for TaskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskConfig")
            .field(
                "kinds",
                &self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            )
            .field("concurrency", &self.concurrency)
            .field("retention", &self.retention)
            .finish()
    }
}

/// A kind as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// Its name.
    pub name: &'static str,
    /// The roles that may start it.
    pub roles: &'static [&'static str],
}

/// A task's result file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskResult {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Whether it can still be downloaded (false once the retention
    /// removed it).
    pub available: bool,
}

/// A task as callers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// UUIDv7.
    pub id: String,
    /// Its kind's name.
    pub kind: String,
    /// Who created it.
    pub principal: String,
    /// Its parameters.
    pub params: Value,
    /// Its state.
    pub state: TaskState,
    /// Steps done.
    pub done: u64,
    /// Steps in all, when known.
    pub total: Option<u64>,
    /// Its result file, once it succeeded with one.
    pub result: Option<TaskResult>,
    /// What the kind reported on success.
    pub summary: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether a cancel was asked for (a running task stops soon after).
    pub cancel_requested: bool,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it (last) started running.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub finished_ms: Option<i64>,
}

/// Filters for [`Vault::tasks`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Exact state.
    pub state: Option<TaskState>,
    /// Exact kind.
    pub kind: Option<String>,
    /// Tasks created before the one with this id (paging, newest first).
    pub before: Option<String>,
    /// Page size, 1 to 1000 (0: 100).
    pub limit: u32,
}

/// What a running kind gets: its parameters, the reader it reads as, its
/// vault, progress and checkpoint reporting, the cancellation check and
/// where to write its result.
pub struct TaskContext {
    id: String,
    params: Value,
    reader: Reader,
    vault: Vault,
    runtime: tokio::runtime::Handle,
    output: PathBuf,
    input: Option<PathBuf>,
    resume_from: Option<String>,
    live: Arc<Live>,
    store: Arc<dyn Store>,
    stopping: Arc<AtomicBool>,
}

impl TaskContext {
    /// The task's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its parameters, as validated.
    pub fn params(&self) -> &Value {
        &self.params
    }

    /// The principal that created it, with the read scope it had: what
    /// the task may read.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The vault it runs in.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The vault's runtime, to wait for async vault calls from the
    /// blocking thread the task runs on (`runtime().block_on(..)`).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Where to write the result file (the directory exists; create the
    /// file with [`TaskContext::create_output`] so it is private).
    pub fn output_path(&self) -> &Path {
        &self.output
    }

    /// The task's input file, for a kind that [takes one](TaskKind::takes_input).
    /// It is deleted when the task ends.
    pub fn input_path(&self) -> Option<&Path> {
        self.input.as_deref()
    }

    /// Creates (or truncates) the result file, mode 0600.
    pub fn create_output(&self) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.output)
    }

    /// The step last passed to [`TaskContext::checkpoint`] before a
    /// restart, when the task is being resumed.
    pub fn resume_from(&self) -> Option<&str> {
        self.resume_from.as_deref()
    }

    /// Reports progress: `done` of `total` steps (total when known).
    /// Watchers see it at once (report per batch of work, not per byte);
    /// it is stored at most once a second.
    pub fn progress(&self, done: u64, total: Option<u64>) {
        let snapshot = {
            let mut row = self.live.row();
            row.done = done;
            row.total = total;
            row.clone()
        };
        self.live.publish(&snapshot);
        self.live.maybe_save(&*self.store, &snapshot, false);
    }

    /// Records a step from which the task can resume after a restart
    /// (a resumable kind's), stored at once with the progress.
    pub fn checkpoint(&self, step: &str) {
        let snapshot = {
            let mut row = self.live.row();
            row.checkpoint = Some(step.to_string());
            row.clone()
        };
        self.live.maybe_save(&*self.store, &snapshot, true);
    }

    /// Whether the task should stop now: it was cancelled, or the vault is
    /// shutting down.
    pub fn cancelled(&self) -> bool {
        self.live.cancel.load(Ordering::SeqCst) || self.stopping.load(Ordering::SeqCst)
    }
}

/// A task this process has not finished: its row as it is now, and who
/// watches it.
struct Live {
    row: Mutex<TaskRow>,
    tx: watch::Sender<TaskInfo>,
    cancel: AtomicBool,
    last_saved: Mutex<Instant>,
}

impl Live {
    fn new(row: TaskRow) -> Result<Arc<Live>> {
        let info = info_of(&row, false)?;
        Ok(Arc::new(Live {
            row: Mutex::new(row),
            tx: watch::channel(info).0,
            cancel: AtomicBool::new(false),
            last_saved: Mutex::new(Instant::now()),
        }))
    }

    fn row(&self) -> MutexGuard<'_, TaskRow> {
        lock(&self.row)
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Sends `row` to watchers. Every change is sent (a watcher that is
    /// slower than the changes sees the latest one).
    fn publish(&self, row: &TaskRow) {
        if let Ok(info) = info_of(row, self.cancelled()) {
            self.tx.send_replace(info);
        }
    }

    /// Stores `row`'s progress if `force` or enough time has passed.
    /// Progress is advisory: a failed save is logged, the task goes on.
    fn maybe_save(&self, store: &dyn Store, row: &TaskRow, force: bool) {
        {
            let mut last = lock(&self.last_saved);
            if !force && last.elapsed() < SAVE_EVERY {
                return;
            }
            *last = Instant::now();
        }
        if let Some(table) = store.tasks()
            && let Err(e) = table.update_task(row)
        {
            tracing::warn!(task = %row.id, "task progress not stored: {e}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent; a panic elsewhere
    // does not make it unusable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tasks started and waiting.
#[derive(Default)]
struct Queue {
    running: usize,
    waiting: VecDeque<Arc<Live>>,
}

/// The task runner of a vault.
pub(crate) struct Runner {
    kinds: BTreeMap<&'static str, Arc<dyn TaskKind>>,
    dir: PathBuf,
    concurrency: usize,
    retention: Duration,
    queue: Mutex<Queue>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    stopping: Arc<AtomicBool>,
    /// Tasks running, for [`Vault::shutdown`] to wait for.
    running: watch::Sender<usize>,
}

impl Runner {
    /// The runner of `config`, its files under `<data dir>/tasks` (created
    /// 0700). Refuses two kinds of one name.
    pub(crate) fn new(config: &TaskConfig, data_dir: &Path) -> Result<Runner> {
        let mut kinds = BTreeMap::new();
        for kind in &config.kinds {
            if kinds.insert(kind.name(), kind.clone()).is_some() {
                return Err(VaultError::Invalid(format!(
                    "task kind {:?} is registered twice",
                    kind.name()
                )));
            }
        }
        let dir = data_dir.join("tasks");
        crate::datadir::create_private(&dir)?;
        Ok(Runner {
            kinds,
            dir,
            concurrency: config.concurrency.max(1),
            retention: config.retention,
            queue: Mutex::new(Queue::default()),
            live: Mutex::new(HashMap::new()),
            stopping: Arc::new(AtomicBool::new(false)),
            running: watch::channel(0).0,
        })
    }

    fn live(&self, id: &str) -> Option<Arc<Live>> {
        lock(&self.live).get(id).cloned()
    }

    fn output_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.partial"))
    }

    fn input_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.input"))
    }

    fn result_name(id: &str) -> String {
        format!("{id}.result")
    }

    fn unknown_kind(&self, kind: &str) -> VaultError {
        if self.kinds.is_empty() {
            return VaultError::Invalid(format!(
                "unknown task kind {kind:?}: this vault has no task kinds"
            ));
        }
        let known: Vec<_> = self.kinds.keys().copied().collect();
        VaultError::Invalid(format!(
            "unknown task kind {kind:?}; known kinds: {}",
            known.join(", ")
        ))
    }
}

fn now_ms() -> i64 {
    crate::checkpointer::now_ms()
}

/// The API view of a row.
fn info_of(row: &TaskRow, cancel_requested: bool) -> Result<TaskInfo> {
    let bad = |why: String| crate::integrity::failure("task", format!("task {}: {why}", row.id));
    let params = serde_json::from_str(&row.params)
        .map_err(|e| bad(format!("stored params are not JSON: {e}")))?;
    let summary = row
        .summary
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| bad(format!("stored summary is not JSON: {e}")))?;
    let result = match (row.result_size, &row.result_sha256) {
        (Some(size), Some(sha256)) => Some(TaskResult {
            size,
            sha256: sha256.clone(),
            available: row.result_file.is_some(),
        }),
        _ => None,
    };
    Ok(TaskInfo {
        id: row.id.clone(),
        kind: row.kind.clone(),
        principal: row.principal.clone(),
        params,
        state: row.state,
        done: row.done,
        total: row.total,
        result,
        summary,
        error: row.error.clone(),
        cancel_requested,
        created_ms: row.created_ms,
        started_ms: row.started_ms,
        finished_ms: row.finished_ms,
    })
}

/// The audit event of a task's change to its current state.
fn audit_event(row: &TaskRow, reason: Option<String>) -> AuditEvent {
    AuditEvent {
        id: String::new(),
        leaf_index: 0,
        time: crate::records::format_ms(now_ms()),
        request_id: row.id.clone(),
        principal: row.principal.clone(),
        key_id: None,
        auth_method: "none".into(),
        protocol: "vault".into(),
        operation: format!("task.{}", row.state),
        resource: format!("/api/v1/tasks/{}", row.id),
        outcome: if row.state == TaskState::Failed {
            Outcome::Failed
        } else {
            Outcome::Success
        },
        status: 0,
        client: "vault".into(),
        params_digest: evault_verify::evidence::hex(&Sha256::digest(row.params.as_bytes())),
        reason,
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
    }
}

/// Moves a finished task's output into place (0600) and returns its file
/// name, size and SHA-256; `None` if the kind wrote no output.
fn seal_output(partial: &Path, dir: &Path, id: &str) -> Result<Option<(String, u64, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = match std::fs::File::open(partial) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    file.sync_all()?;
    std::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o600))?;
    let name = Runner::result_name(id);
    std::fs::rename(partial, dir.join(&name))?;
    Ok(Some((
        name,
        size,
        evault_verify::evidence::hex(&hasher.finalize()),
    )))
}

impl Vault {
    fn runner(&self) -> &Runner {
        &self.inner.runner
    }

    fn task_table(&self) -> Result<()> {
        self.inner
            .store
            .tasks()
            .map(|_| ())
            .ok_or_else(|| VaultError::Unavailable("this vault's store keeps no tasks".into()))
    }

    /// The kinds of task this vault runs, by name.
    pub fn task_kinds(&self) -> Vec<KindInfo> {
        self.runner()
            .kinds
            .values()
            .map(|k| KindInfo {
                name: k.name(),
                roles: k.roles(),
            })
            .collect()
    }

    /// The kind named `name`, if this vault runs it.
    pub fn task_kind(&self, name: &str) -> Option<KindInfo> {
        self.runner().kinds.get(name).map(|k| KindInfo {
            name: k.name(),
            roles: k.roles(),
        })
    }

    /// Creates a task of `kind` with `params`, owned by `owner`'s principal
    /// and reading as `owner` (its scope is the task's), and queues it.
    /// An unknown kind (the error lists the known ones), parameters over
    /// [`MAX_PARAMS`] or refused by the kind are [`VaultError::Invalid`];
    /// nothing is stored then.
    pub async fn create_task(&self, owner: &Reader, kind: &str, params: Value) -> Result<TaskInfo> {
        self.new_task(owner, kind, params, None).await
    }

    /// Like [`Vault::create_task`], for a kind that [takes an input
    /// file](TaskKind::takes_input): `input` (received with
    /// [`Vault::upload_task_input`]) becomes the task's, deleted when the
    /// task ends. Nothing is kept if the task is refused.
    pub async fn create_task_with_input(
        &self,
        owner: &Reader,
        kind: &str,
        params: Value,
        input: StagedPayload,
    ) -> Result<TaskInfo> {
        self.new_task(owner, kind, params, Some(input)).await
    }

    /// Receives a task's input file (an evidence bundle to import), up to
    /// [`VaultConfig::max_task_input`](crate::VaultConfig) bytes, straight
    /// to a private staging file.
    pub fn upload_task_input(&self) -> Upload {
        self.inner.blobs.upload(0, self.inner.config.max_task_input)
    }

    async fn new_task(
        &self,
        owner: &Reader,
        kind: &str,
        params: Value,
        input: Option<StagedPayload>,
    ) -> Result<TaskInfo> {
        self.task_table()?;
        if self.is_shutting_down() {
            return Err(VaultError::Unavailable("the vault is shutting down".into()));
        }
        let runner = self.runner();
        let k = runner
            .kinds
            .get(kind)
            .ok_or_else(|| runner.unknown_kind(kind))?;
        let text = serde_json::to_string(&params)
            .map_err(|e| VaultError::Invalid(format!("params: {e}")))?;
        if text.len() > MAX_PARAMS {
            return Err(VaultError::Invalid(format!(
                "params are {} bytes of JSON, at most {MAX_PARAMS} allowed",
                text.len()
            )));
        }
        k.validate(&params)
            .map_err(|why| VaultError::Invalid(format!("params of task kind {kind:?}: {why}")))?;
        match (k.takes_input(), input.is_some()) {
            (true, false) => {
                let how = if kind == crate::backfill::KIND {
                    "an inventory: POST /api/v1/backfills, or `evault backfill`"
                } else {
                    "an evidence bundle: POST /api/v1/imports, or `evault import`"
                };
                return Err(VaultError::Invalid(format!(
                    "task kind {kind:?} is started with its input file ({how})"
                )));
            }
            (false, true) => {
                return Err(VaultError::Invalid(format!(
                    "task kind {kind:?} takes no input file"
                )));
            }
            _ => {}
        }
        if owner.principal().is_empty() {
            return Err(VaultError::Invalid("missing principal".into()));
        }
        let row = TaskRow {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.to_string(),
            principal: owner.principal().to_string(),
            reads_all: owner.scope() == ReadScope::All,
            params: text,
            state: TaskState::Pending,
            done: 0,
            total: None,
            result_file: None,
            result_size: None,
            result_sha256: None,
            summary: None,
            error: None,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
            checkpoint: None,
        };
        let stored = row.clone();
        let input_path = runner.input_path(&row.id);
        self.blocking(move |i| {
            let table = i.store.tasks().ok_or_else(|| {
                VaultError::Unavailable("this vault's store keeps no tasks".into())
            })?;
            // The input first: a stored task always finds its input.
            if let Some(input) = input {
                input.write_to(&input_path)?;
            }
            table
                .insert_task(&stored)
                .inspect_err(|_| remove_if_present(&input_path))?;
            Ok(())
        })
        .await?;
        self.audit_task(&row, None).await;
        let live = Live::new(row)?;
        let info = live.tx.borrow().clone();
        lock(&runner.live).insert(info.id.clone(), live.clone());
        self.queue_task(live);
        Ok(info)
    }

    /// A task, if `reader` may see it (its principal's, or any for a
    /// reader that sees everything); [`VaultError::Hidden`] otherwise.
    pub async fn task(&self, reader: &Reader, id: &str) -> Result<TaskInfo> {
        self.task_table()?;
        if let Some(live) = self.runner().live(id) {
            check_owner(reader, &live.row())?;
            // As published: a state change shows once it is stored (so a
            // list filtered by state agrees), progress at once.
            let mut info = live.tx.borrow().clone();
            info.cancel_requested = live.cancelled();
            return Ok(info);
        }
        let (reader, id) = (reader.clone(), id.to_string());
        self.blocking(move |i| {
            let row = stored_task(i, &id)?;
            check_owner(&reader, &row)?;
            info_of(&row, false)
        })
        .await
    }

    /// Tasks `reader` may see (its own; all for a reader that sees
    /// everything) matching `filter`, newest first.
    pub async fn tasks(&self, reader: &Reader, filter: TaskFilter) -> Result<Vec<TaskInfo>> {
        self.task_table()?;
        let limit = match filter.limit {
            0 => 100,
            n @ 1..=1000 => n,
            n => {
                return Err(VaultError::Invalid(format!(
                    "limit {n} is larger than 1000"
                )));
            }
        };
        let query = TaskQuery {
            principal: (reader.scope() == ReadScope::Own).then(|| reader.principal().to_string()),
            state: filter.state,
            kind: filter.kind,
            before: filter.before,
            limit,
        };
        let rows = self
            .blocking(move |i| {
                let table = i.store.tasks().ok_or_else(|| {
                    VaultError::Unavailable("this vault's store keeps no tasks".into())
                })?;
                Ok(table.list_tasks(&query)?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                if let Some(live) = self.runner().live(&row.id) {
                    // Fresher progress than the stored row, in the state
                    // the list was filtered by.
                    let mut info = live.tx.borrow().clone();
                    if info.state == row.state {
                        info.cancel_requested = live.cancelled();
                        return Ok(info);
                    }
                }
                info_of(row, false)
            })
            .collect()
    }

    /// Cancels a task `reader` may see. A pending task is cancelled at
    /// once; a running one is asked to stop, and this waits (up to 5 s) for
    /// it to end: its output is deleted. A task that has ended already is
    /// [`VaultError::Conflict`].
    pub async fn cancel_task(&self, reader: &Reader, id: &str) -> Result<TaskInfo> {
        let info = self.task(reader, id).await?;
        if info.state.is_final() {
            return Err(VaultError::Conflict(format!(
                "task {id} has ended already ({})",
                info.state
            )));
        }
        let Some(live) = self.runner().live(id) else {
            // Ended between the two looks.
            return Err(VaultError::Conflict(format!("task {id} has ended already")));
        };
        let mut rx = live.tx.subscribe();
        live.cancel.store(true, Ordering::SeqCst);
        let pending = live.row().state == TaskState::Pending;
        if pending {
            self.finish(&live, TaskState::Cancelled, |_| {}, None).await;
        } else {
            let snapshot = live.row().clone();
            live.publish(&snapshot);
            let _ = tokio::time::timeout(CANCEL_WAIT, rx.wait_for(|i| i.state.is_final())).await;
        }
        let row = live.row().clone();
        info_of(&row, true)
    }

    /// Follows a task `reader` may see: the receiver holds its state now
    /// and changes with each progress or state change; once the task has
    /// ended it holds the final state and its sender is gone.
    pub async fn watch_task(&self, reader: &Reader, id: &str) -> Result<watch::Receiver<TaskInfo>> {
        let info = self.task(reader, id).await?;
        if let Some(live) = self.runner().live(id) {
            return Ok(live.tx.subscribe());
        }
        // Ended: a channel with the final state and no sender.
        Ok(watch::channel(info).1)
    }

    /// The result file of a succeeded task `reader` may see, opened, with
    /// the task. A task that has not succeeded is
    /// [`VaultError::Conflict`]; one without a result (the kind writes
    /// none, or the retention removed it) [`VaultError::NotFound`].
    pub async fn task_result(
        &self,
        reader: &Reader,
        id: &str,
    ) -> Result<(TaskInfo, tokio::fs::File)> {
        let info = self.task(reader, id).await?;
        if info.state != TaskState::Succeeded {
            return Err(VaultError::Conflict(format!(
                "task {id} is {}; only a succeeded task has a result",
                info.state
            )));
        }
        let (reader, id2) = (reader.clone(), id.to_string());
        let row = self
            .blocking(move |i| {
                let row = stored_task(i, &id2)?;
                check_owner(&reader, &row)?;
                Ok(row)
            })
            .await?;
        let missing = || VaultError::NotFound(format!("result of task {id}"));
        let name = row.result_file.ok_or_else(missing)?;
        match tokio::fs::File::open(self.runner().dir.join(name)).await {
            Ok(f) => Ok((info, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
            Err(e) => Err(e.into()),
        }
    }

    /// Logs a task's change to its current state (durably; a failure is
    /// logged, the change stands).
    async fn audit_task(&self, row: &TaskRow, reason: Option<String>) {
        if let Err(e) = self.record_audit(audit_event(row, reason)).await {
            tracing::warn!(task = %row.id, state = %row.state, "task audit event not written: {e}");
        }
    }

    /// Stores a change of `live` (made by `change`), tells watchers and
    /// logs it. Refuses (returns false) to change a task that has ended.
    async fn transition(
        &self,
        live: &Arc<Live>,
        to: TaskState,
        change: impl FnOnce(&mut TaskRow),
        reason: Option<String>,
    ) -> bool {
        let row = {
            let mut row = live.row();
            if row.state.is_final() {
                return false;
            }
            row.state = to;
            change(&mut row);
            row.clone()
        };
        let stored = row.clone();
        let saved = self
            .blocking(move |i| {
                if let Some(t) = i.store.tasks() {
                    t.update_task(&stored)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = saved {
            tracing::error!(task = %row.id, state = %to, "task state not stored: {e}");
        }
        self.audit_task(&row, reason).await;
        live.publish(&row);
        true
    }

    /// Moves `live` to a final state, forgets it as live and sweeps
    /// expired results.
    async fn finish(
        &self,
        live: &Arc<Live>,
        to: TaskState,
        change: impl FnOnce(&mut TaskRow),
        reason: Option<String>,
    ) {
        let id = live.row().id.clone();
        let finished = now_ms();
        // Before the final state is published: whoever sees a failed or
        // cancelled task must find no partial output left.
        if to != TaskState::Succeeded {
            remove_if_present(&self.runner().output_path(&id));
        }
        remove_if_present(&self.runner().input_path(&id));
        let changed = self
            .transition(
                live,
                to,
                |row| {
                    row.finished_ms = Some(finished);
                    change(row);
                },
                reason,
            )
            .await;
        if changed {
            lock(&self.runner().live).remove(&id);
            self.sweep_results().await;
        }
    }

    /// Starts `live` if a slot is free, else queues it.
    fn queue_task(&self, live: Arc<Live>) {
        let runner = self.runner();
        let mut q = lock(&runner.queue);
        if runner.stopping.load(Ordering::SeqCst) {
            // Left pending: the next start runs it.
            return;
        }
        if q.running < runner.concurrency {
            q.running += 1;
            runner.running.send_replace(q.running);
            tokio::spawn(self.clone().run_job(live));
        } else {
            q.waiting.push_back(live);
        }
    }

    /// A job ended: start the next waiting task, if any.
    fn job_done(&self) {
        let runner = self.runner();
        let mut q = lock(&runner.queue);
        q.running = q.running.saturating_sub(1);
        if !runner.stopping.load(Ordering::SeqCst) {
            while let Some(next) = q.waiting.pop_front() {
                if next.cancelled() || next.row().state.is_final() {
                    continue;
                }
                q.running += 1;
                tokio::spawn(self.clone().run_job(next));
                break;
            }
        }
        runner.running.send_replace(q.running);
    }

    async fn run_job(self, live: Arc<Live>) {
        self.run_task(&live).await;
        self.job_done();
    }

    async fn run_task(&self, live: &Arc<Live>) {
        if live.cancelled() {
            return;
        }
        let (id, kind_name, resume_from) = {
            let row = live.row();
            (row.id.clone(), row.kind.clone(), row.checkpoint.clone())
        };
        let runner = self.runner();
        let Some(kind) = runner.kinds.get(kind_name.as_str()).cloned() else {
            let why = format!("task kind {kind_name:?} is not registered");
            self.finish(
                live,
                TaskState::Failed,
                |r| r.error = Some(why.clone()),
                Some(why.clone()),
            )
            .await;
            return;
        };
        let started = now_ms();
        let reason = resume_from
            .as_ref()
            .map(|s| format!("resumed from step {s}"));
        if !self
            .transition(
                live,
                TaskState::Running,
                |r| r.started_ms = Some(started),
                reason,
            )
            .await
        {
            return;
        }
        let (principal, reads_all, params) = {
            let row = live.row();
            (row.principal.clone(), row.reads_all, row.params.clone())
        };
        let params: Value = match serde_json::from_str(&params) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("stored params are not JSON: {e}");
                self.finish(
                    live,
                    TaskState::Failed,
                    |r| r.error = Some(why.clone()),
                    None,
                )
                .await;
                return;
            }
        };
        let output = runner.output_path(&id);
        let ctx = TaskContext {
            id: id.clone(),
            params,
            reader: if reads_all {
                Reader::all(principal)
            } else {
                Reader::own(principal)
            },
            vault: self.clone(),
            runtime: tokio::runtime::Handle::current(),
            output: output.clone(),
            input: kind.takes_input().then(|| runner.input_path(&id)),
            resume_from,
            live: live.clone(),
            store: self.inner.store.clone(),
            stopping: runner.stopping.clone(),
        };
        let ran = tokio::task::spawn_blocking(move || {
            let out = kind.run(&ctx);
            drop(ctx);
            (out, kind.resumable())
        })
        .await;

        if live.cancelled() {
            self.finish(live, TaskState::Cancelled, |_| {}, None).await;
            // Also when a cancel of the task while it was still pending
            // finished it before it started writing.
            remove_if_present(&output);
            return;
        }
        if runner.stopping.load(Ordering::SeqCst) {
            // Left running in the store: the next start resumes it or
            // fails it as interrupted. A resumable kind keeps its output.
            if !matches!(ran, Ok((_, true))) {
                remove_if_present(&output);
            }
            let snapshot = live.row().clone();
            live.maybe_save(&*self.inner.store, &snapshot, true);
            return;
        }
        match ran {
            Ok((Ok(out), _)) => {
                let dir = runner.dir.clone();
                let (partial, id2) = (output.clone(), id.clone());
                let sealed =
                    tokio::task::spawn_blocking(move || seal_output(&partial, &dir, &id2)).await;
                match sealed {
                    Ok(Ok(result)) => {
                        let summary = out.summary.map(|s| s.to_string());
                        self.finish(
                            live,
                            TaskState::Succeeded,
                            |r| {
                                if let Some((name, size, sha256)) = result {
                                    r.result_file = Some(name);
                                    r.result_size = Some(size);
                                    r.result_sha256 = Some(sha256);
                                }
                                r.summary = summary;
                                r.error = None;
                            },
                            None,
                        )
                        .await;
                    }
                    Ok(Err(e)) => self.fail(live, format!("storing the result: {e}")).await,
                    Err(e) => self.fail(live, format!("storing the result: {e}")).await,
                }
            }
            Ok((Err(why), _)) => self.fail(live, why).await,
            Err(e) => {
                tracing::error!(task = %id, "task panicked: {e}");
                self.fail(live, "the task failed unexpectedly (it panicked)".into())
                    .await;
            }
        }
    }

    async fn fail(&self, live: &Arc<Live>, why: String) {
        let why = clip(why);
        self.finish(
            live,
            TaskState::Failed,
            |r| r.error = Some(why.clone()),
            Some(why.clone()),
        )
        .await;
    }

    /// Deletes result files older than the retention; their tasks stay,
    /// marked as having no result any more.
    async fn sweep_results(&self) {
        let retention = i64::try_from(self.runner().retention.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(retention);
        let swept = self
            .blocking(move |i| {
                let Some(table) = i.store.tasks() else {
                    return Ok(0);
                };
                let mut n = 0;
                for mut row in table.expired_results(before)? {
                    if let Some(name) = row.result_file.take() {
                        remove_if_present(&i.runner.dir.join(name));
                        table.update_task(&row)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await;
        match swept {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} expired task results"),
            Err(e) => tracing::warn!("sweeping expired task results failed: {e}"),
        }
    }

    /// At start-up, and when a standby takes over: every task a previous
    /// process (or leader) left pending is queued again (it never ran); one
    /// left running is resumed if its kind can (from its last checkpoint),
    /// else failed with [`INTERRUPTED`].
    pub(crate) async fn recover_tasks(&self) -> Result<()> {
        if self.inner.store.tasks().is_none() {
            return Ok(());
        }
        let rows = self
            .blocking(|i| match i.store.tasks() {
                Some(t) => Ok(t.unfinished_tasks()?),
                None => Ok(Vec::new()),
            })
            .await?;
        for row in rows {
            // Already in hand here (a node that leads again after a lost
            // lease): never run twice.
            if lock(&self.runner().live).contains_key(&row.id) {
                continue;
            }
            let kind = self.runner().kinds.get(row.kind.as_str()).cloned();
            let state = row.state;
            let id = row.id.clone();
            let live = Live::new(row)?;
            lock(&self.runner().live).insert(id.clone(), live.clone());
            match (state, kind) {
                (TaskState::Pending, Some(_)) => self.queue_task(live),
                (TaskState::Running, Some(k)) if k.resumable() => {
                    self.transition(
                        &live,
                        TaskState::Pending,
                        |_| {},
                        Some("resuming after a restart".into()),
                    )
                    .await;
                    self.queue_task(live);
                }
                (_, kind) => {
                    let why = match kind {
                        Some(_) => INTERRUPTED.to_string(),
                        None => format!(
                            "{INTERRUPTED} (task kind {:?} is not registered any more)",
                            live.row().kind
                        ),
                    };
                    remove_if_present(&self.runner().output_path(&id));
                    self.fail(&live, why).await;
                }
            }
        }
        self.sweep_results().await;
        Ok(())
    }

    /// For [`Vault::shutdown`]: tasks stop being started, running ones are
    /// told to stop ([`TaskContext::cancelled`]) and awaited. They stay
    /// `running` (or `pending`) in the store for the next start.
    pub(crate) async fn stop_tasks(&self) {
        let runner = self.runner();
        {
            let mut q = lock(&runner.queue);
            runner.stopping.store(true, Ordering::SeqCst);
            q.waiting.clear();
        }
        let mut rx = runner.running.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

fn stored_task(i: &crate::Inner, id: &str) -> Result<TaskRow> {
    let table = i
        .store
        .tasks()
        .ok_or_else(|| VaultError::Unavailable("this vault's store keeps no tasks".into()))?;
    table
        .task(id)?
        .ok_or_else(|| VaultError::NotFound(format!("task {id}")))
}

fn check_owner(reader: &Reader, row: &TaskRow) -> Result<()> {
    reader.check(
        &row.principal,
        || format!("task {}", row.id),
        "the task belongs to another principal",
    )
}
