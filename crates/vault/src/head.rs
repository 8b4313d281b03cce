//! Never sign a fork. Each log's latest signed tree head is kept OUTSIDE
//! the store (a small file in a state directory by default; an HSM later,
//! behind [`SignedHeadStore`]), so restoring an old copy of the data
//! directory does not restore it. The checkpointer signs only a tree
//! consistent with that head and updates the head durably before it
//! publishes the checkpoint; start-up refuses a store that is behind it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::tiles::TiledHashReader;
use evault_merkle::{EMPTY_ROOT, Hash};
use evault_note::Checkpoint;
use evault_store::{LogId, LogStore};
use sha2::{Digest, Sha256};

use crate::error::{Result, VaultError};
use crate::proofs::StoreTiles;
use crate::sequencer::TreeHead;

/// Which log a head belongs to: its origin and its verifier key (text),
/// so several vaults sharing one state directory never collide.
#[derive(Clone, Copy, Debug)]
pub struct HeadKey<'a> {
    /// The log's checkpoint origin.
    pub origin: &'a str,
    /// The log's verifier key in note text format.
    pub verifier_key: &'a str,
}

impl HeadKey<'_> {
    /// A short stable name: hex of SHA-256 over origin and verifier key
    /// (the first 16 bytes).
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.origin.as_bytes());
        h.update(b"\n");
        h.update(self.verifier_key.as_bytes());
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A log's latest signed tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// Tree size.
    pub size: u64,
    /// RFC 6962 root hash at `size`.
    pub root: Hash,
    /// The signed checkpoint (C2SP signed note) of `size` and `root`.
    pub checkpoint: String,
}

impl SignedHead {
    /// Size and root from a signed checkpoint's body, without checking its
    /// signature (start-up checks it with the log's key).
    pub fn from_checkpoint(note: &str) -> Result<SignedHead> {
        // A signed note is its text (ending in a newline), a blank line,
        // then the signature lines.
        let body = note
            .find("\n\n")
            .map(|i| &note[..=i])
            .ok_or_else(|| VaultError::Invalid("a signed head is not a signed note".into()))?;
        let cp = Checkpoint::parse(body)
            .map_err(|e| VaultError::Invalid(format!("a signed head's checkpoint: {e}")))?;
        Ok(SignedHead {
            size: cp.size,
            root: cp.root_hash,
            checkpoint: note.to_string(),
        })
    }
}

/// Keeps each log's latest signed tree head where a restored copy of the
/// data directory cannot reach it. The file implementation is
/// [`FileHeadStore`]; an HSM that holds the key can hold the head too.
pub trait SignedHeadStore: Send + Sync {
    /// The head stored for `log`, if any.
    fn load(&self, log: HeadKey<'_>) -> Result<Option<SignedHead>>;
    /// Replaces the head of `log`; returns only once it is durable.
    fn save(&self, log: HeadKey<'_>, head: &SignedHead) -> Result<()>;
    /// Where the head of `log` lives, for messages.
    fn describe(&self, log: HeadKey<'_>) -> String;
}

/// A [`SignedHeadStore`] held by the embedding program.
#[derive(Clone)]
pub struct HeadStore(pub Arc<dyn SignedHeadStore>);

impl fmt::Debug for HeadStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeadStore(..)")
    }
}

/// One file per log, `<dir>/head-<HeadKey::id>`, holding the signed
/// checkpoint text; mode 0600 in a 0700 directory, replaced atomically
/// (temp file, fsync, rename, fsync of the directory).
#[derive(Clone, Debug)]
pub struct FileHeadStore {
    dir: PathBuf,
}

impl FileHeadStore {
    /// Heads in `dir` (created 0700 when the first head is saved).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileHeadStore { dir: dir.into() }
    }

    /// The file of `log`'s head.
    pub fn path(&self, log: HeadKey<'_>) -> PathBuf {
        self.dir.join(format!("head-{}", log.id()))
    }
}

