//! The user's path through the binary: serve, put, get, prove, verify
//! offline, keys.

mod common;

use std::process::Command;

use common::Server;

/// Runs the binary with the test token in `EVAULT_TOKEN`.
fn evault(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env("EVAULT_TOKEN", common::token())
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

#[test]
fn serve_reads_its_config_file_and_refuses_an_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("evault.toml");
    std::fs::write(
        &cfg,
        "public_url = \"https://vault.example.com/evault/\"\nmax_upload = 1024\n",
    )
    .unwrap();
    let server = Server::start(&data, &["--config", cfg.to_str().unwrap()]);
    let agent = common::agent();
    // A new log takes its origins from the file's public URL (C2SP
    // tlog-tiles: the prefix without its scheme).
    let (status, log) = common::get_json(&agent, &format!("{}/api/v1/log", server.url));
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["origin"], "vault.example.com/evault/tlog");
    let (_, audit) = common::get_json(&agent, &format!("{}/api/v1/audit/log", server.url));
    assert_eq!(audit["origin"], "vault.example.com/evault/tlog-audit");
    let (_, doc) = common::get_json(&agent, &format!("{}/api/v1/openapi.json", server.url));
    assert_eq!(
        doc["servers"][0]["url"]
            .as_str()
            .map(|u| u.trim_end_matches('/')),
        Some("https://vault.example.com/evault")
    );
    // The file's max_upload holds too: 2 KiB is refused with 413.
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 2048]).unwrap();
    let out = evault(&["put", "--server", &server.url, big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("413"),
        "{out:?}"
    );
    drop(server);

    // An unknown key is a usage error naming the key and the file.
    std::fs::write(&cfg, "public_ulr = \"https://vault.example.com/\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "off"])
        .arg("--data-dir")
        .arg(tmp.path().join("other"))
        .arg("--config")
        .arg(&cfg)
        .env("EVAULT_STATE_DIR", tmp.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("public_ulr") && stderr.contains("evault.toml"),
        "{stderr}"
    );
    assert!(!tmp.path().join("other").exists(), "{stderr}");
}

/// Runs the binary with no token at all.
/// Polls the audit log until a signed audit checkpoint covers `size`
/// events.
fn wait_for_audit_checkpoint(url: &str, token: &str, size: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, info) =
            common::get_json_as(&common::agent(), &format!("{url}/api/v1/audit/log"), token);
        if info["checkpoint_size"].as_u64().unwrap() >= size {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit checkpoint of size {size} within 10 s"
        );
        std::thread::yield_now();
    }
}

fn evault_anonymous(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env_remove("EVAULT_TOKEN")
        .output()
        .expect("run evault")
}

