//! C2SP tlog-tiles addressing (<https://c2sp.org/tlog-tiles>).
//!
//! A tile at level `L` holds up to 256 consecutive hashes of tree level
//! `8·L`; the seven levels between two tile rows are recomputed from the row
//! below. This module maps tree nodes to tiles, encodes and parses tile and
//! entry-bundle paths, computes which tiles a proof needs, adapts a tile
//! source into a [`HashReader`], and builds the tiles of a growing tree
//! ([`TileBuilder`]).
//!
//! A store may also keep each tile's seven inner levels ([`tile_inner`],
//! not part of the spec and never served as a tile): a reader that has
//! them reads a node instead of rehashing up to 255 row hashes.

use std::collections::BTreeMap;
use std::fmt;

use crate::compact::CompactRange;
use crate::hash::{HASH_SIZE, Hash, node_hash};
use crate::proof::HashReader;
use crate::tree::{LeafRange, NodeId, consistency_ranges, inclusion_ranges, perfect_subtree_hash};

/// Tree levels covered by one tile row.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u16 = 256;
/// Highest tile level the path grammar allows.
pub const MAX_TILE_LEVEL: u8 = 63;

/// A tile of the hash tree: `width` hashes of tree level `8·level`, starting
/// at hash `index·256` of that level. `width < 256` marks a partial tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// Tile level `L`, `0..=63`: the tile holds hashes of tree level `8·L`.
    pub level: u8,
    /// Tile index `N` within its level: the tile starts at row hash `N·256`.
    pub index: u64,
    /// Hashes present, `1..=256`; below 256 the tile is partial (`.p/<W>`).
    pub width: u16,
}

/// Where one node's hash lives: a tile, and the run of `count` row hashes
/// starting at `offset` whose perfect-subtree hash is the node's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileSlot {
    /// The tile holding the run.
    pub tile: TileId,
    /// Position in the tile of the run's first hash, `0..width`.
    pub offset: u16,
    /// Hashes in the run, `2^(node level mod 8)`: 1 when the node is itself
    /// a tile hash.
    pub count: u16,
}

/// A parsed path under a tiled log's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`: an entry bundle; `width` entries.
    Entries {
        /// Bundle index `N`: the bundle holds entries from `N·256` on.
        index: u64,
        /// Entries in the bundle, `1..=256`; below 256 it is partial.
        width: u16,
    },
}

/// Why a tile path was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TilePathError {
    /// Does not start with `tile/`.
    NotATilePath,
    /// Level is not a canonical decimal in `0..=63`.
    BadLevel,
    /// An index element is not `xNNN` (all but last) or `NNN` (last).
    BadIndex,
    /// The index has a redundant leading `x000` element or overflows u64.
    NonCanonicalIndex,
    /// Width is not a canonical decimal in `1..=255`.
    BadWidth,
    /// Something follows the width, or the path is otherwise malformed.
    TrailingData,
}

impl fmt::Display for TilePathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TilePathError::NotATilePath => "path does not start with tile/",
            TilePathError::BadLevel => {
                "tile level must be a decimal from 0 to 63 without leading zeros"
            }
            TilePathError::BadIndex => {
                "tile index must be 3-digit path elements, all but the last prefixed with x"
            }
            TilePathError::NonCanonicalIndex => "tile index is not canonically encoded",
            TilePathError::BadWidth => {
                "partial tile width must be a decimal from 1 to 255 without leading zeros"
            }
            TilePathError::TrailingData => "unexpected data after the tile path",
        })
    }
}

impl std::error::Error for TilePathError {}

impl TileId {
    /// Whether fewer than 256 hashes are present.
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The tile's path, e.g. `tile/0/x001/x234/067.p/8`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}",
            self.level,
            encode_index_width(self.index, self.width)
        )
    }

    /// Size in bytes of the tile's contents.
    pub fn byte_len(&self) -> usize {
        self.width as usize * HASH_SIZE
    }

    /// The tile at `level` holding row hash `row_index`, as wide as a tree of
    /// `tree_size` leaves makes it. `None` if that hash is not complete yet.
    pub fn containing(level: u8, row_index: u64, tree_size: u64) -> Option<TileId> {
        let index = row_index / TILE_WIDTH as u64;
        let width = tile_width(level, index, tree_size)?;
        ((row_index % TILE_WIDTH as u64) < width as u64).then_some(TileId {
            level,
            index,
            width,
        })
    }
}

/// Width of tile `(level, index)` in a tree of `tree_size` leaves, or `None`
/// if the tile is empty (and so must not exist).
pub fn tile_width(level: u8, index: u64, tree_size: u64) -> Option<u16> {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let row_len = tree_size.checked_shr(shift).unwrap_or(0);
    let start = index.checked_mul(TILE_WIDTH as u64)?;
    let avail = row_len.checked_sub(start).filter(|&w| w > 0)?;
    Some(avail.min(TILE_WIDTH as u64) as u16)
}

/// Path of an entry bundle, e.g. `tile/entries/x001/234.p/17`.
pub fn entries_path(index: u64, width: u16) -> String {
    format!("tile/entries/{}", encode_index_width(index, width))
}

