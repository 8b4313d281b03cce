//! The database files are private: mode 0600 for the database and its
//! `-wal` and `-shm` companions, 0700 for a parent directory the store
//! creates.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// Creates the database file (and a missing parent directory) if needed,
/// and sets its mode to 0600.
pub(super) fn create_private_file(path: &Path) -> Result<()> {
    let io = |what: &str, e: std::io::Error| {
        StoreError::Backend(Box::new(std::io::Error::new(
            e.kind(),
            format!("{what} {}: {e}", path.display()),
        )))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io("creating the directory of", e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("creating", e))?;
    // The mode above is filtered by the umask and ignored for an existing
    // file; set it explicitly.
    fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(|e| io("restricting", e))
}

/// Sets mode 0600 on the `-wal` and `-shm` files where they exist.
pub(super) fn restrict_companions(path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let mut name: OsString = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = PathBuf::from(name);
        match fs::set_permissions(&companion, Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Backend(Box::new(std::io::Error::new(
                    e.kind(),
                    format!("restricting {}: {e}", companion.display()),
                ))));
            }
        }
    }
    Ok(())
}
