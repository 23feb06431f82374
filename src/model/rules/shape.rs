//! The rules that hold whoever asks: the mutation must fit the state (the
//! things it names exist or not, names and grants are well formed, system
//! roles stay protected).

use std::collections::BTreeSet;

use super::error::AdminError;
use crate::model::catalog::Catalog;
use crate::model::ids::{Alias, RoleName, Subject, TenantId, UserId};
use crate::model::mutation::Mutation;
use crate::model::operation::check_mapping;
use crate::model::permission::{Effect, Grant};
use crate::model::policy_file::check_email;
use crate::model::state::State;
use crate::model::tenant::{GrantPolicy, MAX_ALIASES, RoleKind, Tenant, check_attributes};
use crate::model::text::{MAX_DESCRIPTION_CHARS, MAX_SHORT_TEXT_CHARS, check_text};
use crate::model::time::Timestamp;

pub(super) fn tenant<'a>(state: &'a State, id: &TenantId) -> Result<&'a Tenant, AdminError> {
    state
        .tenants
        .get(id)
        .map(AsRef::as_ref)
        .ok_or_else(|| AdminError::UnknownTenant { tenant: id.clone() })
}

fn role_exists(t: &Tenant, role: &RoleName) -> Result<(), AdminError> {
    if t.roles.contains_key(role) {
        Ok(())
    } else {
        Err(AdminError::UnknownRole {
            tenant: t.id.clone(),
            role: role.clone(),
        })
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
        Err(AdminError::UnknownSubject {
            tenant: t.id.clone(),
            subject: s.clone(),
        })
    }
}

fn covered(catalog: &Catalog, grant: &Grant) -> Result<(), AdminError> {
    if catalog.covers_grant(&grant.pattern) {
        Ok(())
    } else {
        Err(AdminError::NotCovered {
            pattern: grant.pattern.clone(),
        })
    }
}

fn editable_grants(role: &RoleName) -> Result<(), AdminError> {
    match RoleKind::of(role) {
        RoleKind::Administrators => Err(AdminError::AdministratorsGrantsFixed),
        RoleKind::Bridges => Err(AdminError::BridgesGrantsProtected),
        RoleKind::Users | RoleKind::Custom => Ok(()),
    }
}

fn valid_info(email: &Option<String>, display_name: &Option<String>) -> Result<(), AdminError> {
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty()) {
        check_email(e).map_err(AdminError::InvalidEmail)?;
    }
    if let Some(d) = display_name {
        text("display_name", d, MAX_SHORT_TEXT_CHARS)?;
    }
    Ok(())
}

/// A list of aliases for `user`: at most [`MAX_ALIASES`], none twice, none
/// the user's own id. (Each alias's shape is its type's.)
fn valid_aliases(user: &UserId, aliases: &[Alias]) -> Result<(), AdminError> {
    if aliases.len() > MAX_ALIASES {
        return Err(AdminError::TooManyAliases {
            user: user.clone(),
            count: aliases.len(),
        });
    }
    let mut seen = BTreeSet::new();
    for alias in aliases {
        if alias.as_str() == user.as_str() {
            return Err(AdminError::AliasIsOwnId { user: user.clone() });
        }
        if !seen.insert(alias) {
            return Err(AdminError::DuplicateAlias {
                alias: alias.clone(),
            });
        }
    }
    Ok(())
}

/// The tenant's rules for grants `role` gains: `Users` may accept removals
/// only (003), and a `preview` or `deprecated` catalog entry may be refused
/// ([`GrantPolicy::Refuse`]).
fn grants_added<'a>(
    state: &State,
    t: &Tenant,
    role: &RoleName,
    added: impl IntoIterator<Item = &'a Grant>,
) -> Result<(), AdminError> {
    let mut added = added.into_iter().peekable();
    if added.peek().is_none() {
        return Ok(());
    }
    if RoleKind::of(role) == RoleKind::Users && t.settings.users_role_removals_only {
        return Err(AdminError::UsersRoleRemovalsOnly {
            tenant: t.id.clone(),
        });
    }
    for grant in added {
        if grant.effect != Effect::Allow {
            continue;
        }
        if let Some((entry, setting)) = t
            .settings
            .stability_hits(&state.catalog, grant, GrantPolicy::Refuse)
            .next()
        {
            return Err(AdminError::StabilityRefused {
                tenant: t.id.clone(),
                pattern: grant.pattern.clone(),
                entry: entry.pattern.clone(),
                stability: entry.stability.as_str(),
                setting,
            });
        }
    }
    Ok(())
}

