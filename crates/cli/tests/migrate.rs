//! `evault migrate` on a data directory as an older release left it (a
//! real vault's, rewritten as schema 7 by
//! `evault_store::testing::rewrite_as_schema`): it converts with both logs
//! unchanged and checks clean, names each phase on stderr, is refused on a
//! running server's directory, and a kill -9 at any phase leaves a
//! directory that the next run converts with nothing lost.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Server, copy_tree, seed_stopped};
use evault_store::{Fingerprint, SqliteStore};
use serde_json::Value;

/// Records in all (more than one full tile).
const RECORDS: usize = 300;
/// The schema the directory is rewritten as: before stored inner tile
/// levels, the index follower and the index database, so every step runs.
const OLD: u32 = 7;

fn migrate(data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .arg("migrate")
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("EVAULT_CONFIG")
        .output()
        .expect("run evault migrate")
}

fn fingerprint(data: &Path) -> Fingerprint {
    SqliteStore::fingerprint(&data.join("evault.db")).expect("fingerprint")
}

/// Both logs' content, not the schema versions.
fn logs(f: &Fingerprint) -> impl PartialEq + std::fmt::Debug + use<> {
    (f.evidence.clone(), f.audit.clone())
}

/// A stopped vault under `root`, rewritten as schema [`OLD`]; returns it
/// with the fingerprint it had before the rewrite.
fn old_vault(root: &Path) -> (std::path::PathBuf, Fingerprint) {
    let data = seed_stopped(root, RECORDS, 120);
    let current = fingerprint(&data);
    evault_store::testing::rewrite_as_schema(&data.join("evault.db"), OLD).expect("rewrite");
    let old = fingerprint(&data);
    assert_eq!(old.schema_version, OLD);
    assert_eq!(logs(&old), logs(&current), "the rewrite keeps both logs");
    (data, current)
}

