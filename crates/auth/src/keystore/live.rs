//! The live keystore the server verifies tokens against: the current
//! [`Keys`] snapshot, reloaded when the file changes (poll) or on SIGHUP so
//! that revoking a key takes effect without a restart.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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

/// What identifies a version of the file without reading it; a rename over
/// the file changes the inode, an in-place edit the size or times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = fs::metadata(path).ok()?;
    Some(Fingerprint {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// The live keystore: the current [`Keys`] snapshot and the file it
/// comes from.
pub struct Keystore {
    path: PathBuf,
    keys: RwLock<Arc<Keys>>,
    /// Serialises reloads, and remembers the file version last read (so a
    /// broken file is reported once, not at every poll).
    seen: Mutex<Option<Fingerprint>>,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("keys", &self.keys().len())
            .finish()
    }
}

impl Keystore {
    /// Opens the keystore at `path`, creating an empty one if missing.
    pub fn open(path: &Path) -> Result<Arc<Keystore>, String> {
        if KeystoreFile::create_if_missing(path)? {
            tracing::info!(path = %path.display(), "created an empty service-account keystore");
        }
        let seen = fingerprint(path);
        let file = KeystoreFile::load(path)?;
        tracing::info!(path = %path.display(), keys = file.keys.len(), "service-account keystore loaded");
        Ok(Arc::new(Keystore {
            path: path.to_path_buf(),
            keys: RwLock::new(Arc::new(Keys::new(file.keys))),
            seen: Mutex::new(seen),
        }))
    }

    /// The keystore file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current keys; cheap (one `Arc` clone).
    pub fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the file. On error the previous keys stay in force (a typo
    /// while editing must not lock every pipeline out), the error is logged
    /// and returned.
    pub fn reload(&self) -> Result<usize, String> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut seen)
    }

    fn reload_locked(&self, seen: &mut Option<Fingerprint>) -> Result<usize, String> {
        // Fingerprint before reading: a change racing the read is seen
        // again at the next poll.
        *seen = fingerprint(&self.path);
        match KeystoreFile::load(&self.path) {
            Ok(file) => {
                let n = file.keys.len();
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(Keys::new(file.keys));
                tracing::info!(path = %self.path.display(), keys = n, "service-account keystore reloaded");
                Ok(n)
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    keys = self.keys().len(),
                    "service-account keystore not reloaded; keeping the previous keys"
                );
                Err(e)
            }
        }
    }

    /// Reloads if the file's metadata changed since the last read.
    fn reload_if_changed(&self) -> Option<Result<usize, String>> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if fingerprint(&self.path) == *seen {
            return None;
        }
        Some(self.reload_locked(&mut seen))
    }

    /// Watches the file: checks its metadata every `poll` and reloads on a
    /// change, and reloads on SIGHUP. Must be called inside a tokio runtime
    /// (the SIGHUP handler is installed before this returns). The task ends
    /// when the keystore is dropped; abort the handle to stop it sooner.
    pub fn spawn_watcher(self: &Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; keystore reloads on file changes only");
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
        assert!(ks.reload().is_err());
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
        assert_eq!(ks.path(), path);
    }
}
