//! A sidecar replica whose follow token is confined to its tenants
//! (`tenants` on a `watch` token in the leader's tokens file), end to end:
//! in-process nodes on 127.0.0.1:0 talking real gRPC, then the `rampart`
//! binary.
//!
//! - `serve --follow URL --tenants acme` with a token confined to acme
//!   bootstraps, follows, reaches revisions made of other tenants'
//!   changes, and its digest is the leader's Export of acme;
//! - asking for `--tenants acme,globex` with that token is refused by the
//!   leader naming globex: the replica holds nothing and says why in its
//!   log, and keeps trying (the leader may reload its tokens);
//! - a replica of every tenant with that token installs nothing: the
//!   leader would send it acme only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::node::{Node, listen};
use rampart::cli::serve::security::Security;
use rampart::cli::serve::{ServerOptions, start_with};
use rampart::client::{ClientSecurity, hash_hex};
use rampart::engine::{Engine, Scope};
use rampart::model::rules::Actor;
use rampart::model::{Mutation, TenantId, UserId, UserStatus, policy_file};
use rampart::proto::{self, replication_client::ReplicationClient};
use rampart::replication::{ReplicaStatus, ReplicationConfig, Role};
use rampart::server::auth::Credentials;
use rampart::store::{SledStore, Store};
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
tenants:
  - id: acme
    users: [{ id: root }, { id: both }]
    bindings: [{ subject: root, role: Administrators }]
  - id: globex
    users: [{ id: root }, { id: gus }, { id: both }]
    bindings: [{ subject: root, role: Administrators }]
"#;

/// The tokens file: `replica` (watch, every tenant), `sidecar` (watch,
/// acme only).
fn tokens() -> String {
    format!(
        "[[token]]\nname = \"replica\"\nsha256 = \"{}\"\nscopes = [\"watch\"]\n\n\
         [[token]]\nname = \"sidecar\"\nsha256 = \"{}\"\nscopes = [\"watch\"]\ntenants = [\"acme\"]\n",
        hash_hex("tok-replica"),
        hash_hex("tok-sidecar")
    )
}

async fn leader(dir: &Path) -> Node {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
    let engine = Arc::new(Engine::open(store).unwrap());
    let state = policy_file::load_str(POLICY).unwrap();
    engine
        .bootstrap(policy_file::to_mutations(&state), "bootstrap")
        .await
        .unwrap();
    let options = ServerOptions {
        replication: ReplicationConfig {
            heartbeat: Duration::from_secs(60),
            ..ReplicationConfig::default()
        },
        security: Security {
            credentials: Some(Arc::new(Credentials::parse(&tokens(), "test").unwrap())),
            ..Security::default()
        },
        ..ServerOptions::default()
    };
    node(engine, options).await
}

async fn node(engine: Arc<Engine>, options: ServerOptions) -> Node {
    let handle = start_with(listen(None).await, Arc::clone(&engine), options)
        .await
        .unwrap();
    Node { engine, handle }
}

/// A replica of `leader` holding `tenants` (none: every tenant, on a sled
/// store in `dir`) that follows with `token`.
async fn replica(
    leader: &Node,
    tenants: &[&str],
    token: &str,
    dir: &Path,
) -> (Node, Arc<ReplicaStatus>) {
    let engine = match Scope::new(tenants.iter().map(|id| t(id))) {
        Some(scope) => Arc::new(Engine::scoped(scope)),
        None => Arc::new(Engine::open(Arc::new(SledStore::open(dir).unwrap())).unwrap()),
    };
    let status = Arc::new(ReplicaStatus::default());
    let options = ServerOptions {
        replication: ReplicationConfig {
            role: Role::Replica {
                leader: leader.url(),
                status: Arc::clone(&status),
                max_lag: Duration::from_secs(5),
            },
            ..ReplicationConfig::default()
        },
        security: Security {
            follow: ClientSecurity {
                tls: None,
                token: Some(token.parse().unwrap()),
            },
            ..Security::default()
        },
        ..ServerOptions::default()
    };
    (node(engine, options).await, status)
}

fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn add_user(tenant: &str, user: &str) -> Mutation {
    Mutation::AddUser {
        tenant: t(tenant),
        user: UserId::new(user).unwrap(),
        email: None,
        display_name: None,
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

fn info(user: &str, email: &str) -> Mutation {
    Mutation::UpdateUserInfo {
        user: UserId::new(user).unwrap(),
        email: Some(email.into()),
        display_name: None,
        aliases: None,
        attributes: None,
    }
}

async fn submit(leader: &Node, mutation: Mutation) -> u64 {
    leader
        .engine
        .submit(Actor::Operator, "test", mutation, false)
        .await
        .unwrap()
        .revision
}

async fn reach(node: &Node, revision: u64) {
    let got = node
        .engine
        .at_least(revision, Duration::from_secs(30))
        .await;
    assert!(
        got.is_ok(),
        "stuck at revision {} (wanted {revision})",
        node.engine.load().revision()
    );
}

fn held(node: &Node) -> Vec<String> {
    let snapshot = node.engine.load();
    snapshot
        .state()
        .tenants
        .keys()
        .map(ToString::to_string)
        .collect()
}

/// The digest of the leader's Export of `tenants`, asked with `token`.
async fn export_digest(leader: &Node, token: &str, tenants: &[&str]) -> String {
    let channel = Channel::from_shared(leader.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(proto::ExportRequest {
        tenants: tenants.iter().map(ToString::to_string).collect(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut stream = ReplicationClient::new(channel)
        .export(request)
        .await
        .unwrap()
        .into_inner();
    let mut digest = String::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        digest = chunk.digest;
    }
    digest
}

/// Waits until `status` counts `n` failed rounds (refusals, here).
async fn refused_times(status: &ReplicaStatus, n: u64) {
    let started = Instant::now();
    while status.reconnects.load(Ordering::Relaxed) < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the follower did not try again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_with_a_token_confined_to_its_tenant_bootstraps_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let leader = leader(&dir.path().join("leader")).await;
    let (sidecar, status) = replica(&leader, &["acme"], "tok-sidecar", dir.path()).await;
    reach(&sidecar, leader.engine.load().revision()).await;
    assert_eq!(held(&sidecar), ["acme"]);

    // globex's changes never arrive; a profile change of a user acme
    // shares does; the newest change is globex's, reached by a checkpoint.
    submit(&leader, add_user("globex", "gil")).await;
    submit(&leader, info("gus", "gus@globex.test")).await;
    submit(&leader, info("both", "both@shared.test")).await;
    submit(&leader, add_user("acme", "al")).await;
    let last = submit(&leader, add_user("globex", "gwen")).await;
    reach(&sidecar, last).await;
    assert_eq!(sidecar.engine.load().revision(), last);
    let snapshot = sidecar.engine.load();
    let acme = &snapshot.state().tenants[&t("acme")];
    assert!(acme.users.contains_key("al"));
    assert_eq!(acme.users["both"].email(), Some("both@shared.test"));
    assert_eq!(held(&sidecar), ["acme"]);
    assert_eq!(status.rebootstraps.load(Ordering::Relaxed), 0);
    assert!(status.connected.load(Ordering::Relaxed));

    // It holds what the leader's export of acme holds, to the byte.
    let channel = Channel::from_shared(sidecar.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mine = ReplicationClient::new(channel)
        .get_state(proto::GetStateRequest { digest: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.revision, last);
    assert_eq!(
        mine.digest,
        export_digest(&leader, "tok-replica", &["acme"]).await
    );
    assert_eq!(
        mine.digest,
        export_digest(&leader, "tok-sidecar", &[]).await
    );
    sidecar.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_asking_for_more_than_its_token_allows_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let leader = leader(&dir.path().join("leader")).await;
    // --tenants acme,globex with a token confined to acme: the leader
    // refuses the export, naming globex; the replica tries again.
    let (wide, status) = replica(&leader, &["acme", "globex"], "tok-sidecar", dir.path()).await;
    // A replica of every tenant with that token: the leader would send
    // acme only, which it must not take for the whole state.
    let (full, full_status) = replica(&leader, &[], "tok-sidecar", &dir.path().join("full")).await;
    refused_times(&status, 2).await;
    refused_times(&full_status, 2).await;
    for (node, status) in [(&wide, &status), (&full, &full_status)] {
        assert_eq!(node.engine.load().revision(), 0);
        assert!(held(node).is_empty());
        assert!(!status.caught_up.load(Ordering::Relaxed));
    }
    // The same token is good for what it covers.
    let (good, _) = replica(&leader, &["acme"], "tok-sidecar", dir.path()).await;
    reach(&good, leader.engine.load().revision()).await;
    assert_eq!(held(&good), ["acme"]);
    for node in [good, wide, full, leader] {
        node.stop().await;
    }
}

/// Reads `child`'s stderr until a line has every one of `words` (30 s at
/// most); the line.
fn wait_for_line(child: &mut std::process::Child, words: &[&str]) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if words.iter().all(|w| line.contains(w)) {
                return line;
            }
            seen.push(line);
        }
    }
    panic!("no line with {words:?} in:\n{}", seen.join("\n"));
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_sidecar_process_says_which_tenant_its_token_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.toml");
    std::fs::write(&tokens_file, tokens()).unwrap();
    let (p1, p2, p3) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    // The built-in quickstart: tenants acme and globex.
    let leader = common::Server::start_with(
        &dir.path().join("leader"),
        p1,
        &["--tokens-file", tokens_file.to_str().unwrap()],
    );
    let sidecar = |port: u16, tenants: &str| {
        Command::new(common::BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--follow", &format!("http://127.0.0.1:{p1}")])
            .args(["--tenants", tenants])
            .env("RAMPART_FOLLOW_TOKEN", "tok-sidecar")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .current_dir(dir.path())
            .spawn()
            .unwrap()
    };
    let mut wide = common::Server(sidecar(p2, "acme,globex"));
    let line = wait_for_line(
        &mut wide.0,
        &["the leader refuses this replica", "not `globex`"],
    );
    assert!(
        line.contains("credential `sidecar` is confined to tenant(s) `acme`"),
        "{line}"
    );
    let (code, out, _) = run(&["health", "--server", &format!("127.0.0.1:{p2}")]);
    assert_eq!(code, 1, "not SERVING: {out}");
    drop(wide);

    // The right tenants: SERVING, and it answers for acme.
    let good = common::Server(sidecar(p3, "acme"));
    let started = Instant::now();
    while run(&["health", "--server", &format!("127.0.0.1:{p3}"), "-q"]).0 != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sidecar did not become SERVING"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = run(&[
        "ctl",
        "--server",
        &format!("127.0.0.1:{p3}"),
        "check",
        "--tenant",
        "acme",
        "--subject",
        "alice",
        "--permission",
        "documents:view",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for s in [good, leader] {
        assert!(s.terminate().success());
    }
}
