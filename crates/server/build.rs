//! Embeds the dashboard (`web/public`) in the binary: writes `ui_assets.rs`
//! with one `include_bytes!` per file, so building needs no Node and the
//! server reads no files at run time. The list follows the directory, so a
//! new asset needs no code change.

use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("../../web/public");
    // A directory: cargo re-runs this script when any file under it changes.
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &root, &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// Every file under web/public: its path there and its bytes, sorted by path.\n\
         pub(crate) static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        out.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it")).join("ui_assets.rs");
    fs::write(dest, out).expect("write ui_assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read web/public")
        .map(|e| e.expect("read web/public").path())
        .collect();
    entries.sort();
    for path in entries {
        // Editor and OS droppings (`.DS_Store`, swap files, backups) are
        // not assets; nor is anything behind a symlink, which could point
        // at any file of the build machine and would be served to anyone.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_none_or(|n| n.starts_with('.') || n.ends_with('~')) {
            continue;
        }
        let meta = fs::symlink_metadata(&path).expect("read web/public");
        if meta.file_type().is_symlink() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        if meta.is_dir() {
            collect(root, &path, files);
            continue;
        }
        let name = path
            .strip_prefix(root)
            .expect("under root")
            .to_str()
            .expect("asset names are UTF-8")
            .replace('\\', "/");
        let canonical = path.canonicalize().expect("canonical asset path");
        files.push((name, canonical));
    }
}
