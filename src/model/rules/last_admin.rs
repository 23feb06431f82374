//! The last administrator of a tenant: who the administrators are (holders
//! of `Administrators` or of a role the tenant's settings name), and the
//! rule that keeps at least one, now and after every expiry.

use std::collections::{BTreeSet, VecDeque};

use super::error::AdminError;
use crate::model::ids::{Subject, UserId};
use crate::model::mutation::Mutation;
use crate::model::state::State;
use crate::model::tenant::{Binding, Tenant, UserStatus};
use crate::model::time::Timestamp;

/// The active users that hold an administrator role of `t` through a
/// binding `counts` accepts, directly or through groups.
fn administrators(t: &Tenant, counts: impl Fn(&Binding) -> bool) -> BTreeSet<UserId> {
    let mut out = BTreeSet::new();
    let mut queue: VecDeque<&Subject> = t
        .bindings
        .values()
        .filter(|b| t.settings.is_administrator_role(&b.role) && counts(b))
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

/// The active users that are administrators of `t` at `now`.
pub fn active_administrators(t: &Tenant, now: Timestamp) -> BTreeSet<UserId> {
    administrators(t, |b| b.live_at(now))
}

/// The active administrators of `t` whose administrator binding does not
/// expire (group memberships do not expire): those that stay
/// administrators at every future time unless a change takes them away.
pub fn lasting_administrators(t: &Tenant) -> BTreeSet<UserId> {
    administrators(t, |b| b.expires.is_none())
}

/// The last administrator of a tenant cannot be removed, unassigned,
/// deactivated or deleted, by anyone, the operator included: a tenant never
/// loses its last way to be administered by accident. Nor can the last
/// administrator whose binding does not expire be taken away or turned
/// into an expiring one (003: "Cannot remove last active administrator"),
/// since the tenant would lose its administrators at the expiry with no
/// change to refuse. Deleting the tenant itself is the operator's explicit
/// way out.
pub(super) fn check_last_admin(
    before: &State,
    after: &State,
    m: &Mutation,
    now: Timestamp,
) -> Result<(), AdminError> {
    // Only these can take an administrator away; skip the scan for the rest.
    let risky = matches!(
        m,
        Mutation::Assign { .. }
            | Mutation::Unassign { .. }
            | Mutation::RemoveUser { .. }
            | Mutation::UpdateUserStatus { .. }
            | Mutation::RemoveMember { .. }
            | Mutation::DeleteGroup { .. }
            | Mutation::DeleteRole { .. }
            | Mutation::UpdateTenant { .. }
    );
    if !risky {
        return Ok(());
    }
    // The common binding changes cannot take an administrator away; skip
    // the scan of every binding for them.
    let cannot_reduce = match m {
        Mutation::Unassign { tenant, role, .. } => before
            .tenants
            .get(tenant)
            .is_none_or(|t| !t.settings.is_administrator_role(role)),
        Mutation::Assign {
            tenant,
            subject,
            role,
            ..
        } => before.tenants.get(tenant).is_none_or(|t| {
            // Assigning takes a binding away only when it replaces the
            // user's role, or replaces an administrator binding with one
            // that may expire.
            let replaces_role = t.settings.single_role_per_user
                && t.bindings
                    .of(subject)
                    .any(|b| t.settings.is_administrator_role(&b.role));
            !replaces_role && !t.settings.is_administrator_role(role)
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
        let lasting = lasting_administrators(t);
        if !lasting.is_empty() && lasting_administrators(next).is_empty() {
            return Err(AdminError::LastLastingAdministrator {
                tenant: id.clone(),
                administrators: lasting,
            });
        }
    }
    Ok(())
}
