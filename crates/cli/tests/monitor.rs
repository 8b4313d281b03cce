//! `evault monitor` through the binary: it follows a vault through growth
//! and a restart, and it fails loudly (exit 1, evidence saved, state kept)
//! on a fork, a rollback or a bad tile of a log the test writes itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Server;
use evault_merkle::tiles::{TILE_WIDTH, TileBuilder, encode_entry_bundle, entries_path};
use evault_merkle::{Hash, leaf_hash};
use evault_note::{Checkpoint, Ed25519Signer, generate_ed25519, sign};
use serde_json::Value;

fn evault(args: &[&str]) -> Output {
    evault_as(args, Some(common::token()))
}

/// Runs the binary with `token` as EVAULT_TOKEN, or with none.
fn evault_as(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evault"));
    cmd.args(args).env_remove("EVAULT_MONITOR_STATE");
    match token {
        Some(t) => cmd.env("EVAULT_TOKEN", t),
        None => cmd.env_remove("EVAULT_TOKEN"),
    };
    cmd.output().expect("run evault")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The one JSON report line of a single run.
fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let v = serde_json::from_str(lines.next().unwrap_or("")).unwrap_or(Value::Null);
    assert!(lines.next().is_none(), "{}", show(out));
    v
}

/// Size of the evidence log's latest `/tlog/checkpoint`.
fn checkpoint_size(url: &str) -> u64 {
    size_at(&format!("{url}/tlog/checkpoint"))
}

