//! Merkle core benchmarks. Run: `cargo bench -p evault-merkle`.
//!
//! divan prints the statistics of each benchmark, raw SHA-256 among them, in
//! one run. A summary then measures every figure beside its raw SHA-256
//! baseline again, interleaved, and prints the ratios: on a shared, noisy
//! machine a ratio means something, an absolute time hardly does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use divan::counter::{BytesCount, ItemsCount};
use evault_merkle::{
    CompactRange, Hash, HashReader, MemoryTree, NodeId, consistency_proof, inclusion_proof,
    leaf_hash, node_hash, root, verify_consistency, verify_inclusion,
};
use sha2::{Digest, Sha256};

const LEAF_SIZES: [usize; 2] = [32, 256];
const APPEND_LEAVES: u64 = 1_000_000;
const BIG_TREE: u64 = 1 << 30;
const RAGGED_TREE: u64 = BIG_TREE - 12_345;

fn main() {
    divan::main();
    summary();
}

fn leaf_inputs(n: u64, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut d = vec![0u8; size];
            d[..8].copy_from_slice(&i.to_le_bytes());
            d
        })
        .collect()
}

/// Raw SHA-256 over the exact bytes an append hashes per leaf: the leaf
/// message (0x00 || data) and one 65-byte node message. The ceiling an
/// append can reach.
fn raw_two_hashes_per_leaf(inputs: &[Vec<u8>]) -> Hash {
    let mut acc = [0u8; 32];
    let mut node_msg = [1u8; 65];
    for d in inputs {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(d);
        let leaf: Hash = h.finalize().into();
        node_msg[1..33].copy_from_slice(&leaf);
        node_msg[33..].copy_from_slice(&acc);
        acc = Sha256::digest(node_msg).into();
    }
    acc
}

fn append_all(inputs: &[Vec<u8>]) -> Hash {
    let mut cr = CompactRange::new();
    for d in inputs {
        cr.append(leaf_hash(d), |_, _| {});
    }
    cr.root()
}

#[divan::bench(args = LEAF_SIZES)]
fn raw_sha256(bencher: divan::Bencher, size: usize) {
    let data = vec![7u8; size + 1];
    bencher
        .counter(BytesCount::new(data.len()))
        .bench(|| Sha256::digest(black_box(&data)));
}

#[divan::bench(args = LEAF_SIZES)]
fn leaf_hashing(bencher: divan::Bencher, size: usize) {
    let data = vec![7u8; size];
    bencher
        .counter(BytesCount::new(size + 1))
        .bench(|| leaf_hash(black_box(&data)));
}

#[divan::bench]
fn node_hashing(bencher: divan::Bencher) {
    let (l, r) = ([1u8; 32], [2u8; 32]);
    bencher.bench(|| node_hash(black_box(&l), black_box(&r)));
}

#[divan::bench(args = LEAF_SIZES, sample_count = 5, sample_size = 1)]
fn raw_sha256_two_per_leaf_1m(bencher: divan::Bencher, size: usize) {
    let inputs = leaf_inputs(APPEND_LEAVES, size);
    bencher
        .counter(ItemsCount::new(APPEND_LEAVES))
        .bench(|| raw_two_hashes_per_leaf(black_box(&inputs)));
}

#[divan::bench(args = LEAF_SIZES, sample_count = 5, sample_size = 1)]
fn compact_append_1m(bencher: divan::Bencher, size: usize) {
    let inputs = leaf_inputs(APPEND_LEAVES, size);
    bencher
        .counter(ItemsCount::new(APPEND_LEAVES))
        .bench(|| append_all(black_box(&inputs)));
}

/// A stored-hash fake for a tree of up to 2^64 leaves: a real 2^16-leaf tree
/// repeated. It is a true Merkle tree (all proofs verify) yet needs 4 MiB.
struct RepeatingTree {
    base: MemoryTree,
    base_level: u8,
    /// `uniform[k]` = hash of a perfect subtree at level `base_level + k`.
    uniform: Vec<Hash>,
}

impl RepeatingTree {
    fn new(base_level: u8) -> Self {
        let mut base = MemoryTree::new();
        for i in 0..(1u64 << base_level) {
            base.push(leaf_hash(&i.to_be_bytes()));
        }
        let mut uniform = vec![base.root()];
        for k in 1..=(64 - base_level as usize) {
            uniform.push(node_hash(&uniform[k - 1], &uniform[k - 1]));
        }
        RepeatingTree {
            base,
            base_level,
            uniform,
        }
    }

    fn node(&self, id: NodeId) -> Hash {
        if id.level >= self.base_level {
            return self.uniform[(id.level - self.base_level) as usize];
        }
        let per_copy = 1u64 << (self.base_level - id.level);
        *self
            .base
            .node(NodeId::new(id.level, id.index % per_copy))
            .expect("base node")
    }

    fn leaf(&self, index: u64) -> Hash {
        self.node(NodeId::new(0, index))
    }
}

impl HashReader for RepeatingTree {
    type Error = std::convert::Infallible;
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        Ok(nodes.iter().map(|&n| self.node(n)).collect())
    }
}

fn big_tree() -> &'static RepeatingTree {
    static TREE: std::sync::OnceLock<RepeatingTree> = std::sync::OnceLock::new();
    TREE.get_or_init(|| RepeatingTree::new(16))
}

const SIZES_2_30: [u64; 2] = [BIG_TREE, RAGGED_TREE];

#[divan::bench(args = SIZES_2_30)]
fn inclusion_prove_2_30(bencher: divan::Bencher, size: u64) {
    let t = big_tree();
    let mut i = 0u64;
    bencher.bench_local(|| {
        i = (i + 0x9E37_79B9_7F4A_7C15) % size;
        inclusion_proof(t, black_box(i), size)
    });
}

