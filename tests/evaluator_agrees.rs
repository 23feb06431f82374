//! The compiled evaluator agrees with the plain reference evaluator on random
//! policies and requests: wildcards, denies, `{subject}`, nested groups,
//! inactive users, expiring bindings, catalog parameters, malformed input,
//! and subjects named by an alias (`{subject}` then means the member's id).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;

use proptest::prelude::*;
use rampart::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use rampart::model::ids::Alias;
use rampart::model::{
    Binding, Grant, GrantPattern, Group, GroupName, Role, RoleName, State, Subject, Tenant,
    TenantId, Timestamp, User, UserId, UserStatus,
};
use rampart::policy::{Request, compile, evaluate, explain, reference};

const SEGMENTS: [&str; 4] = ["a", "b", "c", "u1"];
const USERS: [&str; 4] = ["u0", "u1", "u2", "a"];
const NOWS: [i64; 4] = [5, 15, 25, 35];
/// `(user index, alias)`: `b` is also a segment, so a `{subject}` grant
/// that wrongly took the alias would match `a:b`-style paths.
const ALIASES: [(usize, &str); 3] = [(0, "spiffe://t/u0"), (1, "b"), (1, "E-1")];

fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(&SEGMENTS[..]).prop_map(str::to_owned)
}

fn grant_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![4 => segment(), 1 => Just("{subject}".to_owned())],
            0..3,
        ),
        any::<bool>(),
    )
        .prop_filter_map("a pattern needs a segment or a star", |(mut segs, star)| {
            if star {
                segs.push("*".into());
            }
            (!segs.is_empty()).then(|| segs.join(":"))
        })
}

fn catalog_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![3 => segment(), 1 => Just("?P?".to_owned())],
            1..4,
        ),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(mut segs, rest)| {
            if rest {
                segs.push("?R*?".into());
            }
            segs.join(":")
        })
}

#[derive(Debug, Clone)]
struct Spec {
    catalog: Vec<String>,
    roles: Vec<Vec<(bool, String)>>,
    users_grants: Vec<(bool, String)>,
    statuses: Vec<bool>,
    /// (group, member) where member < groups.len() is a group index (only
    /// later groups, so no cycles), else a user index.
    members: Vec<(usize, usize)>,
    /// (subject: < 4 user, else group - 4, role index (5 = Administrators), expiry)
    bindings: Vec<(usize, usize, Option<i64>)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(catalog_text(), 0..6),
        prop::collection::vec(
            prop::collection::vec((any::<bool>(), grant_text()), 0..4),
            5,
        ),
        prop::collection::vec((any::<bool>(), grant_text()), 0..2),
        prop::collection::vec(prop::bool::weighted(0.85), 4),
        prop::collection::vec((0usize..4, 0usize..8), 0..8),
        prop::collection::vec(
            (
                0usize..8,
                0usize..6,
                prop::option::weighted(0.3, prop::sample::select(vec![10i64, 20, 30])),
            ),
            0..10,
        ),
    )
        .prop_map(
            |(catalog, roles, users_grants, statuses, members, bindings)| Spec {
                catalog,
                roles,
                users_grants,
                statuses,
                members,
                bindings,
            },
        )
}

