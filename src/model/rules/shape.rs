//! The rules that hold whoever asks: the mutation must fit the state (the
//! things it names exist or not, names and grants are well formed, system
//! roles stay protected).

use std::collections::BTreeSet;

use super::error::{AdminError, Refusal, err};
use crate::model::catalog::Catalog;
use crate::model::ids::{RoleName, Subject, TenantId};
use crate::model::mutation::Mutation;
use crate::model::permission::Grant;
use crate::model::policy_file::check_email;
use crate::model::state::State;
use crate::model::tenant::{RoleKind, Tenant};
use crate::model::time::Timestamp;

pub(super) fn tenant<'a>(state: &'a State, id: &TenantId) -> Result<&'a Tenant, AdminError> {
    state
        .tenants
        .get(id)
        .map(AsRef::as_ref)
        .ok_or_else(|| err(Refusal::NotFound, format!("unknown tenant `{id}`")))
}

fn role_exists(t: &Tenant, role: &RoleName) -> Result<(), AdminError> {
    if t.roles.contains_key(role) {
        Ok(())
    } else {
        Err(err(
            Refusal::NotFound,
            format!("unknown role `{role}` in tenant `{}`", t.id),
        ))
    }
}

fn subject_exists(t: &Tenant, s: &Subject) -> Result<(), AdminError> {
    let ok = match s {
        Subject::User(u) => t.users.contains_key(u),
        Subject::Group(g) => t.groups.contains_key(g),
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            Refusal::NotFound,
            format!("unknown {s} in tenant `{}`", t.id),
        ))
    }
}

fn covered(catalog: &Catalog, grant: &Grant) -> Result<(), AdminError> {
    if catalog.covers_grant(&grant.pattern) {
        Ok(())
    } else {
        Err(err(
            Refusal::Invalid,
            format!(
                "grant `{}` is not covered by the catalog: a permission must be a valid system permission name",
                grant.pattern
            ),
        ))
    }
}

fn editable_grants(role: &RoleName) -> Result<(), AdminError> {
    match RoleKind::of(role) {
        RoleKind::Administrators => Err(err(
            Refusal::Precondition,
            "the grants of `Administrators` cannot change: it holds every permission",
        )),
        RoleKind::Bridges => Err(err(
            Refusal::Precondition,
            "the grants of `Bridges` cannot change here: it is a protected system role (its grants are the deployment's bridges_grants)",
        )),
        RoleKind::Users | RoleKind::Custom => Ok(()),
    }
}

fn valid_info(email: &Option<String>, display_name: &Option<String>) -> Result<(), AdminError> {
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty()) {
        check_email(e).map_err(|m| err(Refusal::Invalid, m.to_string()))?;
    }
    if let Some(d) = display_name
        && (d.chars().count() > 200 || d.chars().any(char::is_control))
    {
        return Err(err(
            Refusal::Invalid,
            "display name must be at most 200 characters without control characters",
        ));
    }
    Ok(())
}

