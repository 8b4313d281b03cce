//! The monitor's own trusted state: per log, its identity (origin and
//! pinned key) and the last checkpoint it verified, with the frontier of
//! that tree. One JSON file, written atomically, mode 0600.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::{CompactRange, Hash, hash_from_slice};
use evault_note::{Checkpoint, Verifiers, log_verifier, open, parse_verifier_key};
use serde::{Deserialize, Serialize};

/// Version of the state file layout.
pub const STATE_VERSION: u32 = 1;

/// What entries a log holds, which decides the optional per-entry check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogKind {
    /// Any C2SP tlog-tiles log: entries are opaque bytes.
    Tlog,
    /// An evault evidence log: each entry is an evidence record's leaf.
    EvaultEvidence,
    /// An evault audit log: each entry is an audit event's leaf.
    EvaultAudit,
}

impl LogKind {
    /// The kebab-case name used in the state file and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Tlog => "tlog",
            LogKind::EvaultEvidence => "evault-evidence",
            LogKind::EvaultAudit => "evault-audit",
        }
    }

    /// Whether the log is an evault server's (and so may be sent its token).
    pub fn is_evault(self) -> bool {
        !matches!(self, LogKind::Tlog)
    }
}

/// The whole state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Every log the monitor follows.
    pub logs: Vec<LogState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            logs: Vec::new(),
        }
    }
}

/// One followed log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogState {
    /// Local name of the log (unique in the file).
    pub name: String,
    /// What its entries are.
    pub kind: LogKind,
    /// Where it is served: a URL ending in `/`, or a directory.
    pub prefix: String,
    /// Checkpoint origin line.
    pub origin: String,
    /// Pinned verifier key (`name+hash+base64`); a different key for this
    /// log is a failure, never an update.
    pub key: String,
    /// More pinned keys of the same log (e.g. its ML-DSA-44 key beside the
    /// Ed25519 one), pinned like `key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_keys: Vec<String>,
    /// Whether a checkpoint needs a signature by any pinned key or by all.
    #[serde(default, skip_serializing_if = "KeyPolicy::is_any")]
    pub key_policy: KeyPolicy,
    /// Keys the log added by a key event (an evault evidence log followed
    /// with `--entries`): each was signed in by a key already trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned_keys: Vec<LearnedKey>,
    /// Keys the log retired by a key event: each counts only for
    /// checkpoints of trees that do not hold its retirement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_keys: Vec<RetiredKey>,
    /// The last verified tree; absent until the first successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted: Option<Trusted>,
}

/// A key an evault log added by a key event record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedKey {
    /// Verifier key (`name+hash+base64`).
    pub key: String,
    /// Leaf index of the key event that added it.
    pub added_at: u64,
}

/// A key an evault log retired by a key event record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    /// Verifier key (`name+hash+base64`).
    pub key: String,
    /// Leaf index of the key event that retired it: a checkpoint of a
    /// larger tree needs another key's signature.
    pub retired_at: u64,
}

/// A verified tree head and what is needed to extend it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trusted {
    /// Tree size, in leaves.
    pub size: u64,
    /// Root hash, base64.
    pub root: String,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
    /// Perfect-subtree roots along the right edge, largest first, base64
    /// (one per set bit of `size`).
    pub frontier: Vec<String>,
    /// When it was verified, seconds since the Unix epoch.
    pub verified_at: u64,
}

/// A [`Trusted`] decoded and checked.
#[derive(Clone, Debug)]
pub struct TrustedTree {
    /// Tree size in leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The frontier of the tree; its root is `root`.
    pub frontier: CompactRange,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

/// Which of a log's pinned keys each checkpoint must be signed by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyPolicy {
    /// Any one of them.
    #[default]
    Any,
    /// Every one of them.
    All,
}

impl KeyPolicy {
    fn is_any(&self) -> bool {
        *self == KeyPolicy::Any
    }
}

impl LogState {
    /// The keys pinned by the user, `key` first.
    pub fn pinned_keys(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.key).chain(&self.more_keys)
    }

    /// Every trusted key: the pinned ones, then those the log added.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.pinned_keys()
            .chain(self.learned_keys.iter().map(|k| &k.key))
    }

    /// The verifier set of all trusted keys.
    pub fn verifiers(&self) -> Result<Verifiers, String> {
        set_of(self.keys())
    }

    /// Where `key` was retired, if the log retired it.
    pub fn retired_at(&self, key: &str) -> Option<u64> {
        self.retired_keys
            .iter()
            .filter(|r| r.key == key)
            .map(|r| r.retired_at)
            .min()
    }

    /// The trusted keys that count for a checkpoint of `size`: not retired
    /// by a key event the tree holds (a leaf index below `size`).
    pub fn keys_for(&self, size: u64) -> impl Iterator<Item = &String> {
        self.keys()
            .filter(move |k| self.retired_at(k).is_none_or(|at| at >= size))
    }

    /// The verifier set of [`LogState::keys_for`] `size`.
    pub fn verifiers_for_size(&self, size: u64) -> Result<Verifiers, String> {
        set_of(self.keys_for(size))
    }

    /// Under [`KeyPolicy::All`], that `note` (which opened with the set)
    /// carries a valid signature by every pinned key not retired for
    /// `size`: the first one missing, if any.
    pub fn missing_signature(&self, note: &[u8], size: u64) -> Result<Option<String>, String> {
        if self.key_policy == KeyPolicy::Any {
            return Ok(None);
        }
        // Keys the log added are not required: the vault may sign with the
        // old key alone for a while after announcing a new one.
        for key in self
            .pinned_keys()
            .filter(|k| self.retired_at(k).is_none_or(|at| at >= size))
        {
            if open(note, &verifiers_for(key)?).is_err() {
                return Ok(Some(short_name(key)));
            }
        }
        Ok(None)
    }
}

