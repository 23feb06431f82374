//! Telemetry end to end: a server with metrics and a decision log, real
//! gRPC calls, `/metrics` scraped over HTTP and parsed, the log parsed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rampart::cli::serve::security::Security;
use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::engine::Engine;
use rampart::model::policy_file;
use rampart::model::rules::Actor;
use rampart::model::{Mutation, TenantId, UserId, UserStatus};
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::{AddUserRequest, BatchCheckItem, BatchCheckRequest, CheckRequest};
use rampart::replication::{ReplicaStatus, ReplicationConfig, Role};
use rampart::server::DataPlaneConfig;
use rampart::server::limits::Limits;
use rampart::store::{FreeSpace, SledStore, Store};
use rampart::telemetry::{DecisionLogConfig, Target, TelemetryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "documents:view" }
  - { permission: "documents:edit:?DOC?" }
tenants:
  - id: acme
    roles:
      - name: editors
        grants: ["documents:view", "documents:edit:*", { deny: "documents:edit:locked" }]
    users:
      - { id: alice }
      - { id: carol, status: inactive }
    bindings:
      - { subject: alice, role: editors }
"#;

async fn server(telemetry: TelemetryConfig) -> (ServerHandle, Arc<Engine>, Channel) {
    server_with(DataPlaneConfig::default(), telemetry).await
}

