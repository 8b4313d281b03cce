//! The data directory: created private, and held by one process at a time.

use std::path::Path;

use crate::error::{Result, VaultError};

/// Takes an exclusive lock on `<data dir>/LOCK`, released when the process
/// exits however it exits (it is an OS file lock, not a marker file).
pub(crate) fn lock(dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(VaultError::Unavailable(format!(
            "data directory {} is in use by another evault process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Takes a shared lock on `<data dir>/LOCK` without creating or writing
/// anything (for `fsck` on a stopped vault): refused while a server holds
/// it, and a server cannot start while it is held. A data directory
/// without `LOCK` never had a server; there is nothing to lock then.
pub(crate) fn lock_shared(dir: &Path) -> Result<Option<std::fs::File>> {
    let path = dir.join("LOCK");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(VaultError::Unavailable(format!(
            "data directory {} is in use by a running evault server; stop it first, or run \
             fsck online as a task on that server",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Creates `path` (and its parents) with mode 0700 if missing.
pub(crate) fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    Ok(())
}

/// Writes `bytes` to `path` (mode 0600) so that after a crash the file is
/// either as it was or holds all of them: a temporary file beside it,
/// fsync'd, renamed over it, and the directory fsync'd.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes `path` (if there) and fsyncs its directory, so the removal
/// survives a crash.
pub(crate) fn remove_durably(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(())
}
