//! A restored backup must not fork the log. The data directory is copied
//! at size 150, the log grows to 300 (signed), the copy is restored while
//! the state directory (the signed heads) stays: `evault serve` refuses to
//! start and names both sizes and roots. Putting the grown data back, it
//! starts and signs again.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_note::Checkpoint;

use crate::common::{Server, agent, get_json, get_text};

const ORIGIN: &str = "test.example/crash"; // what common::Server uses

fn put_many(server: &Server, tag: &str, n: usize) {
    let http = agent();
    for i in 0..n {
        let resp = http
            .post(format!("{}/api/v1/evidence", server.url))
            .header("Content-Type", "text/plain")
            .header("Authorization", crate::common::bearer())
            .send(format!("{tag} record {i}").as_bytes())
            .expect("POST evidence");
        assert_eq!(resp.status().as_u16(), 201, "put {tag} {i}");
    }
}

/// Waits for a signed checkpoint of exactly `size`; returns its root.
fn signed_root(server: &Server, size: u64) -> [u8; 32] {
    let http = agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, log) = get_json(&http, &format!("{}/api/v1/log", server.url));
        if log["checkpoint_size"].as_u64() == Some(size) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size}: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, note) = get_text(&http, &format!("{}/api/v1/checkpoints/{size}", server.url));
    assert_eq!(status, 200, "{note}");
    let body = &note[..=note.find("\n\n").expect("a signed note")];
    let cp = Checkpoint::parse(body).expect("a checkpoint");
    assert_eq!((cp.origin.as_str(), cp.size), (ORIGIN, size));
    cp.root_hash
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn restore(backup: &Path, data: &Path) {
    std::fs::remove_dir_all(data).unwrap();
    copy_dir(backup, data);
}

/// Runs `evault serve` expecting it to refuse to start: its exit status
/// and stderr. Killed (and the test failed) if it is still up after 30 s.
fn serve_refused(data: &Path, state: &Path) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--state-dir")
        .arg(state)
        .args(["--origin", ORIGIN])
        .env("EVAULT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evault serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("evault serve started on a restored backup behind its signed head");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().expect("stderr reader"))
}

#[test]
fn a_restored_backup_is_refused_and_never_signs_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("state");
    let state_arg = state.to_str().unwrap();
    let flags = ["--state-dir", state_arg];

    let server = Server::start(&data, &flags);
    put_many(&server, "first", 150);
    let root150 = signed_root(&server, 150);
    assert!(server.terminate(Duration::from_secs(30)), "clean exit");
    let backup = tmp.path().join("backup-150");
    copy_dir(&data, &backup);

    let server = Server::start(&data, &flags);
    put_many(&server, "second", 150);
    let root300 = signed_root(&server, 300);
    assert!(server.terminate(Duration::from_secs(30)), "clean exit");
    let grown = tmp.path().join("backup-300");
    copy_dir(&data, &grown);

    // The backup goes back; the signed heads in the state directory stay.
    restore(&backup, &data);
    let (status, stderr) = serve_refused(&data, &state);
    assert!(!status.success(), "must exit non-zero: {stderr}");
    eprintln!("refused as expected ({status}):\n{stderr}");
    for part in [
        "size 300".to_string(),
        "size 150".to_string(),
        STANDARD.encode(root300),
        STANDARD.encode(root150),
        "base64".to_string(),
        "docs/OPERATIONS.md".to_string(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from: {stderr}");
    }

    // The tree that was signed goes back: the vault starts, serves the
    // same checkpoint and signs what comes next.
    restore(&grown, &data);
    let server = Server::start(&data, &flags);
    let http = agent();
    let (status, _) = get_text(&http, &format!("{}/readyz", server.url));
    assert_eq!(status, 200);
    assert_eq!(signed_root(&server, 300), root300);
    put_many(&server, "third", 1);
    signed_root(&server, 301);
    assert!(server.terminate(Duration::from_secs(30)), "clean exit");
}
