//! Every vector in testdata/conformance/merkle must behave as labelled:
//! happy cases verify, every `wantErr` case is rejected.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::{MemoryTree, leaf_hash, verify_consistency, verify_inclusion};
use serde::Deserialize;

fn conformance_dir() -> PathBuf {
    // The in-repo copy, so that a fresh clone tests itself (testdata/README.md).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/conformance/merkle");
    assert!(
        dir.is_dir(),
        "conformance vectors missing at {}: they are mandatory and committed \
         in the repository (testdata/README.md)",
        dir.display()
    );
    dir
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read conformance dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).expect("vector base64")
}

fn b64_list(v: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    v.iter().flatten().map(|s| b64(s)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[test]
fn inclusion_vectors() {
    let files = json_files(&conformance_dir().join("inclusion"));
    assert!(
        files.len() > 50,
        "expected the full inclusion vector set, found {}",
        files.len()
    );
    let (mut ok, mut rejected) = (0, 0);
    for f in &files {
        let v: InclusionVector =
            serde_json::from_str(&fs::read_to_string(f).unwrap()).expect("inclusion vector json");
        let got = verify_inclusion(
            &b64(&v.leaf_hash),
            v.leaf_idx,
            v.tree_size,
            &b64_list(&v.proof),
            &b64(&v.root),
        );
        match (v.want_err, got) {
            (false, Ok(())) => ok += 1,
            (true, Err(_)) => rejected += 1,
            (want_err, got) => {
                panic!("{}: {} wantErr={want_err} got {got:?}", f.display(), v.desc)
            }
        }
    }
    assert!(ok > 0 && rejected > 0);
    eprintln!("inclusion vectors: {ok} verified, {rejected} rejected");
}

#[test]
fn consistency_vectors() {
    let files = json_files(&conformance_dir().join("consistency"));
    assert!(
        files.len() > 50,
        "expected the full consistency vector set, found {}",
        files.len()
    );
    let (mut ok, mut rejected) = (0, 0);
    for f in &files {
        let v: ConsistencyVector =
            serde_json::from_str(&fs::read_to_string(f).unwrap()).expect("consistency vector json");
        let got = verify_consistency(
            v.size1,
            v.size2,
            &b64_list(&v.proof),
            &b64(&v.root1),
            &b64(&v.root2),
        );
        match (v.want_err, got) {
            (false, Ok(())) => ok += 1,
            (true, Err(_)) => rejected += 1,
            (want_err, got) => {
                panic!("{}: {} wantErr={want_err} got {got:?}", f.display(), v.desc)
            }
        }
    }
    assert!(ok > 0 && rejected > 0);
    eprintln!("consistency vectors: {ok} verified, {rejected} rejected");
}

#[derive(Deserialize)]
struct KnownAnswers {
    leaf_inputs_hex: Vec<String>,
    root_hashes_by_size_hex: Vec<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn known_answer_roots() {
    let path = conformance_dir().join("known-answers.json");
    let ka: KnownAnswers = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        ka.root_hashes_by_size_hex.len(),
        ka.leaf_inputs_hex.len() + 1
    );

    let mut tree = MemoryTree::new();
    assert_eq!(tree.root().to_vec(), unhex(&ka.root_hashes_by_size_hex[0]));
    for (i, input) in ka.leaf_inputs_hex.iter().enumerate() {
        tree.push(leaf_hash(&unhex(input)));
        assert_eq!(
            tree.root().to_vec(),
            unhex(&ka.root_hashes_by_size_hex[i + 1]),
            "size {}",
            i + 1
        );
    }
    // Every historical root is reproducible from stored hashes alone.
    for (size, want) in ka.root_hashes_by_size_hex.iter().enumerate() {
        assert_eq!(
            tree.root_at(size as u64).unwrap().to_vec(),
            unhex(want),
            "root_at({size})"
        );
    }
    // And every proof the tree makes verifies against those roots.
    let n = ka.leaf_inputs_hex.len() as u64;
    for size in 1..=n {
        let root = unhex(&ka.root_hashes_by_size_hex[size as usize]);
        for idx in 0..size {
            let leaf = leaf_hash(&unhex(&ka.leaf_inputs_hex[idx as usize]));
            let proof = tree.inclusion_proof(idx, size).unwrap();
            verify_inclusion(&leaf, idx, size, &proof, &root).unwrap();
        }
        for old in 1..=size {
            let proof = tree.consistency_proof(old, size).unwrap();
            let old_root = unhex(&ka.root_hashes_by_size_hex[old as usize]);
            verify_consistency(old, size, &proof, &old_root, &root).unwrap();
        }
    }
}
