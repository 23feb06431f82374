//! The YAML policy file: a catalog and tenants with roles, grants, groups,
//! users and bindings, loaded into a [`State`].
//!
//! Every error is reported with its location (`tenants[acme].roles[editors].grants[2]`),
//! all at once, so a policy author fixes a file in one pass.
//!
//! The loader ([`load_str`]) is here; the file's serde structs are in
//! `schema`, the errors in `error`, and the way back to mutations
//! ([`to_mutations`]) in `mutations`.

mod email;
mod error;
mod mutations;
mod nesting;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::catalog::{Catalog, CatalogEntry, CatalogPattern, Stability};
use super::ids::{ADMINISTRATORS, Alias, BRIDGES, GroupName, RoleName, Subject, TenantId, UserId};
use super::permission::{Effect, Grant, GrantPattern};
use super::state::State;
use super::tenant::{
    Binding, GrantPolicy, Group, MAX_ALIASES, Role, RoleKind, Tenant, User, UserStatus,
};
use super::text::{MAX_DESCRIPTION_CHARS, MAX_SHORT_TEXT_CHARS, check_text, quote};
use super::time::Timestamp;

pub use email::{EmailError, MAX_EMAIL_BYTES, check_email};
pub use error::{LoadError, LoadErrors};
pub use mutations::to_mutations;
pub use nesting::{MAX_YAML_NESTING, NestingError, check_nesting};

use error::{Errors, GrantError, SubjectError};
use schema::{FileDoc, FileGrant, FileTenant};

fn parse_grant(raw: &FileGrant) -> Result<Grant, GrantError> {
    let (effect, text) = match raw {
        FileGrant::Plain(text) => (Effect::Allow, text.as_str()),
        FileGrant::Explicit(map) => {
            let mut it = map.iter();
            match (it.next(), it.next()) {
                (Some((k, v)), None) if k == "allow" => (Effect::Allow, v.as_str()),
                (Some((k, v)), None) if k == "deny" => (Effect::Deny, v.as_str()),
                _ => return Err(GrantError::Shape),
            }
        }
    };
    let pattern = GrantPattern::parse(text)?;
    Ok(Grant { effect, pattern })
}

/// Parses and validates grants against the catalog; no duplicates.
fn load_grants(raw: &[FileGrant], catalog: &Catalog, at: &str, errors: &mut Errors) -> Vec<Grant> {
    let mut grants: Vec<Grant> = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        let here = format!("{at}.grants[{i}]");
        match parse_grant(g) {
            Err(e) => errors.push(here, e),
            Ok(grant) if !catalog.covers_grant(&grant.pattern) => errors.push(
                here,
                format!("grant `{}` is not covered by the catalog", grant.pattern),
            ),
            Ok(grant) if grants.contains(&grant) => {
                errors.push(here, format!("duplicate grant `{grant}`"))
            }
            Ok(grant) => grants.push(grant),
        }
    }
    grants
}

