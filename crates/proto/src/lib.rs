//! The evault gRPC API, version 1, generated from `proto/evault/v1/*.proto`
//! by `tools/protogen/run.sh` and committed, so that building evault needs
//! no protoc. CI regenerates it and fails if the committed code differs.

#![allow(clippy::all, clippy::pedantic)]

/// Messages, `*Client`s and `*Server`s of package `evault.v1`.
// The generated code's docs come from the comments in proto/evault/v1/*.proto;
// an item without one is documented there (and regenerated), never in gen/.
#[allow(missing_docs)]
pub mod v1 {
    include!("gen/evault.v1.rs");
}

/// The encoded `FileDescriptorSet` of the API, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/evault_v1_descriptor.bin");
