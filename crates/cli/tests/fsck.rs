//! `evault fsck` on a stopped vault's data directory: clean passes (exit
//! 0, nothing written), a running server's directory is refused (exit 2),
//! and each kind of change at rest, each on a fresh copy, exits 1 with the
//! finding named at its place.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, copy_tree};
use serde_json::Value;

/// Records in all: more than one full level-0 tile; the last is a blob.
const RECORDS: usize = 300;
/// A checkpoint is awaited here, so there are several.
const FIRST: usize = 120;

/// A stopped vault; returns its data directory.
fn seed(root: &Path) -> PathBuf {
    common::seed_stopped(root, RECORDS, FIRST)
}

fn fsck(data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .arg("fsck")
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("EVAULT_CONFIG")
        .output()
        .expect("run evault fsck")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).expect("read"));
            }
        }
    }
    out
}

fn db(data: &Path) -> rusqlite::Connection {
    evault_vault::SqliteStore::raw_connection(&data.join("evault.db")).expect("open db")
}

/// Flips the low bit of byte `at` of one BLOB column value.
fn flip_blob(data: &Path, table: &str, column: &str, key: &str, at: usize) {
    let db = db(data);
    let mut b: Vec<u8> = db
        .query_row(
            &format!("SELECT {column} FROM {table} WHERE {key}"),
            [],
            |r| r.get(0),
        )
        .expect("select");
    b[at] ^= 1;
    let n = db
        .execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE {key}"),
            [b],
        )
        .expect("update");
    assert_eq!(n, 1);
}

