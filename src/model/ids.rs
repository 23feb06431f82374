//! Validated identifiers: tenants, roles, groups and users.
//!
//! Each newtype is validated once, at construction, so the rest of the crate
//! can rely on its shape. Nothing here knows about storage or the wire.

use arcstr::ArcStr;
use std::borrow::Borrow;
use std::fmt;

use thiserror::Error;

/// Longest role or group name, in characters (rediacc: "Maximum group name length is 100").
pub const MAX_NAME_CHARS: usize = 100;
/// Longest tenant or user id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} `{value}` must not be blank or start or end with white space")]
    Blank { kind: &'static str, value: String },
    #[error("{kind} `{value}` is longer than {max} {unit}")]
    TooLong {
        kind: &'static str,
        value: String,
        max: usize,
        unit: &'static str,
    },
    #[error("{kind} `{value}` has a character outside {allowed}")]
    BadChar {
        kind: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("{kind} `{value}` starts with `group:`, which names a group, not a user")]
    GroupPrefix { kind: &'static str, value: String },
}

fn check_id(
    kind: &'static str,
    value: &str,
    allowed: &'static str,
    ok: fn(u8) -> bool,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong {
            kind,
            value: truncate(value),
            max: MAX_ID_BYTES,
            unit: "bytes",
        });
    }
    if !value.bytes().all(ok) {
        return Err(IdError::BadChar {
            kind,
            value: truncate(value),
            allowed,
        });
    }
    Ok(())
}

fn check_name(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(IdError::TooLong {
            kind,
            value: truncate(value),
            max: MAX_NAME_CHARS,
            unit: "characters",
        });
    }
    if value.trim() != value || value.trim().is_empty() {
        return Err(IdError::Blank {
            kind,
            value: truncate(value),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::BadChar {
            kind,
            value: truncate(value),
            allowed: "printable characters",
        });
    }
    Ok(())
}

/// Shortens and escapes a rejected value for an error message.
pub(crate) fn truncate(value: &str) -> String {
    super::text::quote(value)
}

fn tenant_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@' | b'+' | b'/')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $validate:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(ArcStr);

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.to_string()
            }
        }

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl AsRef<str>) -> Result<Self, IdError> {
                let value = value.as_ref();
                ($validate)(value)?;
                Ok(Self(super::intern::shared(value)))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether both hold one allocation (`model::intern`).
            #[cfg(test)]
            #[allow(dead_code, reason = "the tests use it for some id types")]
            pub(crate) fn shares_with(&self, other: &Self) -> bool {
                ArcStr::ptr_eq(&self.0, &other.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A tenant id: 1–256 bytes of `A-Z a-z 0-9 _ - .`.
    TenantId,
    |v: &str| check_id("tenant id", v, "`A-Z a-z 0-9 _ - .`", tenant_char)
);
id_type!(
    /// A user id: 1–256 bytes of `A-Z a-z 0-9 _ - . @ + /` (so an email works).
    UserId,
    check_user_id
);

/// Checks `value` as a [`UserId`] without building one (for the check path).
pub fn check_user_id(value: &str) -> Result<(), IdError> {
    check_id("user id", value, "`A-Z a-z 0-9 _ - . @ + /`", user_char)
}
id_type!(
    /// Another identity by which a user is known: an identity provider's
    /// subject id, a SPIFFE ID, an employee number. 1–512 bytes of ASCII
    /// graphic characters (`!` to `~`: no spaces or control characters, so
    /// `:` and `/` are allowed), not starting with `group:` (which names a
    /// group wherever a subject is written).
    Alias,
    check_alias
);

/// Longest alias, in bytes.
pub const MAX_ALIAS_BYTES: usize = 512;
/// What an alias may hold, for error messages.
const ALIAS_CHARS: &str = "ASCII graphic characters (`!` to `~`: no spaces or control characters)";

/// Checks `value` as an [`Alias`] without building one (for the check path,
/// whose subject may be an alias).
pub fn check_alias(value: &str) -> Result<(), IdError> {
    check_identity("alias", value)
}

/// The shape every subject of a check has: a user id or an alias. Every
/// valid user id has it too (its characters are ASCII graphic and it is at
/// most 256 bytes).
pub(crate) fn check_identity(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ALIAS_BYTES {
        return Err(IdError::TooLong {
            kind,
            value: truncate(value),
            max: MAX_ALIAS_BYTES,
            unit: "bytes",
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdError::BadChar {
            kind,
            value: truncate(value),
            allowed: ALIAS_CHARS,
        });
    }
    if value.starts_with(GROUP_PREFIX) {
        return Err(IdError::GroupPrefix {
            kind,
            value: truncate(value),
        });
    }
    Ok(())
}

id_type!(
    /// A role name: 1–100 characters, not blank, no surrounding white space,
    /// case-sensitive.
    RoleName,
    |v: &str| check_name("role name", v)
);
id_type!(
    /// A group name: 1–100 characters, not blank, no surrounding white space,
    /// case-sensitive.
    GroupName,
    |v: &str| check_name("group name", v)
);

/// The role every tenant has that holds everything; its grants cannot change.
pub const ADMINISTRATORS: &str = "Administrators";
/// The default role of every member; editable, not deletable.
pub const USERS: &str = "Users";
/// The role of service accounts; protected, only Administrators assign it.
pub const BRIDGES: &str = "Bridges";
/// The reserved system role names.
pub const SYSTEM_ROLES: [&str; 3] = [ADMINISTRATORS, USERS, BRIDGES];

impl RoleName {
    /// `Administrators`.
    pub fn administrators() -> Self {
        Self(arcstr::literal!(ADMINISTRATORS))
    }
    /// `Users`.
    pub fn users() -> Self {
        Self(arcstr::literal!(USERS))
    }
    /// `Bridges`.
    pub fn bridges() -> Self {
        Self(arcstr::literal!(BRIDGES))
    }
    /// Whether this is one of the reserved system roles.
    pub fn is_system(&self) -> bool {
        SYSTEM_ROLES.contains(&self.as_str())
    }
}

/// Who a binding or group membership names: a user, or a group. Written
/// as `alice` or `group:platform`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum Subject {
    User(UserId),
    Group(GroupName),
}

/// The prefix that marks a group in a subject reference (`group:platform`).
pub const GROUP_PREFIX: &str = "group:";

impl Subject {
    /// Parses `alice` (a user) or `group:platform` (a group).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        match value.strip_prefix(GROUP_PREFIX) {
            Some(group) => GroupName::new(group).map(Subject::Group),
            None => UserId::new(value).map(Subject::User),
        }
    }
}

