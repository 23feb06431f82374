//! [`apply`]: a validated [`Mutation`] made to the state, and what it
//! [`Touched`] so the compiler can redo only that.
//!
//! [`apply`] is deterministic and assumes the mutation was validated; on a
//! mutation that does not fit the state it changes nothing and says why, so
//! a corrupt changelog can never half-apply an entry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use thiserror::Error;

use super::ids::{GroupName, RoleName, Subject, TenantId};
use super::mutation::Mutation;
use super::permission::Grant;
use super::state::State;
use super::tenant::{Binding, Group, Role, Tenant, User};

/// A mutation that does not fit the state it is applied to. Validation
/// prevents these; `apply` reports them instead of half-applying.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot apply `{kind}`: {why}")]
pub struct ApplyError {
    pub kind: &'static str,
    pub why: String,
}

/// What a mutation touched, so the compiler can redo only that.
///
/// Errs on the side of more: naming a subject or a membership that did not
/// really change costs a little work, leaving out one that did gives a
/// wrong snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Touched {
    /// The tenants the mutation changed, created or deleted, and what in
    /// each. A tenant named here with nothing else said ([`TenantTouch`]'s
    /// default) changed only in what no check reads (a name, a description,
    /// profile information): the compiled form is kept and points at the new
    /// tenant.
    pub tenants: BTreeMap<TenantId, TenantTouch>,
    /// The catalog or the bridge grants changed: the catalog index and every
    /// tenant's permission side are rebuilt (no user's roles change).
    pub all: bool,
}

/// What a mutation changed in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantTouch {
    /// Compile the tenant from scratch: it is new, or its set of roles
    /// changed (a role's bit is its position by name, so every set shifts).
    pub full: bool,
    /// Some role's grants changed: rebuild the permission side.
    pub grants: bool,
    /// Subjects whose own bindings, existence or status may have changed:
    /// their bindings are read again, and every user at or under each (a
    /// user; a group: every user it lists, transitively) is recompiled.
    pub subjects: BTreeSet<Subject>,
    /// Memberships `(group, member)` that may have been added or removed:
    /// the member's groups are read again, and every user at or under the
    /// member is recompiled.
    pub members: BTreeSet<(GroupName, Subject)>,
}

impl Touched {
    /// What changed in `tenant`, recorded as changed with nothing else said.
    pub fn tenant(&mut self, tenant: &TenantId) -> &mut TenantTouch {
        self.tenants.entry(tenant.clone()).or_default()
    }
}

fn fail(m: &Mutation, why: impl Into<String>) -> ApplyError {
    ApplyError {
        kind: m.kind(),
        why: why.into(),
    }
}

fn tenant_mut<'a>(
    state: &'a mut State,
    m: &Mutation,
    id: &TenantId,
) -> Result<&'a mut Tenant, ApplyError> {
    state
        .tenants
        .get_mut(id)
        .map(Arc::make_mut)
        .ok_or_else(|| fail(m, format!("unknown tenant `{id}`")))
}

/// Applies a validated mutation and bumps the revision. Deterministic: the
/// same state and mutation give the same result on every node. On error the
/// state is unchanged.
pub fn apply(state: &mut State, m: &Mutation) -> Result<Touched, ApplyError> {
    // Work on a copy of what changes, so an error leaves `state` untouched.
    // Tenants are behind `Arc`s: copying the state copies pointers.
    let mut next = state.clone();
    let touched = apply_in(&mut next, m)?;
    next.revision = state.revision + 1;
    *state = next;
    Ok(touched)
}

