//! The administration rules: who may make which change, and which changes
//! are refused whoever asks. Pure: [`validate`] takes the state, a view of
//! what the actor holds, and the mutation, and returns the state after it
//! or the rule that refuses it.
//!
//! The rules come from the seeds: no self-escalation and no editing one's
//! own roles, grants or memberships (002/004), leaving a company only while
//! another admin remains (002/004), the last active administrator kept and
//! protected system roles (003), and the `ACM:` admin permissions (001).

use std::collections::{BTreeSet, VecDeque};

use thiserror::Error;

use super::catalog::Catalog;
use super::ids::{RoleName, Subject, TenantId, UserId};
use super::mutation::{Mutation, Touched, apply};
use super::permission::{Effect, Grant, GrantPattern, PatternSegment, validate_path};
use super::policy_file::check_email;
use super::state::State;
use super::tenant::{RoleKind, Tenant, UserStatus};
use super::time::Timestamp;

/// The gRPC-independent kind of a refusal; the server maps it to a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor lacks the right (`PERMISSION_DENIED`).
    Denied,
    /// A rule such as last-admin (`FAILED_PRECONDITION`).
    Precondition,
    /// Malformed (`INVALID_ARGUMENT`).
    Invalid,
    /// Names something that is not there (`NOT_FOUND`).
    NotFound,
    /// Names something that is already there (`ALREADY_EXISTS`).
    Exists,
}

impl Refusal {
    /// The gRPC code name, e.g. `PERMISSION_DENIED` (for logs, the audit log
    /// and policy tests; the server maps to `tonic::Code` itself).
    pub fn code_name(self) -> &'static str {
        match self {
            Refusal::Denied => "PERMISSION_DENIED",
            Refusal::Precondition => "FAILED_PRECONDITION",
            Refusal::Invalid => "INVALID_ARGUMENT",
            Refusal::NotFound => "NOT_FOUND",
            Refusal::Exists => "ALREADY_EXISTS",
        }
    }
}

/// Why a mutation was refused: the kind and a message naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct AdminError {
    pub refusal: Refusal,
    pub message: String,
}

fn err(refusal: Refusal, message: impl Into<String>) -> AdminError {
    AdminError {
        refusal,
        message: message.into(),
    }
}

/// What an actor holds in one tenant, now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActorView {
    pub member: bool,
    pub active: bool,
    pub administrator: bool,
    /// The roles in effect, `Users` included.
    pub roles: BTreeSet<RoleName>,
    /// Every grant of those roles (`Administrators` contributes `allow *`).
    pub grants: Vec<Grant>,
}

impl ActorView {
    /// Whether the actor is allowed `path` by the decision rule (deny wins).
    pub fn allows(&self, path: &str, actor: &str) -> bool {
        if !self.active {
            return false;
        }
        let mut allow = false;
        for g in &self.grants {
            if g.pattern.matches(path, actor) {
                match g.effect {
                    Effect::Deny => return false,
                    Effect::Allow => allow = true,
                }
            }
        }
        allow
    }

    /// Whether the actor holds every permission `pattern` names: some allow
    /// of its own covers the pattern, and none of its denies overlaps it.
    pub fn holds(&self, pattern: &GrantPattern, actor: &str) -> bool {
        self.active
            && self
                .grants
                .iter()
                .any(|g| g.effect == Effect::Allow && subsumes(&g.pattern, pattern, actor))
            && !self
                .grants
                .iter()
                .any(|g| g.effect == Effect::Deny && overlaps(&g.pattern, pattern, actor))
    }
}

/// Whether `outer` matches every path `inner` matches. A `{subject}` in
/// `inner` is relative to whoever checks, so only `{subject}` in `outer`
/// (or a `*`) covers it.
pub fn subsumes(outer: &GrantPattern, inner: &GrantPattern, _actor: &str) -> bool {
    let (o, i) = (outer.segments(), inner.segments());
    let length_ok = match (outer.has_star(), inner.has_star()) {
        (false, false) => o.len() == i.len(),
        (false, true) => false,
        (true, false) => i.len() > o.len(),
        (true, true) => i.len() >= o.len(),
    };
    length_ok
        && o.iter().zip(i).all(|(a, b)| match (a, b) {
            (PatternSegment::Literal(x), PatternSegment::Literal(y)) => x == y,
            (PatternSegment::Subject, PatternSegment::Subject) => true,
            _ => false,
        })
}

