//! How a vault runs: [`VaultConfig`], and the signer seam through which a
//! log's key can live somewhere other than a file.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evault_note::Signer;

use crate::audit::AuditConfig;
use crate::head::HeadStore;
use crate::tasks::TaskConfig;

/// Opens a log's signer once the log's name (its origin) is known.
type OpenFn = dyn Fn(&str) -> std::result::Result<Arc<dyn Signer>, String> + Send + Sync;

/// A log's signing key held by the embedding program (a PKCS#11 token, a
/// cloud KMS, a key kept in memory) instead of a key file. Its name and
/// verifier key are what the log publishes.
///
/// Either a signer ready to use ([`LogSigner::new`]) or one opened at
/// start-up for the log's origin ([`LogSigner::open`]): a token's signer
/// needs the key's name, which is the stored origin of an existing log.
#[derive(Clone)]
pub struct LogSigner(Source);

#[derive(Clone)]
enum Source {
    Ready(Arc<dyn Signer>),
    Open { what: String, open: Arc<OpenFn> },
}

impl LogSigner {
    /// A signer ready to use; its name must be the log's origin.
    pub fn new(signer: Arc<dyn Signer>) -> LogSigner {
        LogSigner(Source::Ready(signer))
    }

    /// A signer that `open` makes for the log's origin at start-up.
    /// `what` names it in messages (never a secret: no PIN).
    pub fn open(
        what: impl Into<String>,
        open: impl Fn(&str) -> std::result::Result<Arc<dyn Signer>, String> + Send + Sync + 'static,
    ) -> LogSigner {
        LogSigner(Source::Open {
            what: what.into(),
            open: Arc::new(open),
        })
    }

    /// The signer for the log named `origin`.
    pub(crate) fn signer_for(&self, origin: &str) -> std::result::Result<Arc<dyn Signer>, String> {
        match &self.0 {
            Source::Ready(s) => Ok(s.clone()),
            Source::Open { open, .. } => open(origin),
        }
    }

    /// The Ed25519 key in the file at `path`, which must exist (never
    /// generated): e.g. a key made ahead for a rotation.
    pub fn key_file(path: std::path::PathBuf) -> LogSigner {
        let what = format!("key file {}", path.display());
        LogSigner::open(what, move |origin: &str| {
            crate::keys::load_or_create(&path, origin, false).map_err(|e| e.to_string())
        })
    }

    /// What it is, for messages.
    pub fn describe(&self) -> String {
        match &self.0 {
            Source::Ready(s) => format!("signer {:?} ({:08x})", s.name(), s.key_id()),
            Source::Open { what, .. } => what.clone(),
        }
    }
}

impl fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: only what identifies it.
        f.debug_tuple("LogSigner").field(&self.describe()).finish()
    }
}

/// How the vault runs. Defaults are the documented ones.
#[derive(Clone, Debug)]
pub struct VaultConfig {
    /// The data directory: the embedded store, blobs, keys, the audit mirror.
    pub data_dir: PathBuf,
    /// Where the logs are stored: the embedded SQLite store in the data
    /// directory (the default), or a PostgreSQL database (the data
    /// directory then keeps the keys, blobs, staging and heads).
    pub store: StoreLocation,
    /// Checkpoint origin for a new log; must match a stored one.
    pub origin: Option<String>,
    /// The URL clients reach the vault's server at, e.g.
    /// `https://vault.example.com/`. A new log without a configured origin
    /// takes the one C2SP tlog-tiles recommends for its tiles prefix
    /// ([`tlog_origin`](crate::tlog_origin)): `<host/path>/tlog` for the
    /// evidence log, `<host/path>/tlog-audit` for the audit log. An existing
    /// log keeps its origin; a mismatch is logged as a warning.
    pub public_url: Option<String>,
    /// Log signing key file; default `<data dir>/log.key`, generated if
    /// missing while the log is empty. Ignored when `signer` is set.
    pub key_file: Option<PathBuf>,
    /// The log's signer, when the key does not live in a file.
    pub signer: Option<LogSigner>,
    /// The Ed25519 key the next rotation of the evidence log moves to
    /// (e.g. one made in a PKCS#11 token); default none: the rotation makes
    /// a new key file in the data directory. Keep it configured until the
    /// old key is retired, then make it `signer`.
    pub next_signer: Option<LogSigner>,
    /// An ML-DSA-44 key file (C2SP signature type 0x06): every checkpoint
    /// is then signed with it as well, after the Ed25519 signature. Made
    /// if missing while the log is empty. Default none.
    pub pq_key_file: Option<PathBuf>,
    /// Payloads up to this size are kept in the store, larger ones as blobs.
    pub inline_max: usize,
    /// Largest accepted payload.
    pub max_upload: u64,
    /// Largest accepted task input file (an evidence bundle to import).
    /// Default 1 GiB.
    pub max_task_input: u64,
    /// Most records in one group commit.
    pub max_batch: usize,
    /// Extra time the sequencer waits to fill a batch (0: take what queued).
    pub max_delay: Duration,
    /// Least time between two checkpoints of a growing log.
    pub checkpoint_interval: Duration,
    /// Appends waiting for the sequencer before callers are slowed.
    pub queue_depth: usize,
    /// Bytes of streamed records (payload plus a fixed overhead each) all
    /// streams together may have in flight before they are slowed.
    pub stream_budget: usize,
    /// The audit trail (on by default).
    pub audit: AuditConfig,
    /// Directory of each log's latest signed tree head, which the vault
    /// never signs a fork of. Must be outside the data directory, so that
    /// restoring an old copy of it does not restore the heads. Default
    /// (`None`): [`default_state_dir`](crate::default_state_dir). Ignored
    /// when `head_store` is set.
    pub state_dir: Option<PathBuf>,
    /// The heads' store, when they do not live in files (an HSM).
    pub head_store: Option<HeadStore>,
    /// Leaves of each log checked at start-up (record against leaf, leaf
    /// against its tile, each full tile on the way up against the tile
    /// above), spread at random over the tree; the leaves of the right edge
    /// are checked too. 0: off. A full check is `evault fsck` (planned).
    pub startup_sample: u64,
    /// Tracked long jobs: the kinds this vault runs, how many at once, how
    /// long results are kept.
    pub tasks: TaskConfig,
    /// Witnesses asked to cosign each new evidence checkpoint (C2SP
    /// tlog-witness). Default none.
    pub witnesses: Option<crate::WitnessSetup>,
    /// The only directory whose files a `backfill_releases` task may read
    /// (artifact and bundle paths of its inventory are relative to it).
    /// Default none: inventories may name artifacts by digest only.
    pub backfill_dir: Option<PathBuf>,
    /// How often the vault starts a `retention_sweep` task (when any
    /// retention policy exists and no sweep is queued or running). Default
    /// 1 hour; zero: never (sweeps can still be started as tasks).
    pub retention_interval: Duration,
    /// Sigstore bundles: the trusted roots they are verified against on
    /// ingest and the policies that may refuse them. Default: no root (every
    /// bundle is `unverifiable`), no policy.
    pub sigstore: crate::sigstore::SigstoreConfig,
    /// The write lease, on a store several nodes share (PostgreSQL).
    pub lease: crate::LeaseConfig,
    /// How a PostgreSQL store is reached: the pool's size, each call's
    /// deadline (also the statements' timeout), the connect timeout.
    /// Default: 8 connections, 30 s, 5 s. `read_only` must stay false.
    pub postgres: evault_store::postgres::PgOptions,
}

