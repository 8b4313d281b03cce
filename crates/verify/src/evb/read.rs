//! Reading a bundle that may be hostile. Nothing is extracted or written:
//! members are read into memory (payloads are streamed through SHA-256 and
//! an optional sink), each against the manifest, under hard limits, and
//! every refusal is a typed [`ReadError`].

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::{
    BUNDLE_FORMAT, CHECKPOINT, CONSISTENCY, ERASURES, MANIFEST, Manifest, NEWER_CHECKPOINT,
    PAYLOADS_DIR, PROOFS, RECORDS, ZSTD_MAGIC, is_lower_hex64,
};
use crate::evidence::hex;

/// Bounds on what a reader accepts; beyond them it stops with an error,
/// having allocated no more than the bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest manifest, in bytes.
    pub max_manifest: u64,
    /// Largest member (records, proofs, one payload), in bytes.
    pub max_member: u64,
    /// Largest total decompressed size (the whole tar stream), in bytes.
    pub max_total: u64,
    /// Largest ratio of decompressed to compressed bytes ...
    pub max_ratio: u64,
    /// ... once this many bytes have been decompressed (small archives
    /// compress well and are harmless).
    pub ratio_floor: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_manifest: 64 << 20,
            max_member: 4 << 30,
            max_total: 64 << 30,
            max_ratio: 1000,
            ratio_floor: 64 << 20,
        }
    }
}

/// Largest checkpoint note and consistency proof member: both are small.
const MAX_SMALL: u64 = 64 << 10;

