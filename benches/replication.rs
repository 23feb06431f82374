//! Replication costs, measured in one process on loopback gRPC:
//!
//! - `lag`: a leader holding the 100k-user synthetic tenant takes 1,000
//!   mutations/s (4 writers, each commit durable in sled); a replica with
//!   its own sled store follows. Lag of revision r = when the replica
//!   publishes r − when the leader acknowledged r.
//! - `bootstrap`: a new replica of a leader holding 1M users over 100
//!   tenants: Export, parse, install (sled checkpoint), compile.
//! - `fanout`: 0, 10, 50 and 100 Watch streams (one connection each) on a
//!   leader taking 1,000 mutations/s: process CPU per 1,000 mutations and
//!   delivery latency (acknowledged → the watcher has the event).
//!
//! Run: `cargo bench --bench replication` (all), or
//! `cargo bench --bench replication -- lag` (one of lag, bootstrap, fanout).
//! Environment: RAMPART_BENCH_SECONDS (default 10) per measured run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "bench code"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::engine::Engine;
use rampart::model::rules::Actor;
use rampart::model::{Mutation, RoleName, Subject, TenantId, UserId};
use rampart::proto::replication_client::ReplicationClient;
use rampart::proto::{self, watch_event::Event};
use rampart::replication::{ReplicaStatus, ReplicationConfig, Role};
use rampart::server::DataPlaneConfig;
use rampart::store::{MemoryStore, SledStore, Store};
use rampart::synthetic::{Spec, generate};

type Acks = Arc<Mutex<HashMap<u64, Instant>>>;
/// (revision, when it was seen), in the order seen.
type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

