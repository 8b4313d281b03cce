//! `evault`: runs the vault (`serve`), talks to it (`put`, `get`, `ls`,
//! `prove`, `checkpoint`) and verifies its proofs offline (`verify`).
//!
//! This file holds the command line and its dispatch; each command group
//! lives in its own module.

mod audit;
mod checkpoint;
mod client;
mod config;
mod evidence;
mod keys;
mod logsink;
mod monitor;
mod output;
mod proof;
mod sa;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    Serve(Box<serve::ServeArgs>),
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
    /// Keep watch over tlog-tiles logs (a vault's, or any): verify each new
    /// checkpoint and every tile read against it, from a local state file.
    Monitor(Box<monitor::MonitorArgs>),
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
        Command::Serve(args) => serve::serve(*args, file),
        Command::Put {
            files,
            labels,
            content_type,
            idempotency_key,
            client,
        } => evidence::put(
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
        } => evidence::get(&client_for(&client, &file), &id, payload, cli.json),
        Command::Ls {
            labels,
            content_type,
            since,
            until,
            limit,
            cursor,
            client,
        } => evidence::ls(
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
        } => proof::prove(&client_for(&client, &file), &id, tree_size, out, tlog_proof),
        Command::Verify {
            proof,
            checkpoint,
            key,
            origin,
        } => proof::verify(
            &proof,
            checkpoint.as_deref(),
            &key,
            origin.as_deref(),
            cli.json,
        ),
        Command::Keys {
            command: KeysCommand::Generate { name, out },
        } => keys::generate(&name, &out, cli.json),
        Command::Checkpoint { size, client } => checkpoint::show(&client_for(&client, &file), size),
        Command::Sa { command, keystore } => sa::run_sa(command, &keystore.path(&file), cli.json),
        Command::Token { command, keystore } => {
            sa::run_token(command, &keystore.path(&file), cli.json)
        }
        Command::Audit { command } => audit::run(command, |c| client_for(c, &file), cli.json),
        // Its own exit codes (verification failed, refused, unreachable).
        Command::Monitor(args) => return monitor::run(*args, &file, cli.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    // Not `eprintln!`: a closed stderr must not turn an exit into a panic.
    say!("evault: {msg}");
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
