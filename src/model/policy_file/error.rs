//! What goes wrong in a policy file: each problem with its location
//! ([`LoadError`]), all of them together ([`LoadErrors`]), and the
//! collector the loader pushes them to, and the typed errors of the
//! loader's own parsers.

use std::fmt;

use thiserror::Error;

use crate::model::ids::{GroupName, IdError, UserId};
use crate::model::permission::PathError;

/// One problem in a policy file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// E.g. `tenants[acme].roles[editors].grants[2]`, or `yaml` for syntax errors.
    pub at: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in policy", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// The problems found so far; the loader pushes each with where it is.
pub(super) struct Errors(pub(super) Vec<LoadError>);

impl Errors {
    pub(super) fn push(&mut self, at: impl Into<String>, message: impl fmt::Display) {
        self.0.push(LoadError {
            at: at.into(),
            message: message.to_string(),
        });
    }
}

/// A grant that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(super) enum GrantError {
    /// Neither a string nor a one-key `allow`/`deny` map.
    #[error("a grant is a string, `{{allow: PATTERN}}` or `{{deny: PATTERN}}`")]
    Shape,
    #[error(transparent)]
    Pattern(#[from] PathError),
}

/// A member or binding subject that cannot be resolved in its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(super) enum SubjectError {
    #[error(transparent)]
    Invalid(#[from] IdError),
    #[error("unknown user `{0}` (list it under `users`)")]
    UnknownUser(UserId),
    #[error("unknown group `{0}`")]
    UnknownGroup(GroupName),
}
