//! The administration rules: who may make which change, and which changes
//! are refused whoever asks. Pure: [`validate`] takes the state, a view of
//! what the actor holds, and the mutation, and returns the state after it
//! or the rule that refuses it.
//!
//! The rules come from the seeds: no self-escalation and no editing one's
//! own roles, grants or memberships (002/004), leaving a company only while
//! another admin remains (002/004), the last active administrator kept and
//! protected system roles (003), and the `ACM:` admin permissions (001).

mod actor;
mod authorize;
mod error;
mod last_admin;
mod read;
mod shape;
mod view;

use super::apply::{Touched, apply};
use super::ids::{TenantId, UserId};
use super::mutation::Mutation;
use super::state::State;
use super::time::Timestamp;

pub use error::{AdminError, Refusal};
pub use last_admin::{active_administrators, lasting_administrators};
pub use read::{ReadOp, Reader, Row};
pub use shape::warnings;
pub use view::{ActorView, Authority, overlaps, subsumes, view_of};

use actor::check_actor;
use last_admin::check_last_admin;
use shape::check_shape;

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An operator credential: may do anything (bootstrap, automation).
    Operator,
    User(UserId),
}

/// A credential confined to `allowed` tenants makes only changes no other
/// tenant sees: the mutation's own tenant and every tenant that would see
/// it ([`Mutation::also_seen_by`]) must be among them, and a deployment-wide
/// change is refused.
pub fn check_confined(
    state: &State,
    allowed: &[String],
    mutation: &Mutation,
) -> Result<(), AdminError> {
    let refuse = |seen_by: Option<TenantId>| AdminError::OutsideCredential {
        allowed: allowed.to_vec(),
        seen_by,
    };
    if mutation.is_deployment_wide() {
        return Err(refuse(None));
    }
    let seen = (mutation.tenant().cloned().into_iter()).chain(mutation.also_seen_by(state));
    for tenant in seen {
        if !allowed.iter().any(|a| a == tenant.as_str()) {
            return Err(refuse(Some(tenant)));
        }
    }
    Ok(())
}

/// Checks `mutation` by every rule and returns the state after it.
pub fn validate(
    state: &State,
    authority: &dyn Authority,
    actor: &Actor,
    mutation: &Mutation,
    now: Timestamp,
) -> Result<(State, Touched), AdminError> {
    // Who asks comes first, so a refusal does not reveal what exists.
    if let Actor::User(actor) = actor {
        check_actor(state, authority, actor, mutation, now)?;
    }
    check_shape(state, mutation, now)?;
    let mut next = state.clone();
    // The change as it will be recorded (`Mutation::complete`): only an
    // `add_user` can differ, so only that is copied.
    let recorded = match mutation {
        Mutation::AddUser { .. } => {
            let mut m = mutation.clone();
            m.complete(state);
            std::borrow::Cow::Owned(m)
        }
        _ => std::borrow::Cow::Borrowed(mutation),
    };
    let touched = apply(&mut next, &recorded).map_err(AdminError::DoesNotApply)?;
    check_last_admin(state, &next, mutation, now)?;
    Ok((next, touched))
}