/// The grants `m` adds to a role of `t`: a `grant`'s, or those of a
/// `set_grants` the role does not hold yet.
fn added_grants<'m>(t: &Tenant, m: &'m Mutation) -> Vec<&'m Grant> {
    match m {
        Mutation::Grant { grant, .. } => vec![grant],
        Mutation::SetGrants { role, grants, .. } => {
            let current = t
                .roles
                .get(role)
                .map(|r| r.grants.as_slice())
                .unwrap_or(&[]);
            grants.iter().filter(|g| !current.contains(g)).collect()
        }
        _ => Vec::new(),
    }
}

/// What an accepted `mutation` should tell its caller: each allow grant it
/// adds that reaches a catalog entry whose stability the tenant warns about
/// ([`GrantPolicy::Warn`]). Judged against `state`, the state before it.
pub fn warnings(state: &State, mutation: &Mutation) -> Vec<String> {
    let (Mutation::Grant {
        tenant: id, role, ..
    }
    | Mutation::SetGrants {
        tenant: id, role, ..
    }) = mutation
    else {
        return Vec::new();
    };
    let Some(t) = state.tenants.get(id) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for grant in added_grants(t, mutation)
        .into_iter()
        .filter(|g| g.effect == Effect::Allow)
    {
        for (entry, setting) in t
            .settings
            .stability_hits(&state.catalog, grant, GrantPolicy::Warn)
        {
            out.push(format!(
                "`{}` granted to role `{role}` reaches catalog entry `{}`, which is {} (tenant `{id}` warns: `{setting}: warn`)",
                grant.pattern,
                entry.pattern,
                entry.stability.as_str()
            ));
        }
    }
    out
}

/// The free-text policy ([`check_text`]) as a refusal.
fn text(field: &'static str, value: &str, max_chars: usize) -> Result<(), AdminError> {
    check_text(field, value, max_chars).map_err(AdminError::InvalidText)
}

