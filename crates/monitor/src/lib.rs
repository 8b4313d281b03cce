//! A monitor for C2SP tlog-tiles logs that trusts nothing the server says.
//!
//! It keeps its own state (per log: origin, pinned key, last verified
//! checkpoint and the frontier of that tree) in a local file, and on every
//! run fetches each log's latest checkpoint, verifies its signature,
//! authenticates every tile it reads against the signed root (which proves
//! consistency with the trusted tree in the same computation), optionally
//! checks every new entry, and only then advances its state. A fork, a
//! rollback, a bad tile or a bad entry is a [`Failure`]: the state stays
//! as it was and both checkpoints are saved as evidence.
//!
//! It works against any tlog-tiles log given a prefix, an origin and a key;
//! for evault logs it can also check that each entry is a canonical
//! evidence record or audit event leaf. See the README for the design.
//!
//! Specifications: C2SP tlog-tiles, tlog-checkpoint and signed-note;
//! RFC 6962 hashing and RFC 9162 consistency verification (through
//! `evault-merkle`).

pub mod check;
pub mod entries;
pub mod source;
pub mod state;

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use check::{Failure, FailureKind, Head};
pub use source::{DirSource, FetchError, HttpSource, LogSource, open_source};
pub use state::{LogKind, LogState, State, Trusted};

use check::{Attempt, CheckError, CheckInput, check_log};
pub use state::KeyPolicy;
use state::{StateLock, TrustedTree, key_name, parent_dir, verifiers_for};

/// How a run ends; [`Exit::code`] is the process exit code shared by every
/// `evault` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// Every log verified (advanced or unchanged).
    Ok,
    /// Verification failed for at least one log.
    Failed,
    /// Bad arguments, or a local problem (state file, evidence directory).
    Usage,
    /// A server refused a request (HTTP error, resource missing).
    Refused,
    /// A server could not be reached.
    Unreachable,
}

impl Exit {
    /// 0 ok, 1 verification failed, 2 usage, 3 server refused, 4
    /// unreachable.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Unreachable => 4,
        }
    }
}

/// A log asked for on the command line.
#[derive(Clone, Debug)]
pub struct LogRequest {
    /// Local name (the key of the log in the state file).
    pub name: String,
    /// What its entries are.
    pub kind: LogKind,
    /// URL prefix (`https://host/tlog/`), `file://` URL or directory.
    pub prefix: String,
    /// Origin; default the key's name. Must match a pinned one.
    pub origin: Option<String>,
    /// Verifier key; required for a log not yet in the state, must match a
    /// pinned one.
    pub key: Option<String>,
    /// More keys of the same log (e.g. ML-DSA-44 beside Ed25519), pinned
    /// with `key`; must match the pinned ones.
    pub more_keys: Vec<String>,
    /// Any or all of the keys; must match the pinned policy.
    pub key_policy: Option<KeyPolicy>,
}

