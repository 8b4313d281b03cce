//! `evault migrate`: converts a stopped vault's data directory to this
//! binary's store schema (what `evault serve` does at start), then shows
//! it changed nothing and checks it in full
//! (`evault_vault::migrate_data_dir`). The report goes to stdout (text, or
//! JSON with `--json`); each phase is named on stderr, with a progress bar
//! on a terminal. Exit 0 converted and clean, 1 if the logs changed or
//! fsck found anything, 2 if it cannot run (no data directory, a server
//! holds it, a key is missing).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use evault_vault::{FsckOptions, MigratePhase, MigrateReport, VaultError};

use crate::config::FileConfig;
use crate::error::{CliError, CliResult, Exit};
use crate::{fsck, output, say};

#[derive(Args)]
pub struct MigrateArgs {
    /// Data directory of the stopped vault [default: ./evault-data].
    #[arg(long, env = "EVAULT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The evidence log's verifier key for the final check (name+hash+
    /// base64, or a file holding it) [default: the stored key set, else
    /// derived from <data dir>/log.key].
    #[arg(long)]
    key: Option<String>,
    /// The audit log's verifier key for the final check [default: as for
    /// --key, from <data dir>/audit.key].
    #[arg(long)]
    audit_key: Option<String>,
    /// Findings of the final check listed per kind; more are only counted.
    #[arg(long, default_value_t = 100)]
    max_findings: usize,
    /// Do not hash payloads and blob files in the final check.
    #[arg(long)]
    no_payloads: bool,
}

pub fn run(args: MigrateArgs, file: &FileConfig, json: bool) -> CliResult<ExitCode> {
    let dir = crate::data_dir(args.data_dir, file);
    let key = |k: Option<String>| k.map(|k| crate::proof::read_key(&k)).transpose();
    let options = FsckOptions {
        max_findings_per_kind: args.max_findings.max(1),
        payloads: !args.no_payloads,
        evidence_key: key(args.key)?,
        audit_key: key(args.audit_key)?,
    };
    let bar = output::progress_allowed().then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} {eta}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    // Each phase is named once on stderr (a log shows where a long run
    // is); the bar, on a terminal only, shows how far it is.
    let last = Mutex::new(None::<MigratePhase>);
    let progress = |phase: MigratePhase, done: u64, total: u64| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != Some(phase) {
            *last = Some(phase);
            match &bar {
                Some(b) => {
                    b.println(format!("evault: migrate: {phase}"));
                    b.set_message(phase.to_string());
                }
                None => say!("evault: migrate: {phase}"),
            }
        }
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let result = evault_vault::migrate_data_dir(&dir, &options, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result.map_err(|e| cannot_run(&dir, e))?;
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("clean".into(), report.clean().into());
            o.insert(
                "exit_code".into(),
                if report.clean() { 0 } else { 1 }.into(),
            );
        }
        output::print_json(&v);
    } else {
        print!("{}", text(&report, &dir));
    }
    if report.clean() {
        Ok(ExitCode::SUCCESS)
    } else {
        say!(
            "evault: NOT VERIFIED: converted, but {}",
            fsck::summary_line(&report.fsck)
        );
        say!(
            "evault: hint: docs/OPERATIONS.md (\"fsck\") says what each finding means and what \
             to do"
        );
        Ok(ExitCode::from(Exit::Verify as u8))
    }
}

/// Why the conversion could not run (a usage-class error: a local
/// problem) or did not hold (a failed check).
fn cannot_run(dir: &std::path::Path, e: VaultError) -> CliError {
    match e {
        // The logs differ after the conversion.
        VaultError::Inconsistent(why) => {
            CliError::not_verified(format!("migrate {}: {why}", dir.display()))
        }
        VaultError::Unavailable(_) => CliError::usage(format!("migrate {}: {e}", dir.display()))
            .hint(
                "stop the server first (SIGTERM); `evault serve` also converts the data \
                 directory at start, without the final check",
            ),
        VaultError::NotFound(_) => CliError::usage(format!("migrate {}: {e}", dir.display())).hint(
            "pass --data-dir (or EVAULT_DATA_DIR); a key kept elsewhere is given with --key \
                 / --audit-key",
        ),
        e => CliError::usage(format!("migrate {}: {e}", dir.display())),
    }
}

fn text(r: &MigrateReport, dir: &std::path::Path) -> String {
    let index = |v: Option<i64>| v.map_or("none".to_string(), |v| v.to_string());
    let mut out = if r.converted {
        format!(
            "{}: converted store schema {} to {} (index database {} to {}) in {} ms; {} records \
             indexed\n",
            dir.display(),
            r.from_version,
            r.to_version,
            index(r.from_index_version),
            index(r.to_index_version),
            r.convert_ms,
            r.indexed
        )
    } else {
        format!(
            "{}: already at store schema {} (index database {}); {} records indexed\n",
            dir.display(),
            r.to_version,
            index(r.to_index_version),
            r.indexed
        )
    };
    for l in &r.logs {
        out.push_str(&format!(
            "{} log unchanged: size {}, {} leaves, {} tiles, {} checkpoints, fingerprint {}\n",
            l.log, l.size, l.leaves, l.tiles, l.checkpoints, l.after
        ));
    }
    out.push_str(&fsck::text(&r.fsck));
    out
}
