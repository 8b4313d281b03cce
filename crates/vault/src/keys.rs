//! The key-file signer: a log's Ed25519 key generated on first start into
//! the data directory (mode 0600) in the `PRIVATE+KEY+…` text format, or
//! loaded from a file. The only place the vault names a concrete signer;
//! everything else holds a `dyn Signer`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use evault_note::{Ed25519Signer, Signer, SignerKeyText, generate_ed25519};

use crate::error::{Result, VaultError};

/// Loads the signer key at `path`, or creates one named `name` if the file
/// does not exist and `create` is set.
pub fn load_or_create(path: &Path, name: &str, create: bool) -> Result<Arc<dyn Signer>> {
    load_or_create_ed25519(path, name, create).map(|s| Arc::new(s) as Arc<dyn Signer>)
}

fn load_or_create_ed25519(path: &Path, name: &str, create: bool) -> Result<Ed25519Signer> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "log key {} is readable by group or others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
            let text = SignerKeyText::from(text.trim().to_string());
            Ed25519Signer::from_signer_key(text.expose_secret()).map_err(|source| VaultError::Key {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let (skey, _vkey) = generate_ed25519(name).map_err(|source| VaultError::Key {
                path: path.to_path_buf(),
                source,
            })?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(skey.expose_secret().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            tracing::info!("generated a new log key at {}", path.display());
            Ed25519Signer::from_signer_key(skey.expose_secret()).map_err(|source| VaultError::Key {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(VaultError::Inconsistent(format!(
                "log key {} is missing but the log already has checkpoints; restore the key \
             file (a new key would make every earlier checkpoint unverifiable)",
                path.display()
            )))
        }
        Err(e) => Err(e.into()),
    }
}