#[test]
fn service_accounts_tokens_and_the_audit_trail_through_the_binary() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // A keystore made by `evault sa`, 0600.
    let created = ok(&evault(&[
        "sa",
        "create",
        "--data-dir",
        data_s,
        "--principal",
        "ci",
        "--roles",
        "ingester",
        "--key-id",
        "ci-1",
        "--json",
    ]));
    assert!(created.contains("ci-1"), "{created}");
    let keystore = data.join("service-accounts.json");
    let mode = std::fs::metadata(&keystore).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    ok(&evault(&[
        "sa",
        "create",
        "--data-dir",
        data_s,
        "--principal",
        "auditor",
        "--roles",
        "auditor",
        "--key-id",
        "aud-1",
    ]));
    let listed = ok(&evault(&["sa", "list", "--data-dir", data_s]));
    assert!(
        listed.contains("ci-1") && listed.contains("aud-1"),
        "{listed}"
    );
    let text = std::fs::read_to_string(&keystore).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    for k in file["keys"].as_array().unwrap() {
        assert!(
            !listed.contains(k["secret"].as_str().unwrap()),
            "list shows no secret"
        );
    }
    // Unknown roles and keys are clear errors.
    let bad = evault(&[
        "sa",
        "create",
        "--data-dir",
        data_s,
        "--principal",
        "x",
        "--roles",
        "root",
    ]);
    assert!(!bad.status.success());
    let bad = evault(&["token", "mint", "--data-dir", data_s, "--key-id", "nope"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));

    let server = Server::start(&data, &[]);
    let mint = |key: &str| {
        ok(&evault(&[
            "token",
            "mint",
            "--data-dir",
            data_s,
            "--key-id",
            key,
            "--ttl",
            "10m",
        ]))
        .trim()
        .to_string()
    };
    let ci = mint("ci-1");
    let auditor = mint("aud-1");
    let report = dir.path().join("r.txt");
    std::fs::write(&report, b"all green").unwrap();

    // Without a token: a clear 401.
    let out = evault_anonymous(&["put", report.to_str().unwrap(), "--server", &server.url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the ingester's token.
    let put = ok(&evault(&[
        "put",
        report.to_str().unwrap(),
        "--server",
        &server.url,
        "--token",
        &ci,
        "--json",
    ]));
    let put: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert_eq!(put[0]["result"]["record"]["ingested_by"], "ci");
    // An ingester cannot read the audit trail.
    let out = evault(&["audit", "tail", "--server", &server.url, "--token", &ci]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));

    // The auditor sees every call, the refused ones too.
    let tail = ok(&evault(&[
        "audit",
        "tail",
        "-n",
        "100",
        "--server",
        &server.url,
        "--token",
        &auditor,
        "--json",
    ]));
    let events: Vec<serde_json::Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["outcome"] == "unauthenticated" && e["operation"] == "evidence.put")
    );
    assert!(events.iter().any(|e| e["outcome"] == "success"
        && e["operation"] == "evidence.put"
        && e["principal"] == "ci"));
    assert!(events.iter().any(|e| e["outcome"] == "denied"
        && e["principal"] == "ci"
        && e["operation"].as_str().unwrap().starts_with("audit.")));

    // The whole trail checks out against the signed audit checkpoint, and
    // again later as an extension of the saved one.
    let (_, info) = common::get_json_as(
        &common::agent(),
        &format!("{}/api/v1/audit/log", server.url),
        &auditor,
    );
    let audit_key = info["verifier_key"].as_str().unwrap().to_string();
    // Every event so far under a signed audit checkpoint.
    let committed = info["tree_size"].as_u64().unwrap();
    wait_for_audit_checkpoint(&server.url, &auditor, committed);
    let saved = dir.path().join("audit-checkpoint");
    let v = ok(&evault(&[
        "audit",
        "verify",
        "--key",
        &audit_key,
        "--save",
        saved.to_str().unwrap(),
        "--server",
        &server.url,
        "--token",
        &auditor,
    ]));
    assert!(v.starts_with("verified:"), "{v}");
    // The verification itself was audited: wait until a newer checkpoint
    // than the saved one is signed, so there is something to extend.
    let saved_size: u64 = std::fs::read_to_string(&saved)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    wait_for_audit_checkpoint(&server.url, &auditor, saved_size + 1);
    let v = ok(&evault(&[
        "audit",
        "verify",
        "--key",
        &audit_key,
        "--previous",
        saved.to_str().unwrap(),
        "--server",
        &server.url,
        "--token",
        &auditor,
    ]));
    assert!(v.contains("extends"), "{v}");
    // A wrong key is refused.
    let (_, log) = common::get_json_as(
        &common::agent(),
        &format!("{}/api/v1/log", server.url),
        &auditor,
    );
    let out = evault(&[
        "audit",
        "verify",
        "--key",
        log["verifier_key"].as_str().unwrap(),
        "--server",
        &server.url,
        "--token",
        &auditor,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"));

    // One event's proof, verified offline by the same `evault verify`.
    let id = events[0]["id"].as_str().unwrap();
    let proof = dir.path().join("event-proof.json");
    ok(&evault(&[
        "audit",
        "prove",
        id,
        "--out",
        proof.to_str().unwrap(),
        "--server",
        &server.url,
        "--token",
        &auditor,
    ]));
    let verified = ok(&evault(&[
        "verify",
        "--proof",
        proof.to_str().unwrap(),
        "--key",
        &audit_key,
    ]));
    assert!(verified.starts_with("verified: audit event"), "{verified}");

    // Revoking the key locks the pipeline out (the server reloads the file).
    ok(&evault(&["sa", "revoke", "ci-1", "--data-dir", data_s]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = evault(&[
            "put",
            report.to_str().unwrap(),
            "--server",
            &server.url,
            "--token",
            &ci,
        ]);
        if !out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key still works after 10 s"
        );
    }

    // The JSON-lines mirror has the events, 0600 in a 0700 directory.
    let mirror = data.join("audit");
    assert_eq!(
        std::fs::metadata(&mirror).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let file = std::fs::read_dir(&mirror)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        file.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("audit-")
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The mirror writes at most every 200 ms, after the log commits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&file).unwrap().lines().count() < events.len()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&file).unwrap().lines().count() >= events.len());
}
