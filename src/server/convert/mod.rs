//! proto ⇄ model at the edge, one file per service: request fields into
//! checked values (`TryFrom` a request, failing with a [`FieldError`]),
//! verdicts, explanations and listings into messages. Error kinds map to
//! codes in `proto::code`.
//!
//! - `check.rs`: the Authorization service (Check, BatchCheck, listings).
//! - `admin.rs`: the Admin service (each change request into a `Mutation`).

pub mod admin;
pub mod check;

use tonic::Status;

use crate::model::text::{TextError, check_text, max_text_bytes};
use crate::model::{ErrorKind, HasKind};
use crate::proto;

pub use check::{
    MAX_CORRELATION_BYTES, MAX_FIELD_BYTES, MAX_PERMISSION_BYTES, MAX_SUBJECT_BYTES,
    check_error_code, check_fields, check_status, decision, decision_name, reason, reason_name,
    response,
};

/// A request field that is missing or does not parse: INVALID_ARGUMENT,
/// its message naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A required string is empty.
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    /// A string longer than its limit.
    #[error("`{field}` is {len} bytes, more than the limit of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// Free text over its size or with a control character.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A required message is absent.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// A value that does not parse as what the field holds.
    #[error("`{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A word outside the field's set.
    #[error("`{field}` must be {expected}, not `{}`", crate::model::quote(.got))]
    NotOneOf {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
    /// A number over its limit.
    #[error("`{field}` {value} is more than the limit of {max}")]
    OverLimit {
        field: &'static str,
        value: u64,
        max: u64,
    },
    /// A paging token this server did not issue.
    #[error("`{0}` is not one this server issued")]
    NotIssued(&'static str),
    /// A field that must name one of its words and is empty.
    #[error("`{field}` must be {expected}")]
    Unset {
        field: &'static str,
        expected: &'static str,
    },
}

impl HasKind for FieldError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        proto::status(&e)
    }
}

/// A field's parse result, its error naming the field.
pub fn parsed<T, E: std::fmt::Display>(
    field: &'static str,
    r: Result<T, E>,
) -> Result<T, FieldError> {
    r.map_err(|e| FieldError::Invalid {
        field,
        reason: e.to_string(),
    })
}

/// Refuses an empty or oversize required field before any lookup.
pub fn required(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::Empty(field));
    }
    bounded(field, value, max)
}

/// Refuses an oversize string before it is copied into a change.
pub fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        return Err(FieldError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// A free-text field (a description, a name): its bytes bounded first, then
/// the model's policy ([`check_text`]), so an oversize or control-character
/// text is refused before it becomes a `Mutation` (and an audit record).
pub fn free_text(field: &'static str, value: &str, max_chars: usize) -> Result<String, FieldError> {
    bounded(field, value, max_text_bytes(max_chars))?;
    check_text(field, value, max_chars)?;
    Ok(value.to_owned())
}
