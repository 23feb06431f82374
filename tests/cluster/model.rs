//! One writer's part of the state, as the tests expect it: the users,
//! roles, groups and bindings it made (every name starts with its prefix)
//! in the shared tenants and in its own tenants, and the profiles of its
//! users. No other writer touches them, so after each of its acknowledged
//! changes the writer knows exactly what every node must show of its part,
//! and, for the operator, whether the rules accept its next change
//! ([`Model::predict`]): a node that validated against a stale state would
//! answer otherwise.
//!
//! Written from the design's rules, not from `rampart::model`, so it is a
//! second opinion rather than the same code run twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tonic::Code;

use super::ops::{COVERED, G, Op};

/// Tenants every writer works in. Each has an Administrator no writer
/// touches (the quickstart's `dave` in `acme`, `root` in the others), so
/// the last-administrator rule never turns on one writer's changes there.
pub const SHARED_TENANTS: &[&str] = &["acme", "globex", "north", "south"];

/// The roles of a tenant that no writer made: the system roles, and the
/// quickstart's in `acme` and `globex`.
pub fn foreign_roles(tenant: &str) -> &'static [&'static str] {
    match tenant {
        "acme" => &["Administrators", "Bridges", "Users", "editors", "viewers"],
        "globex" => &["Administrators", "Bridges", "Users", "viewers"],
        _ => &["Administrators", "Bridges", "Users"],
    }
}

const ADMINISTRATORS: &str = "Administrators";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Role {
    pub description: String,
    /// In the order they were granted.
    pub grants: Vec<G>,
}

/// One tenant, as far as this writer is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tenant {
    /// A shared tenant (another administrator always remains in it).
    pub shared: bool,
    /// The display name of an own tenant (shared tenants: not tracked).
    pub name: String,
    /// This writer's users: active or not.
    pub users: BTreeMap<String, bool>,
    pub roles: BTreeMap<String, Role>,
    /// Members: user ids and `group:NAME`.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// (subject, role) → expiry.
    pub bindings: BTreeMap<(String, String), Option<String>>,
}

/// A user's profile, the same in every tenant it belongs to.
pub type Profile = (Option<String>, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// `wNN-`: every name this writer makes starts with it.
    pub prefix: String,
    pub tenants: BTreeMap<String, Tenant>,
    pub profiles: BTreeMap<String, Profile>,
}

impl Model {
    pub fn new(prefix: &str) -> Self {
        let tenants = SHARED_TENANTS
            .iter()
            .map(|t| {
                (
                    (*t).to_owned(),
                    Tenant {
                        shared: true,
                        ..Tenant::default()
                    },
                )
            })
            .collect();
        Self {
            prefix: prefix.to_owned(),
            tenants,
            profiles: BTreeMap::new(),
        }
    }

    /// Whether `role` exists in tenant `t` (made by this writer or not).
    fn role_exists(&self, t: &str, role: &str) -> bool {
        self.tenants
            .get(t)
            .is_some_and(|m| m.roles.contains_key(role) || foreign_roles(t).contains(&role))
    }