/// The `(name, key ID)` of each key, sorted: a key set's identity.
fn key_ids<'a>(keys: impl Iterator<Item = &'a String>) -> Result<Vec<(String, u32)>, String> {
    let mut ids = keys
        .map(|k| {
            evault_note::parse_verifier_key(k)
                .map(|p| (p.name, p.key_id))
                .map_err(|e| format!("key {k:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    Ok(ids)
}

/// Receives progress lines.
pub type Progress = Box<dyn Fn(&str)>;

/// How runs behave.
pub struct Options {
    /// Fetch and check every new entry.
    pub entries: bool,
    /// Where evidence files go; default `<state file stem>-evidence` next
    /// to the state file.
    pub evidence_dir: Option<PathBuf>,
    /// Bearer token for evault logs (the audit log's entries need one).
    pub token: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Sees progress lines.
    pub progress: Option<Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            entries: false,
            evidence_dir: None,
            token: None,
            timeout: Duration::from_secs(30),
            progress: None,
        }
    }
}

/// What happened to one log in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A newer checkpoint verified; the state advanced.
    Verified,
    /// The same checkpoint as the trusted one.
    Unchanged,
    /// Verification failed.
    Failed,
    /// The server refused or lacked a resource.
    Refused,
    /// The server could not be reached.
    Unreachable,
}

/// One log's line in a [`RunReport`].
#[derive(Clone, Debug, Serialize)]
pub struct LogReport {
    /// Local name.
    pub name: String,
    /// Entry kind.
    pub kind: LogKind,
    /// Origin.
    pub origin: String,
    /// Where it was fetched from.
    pub prefix: String,
    /// Outcome.
    pub status: Status,
    /// The trusted tree before this run.
    pub trusted_before: Option<Head>,
    /// The checkpoint the log served, if its signature verified.
    pub served: Option<Head>,
    /// The trusted tree after this run.
    pub trusted_after: Option<Head>,
    /// Hash tiles read.
    pub tiles_read: u64,
    /// Entries checked.
    pub entries_checked: u64,
    /// The verification failure, if any.
    pub failure: Option<Failure>,
    /// Why the server could not be used, if so.
    pub error: Option<String>,
    /// Evidence files written for a failure.
    pub evidence_files: Vec<PathBuf>,
    /// Key events of the log among the newly checked entries (keys added
    /// to or retired from the trusted set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_events: Vec<String>,
}

/// What a log that advanced brings: the tree to trust, the keys it added
/// and those it retired.
type Advanced = (TrustedTree, Vec<state::LearnedKey>, Vec<state::RetiredKey>);

/// The result of one run over every selected log.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Process exit code for this run ([`Exit::code`]).
    pub exit_code: u8,
    /// The outcome.
    pub outcome: Exit,
    /// Per log, in order.
    pub logs: Vec<LogReport>,
    /// A local problem (state file not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_error: Option<String>,
}

/// A monitor over one state file, which it holds locked.
pub struct Monitor {
    state_path: PathBuf,
    evidence_dir: PathBuf,
    state: State,
    /// Logs to check, by name, in order.
    selected: Vec<String>,
    /// Requested logs that are not yet in the (saved) state.
    fresh: Vec<LogState>,
    /// Requests that contradict a pinned identity, by log name.
    conflicts: Vec<(String, Failure)>,
    /// Known logs asked for at another prefix (or as another kind): kept
    /// once the log verifies there.
    relocated: Vec<(String, String, LogKind)>,
    options: Options,
    _lock: StateLock,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Monitor {
    /// Locks and loads the state file and merges the requested logs into
    /// it (nothing is written until a run verifies something). With no
    /// request, every log in the state is followed. Errors are usage
    /// errors ([`Exit::Usage`]).
    pub fn open(
        state_path: &Path,
        requests: &[LogRequest],
        options: Options,
    ) -> Result<Monitor, String> {
        let lock = StateLock::acquire(state_path)?;
        let state = State::load(state_path)?;
        let mut fresh = Vec::new();
        let mut conflicts = Vec::new();
        let mut selected = Vec::new();
        let mut relocated = Vec::new();
        for r in requests {
            if selected.contains(&r.name) {
                return Err(format!("log {} is named twice", r.name));
            }
            selected.push(r.name.clone());
            let prefix = source::normalize_prefix(&r.prefix)?;
            if let Some(key) = &r.key {
                verifiers_for(key)?;
            }
            for key in &r.more_keys {
                verifiers_for(key)?;
            }
            let given = key_ids(r.key.iter().chain(&r.more_keys))?;
            if given.windows(2).any(|w| w[0] == w[1]) {
                return Err(format!("log {}: the same key is given twice", r.name));
            }
            if r.key.is_none() && (!r.more_keys.is_empty() || r.key_policy.is_some()) {
                return Err(format!(
                    "log {}: more keys and a key policy come with --key",
                    r.name
                ));
            }
            if let Some(known) = state.logs.iter().find(|l| l.name == r.name) {
                // The same set in any order is the same identity.
                // Keys the log added itself may be given too, or not.
                let same_keys = r.key.is_none()
                    || given == key_ids(known.pinned_keys())?
                    || given == key_ids(known.keys())?;
                if !same_keys {
                    let given: Vec<&String> = r.key.iter().chain(&r.more_keys).collect();
                    let pinned: Vec<&String> = known.pinned_keys().collect();
                    let key = given
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let pinned = pinned
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    conflicts.push((
                        r.name.clone(),
                        Failure {
                            kind: FailureKind::KeyChanged,
                            message: format!(
                                "log {}: KEY CHANGED: the pinned key is {pinned}, but {key} was \
                                 given; a log's key does not change (to trust a new log, use \
                                 a new name or state file)",
                                r.name
                            ),
                        },
                    ));
                } else if let Some(policy) = r.key_policy.filter(|p| *p != known.key_policy) {
                    conflicts.push((
                        r.name.clone(),
                        Failure {
                            kind: FailureKind::KeyChanged,
                            message: format!(
                                "log {}: KEY POLICY CHANGED: the pinned policy is {:?}, but \
                                 {policy:?} was given",
                                r.name, known.key_policy
                            ),
                        },
                    ));
                } else if let Some(origin) = r.origin.as_ref().filter(|o| **o != known.origin) {
                    conflicts.push((
                        r.name.clone(),
                        Failure {
                            kind: FailureKind::KeyChanged,
                            message: format!(
                                "log {}: ORIGIN CHANGED: the pinned origin is {:?}, but {origin:?} \
                                 was given",
                                r.name, known.origin
                            ),
                        },
                    ));
                }
                // Where a log is served is not part of its identity: a
                // mirror or a moved prefix serves the same signed tree.
                if known.prefix != prefix || known.kind != r.kind {
                    relocated.push((r.name.clone(), prefix, r.kind));
                }
                continue;
            }
            let key = r.key.clone().ok_or_else(|| {
                format!(
                    "log {} at {prefix} is not in the state file yet: give its verifier key",
                    r.name
                )
            })?;
            let origin = match &r.origin {
                Some(o) => o.clone(),
                None => key_name(&key)?,
            };
            fresh.push(LogState {
                name: r.name.clone(),
                kind: r.kind,
                prefix,
                origin,
                key,
                more_keys: r.more_keys.clone(),
                key_policy: r.key_policy.unwrap_or_default(),
                learned_keys: Vec::new(),
                retired_keys: Vec::new(),
                trusted: None,
            });
        }
        if requests.is_empty() {
            selected = state.logs.iter().map(|l| l.name.clone()).collect();
        }
        if selected.is_empty() {
            return Err(format!(
                "no logs to monitor: {} follows none yet; name a server or a log",
                state_path.display()
            ));
        }
        let evidence_dir = options.evidence_dir.clone().unwrap_or_else(|| {
            let stem = state_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "evault-monitor".into());
            parent_dir(state_path).join(format!("{stem}-evidence"))
        });
        Ok(Monitor {
            state_path: state_path.to_path_buf(),
            evidence_dir,
            state,
            selected,
            fresh,
            conflicts,
            relocated,
            options,
            _lock: lock,
        })
    }

