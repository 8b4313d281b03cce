//! `evault serve`: the vault, its REST API, authentication and audit trail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use evault_auth::{
    Alg, Authenticator, JwksSource, Keystore, OidcIssuer, OidcVerifier, TokenPolicy,
};
use evault_server::{Authentication, Limits, RateLimit, ServerOptions};

use crate::config::{DEFAULT_GRPC_LISTEN, DEFAULT_LISTEN, FileConfig, OidcConfig, parse_duration};

/// How often the keystore file is checked for changes.
pub const KEYSTORE_POLL: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct ServeArgs {
    /// Data directory (database, blobs, log keys, service accounts)
    /// [default: ./evault-data].
    #[arg(long, env = "EVAULT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the logs are stored: `sqlite`, the embedded store in the data
    /// directory, or a PostgreSQL database, postgres://USER@HOST/DB,
    /// created first with `evault migrate --store URL` (the data directory
    /// then keeps the keys and blobs) [default: sqlite].
    #[arg(
        long,
        env = "EVAULT_STORE",
        hide_env_values = true,
        value_name = "sqlite|URL"
    )]
    store: Option<String>,
    /// This node's name in the write lease of a PostgreSQL store (one node
    /// writes at a time; the name is shown when another cannot start)
    /// [default: HOSTNAME-PID].
    #[arg(long, env = "EVAULT_NODE_ID")]
    node_id: Option<String>,
    /// How long a PostgreSQL store's write lease lasts unrenewed: after a
    /// node dies, another writes after at most this [default: 3s].
    #[arg(long, env = "EVAULT_LEASE_TTL")]
    lease_ttl: Option<String>,
    /// Where the other nodes of a PostgreSQL store reach this node's REST
    /// API, https://HOST:PORT (with --tls-cert; HOST as the certificate
    /// names it) or http://HOST:PORT: while this node leads, standbys
    /// forward the calls they receive there. `off`: none (standbys then
    /// refuse calls, naming this node) [default: ADDR:PORT of --listen
    /// when that is a specific address, https:// with TLS].
    #[arg(long, env = "EVAULT_ADVERTISE", value_name = "URL|off")]
    advertise: Option<String>,
    /// The same for the gRPC API [default: ADDR:PORT of --grpc-listen,
    /// under the same conditions].
    #[arg(long, env = "EVAULT_ADVERTISE_GRPC", value_name = "URL|off")]
    advertise_grpc: Option<String>,
    /// A file (mode 0600) whose first line is a secret all nodes share (16+
    /// printable ASCII characters): a standby sends it with the calls it
    /// forwards, so that the leader records the caller's own address in
    /// the audit trail rather than the standby's.
    #[arg(long, env = "EVAULT_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// PEM certificates a standby trusts when the leader advertises an
    /// https:// address (e.g. the CA that signs the nodes' --tls-cert);
    /// the certificate must name the advertised host [default: the
    /// system's trusted roots].
    #[arg(long, env = "EVAULT_CLUSTER_CA_FILE")]
    cluster_ca_file: Option<PathBuf>,
    /// Connections to a PostgreSQL store, at most (1 to 1024) [default: 8].
    #[arg(long, env = "EVAULT_STORE_POOL_SIZE")]
    store_pool_size: Option<usize>,
    /// How long one PostgreSQL call may take, waiting for a connection
    /// included; past it the call fails (HTTP 503) and the server cancels
    /// the statement [default: 30s].
    #[arg(long, env = "EVAULT_STORE_TIMEOUT")]
    store_timeout: Option<String>,
    /// How long connecting to PostgreSQL may take [default: 5s].
    #[arg(long, env = "EVAULT_STORE_CONNECT_TIMEOUT")]
    store_connect_timeout: Option<String>,
    /// After PostgreSQL could not be reached, how long until the next
    /// attempt to connect; it doubles with each failure in a row, up to
    /// --store-reconnect-backoff-max. Meanwhile calls fail at once with
    /// 503 [default: 100ms].
    #[arg(long, env = "EVAULT_STORE_RECONNECT_BACKOFF")]
    store_reconnect_backoff: Option<String>,
    /// The longest wait between attempts to reconnect to PostgreSQL
    /// [default: 1s].
    #[arg(long, env = "EVAULT_STORE_RECONNECT_BACKOFF_MAX")]
    store_reconnect_backoff_max: Option<String>,
    /// Address of the REST API, ADDR:PORT [default: 127.0.0.1:8470].
    #[arg(long, env = "EVAULT_LISTEN")]
    listen: Option<String>,
    /// Address of the gRPC API (HTTP/2, TLS with --tls-cert), or `off`
    /// [default: 127.0.0.1:9090].
    #[arg(long, env = "EVAULT_GRPC_LISTEN")]
    grpc_listen: Option<String>,
    /// Checkpoint origin of a new log (kept forever once chosen) [default:
    /// evault.local/<random>].
    #[arg(long, env = "EVAULT_ORIGIN")]
    origin: Option<String>,
    /// The URL clients reach this server at (e.g. https://vault.example.com/).
    /// A new log without --origin takes the origin C2SP tlog-tiles
    /// recommends for its tiles prefix: <host/path>/tlog for the evidence
    /// log, <host/path>/tlog-audit for the audit log. An existing log keeps
    /// its origin (a mismatch is logged as a warning, not refused). Also the
    /// OpenAPI document's server.
    #[arg(long, env = "EVAULT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log signing key file (PRIVATE+KEY+… format); generated if missing
    /// [default: <data dir>/log.key].
    #[arg(long, env = "EVAULT_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Where the evidence log's signing key is, as a URI: file:PATH (a key
    /// file, as --key-file) or an RFC 7512 pkcs11: URI, e.g.
    /// pkcs11:token=evault;object=log-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/evault/pin
    /// (the PIN from pin-source, pin-value or EVAULT_PKCS11_PIN). Not with
    /// --key-file [default: file:<data dir>/log.key].
    #[arg(long, env = "EVAULT_SIGNER", hide_env_values = true)]
    signer: Option<String>,
    /// The key the next `evault keys rotate` moves the evidence log to,
    /// as --signer (e.g. a key made in the token with `evault keys generate
    /// --pkcs11`); keep it until the old key is retired, then make it
    /// --signer [default: none: the rotation makes a new key file in the
    /// data directory].
    #[arg(long, env = "EVAULT_NEXT_SIGNER", hide_env_values = true)]
    next_signer: Option<String>,
    /// Where the audit log's signing key is, as --signer [default:
    /// file:<data dir>/audit.key].
    #[arg(long, env = "EVAULT_AUDIT_SIGNER", hide_env_values = true)]
    audit_signer: Option<String>,
    /// An ML-DSA-44 key (post-quantum, C2SP signature type 0x06) that signs
    /// every evidence checkpoint beside the Ed25519 key, as a file: URI.
    /// Generated if missing while the log is empty; for a log with history
    /// make it with `evault keys generate ORIGIN --type ml-dsa-44 --out F`
    /// [default: none].
    #[arg(long, env = "EVAULT_PQ_SIGNER")]
    pq_signer: Option<String>,
    /// The audit log's ML-DSA-44 key, as --pq-signer [default: none].
    #[arg(long, env = "EVAULT_AUDIT_PQ_SIGNER")]
    audit_pq_signer: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key enables HTTPS (and TLS
    /// on gRPC) [default: none, plain HTTP].
    #[arg(long, env = "EVAULT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), for --tls-cert.
    #[arg(long, env = "EVAULT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How often at most to sign a checkpoint of a growing log
    /// [default: 500ms].
    #[arg(long, env = "EVAULT_CHECKPOINT_INTERVAL")]
    checkpoint_interval: Option<String>,
    /// Largest accepted payload in bytes [default: 67108864, 64 MiB].
    #[arg(long, env = "EVAULT_MAX_UPLOAD")]
    max_upload: Option<u64>,
    /// Leaves of each log checked at start-up against their tiles, at
    /// random, besides the right edge (0: off) [default: 64].
    #[arg(long, env = "EVAULT_STARTUP_SAMPLE")]
    startup_sample: Option<u64>,
    /// Service-account keystore, created empty if missing [default: <data
    /// dir>/service-accounts.json]. On PostgreSQL the keys are in the
    /// database instead (`evault sa --store URL`); the first node copies
    /// this file's keys there.
    #[arg(long, env = "EVAULT_SERVICE_ACCOUNTS")]
    pub service_accounts: Option<PathBuf>,
    /// Directory of the audit trail's JSON-lines mirror [default: <data
    /// dir>/audit].
    #[arg(long, env = "EVAULT_AUDIT_DIR")]
    audit_dir: Option<PathBuf>,
    /// Directory of each log's latest signed tree head, which the vault
    /// never signs a fork of. Keep it OUTSIDE the data directory, so that
    /// restoring a backup of that does not restore it [default:
    /// $XDG_STATE_HOME/evault, else ~/.local/state/evault].
    #[arg(long, env = "EVAULT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Do not write the JSON-lines mirror of the audit trail (the audit
    /// Merkle log itself is always written).
    #[arg(long)]
    no_audit_mirror: bool,
    /// Per-principal rate limit in requests per second (0: none) [default:
    /// 0].
    #[arg(long, env = "EVAULT_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Requests a principal may send in a burst above the rate limit
    /// [default: twice the rate, at least 1].
    #[arg(long, env = "EVAULT_RATE_LIMIT_BURST")]
    rate_limit_burst: Option<u32>,
    /// Require a token for checkpoints, tiles and consistency proofs too.
    #[arg(long)]
    no_public_log_read: bool,
    /// DANGER: accept every request without a token, as `anonymous` with
    /// every role. For local experiments only.
    #[arg(long)]
    insecure_no_auth: bool,
    /// DANGER: write no audit trail. For measuring its cost only.
    #[arg(long, hide = true)]
    insecure_no_audit: bool,
    /// On SIGTERM or SIGINT, how long requests in flight may take before
    /// their connections are cut (e.g. 10s); the vault then commits what
    /// it accepted and signs a final checkpoint.
    #[arg(long, env = "EVAULT_SHUTDOWN_TIMEOUT", default_value = "10s")]
    shutdown_timeout: String,
    /// How long a new connection may take to send a request head (and an
    /// HTTP/1 connection each following head).
    #[arg(long, env = "EVAULT_HEADER_READ_TIMEOUT", default_value = "10s")]
    header_read_timeout: String,
    /// A request body that sends nothing for this long is cut (408).
    #[arg(long, env = "EVAULT_BODY_IDLE_TIMEOUT", default_value = "30s")]
    body_idle_timeout: String,
    /// A connection with no request in flight for this long is closed
    /// (an idle HTTP/1 connection also waits under --header-read-timeout:
    /// the shorter one applies).
    #[arg(long, env = "EVAULT_KEEP_ALIVE_TIMEOUT", default_value = "60s")]
    keep_alive_timeout: String,
    /// Most connections held at once, REST and gRPC together. At the cap
    /// the connection idle longest is closed; if none is idle, newcomers
    /// are refused (503) [default: 4096, or 3/4 of the descriptor limit if
    /// less].
    #[arg(long, env = "EVAULT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// HTTP/2: most concurrent streams per connection.
    #[arg(long, env = "EVAULT_H2_MAX_CONCURRENT_STREAMS", default_value_t = 128)]
    h2_max_concurrent_streams: u32,
    /// HTTP/2: largest request header list, in bytes.
    #[arg(long, env = "EVAULT_H2_MAX_HEADER_LIST_SIZE", default_value_t = 65536)]
    h2_max_header_list_size: u32,
    /// HTTP/2: how often to ping a peer (one that does not answer within
    /// the same time is disconnected).
    #[arg(long, env = "EVAULT_H2_KEEP_ALIVE_INTERVAL", default_value = "30s")]
    h2_keep_alive_interval: String,
}

