//! Mutation → visible: what `recompile` costs after one small change to a
//! tenant of 100k users, against a full compile of that tenant.
//!
//! The tenant: 200 roles (each with a few exact, wildcard and deny grants),
//! 100 groups (g10-g99 nested ten under each of g1-g9), each bound to one
//! role (g0-g9's bindings expire); 100k users, each bound to one role and a
//! member of one group (1k users per group).
//!
//! `recompile_100k/*` patch the same base snapshot after one mutation each;
//! `recompile_100k/mixed_sequence` applies a deterministic mix of
//! mutations one after the other to a running snapshot.
//!
//! Run with `cargo bench --bench mutate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "bench code"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rampart::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use rampart::model::rules::{Actor, validate};
use rampart::model::{
    Grant, GrantPattern, GroupName, Mutation, RoleName, State, Subject, TenantId, Timestamp,
    UserId, UserStatus, apply,
};
use rampart::policy::{Request, Snapshot, compile, evaluate, recompile};

const USERS: usize = 100_000;
const ROLES: usize = 200;
const GROUPS: usize = 100;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}
fn role(i: usize) -> RoleName {
    RoleName::new(format!("r{i}")).unwrap()
}
fn group(i: usize) -> GroupName {
    GroupName::new(format!("g{i}")).unwrap()
}
fn user(i: usize) -> UserId {
    UserId::new(format!("u{i}")).unwrap()
}
fn grant(allow: bool, pattern: &str) -> Grant {
    let p = GrantPattern::parse(pattern).unwrap();
    if allow {
        Grant::allow(p)
    } else {
        Grant::deny(p)
    }
}

fn build() -> State {
    let acme = tenant();
    let mut ms = vec![
        Mutation::DefineCatalogEntry {
            entry: CatalogEntry {
                pattern: CatalogPattern::parse("app:?P*?").unwrap(),
                category: String::new(),
                description: String::new(),
                stability: Stability::Stable,
                builtin: false,
            },
        },
        Mutation::CreateTenant {
            tenant: acme.clone(),
            name: "Acme".into(),
            settings: Default::default(),
        },
    ];
    for r in 0..ROLES {
        ms.push(Mutation::CreateRole {
            tenant: acme.clone(),
            role: role(r),
            description: String::new(),
        });
        for (allow, p) in [
            (true, format!("app:{r}:read")),
            (true, format!("app:{}:*", r % 20)),
            (false, format!("app:{r}:secret")),
        ] {
            ms.push(Mutation::Grant {
                tenant: acme.clone(),
                role: role(r),
                grant: grant(allow, &p),
            });
        }
    }
    for g in 0..GROUPS {
        ms.push(Mutation::CreateGroup {
            tenant: acme.clone(),
            group: group(g),
            description: String::new(),
        });
        ms.push(Mutation::Assign {
            tenant: acme.clone(),
            subject: Subject::Group(group(g)),
            role: role(g),
            expires: (g < 10).then_some(Timestamp::from_unix(2_000_000_000 + g as i64)),
        });
        if g >= 10 {
            ms.push(Mutation::AddMember {
                tenant: acme.clone(),
                group: group(g / 10),
                member: Subject::Group(group(g)),
            });
        }
    }
    for u in 0..USERS {
        ms.push(Mutation::AddUser {
            tenant: acme.clone(),
            user: user(u),
            email: None,
            display_name: None,
            status: UserStatus::Active,
            aliases: Vec::new(),
            attributes: Default::default(),
        });
        ms.push(Mutation::Assign {
            tenant: acme.clone(),
            subject: Subject::User(user(u)),
            role: role(u % ROLES),
            expires: None,
        });
        ms.push(Mutation::AddMember {
            tenant: acme.clone(),
            group: group(u % GROUPS),
            member: Subject::User(user(u)),
        });
    }
    let mut state = State::new();
    for m in &ms {
        apply(&mut state, m).unwrap();
    }
    state
}

