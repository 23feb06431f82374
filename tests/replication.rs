//! Replication end to end: a leader and replicas as in-process servers on
//! 127.0.0.1:0, each with its own sled store, talking real gRPC.
//!
//! - a leader + 2 replicas under thousands of random mutations, checks on
//!   the replicas at just-acknowledged revisions, equal digests at the end;
//! - a replica killed and restarted mid-stream resumes from its own store;
//! - a restarted leader: replicas reconnect;
//! - compaction past a stopped replica: it bootstraps again;
//! - 50 concurrent watchers see every revision in order;
//! - export → import round trip; admin refused on a replica; the refusals.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::node::{Node, listen};
use rampart::cli::serve::{ServerOptions, start_with};
use rampart::engine::Engine;
use rampart::model::rules::Actor;
use rampart::model::{
    Grant, GrantPattern, GroupName, Mutation, RoleName, Subject, TenantId, UserId, UserStatus,
    policy_file,
};
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::replication_client::ReplicationClient;
use rampart::proto::{
    self, CheckRequest, Consistency, Decision, consistency::Requirement, watch_event::Event,
};
use rampart::replication::{ReplicaStatus, ReplicationConfig, Role};
use rampart::server::DataPlaneConfig;
use rampart::store::{SledStore, Store};
use tonic::Code;
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
  - { permission: "admin:panel" }
tenants:
  - id: t0
    roles:
      - { name: readers, grants: ["docs:read"] }
      - { name: writers, grants: ["docs:*"] }
    users: [{ id: root }]
    bindings: [{ subject: root, role: Administrators }]
  - id: t1
    roles:
      - { name: readers, grants: ["docs:read"] }
      - { name: writers, grants: ["docs:*"] }
    users: [{ id: root }]
    bindings: [{ subject: root, role: Administrators }]
  - id: t2
    roles:
      - { name: readers, grants: ["docs:read"] }
      - { name: writers, grants: ["docs:*"] }
    users: [{ id: root }]
    bindings: [{ subject: root, role: Administrators }]
"#;

const HEARTBEAT: Duration = Duration::from_millis(200);

fn open_store(dir: &Path) -> Arc<dyn Store> {
    // A just-stopped node's sled may still be closing: retry the lock.
    let started = Instant::now();
    loop {
        match SledStore::open(dir) {
            Ok(s) => return Arc::new(s),
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    }
}

/// An Import whose request body is `body`, sent over raw HTTP/2: the
/// `grpc-status` answered (from a trailers-only answer's headers, else the
/// trailers). The answer must not carry rampart's internal decode mark.
async fn raw_import(addr: SocketAddr, body: &[u8]) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();
    let request = http::Request::post(format!(
        "http://localhost{}",
        "/rampart.v1.Replication/Import"
    ))
    .header("te", "trailers")
    .header("content-type", "application/grpc")
    .body(())
    .unwrap();
    let (response, mut stream) = send.send_request(request, false).unwrap();
    stream
        .send_data(bytes::Bytes::copy_from_slice(body), true)
        .unwrap();
    let response = response.await.unwrap();
    assert!(!response.headers().contains_key("rampart-undecodable"));
    if let Some(code) = response.headers().get("grpc-status") {
        return code.to_str().unwrap().to_owned();
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        let _ = data.unwrap();
    }
    let trailers = body.trailers().await.unwrap().unwrap();
    trailers["grpc-status"].to_str().unwrap().to_owned()
}

fn replication(role: Role) -> ReplicationConfig {
    ReplicationConfig {
        role,
        heartbeat: HEARTBEAT,
        ..ReplicationConfig::default()
    }
}

