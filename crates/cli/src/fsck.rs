//! `evault fsck`: the full check of a stopped vault's data directory
//! (`evault_vault::fsck_data_dir`), read only. The report goes to stdout
//! (text, or the report as JSON with `--json`), progress to stderr only on
//! a terminal. Exit 0 clean, 1 on any finding, 2 if it cannot run (the
//! directory is missing or in use by a running server, a key is missing).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use evault_vault::{FsckOptions, FsckReport, VaultError};

use crate::config::FileConfig;
use crate::error::{CliError, CliResult, Exit};
use crate::{output, say};

#[derive(Args)]
pub struct FsckArgs {
    /// Data directory of the stopped vault [default: ./evault-data].
    #[arg(long, env = "EVAULT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where the logs are stored, as `evault serve --store`: `sqlite` or a
    /// PostgreSQL URL (opened read-only) [default: sqlite].
    #[arg(
        long,
        env = "EVAULT_STORE",
        hide_env_values = true,
        value_name = "sqlite|URL"
    )]
    store: Option<String>,
    #[command(flatten)]
    check: CheckArgs,
}

/// What the full check takes, for `fsck` and `migrate`.
#[derive(Args)]
pub struct CheckArgs {
    /// The evidence log's verifier key (name+hash+base64), or a file
    /// holding it [default: derived from <data dir>/log.key].
    #[arg(long)]
    key: Option<String>,
    /// The audit log's verifier key, or a file holding it [default:
    /// derived from <data dir>/audit.key].
    #[arg(long)]
    audit_key: Option<String>,
    /// Findings listed per kind; more are only counted.
    #[arg(long, default_value_t = 100)]
    max_findings: usize,
    /// Do not hash payloads and blob files (faster on large blobs; their
    /// digests go unchecked).
    #[arg(long)]
    no_payloads: bool,
}

impl CheckArgs {
    pub fn options(self) -> CliResult<FsckOptions> {
        let key = |k: Option<String>| k.map(|k| crate::proof::read_key(&k)).transpose();
        Ok(FsckOptions {
            max_findings_per_kind: self.max_findings.max(1),
            payloads: !self.no_payloads,
            evidence_key: key(self.key)?,
            audit_key: key(self.audit_key)?,
        })
    }
}

pub fn run(args: FsckArgs, file: &FileConfig, json: bool) -> CliResult<ExitCode> {
    let dir = crate::data_dir(args.data_dir, file);
    let store = match args.store.as_deref().or(file.store.as_deref()) {
        Some(s) => {
            evault_vault::StoreLocation::parse(s).map_err(|e| CliError::usage(format!("--{e}")))?
        }
        None => evault_vault::StoreLocation::Sqlite,
    };
    let options = args.check.options()?;
    let bar = (!json && output::progress_allowed()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("fsck [{bar:30}] {pos}/{len} {per_sec} {eta}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    let progress = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let result = evault_vault::fsck_stopped_vault(&dir, &store, &options, &progress, &|| false);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result.map_err(|e| cannot_run(&dir, e))?;
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("exit_code".into(), if report.clean { 0 } else { 1 }.into());
            if !report.clean {
                o.insert("verified".into(), false.into());
                o.insert("error".into(), summary_line(&report).into());
            }
        }
        output::print_json(&v);
    } else {
        print!("{}", text(&report));
    }
    if report.clean {
        Ok(ExitCode::SUCCESS)
    } else {
        say!("evault: NOT VERIFIED: {}", summary_line(&report));
        say!(
            "evault: hint: docs/OPERATIONS.md (\"fsck\") says what each finding means and what \
             to do"
        );
        Ok(ExitCode::from(Exit::Verify as u8))
    }
}

/// Why fsck could not run, as a usage-class error (a local problem).
fn cannot_run(dir: &std::path::Path, e: VaultError) -> CliError {
    let err = CliError::usage(format!("fsck {}: {e}", dir.display()));
    match e {
        VaultError::Unavailable(_) => err.hint(
            "stop the server first (SIGTERM), or check the running vault online (the fsck task)",
        ),
        VaultError::NotFound(_) => err.hint(
            "pass --data-dir (or EVAULT_DATA_DIR); a key kept elsewhere is given with --key / \
             --audit-key",
        ),
        _ => err,
    }
}

pub(crate) fn summary_line(r: &FsckReport) -> String {
    format!(
        "fsck found {} disagreement{} between the stored data and what the logs committed to",
        r.total_findings,
        if r.total_findings == 1 { "" } else { "s" }
    )
}

/// The text report: one line per log, one per finding, a verdict.
pub(crate) fn text(r: &FsckReport) -> String {
    let mut out = String::new();
    for l in &r.logs {
        out.push_str(&format!(
            "{} log {}: {} leaves, {} tiles, {} checkpoints (latest {}), {} inline payloads, {} \
             blobs ({} bytes hashed), {} label index entries\n",
            l.log,
            l.origin,
            l.leaves,
            l.tiles,
            l.checkpoints,
            l.latest_checkpoint,
            l.inline_payloads,
            l.blobs,
            l.payload_bytes,
            l.label_entries
        ));
    }
    for f in &r.findings {
        out.push_str(&format!("FINDING {f}\n"));
    }
    for (kind, n) in &r.omitted {
        out.push_str(&format!(
            "… and {n} more {} findings (raise --max-findings to list them)\n",
            kind.as_str()
        ));
    }
    if r.clean {
        out.push_str(&format!("clean ({} ms)\n", r.elapsed_ms));
    } else {
        out.push_str(&format!(
            "{} finding{} ({} ms)\n",
            r.total_findings,
            if r.total_findings == 1 { "" } else { "s" },
            r.elapsed_ms
        ));
    }
    out
}