/// Why a file was refused as a bundle. Every variant names what was wrong.
#[derive(Debug)]
pub enum ReadError {
    /// It does not start with the zstd magic.
    NotABundle,
    /// The file ends before the archive does.
    Truncated,
    /// The compressed stream or the tar structure is damaged.
    Corrupt(String),
    /// A member path with a `..` component.
    PathTraversal(String),
    /// A member path that starts at the root.
    AbsolutePath(String),
    /// A member that is not a regular file (a link, a directory, a device…).
    NotARegularFile {
        /// The member's path.
        name: String,
        /// What it is instead.
        kind: String,
    },
    /// A member bigger than the limit (or than the manifest says).
    MemberTooLarge {
        /// The member's path.
        name: String,
        /// Size its header declares.
        size: u64,
        /// The bound it broke.
        limit: u64,
    },
    /// A member whose header size is not the manifest's.
    SizeMismatch {
        /// The member's path.
        name: String,
        /// Size its header declares.
        header: u64,
        /// Size the manifest lists.
        manifest: u64,
    },
    /// More decompressed data than [`ReadLimits::max_total`].
    TotalTooLarge {
        /// The bound.
        limit: u64,
    },
    /// Decompresses beyond [`ReadLimits::max_ratio`]: a compression bomb.
    CompressionRatio {
        /// The bound.
        limit: u64,
    },
    /// A member that occurs twice.
    Duplicate(String),
    /// A member the manifest lists (or the format requires) is absent.
    Missing(String),
    /// A member the manifest does not list, or out of its order.
    Unexpected(String),
    /// Data after the end of the archive.
    TrailingData,
    /// The manifest is malformed or inconsistent.
    BadManifest(String),
    /// A format other than [`BUNDLE_FORMAT`].
    UnsupportedFormat(String),
    /// The payload sink refused a payload.
    Sink(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotABundle => write!(f, "not an evidence bundle (no zstd magic)"),
            ReadError::Truncated => write!(f, "the bundle is truncated"),
            ReadError::Corrupt(m) => write!(f, "the bundle is damaged: {m}"),
            ReadError::PathTraversal(n) => {
                write!(f, "member {n:?} has a path that leaves the archive (`..`)")
            }
            ReadError::AbsolutePath(n) => write!(f, "member {n:?} has an absolute path"),
            ReadError::NotARegularFile { name, kind } => {
                write!(f, "member {name:?} is a {kind}, not a regular file")
            }
            ReadError::MemberTooLarge { name, size, limit } => write!(
                f,
                "member {name:?} declares {size} bytes, more than the limit of {limit}"
            ),
            ReadError::SizeMismatch {
                name,
                header,
                manifest,
            } => write!(
                f,
                "member {name:?} is {header} bytes but the manifest lists {manifest}"
            ),
            ReadError::TotalTooLarge { limit } => {
                write!(f, "the bundle decompresses to more than {limit} bytes")
            }
            ReadError::CompressionRatio { limit } => write!(
                f,
                "the bundle decompresses to more than {limit} times its compressed size \
                 (a compression bomb?)"
            ),
            ReadError::Duplicate(n) => write!(f, "member {n:?} occurs twice"),
            ReadError::Missing(n) => write!(f, "member {n:?} is missing"),
            ReadError::Unexpected(n) => {
                write!(
                    f,
                    "member {n:?} is not listed by the manifest at this place"
                )
            }
            ReadError::TrailingData => write!(f, "data follows the end of the archive"),
            ReadError::BadManifest(m) => write!(f, "{MANIFEST}: {m}"),
            ReadError::UnsupportedFormat(v) => write!(
                f,
                "bundle format {v:?} is not supported (this verifier reads {BUNDLE_FORMAT:?})"
            ),
            ReadError::Sink(e) => write!(f, "storing a payload: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Receives each payload as it is read (e.g. to import it). The reader
/// hashes what passes, so the sink sees exactly the bytes checked.
pub trait PayloadSink {
    /// `data` yields the payload member named by `sha256` (its declared
    /// digest, lower-case hex); what the sink leaves unread is drained.
    fn payload(&mut self, sha256: &str, data: &mut dyn Read) -> io::Result<()>;
}

/// A sink that keeps nothing (verification only).
pub struct NoPayloadSink;

impl PayloadSink for NoPayloadSink {
    fn payload(&mut self, _: &str, _: &mut dyn Read) -> io::Result<()> {
        Ok(())
    }
}

/// A payload member as read: its declared digest and what it hashed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadSeen {
    /// Digest in its name, lower-case hex.
    pub name_sha256: String,
    /// SHA-256 of its bytes.
    pub actual_sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A bundle as read: well-formed as an archive, every member the manifest
/// lists present once, in order, within the limits. Nothing is verified
/// yet ([`super::verify_bundle`] does).
#[derive(Clone, Debug)]
pub struct ReadBundle {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Its bytes, as in the archive.
    pub manifest_bytes: Vec<u8>,
    /// The checkpoint member.
    pub checkpoint: Vec<u8>,
    /// `records.jsonl`.
    pub records: Vec<u8>,
    /// `proofs.jsonl`.
    pub proofs: Vec<u8>,
    /// `erasures.jsonl`, if present.
    pub erasures: Option<Vec<u8>>,
    /// `newer-checkpoint`, if present.
    pub newer_checkpoint: Option<Vec<u8>>,
    /// `consistency.json`, if present.
    pub consistency: Option<Vec<u8>>,
    /// Payload members, in archive order.
    pub payloads: Vec<PayloadSeen>,
    /// SHA-256 (lower-case hex) of every member after the manifest, by name.
    pub digests: BTreeMap<String, String>,
}

/// Shared between the counting readers below and the error mapping: how
/// much went in and out, and which limit (if any) stopped the stream.
#[derive(Default)]
struct Meter {
    compressed: Cell<u64>,
    decompressed: Cell<u64>,
    input_ended: Cell<bool>,
    tripped: Cell<Option<Trip>>,
}

#[derive(Clone, Copy)]
enum Trip {
    Total(u64),
    Ratio(u64),
}

struct CountIn<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for CountIn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.meter.input_ended.set(true);
        }
        let m = &self.meter;
        m.compressed.set(m.compressed.get() + n as u64);
        Ok(n)
    }
}

