//! A real server on a random port over a real vault in a temp dir, and a
//! deliberately dumb HTTP/1.1 client that can send anything (raw bytes in
//! headers, bad escapes, hand-made chunked bodies).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use evault_auth::{
    Authenticator, Keystore, KeystoreFile, OidcVerifier, Role, Secret, ServiceAccountKey,
    TokenPolicy, mint_service_token,
};
use evault_server::{Authentication, ServeError, ServerOptions, TlsConfig};
use evault_vault::{Vault, VaultConfig};
use serde_json::Value;
use tokio::sync::oneshot;

pub const ORIGIN: &str = "test.example/server";
/// Principal of the default token every request carries unless it sets its
/// own Authorization header.
pub const PRINCIPAL: &str = "test:client";

/// Service-account keys of a test server: key id, principal, roles.
pub const KEYS: &[(&str, &str, &[Role])] = &[
    (
        "all",
        PRINCIPAL,
        &[Role::Ingester, Role::Auditor, Role::Admin],
    ),
    ("ingester", "test:ingester", &[Role::Ingester]),
    ("other-ingester", "test:other", &[Role::Ingester]),
    ("auditor", "test:auditor", &[Role::Auditor]),
    ("admin", "test:admin", &[Role::Admin]),
];

pub struct TestServer {
    pub rt: tokio::runtime::Runtime,
    pub vault: Vault,
    pub addr: SocketAddr,
    /// The gRPC API's address (same TLS setting as REST).
    pub grpc_addr: SocketAddr,
    pub tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    /// The service-account keystore file the server watches.
    pub keystore: PathBuf,
    pub keystore_handle: Option<Arc<Keystore>>,
    /// Sent with every request that sets no Authorization header.
    pub token: String,
    pub dir: tempfile::TempDir,
}

/// Wraps the SQLite store of a test server (`TestServer::start_with_store`).
type StoreWrap = Box<dyn FnOnce(evault_vault::SqliteStore) -> Arc<dyn evault_store::Store>>;

/// A test key with a fixed secret (the key id repeated), for `KEYS` entries.
pub fn test_key(key_id: &str, principal: &str, roles: &[Role]) -> ServiceAccountKey {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{key_id:-<40}").as_bytes());
    ServiceAccountKey {
        key_id: key_id.into(),
        principal: principal.into(),
        roles: roles.to_vec(),
        secret: Secret::from_base64url(&secret).unwrap(),
        expires_at: None,
    }
}