impl ServeArgs {
    /// The connection limits the flags ask for.
    fn limits(&self) -> Result<Limits, String> {
        let positive = |name: &str, text: &str| {
            let d = parse_duration(name, text)?;
            if d.is_zero() {
                return Err(format!("{name} must be more than 0"));
            }
            Ok(d)
        };
        let max_connections = self
            .max_connections
            .unwrap_or_else(evault_server::default_max_connections);
        if max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.h2_max_concurrent_streams == 0 {
            return Err("h2_max_concurrent_streams must be at least 1".into());
        }
        Ok(Limits {
            header_read_timeout: positive("header_read_timeout", &self.header_read_timeout)?,
            body_idle_timeout: positive("body_idle_timeout", &self.body_idle_timeout)?,
            keep_alive_timeout: positive("keep_alive_timeout", &self.keep_alive_timeout)?,
            max_connections,
            max_concurrent_streams: self.h2_max_concurrent_streams,
            max_header_list_size: self.h2_max_header_list_size.max(1024),
            h2_keep_alive_interval: positive(
                "h2_keep_alive_interval",
                &self.h2_keep_alive_interval,
            )?,
        })
    }
}

/// The dashboard's sign-in with `c`'s issuer; its endpoints must be
/// https (or http on a loopback address, for tests and local issuers).
fn dashboard_sign_in(
    c: &OidcConfig,
    d: &crate::config::DashboardSignIn,
) -> Result<evault_server::DashboardOidc, String> {
    for (what, url) in [
        ("authorization_endpoint", &d.authorization_endpoint),
        ("token_endpoint", &d.token_endpoint),
    ] {
        check_endpoint(url).map_err(|why| format!("oidc {}: dashboard {what} {why}", c.issuer))?;
    }
    if d.client_id.is_empty() {
        return Err(format!("oidc {}: dashboard client_id is empty", c.issuer));
    }
    let token = d.token.clone().unwrap_or_else(|| "id_token".into());
    let scope = d.scope.clone().unwrap_or_else(|| "openid".into());
    match token.as_str() {
        // An ID token is issued to the client: its `aud` is the client id,
        // which the server checks as the audience, and it needs `openid`.
        "id_token" if c.audience != d.client_id => {
            return Err(format!(
                "oidc {}: with token = \"id_token\" the audience must be the dashboard's \
                 client_id ({:?}), the ID token's aud",
                c.issuer, d.client_id
            ));
        }
        "id_token" if !scope.split(' ').any(|s| s == "openid") => {
            return Err(format!(
                "oidc {}: with token = \"id_token\" the scope must include openid",
                c.issuer
            ));
        }
        "id_token" | "access_token" => {}
        _ => {
            return Err(format!(
                "oidc {}: dashboard token must be id_token or access_token",
                c.issuer
            ));
        }
    }
    Ok(evault_server::DashboardOidc {
        issuer: c.issuer.clone(),
        client_id: d.client_id.clone(),
        authorization_endpoint: d.authorization_endpoint.clone(),
        token_endpoint: d.token_endpoint.clone(),
        scope,
        token,
    })
}