fn seconds() -> u64 {
    std::env::var("RAMPART_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "{name}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

async fn serve(engine: Arc<Engine>, role: Role) -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(
        listener,
        engine,
        ServerOptions {
            data_plane: DataPlaneConfig::default(),
            replication: ReplicationConfig {
                role,
                heartbeat: Duration::from_millis(500),
                ..ReplicationConfig::default()
            },
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap()
}

fn replica_role(leader: &ServerHandle) -> (Role, Arc<ReplicaStatus>) {
    let status = Arc::new(ReplicaStatus::default());
    (
        Role::Replica {
            leader: format!("http://{}", leader.addr),
            status: Arc::clone(&status),
            max_lag: Duration::from_secs(60),
        },
        status,
    )
}

/// A leader on a fresh sled store holding `state`.
async fn leader_with(dir: &std::path::Path, state: rampart::model::State) -> Arc<Engine> {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let engine = Arc::new(Engine::open(Arc::clone(&store)).unwrap());
    engine.install(state, "bench").await.unwrap();
    engine
}

/// `writers` tasks submitting assign/unassign toggles on distinct users of
/// tenant `t000` at `rate` mutations/s in all, for `secs`; records each
/// acknowledged revision's time.
async fn write_load(engine: Arc<Engine>, writers: usize, rate: u64, secs: u64, acks: Acks) -> u64 {
    let per_writer = Duration::from_micros(1_000_000 * writers as u64 / rate);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let engine = Arc::clone(&engine);
        let acks = Arc::clone(&acks);
        tasks.push(tokio::spawn(async move {
            let tenant = TenantId::new("t000").unwrap();
            let role = RoleName::new("role199").unwrap();
            let mut tick = tokio::time::interval(per_writer);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut done = 0u64;
            let mut step = 0usize;
            while Instant::now() < deadline {
                tick.tick().await;
                let user =
                    UserId::new(format!("u{:07}", w * 10_000 + (step / 2) % 10_000)).unwrap();
                let subject = Subject::User(user);
                let m = if step.is_multiple_of(2) {
                    Mutation::Assign {
                        tenant: tenant.clone(),
                        subject,
                        role: role.clone(),
                        expires: None,
                    }
                } else {
                    Mutation::Unassign {
                        tenant: tenant.clone(),
                        subject,
                        role: role.clone(),
                    }
                };
                step += 1;
                if let Ok(c) = engine.submit(Actor::Operator, "bench", m, false).await {
                    acks.lock().unwrap().insert(c.revision, Instant::now());
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

/// Records when `engine` publishes each revision (a revision skipped by
/// the watch channel gets the time of the next one seen: an upper bound).
fn record_visibility(engine: &Arc<Engine>) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut rx = engine.revisions();
    let out = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let r = *rx.borrow_and_update();
            out.lock().unwrap().push((r, Instant::now()));
        }
    });
    (seen, task)
}

async fn lag() {
    let secs = seconds();
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = Instant::now();
    let state = generate(&Spec::issue_tenant());
    println!(
        "lag: generated the 100k-user tenant in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let leader = leader_with(dirs.0.path(), state).await;
    let lh = serve(Arc::clone(&leader), Role::Leader).await;
    let replica =
        Arc::new(Engine::open(Arc::new(SledStore::open(dirs.1.path()).unwrap())).unwrap());
    let (role, status) = replica_role(&lh);
    let rh = serve(Arc::clone(&replica), role).await;
    let t = Instant::now();
    while !status.caught_up.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "lag: replica bootstrapped (100k users) in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let acks: Acks = Arc::default();
    let (seen, watcher) = record_visibility(&replica);
    let started = Instant::now();
    let done = write_load(Arc::clone(&leader), 4, 1_000, secs, Arc::clone(&acks)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let head = leader.load().revision();
    replica
        .at_least(head, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    watcher.abort();
    let seen = seen.lock().unwrap().clone();
    let acks = acks.lock().unwrap().clone();
    let mut lags = Vec::new();
    let mut j = 0;
    let mut revisions: Vec<_> = acks.iter().collect();
    revisions.sort();
    for (rev, acked) in revisions {
        while j < seen.len() && seen[j].0 < *rev {
            j += 1;
        }
        if let Some((_, at)) = seen.get(j) {
            lags.push(at.saturating_duration_since(*acked).as_secs_f64() * 1e3);
        }
    }
    println!(
        "lag: {done} mutations acknowledged in {elapsed:.1} s ({:.0}/s offered 1000/s)",
        done as f64 / elapsed
    );
    println!(
        "{}",
        summary("lag: replica lag (leader ack -> replica publishes)", lags)
    );
    rh.shutdown(Duration::from_secs(1)).await;
    lh.shutdown(Duration::from_secs(1)).await;
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn bootstrap() {
    let t = Instant::now();
    let state = generate(&Spec::million());
    println!(
        "bootstrap: generated 1M users over 100 tenants in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The leader keeps its state in memory: this measures the replica.
    let leader = Arc::new(Engine::open(Arc::new(MemoryStore::new())).unwrap());
    leader.install(state, "bench").await.unwrap();
    let lh = serve(Arc::clone(&leader), Role::Leader).await;
    let mut client = ReplicationClient::connect(format!("http://{}", lh.addr))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20);
    let t = Instant::now();
    let mut stream = client
        .export(proto::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut bytes = 0usize;
    while let Some(c) = stream.message().await.unwrap() {
        bytes += c.data.len();
    }
    println!(
        "bootstrap: export alone: {:.1} MiB in {:.2} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    for run in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let replica =
            Arc::new(Engine::open(Arc::new(SledStore::open(dir.path()).unwrap())).unwrap());
        let (role, status) = replica_role(&lh);
        let t = Instant::now();
        let rh = serve(Arc::clone(&replica), role).await;
        while !status.caught_up.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (rss, hwm) = rss_mib();
        println!(
            "bootstrap: run {run}: new replica SERVING 1M users after {:.2} s (process RSS {rss:.0} MiB, peak {hwm:.0} MiB, leader included)",
            t.elapsed().as_secs_f64()
        );
        rh.shutdown(Duration::from_secs(1)).await;
    }
    lh.shutdown(Duration::from_secs(1)).await;
}

/// Process CPU seconds (user + system) from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the whole line are 12 and 13 after `)`; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

async fn fanout() {
    let secs = seconds().min(5);
    for watchers in [0usize, 10, 50, 100] {
        let dir = tempfile::tempdir().unwrap();
        // Users the writers toggle: u0000000.. in tenant t000.
        let synthetic = generate(&Spec {
            tenants: 1,
            users_per_tenant: 40_000,
            groups_per_tenant: 10,
            roles_per_tenant: 200,
            catalog_entries: 200,
            ..Spec::issue_tenant()
        });
        let leader = leader_with(dir.path(), synthetic).await;
        let lh = serve(Arc::clone(&leader), Role::Leader).await;
        let from = leader.load().revision();
        let acks: Acks = Arc::default();
        let received: Seen = Arc::default();
        let mut tasks = Vec::new();
        for _ in 0..watchers {
            let mut client = ReplicationClient::connect(format!("http://{}", lh.addr))
                .await
                .unwrap();
            let received = Arc::clone(&received);
            let mut stream = client
                .watch(proto::WatchRequest {
                    from_revision: from,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Ok(Some(e)) = stream.message().await {
                    if let Some(Event::Change(c)) = e.event {
                        mine.push((c.revision, Instant::now()));
                    }
                }
                received.lock().unwrap().extend(mine);
            }));
        }
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        let done = write_load(Arc::clone(&leader), 4, 1_000, secs, Arc::clone(&acks)).await;
        // Let the watchers drain.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cpu = cpu_seconds() - cpu0;
        let wall = t.elapsed().as_secs_f64();
        lh.shutdown(Duration::from_secs(2)).await;
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let acks = acks.lock().unwrap().clone();
        let lat: Vec<f64> = received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(r, at)| {
                acks.get(r)
                    .map(|a| at.saturating_duration_since(*a).as_secs_f64() * 1e3)
            })
            .collect();
        println!(
            "fanout: {watchers:>3} watchers: {done} mutations in {wall:.1} s; process CPU {:.0} ms per 1,000 mutations",
            cpu * 1e3 / (done as f64 / 1e3)
        );
        if watchers > 0 {
            println!(
                "{}",
                summary(
                    &format!("fanout: {watchers:>3} watchers: delivery (ack -> watcher has it)"),
                    lat
                )
            );
        }
    }
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if wants("lag") {
        runtime.block_on(lag());
    }
    if wants("bootstrap") {
        runtime.block_on(bootstrap());
    }
    if wants("fanout") {
        runtime.block_on(fanout());
    }
}
