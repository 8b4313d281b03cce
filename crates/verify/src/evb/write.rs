//! Writing a bundle: pure, inputs → bytes, the same bytes for the same
//! inputs (fixed member order, mtime 0, uid/gid 0, mode 0644, no user or
//! group names, one zstd level, no threads).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::Hash;
use evault_note::Checkpoint;
use sha2::{Digest, Sha256};

use super::{
    BUNDLE_FORMAT, CHECKPOINT, CONSISTENCY, ERASURES, ErasureLine, MANIFEST, Manifest,
    MemberDigest, NEWER_CHECKPOINT, PROOFS, ProofLine, RECORDS, Selection, ZSTD_LEVEL,
    is_lower_hex64, note_text, payload_member,
};
use crate::consistency::ConsistencyProof;
use crate::evidence::{Evidence, hex};

/// What a bundle is made of.
#[derive(Clone, Debug)]
pub struct BundleContents {
    /// The signed checkpoint note every proof is against, verbatim.
    pub checkpoint: String,
    /// What selected the records; `payloads` says whether the payloads go in.
    pub selection: Selection,
    /// The records with their proofs, in ascending leaf index order.
    pub entries: Vec<BundleEntry>,
    /// The records among `entries` whose payloads were erased, in
    /// ascending leaf order: their payloads are left out (only meaningful
    /// when the selection has payloads; must be empty otherwise).
    pub erasures: Vec<ErasureEntry>,
    /// A newer checkpoint and the consistency proof to it, if any.
    pub newer: Option<NewerCheckpoint>,
}

/// A record and its inclusion proof against the bundle's checkpoint.
#[derive(Clone, Debug)]
pub struct BundleEntry {
    /// The record, as the API returns it.
    pub record: Evidence,
    /// RFC 6962 audit path, leaf's sibling first.
    pub inclusion_proof: Vec<Hash>,
}

/// An erased payload: the record at `erased_leaf` (one of the bundle's
/// entries) and the tombstone that erased it, with the tombstone's
/// inclusion proof against the bundle's checkpoint.
#[derive(Clone, Debug)]
pub struct ErasureEntry {
    /// The erased record's leaf index.
    pub erased_leaf: u64,
    /// The tombstone record, as the API returns it.
    pub tombstone: Evidence,
    /// RFC 6962 audit path of the tombstone's leaf, leaf's sibling first.
    pub inclusion_proof: Vec<Hash>,
}

/// A newer checkpoint of the same log and the consistency proof from the
/// bundle's checkpoint to it.
#[derive(Clone, Debug)]
pub struct NewerCheckpoint {
    /// The newer signed checkpoint note, verbatim.
    pub checkpoint: String,
    /// Consistency proof from the bundle's checkpoint's size to its size.
    pub proof: ConsistencyProof,
}