    /// The state as of the last run.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Checks every selected log once, saves evidence of failures, and
    /// writes the state if a log advanced.
    pub fn run_once(&mut self) -> RunReport {
        let mut logs = Vec::new();
        let mut dirty = false;
        let mut local_error = None;
        for name in self.selected.clone() {
            let known = self.state.logs.iter().position(|l| l.name == name);
            let mut log = match known {
                Some(i) => self.state.logs[i].clone(),
                None => match self.fresh.iter().find(|l| l.name == name) {
                    Some(l) => l.clone(),
                    None => continue,
                },
            };
            let moved = self.relocated.iter().find(|(n, _, _)| *n == name);
            if let Some((_, prefix, kind)) = moved {
                log.prefix = prefix.clone();
                log.kind = *kind;
            }
            let conflict = self
                .conflicts
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| f.clone());
            let (report, advanced) = self.check_one(&log, conflict);
            let verified = matches!(report.status, Status::Verified | Status::Unchanged);
            if let (Some(i), true, true) = (known, moved.is_some(), verified) {
                self.state.logs[i].prefix = log.prefix.clone();
                self.state.logs[i].kind = log.kind;
                self.relocated.retain(|(n, _, _)| *n != name);
                dirty = true;
            }
            if let Some((tree, learned, retired)) = advanced {
                let trusted = Trusted::from_tree(&tree, now_secs());
                let apply = |l: &mut LogState| {
                    l.trusted = Some(trusted);
                    l.learned_keys.extend(learned);
                    l.retired_keys.extend(retired);
                };
                match known {
                    Some(i) => apply(&mut self.state.logs[i]),
                    None => {
                        // Pinned once the first checkpoint verified.
                        let mut log = log.clone();
                        apply(&mut log);
                        self.state.logs.push(log);
                        self.fresh.retain(|l| l.name != name);
                    }
                }
                dirty = true;
            }
            logs.push(report);
        }
        if dirty && let Err(e) = self.state.save(&self.state_path) {
            local_error = Some(e);
        }
        let outcome = if logs.iter().any(|l| l.status == Status::Failed) {
            Exit::Failed
        } else if local_error.is_some() {
            Exit::Usage
        } else if logs.iter().any(|l| l.status == Status::Refused) {
            Exit::Refused
        } else if logs.iter().any(|l| l.status == Status::Unreachable) {
            Exit::Unreachable
        } else {
            Exit::Ok
        };
        RunReport {
            exit_code: outcome.code(),
            outcome,
            logs,
            local_error,
        }
    }

    /// Checks one log; returns its report and, if it advanced, the tree to
    /// trust and the keys the log added and retired on the way.
    fn check_one(
        &self,
        log: &LogState,
        conflict: Option<Failure>,
    ) -> (LogReport, Option<Advanced>) {
        // Checked when the state was loaded; never fall back to trust on
        // first use because a trusted entry stopped decoding.
        let (trusted, damaged) = match log.trusted_tree() {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        };
        let before = trusted.as_ref().map(|t| Head {
            size: t.size,
            root: base64_of(&t.root),
        });
        let conflict = conflict.or_else(|| {
            damaged.map(|e| Failure {
                kind: FailureKind::BadCheckpoint,
                message: format!("log {}: the trusted state does not verify: {e}", log.name),
            })
        });
        let mut report = LogReport {
            name: log.name.clone(),
            kind: log.kind,
            origin: log.origin.clone(),
            prefix: log.prefix.clone(),
            status: Status::Failed,
            trusted_before: before.clone(),
            served: None,
            trusted_after: before,
            tiles_read: 0,
            entries_checked: 0,
            failure: None,
            error: None,
            evidence_files: Vec::new(),
            key_events: Vec::new(),
        };
        if let Some(f) = conflict {
            report.failure = Some(f);
            return (report, None);
        }
        let token = self
            .options
            .token
            .as_deref()
            .filter(|_| log.kind.is_evault());
        let source = match open_source(&log.prefix, token, self.options.timeout) {
            Ok(s) => s,
            Err(e) => {
                report.status = Status::Refused;
                report.error = Some(e);
                return (report, None);
            }
        };
        let quiet = |_: &str| {};
        let progress: &dyn Fn(&str) = match &self.options.progress {
            Some(p) => p.as_ref(),
            None => &quiet,
        };
        let attempt = check_log(&CheckInput {
            log,
            trusted: trusted.as_ref(),
            source: source.as_ref(),
            entries: self.options.entries,
            progress,
        });
        report.served = attempt.served_head.clone();
        let served = attempt_served(&attempt);
        match attempt.result {
            Ok(checked) => {
                report.tiles_read = checked.tiles_read;
                report.entries_checked = checked.entries_checked;
                report.trusted_after = Some(Head {
                    size: checked.tree.size,
                    root: base64_of(&checked.tree.root),
                });
                if checked.advanced {
                    report.status = Status::Verified;
                    report.key_events = checked
                        .learned_keys
                        .iter()
                        .map(|k| format!("added {} at leaf {}", k.key, k.added_at))
                        .chain(
                            checked
                                .retired_keys
                                .iter()
                                .map(|k| format!("retired {} at leaf {}", k.key, k.retired_at)),
                        )
                        .chain(checked.key_notes.iter().cloned())
                        .collect();
                    (
                        report,
                        Some((checked.tree, checked.learned_keys, checked.retired_keys)),
                    )
                } else {
                    report.status = Status::Unchanged;
                    (report, None)
                }
            }
            Err(CheckError::Fetch(e)) => {
                report.status = match e {
                    FetchError::Unreachable(_) => Status::Unreachable,
                    _ => Status::Refused,
                };
                report.error = Some(format!("log {}: {e}", log.name));
                (report, None)
            }
            Err(CheckError::Failed(f)) => {
                match self.save_evidence(log, trusted.as_ref(), &served, &f) {
                    Ok(files) => report.evidence_files = files,
                    Err(e) => report.error = Some(format!("saving evidence: {e}")),
                }
                report.failure = Some(f);
                (report, None)
            }
        }
    }

    /// Writes the trusted checkpoint, the served one and the failure into
    /// the evidence directory; returns their paths.
    fn save_evidence(
        &self,
        log: &LogState,
        trusted: Option<&TrustedTree>,
        served: &Option<(Vec<u8>, Option<Head>)>,
        failure: &Failure,
    ) -> Result<Vec<PathBuf>, String> {
        let dir = &self.evidence_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let stamp = format!("{}-{}", now_secs(), file_safe(&log.name));
        let mut files = Vec::new();
        if let Some(t) = trusted {
            files.push(write_new(
                dir,
                &format!("{stamp}-trusted-{}", t.size),
                "checkpoint",
                t.checkpoint.as_bytes(),
            )?);
        }
        if let Some((bytes, head)) = served {
            let size = head
                .as_ref()
                .map_or_else(|| "unverified".to_string(), |h| h.size.to_string());
            files.push(write_new(
                dir,
                &format!("{stamp}-served-{size}"),
                "checkpoint",
                bytes,
            )?);
        }
        let record = serde_json::json!({
            "log": log.name,
            "origin": log.origin,
            "prefix": log.prefix,
            "key": log.key,
            "more_keys": log.more_keys,
            "key_policy": log.key_policy,
            "failure": failure,
            "trusted": trusted.map(|t| Head { size: t.size, root: base64_of(&t.root) }),
            "served": served.as_ref().and_then(|(_, h)| h.clone()),
            "checkpoint_files": files,
            "detected_at": now_secs(),
        });
        let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())? + "\n";
        files.push(write_new(
            dir,
            &format!("{stamp}-failure"),
            "json",
            text.as_bytes(),
        )?);
        Ok(files)
    }
}

