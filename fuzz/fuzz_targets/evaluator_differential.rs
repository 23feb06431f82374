//! The compiled evaluator against the decision rule written plainly
//! (`policy::reference`), as Cedar's `rbac-authorizer` target does: a small
//! policy built from the input (two tenants, five roles with allow and deny
//! grants over a few segments, `{subject}` and `*`, four users, some
//! inactive and some with aliases, nested groups, expiring bindings,
//! catalog parameters, Bridges grants), then changes made to it by the
//! administration rules as the operator, each compiled by patching the
//! previous snapshot (`policy::recompile`, what the engine does) as well
//! as afresh.
//!
//! After building and after each change, for every request: `evaluate` on
//! either snapshot equals `reference::decide`; `explain` agrees with it and
//! names deciding grants exactly when a grant decided; `list_subjects`
//! lists exactly the active members the reference allows.

#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rampart::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use rampart::model::ids::Alias;
use rampart::model::rules::{Actor, validate};
use rampart::model::{
    Binding, Decision, Grant, GrantPattern, Group, GroupName, Mutation, Reason, Role, RoleName,
    State, Subject, Tenant, TenantId, Timestamp, User, UserId, UserStatus,
};
use rampart::policy::{
    Request, Snapshot, compile, evaluate, explain, list_subjects, recompile, reference,
};

const TENANTS: [&str; 2] = ["t", "s"];
const SEGMENTS: [&str; 4] = ["a", "b", "c", "u1"];
/// `a` and `u1` are also segments, so `{subject}` is told from a literal.
const USERS: [&str; 5] = ["u0", "u1", "u2", "a", "u4"];
/// Users of the first tenant; the second has the first two, and the last
/// user is only ever added by a change.
const IN_T: usize = 4;
const IN_S: usize = 2;
/// `b` is also a segment: a `{subject}` grant that wrongly took the alias
/// would match `x:b`. `u2` is also a user id.
const ALIASES: [&str; 4] = ["spiffe://t/u0", "b", "E-1", "u2"];
const GROUPS: usize = 4;
const ROLES: usize = 5;
const NOWS: [i64; 4] = [5, 15, 25, 35];

#[derive(Arbitrary, Debug)]
struct PatternSpec {
    /// Each: a segment index, or `{subject}` for the last value.
    segments: Vec<u8>,
    star: bool,
}

impl PatternSpec {
    fn text(&self) -> String {
        let mut parts: Vec<&str> = self
            .segments
            .iter()
            .take(4)
            .map(|s| {
                SEGMENTS
                    .get(usize::from(*s % 5))
                    .copied()
                    .unwrap_or("{subject}")
            })
            .collect();
        if self.star || parts.is_empty() {
            parts.push("*");
        }
        parts.join(":")
    }

    fn pattern(&self) -> GrantPattern {
        GrantPattern::parse(&self.text()).unwrap()
    }
}

#[derive(Arbitrary, Debug)]
struct GrantSpec {
    deny: bool,
    pattern: PatternSpec,
}

impl GrantSpec {
    fn grant(&self) -> Grant {
        let p = self.pattern.pattern();
        if self.deny {
            Grant::deny(p)
        } else {
            Grant::allow(p)
        }
    }
}

#[derive(Arbitrary, Debug)]
struct CatalogSpec {
    /// Each: a segment index, or `?P?` for the last value.
    segments: Vec<u8>,
    rest: bool,
}

impl CatalogSpec {
    fn pattern(&self) -> CatalogPattern {
        let mut parts: Vec<String> = self
            .segments
            .iter()
            .take(4)
            .enumerate()
            .map(|(i, s)| {
                SEGMENTS
                    .get(usize::from(*s % 5))
                    .map_or_else(|| format!("?P{i}?"), |s| (*s).to_owned())
            })
            .collect();
        if self.rest || parts.is_empty() {
            parts.push("?R*?".into());
        }
        CatalogPattern::parse(&parts.join(":")).unwrap()
    }

    fn entry(&self) -> CatalogEntry {
        CatalogEntry {
            pattern: self.pattern(),
            category: String::new(),
            description: String::new(),
            stability: Stability::Stable,
            builtin: false,
        }
    }
}

