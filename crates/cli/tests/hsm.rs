//! `evault serve --signer pkcs11:…`: the evidence log signed by an Ed25519
//! key made inside a SoftHSM2 token, which never leaves it. The vault
//! restarts and keeps signing with it; with the token taken away, writes
//! that need a checkpoint get 503 while plain writes go on, and signing
//! resumes when the token is back. Skipped loudly without SoftHSM;
//! required when `EVAULT_REQUIRE_SOFTHSM=1` (as in CI).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, Stderr};
use evault_note::{Verifiers, open, verifier_for};
use serde_json::Value;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const ORIGIN: &str = "hsm.example/log";

fn softhsm_present(test: &str) -> bool {
    if Path::new(SOFTHSM).exists() {
        return true;
    }
    let msg = "SoftHSM2 not installed (apt-get install softhsm2 opensc); test skipped";
    if std::env::var("EVAULT_REQUIRE_SOFTHSM").is_ok_and(|v| v == "1") {
        panic!("{msg}, but EVAULT_REQUIRE_SOFTHSM=1");
    }
    eprintln!("SKIPPED {test}: {msg}");
    false
}

/// A fresh token labelled `vault` in `d/tokens`; returns its config file.
fn init_token(d: &Path) -> std::path::PathBuf {
    std::fs::create_dir(d.join("tokens")).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("tokens").display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "vault",
            "--pin",
            "4321",
            "--so-pin",
            "87654321",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util");
    assert!(init.status.success(), "{init:?}");
    conf
}

/// POSTs a text record; `query` is appended to the URL.
fn put(agent: &ureq::Agent, url: &str, body: &str, query: &str) -> (u16, Value, Option<String>) {
    let mut resp = agent
        .post(format!("{url}/api/v1/evidence{query}"))
        .header("Content-Type", "text/plain")
        .header("Authorization", common::bearer())
        .send(body.as_bytes())
        .expect("POST");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry_after,
    )
}