/// Counts decompressed bytes and stops the stream past a limit, before
/// the bytes reach anyone.
struct Bounded<R> {
    inner: R,
    meter: Rc<Meter>,
    limits: ReadLimits,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.meter.tripped.get().is_some() {
            return Err(io::Error::other("limit reached"));
        }
        // Never hand out more than the remaining total allows, so a bomb is
        // caught at the limit, not a buffer later.
        let left = self
            .limits
            .max_total
            .saturating_sub(self.meter.decompressed.get());
        let max = buf
            .len()
            .min(usize::try_from(left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        let m = &self.meter;
        let total = m.decompressed.get() + n as u64;
        m.decompressed.set(total);
        if total > self.limits.max_total {
            m.tripped.set(Some(Trip::Total(self.limits.max_total)));
        } else if total > self.limits.ratio_floor
            && total / m.compressed.get().max(1) > self.limits.max_ratio
        {
            m.tripped.set(Some(Trip::Ratio(self.limits.max_ratio)));
        }
        if m.tripped.get().is_some() {
            return Err(io::Error::other("limit reached"));
        }
        Ok(n)
    }
}

/// Turns an I/O error from the stack into what it means.
fn classify(e: io::Error, meter: &Meter) -> ReadError {
    match meter.tripped.get() {
        Some(Trip::Total(limit)) => ReadError::TotalTooLarge { limit },
        Some(Trip::Ratio(limit)) => ReadError::CompressionRatio { limit },
        // zstd reports a frame cut short as UnexpectedEof; tar, a header
        // block or padding cut short as "failed to read entire block" or
        // "unexpected EOF during skip".
        None if e.kind() == io::ErrorKind::UnexpectedEof || {
            let m = e.to_string();
            m.contains("failed to read entire block") || m.contains("unexpected EOF")
        } =>
        {
            ReadError::Truncated
        }
        None => ReadError::Corrupt(e.to_string()),
    }
}

/// Reads a member's `size` bytes in bounded steps (never allocating by
/// the declared size up front), hashing them; keeps them when `keep`.
/// Fewer than `size` bytes means the archive ends inside the member.
fn read_member(
    r: &mut dyn Read,
    size: u64,
    keep: bool,
    meter: &Meter,
) -> Result<(Vec<u8>, String, u64), ReadError> {
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| classify(e, meter))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if keep {
            kept.extend_from_slice(&buf[..n]);
        }
        n_total += n as u64;
    }
    if n_total < size {
        return Err(ReadError::Truncated);
    }
    Ok((kept, hex(&hasher.finalize()), n_total))
}

/// Reads a member's bytes through `sink`, hashing what it is given.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
    count: u64,
    error: Option<io::Error>,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                // Kept so a limit or a truncation is reported as such even
                // if the sink swallows or rewraps the error.
                let shown = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(shown)
            }
        }
    }
}

fn kind_name(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Symlink => "symbolic link".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Directory => "directory".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "FIFO".into(),
        other => format!("member of tar type {:?}", other.as_byte() as char),
    }
}

/// The size limit for a member of this name.
fn member_limit(name: &str, limits: &ReadLimits) -> u64 {
    match name {
        MANIFEST => limits.max_manifest,
        CHECKPOINT | NEWER_CHECKPOINT | CONSISTENCY => MAX_SMALL,
        _ => limits.max_member,
    }
}

