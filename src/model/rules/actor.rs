//! The rules about who asks: the permission each mutation needs (the
//! tenant's mapping of the operation, `ACM:` by default; [`authorize`]), no
//! editing one's own roles, grants, memberships or status, no escalation
//! (handing out or taking away only what the actor holds), leaving a tenant,
//! and what only an operator may do.

use std::collections::{BTreeSet, VecDeque};

use super::authorize::{On, authorize};
use super::error::AdminError;
use super::last_admin::active_administrators;
use super::shape::tenant;
use super::view::{ActorView, Authority};
use crate::model::ids::{GroupName, RoleName, Subject, TenantId, UserId};
use crate::model::mutation::Mutation;
use crate::model::operation::Operation;
use crate::model::permission::{Effect, Grant};
use crate::model::state::State;
use crate::model::tenant::{Attributes, RoleKind, Tenant, UserStatus};
use crate::model::time::Timestamp;

/// The groups a subject belongs to, directly or through other groups.
fn groups_containing(t: &Tenant, start: &Subject) -> BTreeSet<GroupName> {
    let parents = t.parents();
    let mut out = BTreeSet::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(s) = queue.pop_front() {
        for g in parents.get(&s).into_iter().flatten() {
            if out.insert(g.clone()) {
                queue.push_back(Subject::Group(g.clone()));
            }
        }
    }
    out
}

/// Whether `subject` is the actor or a group the actor belongs to.
fn is_self(t: &Tenant, actor: &UserId, subject: &Subject) -> bool {
    match subject {
        Subject::User(u) => u == actor,
        Subject::Group(g) => groups_containing(t, &Subject::User(actor.clone())).contains(g),
    }
}