/// Parses a policy file's text into a state. Revision 1: the file is one change.
pub fn load_str(text: &str) -> Result<State, LoadErrors> {
    check_nesting(text).map_err(|e| {
        LoadErrors(vec![LoadError {
            at: "yaml".into(),
            message: e.to_string(),
        }])
    })?;
    let doc: FileDoc = serde_norway::from_str(text).map_err(|e| {
        LoadErrors(vec![LoadError {
            at: "yaml".into(),
            message: e.to_string(),
        }])
    })?;
    let mut errors = Errors(Vec::new());
    let mut state = State::new();

    let mut catalog = Catalog::with_builtins();
    for (i, e) in doc.catalog.iter().enumerate() {
        let at = format!("catalog[{i}]");
        let stability = match e.stability.as_deref() {
            None => Stability::Stable,
            Some(s) => match Stability::parse(s) {
                Some(s) => s,
                None => {
                    errors.push(
                        &at,
                        format!(
                            "stability `{}` is not one of stable, preview, deprecated",
                            quote(s)
                        ),
                    );
                    continue;
                }
            },
        };
        if let Err(err) = check_text("category", &e.category, MAX_SHORT_TEXT_CHARS)
            .and_then(|()| check_text("description", &e.description, MAX_DESCRIPTION_CHARS))
        {
            errors.push(&at, err);
        }
        match CatalogPattern::parse(&e.permission) {
            Err(err) => errors.push(at, err),
            Ok(pattern) => {
                let entry = CatalogEntry {
                    pattern,
                    category: e.category.clone(),
                    description: e.description.clone(),
                    stability,
                    builtin: false,
                };
                if let Err(err) = catalog.define(entry) {
                    errors.push(at, err);
                }
            }
        }
    }
    state.bridges_grants =
        load_grants(&doc.bridges_grants, &catalog, "bridges_grants", &mut errors).into();
    state.catalog = Arc::new(catalog);

    for (i, raw) in doc.tenants.iter().enumerate() {
        let label = if raw.id.is_empty() {
            i.to_string()
        } else {
            raw.id.clone()
        };
        let at = format!("tenants[{label}]");
        let id = match TenantId::new(&raw.id) {
            Ok(id) => id,
            Err(e) => {
                errors.push(&at, e);
                continue;
            }
        };
        if state.tenants.contains_key(&id) {
            errors.push(&at, format!("duplicate tenant `{id}`"));
            continue;
        }
        let tenant = load_tenant(raw, id.clone(), &state, &at, &mut errors);
        state.tenants.insert(id, Arc::new(tenant));
    }

    if errors.0.is_empty() {
        share_profiles(&mut state);
        // After sharing: an alias given in one tenant is the user's in every
        // tenant it belongs to, and must be free in each.
        for t in state.tenants.values_mut() {
            index_aliases(Arc::make_mut(t), &mut errors);
        }
    }
    if errors.0.is_empty() {
        state.revision = 1;
        Ok(state)
    } else {
        Err(LoadErrors(errors.0))
    }
}

/// A user's profile as the policy states it: email, display name, aliases,
/// attributes.
type Profile = (
    Option<String>,
    Option<String>,
    BTreeSet<Alias>,
    crate::model::tenant::Attributes,
);

/// Gives each user's profile fields, stated in any tenant, to every tenant
/// the user belongs to (the loader has refused two different values).
fn share_profiles(state: &mut State) {
    let mut profiles: BTreeMap<UserId, Profile> = BTreeMap::new();
    for t in state.tenants.values() {
        for u in t.users.values() {
            let p = profiles.entry(u.id.clone()).or_default();
            p.0 = p.0.take().or_else(|| u.email().map(str::to_owned));
            p.1 = p.1.take().or_else(|| u.display_name().map(str::to_owned));
            if p.2.is_empty() {
                p.2.clone_from(u.aliases());
            }
            if p.3.is_empty() {
                p.3.clone_from(u.attributes());
            }
        }
    }
    for t in state.tenants.values_mut() {
        if !t.users.values().any(|u| {
            let p = &profiles[&u.id];
            u.email() != p.0.as_deref()
                || u.display_name() != p.1.as_deref()
                || *u.aliases() != p.2
                || *u.attributes() != p.3
        }) {
            continue;
        }
        let t = Arc::make_mut(t);
        let ids: Vec<UserId> = t.users.keys().cloned().collect();
        for id in ids {
            if let Some(u) = t.users.get_mut(&id) {
                let p = &profiles[&id];
                u.set_email(p.0.clone());
                u.set_display_name(p.1.clone());
                u.set_aliases(p.2.clone());
                u.set_attributes(p.3.clone());
            }
        }
    }
}

