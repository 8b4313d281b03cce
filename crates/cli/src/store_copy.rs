//! `evault store copy`: moves a stopped vault's logs between stores
//! (`evault_vault::copy::copy_stopped_vault`), SQLite to PostgreSQL or
//! back, with a progress bar on a terminal; the report goes to stdout
//! (text, or JSON with `--json`). The service-account keys go with the
//! logs: into the database's keystore when it has none, or out into the
//! data directory's keystore file when that has none. Exit 0 copied and
//! checked, 1 if the source fails fsck or the copy differs, 2 if it
//! cannot run (a server holds the data directory or the lease, the
//! destination is not empty).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Args, Subcommand};
use evault_auth::KeystoreFile;
use evault_vault::copy::{CopyPhase, CopyReport};
use evault_vault::{StoreLocation, VaultError};

use crate::config::FileConfig;
use crate::error::{CliError, CliResult};
use crate::{output, say};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped vault's logs to another store: every leaf, tile,
    /// checkpoint, erasure, hold, task and mirrored record, then check that
    /// the copy equals the source and passes fsck. The data directory
    /// (keys, blobs) stays where it is; run `evault serve --store TO` on
    /// it afterwards.
    Copy(CopyArgs),
}

#[derive(Args)]
pub struct CopyArgs {
    /// The store to read: `sqlite:DIR` (DIR/evault.db; DIR is then the
    /// data directory) or postgres://USER@HOST/DB.
    #[arg(long, value_name = "sqlite:DIR|URL")]
    from: String,
    /// The store to write, empty: `sqlite:DIR` (DIR/evault.db must not
    /// exist) or postgres://… (migrated with `evault migrate --store URL`,
    /// no vault in it yet).
    #[arg(long, value_name = "sqlite:DIR|URL")]
    to: String,
    /// The vault's data directory (keys, blobs), when neither side is
    /// `sqlite:DIR` [default: ./evault-data].
    #[arg(long, env = "EVAULT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// A `--from`/`--to` value: the store, and the data directory a
/// `sqlite:DIR` names.
fn side(flag: &str, value: &str) -> CliResult<(StoreLocation, Option<PathBuf>)> {
    if let Some(dir) = value.strip_prefix("sqlite:") {
        if dir.is_empty() {
            return Err(CliError::usage(format!(
                "--{flag} sqlite:DIR needs the data directory"
            )));
        }
        return Ok((StoreLocation::Sqlite, Some(PathBuf::from(dir))));
    }
    match StoreLocation::parse(value) {
        Ok(StoreLocation::Postgres(url)) => Ok((StoreLocation::Postgres(url), None)),
        Ok(StoreLocation::Sqlite) | Err(_) => Err(CliError::usage(format!(
            "--{flag}: expected sqlite:DIR or a postgres://USER@HOST/DB URL, not {}",
            evault_store::postgres::redact(value)
        ))),
    }
}

/// Whether two paths name one directory (as given, else canonical).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

pub fn run(command: StoreCommand, file: &FileConfig, json: bool) -> CliResult<ExitCode> {
    let StoreCommand::Copy(args) = command;
    let (from, from_dir) = side("from", &args.from)?;
    let (to, to_dir) = side("to", &args.to)?;
    let dir = match (from_dir, to_dir) {
        (Some(a), Some(b)) if !same_dir(&a, &b) => {
            return Err(CliError::usage(
                "both sides are SQLite data directories: copy the directory itself instead \
                 (with the vault stopped)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(CliError::usage("--from and --to are the same store"));
        }
        (Some(d), None) | (None, Some(d)) => {
            if let Some(given) = &args.data_dir
                && !same_dir(given, &d)
            {
                return Err(CliError::usage(format!(
                    "--data-dir {} is not the data directory sqlite:{} names",
                    given.display(),
                    d.display()
                )));
            }
            d
        }
        (None, None) => crate::data_dir(args.data_dir, file),
    };

    let bar = (!json && output::progress_allowed()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} {eta}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    });
    // Each phase is named once on stderr; the bar shows how far it is.
    let last = Mutex::new(None::<CopyPhase>);
    let progress = |phase: CopyPhase, done: u64, total: u64| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != Some(phase) {
            *last = Some(phase);
            match &bar {
                Some(b) => {
                    b.println(format!("evault: store copy: {}", phase.label()));
                    b.set_message(phase.label());
                }
                None => say!("evault: store copy: {}", phase.label()),
            }
        }
        if let Some(b) = &bar {
            b.set_length(total.max(done));
            b.set_position(done);
        }
    };
    let result = evault_vault::copy::copy_stopped_vault(&dir, &from, &to, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result.map_err(|e| cannot_copy(&dir, e))?;
    let keys = move_keys(&dir, &from, &to)?;
    // A store as the user named it (a URL without its password).
    let shown = |loc: &StoreLocation| match loc {
        StoreLocation::Sqlite => format!("sqlite:{}", dir.display()),
        StoreLocation::Postgres(_) => loc.describe(),
    };
    if json {
        output::print_json(&serde_json::json!({
            "from": shown(&from),
            "to": shown(&to),
            "data_dir": dir.display().to_string(),
            "evidence": report.evidence,
            "audit": report.audit,
            "checkpoints": report.checkpoints,
            "cosignatures": report.cosignatures,
            "erasures": report.erasures,
            "analytics": report.analytics,
            "meta": report.meta,
            "policies": report.policies,
            "tasks": report.tasks,
            "mirror_records": report.mirror_records,
            "service_account_keys": keys,
            "elapsed_ms": report.elapsed_ms,
            "verified": true,
        }));
    } else {
        print!("{}", text(&report, &shown(&from), &shown(&to), keys));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(r: &CopyReport, from: &str, to: &str, keys: usize) -> String {
    format!(
        "copied {} to {} in {:.1} s:\n  {} evidence records ({} erased, {} analytics), {} audit \
         events\n  {} checkpoints, {} cosignatures, {} settings, {} holds and retention \
         policies, {} tasks, {} mirrored records, {} service-account keys\nevery leaf, tile, \
         checkpoint and table of the copy equals the source's, and the copy passes fsck\n",
        from,
        to,
        r.elapsed_ms as f64 / 1000.0,
        r.evidence,
        r.erasures,
        r.analytics,
        r.audit,
        r.checkpoints,
        r.cosignatures,
        r.meta,
        r.policies,
        r.tasks,
        r.mirror_records,
        keys
    )
}

/// The service-account keys follow the logs: on PostgreSQL they are the
/// database's `keystore`, on SQLite the data directory's file. They are
/// copied only where the destination has none; the count copied.
fn move_keys(dir: &Path, from: &StoreLocation, to: &StoreLocation) -> CliResult<usize> {
    let path = dir.join("service-accounts.json");
    let options = evault_store::postgres::PgOptions::default();
    let failed = |e: String| CliError::usage(format!("the logs were copied, but {e}"));
    match (from, to) {
        (StoreLocation::Postgres(source), StoreLocation::Postgres(url)) => {
            let open = |url: &str| {
                crate::sa_db::DbKeystore::open(url, &options)
                    .map_err(|e| failed(format!("a database's keystore cannot be opened: {e}")))
            };
            let (source, db) = (open(source)?, open(url)?);
            let (_, keys) = source
                .load()
                .map_err(|e| failed(format!("the source's keystore cannot be read: {e}")))?;
            let n = keys.keys.len();
            let held = db
                .load()
                .map_err(|e| failed(format!("the destination's keystore cannot be read: {e}")))?;
            if n == 0 || held.0 > 0 {
                return Ok(0);
            }
            db.edit(|file| {
                *file = keys;
                Ok(())
            })
            .map_err(|e| failed(format!("writing the destination's keystore: {e}")))?;
            Ok(n)
        }
        (StoreLocation::Sqlite, StoreLocation::Postgres(url)) => {
            let db = crate::sa_db::DbKeystore::open(url, &options)
                .map_err(|e| failed(format!("the database's keystore cannot be opened: {e}")))?;
            db.import_if_empty(&path)
                .map_err(|e| failed(format!("copying {}: {e}", path.display())))
        }
        (StoreLocation::Postgres(url), StoreLocation::Sqlite) => {
            let db = crate::sa_db::DbKeystore::open(url, &options)
                .map_err(|e| failed(format!("the database's keystore cannot be opened: {e}")))?;
            let (_, keys) = db
                .load()
                .map_err(|e| failed(format!("the database's keystore cannot be read: {e}")))?;
            let held = match path.exists() {
                true => KeystoreFile::load(&path).map_err(&failed)?,
                false => KeystoreFile::default(),
            };
            if keys.keys.is_empty() || keys == held {
                return Ok(0);
            }
            if !held.keys.is_empty() {
                say!(
                    "evault: note: {} holds other keys than the database's keystore; left as \
                     it is (edit it with `evault sa`)",
                    path.display()
                );
                return Ok(0);
            }
            let n = keys.keys.len();
            keys.save(&path).map_err(&failed)?;
            Ok(n)
        }
        (StoreLocation::Sqlite, StoreLocation::Sqlite) => Ok(0),
    }
}

/// Why the copy could not run or did not check out.
fn cannot_copy(dir: &Path, e: VaultError) -> CliError {
    match e {
        VaultError::Inconsistent(why) => CliError::not_verified(why)
            .hint("docs/OPERATIONS.md (\"Moving a vault between stores\") says what to do"),
        VaultError::Unavailable(why) => CliError::usage(format!("store copy: {why}"))
            .hint("stop the server (SIGTERM) and every node of the cluster first"),
        VaultError::NotFound(why) => CliError::usage(format!("store copy: {why}")).hint(format!(
            "the data directory is {}; pass sqlite:DIR or --data-dir",
            dir.display()
        )),
        e => CliError::usage(format!("store copy: {e}")),
    }
}