/// A role: `r0`…`r3`, `Users` (4), or `Administrators` (5).
fn role(i: u8) -> RoleName {
    match i % 6 {
        4 => RoleName::users(),
        5 => RoleName::administrators(),
        i => RoleName::new(format!("r{i}")).unwrap(),
    }
}

fn user(i: u8) -> UserId {
    UserId::new(USERS[usize::from(i) % USERS.len()]).unwrap()
}

fn group(i: u8) -> GroupName {
    GroupName::new(format!("g{}", usize::from(i) % GROUPS)).unwrap()
}

fn tenant(i: u8) -> TenantId {
    TenantId::new(TENANTS[usize::from(i) % 2]).unwrap()
}

fn alias(i: u8) -> Alias {
    Alias::new(ALIASES[usize::from(i) % ALIASES.len()]).unwrap()
}

/// A user (below 8) or a group.
fn subject(i: u8) -> Subject {
    if i % 16 < 8 {
        Subject::User(user(i))
    } else {
        Subject::Group(group(i))
    }
}

#[derive(Arbitrary, Debug)]
struct TenantSpec {
    /// Grants of `r0`…`r3` and `Users`.
    roles: [Vec<GrantSpec>; ROLES],
    inactive: [bool; IN_T],
    /// `(group, member)`: a member below `GROUPS` is a later group (no
    /// cycles), else a user.
    members: Vec<(u8, u8)>,
    /// `(subject, role, expires)`.
    bindings: Vec<(u8, u8, Option<u8>)>,
}

/// A change, made as the operator through the administration rules (which
/// may refuse it: then it is skipped).
#[derive(Arbitrary, Debug)]
enum Change {
    Grant(u8, u8, GrantSpec),
    Revoke(u8, u8, GrantSpec),
    SetGrants(u8, u8, Vec<GrantSpec>),
    Assign(u8, u8, u8, Option<u8>),
    Unassign(u8, u8, u8),
    AddMember(u8, u8, u8),
    RemoveMember(u8, u8, u8),
    Status(u8, u8, bool),
    AddUser(u8, u8, Vec<u8>),
    RemoveUser(u8, u8),
    Aliases(u8, Vec<u8>),
    CreateRole(u8, u8),
    DeleteRole(u8, u8),
    CreateGroup(u8, u8),
    DeleteGroup(u8, u8),
    DefineCatalog(CatalogSpec),
    RemoveCatalog(CatalogSpec, bool),
    Bridges(Vec<GrantSpec>),
}