/// Checks that every alias names one member of `t` (no other member's id,
/// no other member's alias), reporting each clash, and builds the alias
/// index.
fn index_aliases(t: &mut Tenant, errors: &mut Errors) {
    let mut held: BTreeMap<&Alias, &UserId> = BTreeMap::new();
    for u in t.users.values() {
        let here = format!("tenants[{}].users[{}].aliases", t.id, u.id);
        for alias in u.aliases() {
            let shown = quote(alias.as_str());
            if let Some((other, _)) = t.users.get_key_value(alias.as_str()) {
                errors.push(
                    &here,
                    format!("alias `{shown}` is the id of user `{other}`: an alias must not name another member"),
                );
            } else if let Some(other) = held.insert(alias, &u.id) {
                errors.push(
                    &here,
                    format!("alias `{shown}` is also an alias of user `{other}`: an alias names one member"),
                );
            }
        }
    }
    t.reindex_aliases();
}

/// A user's aliases as written: each a valid [`Alias`], none twice, not the
/// user's own id, at most [`MAX_ALIASES`].
fn load_aliases(raw: &[String], id: &UserId, here: &str, errors: &mut Errors) -> BTreeSet<Alias> {
    if raw.len() > MAX_ALIASES {
        errors.push(
            format!("{here}.aliases"),
            format!("{} aliases: at most {MAX_ALIASES} are allowed", raw.len()),
        );
    }
    let mut out = BTreeSet::new();
    for (j, text) in raw.iter().enumerate() {
        let at = format!("{here}.aliases[{j}]");
        match Alias::new(text) {
            Err(e) => errors.push(at, e),
            Ok(a) if a.as_str() == id.as_str() => errors.push(
                at,
                format!("alias `{id}` is the user's own id: an alias is another identity"),
            ),
            Ok(a) => {
                let shown = quote(a.as_str());
                if !out.insert(a) {
                    errors.push(at, format!("alias `{shown}` is listed twice"));
                }
            }
        }
    }
    out
}

