//! rampart against casbin-rs and cedar-policy on the same synthetic tenant
//! and the same checks, in one run: `cargo bench -p rampart-peers`.
//!
//! The tenant is the issue's (100,000 users) unless `RAMPART_PEERS_USERS`
//! says otherwise; groups scale with users (one per 100). Each engine's
//! load time and resident-memory growth are measured first, each in a
//! child process of its own (`LOAD ...` lines); then every peer must give
//! rampart's decision on each timed check (and on a mixed sample) before
//! anything is timed.
//!
//! casbin is asked no unknown-subject check: casbin-rs's role manager looks
//! an unknown name up by scanning every role-graph node, once per policy
//! line, which would take seconds per check here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rampart::policy::{Decision, compile, evaluate};
use rampart::synthetic::{self, NOW, Spec};
use rampart_peers::{CedarEncoding, CedarPeer, casbin_allows, casbin_enforcer};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Set in a child process to the engine whose load it measures.
const CHILD_ENV: &str = "RAMPART_PEERS_CHILD";
const ENGINES: [&str; 4] = ["rampart", "casbin", "cedar", "cedar_role_attr"];

fn spec() -> Spec {
    let users: usize = std::env::var("RAMPART_PEERS_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    Spec {
        users_per_tenant: users,
        groups_per_tenant: (users / 100).max(10),
        ..Spec::issue_tenant()
    }
}

/// In a fresh process: load one engine with the tenant and print its load
/// time and resident-memory growth (the generated state and its flat form
/// are built before the first reading).
fn child(engine: &str) {
    let state = Arc::new(synthetic::generate(&spec()));
    let flat = synthetic::flatten(&state, &Spec::tenant_id(0), NOW).expect("tenant");
    let before = rss_mib();
    let started = Instant::now();
    let keep: Box<dyn std::any::Any> = match engine {
        "rampart" => Box::new(compile(Arc::clone(&state))),
        "casbin" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            Box::new(rt.block_on(casbin_enforcer(&flat)).expect("casbin loads"))
        }
        "cedar" => Box::new(CedarPeer::new(&flat, CedarEncoding::SetLiteral).expect("cedar loads")),
        _ => Box::new(CedarPeer::new(&flat, CedarEncoding::RoleAttribute).expect("cedar loads")),
    };
    let load = started.elapsed();
    println!(
        "LOAD engine={engine} users={} load_s={:.2} rss_growth_mib={:.0}",
        flat.users.len(),
        load.as_secs_f64(),
        rss_mib() - before
    );
    drop(keep);
}

fn main() {
    if let Ok(engine) = std::env::var(CHILD_ENV) {
        child(&engine);
        return;
    }
    if std::env::args().any(|a| a == "--bench") {
        let exe = std::env::current_exe().expect("own path");
        for engine in ENGINES {
            let out = std::process::Command::new(&exe)
                .env(CHILD_ENV, engine)
                .output()
                .expect("run child");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            assert!(
                out.status.success(),
                "load child `{engine}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let spec = spec();
    let users = spec.users_per_tenant;
    let tenant = Spec::tenant_id(0);

    let state = Arc::new(synthetic::generate(&spec));
    let started = Instant::now();
    let snapshot = compile(Arc::clone(&state));
    println!(
        "rampart: {users} users; compile {:.2?}, {} matchers",
        started.elapsed(),
        snapshot.matcher_count()
    );
    let probes = synthetic::probes(&state, &tenant).expect("probes");
    let flat = synthetic::flatten(&state, &tenant, NOW).expect("tenant");

    let m = rss_mib();
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let enforcer = rt.block_on(casbin_enforcer(&flat)).expect("casbin loads");
    println!(
        "casbin: load {:.2?}, +{:.0} MiB; {} policy lines",
        started.elapsed(),
        rss_mib() - m,
        flat.roles.iter().map(|r| r.grants.len()).sum::<usize>()
    );
    let m = rss_mib();
    let started = Instant::now();
    let cedar = CedarPeer::new(&flat, CedarEncoding::SetLiteral).expect("cedar loads");
    println!(
        "cedar (set literals): load {:.2?}, +{:.0} MiB; {} policies",
        started.elapsed(),
        rss_mib() - m,
        cedar.policies.policies().count()
    );
    let m = rss_mib();
    let started = Instant::now();
    let cedar_attr = CedarPeer::new(&flat, CedarEncoding::RoleAttribute).expect("cedar loads");
    println!(
        "cedar (role attributes): load {:.2?}, +{:.0} MiB; {} policies",
        started.elapsed(),
        rss_mib() - m,
        cedar_attr.policies.policies().count()
    );

    // Same decisions before any timing: the probes, then a mixed sample of
    // catalog-covered checks of members.
    let members = &state.tenant(&tenant).unwrap().users;
    let sample = synthetic::mixed(&state, &tenant, 200, 9);
    let checks = [&probes.exact_allow, &probes.wildcard_allow, &probes.deny]
        .into_iter()
        .chain(sample.iter().filter(|c| {
            state.catalog.covering(&c.permission).is_some()
                && rampart::model::UserId::new(&c.subject).is_ok_and(|u| members.contains_key(&u))
        }));
    let mut agreed = 0;
    for c in checks {
        let want = evaluate(&snapshot, &c.request(), NOW).unwrap().decision == Decision::Allow;
        assert_eq!(
            casbin_allows(&enforcer, &c.subject, &c.permission).unwrap(),
            want,
            "casbin {c:?}"
        );
        let req = cedar.request(&c.subject, &c.permission).unwrap();
        assert_eq!(cedar.allows(&req), want, "cedar {c:?}");
        assert_eq!(
            cedar_attr.allows(&req),
            want,
            "cedar (role attributes) {c:?}"
        );
        agreed += 1;
    }
    assert!(
        !cedar.allows(
            &cedar
                .request(
                    &probes.unknown_subject.subject,
                    &probes.unknown_subject.permission
                )
                .unwrap()
        )
    );
    println!("agreement: casbin and cedar gave rampart's decision on {agreed} checks");

    let mut c = Criterion::default().configure_from_args();
    for (name, probe, with_casbin) in [
        ("exact_allow", &probes.exact_allow, true),
        ("wildcard_allow", &probes.wildcard_allow, true),
        ("deny", &probes.deny, true),
        ("unknown_subject", &probes.unknown_subject, false),
    ] {
        let mut group = c.benchmark_group(format!("peers/{name}"));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(8));
        let request = probe.request();
        group.bench_function("rampart", |b| {
            b.iter(|| evaluate(black_box(&snapshot), black_box(&request), NOW))
        });
        let cedar_request = cedar.request(&probe.subject, &probe.permission).unwrap();
        group.bench_function("cedar", |b| {
            b.iter(|| cedar.allows(black_box(&cedar_request)))
        });
        group.bench_function("cedar_role_attr", |b| {
            b.iter(|| cedar_attr.allows(black_box(&cedar_request)))
        });
        if name == "exact_allow" {
            // What a Cedar caller also pays per check: building the request.
            group.bench_function("cedar_with_request_build", |b| {
                b.iter(|| {
                    cedar.allows(
                        &cedar
                            .request(black_box(&probe.subject), black_box(&probe.permission))
                            .unwrap(),
                    )
                })
            });
        }
        if with_casbin {
            group.bench_function("casbin", |b| {
                b.iter(|| {
                    casbin_allows(
                        &enforcer,
                        black_box(&probe.subject),
                        black_box(&probe.permission),
                    )
                })
            });
        }
        group.finish();
    }
    c.final_summary();
}