/// Whether some path matches both patterns (for the checking `actor`, a
/// `{subject}` segment is conservatively taken to match anything).
pub fn overlaps(a: &GrantPattern, b: &GrantPattern, _actor: &str) -> bool {
    let (x, y) = (a.segments(), b.segments());
    let length_ok = match (a.has_star(), b.has_star()) {
        (false, false) => x.len() == y.len(),
        (true, false) => y.len() > x.len(),
        (false, true) => x.len() > y.len(),
        (true, true) => true,
    };
    length_ok
        && x.iter().zip(y).all(|(p, q)| match (p, q) {
            (PatternSegment::Literal(s), PatternSegment::Literal(t)) => s == t,
            _ => true,
        })
}

/// Gives [`validate`] what an actor holds; implemented by the compiled
/// snapshot (fast) and by the plain state (for tests).
pub trait Authority {
    fn view(&self, tenant: &TenantId, user: &UserId, now: Timestamp) -> ActorView;
}

/// The plain, uncompiled authority: walks the model.
impl Authority for State {
    fn view(&self, tenant: &TenantId, user: &UserId, now: Timestamp) -> ActorView {
        let Some(t) = self.tenants.get(tenant) else {
            return ActorView::default();
        };
        view_of(self, t, user, now, &t.parents(), &t.bindings_by_subject())
    }
}

/// The actor view from a tenant and its membership indexes.
pub fn view_of(
    state: &State,
    t: &Tenant,
    user: &UserId,
    now: Timestamp,
    parents: &std::collections::HashMap<Subject, Vec<super::ids::GroupName>>,
    bindings: &std::collections::HashMap<Subject, Vec<super::tenant::Binding>>,
) -> ActorView {
    let Some(u) = t.users.get(user) else {
        return ActorView::default();
    };
    let effective = t.effective_roles(user, now, parents, bindings);
    let mut view = ActorView {
        member: true,
        active: u.status == UserStatus::Active,
        ..ActorView::default()
    };
    for e in effective {
        if let Some(role) = t.roles.get(&e.role) {
            view.administrator |= role.kind() == RoleKind::Administrators;
            view.grants.extend(state.grants_of(role).iter().cloned());
        }
        view.roles.insert(e.role);
    }
    view
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An operator credential: may do anything (bootstrap, automation).
    Operator,
    User(UserId),
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
    let touched = apply(&mut next, mutation).map_err(|e| err(Refusal::Precondition, e.why))?;
    check_last_admin(state, &next, mutation, now)?;
    Ok((next, touched))
}

fn tenant<'a>(state: &'a State, id: &TenantId) -> Result<&'a Tenant, AdminError> {
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
        check_email(e).map_err(|m| err(Refusal::Invalid, m))?;
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
fn check_shape(state: &State, m: &Mutation, now: Timestamp) -> Result<(), AdminError> {
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

/// Requires the actor to be allowed `prefix:param`. A parameter that is not a
/// valid path segment (a role name with a space) can only be covered by a
/// wildcard, so then the actor must hold `prefix:*`.
fn require(
    view: &ActorView,
    actor: &UserId,
    tenant: &TenantId,
    prefix: &str,
    param: Option<&str>,
) -> Result<(), AdminError> {
    let permission = match param {
        Some(p) => format!("{prefix}:{p}"),
        None => prefix.to_owned(),
    };
    let ok = if validate_path(&permission).is_ok() {
        view.allows(&permission, actor.as_str())
    } else {
        GrantPattern::parse(&format!("{prefix}:*")).is_ok_and(|p| view.holds(&p, actor.as_str()))
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            Refusal::Denied,
            format!("actor `{actor}` lacks `{permission}` in tenant `{tenant}`"),
        ))
    }
}