/// No escalation: every allow grant of `roles` must be one the actor holds;
/// `Bridges` only from an Administrator.
fn hand_out(
    state: &State,
    t: &Tenant,
    view: &ActorView,
    actor: &UserId,
    roles: impl IntoIterator<Item = RoleName>,
) -> Result<(), AdminError> {
    for role_name in roles {
        let Some(role) = t.roles.get(&role_name) else {
            continue;
        };
        if role.kind() == RoleKind::Bridges && !view.administrator {
            return Err(AdminError::BridgesNeedAdministrator);
        }
        for g in state.grants_of(role) {
            if g.effect == Effect::Allow && !view.holds(&g.pattern, actor.as_str()) {
                return Err(AdminError::EscalationThroughRole {
                    actor: actor.clone(),
                    pattern: g.pattern.clone(),
                    role: role_name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Deactivating or removing another user takes away everything it holds;
/// where the tenant says so (`removal_needs_all_grants`), the actor must
/// hold all of that itself (rediacc's "equal or fewer privileges" read
/// strictly), so a delegated admin cannot lock out an Administrator.
/// Otherwise the seeds' permission suffices (001, 002/004).
fn outranks(
    authority: &dyn Authority,
    view: &ActorView,
    actor: &UserId,
    t: &Tenant,
    target: &UserId,
    now: Timestamp,
) -> Result<(), AdminError> {
    let tenant = &t.id;
    let theirs = authority.view(tenant, target, now);
    // A member of `Administrators` holds everything, so only another one
    // takes it away, whatever the setting: else a delegated admin could
    // remove every Administrator (the last-admin rule would count a holder
    // of an `administrator_roles` role it had just made) and be left on top.
    if theirs.administrator && !view.administrator {
        return Err(AdminError::AdministratorOutranks {
            actor: actor.clone(),
            target: target.clone(),
        });
    }
    if !t.settings.removal_needs_all_grants {
        return Ok(());
    }
    for g in theirs.grants.iter().filter(|g| g.effect == Effect::Allow) {
        if !view.holds(&g.pattern, actor.as_str()) {
            return Err(AdminError::Outranked {
                actor: actor.clone(),
                target: target.clone(),
                pattern: g.pattern.clone(),
            });
        }
    }
    Ok(())
}

/// The roles bound (live) to a group or any group containing it.
fn roles_through_group(t: &Tenant, group: &GroupName, now: Timestamp) -> BTreeSet<RoleName> {
    let mut groups = groups_containing(t, &Subject::Group(group.clone()));
    groups.insert(group.clone());
    t.bindings
        .values()
        .filter(|b| b.live_at(now) && matches!(&b.subject, Subject::Group(g) if groups.contains(g)))
        .map(|b| b.role.clone())
        .collect()
}

/// Whether `actor` may edit `user`'s profile in `t`: `update_user_info`
/// (`ACM:USER:UPDATE:INFO:<user>` by default, the seeds' "Edit Users" over
/// one user); with `becomes`, a change of attributes, `update_user_attributes`
/// on the user as it is and as it will be, since attributes may move the
/// user under other permissions (a realm of another's).
fn may_edit_user(
    authority: &dyn Authority,
    actor: &UserId,
    t: &Tenant,
    user: &UserId,
    becomes: Option<&Attributes>,
    now: Timestamp,
) -> bool {
    let view = authority.view(&t.id, actor, now);
    let may = |op, on: On<'_>| authorize(&view, actor, t, op, on).is_ok();
    match becomes {
        None => may(Operation::UpdateUserInfo, On::user(t, user)),
        Some(attributes) => {
            may(Operation::UpdateUserAttributes, On::user(t, user))
                && may(
                    Operation::UpdateUserAttributes,
                    On {
                        attributes: Some(attributes),
                        ..On::user(t, user)
                    },
                )
        }
    }
}

/// Whether `actor` may edit `user`'s profile ([`may_edit_user`]) in at
/// least one tenant the user belongs to: the seeds' rule.
fn may_edit_somewhere(
    state: &State,
    authority: &dyn Authority,
    actor: &UserId,
    user: &UserId,
    becomes: Option<&Attributes>,
    now: Timestamp,
) -> bool {
    state
        .tenants
        .values()
        .filter(|t| t.users.contains_key(user))
        .any(|t| may_edit_user(authority, actor, t, user, becomes, now))
}

/// Tenant isolation: a change to `user`'s profile or tenancy is seen by
/// every tenant the user belongs to (but `except`, the tenant the change is
/// made in). Each must share its users (`shared_users`) or give the actor
/// `ACM:USER:UPDATE:INFO:<user>` there, so no actor whose rights stop at
/// one tenant changes what another sees.
fn seen_elsewhere(
    state: &State,
    authority: &dyn Authority,
    actor: &UserId,
    user: &UserId,
    except: Option<&TenantId>,
    becomes: Option<&Attributes>,
    now: Timestamp,
) -> Result<(), AdminError> {
    let refusing = state.tenants.values().find(|t| {
        Some(&t.id) != except
            && t.users.contains_key(user)
            && !t.settings.shared_users
            && !may_edit_user(authority, actor, t, user, becomes, now)
    });
    match refusing {
        None => Ok(()),
        Some(t) => Err(AdminError::SeenByAnotherTenant {
            actor: actor.clone(),
            user: user.clone(),
            tenant: t.id.clone(),
        }),
    }
}

fn operator_only(m: &Mutation) -> Result<(), AdminError> {
    Err(AdminError::OperatorOnly { kind: m.kind() })
}

/// The rules about who asks.
pub(super) fn check_actor(
    state: &State,
    authority: &dyn Authority,
    actor: &UserId,
    m: &Mutation,
    now: Timestamp,
) -> Result<(), AdminError> {
    // Profile info is per user, across tenants.
    if let Mutation::UpdateUserInfo {
        user,
        email,
        display_name,
        aliases,
        attributes,
    } = m
    {
        // Attributes may decide what an admin change needs (`{user.realm}`),
        // so they are `update_user_attributes`'s, one's own included, in a
        // tenant the user is in and in every other that does not share its
        // users.
        if let Some(attributes) = attributes {
            let allowed = may_edit_somewhere(state, authority, actor, user, Some(attributes), now);
            if !allowed {
                return Err(AdminError::CannotSetAttributes {
                    actor: actor.clone(),
                    user: user.clone(),
                });
            }
            seen_elsewhere(state, authority, actor, user, None, Some(attributes), now)?;
            if email.is_none() && display_name.is_none() && aliases.is_none() {
                return Ok(());
            }
        }
        // Aliases are identities a check is decided as: setting one's own
        // would hand one's rights to an identity no administrator chose (a
        // workload, a second account) and let anyone squat an id another
        // member or a future user needs. So they follow the rule for
        // another's profile, whoever they belong to.
        if user == actor && aliases.is_some() {
            let allowed = may_edit_somewhere(state, authority, actor, user, None, now);
            if !allowed {
                return Err(AdminError::CannotSetOwnAliases {
                    actor: actor.clone(),
                });
            }
            return seen_elsewhere(state, authority, actor, user, None, None, now);
        }
        if user == actor {
            // Own profile: always, for a user active in at least one tenant
            // (an inactive user is denied everything).
            let active = state.tenants.values().any(|t| {
                t.users
                    .get(actor)
                    .is_some_and(|u| u.status == UserStatus::Active)
            });
            return if active {
                Ok(())
            } else {
                Err(AdminError::InactiveEverywhere {
                    actor: actor.clone(),
                })
            };
        }
        // The seeds: rights in at least one tenant the user is in...
        let allowed = may_edit_somewhere(state, authority, actor, user, None, now);
        if !allowed {
            return Err(AdminError::CannotUpdateInfo {
                actor: actor.clone(),
                user: user.clone(),
            });
        }
        // ...and tenant isolation: every tenant that sees the profile shares
        // its users or gives the actor the same right there.
        return seen_elsewhere(
            state,
            authority,
            actor,
            user,
            None,
            attributes.as_ref(),
            now,
        );
    }
    let Some(id) = m.tenant() else {
        return operator_only(m);
    };
    if matches!(
        m,
        Mutation::CreateTenant { .. } | Mutation::DeleteTenant { .. }
    ) {
        return operator_only(m);
    }
    if let Mutation::AddUser { user, .. } = m
        && user == actor
    {
        return Err(AdminError::SelfAdd);
    }
    let t = tenant(state, id)?;
    let view = authority.view(id, actor, now);
    if !view.member || !view.active {
        return Err(AdminError::NotActiveMember {
            actor: actor.clone(),
            tenant: id.clone(),
        });
    }
    let may = |op: Operation, on: On<'_>| authorize(&view, actor, t, op, on);
    match m {
        Mutation::UpdateTenant { settings, .. } => {
            may(Operation::UpdateTenant, On::default())?;
            if settings
                .as_ref()
                .is_some_and(|s| s.touches_guards(&t.settings))
                && !view.administrator
            {
                return Err(AdminError::GuardsNeedAdministrator {
                    actor: actor.clone(),
                    tenant: id.clone(),
                });
            }
            Ok(())
        }
        Mutation::CreateRole { role, .. } => may(Operation::CreateRole, On::role(role)),
        Mutation::UpdateRoleDescription { role, .. } => {
            may(Operation::UpdateRoleDescription, On::role(role))
        }
        Mutation::DeleteRole { role, .. } => may(Operation::DeleteRole, On::role(role)),
        Mutation::Grant { role, .. }
        | Mutation::Revoke { role, .. }
        | Mutation::SetGrants { role, .. } => {
            let op = match m {
                Mutation::Grant { .. } => Operation::Grant,
                Mutation::Revoke { .. } => Operation::Revoke,
                _ => Operation::SetGrants,
            };
            may(op, On::role(role))?;
            // A role that counts as an administrator is edited only by a
            // member of `Administrators`: emptied, it would still satisfy
            // the last-administrator and leave rules.
            if t.settings.administrator_roles.contains(role) && !view.administrator {
                return Err(AdminError::GuardsNeedAdministrator {
                    actor: actor.clone(),
                    tenant: id.clone(),
                });
            }
            // `Users` is everyone's, so editing it is not editing one's own grants.
            if view.roles.contains(role) && RoleKind::of(role) != RoleKind::Users {
                return Err(AdminError::SelfEditGrants {
                    actor: actor.clone(),
                    role: role.clone(),
                });
            }
            // Granting hands a permission out; revoking or replacing takes it
            // away: either needs the actor to hold it (equal privileges).
            let current: Vec<Grant> = t
                .roles
                .get(role)
                .map(|r| r.grants.clone())
                .unwrap_or_default();
            let moved: Vec<&Grant> = match m {
                Mutation::Grant { grant, .. } | Mutation::Revoke { grant, .. } => vec![grant],
                Mutation::SetGrants { grants, .. } => grants
                    .iter()
                    .filter(|g| !current.contains(g))
                    .chain(current.iter().filter(|g| !grants.contains(g)))
                    .collect(),
                _ => Vec::new(),
            };
            for g in moved {
                if g.effect == Effect::Allow && !view.holds(&g.pattern, actor.as_str()) {
                    return Err(AdminError::Escalation {
                        actor: actor.clone(),
                        pattern: g.pattern.clone(),
                    });
                }
            }
            Ok(())
        }
        Mutation::CreateGroup { group, .. } => may(Operation::CreateGroup, On::group(group)),
        Mutation::DeleteGroup { group, .. } => {
            may(Operation::DeleteGroup, On::group(group))?;
            if is_self(t, actor, &Subject::Group(group.clone())) {
                return Err(AdminError::SelfEditGroup {
                    actor: actor.clone(),
                    group: group.clone(),
                });
            }
            Ok(())
        }
        Mutation::AddMember { group, member, .. }
        | Mutation::RemoveMember { group, member, .. } => {
            let op = if matches!(m, Mutation::AddMember { .. }) {
                Operation::AddMember
            } else {
                Operation::RemoveMember
            };
            let on = match member {
                Subject::User(u) => On {
                    group: Some(group),
                    ..On::user(t, u)
                },
                Subject::Group(_) => On::group(group),
            };
            may(op, on)?;
            if is_self(t, actor, member) {
                return Err(AdminError::SelfEditMembership {
                    actor: actor.clone(),
                    member: member.clone(),
                });
            }
            // Adding hands the group's roles out; removing takes them away:
            // either needs the actor to hold them (equal or fewer privileges).
            hand_out(state, t, &view, actor, roles_through_group(t, group, now))
        }
        Mutation::AddUser {
            user, attributes, ..
        } => {
            // The attributes it will have: those given, or its profile's.
            let attributes = match state.profile_of(user) {
                Some((_, profile)) if attributes.is_empty() => profile.attributes(),
                _ => attributes,
            };
            let on = On {
                user: Some(user),
                attributes: Some(attributes),
                ..On::default()
            };
            may(Operation::AddUser, on)?;
            // A user another tenant has joins this one only with that
            // tenant's consent or rights there.
            seen_elsewhere(state, authority, actor, user, Some(id), None, now)
        }
        Mutation::UpdateUserStatus { user, .. } => {
            may(Operation::UpdateUserStatus, On::user(t, user))?;
            if user == actor {
                return Err(AdminError::SelfEditStatus);
            }
            outranks(authority, &view, actor, t, user, now)
        }
        Mutation::RemoveUser { user, .. } if user == actor => {
            // Leaving: needs the right to edit users there, another active
            // Administrator left behind, and another tenant to belong to.
            may(Operation::LeaveTenant, On::user(t, user))?;
            let others = active_administrators(t, now)
                .into_iter()
                .filter(|a| a != actor)
                .count();
            if others == 0 {
                return Err(AdminError::LeaveWithoutAdministrator {
                    actor: actor.clone(),
                    tenant: id.clone(),
                });
            }
            if !state
                .tenants
                .values()
                .any(|o| o.id != *id && o.users.contains_key(actor))
            {
                return Err(AdminError::LeaveOnlyTenant {
                    actor: actor.clone(),
                    tenant: id.clone(),
                });
            }
            Ok(())
        }
        Mutation::RemoveUser { user, .. } => {
            may(Operation::RemoveUser, On::user(t, user))?;
            outranks(authority, &view, actor, t, user, now)
        }
        Mutation::Assign { subject, role, .. } | Mutation::Unassign { subject, role, .. } => {
            let op = if matches!(m, Mutation::Assign { .. }) {
                Operation::Assign
            } else {
                Operation::Unassign
            };
            may(
                op,
                On {
                    role: Some(role),
                    ..On::subject(t, subject)
                },
            )?;
            if is_self(t, actor, subject) {
                return Err(AdminError::SelfEditRoles {
                    actor: actor.clone(),
                    subject: subject.clone(),
                });
            }
            let mut moved_roles = vec![role.clone()];
            // With one role per user, assigning takes the current role away.
            if matches!(m, Mutation::Assign { .. })
                && t.settings.single_role_per_user
                && matches!(subject, Subject::User(_))
            {
                moved_roles.extend(t.bindings.of(subject).map(|b| b.role.clone()));
            }
            hand_out(state, t, &view, actor, moved_roles)
        }
        Mutation::CreateTenant { .. }
        | Mutation::DeleteTenant { .. }
        | Mutation::DefineCatalogEntry { .. }
        | Mutation::SetCatalogStability { .. }
        | Mutation::RemoveCatalogEntry { .. }
        | Mutation::SetBridgesGrants { .. }
        | Mutation::UpdateUserInfo { .. } => operator_only(m),
    }
}
