//! One check of one log: verify its latest checkpoint, authenticate every
//! tile read against the signed root, optionally every entry, and return
//! the new trusted tree, or say precisely what is wrong.
//!
//! Tile authentication (see the README): the trusted state keeps the
//! frontier of the last verified tree. The level-0 tiles from the tile
//! holding the old size up to the new size are read, every hash in them is
//! appended to the old frontier (cut back to that tile's start), the old
//! part of the first tile must rebuild the old frontier exactly, and the
//! result must hash to the newly signed root. So every hash of every tile
//! read is either proven by the old signed root or by the new one, and the
//! old tree is proven a prefix of the new one by the same computation.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::tiles::{
    TILE_HEIGHT, TILE_WIDTH, TileId, TiledHashReader, parse_entry_bundle, tile_for_node, tile_width,
};
use evault_merkle::{
    CompactRange, HASH_SIZE, Hash, HashReader, NodeId, consistency_proof, leaf_hash,
    perfect_subtree_hash, root, verify_consistency,
};
use evault_note::{Checkpoint, open};
use serde::Serialize;

use crate::entries::check_entry;
use crate::source::{
    FetchError, LogSource, SourceTiles, fetch_bundle, fetch_checkpoint, fetch_tile,
};
use crate::state::{LogState, TrustedTree, short_name};

/// What kind of verification failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The checkpoint is malformed or not signed by the pinned key.
    BadCheckpoint,
    /// The checkpoint is signed for another origin.
    WrongOrigin,
    /// The log was given a key (or origin) other than the pinned one.
    KeyChanged,
    /// The signed size is smaller than the trusted one.
    Rollback,
    /// Two signed trees that cannot both be the log: same size and
    /// different roots, or a larger tree that does not extend the trusted
    /// one.
    Fork,
    /// A tile does not hash to the signed root (or has the wrong length).
    BadTile,
    /// An entry does not hash to its authenticated leaf hash, or is not the
    /// record the log's kind says it is.
    BadEntry,
}

impl FailureKind {
    /// Kebab-case name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::BadCheckpoint => "bad-checkpoint",
            FailureKind::WrongOrigin => "wrong-origin",
            FailureKind::KeyChanged => "key-changed",
            FailureKind::Rollback => "rollback",
            FailureKind::Fork => "fork",
            FailureKind::BadTile => "bad-tile",
            FailureKind::BadEntry => "bad-entry",
        }
    }
}

/// A tree head in a report: size and base64 root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Tree size in leaves.
    pub size: u64,
    /// Root hash, base64.
    pub root: String,
}

impl Head {
    fn new(size: u64, root: &Hash) -> Head {
        Head {
            size,
            root: STANDARD.encode(root),
        }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "size {} root {}", self.size, self.root)
    }
}

/// A verification failure: the log (or whoever serves it) misbehaved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// A sentence naming the log, the sizes and the roots involved.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// Why a check did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// Verification failed.
    Failed(Failure),
    /// A resource could not be had (refused, missing or unreachable).
    Fetch(FetchError),
}

fn failed(kind: FailureKind, message: String) -> CheckError {
    CheckError::Failed(Failure { kind, message })
}

/// A completed check.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The tree now trusted (the old one if nothing changed).
    pub tree: TrustedTree,
    /// Whether it is newer than the old one.
    pub advanced: bool,
    /// Hash tiles read.
    pub tiles_read: u64,
    /// Entries fetched, hashed and checked.
    pub entries_checked: u64,
}

/// The outcome of [`check_log`], with the checkpoint as served (the
/// evidence to keep if the check failed).
#[derive(Debug)]
pub struct Attempt {
    /// The checkpoint note exactly as the log served it, if it served one.
    pub served: Option<Vec<u8>>,
    /// The served checkpoint's head, if it verified.
    pub served_head: Option<Head>,
    /// The result.
    pub result: Result<Checked, CheckError>,
}

/// What a check needs.
pub struct CheckInput<'a> {
    /// The log and its pinned identity.
    pub log: &'a LogState,
    /// The last verified tree, if any.
    pub trusted: Option<&'a TrustedTree>,
    /// Where the log is served.
    pub source: &'a dyn LogSource,
    /// Also fetch and check every new entry.
    pub entries: bool,
    /// Sees progress lines (for a terminal).
    pub progress: &'a dyn Fn(&str),
}

