//! Generates the gRPC code from `proto/` with a vendored `protoc`, so a fresh
//! machine needs nothing but cargo.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Hand protoc's path to prost-build through its config: `set_var` is unsafe
    // in edition 2024 and not needed.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/rampart/v1/authorization.proto",
        "proto/rampart/v1/admin.proto",
        "proto/rampart/v1/replication.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        // tonic-prost's codec, but a decode failure is marked so the
        // server can tell it from its own INTERNAL (src/proto/codec.rs).
        .codec_path("crate::proto::codec::Codec")
        // Written by hand so a batch's strings are not copied out of the
        // request (src/proto/item.rs); the wire format is the same.
        .extern_path(
            ".rampart.v1.BatchCheckItem",
            "crate::proto::item::BatchCheckItem",
        )
        .extern_path(
            ".rampart.v1.BatchCheckRequest",
            "crate::proto::item::BatchCheckRequest",
        )
        .extern_path(
            ".rampart.v1.BatchCheckResult",
            "crate::proto::item::BatchCheckResult",
        )
        .file_descriptor_set_path(out_dir.join("rampart_descriptor.bin"))
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
