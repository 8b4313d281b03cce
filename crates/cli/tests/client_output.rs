//! The client commands as CI runs them: stdout piped (never a terminal),
//! against one real `evault serve`. Each check looks at stdout, stderr and
//! the exit code, for success and for each failure users met (see
//! crates/cli/README.md, "Output and exit codes").

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// What one run of the binary left behind.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Exit code `code`, and every `needle` in stderr.
    fn fails(&self, code: i32, needles: &[&str]) -> &Self {
        assert_eq!(self.code, code, "exit code: {self:?}");
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks {n:?}: {self:?}");
        }
        self
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
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

fn evault_with(args: &[&str], token: Option<&str>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evault"));
    cmd.args(args)
        .env_remove("EVAULT_SERVER")
        .env_remove("EVAULT_CONFIG")
        .stdin(Stdio::null());
    match token {
        Some(t) => cmd.env("EVAULT_TOKEN", t),
        None => cmd.env_remove("EVAULT_TOKEN"),
    };
    let out = cmd.output().expect("run evault");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Context of one suite run: the server and a work directory.
struct Suite {
    server: Server,
    work: tempfile::TempDir,
}

impl Suite {
    /// `evault ARGS --server URL` with the test token.
    fn run(&self, args: &[&str]) -> Out {
        let mut all = args.to_vec();
        all.extend(["--server", self.server.url.as_str()]);
        evault_with(&all, Some(common::token()))
    }

    fn file(&self, name: &str, content: &[u8]) -> String {
        let p = self.work.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.work.path().join(name).to_str().unwrap().to_string()
    }

    fn log_info(&self, log: &str) -> Value {
        common::get_json(&common::agent(), &format!("{}{log}", self.server.url)).1
    }

    /// Polls until the log's latest signed checkpoint has at least `size`
    /// leaves.
    fn wait_for_checkpoint(&self, log: &str, size: u64) {
        poll(&format!("a checkpoint of {log} of size {size}"), || {
            self.log_info(log)["checkpoint_size"].as_u64().unwrap() >= size
        });
    }

    /// Audit events whose resource mentions `needle`, once `want` of them
    /// are committed (reads are audited at the next group commit).
    fn audit_events_about(&self, needle: &str, want: usize) -> Vec<Value> {
        let mut found = Vec::new();
        poll(&format!("{want} audit events about {needle}"), || {
            let out = self.run(&["audit", "tail", "-n", "1000", "--json"]);
            out.ok();
            found = out
                .lines()
                .iter()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|e| e["resource"].as_str().unwrap().contains(needle))
                .collect();
            found.len() >= want
        });
        found
    }
}

/// Polls `cond` (at most 30 s): no fixed sleeps.
fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_client_command_with_stdout_piped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--max-upload", "100000"],
        common::Stderr::File(log.clone()),
        "info",
    );
    let s = Suite {
        server,
        work: tempfile::tempdir().unwrap(),
    };
    serve_log_has_no_colours(&log);
    put_prints_results_on_stdout(&s);
    put_errors_blame_the_right_thing(&s);
    server_address_errors(&s);
    json_failures_are_on_stdout(&s);
    prove_and_verify_both_formats(&s);
    unknown_ids_fail_at_once(&s);
    checkpoint_and_consistency(&s);
    analytics_summary(&s);
    audit_tail_counts_and_filters(&s);
    audit_tail_follow_hides_its_own_polls(&s);
    task_commands_refuse_unknown_kinds_and_ids(&s);
}

