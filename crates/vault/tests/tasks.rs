//! The task runner with kinds defined here, under the tests' control:
//! lifecycle and progress, the FIFO queue beyond the concurrency limit,
//! cancel (running and pending), tasks bound to their principal, a restart
//! (interrupted, resumed, a result kept), and an audit event for every
//! state change.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use evault_store::AuditQuery;
use evault_vault::{
    Reader, TaskContext, TaskFilter, TaskInfo, TaskKind, TaskOutput, TaskState, Vault, VaultConfig,
    VaultError,
};
use serde_json::{Value, json};
use sha2::Digest as _;

#[macro_use]
mod drivers;

const ORIGIN: &str = "test.example/tasks";
/// Long enough for anything that should happen; a test fails, never
/// hangs, if it does not.
const DEADLINE: Duration = Duration::from_secs(30);

/// One task's controls: how many steps it may take, and what it saw.
#[derive(Default)]
struct Gate {
    allowed: Mutex<u64>,
    cv: Condvar,
    started: AtomicUsize,
    saw_cancel: AtomicBool,
    resumed_from: Mutex<Option<String>>,
}

impl Gate {
    fn allow(&self, steps: u64) {
        *self.allowed.lock().unwrap() = steps;
        self.cv.notify_all();
    }

    /// Waits until step `i` is allowed; false if the task was cancelled
    /// meanwhile (checked every 10 ms) or the test gave up on it (its
    /// runtime could not end while this thread waits).
    fn wait_for_step(&self, i: u64, ctx: &TaskContext) -> bool {
        let give_up = std::time::Instant::now() + DEADLINE;
        let mut allowed = self.allowed.lock().unwrap();
        while *allowed <= i {
            if ctx.cancelled() || std::time::Instant::now() > give_up {
                return false;
            }
            allowed = self
                .cv
                .wait_timeout(allowed, Duration::from_millis(10))
                .unwrap()
                .0;
        }
        true
    }
}

type Gates = Arc<Mutex<HashMap<String, Arc<Gate>>>>;

fn gate(gates: &Gates, name: &str) -> Arc<Gate> {
    gates
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone()
}

/// Counts to `n` one step at a time, as its gate allows, writing a line
/// per step to its output. With `resumable`, continues from its last
/// checkpoint after a restart.
struct Count {
    name: &'static str,
    gates: Gates,
    resumable: bool,
}

impl TaskKind for Count {
    fn name(&self) -> &'static str {
        self.name
    }
    fn roles(&self) -> &'static [&'static str] {
        &["auditor"]
    }
    fn validate(&self, params: &Value) -> Result<(), String> {
        match (params["n"].as_u64(), params["gate"].as_str()) {
            (Some(n), Some(_)) if n <= 1000 => Ok(()),
            _ => Err("want {\"n\": 0..=1000, \"gate\": name}".into()),
        }
    }
    fn resumable(&self) -> bool {
        self.resumable
    }
    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        let n = ctx.params()["n"].as_u64().unwrap_or(0);
        let g = gate(&self.gates, ctx.params()["gate"].as_str().unwrap_or(""));
        g.started.fetch_add(1, Ordering::SeqCst);
        let from: u64 = match ctx.resume_from() {
            Some(step) => {
                *g.resumed_from.lock().unwrap() = Some(step.to_string());
                step.parse().map_err(|_| format!("bad checkpoint {step}"))?
            }
            None => 0,
        };
        let mut out = if from == 0 {
            ctx.create_output().map_err(|e| e.to_string())?
        } else {
            std::fs::OpenOptions::new()
                .append(true)
                .open(ctx.output_path())
                .map_err(|e| e.to_string())?
        };
        for i in from..n {
            if !g.wait_for_step(i, ctx) {
                g.saw_cancel.store(true, Ordering::SeqCst);
                return Err("stopped".into());
            }
            writeln!(out, "step {i}").map_err(|e| e.to_string())?;
            out.sync_all().map_err(|e| e.to_string())?;
            ctx.progress(i + 1, Some(n));
            ctx.checkpoint(&(i + 1).to_string());
        }
        if ctx.params()["fail"].as_bool() == Some(true) {
            return Err("asked to fail".into());
        }
        Ok(TaskOutput {
            summary: Some(json!({ "counted": n })),
        })
    }
}

