//! Incremental recompilation (only the tenants a mutation touched, and in
//! them only the users under what it touched) gives the same decisions, the
//! same compiled role sets and the same actor views as compiling everything
//! from scratch, after any sequence of mutations.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;

use proptest::prelude::*;
use rampart::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use rampart::model::rules::Authority;
use rampart::model::{
    Grant, GrantPattern, GroupName, Mutation, RoleName, SettingsChange, Subject, TenantId,
    TenantSettings, Timestamp, UserId, UserStatus, apply,
};
use rampart::model::{State, Tenant};
use rampart::policy::{Request, Snapshot, compile, evaluate, recompile};

const TENANTS: [&str; 2] = ["t1", "t2"];
const ROLES: [&str; 3] = ["r1", "r2", "Administrators"];
const USERS: [&str; 3] = ["u1", "u2", "u3"];
const GROUPS: [&str; 3] = ["g1", "g2", "g3"];
const PATTERNS: [&str; 5] = ["a:b", "a:*", "b:c", "*", "a:{subject}"];
const PATHS: [&str; 5] = ["a:b", "a:c", "b:c", "a:u1", "x:y"];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

/// The one alias `user` may have here (`a:u1`-style paths name ids, so a
/// `{subject}` grant that took the alias would show).
fn alias_of(user: &UserId) -> rampart::model::ids::Alias {
    rampart::model::ids::Alias::new(format!("spiffe://x/{user}")).unwrap()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let t = || pick(&TENANTS).prop_map(|t| TenantId::new(t).unwrap());
    let r = || pick(&ROLES).prop_map(|r| RoleName::new(r).unwrap());
    let u = || pick(&USERS).prop_map(|u| UserId::new(u).unwrap());
    let g = || pick(&GROUPS).prop_map(|g| GroupName::new(g).unwrap());
    let grant = || {
        (any::<bool>(), pick(&PATTERNS)).prop_map(|(allow, p)| {
            let p = GrantPattern::parse(p).unwrap();
            if allow {
                Grant::allow(p)
            } else {
                Grant::deny(p)
            }
        })
    };
    let subject = move || prop_oneof![u().prop_map(Subject::User), g().prop_map(Subject::Group)];
    prop_oneof![
        (t(), any::<bool>()).prop_map(|(tenant, single)| Mutation::CreateTenant {
            tenant,
            name: "T".into(),
            settings: TenantSettings {
                single_role_per_user: single,
                ..TenantSettings::default()
            }
        }),
        (t(), any::<bool>()).prop_map(|(tenant, single)| Mutation::UpdateTenant {
            tenant,
            name: Some("T2".into()),
            settings: Some(SettingsChange {
                single_role_per_user: Some(single),
                ..SettingsChange::default()
            }),
        }),
        (t(), r()).prop_map(|(tenant, role)| Mutation::UpdateRoleDescription {
            tenant,
            role,
            description: "d".into()
        }),
        (t(), r(), prop::collection::vec(grant(), 0..3)).prop_map(|(tenant, role, grants)| {
            Mutation::SetGrants {
                tenant,
                role,
                grants,
            }
        }),
        (t(), g()).prop_map(|(tenant, group)| Mutation::DeleteGroup { tenant, group }),
        (t(), u(), any::<bool>()).prop_map(|(tenant, user, active)| Mutation::UpdateUserStatus {
            tenant,
            user,
            status: if active {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
        }),
        (u(), 0..3usize).prop_map(|(user, aliases)| Mutation::UpdateUserInfo {
            aliases: match aliases {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(vec![alias_of(&user)]),
            },
            attributes: (aliases == 2).then(|| [("realm".to_owned(), "ldap".to_owned())].into()),
            user,
            email: Some("x@example.com".into()),
            display_name: None,
        }),
        prop::collection::vec(grant(), 0..2)
            .prop_map(|grants| Mutation::SetBridgesGrants { grants }),
        (pick(&["x:?P?", "b:?P*?"]), any::<bool>()).prop_map(|(p, cascade)| {
            Mutation::RemoveCatalogEntry {
                permission: CatalogPattern::parse(p).unwrap(),
                cascade,
            }
        }),
        (t(), r()).prop_map(|(tenant, role)| Mutation::CreateRole {
            tenant,
            role,
            description: String::new()
        }),
        (t(), r(), grant()).prop_map(|(tenant, role, grant)| Mutation::Grant {
            tenant,
            role,
            grant
        }),
        (t(), r(), grant()).prop_map(|(tenant, role, grant)| Mutation::Revoke {
            tenant,
            role,
            grant
        }),
        (t(), u(), any::<bool>(), any::<bool>()).prop_map(|(tenant, user, active, alias)| {
            Mutation::AddUser {
                aliases: if alias {
                    vec![alias_of(&user)]
                } else {
                    Vec::new()
                },
                attributes: Default::default(),
                tenant,
                user,
                email: None,
                display_name: None,
                status: if active {
                    UserStatus::Active
                } else {
                    UserStatus::Inactive
                },
            }
        }),
        (t(), u()).prop_map(|(tenant, user)| Mutation::RemoveUser { tenant, user }),
        (t(), g()).prop_map(|(tenant, group)| Mutation::CreateGroup {
            tenant,
            group,
            description: String::new()
        }),
        (t(), g(), subject()).prop_map(|(tenant, group, member)| Mutation::AddMember {
            tenant,
            group,
            member
        }),
        (t(), g(), subject()).prop_map(|(tenant, group, member)| Mutation::RemoveMember {
            tenant,
            group,
            member
        }),
        (t(), subject(), r(), prop::option::of(pick(&[10i64, 20]))).prop_map(
            |(tenant, subject, role, e)| {
                Mutation::Assign {
                    tenant,
                    subject,
                    role,
                    expires: e.map(Timestamp::from_unix),
                }
            }
        ),
        (t(), subject(), r()).prop_map(|(tenant, subject, role)| Mutation::Unassign {
            tenant,
            subject,
            role
        }),
        (t(), r()).prop_map(|(tenant, role)| Mutation::DeleteRole { tenant, role }),
        t().prop_map(|tenant| Mutation::DeleteTenant { tenant }),
        pick(&["x:?P?", "b:?P*?"]).prop_map(|p| Mutation::DefineCatalogEntry {
            entry: CatalogEntry {
                pattern: CatalogPattern::parse(p).unwrap(),
                category: String::new(),
                description: String::new(),
                stability: Stability::Stable,
                builtin: false,
            },
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn incremental_equals_full(mutations in prop::collection::vec(mutation(), 1..40)) {
        let mut state = rampart::model::State::new();
        let mut catalog = (*state.catalog).clone();
        for p in ["a:?P?", "b:c"] {
            catalog
                .define(CatalogEntry {
                    pattern: CatalogPattern::parse(p).unwrap(),
                    category: String::new(),
                    description: String::new(),
                    stability: Stability::Stable,
                    builtin: false,
                })
                .unwrap();
        }
        state.catalog = Arc::new(catalog);
        let mut incremental = compile(Arc::new(state.clone()));
        for m in &mutations {
            // Mutations that do not fit the state are skipped, as validation would refuse them.
            let Ok(touched) = apply(&mut state, m) else { continue };
            incremental = recompile(&incremental, Arc::new(state.clone()), &touched);
        }
        let full = compile(Arc::new(state.clone()));
        prop_assert_eq!(incremental.revision(), full.revision());
        let aliases: Vec<String> = USERS
            .iter()
            .map(|u| alias_of(&UserId::new(u).unwrap()).to_string())
            .collect();
        for tenant in TENANTS {
            for subject in USERS.iter().copied().chain(aliases.iter().map(String::as_str)) {
                for permission in PATHS {
                    for now in [5, 15, 25] {
                        let req = Request { tenant, subject, permission };
                        prop_assert_eq!(
                            evaluate(&incremental, &req, Timestamp::from_unix(now)),
                            evaluate(&full, &req, Timestamp::from_unix(now)),
                            "{:?} at {}", req, now
                        );
                    }
                }
            }
        }
        assert_same(&incremental, &full, &state, &[5, 15, 25]);
    }

    /// A tenant with nested groups and expiring bindings, mutated at random;
    /// after every step the incremental snapshot is compared with a full
    /// compile, at times before, between and after the expiries.
    #[test]
    fn nested_groups_and_expiry(mutations in prop::collection::vec(nested_mutation(), 1..30)) {
        let mut state = nested_tenant();
        let mut incremental = compile(Arc::new(state.clone()));
        for m in &mutations {
            let Ok(touched) = apply(&mut state, m) else { continue };
            incremental = recompile(&incremental, Arc::new(state.clone()), &touched);
            let full = compile(Arc::new(state.clone()));
            assert_same(&incremental, &full, &state, &NESTED_TIMES);
            for subject in NESTED_USERS {
                for permission in NESTED_PATHS {
                    for now in NESTED_TIMES {
                        let req = Request { tenant: "n", subject, permission };
                        prop_assert_eq!(
                            evaluate(&incremental, &req, Timestamp::from_unix(now)),
                            evaluate(&full, &req, Timestamp::from_unix(now)),
                            "{:?} at {} after {:?}", req, now, m
                        );
                    }
                }
            }
        }
    }
}

/// Every user of every tenant: the same compiled roles and the same actor
/// views in `incremental`, in `full`, and (views) from the plain state.
fn assert_same(incremental: &Snapshot, full: &Snapshot, state: &State, times: &[i64]) {
    let tenants: Vec<&Arc<Tenant>> = state.tenants.values().collect();
    for tenant in tenants {
        let id = &tenant.id;
        let (inc, all) = (
            incremental.tenant(id.as_str()).unwrap(),
            full.tenant(id.as_str()).unwrap(),
        );
        assert!(
            Arc::ptr_eq(inc.tenant(), tenant),
            "{id}: stale tenant model"
        );
        assert_eq!(inc.roles(), all.roles(), "{id}");
        // Users in the state, and a few that are not.
        let mut users: Vec<UserId> = tenant.users.keys().cloned().collect();
        users.extend(["u1", "u9"].map(|u| UserId::new(u).unwrap()));
        for user in &users {
            for &now in times {
                let now = Timestamp::from_unix(now);
                assert_eq!(
                    inc.compiled_roles(user.as_str(), now),
                    all.compiled_roles(user.as_str(), now),
                    "{id}/{user} at {now:?}"
                );
                let view = state.view(id, user, now);
                assert_eq!(incremental.view(id, user, now), view, "{id}/{user}");
                assert_eq!(full.view(id, user, now), view, "{id}/{user}");
            }
        }
    }
    for id in TENANTS.iter().chain(&["n"]) {
        assert_eq!(
            incremental.tenant(id).is_some(),
            state.tenants.contains_key(*id),
            "{id}"
        );
    }
}

const NESTED_USERS: [&str; 6] = ["a1", "a2", "b1", "b2", "c1", "loner"];
const NESTED_GROUPS: [&str; 4] = ["top", "mid", "low", "side"];
const NESTED_ROLES: [&str; 4] = ["reader", "writer", "owner", "Users"];
const NESTED_PATHS: [&str; 5] = ["doc:read", "doc:write", "doc:own", "doc:x", "other:y"];
const NESTED_TIMES: [i64; 5] = [50, 100, 150, 200, 300];

fn n() -> TenantId {
    TenantId::new("n").unwrap()
}

/// `top ⊃ mid ⊃ low`, `side` apart; users in each; roles bound to groups
/// and users, some until 100 or 200.
fn nested_tenant() -> State {
    let role = |r: &str| RoleName::new(r).unwrap();
    let group = |g: &str| GroupName::new(g).unwrap();
    let user = |u: &str| UserId::new(u).unwrap();
    let allow = |p: &str| Grant::allow(GrantPattern::parse(p).unwrap());
    let mut ms = vec![
        Mutation::DefineCatalogEntry {
            entry: CatalogEntry {
                pattern: CatalogPattern::parse("doc:?P?").unwrap(),
                category: String::new(),
                description: String::new(),
                stability: Stability::Stable,
                builtin: false,
            },
        },
        Mutation::CreateTenant {
            tenant: n(),
            name: "N".into(),
            settings: TenantSettings::default(),
        },
    ];
    for (r, p) in [
        ("reader", "doc:read"),
        ("writer", "doc:write"),
        ("owner", "doc:*"),
    ] {
        ms.push(Mutation::CreateRole {
            tenant: n(),
            role: role(r),
            description: String::new(),
        });
        ms.push(Mutation::Grant {
            tenant: n(),
            role: role(r),
            grant: allow(p),
        });
    }
    for g in NESTED_GROUPS {
        ms.push(Mutation::CreateGroup {
            tenant: n(),
            group: group(g),
            description: String::new(),
        });
    }
    for u in NESTED_USERS {
        ms.push(Mutation::AddUser {
            tenant: n(),
            user: user(u),
            email: None,
            display_name: None,
            status: UserStatus::Active,
            aliases: Vec::new(),
            attributes: Default::default(),
        });
    }
    let members = [
        ("top", Subject::Group(group("mid"))),
        ("mid", Subject::Group(group("low"))),
        ("top", Subject::User(user("a1"))),
        ("top", Subject::User(user("a2"))),
        ("mid", Subject::User(user("b1"))),
        ("low", Subject::User(user("b2"))),
        ("low", Subject::User(user("c1"))),
        ("side", Subject::User(user("c1"))),
    ];
    for (g, member) in members {
        ms.push(Mutation::AddMember {
            tenant: n(),
            group: group(g),
            member,
        });
    }
    let bindings = [
        (Subject::Group(group("top")), "reader", None),
        (Subject::Group(group("mid")), "writer", Some(200)),
        (Subject::Group(group("low")), "owner", Some(100)),
        (Subject::Group(group("side")), "owner", None),
        (Subject::User(user("b2")), "writer", Some(100)),
        (Subject::User(user("loner")), "reader", Some(150)),
    ];
    for (subject, r, expires) in bindings {
        ms.push(Mutation::Assign {
            tenant: n(),
            subject,
            role: role(r),
            expires: expires.map(Timestamp::from_unix),
        });
    }
    let mut state = State::new();
    for m in &ms {
        apply(&mut state, m).unwrap();
    }
    state
}

fn nested_mutation() -> impl Strategy<Value = Mutation> {
    let r = || pick(&NESTED_ROLES).prop_map(|r| RoleName::new(r).unwrap());
    let u = || pick(&NESTED_USERS).prop_map(|u| UserId::new(u).unwrap());
    let g = || pick(&NESTED_GROUPS).prop_map(|g| GroupName::new(g).unwrap());
    let subject = move || prop_oneof![u().prop_map(Subject::User), g().prop_map(Subject::Group)];
    prop_oneof![
        3 => (g(), subject()).prop_map(|(group, member)| Mutation::AddMember {
            tenant: n(),
            group,
            member
        }),
        3 => (g(), subject()).prop_map(|(group, member)| Mutation::RemoveMember {
            tenant: n(),
            group,
            member
        }),
        4 => (subject(), r(), prop::option::of(pick(&[100i64, 150, 200, 250]))).prop_map(
            |(subject, role, e)| Mutation::Assign {
                tenant: n(),
                subject,
                role,
                expires: e.map(Timestamp::from_unix),
            }
        ),
        2 => (subject(), r()).prop_map(|(subject, role)| Mutation::Unassign {
            tenant: n(),
            subject,
            role
        }),
        1 => g().prop_map(|group| Mutation::DeleteGroup { tenant: n(), group }),
        1 => g().prop_map(|group| Mutation::CreateGroup {
            tenant: n(),
            group,
            description: String::new()
        }),
        1 => u().prop_map(|user| Mutation::RemoveUser { tenant: n(), user }),
        1 => u().prop_map(|user| Mutation::AddUser {
            tenant: n(),
            user,
            email: None,
            display_name: None,
            status: UserStatus::Active,
            aliases: Vec::new(),
            attributes: Default::default(),
        }),
        1 => (u(), any::<bool>()).prop_map(|(user, active)| Mutation::UpdateUserStatus {
            tenant: n(),
            user,
            status: if active {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
        }),
        1 => (r(), pick(&["doc:x", "doc:*", "other:*"])).prop_map(|(role, p)| Mutation::Grant {
            tenant: n(),
            role,
            grant: Grant::allow(GrantPattern::parse(p).unwrap()),
        }),
        1 => pick(&["auditor", "zz"]).prop_map(|role| Mutation::CreateRole {
            tenant: n(),
            role: RoleName::new(role).unwrap(),
            description: String::new()
        }),
    ]
}

/// A binding on a group with many users under it (through nesting)
/// changes all of them at once; the patched snapshot agrees with a full
/// compile for every one, and users outside the group keep their roles.
#[test]
fn a_group_binding_changes_many_users_at_once() {
    let t = || TenantId::new("big").unwrap();
    let role = |r: &str| RoleName::new(r).unwrap();
    let group = |i: usize| GroupName::new(format!("g{i}")).unwrap();
    let mut ms = vec![Mutation::CreateTenant {
        tenant: t(),
        name: "Big".into(),
        settings: TenantSettings::default(),
    }];
    for r in ["a", "b", "c"] {
        ms.push(Mutation::CreateRole {
            tenant: t(),
            role: role(r),
            description: String::new(),
        });
    }
    // g0 ⊃ g1..g4; users 0..500 spread over g1..g5 (g5 outside g0).
    for i in 0..6 {
        ms.push(Mutation::CreateGroup {
            tenant: t(),
            group: group(i),
            description: String::new(),
        });
        if (1..5).contains(&i) {
            ms.push(Mutation::AddMember {
                tenant: t(),
                group: group(0),
                member: Subject::Group(group(i)),
            });
        }
    }
    for u in 0..500 {
        let user = UserId::new(format!("u{u}")).unwrap();
        ms.push(Mutation::AddUser {
            tenant: t(),
            user: user.clone(),
            email: None,
            display_name: None,
            status: UserStatus::Active,
            aliases: Vec::new(),
            attributes: Default::default(),
        });
        ms.push(Mutation::AddMember {
            tenant: t(),
            group: group(1 + u % 5),
            member: Subject::User(user.clone()),
        });
        ms.push(Mutation::Assign {
            tenant: t(),
            subject: Subject::User(user),
            role: role(["a", "b"][u % 2]),
            expires: None,
        });
    }
    let mut state = State::new();
    for m in &ms {
        apply(&mut state, m).unwrap();
    }
    let mut snapshot = compile(Arc::new(state.clone()));
    let steps = [
        Mutation::Assign {
            tenant: t(),
            subject: Subject::Group(group(0)),
            role: role("c"),
            expires: Some(Timestamp::from_unix(100)),
        },
        Mutation::RemoveMember {
            tenant: t(),
            group: group(0),
            member: Subject::Group(group(2)),
        },
        Mutation::Assign {
            tenant: t(),
            subject: Subject::Group(group(0)),
            role: role("c"),
            expires: None,
        },
        Mutation::DeleteGroup {
            tenant: t(),
            group: group(3),
        },
        Mutation::Unassign {
            tenant: t(),
            subject: Subject::Group(group(0)),
            role: role("c"),
        },
    ];
    let c = role("c");
    for m in &steps {
        let before = snapshot;
        let touched = apply(&mut state, m).unwrap();
        snapshot = recompile(&before, Arc::new(state.clone()), &touched);
        let full = compile(Arc::new(state.clone()));
        assert_same(&snapshot, &full, &state, &[50, 150]);
        let holders = |s: &Snapshot, now| {
            (0..500)
                .filter(|u| {
                    s.tenant("big")
                        .unwrap()
                        .compiled_roles(&format!("u{u}"), Timestamp::from_unix(now))
                        .unwrap()
                        .contains(&c)
                })
                .count()
        };
        let expected = match m {
            Mutation::Assign {
                expires: Some(_), ..
            } => (400, 0),
            Mutation::RemoveMember { .. } => (300, 0),
            Mutation::Assign { .. } => (300, 300),
            Mutation::DeleteGroup { .. } => (200, 200),
            _ => (0, 0),
        };
        assert_eq!(
            (holders(&snapshot, 50), holders(&snapshot, 150)),
            expected,
            "{m:?}"
        );
    }
}
