//! The vault survives its environment: a full disk that also holds its
//! log, and a standard error nobody reads any more.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use evault_auth::{KeystoreFile, Role, Secret, ServiceAccountKey};
use evault_note::{Ed25519Verifier, Verifiers};
use evault_verify::ProofBundle;
use serde_json::Value;

use crate::common::{self, Server, Stderr, agent, get_json};
use crate::faults_required;

/// Longest any condition below may take to come true.
const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Some`, or fails with `what` after
/// [`DEADLINE`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Says a fault cannot be set up here: a failure under
/// `EVAULT_REQUIRE_FAULTS=1`, a loud skip otherwise.
fn skip(test: &str, why: &str) {
    assert!(
        !faults_required(),
        "{test}: {why} (EVAULT_REQUIRE_FAULTS=1)"
    );
    eprintln!("SKIP: {test}: {why}");
}

/// A small tmpfs, unmounted when dropped (also when the test panics).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a child not reaped yet): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the file system of `path` with one file there; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
    written
}

/// POSTs a text record; the status and the parsed body.
fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> (u16, String, Value) {
    let mut resp = agent
        .post(format!("{url}/api/v1/evidence"))
        .header("Content-Type", "text/plain")
        .header("Authorization", common::bearer())
        .send(body)
        .expect("POST evidence");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        ctype,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// GET without a token: status and body text.
fn probe(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut resp = agent.get(url).call().expect("GET");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// A unique payload of about `size` bytes.
fn payload(tag: &str, i: usize, size: usize) -> Vec<u8> {
    let mut p = format!("{tag} record {i} ").into_bytes();
    p.resize(size, b'x');
    p
}

#[test]
fn a_full_disk_holding_the_log_refuses_writes_cleanly_and_recovers_without_restart() {
    const TEST: &str = "disk full";
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("small-disk");
    let disk = match Tmpfs::mount(&mnt, "24m") {
        Ok(d) => d,
        Err(why) => return skip(TEST, &why),
    };
    let data = disk.path.join("data");
    let log = disk.path.join("serve.log");
    // Declared after the mount: dropped (killed) before it is unmounted.
    let server = Server::start_with(&data, &[], Stderr::File(log.clone()), "info");
    let http = agent();
    let url = server.url.clone();
    let mut acked: Vec<String> = Vec::new();
    let ack = |acked: &mut Vec<String>, v: &Value| {
        acked.push(v["record"]["id"].as_str().expect("record id").to_string());
    };

    for i in 0..5 {
        let (s, _, v) = post(&http, &url, &payload("before", i, 1000));
        assert_eq!(s, 201, "{v}");
        ack(&mut acked, &v);
    }

    // Everything but a little room goes to a filler file; records use up
    // the rest until the vault refuses them.
    let filler = disk.path.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler got no space");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(filled.saturating_sub(1024 * 1024)).unwrap();
    drop(f);
    let mut refused = None;
    for i in 0..2000 {
        let (s, ctype, v) = post(&http, &url, &payload("filling", i, 16 * 1024));
        match s {
            201 => ack(&mut acked, &v),
            _ => {
                refused = Some((s, ctype, v));
                break;
            }
        }
    }
    let (status, ctype, body) = refused.expect("the disk never filled up");
    eprintln!(
        "disk full: {} records acknowledged, then {status}: {}",
        acked.len(),
        body["detail"]
    );
    assert!(
        status == 507 || status == 503,
        "a put on a full disk answered {status}: {body}"
    );
    assert!(ctype.starts_with("application/problem+json"), "{ctype}");
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{body}");

    // While full: writes are refused cleanly (never a 500, never a hang),
    // reads and liveness answer, readiness says why.
    for i in 0..5 {
        let (s, ctype, v) = post(&http, &url, &payload("while full", i, 16 * 1024));
        if s == 201 {
            // A little space came free (e.g. a WAL checkpoint); still acked.
            ack(&mut acked, &v);
            continue;
        }
        assert!(s == 507 || s == 503, "a put while full answered {s}: {v}");
        assert!(ctype.starts_with("application/problem+json"), "{ctype}");
    }
    let (s, text) = probe(&http, &format!("{url}/healthz"));
    assert_eq!(s, 200, "healthz while the disk is full: {text}");
    let (s, text) = probe(&http, &format!("{url}/readyz"));
    assert_eq!(s, 503, "readyz while the disk is full: {text}");
    assert!(text.contains("full"), "readyz does not say why: {text}");
    let (s, v) = get_json(&http, &format!("{url}/api/v1/evidence/{}", acked[0]));
    assert_eq!(s, 200, "a read while the disk is full: {v}");

    // Space comes back: writes succeed again, no restart.
    std::fs::remove_file(&filler).unwrap();
    let mut i = 0;
    let v = eventually("a put succeeds once space is freed", || {
        i += 1;
        let (s, _, v) = post(&http, &url, &payload("after", i, 1000));
        (s == 201).then_some(v)
    });
    ack(&mut acked, &v);
    for j in 0..5 {
        let (s, _, v) = post(&http, &url, &payload("after more", j, 1000));
        assert_eq!(s, 201, "{v}");
        ack(&mut acked, &v);
    }
    eventually("readyz is 200 again", || {
        (probe(&http, &format!("{url}/readyz")).0 == 200).then_some(())
    });
    assert!(
        server.child.id() > 0 && std::fs::metadata(&log).is_ok(),
        "the server and its log are still there"
    );

    // Nothing acknowledged is lost: each record has a valid proof.
    let (_, info) = get_json(&http, &format!("{url}/api/v1/log"));
    let key = Ed25519Verifier::from_verifier_key(info["verifier_key"].as_str().unwrap()).unwrap();
    let verifiers = Verifiers::new().with(key).unwrap();
    for id in &acked {
        let bundle = eventually(&format!("a proof of {id}"), || {
            let (s, v) = get_json(&http, &format!("{url}/api/v1/evidence/{id}/proof"));
            (s == 200).then(|| serde_json::from_value::<ProofBundle>(v).expect("bundle"))
        });
        bundle
            .verify(&verifiers, Some("test.example/crash"))
            .unwrap_or_else(|e| panic!("the proof of {id} does not verify: {e}"));
    }
    drop(server);
    drop(disk);
}

/// A second service account, removed from the keystore during the test.
fn victim_key() -> ServiceAccountKey {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]);
    ServiceAccountKey {
        key_id: "victim".into(),
        principal: "test:victim".into(),
        roles: vec![Role::Auditor],
        secret: Secret::from_base64url(&secret).expect("secret"),
        expires_at: None,
    }
}

fn whoami(agent: &ureq::Agent, url: &str, token: &str) -> u16 {
    agent
        .get(format!("{url}/api/v1/whoami"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("GET whoami")
        .status()
        .as_u16()
}

/// The keystore in `data` with the test key, and the victim's if `victim`.
fn save_keystore(data: &Path, victim: bool) {
    common::write_keystore(data);
    let path = data.join("service-accounts.json");
    let mut file = KeystoreFile::load(&path).expect("keystore");
    if victim {
        file.keys.push(victim_key());
    }
    file.save(&path).expect("save keystore");
}

/// Sum of the samples of a Prometheus counter in a `/metrics` text.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn with_stderr_a_closed_pipe_the_server_keeps_serving_and_reloading_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    save_keystore(&data, true);
    // Info level: every keystore reload and more is logged, into the void.
    let mut server = Server::start_with(&data, &[], Stderr::CloseAfterStart, "info");
    let http = agent();
    let url = server.url.clone();
    let victim = {
        let k = victim_key();
        evault_auth::mint_service_token(
            &k,
            &k.roles,
            Duration::from_secs(3600),
            std::time::SystemTime::now(),
        )
        .expect("mint")
    };
    assert_eq!(whoami(&http, &url, &victim), 200);
    for i in 0..20 {
        let (s, _, v) = post(&http, &url, &payload("closed stderr", i, 100));
        assert_eq!(s, 201, "{v}");
    }

    // The watcher still reloads: a removed key stops working.
    save_keystore(&data, false);
    eventually("the removed key is refused", || {
        (whoami(&http, &url, &victim) == 401).then_some(())
    });

    // SIGHUP reloads too, and does not stop the process.
    save_keystore(&data, true);
    let pid = server.child.id().to_string();
    let hup = Command::new("kill").args(["-HUP", &pid]).status();
    assert!(hup.is_ok_and(|s| s.success()), "kill -HUP {pid}");
    eventually("the restored key works again after SIGHUP", || {
        (whoami(&http, &url, &victim) == 200).then_some(())
    });

    // The lost log lines were counted, not fatal.
    let (s, metrics) = common::get_text(&http, &format!("{url}/metrics"));
    assert_eq!(s, 200);
    assert!(
        counter(&metrics, "evault_log_write_errors_total") > 0.0,
        "no log write error counted: {metrics}"
    );
    let (s, _, v) = post(&http, &url, b"still writing");
    assert_eq!(s, 201, "{v}");
    assert_eq!(probe(&http, &format!("{url}/healthz")).0, 200);
    assert_eq!(probe(&http, &format!("{url}/readyz")).0, 200);
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "the server exited"
    );
    assert!(server.terminate(DEADLINE), "a clean exit after SIGTERM");
}
