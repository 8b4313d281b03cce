//! Tampering at rest: a stopped vault's files changed by one byte, one
//! change at a time, each on a fresh copy of the data directory. Every
//! change must be refused at start, or detected when served (never a 200
//! with the wrong bytes); `evault fsck` finds each of them in full
//! (`crates/cli/tests/fsck.rs`).
//!
//! | changed byte | outcome |
//! |---|---|
//! | inline payload (`records.payload`) | detected when served: `GET …/payload` is 500 problem+json, counted in `evault_integrity_failures_total{what="payload"}` |
//! | blob file | detected when served: the transfer is cut before its last chunk (the client never gets `Content-Length` bytes) |
//! | record digest (`records.sha256`) | detected when served: the record and its payload are 500 (fields differ from the leaf); refused at start when sampled |
//! | leaf (`records.leaf_data`) | detected when served: the record and its entry bundle are 500; refused at start when sampled |
//! | level-0 hash tile | detected when served: the tile, the entry bundle and inclusion proofs through it are 500; refused at start when sampled |
//! | higher-level hash tile (right edge) | refused at start: the root recomputed from the tiles is not the signed one |
//! | old checkpoint's signature | detected when served: that checkpoint and proofs against it are 500 |
//! | latest checkpoint's root | refused at start: its signature fails |
//! | audit event (`audit_events.principal`) | detected when served: the event is 500 (column differs from its leaf); refused at start when sampled |
//! | latest audit checkpoint | refused at start |
//! | log key file | refused at start: the key does not parse, or the latest checkpoint does not verify with it |
//!
//! "When sampled": the start-up check (`--startup-sample`, default 64
//! leaves at random, plus the right edge) finds it if it looks there. The
//! served cases below run with the sample off (so the serve-time check is
//! what is tested); the sampled cases run with a sample covering the tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Server, agent, bearer, get_json};

/// Inline records before the checkpoint the old-checkpoint case changes.
const FIRST: usize = 120;
/// Inline records in all: more than one full level-0 tile.
const INLINE: usize = 270;
/// A payload larger than the default inline maximum (64 KiB): a blob.
const BLOB_LEN: usize = 100 * 1024;

/// A stopped vault with inline and blob payloads, several checkpoints and
/// an audit trail, and what the cases need to know about it.
struct Seed {
    _dir: tempfile::TempDir,
    data: PathBuf,
    /// Record ids by leaf index (the blob is last).
    ids: Vec<String>,
    blob: Vec<u8>,
    /// A checkpoint older than the latest, and its size.
    old_size: u64,
    size: u64,
    /// An audit event id.
    audit_id: String,
}

fn post(url: &str, body: &[u8], content_type: &str) -> Value {
    let mut resp = agent()
        .post(format!("{url}/api/v1/evidence"))
        .header("Content-Type", content_type)
        .header("Authorization", bearer())
        .send(body)
        .expect("POST evidence");
    assert_eq!(resp.status().as_u16(), 201, "POST evidence");
    serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("JSON")
}

/// Polls until the latest checkpoint covers `size`.
fn wait_checkpoint(url: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, cp) = get_json(&agent(), &format!("{url}/api/v1/checkpoints/latest"));
        if status == 200 && cp["size"].as_u64().is_some_and(|s| s >= size) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} within 30 s (last: {status} {cp})"
        );
        std::thread::yield_now();
    }
}

