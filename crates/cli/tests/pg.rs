//! `evault serve`, `fsck` and `migrate` with the logs in PostgreSQL: each
//! test has a database of its own on the server `EVAULT_TEST_POSTGRES`
//! names (skipped loudly without one, unless EVAULT_REQUIRE_POSTGRES=1).
//! The crash rounds run on PostgreSQL too (`crash.rs`).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, post_labelled, wait_checkpoint};
use evault_store::testing::postgres::TestDb;
use serde_json::Value;

/// Runs `evault args`, its state directory under `data` (never the
/// user's).
fn evault(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_STORE")
        .env("EVAULT_STATE_DIR", data.join("state"))
        .output()
        .expect("run evault")
}

/// Runs `evault serve` on `store` with `extra`, which must fail: its
/// standard error.
fn serve_refused(data: &Path, store: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "off",
        "--store",
        store,
    ];
    args.extend_from_slice(extra);
    let out = evault(data, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

/// `serve` refuses a database without the schema, naming the command that
/// makes it, and never prints the URL's password.
#[test]
fn serve_refuses_an_unmigrated_database_naming_the_command() {
    let Some(db) = TestDb::create("serve_refuses_an_unmigrated_database_naming_the_command") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::write_keystore(&data);
    let url = db.url_as("postgres", "pw-s3cret");
    let refused = |store: &str, extra: &[&str]| serve_refused(&data, store, extra);
    let stderr = refused(&url, &[]);
    assert!(
        stderr.contains("has no evault schema")
            && stderr.contains("evault migrate --store postgres://postgres:***@"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-s3cret"), "{stderr}");
    // Options it cannot run with, named before anything is connected.
    let stderr = refused(&url, &["--store-pool-size", "0"]);
    assert!(stderr.contains("store pool size 0"), "{stderr}");
    let stderr = refused(
        &url,
        &[
            "--store-reconnect-backoff",
            "2s",
            "--store-reconnect-backoff-max",
            "1s",
        ],
    );
    assert!(
        stderr.contains("--store-reconnect-backoff (2s) is longer than"),
        "{stderr}"
    );
    // Not a store at all.
    let stderr = refused("mysql://x", &[]);
    assert!(
        stderr.contains("expected `sqlite` or a postgres://"),
        "{stderr}"
    );
}

/// A vault on PostgreSQL serves, stops and serves again with what it
/// acknowledged; a clean `fsck --store` passes and writes nothing; a leaf
/// a superuser changed behind the vault's back (triggers disabled) is
/// found by `fsck` at its index, and by the next start-up, which refuses
/// to serve.
#[test]
fn a_row_altered_by_a_superuser_is_found_at_its_index() {
    let Some(db) = TestDb::create("a_row_altered_by_a_superuser_is_found_at_its_index") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = ["--store", db.url()];
    let server = Server::start(&data, &store);
    for i in 0..20u64 {
        let leaf = post_labelled(&server.url, format!("record {i}").as_bytes(), "n=1");
        assert_eq!(leaf, i);
    }
    wait_checkpoint(&server.url, 20);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    // Restarted: still there.
    let server = Server::start(&data, &store);
    let (status, log) = common::get_json(&common::agent(), &format!("{}/api/v1/log", server.url));
    assert_eq!(status, 200);
    assert_eq!(log["tree_size"], 20);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    let fsck = |extra: &[&str]| {
        let mut args = vec!["fsck", "--json", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(&store);
        args.extend_from_slice(extra);
        evault(&data, &args)
    };
    let before = db.query_text("SELECT count(*) FROM entries");
    let out = fsck(&[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["clean"], true, "{v:#}");
    assert_eq!(db.query_text("SELECT count(*) FROM entries"), before);

    // A superuser changes leaf 17 (in the right edge's tile, which the
    // start-up sample always reads), bypassing the triggers.
    db.execute(
        "ALTER TABLE entries DISABLE TRIGGER USER; \
         UPDATE entries SET leaf_data = leaf_data || '\\x00'::bytea WHERE leaf_index = 17; \
         ALTER TABLE entries ENABLE TRIGGER USER",
    )
    .unwrap();
    let out = fsck(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "leaf_hash" && f["log"] == "evidence" && f["leaf_index"] == 17);
    assert!(found, "{v:#}");

    // And the next start refuses to serve it.
    let stderr = serve_refused(&data, db.url(), &[]);
    assert!(
        stderr.contains("start-up check of the evidence log") && stderr.contains("(leaf 17)"),
        "{stderr}"
    );
}

/// `--store` takes EVAULT_STORE too, and `fsck --store` on a database
/// never migrated is refused (exit 2) naming `evault migrate`.
#[test]
fn fsck_refuses_an_unmigrated_database() {
    let Some(db) = TestDb::create("fsck_refuses_an_unmigrated_database") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data: &Path = dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(["fsck", "--data-dir", data.to_str().unwrap()])
        .env_remove("EVAULT_CONFIG")
        .env("EVAULT_STORE", db.url())
        .output()
        .expect("run evault fsck");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("evault migrate --store"), "{stderr}");
}

/// A PostgreSQL server of the test's own (`initdb` in a temporary
/// directory, a free port on 127.0.0.1), which the test stops and starts:
/// the machine's server is never restarted. Run as the `postgres` user
/// when the test runs as root (the server refuses root).
struct PrivateServer {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    as_postgres: bool,
    /// More `postgres` options (TLS).
    extra: String,
}

impl PrivateServer {
    /// `None` (skipped, said on stderr) without the server's binaries,
    /// unless EVAULT_REQUIRE_POSTGRES=1, where that fails the test.
    fn start(test: &str) -> Option<PrivateServer> {
        Self::start_with(test, false)
    }

    /// [`PrivateServer::start`] with TLS on: a certificate for 127.0.0.1
    /// signed by a test CA, whose certificate is `ca.pem` in [`Self::dir`].
    fn start_tls(test: &str) -> Option<PrivateServer> {
        Self::start_with(test, true)
    }

    fn start_with(test: &str, tls: bool) -> Option<PrivateServer> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .max_by_key(|b| {
                let v = b
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str());
                v.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
            });
        let Some(bin) = bin else {
            let why = "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin";
            if std::env::var("EVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("{test}: EVAULT_REQUIRE_POSTGRES=1 but {why}");
            }
            eprintln!("SKIPPED {test}: {why}");
            return None;
        };
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("evault-pg-")
            .tempdir()
            .expect("a temporary directory");
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:", dir.path().to_str().unwrap()])
                .status()
                .expect("chown");
            assert!(chown.success(), "chown postgres {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = PrivateServer {
            dir,
            bin,
            port,
            as_postgres,
            extra: String::new(),
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        if tls {
            server.extra = server.certificates();
        }
        server.start_again();
        Some(server)
    }

    /// Makes a test CA (`ca.pem`) and a server certificate for 127.0.0.1
    /// it signed; the options that serve it.
    fn certificates(&self) -> String {
        let dir = self.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=evault test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        // PostgreSQL serves a key only its owner can read.
        for f in ["server.key", "server.crt"] {
            let path = dir.join(f);
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if self.as_postgres {
                let chown = Command::new("chown")
                    .args(["postgres:", path.to_str().unwrap()])
                    .status()
                    .expect("chown");
                assert!(chown.success());
            }
        }
        format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        )
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    /// The server binary `tool`, run as `postgres` if need be.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        }
    }

    /// Runs the server binary `tool` with `args`.
    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    fn start_again(&self) {
        let (data, log) = (self.data(), self.dir.path().join("log"));
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}{}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would (no checkpoint; the next
    /// start replays the WAL).
    fn stop_immediately(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// Whether this process runs as root (the `id -u` of it).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// PostgreSQL stopped at once (as a crash) and started again while
/// clients write through `evault serve`: while it is away every write is
/// answered 503 with Retry-After (never another error, never a dropped
/// connection), the clients retry, and the vault writes again once the
/// database is back, without a restart of its own. Every acknowledged
/// record is then present with a proof that verifies offline.
#[test]
fn a_postgres_restart_under_load_loses_no_acknowledged_record() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let Some(pg) =
        PrivateServer::start("a_postgres_restart_under_load_loses_no_acknowledged_record")
    else {
        return;
    };
    let url = pg.url("evault");
    evault_store::postgres::create_database_if_missing(&url).unwrap();
    evault_store::postgres::migrate(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--store", &url]);

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let unavailable = Arc::new(AtomicUsize::new(0));
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|c| {
            let (base, acked, unavailable, unexpected, stop) = (
                server.url.clone(),
                acked.clone(),
                unavailable.clone(),
                unexpected.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let http = common::agent();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let sent = http
                        .post(format!("{base}/api/v1/evidence"))
                        .header("Content-Type", "text/plain")
                        .header("Authorization", common::bearer())
                        .send(format!("client {c} record {i}").as_bytes());
                    let mut resp = match sent {
                        Ok(r) => r,
                        Err(e) => {
                            unexpected.lock().unwrap().push(format!("transport: {e}"));
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    };
                    let status = resp.status().as_u16();
                    let retry_after = resp.headers().contains_key("retry-after");
                    let body = resp.body_mut().read_to_string().unwrap_or_default();
                    match status {
                        201 => {
                            let v: Value = serde_json::from_str(&body).expect("201 body is JSON");
                            let id = v["record"]["id"].as_str().expect("record id").to_string();
                            acked.lock().unwrap().push(id);
                        }
                        503 if retry_after => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            // The client backs off a little and retries.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        _ => unexpected.lock().unwrap().push(format!("{status}: {body}")),
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("200 acknowledgements", &|| {
        acked.lock().unwrap().len() >= 200
    });
    pg.stop_immediately();
    wait_for("a 503 while the database is away", &|| {
        unavailable.load(Ordering::Relaxed) > 0
    });
    pg.start_again();
    let before = acked.lock().unwrap().len();
    wait_for("200 acknowledgements after the restart", &|| {
        acked.lock().unwrap().len() >= before + 200
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "answers other than 201 and 503: {unexpected:?}"
    );

    let http = common::agent();
    let (_, log) = common::get_json(&http, &format!("{}/api/v1/log", server.url));
    let key =
        evault_note::Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap())
            .unwrap();
    let verifiers = evault_note::Verifiers::new().with(key).unwrap();
    let ids = acked.lock().unwrap().clone();
    assert!(log["tree_size"].as_u64().unwrap() >= ids.len() as u64);
    common::assert_provable(&http, &server.url, &ids, &verifiers, "test.example/crash");
    eprintln!(
        "restart test: {} acknowledged records, {} answers 503 while PostgreSQL was away",
        ids.len(),
        unavailable.load(Ordering::Relaxed)
    );
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");
}

/// Two `evault serve` on one database, sharing a cluster secret (refused
/// from a file others may read): the second starts as a standby, ready,
/// and passes calls to the leader, which answers them; when the leader is
/// killed (SIGKILL, its lease left behind), the standby answers 503 with
/// Retry-After until that lease lapses, then takes over and continues the
/// same tree, and every record either node acknowledged has a proof that
/// verifies.
#[test]
fn a_standby_takes_over_when_the_leader_is_killed() {
    use std::time::Instant;

    let Some(db) = TestDb::create("a_standby_takes_over_when_the_leader_is_killed") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    // The secret the nodes share: a file only its owner reads.
    let secret = dir.path().join("cluster-secret");
    std::fs::write(&secret, "s3cret-of-the-cluster-under-test\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let secret_arg = secret.to_str().unwrap();
    let stderr = serve_refused(&data_a, db.url(), &["--cluster-secret-file", secret_arg]);
    assert!(
        stderr.contains("readable by group or others") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cluster = ["--cluster-secret-file", secret_arg];
    let a = Server::start(
        &data_a,
        &[&["--store", db.url(), "--node-id", "node-a"][..], &cluster].concat(),
    );
    let http = common::agent();
    let post = |url: &str, body: &str| {
        let mut resp = http
            .post(format!("{url}/api/v1/evidence"))
            .header("Content-Type", "text/plain")
            .header("Authorization", common::bearer())
            .send(body.as_bytes())
            .expect("an answer");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (status, retry_after, body)
    };
    let record = |body: &str| -> (String, u64) {
        let v: Value = serde_json::from_str(body).expect("JSON");
        (
            v["record"]["id"].as_str().expect("id").to_string(),
            v["record"]["leaf_index"].as_u64().expect("leaf index"),
        )
    };
    let mut acked = Vec::new();
    for i in 0..10 {
        let (status, _, body) = post(&a.url, &format!("record {i}"));
        assert_eq!(status, 201, "{body}");
        acked.push(record(&body).0);
    }
    std::fs::create_dir_all(&data_b).unwrap();
    for key in ["log.key", "audit.key"] {
        std::fs::copy(data_a.join(key), data_b.join(key)).unwrap();
    }
    let b = Server::start(
        &data_b,
        &[&["--store", db.url(), "--node-id", "node-b"][..], &cluster].concat(),
    );
    // The standby passes calls to the leader, which answers them: it is
    // ready.
    let (status, ready) = common::get_text(&http, &format!("{}/readyz", b.url));
    assert_eq!(status, 200, "a standby that forwards is ready: {ready}");
    let (status, _, body) = post(&b.url, "to the standby");
    assert_eq!(status, 201, "{body}");
    let forwarded = record(&body);
    assert_eq!(forwarded.1, 10, "the leader's next leaf");
    acked.push(forwarded.0);

    a.kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(60);
    let first = loop {
        let (status, retry_after, body) = post(&b.url, "after the kill");
        match status {
            201 => break record(&body),
            503 if retry_after => {}
            _ => panic!("{status}: {body}"),
        }
        assert!(Instant::now() < deadline, "node-b never took over");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "node-b took over {:?} after node-a was killed",
        killed.elapsed()
    );
    assert_eq!(first.1, 11, "the same tree, continued");
    acked.push(first.0);
    let (status, ready) = common::get_text(&http, &format!("{}/readyz", b.url));
    assert_eq!(status, 200, "the new leader is ready: {ready}");

    let (_, log) = common::get_json(&http, &format!("{}/api/v1/log", b.url));
    let key =
        evault_note::Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap())
            .unwrap();
    let verifiers = evault_note::Verifiers::new().with(key).unwrap();
    common::assert_provable(&http, &b.url, &acked, &verifiers, "test.example/crash");
    assert!(b.terminate(Duration::from_secs(30)), "clean shutdown");
    assert_eq!(
        db.query_text("SELECT string_agg(DISTINCT node, ',' ORDER BY node) FROM commits")
            .as_deref(),
        Some("node-a,node-b")
    );
}

/// TLS to PostgreSQL: with `sslmode=verify-full` and the server's CA as
/// `sslrootcert`, `migrate` and `serve` work and every connection of the
/// vault is encrypted (the server's own `pg_stat_ssl` says so); a root
/// that did not sign the server's certificate, or the system's roots, are
/// refused with the reason; no `sslmode` stays in the clear.
#[test]
fn tls_to_postgres_verifies_the_server_certificate() {
    let Some(pg) = PrivateServer::start_tls("tls_to_postgres_verifies_the_server_certificate")
    else {
        return;
    };
    let ca = pg.dir.path().join("ca.pem");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url("evault"),
        ca.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = evault(&data, &["migrate", "--store", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::start(&data, &["--store", &url]);
    post_labelled(&server.url, b"over TLS", "via=tls");
    wait_checkpoint(&server.url, 1);
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "evault",
            ])
            .args(["-Atc", sql])
            .env("PGSSLMODE", "disable")
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let vault_sessions = "FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                          WHERE a.application_name = 'evault'";
    let total: u32 = psql(&format!("SELECT count(*) {vault_sessions}"))
        .parse()
        .unwrap();
    assert!(total > 0, "the vault holds connections");
    assert_eq!(
        psql(&format!("SELECT count(*) {vault_sessions} AND NOT s.ssl")),
        "0",
        "every connection of the vault is encrypted"
    );
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    // A root that did not sign the server's certificate.
    let other = pg.dir.path().join("other.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            "/dev/null",
            "-out",
            other.to_str().unwrap(),
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=another CA"])
        .output()
        .unwrap();
    assert!(made.status.success());
    for bad in [
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url("evault"),
            other.display()
        ),
        format!("{}?sslmode=require", pg.url("evault")),
    ] {
        let out = evault(&data, &["migrate", "--store", &bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: {stderr}");
        assert!(stderr.contains("certificate"), "{bad}: {stderr}");
    }
    // No sslmode: in the clear, as before.
    let plain = pg.url("evault");
    let out = evault(
        &data,
        &[
            "fsck",
            "--data-dir",
            data.to_str().unwrap(),
            "--store",
            &plain,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 14's cluster test: three `evault serve` on one database, clients
/// writing through all three (each record retried with its idempotency key
/// on another node until acknowledged); the leader is killed with SIGKILL
/// under that load, then the node that took over is stopped (SIGSTOP) past
/// its lease, so the third takes over, and resumed. Every acknowledged
/// record has a proof that verifies offline; every checkpoint is consistent
/// with the next and with the last (so with every later one: a prefix of a
/// prefix is a prefix); the resumed node commits nothing after the third
/// node's first commit.
#[test]
fn three_nodes_lose_nothing_through_a_kill_and_a_cut() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let Some(db) = TestDb::create("three_nodes_lose_nothing_through_a_kill_and_a_cut") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster-secret");
    std::fs::write(&secret, "s3cret-of-the-cluster-under-test\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let names = ["node-a", "node-b", "node-c"];
    let data: Vec<_> = names.iter().map(|n| dir.path().join(n)).collect();
    let start = |i: usize| {
        Server::start(
            &data[i],
            &[
                "--store",
                db.url(),
                "--node-id",
                names[i],
                "--cluster-secret-file",
                secret.to_str().unwrap(),
            ],
        )
    };
    let mut nodes: Vec<Option<Server>> = vec![Some(start(0))];
    for d in &data[1..] {
        std::fs::create_dir_all(d).unwrap();
        for key in ["log.key", "audit.key"] {
            std::fs::copy(data[0].join(key), d.join(key)).unwrap();
        }
    }
    nodes.push(Some(start(1)));
    nodes.push(Some(start(2)));
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().url.clone())
        .collect();
    let holder = || {
        db.query_text("SELECT holder FROM lease")
            .unwrap_or_default()
    };
    let epoch = || -> u64 {
        db.query_text("SELECT epoch FROM lease")
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(holder(), "node-a");

    // Clients: each record is retried, with its idempotency key, on the
    // next node until one acknowledges it.
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (urls, acked, unexpected, stop) = (
                urls.clone(),
                acked.clone(),
                unexpected.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let http = common::agent();
                let mut at = w % urls.len();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let key = format!("client-{w}-record-{i}");
                    loop {
                        let sent = http
                            .post(format!("{}/api/v1/evidence", urls[at]))
                            .header("Content-Type", "text/plain")
                            .header("Authorization", common::bearer())
                            .header("Idempotency-Key", &key)
                            .send(key.as_bytes());
                        let (status, retry, body) = match sent {
                            Ok(mut r) => (
                                r.status().as_u16(),
                                r.headers().contains_key("retry-after"),
                                r.body_mut().read_to_string().unwrap_or_default(),
                            ),
                            Err(_) => (0, true, String::new()),
                        };
                        match status {
                            201 | 200 => {
                                let v: Value = serde_json::from_str(&body).expect("JSON");
                                let id = v["record"]["id"].as_str().expect("id").to_string();
                                acked.lock().unwrap().push((id, Instant::now()));
                                break;
                            }
                            // A dead, stopped or standby-without-leader
                            // node: try the next one.
                            0 | 503 if retry => {
                                at = (at + 1) % urls.len();
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            _ => {
                                unexpected.lock().unwrap().push(format!("{status}: {body}"));
                                break;
                            }
                        }
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let acks = || acked.lock().unwrap().len();
    wait_for("300 acknowledgements", &|| acks() >= 300);

    // SIGKILL the leader under load.
    nodes[0].take().unwrap().kill();
    let killed = Instant::now();
    let first_epoch = epoch();
    wait_for("a new leader", &|| holder() != "node-a");
    let before = acks();
    wait_for("acknowledgements after the kill", &|| {
        acks() >= before + 200
    });
    let takeover = acked
        .lock()
        .unwrap()
        .iter()
        .find(|(_, t)| *t > killed)
        .map(|(_, t)| t.duration_since(killed));
    eprintln!("after the SIGKILL the first acknowledgement came {takeover:?} later");

    // Cut the new leader off (SIGSTOP) past its lease; the third node
    // takes over; then resume it.
    let cut_name = holder();
    let cut = names.iter().position(|n| *n == cut_name).unwrap();
    let cut_epoch = epoch();
    assert!(cut_epoch > first_epoch);
    let pid = nodes[cut].as_ref().unwrap().child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = Instant::now();
    wait_for("the third node to lead", &|| {
        let h = holder();
        h != cut_name && h != "node-a"
    });
    let third_epoch = epoch();
    let before = acks();
    wait_for("acknowledgements while it is stopped", &|| {
        acks() >= before + 200
    });
    eprintln!(
        "the third node leads; {} acknowledgements within {:?} of the SIGSTOP",
        acks() - before,
        stopped.elapsed()
    );
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let before = acks();
    wait_for("acknowledgements after the resume", &|| {
        acks() >= before + 200
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let unexpected = unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");

    // Every acknowledged record, proven through every live node.
    let http = common::agent();
    let leader_url = &urls[names.iter().position(|n| *n == holder()).unwrap()];
    let (_, log) = common::get_json(&http, &format!("{leader_url}/api/v1/log"));
    let key =
        evault_note::Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap())
            .unwrap();
    let verifiers = evault_note::Verifiers::new().with(key).unwrap();
    let mut ids: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    for url in &urls[1..] {
        common::assert_provable(&http, url, &ids, &verifiers, "test.example/crash");
    }

    // One linear history.
    let mut notes = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = common::get_json(
            &http,
            &format!("{leader_url}/api/v1/checkpoints?limit=1000{cursor}"),
        );
        for c in page["items"].as_array().unwrap() {
            notes.push(c["note"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    let cps: Vec<_> = notes
        .iter()
        .map(|n| {
            evault_verify::open_checkpoint(n, &verifiers, None)
                .unwrap()
                .0
        })
        .collect();
    let last = cps.last().unwrap().clone();
    let consistent = |old: &evault_note::Checkpoint, new: &evault_note::Checkpoint| {
        if old.size == 0 || old.size == new.size {
            assert!(old.size != new.size || old.root_hash == new.root_hash);
            return;
        }
        let (s, p) = common::get_json(
            &http,
            &format!(
                "{leader_url}/api/v1/tree/consistency?from={}&to={}",
                old.size, new.size
            ),
        );
        assert_eq!(s, 200, "consistency {}..{}", old.size, new.size);
        let proof: Vec<Vec<u8>> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(h.as_str().unwrap())
                    .unwrap()
            })
            .collect();
        evault_merkle::verify_consistency(
            old.size,
            new.size,
            &proof,
            &old.root_hash,
            &new.root_hash,
        )
        .unwrap_or_else(|e| panic!("fork between {} and {}: {e}", old.size, new.size));
    };
    for w in cps.windows(2) {
        assert!(w[0].size < w[1].size, "checkpoints grow");
        consistent(&w[0], &w[1]);
    }
    for cp in &cps {
        consistent(cp, &last);
    }

    // The resumed node wrote nothing once the third node had committed.
    assert_eq!(
        db.query_text(&format!(
            "SELECT count(*) FROM commits WHERE node = '{cut_name}' AND seq > \
             (SELECT min(seq) FROM commits WHERE epoch = {third_epoch})"
        ))
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        db.query_text(&format!(
            "SELECT count(*) FROM commits WHERE epoch > {third_epoch}"
        ))
        .as_deref(),
        Some("0"),
        "the third node kept the lease"
    );
    eprintln!(
        "cluster test: {} acknowledged records, {} checkpoints, epochs {first_epoch} → {cut_epoch} \
         → {third_epoch}",
        ids.len(),
        cps.len()
    );
    for n in nodes.into_iter().flatten() {
        assert!(n.terminate(Duration::from_secs(30)), "clean shutdown");
    }
}

/// On PostgreSQL the service-account keys are the database's, which every
/// node reads: the first node copies its file's keys in; a key made with
/// `evault sa create --store` works through all three nodes, and once
/// `evault sa revoke --store` removes it, all three refuse it (the time
/// each took is printed); after the leader is killed, the node that takes
/// over knows a key made after the revocation and still refuses the
/// revoked one, and a key revoked then is refused by both survivors.
/// Nodes and the CLI run as the vault's least-privilege role.
#[test]
fn a_key_revoked_on_the_database_is_refused_by_every_node() {
    use std::time::Instant;

    let Some(db) = TestDb::create("a_key_revoked_on_the_database_is_refused_by_every_node") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    // Nodes and `evault sa` run as the vault's least-privilege role, as
    // OPERATIONS.md tells: it may read the keystore and add versions.
    let role = db.role_name("app");
    evault_store::postgres::grant_app_role(db.url(), &role, Some("app-pw")).unwrap();
    let app_url = db.url_as(&role, "app-pw");
    let dir = tempfile::tempdir().unwrap();
    let names = ["node-a", "node-b", "node-c"];
    let data: Vec<_> = names.iter().map(|n| dir.path().join(n)).collect();
    let start = |i: usize| Server::start(&data[i], &["--store", &app_url, "--node-id", names[i]]);
    let mut nodes = vec![Some(start(0))];
    assert_eq!(
        db.query_text("SELECT count(*) FROM keystore").as_deref(),
        Some("1"),
        "the first node copied its keys in"
    );
    for d in &data[1..] {
        std::fs::create_dir_all(d).unwrap();
        for key in ["log.key", "audit.key"] {
            std::fs::copy(data[0].join(key), d.join(key)).unwrap();
        }
    }
    nodes.push(Some(start(1)));
    nodes.push(Some(start(2)));
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().url.clone())
        .collect();
    assert_eq!(
        db.query_text("SELECT count(*) FROM keystore").as_deref(),
        Some("1"),
        "the others found the keys there"
    );

    let sa = |args: &[&str]| -> String {
        let out = evault(
            &dir.path().join("cli"),
            &[args, &["--store", app_url.as_str()][..]].concat(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "evault {args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mint = |key: &str| sa(&["token", "mint", "--key-id", key]);
    let http = common::agent();
    // Each put new evidence (the same bytes again would be a duplicate, 200).
    let sent = std::sync::atomic::AtomicU64::new(0);
    let put = |url: &str, token: &str| -> u16 {
        let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match http
            .post(format!("{url}/api/v1/evidence"))
            .header("Content-Type", "text/plain")
            .header("Authorization", format!("Bearer {token}"))
            .send(format!("evidence {n}").as_bytes())
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    };
    // Polls (no fixed sleep) until `url` answers `want`; how long it took.
    let until = |url: &str, token: &str, want: u16| -> Duration {
        let t = Instant::now();
        let deadline = t + Duration::from_secs(60);
        loop {
            let got = put(url, token);
            if got == want {
                return t.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{url} never answered {want} (last {got})"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    sa(&[
        "sa",
        "create",
        "--principal",
        "pipeline",
        "--roles",
        "ingester",
        "--key-id",
        "pipe-1",
    ]);
    let token = mint("pipe-1");
    for url in &urls {
        until(url, &token, 201);
    }
    let revoked = Instant::now();
    let said = sa(&["sa", "revoke", "pipe-1"]);
    assert!(said.contains("every node stops accepting it"), "{said}");
    let mut took = Vec::new();
    for url in &urls {
        until(url, &token, 401);
        took.push(revoked.elapsed());
    }
    eprintln!("the revoked key was refused by the three nodes {took:?} after `evault sa revoke`");

    // A key made now; then the leader dies and another node takes over.
    sa(&[
        "sa",
        "create",
        "--principal",
        "pipeline",
        "--roles",
        "ingester",
        "--key-id",
        "pipe-2",
    ]);
    let fresh = mint("pipe-2");
    nodes[0].take().unwrap().kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    let next = loop {
        let holder = db
            .query_text("SELECT holder FROM lease")
            .unwrap_or_default();
        if let Some(i) = names
            .iter()
            .position(|n| *n == holder && holder != "node-a")
        {
            break i;
        }
        assert!(Instant::now() < deadline, "no node took over");
        std::thread::sleep(Duration::from_millis(20));
    };
    until(&urls[next], &fresh, 201);
    // The other survivor may answer 503 until it learns the new leader.
    for url in &urls[1..] {
        until(url, &fresh, 201);
        assert_eq!(put(url, &token), 401, "{url} refuses the revoked key");
    }
    // A revocation written while the new leader leads reaches every node.
    sa(&["sa", "revoke", "pipe-2"]);
    for url in &urls[1..] {
        until(url, &fresh, 401);
    }
    assert_eq!(
        db.query_text("SELECT count(*) FROM keystore").as_deref(),
        Some("5"),
        "one version per edit: copy, create, revoke, create, revoke"
    );
    assert_eq!(
        db.query_text(&format!(
            "SELECT count(*) FROM keystore WHERE written_by = '{role}'"
        ))
        .as_deref(),
        Some("5"),
        "every version was written by the vault's role"
    );

    // While the keystore cannot be read, an explicit reload answers 503
    // with Retry-After and the keys in force stay; once it can, 200.
    let reload = |url: &str| {
        http.post(format!("{url}/api/v1/admin/service-accounts/reload"))
            .header("Authorization", common::bearer())
            .send_empty()
            .map(|r| {
                (
                    r.status().as_u16(),
                    r.headers().get("retry-after").is_some(),
                )
            })
            .unwrap_or((0, false))
    };
    let survivor = &urls[next];
    db.execute(&format!("REVOKE SELECT ON keystore FROM {role}"))
        .unwrap();
    assert_eq!(reload(survivor), (503, true));
    until(survivor, &token, 401);
    db.execute(&format!("GRANT SELECT ON keystore TO {role}"))
        .unwrap();
    assert_eq!(reload(survivor).0, 200);
}

/// `evault store copy`: a vault with inline and blob payloads, an
/// analytics event, an erased record, a released hold and a retention
/// policy moves from SQLite to PostgreSQL and back unchanged (the SQLite
/// store's fingerprint, over every leaf with its columns, every tile and
/// checkpoint, is the same after the round trip), with its
/// service-account keys; the vault then serves from PostgreSQL and goes on
/// with the same tree. A destination that is not empty, and a source whose
/// checkpoint a superuser altered, are refused, and the refused copy
/// leaves no store behind.
#[test]
fn store_copy_moves_a_vault_to_postgres_and_back() {
    let Some(db) = TestDb::create("store_copy_moves_a_vault_to_postgres_and_back") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 30 records, the last one a blob file.
    let data = common::seed_stopped(dir.path(), 30, 10);
    let server = Server::start(&data, &[]);
    let url = server.url.clone();
    let put = |content_type: &str, body: &[u8]| -> String {
        let mut resp = common::agent()
            .post(format!("{url}/api/v1/evidence"))
            .header("Content-Type", content_type)
            .header("Authorization", common::bearer())
            .send(body)
            .expect("POST evidence");
        assert_eq!(resp.status().as_u16(), 201);
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        v["record"]["id"].as_str().unwrap().to_string()
    };
    put(
        "application/vnd.evault.analytics+json",
        br#"{"source":"ci","kind":"build","value":12.5,"unit":"s","metrics":{"tests":40},"timestamp":"2026-11-23T11:30:00Z"}"#,
    );
    let erased = put("text/plain", b"to be erased");
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--token", common::token(), "--json"]);
        let out = evault(&data, &all);
        assert!(
            out.status.success(),
            "evault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    remote(&["erase", &erased, "--reason", "copy test"]);
    let hold = remote(&["hold", "create", "--label", "k=v", "--reason", "audit"]);
    remote(&["hold", "release", hold["id"].as_str().unwrap()]);
    remote(&[
        "retention",
        "set",
        "--name",
        "logs",
        "--keep-for",
        "90d",
        "--label",
        "k=v",
    ]);
    // A task, with its result: tasks move too.
    let task = remote(&["task", "start", "fsck"]);
    let task_id = task["id"].as_str().unwrap().to_string();
    // `task watch` exits 0 once it succeeded.
    remote(&["task", "watch", &task_id]);
    // 30 + the event + the erased record + its tombstone.
    wait_checkpoint(&url, 33);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    let db_file = data.join("evault.db");
    let before = evault_store::SqliteStore::fingerprint(&db_file).unwrap();
    let sqlite = format!("sqlite:{}", data.display());
    let copy = |from: &str, to: &str| {
        evault(
            &data,
            &["store", "copy", "--from", from, "--to", to, "--json"],
        )
    };
    let out = copy(&sqlite, db.url());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["evidence"], 33, "{v:#}");
    assert_eq!(v["erasures"], 1, "{v:#}");
    assert_eq!(v["analytics"], 1, "{v:#}");
    assert_eq!(v["policies"], 2, "{v:#}");
    assert_eq!(v["tasks"], 1, "{v:#}");
    assert_eq!(v["verified"], true, "{v:#}");
    assert!(v["audit"].as_u64().unwrap() > 0, "{v:#}");
    assert!(v["checkpoints"].as_u64().unwrap() >= 2, "{v:#}");
    assert!(v["service_account_keys"].as_u64().unwrap() >= 1, "{v:#}");
    assert!(stderr.contains("checking the source"), "{stderr}");

    // Not into a store that holds a vault already.
    let out = copy(&sqlite, db.url());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");

    // And back, into a new SQLite store: the same, to the last column.
    let aside = dir.path().join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    let move_store_aside = |to: &Path| {
        for name in ["evault.db", "evault-index.db"]
            .iter()
            .flat_map(|n| ["", "-wal", "-shm"].map(|s| format!("{n}{s}")))
        {
            if data.join(&name).exists() {
                std::fs::rename(data.join(&name), to.join(&name)).unwrap();
            }
        }
    };
    move_store_aside(&aside);
    let out = copy(db.url(), &sqlite);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        evault_store::SqliteStore::fingerprint(&db_file).unwrap(),
        before,
        "the round trip changed the store"
    );
    let back = dir.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    move_store_aside(&back);

    // The vault serves from PostgreSQL and goes on with the same tree.
    let server = Server::start(&data, &["--store", db.url()]);
    let (status, log) = common::get_json(&common::agent(), &format!("{}/api/v1/log", server.url));
    assert_eq!(status, 200);
    assert_eq!(log["tree_size"], 33, "{log:#}");
    assert_eq!(post_labelled(&server.url, b"after the move", "n=1"), 33);
    let (status, _) = common::get_json(
        &common::agent(),
        &format!("{}/api/v1/evidence/{erased}/payload", server.url),
    );
    assert_eq!(status, 410, "the erased payload stays erased");
    wait_checkpoint(&server.url, 34);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    // A checkpoint altered by a superuser: the copy is refused before it
    // writes, and leaves no SQLite store behind.
    db.execute(
        "ALTER TABLE checkpoints DISABLE TRIGGER USER; \
         UPDATE checkpoints SET note = (SELECT note FROM checkpoints \
           WHERE log = 'evidence' ORDER BY size LIMIT 1) \
         WHERE log = 'evidence' AND size = (SELECT max(size) FROM checkpoints \
           WHERE log = 'evidence'); \
         ALTER TABLE checkpoints ENABLE TRIGGER USER",
    )
    .unwrap();
    let out = copy(db.url(), &sqlite);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NOT VERIFIED") && stderr.contains("does not pass fsck"),
        "{stderr}"
    );
    assert!(!db_file.exists(), "a refused copy leaves no store");
    assert!(!data.join("evault-index.db").exists(), "nor its index");
}