fn load_tenant(
    raw: &FileTenant,
    id: TenantId,
    state: &State,
    at: &str,
    errors: &mut Errors,
) -> Tenant {
    let mut tenant = Tenant::new(
        id.clone(),
        raw.name.clone().unwrap_or_else(|| id.to_string()),
    );
    tenant.settings.single_role_per_user = raw.settings.single_role_per_user;
    tenant.settings.shared_users = raw.settings.shared_users;
    tenant.settings.removal_needs_all_grants = raw.settings.removal_needs_all_grants;
    tenant.settings.users_role_removals_only = raw.settings.users_role_removals_only;
    tenant.settings.preview_grants = raw.settings.preview_grants;
    tenant.settings.deprecated_grants = raw.settings.deprecated_grants;
    match crate::model::operation::check_mapping(&raw.settings.admin_permissions) {
        Ok(()) => tenant
            .settings
            .admin_permissions
            .clone_from(&raw.settings.admin_permissions),
        Err(e) => errors.push(format!("{at}.settings"), e),
    }
    if let Err(e) = check_text("name", &tenant.name, MAX_SHORT_TEXT_CHARS) {
        errors.push(at, e);
    }

    // Roles. `Users` may be listed to set its grants; the other system roles may not.
    let mut listed: BTreeSet<RoleName> = BTreeSet::new();
    for (i, r) in raw.roles.iter().enumerate() {
        let label = if r.name.is_empty() {
            i.to_string()
        } else {
            r.name.clone()
        };
        let here = format!("{at}.roles[{label}]");
        let name = match RoleName::new(&r.name) {
            Ok(n) => n,
            Err(e) => {
                errors.push(here, e);
                continue;
            }
        };
        if matches!(name.as_str(), ADMINISTRATORS | BRIDGES) {
            errors.push(
                here,
                format!("system role `{name}` is protected and may only appear in bindings"),
            );
            continue;
        }
        if !listed.insert(name.clone()) {
            errors.push(here, format!("duplicate role `{name}`"));
            continue;
        }
        if let Err(e) = check_text("description", &r.description, MAX_DESCRIPTION_CHARS) {
            errors.push(&here, e);
        }
        let grants = load_grants(&r.grants, &state.catalog, &here, errors);
        tenant.roles.insert(
            name.clone(),
            Role {
                name,
                description: r.description.clone(),
                grants,
            },
        );
    }

    // Who counts as an administrator, and grants the settings refuse.
    for name in &raw.settings.administrator_roles {
        let here = format!("{at}.settings.administrator_roles");
        match RoleName::new(name) {
            Ok(role) if RoleKind::of(&role) != RoleKind::Custom => errors.push(
                here,
                format!(
                    "`{role}` is a system role: list custom roles (`Administrators` always counts)"
                ),
            ),
            Ok(role) if !tenant.roles.contains_key(&role) => {
                errors.push(here, format!("unknown role `{role}`"));
            }
            Ok(role) => {
                tenant.settings.administrator_roles.insert(role);
            }
            Err(e) => errors.push(here, e),
        }
    }
    for role in tenant.roles.values() {
        for grant in &role.grants {
            if let Some((entry, setting)) = tenant
                .settings
                .stability_hits(&state.catalog, grant, GrantPolicy::Refuse)
                .next()
            {
                errors.push(
                    format!("{at}.roles[{}]", role.name),
                    format!(
                        "`{}` reaches catalog entry `{}`, which is {}, and the tenant sets `{setting}: refuse`",
                        grant.pattern,
                        entry.pattern,
                        entry.stability.as_str()
                    ),
                );
            }
        }
    }

    // Users.
    for (i, u) in raw.users.iter().enumerate() {
        let label = if u.id.is_empty() {
            i.to_string()
        } else {
            u.id.clone()
        };
        let here = format!("{at}.users[{label}]");
        let id = match UserId::new(&u.id) {
            Ok(id) => id,
            Err(e) => {
                errors.push(here, e);
                continue;
            }
        };
        if tenant.users.contains_key(&id) {
            errors.push(here, format!("duplicate user `{id}`"));
            continue;
        }
        let status = match u.status.as_deref() {
            None => UserStatus::Active,
            Some(s) => match UserStatus::parse(s) {
                Some(s) => s,
                None => {
                    errors.push(
                        &here,
                        format!("status `{}` is not one of active, inactive", quote(s)),
                    );
                    UserStatus::Active
                }
            },
        };
        if let Some(email) = &u.email
            && let Err(e) = check_email(email)
        {
            errors.push(&here, e);
        }
        if let Some(d) = &u.display_name
            && let Err(e) = check_text("display_name", d, MAX_SHORT_TEXT_CHARS)
        {
            errors.push(&here, e);
        }
        let aliases = load_aliases(&u.aliases, &id, &here, errors);
        if let Err(e) = crate::model::tenant::check_attributes(&u.attributes) {
            errors.push(format!("{here}.attributes"), e);
        }
        // A profile is the user's own: one email, name and set of aliases in
        // every tenant.
        for other in state.tenants.values() {
            let Some(o) = other.users.get(&id) else {
                continue;
            };
            if !u.attributes.is_empty()
                && !o.attributes().is_empty()
                && u.attributes != *o.attributes()
            {
                errors.push(
                    &here,
                    format!(
                        "`{id}` has other attributes in tenant `{}`: a profile is the user's own, the same in every tenant (give it once)",
                        other.id
                    ),
                );
            }
            if !aliases.is_empty() && !o.aliases().is_empty() && aliases != *o.aliases() {
                errors.push(
                    &here,
                    format!(
                        "`{id}` has other aliases in tenant `{}`: a profile is the user's own, the same in every tenant (give it once)",
                        other.id
                    ),
                );
            }
            let fields = [
                ("email", u.email.as_deref(), o.email()),
                ("display_name", u.display_name.as_deref(), o.display_name()),
            ];
            for (field, given, there) in fields {
                if let (Some(given), Some(there)) = (given, there)
                    && given != there
                {
                    errors.push(
                        &here,
                        format!(
                            "`{id}` has another {field} in tenant `{}`: a profile is the user's own, the same in every tenant (give it once)",
                            other.id
                        ),
                    );
                }
            }
        }
        // The alias index is built once every tenant has its profiles
        // (`index_aliases`).
        tenant.users.insert(id.clone(), {
            let mut user = User::new(id)
                .with_email(u.email.clone())
                .with_display_name(u.display_name.clone())
                .with_aliases(aliases)
                .with_attributes(u.attributes.clone());
            user.status = status;
            user
        });
    }

    // Groups: names first, so members may name groups defined later.
    for (i, g) in raw.groups.iter().enumerate() {
        let label = if g.name.is_empty() {
            i.to_string()
        } else {
            g.name.clone()
        };
        let here = format!("{at}.groups[{label}]");
        match GroupName::new(&g.name) {
            Err(e) => errors.push(here, e),
            Ok(name) if tenant.groups.contains_key(&name) => {
                errors.push(here, format!("duplicate group `{name}`"))
            }
            Ok(name) => {
                if let Err(e) = check_text("description", &g.description, MAX_DESCRIPTION_CHARS) {
                    errors.push(&here, e);
                }
                tenant.groups.insert(
                    name.clone(),
                    Group {
                        name,
                        description: g.description.clone(),
                        members: imbl::OrdSet::new(),
                    },
                );
            }
        }
    }
    for g in &raw.groups {
        let Ok(name) = GroupName::new(&g.name) else {
            continue;
        };
        for (j, m) in g.members.iter().enumerate() {
            let here = format!("{at}.groups[{name}].members[{j}]");
            let member = match resolve_subject(m, &tenant) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(here, e);
                    continue;
                }
            };
            if let Subject::Group(child) = &member
                && tenant.would_cycle(&name, child)
            {
                errors.push(
                    here,
                    format!("adding `group:{child}` to `group:{name}` would make a cycle"),
                );
                continue;
            }
            let Some(group) = tenant.groups.get_mut(&name) else {
                continue;
            };
            if group.members.insert(member).is_some() {
                errors.push(here, format!("duplicate member `{m}`"));
            }
        }
    }

    // Bindings.
    for (i, b) in raw.bindings.iter().enumerate() {
        let here = format!("{at}.bindings[{i}]");
        let subject = match resolve_subject(&b.subject, &tenant) {
            Ok(s) => s,
            Err(e) => {
                errors.push(here, e);
                continue;
            }
        };
        let role = match RoleName::new(&b.role) {
            Ok(r) if tenant.roles.contains_key(&r) => r,
            Ok(r) => {
                errors.push(here, format!("unknown role `{r}`"));
                continue;
            }
            Err(e) => {
                errors.push(here, e);
                continue;
            }
        };
        let expires = match b.expires.as_deref().map(Timestamp::parse).transpose() {
            Ok(e) => e,
            Err(e) => {
                errors.push(here, e);
                continue;
            }
        };
        if tenant.bindings.contains(&subject, &role) {
            errors.push(here, format!("`{subject}` is bound to `{role}` twice"));
            continue;
        }
        if tenant.settings.single_role_per_user
            && matches!(subject, Subject::User(_))
            && tenant.bindings.of(&subject).next().is_some()
        {
            errors.push(
                here,
                format!(
                    "`{subject}` has more than one role but the tenant sets `single_role_per_user`"
                ),
            );
            continue;
        }
        tenant.bindings.insert(Binding {
            subject,
            role,
            expires,
        });
    }
    tenant
}

fn resolve_subject(text: &str, tenant: &Tenant) -> Result<Subject, SubjectError> {
    let subject = Subject::parse(text)?;
    match &subject {
        Subject::User(u) if !tenant.users.contains_key(u) => {
            Err(SubjectError::UnknownUser(u.clone()))
        }
        Subject::Group(g) if !tenant.groups.contains_key(g) => {
            Err(SubjectError::UnknownGroup(g.clone()))
        }
        _ => Ok(subject),
    }
}