/// The latest checkpoint, opened with `vkey` alone; returns its size.
fn latest_size_verified(agent: &ureq::Agent, url: &str, vkey: &str) -> u64 {
    let (status, note) = common::get_text(agent, &format!("{url}/tlog/checkpoint"));
    assert_eq!(status, 200, "{note}");
    let mut known = Verifiers::new();
    known.insert_boxed(verifier_for(vkey).unwrap()).unwrap();
    let opened = open(note.as_bytes(), &known).expect("the token's key verifies it");
    assert_eq!(opened.verified.len(), 1, "{note}");
    assert!(opened.unverified.is_empty(), "{note}");
    let body = evault_note::Checkpoint::parse(&opened.text).unwrap();
    assert_eq!(body.origin, ORIGIN);
    body.size
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_log_is_signed_inside_the_token_across_restarts_and_its_absence() {
    if !softhsm_present("the_log_is_signed_inside_the_token_across_restarts_and_its_absence") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = init_token(d);
    let pin = d.join("pin");
    std::fs::write(&pin, "4321\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let uri = format!(
        "pkcs11:token=vault;object=log-key?module-path={SOFTHSM}&pin-source={}",
        pin.display()
    );
    let env = [("SOFTHSM2_CONF", conf.as_path())];

    // The key is made inside the token; only its public half comes out.
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(["keys", "generate", ORIGIN, "--pkcs11", &uri])
        .env("SOFTHSM2_CONF", &conf)
        .env_remove("EVAULT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let data = d.join("data");
    let args = ["--origin", ORIGIN, "--signer", uri.as_str()];
    let start = || Server::start_env(&data, &args, Stderr::Drain, "warn", &env);
    let agent = common::agent();

    // 1. The vault publishes the token's key and signs with it.
    let server = start();
    let url = server.url.clone();
    let (status, info) = common::get_json(&agent, &format!("{url}/api/v1/log"));
    assert_eq!(status, 200);
    assert_eq!(info["verifier_key"], vkey.as_str());
    assert!(!data.join("log.key").exists(), "no key file is written");
    let (status, r, _) = put(&agent, &url, "first", "?wait=checkpoint");
    assert_eq!(status, 201, "{r}");
    assert!(r["checkpoint_size"].as_u64().unwrap() >= 1, "{r}");
    assert!(latest_size_verified(&agent, &url, &vkey) >= 1);
    // A value other than `checkpoint` is a clear 400.
    let (status, r, _) = put(&agent, &url, "x", "?wait=forever");
    assert_eq!(status, 400, "{r}");
    assert!(server.terminate(Duration::from_secs(30)));

    // 2. Restarted, it opens the same key in the token and goes on.
    let server = start();
    let url = server.url.clone();
    let (status, r, _) = put(&agent, &url, "second", "?wait=checkpoint");
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["record"]["leaf_index"], 1, "{r}");
    assert!(latest_size_verified(&agent, &url, &vkey) >= 2);

    // 3. The token is taken away. Plain writes still commit; the
    // checkpoint that would cover them cannot be signed, and the vault
    // says so.
    let tokens = d.join("tokens");
    let away = d.join("tokens-away");
    std::fs::rename(&tokens, &away).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    let (status, r, _) = put(&agent, &url, "third", "");
    assert_eq!(status, 201, "{r}");
    let third = r["record"]["id"].as_str().unwrap().to_string();
    let mut readyz = String::new();
    wait_until("/readyz to report the signer", || {
        let (status, text) = common::get_text(&agent, &format!("{url}/readyz"));
        readyz = text;
        status == 503 && readyz.contains("evidence signer")
    });
    assert!(!readyz.contains("4321"), "the PIN is never shown: {readyz}");
    let (_, before) = common::get_json(&agent, &format!("{url}/api/v1/log"));
    let (status, r, retry) = put(&agent, &url, "fourth", "?wait=checkpoint");
    assert_eq!(status, 503, "{r}");
    assert!(retry.is_some(), "503 carries Retry-After");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("signer is unavailable"),
        "{r}"
    );
    let (_, after) = common::get_json(&agent, &format!("{url}/api/v1/log"));
    assert_eq!(
        before["tree_size"], after["tree_size"],
        "a refused write writes nothing"
    );
    let (status, proof) = common::get_json(&agent, &format!("{url}/api/v1/evidence/{third}/proof"));
    assert_eq!(status, 503, "{proof}");

    // 4. The token is back: signing resumes by itself.
    std::fs::remove_dir(&tokens).unwrap();
    std::fs::rename(&away, &tokens).unwrap();
    wait_until("/readyz to recover", || {
        common::get_text(&agent, &format!("{url}/readyz")).0 == 200
    });
    let (status, r, _) = put(&agent, &url, "fourth", "?wait=checkpoint");
    assert_eq!(status, 201, "{r}");
    let covered = r["checkpoint_size"].as_u64().unwrap();
    assert!(covered > r["record"]["leaf_index"].as_u64().unwrap(), "{r}");
    assert!(latest_size_verified(&agent, &url, &vkey) >= covered);
    let (status, proof) = common::get_json(&agent, &format!("{url}/api/v1/evidence/{third}/proof"));
    assert_eq!(status, 200, "{proof}");
    assert!(server.terminate(Duration::from_secs(30)));
}

#[test]
fn a_signer_uri_that_cannot_be_used_stops_serve_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_evault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env("EVAULT_STATE_DIR", dir.path().join("state"))
            .env_remove("EVAULT_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            &["--signer", "/etc/evault/log.key"][..],
            "expected a file: or pkcs11: URI",
        ),
        (
            &["--signer", "file:/a.key", "--key-file", "/b.key"][..],
            "not both",
        ),
        (
            &["--signer", "pkcs11:object=k?module-path=/nonexistent.so"][..],
            "name the token",
        ),
        (
            &[
                "--signer",
                "pkcs11:token=t;object=k?module-path=/nonexistent/libpkcs11.so&pin-value=731942",
            ][..],
            "evidence log's signer (PKCS#11 token \"t\", key \"k\") cannot be opened",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("731942"),
            "the PIN is never shown: {stderr}"
        );
    }
    // Nor by --help, which shows the environment's values of other flags.
    let help = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(["serve", "--help"])
        .env(
            "EVAULT_SIGNER",
            "pkcs11:token=t;object=k?module-path=/m.so&pin-value=731942",
        )
        .env(
            "EVAULT_AUDIT_SIGNER",
            "pkcs11:token=a;object=k?module-path=/m.so&pin-value=731942",
        )
        .env_remove("EVAULT_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--signer"), "{text}");
    assert!(!text.contains("731942"), "the PIN is never shown: {text}");
    // Nor by a config file error on the line that holds it.
    let config = dir.path().join("evault.toml");
    std::fs::write(
        &config,
        "signer = \"pkcs11:token=t;object=k?module-path=/m.so&pin-value=731942\" oops\n",
    )
    .unwrap();
    let out = run(&["--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("evault.toml"), "{stderr}");
    assert!(
        !stderr.contains("731942"),
        "the PIN is never shown: {stderr}"
    );
}
