//! Why a mutation is refused: the [`Refusal`] kind the server maps to a
//! gRPC code, and the [`AdminError`] naming the rule.

use thiserror::Error;

/// The gRPC-independent kind of a refusal; the server maps it to a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor lacks the right (`PERMISSION_DENIED`).
    Denied,
    /// A rule such as last-admin (`FAILED_PRECONDITION`).
    Precondition,
    /// Malformed (`INVALID_ARGUMENT`).
    Invalid,
    /// Names something that is not there (`NOT_FOUND`).
    NotFound,
    /// Names something that is already there (`ALREADY_EXISTS`).
    Exists,
}

impl Refusal {
    /// The gRPC code name, e.g. `PERMISSION_DENIED` (for logs, the audit log
    /// and policy tests; the server maps to `tonic::Code` itself).
    pub fn code_name(self) -> &'static str {
        match self {
            Refusal::Denied => "PERMISSION_DENIED",
            Refusal::Precondition => "FAILED_PRECONDITION",
            Refusal::Invalid => "INVALID_ARGUMENT",
            Refusal::NotFound => "NOT_FOUND",
            Refusal::Exists => "ALREADY_EXISTS",
        }
    }
}

/// Why a mutation was refused: the kind and a message naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct AdminError {
    pub refusal: Refusal,
    pub message: String,
}

pub(super) fn err(refusal: Refusal, message: impl Into<String>) -> AdminError {
    AdminError {
        refusal,
        message: message.into(),
    }
}