    /// Whether the operator's `op` is accepted, or the code it is refused
    /// with: the shape rules in the order the server checks them, then the
    /// last-administrator rule (own tenants only).
    pub fn predict(&self, op: &Op) -> Result<(), Code> {
        use Code::{AlreadyExists, FailedPrecondition, InvalidArgument, NotFound};
        let tenant = |t: &str| self.tenants.get(t).ok_or(NotFound);
        let subject_exists = |m: &Tenant, s: &str| match s.strip_prefix("group:") {
            Some(g) => m.groups.contains_key(g),
            None => m.users.contains_key(s),
        };
        let editable = |r: &str| {
            if r == ADMINISTRATORS || r == "Bridges" {
                Err(FailedPrecondition)
            } else {
                Ok(())
            }
        };
        let covered = |g: &G| {
            if COVERED.contains(&g.pattern.as_str()) {
                Ok(())
            } else {
                Err(InvalidArgument)
            }
        };
        match op {
            Op::CreateTenant { t, .. } => {
                if self.tenants.contains_key(t) {
                    return Err(AlreadyExists);
                }
            }
            Op::RenameTenant { t, .. } | Op::DeleteTenant { t } => {
                tenant(t)?;
            }
            Op::AddUser {
                t, u, email, name, ..
            } => {
                let m = tenant(t)?;
                if m.users.contains_key(u) {
                    return Err(AlreadyExists);
                }
                if let Some((have_email, have_name)) = self.profiles.get(u) {
                    let differs = |given: &Option<String>, have: &Option<String>| {
                        given.as_ref().is_some_and(|g| Some(g) != have.as_ref())
                    };
                    if differs(email, have_email) || differs(name, have_name) {
                        return Err(FailedPrecondition);
                    }
                }
            }
            Op::RemoveUser { t, u } | Op::SetStatus { t, u, .. } => {
                let m = tenant(t)?;
                if !m.users.contains_key(u) {
                    return Err(NotFound);
                }
            }
            Op::UpdateInfo { u, .. } => {
                if !self.tenants.values().any(|m| m.users.contains_key(u)) {
                    return Err(NotFound);
                }
            }
            Op::CreateRole { t, r, .. } => {
                tenant(t)?;
                if self.role_exists(t, r) {
                    return Err(AlreadyExists);
                }
            }
            Op::DescribeRole { t, r, .. } => {
                tenant(t)?;
                if !self.role_exists(t, r) {
                    return Err(NotFound);
                }
                editable(r)?;
            }
            Op::DeleteRole { t, r } => {
                let m = tenant(t)?;
                if !self.role_exists(t, r) {
                    return Err(NotFound);
                }
                if foreign_roles(t).contains(&r.as_str()) {
                    // System roles; the quickstart's are never named here.
                    return Err(FailedPrecondition);
                }
                if m.bindings.keys().any(|(_, role)| role == r) {
                    return Err(FailedPrecondition);
                }
            }
            Op::Grant { t, r, g } => {
                let m = tenant(t)?;
                if !self.role_exists(t, r) {
                    return Err(NotFound);
                }
                editable(r)?;
                covered(g)?;
                if m.roles.get(r).is_some_and(|role| role.grants.contains(g)) {
                    return Err(AlreadyExists);
                }
            }
            Op::Revoke { t, r, g } => {
                let m = tenant(t)?;
                if !self.role_exists(t, r) {
                    return Err(NotFound);
                }
                editable(r)?;
                if !m.roles.get(r).is_some_and(|role| role.grants.contains(g)) {
                    return Err(NotFound);
                }
            }
            Op::SetGrants { t, r, gs } => {
                tenant(t)?;
                if !self.role_exists(t, r) {
                    return Err(NotFound);
                }
                editable(r)?;
                for g in gs {
                    covered(g)?;
                }
                let distinct: BTreeSet<&G> = gs.iter().collect();
                if distinct.len() != gs.len() {
                    return Err(InvalidArgument);
                }
            }
            Op::CreateGroup { t, g } => {
                let m = tenant(t)?;
                if m.groups.contains_key(g) {
                    return Err(AlreadyExists);
                }
            }
            Op::DeleteGroup { t, g } => {
                let m = tenant(t)?;
                if !m.groups.contains_key(g) {
                    return Err(NotFound);
                }
            }
            Op::AddMember { t, g, m: member } => {
                let m = tenant(t)?;
                let Some(members) = m.groups.get(g) else {
                    return Err(NotFound);
                };
                if !subject_exists(m, member) {
                    return Err(NotFound);
                }
                if members.contains(member) {
                    return Err(AlreadyExists);
                }
                if let Some(child) = member.strip_prefix("group:")
                    && (child == g || contains_group(m, child, g))
                {
                    return Err(FailedPrecondition);
                }
            }
            Op::RemoveMember { t, g, m: member } => {
                let m = tenant(t)?;
                let Some(members) = m.groups.get(g) else {
                    return Err(NotFound);
                };
                if !members.contains(member) {
                    return Err(NotFound);
                }
            }
            Op::Assign { t, s, r, expires } => {
                let m = tenant(t)?;
                if !self.role_exists(t, r) || !subject_exists(m, s) {
                    return Err(NotFound);
                }
                if m.bindings.get(&(s.clone(), r.clone())) == Some(expires) {
                    return Err(AlreadyExists);
                }
            }
            Op::Unassign { t, s, r } => {
                let m = tenant(t)?;
                if !m.bindings.contains_key(&(s.clone(), r.clone())) {
                    return Err(NotFound);
                }
            }
        }
        // The last active Administrator of a tenant stays, even for the
        // operator; only in own tenants can this writer's change be it.
        let risky = matches!(
            op,
            Op::RemoveUser { .. }
                | Op::SetStatus { .. }
                | Op::RemoveMember { .. }
                | Op::DeleteGroup { .. }
        ) || matches!(op, Op::Unassign { r, .. } | Op::Assign { r, .. } if r == ADMINISTRATORS);
        if let (true, Some(t)) = (risky, op.tenant())
            && let Some(before) = self.tenants.get(t).filter(|m| !m.shared)
        {
            let mut after = self.clone();
            after.apply(op);
            // Nor the last one whose binding does not expire (issue #14).
            for lasting in [false, true] {
                let had = active_administrators(before, lasting);
                let left = after
                    .tenants
                    .get(t)
                    .map(|m| active_administrators(m, lasting))
                    .unwrap_or_default();
                if !had.is_empty() && left.is_empty() {
                    return Err(FailedPrecondition);
                }
            }
        }
        Ok(())
    }

