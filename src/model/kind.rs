//! What kind of failure an error is, whatever wire carries it. Every error
//! that reaches a caller says its kind ([`HasKind`]); the wire maps kinds to
//! its codes in one place (`proto::status`), so the same failure gets the
//! same code from every service.

use super::rules::{AdminError, Refusal};

/// The kinds of failure a caller is told about (named after the gRPC codes
/// they map to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed: retrying it unchanged cannot succeed.
    InvalidArgument,
    /// It names something that is not there.
    NotFound,
    /// It would create something that is already there.
    AlreadyExists,
    /// The caller lacks the right.
    PermissionDenied,
    /// A rule of the state refuses it (last administrator, a role with members…).
    FailedPrecondition,
    /// It names a position past what is kept or known (a compacted revision).
    OutOfRange,
    /// The node cannot do it now (the store failed, a revision not yet
    /// reached, shutting down); the same request may succeed later.
    Unavailable,
    /// rampart itself failed (a corrupt record, a task that died).
    Internal,
}

/// An error that knows its kind.
pub trait HasKind: std::fmt::Display {
    fn kind(&self) -> ErrorKind;
}

impl From<Refusal> for ErrorKind {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied => Self::PermissionDenied,
            Refusal::Precondition => Self::FailedPrecondition,
            Refusal::Invalid => Self::InvalidArgument,
            Refusal::NotFound => Self::NotFound,
            Refusal::Exists => Self::AlreadyExists,
        }
    }
}

impl HasKind for AdminError {
    fn kind(&self) -> ErrorKind {
        self.refusal().into()
    }
}
