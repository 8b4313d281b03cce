//! Serving proofs from the store's tiles, through a cache of hot tiles.

use std::collections::HashMap;
use std::sync::Mutex;

use evault_merkle::tiles::{TILE_WIDTH, TileId, TileReader};
use evault_store::{LogId, Store, StoreError};

/// Reads one log's tiles from a [`Store`] for
/// [`evault_merkle::tiles::TiledHashReader`], serving full tiles from
/// `cache` (which must be that log's) when it can.
pub(crate) struct StoreTiles<'a> {
    pub store: &'a dyn Store,
    pub log: LogId,
    pub cache: Option<&'a TileCache>,
}

impl<'a> StoreTiles<'a> {
    /// Straight from the store (start-up checks: verify what is on disk).
    pub fn uncached(store: &'a dyn Store, log: LogId) -> Self {
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
        let Some(cache) = self.cache else {
            return self.store.read_tiles(self.log, tiles);
        };
        let mut out: Vec<Option<Vec<u8>>> = tiles.iter().map(|t| cache.get(t)).collect();
        let missing: Vec<TileId> = tiles
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(t, _)| *t)
            .collect();
        if !missing.is_empty() {
            let mut fetched = self.store.read_tiles(self.log, &missing)?.into_iter();
            for (slot, tile) in out.iter_mut().zip(tiles) {
                if slot.is_none() {
                    let data = fetched.next().ok_or_else(|| {
                        StoreError::Corrupt("store returned fewer tiles than asked".into())
                    })?;
                    cache.put(*tile, &data);
                    *slot = Some(data);
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// Full tiles never change, so they can be cached without invalidation;
/// partial tiles grow and are always read from the store. Keyed by tile
/// position only: each log has its own cache.
pub(crate) struct TileCache {
    capacity: usize,
    tiles: Mutex<HashMap<(u8, u64), Vec<u8>>>,
}

impl TileCache {
    pub fn new(capacity: usize) -> Self {
        TileCache {
            capacity,
            tiles: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, tile: &TileId) -> Option<Vec<u8>> {
        if tile.width != TILE_WIDTH {
            return None;
        }
        let tiles = self.tiles.lock().ok()?;
        tiles.get(&(tile.level, tile.index)).cloned()
    }

    fn put(&self, tile: TileId, data: &[u8]) {
        if tile.width != TILE_WIDTH || self.capacity == 0 {
            return;
        }
        let Ok(mut tiles) = self.tiles.lock() else {
            return;
        };
        if tiles.len() >= self.capacity {
            // Evict an arbitrary entry (hash order): cheap, and the upper
            // levels, read by every proof, come straight back.
            if let Some(victim) = tiles.keys().next().copied() {
                tiles.remove(&victim);
            }
        }
        tiles.insert((tile.level, tile.index), data.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_only_full_tiles_and_stays_bounded() {
        let cache = TileCache::new(2);
        let full = |i| TileId {
            level: 0,
            index: i,
            width: TILE_WIDTH,
        };
        let partial = TileId {
            level: 0,
            index: 9,
            width: 3,
        };
        cache.put(partial, &[1; 96]);
        assert!(cache.get(&partial).is_none());
        cache.put(full(1), &[1; 8192]);
        cache.put(full(2), &[2; 8192]);
        cache.put(full(3), &[3; 8192]);
        let held = (1..=3).filter(|&i| cache.get(&full(i)).is_some()).count();
        assert_eq!(held, 2);
        assert_eq!(cache.get(&full(3)).map(|d| d[0]), Some(3));
    }
}
