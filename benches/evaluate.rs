//! Criterion benchmarks of the compiled evaluator and the compiler on the
//! synthetic policies of `rampart::synthetic`:
//!
//! - `evaluate/100k/*`: one check on the issue's 100,000-user tenant — an
//!   allow through an exact grant, one through a `prefix:*` grant only (a
//!   trie walk), a deny that overrides an allow, an unknown subject;
//! - `batch/100k/mixed_1000`: 1,000 mixed checks against one snapshot load
//!   (through `ArcSwap`, as the server holds it); throughput in checks/s;
//!   `interned_1000` the same with only permissions some grant names
//!   exactly (the evaluator's fast path);
//! - `compile/100k`: compiling that tenant from its state;
//! - memory and the million-user state: each measured in a child process of
//!   this binary, so resident-set deltas start from a clean heap. The child
//!   prints one `MEMORY ...` line per spec.
//!
//! Run with `cargo bench --bench evaluate`. Set `RAMPART_BENCH_NO_MEMORY=1`
//! to skip the child processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{Criterion, Throughput};
use rampart::model::State;
use rampart::policy::{Decision, Reason, Snapshot, compile, evaluate};
use rampart::synthetic::{self, NOW, Probe, Spec};

/// Set in a child process to the spec it measures (`issue` or `million`).
const CHILD_ENV: &str = "RAMPART_BENCH_CHILD";
const BATCH: usize = 1_000;

/// Resident set size and its peak, in KiB, from `/proc/self/status`.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Fixture {
    state: Arc<State>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    probes: synthetic::Probes,
    batch: Vec<Probe>,
    /// Mixed checks whose permission some grant names exactly (interned).
    batch_exact: Vec<Probe>,
}

impl Fixture {
    fn issue_tenant() -> Self {
        let started = Instant::now();
        let state = Arc::new(synthetic::generate(&Spec::issue_tenant()));
        let generated = started.elapsed();
        let snapshot = compile(Arc::clone(&state));
        let tenant = Spec::tenant_id(0);
        let probes = synthetic::probes(&state, &tenant).expect("the issue tenant has every probe");
        let batch = synthetic::mixed(&state, &tenant, BATCH, 0xBA7C);
        let s = synthetic::stats(&state);
        println!(
            "issue tenant: {} users ({} inactive), {} groups, {} roles, {} grants ({} wildcard, {} deny), \
             {} bindings ({} expiring), {} memberships, {} catalog entries; generated in {:.2?}; matchers: {}",
            s.users,
            s.inactive_users,
            s.groups,
            s.roles,
            s.grants,
            s.wildcard_grants,
            s.deny_grants,
            s.bindings,
            s.expiring_bindings,
            s.memberships,
            s.catalog_entries,
            generated,
            snapshot.matcher_count()
        );
        println!("probes: {probes:#?}");
        // The probes must say what they are named for before anything is timed.
        let expect = [
            (&probes.exact_allow, Decision::Allow, Reason::Granted),
            (&probes.wildcard_allow, Decision::Allow, Reason::Granted),
            (&probes.deny, Decision::Deny, Reason::DeniedByGrant),
            (
                &probes.unknown_subject,
                Decision::Deny,
                Reason::UnknownSubject,
            ),
        ];
        for (probe, decision, reason) in expect {
            let v = evaluate(&snapshot, &probe.request(), NOW).unwrap();
            assert_eq!((v.decision, v.reason), (decision, reason), "{probe:?}");
        }
        let allowed = batch
            .iter()
            .filter(|p| {
                evaluate(&snapshot, &p.request(), NOW).is_ok_and(|v| v.decision == Decision::Allow)
            })
            .count();
        println!("batch: {BATCH} mixed checks, {allowed} allowed");
        let named: HashSet<&str> = state
            .tenants
            .values()
            .flat_map(|t| t.roles.values())
            .flat_map(|r| r.grants.iter().filter_map(|g| g.pattern.as_exact()))
            .collect();
        let batch_exact: Vec<Probe> = synthetic::mixed(&state, &tenant, 20 * BATCH, 0xE7AC)
            .into_iter()
            .filter(|p| named.contains(p.permission.as_str()))
            .take(BATCH)
            .collect();
        assert_eq!(batch_exact.len(), BATCH);
        Self {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            probes,
            batch,
            batch_exact,
            state,
        }
    }
}

