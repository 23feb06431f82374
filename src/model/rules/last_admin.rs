//! The last active Administrator of a tenant: who the active
//! Administrators are, and the rule that keeps at least one.

use std::collections::{BTreeSet, VecDeque};

use super::error::AdminError;
use crate::model::ids::{RoleName, Subject, UserId};
use crate::model::mutation::Mutation;
use crate::model::state::State;
use crate::model::tenant::{Tenant, UserStatus};
use crate::model::time::Timestamp;

/// The active users that are Administrators of `t` at `now`.
pub fn active_administrators(t: &Tenant, now: Timestamp) -> BTreeSet<UserId> {
    let admin = RoleName::administrators();
    let mut out = BTreeSet::new();
    let mut queue: VecDeque<&Subject> = t
        .bindings
        .values()
        .filter(|b| b.role == admin && b.live_at(now))
        .map(|b| &b.subject)
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(s) = queue.pop_front() {
        if !seen.insert(s) {
            continue;
        }
        match s {
            Subject::User(u) => {
                if t.users
                    .get(u)
                    .is_some_and(|u| u.status == UserStatus::Active)
                {
                    out.insert(u.clone());
                }
            }
            Subject::Group(g) => {
                if let Some(group) = t.groups.get(g) {
                    queue.extend(group.members.iter());
                }
            }
        }
    }
    out
}

/// The last active Administrator of a tenant cannot be removed, unassigned,
/// deactivated or deleted, by anyone, the operator included: a tenant never
/// loses its last way to be administered by accident. Deleting the tenant
/// itself is the operator's explicit way out.
pub(super) fn check_last_admin(
    before: &State,
    after: &State,
    m: &Mutation,
    now: Timestamp,
) -> Result<(), AdminError> {
    // Only these can take an Administrator away; skip the scan for the rest.
    let risky = matches!(
        m,
        Mutation::Assign { .. }
            | Mutation::Unassign { .. }
            | Mutation::RemoveUser { .. }
            | Mutation::UpdateUserStatus { .. }
            | Mutation::RemoveMember { .. }
            | Mutation::DeleteGroup { .. }
    );
    if !risky {
        return Ok(());
    }
    // The common binding changes cannot take an Administrator away; skip
    // the scan of every binding for them.
    let admin = RoleName::administrators();
    let cannot_reduce = match m {
        Mutation::Unassign { role, .. } => *role != admin,
        Mutation::Assign {
            tenant, subject, ..
        } => before.tenants.get(tenant).is_none_or(|t| {
            // Assigning removes a binding only when it replaces the user's role.
            !(t.settings.single_role_per_user
                && t.bindings.contains_key(&(subject.clone(), admin.clone())))
        }),
        _ => false,
    };
    if cannot_reduce {
        return Ok(());
    }
    for (id, t) in &before.tenants {
        let Some(next) = after.tenants.get(id) else {
            continue;
        };
        if std::sync::Arc::ptr_eq(t, next) {
            continue;
        }
        let had = active_administrators(t, now);
        if had.is_empty() {
            continue;
        }
        if active_administrators(next, now).is_empty() {
            return Err(AdminError::LastAdministrator {
                tenant: id.clone(),
                administrators: had,
            });
        }
    }
    Ok(())
}