fn set_of<'a>(keys: impl Iterator<Item = &'a String>) -> Result<Verifiers, String> {
    let mut set = Verifiers::new();
    for key in keys {
        let v = log_verifier(key).map_err(|e| format!("key {key:?}: {e}"))?;
        set.insert_boxed(v).map_err(|e| e.to_string())?;
    }
    Ok(set)
}

/// `name+id` of a verifier key, for messages.
pub fn short_name(key: &str) -> String {
    parse_verifier_key(key)
        .map(|k| format!("{}+{:08x}", k.name, k.key_id))
        .unwrap_or_else(|_| key.to_string())
}

/// The verifier set of a single pinned log key: Ed25519 or ML-DSA-44.
pub fn verifiers_for(key: &str) -> Result<Verifiers, String> {
    let v = log_verifier(key).map_err(|e| format!("key {key:?}: {e}"))?;
    let mut set = Verifiers::new();
    set.insert_boxed(v).map_err(|e| e.to_string())?;
    Ok(set)
}

/// The name inside a verifier key (the default origin).
pub fn key_name(key: &str) -> Result<String, String> {
    parse_verifier_key(key)
        .map(|k| k.name)
        .map_err(|e| format!("key {key:?}: {e}"))
}

fn decode_hash(s: &str, what: &str) -> Result<Hash, String> {
    STANDARD
        .decode(s)
        .ok()
        .and_then(|b| hash_from_slice(&b))
        .ok_or_else(|| format!("{what} is not a base64 SHA-256 hash"))
}

impl LogState {
    /// Decodes the trusted tree and checks it hangs together: the frontier
    /// folds to the root, and the stored checkpoint is signed by the pinned
    /// key for this origin, size and root. A state that fails this was
    /// damaged outside the monitor.
    pub fn trusted_tree(&self) -> Result<Option<TrustedTree>, String> {
        let Some(t) = &self.trusted else {
            return Ok(None);
        };
        let root = decode_hash(&t.root, "root")?;
        let hashes = t
            .frontier
            .iter()
            .map(|h| decode_hash(h, "frontier hash"))
            .collect::<Result<Vec<_>, _>>()?;
        let frontier = CompactRange::from_hashes(t.size, hashes).map_err(|e| e.to_string())?;
        if frontier.root() != root {
            return Err("the frontier does not hash to the trusted root".into());
        }
        let note = open(t.checkpoint.as_bytes(), &self.verifiers()?)
            .map_err(|e| format!("the trusted checkpoint does not verify: {e}"))?;
        if let Some(missing) = self.missing_signature(t.checkpoint.as_bytes(), t.size)? {
            return Err(format!(
                "the trusted checkpoint is not signed by the pinned key {missing} (key policy all)"
            ));
        }
        let cp = Checkpoint::parse(&note.text).map_err(|e| e.to_string())?;
        if cp.origin != self.origin || cp.size != t.size || cp.root_hash != root {
            return Err("the trusted checkpoint does not match the trusted size and root".into());
        }
        Ok(Some(TrustedTree {
            size: t.size,
            root,
            frontier,
            checkpoint: t.checkpoint.clone(),
        }))
    }
}

impl Trusted {
    /// The stored form of a verified tree.
    pub fn from_tree(tree: &TrustedTree, verified_at: u64) -> Trusted {
        Trusted {
            size: tree.size,
            root: STANDARD.encode(tree.root),
            checkpoint: tree.checkpoint.clone(),
            frontier: tree
                .frontier
                .hashes()
                .iter()
                .map(|h| STANDARD.encode(h))
                .collect(),
            verified_at,
        }
    }
}

impl State {
    /// Reads the state file; a missing file is the empty state.
    pub fn load(path: &Path) -> Result<State, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(format!("state file {}: {e}", path.display())),
        };
        let state: State = serde_json::from_str(&text)
            .map_err(|e| format!("state file {}: {e}", path.display()))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "state file {}: version {} is not {STATE_VERSION}",
                path.display(),
                state.version
            ));
        }
        for log in &state.logs {
            log.trusted_tree()
                .map_err(|e| format!("state file {}: log {}: {e}", path.display(), log.name))?;
        }
        Ok(state)
    }

    /// Writes the state atomically: a temporary file in the same directory,
    /// mode 0600, synced, renamed over the old one, directory synced. A
    /// crash leaves the old state or the new one, never a mix.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        let tmp = temp_path(path);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("state file {}: {e}", tmp.display()))?;
        // A stale temporary file keeps its old mode; the state holds no
        // secret, but it is the monitor's trust anchor: owner only.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| f.write_all(text.as_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("state file {}: {e}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| format!("state file {shown}: {e}"))?;
        File::open(parent_dir(path))
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("state file {shown}: syncing its directory: {e}"))?;
        Ok(())
    }

    /// The log named `name`.
    pub fn log(&self, name: &str) -> Option<&LogState> {
        self.logs.iter().find(|l| l.name == name)
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    parent_dir(path).join(format!(".{name}.tmp"))
}

/// An exclusive lock on the state file (through `<state>.lock`), held for
/// as long as the value lives, so two monitors never interleave updates.
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock, or says who has it.
    pub fn acquire(path: &Path) -> Result<StateLock, String> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("lock file {}: {e}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "state file {} is in use by another evault monitor",
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("lock file {}: {e}", lock_path.display()))
            }
        }
    }
}
