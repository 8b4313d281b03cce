//! Serving proofs from the store's tiles, through a cache of hot tiles.
//!
//! A proof reads each node it needs from a tile's inner levels
//! ([`evault_merkle::tiles::tile_inner`]): stored with every full tile,
//! and computed once per width for a partial tile and kept here, so a
//! proof at any size hashes only what verifying it against the signed root
//! takes.

use std::collections::HashMap;
use std::sync::Mutex;

use evault_merkle::tiles::{TILE_WIDTH, TileId, TileReader, tile_inner};
use evault_store::{LogId, LogStore, StoreError};

/// A tile's row and, where known, its inner levels.
type Expanded = (Vec<u8>, Option<Vec<u8>>);

/// Reads one log's tiles from a [`LogStore`] for
/// [`evault_merkle::tiles::TiledHashReader`], serving tiles from `cache`
/// (which must be that log's) when it can.
pub(crate) struct StoreTiles<'a> {
    pub store: &'a dyn LogStore,
    pub log: LogId,
    pub cache: Option<&'a TileCache>,
}

impl<'a> StoreTiles<'a> {
    /// Straight from the store, rows only (start-up checks and fsck:
    /// verify what is on disk from the rows themselves, so stored inner
    /// levels can never stand in for a changed row).
    pub fn uncached(store: &'a dyn LogStore, log: LogId) -> Self {
        StoreTiles {
            store,
            log,
            cache: None,
        }
    }
}

impl TileReader for StoreTiles<'_> {
    type Error = StoreError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        if self.cache.is_none() {
            return self.store.read_tiles(self.log, tiles);
        }
        Ok(self
            .read_tiles_with_inner(tiles)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    fn read_tiles_with_inner(&self, tiles: &[TileId]) -> Result<Vec<Expanded>, StoreError> {
        let Some(cache) = self.cache else {
            // Rows only: see `uncached`.
            return Ok(self
                .store
                .read_tiles(self.log, tiles)?
                .into_iter()
                .map(|d| (d, None))
                .collect());
        };
        let mut out: Vec<Option<Expanded>> = tiles.iter().map(|t| cache.get(t)).collect();
        let missing: Vec<TileId> = tiles
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(t, _)| *t)
            .collect();
        if !missing.is_empty() {
            let mut fetched = self
                .store
                .read_tiles_with_inner(self.log, &missing)?
                .into_iter();
            for (slot, tile) in out.iter_mut().zip(tiles) {
                if slot.is_none() {
                    let (data, inner) = fetched.next().ok_or_else(|| {
                        StoreError::Corrupt("store returned fewer tiles than asked".into())
                    })?;
                    // A tile without stored inner levels (a partial one, a
                    // full one read at a smaller width, a store that keeps
                    // none) gets them computed once: at most 254 hashes,
                    // then every later proof reads them.
                    let inner = inner.or_else(|| tile_inner(*tile, &data).ok());
                    cache.put(*tile, &data, inner.as_deref());
                    *slot = Some((data, inner));
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// Tiles of one log recently used by proofs, each with its inner levels. A
/// tile's contents at a given width never change (a wider version only
/// extends them), so nothing is ever invalidated: full tiles are keyed by
/// position, partial ones by position and width. Each log has its own
/// cache.
pub(crate) struct TileCache {
    capacity: usize,
    full: Mutex<HashMap<(u8, u64), Expanded>>,
    /// The right edge: a few partial tiles per level, replaced as the tree
    /// grows.
    partial: Mutex<HashMap<TileId, Expanded>>,
}

/// Partial tiles kept: the right edge of a few recent sizes, per level.
const PARTIAL_CAPACITY: usize = 64;

impl TileCache {
    pub fn new(capacity: usize) -> Self {
        TileCache {
            capacity,
            full: Mutex::new(HashMap::new()),
            partial: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, tile: &TileId) -> Option<Expanded> {
        if tile.width == TILE_WIDTH {
            let tiles = self.full.lock().ok()?;
            tiles.get(&(tile.level, tile.index)).cloned()
        } else {
            let tiles = self.partial.lock().ok()?;
            tiles.get(tile).cloned()
        }
    }

    fn put(&self, tile: TileId, data: &[u8], inner: Option<&[u8]>) {
        if self.capacity == 0 {
            return;
        }
        let entry = (data.to_vec(), inner.map(<[u8]>::to_vec));
        if tile.width == TILE_WIDTH {
            if let Ok(mut tiles) = self.full.lock() {
                bounded_insert(&mut tiles, (tile.level, tile.index), entry, self.capacity);
            }
        } else if let Ok(mut tiles) = self.partial.lock() {
            bounded_insert(&mut tiles, tile, entry, PARTIAL_CAPACITY);
        }
    }
}

/// Inserts, first evicting an arbitrary entry (hash order) when full: cheap,
/// and the upper levels, read by every proof, come straight back.
fn bounded_insert<K: std::hash::Hash + Eq + Copy, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    capacity: usize,
) {
    if map.len() >= capacity
        && !map.contains_key(&key)
        && let Some(victim) = map.keys().next().copied()
    {
        map.remove(&victim);
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_full_and_partial_tiles_and_stays_bounded() {
        let cache = TileCache::new(2);
        let full = |i| TileId {
            level: 0,
            index: i,
            width: TILE_WIDTH,
        };
        let partial = |w| TileId {
            level: 0,
            index: 9,
            width: w,
        };
        cache.put(partial(3), &[1; 96], Some(&[2; 32]));
        assert_eq!(
            cache.get(&partial(3)),
            Some((vec![1; 96], Some(vec![2; 32])))
        );
        // Another width of the same tile is another entry.
        assert_eq!(cache.get(&partial(4)), None);
        cache.put(full(1), &[1; 8192], None);
        cache.put(full(2), &[2; 8192], None);
        cache.put(full(3), &[3; 8192], None);
        let held = (1..=3).filter(|&i| cache.get(&full(i)).is_some()).count();
        assert_eq!(held, 2);
        assert_eq!(cache.get(&full(3)).map(|d| d.0[0]), Some(3));
        for w in 1..=200 {
            cache.put(partial(w), &vec![0; usize::from(w) * 32], None);
        }
        assert_eq!(cache.partial.lock().unwrap().len(), PARTIAL_CAPACITY);
        assert!(cache.get(&partial(200)).is_some());
        let off = TileCache::new(0);
        off.put(full(1), &[1; 8192], None);
        assert_eq!(off.get(&full(1)), None);
    }
}
