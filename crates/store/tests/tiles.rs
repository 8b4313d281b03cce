//! Tiles: partial tiles grow in place, narrower reads get a prefix, wider
//! ones are unavailable; proofs served from stored tiles match MemoryTree.

mod common;

use common::{StoreTiles, TileBuilder, append_rows, fresh, rows};
use evault_merkle::tiles::{TileId, TiledHashReader, inclusion_proof_tiles, tile_width};
use evault_merkle::{MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root};
use evault_store::{AppendBatch, LogId, Store, StoreError};

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId {
        level,
        index,
        width,
    }
}

fn hashes(n: usize, tag: u8) -> Vec<u8> {
    (0..n as u64).flat_map(|i| common::h(tag, i)).collect()
}

#[test]
fn partial_tile_grows_and_serves_prefixes() {
    let (_dir, _path, store) = fresh();
    let data = hashes(256, 7);
    // Grow tile 0/0 through widths 3, 10, 256 with batches of records (the
    // store checks tile widths against the tree size, so records go along).
    let mut size = 0u64;
    for width in [3u16, 10, 256] {
        let recs = rows(size..u64::from(width));
        let t = tile(0, 0, width);
        let mut touched = vec![(t, data[..t.byte_len()].to_vec())];
        if width == 256 {
            // A full level-0 tile completes level-8 node 0: tile 1/0 width 1.
            touched.push((tile(1, 0, 1), hashes(1, 9)));
        }
        store
            .append(&AppendBatch::new(size, &recs, &touched))
            .unwrap();
        size = u64::from(width);

        // Every width up to the stored one reads back as a prefix.
        for w in 1..=width {
            let got = store.read_tiles(LogId::Evidence, &[tile(0, 0, w)]).unwrap();
            assert_eq!(got, vec![data[..w as usize * 32].to_vec()], "width {w}");
        }
        // Wider than stored is unavailable.
        if width < 256 {
            assert!(matches!(
                store.read_tiles(LogId::Evidence, &[tile(0, 0, width + 1)]),
                Err(StoreError::TileUnavailable(t)) if t == tile(0, 0, width + 1)
            ));
        }
    }
    // Several tiles in one call, in order.
    let got = store
        .read_tiles(
            LogId::Evidence,
            &[tile(1, 0, 1), tile(0, 0, 5), tile(0, 0, 256)],
        )
        .unwrap();
    assert_eq!(got, vec![hashes(1, 9), data[..160].to_vec(), data.clone()]);
    // Missing tiles and impossible widths are unavailable, not errors of
    // another kind.
    for t in [
        tile(0, 1, 1),
        tile(2, 0, 1),
        tile(0, 0, 0),
        tile(0, 0, 257),
        tile(0, u64::MAX, 1),
    ] {
        assert!(
            matches!(store.read_tiles(LogId::Evidence, &[t]), Err(StoreError::TileUnavailable(u)) if u == t),
            "{t:?}"
        );
    }
    assert_eq!(
        store.read_tiles(LogId::Evidence, &[]).unwrap(),
        Vec::<Vec<u8>>::new()
    );
}

/// Builds a tree in uneven batches, checking after each that proofs served
/// from the store's tiles (through TiledHashReader) equal MemoryTree's, at
/// the current size and at earlier sizes (which read narrower prefixes).
#[test]
fn tiled_proofs_match_memory_tree() {
    let (_dir, _path, store) = fresh();
    let mut tb = TileBuilder::new();
    let mut mem = MemoryTree::new();
    let all = rows(0..2100);
    let mut sizes = Vec::new();
    let mut start = 0usize;
    for (n, batch) in [1usize, 2, 5, 250, 300, 7, 1, 512, 1000, 22]
        .into_iter()
        .enumerate()
    {
        let chunk = &all[start..start + batch];
        start += batch;
        append_rows(&store, &mut tb, chunk);
        for r in chunk {
            mem.push(leaf_hash(&r.leaf_data));
        }
        let size = start as u64;
        sizes.push(size);
        assert_eq!(store.tree_size(LogId::Evidence).unwrap(), size);

        let reader = TiledHashReader {
            tiles: StoreTiles(&store, LogId::Evidence),
            tree_size: size,
        };
        assert_eq!(root(&reader, size).unwrap(), mem.root(), "batch {n}");
        assert_eq!(tb.root(), mem.root());

        // Every earlier size's root, and consistency to now.
        for &old in &sizes {
            let old_reader = TiledHashReader {
                tiles: StoreTiles(&store, LogId::Evidence),
                tree_size: old,
            };
            assert_eq!(
                root(&old_reader, old).unwrap(),
                mem.root_at(old).unwrap(),
                "root at {old}"
            );
            assert_eq!(
                consistency_proof(&reader, old, size).unwrap(),
                mem.consistency_proof(old, size).unwrap(),
                "consistency {old} -> {size}"
            );
        }
        // Inclusion for a spread of leaves (all of them in small trees).
        let step = (size / 97).max(1);
        for index in (0..size).step_by(step as usize).chain([size - 1]) {
            assert_eq!(
                inclusion_proof(&reader, index, size).unwrap(),
                mem.inclusion_proof(index, size).unwrap(),
                "inclusion {index} in {size}"
            );
            // The tiles a client would fetch are all available.
            store
                .read_tiles(LogId::Evidence, &inclusion_proof_tiles(index, size))
                .unwrap();
        }
    }
    assert_eq!(start, 2100);

    // Stored tiles are exactly as wide as the final tree makes them.
    let size = 2100;
    for level in 0..3u8 {
        for index in 0..10u64 {
            match tile_width(level, index, size) {
                Some(w) => {
                    store
                        .read_tiles(LogId::Evidence, &[tile(level, index, w)])
                        .unwrap();
                    if w < 256 {
                        assert!(
                            store
                                .read_tiles(LogId::Evidence, &[tile(level, index, w + 1)])
                                .is_err()
                        );
                    }
                }
                None => assert!(
                    store
                        .read_tiles(LogId::Evidence, &[tile(level, index, 1)])
                        .is_err()
                ),
            }
        }
    }
}
