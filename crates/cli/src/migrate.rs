//! `evault migrate`: converts a stopped vault's data directory to this
//! binary's store schema (what `evault serve` does at start), shows it
//! changed neither log and checks it in full
//! (`evault_vault::migrate_data_dir`). The report goes to stdout (text, or
//! JSON with `--json`); each phase is named on stderr, with a progress bar
//! on a terminal (not with `--json`). Exit 0 converted and clean, 1 if a
//! log changed or fsck found anything, 2 if it cannot run (no data
//! directory, a server holds it) or the check could not (a key missing).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use evault_vault::{MigratePhase, MigrateReport, VaultError};

use crate::config::FileConfig;
use crate::error::{CliError, CliResult, Exit};
use crate::fsck::CheckArgs;
use crate::{fsck, output, say};

#[derive(Args)]
pub struct MigrateArgs {
    /// Data directory of the stopped vault [default: ./evault-data].
    #[arg(long, env = "EVAULT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Create or upgrade the evault schema of a PostgreSQL database
    /// instead (postgres://USER@HOST/DB, as the database's owner; the
    /// database is created if missing), for `evault serve --store URL`.
    /// (--data-dir is then not used.)
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// With --store: also create (or update) the login role the vault
    /// runs as, with least privilege (read and append the logs, never
    /// update, delete or truncate them).
    #[arg(long, value_name = "NAME", requires = "store")]
    app_role: Option<String>,
    /// With --app-role: set the role's password from this file (its first
    /// line; the file must not be readable by group or others).
    #[arg(long, value_name = "FILE", requires = "app_role")]
    app_password_file: Option<PathBuf>,
    /// The final check's keys and limits (as `evault fsck`'s).
    #[command(flatten)]
    check: CheckArgs,
}

pub fn run(args: MigrateArgs, file: &FileConfig, json: bool) -> CliResult<ExitCode> {
    if let Some(url) = &args.store {
        return run_postgres(
            url,
            args.app_role.as_deref(),
            args.app_password_file.as_deref(),
            json,
        );
    }
    let dir = crate::data_dir(args.data_dir, file);
    let options = args.check.options()?;
    let bar = (!json && output::progress_allowed()).then(|| {
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
    let clean = report.clean();
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("clean".into(), clean.into());
            if !clean {
                o.insert("verified".into(), false.into());
            }
            let code = match () {
                () if clean => 0,
                () if report.unchanged && report.check_error.is_some() => Exit::Usage as u8,
                () => Exit::Verify as u8,
            };
            o.insert("exit_code".into(), code.into());
        }
        output::print_json(&v);
    } else {
        print!("{}", text(&report, &dir));
    }
    if !report.unchanged {
        say!(
            "evault: NOT VERIFIED: the conversion changed {}",
            evault_vault::migrate::changes(&report)
        );
        say!(
            "evault: hint: restore the data directory from its backup; {} keeps the \
             fingerprints read before, and every start compares with it while it is there",
            dir.join(evault_vault::migrate::PENDING_FILE).display()
        );
        return Ok(ExitCode::from(Exit::Verify as u8));
    }
    if let Some(why) = &report.check_error {
        say!("evault: converted, but the check could not run: {why}");
        say!(
            "evault: hint: give the verifier keys with --key / --audit-key, then run `evault \
             fsck` (or `evault migrate` again)"
        );
        return Ok(ExitCode::from(Exit::Usage as u8));
    }
    match &report.fsck {
        Some(f) if !f.clean => {
            say!(
                "evault: NOT VERIFIED: converted, but {}",
                fsck::summary_line(f)
            );
            say!(
                "evault: hint: docs/OPERATIONS.md (\"fsck\") says what each finding means and \
                 what to do"
            );
            Ok(ExitCode::from(Exit::Verify as u8))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `evault migrate --store postgres://…`: applies the PostgreSQL schema's
/// missing migrations (`evault_store::postgres::migrate`), in one
/// transaction, and reports the versions before and after; with
/// `app_role`, then creates or updates the vault's least-privilege role.
fn run_postgres(
    url: &str,
    app_role: Option<&str>,
    password_file: Option<&std::path::Path>,
    json: bool,
) -> CliResult<ExitCode> {
    use evault_store::postgres;
    let shown = postgres::redact(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(CliError::usage(format!(
            "--store {shown}: not a PostgreSQL URL (postgres://USER@HOST/DB)"
        ))
        .hint("a data directory is migrated with --data-dir"));
    }
    let password = password_file.map(read_password_file).transpose()?;
    let created = postgres::create_database_if_missing(url)
        .map_err(|e| CliError::usage(format!("migrate {shown}: {e}")))?;
    if created && !json {
        println!("{shown}: created the database");
    }
    let r = postgres::migrate(url).map_err(|e| CliError::usage(format!("migrate {shown}: {e}")))?;
    if let Some(role) = app_role {
        postgres::grant_app_role(url, role, password.as_deref())
            .map_err(|e| CliError::usage(e.to_string()))?;
    }
    if json {
        output::print_json(&serde_json::json!({
            "store": shown,
            "from_version": r.from,
            "to_version": r.to,
            "applied": r.to - r.from,
            "app_role": app_role,
            "database_created": created,
        }));
    } else if r.from == r.to {
        println!(
            "{shown}: the evault schema is at version {}, nothing to do",
            r.to
        );
    } else {
        println!("{shown}: evault schema version {} -> {}", r.from, r.to);
    }
    if let (Some(role), false) = (app_role, json) {
        println!(
            "{shown}: role {role} may read and append the logs, never change them{}",
            if password.is_some() {
                " (password set)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The first line of a password file that only its owner can read.
fn read_password_file(path: &std::path::Path) -> CliResult<String> {
    crate::secret_file::first_line("--app-password-file", path).map_err(|e| {
        let err = CliError::usage(e.to_string());
        if e.exposed {
            err.hint("chmod 600 the file")
        } else {
            err
        }
    })
}

/// Why the conversion could not run: a usage-class error (a local
/// problem).
fn cannot_run(dir: &std::path::Path, e: VaultError) -> CliError {
    let err = CliError::usage(format!("migrate {}: {e}", dir.display()));
    match e {
        VaultError::Unavailable(_) => err.hint(
            "stop the server first (SIGTERM); `evault serve` also converts the data directory \
             at start, without the final check",
        ),
        VaultError::NotFound(_) => err.hint("pass --data-dir (or EVAULT_DATA_DIR)"),
        _ => err,
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
    if r.resumed {
        out.push_str("compared with the fingerprints an interrupted conversion read before it\n");
    }
    for l in &r.logs {
        let a = &l.after;
        if l.unchanged {
            out.push_str(&format!(
                "{} log unchanged: size {}, {} leaves, {} tiles, {} checkpoints, fingerprint {}\n",
                l.log, a.size, a.leaves, a.tiles, a.checkpoints, a.digest
            ));
        } else {
            let b = &l.before;
            out.push_str(&format!(
                "{} log CHANGED: before size {}, {} leaves, {} tiles, {} checkpoints, \
                 fingerprint {}; after size {}, {} leaves, {} tiles, {} checkpoints, \
                 fingerprint {}\n",
                l.log,
                b.size,
                b.leaves,
                b.tiles,
                b.checkpoints,
                b.digest,
                a.size,
                a.leaves,
                a.tiles,
                a.checkpoints,
                a.digest
            ));
        }
    }
    match (&r.fsck, &r.check_error) {
        (Some(f), _) => out.push_str(&fsck::text(f)),
        (None, Some(why)) => out.push_str(&format!("not checked: {why}\n")),
        (None, None) => {}
    }
    out
}