impl VaultConfig {
    /// The documented defaults, in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        VaultConfig {
            data_dir: data_dir.into(),
            store: StoreLocation::Sqlite,
            origin: None,
            public_url: None,
            key_file: None,
            signer: None,
            next_signer: None,
            pq_key_file: None,
            inline_max: 64 * 1024,
            max_upload: 64 * 1024 * 1024,
            max_task_input: 1024 * 1024 * 1024,
            max_batch: 16 * 1024,
            max_delay: Duration::ZERO,
            checkpoint_interval: Duration::from_millis(500),
            queue_depth: 16 * 1024,
            stream_budget: 64 * 1024 * 1024,
            audit: AuditConfig::default(),
            state_dir: None,
            head_store: None,
            startup_sample: 64,
            tasks: TaskConfig::default(),
            witnesses: None,
            backfill_dir: None,
            retention_interval: Duration::from_secs(3600),
            sigstore: crate::sigstore::SigstoreConfig::default(),
            lease: crate::LeaseConfig::default(),
            postgres: evault_store::postgres::PgOptions::default(),
        }
    }
}

/// Where a vault's logs are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded SQLite store, `evault.db` in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL database migrated by `evault migrate --store URL`
    /// (a libpq URL; its password is never logged).
    Postgres(String),
}

/// Refuses PostgreSQL options a vault cannot run with, naming the option.
pub(crate) fn check_postgres_options(o: &evault_store::postgres::PgOptions) -> Result<(), String> {
    if !(1..=1024).contains(&o.pool_size) {
        return Err(format!(
            "store pool size {}: use 1 to 1024 connections",
            o.pool_size
        ));
    }
    let least = Duration::from_millis(100);
    if o.call_timeout < least {
        return Err(format!(
            "store timeout {:?} is below 100 ms",
            o.call_timeout
        ));
    }
    if o.connect_timeout < least {
        return Err(format!(
            "store connect timeout {:?} is below 100 ms",
            o.connect_timeout
        ));
    }
    if o.read_only {
        return Err("a vault writes its store: read_only is for an offline fsck".into());
    }
    Ok(())
}

impl StoreLocation {
    /// `sqlite` (or empty) for the embedded store, a `postgres://` or
    /// `postgresql://` URL for PostgreSQL.
    pub fn parse(s: &str) -> Result<StoreLocation, String> {
        let s = s.trim();
        if s.is_empty() || s == "sqlite" {
            Ok(StoreLocation::Sqlite)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(s.to_string()))
        } else {
            Err(format!(
                "store {}: expected `sqlite` or a postgres://USER@HOST/DB URL",
                evault_store::postgres::redact(s)
            ))
        }
    }

    /// For messages: `sqlite` or the URL with its password hidden.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite => "sqlite".into(),
            StoreLocation::Postgres(url) => evault_store::postgres::redact(url),
        }
    }
}