/// Where payload bytes come from while a bundle is written.
pub trait PayloadSource {
    /// The payload of `record` (its `size` bytes, whose SHA-256 is its
    /// `sha256`; the writer checks both).
    fn open(&mut self, record: &Evidence) -> io::Result<Box<dyn Read + '_>>;
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleWritten {
    /// Records in the bundle.
    pub records: u64,
    /// Payload members in the bundle.
    pub payloads: u64,
    /// Erased records (lines of `erasures.jsonl`).
    pub erasures: u64,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Compressed bytes written.
    pub bytes: u64,
    /// SHA-256 of the manifest, lower-case hex: names the bundle's content.
    pub manifest_sha256: String,
}

/// Why a bundle could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// The inputs do not make a valid bundle (unordered records, a record
    /// beyond the checkpoint, a malformed checkpoint, …).
    Invalid(String),
    /// A payload's bytes are not what its record says.
    Payload {
        /// The record whose payload it is.
        id: String,
        /// What differs.
        detail: String,
    },
    /// Writing (or reading a payload) failed.
    Io(io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Invalid(m) => write!(f, "cannot write the bundle: {m}"),
            WriteError::Payload { id, detail } => write!(f, "payload of record {id}: {detail}"),
            WriteError::Io(e) => write!(f, "writing the bundle: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Counts the bytes that reach the output.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn digest(name: &str, bytes: &[u8]) -> MemberDigest {
    MemberDigest {
        name: name.to_string(),
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(bytes)),
    }
}

/// The ustar header every member gets: only the name and size vary.
fn header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Reads exactly `size` bytes of a payload, hashing them; fewer is an error
/// (the tar header has already promised `size`).
struct Exact<'a> {
    inner: Box<dyn Read + 'a>,
    left: u64,
    hasher: Sha256,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the payload ended {} bytes early", self.left),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Never writes a bundle a reader with the default limits refuses: the
/// manifest lists every payload (about 170 bytes each), so a bundle with
/// payloads holds at most some 370,000 of them.
fn check_manifest_size(len: u64, payloads: usize) -> Result<(), WriteError> {
    let limit = super::ReadLimits::default().max_manifest;
    if len > limit {
        return Err(WriteError::Invalid(format!(
            "the manifest would be {len} bytes, more than a reader accepts ({limit}): it lists \
             {payloads} payloads; export fewer records with payloads per bundle (a leaf range), \
             or the records without their payloads"
        )));
    }
    Ok(())
}

/// Writes `contents` as a bundle to `out`. `payloads` must be given when
/// `contents.selection.payloads` is set; each payload is checked against
/// its record's size and SHA-256 as it is copied.
pub fn write_bundle<W: Write>(
    out: W,
    contents: &BundleContents,
    payloads: Option<&mut dyn PayloadSource>,
) -> Result<BundleWritten, WriteError> {
    let invalid = |m: String| WriteError::Invalid(m);
    let cp = Checkpoint::parse(note_text(&contents.checkpoint))
        .map_err(|e| invalid(format!("the checkpoint is not a tlog checkpoint: {e}")))?;

    let b64 =
        |hashes: &[Hash]| -> Vec<String> { hashes.iter().map(|h| STANDARD.encode(h)).collect() };
    // The erased leaves, checked against the entries below.
    let mut erased = std::collections::BTreeSet::new();
    let mut erasures = Vec::new();
    if !contents.erasures.is_empty() && !contents.selection.payloads {
        return Err(invalid(
            "erasures are listed only in a bundle with payloads".into(),
        ));
    }
    for x in &contents.erasures {
        if erased.last().is_some_and(|&l| x.erased_leaf <= l) {
            return Err(invalid(format!(
                "erasures must be in ascending leaf order without repeats; leaf {} is not",
                x.erased_leaf
            )));
        }
        erased.insert(x.erased_leaf);
        if x.tombstone.leaf_index >= cp.size {
            return Err(invalid(format!(
                "the tombstone {} (leaf {}) of leaf {} is not in the checkpoint of size {}",
                x.tombstone.id, x.tombstone.leaf_index, x.erased_leaf, cp.size
            )));
        }
        let line = ErasureLine {
            leaf_index: x.erased_leaf,
            tombstone: x.tombstone.clone(),
            inclusion_proof: b64(&x.inclusion_proof),
        };
        serde_json::to_writer(&mut erasures, &line).map_err(|e| invalid(e.to_string()))?;
        erasures.push(b'\n');
    }
    let in_entries: std::collections::BTreeSet<u64> = contents
        .entries
        .iter()
        .map(|e| e.record.leaf_index)
        .collect();
    if let Some(l) = erased.iter().find(|l| !in_entries.contains(l)) {
        return Err(invalid(format!(
            "an erasure names leaf {l}, which is not among the records"
        )));
    }

    let mut records = Vec::new();
    let mut proofs = Vec::new();
    // Payload members, one per digest, in digest order.
    let mut wanted: BTreeMap<&str, &Evidence> = BTreeMap::new();
    let mut last: Option<u64> = None;
    for e in &contents.entries {
        let r = &e.record;
        if last.is_some_and(|l| r.leaf_index <= l) {
            return Err(invalid(format!(
                "records must be in ascending leaf order without repeats; leaf {} follows {}",
                r.leaf_index,
                last.unwrap_or_default()
            )));
        }
        last = Some(r.leaf_index);
        if r.leaf_index >= cp.size {
            return Err(invalid(format!(
                "record {} (leaf {}) is not in the checkpoint of size {}",
                r.id, r.leaf_index, cp.size
            )));
        }
        serde_json::to_writer(&mut records, r).map_err(|e| invalid(e.to_string()))?;
        records.push(b'\n');
        let line = ProofLine {
            leaf_index: r.leaf_index,
            inclusion_proof: e
                .inclusion_proof
                .iter()
                .map(|h| STANDARD.encode(h))
                .collect(),
        };
        serde_json::to_writer(&mut proofs, &line).map_err(|e| invalid(e.to_string()))?;
        proofs.push(b'\n');
        if contents.selection.payloads && !erased.contains(&r.leaf_index) {
            if !is_lower_hex64(&r.sha256) {
                return Err(invalid(format!(
                    "record {}: sha256 is not lower-case hex",
                    r.id
                )));
            }
            if let Some(other) = wanted.insert(&r.sha256, r)
                && other.size != r.size
            {
                return Err(invalid(format!(
                    "records {} and {} have the same sha256 but different sizes",
                    other.id, r.id
                )));
            }
        }
    }

    let mut members = vec![
        digest(CHECKPOINT, contents.checkpoint.as_bytes()),
        digest(RECORDS, &records),
        digest(PROOFS, &proofs),
    ];
    if !erasures.is_empty() {
        members.push(digest(ERASURES, &erasures));
    }
    let consistency = match &contents.newer {
        Some(n) => {
            let json = serde_json::to_vec(&n.proof).map_err(|e| invalid(e.to_string()))?;
            members.push(digest(NEWER_CHECKPOINT, n.checkpoint.as_bytes()));
            members.push(digest(CONSISTENCY, &json));
            Some((n.checkpoint.as_bytes(), json))
        }
        None => None,
    };
    // A payload's digest is its name: the manifest lists what the record
    // says, and the copy below checks the bytes against it.
    for (sha, r) in &wanted {
        members.push(MemberDigest {
            name: payload_member(sha),
            size: r.size,
            sha256: (*sha).to_string(),
        });
    }
    let manifest = Manifest {
        format: BUNDLE_FORMAT.into(),
        origin: cp.origin.clone(),
        tree_size: cp.size,
        root_hash: STANDARD.encode(cp.root_hash),
        selection: contents.selection.clone(),
        records: contents.entries.len() as u64,
        payloads: wanted.len() as u64,
        erasures: contents.erasures.len() as u64,
        members,
    };
    let mut manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| invalid(e.to_string()))?;
    manifest_bytes.push(b'\n');
    check_manifest_size(manifest_bytes.len() as u64, wanted.len())?;

