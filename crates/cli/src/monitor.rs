//! `evault monitor`: follows tlog-tiles logs (a vault's evidence and audit
//! logs, or any other) from a local state file, trusting nothing the
//! server says; see crates/monitor/README.md for what each run checks.
//!
//! Exit codes: 0 ok, 1 verification failed, 2 usage or local problem,
//! 3 a server refused, 4 a server could not be reached.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use evault_monitor::{Exit, LogKind, LogRequest, Monitor, Options, RunReport};

use crate::config::{DEFAULT_SERVER, FileConfig, parse_duration};

#[derive(Args)]
pub struct MonitorArgs {
    /// Vault to follow: its evidence log (<server>/tlog/) and audit log
    /// (<server>/tlog-audit/). Default with --key: the configured server.
    #[arg(long)]
    server: Option<String>,
    /// Verifier key (name+hash+base64) of the vault's evidence log, or of
    /// the --log, or a file holding keys one per line; pinned on first use.
    /// Repeat it for a log that signs with several keys (Ed25519 and
    /// ML-DSA-44: GET /api/v1/log's verifier_keys).
    #[arg(long)]
    key: Vec<String>,
    /// Whether each checkpoint needs a signature by any pinned --key or by
    /// all; pinned with the keys [default: any].
    #[arg(long, value_enum)]
    key_policy: Option<KeyPolicyArg>,
    /// Checkpoint origin of that log (default: the key's name).
    #[arg(long)]
    origin: Option<String>,
    /// Verifier key of the vault's audit log (GET /api/v1/audit/log), or a
    /// file holding it; needed the first time, unless --no-audit.
    #[arg(long)]
    audit_key: Option<String>,
    /// Checkpoint origin of the audit log (default: the audit key's name).
    #[arg(long)]
    audit_origin: Option<String>,
    /// Follow only the vault's evidence log.
    #[arg(long, conflicts_with_all = ["audit_key", "audit_origin"])]
    no_audit: bool,
    /// Follow any C2SP tlog-tiles log instead: its prefix URL, a file://
    /// URL or a directory.
    #[arg(long, conflicts_with_all = ["server", "audit_key", "audit_origin", "no_audit"])]
    log: Option<String>,
    /// Name of the --log in the state file (default: its origin).
    #[arg(long, requires = "log")]
    name: Option<String>,
    /// Bearer token sent to the vault (the audit log's entries need the
    /// auditor role); never sent to a --log.
    #[arg(long, env = "EVAULT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// State file: trusted checkpoints and pinned keys. With no server or
    /// log named, every log in it is followed.
    #[arg(
        long,
        env = "EVAULT_MONITOR_STATE",
        default_value = "evault-monitor.json"
    )]
    state: PathBuf,
    /// Where evidence of a failure is saved (default: <state file
    /// stem>-evidence next to the state file).
    #[arg(long)]
    evidence_dir: Option<PathBuf>,
    /// Also fetch every new entry, check it against its authenticated leaf
    /// hash and, for a vault's logs, that it is a canonical record.
    #[arg(long)]
    entries: bool,
    /// Repeat until interrupted, or until --rounds; stops at the first
    /// verification failure.
    #[arg(long)]
    watch: bool,
    /// Time between two rounds of --watch.
    #[arg(long, default_value = "60s")]
    interval: String,
    /// Stop after this many rounds (implies --watch).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: Option<u64>,
    /// Timeout of each HTTP request.
    #[arg(long, default_value = "30s")]
    timeout: String,
}

/// A key given inline or as a file holding it.
fn key_text(key: &str) -> Result<String, String> {
    if Path::new(key).is_file() {
        return std::fs::read_to_string(key)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("{key}: {e}"));
    }
    Ok(key.to_string())
}

/// `--key-policy`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum KeyPolicyArg {
    Any,
    All,
}