/// Tree size of the checkpoint at `url` (0 while there is none).
fn size_at(url: &str) -> u64 {
    let (status, text) = common::get_text(&common::agent(), url);
    if status != 200 {
        return 0;
    }
    text.lines()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls until the vault has signed a checkpoint of exactly `size`.
fn wait_for_checkpoint(url: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = checkpoint_size(url);
        if got == size {
            return;
        }
        assert!(got < size, "checkpoint size {got}, expected {size}");
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Puts `n` small files (named after `tag`) in one `evault put`.
fn put(url: &str, dir: &Path, tag: &str, n: usize) {
    let files: Vec<PathBuf> = (0..n)
        .map(|i| {
            let f = dir.join(format!("{tag}-{i}.txt"));
            std::fs::write(&f, format!("{tag} record {i}\n")).unwrap();
            f
        })
        .collect();
    let mut args = vec!["put", "--server", url];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = evault(&args);
    assert!(out.status.success(), "{}", show(&out));
}

fn trusted_size(state: &Path, log: &str) -> u64 {
    let v: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == log)
        .and_then(|l| l["trusted"]["size"].as_u64())
        .unwrap()
}

#[test]
fn follows_a_vault_through_growth_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let heads = tmp.path().join("heads");
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let extra = ["--state-dir", heads.to_str().unwrap()];
    let server = Server::start(&data, &extra);
    let (_, info) = common::get_json(&common::agent(), &format!("{}/api/v1/log", server.url));
    let key = info["verifier_key"].as_str().unwrap().to_string();
    let state = tmp.path().join("monitor.json");
    let state_arg = state.to_str().unwrap();

    put(&server.url, &files, "first", 3);
    wait_for_checkpoint(&server.url, 3);
    let base = [
        "monitor",
        "--key",
        &key,
        "--no-audit",
        "--state",
        state_arg,
        "--entries",
    ];
    let mut args = base.to_vec();
    args.extend(["--server", &server.url, "--json"]);
    let out = evault(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = report(&out);
    assert_eq!(r["logs"][0]["name"], "evidence");
    assert_eq!(r["logs"][0]["status"], "verified");
    assert_eq!(r["logs"][0]["trusted_after"]["size"], 3);
    assert_eq!(r["logs"][0]["entries_checked"], 3);
    assert_eq!(trusted_size(&state, "evidence"), 3);

    // Past a full tile, then a restart (on another port).
    put(&server.url, &files, "second", 260);
    wait_for_checkpoint(&server.url, 263);
    assert!(server.terminate(Duration::from_secs(60)));
    let server = Server::start(&data, &extra);
    put(&server.url, &files, "third", 2);
    wait_for_checkpoint(&server.url, 265);

    let mut args = base.to_vec();
    args.extend(["--server", &server.url]);
    let out = evault(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("evidence: verified size 265") && text.contains("from size 3"),
        "{}",
        show(&out)
    );
    assert!(text.contains("265 entries checked"), "{}", show(&out));
    assert_eq!(trusted_size(&state, "evidence"), 265);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["logs"][0]["prefix"], format!("{}/tlog/", server.url));
    assert_eq!(saved["logs"][0]["kind"], "evault-evidence");

    // The state alone names the log now; two rounds, nothing new.
    let out = evault(&[
        "monitor",
        "--state",
        state_arg,
        "--rounds",
        "2",
        "--interval",
        "0s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let rounds: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rounds.len(), 2, "{}", show(&out));
    assert!(rounds.iter().all(|r| r["logs"][0]["status"] == "unchanged"));

    // A vault has two logs: the audit log's key is needed (or --no-audit).
    let out = evault(&[
        "monitor",
        "--server",
        &server.url,
        "--key",
        &key,
        "--state",
        state_arg,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--audit-key"),
        "{}",
        show(&out)
    );
}

/// Polls until the audit log has a checkpoint of at least `size`; returns
/// its size (the log keeps growing: each call is audited).
fn wait_for_audit_checkpoint(url: &str, size: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = size_at(&format!("{url}/tlog-audit/checkpoint"));
        if got >= size {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no audit checkpoint of size {size}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn follows_both_logs_of_a_vault_and_audit_entries_need_the_auditor_role() {
    use evault_auth::Role;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let heads = tmp.path().join("heads");
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let server = Server::start(&data, &["--state-dir", heads.to_str().unwrap()]);
    let agent = common::agent();
    let (_, info) = common::get_json(&agent, &format!("{}/api/v1/log", server.url));
    let key = info["verifier_key"].as_str().unwrap().to_string();
    let (_, info) = common::get_json(&agent, &format!("{}/api/v1/audit/log", server.url));
    let audit_key = info["verifier_key"].as_str().unwrap().to_string();
    assert_ne!(key, audit_key);
    let state = tmp.path().join("monitor.json");
    let state_arg = state.to_str().unwrap();

    put(&server.url, &files, "first", 3);
    wait_for_checkpoint(&server.url, 3);
    // The puts and reads above are audited: at least the puts' events.
    wait_for_audit_checkpoint(&server.url, 3);
    let args = [
        "monitor",
        "--server",
        &server.url,
        "--key",
        &key,
        "--audit-key",
        &audit_key,
        "--state",
        state_arg,
        "--entries",
        "--json",
    ];

    // An auditor re-hashes every entry of both logs; each audit entry must
    // be a canonical audit event.
    let auditor = common::token_with(&[Role::Auditor]);
    let out = evault_as(&args, Some(&auditor));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = report(&out);
    let logs = r["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{}", show(&out));
    assert_eq!(logs[0]["name"], "evidence");
    assert_eq!(logs[0]["status"], "verified");
    assert_eq!(logs[0]["entries_checked"], 3);
    assert_eq!(logs[1]["name"], "audit");
    assert_eq!(logs[1]["status"], "verified", "{}", show(&out));
    let audit_size = logs[1]["trusted_after"]["size"].as_u64().unwrap();
    assert!(audit_size >= 3, "{}", show(&out));
    assert_eq!(logs[1]["entries_checked"], audit_size, "{}", show(&out));
    assert_eq!(trusted_size(&state, "audit"), audit_size);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        saved["logs"][1]["prefix"],
        format!("{}/tlog-audit/", server.url)
    );
    assert_eq!(saved["logs"][1]["kind"], "evault-audit");

    // Both logs grow. An ingester may read the audit log's checkpoints and
    // tiles but not its entries (they name principals and operations): the
    // audit log is refused (exit 3) and its trusted state stays where it
    // was, while the evidence log still advances.
    put(&server.url, &files, "second", 2);
    wait_for_checkpoint(&server.url, 5);
    wait_for_audit_checkpoint(&server.url, audit_size + 1);
    let ingester = common::token_with(&[Role::Ingester]);
    let out = evault_as(&args, Some(&ingester));
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let r = report(&out);
    assert_eq!(r["logs"][0]["status"], "verified", "{}", show(&out));
    assert_eq!(r["logs"][0]["trusted_after"]["size"], 5);
    assert_eq!(r["logs"][1]["status"], "refused", "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("403"), "{}", show(&out));
    assert_eq!(trusted_size(&state, "evidence"), 5);
    assert_eq!(trusted_size(&state, "audit"), audit_size);

    // Without --entries no token is needed: checkpoints and tiles are
    // public, and every tile read is authenticated against the signed root.
    let out = evault_as(&["monitor", "--state", state_arg, "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = report(&out);
    assert_eq!(r["logs"][1]["status"], "verified", "{}", show(&out));
    let grown = r["logs"][1]["trusted_after"]["size"].as_u64().unwrap();
    assert!(grown > audit_size, "{}", show(&out));
    assert_eq!(trusted_size(&state, "audit"), grown);
}

/// A tlog-tiles log in a directory, not evault's: opaque entries, its own
/// key and origin.
struct DirLog {
    dir: PathBuf,
    signer: Ed25519Signer,
    vkey: String,
    builder: TileBuilder,
    entries: Vec<Vec<u8>>,
}

const ORIGIN: &str = "monitor.test/dir-log";

impl DirLog {
    fn new(dir: &Path) -> DirLog {
        let (skey, vkey) = generate_ed25519(ORIGIN).unwrap();
        DirLog {
            dir: dir.to_path_buf(),
            signer: Ed25519Signer::from_signer_key(skey.expose_secret()).unwrap(),
            vkey: vkey.as_str().to_string(),
            builder: TileBuilder::new(),
            entries: Vec::new(),
        }
    }

    fn write(&self, path: &str, data: &[u8]) {
        let f = self.dir.join(path);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    }

    fn sign(&self, size: u64, root: Hash) -> String {
        let text = Checkpoint::new(ORIGIN, size, root).to_text();
        sign(&text, &[&self.signer]).unwrap()
    }

    /// Appends `n` binary entries; returns the new signed checkpoint.
    fn grow(&mut self, n: usize) -> String {
        let old = self.builder.size();
        let new: Vec<Vec<u8>> = (0..n)
            .map(|i| vec![(old as usize + i) as u8; i % 5])
            .collect();
        let hashes: Vec<Hash> = new.iter().map(|e| leaf_hash(e)).collect();
        for (tile, data) in self.builder.append(&hashes) {
            self.write(&tile.path(), &data);
        }
        self.entries.extend(new);
        let size = self.builder.size();
        let w = TILE_WIDTH as u64;
        for index in old / w..size.div_ceil(w) {
            let (b, e) = ((index * w) as usize, ((index + 1) * w).min(size) as usize);
            let bundle = encode_entry_bundle(&self.entries[b..e]).unwrap();
            self.write(&entries_path(index, (e - b) as u16), &bundle);
        }
        let note = self.sign(size, self.builder.root());
        self.write("checkpoint", note.as_bytes());
        note
    }
}

/// Runs the monitor over the directory log; returns the output.
fn monitor_dir(log: &DirLog, state: &Path) -> Output {
    evault(&[
        "monitor",
        "--log",
        log.dir.to_str().unwrap(),
        "--key",
        &log.vkey,
        "--state",
        state.to_str().unwrap(),
        "--entries",
    ])
}

/// Asserts a loud failure of `kind`: exit 1, stderr says so, the evidence
/// files printed exist and hold both checkpoints, the state is unchanged.
fn assert_detected(out: &Output, kind: &str, state: &Path, before: &[u8], notes: [&str; 2]) {
    assert_eq!(out.status.code(), Some(1), "{}", show(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(&format!("VERIFICATION FAILED ({kind})")),
        "{}",
        show(out)
    );
    assert!(
        stderr.contains(kind) && stderr.contains(ORIGIN),
        "{}",
        show(out)
    );
    let files: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("evidence: "))
        .collect();
    assert_eq!(files.len(), 3, "{}", show(out));
    for note in notes {
        assert!(
            files
                .iter()
                .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t == note)),
            "no evidence file holds {note:?}: {files:?}"
        );
    }
    assert_eq!(std::fs::read(state).unwrap(), before, "the state advanced");
}

#[test]
fn fork_rollback_and_bad_tile_of_a_foreign_log_fail_loudly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = DirLog::new(&tmp.path().join("log"));
    let state = tmp.path().join("mon.json");
    let at_100 = log.grow(100);
    let out = monitor_dir(&log, &state);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let before = std::fs::read(&state).unwrap();

    // Forked: same key and size, another root.
    let forked = log.sign(100, [9; 32]);
    log.write("checkpoint", forked.as_bytes());
    let out = monitor_dir(&log, &state);
    assert_detected(&out, "fork", &state, &before, [&at_100, &forked]);

    // A flipped byte in a full tile of new leaves.
    let at_600 = log.grow(500);
    let tile = log.dir.join("tile/0/001");
    let mut data = std::fs::read(&tile).unwrap();
    data[100] ^= 0x80;
    std::fs::write(&tile, &data).unwrap();
    let out = monitor_dir(&log, &state);
    assert_detected(&out, "bad-tile", &state, &before, [&at_100, &at_600]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tile/0/001"),
        "{}",
        show(&out)
    );
    data[100] ^= 0x80;
    std::fs::write(&tile, &data).unwrap();
    let out = monitor_dir(&log, &state);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let before = std::fs::read(&state).unwrap();

    // Rolled back to the older checkpoint.
    log.write("checkpoint", at_100.as_bytes());
    let out = monitor_dir(&log, &state);
    assert_detected(&out, "rollback", &state, &before, [&at_600, &at_100]);
}

#[test]
fn usage_and_unreachable_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("none.json");
    let state = state.to_str().unwrap();
    // Nothing to follow.
    let out = evault(&["monitor", "--state", state]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    // A bad key.
    let out = evault(&[
        "monitor",
        "--log",
        "/nonexistent",
        "--key",
        "nope",
        "--state",
        state,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    // Nobody listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = DirLog::new(&tmp.path().join("unused"));
    let out = evault(&[
        "monitor",
        "--log",
        &format!("http://127.0.0.1:{port}/log/"),
        "--key",
        &log.vkey,
        "--state",
        state,
        "--timeout",
        "10s",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(!Path::new(state).exists());
}
