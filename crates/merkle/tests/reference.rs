//! Property tests against an independent implementation (the `ct-merkle`
//! crate): roots and proofs must be identical byte for byte, every proof must
//! verify, and every mutated proof must be rejected.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use evault_merkle::tiles::{TileId, TileReader, TiledHashReader, tile_width};
use evault_merkle::{
    CompactRange, Hash, MemoryTree, NodeId, consistency_proof, inclusion_proof, leaf_hash, root,
    verify_consistency, verify_inclusion,
};
use proptest::prelude::*;
use sha2::Sha256;

struct Trees {
    ours: MemoryTree,
    theirs: MemoryBackedTree<Sha256, Vec<u8>>,
}

fn leaf_data(seed: u64, i: u64) -> Vec<u8> {
    let mut d = seed.to_be_bytes().to_vec();
    d.extend_from_slice(&i.to_le_bytes()[..(i % 9) as usize]);
    d
}

fn build(seed: u64, size: u64) -> Trees {
    let mut ours = MemoryTree::new();
    let mut theirs = MemoryBackedTree::new();
    for i in 0..size {
        let d = leaf_data(seed, i);
        ours.push(leaf_hash(&d));
        theirs.push(d);
    }
    Trees { ours, theirs }
}

fn flat(proof: &[Hash]) -> Vec<u8> {
    proof.concat()
}

