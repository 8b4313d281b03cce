//! The witness: verifies a log's checkpoint and its consistency with what it
//! cosigned last, persists it, and cosigns it (C2SP tlog-witness v1.0.0,
//! `add-checkpoint`).

use core::fmt;
use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use evault_merkle::{EMPTY_ROOT, verify_consistency};
use evault_note::key::{ALG_COSIGNATURE_V1, ALG_MLDSA44_COSIGNATURE};
use evault_note::{
    Checkpoint, KeyError, OpenError, Signer, Verifiers, open, parse_verifier_key, sign,
    verifier_for,
};
use sha2::{Digest as _, Sha256};

use crate::request::{AddCheckpoint, RequestError};

/// The largest request body a witness reads: a checkpoint with up to
/// [`MAX_SIGNATURES`](evault_note::MAX_SIGNATURES) signature lines of
/// ML-DSA-44 size fits, with the proof, well within it.
pub const MAX_BODY: usize = 512 * 1024;

/// A log the witness cosigns for: its origin and the verifier keys of the
/// log's own signatures.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log's verifier keys (`<name>+<id>+<base64>`), any signature type
    /// the note crate knows.
    pub keys: Vec<String>,
}

/// How a witness is set up.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// Where the latest cosigned checkpoint of each log is kept.
    pub state_dir: PathBuf,
    /// The logs it cosigns for.
    pub logs: Vec<LogConfig>,
    /// Requests per log accepted in one minute (a burst of that size, then
    /// refilled evenly); beyond it `add-checkpoint` answers 429.
    pub requests_per_minute: u32,
}

/// Why a witness could not be set up.
#[derive(Debug)]
pub enum ConfigError {
    /// A log key could not be parsed.
    LogKey {
        /// The log's origin.
        origin: String,
        /// Why.
        error: KeyError,
    },
    /// A log has no keys, or its origin is empty or configured twice.
    Log(String),
    /// The witness has no cosigner, or a signer that does not make
    /// cosignatures (type `0x04` or `0x06`).
    Cosigner(String),
    /// The state directory could not be created or read.
    State(std::io::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::LogKey { origin, error } => write!(f, "log {origin:?}: key: {error}"),
            ConfigError::Log(e) | ConfigError::Cosigner(e) => f.write_str(e),
            ConfigError::State(e) => write!(f, "witness state directory: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why an `add-checkpoint` request was refused, with the HTTP status the
/// specification assigns.
#[derive(Debug)]
pub enum AddError {
    /// 400: the body is not a request, the checkpoint is malformed, or the
    /// old size is larger than the checkpoint's.
    BadRequest(String),
    /// 403: no valid signature by a key the witness trusts for the origin,
    /// or an invalid one by such a key.
    Forbidden(String),
    /// 404: the origin is not a log this witness cosigns for.
    UnknownLog(String),
    /// 409: the old size is not the size the witness last cosigned.
    Conflict {
        /// The size of the latest checkpoint the witness cosigned.
        latest: u64,
    },
    /// 413: the body is larger than [`MAX_BODY`].
    TooLarge,
    /// 422: the checkpoint is not consistent with what the witness cosigned.
    Inconsistent(String),
    /// 429: too many requests for this log.
    RateLimited {
        /// When a request will next be accepted.
        retry_after: Duration,
    },
    /// 500: the witness could not sign or persist; nothing was cosigned.
    Internal(String),
}

impl AddError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            AddError::BadRequest(_) => 400,
            AddError::Forbidden(_) => 403,
            AddError::UnknownLog(_) => 404,
            AddError::Conflict { .. } => 409,
            AddError::TooLarge => 413,
            AddError::Inconsistent(_) => 422,
            AddError::RateLimited { .. } => 429,
            AddError::Internal(_) => 500,
        }
    }

    /// The response body: for 409 exactly the latest size and a newline
    /// (`Content-Type: text/x.tlog.size`), otherwise a one-line reason.
    pub fn body(&self) -> String {
        match self {
            AddError::Conflict { latest } => format!("{latest}\n"),
            other => format!("{other}\n"),
        }
    }