/// Encodes a tile index as 3-digit path elements, all but the last prefixed
/// with `x` (1234067 → `x001/x234/067`).
pub fn encode_index(index: u64) -> String {
    let digits = index.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .map(|c| std::str::from_utf8(c).unwrap_or("000"))
        .collect();
    let (last, init) = groups
        .split_last()
        .map_or(("000", &[][..]), |(l, i)| (*l, i));
    let mut out = String::with_capacity(padded.len() + groups.len() * 2);
    for g in init {
        out.push('x');
        out.push_str(g);
        out.push('/');
    }
    out.push_str(last);
    out
}

fn encode_index_width(index: u64, width: u16) -> String {
    if width < TILE_WIDTH {
        format!("{}.p/{width}", encode_index(index))
    } else {
        encode_index(index)
    }
}

/// Parses a path relative to a log prefix: `tile/<L>/<N>[.p/<W>]` or
/// `tile/entries/<N>[.p/<W>]`.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TilePathError> {
    let rest = path
        .strip_prefix("tile/")
        .ok_or(TilePathError::NotATilePath)?;
    let (kind, rest) = rest.split_once('/').ok_or(TilePathError::NotATilePath)?;
    let (index, width) = parse_index_width(rest)?;
    if kind == "entries" {
        return Ok(TilePath::Entries { index, width });
    }
    let level = parse_canonical_decimal(kind)
        .filter(|&l| l <= MAX_TILE_LEVEL as u64)
        .ok_or(TilePathError::BadLevel)? as u8;
    Ok(TilePath::Hashes(TileId {
        level,
        index,
        width,
    }))
}

fn parse_canonical_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn parse_three_digits(s: &str) -> Result<u64, TilePathError> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TilePathError::BadIndex);
    }
    s.parse().map_err(|_| TilePathError::BadIndex)
}

fn parse_index_width(s: &str) -> Result<(u64, u16), TilePathError> {
    let mut index: u64 = 0;
    let mut parts = s.split('/');
    let mut first = true;
    loop {
        let part = parts.next().ok_or(TilePathError::BadIndex)?;
        if let Some(group) = part.strip_prefix('x') {
            let g = parse_three_digits(group)?;
            if first && g == 0 {
                return Err(TilePathError::NonCanonicalIndex);
            }
            index = push_group(index, g)?;
            first = false;
            continue;
        }
        let (last, partial) = match part.strip_suffix(".p") {
            Some(l) => (l, true),
            None => (part, false),
        };
        index = push_group(index, parse_three_digits(last)?)?;
        let width = if partial {
            let w = parts.next().ok_or(TilePathError::BadWidth)?;
            parse_canonical_decimal(w)
                .filter(|w| (1..TILE_WIDTH as u64).contains(w))
                .ok_or(TilePathError::BadWidth)? as u16
        } else {
            TILE_WIDTH
        };
        if parts.next().is_some() {
            return Err(TilePathError::TrailingData);
        }
        return Ok((index, width));
    }
}

fn push_group(index: u64, group: u64) -> Result<u64, TilePathError> {
    index
        .checked_mul(1000)
        .and_then(|i| i.checked_add(group))
        .ok_or(TilePathError::NonCanonicalIndex)
}

/// The tile and slot holding `node`'s hash in a tree of `tree_size` leaves,
/// or `None` if the node is not complete at that size.
pub fn tile_for_node(node: NodeId, tree_size: u64) -> Option<TileSlot> {
    if !node.is_complete_in(tree_size) {
        return None;
    }
    let level = node.level / TILE_HEIGHT;
    let sub = node.level % TILE_HEIGHT;
    let row_start = node.index << sub;
    let tile = TileId::containing(level, row_start, tree_size)?;
    Some(TileSlot {
        tile,
        offset: (row_start % TILE_WIDTH as u64) as u16,
        count: 1 << sub,
    })
}

/// The distinct tiles needed to read `nodes` at `tree_size`, sorted.
/// Nodes not complete at that size are skipped.
pub fn tiles_for_nodes(nodes: &[NodeId], tree_size: u64) -> Vec<TileId> {
    let mut tiles: Vec<TileId> = nodes
        .iter()
        .filter_map(|&n| tile_for_node(n, tree_size))
        .map(|s| s.tile)
        .collect();
    tiles.sort_unstable();
    tiles.dedup();
    tiles
}

fn nodes_of(ranges: &[LeafRange]) -> Vec<NodeId> {
    ranges.iter().flat_map(|r| r.nodes()).collect()
}

/// Tiles a client fetches to build the inclusion proof of `index` at `size`.
pub fn inclusion_proof_tiles(index: u64, size: u64) -> Vec<TileId> {
    if index >= size {
        return Vec::new();
    }
    let mut nodes = nodes_of(&inclusion_ranges(index, size));
    nodes.push(NodeId::new(0, index));
    tiles_for_nodes(&nodes, size)
}

/// Tiles a client fetches to build the consistency proof from `old` to `new`.
pub fn consistency_proof_tiles(old: u64, new: u64) -> Vec<TileId> {
    if old == 0 || old > new {
        return Vec::new();
    }
    tiles_for_nodes(&nodes_of(&consistency_ranges(old, new)), new)
}

