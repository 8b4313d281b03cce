//! Verify on read: what the vault serves from disk is checked against what
//! it committed to, where that is cheap. Payloads against their digest
//! (blobs while they stream), records against their leaf, checkpoints
//! against the log's key and tree, entry bundles and hash tiles against the
//! tile or node above them. A failure is logged, counted in
//! `evault_integrity_failures_total{what}` and never served as if fine: the
//! caller gets [`VaultError::Corrupt`].

use std::path::{Path, PathBuf};

use evault_merkle::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, TileReader, TiledHashReader};
use evault_merkle::{CompactRange, HASH_SIZE, Hash, NodeId, leaf_hash};
use evault_note::{Checkpoint, Verifiers};
use evault_store::{EvidenceRow, LogId, Store, StoredCheckpoint};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::{Result, VaultError};
use crate::records::evidence_from_row;

/// Metric counting every integrity failure detected, by `what`.
pub const INTEGRITY_FAILURES: &str = "evault_integrity_failures_total";

/// Logs and counts an integrity failure of `what` and returns its error.
/// `detail` names the entry (record id, leaf index, tile) for the operator;
/// clients only learn `what`.
pub(crate) fn failure(what: &'static str, detail: String) -> VaultError {
    tracing::error!(
        what,
        "integrity check failed: {detail}; run `evault fsck` for a full check"
    );
    metrics::counter!(INTEGRITY_FAILURES, "what" => what).increment(1);
    VaultError::Corrupt { what, detail }
}

/// An inline payload against the record's digest and size.
pub(crate) fn check_inline(row: &EvidenceRow, bytes: &[u8]) -> Result<()> {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    if digest != row.sha256 || bytes.len() as u64 != row.size {
        return Err(failure(
            "payload",
            format!(
                "inline payload of evidence {} (leaf {}) does not match its recorded sha256 \
                 and size",
                row.id, row.leaf_index
            ),
        ));
    }
    Ok(())
}

/// A record's stored columns against its stored leaf data: the columns are
/// what is served, the leaf data is what the tree commits to, so a change to
/// either shows. Costs one canonical JSON encoding.
pub(crate) fn check_record(row: &EvidenceRow) -> Result<()> {
    let matches = evidence_from_row(row)
        .leaf_data()
        .is_ok_and(|leaf| leaf == row.leaf_data);
    if !matches {
        return Err(failure(
            "record",
            format!(
                "evidence {} (leaf {}): its stored fields differ from its leaf data",
                row.id, row.leaf_index
            ),
        ));
    }
    Ok(())
}

