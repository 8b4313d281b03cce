//! Starting a real `evault serve` child and talking to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The one service-account key every test server has: all roles.
pub const KEY_ID: &str = "test-all";
pub const PRINCIPAL: &str = "test:cli";

fn test_key() -> evault_auth::ServiceAccountKey {
    use base64::Engine as _;
    use evault_auth::{Role, Secret, ServiceAccountKey};
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    ServiceAccountKey {
        key_id: KEY_ID.into(),
        principal: PRINCIPAL.into(),
        roles: vec![Role::Ingester, Role::Auditor, Role::Admin],
        secret: Secret::from_base64url(&secret).expect("test secret"),
        expires_at: None,
    }
}

/// A token of the test key, valid for an hour; the same for every server.
pub fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let key = test_key();
        evault_auth::mint_service_token(
            &key,
            &key.roles,
            Duration::from_secs(3600),
            std::time::SystemTime::now(),
        )
        .expect("mint")
    })
}

/// A token of the test key that carries only `roles`, valid for an hour.
pub fn token_with(roles: &[evault_auth::Role]) -> String {
    let key = test_key();
    evault_auth::mint_service_token(
        &key,
        roles,
        Duration::from_secs(3600),
        std::time::SystemTime::now(),
    )
    .expect("mint")
}

pub fn bearer() -> String {
    format!("Bearer {}", token())
}

/// Writes the keystore with the test key and `extra` keys, each given as
/// (key id, principal, roles) with the secret of `[n; 32]`, n its position
/// after the test key (1, 2, …); returns a one-hour token of each extra key.
pub fn write_keystore_with(
    data_dir: &Path,
    extra: &[(&str, &str, &[evault_auth::Role])],
) -> Vec<String> {
    use base64::Engine as _;
    std::fs::create_dir_all(data_dir).expect("data dir");
    let mut keys = vec![test_key()];
    let mut tokens = Vec::new();
    for (n, (key_id, principal, roles)) in extra.iter().enumerate() {
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([n as u8 + 1; 32]);
        let key = evault_auth::ServiceAccountKey {
            key_id: (*key_id).into(),
            principal: (*principal).into(),
            roles: roles.to_vec(),
            secret: evault_auth::Secret::from_base64url(&secret).expect("test secret"),
            expires_at: None,
        };
        tokens.push(
            evault_auth::mint_service_token(
                &key,
                roles,
                Duration::from_secs(3600),
                std::time::SystemTime::now(),
            )
            .expect("mint"),
        );
        keys.push(key);
    }
    evault_auth::KeystoreFile { keys }
        .save(&data_dir.join("service-accounts.json"))
        .expect("keystore");
    tokens
}

/// Writes the keystore with the test key into `data_dir`.
pub fn write_keystore(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    evault_auth::KeystoreFile {
        keys: vec![test_key()],
    }
    .save(&data_dir.join("service-accounts.json"))
    .expect("keystore");
}

/// Where a test server's standard error goes.
pub enum Stderr {
    /// A pipe the test drains (the default).
    Drain,
    /// A pipe whose read end the test closes once the server is up: every
    /// later write is EPIPE (a dead log shipper).
    CloseAfterStart,
    /// A file (e.g. on the same small disk as the data directory).
    File(std::path::PathBuf),
}

pub struct Server {
    pub child: Child,
    pub url: String,
    /// `ADDR:PORT` of the gRPC API, unless it was turned off.
    pub grpc: Option<String>,
}