    /// The response's content type.
    pub fn content_type(&self) -> &'static str {
        match self {
            AddError::Conflict { .. } => "text/x.tlog.size",
            _ => "text/plain; charset=utf-8",
        }
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::BadRequest(e) => write!(f, "bad request: {e}"),
            AddError::Forbidden(e) => write!(f, "forbidden: {e}"),
            AddError::UnknownLog(o) => write!(f, "unknown log {o:?}"),
            AddError::Conflict { latest } => {
                write!(
                    f,
                    "old size does not match the latest cosigned size {latest}"
                )
            }
            AddError::TooLarge => write!(f, "request body larger than {MAX_BODY} bytes"),
            AddError::Inconsistent(e) => write!(f, "not consistent: {e}"),
            AddError::RateLimited { retry_after } => write!(
                f,
                "too many requests for this log; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            AddError::Internal(e) => write!(f, "witness error: {e}"),
        }
    }
}

impl std::error::Error for AddError {}

impl From<RequestError> for AddError {
    fn from(e: RequestError) -> Self {
        AddError::BadRequest(e.to_string())
    }
}

/// A log as the witness knows it.
struct Log {
    verifiers: Verifiers,
    /// Held from reading the stored size to persisting the new checkpoint,
    /// so two requests cannot both pass the check (the specification's
    /// rollback race).
    state: Mutex<LogState>,
}

struct LogState {
    bucket: TokenBucket,
}

