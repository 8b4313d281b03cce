//! The user's path through the binary: serve, put, get, prove, verify
//! offline, keys.

mod common;

use std::process::Command;

use common::Server;

fn evault(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .output()
        .expect("run evault")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "evault failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn put_prove_verify_offline_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let work = dir.path();
    let a = work.join("report.json");
    let b = work.join("junit.xml");
    std::fs::write(&a, br#"{"passed": 120, "failed": 0}"#).unwrap();
    std::fs::write(&b, b"<testsuite tests=\"3\"/>").unwrap();

    let out = ok(&evault(&[
        "put",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--label",
        "pipeline=release",
        "--server",
        &server.url,
        "--json",
    ]));
    let put: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = put[0]["result"]["record"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        put[0]["result"]["record"]["content_type"],
        "application/json"
    );
    assert_eq!(
        put[1]["result"]["record"]["content_type"],
        "application/xml"
    );

    let got = ok(&evault(&["get", &id, "--server", &server.url, "--json"]));
    assert!(got.contains("pipeline"));
    let payload = work.join("payload.out");
    ok(&evault(&[
        "get",
        &id,
        "--payload",
        payload.to_str().unwrap(),
        "--server",
        &server.url,
    ]));
    assert_eq!(std::fs::read(&payload).unwrap(), std::fs::read(&a).unwrap());

    let listed = ok(&evault(&[
        "ls",
        "--label",
        "pipeline=release",
        "--server",
        &server.url,
        "--json",
    ]));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    let proof = work.join("proof.json");
    ok(&evault(&[
        "prove",
        &id,
        "--out",
        proof.to_str().unwrap(),
        "--server",
        &server.url,
    ]));
    let log: serde_json::Value = {
        let (_, v) = common::get_json(&common::agent(), &format!("{}/api/v1/log", server.url));
        v
    };
    let key = log["verifier_key"].as_str().unwrap();
    // The server can go away: verification is offline.
    server.kill();
    let verified = ok(&evault(&[
        "verify",
        "--proof",
        proof.to_str().unwrap(),
        "--key",
        key,
        "--origin",
        "test.example/crash",
    ]));
    assert!(verified.starts_with("verified:"), "{verified}");

    // Tampering with the record is caught, with a non-zero exit.
    let mut bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    bundle["record"]["labels"]["pipeline"] = "debug".into();
    let forged = work.join("forged.json");
    std::fs::write(&forged, bundle.to_string()).unwrap();
    let out = evault(&["verify", "--proof", forged.to_str().unwrap(), "--key", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"));
}

#[test]
fn keys_generate_writes_a_private_key_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let vkey = ok(&evault(&[
        "keys",
        "generate",
        "example.com/log",
        "--out",
        path.to_str().unwrap(),
    ]));
    assert!(vkey.starts_with("example.com/log+"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("PRIVATE+KEY+example.com/log+")
    );
    // Never overwrites.
    assert!(
        !evault(&["keys", "generate", "x", "--out", path.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn clear_errors_for_bad_flags_and_unreachable_servers() {
    let out = evault(&["serve", "--listen", "not-an-address"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let out = evault(&["get", "x", "--server", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}
