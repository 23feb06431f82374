//! The Authorization service's conversions: the fields every check
//! carries, and verdicts and explanations into messages.

use tonic::{Code, Status};

use super::{FieldError, required};
use crate::engine::Scope;
use crate::model::HasKind;
use crate::model::ids::{MAX_ALIAS_BYTES, MAX_ID_BYTES};
use crate::policy::{CheckError, Decision, Explanation, Reason, Verdict};
use crate::proto;

/// The gRPC code for a check error.
pub fn check_error_code(e: &CheckError) -> Code {
    proto::code(e.kind())
}

/// A check's error as its status (Check, BatchCheck items, the listings,
/// and the front ends that call them). A tenant outside those this node
/// holds (`serve --tenants`: `scope`) is NOT_FOUND saying so, naming the
/// flag; one inside them that does not exist is the usual NOT_FOUND. Only
/// the error path comes here.
pub fn check_status(e: &CheckError, scope: Option<&Scope>) -> Status {
    if let (CheckError::UnknownTenant(tenant), Some(scope)) = (e, scope)
        && !scope.holds(tenant)
    {
        return Status::not_found(scope.not_served(tenant));
    }
    proto::status(e)
}

/// The limit on tenant fields.
pub const MAX_FIELD_BYTES: usize = MAX_ID_BYTES;
/// The limit on a subject field: a user id (256 bytes) or an alias (512).
pub const MAX_SUBJECT_BYTES: usize = MAX_ALIAS_BYTES;
/// The limit on a permission field (a path is at most 512 bytes).
pub const MAX_PERMISSION_BYTES: usize = crate::model::permission::MAX_PATH_BYTES;
/// The limit on a batch item's correlation id.
pub const MAX_CORRELATION_BYTES: usize = 256;

/// Checks the three fields every check carries.
pub fn check_fields(tenant: &str, subject: &str, permission: &str) -> Result<(), FieldError> {
    required("tenant", tenant, MAX_FIELD_BYTES)?;
    required("subject", subject, MAX_SUBJECT_BYTES)?;
    required("permission", permission, MAX_PERMISSION_BYTES)
}

pub fn decision(d: Decision) -> proto::Decision {
    match d {
        Decision::Allow => proto::Decision::Allow,
        Decision::Deny => proto::Decision::Deny,
    }
}

pub fn reason(r: Reason) -> proto::Reason {
    match r {
        Reason::Granted => proto::Reason::Granted,
        Reason::UnknownSubject => proto::Reason::UnknownSubject,
        Reason::SubjectInactive => proto::Reason::SubjectInactive,
        Reason::UnknownPermission => proto::Reason::UnknownPermission,
        Reason::DeniedByGrant => proto::Reason::DeniedByGrant,
        Reason::NoMatchingGrant => proto::Reason::NoMatchingGrant,
    }
}

/// The name of a wire decision, as the proto enum's without its prefix.
pub fn decision_name(decision: i32) -> &'static str {
    match proto::Decision::try_from(decision) {
        Ok(proto::Decision::Allow) => "ALLOW",
        Ok(proto::Decision::Deny) => "DENY",
        _ => "UNSPECIFIED",
    }
}

/// The name of a wire reason, as the proto enum's without its prefix.
pub fn reason_name(reason: i32) -> &'static str {
    proto::Reason::try_from(reason)
        .map(|r| r.as_str_name().trim_start_matches("REASON_"))
        .unwrap_or("UNSPECIFIED")
}

/// A verdict (and explanation) as a response at `revision`.
pub fn response(
    verdict: Verdict,
    revision: u64,
    explanation: Option<Explanation>,
) -> proto::CheckResponse {
    proto::CheckResponse {
        decision: decision(verdict.decision) as i32,
        reason: reason(verdict.reason) as i32,
        revision,
        explanation: explanation.map(explanation_message),
    }
}

fn explanation_message(e: Explanation) -> proto::Explanation {
    proto::Explanation {
        user: e.user.map(String::from).unwrap_or_default(),
        grants: e
            .grants
            .into_iter()
            .map(|g| proto::DecidingGrant {
                role: g.role.to_string(),
                effect: g.effect.as_str().to_owned(),
                pattern: g.pattern,
                via: g.via,
                expires: g.expires.map(|t| t.to_string()).unwrap_or_default(),
            })
            .collect(),
        catalog_entry: e.catalog_entry.unwrap_or_default(),
        catalog_stability: e
            .catalog_stability
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        effective_roles: e
            .effective_roles
            .into_iter()
            .map(|r| r.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use tonic::Status;

    use super::*;

    #[test]
    fn field_limits_name_the_field() {
        let e = Status::from(check_fields("", "a", "b").unwrap_err());
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.message(), "`tenant` must not be empty");
        // A subject may be an alias, up to 512 bytes.
        assert!(check_fields("t", &"x".repeat(512), "b").is_ok());
        let e = Status::from(check_fields("t", &"x".repeat(513), "b").unwrap_err());
        assert!(
            e.message().starts_with("`subject` is 513 bytes"),
            "{}",
            e.message()
        );
        assert!(check_fields("t", "s", "p").is_ok());
    }
}