/// A token bucket: `capacity` requests, refilled evenly over a minute.
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            at: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let rate = self.capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// A C2SP tlog-witness.
pub struct Witness {
    dir: PathBuf,
    logs: HashMap<String, Log>,
    cosigners: Vec<Box<dyn Signer>>,
    /// The cosigners' own verifiers, to recognise their stored lines.
    own: Verifiers,
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witness")
            .field("dir", &self.dir)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .field(
                "cosigners",
                &self.cosigners.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The lowercase hex SHA-256 of an origin: how the monitoring path and the
/// state file name a log.
pub fn origin_hash(origin: &str) -> String {
    Sha256::digest(origin.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Witness {
    /// Sets up a witness that cosigns with `cosigners` (each an Ed25519
    /// `cosignature/v1` or ML-DSA-44 cosigner) for the configured logs,
    /// keeping its state in `config.state_dir` (created 0700 if missing).
    pub fn open(
        config: WitnessConfig,
        cosigners: Vec<Box<dyn Signer>>,
    ) -> Result<Self, ConfigError> {
        if cosigners.is_empty() {
            return Err(ConfigError::Cosigner(
                "a witness needs a cosigner key".into(),
            ));
        }
        let mut own = Verifiers::new();
        for c in &cosigners {
            own.insert_boxed(
                verifier_for(c.verifier_key().as_str())
                    .map_err(|e| ConfigError::Cosigner(format!("cosigner {}: {e}", c.name())))?,
            )
            .map_err(|e| ConfigError::Cosigner(format!("cosigner {}: {e}", c.name())))?;
            let alg = parse_verifier_key(c.verifier_key().as_str())
                .map(|k| k.alg)
                .map_err(|e| ConfigError::Cosigner(format!("cosigner {}: {e}", c.name())))?;
            if alg != ALG_COSIGNATURE_V1 && alg != ALG_MLDSA44_COSIGNATURE {
                return Err(ConfigError::Cosigner(format!(
                    "cosigner {} has key type 0x{alg:02x}; a witness signs cosignatures \
                     (0x04 Ed25519 or 0x06 ML-DSA-44)",
                    c.name()
                )));
            }
        }
        let mut logs = HashMap::new();
        for log in config.logs {
            if log.origin.is_empty() || log.keys.is_empty() {
                return Err(ConfigError::Log(format!(
                    "log {:?}: needs an origin and at least one key",
                    log.origin
                )));
            }
            let mut verifiers = Verifiers::new();
            for k in &log.keys {
                let v = verifier_for(k).map_err(|error| ConfigError::LogKey {
                    origin: log.origin.clone(),
                    error,
                })?;
                verifiers
                    .insert_boxed(v)
                    .map_err(|e| ConfigError::Log(format!("log {:?}: {e}", log.origin)))?;
            }
            let entry = Log {
                verifiers,
                state: Mutex::new(LogState {
                    bucket: TokenBucket::new(config.requests_per_minute),
                }),
            };
            if logs.insert(log.origin.clone(), entry).is_some() {
                return Err(ConfigError::Log(format!(
                    "log {:?} is configured twice",
                    log.origin
                )));
            }
        }
        create_private_dir(&config.state_dir).map_err(ConfigError::State)?;
        Ok(Witness {
            dir: config.state_dir,
            logs,
            cosigners,
            own,
        })
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        self.dir.join(format!("{}.checkpoint", origin_hash(origin)))
    }

    /// The latest checkpoint this witness cosigned for the log whose origin
    /// hashes to `origin_hash` (lowercase hex), with the log's signatures
    /// and the witness's cosignatures: the monitoring API's
    /// `GET <prefix>/<origin hash>/checkpoint`. `None` if it never cosigned
    /// one (404); an error if the state cannot be read (500).
    pub fn latest(&self, origin_hash_hex: &str) -> std::io::Result<Option<String>> {
        if origin_hash_hex.len() != 64
            || !origin_hash_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Ok(None);
        }
        match fs::read_to_string(self.dir.join(format!("{origin_hash_hex}.checkpoint"))) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Handles an `add-checkpoint` request body. On success returns the
    /// response body: one cosignature line per cosigner.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        if body.len() > MAX_BODY {
            return Err(AddError::TooLarge);
        }
        let req = AddCheckpoint::parse(body)?;
        // The origin decides which keys apply, so read it before verifying.
        let text = note_text(req.note)
            .ok_or_else(|| AddError::BadRequest("the checkpoint is not a signed note".into()))?;
        let checkpoint = Checkpoint::parse(text)
            .map_err(|e| AddError::BadRequest(format!("malformed checkpoint: {e}")))?;
        let log = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| AddError::UnknownLog(checkpoint.origin.clone()))?;
        let note = match open(req.note.as_bytes(), &log.verifiers) {
            Ok(note) => note,
            Err(OpenError::Unverified(_)) => {
                return Err(AddError::Forbidden(
                    "no signature by a key trusted for this log".into(),
                ));
            }
            Err(e @ OpenError::InvalidSignature { .. }) => {
                return Err(AddError::Forbidden(e.to_string()));
            }
            Err(e) => return Err(AddError::BadRequest(format!("malformed note: {e}"))),
        };
        if req.old_size > checkpoint.size {
            return Err(AddError::BadRequest(format!(
                "old size {} is larger than the checkpoint size {}",
                req.old_size, checkpoint.size
            )));
        }

        // One request per log at a time, in this process (the mutex) and
        // across processes sharing the state directory (the file lock),
        // from reading the cosigned size to persisting the new one.
        let mut state = log.state.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.state_path(&checkpoint.origin);
        let _flock = lock_file(&path.with_extension("lock"))
            .map_err(|e| AddError::Internal(format!("locking the log's state: {e}")))?;
        let latest = self.read_latest(&path)?;
        let latest_size = latest.as_ref().map_or(0, |c| c.size);
        if req.old_size != latest_size {
            return Err(AddError::Conflict {
                latest: latest_size,
            });
        }
        if checkpoint.size == 0 && checkpoint.root_hash != EMPTY_ROOT {
            return Err(AddError::Inconsistent(
                "a checkpoint of size 0 must have the empty tree's root".into(),
            ));
        }
        match &latest {
            None => {
                if !req.proof.is_empty() {
                    return Err(AddError::Inconsistent(
                        "old size 0 takes no consistency proof".into(),
                    ));
                }
            }
            Some(old) if old.size == 0 => {
                if !req.proof.is_empty() {
                    return Err(AddError::Inconsistent(
                        "old size 0 takes no consistency proof".into(),
                    ));
                }
            }
            Some(old) => {
                verify_consistency(
                    old.size,
                    checkpoint.size,
                    &req.proof,
                    &old.root_hash,
                    &checkpoint.root_hash,
                )
                .map_err(|e| {
                    AddError::Inconsistent(format!(
                        "from the cosigned size {} to {}: {e}",
                        old.size, checkpoint.size
                    ))
                })?;
            }
        }

        // The checkpoint it cosigned last, sent again: the same answer, from
        // the state, without signing, writing or charging the rate.
        let resubmitted = latest
            .as_ref()
            .is_some_and(|old| old.size == checkpoint.size);
        if resubmitted && let Some(lines) = self.stored_cosignatures(&path) {
            return Ok(lines);
        }
        // Only progress is charged, so replaying a log's public checkpoints
        // cannot use up its rate.
        state
            .bucket
            .take(Instant::now())
            .map_err(|retry_after| AddError::RateLimited { retry_after })?;

        // Cosign, persist, and only then answer.
        let signers: Vec<&dyn Signer> = self.cosigners.iter().map(|c| c.as_ref()).collect();
        let signed = sign(&note.text, &signers)
            .map_err(|e| AddError::Internal(format!("cosigning: {e}")))?;
        let cosignatures = &signed[note.text.len() + 1..];
        let mut kept = String::with_capacity(req.note.len() + cosignatures.len());
        kept.push_str(&note.text);
        kept.push('\n');
        for s in &note.verified {
            kept.push_str(&format!("— {} {}\n", s.name, s.base64));
        }
        kept.push_str(cosignatures);
        write_atomically(&path, kept.as_bytes())
            .map_err(|e| AddError::Internal(format!("persisting the checkpoint: {e}")))?;
        Ok(cosignatures.to_owned())
    }

    /// The witness's own cosignature lines in a log's stored checkpoint, if
    /// they all still verify.
    fn stored_cosignatures(&self, path: &Path) -> Option<String> {
        let stored = fs::read_to_string(path).ok()?;
        let note = open(stored.as_bytes(), &self.own).ok()?;
        if note.verified.len() != self.cosigners.len() {
            return None;
        }
        Some(
            note.verified
                .iter()
                .map(|s| format!("— {} {}\n", s.name, s.base64))
                .collect(),
        )
    }

    /// Reads the stored checkpoint of a log, if any.
    fn read_latest(&self, path: &Path) -> Result<Option<Checkpoint>, AddError> {
        let stored = match fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AddError::Internal(format!("reading state: {e}"))),
        };
        let text = note_text(&stored).ok_or_else(|| {
            AddError::Internal(format!("state file {} is not a note", path.display()))
        })?;
        Checkpoint::parse(text)
            .map(Some)
            .map_err(|e| AddError::Internal(format!("state file {}: {e}", path.display())))
    }
}