/// Checks one log once. Never panics on anything the log serves.
pub fn check_log(input: &CheckInput<'_>) -> Attempt {
    let served = match fetch_checkpoint(input.source) {
        Ok(b) => b,
        Err(e @ FetchError::TooLarge { .. }) => {
            return Attempt {
                served: None,
                served_head: None,
                result: Err(failed(
                    FailureKind::BadCheckpoint,
                    format!("log {}: {e}", input.log.name),
                )),
            };
        }
        Err(e) => {
            return Attempt {
                served: None,
                served_head: None,
                result: Err(CheckError::Fetch(e)),
            };
        }
    };
    let mut served_head = None;
    let result = check_served(input, &served, &mut served_head);
    Attempt {
        served: Some(served),
        served_head,
        result,
    }
}

fn check_served(
    input: &CheckInput<'_>,
    served: &[u8],
    served_head: &mut Option<Head>,
) -> Result<Checked, CheckError> {
    let log = input.log;
    let name = &log.name;
    let where_ = format!("{}checkpoint", slash(&input.source.describe()));
    let verifiers = log
        .verifiers()
        .map_err(|e| failed(FailureKind::KeyChanged, e))?;
    let note = open(served, &verifiers).map_err(|e| {
        failed(
            FailureKind::BadCheckpoint,
            format!(
                "log {name}: the checkpoint at {where_} is not a note validly signed by the \
                 pinned key {}: {e}",
                log.keys()
                    .map(|k| short_name(k))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )
    })?;
    if let Some(missing) = log
        .missing_signature(served)
        .map_err(|e| failed(FailureKind::KeyChanged, e))?
    {
        return Err(failed(
            FailureKind::BadCheckpoint,
            format!(
                "log {name}: the checkpoint at {where_} is not signed by the pinned key \
                 {missing}, and the key policy is all"
            ),
        ));
    }
    let cp = Checkpoint::parse(&note.text).map_err(|e| {
        failed(
            FailureKind::BadCheckpoint,
            format!("log {name}: the signed note at {where_} is not a checkpoint: {e}"),
        )
    })?;
    let head = Head::new(cp.size, &cp.root_hash);
    *served_head = Some(head.clone());
    if cp.origin != log.origin {
        return Err(failed(
            FailureKind::WrongOrigin,
            format!(
                "log {name}: the checkpoint at {where_} is for origin {:?}, not {:?}",
                cp.origin, log.origin
            ),
        ));
    }
    // `open` accepted the bytes as UTF-8.
    let note_text = String::from_utf8_lossy(served).into_owned();
    if let Some(old) = input.trusted {
        let trusted = Head::new(old.size, &old.root);
        if cp.size < old.size {
            return Err(failed(
                FailureKind::Rollback,
                format!(
                    "log {name}: ROLLBACK: the log now signs {head}, smaller than the \
                     trusted {trusted}"
                ),
            ));
        }
        if cp.size == old.size {
            if cp.root_hash != old.root {
                return Err(failed(
                    FailureKind::Fork,
                    format!(
                        "log {name}: FORK: two signed checkpoints for size {}: trusted root \
                         {}, served root {}",
                        cp.size, trusted.root, head.root
                    ),
                ));
            }
            return Ok(Checked {
                tree: old.clone(),
                advanced: false,
                tiles_read: 0,
                entries_checked: 0,
            });
        }
    }
    grow(input, &cp, note_text)
}

fn slash(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

fn hashes_of(data: &[u8]) -> Vec<Hash> {
    data.chunks_exact(HASH_SIZE)
        .map(|c| {
            let mut h = [0u8; HASH_SIZE];
            h.copy_from_slice(c);
            h
        })
        .collect()
}

const TILE: u64 = TILE_WIDTH as u64;

/// Authenticates the level-0 tiles from the trusted size to the signed
/// one (see the module docs), then the entries if asked.
fn grow(input: &CheckInput<'_>, cp: &Checkpoint, note_text: String) -> Result<Checked, CheckError> {
    let name = &input.log.name;
    let src = input.source;
    let old = input.trusted.filter(|t| t.size > 0);
    let m = old.map_or(0, |o| o.size);
    let n = cp.size;
    // Start at the level-0 tile holding leaf m: the frontier there is the
    // old frontier's subtrees of 256 leaves and more.
    let start = m - m % TILE;
    let mut frontier = match old {
        Some(o) => {
            let high = (m >> TILE_HEIGHT).count_ones() as usize;
            let hashes = o.frontier.hashes().get(..high).unwrap_or_default().to_vec();
            CompactRange::from_hashes(start, hashes).map_err(|e| {
                failed(
                    FailureKind::BadTile,
                    format!("log {name}: trusted state: {e}"),
                )
            })?
        }
        None => CompactRange::new(),
    };
    let first = start / TILE;
    let end = n.div_ceil(TILE);
    let mut leaves: Vec<Hash> = Vec::new();
    let mut full_tiles: Vec<(u64, Hash)> = Vec::new();
    let mut tiles_read = 0u64;
    let mut prefix_ok = true;
    for index in first..end {
        let width = tile_width(0, index, n).unwrap_or(TILE_WIDTH);
        let tile = TileId {
            level: 0,
            index,
            width,
        };
        if (index - first).is_multiple_of(64) {
            (input.progress)(&format!(
                "{name}: tile {} of {}",
                index - first + 1,
                end - first
            ));
        }
        let data = fetch_tile(src, tile).map_err(|e| match e {
            e @ FetchError::TooLarge { .. } => {
                failed(FailureKind::BadTile, format!("log {name}: {e}"))
            }
            e => CheckError::Fetch(e),
        })?;
        tiles_read += 1;
        if data.len() != tile.byte_len() {
            return Err(failed(
                FailureKind::BadTile,
                format!(
                    "log {name}: {} has {} bytes, expected {} for size {n}",
                    tile.path(),
                    data.len(),
                    tile.byte_len()
                ),
            ));
        }
        let hashes = hashes_of(&data);
        if width == TILE_WIDTH
            && let Some(h) = perfect_subtree_hash(&hashes)
        {
            full_tiles.push((index, h));
        }
        for h in &hashes {
            frontier.append(*h, |_, _| {});
            if let Some(o) = old
                && frontier.size() == m
                && frontier.hashes() != o.frontier.hashes()
            {
                prefix_ok = false;
            }
        }
        if !prefix_ok {
            break;
        }
        if input.entries {
            leaves.extend_from_slice(&hashes);
        }
    }
    if !prefix_ok || frontier.root() != cp.root_hash {
        return Err(CheckError::Failed(diagnose(input, cp, &full_tiles)));
    }
    let mut entries_checked = 0;
    if input.entries {
        entries_checked = check_entries(input, start, n, &leaves)?;
    }
    Ok(Checked {
        tree: TrustedTree {
            size: n,
            root: cp.root_hash,
            frontier,
            checkpoint: note_text,
        },
        advanced: true,
        tiles_read,
        entries_checked,
    })
}

/// Fetches the entry bundles of leaves `start..n` and checks each entry
/// against its authenticated leaf hash `leaves[i - start]`, then against
/// the log's kind.
fn check_entries(
    input: &CheckInput<'_>,
    start: u64,
    n: u64,
    leaves: &[Hash],
) -> Result<u64, CheckError> {
    let name = &input.log.name;
    let mut checked = 0;
    for index in start / TILE..n.div_ceil(TILE) {
        let width = tile_width(0, index, n).unwrap_or(TILE_WIDTH);
        let path = evault_merkle::tiles::entries_path(index, width);
        if (index - start / TILE).is_multiple_of(64) {
            (input.progress)(&format!("{name}: entries {path}"));
        }
        let data = fetch_bundle(input.source, index, width).map_err(|e| match e {
            e @ FetchError::TooLarge { .. } => {
                failed(FailureKind::BadEntry, format!("log {name}: {e}"))
            }
            e => CheckError::Fetch(e),
        })?;
        let entries = parse_entry_bundle(&data)
            .map_err(|e| failed(FailureKind::BadEntry, format!("log {name}: {path}: {e}")))?;
        // A partial bundle holds exactly its width; a full one (the
        // fallback for a partial bundle already gone) all 256.
        if entries.len() != usize::from(width) && entries.len() != TILE_WIDTH as usize {
            return Err(failed(
                FailureKind::BadEntry,
                format!(
                    "log {name}: {path} has {} entries, expected {width}",
                    entries.len()
                ),
            ));
        }
        for (i, entry) in entries.iter().take(usize::from(width)).enumerate() {
            let leaf_index = index * TILE + i as u64;
            let want = leaves.get((leaf_index - start) as usize);
            if want != Some(&leaf_hash(entry)) {
                return Err(failed(
                    FailureKind::BadEntry,
                    format!(
                        "log {name}: entry {leaf_index} in {path} does not hash to leaf \
                         {leaf_index} of the tree signed for size {n}"
                    ),
                ));
            }
            check_entry(input.log.kind, entry, leaf_index).map_err(|e| {
                failed(
                    FailureKind::BadEntry,
                    format!("log {name}: entry {leaf_index} in {path}: {e}"),
                )
            })?;
            checked += 1;
        }
    }
    Ok(checked)
}

/// The level-0 tiles did not lead to the signed root. Decides, from the
/// log's own tiles, between a bad tile and a fork, and names the tile when
/// its parent hash says which.
fn diagnose(input: &CheckInput<'_>, cp: &Checkpoint, full_tiles: &[(u64, Hash)]) -> Failure {
    let name = &input.log.name;
    let n = cp.size;
    let new = Head::new(n, &cp.root_hash);
    let old = input.trusted.filter(|t| t.size > 0);
    let m = old.map_or(0, |o| o.size);
    let reader = TiledHashReader {
        tiles: SourceTiles(input.source),
        tree_size: n,
    };
    let located = locate(&reader, full_tiles, n);
    let bad_tile = |why: &str| Failure {
        kind: FailureKind::BadTile,
        message: format!(
            "log {name}: BAD TILE: the level-0 tiles for leaves {}..{n}{} do not hash to the \
             signed {new}{}{located}",
            m - m % TILE,
            match old {
                Some(o) => format!(" (with the trusted {})", Head::new(o.size, &o.root)),
                None => String::new(),
            },
            why
        ),
    };
    let upper = match root(&reader, n) {
        Ok(r) => r,
        Err(e) => return bad_tile(&format!("; the log's upper tiles cannot be read: {e}")),
    };
    if upper != cp.root_hash {
        return bad_tile("; the log's upper tiles do not hash to it either");
    }
    let Some(o) = old else {
        return bad_tile("");
    };
    let (Ok(at_old), Ok(proof)) = (root(&reader, m), consistency_proof(&reader, m, n)) else {
        return bad_tile("");
    };
    if verify_consistency(m, n, &proof, &o.root, &cp.root_hash).is_ok() {
        return bad_tile("; the log's upper tiles prove the two checkpoints consistent");
    }
    if at_old != o.root && verify_consistency(m, n, &proof, &at_old, &cp.root_hash).is_ok() {
        return Failure {
            kind: FailureKind::Fork,
            message: format!(
                "log {name}: FORK: the signed {new} does not extend the trusted {}: the \
                 log's own tiles, which hash to its signed root, give root {} at size {m}",
                Head::new(m, &o.root),
                STANDARD.encode(at_old)
            ),
        };
    }
    bad_tile("; the log's tiles are not consistent with either checkpoint")
}

/// Names the full level-0 tiles whose hash differs from the one their
/// level-1 tile holds (best effort: empty if that cannot be read).
fn locate<R: HashReader>(reader: &R, full_tiles: &[(u64, Hash)], n: u64) -> String {
    let nodes: Vec<NodeId> = full_tiles
        .iter()
        .map(|(i, _)| NodeId::new(TILE_HEIGHT, *i))
        .collect();
    let Ok(parents) = reader.read_hashes(&nodes) else {
        return String::new();
    };
    let mut out = String::new();
    for ((index, got), parent) in full_tiles.iter().zip(parents) {
        if *got != parent {
            let tile = TileId {
                level: 0,
                index: *index,
                width: TILE_WIDTH,
            };
            let up = tile_for_node(NodeId::new(TILE_HEIGHT, *index), n)
                .map(|s| s.tile.path())
                .unwrap_or_default();
            out.push_str(&format!(
                "; {} hashes to {}, but {up} holds {} for it",
                tile.path(),
                STANDARD.encode(got),
                STANDARD.encode(parent)
            ));
        }
    }
    out
}
