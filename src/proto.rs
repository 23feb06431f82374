//! The generated `rampart.v1` messages and services, and their descriptors
//! for reflection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "generated code"
)]

tonic::include_proto!("rampart.v1");

/// The encoded descriptors of `proto/rampart/v1/*.proto`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rampart_descriptor");
