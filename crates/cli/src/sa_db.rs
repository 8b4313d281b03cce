//! The service-account keystore in a PostgreSQL store (its `keystore`
//! table, migration 7): what `evault sa --store URL` edits and every
//! `evault serve --store URL` node watches, so that a key created or
//! revoked anywhere holds on every node. The document is a keystore
//! file's JSON, checked by `KeystoreFile` on every read and write.

use std::path::Path;
use std::time::Duration;

use evault_auth::{KeySource, KeySourceError, KeysVersion, KeystoreFile};
use evault_store::postgres::{KeystoreVersion, PgOptions, PgStore};

/// The keystore table of one database.
pub struct DbKeystore {
    store: PgStore,
}

/// The document of a stored version, checked (an empty keystore when
/// there is none yet).
fn parse(latest: Option<&KeystoreVersion>) -> Result<KeystoreFile, String> {
    match latest {
        None => Ok(KeystoreFile::default()),
        Some(v) => KeystoreFile::parse(&v.document)
            .map_err(|e| format!("keystore version {} in the database: {e}", v.version)),
    }
}

impl DbKeystore {
    /// Connects to the store at `url` (its schema must be current), with
    /// one connection and `options`' deadlines.
    pub fn open(url: &str, options: &PgOptions) -> Result<DbKeystore, String> {
        let options = PgOptions {
            pool_size: 1,
            // A poll that hangs only delays the next one; a CLI edit
            // should not wait half a minute.
            call_timeout: options.call_timeout.min(Duration::from_secs(10)),
            ..options.clone()
        };
        let store = PgStore::open_with(url, options).map_err(|e| e.to_string())?;
        Ok(DbKeystore { store })
    }

    /// How the keystore is shown: the database (password redacted).
    pub fn shown(&self) -> String {
        format!("{} (table keystore)", self.store.url())
    }

    /// The keys in force and their version (0: none written yet).
    pub fn load(&self) -> Result<(u64, KeystoreFile), String> {
        self.read().map_err(|e| e.to_string())
    }

    /// [`DbKeystore::load`], telling a database that cannot be reached
    /// (the next poll retries) from a document that does not parse.
    fn read(&self) -> Result<(u64, KeystoreFile), KeySourceError> {
        let latest = self
            .store
            .keystore_latest()
            .map_err(|e| KeySourceError::Unavailable(e.to_string()))?;
        let file = parse(latest.as_ref()).map_err(KeySourceError::Invalid)?;
        Ok((latest.as_ref().map_or(0, |v| v.version), file))
    }

    /// Applies `change` to the keys in force and writes the result as the
    /// next version, with no other writer in between. Returns the new
    /// version and what `change` returned.
    pub fn edit<T>(
        &self,
        change: impl FnOnce(&mut KeystoreFile) -> Result<T, String>,
    ) -> Result<(u64, T), String> {
        self.store
            .keystore_write(|latest| {
                let mut file = parse(latest)?;
                let out = change(&mut file)?;
                Ok((Some(file.to_json_with_secrets()?), out))
            })
            .map_err(|e| e.to_string())?
    }

    /// Copies the keys of the keystore file at `path` in as version 1 if
    /// the database has no keystore yet and the file has keys: how the
    /// first node of a cluster brings the keys it had. Returns how many
    /// keys were copied (0: nothing to do).
    pub fn import_if_empty(&self, path: &Path) -> Result<usize, String> {
        // Every node runs this at start: once the database has keys, the
        // file is not even read (a stale or broken copy must not matter).
        if !path.exists() || self.store.keystore_version().map_err(|e| e.to_string())? > 0 {
            return Ok(0);
        }
        let file = KeystoreFile::load(path)?;
        if file.keys.is_empty() {
            return Ok(0);
        }
        let n = file.keys.len();
        let text = file.to_json_with_secrets()?;
        let (_, copied) = self
            .store
            .keystore_write(|latest| {
                Ok(match latest {
                    Some(_) => (None, 0),
                    None => (Some(text), n),
                })
            })
            .map_err(|e| e.to_string())??;
        Ok(copied)
    }
}

impl KeySource for DbKeystore {
    fn describe(&self) -> String {
        self.shown()
    }

    fn version(&self) -> Result<KeysVersion, KeySourceError> {
        self.store
            .keystore_version()
            .map(KeysVersion::counter)
            .map_err(|e| KeySourceError::Unavailable(e.to_string()))
    }

    fn load(&self) -> Result<(KeysVersion, KeystoreFile), KeySourceError> {
        let (version, file) = self.read()?;
        Ok((KeysVersion::counter(version), file))
    }
}
