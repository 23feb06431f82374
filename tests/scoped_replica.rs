//! Replicas of some tenants (`serve --follow URL --tenants a,c`), end to
//! end: a leader on sled and scoped replicas as in-process servers on
//! 127.0.0.1:0 talking real gRPC, then the `rampart` binary for the flag,
//! its variable, `ctl` and the HTTP/JSON front end.
//!
//! - the replica holds its tenants only; a check about another tenant is
//!   NOT_FOUND saying so (Check, BatchCheck, the listings, Admin reads), one
//!   inside the set that does not exist yet the usual NOT_FOUND;
//! - a change to another tenant never reaches it, one to its tenants does,
//!   a tenant it names that is created later appears, another does not;
//! - it reaches a revision made of other tenants' changes at once (the
//!   leader's heartbeat is a minute here);
//! - its digest is its leader's Export of the same tenants; Export, Watch
//!   and GetState on it; a re-bootstrap keeps the filter;
//! - the flag: a bad id, no `--follow`, `RAMPART_TENANTS`, `ctl status`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::node::{Node, listen};
use rampart::cli::serve::{ServerOptions, start_with};
use rampart::engine::{Engine, Scope};
use rampart::model::rules::Actor;
use rampart::model::{
    Grant, GrantPattern, Mutation, RoleName, Subject, TenantId, UserId, UserStatus, policy_file,
};
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::replication_client::ReplicationClient;
use rampart::proto::{self, Consistency, Decision, consistency::Requirement};
use rampart::replication::{ReplicaStatus, ReplicationConfig, Role};
use rampart::server::DataPlaneConfig;
use rampart::store::{SledStore, Store};
use rampart::telemetry::TelemetryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
tenants:
  - id: a
    roles: [{ name: readers, grants: ["docs:read"] }]
    users: [{ id: root }, { id: u1 }]
    bindings: [{ subject: root, role: Administrators }, { subject: u1, role: readers }]
  - id: b
    roles: [{ name: readers, grants: ["docs:read"] }]
    users: [{ id: root }, { id: u1 }, { id: only-b }]
    bindings: [{ subject: root, role: Administrators }, { subject: u1, role: readers }]
  - id: c
    roles: [{ name: readers, grants: ["docs:read"] }]
    users: [{ id: root }, { id: u1 }]
    bindings: [{ subject: root, role: Administrators }, { subject: u1, role: readers }]
"#;

/// The subset message's tail for the tenants `a, c, e`.
const HELD: &str = "it holds only the tenants named by --tenants (a, c, e)";

fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn u(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

/// A leader on a sled store in `dir`, bootstrapped with `POLICY`, whose
/// idle Watch streams hear a heartbeat only every `heartbeat`.
async fn leader(dir: &Path, addr: Option<SocketAddr>, heartbeat: Duration) -> Node {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let engine = Arc::new(Engine::open(store).unwrap());
    let state = policy_file::load_str(POLICY).unwrap();
    engine
        .bootstrap(policy_file::to_mutations(&state), "bootstrap")
        .await
        .unwrap();
    let handle = start_with(
        listen(addr).await,
        Arc::clone(&engine),
        ServerOptions {
            replication: ReplicationConfig {
                heartbeat,
                ..ReplicationConfig::default()
            },
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    Node { engine, handle }
}

/// A replica of `leader_url` holding `tenants`, with a metrics listener.
async fn scoped(leader_url: &str, tenants: &[&str]) -> (Node, Arc<ReplicaStatus>) {
    let scope = Scope::new(tenants.iter().map(|id| t(id))).unwrap();
    let engine = Arc::new(Engine::scoped(scope));
    let status = Arc::new(ReplicaStatus::default());
    let handle = start_with(
        listen(None).await,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: DataPlaneConfig {
                consistency_wait: Duration::from_secs(10),
                ..DataPlaneConfig::default()
            },
            replication: ReplicationConfig {
                role: Role::Replica {
                    leader: leader_url.to_owned(),
                    status: Arc::clone(&status),
                    max_lag: Duration::from_secs(5),
                },
                ..ReplicationConfig::default()
            },
            telemetry: TelemetryConfig {
                metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..TelemetryConfig::default()
            },
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    (Node { engine, handle }, status)
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Waits until `node` is at `revision` or later (bounded).
async fn reach(node: &Node, revision: u64, within: Duration) {
    let got = node.engine.at_least(revision, within).await;
    assert!(
        got.is_ok(),
        "{} stuck at revision {} (wanted {revision} within {within:?})",
        node.url(),
        node.engine.load().revision()
    );
}

async fn submit(leader: &Node, mutation: Mutation) -> u64 {
    leader
        .engine
        .submit(Actor::Operator, "test", mutation, false)
        .await
        .unwrap()
        .revision
}

fn add_user(tenant: &str, user: &str) -> Mutation {
    Mutation::AddUser {
        tenant: t(tenant),
        user: u(user),
        email: None,
        display_name: None,
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

fn assign(tenant: &str, user: &str) -> Mutation {
    Mutation::Assign {
        tenant: t(tenant),
        subject: Subject::User(u(user)),
        role: RoleName::new("readers").unwrap(),
        expires: None,
    }
}

fn create_tenant(tenant: &str) -> Mutation {
    Mutation::CreateTenant {
        tenant: t(tenant),
        name: tenant.to_uppercase(),
        settings: Default::default(),
    }
}

fn held(node: &Node) -> Vec<String> {
    node.engine
        .load()
        .state()
        .tenants
        .keys()
        .map(ToString::to_string)
        .collect()
}

fn has_user(node: &Node, tenant: &str, user: &str) -> bool {
    node.engine
        .load()
        .state()
        .tenants
        .get(tenant)
        .is_some_and(|t| t.users.contains_key(user))
}

/// A Check on `node`: the answer's decision, or the error.
async fn check(
    node: &Node,
    tenant: &str,
    subject: &str,
    at_least: Option<u64>,
) -> Result<Decision, tonic::Status> {
    AuthorizationClient::new(channel(&node.url()).await)
        .check(proto::CheckRequest {
            tenant: tenant.into(),
            subject: subject.into(),
            permission: "docs:read".into(),
            consistency: at_least.map(|r| Consistency {
                requirement: Some(Requirement::AtLeastRevision(r)),
            }),
            explain: false,
        })
        .await
        .map(|r| r.into_inner().decision())
}

fn assert_not_served(status: &tonic::Status, tenant: &str) {
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let want = format!("tenant `{tenant}` is not served by this node: {HELD}");
    assert_eq!(status.message(), want);
}

/// Every chunk of an Export of `tenants` from `url`: the file and the
/// digest of its last chunk, or the error.
async fn export(url: &str, tenants: &[&str]) -> Result<(String, String, u64), tonic::Status> {
    let mut stream = ReplicationClient::new(channel(url).await)
        .export(proto::ExportRequest {
            tenants: tenants.iter().map(ToString::to_string).collect(),
        })
        .await?
        .into_inner();
    let (mut file, mut digest, mut revision) = (Vec::new(), String::new(), 0);
    while let Some(chunk) = stream.message().await? {
        file.extend_from_slice(&chunk.data);
        digest = chunk.digest;
        revision = chunk.revision;
    }
    Ok((String::from_utf8(file).unwrap(), digest, revision))
}

async fn state_of(url: &str, digest: bool) -> proto::GetStateResponse {
    ReplicationClient::new(channel(url).await)
        .get_state(proto::GetStateRequest { digest })
        .await
        .unwrap()
        .into_inner()
}

/// `GET /metrics` of `node`.
async fn scrape(node: &Node) -> String {
    let addr = node.handle.metrics_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).await.unwrap();
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_replica_holds_follows_and_answers_for_its_tenants_only() {
    let dir = tempfile::tempdir().unwrap();
    // Idle Watch streams hear no heartbeat during the test: a scoped
    // replica that reaches a revision does so by the checkpoint a filtered
    // stream sends at once.
    let leader = leader(dir.path(), None, Duration::from_secs(60)).await;
    let (replica, status) = scoped(&leader.url(), &["a", "c", "e"]).await;
    let head = leader.engine.load().revision();
    reach(&replica, head, Duration::from_secs(30)).await;

    // It holds a and c; e does not exist yet.
    assert_eq!(held(&replica), ["a", "c"]);
    assert_eq!(
        check(&replica, "a", "u1", None).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        check(&replica, "c", "u1", None).await.unwrap(),
        Decision::Allow
    );
    let b = check(&replica, "b", "u1", None).await.unwrap_err();
    assert_not_served(&b, "b");
    let e = check(&replica, "e", "u1", None).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(
        e.message(),
        "unknown tenant `e`",
        "a named tenant that does not exist yet"
    );
    // The leader answers b as usual.
    assert_eq!(
        check(&leader, "b", "u1", None).await.unwrap(),
        Decision::Allow
    );

    // BatchCheck: each item on its own.
    let batch = AuthorizationClient::new(channel(&replica.url()).await)
        .batch_check(proto::BatchCheckRequest {
            items: ["a", "b", "zzz"]
                .iter()
                .map(|tenant| proto::BatchCheckItem {
                    tenant: (*tenant).into(),
                    subject: "u1".into(),
                    permission: "docs:read".into(),
                    correlation_id: (*tenant).into(),
                })
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    use proto::batch_check_result::Outcome;
    match &batch.results[0].outcome {
        Some(Outcome::Response(r)) => assert_eq!(r.decision(), Decision::Allow),
        other => panic!("item a: {other:?}"),
    }
    for (i, tenant) in [(1, "b"), (2, "zzz")] {
        match &batch.results[i].outcome {
            Some(Outcome::Error(e)) => {
                assert_eq!(e.code, Code::NotFound as i32);
                assert_not_served(
                    &tonic::Status::new(Code::from(e.code), e.message.clone()),
                    tenant,
                );
            }
            other => panic!("item {tenant}: {other:?}"),
        }
    }
    // The listings and the Admin reads say the same.
    let mut authz = AuthorizationClient::new(channel(&replica.url()).await);
    let listed = authz
        .list_subjects(proto::ListSubjectsRequest {
            tenant: "b".into(),
            permission: "docs:read".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_not_served(&listed, "b");
    let listed = authz
        .list_subject_permissions(proto::ListSubjectPermissionsRequest {
            tenant: "b".into(),
            subject: "u1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_not_served(&listed, "b");
    let roles = AdminClient::new(channel(&replica.url()).await)
        .list_roles(proto::ListRolesRequest {
            tenant: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_not_served(&roles, "b");

    // Changes: b's never arrive, a's do, and a profile change reaches the
    // user where the replica has it (a user only b has: nowhere, and no
    // re-bootstrap).
    submit(&leader, add_user("b", "bo")).await;
    submit(&leader, assign("b", "bo")).await;
    submit(&leader, add_user("a", "al")).await;
    let info = |user: &str| Mutation::UpdateUserInfo {
        user: u(user),
        email: Some(format!("{user}@example.com")),
        display_name: None,
        aliases: None,
        attributes: None,
    };
    submit(&leader, info("only-b")).await;
    submit(&leader, info("u1")).await;
    let last_a = submit(&leader, assign("a", "al")).await;
    // The newest change is b's: the replica gets there by a checkpoint.
    let last = submit(
        &leader,
        Mutation::Grant {
            tenant: t("b"),
            role: RoleName::new("readers").unwrap(),
            grant: Grant::allow(GrantPattern::parse("docs:write").unwrap()),
        },
    )
    .await;
    assert!(last > last_a);
    reach(&replica, last, Duration::from_secs(10)).await;
    assert_eq!(replica.engine.load().revision(), last);
    assert_eq!(held(&replica), ["a", "c"]);
    assert!(has_user(&replica, "a", "al"));
    assert!(!has_user(&replica, "b", "bo") && !has_user(&replica, "a", "bo"));
    assert_eq!(
        check(&replica, "a", "al", Some(last)).await.unwrap(),
        Decision::Allow
    );
    assert_not_served(
        &check(&replica, "b", "bo", Some(last)).await.unwrap_err(),
        "b",
    );
    let email = |tenant: &str| {
        replica.engine.load().state().tenants[&t(tenant)].users[&u("u1")]
            .email()
            .map(str::to_owned)
    };
    assert_eq!(email("a").as_deref(), Some("u1@example.com"));
    assert_eq!(email("c").as_deref(), Some("u1@example.com"));
    assert_eq!(
        status
            .rebootstraps
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // A tenant created later: d (not named) stays away, e (named) appears
    // with what is done in it.
    submit(&leader, create_tenant("d")).await;
    submit(&leader, add_user("d", "dee")).await;
    submit(&leader, create_tenant("e")).await;
    submit(
        &leader,
        Mutation::CreateRole {
            tenant: t("e"),
            role: RoleName::new("readers").unwrap(),
            description: String::new(),
        },
    )
    .await;
    submit(
        &leader,
        Mutation::Grant {
            tenant: t("e"),
            role: RoleName::new("readers").unwrap(),
            grant: Grant::allow(GrantPattern::parse("docs:read").unwrap()),
        },
    )
    .await;
    submit(&leader, add_user("e", "eve")).await;
    let head = submit(&leader, assign("e", "eve")).await;
    reach(&replica, head, Duration::from_secs(10)).await;
    assert_eq!(held(&replica), ["a", "c", "e"]);
    assert_eq!(
        check(&replica, "e", "eve", Some(head)).await.unwrap(),
        Decision::Allow
    );
    assert_not_served(&check(&replica, "d", "dee", None).await.unwrap_err(), "d");

    // GetState says which tenants it holds; its digest is the leader's
    // Export of those tenants at that revision, not the leader's own.
    let head = submit(&leader, add_user("d", "dan")).await;
    reach(&replica, head, Duration::from_secs(10)).await;
    let mine = state_of(&replica.url(), true).await;
    assert_eq!(mine.tenants, ["a", "c", "e"]);
    assert_eq!(mine.role, "replica");
    assert_eq!(mine.revision, head);
    let theirs = state_of(&leader.url(), true).await;
    assert!(theirs.tenants.is_empty(), "a leader holds every tenant");
    assert_eq!(mine.history, theirs.history);
    assert_ne!(mine.digest, theirs.digest);
    let (file, digest, revision) = export(&leader.url(), &["e", "c", "a", "c"]).await.unwrap();
    assert_eq!(revision, head);
    assert_eq!(digest, mine.digest);
    let header: serde_json::Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(header["scope"], serde_json::json!(["a", "c", "e"]));
    assert_eq!(header["tenants"], 3);
    assert_eq!(file.lines().count(), 4);
    // The replica exports what it holds, and refuses to pass a part off
    // as the whole or to export what it does not hold.
    let (_, again, _) = export(&replica.url(), &["a", "c", "e"]).await.unwrap();
    assert_eq!(again, digest);
    let whole = export(&replica.url(), &[]).await.unwrap_err();
    assert_eq!(whole.code(), Code::FailedPrecondition);
    assert!(
        whole
            .message()
            .contains("holds only the tenants named by --tenants (a, c, e)")
            && whole.message().contains(&leader.url()),
        "{whole:?}"
    );
    let other = export(&replica.url(), &["a", "b"]).await.unwrap_err();
    assert_eq!(other.code(), Code::FailedPrecondition);
    assert!(other.message().contains("not `b`"), "{other:?}");
    let bad = export(&leader.url(), &["bad/id"]).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("`bad/id`"), "{bad:?}");
    // It keeps no changelog to Watch.
    let watched = ReplicationClient::new(channel(&replica.url()).await)
        .watch(proto::WatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(watched.code(), Code::FailedPrecondition);
    assert!(
        watched.message().contains("keeps no changelog"),
        "{watched:?}"
    );

    // Metrics: the tenants held and the scope.
    let page = scrape(&replica).await;
    assert!(page.contains("\nrampart_tenants_held 3\n"), "{page}");
    assert!(
        page.contains("\nrampart_tenants_scope_info{tenants=\"a,c,e\"} 1\n"),
        "{page}"
    );

    replica.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_replica_keeps_its_tenants_when_it_bootstraps_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = leader(&dir.path().join("one"), None, Duration::from_millis(200)).await;
    let addr = first.handle.addr;
    let (replica, status) = scoped(&first.url(), &["a", "c"]).await;
    let head = submit(&first, add_user("b", "bo")).await;
    reach(&replica, head, Duration::from_secs(30)).await;
    let before = state_of(&replica.url(), false).await;

    // Another leader, with another history, at the same address: the
    // replica's Watch is refused and it bootstraps again from it, with the
    // same filter.
    first.stop().await;
    let second = leader(
        &dir.path().join("two"),
        Some(addr),
        Duration::from_millis(200),
    )
    .await;
    submit(&second, add_user("c", "cy")).await;
    let head = submit(&second, add_user("b", "bee")).await;
    let history = state_of(&second.url(), false).await.history;
    assert_ne!(history, before.history);
    let started = Instant::now();
    while state_of(&replica.url(), false).await.history != history {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica did not bootstrap from the new leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reach(&replica, head, Duration::from_secs(30)).await;
    assert_eq!(held(&replica), ["a", "c"]);
    assert!(has_user(&replica, "c", "cy"));
    assert!(!has_user(&replica, "b", "bee"));
    assert!(
        status
            .rebootstraps
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!(status.reconnects.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let now = state_of(&replica.url(), true).await;
    assert_eq!(now.tenants, ["a", "c"]);
    let (_, digest, _) = export(&second.url(), &["a", "c"]).await.unwrap();
    assert_eq!(now.digest, digest);

    replica.stop().await;
    second.stop().await;
}

/// `rampart ARGS` with `env`: (exit code, stdout, stderr).
fn rampart(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(common::BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_tenants_flag_is_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // A bad id is named, with the rule it breaks.
    let (code, _, err) = rampart(
        &[
            "serve",
            "--data-dir",
            data,
            "--follow",
            "http://127.0.0.1:9",
            "--tenants",
            "acme,acme corp",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'acme corp'") && err.contains("--tenants"),
        "{err}"
    );
    assert!(err.contains("has a character outside"), "{err}");
    // The same from the variable.
    let (code, _, err) = rampart(
        &[
            "serve",
            "--data-dir",
            data,
            "--follow",
            "http://127.0.0.1:9",
        ],
        &[("RAMPART_TENANTS", "acme,")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tenant id must not be empty"), "{err}");
    // Only with --follow.
    let (code, _, err) = rampart(&["serve", "--data-dir", data, "--tenants", "acme"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--tenants needs --follow"), "{err}");
    assert!(!Path::new(data).exists(), "nothing was opened");
    // The variable, comma-separated, as the effective configuration shows it.
    let (code, out, err) = rampart(
        &["serve", "--follow", "http://127.0.0.1:9", "--print-config"],
        &[("RAMPART_TENANTS", "globex,acme")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("tenants = [\"globex\", \"acme\"]")
                && l.ends_with("# environment")),
        "{out}"
    );
}

/// A POST of `body` to `path` on `port` (HTTP/1.1, one request): the status
/// and the body.
fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn a_scoped_replica_process_serves_its_tenants_over_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, http) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    // The built-in quickstart: tenants acme and globex.
    let leader = common::Server::start(&dir.path().join("leader"), p1);
    let leader_url = format!("http://127.0.0.1:{p1}");
    let replica = {
        let mut child = Command::new(common::BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{p2}")])
            .args(["--follow", &leader_url, "--http-listen"])
            .arg(format!("127.0.0.1:{http}"))
            .env("RAMPART_TENANTS", "acme")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        // Ready: `rampart health` says SERVING once it has caught up.
        let started = Instant::now();
        loop {
            let (code, _, _) = rampart(
                &["health", "--server", &format!("127.0.0.1:{p2}"), "-q"],
                &[],
            );
            if code == 0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!("the scoped replica did not become SERVING");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        common::Server(child)
    };
    let server = format!("127.0.0.1:{p2}");
    let (code, out, err) = rampart(&["ctl", "--server", &server, "status"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("tenants") && l.trim_end().ends_with("acme (--tenants)")),
        "{out}"
    );
    let (code, out, err) = rampart(&["ctl", "--server", &server, "-o", "json", "status"], &[]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["tenants"], serde_json::json!(["acme"]));
    let check = |tenant: &str| {
        rampart(
            &[
                "ctl",
                "--server",
                &server,
                "check",
                "--tenant",
                tenant,
                "--subject",
                "alice",
                "--permission",
                "documents:view",
            ],
            &[],
        )
    };
    let (code, out, err) = check("acme");
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = check("globex");
    assert_eq!(code, 1);
    assert!(
        err.contains("NOT_FOUND")
            && err.contains(
                "tenant `globex` is not served by this node: it holds only the tenants named by --tenants (acme)"
            ),
        "{err}"
    );
    // The HTTP/JSON mirror shares the path.
    let (status, body) = post(
        http,
        "/v1/check",
        r#"{"tenant": "globex", "subject": "alice", "permission": "documents:view"}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("is not served by this node"), "{body}");
    // A scoped replica's data dir is not used.
    assert!(!dir.path().join("rampart-data").exists());
    for s in [replica, leader] {
        assert!(s.terminate().success());
    }
}