/// Runs fsck --json on `data`: exit 1, and the findings.
fn findings(data: &Path) -> Vec<Value> {
    let out = fsck(data, &["--json"]);
    let v = json(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{v:#}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["clean"], false);
    assert_eq!(v["exit_code"], 1);
    assert!(v["total_findings"].as_u64().is_some_and(|n| n > 0));
    v["findings"].as_array().expect("findings").clone()
}

fn has(findings: &[Value], kind: &str, log: &str, key: &str, at: Value) -> bool {
    findings
        .iter()
        .any(|f| f["kind"] == kind && f["log"] == log && f[key] == at)
}

#[test]
fn fsck_passes_a_clean_vault_and_names_each_change() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = seed(root.path());

    // Clean, text: one line per log and the verdict; exit 0; stderr quiet
    // (not a terminal: no progress bar); nothing written.
    let before = snapshot(&data);
    let out = fsck(&data, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("evidence log test.example/cli: {RECORDS} leaves"))
            || stdout.contains(&format!(": {RECORDS} leaves")),
        "{stdout}"
    );
    assert!(stdout.contains("audit log "), "{stdout}");
    assert!(
        stdout.lines().last().unwrap_or("").starts_with("clean"),
        "{stdout}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&data), before, "fsck wrote to the data directory");

    // Clean, JSON.
    let out = fsck(&data, &["--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        (v["clean"].clone(), v["exit_code"].clone()),
        (true.into(), 0.into())
    );
    assert_eq!(v["logs"][0]["leaves"], RECORDS as u64);
    assert_eq!(v["logs"][0]["blobs"], 1);
    assert!(v["logs"][0]["checkpoints"].as_u64().is_some_and(|n| n >= 2));

    // In use by a running server: refused, exit 2, nothing checked.
    {
        let d = root.path().join("running");
        copy_tree(&data, &d);
        let server = Server::start(&d, &[]);
        let out = fsck(&d, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("in use by a running evault server"),
            "{stderr}"
        );
        assert!(stderr.contains("hint:"), "{stderr}");
        assert!(out.stdout.is_empty());
        assert!(server.terminate(Duration::from_secs(30)));
    }
    // No such directory: exit 2.
    let out = fsck(&root.path().join("nowhere"), &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["exit_code"], 2);

    let mut n = 0;
    let mut fresh = || {
        n += 1;
        let d = root.path().join(format!("copy{n}"));
        copy_tree(&data, &d);
        d
    };

    // A leaf.
    let d = fresh();
    flip_blob(&d, "records", "leaf_data", "leaf_index = 200", 30);
    let f = findings(&d);
    assert!(
        has(&f, "record", "evidence", "leaf_index", 200.into()),
        "{f:#?}"
    );
    assert!(
        has(&f, "leaf_hash", "evidence", "tile", "tile/0/000".into()),
        "{f:#?}"
    );
    // Text mode names it too, and says NOT VERIFIED on stderr.
    let out = fsck(&d, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FINDING leaf_hash: evidence log, leaf 200, tile/0/000"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"));

    // A tile: slot 9 of the right-edge level-0 tile (300 leaves: 44 wide).
    let d = fresh();
    flip_blob(&d, "tiles", "data", "level = 0 AND idx = 1", 9 * 32);
    let f = findings(&d);
    assert!(
        has(&f, "leaf_hash", "evidence", "leaf_index", 265.into()),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            "leaf_hash",
            "evidence",
            "tile",
            "tile/0/001.p/44".into()
        ),
        "{f:#?}"
    );

    // An inline payload.
    let d = fresh();
    flip_blob(&d, "records", "payload", "leaf_index = 17", 0);
    let f = findings(&d);
    assert!(
        has(&f, "payload", "evidence", "leaf_index", 17.into()),
        "{f:#?}"
    );

    // The blob file.
    let d = fresh();
    let sha: Vec<u8> = db(&d)
        .query_row(
            "SELECT sha256 FROM records WHERE leaf_index = ?1",
            [(RECORDS - 1) as i64],
            |r| r.get(0),
        )
        .expect("sha");
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let path = d.join("blobs").join(&hex[0..2]).join(&hex[2..4]).join(&hex);
    let mut bytes = std::fs::read(&path).expect("blob");
    bytes[5000] ^= 1;
    std::fs::write(&path, bytes).expect("write blob");
    let f = findings(&d);
    assert!(
        has(&f, "blob", "evidence", "blob", hex.clone().into()),
        "{f:#?}"
    );
    assert!(has(
        &f,
        "blob",
        "evidence",
        "leaf_index",
        (RECORDS as u64 - 1).into()
    ));

    // An older checkpoint's signature.
    let d = fresh();
    let old: i64 = db(&d)
        .query_row(
            "SELECT size FROM checkpoints WHERE size >= ?1 AND size < ?2 ORDER BY size LIMIT 1",
            [FIRST as i64, RECORDS as i64],
            |r| r.get(0),
        )
        .expect("an older checkpoint");
    {
        let db = db(&d);
        let note: String = db
            .query_row("SELECT note FROM checkpoints WHERE size = ?1", [old], |r| {
                r.get(0)
            })
            .expect("note");
        let mut b = note.into_bytes();
        let at = b.len() - 5;
        b[at] ^= 1;
        db.execute(
            "UPDATE checkpoints SET note = ?1 WHERE size = ?2",
            rusqlite::params![String::from_utf8(b).expect("text"), old],
        )
        .expect("update note");
    }
    let f = findings(&d);
    assert!(
        has(&f, "checkpoint", "evidence", "checkpoint_size", old.into()),
        "{f:#?}"
    );
    assert_eq!(f.len(), 1, "{f:#?}");

    // A label index entry moved to another record.
    let d = fresh();
    assert_eq!(
        db(&d)
            .execute(
                "UPDATE label_runs SET leaf_index = 41 WHERE key = 'n' AND leaf_index = 40",
                [],
            )
            .expect("update label"),
        1
    );
    let f = findings(&d);
    assert!(
        has(&f, "index", "evidence", "leaf_index", 40.into()),
        "{f:#?}"
    );
    assert!(
        has(&f, "index", "evidence", "leaf_index", 41.into()),
        "{f:#?}"
    );
    assert!(f.iter().all(|x| x["index"] == "record_labels"), "{f:#?}");

    // An audit event's column.
    let d = fresh();
    {
        let db = db(&d);
        let p: String = db
            .query_row(
                "SELECT principal FROM audit_events WHERE leaf_index = 3",
                [],
                |r| r.get(0),
            )
            .expect("principal");
        db.execute(
            "UPDATE audit_events SET principal = ?1 WHERE leaf_index = 3",
            [format!("{p}x")],
        )
        .expect("update");
    }
    let f = findings(&d);
    assert!(
        has(&f, "audit_event", "audit", "leaf_index", 3.into()),
        "{f:#?}"
    );
}