/// Checks the manifest's own structure: known format, member names in the
/// fixed order, each within its limit, the total within bounds.
fn check_manifest(m: &Manifest, limits: &ReadLimits) -> Result<(), ReadError> {
    if m.format != BUNDLE_FORMAT {
        return Err(ReadError::UnsupportedFormat(m.format.clone()));
    }
    let bad = |s: String| Err(ReadError::BadManifest(s));
    let names: Vec<&str> = m.members.iter().map(|x| x.name.as_str()).collect();
    let mut fixed = vec![CHECKPOINT, RECORDS, PROOFS];
    if names.get(fixed.len()) == Some(&ERASURES) {
        fixed.push(ERASURES);
    }
    if names.get(fixed.len()) == Some(&NEWER_CHECKPOINT) {
        fixed.extend([NEWER_CHECKPOINT, CONSISTENCY]);
    }
    if names.len() < fixed.len() || names[..fixed.len()] != *fixed {
        return bad(format!(
            "members must start with {} (in this order), found {:?}",
            fixed.join(", "),
            &names[..names.len().min(fixed.len())]
        ));
    }
    // The count and the member go together: a bundle that names erased
    // records must carry them, and one that carries them must say so.
    if fixed.contains(&ERASURES) != (m.erasures > 0) {
        return bad(format!(
            "says {} erasures but {} {ERASURES}",
            m.erasures,
            if fixed.contains(&ERASURES) {
                "lists"
            } else {
                "does not list"
            }
        ));
    }
    let mut previous: Option<&str> = None;
    for name in &names[fixed.len()..] {
        let Some(sha) = name
            .strip_prefix(PAYLOADS_DIR)
            .filter(|s| is_lower_hex64(s))
        else {
            return bad(format!(
                "member {name:?} is not one of the format's (checkpoint, records.jsonl, \
                 proofs.jsonl, erasures.jsonl, newer-checkpoint, consistency.json, \
                 payloads/<sha256>)"
            ));
        };
        if previous.is_some_and(|p| p >= sha) {
            return bad(format!(
                "payload members must be in ascending digest order without repeats; {name:?} \
                 is out of order"
            ));
        }
        previous = Some(sha);
    }
    if m.payloads != (names.len() - fixed.len()) as u64 {
        return bad(format!(
            "says {} payloads but lists {}",
            m.payloads,
            names.len() - fixed.len()
        ));
    }
    let mut total = 0u64;
    for x in &m.members {
        let limit = member_limit(&x.name, limits);
        if x.size > limit {
            return Err(ReadError::MemberTooLarge {
                name: x.name.clone(),
                size: x.size,
                limit,
            });
        }
        total = total.saturating_add(x.size);
        if !is_lower_hex64(&x.sha256) {
            return bad(format!(
                "the sha256 of {:?} is not 64 lower-case hex digits",
                x.name
            ));
        }
    }
    if total > limits.max_total {
        return Err(ReadError::TotalTooLarge {
            limit: limits.max_total,
        });
    }
    Ok(())
}

/// A member path: refused if it could leave the archive root.
fn member_name(raw: &[u8]) -> Result<String, ReadError> {
    let name = String::from_utf8_lossy(raw).into_owned();
    if name.starts_with('/') || name.starts_with('\\') || name.as_bytes().get(1) == Some(&b':') {
        return Err(ReadError::AbsolutePath(name));
    }
    if name.split(['/', '\\']).any(|c| c == "..") {
        return Err(ReadError::PathTraversal(name));
    }
    Ok(name)
}

