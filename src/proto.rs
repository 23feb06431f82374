//! The generated `rampart.v1` messages and services, and their descriptors
//! for reflection; the codec they use (`codec.rs`: a decode failure is
//! marked, so the server can answer it `INVALID_ARGUMENT`); and the three
//! messages written by hand, `BatchCheckRequest`, `BatchCheckItem` and
//! `BatchCheckResult` (`item.rs`: a batch's strings are not copied).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "generated code"
)]

tonic::include_proto!("rampart.v1");

pub mod codec;
pub mod item;

pub use item::{BatchCheckItem, BatchCheckRequest, BatchCheckResult, Text, batch_check_result};

/// The encoded descriptors of `proto/rampart/v1/*.proto`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rampart_descriptor");

/// `(service, method)` of every RPC in the descriptor set, e.g.
/// `("rampart.v1.Authorization", "Check")`: the generated code's own list,
/// for tables that must name every RPC (metrics).
pub fn methods() -> Vec<(String, String)> {
    use prost::Message as _;
    // INVARIANT: the set was encoded by protoc at build time; were it ever
    // unreadable, no RPC is listed and every call counts as `other`.
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            let name = if package.is_empty() {
                service.name().to_owned()
            } else {
                format!("{package}.{}", service.name())
            };
            for method in &service.method {
                out.push((name.clone(), method.name().to_owned()));
            }
        }
    }
    out
}

/// The gRPC code of each kind of failure: the one table every service
/// answers by (ARCHITECTURE.md, "Errors and codes").
pub fn code(kind: crate::model::ErrorKind) -> tonic::Code {
    use crate::model::ErrorKind as K;
    use tonic::Code;
    match kind {
        K::InvalidArgument => Code::InvalidArgument,
        K::NotFound => Code::NotFound,
        K::AlreadyExists => Code::AlreadyExists,
        K::PermissionDenied => Code::PermissionDenied,
        K::FailedPrecondition => Code::FailedPrecondition,
        K::OutOfRange => Code::OutOfRange,
        K::Unavailable => Code::Unavailable,
        K::Internal => Code::Internal,
    }
}

/// An error as the status a caller gets: its kind's code, its message.
pub fn status(e: &impl crate::model::HasKind) -> tonic::Status {
    tonic::Status::new(code(e.kind()), e.to_string())
}