/// The logs the arguments name (none: the state file's).
fn requests(args: &MonitorArgs, file: &FileConfig) -> Result<Vec<LogRequest>, String> {
    let mut keys = Vec::new();
    for k in &args.key {
        keys.extend(
            key_text(k)?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if !args.key.is_empty() && keys.is_empty() {
        return Err("--key: no key given".into());
    }
    let mut keys = keys.into_iter();
    let key = keys.next();
    let more_keys: Vec<String> = keys.collect();
    let key_policy = args.key_policy.map(|p| match p {
        KeyPolicyArg::Any => evault_monitor::KeyPolicy::Any,
        KeyPolicyArg::All => evault_monitor::KeyPolicy::All,
    });
    if let Some(prefix) = &args.log {
        let name = match (&args.name, &args.origin, &key) {
            (Some(n), _, _) => n.clone(),
            (None, Some(o), _) => o.clone(),
            (None, None, Some(k)) => evault_monitor::state::key_name(k)?,
            (None, None, None) => {
                return Err("--log needs --name (or --key, the first time)".into());
            }
        };
        return Ok(vec![LogRequest {
            name,
            kind: LogKind::Tlog,
            prefix: prefix.clone(),
            origin: args.origin.clone(),
            key,
            more_keys,
            key_policy,
        }]);
    }
    let vault = args.server.is_some() || key.is_some() || args.audit_key.is_some();
    if !vault {
        if args.origin.is_some() || args.no_audit || args.key_policy.is_some() {
            return Err("--origin, --no-audit and --key-policy need --server or --key".into());
        }
        return Ok(Vec::new());
    }
    let server = args
        .server
        .clone()
        .or_else(|| file.server.clone())
        .unwrap_or(DEFAULT_SERVER.into());
    let server = server.trim_end_matches('/');
    let mut out = vec![LogRequest {
        name: "evidence".into(),
        kind: LogKind::EvaultEvidence,
        prefix: format!("{server}/tlog/"),
        origin: args.origin.clone(),
        key,
        more_keys,
        key_policy,
    }];
    if !args.no_audit {
        out.push(LogRequest {
            name: "audit".into(),
            kind: LogKind::EvaultAudit,
            prefix: format!("{server}/tlog-audit/"),
            origin: args.audit_origin.clone(),
            key: args.audit_key.as_deref().map(key_text).transpose()?,
            more_keys: Vec::new(),
            key_policy: None,
        });
    }
    Ok(out)
}

fn usage(msg: &str) -> ExitCode {
    crate::say!("evault: {msg}");
    ExitCode::from(Exit::Usage.code())
}

pub fn run(args: MonitorArgs, file: &FileConfig, json: bool) -> ExitCode {
    let reqs = match requests(&args, file) {
        Ok(r) => r,
        Err(e) => return usage(&e),
    };
    let (interval, timeout) = match (
        parse_duration("--interval", &args.interval),
        parse_duration("--timeout", &args.timeout),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    let progress: Option<evault_monitor::Progress> = if std::io::stderr().is_terminal() {
        Some(Box::new(|line: &str| {
            crate::say!("evault monitor: {line}");
        }))
    } else {
        None
    };
    let options = Options {
        entries: args.entries,
        evidence_dir: args.evidence_dir.clone(),
        token: args.token.clone().or_else(|| file.token.clone()),
        timeout,
        progress,
    };
    let mut monitor = match Monitor::open(&args.state, &reqs, options) {
        Ok(m) => m,
        Err(e)
            if reqs
                .iter()
                .any(|r| r.kind == LogKind::EvaultAudit && r.key.is_none()) =>
        {
            return usage(&format!(
                "{e} (the audit log's key: --audit-key, from GET /api/v1/audit/log; or --no-audit)"
            ));
        }
        Err(e) => return usage(&e),
    };
    let rounds = args.rounds.or((!args.watch).then_some(1));
    let mut round = 0u64;
    loop {
        round += 1;
        let report = monitor.run_once();
        print_report(&report, json);
        let done = rounds.is_some_and(|n| round >= n);
        if done || report.outcome == Exit::Failed {
            return ExitCode::from(report.exit_code);
        }
        std::thread::sleep(interval);
    }
}

/// The report on stdout (one JSON object per line and round with
/// `--json`); failures also get a line on stderr.
fn print_report(report: &RunReport, json: bool) {
    let text = if json {
        serde_json::to_string(report).unwrap_or_default() + "\n"
    } else {
        report.to_string()
    };
    // A closed stdout must not turn a verdict into a panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    for log in &report.logs {
        if let Some(f) = &log.failure {
            crate::say!("evault: {f}");
        }
        if let Some(e) = &log.error {
            crate::say!("evault: {e}");
        }
    }
    if let Some(e) = &report.local_error {
        crate::say!("evault: state not saved: {e}");
    }
}