impl SignedHeadStore for FileHeadStore {
    fn load(&self, log: HeadKey<'_>) -> Result<Option<SignedHead>> {
        let path = self.path(log);
        match std::fs::read_to_string(&path) {
            Ok(text) => SignedHead::from_checkpoint(&text).map(Some).map_err(|e| {
                VaultError::Inconsistent(format!("signed head file {}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VaultError::Inconsistent(format!(
                "reading signed head file {}: {e}",
                path.display()
            ))),
        }
    }

    fn save(&self, log: HeadKey<'_>, head: &SignedHead) -> Result<()> {
        crate::datadir::create_private(&self.dir)?;
        crate::datadir::write_durably(&self.path(log), head.checkpoint.as_bytes())
    }

    fn describe(&self, log: HeadKey<'_>) -> String {
        self.path(log).display().to_string()
    }
}

/// The default state directory: `$XDG_STATE_HOME/evault`, else
/// `$HOME/.local/state/evault`; `None` if neither is set (absolute).
pub fn default_state_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").and_then(abs) {
        return Some(d.join("evault"));
    }
    std::env::var_os("HOME")
        .and_then(abs)
        .map(|h| h.join(".local/state/evault"))
}

pub(crate) fn b64(h: &[u8]) -> String {
    STANDARD.encode(h)
}

/// What happens when the vault has refused to sign a fork: why, for
/// readiness (`Vault::not_ready`).
#[derive(Clone, Default)]
pub(crate) struct Alarm(Arc<Mutex<Option<String>>>);

impl Alarm {
    pub fn raise(&self, why: String) {
        if let Ok(mut r) = self.0.lock() {
            r.get_or_insert(why);
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// One log's guard: its head store and identity.
#[derive(Clone)]
pub(crate) struct HeadGuard {
    pub heads: Arc<dyn SignedHeadStore>,
    pub log: LogId,
    pub origin: String,
    pub verifier_key: String,
}

impl HeadGuard {
    pub fn key(&self) -> HeadKey<'_> {
        HeadKey {
            origin: &self.origin,
            verifier_key: &self.verifier_key,
        }
    }

    pub fn load(&self) -> Result<Option<SignedHead>> {
        self.heads.load(self.key())
    }

    pub fn save(&self, head: &SignedHead) -> Result<()> {
        self.heads.save(self.key(), head)
    }

    /// Where the head lives, for messages.
    pub fn describe(&self) -> String {
        self.heads.describe(self.key())
    }

    /// Refuses `new` unless it extends the stored head: the same root at
    /// the same size, or an RFC 9162 consistency proof (from the store's
    /// own tiles) from the head to `new`. The store must hold at least
    /// `new.size` leaves. The inner error is the refusal, saying why; the
    /// outer one a failure to read the head or the tree.
    pub fn check(&self, store: &dyn LogStore, new: TreeHead) -> Result<Result<(), String>> {
        let Some(old) = self.load()? else {
            return Ok(Ok(()));
        };
        let refuse = |why: String| {
            Ok(Err(format!(
                "refusing to sign a fork of the {} log: {why}; the latest signed head (in {}) is \
                 size {} root {} and the tree to sign is size {} root {} (roots in base64)",
                self.log,
                self.describe(),
                old.size,
                b64(&old.root),
                new.size,
                b64(&new.root)
            )))
        };
        if new.size < old.size {
            return refuse("the tree is smaller than the signed head".into());
        }
        if old.size == 0 {
            return if old.root == EMPTY_ROOT {
                Ok(Ok(()))
            } else {
                refuse("the signed head of size 0 has a root other than the empty tree's".into())
            };
        }
        let reader = TiledHashReader {
            tiles: StoreTiles::uncached(store, self.log),
            tree_size: new.size,
        };
        let proof = evault_merkle::consistency_proof(&reader, old.size, new.size)
            .map_err(|e| VaultError::Inconsistent(format!("consistency proof: {e}")))?;
        match evault_merkle::verify_consistency(old.size, new.size, &proof, &old.root, &new.root) {
            Ok(()) => Ok(Ok(())),
            Err(e) => refuse(format!(
                "the tree is not consistent with the signed head ({e})"
            )),
        }
    }
}

/// Whether `dir` lies inside `data_dir` (a restore of the data directory
/// would then restore the heads too).
pub(crate) fn inside(dir: &Path, data_dir: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(dir).starts_with(canon(data_dir))
}
