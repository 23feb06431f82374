//! The decision rule written out plainly, straight from the model with no
//! compilation. It is the oracle the compiled evaluator is tested against,
//! and the source of explanations (which grants decided, and through which
//! groups).

use crate::model::permission::{Effect, Grant, validate_path};
use crate::model::tenant::{EffectiveRole, UserStatus};
use crate::model::{State, Timestamp, UserId};

use super::evaluate::{CheckError, Request, Verdict, check_subject};
use crate::model::decision::{Decision, Reason};

/// The verdict and every grant of the subject's effective roles that matches.
pub struct Outcome {
    pub verdict: Verdict,
    /// The member the subject names (by id or alias); `None` if none.
    pub user: Option<UserId>,
    pub effective: Vec<EffectiveRole>,
    /// `(index into effective, grant)` for every matching grant, allow or deny.
    pub matching: Vec<(usize, Grant)>,
    pub catalog_entry: Option<String>,
}

/// Decides `request` from `state` by the decision rule, without compiling.
pub fn decide(state: &State, request: &Request<'_>, now: Timestamp) -> Result<Outcome, CheckError> {
    let tenant = state
        .tenant(request.tenant)
        .ok_or_else(|| CheckError::UnknownTenant(request.tenant.to_owned()))?;
    validate_path(request.permission).map_err(CheckError::InvalidPermission)?;
    check_subject(request.subject)?;
    let user = tenant.member(request.subject);
    let done = |reason, decision| Outcome {
        verdict: Verdict { decision, reason },
        user: user.map(|u| u.id.clone()),
        effective: Vec::new(),
        matching: Vec::new(),
        catalog_entry: None,
    };
    let Some(user) = user else {
        return Ok(done(Reason::UnknownSubject, Decision::Deny));
    };
    if user.status == UserStatus::Inactive {
        return Ok(done(Reason::SubjectInactive, Decision::Deny));
    }
    let Some(entry) = state.catalog.covering(request.permission) else {
        return Ok(done(Reason::UnknownPermission, Decision::Deny));
    };
    let parents = tenant.parents();
    let bindings = tenant.bindings_by_subject();
    let effective = tenant.effective_roles(&user.id, now, &parents, &bindings);
    let mut matching = Vec::new();
    for (i, e) in effective.iter().enumerate() {
        let Some(role) = tenant.roles.get(&e.role) else {
            continue;
        };
        for grant in state.grants_of(role) {
            // `{subject}` is the member's id, whatever the check named.
            if grant.pattern.matches(request.permission, user.id.as_str()) {
                matching.push((i, grant.clone()));
            }
        }
    }
    let verdict = if matching.iter().any(|(_, g)| g.effect == Effect::Deny) {
        Verdict {
            decision: Decision::Deny,
            reason: Reason::DeniedByGrant,
        }
    } else if matching.iter().any(|(_, g)| g.effect == Effect::Allow) {
        Verdict {
            decision: Decision::Allow,
            reason: Reason::Granted,
        }
    } else {
        Verdict {
            decision: Decision::Deny,
            reason: Reason::NoMatchingGrant,
        }
    };
    Ok(Outcome {
        verdict,
        user: Some(user.id.clone()),
        effective,
        matching,
        catalog_entry: Some(entry.pattern.as_str().to_owned()),
    })
}