    let counting = Counting {
        inner: out,
        count: 0,
    };
    let mut encoder = zstd::stream::write::Encoder::new(counting, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let mut tar = tar::Builder::new(encoder);
    let mut put = |name: &str, bytes: &[u8]| -> io::Result<()> {
        tar.append(&header(name, bytes.len() as u64)?, bytes)
    };
    put(MANIFEST, &manifest_bytes)?;
    put(CHECKPOINT, contents.checkpoint.as_bytes())?;
    put(RECORDS, &records)?;
    put(PROOFS, &proofs)?;
    if !erasures.is_empty() {
        put(ERASURES, &erasures)?;
    }
    if let Some((note, json)) = &consistency {
        put(NEWER_CHECKPOINT, note)?;
        put(CONSISTENCY, json)?;
    }
    if !wanted.is_empty() {
        let source = payloads.ok_or_else(|| {
            invalid("the selection includes payloads but no payload source was given".into())
        })?;
        for (sha, r) in &wanted {
            let mut exact = Exact {
                inner: source.open(r)?,
                left: r.size,
                hasher: Sha256::new(),
            };
            tar.append(&header(&payload_member(sha), r.size)?, &mut exact)
                .map_err(|e| WriteError::Payload {
                    id: r.id.clone(),
                    detail: e.to_string(),
                })?;
            let got = hex(&exact.hasher.finalize());
            if got != **sha {
                return Err(WriteError::Payload {
                    id: r.id.clone(),
                    detail: format!("its SHA-256 is {got}, the record says {sha}"),
                });
            }
        }
    }
    let encoder = tar.into_inner()?;
    let mut counting = encoder.finish()?;
    counting.flush()?;
    Ok(BundleWritten {
        records: contents.entries.len() as u64,
        payloads: wanted.len() as u64,
        erasures: contents.erasures.len() as u64,
        tree_size: cp.size,
        bytes: counting.count,
        manifest_sha256: hex(&Sha256::digest(&manifest_bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_no_reader_accepts_is_refused() {
        let limit = super::super::ReadLimits::default().max_manifest;
        assert!(check_manifest_size(limit, 10).is_ok());
        let e = check_manifest_size(limit + 1, 400_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("more than a reader accepts") && e.contains("400000 payloads"),
            "{e}"
        );
    }
}