/// The text of a signed note: everything up to and including the newline
/// before the last blank line.
fn note_text(note: &str) -> Option<&str> {
    let split = note.rfind("\n\n")?;
    Some(&note[..=split])
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Opens (creating, 0600) and exclusively locks `path`; the lock is released
/// when the returned file is dropped.
fn lock_file(path: &Path) -> std::io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let f = opts.open(path)?;
    f.lock()?;
    Ok(f)
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the
/// new content: a temporary file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refills_over_a_minute() {
        let mut b = TokenBucket::new(2);
        let t0 = b.at;
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(b.take(t0 + Duration::from_secs(30)).is_ok());
        assert!(b.take(t0 + Duration::from_secs(30)).is_err());
    }

    #[test]
    fn note_text_is_up_to_the_last_blank_line() {
        assert_eq!(note_text("a\n\nb\n\n— x y\n"), Some("a\n\nb\n"));
        assert_eq!(note_text("a\n— x y\n"), None);
    }

    #[test]
    fn origin_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            origin_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn statuses_and_bodies() {
        let c = AddError::Conflict { latest: 5 };
        assert_eq!(
            (c.status(), c.body().as_str(), c.content_type()),
            (409, "5\n", "text/x.tlog.size")
        );
        for (e, s) in [
            (AddError::BadRequest("x".into()), 400),
            (AddError::Forbidden("x".into()), 403),
            (AddError::UnknownLog("o".into()), 404),
            (AddError::TooLarge, 413),
            (AddError::Inconsistent("x".into()), 422),
            (
                AddError::RateLimited {
                    retry_after: Duration::from_millis(10),
                },
                429,
            ),
            (AddError::Internal("x".into()), 500),
        ] {
            assert_eq!(e.status(), s);
            assert!(e.body().ends_with('\n'));
            assert_eq!(e.content_type(), "text/plain; charset=utf-8");
        }
    }
}