    /// Makes an accepted op.
    pub fn apply(&mut self, op: &Op) {
        if let Op::CreateTenant { t, name } = op {
            self.tenants.insert(
                t.clone(),
                Tenant {
                    name: name.clone(),
                    ..Tenant::default()
                },
            );
            return;
        }
        if let Op::UpdateInfo { u, email, name } = op {
            if let Some(profile) = self.profiles.get_mut(u) {
                let set = |field: &mut Option<String>, to: &Option<String>| {
                    if let Some(to) = to {
                        *field = (!to.is_empty()).then(|| to.clone());
                    }
                };
                set(&mut profile.0, email);
                set(&mut profile.1, name);
            }
            return;
        }
        if let Op::DeleteTenant { t } = op {
            self.tenants.remove(t);
            self.forget_profiles();
            return;
        }
        let Some(t) = op.tenant() else { return };
        let Some(m) = self.tenants.get_mut(t) else {
            return;
        };
        match op {
            Op::CreateTenant { .. } | Op::DeleteTenant { .. } | Op::UpdateInfo { .. } => {}
            Op::RenameTenant { name, .. } => m.name = name.clone(),
            Op::AddUser {
                u,
                email,
                name,
                active,
                ..
            } => {
                m.users.insert(u.clone(), *active);
                // A user of other tenants keeps its profile.
                self.profiles
                    .entry(u.clone())
                    .or_insert_with(|| (email.clone(), name.clone()));
            }
            Op::RemoveUser { u, .. } => {
                m.users.remove(u);
                for members in m.groups.values_mut() {
                    members.remove(u);
                }
                m.bindings.retain(|(s, _), _| s != u);
                self.forget_profiles();
            }
            Op::SetStatus { u, active, .. } => {
                m.users.insert(u.clone(), *active);
            }
            Op::CreateRole { r, desc, .. } => {
                m.roles.insert(
                    r.clone(),
                    Role {
                        description: desc.clone(),
                        grants: Vec::new(),
                    },
                );
            }
            Op::DescribeRole { r, desc, .. } => {
                if let Some(role) = m.roles.get_mut(r) {
                    role.description = desc.clone();
                }
            }
            Op::DeleteRole { r, .. } => {
                m.roles.remove(r);
                m.bindings.retain(|(_, role), _| role != r);
            }
            Op::Grant { r, g, .. } => {
                if let Some(role) = m.roles.get_mut(r) {
                    role.grants.push(g.clone());
                }
            }
            Op::Revoke { r, g, .. } => {
                if let Some(role) = m.roles.get_mut(r) {
                    role.grants.retain(|have| have != g);
                }
            }
            Op::SetGrants { r, gs, .. } => {
                if let Some(role) = m.roles.get_mut(r) {
                    role.grants = gs.clone();
                }
            }
            Op::CreateGroup { g, .. } => {
                m.groups.insert(g.clone(), BTreeSet::new());
            }
            Op::DeleteGroup { g, .. } => {
                m.groups.remove(g);
                let gone = format!("group:{g}");
                for members in m.groups.values_mut() {
                    members.remove(&gone);
                }
                m.bindings.retain(|(s, _), _| *s != gone);
            }
            Op::AddMember { g, m: member, .. } => {
                if let Some(members) = m.groups.get_mut(g) {
                    members.insert(member.clone());
                }
            }
            Op::RemoveMember { g, m: member, .. } => {
                if let Some(members) = m.groups.get_mut(g) {
                    members.remove(member);
                }
            }
            Op::Assign { s, r, expires, .. } => {
                m.bindings.insert((s.clone(), r.clone()), expires.clone());
            }
            Op::Unassign { s, r, .. } => {
                m.bindings.remove(&(s.clone(), r.clone()));
            }
        }
    }

