//! Writes the Rust code and the descriptor set for `proto/evault/v1/*.proto`
//! into `crates/proto/src/gen/`. Run from the repository root with
//! `tools/protogen/run.sh`, which provides a protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let out = root.join("crates/proto/src/gen");
    std::fs::create_dir_all(&out)?;
    let protos: Vec<PathBuf> = ["evidence", "log", "audit", "task"]
        .iter()
        .map(|f| root.join(format!("proto/evault/v1/{f}.proto")))
        .collect();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Clients bring their own channel (tests use tonic's); the crate then
        // needs no HTTP client.
        .build_transport(false)
        .out_dir(&out)
        .file_descriptor_set_path(out.join("evault_v1_descriptor.bin"))
        .compile_protos(&protos, &[root.join("proto")])?;
    Ok(())
}
