//! `evault witness`: a C2SP tlog-witness (crates/witness decides,
//! crates/server/src/witness.rs speaks HTTP) for the logs a TOML file
//! names:
//!
//! ```toml
//! listen = "127.0.0.1:8471"                          # default
//! state_dir = "/var/lib/evault-witness"
//! cosigner_keys = ["file:/etc/evault/witness.key"]   # 0x04 and/or 0x06 keys
//! requests_per_minute = 60                           # default, per log
//! [[log]]
//! origin = "vault.example/tlog"
//! keys = ["vault.example/tlog+abcd1234+AQ..."]
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use evault_note::{CosignatureSigner, KeyError, MlDsaCosigner, Signer, SignerKeyText};
use evault_witness::{LogConfig, Witness, WitnessConfig};
use serde::Deserialize;

/// Where a witness listens unless told otherwise (the vault is on 8470).
pub const DEFAULT_WITNESS_LISTEN: &str = "127.0.0.1:8471";
const DEFAULT_REQUESTS_PER_MINUTE: u32 = 60;
/// How long requests in flight may take after SIGTERM or SIGINT; each is
/// one verification and one fsync, so this is generous.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct WitnessArgs {
    /// Address to listen on, ADDR:PORT; overrides the file's `listen`
    /// [default: 127.0.0.1:8471].
    #[arg(long)]
    listen: Option<String>,
}

/// The witness's TOML file. Relative paths are relative to its directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessFile {
    listen: Option<String>,
    /// Where the latest cosigned checkpoint of each log is kept.
    state_dir: PathBuf,
    /// `file:` URIs of the cosigner keys (Ed25519 cosignature 0x04,
    /// ML-DSA-44 0x06).
    cosigner_keys: Vec<String>,
    /// Checkpoints cosigned per log and minute (a burst of as many).
    requests_per_minute: Option<u32>,
    /// `add-checkpoint` requests decided at once (503 beyond).
    concurrency: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    log: Vec<LogEntry>,
}

/// One `[[log]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogEntry {
    origin: String,
    /// The log's verifier keys.
    keys: Vec<String>,
}

/// Everything `evault witness` needs, read and checked.
struct Setup {
    listen: Option<String>,
    config: WitnessConfig,
    cosigners: Vec<Box<dyn Signer>>,
    concurrency: usize,
    tls: Option<evault_server::TlsConfig>,
}

