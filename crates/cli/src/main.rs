//! `evault`: runs the vault (`serve`), talks to it (`put`, `get`, `ls`,
//! `prove`, `checkpoint`, `analytics`), verifies its proofs offline
//! (`verify`, `consistency`) and witnesses other logs (`witness`).
//!
//! This file holds the command line and its dispatch; each command group
//! lives in its own module. Output rules and exit codes: `error.rs`,
//! `output.rs` and crates/cli/README.md.

mod analytics;
mod audit;
mod backfill;
mod checkpoint;
mod client;
mod compliance;
mod config;
mod consistency;
mod error;
mod evb;
mod evidence;
mod fsck;
mod import;
mod keys;
mod logsink;
mod migrate;
mod monitor;
mod output;
mod proof;
mod sa;
mod sa_db;
mod secret_file;
mod serve;
mod signers;
mod sigstore_config;
mod store_copy;
mod task;
mod witness;
mod witnessing;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use client::Client;
use config::{DEFAULT_DATA_DIR, DEFAULT_SERVER, FileConfig};
use error::{CliError, CliResult};
use proof::LogKind;

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
    /// Print results as JSON on stdout; a failure is a JSON object with
    /// `error` and `exit_code` there too.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ClientOpts {
    /// The vault's REST address, with http:// or https:// [default:
    /// http://127.0.0.1:8470].
    #[arg(long, env = "EVAULT_SERVER")]
    server: Option<String>,
    /// Bearer token (`evault token mint` makes one).
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
    /// The vault's store: with a PostgreSQL one (postgres://USER@HOST/DB)
    /// the keys are in its database, which every node reads, not in a
    /// file [default: sqlite].
    #[arg(
        long,
        env = "EVAULT_STORE",
        hide_env_values = true,
        global = true,
        value_name = "sqlite|URL"
    )]
    store: Option<String>,
}