/// Why tile contents could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TileDataError {
    /// The contents are not `width × 32` bytes.
    WrongLength {
        /// The tile the contents were for.
        tile: TileId,
        /// Bytes a tile of its width has: `width × 32`.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The slot lies outside the tile.
    SlotOutOfRange(TileSlot),
}

impl fmt::Display for TileDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TileDataError::WrongLength {
                tile,
                expected,
                got,
            } => {
                write!(f, "{} has {got} bytes, expected {expected}", tile.path())
            }
            TileDataError::SlotOutOfRange(s) => write!(
                f,
                "slot {}+{} lies outside {}",
                s.offset,
                s.count,
                s.tile.path()
            ),
        }
    }
}

impl std::error::Error for TileDataError {}

/// Computes a node's hash from the contents of the tile its slot names.
pub fn hash_from_tile(tile_data: &[u8], slot: TileSlot) -> Result<Hash, TileDataError> {
    let expected = slot.tile.byte_len();
    if tile_data.len() != expected {
        return Err(TileDataError::WrongLength {
            tile: slot.tile,
            expected,
            got: tile_data.len(),
        });
    }
    let begin = slot.offset as usize * HASH_SIZE;
    let end = begin + slot.count as usize * HASH_SIZE;
    let run = tile_data
        .get(begin..end)
        .ok_or(TileDataError::SlotOutOfRange(slot))?;
    let row: Vec<Hash> = run
        .chunks_exact(HASH_SIZE)
        .map(|c| {
            let mut h = [0u8; HASH_SIZE];
            h.copy_from_slice(c);
            h
        })
        .collect();
    perfect_subtree_hash(&row).ok_or(TileDataError::SlotOutOfRange(slot))
}

/// Bytes of the inner levels ([`tile_inner`]) of a tile of `width`
/// hashes: 8,128 for a full tile.
pub fn inner_byte_len(width: u16) -> usize {
    (1..TILE_HEIGHT)
        .map(|s| (usize::from(width) >> s) * HASH_SIZE)
        .sum()
}

/// The inner levels of a tile: for each of the seven tree levels between
/// its row and the next tile row, bottom up, the hashes of every node whose
/// leaves all lie in the tile, left to right. A full tile has 254 of them,
/// 128 down to 2; its top node is a hash of the tile row above, so it is
/// not repeated here. A partial tile of width `w` has `w >> s` nodes at
/// sub-level `s`.
///
/// This is what the tree builder computed anyway; keeping it lets a proof
/// read its nodes ([`hash_from_inner`]) instead of rehashing the row.
pub fn tile_inner(tile: TileId, tile_data: &[u8]) -> Result<Vec<u8>, TileDataError> {
    if tile_data.len() != tile.byte_len() {
        return Err(TileDataError::WrongLength {
            tile,
            expected: tile.byte_len(),
            got: tile_data.len(),
        });
    }
    let mut out = Vec::with_capacity(inner_byte_len(tile.width));
    let mut below = tile_data.to_vec();
    for _ in 1..TILE_HEIGHT {
        let level: Vec<u8> = below
            .chunks_exact(2 * HASH_SIZE)
            .flat_map(|pair| {
                let (mut l, mut r) = ([0u8; HASH_SIZE], [0u8; HASH_SIZE]);
                l.copy_from_slice(&pair[..HASH_SIZE]);
                r.copy_from_slice(&pair[HASH_SIZE..]);
                node_hash(&l, &r)
            })
            .collect();
        out.extend_from_slice(&level);
        below = level;
    }
    Ok(out)
}

/// A node's hash read from its tile's inner levels ([`tile_inner`] of the
/// slot's tile): `None` when the slot is a single row hash (read the tile
/// itself) or `inner` does not have the length a tile of that width gives.
pub fn hash_from_inner(inner: &[u8], slot: TileSlot) -> Option<Hash> {
    let width = slot.tile.width;
    if inner.len() != inner_byte_len(width) || !slot.count.is_power_of_two() {
        return None;
    }
    let sub = slot.count.trailing_zeros();
    if sub == 0 || sub >= u32::from(TILE_HEIGHT) || !slot.offset.is_multiple_of(slot.count) {
        return None;
    }
    let index = usize::from(slot.offset >> sub);
    if index >= usize::from(width >> sub) {
        return None;
    }
    let level_start: usize = (1..sub)
        .map(|s| (usize::from(width) >> s) * HASH_SIZE)
        .sum();
    let at = level_start + index * HASH_SIZE;
    inner.get(at..at + HASH_SIZE)?.try_into().ok()
}

/// A source of tile contents (a store, an HTTP client, a directory).
pub trait TileReader {
    /// Why tiles could not be read; surfaces as [`TiledReadError::Source`].
    type Error;

    /// Returns the contents of each tile, in order.
    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, Self::Error>;

    /// Returns the contents of each tile, in order, each with its inner
    /// levels ([`tile_inner`]) where the source keeps them. The default
    /// keeps none, and [`TiledHashReader`] then hashes the rows.
    #[allow(clippy::type_complexity)]
    fn read_tiles_with_inner(
        &self,
        tiles: &[TileId],
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, Self::Error> {
        Ok(self
            .read_tiles(tiles)?
            .into_iter()
            .map(|d| (d, None))
            .collect())
    }
}

/// Error of a [`TiledHashReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum TiledReadError<E> {
    /// A requested node is not complete at the reader's tree size.
    NodeNotInTree(NodeId),
    /// The tile source returned the wrong number of tiles.
    ShortRead,
    /// The tile contents were unusable.
    Data(TileDataError),
    /// The tile source failed.
    Source(E),
}

