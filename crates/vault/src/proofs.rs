//! Serving proofs from the store's tiles.

use evault_merkle::tiles::{TileId, TileReader};
use evault_store::{Store, StoreError};

/// Reads tiles from a [`Store`] for [`evault_merkle::tiles::TiledHashReader`].
pub(crate) struct StoreTiles<'a>(pub &'a dyn Store);

impl TileReader for StoreTiles<'_> {
    type Error = StoreError;

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0.read_tiles(tiles)
    }
}
