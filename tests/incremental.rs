//! Incremental recompilation (only the tenants a mutation touched) gives the
//! same decisions as compiling everything from scratch, after any sequence
//! of mutations.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;

use proptest::prelude::*;
use rampart::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use rampart::model::{
    Grant, GrantPattern, GroupName, Mutation, RoleName, Subject, TenantId, TenantSettings,
    Timestamp, UserId, UserStatus, apply,
};
use rampart::policy::{Request, compile, evaluate, recompile};

const TENANTS: [&str; 2] = ["t1", "t2"];
const ROLES: [&str; 3] = ["r1", "r2", "Administrators"];
const USERS: [&str; 3] = ["u1", "u2", "u3"];
const GROUPS: [&str; 2] = ["g1", "g2"];
const PATTERNS: [&str; 5] = ["a:b", "a:*", "b:c", "*", "a:{subject}"];
const PATHS: [&str; 5] = ["a:b", "a:c", "b:c", "a:u1", "x:y"];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
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
        t().prop_map(|tenant| Mutation::CreateTenant {
            tenant,
            name: "T".into(),
            settings: TenantSettings::default()
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
        (t(), u(), any::<bool>()).prop_map(|(tenant, user, active)| Mutation::AddUser {
            tenant,
            user,
            email: None,
            display_name: None,
            status: if active {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
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
                    expires: e.map(Timestamp),
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
        for tenant in TENANTS {
            for subject in USERS {
                for permission in PATHS {
                    for now in [5, 15, 25] {
                        let req = Request { tenant, subject, permission };
                        prop_assert_eq!(
                            evaluate(&incremental, &req, Timestamp(now)),
                            evaluate(&full, &req, Timestamp(now)),
                            "{:?} at {}", req, now
                        );
                    }
                }
            }
        }
    }
}