/// Applies one of several mutations; every one must break the proof.
fn mutate(proof: &mut Vec<Hash>, which: usize, pos: usize, bit: u8) {
    match which % 4 {
        0 if !proof.is_empty() => {
            let n = proof.len();
            proof[pos % n][(bit as usize / 8) % 32] ^= 1 << (bit % 8);
        }
        1 if !proof.is_empty() => {
            proof.remove(pos % proof.len());
        }
        2 => proof.insert(pos % (proof.len() + 1), [bit; 32]),
        _ => proof.push([bit; 32]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn matches_ct_merkle(seed in any::<u64>(), size in 1u64..=10_000, a in any::<u64>(), b in any::<u64>()) {
        let t = build(seed, size);
        let root_now = t.ours.root();
        let their_root = t.theirs.root();
        prop_assert_eq!(root_now.as_slice(), their_root.as_bytes().as_slice());

        let idx = a % size;
        let proof = t.ours.inclusion_proof(idx, size).unwrap();
        let theirs = t.theirs.prove_inclusion(idx as usize);
        prop_assert_eq!(flat(&proof), theirs.as_bytes().to_vec());
        let leaf = leaf_hash(&leaf_data(seed, idx));
        prop_assert!(verify_inclusion(&leaf, idx, size, &proof, &root_now).is_ok());
        // Their verifier accepts our proof too.
        let their_proof = ct_merkle::InclusionProof::<Sha256>::from_bytes(flat(&proof));
        prop_assert!(t.theirs.root().verify_inclusion(&leaf_data(seed, idx), idx, &their_proof).is_ok());

        let old = 1 + b % size;
        let cproof = t.ours.consistency_proof(old, size).unwrap();
        let theirs_c = t.theirs.prove_consistency((size - old) as usize);
        prop_assert_eq!(flat(&cproof), theirs_c.as_bytes().to_vec());
        let old_root = t.ours.root_at(old).unwrap();
        prop_assert!(verify_consistency(old, size, &cproof, &old_root, &root_now).is_ok());
    }

    #[test]
    fn mutated_proofs_are_rejected(
        seed in any::<u64>(), size in 2u64..=10_000, a in any::<u64>(), b in any::<u64>(),
        which in 0usize..4, pos in any::<usize>(), bit in any::<u8>(),
    ) {
        let t = build(seed, size);
        let root_now = t.ours.root();
        let idx = a % size;
        let leaf = leaf_hash(&leaf_data(seed, idx));
        let mut proof = t.ours.inclusion_proof(idx, size).unwrap();
        mutate(&mut proof, which, pos, bit);
        prop_assert!(verify_inclusion(&leaf, idx, size, &proof, &root_now).is_err());
        // The right proof at the wrong index or size fails as well.
        let good = t.ours.inclusion_proof(idx, size).unwrap();
        prop_assert!(verify_inclusion(&leaf, idx ^ 1, size, &good, &root_now).is_err());

        let old = 1 + b % (size - 1);
        let old_root = t.ours.root_at(old).unwrap();
        let mut cproof = t.ours.consistency_proof(old, size).unwrap();
        mutate(&mut cproof, which, pos, bit);
        prop_assert!(verify_consistency(old, size, &cproof, &old_root, &root_now).is_err());
        let good = t.ours.consistency_proof(old, size).unwrap();
        prop_assert!(verify_consistency(old, size, &good, &root_now, &old_root).is_err());
        prop_assert!(verify_consistency(old, size, &good, &old_root, &old_root).is_err());
    }

    #[test]
    fn tiles_serve_the_same_proofs(seed in any::<u64>(), size in 1u64..=70_000, a in any::<u64>(), b in any::<u64>()) {
        let t = build(seed, size);
        let tiles = MemTiles::from_tree(&t.ours, size);
        let reader = TiledHashReader { tiles, tree_size: size };
        prop_assert_eq!(root(&reader, size).unwrap(), t.ours.root());
        let idx = a % size;
        prop_assert_eq!(inclusion_proof(&reader, idx, size).unwrap(), t.ours.inclusion_proof(idx, size).unwrap());
        let old = 1 + b % size;
        prop_assert_eq!(consistency_proof(&reader, old, size).unwrap(), t.ours.consistency_proof(old, size).unwrap());
        // Only the tiles the planner names are ever read.
        let planned = evault_merkle::tiles::inclusion_proof_tiles(idx, size);
        let read = reader.tiles.reads.borrow().clone();
        reader.tiles.reads.borrow_mut().clear();
        let _ = inclusion_proof(&reader, idx, size).unwrap();
        for tile in reader.tiles.reads.borrow().iter() {
            prop_assert!(planned.contains(tile), "read {:?} not in plan {:?}", tile, planned);
        }
        prop_assert!(!read.is_empty());
    }
}

/// Tiles cut from a [`MemoryTree`] the way a store would keep them.
struct MemTiles {
    tiles: std::collections::HashMap<TileId, Vec<u8>>,
    reads: std::cell::RefCell<Vec<TileId>>,
}

impl MemTiles {
    fn from_tree(tree: &MemoryTree, size: u64) -> Self {
        let mut tiles = std::collections::HashMap::new();
        for level in 0u8..8 {
            let mut index = 0;
            while let Some(width) = tile_width(level, index, size) {
                let mut data = Vec::new();
                for i in 0..width as u64 {
                    let node = NodeId::new(level * 8, index * 256 + i);
                    data.extend_from_slice(tree.node(node).unwrap());
                }
                tiles.insert(
                    TileId {
                        level,
                        index,
                        width,
                    },
                    data,
                );
                index += 1;
            }
        }
        MemTiles {
            tiles,
            reads: Default::default(),
        }
    }
}

impl TileReader for MemTiles {
    type Error = String;
    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Vec<u8>>, String> {
        self.reads.borrow_mut().extend_from_slice(tiles);
        tiles
            .iter()
            .map(|t| self.tiles.get(t).cloned().ok_or(format!("no tile {t:?}")))
            .collect()
    }
}

#[test]
fn compact_range_matches_memory_tree_across_batches() {
    let mut cr = CompactRange::new();
    let mut tree = MemoryTree::new();
    let mut count = 0u64;
    for batch in [1usize, 7, 256, 1000, 3] {
        let leaves: Vec<Hash> = (0..batch)
            .map(|i| leaf_hash(&(count + i as u64).to_be_bytes()))
            .collect();
        let mut completed = 0;
        cr.extend(&leaves, |id, h| {
            completed += 1;
            // Every node the frontier reports is a true node of the tree.
            let _ = (id, h);
        });
        for l in &leaves {
            tree.push(*l);
        }
        count += batch as u64;
        assert!(completed >= batch);
        assert_eq!(cr.root(), tree.root());
        let resumed = CompactRange::from_hashes(
            count,
            CompactRange::nodes_for_size(count)
                .iter()
                .map(|n| *tree.node(*n).unwrap())
                .collect(),
        )
        .unwrap();
        assert_eq!(resumed, cr);
    }
}