fn oidc_issuer(c: &OidcConfig) -> Result<OidcIssuer, String> {
    let jwks = match (&c.jwks_url, &c.jwks_file) {
        (Some(u), None) => {
            check_jwks_url(&c.issuer, u)?;
            JwksSource::Url(u.clone())
        }
        (None, Some(f)) => JwksSource::File(f.clone()),
        _ => {
            return Err(format!(
                "OIDC issuer {}: give exactly one of jwks_url and jwks_file",
                c.issuer
            ));
        }
    };
    let algorithms = c
        .algorithms
        .iter()
        .map(|a| match a.as_str() {
            "RS256" => Ok(Alg::RS256),
            "ES256" => Ok(Alg::ES256),
            "EdDSA" => Ok(Alg::EdDSA),
            other => Err(format!(
                "OIDC issuer {}: algorithm {other:?} is not supported (RS256, ES256, EdDSA)",
                c.issuer
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if algorithms.is_empty() {
        return Err(format!("OIDC issuer {}: no algorithms allowed", c.issuer));
    }
    let min_refresh_interval = match &c.min_refresh_interval {
        Some(d) => parse_duration("min_refresh_interval", d)?,
        None => Duration::from_secs(30),
    };
    Ok(OidcIssuer {
        issuer: c.issuer.clone(),
        audience: c.audience.clone(),
        jwks,
        algorithms,
        roles_claim: c.roles_claim.clone().unwrap_or_else(|| "roles".into()),
        min_refresh_interval,
    })
}

/// A JWKS decides whose tokens are accepted: fetch it over HTTPS, or plain
/// HTTP only from this machine (a local proxy or a test).
fn check_jwks_url(issuer: &str, url: &str) -> Result<(), String> {
    check_endpoint(url).map_err(|why| format!("OIDC issuer {issuer}: jwks_url {url:?} {why}"))
}

/// An OIDC endpoint must be `https://` (plain `http://` only on a loopback
/// host: whoever sees or answers it controls who gets in) with a host and
/// no user information (`http://127.0.0.1:@evil.example/` is evil.example).
fn check_endpoint(text: &str) -> Result<(), String> {
    let rule = "must be https:// (plain http only for 127.0.0.1, localhost or [::1]), \
                with a host and no user name or password";
    let url = url::Url::parse(text).map_err(|e| format!("is not a URL ({e}); it {rule}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    let ok = !host.is_empty()
        && url.username().is_empty()
        && url.password().is_none()
        && (url.scheme() == "https" || (url.scheme() == "http" && loopback));
    if ok { Ok(()) } else { Err(rule.into()) }
}

/// Whether the log gets ANSI colours: only on a terminal, and never when
/// NO_COLOR is set to anything but the empty string (https://no-color.org).
fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The process's log: stderr through `logsink`, filtered by `EVAULT_LOG`
/// (default `info`), coloured only on a terminal.
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EVAULT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // A log line that cannot be written is counted and dropped
        // (logsink); tracing-subscriber's own report of it would be an
        // `eprintln!`, which panics on the same broken stderr.
        .with_writer(|| crate::logsink::Stderr)
        .log_internal_errors(false)
        .init();
}

/// What this node advertises for one API: `off`, an explicit URL (checked
/// by the vault), or by default `http://ADDR:PORT` (`https://` with TLS)
/// of its bound listener when that is a specific address (a wildcard
/// address says nothing about where other nodes reach it).
fn advertised(
    flag: &str,
    given: Option<String>,
    listener: Option<&tokio::net::TcpListener>,
    plain: bool,
) -> Result<Option<String>, String> {
    match given.as_deref() {
        Some("off") => return Ok(None),
        Some(url) => return Ok(Some(url.to_string())),
        None => {}
    }
    let Some(l) = listener else { return Ok(None) };
    let local = l.local_addr().map_err(|e| format!("--{flag}: {e}"))?;
    let scheme = if plain { "http" } else { "https" };
    Ok((!local.ip().is_unspecified()).then(|| format!("{scheme}://{local}")))
}

/// The service-account keystore the server verifies tokens against: the
/// data directory's file, or on PostgreSQL the database's, which every
/// node reads (a key revoked there is refused by all within a poll). The
/// first node on a database with no keystore yet copies its file's keys
/// in; after that a node's file is not read, and one whose keys differ
/// is named.
fn open_keystore(
    store: &evault_vault::StoreLocation,
    options: &evault_store::postgres::PgOptions,
    file: &std::path::Path,
) -> Result<Arc<Keystore>, String> {
    let url = match store {
        evault_vault::StoreLocation::Sqlite => {
            return Keystore::open(file)
                .map_err(|e| format!("service accounts {}: {e}", file.display()));
        }
        evault_vault::StoreLocation::Postgres(url) => url,
    };
    let db = crate::sa_db::DbKeystore::open(url, options)
        .map_err(|e| format!("service accounts in the database: {e}"))?;
    let copied = db.import_if_empty(file).map_err(|e| {
        format!(
            "service accounts: copying {} into the database: {e}",
            file.display()
        )
    })?;
    if copied > 0 {
        crate::say!(
            "evault: copied the {copied} keys of {} into the database's keystore, which every \
             node reads from now on",
            file.display()
        );
    } else if file.exists()
        && let Ok(local) = evault_auth::KeystoreFile::load(file)
        && !local.keys.is_empty()
        && db.load().is_ok_and(|(_, shared)| shared != local)
    {
        crate::say!(
            "evault: note: {} is not read on PostgreSQL and differs from the database's \
             keystore; edit that with `evault sa --store URL ...`",
            file.display()
        );
    }
    Keystore::from_source(Box::new(db))
        .map_err(|e| format!("service accounts in the database: {e}"))
}

pub fn serve(o: ServeArgs, file: FileConfig) -> Result<(), String> {
    init_logging();
    let data_dir = crate::data_dir(o.data_dir.clone(), &file);
    let limits = o.limits()?;
    let listen = o
        .listen
        .or(file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| format!("--listen {listen:?}: {e} (expected ADDR:PORT)"))?;
    let grpc_listen = o
        .grpc_listen
        .or(file.grpc_listen.clone())
        .unwrap_or_else(|| DEFAULT_GRPC_LISTEN.to_string());
    let grpc_addr: Option<std::net::SocketAddr> = match grpc_listen.as_str() {
        "off" => None,
        a => Some(
            a.parse()
                .map_err(|e| format!("--grpc-listen {a:?}: {e} (expected ADDR:PORT, or off)"))?,
        ),
    };
    let mut config = evault_vault::VaultConfig::new(&data_dir);
    if let Some(store) = o.store.as_deref().or(file.store.as_deref()) {
        config.store = evault_vault::StoreLocation::parse(store).map_err(|e| format!("--{e}"))?;
    }
    let store_shown = config.store.describe();
    config.lease.node = o.node_id.or(file.node_id.clone());
    if let Some(t) = o.lease_ttl.or(file.lease_ttl.clone()) {
        config.lease.ttl = parse_duration("lease ttl", &t)?;
    }
    if let Some(n) = o.store_pool_size.or(file.store_pool_size) {
        config.postgres.pool_size = n;
    }
    if let Some(t) = o.store_timeout.or(file.store_timeout.clone()) {
        config.postgres.call_timeout = parse_duration("store timeout", &t)?;
    }
    if let Some(t) = o
        .store_connect_timeout
        .or(file.store_connect_timeout.clone())
    {
        config.postgres.connect_timeout = parse_duration("store connect timeout", &t)?;
    }
    if let Some(t) = o
        .store_reconnect_backoff
        .or(file.store_reconnect_backoff.clone())
    {
        config.postgres.reconnect_backoff = parse_duration("store reconnect backoff", &t)?;
    }
    if let Some(t) = o
        .store_reconnect_backoff_max
        .or(file.store_reconnect_backoff_max.clone())
    {
        config.postgres.reconnect_backoff_max = parse_duration("store reconnect backoff max", &t)?;
    }
    if config.postgres.reconnect_backoff > config.postgres.reconnect_backoff_max {
        return Err(format!(
            "--store-reconnect-backoff ({:?}) is longer than --store-reconnect-backoff-max ({:?})",
            config.postgres.reconnect_backoff, config.postgres.reconnect_backoff_max
        ));
    }
    config.origin = o.origin.or(file.origin.clone());
    config.public_url = o.public_url.or(file.public_url.clone());
    let key_file = o.key_file.or(file.key_file.clone());
    match (o.signer.or(file.signer.clone()), key_file) {
        (Some(_), Some(_)) => {
            return Err(
                "give the evidence log's key as --signer or as --key-file, not both".into(),
            );
        }
        (Some(uri), None) => {
            (config.key_file, config.signer) =
                crate::signers::SignerUri::parse("signer", &uri)?.into_config();
        }
        (None, key_file) => config.key_file = key_file,
    }
    config.pq_key_file = o
        .pq_signer
        .or(file.pq_signer.clone())
        .map(|uri| crate::signers::pq_key_file("pq signer", &uri))
        .transpose()?;
    config.audit.pq_key_file = o
        .audit_pq_signer
        .or(file.audit_pq_signer.clone())
        .map(|uri| crate::signers::pq_key_file("audit pq signer", &uri))
        .transpose()?;
    config.witnesses = crate::witnessing::setup(
        &file.witness,
        file.witness_threshold,
        file.witness_interval.as_deref(),
    )?;
    if let Some(uri) = o.next_signer.or(file.next_signer.clone()) {
        config.next_signer =
            Some(crate::signers::SignerUri::parse("next signer", &uri)?.into_signer());
    }
    if let Some(uri) = o.audit_signer.or(file.audit_signer.clone()) {
        (config.audit.key_file, config.audit.signer) =
            crate::signers::SignerUri::parse("audit signer", &uri)?.into_config();
    }
    if let Some(i) = o.checkpoint_interval.or(file.checkpoint_interval.clone()) {
        config.checkpoint_interval = parse_duration("checkpoint interval", &i)?;
    }
    if let Some(d) = &file.max_delay {
        config.max_delay = parse_duration("max delay", d)?;
    }
    if let Some(m) = o.max_upload.or(file.max_upload) {
        config.max_upload = m;
    }
    if let Some(m) = file.inline_max {
        config.inline_max = m;
    }
    if let Some(n) = o.startup_sample {
        config.startup_sample = n;
    }
    if let Some(m) = file.max_batch {
        config.max_batch = m;
    }
    config.audit.enabled = !o.insecure_no_audit;
    config.audit.mirror = !o.no_audit_mirror && file.audit_mirror.unwrap_or(true);
    config.audit.mirror_dir = o.audit_dir.or(file.audit_dir.clone());
    config.state_dir = o.state_dir.or(file.state_dir.clone());
    config.backfill_dir = file.backfill.as_ref().map(|b| b.dir.clone());
    if let Some(r) = &file.retention {
        config.retention_interval = parse_duration("retention interval", &r.interval)?;
    }
    // Relative root paths are taken from the working directory, like the
    // file's other paths.
    config.sigstore = crate::sigstore_config::setup(file.sigstore.as_ref(), None)?;
    let tls = match (
        o.tls_cert.or(file.tls_cert.clone()),
        o.tls_key.or(file.tls_key.clone()),
    ) {
        (Some(cert), Some(key)) => Some(evault_server::TlsConfig { cert, key }),
        (None, None) => None,
        _ => return Err("TLS needs both a certificate and a key".into()),
    };

    let mut policy = TokenPolicy::default();
    if let Some(l) = &file.token_leeway {
        policy.leeway = parse_duration("token_leeway", l)?;
    }
    if let Some(m) = &file.token_max_lifetime {
        policy.max_lifetime = parse_duration("token_max_lifetime", m)?;
    }
    let issuers = file
        .oidc
        .iter()
        .map(oidc_issuer)
        .collect::<Result<Vec<_>, _>>()?;
    let keystore_path = crate::keystore_path(o.service_accounts, Some(&data_dir), &file);
    let insecure = o.insecure_no_auth;
    let mut opts = ServerOptions::new(Authentication::InsecureDisabled);
    opts.dashboard_oidc = file
        .oidc
        .iter()
        .filter_map(|c| c.dashboard.as_ref().map(|d| dashboard_sign_in(c, d)))
        .collect::<Result<_, _>>()?;
    opts.limits = limits;
    opts.public_log_read = !o.no_public_log_read && file.public_log_read.unwrap_or(true);
    let per_second = o.rate_limit.or(file.rate_limit).unwrap_or(0.0);
    if per_second > 0.0 {
        let burst = o
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or((per_second * 2.0).ceil() as u32)
            .max(1);
        opts.rate_limit = Some(RateLimit { per_second, burst });
    }

    let advertise = o.advertise.or(file.advertise.clone());
    let advertise_grpc = o.advertise_grpc.or(file.advertise_grpc.clone());
    if let Some(f) = o.cluster_secret_file.or(file.cluster_secret_file.clone()) {
        let line = crate::secret_file::first_line("--cluster-secret-file", &f).map_err(|e| {
            if e.exposed {
                format!("{e} (chmod 600 the file)")
            } else {
                e.to_string()
            }
        })?;
        opts.cluster_secret = Some(
            evault_server::ClusterSecret::new(&line)
                .map_err(|e| format!("--cluster-secret-file {}: {e}", f.display()))?,
        );
    }
    if let Some(f) = o.cluster_ca_file.or(file.cluster_ca_file.clone()) {
        opts.cluster_roots = evault_server::ClusterRoots::from_pem_file(&f)
            .map_err(|e| format!("--cluster-ca-file: {e}"))?;
    }

    let shutdown_timeout = parse_duration("shutdown_timeout", &o.shutdown_timeout)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async move {
        // Bound before the vault opens: the addresses it advertises to the
        // other nodes of its cluster are the bound ones (a port 0 chosen).
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let grpc = match grpc_addr {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| format!("cannot listen on {a} for gRPC: {e}"))?,
            ),
            None => None,
        };
        let plain = tls.is_none();
        config.lease.advertise = evault_vault::Advertise {
            rest: advertised("advertise", advertise, Some(&listener), plain)?,
            grpc: advertised("advertise-grpc", advertise_grpc, grpc.as_ref(), plain)?,
        };
        let (store_location, pg_options) = (config.store.clone(), config.postgres.clone());
        let vault = evault_vault::Vault::open(config).await.map_err(|e| {
            format!(
                "opening the vault in {} (store {store_shown}): {e}",
                data_dir.display()
            )
        })?;
        // The keystore watcher is the server's own task: stopped on shutdown.
        let mut watcher = None;
        if insecure {
            crate::say!(
                "evault: WARNING: --insecure-no-auth: every request is accepted without a token, \
                 with every role. Never expose this server."
            );
        } else {
            let keystore = open_keystore(&store_location, &pg_options, &keystore_path)?;
            watcher = Some(keystore.spawn_watcher(KEYSTORE_POLL));
            let n = keystore.keys().len();
            crate::say!(
                "evault: service accounts {} ({n} keys; reloaded on change and SIGHUP)",
                keystore.describe()
            );
            if n == 0 && issuers.is_empty() {
                let store = match &store_location {
                    evault_vault::StoreLocation::Postgres(_) => " --store URL",
                    evault_vault::StoreLocation::Sqlite => "",
                };
                crate::say!(
                    "evault: no service account yet: `evault sa create{store} --principal ci \
                     --roles ingester`, then `evault token mint{store} --key-id <id>`"
                );
            }
            let oidc = OidcVerifier::new(issuers);
            opts.auth =
                Authentication::Tokens(Arc::new(Authenticator::new(keystore, oidc, policy)));
        }
        if vault.audit_log().is_none() {
            crate::say!("evault: WARNING: --insecure-no-audit: no audit trail is written");
        }
        // Announced before the REST line, which tells scripts the vault is up.
        if let Some(l) = &grpc {
            let local = l.local_addr().map_err(|e| e.to_string())?;
            let how = if tls.is_some() { "TLS" } else { "plaintext" };
            crate::say!("evault: serving gRPC on {local} ({how}; health and reflection on)");
        }
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        crate::say!(
            "evault: serving {scheme}://{local}  data dir {}  store {store_shown}",
            data_dir.display()
        );
        let log = vault.evidence_log();
        crate::say!("evault: log origin  {}", log.origin());
        crate::say!("evault: verifier key {}", log.verifier_key());
        if let Some(a) = vault.audit_log() {
            crate::say!("evault: audit origin {}", a.origin());
            crate::say!("evault: audit verifier key {}", a.verifier_key());
        }
        crate::say!("evault: dashboard {scheme}://{local}/ui/");
        let role = vault.role();
        match (&role, role.forward_to()) {
            (evault_vault::Role::Standby { holder, .. }, Some(to)) => crate::say!(
                "evault: this node is a standby: node {holder:?} holds the write lease; calls \
                 are forwarded to it (REST {}, gRPC {}); this node takes over when that lease \
                 lapses",
                to.rest.as_deref().unwrap_or("not advertised"),
                to.grpc.as_deref().unwrap_or("not advertised"),
            ),
            _ => {
                if let Some(why) = role.refusal() {
                    crate::say!("evault: {why}");
                }
            }
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopping = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let server = evault_server::serve_all(vault.clone(), opts, listener, grpc, tls, stopping());
        // Requests in flight get `shutdown_timeout` after the signal; then
        // dropping the server future cuts their connections (what the vault
        // accepted still commits).
        let deadline = async {
            stopping().await;
            tokio::time::sleep(shutdown_timeout).await;
        };
        let served = tokio::select! {
            r = server => r.map_err(|e| format!("server: {e}")),
            _ = deadline => {
                crate::say!(
                    "evault: requests still running after {shutdown_timeout:?}; cutting them off"
                );
                Ok(())
            }
        };
        if let Some(w) = watcher {
            w.abort();
        }
        stop_vault(&vault).await;
        served
    })
}

/// Stops intake, commits what was accepted, signs the final checkpoints
/// and joins the vault's tasks; says how it went.
async fn stop_vault(vault: &evault_vault::Vault) {
    match vault.shutdown().await {
        Ok(s) => {
            crate::say!(
                "evault: stopped; evidence log at size {}, signed up to {}",
                s.evidence_size,
                s.evidence_checkpoint
            );
            if let Some((size, signed)) = s.audit {
                crate::say!("evault: audit log at size {size}, signed up to {signed}");
            }
        }
        Err(e) => crate::say!("evault: stopping the vault: {e}"),
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    crate::say!("evault: shutting down");
}

#[cfg(test)]
mod tests {
    use super::{check_jwks_url, dashboard_sign_in, log_colours};
    use crate::config::{DashboardSignIn, OidcConfig};

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some("".into())));
        assert!(!log_colours(true, Some("1".into())));
        assert!(!log_colours(false, None));
    }

    /// The defaults `serve --help` states are the ones the code uses.
    #[test]
    fn help_states_the_real_defaults() {
        use clap::CommandFactory as _;
        let help = crate::Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        let config = evault_vault::VaultConfig::new("x");
        for want in [
            format!("[default: {}]", crate::config::DEFAULT_DATA_DIR),
            format!("[default: {}]", crate::config::DEFAULT_LISTEN),
            format!("[default: {}]", crate::config::DEFAULT_GRPC_LISTEN),
            format!(
                "[default: {}]",
                humantime::format_duration(config.checkpoint_interval)
            ),
            format!("[default: {},", config.max_upload),
            format!("[default: {}]", config.startup_sample),
            "[default: 10s]".to_string(),
        ] {
            assert!(help.contains(&want), "serve --help lacks {want:?}:\n{help}");
        }
        // Every argument is described.
        for arg in crate::Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .get_arguments()
        {
            assert!(arg.get_help().is_some(), "{} has no help", arg.get_id());
        }
    }

    #[test]
    fn jwks_urls_must_be_https_unless_local() {
        for ok in [
            "https://id.example/jwks",
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
            "http://[::1]/jwks",
        ] {
            assert!(check_jwks_url("i", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "ftp://x/jwks",
            "id.example/jwks",
            // User information: the host is evil.example.
            "http://127.0.0.1:@evil.example/jwks",
            "https://user:pw@id.example/jwks",
            "https://",
            "https://a b/jwks",
        ] {
            assert!(check_jwks_url("i", bad).is_err(), "{bad}");
        }
    }

    fn issuer(audience: &str) -> OidcConfig {
        OidcConfig {
            issuer: "https://id.example".into(),
            audience: audience.into(),
            jwks_url: Some("https://id.example/jwks".into()),
            jwks_file: None,
            algorithms: vec!["ES256".into()],
            roles_claim: None,
            min_refresh_interval: None,
            dashboard: None,
        }
    }

    fn sign_in() -> DashboardSignIn {
        DashboardSignIn {
            client_id: "dash".into(),
            authorization_endpoint: "https://id.example/authorize".into(),
            token_endpoint: "https://id.example/token".into(),
            scope: None,
            token: None,
        }
    }

    #[test]
    fn dashboard_sign_in_settings_are_checked() {
        let ok = dashboard_sign_in(&issuer("dash"), &sign_in()).unwrap();
        assert_eq!(
            (ok.scope.as_str(), ok.token.as_str()),
            ("openid", "id_token")
        );
        let access = DashboardSignIn {
            token: Some("access_token".into()),
            ..sign_in()
        };
        assert!(dashboard_sign_in(&issuer("evault-api"), &access).is_ok());

        let refused = [
            (issuer("evault-api"), sign_in(), "audience must be"),
            (
                issuer("dash"),
                DashboardSignIn {
                    authorization_endpoint: "http://127.0.0.1:@evil.example/authorize".into(),
                    ..sign_in()
                },
                "authorization_endpoint must be https",
            ),
            (
                issuer("dash"),
                DashboardSignIn {
                    token_endpoint: "http://id.example/token".into(),
                    ..sign_in()
                },
                "token_endpoint must be https",
            ),
            (
                issuer(""),
                DashboardSignIn {
                    client_id: String::new(),
                    ..sign_in()
                },
                "client_id is empty",
            ),
            (
                issuer("dash"),
                DashboardSignIn {
                    scope: Some("profile".into()),
                    ..sign_in()
                },
                "must include openid",
            ),
            (
                issuer("dash"),
                DashboardSignIn {
                    token: Some("refresh_token".into()),
                    ..sign_in()
                },
                "id_token or access_token",
            ),
        ];
        for (c, d, want) in refused {
            let e = dashboard_sign_in(&c, &d).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