fn config(dir: &Path, gates: &Gates, concurrency: usize) -> VaultConfig {
    let mut c = VaultConfig::new(dir.join("data"));
    c.store = drivers::store();
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.tasks.concurrency = concurrency;
    // Only the test's kinds: the runner is under test, not the vault's own.
    c.tasks.kinds.clear();
    c.tasks.register(Count {
        name: "count",
        gates: gates.clone(),
        resumable: false,
    });
    c.tasks.register(Count {
        name: "count_resumable",
        gates: gates.clone(),
        resumable: true,
    });
    c
}

async fn open(dir: &Path, gates: &Gates, concurrency: usize) -> Vault {
    Vault::open(config(dir, gates, concurrency)).await.unwrap()
}

fn alice() -> Reader {
    Reader::own("sa:alice")
}

/// Waits (up to the deadline) until the task's state satisfies `done`.
async fn wait_until(v: &Vault, id: &str, what: &str, done: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
    let mut rx = v.watch_task(&Reader::all("admin"), id).await.unwrap();
    let got = tokio::time::timeout(DEADLINE, rx.wait_for(|i| done(i)))
        .await
        .unwrap_or_else(|_| panic!("task {id}: {what} did not happen"))
        .map(|info| info.clone());
    match got {
        Ok(info) => info,
        // The channel of a task that ended has no sender: its value is final.
        Err(_) => {
            let info = rx.borrow().clone();
            assert!(done(&info), "task {id} ended as {info:?}, before {what}");
            info
        }
    }
}

async fn create(v: &Vault, kind: &str, n: u64, gate_name: &str) -> TaskInfo {
    v.create_task(&alice(), kind, json!({ "n": n, "gate": gate_name }))
        .await
        .unwrap()
}

