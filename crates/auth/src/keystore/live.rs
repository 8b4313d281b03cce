//! The live keystore the server verifies tokens against: the current
//! [`Keys`] snapshot, reloaded when its source changes (a poll of the
//! file's metadata or of a shared store's version) or on SIGHUP, so that
//! revoking a key takes effect without a restart.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use super::file::KeystoreFile;
use super::key::ServiceAccountKey;

/// An immutable snapshot of the keys, indexed by key id. A request keeps
/// the snapshot it started with even if the file is reloaded meanwhile.
#[derive(Debug, Default)]
pub struct Keys {
    by_id: HashMap<String, ServiceAccountKey>,
}

impl Keys {
    /// Indexes `keys` by key id (for a repeated id the last one wins;
    /// [`KeystoreFile`] refuses repeats).
    pub fn new(keys: impl IntoIterator<Item = ServiceAccountKey>) -> Keys {
        Keys {
            by_id: keys.into_iter().map(|k| (k.key_id.clone(), k)).collect(),
        }
    }

    /// The key named `key_id` (a token's `kid`).
    pub fn get(&self, key_id: &str) -> Option<&ServiceAccountKey> {
        self.by_id.get(key_id)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is no key (every service-account token is refused).
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &ServiceAccountKey> {
        self.by_id.values()
    }
}

/// What identifies a version of the keys without reading them: opaque
/// bytes that differ whenever the keys may have (a file's metadata, a
/// database's version counter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysVersion(Vec<u8>);

impl KeysVersion {
    /// A version counter's value.
    pub fn counter(n: u64) -> KeysVersion {
        KeysVersion(n.to_be_bytes().to_vec())
    }
}

/// Why a [`KeySource`] could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySourceError {
    /// The source was read but its keys are not valid (a typo in the
    /// file, a document that does not parse). That version is not read
    /// again until it changes.
    Invalid(String),
    /// The source could not be reached (a database away, a read that
    /// timed out). The next poll tries again, even if the version it then
    /// reads is one already seen.
    Unavailable(String),
}

impl fmt::Display for KeySourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySourceError::Invalid(e) => write!(f, "invalid keystore: {e}"),
            KeySourceError::Unavailable(e) => write!(f, "keystore unavailable: {e}"),
        }
    }
}

impl std::error::Error for KeySourceError {}

/// Where a [`Keystore`]'s keys come from: the keystore file of one node
/// ([`Keystore::open`]), or a store every node of a cluster shares (the
/// server implements it over its database; this crate stays free of one).
pub trait KeySource: Send + Sync + 'static {
    /// Where the keys are, for logs and the admin listing (never a
    /// password).
    fn describe(&self) -> String;
    /// The current version, cheaply: polled often.
    fn version(&self) -> Result<KeysVersion, KeySourceError>;
    /// The keys and the version they are. The version is read first, so
    /// a change racing the read is seen again at the next poll.
    fn load(&self) -> Result<(KeysVersion, KeystoreFile), KeySourceError>;
}

/// A keystore file's metadata: a rename over the file changes the inode,
/// an in-place edit the size or times. Absent: no file.
fn fingerprint(path: &Path) -> KeysVersion {
    let Ok(m) = fs::metadata(path) else {
        return KeysVersion(Vec::new());
    };
    let fields = [
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ];
    KeysVersion(fields.iter().flat_map(|f| f.to_be_bytes()).collect())
}

/// The keystore file of one node.
struct FileSource {
    path: PathBuf,
}

impl KeySource for FileSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn version(&self) -> Result<KeysVersion, KeySourceError> {
        Ok(fingerprint(&self.path))
    }

    fn load(&self) -> Result<(KeysVersion, KeystoreFile), KeySourceError> {
        let version = fingerprint(&self.path);
        // A file that is there but cannot be read or parsed is the
        // operator's to fix: retrying it every poll would only repeat the
        // error.
        let file = KeystoreFile::load(&self.path).map_err(KeySourceError::Invalid)?;
        Ok((version, file))
    }
}

/// The live keystore: the current [`Keys`] snapshot and where it comes
/// from.
pub struct Keystore {
    source: Box<dyn KeySource>,
    keys: RwLock<Arc<Keys>>,
    /// Serialises reloads, and remembers the version last read (so a
    /// broken file is reported once, not at every poll).
    seen: Mutex<Option<KeysVersion>>,
    /// Whether the last poll of the version failed (reported once per
    /// run of failures: a database away for a minute is one warning).
    failing: AtomicBool,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("source", &self.source.describe())
            .field("keys", &self.keys().len())
            .finish()
    }
}