impl Server {
    /// Starts `evault serve` on a free port and waits until it answers.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(data_dir, extra, Stderr::Drain, "warn")
    }

    /// [`Server::start`] with its standard error sent to `stderr` and its
    /// log filter (`EVAULT_LOG`) set to `log`.
    pub fn start_with(data_dir: &Path, extra: &[&str], stderr: Stderr, log: &str) -> Server {
        Server::start_env(data_dir, extra, stderr, log, &[])
    }

    /// [`Server::start_with`] with more environment variables.
    pub fn start_env(
        data_dir: &Path,
        extra: &[&str],
        stderr: Stderr,
        log: &str,
        env: &[(&str, &Path)],
    ) -> Server {
        if !data_dir.join("service-accounts.json").exists() {
            write_keystore(data_dir);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_evault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            // A test that names its origin (or a config file that may) does
            // without the default one.
            .args(
                if extra.iter().any(|a| *a == "--origin" || *a == "--config") {
                    &[][..]
                } else {
                    &["--origin", "test.example/crash"][..]
                },
            )
            .args(if extra.contains(&"--checkpoint-interval") {
                &[][..]
            } else {
                &["--checkpoint-interval", "50ms"][..]
            })
            .args(if extra.contains(&"--grpc-listen") {
                &[][..]
            } else {
                &["--grpc-listen", "127.0.0.1:0"][..]
            })
            .args(extra)
            // Never the user's state directory; a test of restores names
            // one outside the data directory with --state-dir.
            .env("EVAULT_STATE_DIR", data_dir.join("state"))
            .env("EVAULT_LOG", log)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(match &stderr {
                Stderr::File(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
                _ => Stdio::piped(),
            })
            .spawn()
            .expect("spawn evault serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        if let Stderr::File(path) = &stderr {
            return Server::started_from_file(child, path, deadline);
        }
        let pipe = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(pipe).lines();
        let mut url = None;
        let mut grpc = None;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("evault: serving gRPC on ") {
                        grpc = rest.split_whitespace().next().map(str::to_string);
                    } else if let Some(rest) = line.strip_prefix("evault: serving ") {
                        url = rest.split_whitespace().next().map(str::to_string);
                        break;
                    }
                    seen.push(line);
                }
                _ => break,
            }
        }
        let url = url.unwrap_or_else(|| panic!("evault serve did not start: {seen:?}"));
        if matches!(stderr, Stderr::CloseAfterStart) {
            drop(lines);
        } else {
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.by_ref() {});
        }
        Server { child, url, grpc }
    }

    /// Waits for the start-up lines in the log file `path`.
    fn started_from_file(mut child: Child, path: &Path, deadline: Instant) -> Server {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let find = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string)
            };
            if let Some(url) = find("evault: serving http") {
                let url = format!("http{url}");
                let grpc = find("evault: serving gRPC on ");
                return Server { child, url, grpc };
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("evault serve exited ({status}) before serving: {text}");
            }
            assert!(
                Instant::now() < deadline,
                "evault serve did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (at most `limit`) for the process to exit;
    /// returns whether it exited successfully.
    pub fn terminate(mut self, limit: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "evault serve did not exit within {limit:?} of SIGTERM"
            );
            std::thread::yield_now();
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub fn get_json(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    get_json_as(agent, url, token())
}

/// GET with `token` as bearer token.
pub fn get_json_as(agent: &ureq::Agent, url: &str, token: &str) -> (u16, Value) {
    let mut resp = agent
        .get(url)
        .header("Accept", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("GET");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub fn get_text(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut resp = agent
        .get(url)
        .header("Authorization", bearer())
        .call()
        .expect("GET");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().expect("body"))
}

/// POSTs `body` with one label; returns its leaf index (201 only).
pub fn post_labelled(url: &str, body: &[u8], label: &str) -> u64 {
    let mut resp = agent()
        .post(format!("{url}/api/v1/evidence"))
        .header("Content-Type", "application/octet-stream")
        .header("X-Evault-Label", label)
        .header("Authorization", bearer())
        .send(body)
        .expect("POST evidence");
    assert_eq!(resp.status().as_u16(), 201, "POST evidence");
    let v: Value =
        serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("JSON");
    v["record"]["leaf_index"].as_u64().expect("leaf index")
}

/// Polls until the latest checkpoint covers `size` (30 s at most).
pub fn wait_checkpoint(url: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, cp) = get_json(&agent(), &format!("{url}/api/v1/checkpoints/latest"));
        if status == 200 && cp["size"].as_u64().is_some_and(|s| s >= size) {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        std::thread::yield_now();
    }
}

/// A stopped vault under `root` with `records` records (labels `n=0`..`n=4`;
/// the last a blob file), a checkpoint awaited at `first` and at the end;
/// returns its data directory.
pub fn seed_stopped(root: &Path, records: usize, first: usize) -> std::path::PathBuf {
    let data = root.join("data");
    let server = Server::start(&data, &[]);
    for i in 0..records - 1 {
        if i == first {
            wait_checkpoint(&server.url, first as u64);
        }
        let leaf = post_labelled(
            &server.url,
            format!("record {i}").as_bytes(),
            &format!("n={}", i % 5),
        );
        assert_eq!(leaf, i as u64);
    }
    // Above the default inline maximum (64 KiB): a blob file.
    let blob: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    post_labelled(&server.url, &blob, "n=blob");
    wait_checkpoint(&server.url, records as u64);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");
    data
}

/// Copies the directory tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Each of `ids` is served and has an inclusion proof (polled while its
/// checkpoint is signed) that verifies offline against `verifiers` and
/// `origin`.
pub fn assert_provable(
    http: &ureq::Agent,
    url: &str,
    ids: &[String],
    verifiers: &evault_note::Verifiers,
    origin: &str,
) {
    for id in ids {
        let (status, _) = get_json(http, &format!("{url}/api/v1/evidence/{id}"));
        assert_eq!(status, 200, "acknowledged record {id} is missing");
        let deadline = Instant::now() + Duration::from_secs(30);
        let bundle = loop {
            let (s, v) = get_json(http, &format!("{url}/api/v1/evidence/{id}/proof"));
            if s == 200 {
                break serde_json::from_value::<evault_verify::ProofBundle>(v)
                    .expect("a proof bundle");
            }
            assert!(Instant::now() < deadline, "no proof for {id}: {s} {v}");
            std::thread::sleep(Duration::from_millis(20));
        };
        bundle
            .verify(verifiers, Some(origin))
            .unwrap_or_else(|e| panic!("the proof of {id} does not verify: {e}"));
    }
}