fn grants(list: &[(bool, String)]) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    for (allow, text) in list {
        let p = GrantPattern::parse(text).unwrap();
        let g = if *allow {
            Grant::allow(p)
        } else {
            Grant::deny(p)
        };
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn build(spec: &Spec) -> State {
    let mut state = State::new();
    let mut catalog = (*state.catalog).clone();
    for text in &spec.catalog {
        let _ = catalog.define(CatalogEntry {
            pattern: CatalogPattern::parse(text).unwrap(),
            category: String::new(),
            description: String::new(),
            stability: Stability::Stable,
            builtin: false,
        });
    }
    state.catalog = Arc::new(catalog);
    state.bridges_grants = grants(&[(true, "c:*".into())]).into();
    let mut t = Tenant::new(TenantId::new("t").unwrap(), "T");
    let role_names: Vec<RoleName> = (0..5)
        .map(|i| RoleName::new(format!("r{i}")).unwrap())
        .chain([RoleName::administrators()])
        .collect();
    for (i, list) in spec.roles.iter().enumerate() {
        let mut role = Role::new(role_names[i].clone());
        role.grants = grants(list);
        t.roles.insert(role.name.clone(), role);
    }
    t.roles.get_mut(&RoleName::users()).unwrap().grants = grants(&spec.users_grants);
    let users: Vec<UserId> = USERS.iter().map(|u| UserId::new(u).unwrap()).collect();
    for (i, u) in users.iter().enumerate() {
        let mut user = User::new(u.clone()).with_aliases(
            ALIASES
                .iter()
                .filter(|(of, _)| *of == i)
                .map(|(_, a)| Alias::new(a).unwrap())
                .collect(),
        );
        user.status = if spec.statuses[i] {
            UserStatus::Active
        } else {
            UserStatus::Inactive
        };
        t.insert_user(user);
    }
    let groups: Vec<GroupName> = (0..4)
        .map(|i| GroupName::new(format!("g{i}")).unwrap())
        .collect();
    for g in &groups {
        t.groups.insert(
            g.clone(),
            Group {
                name: g.clone(),
                description: String::new(),
                members: imbl::OrdSet::new(),
            },
        );
    }
    for &(g, m) in &spec.members {
        let member = if m < 4 {
            if m <= g {
                continue;
            }
            Subject::Group(groups[m].clone())
        } else {
            Subject::User(users[m - 4].clone())
        };
        t.groups.get_mut(&groups[g]).unwrap().members.insert(member);
    }
    for &(s, r, exp) in &spec.bindings {
        let subject = if s < 4 {
            Subject::User(users[s].clone())
        } else {
            Subject::Group(groups[s - 4].clone())
        };
        let role = role_names[r].clone();
        t.bindings.insert(Binding {
            subject,
            role,
            expires: exp.map(Timestamp::from_unix),
        });
    }
    // A bridge, to cover the deployment's Bridges grants.
    let bridge = Subject::User(users[2].clone());
    t.bindings.insert(Binding {
        subject: bridge,
        role: RoleName::bridges(),
        expires: None,
    });
    state.tenants.insert(t.id.clone(), Arc::new(t));
    state.revision = 1;
    state
}

fn request() -> impl Strategy<Value = (String, String, String, i64)> {
    (
        prop_oneof![9 => Just("t".to_owned()), 1 => Just("nope".to_owned())],
        prop_oneof![
            9 => prop::sample::select(&USERS[..]).prop_map(str::to_owned),
            3 => prop::sample::select(&ALIASES[..]).prop_map(|(_, a)| a.to_owned()),
            1 => Just("ghost".to_owned()),
            1 => Just("spiffe://t/ghost".to_owned()),
            1 => Just(String::new()),
        ],
        prop_oneof![
            20 => prop::collection::vec(segment(), 1..5).prop_map(|s| s.join(":")),
            1 => Just("a::b".to_owned()),
            1 => Just("a:*".to_owned()),
            1 => Just("ACM:ROLE:INSERT".to_owned()),
        ],
        prop::sample::select(&NOWS[..]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn compiled_equals_reference(spec in spec(), requests in prop::collection::vec(request(), 1..40)) {
        let state = Arc::new(build(&spec));
        let snapshot = compile(Arc::clone(&state));
        for (tenant, subject, permission, now) in &requests {
            let req = Request { tenant, subject, permission };
            let now = Timestamp::from_unix(*now);
            let compiled = evaluate(&snapshot, &req, now);
            let plain = reference::decide(&state, &req, now).map(|o| o.verdict);
            prop_assert_eq!(&compiled, &plain, "request {:?} at {:?}", req, now);
            // Explanations never contradict the decision.
            if let Ok((verdict, why)) = explain(&snapshot, &req, now) {
                prop_assert_eq!(Ok(verdict), compiled);
                // The explanation names the member the subject resolved to.
                let member = USERS.iter().position(|u| u == subject).or_else(|| {
                    ALIASES.iter().find(|(_, a)| a == subject).map(|(i, _)| *i)
                });
                prop_assert_eq!(
                    why.user.as_ref().map(|u| u.as_str()),
                    member.filter(|_| tenant == "t").map(|i| USERS[i])
                );
                let decided = matches!(
                    verdict.reason,
                    rampart::policy::Reason::Granted | rampart::policy::Reason::DeniedByGrant
                );
                prop_assert_eq!(decided, !why.grants.is_empty(), "{:?}", why);
            }
        }
    }
}
