//! The database's faults under real `rampart serve` nodes sharing one
//! PostgreSQL (issue #12), each test on clusters of its own
//! (tests/common/postgres.rs), with a load of Checks, health probes and
//! writers on every node through the gRPC API:
//!
//! - PostgreSQL stopped and started again: no Check fails, health stays
//!   SERVING, writes are refused as UNAVAILABLE naming the store and resume
//!   by themselves, and the nodes converge on the database's state;
//! - a failover to a synchronous standby (the primary killed, the standby
//!   promoted, the nodes on a two-host URL): they reconnect by themselves
//!   and no acknowledged write is lost;
//! - a failover to an asynchronous standby that had not received the last
//!   commits: what the nodes do when the store goes back in time (ignored:
//!   a known gap, see the test);
//! - a synchronous standby going away, the primary up: commits wait for
//!   it (ignored: a known gap, see the test).
//!
//! Skipped, saying so, where PostgreSQL is not installed; a failure with
//! `RAMPART_REQUIRE_POSTGRES=1`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BIN;
use common::postgres::{Cluster, multi_host_url};
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::batch_check_result::Outcome;
use rampart::proto::replication_client::ReplicationClient;
use rampart::proto::{
    AddUserRequest, BatchCheckItem, BatchCheckRequest, CheckRequest, Decision, GetStateRequest,
    GetStateResponse,
};
use tokio::runtime::Runtime;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// How long one call may go unanswered before the load counts it as not
/// answered at all: far beyond any answer on a loaded machine, so only a
/// call that hangs trips it.
const ANSWER: Duration = Duration::from_secs(30);

/// How long a wait for something that must happen (a node ready, writes
/// back after the database is) may take before the test fails: generous,
/// for a noisy 2-core machine. The assertions are about what happens, not
/// how fast.
const PATIENCE: Duration = Duration::from_secs(60);

/// The Admin service's name, as health reports it.
const ADMIN: &str = "rampart.v1.Admin";

/// A `rampart serve` process on a PostgreSQL store, its log kept for the
/// test to read (and to show when it fails); killed when dropped.
struct Node {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts a node on `store` and waits (up to [`PATIENCE`]) until it
    /// serves. Nodes on one empty database must start one after the
    /// other: the first bootstraps it.
    fn start(data: &Path, store: &str) -> Self {
        Self::start_with(data, store, &[])
    }

    /// [`Node::start`] with more `serve` arguments.
    fn start_with(data: &Path, store: &str, extra: &[&str]) -> Self {
        let port = common::free_port();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data)
            .args(["--store", store])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let writing = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                writing.lock().unwrap().push(line);
            }
        });
        let mut node = Node { child, port, log };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if node.logged("serving rampart.v1.Authorization") {
                return node;
            }
            if let Some(status) = node.child.try_wait().unwrap() {
                panic!("the node exited ({status}) before serving:\n{}", node.log());
            }
            assert!(
                Instant::now() < deadline,
                "the node did not serve within {PATIENCE:?}:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Its warnings and errors, for a report.
    fn troubles(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .cloned()
            .collect()
    }

    /// SIGTERM, then waits (up to 30 s) for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A channel to a node that connects on first use and again after a
/// failure, as a long-lived client would hold one.
fn channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy()
}

/// One write a writer sent: to which node, the user it adds, when it was
/// sent and answered, and the answer (the revision, or the status).
#[derive(Debug, Clone)]
struct Write {
    node: usize,
    user: String,
    sent: Instant,
    answered: Instant,
    outcome: Result<u64, (Code, String)>,
}

/// What must never happen under the load (a Check unanswered or wrong, a
/// health probe not SERVING): the first few, and how many in all.
#[derive(Default)]
struct Failures {
    first: Vec<String>,
    count: u64,
}

impl Failures {
    fn record(failures: &Mutex<Failures>, what: String) {
        let mut f = failures.lock().unwrap();
        f.count += 1;
        if f.first.len() < 20 {
            f.first.push(what);
        }
    }
}