/// Reads a blob file in chunks, hashing as it goes. The last chunk is held
/// back until the end of the file is reached and the digest checked, so a
/// reader that trusts `Content-Length` never receives the complete wrong
/// payload: on a mismatch the final read is an error instead.
pub struct BlobReader {
    file: tokio::fs::File,
    path: PathBuf,
    id: String,
    expected: [u8; 32],
    len: u64,
    hasher: Sha256,
    read: u64,
    held: Option<Vec<u8>>,
    done: bool,
    verify: bool,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// Bytes read from a blob at a time.
const BLOB_CHUNK: usize = 64 * 1024;

impl BlobReader {
    /// Opens the blob of record `row`; a file whose length is not the
    /// recorded size is refused before anything is sent.
    pub(crate) async fn open(path: PathBuf, row: &EvidenceRow) -> Result<BlobReader> {
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::NotFound(format!(
                    "payload of evidence {}",
                    row.id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        if len != row.size {
            return Err(failure(
                "payload",
                format!(
                    "blob of evidence {} is {len} bytes, the record says {}",
                    row.id, row.size
                ),
            ));
        }
        Ok(BlobReader {
            file,
            path,
            id: row.id.clone(),
            expected: row.sha256,
            len,
            hasher: Sha256::new(),
            read: 0,
            held: None,
            done: false,
            verify: true,
        })
    }

    /// The payload's length in bytes (the recorded size).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The blob file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves the bytes without checking the digest. Only for measuring
    /// what the check costs (`evault-bench`); never used to serve.
    #[doc(hidden)]
    pub fn unverified(mut self) -> Self {
        self.verify = false;
        self
    }

    /// The next chunk, `None` at the end. Fails with
    /// [`std::io::ErrorKind::InvalidData`] (logged and counted as an
    /// integrity failure) instead of yielding the last chunk when the bytes
    /// do not match the record's digest.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if self.done {
                return Ok(self.held.take());
            }
            let mut buf = vec![0u8; BLOB_CHUNK];
            let n = self.file.read(&mut buf).await?;
            if n == 0 {
                self.done = true;
                self.finish()?;
                continue;
            }
            buf.truncate(n);
            self.read += n as u64;
            if self.verify {
                self.hasher.update(&buf);
            }
            if let Some(prev) = self.held.replace(buf) {
                return Ok(Some(prev));
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if !self.verify {
            return Ok(());
        }
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if digest != self.expected || self.read != self.len {
            self.held = None;
            let e = failure(
                "payload",
                format!(
                    "blob of evidence {} does not match its recorded sha256; transfer aborted",
                    self.id
                ),
            );
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
        Ok(())
    }
}

/// A stored checkpoint of `log` against the log's key and origin, and the
/// size it is stored under. Returns its parsed body.
pub(crate) fn open_stored(
    log: LogId,
    cp: &StoredCheckpoint,
    verifiers: &Verifiers,
    origin: &str,
) -> Result<Checkpoint> {
    let what = checkpoint_what(log);
    let (body, _) =
        evault_verify::open_checkpoint(&cp.note, verifiers, Some(origin)).map_err(|e| {
            failure(
                what,
                format!("stored {log} checkpoint of size {}: {e}", cp.size),
            )
        })?;
    if body.size != cp.size {
        return Err(failure(
            what,
            format!(
                "stored {log} checkpoint under size {} is signed for size {}",
                cp.size, body.size
            ),
        ));
    }
    Ok(body)
}

/// A checkpoint body's root against the root the stored tree has at its
/// size (a few tile reads along the right edge of that size).
pub(crate) fn check_root<R: TileReader>(
    log: LogId,
    body: &Checkpoint,
    tiles: R,
    what: &'static str,
) -> Result<()>
where
    R::Error: std::fmt::Display,
{
    let reader = TiledHashReader {
        tiles,
        tree_size: body.size,
    };
    let root = evault_merkle::root(&reader, body.size)
        .map_err(|e| failure(what, format!("{log} tree at size {}: {e}", body.size)))?;
    if root != body.root_hash {
        return Err(failure(
            what,
            format!(
                "the stored {log} tree at size {} does not have the root its signed checkpoint \
                 names",
                body.size
            ),
        ));
    }
    Ok(())
}

fn checkpoint_what(log: LogId) -> &'static str {
    match log {
        LogId::Evidence => "checkpoint",
        LogId::Audit => "audit_checkpoint",
    }
}

/// The RFC 6962 hash of the perfect subtree whose row hashes are `hashes`
/// (a power of two of them).
pub(crate) fn subtree_hash(hashes: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for h in hashes {
        range.append(*h, |_, _| {});
    }
    range.root()
}

pub(crate) fn split_hashes(data: &[u8]) -> Vec<Hash> {
    data.chunks_exact(HASH_SIZE)
        .map(|c| {
            let mut h = [0u8; HASH_SIZE];
            h.copy_from_slice(c);
            h
        })
        .collect()
}

/// Entry bundle leaves against the level-0 hash tile of the same index:
/// `width` leaf hashes, recomputed.
pub(crate) fn check_entries<R: TileReader>(
    log: LogId,
    index: u64,
    entries: &[Vec<u8>],
    tiles: &R,
) -> Result<()>
where
    R::Error: std::fmt::Display,
{
    let tile = TileId {
        level: 0,
        index,
        width: entries.len() as u16,
    };
    let data = tiles
        .read_tiles(&[tile])
        .map_err(|e| failure("entries", format!("{log} {}: {e}", tile.path())))?
        .pop()
        .unwrap_or_default();
    let stored = split_hashes(&data);
    for (i, (leaf, hash)) in entries.iter().zip(&stored).enumerate() {
        if leaf_hash(leaf) != *hash {
            return Err(failure(
                "entries",
                format!(
                    "{log} leaf {} does not match its hash in {}",
                    index * TILE_WIDTH as u64 + i as u64,
                    tile.path()
                ),
            ));
        }
    }
    if stored.len() != entries.len() {
        return Err(failure(
            "entries",
            format!("{log} {} is shorter than its entry bundle", tile.path()),
        ));
    }
    Ok(())
}

/// A hash tile about to be served, at tree size `size` with root `root`
/// (the sequencer's in-memory head, which no change on disk can reach). A
/// full tile is folded and compared with its node in the tile above; a
/// partial one is on the right edge, so the tree's root is recomputed from
/// the stored tiles and compared with `root` (and the served bytes must be
/// a prefix of the tile that computation read).
pub(crate) fn check_hash_tile<R: TileReader>(
    log: LogId,
    tile: TileId,
    data: &[u8],
    tiles: R,
    size: u64,
    root: &Hash,
) -> Result<()>
where
    R::Error: std::fmt::Display,
{
    let bad = |why: String| failure("tile", format!("{log} {}: {why}", tile.path()));
    let reader = TiledHashReader {
        tiles,
        tree_size: size,
    };
    // The tile as wide as the tree makes it now: what is served must be a
    // prefix of it, and it is what gets checked.
    let current = TileId::containing(tile.level, tile.index * TILE_WIDTH as u64, size)
        .ok_or_else(|| bad("beyond the tree".into()))?;
    let stored = reader
        .tiles
        .read_tiles(&[current])
        .map_err(|e| bad(e.to_string()))?
        .pop()
        .unwrap_or_default();
    if !stored.starts_with(data) {
        return Err(bad("changed while it was read".into()));
    }
    if current.width == TILE_WIDTH {
        let parent = NodeId::new((tile.level + 1) * TILE_HEIGHT, tile.index);
        let above = evault_merkle::HashReader::read_hashes(&reader, &[parent])
            .map_err(|e| bad(e.to_string()))?;
        if above.first() != Some(&subtree_hash(&split_hashes(&stored))) {
            return Err(bad("does not hash to its node in the tile above".into()));
        }
        return Ok(());
    }
    let computed = evault_merkle::root(&reader, size).map_err(|e| bad(e.to_string()))?;
    if computed != *root {
        return Err(bad(format!(
            "the tree's root at size {size} recomputed from the stored tiles is not the \
             sequencer's"
        )));
    }
    Ok(())
}

/// The start-up sample: `count` leaf indexes below `size`, spread over the
/// tree with a random offset (all of them when `count >= size`).
pub(crate) fn sample_indexes(size: u64, count: u64) -> Vec<u64> {
    if count == 0 || size == 0 {
        return Vec::new();
    }
    if count >= size {
        return (0..size).collect();
    }
    // Random enough to not be predictable by whoever changed the disk:
    // the seed is a fresh UUIDv4-quality value from the v7 generator's
    // random bits.
    let seed = u64::from_le_bytes(
        uuid::Uuid::now_v7().as_bytes()[8..16]
            .try_into()
            .unwrap_or_default(),
    );
    let mut state = seed | 1;
    let mut out: Vec<u64> = (0..count)
        .map(|_| {
            // xorshift64*: a sample, not cryptography.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % size
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Checks the sampled leaves of `log`: each stored leaf against its hash in
/// the level-0 tile, each sampled record's fields against its leaf, and
/// each tile on the way up against its node in the tile above (the tiles
/// that the root check does not read). Fails with the first difference.
pub(crate) fn check_sample(
    store: &dyn Store,
    log: LogId,
    size: u64,
    indexes: &[u64],
) -> Result<()> {
    let tiles = crate::proofs::StoreTiles::uncached(store, log);
    let reader = TiledHashReader {
        tiles: crate::proofs::StoreTiles::uncached(store, log),
        tree_size: size,
    };
    let mut checked = std::collections::HashSet::new();
    for &i in indexes {
        let leaf = match log {
            LogId::Evidence => {
                let row = store.record_by_index(i)?.ok_or_else(|| {
                    failure("record", format!("{log} leaf {i} is missing (size {size})"))
                })?;
                check_record(&row)?;
                row.leaf_data
            }
            LogId::Audit => {
                let row = store
                    .audit_by_index(i)?
                    .ok_or_else(|| failure("audit_event", format!("{log} leaf {i} is missing")))?;
                crate::audit::from_row(&row)?;
                row.leaf_data
            }
        };
        let in_tile = evault_merkle::HashReader::read_hashes(&reader, &[NodeId::new(0, i)])
            .map_err(|e| failure("tile", format!("{log} leaf {i}: {e}")))?;
        if in_tile.first() != Some(&leaf_hash(&leaf)) {
            return Err(failure(
                "entries",
                format!("{log} leaf {i} does not match its hash in the level-0 tile"),
            ));
        }
        // Each full tile on the way up, once, against the tile above it.
        let mut row_index = i;
        for level in 0..=evault_merkle::tiles::MAX_TILE_LEVEL {
            let Some(tile) = TileId::containing(level, row_index, size) else {
                break;
            };
            if tile.width != TILE_WIDTH || !checked.insert((level, tile.index)) {
                break;
            }
            let data = tiles
                .read_tiles(&[tile])
                .map_err(|e| failure("tile", format!("{log} {}: {e}", tile.path())))?
                .pop()
                .unwrap_or_default();
            let parent = NodeId::new((level + 1) * TILE_HEIGHT, tile.index);
            let above = evault_merkle::HashReader::read_hashes(&reader, &[parent])
                .map_err(|e| failure("tile", format!("{log} {}: {e}", tile.path())))?;
            if above.first() != Some(&subtree_hash(&split_hashes(&data))) {
                return Err(failure(
                    "tile",
                    format!(
                        "{log} {} does not hash to its node in the tile above",
                        tile.path()
                    ),
                ));
            }
            row_index = tile.index;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_covers_all_when_asked_for_more_than_the_tree() {
        assert_eq!(sample_indexes(5, 64), vec![0, 1, 2, 3, 4]);
        assert!(sample_indexes(5, 0).is_empty());
        assert!(sample_indexes(0, 5).is_empty());
        let s = sample_indexes(1_000_000, 64);
        assert!(!s.is_empty() && s.len() <= 64);
        assert!(s.iter().all(|&i| i < 1_000_000));
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn subtree_hash_of_two_is_their_node_hash() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        assert_eq!(subtree_hash(&[a, b]), evault_merkle::node_hash(&a, &b));
    }
}
