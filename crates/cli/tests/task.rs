//! `evault task …` with stdout piped, against an in-process server whose
//! vault runs a task kind defined here (the product registers none yet):
//! start, watch (exit 0 on success, 1 on failure or cancel; no progress
//! bar into a pipe), ls, show, cancel and result.

use std::process::{Command, Stdio};
use std::time::Duration;

use evault_server::{Authentication, ServerOptions};
use evault_vault::{TaskContext, TaskKind, TaskOutput, Vault, VaultConfig};
use serde_json::Value;

/// Counts to `n`, or with `{"wait": true}` waits until cancelled (at most
/// 30 s, so a failing test cannot hang), or with `{"fail": true}` fails.
struct Count;

impl TaskKind for Count {
    fn name(&self) -> &'static str {
        "count"
    }
    fn roles(&self) -> &'static [&'static str] {
        &["auditor"]
    }
    fn validate(&self, _: &Value) -> Result<(), String> {
        Ok(())
    }
    fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, String> {
        use std::io::Write as _;
        if ctx.params()["fail"].as_bool() == Some(true) {
            return Err("asked to fail".into());
        }
        if ctx.params()["wait"].as_bool() == Some(true) {
            let give_up = std::time::Instant::now() + Duration::from_secs(30);
            while !ctx.cancelled() && std::time::Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Err("stopped".into());
        }
        let n = ctx.params()["n"].as_u64().unwrap_or(0);
        let mut out = ctx.create_output().map_err(|e| e.to_string())?;
        for i in 0..n {
            writeln!(out, "line {i}").map_err(|e| e.to_string())?;
            ctx.progress(i + 1, Some(n));
        }
        Ok(TaskOutput::default())
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn evault(url: &str, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .args(["--server", url])
        .env_remove("EVAULT_SERVER")
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run evault");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn task_commands_against_a_vault_with_a_kind() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = VaultConfig::new(dir.path().join("data"));
    config.state_dir = Some(dir.path().join("state"));
    config.origin = Some("test.example/cli-tasks".into());
    // Only the test's kind, stepped by the test.
    config.tasks.kinds.clear();
    config.tasks.register(Count);
    let vault = rt.block_on(Vault::open(config)).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // No tokens: every caller is `anonymous` and may do everything.
    let server = rt.spawn(evault_server::serve(
        vault.clone(),
        ServerOptions::new(Authentication::InsecureDisabled),
        listener,
        None,
        async {
            let _ = stopped.await;
        },
    ));

    let started = evault(&url, &["task", "start", "count", "--params", r#"{"n":3}"#]);
    assert_eq!(started.code, 0, "{started:?}");
    let id = started.stdout.trim().to_string();
    assert_eq!(id.len(), 36, "{started:?}");

    // Watch: the final state on stdout, no progress bar into a pipe.
    let w = evault(&url, &["task", "watch", &id]);
    assert_eq!(w.code, 0, "{w:?}");
    assert_eq!(w.stdout, format!("{id}  succeeded\n"));
    assert!(w.stderr.is_empty(), "{w:?}");
    let w = evault(&url, &["task", "watch", &id, "--json"]);
    assert_eq!(w.code, 0, "{w:?}");
    let t: Value = serde_json::from_str(&w.stdout).unwrap();
    assert_eq!(t["progress"], serde_json::json!({"done": 3, "total": 3}));

    let ls = evault(&url, &["task", "ls"]);
    assert_eq!(ls.code, 0, "{ls:?}");
    assert!(
        ls.stdout
            .starts_with(&format!("{id}  count  succeeded  3/3  ")),
        "{ls:?}"
    );
    let ls = evault(&url, &["task", "ls", "--state", "failed"]);
    assert_eq!((ls.code, ls.stdout.as_str()), (0, ""), "{ls:?}");

    let show = evault(&url, &["task", "show", &id]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains("state      succeeded"), "{show:?}");
    assert!(
        show.stdout.contains("result     21 bytes, sha256 "),
        "{show:?}"
    );

    let target = dir.path().join("result.txt");
    let r = evault(
        &url,
        &["task", "result", &id, "--out", target.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "line 0\nline 1\nline 2\n"
    );

    // Cancel a running task: `cancel` prints it cancelled, `watch` exits 1.
    let waiting = evault(
        &url,
        &["task", "start", "count", "--params", r#"{"wait":true}"#],
    );
    let wid = waiting.stdout.trim().to_string();
    let c = evault(&url, &["task", "cancel", &wid]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.stdout.contains("state      cancelled"), "{c:?}");
    let w = evault(&url, &["task", "watch", &wid]);
    assert_eq!(w.code, 1, "{w:?}");
    assert_eq!(w.stdout, format!("{wid}  cancelled\n"));
    assert!(
        w.stderr.contains(&format!("task {wid} was cancelled")),
        "{w:?}"
    );
    let again = evault(&url, &["task", "cancel", &wid]);
    assert_eq!(again.code, 3, "{again:?}");
    assert!(again.stderr.contains("409"), "{again:?}");
    let r = evault(
        &url,
        &["task", "result", &wid, "--out", target.to_str().unwrap()],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("only a succeeded task has a result"),
        "{r:?}"
    );

    // A failing task: watch exits 1 naming the error.
    let failing = evault(
        &url,
        &["task", "start", "count", "--params", r#"{"fail":true}"#],
    );
    let fid = failing.stdout.trim().to_string();
    let w = evault(&url, &["task", "watch", &fid]);
    assert_eq!(w.code, 1, "{w:?}");
    assert_eq!(w.stdout, format!("{fid}  failed\n"));
    assert!(w.stderr.contains("asked to fail"), "{w:?}");

    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
    rt.block_on(vault.shutdown()).unwrap();
}
