//! The loose email address check, shared by the loader and the admin rules.

use thiserror::Error;

/// Text that is not an email address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{}` is not an email address", crate::model::quote(.email))]
pub struct EmailError {
    /// The text as given.
    pub email: String,
}

/// Longest email address, in bytes.
pub const MAX_EMAIL_BYTES: usize = 254;

/// Checks an email address loosely: one `@`, something on both sides, no
/// white space or control characters, at most 254 bytes.
pub fn check_email(email: &str) -> Result<(), EmailError> {
    let ok = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(EmailError {
            email: email.to_owned(),
        })
    }
}
