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
use evault_note::{Checkpoint, Verifiers, log_verifier, open};
use evault_verify::KeyAction;
use serde::Serialize;

use crate::entries::{check_entry, key_event};
use crate::source::{
    FetchError, LogSource, SourceTiles, fetch_bundle, fetch_checkpoint, fetch_tile,
};
use crate::state::{LearnedKey, LogState, RetiredKey, TrustedTree, short_name};

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
    /// Keys the log added by key events among the new entries.
    pub learned_keys: Vec<LearnedKey>,
    /// Keys the log retired by key events among the new entries.
    pub retired_keys: Vec<RetiredKey>,
    /// Key events among them that taught nothing (signed by no key the
    /// monitor knows: history before its keys).
    pub key_notes: Vec<String>,
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
    let cp = Checkpoint::parse(&note.text).map_err(|e| {
        failed(
            FailureKind::BadCheckpoint,
            format!("log {name}: the signed note at {where_} is not a checkpoint: {e}"),
        )
    })?;
    check_signers(log, served, cp.size, &where_)?;
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
                learned_keys: Vec::new(),
                retired_keys: Vec::new(),
                key_notes: Vec::new(),
            });
        }
    }
    grow(input, &cp, note_text)
}

/// That the served note (which opened with the trusted keys) is signed as
/// the log's keys require for a tree of `size`: by a key not retired by a
/// key event the tree holds, and under policy all by every pinned key that
/// counts for it.
fn check_signers(log: &LogState, served: &[u8], size: u64, where_: &str) -> Result<(), CheckError> {
    let name = &log.name;
    // A key the log retired no longer vouches for a tree that holds its
    // retirement: another trusted key must have signed.
    if !log.retired_keys.is_empty() {
        let current = log
            .verifiers_for_size(size)
            .map_err(|e| failed(FailureKind::KeyChanged, e))?;
        if current.is_empty() || open(served, &current).is_err() {
            let retired = log
                .retired_keys
                .iter()
                .filter(|r| r.retired_at < size)
                .map(|r| format!("{} (retired at leaf {})", short_name(&r.key), r.retired_at))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(failed(
                FailureKind::BadCheckpoint,
                format!(
                    "log {name}: the checkpoint at {where_} (size {size}) is signed only by keys \
                     the log retired before that size: {retired}; a retired key no longer \
                     counts"
                ),
            ));
        }
    }
    if let Some(missing) = log
        .missing_signature(served, size)
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
    Ok(())
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
    let mut keys = input.log.clone();
    let mut key_notes = Vec::new();
    let mut entries_checked = 0;
    if input.entries {
        entries_checked = check_entries(input, start, n, &leaves, &mut keys, &mut key_notes)?;
        // A retirement among the new entries binds this very checkpoint.
        if keys.retired_keys.len() > input.log.retired_keys.len() {
            let where_ = format!("{}checkpoint", slash(&src.describe()));
            check_signers(&keys, note_text.as_bytes(), n, &where_)?;
        }
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
        learned_keys: keys.learned_keys.split_off(input.log.learned_keys.len()),
        retired_keys: keys.retired_keys.split_off(input.log.retired_keys.len()),
        key_notes,
    })
}

/// Fetches the entry bundles of leaves `start..n` and checks each entry
/// against its authenticated leaf hash `leaves[i - start]`, then against
/// the log's kind. Key events of an evault evidence log update `keys`.
fn check_entries(
    input: &CheckInput<'_>,
    start: u64,
    n: u64,
    leaves: &[Hash],
    keys: &mut LogState,
    notes: &mut Vec<String>,
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
            let note = follow_key_event(keys, entry, leaf_index).map_err(|e| {
                failed(
                    FailureKind::BadEntry,
                    format!("log {name}: entry {leaf_index} in {path}: {e}"),
                )
            })?;
            notes.extend(note);
            checked += 1;
        }
    }
    Ok(checked)
}

/// Applies the key event in `entry` (leaf `leaf_index`), if it is one,
/// to `keys`: checked against the keys that count at that point of the log
/// (a key retired earlier no longer vouches for anything), it adds its new
/// key or retires its old one. One already applied is skipped; one signed
/// by no key the monitor knows is history before its keys, skipped with a
/// note (returned); one signed only by keys that no longer count is an
/// error.
fn follow_key_event(
    keys: &mut LogState,
    entry: &[u8],
    leaf_index: u64,
) -> Result<Option<String>, String> {
    let Some((event, note)) = key_event(keys.kind, entry)? else {
        return Ok(None);
    };
    if event.origin != keys.origin {
        return Ok(None);
    }
    let known = keys.keys().any(|k| *k == event.subject);
    let done = match event.action {
        KeyAction::Add => known,
        KeyAction::Retire => keys.retired_at(&event.subject).is_some(),
    };
    if done {
        return Ok(None);
    }
    let set = |trusted: Vec<&String>| -> Result<Verifiers, String> {
        let mut set = Verifiers::new();
        for k in trusted {
            let v = log_verifier(k).map_err(|e| format!("key {k:?}: {e}"))?;
            set.insert_boxed(v).map_err(|e| e.to_string())?;
        }
        Ok(set)
    };
    let subject = (event.action == KeyAction::Add).then_some(&event.subject);
    // Signed by no key the monitor knows: history from before the keys it
    // trusts (a monitor pinned to a later key). Nothing is learned from it.
    let any_known = set(keys.keys().chain(subject).collect())?;
    if event.open(&note, &any_known).is_err() {
        return Ok(Some(format!(
            "ignored the {} of {} at leaf {leaf_index}: signed by no trusted key",
            event.action.as_str(),
            event.subject
        )));
    }
    // Signed by known keys, so it must be by one that still counts there.
    let current = set(keys.keys_for(leaf_index).chain(subject).collect())?;
    event.open(&note, &current).map_err(|e| {
        format!(
            "the log's key event ({} {}) is not signed by a key that counts at that leaf (a \
             retired key alone no longer vouches for anything): {e}",
            event.action.as_str(),
            short_name(&event.subject)
        )
    })?;
    match event.action {
        KeyAction::Add => keys.learned_keys.push(LearnedKey {
            key: event.subject,
            added_at: leaf_index,
        }),
        // A key it never trusted: nothing to retire.
        KeyAction::Retire if !known => {}
        KeyAction::Retire => keys.retired_keys.push(RetiredKey {
            key: event.subject,
            retired_at: leaf_index,
        }),
    }
    Ok(None)
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
