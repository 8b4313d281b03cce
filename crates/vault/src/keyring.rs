//! A log's signing keys over time. Rotation adds a key (every checkpoint
//! then carries the old and the new key's signatures), and after an
//! overlap retires the old one (only the new key signs). Each change is an
//! evidence record signed by both keys ([`evault_verify::key_event`]), so
//! the history of keys is provable from the log itself.
//!
//! The key set lives in the store's meta (`keys/<log>`, JSON), the log's
//! fork guard stays keyed by its first ("genesis") key, and the running
//! checkpointer and readers share one [`KeyRing`] per log, so a rotation
//! takes effect at the next checkpoint without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use evault_note::{Signer, Verifiers, verifier_for};
use evault_store::{LogId, LogStore};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};

/// Where a key stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Made by a rotation that has not been logged yet (a crash in
    /// between): signs nothing; the next rotation announces it.
    Pending,
    /// Signs every checkpoint.
    Active,
    /// Still signs every checkpoint, until its overlap ends and it is
    /// retired.
    Retiring,
    /// Signs nothing; checkpoints signed before stay verifiable with it.
    Retired,
}

/// One of a log's keys, as kept in the store's meta.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Verifier key in note format (`name+hash+base64`).
    pub verifier_key: String,
    /// Where it stands.
    pub state: KeyState,
    /// Evidence leaf index of the record that added it; `None` for the
    /// log's first key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<u64>,
    /// For a retiring key: when its overlap ends (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after_ms: Option<i64>,
    /// Evidence leaf index of the record that retired it: checkpoints of
    /// larger trees need another key's signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
    /// The key file the vault made for it, relative to the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl KeyState {
    /// The name used in meta, the API and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }
}

impl KeyEntry {
    fn signs(&self) -> bool {
        matches!(self.state, KeyState::Active | KeyState::Retiring)
    }
}

/// Meta key of a log's key set.
fn meta_key(log: LogId) -> String {
    format!("keys/{log}")
}

/// The stored key set of `log`, if it was ever rotated.
pub(crate) fn load_entries(store: &dyn LogStore, log: LogId) -> Result<Option<Vec<KeyEntry>>> {
    let Some(text) = store.get_meta(&meta_key(log))? else {
        return Ok(None);
    };
    let entries: Vec<KeyEntry> = serde_json::from_str(&text)
        .map_err(|e| VaultError::Inconsistent(format!("the {log} log's stored key set: {e}")))?;
    if entries.is_empty() {
        return Err(VaultError::Inconsistent(format!(
            "the {log} log's stored key set is empty"
        )));
    }
    Ok(Some(entries))
}

fn save_entries(store: &dyn LogStore, log: LogId, entries: &[KeyEntry]) -> Result<()> {
    let text = serde_json::to_string(entries)
        .map_err(|e| VaultError::Invalid(format!("encoding the key set: {e}")))?;
    store.set_meta(&meta_key(log), &text)?;
    Ok(())
}