impl KeystoreOpts {
    fn location(self, file: &FileConfig) -> Result<sa::KeystoreLocation, CliError> {
        let explicit = self.service_accounts.is_some()
            || self.data_dir.is_some()
            || file.service_accounts.is_some()
            || file.data_dir.is_some();
        let store = match self.store.as_deref().or(file.store.as_deref()) {
            None => None,
            Some(s) => match evault_vault::StoreLocation::parse(s)
                .map_err(|e| CliError::usage(format!("--{e}")))?
            {
                evault_vault::StoreLocation::Sqlite => None,
                evault_vault::StoreLocation::Postgres(url) => Some(url),
            },
        };
        Ok(sa::KeystoreLocation {
            path: keystore_path(self.service_accounts, self.data_dir.as_deref(), file),
            explicit,
            store,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the vault on its embedded store.
    Serve(Box<serve::ServeArgs>),
    /// Put files into the vault as evidence: one line per file on stdout
    /// (id, leaf index, file).
    Put {
        /// Files to put, one record each.
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
        /// For a Sigstore bundle: the artifact it must sign, as
        /// sha256:<hex> (default: the digest the bundle states).
        #[arg(long)]
        artifact_digest: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Show a record (and optionally save its payload).
    Get {
        /// The record's id (as `put` printed it).
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
        /// Only records of this content type.
        #[arg(long)]
        content_type: Option<String>,
        /// RFC 3339 lower bound on ingestion time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 upper bound on ingestion time.
        #[arg(long)]
        until: Option<String>,
        /// Records per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after a previous page (the cursor it printed).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Fetch a record's inclusion proof for offline verification.
    Prove {
        /// The record's id.
        id: String,
        /// Prove against the checkpoint of this size (default: the latest,
        /// waiting for one that covers the record).
        #[arg(long)]
        tree_size: Option<u64>,
        /// Write the proof to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output C2SP tlog-proof text instead of the JSON bundle (verify it
        /// with `evault verify --record <record JSON>`).
        #[arg(long)]
        tlog_proof: bool,
        /// How long to wait for a checkpoint covering a new record (an
        /// unknown id fails at once).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: Duration,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Verify offline: a proof (recompute the leaf from the record, check
    /// inclusion, check the checkpoint signature), read as a JSON bundle or
    /// a C2SP tlog-proof (told apart by its first line), or an evidence
    /// bundle (`.evb`, told apart by the zstd magic): every record, proof,
    /// payload and digest in it, with a per-record report.
    Verify {
        /// An evidence bundle (`.evb`), or a proof file as for --proof.
        #[arg(value_name = "BUNDLE", conflicts_with = "proof")]
        bundle: Option<PathBuf>,
        /// Proof from `evault prove --out` (bundle, or tlog-proof text).
        #[arg(long, required_unless_present = "bundle")]
        proof: Option<PathBuf>,
        /// The record proven, as JSON (`evault get <id> --json`, or an audit
        /// event): required for a tlog-proof, which does not carry it; with a
        /// bundle it must be the bundle's record.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Checkpoint (signed note) to verify against; default: the proof's.
        /// With an evidence bundle: a newer checkpoint of the log that the
        /// bundle's must be consistent with (the bundle must carry that
        /// consistency proof).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Log verifier key (name+hash+base64), or a file holding keys one
        /// per line; repeat for several (e.g. Ed25519 and ML-DSA-44, as
        /// GET /api/v1/log lists them in verifier_keys).
        #[arg(long, required = true)]
        key: Vec<String>,
        /// Whether the checkpoint needs a signature by any --key or by all.
        #[arg(long, value_enum, default_value = "any")]
        key_policy: proof::KeyPolicy,
        /// Expected checkpoint origin.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Check that a newer checkpoint of a log extends an older one (nothing
    /// removed or rewritten): the proof comes from the vault, or offline
    /// from --proof.
    Consistency {
        /// The older checkpoint (signed note file, e.g. `evault checkpoint --out`).
        #[arg(long)]
        old: PathBuf,
        /// The newer checkpoint.
        #[arg(long)]
        new: PathBuf,
        /// The log's verifier key (name+hash+base64), or a file holding keys
        /// one per line; repeat for several.
        #[arg(long, required = true)]
        key: Vec<String>,
        /// Whether each checkpoint needs a signature by any --key or by all.
        #[arg(long, value_enum, default_value = "any")]
        key_policy: proof::KeyPolicy,
        /// Expected checkpoint origin.
        #[arg(long)]
        origin: Option<String>,
        /// A consistency proof (JSON, as `--out` saves it): verify offline.
        #[arg(long, conflicts_with = "out")]
        proof: Option<PathBuf>,
        /// Save the fetched proof here, to verify again offline later.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Which log the checkpoints are of.
        #[arg(long, value_enum, default_value = "evidence")]
        log: LogKind,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Erase a record's payload (role admin): its bytes, and those of
    /// every record sharing them, are removed; the leaves stay, so every
    /// proof still verifies; a tombstone record says what was erased.
    Erase {
        /// The record's id.
        id: String,
        /// Why (required; kept for administrators, the logs carry its
        /// SHA-256 only).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Legal holds: records they cover cannot be erased.
    Hold {
        #[command(subcommand)]
        command: compliance::HoldCommand,
    },
    /// Retention policies: payloads expire and are erased on schedule.
    Retention {
        #[command(subcommand)]
        command: compliance::RetentionCommand,
    },
    /// Rewrite a stopped vault's database (VACUUM, then incremental
    /// auto-vacuum): no free page keeps stale copies of erased payloads.
    Compact {
        /// Data directory of the stopped vault [default: ./evault-data].
        #[arg(long, env = "EVAULT_DATA_DIR")]
        data_dir: Option<PathBuf>,
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
    /// Tracked long jobs (exports, fsck): start, list, show, cancel,
    /// follow and download them.
    Task {
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// Backfill historical releases (role ingester or admin): uploads an
    /// inventory (CSV or JSON, docs/FORMATS.md) and follows the
    /// `backfill_releases` task, progress on stderr. Each artifact's digest
    /// is logged once; artifacts logged already are skipped. Prints the
    /// counts per status; exit 1 if any item is an error.
    Backfill {
        /// The inventory: CSV (`version,release_date,artifact,sha256,bundle,notes`)
        /// or JSON (a `.json` file, or one starting with `[`).
        inventory: PathBuf,
        /// Report what would be logged; log nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the report (every item's status) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Import an evidence bundle (`.evb`) of another log (role admin): the
    /// vault verifies it with --key and keeps its records as a mirror of
    /// that log (their origin, leaf indexes and checkpoint), never in its
    /// own log. Follows the import task to its end; exit 1 if the bundle
    /// does not verify or contradicts what the mirror holds.
    Import {
        /// The bundle, e.g. from `evault task result` of an export_bundle task.
        bundle: PathBuf,
        /// Verifier key of the bundle's log (name+hash+base64), or a file
        /// holding it.
        #[arg(long)]
        key: String,
        /// Print the import task's id once it is queued; do not follow it.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Keep watch over tlog-tiles logs (a vault's, or any): verify each new
    /// checkpoint and every tile read against it, from a local state file.
    Monitor(Box<monitor::MonitorArgs>),
    /// Check a stopped vault's data directory in full, read only: every
    /// leaf against its record, every tile rebuilt from the leaves, every
    /// checkpoint's signature, root and consistency, every payload's digest,
    /// the indexes against the log. Exit 0 clean, 1 on any finding.
    Fsck(Box<fsck::FsckArgs>),
    /// Convert a stopped vault's data directory to this binary's store
    /// schema (what `serve` does at start), show that no leaf, tile, size or
    /// checkpoint changed, index every record and run the full fsck. Exit 0
    /// converted and clean, 1 if a log changed or fsck found anything, 2 if
    /// it cannot run or the check could not.
    Migrate(Box<migrate::MigrateArgs>),
    /// Move a stopped vault between stores (SQLite and PostgreSQL).
    Store {
        #[command(subcommand)]
        command: store_copy::StoreCommand,
    },
    /// Run a C2SP tlog-witness: cosign the checkpoints of the logs that
    /// --config FILE (the witness's own TOML, not the vault's) names, each
    /// only if it extends the one cosigned before.
    Witness(Box<witness::WitnessArgs>),
    /// Print a signed checkpoint (latest, or of a given size).
    Checkpoint {
        /// The checkpoint of this tree size (default: the latest).
        #[arg(long)]
        size: Option<u64>,
        /// Which log's checkpoint.
        #[arg(long, value_enum, default_value = "evidence")]
        log: LogKind,
        /// Also write the signed note to this file (for `consistency`).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// Summarise the analytics events (records of type
    /// application/vnd.evault.analytics+json): per source and kind.
    Analytics {
        /// Only this event source.
        #[arg(long)]
        source: Option<String>,
        /// Only this event kind.
        #[arg(long)]
        kind: Option<String>,
        /// RFC 3339: events timestamped at or after.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339: events timestamped before.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        client: ClientOpts,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a signing key in the C2SP signed-note format, in a file or
    /// inside a PKCS#11 token; the verifier key is printed.
    Generate {
        /// Key name (for a log key: its checkpoint origin).
        name: String,
        /// Write the private key here (mode 0600).
        #[arg(long, required_unless_present = "pkcs11", conflicts_with = "pkcs11")]
        out: Option<PathBuf>,
        /// Key type: ed25519 (a log's key, type 0x01), ml-dsa-44 (a log's
        /// or witness's post-quantum key, 0x06) or ed25519-cosignature (a
        /// witness's Ed25519 key, 0x04).
        #[arg(long = "type", value_enum, default_value = "ed25519")]
        key_type: keys::KeyType,
        /// Generate an Ed25519 key inside the PKCS#11 token this RFC 7512
        /// URI names (`pkcs11:token=…;object=…?module-path=…&pin-source=…`);
        /// the private key is created sensitive and never leaves the token.
        #[arg(long)]
        pkcs11: Option<String>,
    },
    /// Rotate a running vault's evidence log key (role admin): a new key is
    /// made and announced in the log by a key event signed by the old and
    /// the new key; both sign every checkpoint during the overlap, then the
    /// old key is retired and only the new one signs.
    Rotate {
        /// How long the old key keeps signing beside the new one (e.g. 7d,
        /// 12h; at most 366 days).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        overlap: std::time::Duration,
        #[command(flatten)]
        client: ClientOpts,
    },
    /// End a rotation's overlap now: the old key is retired (role admin).
    Retire {
        #[command(flatten)]
        client: ClientOpts,
    },
    /// A running vault's evidence log keys, past and present.
    List {
        #[command(flatten)]
        client: ClientOpts,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(e) => fail(&e, json),
    }
}

/// A clap error: help and version are printed as usual; a real usage
/// error exits 2, with `--json` also as a JSON object on stdout.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args().any(|a| a == "--json");
    if json && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // The message is the text before the usage block.
        let text = e.to_string();
        let msg: Vec<&str> = text
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        let msg = msg.join(" ");
        let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
        output::print_json(&CliError::usage(msg).to_json());
    }
    e.exit()
}

fn run(cli: Cli) -> CliResult<ExitCode> {
    // `witness` reads --config as a file of its own (witness.rs).
    let file = if matches!(cli.command, Command::Witness(_)) {
        FileConfig::default()
    } else {
        FileConfig::load(cli.config.as_deref())?
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Serve(args) => Ok(serve::serve(*args, file)?),
        Command::Witness(args) => Ok(witness::run(*args, cli.config.as_deref())?),
        Command::Put {
            files,
            labels,
            content_type,
            idempotency_key,
            artifact_digest,
            client,
        } => evidence::put(
            &client_for(&client, &file)?,
            &files,
            &labels,
            content_type,
            idempotency_key,
            artifact_digest,
            json,
        ),
        Command::Get {
            id,
            payload,
            client,
        } => evidence::get(&client_for(&client, &file)?, &id, payload, json),
        Command::Ls {
            labels,
            content_type,
            since,
            until,
            limit,
            cursor,
            client,
        } => evidence::ls(
            &client_for(&client, &file)?,
            &labels,
            content_type,
            since,
            until,
            limit,
            cursor,
            json,
        ),
        Command::Prove {
            id,
            tree_size,
            out,
            tlog_proof,
            wait,
            client,
        } => proof::prove(
            &client_for(&client, &file)?,
            LogKind::Evidence,
            &id,
            tree_size,
            out,
            tlog_proof,
            wait,
            json,
        ),
        Command::Verify {
            bundle,
            proof,
            record,
            checkpoint,
            key,
            key_policy,
            origin,
        } => {
            let file = bundle.or(proof).ok_or_else(|| {
                CliError::usage("give the file to verify: `evault verify BUNDLE.evb` or --proof")
            })?;
            // The file's own errors first, then the keys'.
            let is_bundle = evb::is_bundle_file(&file)?;
            let keys = proof::KeySet::load(&key, key_policy, "--key")?;
            if is_bundle {
                if record.is_some() {
                    return Err(CliError::usage(
                        "--record is for a single proof; an evidence bundle carries its records",
                    ));
                }
                evb::verify(&file, &keys, checkpoint.as_deref(), origin.as_deref(), json)
            } else {
                proof::verify(
                    &file,
                    record.as_deref(),
                    checkpoint.as_deref(),
                    &keys,
                    origin.as_deref(),
                    json,
                )
            }
        }
        Command::Consistency {
            old,
            new,
            key,
            key_policy,
            origin,
            proof,
            out,
            log,
            client,
        } => consistency::run(
            || client_for(&client, &file),
            consistency::Args {
                old: &old,
                new: &new,
                key: &key,
                key_policy,
                origin: origin.as_deref(),
                proof: proof.as_deref(),
                out: out.as_deref(),
                log,
            },
            json,
        ),
        Command::Keys {
            command:
                KeysCommand::Generate {
                    name,
                    out,
                    key_type,
                    pkcs11,
                },
        } => match (out, pkcs11) {
            (_, Some(uri)) => keys::generate_in_token(&name, &uri, key_type, json),
            (Some(out), None) => keys::generate(&name, &out, key_type, json),
            (None, None) => Err(error::CliError::usage("give --out FILE or --pkcs11 URI")),
        },
        Command::Keys {
            command: KeysCommand::Rotate { overlap, client },
        } => keys::rotate(&client_for(&client, &file)?, overlap, json),
        Command::Keys {
            command: KeysCommand::Retire { client },
        } => keys::remote(
            &client_for(&client, &file)?,
            "/api/v1/log/keys/retire",
            true,
            json,
        ),
        Command::Keys {
            command: KeysCommand::List { client },
        } => keys::remote(
            &client_for(&client, &file)?,
            "/api/v1/log/keys",
            false,
            json,
        ),
        Command::Checkpoint {
            size,
            log,
            out,
            client,
        } => checkpoint::show(
            &client_for(&client, &file)?,
            log,
            size,
            out.as_deref(),
            json,
        ),
        Command::Analytics {
            source,
            kind,
            since,
            until,
            client,
        } => analytics::summary(
            &client_for(&client, &file)?,
            analytics::Filters {
                source,
                kind,
                since,
                until,
            },
            json,
        ),
        Command::Sa { command, keystore } => sa::run_sa(command, &keystore.location(&file)?, json),
        Command::Token { command, keystore } => {
            sa::run_token(command, &keystore.location(&file)?, json)
        }
        Command::Audit { command } => audit::run(command, |c| client_for(c, &file), json),
        Command::Task { command } => task::run(command, |c| client_for(c, &file), json),
        Command::Erase { id, reason, client } => {
            compliance::erase(&client_for(&client, &file)?, &id, &reason, json)
        }
        Command::Hold { command } => compliance::hold(command, |c| client_for(c, &file), json),
        Command::Retention { command } => {
            compliance::retention(command, |c| client_for(c, &file), json)
        }
        Command::Compact { data_dir } => compliance::compact(data_dir, &file, json),
        Command::Backfill {
            inventory,
            dry_run,
            out,
            client,
        } => backfill::run(
            &client_for(&client, &file)?,
            &inventory,
            dry_run,
            out.as_deref(),
            json,
        ),
        Command::Import {
            bundle,
            key,
            no_wait,
            client,
        } => import::run(&client_for(&client, &file)?, &bundle, &key, no_wait, json),
        // It reports its own exit codes (verification failed, refused, unreachable).
        Command::Monitor(args) => return Ok(monitor::run(*args, &file, json)),
        // Exit 1 on findings, with the report printed.
        Command::Fsck(args) => return fsck::run(*args, &file, json),
        Command::Migrate(args) => return migrate::run(*args, &file, json),
        Command::Store { command } => return store_copy::run(command, &file, json),
    };
    result.map(|()| ExitCode::SUCCESS)
}

/// Reports `e`: on stderr, and with `--json` as an object on stdout.
fn fail(e: &CliError, json: bool) -> ExitCode {
    if json {
        output::print_json(&e.to_json());
    }
    // Not `eprintln!`: a closed stderr must not turn an exit into a panic.
    say!("evault: {}", e.message);
    if let Some(h) = &e.hint {
        say!("evault: hint: {h}");
    }
    ExitCode::from(e.exit as u8)
}

fn client_for(opts: &ClientOpts, file: &FileConfig) -> CliResult<Client> {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every argument of every command says what it is for.
    #[test]
    fn every_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "evault", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }
}