#[test]
fn an_older_data_directory_converts_unchanged_and_checks_clean() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, current) = old_vault(root.path());

    let out = migrate(&data, &["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["from_version"], OLD);
    assert_eq!(v["to_version"], current.current_version);
    assert_eq!(v["from_index_version"], Value::Null);
    assert_eq!(v["to_index_version"], 2);
    assert_eq!(v["converted"], true);
    assert_eq!(v["clean"], true);
    assert_eq!(v["fsck"]["clean"], true, "{v:#}");
    assert_eq!(v["fsck"]["total_findings"], 0);
    assert_eq!(v["unchanged"], true);
    assert_eq!(v["resumed"], false);
    assert!(!data.join("CONVERTING").exists());
    assert_eq!(v["logs"][0]["log"], "evidence");
    assert_eq!(v["logs"][0]["unchanged"], true);
    assert_eq!(v["logs"][0]["after"]["size"], RECORDS as u64);
    assert_eq!(v["logs"][0]["before"], v["logs"][0]["after"]);
    assert_eq!(v["logs"][1]["log"], "audit");
    assert!(
        v["logs"][1]["after"]["size"]
            .as_u64()
            .is_some_and(|s| s > 0),
        "{v:#}"
    );
    // Each phase named on stderr (not a terminal: no bar).
    for phase in [
        "evault: migrate: reading both logs",
        "evault: migrate: schema 7 to 10: the log's tables",
        "evault: migrate: inner levels of the evidence log's tiles",
        "evault: migrate: moving the indexes to the index database",
        "evault: migrate: checking (fsck)",
    ] {
        assert!(stderr.contains(phase), "{phase:?} in {stderr}");
    }
    let after = fingerprint(&data);
    assert!(!after.needs_migration());
    assert_eq!(logs(&after), logs(&current));

    // Again: nothing to convert, still checked.
    let out = migrate(&data, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("already at store schema"), "{stdout}");
    assert!(
        stdout.contains("evidence log unchanged: size 300"),
        "{stdout}"
    );
    assert!(stdout.contains("clean ("), "{stdout}");

    // A server starts on it and serves what was there.
    let server = Server::start(&data, &[]);
    let (status, cp) = common::get_json(
        &common::agent(),
        &format!("{}/api/v1/checkpoints/latest", server.url),
    );
    assert_eq!(status, 200);
    assert!(
        cp["size"].as_u64().is_some_and(|s| s >= RECORDS as u64),
        "{cp}"
    );
    assert!(server.terminate(Duration::from_secs(30)));
}

/// `evault serve` converts an older directory at start, logging each step
/// and the two logs compared, and serves what was there.
#[test]
fn serve_converts_an_older_directory_at_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, current) = old_vault(root.path());
    let log = root.path().join("serve.log");
    let server = Server::start_with(&data, &[], common::Stderr::File(log.clone()), "info");
    let (status, cp) = common::get_json(
        &common::agent(),
        &format!("{}/api/v1/checkpoints/latest", server.url),
    );
    assert_eq!(status, 200);
    assert!(
        cp["size"].as_u64().is_some_and(|s| s >= RECORDS as u64),
        "{cp}"
    );
    assert!(server.terminate(Duration::from_secs(30)));
    let text = std::fs::read_to_string(&log).expect("log");
    for line in [
        "is of an older schema, its index database is missing, or a conversion was \
         interrupted: converting it",
        "converting: schema 7 to 10: the log's tables: 0 of 300",
        "converting: schema 7 to 10: the log's tables: 300 of 300",
        "converting: moving the indexes to the index database",
        "converting: copying the tiles into rowid tables: 6 of 6",
        "from store schema 7 to 12",
        "both logs unchanged (evidence size 300",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let after = fingerprint(&data);
    assert!(!after.needs_migration());
    // The server appended audit events (and checkpoints) since: the
    // evidence log is the one it found.
    assert_eq!(after.evidence.leaves, current.evidence.leaves);
    let out = migrate(&data, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_missing_vault_or_a_running_server_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = migrate(&root.path().join("nothing"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vault database"), "{stderr}");

    let data = root.path().join("data");
    let server = Server::start(&data, &[]);
    let out = migrate(&data, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another evault process"),
        "{stderr}"
    );
    assert!(stderr.contains("stop the server first"), "{stderr}");
    assert!(server.terminate(Duration::from_secs(30)));
}

/// A run killed with SIGKILL after its n-th phase line, for every n a
/// full run prints: each leaves a directory whose logs are those it
/// started with, and which the next run converts and checks clean.
#[test]
fn a_kill_at_any_phase_leaves_a_directory_that_converts() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, current) = old_vault(root.path());
    let phases = {
        let probe = root.path().join("probe");
        copy_tree(&data, &probe);
        let out = migrate(&probe, &[]);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("evault: migrate: "))
            .count()
    };
    assert!(phases >= 5, "{phases} phases");
    for n in 1..=phases {
        let dir = root.path().join(format!("kill-{n}"));
        copy_tree(&data, &dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_evault"))
            .arg("migrate")
            .arg("--data-dir")
            .arg(&dir)
            .env_remove("EVAULT_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn evault migrate");
        let stderr = child.stderr.take().expect("stderr");
        let mut seen = 0;
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("stderr line");
            if line.starts_with("evault: migrate: ") {
                seen += 1;
                if seen == n {
                    break;
                }
            }
        }
        // The run may be past this phase, or done: every point must hold.
        let _ = child.kill();
        let _ = child.wait();
        let left = fingerprint(&dir);
        // Where the kill landed (seen with --nocapture): before, between
        // and after the conversion's transactions.
        eprintln!(
            "killed after phase {n}: schema {}, index database {:?}",
            left.schema_version, left.index_version
        );
        assert_eq!(logs(&left), logs(&current), "killed after phase {n}");
        let out = migrate(&dir, &["--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "after a kill at phase {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        assert_eq!(v["clean"], true, "after a kill at phase {n}: {v:#}");
        assert_eq!(logs(&fingerprint(&dir)), logs(&current));
    }
}

/// The fingerprints file an interrupted conversion leaves, as the vault
/// writes it, for `data`'s logs as they are now; `tamper` changes the
/// evidence log's digest.
fn pending_file(data: &Path, tamper: bool) -> String {
    let f = fingerprint(data);
    let hex = |d: &[u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let log = |name: &str, l: &evault_store::LogFingerprint, tamper: bool| {
        let mut digest = hex(&l.digest);
        if tamper {
            digest.replace_range(0..1, if digest.starts_with('0') { "1" } else { "0" });
        }
        serde_json::json!({
            "log": name, "present": true, "size": l.size, "leaves": l.leaves,
            "tiles": l.tiles, "checkpoints": l.checkpoints, "digest": digest,
        })
    };
    let audit = f.audit.as_ref().expect("audit log");
    serde_json::json!([
        log("evidence", &f.evidence, tamper),
        log("audit", audit, false)
    ])
    .to_string()
}

/// A conversion that committed but died before its comparison left the
/// fingerprints file: the next run compares with it, even though the
/// store is current, and removes it when both logs match.
#[test]
fn an_interrupted_comparison_is_made_by_the_next_run() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, current) = old_vault(root.path());
    std::fs::write(data.join("CONVERTING"), pending_file(&data, false)).expect("write");
    // The conversion alone, as the process that died had done.
    drop(SqliteStore::open(&data.join("evault.db")).expect("convert"));
    assert!(!fingerprint(&data).needs_migration());

    let out = migrate(&data, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["converted"], false);
    assert_eq!(v["resumed"], true);
    assert_eq!(v["unchanged"], true);
    assert_eq!(v["clean"], true);
    assert!(!data.join("CONVERTING").exists());
    assert_eq!(logs(&fingerprint(&data)), logs(&current));
}

/// Fingerprints that do not match (here, a tampered file standing for a
/// conversion that changed a log): `evault migrate` says NOT VERIFIED and
/// exits 1, `evault serve` refuses to start, and the file stays, so every
/// later run is refused too until an operator removes it.
#[test]
fn a_changed_log_is_refused_until_an_operator_looks() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, _) = old_vault(root.path());
    let kept = pending_file(&data, true);
    std::fs::write(data.join("CONVERTING"), &kept).expect("write");

    let out = migrate(&data, &["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NOT VERIFIED: the conversion changed the evidence log"),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["unchanged"], false);
    assert_eq!(v["verified"], false);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["logs"][0]["unchanged"], false);
    assert_eq!(v["logs"][1]["unchanged"], true);
    assert_eq!(
        std::fs::read_to_string(data.join("CONVERTING")).expect("kept"),
        kept
    );

    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(["--origin", "test.example/crash"])
        .env("EVAULT_STATE_DIR", data.join("state"))
        .env_remove("EVAULT_CONFIG")
        .output()
        .expect("run evault serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("changed the evidence log"), "{stderr}");
    assert!(stderr.contains("will not start"), "{stderr}");
    assert!(data.join("CONVERTING").exists());

    // Having looked (here: the log is the one it was), the operator
    // removes the file; the next run is clean.
    std::fs::remove_file(data.join("CONVERTING")).expect("rm");
    let out = migrate(&data, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A missing key is found by the check, after the conversion: the report
/// still says what was converted, and the exit is 2 (cannot check).
#[test]
fn a_missing_key_leaves_the_conversion_reported_and_unchecked() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, current) = old_vault(root.path());
    let key = data.join("log.key");
    let moved = root.path().join("log.key");
    std::fs::rename(&key, &moved).expect("move key");
    let out = migrate(&data, &["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the check could not run"), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["converted"], true);
    assert_eq!(v["unchanged"], true);
    assert_eq!(v["fsck"], Value::Null);
    assert!(
        v["check_error"]
            .as_str()
            .is_some_and(|e| e.contains("log.key")),
        "{v:#}"
    );
    assert_eq!(v["exit_code"], 2);
    assert_eq!(logs(&fingerprint(&data)), logs(&current));
}