/// A leader on `dir`, bootstrapped with `POLICY` when empty.
async fn leader(dir: &Path, addr: Option<SocketAddr>) -> Node {
    let engine = Arc::new(Engine::open(open_store(dir)).unwrap());
    if engine.load().revision() == 0 {
        let state = policy_file::load_str(POLICY).unwrap();
        engine
            .bootstrap(policy_file::to_mutations(&state), "bootstrap")
            .await
            .unwrap();
    }
    let handle = start_with(
        listen(addr).await,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: DataPlaneConfig {
                consistency_wait: Duration::from_secs(5),
                ..DataPlaneConfig::default()
            },
            replication: replication(Role::Leader),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    Node { engine, handle }
}

/// A replica of `leader_url` on `dir`.
async fn replica(dir: &Path, leader_url: &str) -> Node {
    let engine = Arc::new(Engine::open(open_store(dir)).unwrap());
    let handle = start_with(
        listen(None).await,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: DataPlaneConfig {
                consistency_wait: Duration::from_secs(5),
                ..DataPlaneConfig::default()
            },
            replication: replication(Role::Replica {
                leader: leader_url.to_owned(),
                status: Arc::new(ReplicaStatus::default()),
                max_lag: Duration::from_secs(5),
            }),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    Node { engine, handle }
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn state_of(url: &str, digest: bool) -> proto::GetStateResponse {
    ReplicationClient::new(channel(url).await)
        .get_state(proto::GetStateRequest { digest })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until `node` is at `revision` (bounded).
async fn reach(node: &Node, revision: u64) {
    let got = node
        .engine
        .at_least(revision, Duration::from_secs(30))
        .await;
    assert!(
        got.is_ok(),
        "{} stuck at revision {} (wanted {revision})",
        node.url(),
        node.engine.load().revision()
    );
}

/// Every node at the leader's revision with one digest.
async fn assert_converged(leader: &Node, replicas: &[&Node]) -> String {
    let head = leader.engine.load().revision();
    let want = state_of(&leader.url(), true).await;
    assert_eq!(want.revision, head);
    for r in replicas {
        reach(r, head).await;
        let got = state_of(&r.url(), true).await;
        assert_eq!(got.revision, head, "{}", r.url());
        assert_eq!(got.digest, want.digest, "replica {} digest", r.url());
        assert_eq!(got.history, want.history, "replica {} history", r.url());
        assert_eq!(got.role, "replica");
    }
    want.digest
}

fn tid(i: u64) -> TenantId {
    TenantId::new(format!("t{}", i % 3)).unwrap()
}

/// A small deterministic generator of mutations; many are refused (a user
/// that does not exist, a duplicate), which is part of the workload.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn mutation(&mut self) -> Mutation {
        let tenant = tid(self.next(3));
        let u = UserId::new(format!("u{}", self.next(60))).unwrap();
        let role = RoleName::new(["readers", "writers", "Users"][self.next(3) as usize]).unwrap();
        let group = GroupName::new(format!("g{}", self.next(6))).unwrap();
        match self.next(9) {
            0 | 1 => Mutation::AddUser {
                tenant,
                user: u,
                email: None,
                display_name: None,
                status: UserStatus::Active,
                aliases: Vec::new(),
                attributes: Default::default(),
            },
            2 | 3 => Mutation::Assign {
                tenant,
                subject: Subject::User(u),
                role,
                expires: None,
            },
            4 => Mutation::Unassign {
                tenant,
                subject: Subject::User(u),
                role,
            },
            5 => Mutation::CreateGroup {
                tenant,
                group,
                description: String::new(),
            },
            6 => Mutation::AddMember {
                tenant,
                group,
                member: Subject::User(u),
            },
            7 => Mutation::UpdateUserStatus {
                tenant,
                user: u,
                status: if self.next(2) == 0 {
                    UserStatus::Active
                } else {
                    UserStatus::Inactive
                },
            },
            _ => Mutation::Grant {
                tenant,
                role: RoleName::new("readers").unwrap(),
                grant: Grant::allow(
                    GrantPattern::parse(&format!("docs:d{}", self.next(1000))).unwrap(),
                ),
            },
        }
    }
}

/// Submits `n` generated mutations as the operator; returns how many were
/// applied.
async fn churn(engine: &Arc<Engine>, seed: u64, n: usize) -> usize {
    let mut g = Gen(seed | 1);
    let mut applied = 0;
    for _ in 0..n {
        if engine
            .submit(Actor::Operator, "test", g.mutation(), false)
            .await
            .is_ok()
        {
            applied += 1;
        }
    }
    applied
}

fn at_least(revision: u64) -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::AtLeastRevision(revision)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_and_two_replicas_converge_under_random_mutations() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let lead = leader(dirs[0].path(), None).await;
    let r1 = replica(dirs[1].path(), &lead.url()).await;
    let r2 = replica(dirs[2].path(), &lead.url()).await;
    reach(&r1, lead.engine.load().revision()).await;
    reach(&r2, lead.engine.load().revision()).await;

    // Writers on the leader; after each probe write, a check on a replica
    // at the acknowledged revision must see it.
    let total = std::env::var("RAMPART_REPLICATION_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000usize);
    let mut clients = [
        AuthorizationClient::new(channel(&r1.url()).await),
        AuthorizationClient::new(channel(&r2.url()).await),
    ];
    let mut admin = AdminClient::new(channel(&lead.url()).await);
    let mut mutations = Gen(0x5eed);
    // Meanwhile, readers hammer both replicas: every answer is a decision
    // (never an error), and a replica's revision never goes back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for url in [r1.url(), r2.url()] {
        let mut c = AuthorizationClient::new(channel(&url).await);
        let stop = Arc::clone(&stop);
        readers.push(tokio::spawn(async move {
            let (mut last, mut answered) = (0, 0u64);
            let mut g = Gen(7);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = c
                    .check(CheckRequest {
                        tenant: format!("t{}", g.next(3)),
                        subject: format!("u{}", g.next(60)),
                        permission: "docs:read".into(),
                        consistency: None,
                        explain: false,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(
                    a.revision >= last,
                    "{url} went back from {last} to {}",
                    a.revision
                );
                last = a.revision;
                answered += 1;
                // Readers share the two cores with the writer and the replicas.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            answered
        }));
    }
    let mut probes = 0;
    for i in 0..total {
        if i % 100 == 0 {
            // A probe through the Admin API: a fresh user granted docs:read.
            let user = format!("probe{i}");
            let tenant = format!("t{}", i % 3);
            admin
                .add_user(proto::AddUserRequest {
                    tenant: tenant.clone(),
                    user: user.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let done = admin
                .assign(proto::AssignRequest {
                    tenant: tenant.clone(),
                    subject: user.clone(),
                    role: "readers".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let replica = &mut clients[probes % 2];
            probes += 1;
            let answer = replica
                .check(CheckRequest {
                    tenant,
                    subject: user,
                    permission: "docs:read".into(),
                    consistency: at_least(done.revision),
                    explain: false,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                answer.decision,
                Decision::Allow as i32,
                "a replica at revision {} must see the assignment acknowledged at {}",
                answer.revision,
                done.revision
            );
            assert!(answer.revision >= done.revision);
        } else {
            let _ = lead
                .engine
                .submit(Actor::Operator, "test", mutations.mutation(), false)
                .await;
        }
    }
    assert!(lead.engine.load().revision() > (total / 3) as u64);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 10, "the readers ran throughout");
    }
    assert_converged(&lead, &[&r1, &r2]).await;
    // A replica refuses admin calls, naming its leader.
    let refused = AdminClient::new(channel(&r1.url()).await)
        .add_user(proto::AddUserRequest {
            tenant: "t0".into(),
            user: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains(&lead.url()),
        "{}",
        refused.message()
    );
    let s = state_of(&r1.url(), false).await;
    assert_eq!((s.lag_revisions, s.rebootstraps), (0, 0));
    assert!(s.connected);
    assert_eq!(s.leader, lead.url());
    for n in [r1, r2, lead] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_resumes_and_a_restarted_leader_is_found_again() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let lead = leader(dirs[0].path(), None).await;
    let addr = lead.handle.addr;
    let rep = replica(dirs[1].path(), &lead.url()).await;
    churn(&lead.engine, 1, 300).await;
    assert_converged(&lead, &[&rep]).await;

    // Kill the replica mid-stream (writes keep coming), restart it on the
    // same store: it resumes from its own revision, without a bootstrap.
    let writer = {
        let engine = Arc::clone(&lead.engine);
        tokio::spawn(async move { churn(&engine, 2, 300).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let url = lead.url();
    rep.stop().await;
    writer.await.unwrap();
    let rep = replica(dirs[1].path(), &url).await;
    assert_converged(&lead, &[&rep]).await;
    let s = state_of(&rep.url(), false).await;
    assert_eq!(s.rebootstraps, 0, "it resumed from its store");

    // Restart the leader on the same address: the replica reconnects.
    lead.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lead = leader(dirs[0].path(), Some(addr)).await;
    churn(&lead.engine, 3, 200).await;
    assert_converged(&lead, &[&rep]).await;
    let s = state_of(&rep.url(), false).await;
    assert!(s.reconnects >= 1, "{s:?}");
    assert_eq!(s.rebootstraps, 0);
    rep.stop().await;
    lead.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_past_a_stopped_replica_makes_it_bootstrap_again() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let lead = leader(dirs[0].path(), None).await;
    let rep = replica(dirs[1].path(), &lead.url()).await;
    churn(&lead.engine, 4, 100).await;
    assert_converged(&lead, &[&rep]).await;
    let stopped_at = rep.engine.load().revision();
    rep.stop().await;

    churn(&lead.engine, 5, 200).await;
    let store = Arc::clone(lead.engine.store().unwrap());
    store.checkpoint(lead.engine.load().state()).unwrap();
    let first = store.compact(u64::MAX).unwrap();
    assert!(first > stopped_at + 1, "compacted past the replica");
    // Watch from there is refused, naming the oldest retained revision.
    let err = ReplicationClient::new(channel(&lead.url()).await)
        .watch(proto::WatchRequest {
            from_revision: stopped_at,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(
        err.message()
            .contains(&format!("oldest retained revision is {first}")),
        "{}",
        err.message()
    );

    let rep = replica(dirs[1].path(), &lead.url()).await;
    assert_converged(&lead, &[&rep]).await;
    let s = state_of(&rep.url(), false).await;
    assert_eq!(s.rebootstraps, 1, "{s:?}");
    // It follows on from the installed state.
    churn(&lead.engine, 6, 50).await;
    assert_converged(&lead, &[&rep]).await;
    rep.stop().await;
    lead.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_watchers_see_every_revision_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let lead = leader(dir.path(), None).await;
    let start = lead.engine.load().revision();
    let ch = channel(&lead.url()).await;
    // The final revision, once known: each watcher stops when it has it.
    let (end_tx, end_rx) = tokio::sync::watch::channel(u64::MAX);
    let mut watchers = Vec::new();
    for i in 0..50u64 {
        let mut client = ReplicationClient::new(ch.clone());
        // Half from the start, half from the current revision.
        let from = if i % 2 == 0 { 0 } else { start };
        let mut stream = client
            .watch(proto::WatchRequest {
                from_revision: from,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let end_rx = end_rx.clone();
        watchers.push(tokio::spawn(async move {
            let mut seen: Vec<u64> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            // Idle heartbeats wake the loop, so it sees `end` arrive.
            while seen.last().copied().unwrap_or(from) != *end_rx.borrow() {
                let event = tokio::time::timeout_at(deadline.into(), stream.message())
                    .await
                    .expect("watch stalled")
                    .unwrap()
                    .expect("the stream ended early");
                if let Event::Change(c) = event.event.unwrap() {
                    // The mutation is the changelog's JSON.
                    let m: Mutation = serde_json::from_slice(&c.mutation).unwrap();
                    assert_eq!(m.kind(), c.kind);
                    seen.push(c.revision);
                }
            }
            (from, seen)
        }));
    }
    churn(&lead.engine, 7, 400).await;
    let end = lead.engine.load().revision();
    assert!(end > start + 50);
    let mut watching = state_of(&lead.url(), false).await.watchers;
    assert_eq!(watching, 50);
    end_tx.send_replace(end);
    for w in watchers {
        let (from, seen) = w.await.unwrap();
        let want: Vec<u64> = (from + 1..=end).collect();
        assert_eq!(seen, want, "watcher from {from}: in order, no gaps");
    }
    // The streams ended on the client side; the server notices.
    for _ in 0..50 {
        watching = state_of(&lead.url(), false).await.watchers;
        if watching == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(watching, 0);
    lead.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trips_and_refusals_name_the_problem() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let lead = leader(dirs[0].path(), None).await;
    churn(&lead.engine, 8, 200).await;
    let mut client = ReplicationClient::new(channel(&lead.url()).await);
    let mut stream = client
        .export(proto::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        chunks.push(c);
    }
    let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
    let digest = chunks.last().unwrap().digest.clone();
    let source = state_of(&lead.url(), true).await;
    assert_eq!(
        digest, source.digest,
        "the export's digest is the state digest"
    );

    // Into an empty node (a leader whose store holds nothing).
    let engine = Arc::new(Engine::open(open_store(dirs[1].path())).unwrap());
    let empty = start_with(
        listen(None).await,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: DataPlaneConfig::default(),
            replication: replication(Role::Leader),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let target = Node {
        engine,
        handle: empty,
    };
    let mut to = ReplicationClient::new(channel(&target.url()).await);
    let send = |chunks: Vec<proto::ExportChunk>| tokio_stream::iter(chunks);
    // An upload whose frames are wrong: the client's fault, by code.
    let garbage = [0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(raw_import(target.handle.addr, &garbage).await, "3");
    let cut_off = [0, 0, 0, 0, 9, 0x0a, 0x01];
    assert_eq!(raw_import(target.handle.addr, &cut_off).await, "3");
    let bad_flag = [7, 0, 0, 0, 0];
    assert_eq!(raw_import(target.handle.addr, &bad_flag).await, "3");
    let over_64_mib = [0, 0x04, 0, 0, 1, 0x0a];
    assert_eq!(raw_import(target.handle.addr, &over_64_mib).await, "8");
    assert_eq!(target.engine.load().revision(), 0);
    // A damaged digest is refused and nothing is installed.
    let mut bad = chunks.clone();
    bad.last_mut().unwrap().digest = "sha256:00".into();
    let err = to.import(send(bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("digest"), "{}", err.message());
    assert_eq!(target.engine.load().revision(), 0);
    // A truncated export too.
    let err = to
        .import(send(chunks[..chunks.len() - 1].to_vec()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let done = to.import(send(chunks.clone())).await.unwrap().into_inner();
    assert_eq!(done.revision, source.revision);
    assert_eq!(done.digest, source.digest);
    assert_ne!(done.history, source.history, "an import starts a history");
    let imported = state_of(&target.url(), true).await;
    assert_eq!(imported.digest, source.digest);
    // Exported again: the same bytes.
    let mut again = to
        .export(proto::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut bytes2 = Vec::new();
    while let Some(c) = again.message().await.unwrap() {
        bytes2.extend(c.data);
    }
    assert_eq!(bytes2, bytes);
    // A second import is refused: the node holds a state.
    let err = to.import(send(chunks)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The imported node keeps working as a leader.
    target
        .engine
        .submit(
            Actor::Operator,
            "test",
            Mutation::AddUser {
                tenant: tid(0),
                user: UserId::new("after-import").unwrap(),
                email: None,
                display_name: None,
                status: UserStatus::Active,
                aliases: Vec::new(),
                attributes: Default::default(),
            },
            false,
        )
        .await
        .unwrap();

    // Watch refusals.
    let head = lead.engine.load().revision();
    let ahead = client
        .watch(proto::WatchRequest {
            from_revision: head + 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ahead.code(), Code::OutOfRange);
    assert!(ahead.message().contains("ahead"), "{}", ahead.message());
    let other = client
        .watch(proto::WatchRequest {
            from_revision: 1,
            history: "not-this-one".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::OutOfRange);
    assert!(other.message().contains("history"), "{}", other.message());
    let bad_tenant = client
        .watch(proto::WatchRequest {
            tenants: vec!["no spaces".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_tenant.code(), Code::InvalidArgument);

    // A tenant filter: only that tenant's changes (and tenant-less ones).
    let mut filtered = client
        .watch(proto::WatchRequest {
            from_revision: 0,
            tenants: vec!["t1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = 0;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), filtered.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match e.event.unwrap() {
            Event::Change(c) => {
                assert!(c.tenant == "t1" || c.tenant.is_empty(), "{c:?}");
                assert!(c.revision > last);
                last = c.revision;
            }
            Event::Checkpoint(c) => {
                assert_eq!(c.revision, head);
                break;
            }
        }
    }
    target.stop().await;
    lead.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_outlives_the_call_deadline() {
    use rampart::server::limits::Limits;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(open_store(dir.path())).unwrap());
    let handle = start_with(
        listen(None).await,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: DataPlaneConfig {
                limits: Limits {
                    call_timeout: Duration::from_millis(200),
                    ..Limits::default()
                },
                ..DataPlaneConfig::default()
            },
            replication: replication(Role::Leader),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let node = Node { engine, handle };
    let mut stream = ReplicationClient::new(channel(&node.url()).await)
        .watch(proto::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let started = Instant::now();
    let mut checkpoints = 0;
    while started.elapsed() < Duration::from_millis(1_200) {
        let e = stream.message().await.unwrap().expect("the stream is open");
        if let Some(Event::Checkpoint(_)) = e.event {
            checkpoints += 1;
        }
    }
    assert!(checkpoints >= 3, "heartbeats kept coming: {checkpoints}");
    node.stop().await;
}

/// A replica whose store is damaged (here: behind the head it recorded, as
/// after a truncated `db`) does not stop at "corrupt": its store is a copy,
/// so `serve --follow` moves it aside and bootstraps again from the leader.
/// A leader's store in the same state is refused, naming both revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_corrupt_store_moves_it_aside_and_bootstraps_again() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let data = dirs[1].path().join("data");
    let lead = leader(dirs[0].path(), None).await;
    let rep = replica(&data, &lead.url()).await;
    churn(&lead.engine, 7, 100).await;
    assert_converged(&lead, &[&rep]).await;
    let had = rep.engine.load().revision();
    rep.stop().await;
    std::fs::write(data.join("head"), format!("{:020}\n", had + 1000)).unwrap();

    let open = |replica: bool| {
        let started = Instant::now();
        loop {
            match rampart::cli::serve::open_store(&data, replica) {
                Err(e) if e.contains("lock") && started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    };
    let Err(refused) = open(false) else {
        panic!("a leader's store behind its head must be refused");
    };
    assert!(
        refused.contains(&format!("recovered revision {had}"))
            && refused.contains(&format!("revision {} was acknowledged", had + 1000)),
        "{refused}"
    );
    let (_, engine) = open(true).unwrap();
    assert_eq!(engine.load().revision(), 0, "starts empty");
    drop(engine);
    let aside: Vec<_> = std::fs::read_dir(dirs[1].path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("data.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    let rep = replica(&data, &lead.url()).await;
    churn(&lead.engine, 8, 20).await;
    assert_converged(&lead, &[&rep]).await;
    rep.stop().await;
    lead.stop().await;
}