impl<E: fmt::Display> fmt::Display for TiledReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TiledReadError::NodeNotInTree(n) => write!(f, "node {n:?} is not in the tree"),
            TiledReadError::ShortRead => write!(f, "tile source returned too few tiles"),
            TiledReadError::Data(e) => write!(f, "{e}"),
            TiledReadError::Source(e) => write!(f, "reading tiles: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for TiledReadError<E> {}

/// Serves node hashes for a tree of `tree_size` leaves from tiles, reading
/// each needed tile once per batch.
pub struct TiledHashReader<R> {
    /// Where the tiles come from.
    pub tiles: R,
    /// Tree size in leaves the tiles are read at: it decides each tile's
    /// width, and nodes not complete at it are refused.
    pub tree_size: u64,
}

impl<R: TileReader> HashReader for TiledHashReader<R> {
    type Error = TiledReadError<R::Error>;

    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        let slots: Vec<TileSlot> = nodes
            .iter()
            .map(|&n| tile_for_node(n, self.tree_size).ok_or(TiledReadError::NodeNotInTree(n)))
            .collect::<Result<_, _>>()?;
        let mut wanted: Vec<TileId> = slots.iter().map(|s| s.tile).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let data = self
            .tiles
            .read_tiles_with_inner(&wanted)
            .map_err(TiledReadError::Source)?;
        if data.len() != wanted.len() {
            return Err(TiledReadError::ShortRead);
        }
        let by_tile: BTreeMap<TileId, (Vec<u8>, Option<Vec<u8>>)> =
            wanted.into_iter().zip(data).collect();
        slots
            .iter()
            .map(|s| {
                let (tile, inner) = by_tile.get(&s.tile).ok_or(TiledReadError::ShortRead)?;
                if tile.len() != s.tile.byte_len() {
                    return Err(TiledReadError::Data(TileDataError::WrongLength {
                        tile: s.tile,
                        expected: s.tile.byte_len(),
                        got: tile.len(),
                    }));
                }
                if let Some(h) = inner.as_deref().and_then(|i| hash_from_inner(i, *s)) {
                    return Ok(h);
                }
                hash_from_tile(tile, *s).map_err(TiledReadError::Data)
            })
            .collect()
    }
}

/// Tile levels a tree of up to `u64::MAX` leaves has (tree levels 0, 8, …, 56).
const TILE_LEVELS: usize = 8;

/// Builds a growing tree's tiles from its leaf hashes: each
/// [`TileBuilder::append`] returns every tile the new leaves touched, at its
/// width after them, so partial tiles are rewritten as they grow and a full
/// tile is returned once, when it fills.
///
/// Keeps the tree's frontier and the rightmost (partial) tile of each level,
/// at most 64 hashes and 8 × 8 KiB, never the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TileBuilder {
    frontier: CompactRange,
    /// Per tile level, bottom up: the hashes of the level's rightmost tile
    /// so far; empty when that tile has just filled. The tile's index
    /// follows from the tree size.
    partial: [Vec<u8>; TILE_LEVELS],
}

impl TileBuilder {
    /// The builder of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tiles [`TileBuilder::resume`] reads to continue a tree of `size`
    /// leaves: the partial tile of each level that has one, bottom up.
    pub fn partial_tiles(size: u64) -> Vec<TileId> {
        (0..TILE_LEVELS as u8)
            .filter_map(|level| {
                let row_len = size
                    .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
                    .unwrap_or(0);
                let index = row_len / TILE_WIDTH as u64;
                // At the index after the last full tile, a width is partial.
                let width = tile_width(level, index, size)?;
                Some(TileId {
                    level,
                    index,
                    width,
                })
            })
            .collect()
    }