async fn server_with(
    config: DataPlaneConfig,
    telemetry: TelemetryConfig,
) -> (ServerHandle, Arc<Engine>, Channel) {
    let engine = Arc::new(Engine::new(policy_file::load_str(POLICY).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start_with(
        listener,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: config,
            telemetry,
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (handle, engine, channel)
}

fn check(subject: &str, permission: &str) -> CheckRequest {
    CheckRequest {
        tenant: "acme".into(),
        subject: subject.into(),
        permission: permission.into(),
        consistency: None,
        explain: false,
    }
}

fn item(subject: &str, permission: &str, id: &str) -> BatchCheckItem {
    BatchCheckItem {
        tenant: "acme".into(),
        subject: subject.into(),
        permission: permission.into(),
        correlation_id: id.into(),
    }
}

/// Four Checks (two allows, two denies), one invalid Check, a BatchCheck of
/// three (one allow, two denies), and an AddUser applied then refused.
async fn traffic(channel: &Channel) {
    let mut authz = AuthorizationClient::new(channel.clone());
    authz.check(check("alice", "documents:view")).await.unwrap();
    let mut with_id = tonic::Request::new(check("alice", "documents:view"));
    with_id
        .metadata_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    authz.check(with_id).await.unwrap();
    authz
        .check(check("alice", "documents:edit:locked"))
        .await
        .unwrap();
    authz.check(check("zed", "documents:view")).await.unwrap();
    let invalid = authz.check(check("", "documents:view")).await.unwrap_err();
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    authz
        .batch_check(BatchCheckRequest {
            items: vec![
                item("alice", "documents:edit:a", "b1"),
                item("carol", "documents:view", "b2"),
                item("alice", "billing:view", "b3"),
            ],
            consistency: None,
            explain: false,
        })
        .await
        .unwrap();
    let mut admin = AdminClient::new(channel.clone());
    let add = AddUserRequest {
        tenant: "acme".into(),
        user: "erin".into(),
        ..Default::default()
    };
    admin.add_user(add.clone()).await.unwrap();
    admin.add_user(add).await.unwrap_err();
}

/// `GET path` over a plain TCP connection: the status line, the headers
/// (lowercased names) and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, BTreeMap<String, String>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

/// A parsed exposition: the type of each family, and every sample.
#[derive(Debug, Default)]
struct Page {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Page {
    fn parse(text: &str) -> Self {
        let mut page = Page::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                page.types.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in `{line}`")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (
                    name.to_owned(),
                    parse_labels(rest.strip_suffix('}').unwrap()),
                ),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name `{name}`"
            );
            page.samples.push((name, labels, value));
        }
        page
    }

    /// The value of the one sample named `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0]
    }

    /// Checks the buckets of the histogram `name` with `labels`: `le`
    /// ascending, counts never falling, `+Inf` equal to `_count`; returns
    /// `(le, cumulative count)` pairs.
    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some("histogram"),
            "{name}"
        );
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                *n == bucket
                    && l.len() == labels.len() + 1
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, l, v)| {
                let le = match l["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    le => le.parse().unwrap(),
                };
                (le, *v)
            })
            .collect();
        assert!(buckets.len() > 2, "{name} {labels:?} has no buckets");
        assert!(
            buckets.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: le not ascending"
        );
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: counts fall"
        );
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (inf, total) = *buckets.last().unwrap();
        assert!(inf.is_infinite());
        assert_eq!(total, self.get(&format!("{name}_count"), labels), "{name}");
        self.get(&format!("{name}_sum"), labels);
        buckets
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "in `{text}`");
        let mut value = String::new();
        loop {
            match chars.next().unwrap() {
                '"' => break,
                '\\' => match chars.next().unwrap() {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.insert(name, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// Waits until the log at `path` holds `lines` lines (the writer flushes
/// when it runs dry), then parses each as JSON.
async fn log_lines(path: &Path, lines: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines || tokio::time::Instant::now() > deadline {
            assert!(
                text.ends_with('\n') || text.is_empty(),
                "a torn line: {text}"
            );
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_over_http_and_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, engine, channel) = server(TelemetryConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        decision_log: Some(DecisionLogConfig {
            target: Target::File(dir.path().join("decisions.jsonl")),
            sample: 1.0,
            denies: false,
        }),
    })
    .await;
    let start = engine.load().revision();
    traffic(&channel).await;
    let addr = handle.metrics_addr.unwrap();

    let (status, headers, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(headers["content-length"], body.len().to_string());
    let page = Page::parse(&body);

    // Every family is typed, and counters end in `_total`.
    for (name, kind) in &page.types {
        assert!(name.starts_with("rampart_"), "{name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }
    assert_eq!(
        page.get(
            "rampart_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // Decisions: Checks and BatchCheck items; the invalid Check is none.
    let checks =
        |d: &str, r: &str| page.get("rampart_checks_total", &[("decision", d), ("reason", r)]);
    assert_eq!(checks("ALLOW", "GRANTED"), 3.0);
    assert_eq!(checks("DENY", "DENIED_BY_GRANT"), 1.0);
    assert_eq!(checks("DENY", "UNKNOWN_SUBJECT"), 1.0);
    assert_eq!(checks("DENY", "SUBJECT_INACTIVE"), 1.0);
    assert_eq!(checks("DENY", "UNKNOWN_PERMISSION"), 1.0);
    assert_eq!(checks("DENY", "NO_MATCHING_GRANT"), 0.0);
    assert_eq!(checks("ALLOW", "NO_MATCHING_GRANT"), 0.0);

    // Batch sizes: one batch of three.
    let batch = page.histogram("rampart_batch_size", &[]);
    assert_eq!(page.get("rampart_batch_size_count", &[]), 1.0);
    assert_eq!(page.get("rampart_batch_size_sum", &[]), 3.0);
    assert!(
        batch.contains(&(2.0, 0.0)) && batch.contains(&(5.0, 1.0)),
        "{batch:?}"
    );

    // RPC latency by method and code.
    let rpc = |method: &str, code: &str| {
        let labels = [
            ("service", "rampart.v1.Authorization"),
            ("method", method),
            ("code", code),
        ];
        page.histogram("rampart_rpc_duration_seconds", &labels);
        page.get("rampart_rpc_duration_seconds_count", &labels)
    };
    assert_eq!(rpc("Check", "OK"), 4.0);
    assert_eq!(rpc("Check", "INVALID_ARGUMENT"), 1.0);
    assert_eq!(rpc("BatchCheck", "OK"), 1.0);
    let add_user: f64 = page
        .samples
        .iter()
        .filter(|(n, l, _)| n == "rampart_rpc_duration_seconds_count" && l["method"] == "AddUser")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(add_user, 2.0);

    // Mutations, the revision, compiles.
    let mutations = |kind: &str, outcome: &str| {
        page.get(
            "rampart_mutations_total",
            &[("kind", kind), ("outcome", outcome)],
        )
    };
    assert_eq!(mutations("add_user", "applied"), 1.0);
    assert_eq!(mutations("add_user", "refused"), 1.0);
    assert_eq!(mutations("add_user", "failed"), 0.0);
    assert_eq!(mutations("grant", "applied"), 0.0);
    assert_eq!(
        page.get("rampart_snapshot_revision", &[]),
        (start + 1) as f64
    );
    page.histogram("rampart_compile_duration_seconds", &[]);
    // The first compile, and the recompile of the applied AddUser.
    assert_eq!(page.get("rampart_compile_duration_seconds_count", &[]), 2.0);
    assert_eq!(page.get("rampart_watch_streams", &[]), 0.0);
    assert_eq!(page.get("rampart_decision_log_dropped_total", &[]), 0.0);
    // A leader has no replica lag.
    assert!(!page.types.contains_key("rampart_replica_lag_seconds"));

    // Other paths and methods.
    let (status, _, _) = get(addr, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // The decision log holds every decision, in order.
    let lines = log_lines(&dir.path().join("decisions.jsonl"), 7).await;
    assert_eq!(lines.len(), 7);
    let field = |i: usize, k: &str| lines[i][k].as_str().unwrap_or_default().to_owned();
    let decisions: Vec<(String, String, String)> = (0..7)
        .map(|i| (field(i, "method"), field(i, "decision"), field(i, "reason")))
        .collect();
    let want = [
        ("Check", "ALLOW", "GRANTED"),
        ("Check", "ALLOW", "GRANTED"),
        ("Check", "DENY", "DENIED_BY_GRANT"),
        ("Check", "DENY", "UNKNOWN_SUBJECT"),
        ("BatchCheck", "ALLOW", "GRANTED"),
        ("BatchCheck", "DENY", "SUBJECT_INACTIVE"),
        ("BatchCheck", "DENY", "UNKNOWN_PERMISSION"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(m, d, r)| ((*m).into(), (*d).into(), (*r).into()))
        .collect();
    assert_eq!(decisions, want);
    assert_eq!(field(1, "request_id"), "req-42");
    assert_ne!(field(0, "request_id"), field(2, "request_id"));
    assert!(!field(0, "request_id").is_empty());
    // A batch's items share the request id and carry their correlation id.
    assert_eq!(field(4, "request_id"), field(6, "request_id"));
    assert_eq!(field(5, "correlation_id"), "b2");
    assert_eq!(field(3, "subject"), "zed");
    assert_eq!(field(2, "permission"), "documents:edit:locked");
    for line in &lines {
        assert_eq!(line["tenant"], "acme");
        assert_eq!(line["revision"].as_u64(), Some(start));
        let time = line["time"].as_str().unwrap();
        // RFC 3339, UTC, milliseconds: 2026-11-22T17:03:35.123Z
        assert_eq!(time.len(), 24, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T' && time.as_bytes()[19] == b'.');
    }
    handle.shutdown(Duration::from_secs(5)).await;
    // The listener is gone with the server.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_nothing_but_denies_logs_exactly_the_denies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denies.jsonl");
    let (handle, _engine, channel) = server(TelemetryConfig {
        metrics_listen: None,
        decision_log: Some(DecisionLogConfig {
            target: Target::File(path.clone()),
            sample: 0.0,
            denies: true,
        }),
    })
    .await;
    assert_eq!(handle.metrics_addr, None);
    traffic(&channel).await;
    let lines = log_lines(&path, 4).await;
    // Give a stray allow the time to show up, then look again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = log_lines(&path, 4).await;
    assert_eq!(lines, again);
    let reasons: Vec<&str> = lines
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "DENIED_BY_GRANT",
            "UNKNOWN_SUBJECT",
            "SUBJECT_INACTIVE",
            "UNKNOWN_PERMISSION"
        ]
    );
    assert!(lines.iter().all(|l| l["decision"] == "DENY"));
    handle.shutdown(Duration::from_secs(5)).await;
}

/// A node with metrics on `127.0.0.1:0`, over a sled store in `dir`.
async fn node(dir: &Path, role: Role) -> (ServerHandle, Arc<Engine>) {
    node_with(dir, role, None).await
}

/// [`node`], with writes refused below `free_space`'s watermark.
async fn node_with(
    dir: &Path,
    role: Role,
    free_space: Option<Arc<FreeSpace>>,
) -> (ServerHandle, Arc<Engine>) {
    let sled = SledStore::open(dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(match &free_space {
        Some(space) => sled.with_free_space(Arc::clone(space)),
        None => sled,
    });
    let engine = Arc::new(Engine::open(store).unwrap());
    if matches!(role, Role::Leader) {
        let state = policy_file::load_str(POLICY).unwrap();
        engine
            .bootstrap(policy_file::to_mutations(&state), "bootstrap")
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start_with(
        listener,
        Arc::clone(&engine),
        ServerOptions {
            data_plane: DataPlaneConfig::default(),
            replication: ReplicationConfig {
                role,
                heartbeat: Duration::from_millis(100),
                ..ReplicationConfig::default()
            },
            security: Security::default(),
            telemetry: TelemetryConfig {
                metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
                decision_log: None,
            },
            free_space,
            http: None,
            ext_authz: None,
        },
    )
    .await
    .unwrap();
    (handle, engine)
}

async fn scrape(handle: &ServerHandle) -> Page {
    let (status, _, body) = get(handle.metrics_addr.unwrap(), "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    Page::parse(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_below_the_watermark_refuses_writes_unavailable_and_shows_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let free = Arc::new(std::sync::atomic::AtomicU64::new(1 << 30));
    let seen = Arc::clone(&free);
    let space = Arc::new(FreeSpace::with_probe(
        64 << 20,
        Box::new(move || Ok(seen.load(std::sync::atomic::Ordering::Relaxed))),
    ));
    let (handle, engine) = node_with(dir.path(), Role::Leader, Some(space)).await;
    let page = scrape(&handle).await;
    assert_eq!(page.get("rampart_store_writable", &[]), 1.0);
    assert_eq!(
        page.get("rampart_store_free_bytes", &[]),
        (1u64 << 30) as f64
    );

    let channel = Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = AdminClient::new(channel.clone());
    let add = |user: &str| AddUserRequest {
        tenant: "acme".into(),
        user: user.into(),
        ..Default::default()
    };
    free.store(12 << 20, std::sync::atomic::Ordering::Relaxed);
    let refused = admin.add_user(add("erin")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains(
            "the data dir's filesystem has 12 MiB free, below the 64 MiB watermark (--min-free-space)"
        ),
        "{}",
        refused.message()
    );
    let page = scrape(&handle).await;
    assert_eq!(page.get("rampart_store_writable", &[]), 0.0);
    assert_eq!(
        page.get("rampart_store_free_bytes", &[]),
        (12u64 << 20) as f64
    );
    // Checks go on.
    let mut authz = AuthorizationClient::new(channel);
    let answer = authz
        .check(check("alice", "documents:view"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.decision(),
        rampart::proto::Decision::Allow,
        "{answer:?}"
    );

    free.store(1 << 30, std::sync::atomic::Ordering::Relaxed);
    let before = engine.load().revision();
    admin.add_user(add("erin")).await.unwrap();
    assert_eq!(engine.load().revision(), before + 1);
    assert_eq!(
        scrape(&handle).await.get("rampart_store_writable", &[]),
        1.0
    );
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reports_its_lag_and_the_leader_its_watch_stream() {
    let (leader_dir, replica_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, leader_engine) = node(leader_dir.path(), Role::Leader).await;
    let (replica, replica_engine) = node(
        replica_dir.path(),
        Role::Replica {
            leader: format!("http://{}", leader.addr),
            status: Arc::new(ReplicaStatus::default()),
            max_lag: Duration::from_secs(5),
        },
    )
    .await;
    let bootstrapped = leader_engine.load().revision();
    assert!(
        replica_engine
            .at_least(bootstrapped, Duration::from_secs(30))
            .await
            .is_ok()
    );
    // A change after the bootstrap reaches the replica through its Watch.
    leader_engine
        .submit(
            Actor::Operator,
            "test",
            Mutation::AddUser {
                tenant: TenantId::new("acme").unwrap(),
                user: UserId::new("erin").unwrap(),
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
    let head = bootstrapped + 1;
    assert!(
        replica_engine
            .at_least(head, Duration::from_secs(30))
            .await
            .is_ok()
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = scrape(&replica).await;
        let settled = page.get("rampart_replica_lag_revisions", &[]) == 0.0
            && page.get("rampart_replica_lag_seconds", &[]) == 0.0;
        if settled || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(page.types["rampart_replica_lag_revisions"], "gauge");
    assert_eq!(page.get("rampart_replica_lag_revisions", &[]), 0.0);
    assert_eq!(page.get("rampart_replica_lag_seconds", &[]), 0.0);
    assert_eq!(page.get("rampart_replica_reconnects_total", &[]), 0.0);
    assert_eq!(page.get("rampart_replica_rebootstraps_total", &[]), 0.0);
    assert_eq!(page.get("rampart_snapshot_revision", &[]), head as f64);
    // Replicated changes are not submissions.
    assert_eq!(
        page.get(
            "rampart_mutations_total",
            &[("kind", "add_user"), ("outcome", "applied")]
        ),
        0.0
    );

    let page = scrape(&leader).await;
    assert_eq!(page.get("rampart_watch_streams", &[]), 1.0);
    assert_eq!(page.get("rampart_snapshot_revision", &[]), head as f64);
    assert_eq!(
        page.get(
            "rampart_mutations_total",
            &[("kind", "add_user"), ("outcome", "applied")]
        ),
        1.0
    );
    let watch = [
        ("service", "rampart.v1.Replication"),
        ("method", "Watch"),
        ("code", "OK"),
    ];
    page.histogram("rampart_rpc_duration_seconds", &watch);
    assert!(page.get("rampart_rpc_duration_seconds_count", &watch) >= 1.0);
    assert!(!page.types.contains_key("rampart_replica_lag_seconds"));

    replica.shutdown(Duration::from_secs(2)).await;
    leader.shutdown(Duration::from_secs(2)).await;
}

/// One Check on `channel`: its decision, or its error code.
async fn check_code(channel: &Channel, permission: &str) -> Result<i32, tonic::Code> {
    AuthorizationClient::new(channel.clone())
        .check(CheckRequest {
            tenant: "acme".into(),
            subject: "alice".into(),
            permission: permission.into(),
            ..CheckRequest::default()
        })
        .await
        .map(|r| r.into_inner().decision)
        .map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_keeps_failing_is_paused_and_the_others_are_not() {
    let config = DataPlaneConfig {
        limits: Limits {
            max_failed_calls_per_sec: 25,
            ..Limits::default()
        },
        ..DataPlaneConfig::default()
    };
    let (handle, _engine, good) = server_with(
        config,
        TelemetryConfig {
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            decision_log: None,
        },
    )
    .await;
    // Its own connection: a Channel connects once.
    let bad = Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let flood = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut codes = Vec::new();
        for _ in 0..100 {
            codes.push(check_code(&bad, "bad::path").await);
        }
        (started.elapsed(), codes)
    });
    // Meanwhile the other connection gets every answer, unpaused.
    for _ in 0..50 {
        assert_eq!(check_code(&good, "documents:view").await, Ok(1));
    }
    let good_finished_first = !flood.is_finished();
    let (elapsed, codes) = flood.await.unwrap();
    // Paused, not refused or cut: every call got its own answer.
    assert!(
        codes
            .iter()
            .all(|c| *c == Err(tonic::Code::InvalidArgument)),
        "{codes:?}"
    );
    // A burst of 25, then 75 more at 25 a second: at least 3 s, long
    // enough for the good connection's 50 checks even on a slow machine.
    assert!(
        elapsed >= Duration::from_millis(2_700),
        "100 failing calls went through in {elapsed:?}: not paused"
    );
    assert!(
        good_finished_first,
        "the good connection waited for the flooding one"
    );
    let page = scrape(&handle).await;
    assert_eq!(page.get("rampart_connections_throttled_total", &[]), 1.0);
    assert_eq!(page.types["rampart_connections_throttled_total"], "counter");
    // The good connection made no failing call: still unpaused.
    assert_eq!(check_code(&good, "documents:view").await, Ok(1));
}

/// Idle sockets cannot pile up on the metrics listener: past
/// `MAX_CONNECTIONS` open at once a new one is closed as accepted; once the
/// idle ones go, scrapes are answered again.
#[tokio::test]
async fn the_metrics_listener_caps_its_open_connections() {
    use rampart::telemetry::http::MAX_CONNECTIONS;
    let (handle, _engine, _channel) = server(TelemetryConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        decision_log: None,
    })
    .await;
    let addr = handle.metrics_addr.unwrap();
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Let the listener accept them all before the next one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = over
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut answer))
        .await
        .expect("the connection past the cap was neither closed nor answered");
    assert!(
        read.is_err() || answer.is_empty(),
        "answered past the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle);
    let started = std::time::Instant::now();
    loop {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut page = String::new();
        let _ = s.read_to_string(&mut page).await;
        if page.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "scrapes were not answered after the idle connections closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