impl Keystore {
    /// Opens the keystore file at `path`, creating an empty one if missing.
    pub fn open(path: &Path) -> Result<Arc<Keystore>, String> {
        if KeystoreFile::create_if_missing(path)? {
            tracing::info!(path = %path.display(), "created an empty service-account keystore");
        }
        Keystore::from_source(Box::new(FileSource {
            path: path.to_path_buf(),
        }))
    }

    /// Opens the keystore `source` holds; fails if it cannot be read now.
    pub fn from_source(source: Box<dyn KeySource>) -> Result<Arc<Keystore>, String> {
        let (version, file) = source.load().map_err(|e| e.to_string())?;
        tracing::info!(source = %source.describe(), keys = file.keys.len(), "service-account keystore loaded");
        Ok(Arc::new(Keystore {
            source,
            keys: RwLock::new(Arc::new(Keys::new(file.keys))),
            seen: Mutex::new(Some(version)),
            failing: AtomicBool::new(false),
        }))
    }

    /// Where the keys come from: the keystore file's path, or the shared
    /// store's description.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// The current keys; cheap (one `Arc` clone).
    pub fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the keys again. On error the previous keys stay in force (a
    /// typo while editing must not lock every pipeline out), the error is
    /// logged and returned.
    pub fn reload(&self) -> Result<usize, KeySourceError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut seen)
    }

    fn reload_locked(&self, seen: &mut Option<KeysVersion>) -> Result<usize, KeySourceError> {
        // Read before loading: a change racing a failed load is seen again.
        let before = self.source.version().ok();
        match self.source.load() {
            Ok((version, file)) => {
                *seen = Some(version);
                let n = file.keys.len();
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(Keys::new(file.keys));
                tracing::info!(source = %self.source.describe(), keys = n, "service-account keystore reloaded");
                Ok(n)
            }
            Err(e) => {
                match &e {
                    // A broken version is not read again until it changes.
                    KeySourceError::Invalid(_) => *seen = before,
                    // An outage proves nothing about the version: keep the
                    // last one read, so the next poll loads what it finds
                    // (a revocation written meanwhile must not be skipped).
                    KeySourceError::Unavailable(_) => {}
                }
                tracing::error!(
                    error = %e,
                    keys = self.keys().len(),
                    "service-account keystore not reloaded; keeping the previous keys"
                );
                Err(e)
            }
        }
    }

    /// Reloads if the version changed since the last read.
    fn reload_if_changed(&self) -> Option<Result<usize, KeySourceError>> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let version = match self.source.version() {
            Ok(v) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(source = %self.source.describe(), "service-account keystore readable again");
                }
                v
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        source = %self.source.describe(),
                        error = %e,
                        "cannot check the service-account keystore for changes; keeping the keys in force"
                    );
                }
                return Some(Err(e));
            }
        };
        if Some(&version) == seen.as_ref() {
            return None;
        }
        Some(self.reload_locked(&mut seen))
    }

    /// Watches the source: checks its version every `poll` and reloads on
    /// a change, and reloads on SIGHUP. Must be called inside a tokio
    /// runtime (the SIGHUP handler is installed before this returns). The
    /// task ends when the keystore is dropped; abort the handle to stop it
    /// sooner.
    pub fn spawn_watcher(self: &Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; keystore reloads on changes only");
                None
            }
        };
        let weak: Weak<Keystore> = Arc::downgrade(self);
        let poll = poll.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let sighup = async {
                    match hup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    got = sighup => {
                        if got.is_none() {
                            hup = None;
                            continue;
                        }
                        tracing::info!("SIGHUP: reloading the service-account keystore");
                        true
                    }
                };
                let Some(store) = weak.upgrade() else { return };
                let done = tokio::task::spawn_blocking(move || {
                    if forced {
                        let _ = store.reload();
                    } else {
                        let _ = store.reload_if_changed();
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(error = %e, "keystore reload task failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::tests::test_key;
    use crate::roles::Role;

    #[test]
    fn reload_keeps_previous_keys_on_an_invalid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let file = KeystoreFile {
            keys: vec![test_key("a", "p", &[Role::Admin])],
        };
        file.save(&path).unwrap();
        let ks = Keystore::open(&path).unwrap();
        assert_eq!(ks.keys().len(), 1);
        let before = ks.keys();
        fs::write(&path, "{\"keys\": [{\"key_id\": \"a\"}]}").unwrap();
        assert!(matches!(ks.reload(), Err(KeySourceError::Invalid(_))));
        assert!(ks.keys().get("a").is_some());
        KeystoreFile::default().save(&path).unwrap();
        assert_eq!(ks.reload().unwrap(), 0);
        assert!(ks.keys().is_empty());
        // A snapshot taken before the reload is unaffected.
        assert!(before.get("a").is_some());
    }

    #[test]
    fn open_creates_a_missing_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/keys.json");
        let ks = Keystore::open(&path).unwrap();
        assert!(ks.keys().is_empty());
        assert_eq!(ks.describe(), path.display().to_string());
    }

    /// A source like a shared database's: a version counter and a
    /// document, and a switch that makes it unreachable.
    #[derive(Default)]
    struct Shared {
        state: Mutex<(u64, KeystoreFile)>,
        down: std::sync::atomic::AtomicBool,
        /// Only loading fails: the version was read, then the
        /// connection dropped.
        load_fails: std::sync::atomic::AtomicBool,
    }

    struct SharedSource(Arc<Shared>);

    impl KeySource for SharedSource {
        fn describe(&self) -> String {
            "shared".into()
        }
        fn version(&self) -> Result<KeysVersion, KeySourceError> {
            if self.0.down.load(Ordering::SeqCst) {
                return Err(KeySourceError::Unavailable("unreachable".into()));
            }
            Ok(KeysVersion::counter(self.0.state.lock().unwrap().0))
        }
        fn load(&self) -> Result<(KeysVersion, KeystoreFile), KeySourceError> {
            if self.0.down.load(Ordering::SeqCst) || self.0.load_fails.load(Ordering::SeqCst) {
                return Err(KeySourceError::Unavailable("unreachable".into()));
            }
            let state = self.0.state.lock().unwrap();
            Ok((KeysVersion::counter(state.0), state.1.clone()))
        }
    }

    /// Waits (polling, no fixed sleep) until `done` holds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A watched shared source: a new version's keys replace the old ones
    /// (a revocation takes effect); while the source cannot be read, the
    /// keys in force stay; once it can, the next change is seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watched_shared_source_revokes_and_survives_an_outage() {
        let shared = Arc::new(Shared::default());
        *shared.state.lock().unwrap() = (
            1,
            KeystoreFile {
                keys: vec![
                    test_key("a", "p", &[Role::Admin]),
                    test_key("b", "q", &[Role::Ingester]),
                ],
            },
        );
        let ks = Keystore::from_source(Box::new(SharedSource(Arc::clone(&shared)))).unwrap();
        assert_eq!(ks.describe(), "shared");
        assert_eq!(ks.keys().len(), 2);
        let watcher = ks.spawn_watcher(Duration::from_millis(10));

        // "b" revoked: version 2 holds "a" only.
        {
            let mut state = shared.state.lock().unwrap();
            state.0 = 2;
            state.1.keys.retain(|k| k.key_id == "a");
        }
        until("b revoked", || ks.keys().get("b").is_none()).await;
        assert!(ks.keys().get("a").is_some());

        // Unreachable: the keys in force stay, whatever is written meanwhile.
        shared.down.store(true, Ordering::SeqCst);
        assert!(ks.reload_if_changed().is_some_and(|r| r.is_err()));
        assert!(ks.reload().is_err());
        assert!(ks.keys().get("a").is_some());
        {
            let mut state = shared.state.lock().unwrap();
            state.0 = 3;
            state.1.keys.clear();
        }
        assert!(ks.keys().get("a").is_some());
        // Reachable again: version 3 (no keys) is in force.
        shared.down.store(false, Ordering::SeqCst);
        until("version 3 read", || ks.keys().is_empty()).await;

        // The version is read, then loading it fails (the connection
        // dropped in between): that version is loaded at a later poll,
        // not taken as seen and skipped.
        shared.load_fails.store(true, Ordering::SeqCst);
        {
            let mut state = shared.state.lock().unwrap();
            state.0 = 4;
            state.1.keys = vec![test_key("c", "r", &[Role::Auditor])];
        }
        assert!(matches!(
            ks.reload_if_changed(),
            Some(Err(KeySourceError::Unavailable(_)))
        ));
        assert!(ks.keys().is_empty());
        shared.load_fails.store(false, Ordering::SeqCst);
        until("version 4 read", || ks.keys().get("c").is_some()).await;
        watcher.abort();
    }
}
