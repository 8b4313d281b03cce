//! `evault`: runs the vault (`serve`), talks to it (`put`, `get`, `ls`,
//! `prove`, `checkpoint`) and verifies its proofs offline (`verify`).

mod audit;
mod client;
mod config;
mod sa;
mod serve;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use evault_note::{Ed25519Verifier, Verifiers, generate_ed25519};
use evault_verify::audit::AuditEvent;
use evault_verify::{Evidence, LoggedRecord, ProofBundle, Verified};
use serde_json::{Value, json};

use client::Client;
use config::{DEFAULT_DATA_DIR, DEFAULT_SERVER, FileConfig};

#[derive(Parser)]
#[command(
    name = "evault",
    version,
    about = "Merkle Evidence Vault: a tamper-evident evidence store"
)]
struct Cli {
    /// Optional TOML configuration file (flags and EVAULT_* variables win).
    #[arg(long, global = true, env = "EVAULT_CONFIG")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ClientOpts {
    /// Vault URL.
    #[arg(long, env = "EVAULT_SERVER")]
    server: Option<String>,
    /// Bearer token.
    #[arg(long, env = "EVAULT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Where the service-account keystore is.
#[derive(Args, Clone)]
struct KeystoreOpts {
    /// Keystore file (default <data dir>/service-accounts.json).
    #[arg(long, env = "EVAULT_SERVICE_ACCOUNTS", global = true)]
    service_accounts: Option<PathBuf>,
    /// Data directory whose keystore to use.
    #[arg(long, env = "EVAULT_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

impl KeystoreOpts {
    fn path(self, file: &FileConfig) -> PathBuf {
        keystore_path(self.service_accounts, self.data_dir.as_deref(), file)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the vault on its embedded store.
    Serve(serve::ServeArgs),
    /// Put files into the vault as evidence.
    Put {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Label as key=value (repeatable).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// Content type of every file (default: guessed from the extension).
        #[arg(long)]
        content_type: Option<String>,
        /// Idempotency key (single file only): a retry returns the first result.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Show a record (and optionally save its payload).
    Get {
        id: String,
        /// Write the payload to this file ("-" for stdout).
        #[arg(long)]
        payload: Option<PathBuf>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// List records.
    Ls {
        /// Label filter key:value or key=value (repeatable; all must match).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        #[arg(long)]
        content_type: Option<String>,
        /// RFC 3339 lower bound on ingestion time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 upper bound on ingestion time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Fetch an inclusion proof bundle for offline verification.
    Prove {
        id: String,
        /// Prove against the checkpoint of this size (default: latest).
        #[arg(long)]
        tree_size: Option<u64>,
        /// Write the bundle here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output C2SP tlog-proof text instead of the JSON bundle.
        #[arg(long)]
        tlog_proof: bool,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Verify a proof bundle offline: recompute the leaf from the record,
    /// check inclusion, check the checkpoint signature.
    Verify {
        /// Proof bundle from `evault prove --out`.
        #[arg(long)]
        proof: PathBuf,
        /// Checkpoint (signed note) to verify against; default: the bundle's.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Log verifier key (name+hash+base64), or a file holding it.
        #[arg(long)]
        key: String,
        /// Expected checkpoint origin.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Service accounts: keys CI pipelines sign their tokens with (edits the
    /// keystore file on this machine; a running server reloads it).
    Sa {
        #[command(subcommand)]
        command: sa::SaCommand,
        #[command(flatten)]
        keystore: KeystoreOpts,
    },
    /// Tokens for service accounts.
    Token {
        #[command(subcommand)]
        command: sa::TokenCommand,
        #[command(flatten)]
        keystore: KeystoreOpts,
    },
    /// The audit trail: every API call, in its own Merkle log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Print a signed checkpoint (latest, or of a given size).
    Checkpoint {
        #[arg(long)]
        size: Option<u64>,
        #[command(flatten)]
        client: ClientOpts,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate an Ed25519 signing key in the C2SP signed-note format.
    Generate {
        /// Key name (for a log key: its checkpoint origin).
        name: String,
        /// Write the private key here (mode 0600); the verifier key is printed.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match FileConfig::load(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args, file),
        Command::Put {
            files,
            labels,
            content_type,
            idempotency_key,
            client,
        } => put(
            &client_for(&client, &file),
            &files,
            &labels,
            content_type,
            idempotency_key,
            cli.json,
        ),
        Command::Get {
            id,
            payload,
            client,
        } => get(&client_for(&client, &file), &id, payload, cli.json),
        Command::Ls {
            labels,
            content_type,
            since,
            until,
            limit,
            cursor,
            client,
        } => ls(
            &client_for(&client, &file),
            &labels,
            content_type,
            since,
            until,
            limit,
            cursor,
            cli.json,
        ),
        Command::Prove {
            id,
            tree_size,
            out,
            tlog_proof,
            client,
        } => prove(&client_for(&client, &file), &id, tree_size, out, tlog_proof),
        Command::Verify {
            proof,
            checkpoint,
            key,
            origin,
        } => verify(
            &proof,
            checkpoint.as_deref(),
            &key,
            origin.as_deref(),
            cli.json,
        ),
        Command::Keys {
            command: KeysCommand::Generate { name, out },
        } => keys_generate(&name, &out, cli.json),
        Command::Checkpoint { size, client } => checkpoint(&client_for(&client, &file), size),
        Command::Sa { command, keystore } => sa::run_sa(command, &keystore.path(&file), cli.json),
        Command::Token { command, keystore } => {
            sa::run_token(command, &keystore.path(&file), cli.json)
        }
        Command::Audit { command } => audit::run(command, |c| client_for(c, &file), cli.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("evault: {msg}");
    ExitCode::FAILURE
}

fn client_for(opts: &ClientOpts, file: &FileConfig) -> Client {
    let server = opts
        .server
        .clone()
        .or_else(|| file.server.clone())
        .unwrap_or(DEFAULT_SERVER.into());
    Client::new(&server, opts.token.clone().or_else(|| file.token.clone()))
}

/// The data directory: flag or EVAULT_DATA_DIR, then the config file, then
/// the default.
fn data_dir(flag: Option<PathBuf>, file: &FileConfig) -> PathBuf {
    flag.or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The service-account keystore: flag or EVAULT_SERVICE_ACCOUNTS, then the
/// config file, then `<data dir>/service-accounts.json`.
fn keystore_path(flag: Option<PathBuf>, data: Option<&Path>, file: &FileConfig) -> PathBuf {
    flag.or_else(|| file.service_accounts.clone())
        .unwrap_or_else(|| {
            data_dir(data.map(Path::to_path_buf), file).join("service-accounts.json")
        })
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn guess_content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => "application/json",
        Some("xml") | Some("junit") => "application/xml",
        Some("txt") | Some("log") => "text/plain",
        Some("html") | Some("htm") => "text/html",
        Some("md") => "text/markdown",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz") | Some("tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("sigstore") => "application/vnd.dev.sigstore.bundle+json",
        _ => "application/octet-stream",
    }
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, String> {
    labels
        .iter()
        .map(|l| evault_vault::ingest::parse_label(l).map_err(|e| e.to_string()))
        .collect()
}

fn put(
    client: &Client,
    files: &[PathBuf],
    labels: &[String],
    content_type: Option<String>,
    idempotency_key: Option<String>,
    json_out: bool,
) -> Result<(), String> {
    let labels = parse_labels(labels)?;
    if idempotency_key.is_some() && files.len() > 1 {
        return Err("--idempotency-key applies to a single file".into());
    }
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = if files.len() > 1 && !json_out {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {eta}",
            )
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
        );
        Some(b)
    } else {
        None
    };
    let mut results = Vec::new();
    let mut failures = 0;
    for path in files {
        if let Some(b) = &bar {
            b.set_message(path.display().to_string());
        }
        let mut headers = vec![(
            "Content-Type".to_string(),
            content_type
                .clone()
                .unwrap_or_else(|| guess_content_type(path).to_string()),
        )];
        for (k, v) in &labels {
            headers.push(("X-Evault-Label".into(), format!("{k}={v}")));
        }
        if let Some(k) = &idempotency_key {
            headers.push(("Idempotency-Key".into(), k.clone()));
        }
        let outcome = std::fs::File::open(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|f| {
                let mut reader: Box<dyn std::io::Read> = match &bar {
                    Some(b) => Box::new(b.wrap_read(f)),
                    None => Box::new(f),
                };
                client.post_stream("/api/v1/evidence", &headers, &mut reader)
            });
        match outcome {
            Ok((_, v)) => {
                let rec = &v["record"];
                let line = format!(
                    "{}  leaf {}  {}{}",
                    rec["id"].as_str().unwrap_or("?"),
                    rec["leaf_index"],
                    path.display(),
                    if v["duplicate"].as_bool() == Some(true) {
                        "  (duplicate)"
                    } else {
                        ""
                    }
                );
                match &bar {
                    Some(b) => b.println(line),
                    None if !json_out => println!("{line}"),
                    None => {}
                }
                results.push(json!({"file": path, "result": v}));
            }
            Err(e) => {
                failures += 1;
                match &bar {
                    Some(b) => b.println(format!("FAILED {}: {e}", path.display())),
                    None => eprintln!("evault: {}: {e}", path.display()),
                }
                results.push(json!({"file": path, "error": e}));
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json_out {
        print_json(&Value::Array(results));
    }
    if failures > 0 {
        return Err(format!("{failures} of {} files failed", files.len()));
    }
    Ok(())
}

fn get(client: &Client, id: &str, payload: Option<PathBuf>, json_out: bool) -> Result<(), String> {
    let rec: Value = client.get_json(&format!("/api/v1/evidence/{}", encode(id)))?;
    if let Some(out) = payload {
        let path = format!("/api/v1/evidence/{}/payload", encode(id));
        if out.as_os_str() == "-" {
            client.get_to(&path, &mut std::io::stdout().lock())?;
            return Ok(());
        }
        let mut f = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let n = client.get_to(&path, &mut f)?;
        f.sync_all().map_err(|e| e.to_string())?;
        eprintln!("evault: wrote {n} bytes to {}", out.display());
    }
    if json_out {
        print_json(&rec);
    } else {
        println!("id            {}", rec["id"].as_str().unwrap_or(""));
        println!("leaf index    {}", rec["leaf_index"]);
        println!(
            "content type  {}",
            rec["content_type"].as_str().unwrap_or("")
        );
        println!("sha256        {}", rec["sha256"].as_str().unwrap_or(""));
        println!("size          {}", rec["size"]);
        println!(
            "ingested      {} by {}",
            rec["ingested_at"].as_str().unwrap_or(""),
            rec["ingested_by"].as_str().unwrap_or("")
        );
        if let Some(labels) = rec["labels"].as_object() {
            for (k, v) in labels {
                println!("label         {k}={}", v.as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}

/// Percent-encodes a query or path component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn ls(
    client: &Client,
    labels: &[String],
    content_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: u32,
    cursor: Option<String>,
    json_out: bool,
) -> Result<(), String> {
    let mut q = vec![format!("limit={limit}")];
    for l in labels {
        let (k, v) = evault_vault::ingest::parse_label(l).map_err(|e| e.to_string())?;
        q.push(format!("label={}", encode(&format!("{k}:{v}"))));
    }
    for (name, v) in [
        ("content_type", content_type),
        ("since", since),
        ("until", until),
        ("cursor", cursor),
    ] {
        if let Some(v) = v {
            q.push(format!("{name}={}", encode(&v)));
        }
    }
    let page: Value = client.get_json(&format!("/api/v1/evidence?{}", q.join("&")))?;
    if json_out {
        print_json(&page);
        return Ok(());
    }
    for rec in page["items"].as_array().into_iter().flatten() {
        println!(
            "{:>8}  {}  {}  {:>10}  {}",
            rec["leaf_index"],
            rec["id"].as_str().unwrap_or(""),
            rec["ingested_at"].as_str().unwrap_or(""),
            rec["size"],
            rec["content_type"].as_str().unwrap_or("")
        );
    }
    if let Some(next) = page["next_cursor"].as_str() {
        eprintln!("evault: more results: --cursor {next}");
    }
    Ok(())
}

fn prove(
    client: &Client,
    id: &str,
    tree_size: Option<u64>,
    out: Option<PathBuf>,
    tlog: bool,
) -> Result<(), String> {
    let mut path = format!("/api/v1/evidence/{}/proof", encode(id));
    let mut q = Vec::new();
    if let Some(n) = tree_size {
        q.push(format!("tree_size={n}"));
    }
    if tlog {
        q.push("format=tlog-proof".to_string());
    }
    if !q.is_empty() {
        path = format!("{path}?{}", q.join("&"));
    }
    let text = fetch_proof(
        client,
        &path,
        if tlog {
            "text/plain"
        } else {
            "application/json"
        },
        tree_size.is_none(),
    )?;
    let text = if tlog { text } else { pretty_json(&text)? };
    write_out(&text, out.as_deref(), "proof")
}

/// GETs a proof. A record is acknowledged before the next checkpoint
/// covers it: with `wait`, a 404 is retried for a few checkpoint intervals
/// rather than failing at once.
fn fetch_proof(client: &Client, path: &str, accept: &str, wait: bool) -> Result<String, String> {
    let mut attempt = 0;
    loop {
        match client.get_text(path, accept) {
            Ok(t) => return Ok(t),
            Err(e) if e.starts_with("404") && wait && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

fn pretty_json(text: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("unexpected reply: {e}"))?;
    Ok(serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n")
}

/// Writes `text` to `out` (saying so on stderr), or to stdout.
fn write_out(text: &str, out: Option<&Path>, what: &str) -> Result<(), String> {
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("evault: wrote {what} to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn verify(
    proof: &Path,
    checkpoint: Option<&Path>,
    key: &str,
    origin: Option<&str>,
    json_out: bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(proof).map_err(|e| format!("{}: {e}", proof.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a proof bundle: {e}", proof.display()))?;
    // An audit event bundle has the evidence bundle's shape; its record is
    // told apart by the fields only an audit event has.
    let audit = value["record"].get("request_id").is_some();
    let key_text = if Path::new(key).is_file() {
        std::fs::read_to_string(key)
            .map_err(|e| format!("{key}: {e}"))?
            .trim()
            .to_string()
    } else {
        key.to_string()
    };
    let verifier =
        Ed25519Verifier::from_verifier_key(&key_text).map_err(|e| format!("--key: {e}"))?;
    let verifiers = Verifiers::new().with(verifier).map_err(|e| e.to_string())?;
    let checkpoint = match checkpoint {
        Some(cp) => {
            Some(std::fs::read_to_string(cp).map_err(|e| format!("{}: {e}", cp.display()))?)
        }
        None => None,
    };
    let ok = if audit {
        verify_bundle::<AuditEvent>(value.clone(), checkpoint, &verifiers, origin)
    } else {
        verify_bundle::<Evidence>(value.clone(), checkpoint, &verifiers, origin)
    }
    .map_err(|e| format!("{}: {e}", proof.display()))?;
    let what = if audit { "audit event" } else { "record" };
    let id = value["record"]["id"].as_str().unwrap_or("?");
    if json_out {
        print_json(&json!({
            "verified": true,
            "kind": if audit { "audit-event" } else { "evidence" },
            "origin": ok.origin,
            "tree_size": ok.tree_size,
            "leaf_index": ok.leaf_index,
            "record_id": id,
            "signed_by": ok.signed_by,
        }));
    } else {
        println!(
            "verified: {what} {id} is leaf {} of {} (tree size {}), checkpoint signed by {}",
            ok.leaf_index,
            ok.origin,
            ok.tree_size,
            ok.signed_by.join(", ")
        );
    }
    Ok(())
}

/// Parses a bundle of records of type `R` and verifies it offline.
fn verify_bundle<R: LoggedRecord + serde::de::DeserializeOwned>(
    value: Value,
    checkpoint: Option<String>,
    verifiers: &Verifiers,
    origin: Option<&str>,
) -> Result<Verified, String> {
    let mut bundle: ProofBundle<R> =
        serde_json::from_value(value).map_err(|e| format!("not a proof bundle: {e}"))?;
    if let Some(cp) = checkpoint {
        bundle.checkpoint = cp;
    }
    bundle
        .verify(verifiers, origin)
        .map_err(|e| format!("NOT VERIFIED: {e}"))
}

fn keys_generate(name: &str, out: &Path, json_out: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let (skey, vkey) = generate_ed25519(name).map_err(|e| format!("key name {name:?}: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    f.write_all(skey.expose_secret().as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", out.display()))?;
    if json_out {
        print_json(&json!({"private_key_file": out, "verifier_key": vkey.to_string()}));
    } else {
        eprintln!(
            "evault: private key written to {} (mode 0600)",
            out.display()
        );
        println!("{vkey}");
    }
    Ok(())
}

fn checkpoint(client: &Client, size: Option<u64>) -> Result<(), String> {
    let path = match size {
        Some(n) => format!("/api/v1/checkpoints/{n}"),
        None => "/api/v1/checkpoints/latest".to_string(),
    };
    print!("{}", client.get_text(&path, "text/plain")?);
    Ok(())
}