fn apply_in(state: &mut State, m: &Mutation) -> Result<Touched, ApplyError> {
    let mut touched = Touched::default();
    // Every tenant-scoped mutation changes its tenant's model (a new
    // `Arc<Tenant>`); each arm says what else, if anything, to recompile.
    if let Some(t) = m.tenant() {
        touched.tenant(t);
    }
    match m {
        Mutation::CreateTenant {
            tenant,
            name,
            settings,
        } => {
            if state.tenants.contains_key(tenant) {
                return Err(fail(m, format!("tenant `{tenant}` exists")));
            }
            let mut t = Tenant::new(tenant.clone(), name.clone());
            t.settings = settings.clone();
            state.tenants.insert(tenant.clone(), Arc::new(t));
            touched.tenant(tenant).full = true;
        }
        Mutation::UpdateTenant {
            tenant,
            name,
            settings,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            if let Some(name) = name {
                t.name = name.clone();
            }
            if let Some(change) = settings {
                // Read by `apply` (single role per user) and the rules
                // (shared users), not by checks.
                t.settings = change.applied_to(&t.settings);
            }
        }
        Mutation::DeleteTenant { tenant } => {
            if state.tenants.remove(tenant).is_none() {
                return Err(fail(m, format!("unknown tenant `{tenant}`")));
            }
            touched.tenant(tenant).full = true;
        }
        Mutation::DefineCatalogEntry { entry } => {
            let catalog = Arc::make_mut(&mut state.catalog);
            catalog
                .define(entry.clone())
                .map_err(|e| fail(m, e.to_string()))?;
            touched.all = true;
        }
        Mutation::SetCatalogStability {
            permission,
            stability,
        } => {
            let catalog = Arc::make_mut(&mut state.catalog);
            if !catalog.set_stability(permission.as_str(), *stability) {
                return Err(fail(m, format!("unknown catalog entry `{permission}`")));
            }
        }
        Mutation::RemoveCatalogEntry {
            permission,
            cascade,
        } => {
            let catalog = Arc::make_mut(&mut state.catalog);
            if !catalog.remove(permission.as_str()) {
                return Err(fail(m, format!("unknown catalog entry `{permission}`")));
            }
            if *cascade {
                let catalog = Arc::clone(&state.catalog);
                for t in state.tenants.values_mut() {
                    let stale: Vec<RoleName> = t
                        .roles
                        .values()
                        .filter(|r| r.grants.iter().any(|g| !catalog.covers_grant(&g.pattern)))
                        .map(|r| r.name.clone())
                        .collect();
                    if !stale.is_empty() {
                        let t = Arc::make_mut(t);
                        for name in stale {
                            if let Some(r) = t.roles.get_mut(&name) {
                                r.grants.retain(|g| catalog.covers_grant(&g.pattern));
                            }
                        }
                    }
                }
                let bridges: Vec<Grant> = state
                    .bridges_grants
                    .iter()
                    .filter(|g| catalog.covers_grant(&g.pattern))
                    .cloned()
                    .collect();
                state.bridges_grants = bridges.into();
            }
            touched.all = true;
        }
        Mutation::SetBridgesGrants { grants } => {
            state.bridges_grants = grants.clone().into();
            touched.all = true;
        }
        Mutation::CreateRole {
            tenant,
            role,
            description,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            if t.roles.contains_key(role) {
                return Err(fail(m, format!("role `{role}` exists")));
            }
            let mut r = Role::new(role.clone());
            r.description = description.clone();
            t.roles.insert(role.clone(), r);
            touched.tenant(tenant).full = true;
        }
        Mutation::UpdateRoleDescription {
            tenant,
            role,
            description,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let r = t
                .roles
                .get_mut(role)
                .ok_or_else(|| fail(m, format!("unknown role `{role}`")))?;
            r.description = description.clone();
        }
        Mutation::DeleteRole { tenant, role } => {
            let t = tenant_mut(state, m, tenant)?;
            if t.roles.remove(role).is_none() {
                return Err(fail(m, format!("unknown role `{role}`")));
            }
            t.drop_bindings(|_, r| r == role);
            touched.tenant(tenant).full = true;
        }
        Mutation::Grant {
            tenant,
            role,
            grant,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let r = t
                .roles
                .get_mut(role)
                .ok_or_else(|| fail(m, format!("unknown role `{role}`")))?;
            if r.grants.contains(grant) {
                return Err(fail(m, format!("`{grant}` is already granted")));
            }
            r.grants.push(grant.clone());
            touched.tenant(tenant).grants = true;
        }
        Mutation::Revoke {
            tenant,
            role,
            grant,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let r = t
                .roles
                .get_mut(role)
                .ok_or_else(|| fail(m, format!("unknown role `{role}`")))?;
            let before = r.grants.len();
            r.grants.retain(|g| g != grant);
            if r.grants.len() == before {
                return Err(fail(m, format!("`{grant}` is not granted")));
            }
            touched.tenant(tenant).grants = true;
        }
        Mutation::SetGrants {
            tenant,
            role,
            grants,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let r = t
                .roles
                .get_mut(role)
                .ok_or_else(|| fail(m, format!("unknown role `{role}`")))?;
            r.grants = grants.clone();
            touched.tenant(tenant).grants = true;
        }
        Mutation::CreateGroup {
            tenant,
            group,
            description,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            if t.groups.contains_key(group) {
                return Err(fail(m, format!("group `{group}` exists")));
            }
            // A new group lists nobody: no user's roles change.
            t.groups.insert(
                group.clone(),
                Group {
                    name: group.clone(),
                    description: description.clone(),
                    members: imbl::OrdSet::new(),
                },
            );
        }
        Mutation::DeleteGroup { tenant, group } => {
            let t = tenant_mut(state, m, tenant)?;
            let Some(removed) = t.groups.remove(group) else {
                return Err(fail(m, format!("unknown group `{group}`")));
            };
            let gone = Subject::Group(group.clone());
            let holding = t.groups_listing(&gone);
            t.drop_member_everywhere(&gone);
            t.drop_bindings(|s, _| *s == gone);
            // Its bindings and memberships go; its members lose what they
            // got through it.
            let touch = touched.tenant(tenant);
            touch.subjects.insert(gone.clone());
            for member in removed.members {
                touch.members.insert((group.clone(), member));
            }
            for parent in holding {
                touch.members.insert((parent, gone.clone()));
            }
        }
        Mutation::AddMember {
            tenant,
            group,
            member,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let g = t
                .groups
                .get_mut(group)
                .ok_or_else(|| fail(m, format!("unknown group `{group}`")))?;
            if g.members.insert(member.clone()).is_some() {
                return Err(fail(m, format!("`{member}` is already a member")));
            }
            touched
                .tenant(tenant)
                .members
                .insert((group.clone(), member.clone()));
        }
        Mutation::RemoveMember {
            tenant,
            group,
            member,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let g = t
                .groups
                .get_mut(group)
                .ok_or_else(|| fail(m, format!("unknown group `{group}`")))?;
            if g.members.remove(member).is_none() {
                return Err(fail(m, format!("`{member}` is not a member")));
            }
            touched
                .tenant(tenant)
                .members
                .insert((group.clone(), member.clone()));
        }
        Mutation::AddUser {
            tenant,
            user,
            email,
            display_name,
            status,
            aliases,
            attributes,
        } => {
            // Literal: the profile a user of other tenants brings is filled
            // in before a change is recorded (`Mutation::complete`), so an
            // old record replays as it did.
            let (email, display_name) = (email.clone(), display_name.clone());
            let t = tenant_mut(state, m, tenant)?;
            if t.users.contains_key(user) {
                return Err(fail(m, format!("user `{user}` is already a member")));
            }
            // The alias index holds one member per alias: a change that
            // breaks that does not apply (the rules refuse it first).
            if let Some(clash) = t.alias_clash(user, aliases, true) {
                return Err(fail(m, clash.to_string()));
            }
            let mut joining = User::new(user.clone())
                .with_email(email)
                .with_display_name(display_name)
                .with_aliases(aliases.iter().cloned().collect())
                .with_attributes(attributes.clone());
            joining.status = *status;
            t.insert_user(joining);
            // Bindings and memberships may name the user before it joins.
            touched
                .tenant(tenant)
                .subjects
                .insert(Subject::User(user.clone()));
        }
        Mutation::UpdateUserStatus {
            tenant,
            user,
            status,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            let u = t
                .users
                .get_mut(user)
                .ok_or_else(|| fail(m, format!("unknown user `{user}`")))?;
            u.status = *status;
            touched
                .tenant(tenant)
                .subjects
                .insert(Subject::User(user.clone()));
        }
        Mutation::UpdateUserInfo {
            user,
            email,
            display_name,
            aliases,
            attributes,
        } => {
            if let Some(aliases) = aliases {
                for t in state.tenants.values() {
                    if t.users.contains_key(user)
                        && let Some(clash) = t.alias_clash(user, aliases, false)
                    {
                        return Err(fail(m, clash.to_string()));
                    }
                }
            }
            let mut found = false;
            for (id, t) in state.tenants.iter_mut() {
                if !t.users.contains_key(user) {
                    continue;
                }
                found = true;
                // Profile information: nothing compiled reads it. Aliases are
                // read through the tenant model the compiled form points at
                // (its alias index), which a patch always moves to the new one.
                touched.tenant(id);
                let t = Arc::make_mut(t);
                if let Some(u) = t.users.get_mut(user) {
                    if let Some(e) = email {
                        u.set_email((!e.is_empty()).then(|| e.clone()));
                    }
                    if let Some(d) = display_name {
                        u.set_display_name((!d.is_empty()).then(|| d.clone()));
                    }
                    if let Some(a) = attributes {
                        u.set_attributes(a.clone());
                    }
                }
                if let Some(aliases) = aliases {
                    t.set_aliases(user, aliases.iter().cloned().collect());
                }
            }
            if !found {
                return Err(fail(m, format!("unknown user `{user}`")));
            }
        }
        Mutation::RemoveUser { tenant, user } => {
            let t = tenant_mut(state, m, tenant)?;
            if t.remove_user(user).is_none() {
                return Err(fail(m, format!("unknown user `{user}`")));
            }
            let gone = Subject::User(user.clone());
            let holding = t.groups_listing(&gone);
            t.drop_member_everywhere(&gone);
            t.drop_bindings(|s, _| *s == gone);
            let touch = touched.tenant(tenant);
            for group in holding {
                touch.members.insert((group, gone.clone()));
            }
            touch.subjects.insert(gone);
        }
        Mutation::Assign {
            tenant,
            subject,
            role,
            expires,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            if !t.roles.contains_key(role) {
                return Err(fail(m, format!("unknown role `{role}`")));
            }
            if t.settings.single_role_per_user && matches!(subject, Subject::User(_)) {
                t.drop_bindings(|s, _| s == subject);
            }
            t.bindings.insert(Binding {
                subject: subject.clone(),
                role: role.clone(),
                expires: *expires,
            });
            touched.tenant(tenant).subjects.insert(subject.clone());
        }
        Mutation::Unassign {
            tenant,
            subject,
            role,
        } => {
            let t = tenant_mut(state, m, tenant)?;
            if t.bindings.remove(subject, role).is_none() {
                return Err(fail(m, format!("`{subject}` is not bound to `{role}`")));
            }
            touched.tenant(tenant).subjects.insert(subject.clone());
        }
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::UserId;
    use crate::model::tenant::{TenantSettings, UserStatus};

    fn t(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[test]
    fn apply_is_all_or_nothing_and_bumps_the_revision() {
        let mut state = State::new();
        apply(
            &mut state,
            &Mutation::CreateTenant {
                tenant: t("acme"),
                name: "Acme".into(),
                settings: TenantSettings::default(),
            },
        )
        .unwrap();
        assert_eq!(state.revision, 1);
        let before = state.clone();
        let err = apply(
            &mut state,
            &Mutation::CreateRole {
                tenant: t("nope"),
                role: RoleName::new("r").unwrap(),
                description: String::new(),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown tenant `nope`"));
        assert_eq!(state, before);
    }

    fn alias(a: &str) -> crate::model::ids::Alias {
        crate::model::ids::Alias::new(a).unwrap()
    }

    fn add(tenant: &str, user: &str, aliases: &[&str]) -> Mutation {
        Mutation::AddUser {
            tenant: t(tenant),
            user: UserId::new(user).unwrap(),
            email: None,
            display_name: None,
            status: UserStatus::Active,
            aliases: aliases.iter().map(|a| alias(a)).collect(),
            attributes: Default::default(),
        }
    }

    /// Every tenant's alias index is what its users' aliases make.
    fn consistent(state: &State) -> bool {
        state
            .tenants
            .values()
            .all(|t| t.alias_index_is_consistent())
    }

    #[test]
    fn the_alias_index_follows_every_change() {
        let mut state = State::new();
        for id in ["acme", "beta"] {
            apply(
                &mut state,
                &Mutation::CreateTenant {
                    tenant: t(id),
                    name: id.into(),
                    settings: TenantSettings::default(),
                },
            )
            .unwrap();
        }
        let rick = UserId::new("rick").unwrap();
        let owner = |state: &State, tenant: &str, a: &str| {
            state.tenants[&t(tenant)].alias_owner(a).cloned()
        };
        apply(&mut state, &add("acme", "rick", &["idp-1", "E1"])).unwrap();
        apply(&mut state, &add("beta", "rick", &["idp-1", "E1"])).unwrap();
        assert_eq!(owner(&state, "acme", "idp-1"), Some(rick.clone()));
        assert!(consistent(&state));

        // Profile info changes in every tenant, index included.
        let touched = apply(
            &mut state,
            &Mutation::UpdateUserInfo {
                user: rick.clone(),
                email: None,
                display_name: None,
                aliases: Some(vec![alias("idp-2")]),
                attributes: None,
            },
        )
        .unwrap();
        assert_eq!(touched.tenants.len(), 2);
        for tenant in ["acme", "beta"] {
            assert_eq!(owner(&state, tenant, "idp-1"), None);
            assert_eq!(owner(&state, tenant, "E1"), None);
            assert_eq!(owner(&state, tenant, "idp-2"), Some(rick.clone()));
            let u = &state.tenants[&t(tenant)].users[&rick];
            assert_eq!(*u.aliases(), [alias("idp-2")].into());
        }
        // `None` leaves them.
        apply(
            &mut state,
            &Mutation::UpdateUserInfo {
                user: rick.clone(),
                email: Some("r@x.org".into()),
                display_name: None,
                aliases: None,
                attributes: None,
            },
        )
        .unwrap();
        assert_eq!(owner(&state, "beta", "idp-2"), Some(rick.clone()));
        assert!(consistent(&state));

        // A clash does not apply, and changes nothing.
        let before = state.clone();
        let err = apply(&mut state, &add("acme", "morty", &["idp-2"])).unwrap_err();
        assert!(err.why.contains("already an alias of user `rick`"), "{err}");
        let err = apply(&mut state, &add("acme", "idp-2", &[])).unwrap_err();
        assert!(err.why.contains("user id `idp-2`"), "{err}");
        apply(&mut state, &add("acme", "morty", &[])).unwrap();
        let err = apply(
            &mut state,
            &Mutation::UpdateUserInfo {
                user: UserId::new("morty").unwrap(),
                email: None,
                display_name: None,
                aliases: Some(vec![alias("rick")]),
                attributes: None,
            },
        )
        .unwrap_err();
        assert!(err.why.contains("is the id of user `rick`"), "{err}");
        assert_eq!(state.tenants[&t("beta")], before.tenants[&t("beta")]);

        // Removing the user from one tenant frees the alias there only.
        apply(
            &mut state,
            &Mutation::RemoveUser {
                tenant: t("acme"),
                user: rick.clone(),
            },
        )
        .unwrap();
        assert_eq!(owner(&state, "acme", "idp-2"), None);
        assert_eq!(owner(&state, "beta", "idp-2"), Some(rick.clone()));
        apply(&mut state, &add("acme", "idp-2", &[])).unwrap();
        assert!(consistent(&state));

        // Deleting a tenant takes its index with it.
        apply(&mut state, &Mutation::DeleteTenant { tenant: t("beta") }).unwrap();
        assert!(state.tenant("beta").is_none());
        apply(
            &mut state,
            &Mutation::CreateTenant {
                tenant: t("beta"),
                name: "again".into(),
                settings: TenantSettings::default(),
            },
        )
        .unwrap();
        apply(&mut state, &add("beta", "idp-2", &[])).unwrap();
        assert!(consistent(&state));
    }

    #[test]
    fn single_role_per_user_replaces_the_role() {
        let mut state = State::new();
        let acme = t("acme");
        let alice = UserId::new("alice").unwrap();
        let steps = [
            Mutation::CreateTenant {
                tenant: acme.clone(),
                name: "Acme".into(),
                settings: TenantSettings {
                    single_role_per_user: true,
                    ..TenantSettings::default()
                },
            },
            Mutation::CreateRole {
                tenant: acme.clone(),
                role: RoleName::new("a").unwrap(),
                description: String::new(),
            },
            Mutation::CreateRole {
                tenant: acme.clone(),
                role: RoleName::new("b").unwrap(),
                description: String::new(),
            },
            Mutation::AddUser {
                tenant: acme.clone(),
                user: alice.clone(),
                email: None,
                display_name: None,
                status: UserStatus::Active,
                aliases: Vec::new(),
                attributes: Default::default(),
            },
            Mutation::Assign {
                tenant: acme.clone(),
                subject: Subject::User(alice.clone()),
                role: RoleName::new("a").unwrap(),
                expires: None,
            },
            Mutation::Assign {
                tenant: acme.clone(),
                subject: Subject::User(alice.clone()),
                role: RoleName::new("b").unwrap(),
                expires: None,
            },
        ];
        for m in &steps {
            apply(&mut state, m).unwrap();
        }
        let roles: Vec<String> = state.tenants[&acme]
            .bindings
            .values()
            .map(|b| b.role.to_string())
            .collect();
        assert_eq!(roles, vec!["b"]);
    }
}