impl Setup {
    /// Reads the file at `path`; every error names the file, and the key or
    /// entry it is about.
    fn load(path: &Path) -> Result<Setup, String> {
        let what = format!("witness config {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
        let file: WitnessFile = toml::from_str(&text).map_err(|e| format!("{what}: {e}"))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if file.cosigner_keys.is_empty() {
            return Err(format!(
                "{what}: cosigner_keys is empty; make a key with `evault keys generate NAME \
                 --type ed25519-cosignature --out FILE` and list it as \"file:FILE\""
            ));
        }
        let cosigners = file
            .cosigner_keys
            .iter()
            .enumerate()
            .map(|(i, uri)| {
                load_cosigner(uri, base)
                    .map_err(|e| format!("{what}: cosigner_keys[{i}] {uri:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if file.log.is_empty() {
            return Err(format!(
                "{what}: no [[log]] table: name the logs to witness (origin and keys)"
            ));
        }
        let requests_per_minute = file
            .requests_per_minute
            .unwrap_or(DEFAULT_REQUESTS_PER_MINUTE);
        if requests_per_minute == 0 {
            return Err(format!("{what}: requests_per_minute must be at least 1"));
        }
        let concurrency = file
            .concurrency
            .unwrap_or(evault_server::witness::DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(format!("{what}: concurrency must be at least 1"));
        }
        let tls = match (file.tls_cert, file.tls_key) {
            (Some(cert), Some(key)) => Some(evault_server::TlsConfig {
                cert: base.join(cert),
                key: base.join(key),
            }),
            (None, None) => None,
            _ => return Err(format!("{what}: TLS needs both tls_cert and tls_key")),
        };
        Ok(Setup {
            listen: file.listen,
            config: WitnessConfig {
                state_dir: base.join(file.state_dir),
                logs: file
                    .log
                    .into_iter()
                    .map(|l| LogConfig {
                        origin: l.origin,
                        keys: l.keys,
                    })
                    .collect(),
                requests_per_minute,
            },
            cosigners,
            concurrency,
            tls,
        })
    }
}

/// The path of a `file:` URI (RFC 8089: `file:/abs`, `file:///abs`, or a
/// path relative to the config file's directory).
fn file_uri_path(uri: &str, base: &Path) -> Result<PathBuf, String> {
    let rest = uri
        .strip_prefix("file:")
        .ok_or("only file: URIs are supported (file:/path/to/key)")?;
    let path = match rest.strip_prefix("//") {
        Some(abs) if abs.starts_with('/') => abs,
        Some(_) => return Err("a file: URI names no host (file:///path or file:/path)".into()),
        None => rest,
    };
    if path.is_empty() {
        return Err("the file: URI has no path".into());
    }
    Ok(base.join(path))
}

/// Reads a cosigner key file, refusing one that others could read.
fn load_cosigner(uri: &str, base: &Path) -> Result<Box<dyn Signer>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = file_uri_path(uri, base)?;
    let shown = path.display();
    let meta = std::fs::metadata(&path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the key file {shown} is open to group or others (mode {mode:04o}); \
             `chmod 600 {shown}`"
        ));
    }
    // Wiped when dropped.
    let text =
        SignerKeyText::from(std::fs::read_to_string(&path).map_err(|e| format!("{shown}: {e}"))?);
    let skey = text.expose_secret().trim();
    match CosignatureSigner::from_signer_key(skey) {
        Ok(s) => Ok(Box::new(s)),
        Err(KeyError::UnsupportedAlgorithm { found: 0x06, .. }) => {
            MlDsaCosigner::from_signer_key(skey)
                .map(|s| Box::new(s) as Box<dyn Signer>)
                .map_err(|e| format!("{shown}: {e}"))
        }
        Err(KeyError::UnsupportedAlgorithm { found, .. }) => Err(format!(
            "{shown} holds a key of type 0x{found:02x} (0x01 is a log's key); a witness \
             cosigns with ed25519-cosignature (0x04) or ml-dsa-44 (0x06) keys: \
             `evault keys generate NAME --type ed25519-cosignature --out FILE`"
        )),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// Runs the witness the file at `config` describes until SIGTERM or SIGINT.
pub fn run(args: WitnessArgs, config: Option<&Path>) -> Result<(), String> {
    let path = config.ok_or(
        "evault witness needs --config FILE (TOML: state_dir, cosigner_keys, [[log]] tables; \
         see crates/cli/README.md)",
    )?;
    let setup = Setup::load(path)?;
    let listen = args
        .listen
        .or(setup.listen)
        .unwrap_or_else(|| DEFAULT_WITNESS_LISTEN.to_string());
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| format!("listen {listen:?}: {e} (expected ADDR:PORT)"))?;
    crate::serve::init_logging();
    let vkeys: Vec<String> = setup
        .cosigners
        .iter()
        .map(|c| c.verifier_key().as_str().to_string())
        .collect();
    let origins: Vec<String> = setup.config.logs.iter().map(|l| l.origin.clone()).collect();
    let state_dir = setup.config.state_dir.clone();
    let witness = Witness::open(setup.config, setup.cosigners)
        .map_err(|e| format!("witness config {}: {e}", path.display()))?;
    let app = evault_server::witness_router(Arc::new(witness), setup.concurrency);
    let tls = setup.tls;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        for k in &vkeys {
            crate::say!("evault: witness cosigner key {k}");
        }
        for o in &origins {
            crate::say!("evault: witnessing log {o}");
        }
        crate::say!("evault: witness state dir {}", state_dir.display());
        // Last: the line scripts and tests wait for.
        let scheme = if tls.is_some() { "https" } else { "http" };
        crate::say!("evault: witness serving {scheme}://{local}");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::serve::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopping = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let server = evault_server::serve_router(
            app,
            evault_server::Limits::default(),
            listener,
            tls,
            stopping(),
        );
        let deadline = async {
            stopping().await;
            tokio::time::sleep(SHUTDOWN_TIMEOUT).await;
        };
        let served = tokio::select! {
            r = server => r.map_err(|e| format!("witness server: {e}")),
            _ = deadline => {
                crate::say!(
                    "evault: requests still running after {SHUTDOWN_TIMEOUT:?}; cutting them off"
                );
                Ok(())
            }
        };
        crate::say!("evault: witness stopped");
        served
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_strict() {
        let ok = "state_dir = \"s\"\ncosigner_keys = [\"file:k\"]\n\
                  [[log]]\norigin = \"o\"\nkeys = [\"k\"]\n";
        let f: WitnessFile = toml::from_str(ok).unwrap();
        assert_eq!((f.log.len(), f.listen), (1, None));
        for bad in [
            "state_dir = \"s\"\ncosigner_keys = []\nlisten_on = \"x\"\n",
            "cosigner_keys = []\n",
            "state_dir = \"s\"\ncosigner_keys = []\n[[log]]\norigin = \"o\"\nkey = [\"k\"]\n",
        ] {
            assert!(toml::from_str::<WitnessFile>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_uris() {
        let base = Path::new("/etc/w");
        assert_eq!(
            file_uri_path("file:/k/w.key", base).unwrap(),
            Path::new("/k/w.key")
        );
        assert_eq!(
            file_uri_path("file:///k/w.key", base).unwrap(),
            Path::new("/k/w.key")
        );
        assert_eq!(
            file_uri_path("file:w.key", base).unwrap(),
            Path::new("/etc/w/w.key")
        );
        for bad in ["/k/w.key", "pkcs11:token=x", "file://host/k", "file:"] {
            assert!(file_uri_path(bad, base).is_err(), "{bad}");
        }
    }
}