fn seed() -> Seed {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let url = server.url.clone();
    let mut ids = Vec::new();
    for i in 0..INLINE {
        if i == FIRST {
            wait_checkpoint(&url, FIRST as u64);
        }
        let v = post(&url, format!("inline record {i}").as_bytes(), "text/plain");
        assert_eq!(v["record"]["leaf_index"].as_u64(), Some(i as u64));
        ids.push(v["record"]["id"].as_str().expect("id").to_string());
    }
    let blob: Vec<u8> = (0..BLOB_LEN).map(|i| (i % 251) as u8).collect();
    let v = post(&url, &blob, "application/octet-stream");
    ids.push(v["record"]["id"].as_str().expect("id").to_string());
    let size = ids.len() as u64;
    wait_checkpoint(&url, size);
    let (_, page) = get_json(&agent(), &format!("{url}/api/v1/checkpoints?limit=1000"));
    let old_size = page["items"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .filter_map(|c| c["size"].as_u64())
        .find(|&s| s >= FIRST as u64 && s < size)
        .expect("a checkpoint between the first records and the last");
    let (_, audit) = get_json(&agent(), &format!("{url}/api/v1/audit?limit=1"));
    let audit_id = audit["items"][0]["id"]
        .as_str()
        .expect("audit event")
        .to_string();
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");
    Seed {
        _dir: dir,
        data,
        ids,
        blob,
        old_size,
        size,
        audit_id,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Flips the low bit of byte `at` (negative: from the end) of one value.
fn flip(bytes: &mut [u8], at: isize) {
    let i = if at < 0 {
        bytes.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    bytes[i] ^= 1;
}

/// Flips one byte of `column` in the single row `key_sql` selects.
fn flip_column(data: &Path, table: &str, column: &str, key_sql: &str, at: isize) {
    use rusqlite::types::Value as Sql;
    let db = evault_vault::SqliteStore::raw_connection(&data.join("evault.db")).expect("open db");
    let sql = format!("SELECT {column} FROM {table} WHERE {key_sql}");
    let value: Sql = db.query_row(&sql, [], |r| r.get(0)).expect(&sql);
    let changed = match value {
        Sql::Blob(mut b) => {
            flip(&mut b, at);
            Sql::Blob(b)
        }
        Sql::Text(t) => {
            let mut b = t.into_bytes();
            flip(&mut b, at);
            Sql::Text(String::from_utf8(b).expect("an ASCII byte flipped stays text"))
        }
        other => panic!("{table}.{column} is {other:?}"),
    };
    let sql = format!("UPDATE {table} SET {column} = ?1 WHERE {key_sql}");
    assert_eq!(db.execute(&sql, [changed]).expect(&sql), 1, "{sql}");
}

/// Flips one byte of a checkpoint note's line `line` (0: origin, 1: size,
/// 2: root, 4: the signature line).
fn flip_note(data: &Path, table: &str, size: u64, line: usize, at: usize) {
    let db = evault_vault::SqliteStore::raw_connection(&data.join("evault.db")).expect("open db");
    let note: String = db
        .query_row(
            &format!("SELECT note FROM {table} WHERE size = ?1"),
            [size as i64],
            |r| r.get(0),
        )
        .expect("checkpoint");
    let mut lines: Vec<Vec<u8>> = note.split('\n').map(|l| l.as_bytes().to_vec()).collect();
    let pos = if line == 4 {
        // `— <name> <base64>`: a byte inside the signature's base64.
        lines[line].len() - 3
    } else {
        at
    };
    lines[line][pos] ^= 1;
    let note = String::from_utf8(lines.join(&b'\n')).expect("text");
    db.execute(
        &format!("UPDATE {table} SET note = ?1 WHERE size = ?2"),
        rusqlite::params![note, size as i64],
    )
    .expect("update note");
}

/// Starts `evault serve` on `data`: the server, or why it refused to
/// start (its stderr) once it exited.
fn try_start(data: &Path, extra: &[&str]) -> Result<Server, String> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "off"])
        .arg("--data-dir")
        .arg(data)
        .args([
            "--origin",
            "test.example/crash",
            "--checkpoint-interval",
            "50ms",
        ])
        .args(extra)
        // Each copy's own signed heads, copied with it (as the seed's were
        // kept by common::Server), never the user's state directory.
        .env("EVAULT_STATE_DIR", data.join("state"))
        .env("EVAULT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evault serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("evault: serving ") {
                    let url = rest.split_whitespace().next().expect("url").to_string();
                    // Keep draining stderr so the child never blocks on it.
                    std::thread::spawn(move || for _ in rx {});
                    return Ok(Server {
                        child,
                        url,
                        grpc: None,
                    });
                }
                seen.push(line);
            }
            // stderr closed: the process is exiting.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("evault serve neither served nor exited within 60 s: {seen:?}");
            }
        }
    }
    let status = child.wait().expect("wait");
    assert!(!status.success(), "evault serve exited 0 without serving");
    Err(seen.join("\n"))
}

/// A fresh copy of the seed, changed by `tamper`.
fn tampered(seed: &Seed, tamper: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    copy_tree(&seed.data, &data);
    tamper(&data);
    (dir, data)
}

fn refused(seed: &Seed, what: &str, extra: &[&str], expect: &[&str], tamper: impl FnOnce(&Path)) {
    let (_dir, data) = tampered(seed, tamper);
    match try_start(&data, extra) {
        Ok(_) => panic!("{what}: the vault started on a tampered data directory"),
        Err(stderr) => {
            for e in expect {
                assert!(
                    stderr.contains(e),
                    "{what}: refused, but the message lacks {e:?}:\n{stderr}"
                );
            }
            eprintln!(
                "{what}: refused at start: {}",
                stderr.lines().last().unwrap_or("")
            );
        }
    }
}