/// The groups a subject belongs to, directly or through other groups.
fn groups_containing(t: &Tenant, start: &Subject) -> BTreeSet<super::ids::GroupName> {
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
            return Err(err(
                Refusal::Denied,
                "only Administrators may assign `Bridges`",
            ));
        }
        for g in state.grants_of(role) {
            if g.effect == Effect::Allow && !view.holds(&g.pattern, actor.as_str()) {
                return Err(err(
                    Refusal::Denied,
                    format!(
                        "no escalation: actor `{actor}` does not hold `{}` of role `{role_name}` and so cannot hand it out",
                        g.pattern
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Deactivating or removing another user takes away everything it holds,
/// so the actor must hold all of that itself (rediacc: "equal or fewer
/// privileges"); a delegated admin cannot lock out an Administrator.
fn outranks(
    authority: &dyn Authority,
    view: &ActorView,
    actor: &UserId,
    tenant: &TenantId,
    target: &UserId,
    now: Timestamp,
) -> Result<(), AdminError> {
    let theirs = authority.view(tenant, target, now);
    for g in theirs.grants.iter().filter(|g| g.effect == Effect::Allow) {
        if !view.holds(&g.pattern, actor.as_str()) {
            return Err(err(
                Refusal::Denied,
                format!(
                    "no escalation: `{target}` holds `{}` which actor `{actor}` does not, so `{actor}` cannot deactivate or remove them",
                    g.pattern
                ),
            ));
        }
    }
    Ok(())
}

/// The roles bound (live) to a group or any group containing it.
fn roles_through_group(
    t: &Tenant,
    group: &super::ids::GroupName,
    now: Timestamp,
) -> BTreeSet<RoleName> {
    let mut groups = groups_containing(t, &Subject::Group(group.clone()));
    groups.insert(group.clone());
    t.bindings
        .values()
        .filter(|b| b.live_at(now) && matches!(&b.subject, Subject::Group(g) if groups.contains(g)))
        .map(|b| b.role.clone())
        .collect()
}

fn operator_only(m: &Mutation) -> Result<(), AdminError> {
    Err(err(
        Refusal::Denied,
        format!(
            "`{}` changes the whole deployment and needs an operator credential",
            m.kind()
        ),
    ))
}

/// The rules about who asks.
fn check_actor(
    state: &State,
    authority: &dyn Authority,
    actor: &UserId,
    m: &Mutation,
    now: Timestamp,
) -> Result<(), AdminError> {
    // Profile info is per user, across tenants.
    if let Mutation::UpdateUserInfo { user, .. } = m {
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
                Err(err(
                    Refusal::Denied,
                    format!("actor `{actor}` is not active in any tenant"),
                ))
            };
        }
        let allowed = state
            .tenants
            .values()
            .filter(|t| t.users.contains_key(user))
            .any(|t| {
                let view = authority.view(&t.id, actor, now);
                require(
                    &view,
                    actor,
                    &t.id,
                    "ACM:USER:UPDATE:INFO",
                    Some(user.as_str()),
                )
                .is_ok()
            });
        return if allowed {
            Ok(())
        } else {
            Err(err(
                Refusal::Denied,
                format!(
                    "actor `{actor}` lacks `ACM:USER:UPDATE:INFO:{user}` in every tenant `{user}` belongs to"
                ),
            ))
        };
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
        return Err(err(Refusal::Denied, "no one adds themselves to a tenant"));
    }
    let t = tenant(state, id)?;
    let view = authority.view(id, actor, now);
    if !view.member || !view.active {
        return Err(err(
            Refusal::Denied,
            format!("actor `{actor}` is not an active member of tenant `{id}`"),
        ));
    }
    let role_param = |r: &RoleName| Some(r.as_str().to_owned());
    match m {
        Mutation::UpdateTenant { .. } => {
            require(&view, actor, id, "ACM:TENANT:UPDATE:SETTINGS", None)
        }
        Mutation::CreateRole { .. } => require(&view, actor, id, "ACM:ROLE:INSERT", None),
        Mutation::UpdateRoleDescription { role, .. } => require(
            &view,
            actor,
            id,
            "ACM:ROLE:UPDATE:DESCRIPTION",
            role_param(role).as_deref(),
        ),
        Mutation::DeleteRole { role, .. } => require(
            &view,
            actor,
            id,
            "ACM:ROLE:DELETE",
            role_param(role).as_deref(),
        ),
        Mutation::Grant { role, .. }
        | Mutation::Revoke { role, .. }
        | Mutation::SetGrants { role, .. } => {
            require(
                &view,
                actor,
                id,
                "ACM:ROLE:UPDATE:PERMISSIONS",
                role_param(role).as_deref(),
            )?;
            // `Users` is everyone's, so editing it is not editing one's own grants.
            if view.roles.contains(role) && RoleKind::of(role) != RoleKind::Users {
                return Err(err(
                    Refusal::Denied,
                    format!("no one edits their own grants: actor `{actor}` holds role `{role}`"),
                ));
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
                    return Err(err(
                        Refusal::Denied,
                        format!(
                            "no escalation: actor `{actor}` does not hold `{}` and so cannot grant or revoke it",
                            g.pattern
                        ),
                    ));
                }
            }
            Ok(())
        }
        Mutation::CreateGroup { .. } => require(&view, actor, id, "ACM:GROUP:INSERT", None),
        Mutation::DeleteGroup { group, .. } => {
            require(&view, actor, id, "ACM:GROUP:DELETE", Some(group.as_str()))?;
            if is_self(t, actor, &Subject::Group(group.clone())) {
                return Err(err(
                    Refusal::Denied,
                    format!(
                        "no one edits their own group memberships: actor `{actor}` is in group `{group}`"
                    ),
                ));
            }
            Ok(())
        }
        Mutation::AddMember { group, member, .. }
        | Mutation::RemoveMember { group, member, .. } => {
            require(
                &view,
                actor,
                id,
                "ACM:GROUP:UPDATE:MEMBERS",
                Some(group.as_str()),
            )?;
            if is_self(t, actor, member) {
                return Err(err(
                    Refusal::Denied,
                    format!(
                        "no one edits their own group memberships: {member} is or contains actor `{actor}`"
                    ),
                ));
            }
            // Adding hands the group's roles out; removing takes them away:
            // either needs the actor to hold them (equal or fewer privileges).
            hand_out(state, t, &view, actor, roles_through_group(t, group, now))
        }
        Mutation::AddUser { .. } => require(&view, actor, id, "ACM:USER:INSERT", None),
        Mutation::UpdateUserStatus { user, .. } => {
            require(
                &view,
                actor,
                id,
                "ACM:USER:UPDATE:STATUS",
                Some(user.as_str()),
            )?;
            if user == actor {
                return Err(err(Refusal::Denied, "no one changes their own status"));
            }
            outranks(authority, &view, actor, id, user, now)
        }
        Mutation::RemoveUser { user, .. } if user == actor => {
            // Leaving: needs the right to edit users there, another active
            // Administrator left behind, and another tenant to belong to.
            require(
                &view,
                actor,
                id,
                "ACM:USER:UPDATE:ROLES",
                Some(user.as_str()),
            )?;
            let others = active_administrators(t, now)
                .into_iter()
                .filter(|a| a != actor)
                .count();
            if others == 0 {
                return Err(err(
                    Refusal::Precondition,
                    format!(
                        "`{actor}` may leave tenant `{id}` only while another active Administrator remains"
                    ),
                ));
            }
            if !state
                .tenants
                .values()
                .any(|o| o.id != *id && o.users.contains_key(actor))
            {
                return Err(err(
                    Refusal::Precondition,
                    format!("`{actor}` may not leave tenant `{id}`: it is their only tenant"),
                ));
            }
            Ok(())
        }
        Mutation::RemoveUser { user, .. } => {
            require(&view, actor, id, "ACM:USER:DELETE", Some(user.as_str()))?;
            outranks(authority, &view, actor, id, user, now)
        }
        Mutation::Assign { subject, role, .. } | Mutation::Unassign { subject, role, .. } => {
            require(
                &view,
                actor,
                id,
                "ACM:ROLE:ASSIGN",
                role_param(role).as_deref(),
            )?;
            if let Subject::User(u) = subject {
                require(&view, actor, id, "ACM:USER:UPDATE:ROLES", Some(u.as_str()))?;
            }
            if is_self(t, actor, subject) {
                return Err(err(
                    Refusal::Denied,
                    format!(
                        "no one edits their own roles: {subject} is or contains actor `{actor}`"
                    ),
                ));
            }
            let mut moved_roles = vec![role.clone()];
            // With one role per user, assigning takes the current role away.
            if matches!(m, Mutation::Assign { .. })
                && t.settings.single_role_per_user
                && matches!(subject, Subject::User(_))
            {
                moved_roles.extend(
                    t.bindings
                        .keys()
                        .filter(|(s, _)| s == subject)
                        .map(|(_, r)| r.clone()),
                );
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
fn check_last_admin(
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
            return Err(err(
                Refusal::Precondition,
                format!(
                    "cannot remove the last active Administrator of tenant `{id}` ({})",
                    had.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}