/// The operations of the audit events about task `id`, in log order.
async fn task_events(v: &Vault, id: &str) -> Vec<(String, String, Option<String>)> {
    let page = v
        .audit_list(
            &Reader::all("auditor"),
            AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    page.items
        .into_iter()
        .filter(|e| e.request_id == id)
        .map(|e| {
            assert_eq!(e.protocol, "vault");
            assert_eq!(e.resource, format!("/api/v1/tasks/{id}"));
            (e.operation, e.principal, e.reason)
        })
        .collect()
}

fn ops(events: &[(String, String, Option<String>)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lifecycle_progress_result_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let v = open(dir.path(), &gates, 2).await;
        let t = create(&v, "count", 3, "a").await;
        assert_eq!(t.principal, "sa:alice");
        assert_eq!(t.params, json!({"n": 3, "gate": "a"}));
        let g = gate(&gates, "a");

        wait_until(&v, &t.id, "running", |i| i.state == TaskState::Running).await;
        for step in 1..=3 {
            g.allow(step);
            let info = wait_until(&v, &t.id, "progress", |i| i.done >= step).await;
            assert_eq!(info.total, Some(3));
        }
        let done = wait_until(&v, &t.id, "success", |i| i.state == TaskState::Succeeded).await;
        assert_eq!(done.summary, Some(json!({"counted": 3})));
        assert_eq!((done.done, done.error.as_deref()), (3, None));
        assert!(done.finished_ms >= done.started_ms && done.started_ms.is_some());

        // The result: what the kind wrote, its digest as recorded, mode 0600.
        let (info, mut file) = v.task_result(&alice(), &t.id).await.unwrap();
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut bytes)
            .await
            .unwrap();
        assert_eq!(bytes, b"step 0\nstep 1\nstep 2\n");
        let result = info.result.unwrap();
        assert_eq!(result.size, bytes.len() as u64);
        assert_eq!(result.sha256, hex(&sha2::Sha256::digest(&bytes)));
        assert!(result.available);
        let path = dir
            .path()
            .join("data/tasks")
            .join(format!("{}.result", t.id));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Every state change is an audit event of the task's principal.
        let events = task_events(&v, &t.id).await;
        assert_eq!(
            ops(&events),
            ["task.pending", "task.running", "task.succeeded"]
        );
        assert!(events.iter().all(|e| e.1 == "sa:alice"));

        // A failing task: its error, a failed event with the reason, no result.
        let f = v
            .create_task(
                &alice(),
                "count",
                json!({"n": 1, "gate": "f", "fail": true}),
            )
            .await
            .unwrap();
        gate(&gates, "f").allow(1);
        let failed = wait_until(&v, &f.id, "failure", |i| i.state.is_final()).await;
        assert_eq!(failed.state, TaskState::Failed);
        assert_eq!(failed.error.as_deref(), Some("asked to fail"));
        assert!(failed.result.is_none());
        assert!(matches!(
            v.task_result(&alice(), &f.id).await,
            Err(VaultError::Conflict(_))
        ));
        let events = task_events(&v, &f.id).await;
        assert_eq!(
            ops(&events),
            ["task.pending", "task.running", "task.failed"]
        );
        assert_eq!(events[2].2.as_deref(), Some("asked to fail"));
        assert!(
            !dir.path()
                .join(format!("data/tasks/{}.partial", f.id))
                .exists()
        );
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_requests_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let v = open(dir.path(), &gates, 2).await;
        match v.create_task(&alice(), "nope", json!({})).await {
            Err(VaultError::Invalid(why)) => {
                assert!(why.contains("\"nope\""), "{why}");
                assert!(why.contains("known kinds: count, count_resumable"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        match v.create_task(&alice(), "count", json!({"n": "x"})).await {
            Err(VaultError::Invalid(why)) => assert!(why.contains("want {"), "{why}"),
            other => panic!("{other:?}"),
        }
        let huge = json!({"n": 1, "gate": "x".repeat(70_000)});
        assert!(matches!(
            v.create_task(&alice(), "count", huge).await,
            Err(VaultError::Invalid(_))
        ));
        assert!(matches!(
            v.task(&alice(), "0193-no-such-task").await,
            Err(VaultError::NotFound(_))
        ));
        let all = v
            .tasks(&Reader::all("admin"), TaskFilter::default())
            .await
            .unwrap();
        assert!(all.is_empty(), "{all:?}");
        let kinds: Vec<_> = v.task_kinds().iter().map(|k| k.name).collect();
        assert_eq!(kinds, ["count", "count_resumable"]);
        assert_eq!(v.task_kind("count").unwrap().roles, ["auditor"]);
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_beyond_the_limit_is_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let v = open(dir.path(), &gates, 2).await;
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(create(&v, "count", 1, &format!("q{n}")).await.id);
        }
        // Two run; the other two wait, in order.
        for id in &ids[..2] {
            wait_until(&v, id, "running", |i| i.state == TaskState::Running).await;
        }
        for id in &ids[2..] {
            assert_eq!(
                v.task(&alice(), id).await.unwrap().state,
                TaskState::Pending
            );
        }
        let pending = v
            .tasks(
                &alice(),
                TaskFilter {
                    state: Some(TaskState::Pending),
                    ..TaskFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(pending.len(), 2);

        // Finishing the second starts the third (the first in the queue), not
        // the fourth.
        gate(&gates, "q1").allow(1);
        wait_until(&v, &ids[1], "success", |i| i.state == TaskState::Succeeded).await;
        wait_until(&v, &ids[2], "running", |i| i.state == TaskState::Running).await;
        assert_eq!(
            v.task(&alice(), &ids[3]).await.unwrap().state,
            TaskState::Pending
        );
        assert_eq!(gate(&gates, "q3").started.load(Ordering::SeqCst), 0);
        for g in ["q0", "q2", "q3"] {
            gate(&gates, g).allow(1);
        }
        for id in &ids {
            wait_until(&v, id, "success", |i| i.state == TaskState::Succeeded).await;
        }
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_stops_a_running_task_and_deletes_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let v = open(dir.path(), &gates, 1).await;
        let t = create(&v, "count", 10, "c").await;
        let queued = create(&v, "count", 1, "c2").await;
        let g = gate(&gates, "c");
        g.allow(2);
        wait_until(&v, &t.id, "two steps", |i| i.done == 2).await;
        let partial = dir.path().join(format!("data/tasks/{}.partial", t.id));
        assert!(partial.exists(), "the kind's output is being written");

        // Cancel the queued one first: at once, never started.
        let c = v.cancel_task(&alice(), &queued.id).await.unwrap();
        assert_eq!(c.state, TaskState::Cancelled);
        assert_eq!(gate(&gates, "c2").started.load(Ordering::SeqCst), 0);

        let c = v.cancel_task(&alice(), &t.id).await.unwrap();
        assert_eq!(c.state, TaskState::Cancelled, "{c:?}");
        assert!(c.cancel_requested);
        assert!(
            g.saw_cancel.load(Ordering::SeqCst),
            "the kind saw the cancel"
        );
        assert!(!partial.exists(), "partial output deleted");
        assert!(
            !dir.path()
                .join(format!("data/tasks/{}.result", t.id))
                .exists()
        );
        assert!(matches!(
            v.task_result(&alice(), &t.id).await,
            Err(VaultError::Conflict(_))
        ));
        assert!(matches!(
            v.cancel_task(&alice(), &t.id).await,
            Err(VaultError::Conflict(_))
        ));
        assert_eq!(
            ops(&task_events(&v, &t.id).await),
            ["task.pending", "task.running", "task.cancelled"]
        );
        assert_eq!(
            ops(&task_events(&v, &queued.id).await),
            ["task.pending", "task.cancelled"]
        );
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_are_bound_to_their_principal() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let v = open(dir.path(), &gates, 2).await;
        let t = create(&v, "count", 1, "p").await;
        let theirs = v
            .create_task(
                &Reader::own("sa:bob"),
                "count",
                json!({"n": 1, "gate": "p"}),
            )
            .await
            .unwrap();
        let bob = Reader::own("sa:bob");
        let hidden = |r: Result<(), VaultError>| match r {
            Err(VaultError::Hidden { what, reason }) => {
                assert_eq!(what, format!("task {}", t.id));
                assert!(reason.contains("another principal"), "{reason}");
            }
            other => panic!("expected Hidden, got {other:?}"),
        };
        hidden(v.task(&bob, &t.id).await.map(drop));
        hidden(v.cancel_task(&bob, &t.id).await.map(drop));
        hidden(v.watch_task(&bob, &t.id).await.map(drop));
        gate(&gates, "p").allow(1);
        wait_until(&v, &t.id, "success", |i| i.state == TaskState::Succeeded).await;
        hidden(v.task_result(&bob, &t.id).await.map(drop));
        // Bob's refused cancel changed nothing.
        assert_eq!(
            v.task(&alice(), &t.id).await.unwrap().state,
            TaskState::Succeeded
        );

        let ids = |list: Vec<TaskInfo>| list.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(v.tasks(&bob, TaskFilter::default()).await.unwrap()),
            [theirs.id.as_str()]
        );
        assert_eq!(
            ids(v.tasks(&alice(), TaskFilter::default()).await.unwrap()),
            [t.id.as_str()]
        );
        // An admin (a reader that sees everything) sees, lists and downloads all.
        let admin = Reader::all("sa:admin");
        assert_eq!(
            ids(v.tasks(&admin, TaskFilter::default()).await.unwrap()),
            [theirs.id.as_str(), t.id.as_str()]
        );
        assert!(v.task_result(&admin, &t.id).await.is_ok());
        let by_kind = v
            .tasks(
                &admin,
                TaskFilter {
                    kind: Some("count_resumable".into()),
                    ..TaskFilter::default()
                },
            )
            .await
            .unwrap();
        assert!(by_kind.is_empty());
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_fails_interrupted_tasks_resumes_resumable_ones_and_keeps_results() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let v = open(dir.path(), &gates, 3).await;
        let kept = create(&v, "count", 1, "kept").await;
        gate(&gates, "kept").allow(1);
        wait_until(&v, &kept.id, "success", |i| i.state == TaskState::Succeeded).await;

        let plain = create(&v, "count", 5, "plain").await;
        let resumable = create(&v, "count_resumable", 5, "res").await;
        gate(&gates, "plain").allow(2);
        gate(&gates, "res").allow(2);
        wait_until(&v, &plain.id, "two steps", |i| i.done == 2).await;
        wait_until(&v, &resumable.id, "two steps", |i| i.done == 2).await;
        v.shutdown().await.unwrap();
        assert!(gate(&gates, "plain").saw_cancel.load(Ordering::SeqCst));
        drop(v);

        let v = open(dir.path(), &gates, 3).await;
        // Not resumable: failed, as interrupted, its output gone.
        let p = v.task(&alice(), &plain.id).await.unwrap();
        assert_eq!(p.state, TaskState::Failed);
        assert_eq!(p.error.as_deref(), Some("interrupted by a restart"));
        assert!(
            !dir.path()
                .join(format!("data/tasks/{}.partial", plain.id))
                .exists()
        );
        assert_eq!(
            ops(&task_events(&v, &plain.id).await),
            ["task.pending", "task.running", "task.failed"]
        );
        // Resumable: continues from its checkpoint (step 2) to the end.
        gate(&gates, "res").allow(5);
        let r = wait_until(&v, &resumable.id, "success", |i| i.state.is_final()).await;
        assert_eq!(r.state, TaskState::Succeeded, "{r:?}");
        assert_eq!(
            gate(&gates, "res").resumed_from.lock().unwrap().as_deref(),
            Some("2")
        );
        let (_, mut file) = v.task_result(&alice(), &resumable.id).await.unwrap();
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut file, &mut text)
            .await
            .unwrap();
        assert_eq!(text, "step 0\nstep 1\nstep 2\nstep 3\nstep 4\n");
        assert_eq!(
            ops(&task_events(&v, &resumable.id).await),
            [
                "task.pending",
                "task.running",
                "task.pending",
                "task.running",
                "task.succeeded"
            ]
        );
        // The earlier result is still there.
        let (info, _) = v.task_result(&alice(), &kept.id).await.unwrap();
        assert_eq!(info.state, TaskState::Succeeded);
        v.shutdown().await.unwrap();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_past_the_retention_are_removed_and_the_task_stays() {
        let dir = tempfile::tempdir().unwrap();
        let gates = Gates::default();
        let mut c = config(dir.path(), &gates, 2);
        c.tasks.retention = Duration::ZERO;
        let v = Vault::open(c.clone()).await.unwrap();
        let t = create(&v, "count", 1, "r").await;
        gate(&gates, "r").allow(1);
        let done = wait_until(&v, &t.id, "success", |i| i.state == TaskState::Succeeded).await;
        let path = dir
            .path()
            .join("data/tasks")
            .join(format!("{}.result", t.id));
        v.shutdown().await.unwrap();
        drop(v);
        // The sweep removes results that ended before now minus the
        // retention: wait for the clock to pass the task's end.
        let finished = done.finished_ms.unwrap();
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            <= finished
        {
            assert!(std::time::Instant::now() < deadline);
            std::thread::yield_now();
        }
        let v = Vault::open(c).await.unwrap();
        assert!(!path.exists(), "the result file was removed");
        let info = v.task(&alice(), &t.id).await.unwrap();
        assert_eq!(info.state, TaskState::Succeeded);
        let result = info.result.unwrap();
        assert!(!result.available);
        assert_eq!(result.size, 7);
        assert!(matches!(
            v.task_result(&alice(), &t.id).await,
            Err(VaultError::NotFound(_))
        ));
        v.shutdown().await.unwrap();
    }
}
