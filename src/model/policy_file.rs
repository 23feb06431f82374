//! The YAML policy file: a catalog and tenants with roles, grants, groups,
//! users and bindings, loaded into a [`State`].
//!
//! Every error is reported with its location (`tenants[acme].roles[editors].grants[2]`),
//! all at once, so a policy author fixes a file in one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::catalog::{Catalog, CatalogEntry, CatalogPattern, Stability};
use super::ids::{ADMINISTRATORS, BRIDGES, GroupName, RoleName, Subject, TenantId, UserId};
use super::permission::{Effect, Grant, GrantPattern};
use super::state::State;
use super::tenant::{Binding, Group, Role, Tenant, User, UserStatus};
use super::time::Timestamp;

/// One problem in a policy file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// E.g. `tenants[acme].roles[editors].grants[2]`, or `yaml` for syntax errors.
    pub at: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in policy", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    catalog: Vec<FileEntry>,
    #[serde(default)]
    bridges_grants: Vec<FileGrant>,
    #[serde(default)]
    tenants: Vec<FileTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    permission: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    stability: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileGrant {
    Plain(String),
    Explicit(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    settings: FileSettings,
    #[serde(default)]
    roles: Vec<FileRole>,
    #[serde(default)]
    groups: Vec<FileGroup>,
    #[serde(default)]
    users: Vec<FileUser>,
    #[serde(default)]
    bindings: Vec<FileBinding>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    single_role_per_user: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRole {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    grants: Vec<FileGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBinding {
    subject: String,
    role: String,
    #[serde(default)]
    expires: Option<String>,
}

struct Errors(Vec<LoadError>);

impl Errors {
    fn push(&mut self, at: impl Into<String>, message: impl fmt::Display) {
        self.0.push(LoadError {
            at: at.into(),
            message: message.to_string(),
        });
    }
}

/// Checks an email address loosely: one `@`, something on both sides, no
/// white space or control characters, at most 254 bytes.
pub fn check_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{email}` is not an email address"))
    }
}

fn parse_grant(raw: &FileGrant) -> Result<Grant, String> {
    let (effect, text) = match raw {
        FileGrant::Plain(text) => (Effect::Allow, text.as_str()),
        FileGrant::Explicit(map) => {
            let mut it = map.iter();
            match (it.next(), it.next()) {
                (Some((k, v)), None) if k == "allow" => (Effect::Allow, v.as_str()),
                (Some((k, v)), None) if k == "deny" => (Effect::Deny, v.as_str()),
                _ => {
                    return Err(
                        "a grant is a string, `{allow: PATTERN}` or `{deny: PATTERN}`".into(),
                    );
                }
            }
        }
    };
    let pattern = GrantPattern::parse(text).map_err(|e| e.to_string())?;
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
                        format!("stability `{s}` is not one of stable, preview, deprecated"),
                    );
                    continue;
                }
            },
        };
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
        state.revision = 1;
        Ok(state)
    } else {
        Err(LoadErrors(errors.0))
    }
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
                        format!("status `{s}` is not one of active, inactive"),
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
        tenant.users.insert(
            id.clone(),
            User {
                id,
                email: u.email.clone(),
                display_name: u.display_name.clone(),
                status,
            },
        );
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
        let key = (subject.clone(), role.clone());
        if tenant.bindings.contains_key(&key) {
            errors.push(here, format!("`{subject}` is bound to `{role}` twice"));
            continue;
        }
        if tenant.settings.single_role_per_user
            && matches!(subject, Subject::User(_))
            && tenant.bindings.keys().any(|(s, _)| *s == subject)
        {
            errors.push(
                here,
                format!(
                    "`{subject}` has more than one role but the tenant sets `single_role_per_user`"
                ),
            );
            continue;
        }
        tenant.bindings.insert(
            key,
            Binding {
                subject,
                role,
                expires,
            },
        );
    }
    tenant
}

/// The mutations that build `state` from an empty one, in an order that
/// applies cleanly: the catalog and bridge grants, then per tenant its roles
/// and grants, users, groups, members and bindings. Used to bootstrap an
/// empty store from a policy file, so the changelog holds it all.
pub fn to_mutations(state: &State) -> Vec<crate::model::Mutation> {
    use crate::model::Mutation;
    let mut out = Vec::new();
    for entry in state.catalog.entries() {
        let builtin_unchanged = entry.builtin
            && crate::model::catalog::Catalog::with_builtins()
                .get(entry.pattern.as_str())
                .is_some_and(|b| b == entry);
        if !builtin_unchanged {
            let mut entry = entry.clone();
            entry.builtin = false;
            out.push(Mutation::DefineCatalogEntry { entry });
        }
    }
    if !state.bridges_grants.is_empty() {
        out.push(Mutation::SetBridgesGrants {
            grants: state.bridges_grants.to_vec(),
        });
    }
    for t in state.tenants.values() {
        out.push(Mutation::CreateTenant {
            tenant: t.id.clone(),
            name: t.name.clone(),
            settings: t.settings.clone(),
        });
        for role in t.roles.values() {
            if !role.name.is_system() {
                out.push(Mutation::CreateRole {
                    tenant: t.id.clone(),
                    role: role.name.clone(),
                    description: role.description.clone(),
                });
            }
            if !role.grants.is_empty() {
                out.push(Mutation::SetGrants {
                    tenant: t.id.clone(),
                    role: role.name.clone(),
                    grants: role.grants.clone(),
                });
            }
        }
        for u in t.users.values() {
            out.push(Mutation::AddUser {
                tenant: t.id.clone(),
                user: u.id.clone(),
                email: u.email.clone(),
                display_name: u.display_name.clone(),
                status: u.status,
            });
        }
        for g in t.groups.values() {
            out.push(Mutation::CreateGroup {
                tenant: t.id.clone(),
                group: g.name.clone(),
                description: g.description.clone(),
            });
        }
        for g in t.groups.values() {
            for m in &g.members {
                out.push(Mutation::AddMember {
                    tenant: t.id.clone(),
                    group: g.name.clone(),
                    member: m.clone(),
                });
            }
        }
        for b in t.bindings.values() {
            out.push(Mutation::Assign {
                tenant: t.id.clone(),
                subject: b.subject.clone(),
                role: b.role.clone(),
                expires: b.expires,
            });
        }
    }
    out
}

fn resolve_subject(text: &str, tenant: &Tenant) -> Result<Subject, String> {
    let subject = Subject::parse(text).map_err(|e| e.to_string())?;
    match &subject {
        Subject::User(u) if !tenant.users.contains_key(u) => {
            Err(format!("unknown user `{u}` (list it under `users`)"))
        }
        Subject::Group(g) if !tenant.groups.contains_key(g) => Err(format!("unknown group `{g}`")),
        _ => Ok(subject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
catalog:
  - { permission: "documents:view", category: Docs }
  - { permission: "documents:edit:?DOC?", category: Docs }
tenants:
  - id: acme
    name: Acme Corp
    settings: { single_role_per_user: false }
    roles:
      - name: editors
        description: Edit documents
        grants: ["documents:view", "documents:edit:*", { deny: "documents:edit:locked" }]
      - name: Users
        grants: ["documents:view"]
    groups:
      - { name: engineering, members: [alice, "group:platform"] }
      - { name: platform, members: [bob] }
    users:
      - { id: alice, email: alice@acme.test, status: active }
      - { id: bob }
    bindings:
      - { subject: alice, role: editors }
      - { subject: "group:engineering", role: editors, expires: "2027-01-01T00:00:00Z" }
      - { subject: bob, role: Administrators }
"#;

    #[test]
    fn loads_the_documented_shape() {
        let state = load_str(GOOD).unwrap();
        let acme = state.tenant("acme").unwrap();
        assert_eq!(acme.name, "Acme Corp");
        let editors = &acme.roles[&RoleName::new("editors").unwrap()];
        assert_eq!(editors.grants.len(), 3);
        assert_eq!(editors.grants[2].effect, Effect::Deny);
        assert_eq!(acme.roles[&RoleName::users()].grants.len(), 1);
        assert_eq!(acme.bindings.len(), 3);
        assert_eq!(acme.groups.len(), 2);
        assert_eq!(state.revision, 1);
    }

    #[test]
    fn reports_every_error_with_its_location() {
        let bad = r#"
catalog:
  - { permission: "documents:view" }
  - { permission: "documents:view" }
tenants:
  - id: acme
    roles:
      - { name: editors, grants: ["documents:view", "documents:view", "nope:x", "a::b"] }
      - { name: Administrators }
      - { name: "   " }
      - { name: editors }
      - { name: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }
    groups:
      - { name: a, members: ["group:b", ghost] }
      - { name: b, members: ["group:a"] }
    users:
      - { id: alice, status: sleeping, email: "not-an-email" }
    bindings:
      - { subject: alice, role: nobody }
      - { subject: "group:zzz", role: Users }
      - { subject: alice, role: Users, expires: tomorrow }
"#;
        let errors = load_str(bad).unwrap_err().0;
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |needle: &str| {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "missing `{needle}` in {text:#?}"
            )
        };
        has("catalog[1]: catalog entry `documents:view` is listed twice");
        has("tenants[acme].roles[editors].grants[1]: duplicate grant `allow documents:view`");
        has("tenants[acme].roles[editors].grants[2]: grant `nope:x` is not covered by the catalog");
        has("tenants[acme].roles[editors].grants[3]: permission `a::b` has an empty segment");
        has("tenants[acme].roles[Administrators]: system role `Administrators` is protected");
        has("tenants[acme].roles[   ]: role name `   ` must not be blank");
        has("duplicate role `editors`");
        has("is longer than 100 characters");
        has("tenants[acme].groups[a].members[1]: unknown user `ghost`");
        has("would make a cycle");
        has("tenants[acme].users[alice]: status `sleeping`");
        has("`not-an-email` is not an email address");
        has("tenants[acme].bindings[0]: unknown role `nobody`");
        has("tenants[acme].bindings[1]: unknown group `zzz`");
        has("tenants[acme].bindings[2]: `tomorrow` is not an RFC 3339 time");
        assert_eq!(errors.len(), 15, "{text:#?}");
    }

    #[test]
    fn mutations_rebuild_the_same_state() {
        let state = load_str(GOOD).unwrap();
        let mut rebuilt = State::new();
        for m in to_mutations(&state) {
            crate::model::apply(&mut rebuilt, &m).unwrap();
        }
        rebuilt.revision = state.revision;
        assert_eq!(rebuilt, state);
    }

    #[test]
    fn single_role_per_user_refuses_two_roles() {
        let text = r#"
catalog: [{ permission: "x" }]
tenants:
  - id: t
    settings: { single_role_per_user: true }
    roles: [{ name: a }, { name: b }]
    users: [{ id: u }]
    bindings: [{ subject: u, role: a }, { subject: u, role: b }]
"#;
        let errors = load_str(text).unwrap_err().0;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("single_role_per_user"));
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let errors = load_str("tenants: [ { id: a, bogus: 1 } ]").unwrap_err().0;
        assert_eq!(errors[0].at, "yaml");
        assert!(errors[0].message.contains("bogus"), "{}", errors[0].message);
    }
}