#[divan::bench(args = SIZES_2_30)]
fn inclusion_verify_2_30(bencher: divan::Bencher, size: u64) {
    let t = big_tree();
    let r = root(t, size).expect("root");
    let idx = size / 3;
    let proof = inclusion_proof(t, idx, size).expect("proof");
    let leaf = t.leaf(idx);
    bencher.bench(|| verify_inclusion(&leaf, idx, size, black_box(&proof), &r));
}

#[divan::bench(args = SIZES_2_30)]
fn consistency_prove_2_30(bencher: divan::Bencher, size: u64) {
    let t = big_tree();
    let mut old = 1u64;
    bencher.bench_local(|| {
        old = 1 + (old + 0x9E37_79B9_7F4A_7C15) % size;
        consistency_proof(t, black_box(old), size)
    });
}

#[divan::bench(args = SIZES_2_30)]
fn consistency_verify_2_30(bencher: divan::Bencher, size: u64) {
    let t = big_tree();
    let old = size / 3 + 7;
    let (r1, r2) = (root(t, old).expect("root"), root(t, size).expect("root"));
    let proof = consistency_proof(t, old, size).expect("proof");
    bencher.bench(|| verify_consistency(old, size, black_box(&proof), &r1, &r2));
}

/// Best of `runs` timings of `f`, each over `iters` calls.
fn best_per_call<T>(runs: usize, iters: u64, mut f: impl FnMut(u64) -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            for i in 0..iters {
                black_box(f(i));
            }
            start.elapsed() / iters as u32
        })
        .min()
        .unwrap_or_default()
}

fn summary() {
    println!("\n== Summary: each figure beside raw SHA-256 measured in this run ==");
    println!(
        "{:<44} {:>14} {:>14} {:>9}",
        "figure", "ours", "raw SHA-256", "ratio"
    );
    let line = |name: &str, ours: f64, base: f64, unit: &str, ratio: f64| {
        println!(
            "{name:<44} {:>9.0} {unit:<4} {:>9.0} {unit:<4} {:>8.1}%",
            ours,
            base,
            ratio * 100.0
        );
    };

    for size in LEAF_SIZES {
        let inputs = leaf_inputs(APPEND_LEAVES, size);
        let (mut ours, mut raw) = (Duration::MAX, Duration::MAX);
        // Interleave so both see the same machine load.
        for _ in 0..5 {
            let t = Instant::now();
            black_box(append_all(&inputs));
            ours = ours.min(t.elapsed());
            let t = Instant::now();
            black_box(raw_two_hashes_per_leaf(&inputs));
            raw = raw.min(t.elapsed());
        }
        let ours_rate = APPEND_LEAVES as f64 / ours.as_secs_f64();
        let raw_rate = APPEND_LEAVES as f64 / raw.as_secs_f64();
        line(
            &format!("append 1M leaves of {size} B (leaves/s)"),
            ours_rate,
            raw_rate,
            "/s",
            ours_rate / raw_rate,
        );

        let data = vec![5u8; size];
        let msg = vec![5u8; size + 1];
        let ours = best_per_call(5, 200_000, |_| leaf_hash(&data));
        let raw = best_per_call(5, 200_000, |_| Sha256::digest(&msg));
        line(
            &format!("leaf hash of {size} B (hashes/s)"),
            1.0 / ours.as_secs_f64(),
            1.0 / raw.as_secs_f64(),
            "/s",
            raw.as_secs_f64() / ours.as_secs_f64(),
        );
    }

    // Proof work at 2^30, as a multiple of one raw 65-byte SHA-256 (a node
    // hash) timed in this run, beside the node hashes the operation needs.
    let one_hash = best_per_call(5, 200_000, |i| Sha256::digest([i as u8; 65]));
    println!(
        "\n{:<44} {:>10} {:>16} {:>14}",
        "proof operation (RepeatingTree fake)", "per op", "raw SHA-256 eq.", "elements"
    );
    let t = big_tree();
    for size in SIZES_2_30 {
        let r = root(t, size).expect("root");
        let prove = best_per_call(5, 20_000, |i| inclusion_proof(t, (i * 48_271) % size, size));
        let idx = size / 3;
        let proof = inclusion_proof(t, idx, size).expect("proof");
        let leaf = t.leaf(idx);
        let verify = best_per_call(5, 20_000, |_| {
            verify_inclusion(&leaf, idx, size, &proof, &r)
        });
        let old = size / 3 + 7;
        let r1 = root(t, old).expect("root");
        let cproof = consistency_proof(t, old, size).expect("proof");
        let cprove = best_per_call(5, 20_000, |i| {
            consistency_proof(t, 1 + (i * 48_271) % size, size)
        });
        let cverify = best_per_call(5, 20_000, |_| {
            verify_consistency(old, size, &cproof, &r1, &r)
        });
        for (what, d, elements) in [
            ("inclusion prove", prove, proof.len()),
            ("inclusion verify", verify, proof.len()),
            ("consistency prove", cprove, cproof.len()),
            ("consistency verify", cverify, cproof.len()),
        ] {
            println!(
                "{:<44} {:>7.2} us {:>16.1} {:>14}",
                format!("{what} @ size {size}"),
                d.as_secs_f64() * 1e6,
                d.as_secs_f64() / one_hash.as_secs_f64(),
                elements
            );
        }
    }
    println!(
        "(one raw 65-byte SHA-256 took {:.1} ns in this run)",
        one_hash.as_secs_f64() * 1e9
    );
    println!(
        "(append target: >= 50% of the raw bound. Verification needs about one node hash per \
         element, up to two for consistency; generation hashes only ragged right edges.)"
    );
}