    /// Continues a stored tree from its frontier and its partial tiles
    /// ([`TileBuilder::partial_tiles`] of the frontier's size), which are
    /// read from `tiles` in one call.
    pub fn resume<R: TileReader>(
        frontier: CompactRange,
        tiles: &R,
    ) -> Result<Self, TiledReadError<R::Error>> {
        let wanted = Self::partial_tiles(frontier.size());
        let data = tiles.read_tiles(&wanted).map_err(TiledReadError::Source)?;
        if data.len() != wanted.len() {
            return Err(TiledReadError::ShortRead);
        }
        let mut partial: [Vec<u8>; TILE_LEVELS] = Default::default();
        for (tile, data) in wanted.into_iter().zip(data) {
            // Appending relies on a partial tile holding exactly the hashes
            // its width says.
            if data.len() != tile.byte_len() {
                return Err(TiledReadError::Data(TileDataError::WrongLength {
                    tile,
                    expected: tile.byte_len(),
                    got: data.len(),
                }));
            }
            if let Some(slot) = partial.get_mut(usize::from(tile.level)) {
                *slot = data;
            }
        }
        Ok(TileBuilder { frontier, partial })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root hash of the tree (RFC 6962 `MTH`).
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends leaf hashes; returns the full contents of every tile they
    /// touched, at its width after them: tiles that filled, in the order
    /// they filled, then the partial tiles that grew, bottom up.
    pub fn append(&mut self, leaves: &[Hash]) -> Vec<(TileId, Vec<u8>)> {
        let mut out = Vec::new();
        // Per level, the index of the partial tile that grew; written once,
        // after the batch, at its final width.
        let mut grown: [Option<u64>; TILE_LEVELS] = [None; TILE_LEVELS];
        let partial = &mut self.partial;
        self.frontier.extend(leaves, |id: NodeId, hash: &Hash| {
            if !id.level.is_multiple_of(TILE_HEIGHT) {
                return;
            }
            let level = id.level / TILE_HEIGHT;
            let (Some(data), Some(grew)) = (
                partial.get_mut(usize::from(level)),
                grown.get_mut(usize::from(level)),
            ) else {
                return;
            };
            let index = id.index / TILE_WIDTH as u64;
            data.extend_from_slice(hash);
            if data.len() == TILE_WIDTH as usize * HASH_SIZE {
                let tile = TileId {
                    level,
                    index,
                    width: TILE_WIDTH,
                };
                // The next node of this level starts the next tile.
                out.push((tile, std::mem::take(data)));
                *grew = None;
            } else {
                *grew = Some(index);
            }
        });
        for (level, (index, data)) in grown.into_iter().zip(&self.partial).enumerate() {
            if let Some(index) = index {
                let tile = TileId {
                    level: level as u8,
                    index,
                    width: (data.len() / HASH_SIZE) as u16,
                };
                out.push((tile, data.clone()));
            }
        }
        out
    }
}

/// Why an entry bundle was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// An entry is longer than the 65,535 bytes a uint16 length allows.
    EntryTooLong(usize),
    /// The bundle ends inside a length prefix or an entry.
    Truncated,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::EntryTooLong(n) => write!(f, "entry of {n} bytes exceeds 65535"),
            BundleError::Truncated => write!(f, "entry bundle is truncated"),
        }
    }
}

impl std::error::Error for BundleError {}