/// How the task commands fail against the product's serve (its kinds
/// themselves run end to end in tests/task_kinds.rs).
fn task_commands_refuse_unknown_kinds_and_ids(s: &Suite) {
    let out = s.run(&["task", "start", "nope"]);
    out.fails(
        3,
        &[
            "400",
            "unknown task kind \"nope\"; known kinds: backfill_releases, export_bundle, fsck",
            "request id",
        ],
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    let out = s.run(&["task", "start", "nope", "--json"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.json()["status"], 400);
    s.run(&["task", "start", "x", "--params", "{bad"])
        .fails(2, &["--params is not JSON"]);

    let out = s.run(&["task", "ls"]);
    out.ok();
    assert!(out.stdout.is_empty(), "{out:?}");
    let out = s.run(&["task", "ls", "--json"]);
    out.ok();
    assert_eq!(out.json()["items"], serde_json::json!([]));
    s.run(&["task", "ls", "--state", "done"]).fails(
        3,
        &["expected pending, running, succeeded, failed or cancelled"],
    );

    let id = "0193aaaa-0000-7000-8000-000000000000";
    for cmd in [
        vec!["task", "show", id],
        vec!["task", "cancel", id],
        vec!["task", "watch", id],
    ] {
        let out = s.run(&cmd);
        out.fails(3, &["404", &format!("task {id} not found")]);
        assert!(out.stdout.is_empty(), "{cmd:?}: {out:?}");
    }
    s.run(&["task", "show", id]).fails(
        3,
        &["hint: check the id; `evault task ls` lists your tasks"],
    );
    let target = s.path("result.bin");
    s.run(&["task", "result", id, "--out", &target])
        .fails(3, &["404"]);
    assert!(!Path::new(&target).exists());
    assert!(!Path::new(&target).with_extension("partial").exists());
    s.run(&["task"]).fails(2, &["Usage"]);
}

/// A redirected log has no ANSI colour codes.
fn serve_log_has_no_colours(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("INFO"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in the log: {text:?}"
    );
}

fn put_prints_results_on_stdout(s: &Suite) {
    let a = s.file("a.json", br#"{"ok": true}"#);
    let b = s.file("b.txt", b"all green");
    let out = s.run(&["put", &a, &b, "--label", "run=1"]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    for (line, file) in lines.iter().zip([&a, &b]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[0].len(), 36, "an id: {line}");
        assert_eq!(fields[1], "leaf");
        assert!(fields[2].parse::<u64>().is_ok(), "{line}");
        assert_eq!(fields[3], file.as_str());
    }
    // No progress drawn into a pipe.
    assert_eq!(out.stderr, "", "{out:?}");
    // get and ls print results too.
    let id = lines[0].split_whitespace().next().unwrap();
    let got = s.run(&["get", id]);
    got.ok();
    assert!(got.stdout.contains("label         run=1"), "{got:?}");
    let listed = s.run(&["ls", "--label", "run=1", "--json"]);
    assert_eq!(listed.ok().json()["items"].as_array().unwrap().len(), 2);
}

fn put_errors_blame_the_right_thing(s: &Suite) {
    let a = s.file("c.json", br#"{"ok": "again"}"#);
    let missing = s.path("missing.json");
    // One missing file: the other's result is still on stdout.
    let out = s.run(&["put", &a, &missing]);
    out.fails(2, &["1 of 2 files failed", "No such file or directory"]);
    assert_eq!(out.lines().len(), 1, "{out:?}");
    assert!(out.stdout.contains("c.json"), "{out:?}");
    assert_eq!(
        out.stderr.matches("missing.json").count(),
        1,
        "the path once: {out:?}"
    );
    // A directory is the user's mistake, not the network's.
    let out = s.run(&["put", s.work.path().to_str().unwrap()]);
    out.fails(2, &["is a directory", "hint: give the files in it"]);
    assert!(!out.stderr.contains("cannot reach"), "{out:?}");
    // Over the upload limit: the server's 413 and its detail, whatever the
    // size (a sparse 100 MB file costs no disk).
    let big = s.path("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let out = s.run(&["put", &big]);
    out.fails(
        3,
        &[
            "413 Payload Too Large",
            "payload exceeds the limit of 100000 bytes",
            "--max-upload",
        ],
    );
    assert!(
        !out.stderr.contains("cannot reach") && !out.stderr.contains("Broken pipe"),
        "{out:?}"
    );
    // No token: the 401, and what to do; also for a file larger than the
    // start of the body the vault reads before it refuses.
    let out = evault_with(&["put", &a, "--server", &s.server.url], None);
    out.fails(3, &["401", "hint: give a valid token with --token"]);
    let out = evault_with(&["put", &big, "--server", &s.server.url], None);
    out.fails(3, &["401", "hint: give a valid token with --token"]);
    assert!(!out.stderr.contains("Broken pipe"), "{out:?}");
    // --idempotency-key with several files is a usage error.
    s.run(&["put", &a, &a, "--idempotency-key", "k"])
        .fails(2, &["single file"]);
    // So is --artifact-digest: one artifact's digest for several bundles.
    let digest = format!("sha256:{}", "0".repeat(64));
    s.run(&["put", &a, &a, "--artifact-digest", &digest])
        .fails(2, &["--artifact-digest applies to a single file"]);
}

fn server_address_errors(s: &Suite) {
    let a = s.file("d.txt", b"d");
    let hostport = s.server.url.strip_prefix("http://").unwrap();
    let out = evault_with(&["put", &a, "--server", hostport], Some(common::token()));
    out.fails(
        2,
        &["has no http:// or https://", &format!("http://{hostport}")],
    );
    assert_eq!(out.stdout, "");
    // The gRPC port is named as such.
    let grpc = format!("http://{}", s.server.grpc.as_deref().unwrap());
    for args in [
        vec!["get", "x"],
        vec!["checkpoint"],
        vec!["put", a.as_str()],
    ] {
        let mut args = args;
        args.extend(["--server", grpc.as_str()]);
        evault_with(&args, Some(common::token())).fails(4, &["gRPC port", "REST address"]);
    }
    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    evault_with(&["ls", "--server", &url], Some(common::token()))
        .fails(4, &["cannot reach", "is `evault serve` running"]);
}

fn json_failures_are_on_stdout(s: &Suite) {
    let out = s.run(&["get", "01936f0e-8f3a-7cc2-9b1e-000000000000", "--json"]);
    out.fails(3, &["404", "hint: check the id"]);
    let v = out.json();
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["status"], 404);
    assert!(v["detail"].as_str().unwrap().contains("not found"), "{v}");
    // put --json: the results, failed files included.
    let a = s.file("e.txt", b"e");
    let out = s.run(&["put", &a, &s.path("nope.txt"), "--json"]);
    out.fails(2, &[]);
    let v = out.json();
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["results"][0]["result"]["record"]["size"], 1);
    assert_eq!(v["results"][1]["exit_code"], 2);
    // Usage errors too.
    let out = s.run(&["ls", "--limit", "many", "--json"]);
    out.fails(2, &[]);
    assert_eq!(out.json()["exit_code"], 2);
}

/// A record's key, put and proven; the log's and the audit log's keys.
fn keys(s: &Suite) -> (String, String) {
    let key = |p: &str| s.log_info(p)["verifier_key"].as_str().unwrap().to_string();
    (key("/api/v1/log"), key("/api/v1/audit/log"))
}

fn prove_and_verify_both_formats(s: &Suite) {
    let (key, audit_key) = keys(s);
    let f = s.file("proven.txt", b"proven");
    let id = s
        .run(&["put", &f])
        .ok()
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Proven at once after put: prove waits for the covering checkpoint.
    let bundle = s.path("proof.json");
    let tlog = s.path("proof.tlog");
    s.run(&["prove", &id, "--out", &bundle]).ok();
    s.run(&["prove", &id, "--tlog-proof", "--out", &tlog]).ok();
    let record = s.path("record.json");
    std::fs::write(
        &record,
        s.run(&["get", &id, "--json"]).ok().stdout.as_bytes(),
    )
    .unwrap();

    let out = evault_with(&["verify", "--proof", &bundle, "--key", &key], None);
    assert!(
        out.ok()
            .stdout
            .starts_with(&format!("verified: record {id}")),
        "{out:?}"
    );
    let out = evault_with(
        &[
            "verify", "--proof", &tlog, "--record", &record, "--key", &key, "--json",
        ],
        None,
    );
    let v = out.ok().json();
    assert_eq!(v["verified"], true);
    assert_eq!(v["format"], "tlog-proof");
    assert_eq!(v["record_id"], id.as_str());
    // A tlog-proof without its record: what to pass.
    evault_with(&["verify", "--proof", &tlog, "--key", &key], None)
        .fails(2, &["does not carry the record", "--record"]);
    // Another record with the proof: not verified.
    let other = s.file("other.json", br#"{"id":"x"}"#);
    evault_with(
        &[
            "verify", "--proof", &tlog, "--record", &other, "--key", &key,
        ],
        None,
    )
    .fails(1, &["NOT VERIFIED"]);

    // A record with an unknown member is refused, also as JSON on stdout.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    forged["record"]["approved_by"] = "mallory".into();
    let forged_path = s.file("forged.json", forged.to_string().as_bytes());
    let out = evault_with(
        &["verify", "--proof", &forged_path, "--key", &key, "--json"],
        None,
    );
    out.fails(1, &["NOT VERIFIED", "approved_by"]);
    let v = out.json();
    assert_eq!(v["verified"], false);
    assert_eq!(v["exit_code"], 1);

    // The wrong key: both keys named.
    // name+hash of a verifier key (its base64 may hold '+' too).
    let name_hash = |k: &str| k.splitn(3, '+').take(2).collect::<Vec<_>>().join("+");
    let (signer, given) = (name_hash(&key), name_hash(&audit_key));
    evault_with(&["verify", "--proof", &bundle, "--key", &audit_key], None).fails(
        1,
        &[
            "NOT VERIFIED",
            &format!("signed by {signer}"),
            &format!("--key is {given}"),
        ],
    );
    // Not a proof at all.
    evault_with(&["verify", "--proof", &f, "--key", &key], None)
        .fails(2, &["neither a JSON proof bundle nor a C2SP tlog-proof"]);
    evault_with(&["verify", "--proof", &bundle, "--key", "nonsense"], None)
        .fails(2, &["--key: not a log's verifier key"]);

    // An audit event's proof, verified with the audit key.
    let event = s.audit_events_about(&id, 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event_proof = s.path("event.json");
    s.run(&["audit", "prove", &event, "--out", &event_proof])
        .ok();
    let out = evault_with(
        &["verify", "--proof", &event_proof, "--key", &audit_key],
        None,
    );
    assert!(
        out.ok().stdout.starts_with("verified: audit event"),
        "{out:?}"
    );
}

/// `prove` of an id the vault does not know: the 404 at once, two
/// requests (two audit events), not seconds of polling.
fn unknown_ids_fail_at_once(s: &Suite) {
    let unknown = "01936f0e-8f3a-7cc2-9b1e-00000000abcd";
    let started = Instant::now();
    s.run(&["prove", unknown])
        .fails(3, &["404", "not found", "evault ls"]);
    s.run(&["prove", unknown, "--json"]).fails(3, &[]);
    let events = s.audit_events_about(unknown, 4);
    assert_eq!(events.len(), 4, "two requests per prove: {events:#?}");
    let unknown_event = "01936f0e-8f3a-7cc2-9b1e-00000000abce";
    s.run(&["audit", "prove", unknown_event])
        .fails(3, &["404", "evault audit tail"]);
    assert_eq!(s.audit_events_about(unknown_event, 2).len(), 2);
    // Three failed proves, far less than one poll period each used to take;
    // a bound with room for a loaded machine, not a timing claim.
    assert!(started.elapsed() < Duration::from_secs(30));
}

fn checkpoint_and_consistency(s: &Suite) {
    let (key, audit_key) = keys(s);
    let old = s.path("old.cp");
    let out = s.run(&["checkpoint", "--out", &old]);
    assert_eq!(out.ok().stdout, "", "the note went to the file");
    assert!(out.stderr.contains("wrote checkpoint to"), "{out:?}");
    let note = std::fs::read_to_string(&old).unwrap();
    assert!(note.starts_with("test.example/crash\n"), "{note}");
    let old_size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let v = s
        .run(&["checkpoint", "--json", "--size", &old_size.to_string()])
        .ok()
        .json();
    assert_eq!(v["size"], old_size);
    assert_eq!(v["note"], note.as_str());
    let text = s.run(&["checkpoint", "--size", &old_size.to_string()]);
    assert_eq!(text.ok().stdout, note);

    s.run(&["put", &s.file("later.txt", b"later")]).ok();
    s.wait_for_checkpoint("/api/v1/log", old_size + 1);
    let new = s.path("new.cp");
    s.run(&["checkpoint", "--out", &new]).ok();

    let proof = s.path("consistency.json");
    let out = s.run(&[
        "consistency",
        "--old",
        &old,
        "--new",
        &new,
        "--key",
        &key,
        "--out",
        &proof,
    ]);
    assert!(out.ok().stdout.starts_with("consistent: "), "{out:?}");
    // Offline, from the saved proof: no server needed.
    let out = evault_with(
        &[
            "consistency",
            "--old",
            &old,
            "--new",
            &new,
            "--key",
            &key,
            "--proof",
            &proof,
            "--json",
        ],
        None,
    );
    let v = out.ok().json();
    assert_eq!(v["consistent"], true);
    assert_eq!(v["old_size"], old_size);
    // Swapped, or a tampered proof: not verified.
    evault_with(
        &[
            "consistency",
            "--old",
            &new,
            "--new",
            &old,
            "--key",
            &key,
            "--proof",
            &proof,
        ],
        None,
    )
    .fails(1, &["NOT VERIFIED", "shrank"]);
    let mut p: Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    if let Some(first) = p["proof"].get_mut(0) {
        *first = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    } else {
        p["from"] = 1.into();
    }
    let bad = s.file("bad-consistency.json", p.to_string().as_bytes());
    let out = evault_with(
        &[
            "consistency",
            "--old",
            &old,
            "--new",
            &new,
            "--key",
            &key,
            "--proof",
            &bad,
            "--json",
        ],
        None,
    );
    out.fails(1, &["NOT VERIFIED"]);
    assert_eq!(out.json()["verified"], false);

    // The audit log, the same way.
    let a_old = s.path("audit-old.cp");
    s.run(&["checkpoint", "--log", "audit", "--out", &a_old])
        .ok();
    let a_size: u64 = std::fs::read_to_string(&a_old)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    s.wait_for_checkpoint("/api/v1/audit/log", a_size + 1);
    let a_new = s.path("audit-new.cp");
    s.run(&["checkpoint", "--log", "audit", "--out", &a_new])
        .ok();
    s.run(&[
        "consistency",
        "--log",
        "audit",
        "--old",
        &a_old,
        "--new",
        &a_new,
        "--key",
        &audit_key,
    ])
    .ok();
    // The evidence key on audit checkpoints names both.
    s.run(&[
        "consistency",
        "--log",
        "audit",
        "--old",
        &a_old,
        "--new",
        &a_new,
        "--key",
        &key,
    ])
    .fails(1, &["NOT VERIFIED", "not signed by the given key"]);
}

fn analytics_summary(s: &Suite) {
    let event = s.file(
        "event.json",
        br#"{"source":"ci","kind":"build","value":12.5,"unit":"s","metrics":{"tests":40},"timestamp":"2026-11-23T11:30:00Z"}"#,
    );
    s.run(&[
        "put",
        &event,
        "--content-type",
        "application/vnd.evault.analytics+json",
    ])
    .ok();
    let out = s.run(&["analytics"]);
    let line = out
        .lines()
        .into_iter()
        .find(|l| l.starts_with("ci "))
        .unwrap_or_else(|| panic!("no ci line: {out:?}"))
        .to_string();
    assert!(
        line.contains("build") && line.contains("12.5/12.5/12.5 s"),
        "{line}"
    );
    assert!(out.stdout.contains("metric tests: 40/40/40"), "{out:?}");
    let v = s
        .run(&["analytics", "--source", "ci", "--json"])
        .ok()
        .json();
    assert_eq!(v["groups"][0]["count"], 1);
    assert_eq!(v["filters"]["source"], "ci");
    s.run(&["analytics", "--since", "yesterday"])
        .fails(3, &["400", "since"]);
}

fn audit_tail_counts_and_filters(s: &Suite) {
    let events = |out: &Out| -> Vec<Value> {
        out.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // The last put is followed by other calls; -n counts matches only.
    let out = s.run(&[
        "audit",
        "tail",
        "-n",
        "1",
        "--operation",
        "evidence.put",
        "--json",
    ]);
    let got = events(out.ok());
    assert_eq!(got.len(), 1, "{out:?}");
    assert_eq!(got[0]["operation"], "evidence.put");
    let out = s.run(&[
        "audit",
        "tail",
        "-n",
        "3",
        "--operation",
        "evidence.put",
        "--json",
    ]);
    assert_eq!(events(out.ok()).len(), 3, "{out:?}");
    for n in [0, 1, 2] {
        let out = s.run(&["audit", "tail", "-n", &n.to_string()]);
        assert_eq!(out.ok().lines().len(), n, "-n {n}: {out:?}");
    }
    let out = s.run(&[
        "audit",
        "tail",
        "--outcome",
        "unauthenticated",
        "-n",
        "1",
        "--json",
    ]);
    let got = events(out.ok());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["outcome"], "unauthenticated");
}

/// `tail -f` prints new events and leaves its own polls out.
fn audit_tail_follow_hides_its_own_polls(s: &Suite) {
    // Same format as the events' `time` (RFC 3339, milliseconds, UTC).
    let started = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args([
            "audit",
            "tail",
            "-f",
            "-n",
            "0",
            "--json",
            "--server",
            &s.server.url,
        ])
        .env("EVAULT_TOKEN", common::token())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let marker = s.file("followed.txt", b"followed");
    let id = s
        .run(&["put", &marker])
        .ok()
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("tail -f never printed the put of {id}: {seen:#?}"));
        let e: Value = serde_json::from_str(&line).unwrap();
        let done = e["resource"].as_str().unwrap().contains(&id);
        seen.push(e);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for e in &seen {
        let op = e["operation"].as_str().unwrap();
        // Earlier commands' audit calls may be sequenced after the tail's
        // snapshot of the trail; only calls made since it started are its own.
        let since_start = e["time"].as_str().unwrap() >= started.as_str();
        assert!(
            !(op.starts_with("audit.") && e["principal"] == common::PRINCIPAL && since_start),
            "tail -f printed its own poll: {e}"
        );
    }
}