impl Change {
    fn mutation(&self) -> Mutation {
        match self {
            Change::Grant(t, r, g) => Mutation::Grant {
                tenant: tenant(*t),
                role: role(*r),
                grant: g.grant(),
            },
            Change::Revoke(t, r, g) => Mutation::Revoke {
                tenant: tenant(*t),
                role: role(*r),
                grant: g.grant(),
            },
            Change::SetGrants(t, r, gs) => Mutation::SetGrants {
                tenant: tenant(*t),
                role: role(*r),
                grants: grants(gs),
            },
            Change::Assign(t, s, r, e) => Mutation::Assign {
                tenant: tenant(*t),
                subject: subject(*s),
                role: role(*r),
                expires: e.map(expiry),
            },
            Change::Unassign(t, s, r) => Mutation::Unassign {
                tenant: tenant(*t),
                subject: subject(*s),
                role: role(*r),
            },
            Change::AddMember(t, g, m) => Mutation::AddMember {
                tenant: tenant(*t),
                group: group(*g),
                member: subject(*m),
            },
            Change::RemoveMember(t, g, m) => Mutation::RemoveMember {
                tenant: tenant(*t),
                group: group(*g),
                member: subject(*m),
            },
            Change::Status(t, u, active) => Mutation::UpdateUserStatus {
                tenant: tenant(*t),
                user: user(*u),
                status: if *active {
                    UserStatus::Active
                } else {
                    UserStatus::Inactive
                },
            },
            Change::AddUser(t, u, aliases) => Mutation::AddUser {
                tenant: tenant(*t),
                user: user(*u),
                email: None,
                display_name: None,
                status: UserStatus::Active,
                aliases: aliases.iter().take(3).map(|a| alias(*a)).collect(),
                attributes: Default::default(),
            },
            Change::RemoveUser(t, u) => Mutation::RemoveUser {
                tenant: tenant(*t),
                user: user(*u),
            },
            Change::Aliases(u, aliases) => Mutation::UpdateUserInfo {
                user: user(*u),
                email: None,
                display_name: None,
                aliases: Some(aliases.iter().take(3).map(|a| alias(*a)).collect()),
                attributes: None,
            },
            Change::CreateRole(t, r) => Mutation::CreateRole {
                tenant: tenant(*t),
                role: role(*r),
                description: String::new(),
            },
            Change::DeleteRole(t, r) => Mutation::DeleteRole {
                tenant: tenant(*t),
                role: role(*r),
            },
            Change::CreateGroup(t, g) => Mutation::CreateGroup {
                tenant: tenant(*t),
                group: group(*g),
                description: String::new(),
            },
            Change::DeleteGroup(t, g) => Mutation::DeleteGroup {
                tenant: tenant(*t),
                group: group(*g),
            },
            Change::DefineCatalog(c) => Mutation::DefineCatalogEntry { entry: c.entry() },
            Change::RemoveCatalog(c, cascade) => Mutation::RemoveCatalogEntry {
                permission: c.pattern(),
                cascade: *cascade,
            },
            Change::Bridges(gs) => Mutation::SetBridgesGrants { grants: grants(gs) },
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RequestSpec {
    tenant: u8,
    subject: u8,
    /// Segment indices; a value past them makes a malformed path.
    permission: Vec<u8>,
    now: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    catalog: Vec<CatalogSpec>,
    bridges: Vec<GrantSpec>,
    aliases: [Vec<u8>; IN_T],
    tenants: [TenantSpec; 2],
    changes: Vec<Change>,
    requests: Vec<RequestSpec>,
}

fn expiry(e: u8) -> Timestamp {
    Timestamp::from_unix([10, 20, 30][usize::from(e) % 3])
}

fn grants(specs: &[GrantSpec]) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    for g in specs.iter().take(4).map(GrantSpec::grant) {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn build(input: &Input) -> State {
    let mut state = State::new();
    let mut catalog = (*state.catalog).clone();
    for c in input.catalog.iter().take(6) {
        let _ = catalog.define(c.entry());
    }
    state.catalog = Arc::new(catalog);
    state.bridges_grants = grants(&input.bridges).into();
    let aliases: Vec<BTreeSet<Alias>> = input
        .aliases
        .iter()
        .map(|list| list.iter().take(2).map(|a| alias(*a)).collect())
        .collect();
    for (ti, spec) in input.tenants.iter().enumerate() {
        let users = if ti == 0 { IN_T } else { IN_S };
        let mut t = Tenant::new(TenantId::new(TENANTS[ti]).unwrap(), TENANTS[ti]);
        for (i, list) in spec.roles.iter().enumerate() {
            let name = role(i as u8);
            let mut r = t
                .roles
                .get(&name)
                .cloned()
                .unwrap_or_else(|| Role::new(name));
            r.grants = grants(list);
            t.roles.insert(r.name.clone(), r);
        }
        for (i, id) in USERS.iter().take(users).enumerate() {
            let mut user = User::new(UserId::new(id).unwrap()).with_aliases(aliases[i].clone());
            user.status = if spec.inactive[i] {
                UserStatus::Inactive
            } else {
                UserStatus::Active
            };
            t.insert_user(user);
        }
        for g in 0..GROUPS {
            let name = group(g as u8);
            t.groups.insert(
                name.clone(),
                Group {
                    name,
                    description: String::new(),
                    members: imbl::OrdSet::new(),
                },
            );
        }
        for &(g, m) in spec.members.iter().take(8) {
            let g = usize::from(g) % GROUPS;
            let m = usize::from(m) % (GROUPS + users);
            let member = if m < GROUPS {
                if m <= g {
                    continue;
                }
                Subject::Group(group(m as u8))
            } else {
                Subject::User(user((m - GROUPS) as u8))
            };
            t.groups
                .get_mut(&group(g as u8))
                .unwrap()
                .members
                .insert(member);
        }
        for &(s, r, e) in spec.bindings.iter().take(10) {
            let s = usize::from(s) % (users + GROUPS);
            let subject = if s < users {
                Subject::User(user(s as u8))
            } else {
                Subject::Group(group((s - users) as u8))
            };
            let role = role(r);
            t.bindings.insert(Binding {
                subject,
                role,
                expires: e.map(expiry),
            });
        }
        // A bridge, for the deployment's Bridges grants.
        let bridge = Subject::User(user(1));
        t.bindings.insert(Binding {
            subject: bridge,
            role: RoleName::bridges(),
            expires: None,
        });
        // Two aliases that clash make no valid state: give up on this input.
        if t.reindex_aliases().is_some() {
            return State::new();
        }
        state.tenants.insert(t.id.clone(), Arc::new(t));
    }
    state.revision = 1;
    state
}

/// The subjects a request may name: every user id, every alias, a
/// stranger, a group, an empty and a malformed one.
fn request_subject(i: u8) -> &'static str {
    const OTHERS: [&str; 5] = ["ghost", "spiffe://t/ghost", "group:g0", "", "a b"];
    let i = usize::from(i) % (USERS.len() + ALIASES.len() + OTHERS.len());
    USERS
        .iter()
        .chain(&ALIASES)
        .chain(&OTHERS)
        .nth(i)
        .copied()
        .unwrap_or_default()
}

fn request_permission(spec: &[u8]) -> String {
    let parts: Vec<&str> = spec
        .iter()
        .take(5)
        .map(|s| match s % 12 {
            10 => "",
            11 => "*",
            s => SEGMENTS[usize::from(s) % SEGMENTS.len()],
        })
        .collect();
    parts.join(":")
}

fn agree(state: &Arc<State>, snapshot: &Snapshot, requests: &[RequestSpec]) {
    for r in requests.iter().take(24) {
        let tenant = ["t", "s", "nope"][usize::from(r.tenant) % 3];
        let subject = request_subject(r.subject);
        let permission = request_permission(&r.permission);
        let now = Timestamp::from_unix(NOWS[usize::from(r.now) % NOWS.len()]);
        let req = Request {
            tenant,
            subject,
            permission: &permission,
        };
        let compiled = evaluate(snapshot, &req, now);
        let plain = reference::decide(state, &req, now).map(|o| o.verdict);
        assert_eq!(compiled, plain, "{req:?} at {now:?}");
        if let Ok((verdict, why)) = explain(snapshot, &req, now) {
            assert_eq!(Ok(verdict), compiled, "explain, {req:?}");
            let decided = matches!(verdict.reason, Reason::Granted | Reason::DeniedByGrant);
            assert_eq!(decided, !why.grants.is_empty(), "{req:?}: {why:?}");
        }
        let Ok((listed, more)) = list_subjects(snapshot, tenant, &permission, None, 100, now)
        else {
            continue;
        };
        assert!(!more);
        let t = state.tenant(tenant).unwrap();
        let allowed: Vec<String> = t
            .users
            .keys()
            .filter(|u| {
                let req = Request {
                    tenant,
                    subject: u.as_str(),
                    permission: &permission,
                };
                reference::decide(state, &req, now)
                    .is_ok_and(|o| o.verdict.decision == Decision::Allow)
            })
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            listed, allowed,
            "list_subjects {tenant} {permission:?} at {now:?}"
        );
    }
}

fuzz_target!(|input: Input| {
    let mut state = Arc::new(build(&input));
    if state.tenants.is_empty() {
        return;
    }
    let mut snapshot = compile(Arc::clone(&state));
    agree(&state, &snapshot, &input.requests);
    for change in input.changes.iter().take(6) {
        let m = change.mutation();
        let Ok((next, touched)) = validate(&state, &*state, &Actor::Operator, &m, Timestamp::from_unix(0))
        else {
            continue;
        };
        let next = Arc::new(next);
        let patched = recompile(&snapshot, Arc::clone(&next), &touched);
        agree(&next, &patched, &input.requests);
        let fresh = compile(Arc::clone(&next));
        agree(&next, &fresh, &input.requests);
        state = next;
        snapshot = patched;
    }
});
