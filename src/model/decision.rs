//! What a check answers: [`Decision`] (allow or deny) and the [`Reason`]
//! for it. Here in the model, not in `policy/`, so that telemetry and other
//! readers of decisions need import only the model.

use std::fmt;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    Deny,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Granted,
    UnknownSubject,
    SubjectInactive,
    UnknownPermission,
    DeniedByGrant,
    NoMatchingGrant,
}

impl Reason {
    /// Every reason, in declaration order (the metrics index by `reason as usize`).
    pub const ALL: [Reason; 6] = [
        Reason::Granted,
        Reason::UnknownSubject,
        Reason::SubjectInactive,
        Reason::UnknownPermission,
        Reason::DeniedByGrant,
        Reason::NoMatchingGrant,
    ];

    /// The reason as the wire and policy tests spell it, e.g. `DENIED_BY_GRANT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Granted => "GRANTED",
            Reason::UnknownSubject => "UNKNOWN_SUBJECT",
            Reason::SubjectInactive => "SUBJECT_INACTIVE",
            Reason::UnknownPermission => "UNKNOWN_PERMISSION",
            Reason::DeniedByGrant => "DENIED_BY_GRANT",
            Reason::NoMatchingGrant => "NO_MATCHING_GRANT",
        }
    }

    /// Parses the spelling of [`Reason::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