/// Encodes entries as a bundle: each a big-endian uint16 length, then bytes.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, BundleError> {
    let total: usize = entries.iter().map(|e| 2 + e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| BundleError::EntryTooLong(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries.
pub fn parse_entry_bundle(mut data: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (len, rest) = data
            .split_first_chunk::<2>()
            .ok_or(BundleError::Truncated)?;
        let len = u16::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(BundleError::Truncated);
        }
        let (entry, rest) = rest.split_at(len);
        out.push(entry);
        data = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::memory::MemoryTree;

    #[test]
    fn index_encoding_matches_spec_example() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
    }

    #[test]
    fn paths_round_trip() {
        let t = TileId {
            level: 1,
            index: 1234067,
            width: 17,
        };
        assert_eq!(t.path(), "tile/1/x001/x234/067.p/17");
        assert_eq!(parse_tile_path(&t.path()), Ok(TilePath::Hashes(t)));
        let full = TileId {
            level: 0,
            index: 5,
            width: 256,
        };
        assert_eq!(full.path(), "tile/0/005");
        assert_eq!(parse_tile_path("tile/0/005"), Ok(TilePath::Hashes(full)));
        assert_eq!(entries_path(1000, 3), "tile/entries/x001/000.p/3");
        assert_eq!(
            parse_tile_path("tile/entries/x001/000.p/3"),
            Ok(TilePath::Entries {
                index: 1000,
                width: 3
            })
        );
        for i in [0, 1, 999, 1000, 123_456_789, u64::MAX] {
            let p = TileId {
                level: 63,
                index: i,
                width: 256,
            }
            .path();
            assert_eq!(
                parse_tile_path(&p),
                Ok(TilePath::Hashes(TileId {
                    level: 63,
                    index: i,
                    width: 256
                }))
            );
        }
    }

    #[test]
    fn bad_paths_are_rejected() {
        use TilePathError::*;
        let cases = [
            ("tiles/0/000", NotATilePath),
            ("tile/", NotATilePath),
            ("tile/00/000", BadLevel),
            ("tile/64/000", BadLevel),
            ("tile/-1/000", BadLevel),
            ("tile/0/00", BadIndex),
            ("tile/0/0000", BadIndex),
            ("tile/0/x01/000", BadIndex),
            ("tile/0/001/000", TrailingData),
            ("tile/0/x000/001", NonCanonicalIndex),
            (
                "tile/0/x999/x999/x999/x999/x999/x999/999",
                NonCanonicalIndex,
            ),
            ("tile/0/000.p/0", BadWidth),
            ("tile/0/000.p/256", BadWidth),
            ("tile/0/000.p/07", BadWidth),
            ("tile/0/000.p", BadWidth),
            ("tile/0/000/", TrailingData),
            ("tile/0/000.p/5/6", TrailingData),
            ("tile/0/x001", BadIndex),
        ];
        for (p, want) in cases {
            assert_eq!(parse_tile_path(p), Err(want), "{p}");
        }
    }

    #[test]
    fn widths_follow_spec_example() {
        // A tree of size 70,000: 273 full level-0 tiles, one of width 112,
        // one full level-1 tile, one of width 17, one level-2 tile of width 1.
        assert_eq!(tile_width(0, 272, 70_000), Some(256));
        assert_eq!(tile_width(0, 273, 70_000), Some(112));
        assert_eq!(tile_width(0, 274, 70_000), None);
        assert_eq!(tile_width(1, 0, 70_000), Some(256));
        assert_eq!(tile_width(1, 1, 70_000), Some(17));
        assert_eq!(tile_width(2, 0, 70_000), Some(1));
        assert_eq!(tile_width(3, 0, 70_000), None);
        // Size 256: a full level-0 tile and a level-1 tile of width 1.
        assert_eq!(tile_width(0, 0, 256), Some(256));
        assert_eq!(tile_width(1, 0, 256), Some(1));
        assert_eq!(tile_width(7, 0, u64::MAX), Some(255));
        assert_eq!(tile_width(8, 0, u64::MAX), None);
    }

    #[test]
    fn nodes_map_to_slots() {
        // Level-3 node 40 covers row-0 hashes 320..328: tile 0/1, offset 64.
        let s = tile_for_node(NodeId::new(3, 40), 1000).unwrap();
        assert_eq!(
            s.tile,
            TileId {
                level: 0,
                index: 1,
                width: 256
            }
        );
        assert_eq!((s.offset, s.count), (64, 8));
        // Level-9 node 0 covers level-8 hashes 0..2: tile 1/0, partial at 1000 leaves.
        let s = tile_for_node(NodeId::new(9, 0), 1000).unwrap();
        assert_eq!(
            s.tile,
            TileId {
                level: 1,
                index: 0,
                width: 3
            }
        );
        assert_eq!((s.offset, s.count), (0, 2));
        assert!(tile_for_node(NodeId::new(9, 1), 1000).is_none());
        assert!(tile_for_node(NodeId::new(0, 1000), 1000).is_none());
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7u8; 300]];
        let b = encode_entry_bundle(&entries).unwrap();
        assert_eq!(parse_entry_bundle(&b).unwrap(), entries);
        assert_eq!(
            parse_entry_bundle(&b[..b.len() - 1]),
            Err(BundleError::Truncated)
        );
        assert_eq!(parse_entry_bundle(&[0]), Err(BundleError::Truncated));
        assert_eq!(
            encode_entry_bundle(&[vec![0u8; 65_536]]),
            Err(BundleError::EntryTooLong(65_536))
        );
    }

    #[test]
    fn hash_from_tile_checks_lengths() {
        let tile = TileId {
            level: 0,
            index: 0,
            width: 2,
        };
        let slot = TileSlot {
            tile,
            offset: 0,
            count: 2,
        };
        assert!(matches!(
            hash_from_tile(&[0; 63], slot),
            Err(TileDataError::WrongLength { .. })
        ));
        let bad = TileSlot {
            tile,
            offset: 1,
            count: 2,
        };
        assert_eq!(
            hash_from_tile(&[0; 64], bad),
            Err(TileDataError::SlotOutOfRange(bad))
        );
    }

    /// Tiles as a store keeps them: the latest contents per coordinate.
    type Stored = BTreeMap<(u8, u64), Vec<u8>>;

    /// Every tile of the reference tree at its size, read off its nodes.
    fn reference_tiles(tree: &MemoryTree) -> Stored {
        let mut out = Stored::new();
        for level in 0..TILE_LEVELS as u8 {
            let mut index = 0;
            while let Some(width) = tile_width(level, index, tree.size()) {
                let mut data = Vec::new();
                for i in 0..u64::from(width) {
                    let node = NodeId::new(level * TILE_HEIGHT, index * TILE_WIDTH as u64 + i);
                    data.extend_from_slice(tree.node(node).unwrap());
                }
                out.insert((level, index), data);
                index += 1;
            }
        }
        out
    }

    /// Writes `touched` over `stored` as a store would, checking each tile
    /// has the width of a tree of `size` and extends what it replaces.
    fn store(stored: &mut Stored, touched: Vec<(TileId, Vec<u8>)>, size: u64) {
        for (tile, data) in touched {
            assert_eq!(tile_width(tile.level, tile.index, size), Some(tile.width));
            assert_eq!(data.len(), tile.byte_len(), "{}", tile.path());
            let old = stored.insert((tile.level, tile.index), data.clone());
            assert!(old.is_none_or(|o| o.len() < data.len() && data.starts_with(&o)));
        }
    }

    fn leaf(i: u64) -> Hash {
        leaf_hash(&i.to_be_bytes())
    }

    /// xorshift64: batch sizes without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn one_at_a_time_gives_the_reference_tree_tiles() {
        let mut builder = TileBuilder::new();
        let mut tree = MemoryTree::new();
        let mut stored = Stored::new();
        for i in 0..1000 {
            let touched = builder.append(&[leaf(i)]);
            tree.push(leaf(i));
            // The tiles that changed are exactly the ones returned.
            let reference = reference_tiles(&tree);
            let changed: Vec<(u8, u64)> = reference
                .iter()
                .filter(|(k, v)| stored.get(k) != Some(v))
                .map(|(k, _)| *k)
                .collect();
            let returned: Vec<(u8, u64)> =
                touched.iter().map(|(t, _)| (t.level, t.index)).collect();
            assert_eq!(returned, changed, "size {}", i + 1);
            store(&mut stored, touched, i + 1);
            assert_eq!(stored, reference, "size {}", i + 1);
            assert_eq!((builder.size(), builder.root()), (i + 1, tree.root()));
        }
    }

    #[test]
    fn random_batches_give_the_tiles_of_one_at_a_time() {
        for seed in [1u64, 0x9e37_79b9, 0xdead_beef, 42] {
            let mut rng = seed;
            let mut batched = TileBuilder::new();
            let mut single = TileBuilder::new();
            let mut tree = MemoryTree::new();
            let (mut stored_batched, mut stored_single) = (Stored::new(), Stored::new());
            let mut size = 0u64;
            while size < 1000 {
                // 0..=300: empty batches, and batches that fill a tile and
                // start the next.
                let n = (next(&mut rng) % 301).min(1000 - size);
                let leaves: Vec<Hash> = (size..size + n).map(leaf).collect();
                let touched = batched.append(&leaves);
                let mut want = BTreeMap::new();
                for l in &leaves {
                    tree.push(*l);
                    for (tile, data) in single.append(std::slice::from_ref(l)) {
                        want.insert((tile.level, tile.index), (tile, data));
                    }
                }
                size += n;
                let got: BTreeMap<(u8, u64), (TileId, Vec<u8>)> = touched
                    .iter()
                    .map(|(t, d)| ((t.level, t.index), (*t, d.clone())))
                    .collect();
                assert_eq!(got.len(), touched.len(), "a tile returned twice");
                assert_eq!(got, want, "seed {seed}, size {size}");
                store(&mut stored_batched, touched, size);
                store(&mut stored_single, want.into_values().collect(), size);
                assert_eq!(stored_batched, stored_single);
                assert_eq!(stored_batched, reference_tiles(&tree), "size {size}");
                assert_eq!(batched, single);
                assert_eq!(batched.root(), tree.root());
            }
        }
    }

    #[test]
    fn large_batches_reach_the_upper_tile_levels() {
        // Past 65,536 leaves: a full level-1 tile and a level-2 tile.
        let mut builder = TileBuilder::new();
        let mut tree = MemoryTree::new();
        let mut stored = Stored::new();
        let mut size = 0;
        for n in [65_535u64, 1, 4_463] {
            let leaves: Vec<Hash> = (size..size + n).map(leaf).collect();
            let touched = builder.append(&leaves);
            leaves.iter().for_each(|l| tree.push(*l));
            size += n;
            store(&mut stored, touched, size);
            assert_eq!(stored, reference_tiles(&tree), "size {size}");
        }
        assert!(stored.contains_key(&(2, 0)));
    }

    /// A store's tiles, served at any width up to the stored one.
    struct MapTiles(Stored);

    impl TileReader for MapTiles {
        type Error = TileId;

        fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, TileId> {
            tiles
                .iter()
                .map(|t| {
                    let data = self.0.get(&(t.level, t.index)).ok_or(*t)?;
                    data.get(..t.byte_len()).map(<[u8]>::to_vec).ok_or(*t)
                })
                .collect()
        }
    }

    /// [`MapTiles`] that also keeps every tile's inner levels, as a store
    /// that has them does.
    struct InnerTiles(Stored);

    impl TileReader for InnerTiles {
        type Error = TileId;

        fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, TileId> {
            MapTiles(self.0.clone()).read_tiles(tiles)
        }

        fn read_tiles_with_inner(
            &self,
            tiles: &[TileId],
        ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, TileId> {
            self.read_tiles(tiles)?
                .into_iter()
                .zip(tiles)
                .map(|(d, t)| {
                    let inner = tile_inner(*t, &d).map_err(|_| *t)?;
                    Ok((d, Some(inner)))
                })
                .collect()
        }
    }

    #[test]
    fn inner_levels_are_the_tree_nodes() {
        let mut tree = MemoryTree::new();
        let size = 3 * 65_536 + 2 * 256 + 77;
        for i in 0..size {
            tree.push(leaf(i));
        }
        let tiles = reference_tiles(&tree);
        assert_eq!(inner_byte_len(TILE_WIDTH), 254 * HASH_SIZE);
        let mut checked = 0;
        for (&(level, index), data) in &tiles {
            let width = (data.len() / HASH_SIZE) as u16;
            let tile = TileId {
                level,
                index,
                width,
            };
            let inner = tile_inner(tile, data).unwrap();
            assert_eq!(inner.len(), inner_byte_len(width));
            for sub in 1..TILE_HEIGHT {
                for i in 0..u64::from(width >> sub) {
                    let node = NodeId::new(
                        level * TILE_HEIGHT + sub,
                        ((index * TILE_WIDTH as u64) >> sub) + i,
                    );
                    let slot = tile_for_node(node, size).unwrap();
                    assert_eq!(slot.tile, tile);
                    let want = tree.node(node).unwrap();
                    assert_eq!(hash_from_inner(&inner, slot).as_ref(), Some(want));
                    assert_eq!(hash_from_tile(data, slot).as_ref(), Ok(want));
                    checked += 1;
                }
            }
            // A row hash is read from the tile, never from the inner levels.
            let row = TileSlot {
                tile,
                offset: 0,
                count: 1,
            };
            assert_eq!(hash_from_inner(&inner, row), None);
            assert_eq!(
                hash_from_inner(&inner[1..], TileSlot { count: 2, ..row }),
                None
            );
        }
        // 770 full level-0 tiles alone have 195,580 inner nodes.
        assert!(checked > 195_580, "{checked}");
        assert!(matches!(
            tile_inner(
                TileId {
                    level: 0,
                    index: 0,
                    width: 3
                },
                &[0; 95]
            ),
            Err(TileDataError::WrongLength { .. })
        ));
    }

    #[test]
    fn proofs_from_inner_levels_equal_proofs_from_rows() {
        let mut tree = MemoryTree::new();
        let mut stored = Stored::new();
        let mut builder = TileBuilder::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut sizes = vec![1, 2, 255, 256, 257, 65_535, 65_536, 65_537];
        sizes.extend((0..40).map(|_| 1 + next(&mut state) % 140_000));
        sizes.sort_unstable();
        for size in sizes {
            let grow: Vec<Hash> = (tree.size()..size).map(leaf).collect();
            for &h in &grow {
                tree.push(h);
            }
            store(&mut stored, builder.append(&grow), size);
            let rows = TiledHashReader {
                tiles: MapTiles(stored.clone()),
                tree_size: size,
            };
            let inner = TiledHashReader {
                tiles: InnerTiles(stored.clone()),
                tree_size: size,
            };
            for _ in 0..8 {
                let index = next(&mut state) % size;
                let want = tree.inclusion_proof(index, size).unwrap();
                assert_eq!(crate::inclusion_proof(&rows, index, size).unwrap(), want);
                assert_eq!(crate::inclusion_proof(&inner, index, size).unwrap(), want);
                let old = 1 + next(&mut state) % size;
                let want = tree.consistency_proof(old, size).unwrap();
                assert_eq!(crate::consistency_proof(&rows, old, size).unwrap(), want);
                assert_eq!(crate::consistency_proof(&inner, old, size).unwrap(), want);
            }
            assert_eq!(crate::root(&inner, size).unwrap(), tree.root());
        }
    }

    fn frontier(tree: &MemoryTree) -> CompactRange {
        let nodes = CompactRange::nodes_for_size(tree.size());
        let hashes = nodes.iter().map(|n| *tree.node(*n).unwrap()).collect();
        CompactRange::from_hashes(tree.size(), hashes).unwrap()
    }

    #[test]
    fn resumes_from_stored_tiles() {
        let mut builder = TileBuilder::new();
        let mut tree = MemoryTree::new();
        let mut stored = Stored::new();
        for i in 0..1000u64 {
            let resumed = TileBuilder::resume(frontier(&tree), &MapTiles(stored.clone())).unwrap();
            assert_eq!(resumed, builder, "size {i}");
            store(&mut stored, builder.append(&[leaf(i)]), i + 1);
            tree.push(leaf(i));
        }
        assert_eq!(
            TileBuilder::partial_tiles(70_000),
            vec![
                TileId {
                    level: 0,
                    index: 273,
                    width: 112
                },
                TileId {
                    level: 1,
                    index: 1,
                    width: 17
                },
                TileId {
                    level: 2,
                    index: 0,
                    width: 1
                },
            ]
        );
        assert!(TileBuilder::partial_tiles(0).is_empty());
        assert!(TileBuilder::partial_tiles(256).len() == 1);
    }

    #[test]
    fn resume_refuses_missing_or_wrong_tiles() {
        let mut builder = TileBuilder::new();
        let mut tree = MemoryTree::new();
        let mut stored = Stored::new();
        for i in 0..300u64 {
            tree.push(leaf(i));
        }
        let leaves: Vec<Hash> = (0..300).map(leaf).collect();
        store(&mut stored, builder.append(&leaves), 300);
        let partial = TileId {
            level: 0,
            index: 1,
            width: 44,
        };
        let mut missing = stored.clone();
        missing.remove(&(0, 1));
        assert_eq!(
            TileBuilder::resume(frontier(&tree), &MapTiles(missing)),
            Err(TiledReadError::Source(partial))
        );

        struct Short;
        impl TileReader for Short {
            type Error = ();
            fn read_tiles(&self, _: &[TileId]) -> Result<Vec<Vec<u8>>, ()> {
                Ok(Vec::new())
            }
        }
        assert_eq!(
            TileBuilder::resume(frontier(&tree), &Short),
            Err(TiledReadError::ShortRead)
        );

        struct Long;
        impl TileReader for Long {
            type Error = ();
            fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, ()> {
                Ok(tiles.iter().map(|t| vec![0; t.byte_len() + 32]).collect())
            }
        }
        assert_eq!(
            TileBuilder::resume(frontier(&tree), &Long),
            Err(TiledReadError::Data(TileDataError::WrongLength {
                tile: partial,
                expected: 44 * 32,
                got: 45 * 32
            }))
        );
    }
}