fn single_checks(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("evaluate/100k");
    let snapshot = fx.snapshot.load_full();
    for (name, probe) in [
        ("exact_allow", &fx.probes.exact_allow),
        ("wildcard_allow", &fx.probes.wildcard_allow),
        ("deny", &fx.probes.deny),
        ("unknown_subject", &fx.probes.unknown_subject),
    ] {
        let request = probe.request();
        group.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(&snapshot), black_box(&request), NOW))
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("batch/100k");
    for (name, list) in [
        ("mixed_1000", &fx.batch),
        ("interned_1000", &fx.batch_exact),
    ] {
        group.throughput(Throughput::Elements(list.len() as u64));
        let requests: Vec<_> = list.iter().map(Probe::request).collect();
        group.bench_function(name, |b| {
            b.iter(|| {
                let snapshot = fx.snapshot.load();
                let mut allowed = 0usize;
                for r in &requests {
                    if let Ok(v) = evaluate(&snapshot, black_box(r), NOW) {
                        allowed += usize::from(v.decision == Decision::Allow);
                    }
                }
                allowed
            })
        });
    }
    group.finish();
}

fn compile_tenant(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("compile");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("100k", |b| {
        b.iter_with_large_drop(|| compile(Arc::clone(&fx.state)))
    });
    group.finish();
}

/// In a fresh process: generate `spec`, compile it, and print what each
/// step cost in time and resident memory, then time two more compiles.
fn child(which: &str) {
    let spec = match which {
        "million" => Spec::million(),
        _ => Spec::issue_tenant(),
    };
    let (rss0, _) = rss_kib();
    let started = Instant::now();
    let state = Arc::new(synthetic::generate(&spec));
    let generate_time = started.elapsed();
    let (rss1, _) = rss_kib();
    let mut compile_times = Vec::new();
    let started = Instant::now();
    let snapshot = compile(Arc::clone(&state));
    compile_times.push(started.elapsed());
    let (rss2, hwm2) = rss_kib();
    let matchers = snapshot.matcher_count();
    // The snapshot keeps the model's parent and binding indexes for
    // explanations; build a copy of them to see their share.
    let indexes: Vec<_> = state
        .tenants
        .values()
        .map(|t| (t.parents(), t.bindings_by_subject()))
        .collect();
    let (rss3, _) = rss_kib();
    drop(indexes);
    // A million-user snapshot still answers in a hash probe: time one check.
    let probes = synthetic::probes(&state, &Spec::tenant_id(0)).expect("probes");
    let request = probes.exact_allow.request();
    let rounds = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(evaluate(black_box(&snapshot), black_box(&request), NOW).ok());
    }
    let exact_ns = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    drop(snapshot);
    for _ in 0..2 {
        let started = Instant::now();
        let snapshot = compile(Arc::clone(&state));
        compile_times.push(started.elapsed());
        drop(snapshot);
    }
    compile_times.sort();
    let s = synthetic::stats(&state);
    println!(
        "MEMORY spec={which} tenants={} users={} groups={} roles={} grants={} bindings={} \
         state_rss_mib={:.1} snapshot_rss_mib={:.1} of_which_model_indexes_rss_mib~{:.1} peak_rss_mib={:.1} generate_s={:.2} \
         compile_s_median={:.3} compile_s_all={:?} matchers={matchers} exact_allow_ns_loop={exact_ns:.1}",
        s.tenants,
        s.users,
        s.groups,
        s.roles,
        s.grants,
        s.bindings,
        (rss1 - rss0) as f64 / 1024.0,
        (rss2 - rss1) as f64 / 1024.0,
        rss3.saturating_sub(rss2) as f64 / 1024.0,
        hwm2 as f64 / 1024.0,
        generate_time.as_secs_f64(),
        compile_times[compile_times.len() / 2].as_secs_f64(),
        compile_times
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>(),
    );
}

fn memory_children() {
    let exe = std::env::current_exe().expect("own path");
    for which in ["issue", "million"] {
        let out = Command::new(&exe)
            .env(CHILD_ENV, which)
            .output()
            .expect("run child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "memory child `{which}` failed");
    }
}

fn main() {
    if let Ok(which) = std::env::var(CHILD_ENV) {
        child(&which);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then criterion runs each benchmark once, so skip the slow children.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    let fx = Fixture::issue_tenant();
    single_checks(&mut c, &fx);
    batch(&mut c, &fx);
    compile_tenant(&mut c, &fx);
    c.final_summary();
    if benching && std::env::var_os("RAMPART_BENCH_NO_MEMORY").is_none() {
        memory_children();
    }
}