/// `evault migrate --store postgres://…` creates the PostgreSQL schema,
/// then finds nothing to do; the password never reaches the output.
#[test]
fn migrate_store_creates_a_postgres_schema() {
    use evault_store::postgres::{LATEST, check_schema};
    let Some(db) =
        evault_store::testing::postgres::TestDb::create("migrate_store_creates_a_postgres_schema")
    else {
        return;
    };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_evault"))
            .arg("migrate")
            .args(args)
            .env_remove("EVAULT_CONFIG")
            .output()
            .expect("run evault migrate")
    };
    let out = run(&["--store", db.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("evault schema version 0 -> {LATEST}")),
        "{stdout}"
    );
    assert_eq!(check_schema(db.url()).unwrap(), LATEST);

    let out = run(&["--json", "--store", db.url()]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        (v["from_version"].as_u64(), v["applied"].as_u64()),
        (Some(LATEST as u64), Some(0))
    );

    // Not a PostgreSQL URL; an unreachable server (its password not shown).
    let out = run(&["--store", "/var/lib/evault"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "--store",
        "postgres://evault:pw-s3cret@127.0.0.1:1/x?connect_timeout=2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot connect") && !stderr.contains("pw-s3cret"),
        "{stderr}"
    );

    // The vault's role: its password file must be the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let role = db.role_name("app");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "role-s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pw_arg = pw.to_str().unwrap();
    let args = [
        "--store",
        db.url(),
        "--app-role",
        &role,
        "--app-password-file",
        pw_arg,
    ];
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("readable by group or others"), "{stderr}");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("role {role} may read and append")) && !stdout.contains("s3cret"),
        "{stdout}"
    );
    assert_eq!(
        db.query_text(&format!(
            "SELECT has_table_privilege('{role}', 'entries', 'INSERT') \
             AND NOT has_table_privilege('{role}', 'entries', 'UPDATE')"
        ))
        .as_deref(),
        Some("true")
    );
}