fn attempt_served(a: &Attempt) -> Option<(Vec<u8>, Option<Head>)> {
    a.served.clone().map(|b| (b, a.served_head.clone()))
}

fn base64_of(h: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// A log name made safe for a file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Creates `<dir>/<base>.<ext>` (or `<base>-<n>.<ext>` if taken), never
/// overwriting earlier evidence; synced.
fn write_new(dir: &Path, base: &str, ext: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    for n in 0..100 {
        let name = if n == 0 {
            format!("{base}.{ext}")
        } else {
            format!("{base}-{n}.{ext}")
        };
        let path = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Err(format!(
        "{}: too many evidence files named {base}",
        dir.display()
    ))
}

impl fmt::Display for RunReport {
    /// The human report: one line per log, failures with their evidence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for log in &self.logs {
            let head = |h: &Option<Head>| {
                h.as_ref()
                    .map_or_else(|| "nothing".to_string(), |h| h.to_string())
            };
            match log.status {
                Status::Verified => {
                    let from = log
                        .trusted_before
                        .as_ref()
                        .map_or_else(|| "first use".to_string(), |h| format!("size {}", h.size));
                    write!(
                        f,
                        "{}: verified {} (from {from}); {} tiles",
                        log.name,
                        head(&log.trusted_after),
                        log.tiles_read
                    )?;
                    if log.entries_checked > 0 {
                        write!(f, ", {} entries checked", log.entries_checked)?;
                    }
                    writeln!(f)?;
                }
                Status::Unchanged => {
                    writeln!(f, "{}: unchanged at {}", log.name, head(&log.trusted_after))?;
                }
                Status::Failed => {
                    if let Some(fail) = &log.failure {
                        writeln!(
                            f,
                            "{}: VERIFICATION FAILED ({})",
                            log.name,
                            fail.kind.as_str()
                        )?;
                        writeln!(f, "  {}", fail.message)?;
                    }
                    writeln!(f, "  state kept at {}", head(&log.trusted_before))?;
                    for p in &log.evidence_files {
                        writeln!(f, "  evidence: {}", p.display())?;
                    }
                    if let Some(e) = &log.error {
                        writeln!(f, "  {e}")?;
                    }
                }
                Status::Refused | Status::Unreachable => {
                    let what = if log.status == Status::Refused {
                        "refused"
                    } else {
                        "unreachable"
                    };
                    writeln!(
                        f,
                        "{}: {what}: {}",
                        log.name,
                        log.error.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
        if let Some(e) = &self.local_error {
            writeln!(f, "state not saved: {e}")?;
        }
        Ok(())
    }
}