/// On every node: two tasks sending Checks back to back, a health probe,
/// and a writer adding users (`{prefix}{node}-{n}`), each recording what it
/// saw, until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    /// Checks answered, per node.
    checks: Vec<Arc<AtomicU64>>,
    /// Health probe rounds answered SERVING, per node.
    probes: Vec<Arc<AtomicU64>>,
    failures: Arc<Mutex<Failures>>,
    writes: Arc<Mutex<Vec<Write>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(rt: &Runtime, ports: &[u16], prefix: &str) -> Self {
        let mut load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            checks: Vec::new(),
            probes: Vec::new(),
            failures: Arc::default(),
            writes: Arc::default(),
            tasks: Vec::new(),
        };
        for (node, &port) in ports.iter().enumerate() {
            let (checks, probes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            for _ in 0..2 {
                load.tasks.push(rt.spawn(checker(
                    port,
                    node,
                    Arc::clone(&load.stop),
                    Arc::clone(&checks),
                    Arc::clone(&load.failures),
                )));
            }
            load.tasks.push(rt.spawn(prober(
                port,
                node,
                Arc::clone(&load.stop),
                Arc::clone(&probes),
                Arc::clone(&load.failures),
            )));
            load.tasks.push(rt.spawn(writer(
                port,
                node,
                format!("{prefix}{node}-"),
                Arc::clone(&load.stop),
                Arc::clone(&load.writes),
            )));
            load.checks.push(checks);
            load.probes.push(probes);
        }
        load
    }

    fn checks(&self, node: usize) -> u64 {
        self.checks[node].load(Ordering::SeqCst)
    }

    fn writes(&self) -> Vec<Write> {
        self.writes.lock().unwrap().clone()
    }

    /// Waits (up to [`PATIENCE`]) until `node`'s writer has a write sent
    /// after `since` whose answer satisfies `ok`, so many times.
    fn wait_for_writes(
        &self,
        node: usize,
        since: Instant,
        times: usize,
        what: &str,
        ok: impl Fn(&Result<u64, (Code, String)>) -> bool,
    ) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let writes = self.writes();
            let seen = writes
                .iter()
                .filter(|w| w.node == node && w.sent >= since && ok(&w.outcome))
                .count();
            if seen >= times {
                return;
            }
            let last = writes.iter().rev().find(|w| w.node == node);
            assert!(
                Instant::now() < deadline,
                "node {node}: not {times} writes {what} within {PATIENCE:?}; the last: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops every task and returns what they saw.
    fn finish(self, rt: &Runtime) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        let Load {
            checks,
            probes,
            failures,
            writes,
            tasks,
            ..
        } = self;
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        let count = |v: &[Arc<AtomicU64>]| v.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        Seen {
            writes: writes.lock().unwrap().clone(),
            failures: std::mem::take(&mut *failures.lock().unwrap()),
            checks: count(&checks),
            probes: count(&probes),
        }
    }
}

/// What a [`Load`] saw, once stopped.
struct Seen {
    writes: Vec<Write>,
    failures: Failures,
    /// Checks answered, per node.
    checks: Vec<u64>,
    /// Health probe rounds, per node.
    probes: Vec<u64>,
}