/// The rules that hold whoever asks.
pub(super) fn check_shape(state: &State, m: &Mutation, now: Timestamp) -> Result<(), AdminError> {
    match m {
        Mutation::CreateTenant { tenant, .. } => {
            if state.tenants.contains_key(tenant) {
                return Err(err(
                    Refusal::Exists,
                    format!("tenant `{tenant}` already exists"),
                ));
            }
        }
        Mutation::UpdateTenant {
            tenant: id,
            settings,
            ..
        } => {
            let t = tenant(state, id)?;
            if settings.as_ref().is_some_and(|s| s.single_role_per_user) {
                let mut seen = BTreeSet::new();
                for (s, _) in t.bindings.keys() {
                    if matches!(s, Subject::User(_)) && !seen.insert(s) {
                        return Err(err(
                            Refusal::Precondition,
                            format!(
                                "cannot turn on `single_role_per_user`: `{s}` has more than one role"
                            ),
                        ));
                    }
                }
            }
        }
        Mutation::DeleteTenant { tenant: id } => {
            tenant(state, id)?;
        }
        Mutation::DefineCatalogEntry { entry } => {
            let mut c = (*state.catalog).clone();
            c.define(entry.clone())
                .map_err(|e| err(Refusal::Exists, e.to_string()))?;
        }
        Mutation::SetCatalogStability { permission, .. } => {
            if state.catalog.get(permission.as_str()).is_none() {
                return Err(err(
                    Refusal::NotFound,
                    format!("unknown catalog entry `{permission}`"),
                ));
            }
        }
        Mutation::RemoveCatalogEntry {
            permission,
            cascade,
        } => {
            let Some(entry) = state.catalog.get(permission.as_str()) else {
                return Err(err(
                    Refusal::NotFound,
                    format!("unknown catalog entry `{permission}`"),
                ));
            };
            if entry.builtin {
                return Err(err(
                    Refusal::Precondition,
                    format!("catalog entry `{permission}` is built in and cannot be removed"),
                ));
            }
            if !cascade {
                let mut c = (*state.catalog).clone();
                c.remove(permission.as_str());
                for t in state.tenants.values() {
                    for r in t.roles.values() {
                        if let Some(g) = r.grants.iter().find(|g| !c.covers_grant(&g.pattern)) {
                            return Err(err(
                                Refusal::Precondition,
                                format!(
                                    "catalog entry `{permission}` is still used by grant `{}` of role `{}` in tenant `{}` (remove it with cascade to drop such grants too)",
                                    g.pattern, r.name, t.id
                                ),
                            ));
                        }
                    }
                }
                if let Some(g) = state
                    .bridges_grants
                    .iter()
                    .find(|g| !c.covers_grant(&g.pattern))
                {
                    return Err(err(
                        Refusal::Precondition,
                        format!(
                            "catalog entry `{permission}` is still used by bridges grant `{}`",
                            g.pattern
                        ),
                    ));
                }
            }
        }
        Mutation::SetBridgesGrants { grants } => {
            for g in grants {
                covered(&state.catalog, g)?;
            }
            no_duplicates(grants)?;
        }
        Mutation::CreateRole {
            tenant: id, role, ..
        } => {
            let t = tenant(state, id)?;
            if role.is_system() {
                return Err(err(
                    Refusal::Invalid,
                    format!(
                        "`{role}` is a reserved name: Administrators, Users and Bridges are system roles"
                    ),
                ));
            }
            if t.roles.contains_key(role) {
                return Err(err(
                    Refusal::Exists,
                    format!("role `{role}` already exists in tenant `{id}`"),
                ));
            }
        }
        Mutation::UpdateRoleDescription {
            tenant: id,
            role,
            description,
        } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            if matches!(
                RoleKind::of(role),
                RoleKind::Administrators | RoleKind::Bridges
            ) {
                return Err(err(
                    Refusal::Precondition,
                    format!("system role `{role}` is protected"),
                ));
            }
            if description.chars().count() > 1_000 {
                return Err(err(
                    Refusal::Invalid,
                    "description must be at most 1000 characters",
                ));
            }
        }
        Mutation::DeleteRole { tenant: id, role } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            if role.is_system() {
                return Err(err(
                    Refusal::Precondition,
                    format!("system role `{role}` cannot be deleted"),
                ));
            }
            let members = t
                .bindings
                .values()
                .filter(|b| b.role == *role && b.live_at(now))
                .count();
            if members > 0 {
                return Err(err(
                    Refusal::Precondition,
                    format!(
                        "role `{role}` has {members} member(s): unassign them before deleting it"
                    ),
                ));
            }
        }
        Mutation::Grant {
            tenant: id,
            role,
            grant,
        } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            editable_grants(role)?;
            covered(&state.catalog, grant)?;
            if t.roles.get(role).is_some_and(|r| r.grants.contains(grant)) {
                return Err(err(
                    Refusal::Exists,
                    format!("role `{role}` already has `{grant}`"),
                ));
            }
        }
        Mutation::Revoke {
            tenant: id,
            role,
            grant,
        } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            editable_grants(role)?;
            if !t.roles.get(role).is_some_and(|r| r.grants.contains(grant)) {
                return Err(err(
                    Refusal::NotFound,
                    format!("role `{role}` has no grant `{grant}`"),
                ));
            }
        }
        Mutation::SetGrants {
            tenant: id,
            role,
            grants,
        } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            editable_grants(role)?;
            for g in grants {
                covered(&state.catalog, g)?;
            }
            no_duplicates(grants)?;
        }
        Mutation::CreateGroup {
            tenant: id, group, ..
        } => {
            let t = tenant(state, id)?;
            if t.groups.contains_key(group) {
                return Err(err(
                    Refusal::Exists,
                    format!("group `{group}` already exists in tenant `{id}`"),
                ));
            }
        }
        Mutation::DeleteGroup { tenant: id, group } => {
            let t = tenant(state, id)?;
            subject_exists(t, &Subject::Group(group.clone()))?;
        }
        Mutation::AddMember {
            tenant: id,
            group,
            member,
        } => {
            let t = tenant(state, id)?;
            subject_exists(t, &Subject::Group(group.clone()))?;
            subject_exists(t, member)?;
            if t.groups
                .get(group)
                .is_some_and(|g| g.members.contains(member))
            {
                return Err(err(
                    Refusal::Exists,
                    format!("{member} is already a member of group `{group}`"),
                ));
            }
            if let Subject::Group(child) = member
                && t.would_cycle(group, child)
            {
                return Err(err(
                    Refusal::Precondition,
                    format!("adding {member} to group `{group}` would make a cycle"),
                ));
            }
        }
        Mutation::RemoveMember {
            tenant: id,
            group,
            member,
        } => {
            let t = tenant(state, id)?;
            subject_exists(t, &Subject::Group(group.clone()))?;
            if !t
                .groups
                .get(group)
                .is_some_and(|g| g.members.contains(member))
            {
                return Err(err(
                    Refusal::NotFound,
                    format!("{member} is not a member of group `{group}`"),
                ));
            }
        }
        Mutation::AddUser {
            tenant: id,
            user,
            email,
            display_name,
            ..
        } => {
            let t = tenant(state, id)?;
            if t.users.contains_key(user) {
                return Err(err(
                    Refusal::Exists,
                    format!("user `{user}` is already a member of tenant `{id}`"),
                ));
            }
            valid_info(email, display_name)?;
        }
        Mutation::UpdateUserStatus {
            tenant: id, user, ..
        } => {
            let t = tenant(state, id)?;
            subject_exists(t, &Subject::User(user.clone()))?;
        }
        Mutation::UpdateUserInfo {
            user,
            email,
            display_name,
        } => {
            if !state.tenants.values().any(|t| t.users.contains_key(user)) {
                return Err(err(Refusal::NotFound, format!("unknown user `{user}`")));
            }
            valid_info(email, display_name)?;
        }
        Mutation::RemoveUser { tenant: id, user } => {
            let t = tenant(state, id)?;
            subject_exists(t, &Subject::User(user.clone()))?;
        }
        Mutation::Assign {
            tenant: id,
            subject,
            role,
            expires,
        } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            subject_exists(t, subject)?;
            if let Some(e) = expires
                && *e <= now
            {
                return Err(err(
                    Refusal::Invalid,
                    format!("expiry {e} is not in the future"),
                ));
            }
            if let Some(b) = t.bindings.get(&(subject.clone(), role.clone()))
                && b.expires == *expires
            {
                return Err(err(
                    Refusal::Exists,
                    format!("{subject} is already bound to `{role}`"),
                ));
            }
        }
        Mutation::Unassign {
            tenant: id,
            subject,
            role,
        } => {
            let t = tenant(state, id)?;
            if !t.bindings.contains_key(&(subject.clone(), role.clone())) {
                return Err(err(
                    Refusal::NotFound,
                    format!("{subject} is not bound to `{role}`"),
                ));
            }
        }
    }
    Ok(())
}

fn no_duplicates(grants: &[Grant]) -> Result<(), AdminError> {
    let mut seen = BTreeSet::new();
    for g in grants {
        if !seen.insert(g) {
            return Err(err(
                Refusal::Invalid,
                format!("grant `{g}` is listed twice"),
            ));
        }
    }
    Ok(())
}