/// The `step`th mutation of a deterministic mix: user bindings (a third
/// expiring, at one of ten times), memberships added and removed, group
/// bindings, statuses, a role's grants replaced. Users get random
/// role/group combinations, so the number of classes grows with the
/// sequence (towards one per churned user): a pessimistic workload.
fn mixed(acme: &TenantId, step: u64) -> Mutation {
    let mut x = step.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let u = next(USERS);
    let tenant = acme.clone();
    match step % 6 {
        0 => Mutation::Assign {
            tenant,
            subject: Subject::User(user(u)),
            role: role(next(ROLES)),
            expires: (next(3) == 0)
                .then(|| Timestamp::from_unix(2_000_000_000 + 3600 * next(10) as i64)),
        },
        1 => Mutation::AddMember {
            tenant,
            group: group(next(GROUPS)),
            member: Subject::User(user(u)),
        },
        2 => Mutation::RemoveMember {
            tenant,
            group: group(u % GROUPS),
            member: Subject::User(user(u)),
        },
        3 => Mutation::Assign {
            tenant,
            subject: Subject::Group(group(next(GROUPS))),
            role: role(next(ROLES)),
            expires: None,
        },
        4 => Mutation::UpdateUserStatus {
            tenant,
            user: user(u),
            status: if next(2) == 0 {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
        },
        _ => {
            // A role's usual grants and one that varies: the tenant's grants
            // do not grow with the sequence.
            let r = next(ROLES);
            Mutation::SetGrants {
                tenant,
                role: role(r),
                grants: vec![
                    grant(true, &format!("app:{r}:read")),
                    grant(true, &format!("app:{}:*", r % 20)),
                    grant(false, &format!("app:{r}:secret")),
                    grant(true, &format!("app:{r}:extra{}", next(5))),
                ],
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let state = build();
    let base = compile(Arc::new(state.clone()));
    let acme = tenant();

    let mut g = c.benchmark_group("mutate_100k");
    g.sample_size(10);
    g.bench_function("full_compile", |b| {
        b.iter(|| compile(Arc::new(state.clone())));
    });
    g.finish();

    let cases = [
        (
            "assign_user",
            Mutation::Assign {
                tenant: acme.clone(),
                subject: Subject::User(user(5)),
                role: role(7),
                expires: None,
            },
        ),
        (
            "add_member_user",
            Mutation::AddMember {
                tenant: acme.clone(),
                group: group(7),
                member: Subject::User(user(5)),
            },
        ),
        (
            "grant_role",
            Mutation::Grant {
                tenant: acme.clone(),
                role: role(7),
                grant: grant(true, "app:7:extra"),
            },
        ),
        (
            "update_user_info",
            Mutation::UpdateUserInfo {
                user: user(5),
                email: Some("u5@example.com".into()),
                display_name: None,
                aliases: None,
                attributes: None,
            },
        ),
        (
            // 1k users under the group: they all change at once.
            "assign_group_1k_users",
            Mutation::Assign {
                tenant: acme.clone(),
                subject: Subject::Group(group(55)),
                role: role(3),
                expires: None,
            },
        ),
        (
            // A top group: 10 groups and 11k users under it.
            "assign_group_10k_users",
            Mutation::Assign {
                tenant: acme.clone(),
                subject: Subject::Group(group(5)),
                role: role(3),
                expires: None,
            },
        ),
    ];
    let mut g = c.benchmark_group("recompile_100k");
    for (name, m) in &cases {
        let mut next = state.clone();
        let touched = apply(&mut next, m).unwrap();
        let next = Arc::new(next);
        g.bench_function(*name, |b| {
            b.iter(|| recompile(&base, Arc::clone(&next), black_box(&touched)));
        });
    }
    // Each iteration one more mutation on the running snapshot, a mix of
    // the kinds above (new role/group combinations make new classes), so
    // what a patch leaves behind for the next one counts too.
    let mut running = (state.clone(), compile(Arc::new(state.clone())));
    let mut step: u64 = 0;
    g.bench_function("mixed_sequence", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                step += 1;
                let m = mixed(&acme, step);
                let (state, snapshot) = &mut running;
                let Ok(touched) = apply(state, &m) else {
                    continue;
                };
                let next = Arc::new(state.clone());
                let start = Instant::now();
                let compiled = recompile(snapshot, next, &touched);
                *snapshot = compiled;
                spent += start.elapsed();
            }
            spent
        });
    });
    g.finish();

    // The issue's 100k-user tenant: users in about two random groups of
    // 1,000, so tens of thousands of cohorts, which a group's patch scans.
    let spec = rampart::synthetic::Spec::issue_tenant();
    let issue = rampart::synthetic::generate(&spec);
    let issue_base = compile(Arc::new(issue.clone()));
    let t000 = TenantId::new(rampart::synthetic::Spec::tenant_id(0)).unwrap();
    let mut g = c.benchmark_group("recompile_issue_100k");
    for (name, group) in [
        ("assign_top_group", "group0000"),
        ("assign_leaf_group", "group0999"),
    ] {
        let m = Mutation::Assign {
            tenant: t000.clone(),
            subject: Subject::Group(GroupName::new(group).unwrap()),
            role: RoleName::new("role000").unwrap(),
            expires: None,
        };
        let mut next = issue.clone();
        let touched = apply(&mut next, &m).unwrap();
        let next = Arc::new(next);
        g.bench_function(name, |b| {
            b.iter(|| recompile(&issue_base, Arc::clone(&next), black_box(&touched)));
        });
    }
    g.finish();

    // Not the compiler's: the admin rules and `apply`, for the whole picture.
    let mut g = c.benchmark_group("validate_100k");
    g.sample_size(20);
    g.bench_function("assign_user", |b| {
        b.iter(|| {
            validate(
                base.state(),
                &base,
                &Actor::Operator,
                &cases[0].1,
                Timestamp::from_unix(1_000),
            )
            .unwrap()
        });
    });
    g.finish();

    // Check latency on the same tenant, so a slower lookup shows.
    let check = |snap: &Snapshot, subject: &str, permission: &str| {
        evaluate(
            snap,
            &Request {
                tenant: "acme",
                subject,
                permission,
            },
            Timestamp::from_unix(1_000),
        )
        .unwrap()
    };
    let mut g = c.benchmark_group("check_100k");
    g.bench_function("exact", |b| {
        b.iter(|| check(&base, black_box("u12345"), black_box("app:145:read")));
    });
    g.bench_function("wildcard", |b| {
        b.iter(|| check(&base, black_box("u12345"), black_box("app:5:other")));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