/// Reads a bundle from `input` within `limits`, handing each payload to
/// `sink`. Fails on the first structural problem (see [`ReadError`]);
/// content (signatures, proofs, digests) is for [`super::verify_bundle`].
pub fn read_bundle<R: Read>(
    input: R,
    limits: &ReadLimits,
    sink: &mut dyn PayloadSink,
) -> Result<ReadBundle, ReadError> {
    let meter = Rc::new(Meter::default());
    let mut input = BufReader::new(CountIn {
        inner: input,
        meter: meter.clone(),
    });
    let head = input.fill_buf().map_err(|e| classify(e, &meter))?;
    if !head.starts_with(&ZSTD_MAGIC) {
        return Err(if ZSTD_MAGIC.starts_with(head) && !head.is_empty() {
            ReadError::Truncated
        } else {
            ReadError::NotABundle
        });
    }
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(input).map_err(|e| classify(e, &meter))?;
    // Refuse frames that would need a window above 128 MiB: the decoder
    // would allocate it.
    decoder
        .window_log_max(27)
        .map_err(|e| ReadError::Corrupt(e.to_string()))?;
    let bounded = Bounded {
        inner: decoder,
        meter: meter.clone(),
        limits: limits.clone(),
    };
    let mut archive = tar::Archive::new(bounded);
    let mut out: Option<ReadBundle> = None;
    let mut next = 0usize;
    let mut seen = BTreeSet::new();
    {
        let entries = archive.entries().map_err(|e| classify(e, &meter))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| classify(e, &meter))?;
            let name = member_name(&entry.path_bytes())?;
            let kind = entry.header().entry_type();
            if kind != tar::EntryType::Regular {
                return Err(ReadError::NotARegularFile {
                    name,
                    kind: kind_name(kind),
                });
            }
            let size = entry.size();
            if !seen.insert(name.clone()) {
                return Err(ReadError::Duplicate(name));
            }
            let Some(bundle) = out.as_mut() else {
                if name != MANIFEST {
                    return Err(ReadError::Missing(MANIFEST.into()));
                }
                if size > limits.max_manifest {
                    return Err(ReadError::MemberTooLarge {
                        name,
                        size,
                        limit: limits.max_manifest,
                    });
                }
                let (bytes, _, _) = read_member(&mut entry, size, true, &meter)?;
                let manifest: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| ReadError::BadManifest(format!("not a valid manifest: {e}")))?;
                check_manifest(&manifest, limits)?;
                out = Some(ReadBundle {
                    manifest,
                    manifest_bytes: bytes,
                    checkpoint: Vec::new(),
                    records: Vec::new(),
                    proofs: Vec::new(),
                    erasures: None,
                    newer_checkpoint: None,
                    consistency: None,
                    payloads: Vec::new(),
                    digests: BTreeMap::new(),
                });
                continue;
            };
            let members = &bundle.manifest.members;
            let Some(expected) = members.get(next) else {
                return Err(ReadError::Unexpected(name));
            };
            if expected.name != name {
                // A later member in its place means the expected one is
                // missing; anything else does not belong here.
                return Err(if members[next..].iter().any(|m| m.name == name) {
                    ReadError::Missing(expected.name.clone())
                } else {
                    ReadError::Unexpected(name)
                });
            }
            if size != expected.size {
                let limit = member_limit(&name, limits);
                return Err(if size > limit {
                    ReadError::MemberTooLarge { name, size, limit }
                } else {
                    ReadError::SizeMismatch {
                        name,
                        header: size,
                        manifest: expected.size,
                    }
                });
            }
            next += 1;
            if let Some(sha) = name.strip_prefix(PAYLOADS_DIR) {
                let mut hashing = Hashing {
                    inner: &mut entry,
                    hasher: Sha256::new(),
                    count: 0,
                    error: None,
                };
                let sunk = sink.payload(sha, &mut hashing);
                if let Some(e) = hashing.error.take() {
                    return Err(classify(e, &meter));
                }
                sunk.map_err(ReadError::Sink)?;
                // Whatever the sink left unread still counts.
                let left = size.saturating_sub(hashing.count);
                read_member(&mut hashing, left, false, &meter)?;
                if let Some(e) = hashing.error.take() {
                    return Err(classify(e, &meter));
                }
                let digest = hex(&hashing.hasher.finalize());
                bundle.digests.insert(name.clone(), digest.clone());
                bundle.payloads.push(PayloadSeen {
                    name_sha256: sha.to_string(),
                    actual_sha256: digest,
                    size: hashing.count,
                });
                continue;
            }
            let (bytes, digest, _) = read_member(&mut entry, size, true, &meter)?;
            bundle.digests.insert(name.clone(), digest);
            match name.as_str() {
                CHECKPOINT => bundle.checkpoint = bytes,
                RECORDS => bundle.records = bytes,
                PROOFS => bundle.proofs = bytes,
                ERASURES => bundle.erasures = Some(bytes),
                NEWER_CHECKPOINT => bundle.newer_checkpoint = Some(bytes),
                CONSISTENCY => bundle.consistency = Some(bytes),
                _ => return Err(ReadError::Unexpected(name)),
            }
        }
    }
    let Some(bundle) = out else {
        return Err(
            if meter.input_ended.get() && meter.decompressed.get() == 0 {
                ReadError::Truncated
            } else {
                ReadError::Missing(MANIFEST.into())
            },
        );
    };
    if let Some(m) = bundle.manifest.members.get(next) {
        return Err(ReadError::Missing(m.name.clone()));
    }
    // The rest of the stream must be the archive's zero blocks and the end
    // of the zstd frame (which checks the frame's checksum).
    let mut rest = archive.into_inner();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = rest.read(&mut buf).map_err(|e| classify(e, &meter))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(ReadError::TrailingData);
        }
    }
    Ok(bundle)
}