    /// A profile lives while its user belongs to some tenant.
    fn forget_profiles(&mut self) {
        let tenants = &self.tenants;
        self.profiles
            .retain(|u, _| tenants.values().any(|m| m.users.contains_key(u)));
    }

    /// What `ListSubjectPermissions` must answer for this writer's user
    /// `u` in `t`: `None` where it is not a member; else whether it is
    /// active, its roles in effect (sorted) and every grant of those roles
    /// as (pattern, effect, role), sorted. `fixed` gives the grants of the
    /// roles no writer made.
    pub fn permissions(
        &self,
        t: &str,
        u: &str,
        fixed: &dyn Fn(&str, &str) -> Vec<G>,
    ) -> Option<Permissions> {
        let m = self.tenants.get(t)?;
        let active = *m.users.get(u)?;
        let mut roles: BTreeSet<String> = BTreeSet::from(["Users".to_owned()]);
        let mut seen: BTreeSet<String> = BTreeSet::from([u.to_owned()]);
        let mut queue: VecDeque<String> = VecDeque::from([u.to_owned()]);
        while let Some(at) = queue.pop_front() {
            for (s, r) in m.bindings.keys() {
                if *s == at {
                    roles.insert(r.clone());
                }
            }
            for (g, members) in &m.groups {
                let parent = format!("group:{g}");
                if members.contains(&at) && seen.insert(parent.clone()) {
                    queue.push_back(parent);
                }
            }
        }
        let mut grants = Vec::new();
        for r in &roles {
            let of = match m.roles.get(r) {
                Some(role) => role.grants.clone(),
                None => fixed(t, r),
            };
            for g in of {
                let effect = if g.deny { "deny" } else { "allow" };
                grants.push((g.pattern, effect.to_owned(), r.clone()));
            }
        }
        grants.sort();
        Some(Permissions {
            active,
            roles: roles.into_iter().collect(),
            grants,
        })
    }

    /// This writer's part of tenant `t` as the Admin listings show it
    /// (`None`: no such tenant).
    pub fn view(&self, t: &str) -> Option<View> {
        let m = self.tenants.get(t)?;
        let users = m
            .users
            .iter()
            .map(|(u, active)| {
                let (email, name) = self.profiles.get(u).cloned().unwrap_or_default();
                (u.clone(), (*active, email, name))
            })
            .collect();
        Some(View {
            name: (!m.shared).then(|| m.name.clone()),
            users,
            roles: m.roles.clone(),
            groups: m.groups.clone(),
            bindings: m.bindings.clone(),
        })
    }
}

/// Whether group `outer` lists group `inner`, directly or through others
/// (so adding `outer` to `inner` would make a cycle).
fn contains_group(m: &Tenant, outer: &str, inner: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([outer.to_owned()]);
    while let Some(g) = queue.pop_front() {
        if !seen.insert(g.clone()) {
            continue;
        }
        for member in m.groups.get(&g).into_iter().flatten() {
            if let Some(child) = member.strip_prefix("group:") {
                if child == inner {
                    return true;
                }
                queue.push_back(child.to_owned());
            }
        }
    }
    false
}

/// The active users bound to `Administrators` directly or through groups
/// (`lasting`: by a binding that does not expire).
fn active_administrators(m: &Tenant, lasting: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut queue: VecDeque<String> = m
        .bindings
        .iter()
        .filter(|((_, r), expires)| r == ADMINISTRATORS && (!lasting || expires.is_none()))
        .map(|((s, _), _)| s.clone())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(s) = queue.pop_front() {
        if !seen.insert(s.clone()) {
            continue;
        }
        match s.strip_prefix("group:") {
            Some(g) => queue.extend(m.groups.get(g).into_iter().flatten().cloned()),
            None => {
                if m.users.get(&s) == Some(&true) {
                    out.insert(s);
                }
            }
        }
    }
    out
}

/// A user's permissions as `ListSubjectPermissions` answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub active: bool,
    pub roles: Vec<String>,
    pub grants: Vec<(String, String, String)>,
}

/// One writer's part of a tenant as the Admin listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// An own tenant's display name.
    pub name: Option<String>,
    /// user → (active, email, display name).
    pub users: BTreeMap<String, (bool, Option<String>, Option<String>)>,
    pub roles: BTreeMap<String, Role>,
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub bindings: BTreeMap<(String, String), Option<String>>,
}
