//! Payload staging and the content-addressed blob directory.
//!
//! An upload is hashed as it streams in. Small payloads stay in memory and
//! go into the store with their record; larger ones spill to a temporary
//! file which is fsync'd and renamed to `blobs/ab/cd/<sha256>` (then the
//! directory is fsync'd) before the record is handed to the sequencer, so
//! an acknowledged record never points at a payload that a crash could lose.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Result, VaultError};
use evault_verify::evidence::hex;

/// The blob directory and its staging area.
#[derive(Clone, Debug)]
pub struct BlobDir {
    root: PathBuf,
    staging: PathBuf,
}

/// A payload fully received and hashed, not yet tied to a record.
#[derive(Debug)]
pub struct StagedPayload {
    /// SHA-256 of the payload bytes.
    pub sha256: [u8; 32],
    /// Payload size in bytes.
    pub size: u64,
    pub(crate) body: StagedBody,
}

#[derive(Debug)]
pub(crate) enum StagedBody {
    Inline(Vec<u8>),
    /// A temporary file; removed on drop unless persisted.
    File(TempPath),
}

/// A temporary file path deleted on drop unless disarmed.
#[derive(Debug)]
pub(crate) struct TempPath(Option<PathBuf>);

impl TempPath {
    fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl BlobDir {
    /// Opens (creating, 0700) `data_dir/blobs` and `data_dir/staging`, and
    /// clears staging files left by a crash.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("blobs");
        let staging = data_dir.join("staging");
        create_private_dir(&root)?;
        create_private_dir(&staging)?;
        for entry in std::fs::read_dir(&staging)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(BlobDir { root, staging })
    }

    /// Where the blob with this digest lives.
    pub fn path_for(&self, sha256: &[u8; 32]) -> PathBuf {
        let h = hex(sha256);
        self.root.join(&h[0..2]).join(&h[2..4]).join(h)
    }

    /// Starts receiving a payload.
    pub fn upload(&self, inline_max: usize, limit: u64) -> Upload {
        Upload {
            staging: self.staging.clone(),
            inline_max,
            limit,
            hasher: Sha256::new(),
            size: 0,
            memory: Vec::new(),
            file: None,
        }
    }

    /// Makes a staged file payload permanent. Idempotent for equal content.
    pub(crate) fn persist(&self, staged: &mut StagedPayload) -> Result<()> {
        let StagedBody::File(tmp) = &mut staged.body else {
            return Ok(());
        };
        let Some(src) = tmp.path().map(Path::to_path_buf) else {
            return Ok(());
        };
        let dest = self.path_for(&staged.sha256);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        create_private_dir(&parent)?;
        if dest.exists() {
            // Same digest, same bytes: keep the existing file.
            return Ok(());
        }
        std::fs::rename(&src, &dest)?;
        tmp.disarm();
        std::fs::File::open(&parent)?.sync_all()?;
        Ok(())
    }
}

impl StagedPayload {
    /// Moves the payload to `dest` (a new file, mode 0600, fsync'd): a
    /// task's input file. `dest` must be on the data directory's file
    /// system (the staged file is renamed).
    pub(crate) fn write_to(mut self, dest: &Path) -> Result<()> {
        match &mut self.body {
            StagedBody::File(tmp) => {
                if let Some(src) = tmp.path() {
                    std::fs::rename(src, dest)?;
                    tmp.disarm();
                }
            }
            StagedBody::Inline(bytes) => {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dest)?;
                f.write_all(bytes)?;
                f.sync_all()?;
            }
        }
        if let Some(parent) = dest.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

/// A payload being received.
pub struct Upload {
    staging: PathBuf,
    inline_max: usize,
    limit: u64,
    hasher: Sha256,
    size: u64,
    memory: Vec<u8>,
    file: Option<(tokio::fs::File, TempPath)>,
}

impl Upload {
    /// Appends a chunk. Fails with [`VaultError::TooLarge`] past the limit;
    /// whatever was staged is then discarded.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            self.file = None;
            self.memory = Vec::new();
            return Err(VaultError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        if let Some((file, _)) = &mut self.file {
            file.write_all(chunk).await?;
            return Ok(());
        }
        if self.memory.len() + chunk.len() <= self.inline_max {
            self.memory.extend_from_slice(chunk);
            return Ok(());
        }
        let name = format!("upload-{}", uuid::Uuid::now_v7());
        let path = self.staging.join(name);
        let std_file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let tmp = TempPath(Some(path));
        let mut file = tokio::fs::File::from_std(std_file);
        file.write_all(&std::mem::take(&mut self.memory)).await?;
        file.write_all(chunk).await?;
        self.file = Some((file, tmp));
        Ok(())
    }

    /// Finishes the upload: the payload is hashed and, if on disk, fsync'd.
    pub async fn finish(self) -> Result<StagedPayload> {
        let sha256: [u8; 32] = self.hasher.finalize().into();
        let body = match self.file {
            Some((mut file, tmp)) => {
                file.flush().await?;
                file.sync_all().await?;
                StagedBody::File(tmp)
            }
            None => StagedBody::Inline(self.memory),
        };
        Ok(StagedPayload {
            sha256,
            size: self.size,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_payloads_stay_in_memory_large_ones_spill_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();

        let mut up = blobs.upload(8, 100);
        up.write(b"tiny").await.unwrap();
        let staged = up.finish().await.unwrap();
        assert!(matches!(staged.body, StagedBody::Inline(ref b) if b == b"tiny"));
        assert_eq!(staged.sha256, <[u8; 32]>::from(Sha256::digest(b"tiny")));

        let mut up = blobs.upload(8, 100);
        up.write(b"0123456").await.unwrap();
        up.write(b"789abcdef").await.unwrap();
        let mut staged = up.finish().await.unwrap();
        assert_eq!(staged.size, 16);
        blobs.persist(&mut staged).unwrap();
        let dest = blobs.path_for(&staged.sha256);
        assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789abcdef");
        drop(staged);
        assert!(
            dest.exists(),
            "persisted blob must survive the staged handle"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("staging"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn over_the_limit_is_rejected_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let mut up = blobs.upload(4, 10);
        up.write(b"123456").await.unwrap();
        assert!(matches!(
            up.write(b"78901").await,
            Err(VaultError::TooLarge { limit: 10 })
        ));
        drop(up);
        assert_eq!(
            std::fs::read_dir(dir.path().join("staging"))
                .unwrap()
                .count(),
            0
        );
    }
}