/// A log's keys while it runs; shared by its checkpointer and readers.
pub(crate) struct KeyRing {
    pub log: LogId,
    pub origin: String,
    /// The log's first Ed25519 verifier key: the fork guard's name for the
    /// log, unchanged by rotation.
    pub genesis: String,
    data_dir: PathBuf,
    /// The configured key for the next rotation, if any.
    next: Option<Arc<dyn Signer>>,
    state: RwLock<Ring>,
    /// One rotation or retirement at a time.
    pub(crate) changing: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Ring {
    entries: Vec<KeyEntry>,
    /// Signers of the active and retiring keys, in entry order.
    ed25519: Vec<Arc<dyn Signer>>,
    /// The last of them (a ring always has one).
    primary: Arc<dyn Signer>,
    pq: Option<Arc<dyn Signer>>,
    /// Every key the log ever signed with, ML-DSA-44 included.
    verifiers: Arc<Verifiers>,
}

impl KeyRing {
    /// The ring of a log at start-up. `stored` is its key set from meta
    /// (`None` before its first rotation: then `configured` is its only
    /// key). Every key that still signs must be at hand: the configured
    /// signer, or a key file the vault made at a rotation.
    pub fn open(
        log: LogId,
        origin: &str,
        stored: Option<Vec<KeyEntry>>,
        configured: Result<Arc<dyn Signer>>,
        next: Option<Arc<dyn Signer>>,
        pq: Option<Arc<dyn Signer>>,
        data_dir: &Path,
    ) -> Result<KeyRing> {
        if let Some(n) = next.as_ref().filter(|n| n.name() != origin) {
            return Err(VaultError::Invalid(format!(
                "the {log} log's next signer holds a key named {:?}; it must be named after the \
                 log's origin {origin:?}",
                n.name()
            )));
        }
        let (entries, configured) = match stored {
            None => {
                let s = configured?;
                let entry = KeyEntry {
                    verifier_key: s.verifier_key().as_str().to_string(),
                    state: KeyState::Active,
                    added_at: None,
                    retire_after_ms: None,
                    retired_at: None,
                    file: None,
                };
                (vec![entry], Ok(s))
            }
            Some(e) => (e, configured),
        };
        if let Ok(s) = &configured
            && !entries
                .iter()
                .any(|e| e.verifier_key == s.verifier_key().as_str())
        {
            return Err(VaultError::Inconsistent(format!(
                "the configured {log} signing key {} is not one of the log's keys ({}); an \
                 existing log changes keys only by `evault keys rotate`",
                s.verifier_key(),
                list(&entries)
            )));
        }
        let mut ed25519 = Vec::new();
        for e in entries.iter().filter(|e| e.signs()) {
            let is_next = |n: &Arc<dyn Signer>| n.verifier_key().as_str() == e.verifier_key;
            let signer = match (&configured, &e.file) {
                (Ok(s), _) if s.verifier_key().as_str() == e.verifier_key => s.clone(),
                _ if next.as_ref().is_some_and(is_next) => next
                    .clone()
                    .ok_or_else(|| VaultError::Invalid("no next signer".into()))?,
                (_, Some(file)) => {
                    let s = crate::keys::load_or_create(&data_dir.join(file), origin, false)?;
                    if s.verifier_key().as_str() != e.verifier_key {
                        return Err(VaultError::Inconsistent(format!(
                            "the {log} key file {} holds {}, not the log's key {}",
                            data_dir.join(file).display(),
                            s.verifier_key(),
                            e.verifier_key
                        )));
                    }
                    s
                }
                (Err(why), None) => {
                    return Err(VaultError::Inconsistent(format!(
                        "the {log} log's key {} still signs, but its configured signer is not \
                         available: {why}",
                        e.verifier_key
                    )));
                }
                (Ok(s), None) => {
                    return Err(VaultError::Inconsistent(format!(
                        "the {log} log's key {} still signs, but the configured signer holds \
                         {}; configure that key's signer",
                        e.verifier_key,
                        s.verifier_key()
                    )));
                }
            };
            ed25519.push(signer);
        }
        if ed25519.is_empty() {
            return Err(VaultError::Inconsistent(format!(
                "the {log} log has no key that signs ({})",
                list(&entries)
            )));
        }
        let ring = Ring::new(log, entries, ed25519, pq)?;
        Ok(KeyRing {
            log,
            origin: origin.to_string(),
            genesis: ring.entries[0].verifier_key.clone(),
            data_dir: data_dir.to_path_buf(),
            next,
            state: RwLock::new(ring),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> Ring {
        match self.state.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The keys that sign the next checkpoint, in their order in the
    /// note: the Ed25519 keys (oldest first), then ML-DSA-44.
    pub fn signing_set(&self) -> Vec<Arc<dyn Signer>> {
        let r = self.read();
        r.ed25519.into_iter().chain(r.pq).collect()
    }

    /// The configured key the next rotation moves to, if any.
    pub fn next_signer(&self) -> Option<Arc<dyn Signer>> {
        self.next.clone()
    }

    /// The Ed25519 keys that sign now, oldest first.
    pub fn ed25519(&self) -> Vec<Arc<dyn Signer>> {
        self.read().ed25519
    }

    /// Every key the log ever signed with: a stored checkpoint opens with
    /// any of them.
    pub fn verifiers(&self) -> Arc<Verifiers> {
        self.read().verifiers
    }

    /// The newest Ed25519 key: the one verifiers should pin.
    pub fn primary(&self) -> Arc<dyn Signer> {
        self.read().primary
    }

    /// The verifier keys that sign new checkpoints, in note order.
    pub fn active_keys(&self) -> Vec<String> {
        self.signing_set()
            .iter()
            .map(|s| s.verifier_key().as_str().to_string())
            .collect()
    }

    /// The key set.
    pub fn entries(&self) -> Vec<KeyEntry> {
        self.read().entries
    }

    /// When the next retiring key's overlap ends, if one is retiring.
    pub fn next_retirement_ms(&self) -> Option<i64> {
        self.read()
            .entries
            .iter()
            .filter(|e| e.state == KeyState::Retiring)
            .filter_map(|e| e.retire_after_ms)
            .min()
    }

    /// Takes up the key set stored by another node (on a shared store, the
    /// leader rotates and retires keys; every other node must sign with
    /// the same keys once it leads, and serve the same verifiers before).
    /// Returns whether the ring changed. Each key that signs needs a signer
    /// on this node: one the ring holds, the configured next signer, or
    /// the key file a rotation made, found under the same name in this
    /// node's data directory. If one has none, the ring stays as it was
    /// and the error names the key.
    pub fn refresh(&self, store: &dyn LogStore) -> Result<bool> {
        let Some(entries) = load_entries(store, self.log)? else {
            return Ok(false);
        };
        let r = self.read();
        if entries == r.entries {
            return Ok(false);
        }
        let mut ed25519 = Vec::new();
        for e in entries.iter().filter(|e| e.signs()) {
            let held = r
                .ed25519
                .iter()
                .chain(self.next.iter())
                .find(|s| s.verifier_key().as_str() == e.verifier_key)
                .cloned();
            let signer = match (held, &e.file) {
                (Some(s), _) => s,
                (None, Some(file)) => {
                    let path = self.data_dir.join(file);
                    let s =
                        crate::keys::load_or_create(&path, &self.origin, false).map_err(|err| {
                            VaultError::Inconsistent(format!(
                                "the {} log's key {} signs now, and this node cannot load its \
                                 key file {} ({err}): copy that file from the node that \
                                 rotated, or configure the same --next-signer on every node \
                                 before rotating",
                                self.log,
                                e.verifier_key,
                                path.display()
                            ))
                        })?;
                    if s.verifier_key().as_str() != e.verifier_key {
                        return Err(VaultError::Inconsistent(format!(
                            "the {} key file {} holds {}, not the log's key {}",
                            self.log,
                            path.display(),
                            s.verifier_key(),
                            e.verifier_key
                        )));
                    }
                    s
                }
                (None, None) => {
                    return Err(VaultError::Inconsistent(format!(
                        "the {} log's key {} signs now, but this node has no signer for it: \
                         configure it as this node's --next-signer (every node needs the key \
                         a rotation moves to)",
                        self.log, e.verifier_key
                    )));
                }
            };
            ed25519.push(signer);
        }
        let ring = Ring::new(self.log, entries, ed25519, r.pq.clone())?;
        match self.state.write() {
            Ok(mut w) => *w = ring,
            Err(p) => *p.into_inner() = ring,
        }
        Ok(true)
    }

    /// Stores `entries` and makes them the ring's, with `signers` for the
    /// keys that sign (in entry order).
    fn replace(
        &self,
        store: &dyn LogStore,
        entries: Vec<KeyEntry>,
        ed25519: Vec<Arc<dyn Signer>>,
    ) -> Result<()> {
        save_entries(store, self.log, &entries)?;
        let pq = self.read().pq;
        let ring = Ring::new(self.log, entries, ed25519, pq)?;
        match self.state.write() {
            Ok(mut w) => *w = ring,
            Err(p) => *p.into_inner() = ring,
        }
        Ok(())
    }

    /// A key for the next rotation: the pending one if a rotation was cut
    /// short, else the configured next signer, else a new key file in the
    /// data directory (recorded as pending before anything is logged about
    /// it).
    pub fn pending_or_new(&self, store: &dyn LogStore) -> Result<Arc<dyn Signer>> {
        let r = self.read();
        if let Some(e) = r.entries.iter().find(|e| e.state == KeyState::Pending) {
            if let Some(n) = self
                .next
                .as_ref()
                .filter(|n| n.verifier_key().as_str() == e.verifier_key)
            {
                return Ok(n.clone());
            }
            // Made by a rotation cut short (perhaps already announced): it
            // must be the key the rotation finishes with.
            let Some(file) = e.file.as_ref() else {
                return Err(VaultError::Conflict(format!(
                    "an earlier rotation of the {} log was cut short with the key {} of the \
                     next signer, which is not configured now; configure it again (--next-signer) \
                     and rotate",
                    self.log, e.verifier_key
                )));
            };
            let path = self.data_dir.join(file);
            return crate::keys::load_or_create(&path, &self.origin, false).map_err(|err| {
                VaultError::Conflict(format!(
                    "an earlier rotation of the {} log was cut short with the key {} in {}, \
                     which cannot be loaded ({err}); restore that file and rotate",
                    self.log,
                    e.verifier_key,
                    path.display()
                ))
            });
        }
        let (signer, file) = match &self.next {
            Some(n) => {
                if let Some(e) = r
                    .entries
                    .iter()
                    .find(|e| e.verifier_key == n.verifier_key().as_str())
                {
                    return Err(VaultError::Conflict(format!(
                        "the configured next signer holds {}, which is already one of the {} \
                         log's keys ({}); configure a new key as the next signer",
                        e.verifier_key,
                        self.log,
                        e.state.as_str()
                    )));
                }
                (n.clone(), None)
            }
            None => {
                let (s, f) =
                    crate::keys::create_ed25519_in(&self.data_dir, self.log, &self.origin)?;
                (s, Some(f))
            }
        };
        let mut entries = r.entries.clone();
        entries.push(KeyEntry {
            verifier_key: signer.verifier_key().as_str().to_string(),
            state: KeyState::Pending,
            added_at: None,
            retire_after_ms: None,
            retired_at: None,
            file,
        });
        self.replace(store, entries, r.ed25519.clone())?;
        Ok(signer)
    }

    /// After the `add` record of `new` was logged at `leaf`: `new` signs,
    /// and each key that signed before retires after `retire_after_ms`.
    pub fn activate(
        &self,
        store: &dyn LogStore,
        new: &Arc<dyn Signer>,
        leaf: u64,
        retire_after_ms: i64,
    ) -> Result<()> {
        let r = self.read();
        let vkey = new.verifier_key().as_str().to_string();
        let mut entries = r.entries.clone();
        for e in &mut entries {
            if e.verifier_key == vkey {
                e.state = KeyState::Active;
                e.added_at = Some(leaf);
            } else if e.state == KeyState::Active {
                e.state = KeyState::Retiring;
                e.retire_after_ms = Some(retire_after_ms);
            }
        }
        let mut ed25519 = r.ed25519.clone();
        ed25519.push(new.clone());
        self.replace(store, entries, ed25519)
    }

    /// Ends the overlap of every retiring key now.
    pub fn end_overlap(&self, store: &dyn LogStore, now_ms: i64) -> Result<()> {
        let r = self.read();
        let mut entries = r.entries.clone();
        for e in entries.iter_mut().filter(|e| e.state == KeyState::Retiring) {
            e.retire_after_ms = Some(e.retire_after_ms.map_or(now_ms, |t| t.min(now_ms)));
        }
        self.replace(store, entries, r.ed25519.clone())
    }

    /// After the `retire` record of `vkey` was logged at `leaf`: it signs
    /// no more.
    pub fn retire(&self, store: &dyn LogStore, vkey: &str, leaf: u64) -> Result<()> {
        let r = self.read();
        let mut entries = r.entries.clone();
        for e in entries.iter_mut().filter(|e| e.verifier_key == vkey) {
            e.state = KeyState::Retired;
            e.retired_at = Some(leaf);
            e.retire_after_ms = None;
        }
        let ed25519 = r
            .ed25519
            .iter()
            .filter(|s| s.verifier_key().as_str() != vkey)
            .cloned()
            .collect();
        self.replace(store, entries, ed25519)
    }
}

impl Ring {
    fn new(
        log: LogId,
        entries: Vec<KeyEntry>,
        ed25519: Vec<Arc<dyn Signer>>,
        pq: Option<Arc<dyn Signer>>,
    ) -> Result<Ring> {
        let mut verifiers = Verifiers::new();
        let known = entries
            .iter()
            .filter(|e| e.state != KeyState::Pending)
            .map(|e| e.verifier_key.clone())
            .chain(pq.iter().map(|p| p.verifier_key().as_str().to_string()));
        for vkey in known {
            verifiers
                .insert_boxed(verifier_for(&vkey).map_err(|e| {
                    VaultError::Invalid(format!("the {log} log's verifier key {vkey}: {e}"))
                })?)
                .map_err(|e| VaultError::Invalid(e.to_string()))?;
        }
        let primary = ed25519.last().cloned().ok_or_else(|| {
            VaultError::Inconsistent(format!(
                "the {log} log would have no Ed25519 key that signs"
            ))
        })?;
        Ok(Ring {
            entries,
            primary,
            ed25519,
            pq,
            verifiers: Arc::new(verifiers),
        })
    }
}

fn list(entries: &[KeyEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{} ({})", e.verifier_key, e.state.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
