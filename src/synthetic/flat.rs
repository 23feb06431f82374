//! A tenant flattened at one instant into plain lists — roles with their
//! grants, group memberships, and the bindings in force — for translation
//! into other engines (the casbin and Cedar peer benches).
//!
//! What other engines lack is resolved here, at `now`: system roles carry
//! their effective grants (`Administrators` holds `*`), every active user is
//! bound to `Users`, expired bindings are dropped, and an inactive user
//! keeps no bindings and no memberships, so an engine that only knows roles
//! denies them everything. The catalog is not exported: a peer that is
//! asked only catalog-covered permissions decides them as rampart does.

use crate::model::{Effect, RoleName, State, Subject, Timestamp, UserStatus};

/// A role and the grants it carries in effect, as `(effect, pattern text)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatRole {
    pub name: String,
    pub grants: Vec<(Effect, String)>,
}

/// One tenant, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatTenant {
    pub id: String,
    /// Every role, system roles included, in name order.
    pub roles: Vec<FlatRole>,
    /// `(user id, active)`, in id order.
    pub users: Vec<(String, bool)>,
    /// Every group name, in order.
    pub groups: Vec<String>,
    /// `(member, group)`: the member (a user or a group) is in the group.
    /// Inactive users are left out.
    pub memberships: Vec<(Subject, String)>,
    /// `(subject, role)` in force at `now`, plus `(user, Users)` for every
    /// active user. Inactive users are left out.
    pub bindings: Vec<(Subject, String)>,
}

/// `tenant` of `state` flattened at `now`; `None` if there is no such tenant.
pub fn flatten(state: &State, tenant: &str, now: Timestamp) -> Option<FlatTenant> {
    let t = state.tenant(tenant)?;
    let inactive = |s: &Subject| match s {
        Subject::User(u) => t
            .users
            .get(u)
            .is_none_or(|u| u.status == UserStatus::Inactive),
        Subject::Group(_) => false,
    };
    let roles = t
        .roles
        .values()
        .map(|r| FlatRole {
            name: r.name.to_string(),
            grants: state
                .grants_of(r)
                .iter()
                .map(|g| (g.effect, g.pattern.as_str().to_owned()))
                .collect(),
        })
        .collect();
    let users = t
        .users
        .values()
        .map(|u| (u.id.to_string(), u.status == UserStatus::Active))
        .collect();
    let memberships = t
        .groups
        .values()
        .flat_map(|g| {
            g.members
                .iter()
                .map(move |m| (m.clone(), g.name.to_string()))
        })
        .filter(|(m, _)| !inactive(m))
        .collect();
    let users_role = RoleName::users().to_string();
    let bindings = t
        .bindings
        .values()
        .filter(|b| b.live_at(now) && !inactive(&b.subject))
        .map(|b| (b.subject.clone(), b.role.to_string()))
        .chain(
            t.users
                .values()
                .filter(|u| u.status == UserStatus::Active)
                .map(|u| (Subject::User(u.id.clone()), users_role.clone())),
        )
        .collect();
    Some(FlatTenant {
        id: t.id.to_string(),
        roles,
        users,
        groups: t.groups.keys().map(ToString::to_string).collect(),
        memberships,
        bindings,
    })
}