/// GETs `path`; asserts a 500 problem+json that names an integrity failure.
fn assert_detected(url: &str, path: &str, what: &str) {
    let mut resp = agent()
        .get(format!("{url}{path}"))
        .header("Authorization", bearer())
        .call()
        .expect("GET");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 500, "{what}: GET {path} answered {status}: {body}");
    assert!(ct.starts_with("application/problem+json"), "{what}: {ct}");
    assert!(
        body.contains("integrity check"),
        "{what}: GET {path}: {body}"
    );
}

fn integrity_count(url: &str, what: &str) -> u64 {
    let (status, text) = common::get_text(&agent(), &format!("{url}/metrics"));
    assert_eq!(status, 200, "metrics");
    let prefix = format!("evault_integrity_failures_total{{what=\"{what}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

const NO_SAMPLE: &[&str] = &["--startup-sample", "0"];
const FULL_SAMPLE: &[&str] = &["--startup-sample", "100000"];

#[test]
fn single_byte_tampering_is_refused_at_start_or_detected_when_served() {
    let seed = seed();
    let blob_id = seed.ids.last().expect("blob").clone();
    let blob_leaf = seed.ids.len() - 1;

    // The untouched copy starts, with the full sample, and serves.
    {
        let (_d, data) = tampered(&seed, |_| {});
        let s = try_start(&data, FULL_SAMPLE).expect("the untouched copy starts");
        let mut resp = agent()
            .get(format!("{}/api/v1/evidence/{blob_id}/payload", s.url))
            .header("Authorization", bearer())
            .call()
            .expect("GET blob");
        assert_eq!(resp.status().as_u16(), 200);
        let got = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .expect("blob");
        assert!(got == seed.blob, "the untouched blob is served whole");
    }

    // Inline payload byte: 500, counted.
    {
        let (_d, data) = tampered(&seed, |d| {
            flip_column(d, "records", "payload", "leaf_index = 7", 3)
        });
        let s = try_start(&data, FULL_SAMPLE).expect("payloads are not in the leaf: starts");
        let path = format!("/api/v1/evidence/{}/payload", seed.ids[7]);
        assert_detected(&s.url, &path, "inline payload");
        assert_eq!(integrity_count(&s.url, "payload"), 1);
        // Other records are still served.
        let (status, _) = common::get_text(
            &agent(),
            &format!("{}/api/v1/evidence/{}/payload", s.url, seed.ids[8]),
        );
        assert_eq!(status, 200);
    }

    // Blob byte: the transfer never completes.
    {
        let (_d, data) = tampered(&seed, |d| {
            let blob = std::fs::read_dir(d.join("blobs"))
                .unwrap()
                .flat_map(|a| std::fs::read_dir(a.unwrap().path()).unwrap())
                .flat_map(|b| std::fs::read_dir(b.unwrap().path()).unwrap())
                .map(|f| f.unwrap().path())
                .next()
                .expect("the blob file");
            let mut bytes = std::fs::read(&blob).unwrap();
            flip(&mut bytes, (BLOB_LEN - 10) as isize);
            std::fs::write(&blob, bytes).unwrap();
        });
        let s = try_start(&data, FULL_SAMPLE).expect("blobs are not in the leaf: starts");
        // The server cuts the connection: before the response head
        // reaches the client, or short of Content-Length after it.
        let served = agent()
            .get(format!("{}/api/v1/evidence/{blob_id}/payload", s.url))
            .header("Authorization", bearer())
            .call()
            .map_err(|e| e.to_string())
            .and_then(|mut resp| {
                let status = resp.status().as_u16();
                let body = resp.body_mut().with_config().limit(1 << 20).read_to_vec();
                match body {
                    Ok(b) => Ok((status, b.len())),
                    Err(e) => Err(e.to_string()),
                }
            });
        match served {
            Ok((status, len)) => {
                assert_ne!(
                    status, 200,
                    "a changed blob was served complete ({len} bytes)"
                )
            }
            Err(e) => eprintln!("blob: transfer cut: {e}"),
        }
        assert_eq!(integrity_count(&s.url, "payload"), 1);
    }

    // Record digest field: the record's fields no longer match its leaf.
    {
        let (_d, data) = tampered(&seed, |d| {
            flip_column(
                d,
                "records",
                "sha256",
                &format!("leaf_index = {blob_leaf}"),
                0,
            )
        });
        let s = try_start(&data, NO_SAMPLE).expect("starts without the sample");
        assert_detected(&s.url, &format!("/api/v1/evidence/{blob_id}"), "digest");
        assert_detected(
            &s.url,
            &format!("/api/v1/evidence/{blob_id}/payload"),
            "digest",
        );
        drop(s);
    }
    refused(
        &seed,
        "record digest (sampled)",
        FULL_SAMPLE,
        &["fsck", "record"],
        |d| flip_column(d, "records", "sha256", "leaf_index = 3", 5),
    );

    // A leaf: the record and its entry bundle.
    {
        let (_d, data) = tampered(&seed, |d| {
            flip_column(d, "records", "leaf_data", "leaf_index = 9", 20)
        });
        let s = try_start(&data, NO_SAMPLE).expect("starts without the sample");
        assert_detected(&s.url, &format!("/api/v1/evidence/{}", seed.ids[9]), "leaf");
        assert_detected(&s.url, "/tlog/tile/entries/000", "leaf");
        drop(s);
    }
    refused(&seed, "leaf (sampled)", FULL_SAMPLE, &["fsck"], |d| {
        flip_column(d, "records", "leaf_data", "leaf_index = 9", 20)
    });

    // A level-0 tile hash (leaf 10's): the tile, the bundle, proofs through it.
    {
        let (_d, data) = tampered(&seed, |d| {
            flip_column(d, "tiles", "data", "level = 0 AND idx = 0", 10 * 32 + 4)
        });
        let s = try_start(&data, NO_SAMPLE).expect("starts without the sample");
        assert_detected(&s.url, "/tlog/tile/0/000", "level-0 tile");
        assert_detected(&s.url, "/tlog/tile/entries/000", "level-0 tile");
        assert_detected(
            &s.url,
            &format!("/api/v1/evidence/{}/proof", seed.ids[11]),
            "level-0 tile",
        );
        drop(s);
    }
    refused(
        &seed,
        "level-0 tile (sampled)",
        FULL_SAMPLE,
        &["fsck", "tile"],
        |d| flip_column(d, "tiles", "data", "level = 0 AND idx = 0", 10 * 32 + 4),
    );

    // A higher-level tile hash: on the right edge, so the root check finds it.
    refused(&seed, "level-1 tile", NO_SAMPLE, &["root", "fsck"], |d| {
        flip_column(d, "tiles", "data", "level = 1 AND idx = 0", 7)
    });

    // An old checkpoint's signature: not served, not embedded.
    {
        let old = seed.old_size;
        let (_d, data) = tampered(&seed, |d| flip_note(d, "checkpoints", old, 4, 0));
        let s = try_start(&data, FULL_SAMPLE).expect("the latest checkpoint is intact: starts");
        assert_detected(
            &s.url,
            &format!("/api/v1/checkpoints/{old}"),
            "old checkpoint",
        );
        assert_detected(
            &s.url,
            &format!("/api/v1/evidence/{}/proof?tree_size={old}", seed.ids[1]),
            "old checkpoint",
        );
        assert_detected(&s.url, "/api/v1/checkpoints?limit=1000", "old checkpoint");
        // The latest one is fine.
        let (status, _) = get_json(&agent(), &format!("{}/api/v1/checkpoints/latest", s.url));
        assert_eq!(status, 200);
    }

    // The latest checkpoint's root: its signature fails at start.
    let size = seed.size;
    refused(
        &seed,
        "latest checkpoint root",
        NO_SAMPLE,
        &["checkpoint", "fsck"],
        |d| flip_note(d, "checkpoints", size, 2, 5),
    );

    // An audit event field.
    {
        let id = seed.audit_id.clone();
        let (_d, data) = tampered(&seed, |d| {
            flip_column(d, "audit_events", "principal", &format!("id = '{id}'"), 2)
        });
        let s = try_start(&data, NO_SAMPLE).expect("starts without the sample");
        assert_detected(&s.url, &format!("/api/v1/audit/events/{id}"), "audit event");
    }
    {
        // The first audit events are in every sample that covers the tree.
        let id = seed.audit_id.clone();
        refused(
            &seed,
            "audit event (sampled)",
            FULL_SAMPLE,
            &["audit", "fsck"],
            |d| flip_column(d, "audit_events", "principal", &format!("id = '{id}'"), 2),
        );
    }

    // The latest audit checkpoint.
    refused(
        &seed,
        "audit checkpoint",
        NO_SAMPLE,
        &["audit", "checkpoint"],
        |d| {
            let db = evault_vault::SqliteStore::raw_connection(&d.join("evault.db")).unwrap();
            let latest: i64 = db
                .query_row("SELECT max(size) FROM audit_checkpoints", [], |r| r.get(0))
                .unwrap();
            drop(db);
            flip_note(d, "audit_checkpoints", latest as u64, 2, 3);
        },
    );

    // The log key file.
    refused(&seed, "log key", NO_SAMPLE, &["key"], |d| {
        let path = d.join("log.key");
        let mut bytes = std::fs::read(&path).unwrap();
        flip(&mut bytes, -6);
        std::fs::write(&path, bytes).unwrap();
    });
}