/// A one-hour token of test key `key_id` carrying all the key's roles.
pub fn token_for(key_id: &str) -> String {
    let (id, principal, roles) = KEYS.iter().find(|k| k.0 == key_id).expect("a test key");
    mint_service_token(
        &test_key(id, principal, roles),
        roles,
        Duration::from_secs(3600),
        std::time::SystemTime::now(),
    )
    .unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {}, false)
    }

    pub fn start_with(configure: impl FnOnce(&mut VaultConfig), tls: bool) -> TestServer {
        TestServer::start_full(configure, |_| {}, tls)
    }

    /// Authentication disabled (`--insecure-no-auth`).
    pub fn start_insecure() -> TestServer {
        TestServer::start_full(|_| {}, |o| o.auth = Authentication::InsecureDisabled, false)
    }

    pub fn start_full(
        configure: impl FnOnce(&mut VaultConfig),
        server: impl FnOnce(&mut ServerOptions),
        tls: bool,
    ) -> TestServer {
        TestServer::start_on(configure, server, tls, None)
    }

    /// A server whose vault runs on the SQLite store as `wrap` returns it
    /// (e.g. wrapped in a store that is deliberately slow).
    pub fn start_with_store(
        configure: impl FnOnce(&mut VaultConfig),
        wrap: impl FnOnce(evault_vault::SqliteStore) -> Arc<dyn evault_store::Store> + 'static,
    ) -> TestServer {
        TestServer::start_on(configure, |_| {}, false, Some(Box::new(wrap)))
    }

    fn start_on(
        configure: impl FnOnce(&mut VaultConfig),
        server: impl FnOnce(&mut ServerOptions),
        tls: bool,
        wrap: Option<StoreWrap>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = VaultConfig::new(dir.path().join("data"));
        // Outside the data directory, never the user's.
        config.state_dir = Some(dir.path().join("state"));
        config.origin = Some(ORIGIN.into());
        config.checkpoint_interval = Duration::from_millis(20);
        config.inline_max = 1024;
        configure(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let grpc_listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let grpc_addr = grpc_listener.local_addr().unwrap();
        // A node of a cluster tells the others where it takes their calls.
        let shared = matches!(config.store, evault_vault::StoreLocation::Postgres(_));
        // With TLS, by the name the test certificate holds.
        if shared && config.lease.advertise == evault_vault::Advertise::default() {
            config.lease.advertise = if tls {
                evault_vault::Advertise {
                    rest: Some(format!("https://localhost:{}", addr.port())),
                    grpc: Some(format!("https://localhost:{}", grpc_addr.port())),
                }
            } else {
                evault_vault::Advertise {
                    rest: Some(format!("http://{addr}")),
                    grpc: Some(format!("http://{grpc_addr}")),
                }
            };
        }
        let vault = match wrap {
            None => rt.block_on(Vault::open(config)).unwrap(),
            Some(wrap) => {
                std::fs::create_dir_all(&config.data_dir).unwrap();
                let store =
                    evault_vault::SqliteStore::open(&config.data_dir.join("evault.db")).unwrap();
                rt.block_on(Vault::with_store(config, wrap(store))).unwrap()
            }
        };
        let tls_config = tls.then(|| TlsConfig {
            cert: fixture("cert.pem"),
            key: fixture("key.pem"),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let keystore = dir.path().join("service-accounts.json");
        KeystoreFile {
            keys: KEYS
                .iter()
                .map(|(id, principal, roles)| test_key(id, principal, roles))
                .collect(),
        }
        .save(&keystore)
        .unwrap();
        let handle = Keystore::open(&keystore).unwrap();
        // The watcher is a task of the server's runtime; it ends with it.
        {
            let _in_runtime = rt.enter();
            drop(handle.spawn_watcher(Duration::from_millis(100)));
        }
        let authenticator = Authenticator::new(
            handle.clone(),
            OidcVerifier::new(Vec::new()),
            TokenPolicy::default(),
        );
        let mut opts = ServerOptions::new(Authentication::Tokens(Arc::new(authenticator)));
        server(&mut opts);
        let done = rt.spawn(evault_server::serve_all(
            vault.clone(),
            opts,
            listener,
            Some(grpc_listener),
            tls_config,
            async {
                let _ = rx.await;
            },
        ));
        TestServer {
            rt,
            vault,
            addr,
            grpc_addr,
            tls,
            shutdown: Some(tx),
            done: Some(done),
            keystore,
            keystore_handle: Some(handle),
            token: token_for("all"),
            dir,
        }
    }

    /// Stops the server and returns what `serve` returned.
    pub fn stop(&mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let done = self.done.take().expect("stopped once");
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), done).await })
            .expect("graceful shutdown within 10 s")
            .expect("serve task")
    }

    pub fn wait_for_checkpoint(&self, size: u64) -> u64 {
        self.rt
            .block_on(
                self.vault
                    .evidence_log()
                    .wait_for_checkpoint(size, Duration::from_secs(10)),
            )
            .unwrap()
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &[u8])]) -> Resp {
        self.request("GET", path, headers, b"")
    }

    /// Sends one request on a new connection, with the default token
    /// unless `headers` has an Authorization header. `Content-Length` is
    /// added unless the headers set it or `Transfer-Encoding`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Resp {
        let has_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        let token = (!has_auth).then_some(self.token.as_str());
        self.request_as(token, method, path, headers, body)
    }

    /// Sends one request with `token` as bearer token, or none at all.
    pub fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Resp {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n")
                .into_bytes();
        if let Some(t) = token {
            req.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
        }
        let mut framed = false;
        for (k, v) in headers {
            framed |= k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("transfer-encoding");
            req.extend_from_slice(k.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(v);
            req.extend_from_slice(b"\r\n");
        }
        if !framed && (!body.is_empty() || method == "POST") {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        if self.tls {
            let conn =
                rustls::ClientConnection::new(tls_client_config(), "localhost".try_into().unwrap())
                    .unwrap();
            exchange(rustls::StreamOwned::new(conn, tcp), &req)
        } else {
            exchange(tcp, &req)
        }
    }

    pub fn post(&self, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Resp {
        self.request("POST", path, headers, body)
    }

    /// Tree size and record count, as the API reports them.
    pub fn census(&self) -> (u64, usize) {
        let size = self.get("/api/v1/log").json()["tree_size"]
            .as_u64()
            .unwrap();
        let mut count = 0;
        let mut path = "/api/v1/evidence?limit=1000".to_string();
        loop {
            let page = self.get(&path).ok_json();
            count += page["items"].as_array().unwrap().len();
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/evidence?limit=1000&cursor={c}"),
                None => return (size, count),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.done.is_some() {
            let _ = self.stop();
        }
    }
}

fn tls_client_config() -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn exchange<S: Read + Write>(mut stream: S, request: &[u8]) -> Resp {
    // The server may answer (and close) before taking the whole body; what
    // was written is then irrelevant, the reply is what counts.
    let _ = stream.write_all(request).and_then(|_| stream.flush());
    let mut raw = Vec::new();
    // A reset or a TLS close without close_notify after the reply is fine.
    let _ = stream.read_to_end(&mut raw);
    Resp::parse(&raw)
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Resp {
    fn parse(raw: &[u8]) -> Resp {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "no complete response head in {:?}",
                    String::from_utf8_lossy(raw)
                )
            });
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, Vec<u8>)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        let resp = Resp {
            status,
            headers,
            body,
        };
        if let Some(n) = resp.header("content-length") {
            assert_eq!(resp.body.len(), n.parse::<usize>().unwrap(), "body length");
        }
        resp
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The JSON body of a 200.
    pub fn ok_json(&self) -> Value {
        assert_eq!(
            self.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A chunked body made of `chunks`.
pub fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

pub const ANONYMOUS: &str = evault_server::ANONYMOUS;

/// The audit event of the request with `request_id`, once it is committed
/// (answered reads are queued for the next group commit): polls.
pub fn wait_for_audit_event(s: &TestServer, request_id: &str) -> evault_verify::AuditEvent {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut after = None;
        loop {
            let page =
                s.rt.block_on(s.vault.audit_list(
                    &evault_vault::Reader::all("test"),
                    evault_store::AuditQuery {
                        after_index: after,
                        limit: 1000,
                        ..Default::default()
                    },
                ))
                .unwrap();
            if let Some(e) = page.items.iter().find(|e| e.request_id == request_id) {
                return e.clone();
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit event for request {request_id}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Verifiers for the log key the server reports.
pub fn verifiers(server: &TestServer) -> evault_note::Verifiers {
    let log = server.get("/api/v1/log").ok_json();
    let key =
        evault_note::Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap())
            .unwrap();
    evault_note::Verifiers::new().with(key).unwrap()
}

/// A task kind for the tests (the product registers its own): counts to
/// `n` (params `{"n": N}`), writing a line per step to its result, or with
/// `{"wait": true}` waits until it is cancelled (up to 30 s, so a failing
/// test cannot hang its runtime). Any ingester or auditor may start it.
pub struct CountKind;

impl evault_vault::TaskKind for CountKind {
    fn name(&self) -> &'static str {
        "count"
    }
    fn roles(&self) -> &'static [&'static str] {
        &["ingester", "auditor"]
    }
    fn validate(&self, params: &Value) -> Result<(), String> {
        match params.get("n").map(Value::as_u64) {
            None | Some(Some(0..=100_000)) => Ok(()),
            Some(_) => Err("n must be an integer from 0 to 100000".into()),
        }
    }
    fn run(&self, ctx: &evault_vault::TaskContext) -> Result<evault_vault::TaskOutput, String> {
        if ctx.params()["wait"].as_bool() == Some(true) {
            let mut out = ctx.create_output().map_err(|e| e.to_string())?;
            out.write_all(b"partial").map_err(|e| e.to_string())?;
            let give_up = std::time::Instant::now() + Duration::from_secs(30);
            while !ctx.cancelled() && std::time::Instant::now() < give_up {
                ctx.progress(1, None);
                std::thread::sleep(Duration::from_millis(5));
            }
            return Err("stopped waiting".into());
        }
        let n = ctx.params()["n"].as_u64().unwrap_or(0);
        let mut out = ctx.create_output().map_err(|e| e.to_string())?;
        for i in 0..n {
            if ctx.cancelled() {
                return Err("cancelled".into());
            }
            writeln!(out, "{i}").map_err(|e| e.to_string())?;
            ctx.progress(i + 1, Some(n));
        }
        Ok(evault_vault::TaskOutput {
            summary: Some(serde_json::json!({ "counted": n })),
        })
    }
}

/// A kind only auditors may start.
pub struct AuditorKind;

impl evault_vault::TaskKind for AuditorKind {
    fn name(&self) -> &'static str {
        "audit_only"
    }
    fn roles(&self) -> &'static [&'static str] {
        &["auditor"]
    }
    fn validate(&self, _: &Value) -> Result<(), String> {
        Ok(())
    }
    fn run(&self, _: &evault_vault::TaskContext) -> Result<evault_vault::TaskOutput, String> {
        Ok(evault_vault::TaskOutput::default())
    }
}

/// Registers the test kinds.
pub fn with_task_kinds(c: &mut VaultConfig) {
    // Only the test's kinds: the routes are under test, not the vault's own.
    c.tasks.kinds.clear();
    c.tasks.register(CountKind);
    c.tasks.register(AuditorKind);
}