/// Sends `alice` may `documents:edit:readme` (an editor: allowed at every
/// revision of these tests) until told to stop; counts answers, records a
/// failure for a Check not answered, answered wrong, or answered from an
/// older snapshot than the one before (a node's state never goes back).
async fn checker(
    port: u16,
    node: usize,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failures: Arc<Mutex<Failures>>,
) {
    let mut client = AuthorizationClient::new(channel(port));
    let mut last = 0;
    while !stop.load(Ordering::SeqCst) {
        let asked = client.check(CheckRequest {
            tenant: "acme".into(),
            subject: "alice".into(),
            permission: "documents:edit:readme".into(),
            consistency: None,
            explain: false,
        });
        match tokio::time::timeout(ANSWER, asked).await {
            Ok(Ok(answer)) => {
                let answer = answer.into_inner();
                answered.fetch_add(1, Ordering::SeqCst);
                if answer.decision != Decision::Allow as i32 {
                    Failures::record(&failures, format!("node {node}: Check answered {answer:?}"));
                }
                if answer.revision < last {
                    Failures::record(
                        &failures,
                        format!(
                            "node {node}: Check answered at revision {} after {last}",
                            answer.revision
                        ),
                    );
                }
                last = answer.revision;
            }
            Ok(Err(status)) => {
                Failures::record(&failures, format!("node {node}: Check failed: {status}"));
            }
            Err(_) => {
                Failures::record(
                    &failures,
                    format!("node {node}: Check not answered within {ANSWER:?}"),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Probes the node's health ("" and Authorization) every 50 ms until told
/// to stop; records a failure for any answer but SERVING.
async fn prober(
    port: u16,
    node: usize,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    failures: Arc<Mutex<Failures>>,
) {
    let mut client = HealthClient::new(channel(port));
    while !stop.load(Ordering::SeqCst) {
        for service in ["", "rampart.v1.Authorization"] {
            let asked = client.check(HealthCheckRequest {
                service: service.into(),
            });
            match tokio::time::timeout(ANSWER, asked).await {
                Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => {}
                other => Failures::record(
                    &failures,
                    format!("node {node}: health of `{service}`: {other:?}"),
                ),
            }
        }
        rounds.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Adds a new user (`{prefix}{n}`) every 25 ms until told to stop, each
/// write recorded with its answer.
async fn writer(
    port: u16,
    node: usize,
    prefix: String,
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<Write>>>,
) {
    let mut client = AdminClient::new(channel(port));
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let user = format!("{prefix}{n}");
        n += 1;
        let sent = Instant::now();
        let outcome = add_user(&mut client, &user).await;
        writes.lock().unwrap().push(Write {
            node,
            user,
            sent,
            answered: Instant::now(),
            outcome,
        });
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Adds `user` to `acme` as the operator: the revision, or the status.
async fn add_user(client: &mut AdminClient<Channel>, user: &str) -> Result<u64, (Code, String)> {
    let asked = client.add_user(AddUserRequest {
        tenant: "acme".into(),
        user: user.into(),
        ..Default::default()
    });
    match tokio::time::timeout(ANSWER, asked).await {
        Ok(Ok(done)) => Ok(done.into_inner().revision),
        Ok(Err(status)) => Err((status.code(), status.message().to_owned())),
        Err(_) => Err((
            Code::DeadlineExceeded,
            format!("not answered within {ANSWER:?}"),
        )),
    }
}

fn state(rt: &Runtime, port: u16, digest: bool) -> GetStateResponse {
    rt.block_on(async {
        ReplicationClient::new(channel(port))
            .get_state(GetStateRequest { digest })
            .await
            .unwrap()
            .into_inner()
    })
}

fn health(rt: &Runtime, port: u16, service: &str) -> i32 {
    rt.block_on(async {
        HealthClient::new(channel(port))
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    })
}

/// Waits (up to [`PATIENCE`]) until `ok()`; fails naming `what`.
fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} (waited {PATIENCE:?})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The database's head revision and its changelog, revision → the change
/// as JSON text. Blocking: off the runtime.
fn changelog(cluster: &Cluster, db: &str) -> (u64, HashMap<u64, String>) {
    let mut client = cluster.client(db);
    let head: i64 = client
        .query_one("SELECT revision FROM rampart_meta", &[])
        .unwrap()
        .get(0);
    let rows = client
        .query(
            "SELECT revision, convert_from(body, 'UTF8') FROM rampart_changelog",
            &[],
        )
        .unwrap();
    let changes = rows
        .iter()
        .map(|r| (u64::try_from(r.get::<_, i64>(0)).unwrap(), r.get(1)))
        .collect();
    (u64::try_from(head).unwrap(), changes)
}

/// Waits until every node is at the database's `head`, then returns the
/// digest they share (failing if they do not).
fn converged(rt: &Runtime, ports: &[u16], head: u64) -> String {
    wait_until(
        &format!("the nodes did not all reach the database's head, revision {head}"),
        || ports.iter().all(|&p| state(rt, p, false).revision == head),
    );
    let states: Vec<GetStateResponse> = ports.iter().map(|&p| state(rt, p, true)).collect();
    for s in &states {
        assert_eq!(s.revision, head, "{states:?}");
        assert_eq!(s.digest, states[0].digest, "the nodes differ: {states:?}");
        assert_eq!(s.history, states[0].history, "{states:?}");
    }
    states[0].digest.clone()
}

/// Every acknowledged write: at the revision it was acknowledged with, no
/// two the same, that revision's change in the database's changelog adds
/// its user, and each node allows that user to edit its own profile (the
/// quickstart's `Users` role), so holds the user.
fn assert_acknowledged_kept(
    rt: &Runtime,
    writes: &[Write],
    changes: &HashMap<u64, String>,
    ports: &[u16],
) -> usize {
    let acknowledged: Vec<(&str, u64)> = writes
        .iter()
        .filter_map(|w| w.outcome.as_ref().ok().map(|r| (w.user.as_str(), *r)))
        .collect();
    let mut revisions = HashSet::new();
    for &(user, revision) in &acknowledged {
        assert!(
            revisions.insert(revision),
            "revision {revision} acknowledged twice"
        );
        let change = changes.get(&revision).unwrap_or_else(|| {
            panic!("acknowledged revision {revision} (user `{user}`) is not in the changelog")
        });
        assert!(
            change.contains(&format!("\"{user}\"")),
            "revision {revision} was acknowledged as adding `{user}`, the changelog holds {change}"
        );
    }
    for &port in ports {
        for chunk in acknowledged.chunks(500) {
            let items = chunk
                .iter()
                .map(|&(user, _)| BatchCheckItem {
                    tenant: "acme".into(),
                    subject: user.into(),
                    permission: format!("profile:edit:{user}").into(),
                    correlation_id: user.into(),
                })
                .collect();
            let answers = rt.block_on(async {
                AuthorizationClient::new(channel(port))
                    .batch_check(BatchCheckRequest {
                        items,
                        consistency: None,
                        explain: false,
                    })
                    .await
                    .unwrap()
                    .into_inner()
            });
            for result in answers.results {
                match result.outcome {
                    Some(Outcome::Response(r)) if r.decision == Decision::Allow as i32 => {}
                    other => panic!(
                        "node on port {port}: acknowledged user `{}` is not there: {other:?}",
                        result.correlation_id
                    ),
                }
            }
        }
    }
    acknowledged.len()
}

/// Asserts that every write sent after `from` and answered before `to`
/// was refused as UNAVAILABLE naming the store `target`; returns how many
/// each node saw.
fn assert_refused_between(
    writes: &[Write],
    from: Instant,
    to: Instant,
    target: &str,
    nodes: usize,
) -> Vec<usize> {
    let mut refused = vec![0; nodes];
    for w in writes.iter().filter(|w| w.sent >= from && w.answered <= to) {
        match &w.outcome {
            Err((Code::Unavailable, message))
                if message.contains(&format!("PostgreSQL store {target}")) =>
            {
                refused[w.node] += 1;
            }
            other => panic!(
                "node {}: a write while no database took writes answered {other:?}",
                w.node
            ),
        }
    }
    refused
}

/// PostgreSQL stopped for a few seconds under a load of Checks, health
/// probes and writes on two nodes, then started again. A database outage
/// must not take the data plane down (design §6): every Check is answered,
/// from memory, and the server's and Authorization's health stay SERVING;
/// writes are refused as UNAVAILABLE naming the store, the Admin service
/// reports NOT_SERVING meanwhile; once the database is back both nodes
/// take writes again by themselves and converge on what it holds.
#[test]
fn a_database_outage_under_load_refuses_writes_keeps_checks_and_health_and_the_nodes_converge() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let began = Instant::now();
    // A cluster of its own: this test stops it.
    let cluster = Cluster::start(programs).unwrap();
    let db = cluster.database_name();
    let url = cluster.url(&db);
    let target = format!("`127.0.0.1:{}/{db}`", cluster.port);
    let dir = tempfile::tempdir().unwrap();
    let nodes = [
        Node::start(&dir.path().join("a"), &url),
        Node::start(&dir.path().join("b"), &url),
    ];
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let rt = runtime();
    let load = Load::start(&rt, &ports, "outage");
    for node in 0..2 {
        load.wait_for_writes(node, began, 5, "acknowledged", Result::is_ok);
    }

    cluster.stop();
    let stopped = Instant::now();
    let checks_at_stop: Vec<u64> = (0..2).map(|n| load.checks(n)).collect();
    for (node, &port) in ports.iter().enumerate() {
        load.wait_for_writes(node, stopped, 3, "refused", Result::is_err);
        // A refused write leaves the store failed until it is repaired:
        // the Admin service says so; the rest stays SERVING (the prober).
        wait_until(
            &format!("node {node}: Admin not NOT_SERVING while the database is down"),
            || health(&rt, port, ADMIN) == ServingStatus::NotServing as i32,
        );
    }
    // An outage of a few seconds, whatever the waits above took.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed()));
    let checks_in_outage: Vec<u64> = (0..2).map(|n| load.checks(n) - checks_at_stop[n]).collect();
    let restarting = Instant::now();
    cluster.restart();
    let restarted = Instant::now();

    for (node, &port) in ports.iter().enumerate() {
        load.wait_for_writes(node, restarted, 3, "acknowledged", Result::is_ok);
        wait_until(
            &format!("node {node}: Admin not SERVING again after the database came back"),
            || health(&rt, port, ADMIN) == ServingStatus::Serving as i32,
        );
    }
    let seen = load.finish(&rt);

    assert_eq!(
        seen.failures.count, 0,
        "Checks or health failed: {:?}",
        seen.failures.first
    );
    for (node, (&checks, &probes)) in checks_in_outage.iter().zip(&seen.probes).enumerate() {
        assert!(
            checks > 0,
            "node {node}: no Check answered while the database was down"
        );
        assert!(probes > 0, "node {node}: health never probed");
    }
    let refused = assert_refused_between(&seen.writes, stopped, restarting, &target, 2);
    assert!(refused.iter().all(|&n| n > 0), "refused: {refused:?}");

    let (head, changes) = changelog(&cluster, &db);
    let digest = converged(&rt, &ports, head);
    let acknowledged = assert_acknowledged_kept(&rt, &seen.writes, &changes, &ports);
    eprintln!(
        "outage: {} checks answered ({checks_in_outage:?} while down), {acknowledged} writes \
         acknowledged, {refused:?} refused while down, converged at revision {head} ({digest}), \
         {:?} in all",
        seen.checks.iter().sum::<u64>(),
        began.elapsed()
    );
    for node in nodes {
        node.terminate();
    }
}

/// Two nodes on a two-host URL (primary, then a synchronous standby, with
/// `target_session_attrs=read-write`) under a load of writes and Checks;
/// the primary is killed and the standby promoted. With synchronous
/// replication a commit is acknowledged only once the standby has it, so
/// no acknowledged write may be lost; the nodes must find the promoted
/// standby by themselves, agree with each other and with a node started
/// on the promoted database alone.
#[test]
fn a_failover_to_a_synchronous_standby_loses_no_acknowledged_write() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let began = Instant::now();
    let primary = Cluster::start(programs).unwrap();
    let db = primary.database_name();
    let standby = primary.standby("rampart_standby").unwrap();
    primary.require_synchronous("rampart_standby").unwrap();
    let url = multi_host_url(&[&primary, &standby], &db);
    let target = format!(
        "`127.0.0.1:{},127.0.0.1:{}/{db}`",
        primary.port, standby.port
    );
    let dir = tempfile::tempdir().unwrap();
    let nodes = [
        Node::start(&dir.path().join("a"), &url),
        Node::start(&dir.path().join("b"), &url),
    ];
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let rt = runtime();
    let load = Load::start(&rt, &ports, "failover");
    for node in 0..2 {
        load.wait_for_writes(node, began, 10, "acknowledged", Result::is_ok);
    }

    primary.kill();
    let killed = Instant::now();
    let checks_at_kill: Vec<u64> = (0..2).map(|n| load.checks(n)).collect();
    // No host takes writes now (the standby is read-only): refused.
    for node in 0..2 {
        load.wait_for_writes(node, killed, 3, "refused", Result::is_err);
    }
    let checks_without_primary: Vec<u64> =
        (0..2).map(|n| load.checks(n) - checks_at_kill[n]).collect();
    let promoting = Instant::now();
    standby.promote();
    let promoted = Instant::now();
    // The nodes find the promoted standby by themselves.
    for node in 0..2 {
        load.wait_for_writes(node, promoted, 3, "acknowledged", Result::is_ok);
    }
    let seen = load.finish(&rt);

    assert_eq!(
        seen.failures.count, 0,
        "Checks or health failed: {:?}",
        seen.failures.first
    );
    for (node, (&checks, &probes)) in checks_without_primary.iter().zip(&seen.probes).enumerate() {
        assert!(
            checks > 0,
            "node {node}: no Check answered while no database took writes"
        );
        assert!(probes > 0, "node {node}: health never probed");
    }
    let writes = &seen.writes;
    let refused = assert_refused_between(writes, killed, promoting, &target, 2);
    assert!(refused.iter().all(|&n| n > 0), "refused: {refused:?}");
    let (head, changes) = changelog(&standby, &db);
    let digest = converged(&rt, &ports, head);
    let acknowledged = assert_acknowledged_kept(&rt, writes, &changes, &ports);
    let before_kill = writes
        .iter()
        .filter(|w| w.answered <= killed && w.outcome.is_ok())
        .count();
    assert!(
        before_kill >= 20,
        "{before_kill} acknowledged before the kill"
    );

    // A node started on the promoted database alone recovers the same.
    let fresh = Node::start(&dir.path().join("c"), &standby.url(&db));
    let recovered = state(&rt, fresh.port, true);
    assert_eq!(
        (recovered.revision, &recovered.digest),
        (head, &digest),
        "{recovered:?}"
    );
    eprintln!(
        "failover: {acknowledged} writes acknowledged ({before_kill} before the kill, none \
         lost), {refused:?} refused without a primary, {} checks answered, converged at \
         revision {head}, {:?} in all",
        seen.checks.iter().sum::<u64>(),
        began.elapsed()
    );
    fresh.terminate();
    for node in nodes {
        node.terminate();
    }
}

/// With asynchronous replication a failover loses the commits the standby
/// had not received, though the primary acknowledged them: the database
/// goes back in time, under the same history id. Each node's state is then
/// ahead of the database's. What a node should do is serve what the
/// database holds (the lost changes are gone for every node alike) and
/// keep following it; this test asks for exactly that.
///
/// Before the fix this test failed: `follow_shared` ignored a head below
/// the node's own, so both nodes kept serving the lost changes, and the
/// node that did not write applied the new history on top of them (same
/// revision, another digest, silently). Now each node checks the entry at
/// its revision is still the one it has (`Store::follow`) and reloads.
#[test]
fn after_a_failover_that_lost_commits_every_node_serves_what_the_database_holds() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let primary = Cluster::start(programs).unwrap();
    let db = primary.database_name();
    // Asynchronous: commits do not wait for it.
    let standby = primary.standby("rampart_async").unwrap();
    let url = multi_host_url(&[&primary, &standby], &db);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Node::start(&dir.path().join("a"), &url),
        Node::start(&dir.path().join("b"), &url),
    );
    let rt = runtime();
    let mut admin = {
        // A lazy channel spawns its worker on the current runtime.
        let _runtime = rt.enter();
        AdminClient::new(channel(a.port))
    };
    let mut write = |user: &str| rt.block_on(add_user(&mut admin, user));
    for user in ["kept-0", "kept-1"] {
        write(user).unwrap();
    }
    primary.wait_replayed("rampart_async").unwrap();
    let kept = state(&rt, a.port, false).revision;

    // The standby stops receiving; the primary acknowledges three more.
    standby.stop();
    let mut lost = Vec::new();
    for user in ["lost-0", "lost-1", "lost-2"] {
        lost.push(write(user).unwrap());
    }
    let ahead = *lost.last().unwrap();
    wait_until("node b did not follow node a", || {
        state(&rt, b.port, false).revision == ahead
    });

    // The primary dies; the standby, which never got them, is promoted.
    primary.kill();
    standby.restart();
    standby.promote();
    let (head, _) = changelog(&standby, &db);
    assert_eq!(head, kept, "the standby holds what it had replayed");

    // Node a writes until its writes are taken again, then enough that
    // the head passes the revision the nodes had reached.
    let mut first_refusals = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match write(&format!("after-{}", first_refusals.len())) {
            Ok(_) => break,
            Err(e) => first_refusals.push(e),
        }
        assert!(Instant::now() < deadline, "{first_refusals:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in 0..4 {
        write(&format!("new-{n}")).unwrap();
    }
    let (head, _) = changelog(&standby, &db);
    assert!(head > ahead, "head {head}, the nodes had reached {ahead}");
    let fresh = Node::start(&dir.path().join("c"), &standby.url(&db));
    let truth = state(&rt, fresh.port, true);
    // Give node b time to follow (it polls every 50 ms).
    let _ = (0..100).find(|_| {
        std::thread::sleep(Duration::from_millis(50));
        state(&rt, b.port, false).revision >= head
    });
    let (sa, sb) = (state(&rt, a.port, true), state(&rt, b.port, true));
    eprintln!(
        "acknowledged and lost: revisions {lost:?}; the promoted database's head was {kept}\n\
         node a's writes after the failover, refused first: {first_refusals:?}\n\
         database: revision {} {}\nnode a:   revision {} {}\nnode b:   revision {} {}\n\
         node a's warnings: {:#?}\nnode b's warnings: {:#?}",
        truth.revision,
        truth.digest,
        sa.revision,
        sa.digest,
        sb.revision,
        sb.digest,
        a.troubles(),
        b.troubles()
    );
    for (name, s) in [("a", &sa), ("b", &sb)] {
        assert_eq!(
            (s.revision, &s.digest),
            (truth.revision, &truth.digest),
            "node {name} does not serve what the database holds"
        );
    }
}

/// A synchronous standby that goes away (the primary stays up) makes
/// every commit wait for it, without end: PostgreSQL's choice, to lose no
/// acknowledged commit. For rampart that is a database outage like any
/// other (design §6): writes should be refused as UNAVAILABLE naming the
/// store, and the node should go on answering Checks, and take writes
/// again once the standby is back; this test asks for that.
///
/// Before the fix this test failed: the commit overran the store's time
/// bound, the store was declared stuck with a message written for sled,
/// and the node exited with code 75, taking its Checks down. On a shared
/// store an overrun now refuses writes (UNAVAILABLE, naming the store)
/// until the database answers, and the node stays up.
#[test]
fn a_synchronous_standby_going_away_refuses_writes_and_checks_go_on() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    let primary = Cluster::start(programs).unwrap();
    let db = primary.database_name();
    let standby = primary.standby("rampart_sync").unwrap();
    primary.require_synchronous("rampart_sync").unwrap();
    let url = multi_host_url(&[&primary, &standby], &db);
    let target = format!(
        "`127.0.0.1:{},127.0.0.1:{}/{db}`",
        primary.port, standby.port
    );
    let dir = tempfile::tempdir().unwrap();
    // A short bound on a store write, so the test does not wait 10 s.
    let mut node = Node::start_with(&dir.path().join("a"), &url, &["--store-timeout-ms", "2000"]);
    let rt = runtime();
    let (mut admin, mut authz) = {
        let _runtime = rt.enter();
        (
            AdminClient::new(channel(node.port)),
            AuthorizationClient::new(channel(node.port)),
        )
    };
    rt.block_on(add_user(&mut admin, "before")).unwrap();

    standby.stop();
    let refused = rt.block_on(add_user(&mut admin, "while-away"));
    let check = rt.block_on(authz.check(CheckRequest {
        tenant: "acme".into(),
        subject: "alice".into(),
        permission: "documents:edit:readme".into(),
        consistency: None,
        explain: false,
    }));
    // A node on its way out refuses connections before it has exited.
    let exited = if check.is_err() {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match node.child.try_wait().unwrap() {
                Some(status) => break Some(status),
                None if Instant::now() > deadline => break None,
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    } else {
        node.child.try_wait().unwrap()
    };
    eprintln!(
        "the write while the standby was away: {refused:?}\nthen a Check: {:?}\nthe node: {}\n{:#?}",
        check.as_ref().map(|c| c.get_ref().revision),
        exited.map_or("running".to_owned(), |s| s.to_string()),
        node.troubles()
    );
    match &refused {
        Err((Code::Unavailable, message)) => assert!(
            message.contains(&format!("PostgreSQL store {target}")),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(exited.is_none(), "the node exited: {exited:?}");
    assert!(check.is_ok(), "{check:?}");

    standby.restart();
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = rt.block_on(add_user(&mut admin, "after")) {
        assert!(Instant::now() < deadline, "writes did not resume: {e:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    node.terminate();
}
