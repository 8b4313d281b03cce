//! The key-file signer: a log's Ed25519 key generated on first start into
//! the data directory (mode 0600) in the `PRIVATE+KEY+…` text format, or
//! loaded from a file. The only place the vault names a concrete signer;
//! everything else holds a `dyn Signer`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use evault_note::{
    Ed25519Signer, KeyError, MlDsaCosigner, Signer, SignerKeyText, VerifierKeyText,
    generate_ed25519, generate_mldsa44,
};

use crate::error::{Result, VaultError};

/// Loads the signer key at `path`, or creates one named `name` if the file
/// does not exist and `create` is set.
pub fn load_or_create(path: &Path, name: &str, create: bool) -> Result<Arc<dyn Signer>> {
    load_or_create_ed25519(path, name, create).map(|s| Arc::new(s) as Arc<dyn Signer>)
}

/// Loads the ML-DSA-44 key at `path` (C2SP signature type 0x06), or
/// creates one named `name` if the file does not exist and `create` is set.
/// It signs the log's own checkpoints, so with timestamp 0 (C2SP
/// tlog-cosignature: a log's signature makes no statement about time).
pub fn load_or_create_mldsa44(path: &Path, name: &str, create: bool) -> Result<Arc<dyn Signer>> {
    let text = key_text(
        path,
        create,
        "ML-DSA-44 log key",
        || generate_mldsa44(name),
        || {
            format!(
                "ML-DSA-44 key {} is missing but the log already has checkpoints; restore it, or \
             make one for this log with `evault keys generate {name} --type ml-dsa-44 --out {}`",
                path.display(),
                path.display()
            )
        },
    )?;
    let signer = MlDsaCosigner::from_signer_key(text.expose_secret())
        .map_err(|source| key_error(path, source))?
        .with_fixed_timestamp(0);
    Ok(Arc::new(signer))
}

fn key_error(path: &Path, source: KeyError) -> VaultError {
    VaultError::Key {
        path: path.to_path_buf(),
        source,
    }
}

/// The key text at `path`; if there is no such file, a new key from
/// `generate` written there when `create` is set, else `missing()` as an
/// error (a log with history must not get a new key behind its back).
fn key_text(
    path: &Path,
    create: bool,
    what: &str,
    generate: impl FnOnce() -> std::result::Result<(SignerKeyText, VerifierKeyText), KeyError>,
    missing: impl FnOnce() -> String,
) -> Result<SignerKeyText> {
    match read_key(path)? {
        Some(text) => Ok(text),
        None if create => {
            let (skey, _) = generate().map_err(|source| key_error(path, source))?;
            write_new_key(path, &skey)?;
            tracing::info!("generated a new {what} at {}", path.display());
            Ok(skey)
        }
        None => Err(VaultError::Inconsistent(missing())),
    }
}

/// The key text at `path`, or `None` if there is no such file. A key others
/// can read is used, with a warning.
fn read_key(path: &Path) -> Result<Option<SignerKeyText>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable(path)?;
            Ok(Some(SignerKeyText::from(text.trim().to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn warn_if_readable(path: &Path) -> Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "log key {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Writes a new key file, 0600, durably (file and directory synced).
fn write_new_key(path: &Path, skey: &SignerKeyText) -> Result<()> {
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
    Ok(())
}

fn load_or_create_ed25519(path: &Path, name: &str, create: bool) -> Result<Ed25519Signer> {
    let text = key_text(
        path,
        create,
        "log key",
        || generate_ed25519(name),
        || {
            format!(
                "log key {} is missing but the log already has checkpoints; restore the key file \
             (a new key would make every earlier checkpoint unverifiable)",
                path.display()
            )
        },
    )?;
    Ed25519Signer::from_signer_key(text.expose_secret()).map_err(|source| key_error(path, source))
}

/// Generates a new Ed25519 key named `name` into a new file of `dir`
/// (`log-<key ID>.key`, or `audit-…` for the audit log; 0600, synced), for
/// a key rotation. Returns the signer and the file's name.
pub fn create_ed25519_in(
    dir: &Path,
    log: evault_store::LogId,
    name: &str,
) -> Result<(Arc<dyn Signer>, std::path::PathBuf)> {
    let prefix = match log {
        evault_store::LogId::Evidence => "log",
        evault_store::LogId::Audit => "audit",
    };
    let (skey, _) = generate_ed25519(name).map_err(|source| key_error(dir, source))?;
    let signer = Ed25519Signer::from_signer_key(skey.expose_secret())
        .map_err(|source| key_error(dir, source))?;
    let file = std::path::PathBuf::from(format!("{prefix}-{:08x}.key", signer.key_id()));
    let path = dir.join(&file);
    write_new_key(&path, &skey)?;
    tracing::info!("generated a new {log} log key at {}", path.display());
    Ok((Arc::new(signer), file))
}