impl TryFrom<String> for Subject {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Subject::parse(&value)
    }
}

impl From<Subject> for String {
    /// The reference form: `alice` or `group:platform`.
    fn from(value: Subject) -> String {
        value.reference()
    }
}

impl Subject {
    /// How a policy file or request names it: `alice` or `group:platform`.
    pub fn reference(&self) -> String {
        match self {
            Subject::User(u) => u.to_string(),
            Subject::Group(g) => format!("{GROUP_PREFIX}{g}"),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(u) => write!(f, "user:{u}"),
            Subject::Group(g) => write!(f, "{GROUP_PREFIX}{g}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rediacc_rules() {
        assert!(RoleName::new("developers").is_ok());
        assert!(RoleName::new("read-only").is_ok());
        assert!(matches!(RoleName::new(""), Err(IdError::Empty { .. })));
        assert!(matches!(RoleName::new("   "), Err(IdError::Blank { .. })));
        assert!(matches!(RoleName::new(" x"), Err(IdError::Blank { .. })));
        assert!(RoleName::new("x".repeat(100)).is_ok());
        assert!(matches!(
            RoleName::new("x".repeat(101)),
            Err(IdError::TooLong { .. })
        ));
        // Counted in characters, not bytes.
        assert!(RoleName::new("é".repeat(100)).is_ok());
    }

    #[test]
    fn ids_are_restricted() {
        assert!(UserId::new("john@company.com").is_ok());
        assert!(matches!(UserId::new("a b"), Err(IdError::BadChar { .. })));
        assert!(matches!(UserId::new("a:b"), Err(IdError::BadChar { .. })));
        assert!(TenantId::new("acme-1.eu").is_ok());
        assert!(matches!(
            TenantId::new("acme/1"),
            Err(IdError::BadChar { .. })
        ));
        assert!(matches!(
            TenantId::new("a".repeat(257)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn aliases_are_ascii_graphic_and_bounded() {
        for ok in [
            "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
            "spiffe://cluster.local/ns/shop/sa/cart",
            "E-1001",
            "a=b;c,d|e~!",
            "groups:x",
        ] {
            assert!(Alias::new(ok).is_ok(), "{ok}");
        }
        assert!(Alias::new("x".repeat(MAX_ALIAS_BYTES)).is_ok());
        let long = Alias::new("x".repeat(MAX_ALIAS_BYTES + 1)).unwrap_err();
        assert!(matches!(long, IdError::TooLong { max: 512, .. }));
        assert!(long.to_string().contains("longer than 512 bytes"), "{long}");
        assert!(matches!(Alias::new(""), Err(IdError::Empty { .. })));
        for bad in ["a b", "tab\there", "caf\u{e9}", "nul\u{0}", "del\u{7f}"] {
            let e = Alias::new(bad).unwrap_err();
            assert!(matches!(e, IdError::BadChar { .. }), "{bad:?}");
            assert!(e.to_string().contains("ASCII graphic"), "{e}");
        }
        let group = Alias::new("group:eng").unwrap_err();
        assert!(
            group.to_string().contains("starts with `group:`"),
            "{group}"
        );
        // Every user id is a well-formed subject.
        assert!(check_identity("subject", "john+x@company.com/a").is_ok());
        let bad: Result<Alias, _> = serde_json::from_str("\"a b\"");
        assert!(bad.is_err(), "aliases are validated when read back");
    }

    #[test]
    fn subjects_parse() {
        assert_eq!(
            Subject::parse("alice").unwrap(),
            Subject::User(UserId::new("alice").unwrap())
        );
        assert_eq!(
            Subject::parse("group:platform").unwrap(),
            Subject::Group(GroupName::new("platform").unwrap())
        );
        assert_eq!(
            Subject::parse("group:platform").unwrap().to_string(),
            "group:platform"
        );
        assert!(Subject::parse("group:").is_err());
        let alice: Subject = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(serde_json::to_string(&alice).unwrap(), "\"alice\"");
        let bad: Result<RoleName, _> = serde_json::from_str("\"  \"");
        assert!(bad.is_err(), "ids are validated when read back");
    }
}