/// The rules that hold whoever asks.
pub(super) fn check_shape(state: &State, m: &Mutation, now: Timestamp) -> Result<(), AdminError> {
    match m {
        Mutation::CreateTenant {
            tenant,
            name,
            settings,
        } => {
            text("name", name, MAX_SHORT_TEXT_CHARS)?;
            check_mapping(&settings.admin_permissions).map_err(AdminError::BadMapping)?;
            // A new tenant has no custom role yet to count as an administrator.
            if let Some(role) = settings.administrator_roles.iter().next() {
                return Err(AdminError::AdministratorRolesOnCreate { role: role.clone() });
            }
            if state.tenants.contains_key(tenant) {
                return Err(AdminError::TenantExists {
                    tenant: tenant.clone(),
                });
            }
        }
        Mutation::UpdateTenant {
            tenant: id,
            name,
            settings,
        } => {
            if let Some(name) = name {
                text("name", name, MAX_SHORT_TEXT_CHARS)?;
            }
            let t = tenant(state, id)?;
            if let Some(mapping) = settings.as_ref().and_then(|s| s.admin_permissions.as_ref()) {
                check_mapping(mapping).map_err(AdminError::BadMapping)?;
            }
            for role in settings
                .as_ref()
                .and_then(|s| s.administrator_roles.as_ref())
                .into_iter()
                .flatten()
            {
                role_exists(t, role).map_err(|_| AdminError::UnknownAdministratorRole {
                    tenant: id.clone(),
                    role: role.clone(),
                })?;
                if RoleKind::of(role) != RoleKind::Custom {
                    return Err(AdminError::SystemAdministratorRole { role: role.clone() });
                }
            }
            if settings
                .as_ref()
                .is_some_and(|s| s.single_role_per_user == Some(true))
            {
                let mut seen = BTreeSet::new();
                for s in t.bindings.values().map(|b| &b.subject) {
                    if matches!(s, Subject::User(_)) && !seen.insert(s) {
                        return Err(AdminError::SingleRoleConflict { subject: s.clone() });
                    }
                }
            }
        }
        Mutation::DeleteTenant { tenant: id } => {
            tenant(state, id)?;
        }
        Mutation::DefineCatalogEntry { entry } => {
            text("category", &entry.category, MAX_SHORT_TEXT_CHARS)?;
            text("description", &entry.description, MAX_DESCRIPTION_CHARS)?;
            let mut c = (*state.catalog).clone();
            c.define(entry.clone())
                .map_err(AdminError::CatalogConflict)?;
        }
        Mutation::SetCatalogStability { permission, .. } => {
            if state.catalog.get(permission.as_str()).is_none() {
                return Err(AdminError::UnknownCatalogEntry {
                    permission: permission.clone(),
                });
            }
        }
        Mutation::RemoveCatalogEntry {
            permission,
            cascade,
        } => {
            let Some(entry) = state.catalog.get(permission.as_str()) else {
                return Err(AdminError::UnknownCatalogEntry {
                    permission: permission.clone(),
                });
            };
            if entry.builtin {
                return Err(AdminError::BuiltinCatalogEntry {
                    permission: permission.clone(),
                });
            }
            if !cascade {
                let mut c = (*state.catalog).clone();
                c.remove(permission.as_str());
                for t in state.tenants.values() {
                    for r in t.roles.values() {
                        if let Some(g) = r.grants.iter().find(|g| !c.covers_grant(&g.pattern)) {
                            return Err(AdminError::CatalogEntryInUse {
                                permission: permission.clone(),
                                pattern: g.pattern.clone(),
                                role: r.name.clone(),
                                tenant: t.id.clone(),
                            });
                        }
                    }
                }
                if let Some(g) = state
                    .bridges_grants
                    .iter()
                    .find(|g| !c.covers_grant(&g.pattern))
                {
                    return Err(AdminError::CatalogEntryInBridgesGrants {
                        permission: permission.clone(),
                        pattern: g.pattern.clone(),
                    });
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
            tenant: id,
            role,
            description,
        } => {
            text("description", description, MAX_DESCRIPTION_CHARS)?;
            let t = tenant(state, id)?;
            if role.is_system() {
                return Err(AdminError::ReservedRoleName { role: role.clone() });
            }
            if t.roles.contains_key(role) {
                return Err(AdminError::RoleExists {
                    tenant: id.clone(),
                    role: role.clone(),
                });
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
                return Err(AdminError::ProtectedRole { role: role.clone() });
            }
            text("description", description, MAX_DESCRIPTION_CHARS)?;
        }
        Mutation::DeleteRole { tenant: id, role } => {
            let t = tenant(state, id)?;
            role_exists(t, role)?;
            if role.is_system() {
                return Err(AdminError::SystemRoleUndeletable { role: role.clone() });
            }
            if t.settings.administrator_roles.contains(role) {
                return Err(AdminError::AdministratorRoleInUse {
                    tenant: id.clone(),
                    role: role.clone(),
                });
            }
            let members = t
                .bindings
                .values()
                .filter(|b| b.role == *role && b.live_at(now))
                .count();
            if members > 0 {
                return Err(AdminError::RoleHasMembers {
                    role: role.clone(),
                    members,
                });
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
                return Err(AdminError::AlreadyGranted {
                    role: role.clone(),
                    grant: grant.clone(),
                });
            }
            grants_added(state, t, role, added_grants(t, m))?;
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
                return Err(AdminError::NotGranted {
                    role: role.clone(),
                    grant: grant.clone(),
                });
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
            grants_added(state, t, role, added_grants(t, m))?;
        }
        Mutation::CreateGroup {
            tenant: id,
            group,
            description,
        } => {
            text("description", description, MAX_DESCRIPTION_CHARS)?;
            let t = tenant(state, id)?;
            if t.groups.contains_key(group) {
                return Err(AdminError::GroupExists {
                    tenant: id.clone(),
                    group: group.clone(),
                });
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
                return Err(AdminError::AlreadyMember {
                    group: group.clone(),
                    member: member.clone(),
                });
            }
            if let Subject::Group(child) = member
                && t.would_cycle(group, child)
            {
                return Err(AdminError::GroupCycle {
                    group: group.clone(),
                    member: member.clone(),
                });
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
                return Err(AdminError::NotMember {
                    group: group.clone(),
                    member: member.clone(),
                });
            }
        }
        Mutation::AddUser {
            tenant: id,
            user,
            email,
            display_name,
            aliases,
            attributes,
            ..
        } => {
            let t = tenant(state, id)?;
            if t.users.contains_key(user) {
                return Err(AdminError::UserExists {
                    tenant: id.clone(),
                    user: user.clone(),
                });
            }
            valid_info(email, display_name)?;
            valid_aliases(user, aliases)?;
            check_attributes(attributes).map_err(AdminError::InvalidAttributes)?;
            // A user of other tenants keeps the one profile they all see.
            let profile = state.profile_of(user);
            if let Some((other, profile)) = profile {
                let differs = |given: &Option<String>, have: Option<&str>| {
                    given.as_deref().is_some_and(|g| Some(g) != have)
                };
                let field = if differs(email, profile.email()) {
                    Some("email")
                } else if differs(display_name, profile.display_name()) {
                    Some("display name")
                } else if !aliases.is_empty()
                    && aliases.iter().collect::<BTreeSet<_>>()
                        != profile.aliases().iter().collect::<BTreeSet<_>>()
                {
                    Some("set of aliases")
                } else if !attributes.is_empty() && attributes != profile.attributes() {
                    Some("set of attributes")
                } else {
                    None
                };
                if let Some(field) = field {
                    return Err(AdminError::ProfileDiffers {
                        user: user.clone(),
                        tenant: other.clone(),
                        field,
                    });
                }
            }
            // The aliases it will have here: those given, or the profile's.
            let effective: Vec<&Alias> = match profile {
                Some((_, p)) if aliases.is_empty() => p.aliases().iter().collect(),
                _ => aliases.iter().collect(),
            };
            if let Some(clash) = t.alias_clash(user, effective, true) {
                return Err(AdminError::AliasClash(clash));
            }
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
            aliases,
            attributes,
        } => {
            if !state.tenants.values().any(|t| t.users.contains_key(user)) {
                return Err(AdminError::UnknownUser { user: user.clone() });
            }
            valid_info(email, display_name)?;
            if let Some(attributes) = attributes {
                check_attributes(attributes).map_err(AdminError::InvalidAttributes)?;
            }
            if let Some(aliases) = aliases {
                valid_aliases(user, aliases)?;
                // Unique in every tenant the user belongs to: O(k log n) each.
                for t in state.tenants.values() {
                    if t.users.contains_key(user)
                        && let Some(clash) = t.alias_clash(user, aliases, false)
                    {
                        return Err(AdminError::AliasClash(clash));
                    }
                }
            }
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
                return Err(AdminError::ExpiryNotInFuture { expires: *e });
            }
            if let Some(b) = t.bindings.get(subject, role)
                && b.expires == *expires
            {
                return Err(AdminError::AlreadyBound {
                    subject: subject.clone(),
                    role: role.clone(),
                });
            }
        }
        Mutation::Unassign {
            tenant: id,
            subject,
            role,
        } => {
            let t = tenant(state, id)?;
            if !t.bindings.contains(subject, role) {
                return Err(AdminError::NotBound {
                    subject: subject.clone(),
                    role: role.clone(),
                });
            }
        }
    }
    Ok(())
}

fn no_duplicates(grants: &[Grant]) -> Result<(), AdminError> {
    let mut seen = BTreeSet::new();
    for g in grants {
        if !seen.insert(g) {
            return Err(AdminError::DuplicateGrant { grant: g.clone() });
        }
    }
    Ok(())
}
