//! The data plane over real gRPC: a server on 127.0.0.1:0 and a tonic client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::Duration;

use rampart::cli::serve::{ServerHandle, start};
use rampart::engine::Engine;
use rampart::model::policy_file;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::{
    self, BatchCheckItem, BatchCheckRequest, CheckRequest, Consistency, Decision,
    ListSubjectPermissionsRequest, ListSubjectsRequest, Reason, batch_check_result::Outcome,
    consistency::Requirement,
};
use rampart::server::DataPlaneConfig;
use tonic::Code;
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "documents:view" }
  - { permission: "documents:edit:?DOC?" }
  - { permission: "profile:edit:?USER?" }
  - { permission: "billing:view", stability: preview }
tenants:
  - id: acme
    roles:
      - name: editors
        grants: ["documents:view", "documents:edit:*", { deny: "documents:edit:locked" }]
      - name: Users
        grants: ["profile:edit:{subject}"]
    groups:
      - { name: engineering, members: ["group:platform"] }
      - { name: platform, members: [bob] }
    users:
      - { id: alice }
      - { id: bob }
      - { id: carol, status: inactive }
      - { id: dave }
    bindings:
      - { subject: alice, role: editors }
      - { subject: "group:engineering", role: editors }
      - { subject: dave, role: Administrators }
  - id: globex
    users: [{ id: alice }]
"#;

async fn server(config: DataPlaneConfig) -> (ServerHandle, AuthorizationClient<Channel>) {
    let state = policy_file::load_str(POLICY).unwrap();
    let engine = Arc::new(Engine::new(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(listener, engine, config).await.unwrap();
    let client = AuthorizationClient::connect(format!("http://{}", handle.addr))
        .await
        .unwrap();
    (handle, client)
}

async fn channel(h: &ServerHandle) -> Channel {
    Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn check(tenant: &str, subject: &str, permission: &str) -> CheckRequest {
    CheckRequest {
        tenant: tenant.into(),
        subject: subject.into(),
        permission: permission.into(),
        consistency: None,
        explain: false,
    }
}

#[tokio::test]
async fn decisions_carry_reasons_and_the_revision() {
    let (_h, mut c) = server(DataPlaneConfig::default()).await;
    let cases = [
        ("alice", "documents:view", Decision::Allow, Reason::Granted),
        (
            "alice",
            "documents:edit:readme",
            Decision::Allow,
            Reason::Granted,
        ),
        (
            "alice",
            "documents:edit:locked",
            Decision::Deny,
            Reason::DeniedByGrant,
        ),
        ("bob", "documents:edit:x", Decision::Allow, Reason::Granted),
        (
            "alice",
            "profile:edit:alice",
            Decision::Allow,
            Reason::Granted,
        ),
        (
            "alice",
            "profile:edit:bob",
            Decision::Deny,
            Reason::NoMatchingGrant,
        ),
        ("dave", "billing:view", Decision::Allow, Reason::Granted),
        (
            "dave",
            "documents:edit:locked",
            Decision::Allow,
            Reason::Granted,
        ),
        (
            "ghost",
            "documents:view",
            Decision::Deny,
            Reason::UnknownSubject,
        ),
        (
            "carol",
            "documents:view",
            Decision::Deny,
            Reason::SubjectInactive,
        ),
        (
            "alice",
            "documents:print",
            Decision::Deny,
            Reason::UnknownPermission,
        ),
        (
            "alice",
            "billing:view",
            Decision::Deny,
            Reason::NoMatchingGrant,
        ),
    ];
    for (subject, permission, decision, reason) in cases {
        let r = c
            .check(check("acme", subject, permission))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (r.decision(), r.reason()),
            (decision, reason),
            "{subject} {permission}"
        );
        assert_eq!(r.revision, 1);
        assert!(r.explanation.is_none());
    }
    // Tenants are isolated: alice is a member of globex but holds nothing there.
    let r = c
        .check(check("globex", "alice", "documents:view"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reason(), Reason::NoMatchingGrant);
}

#[tokio::test]
async fn explain_names_the_grant_role_and_group_chain() {
    let (_h, mut c) = server(DataPlaneConfig::default()).await;
    let mut req = check("acme", "bob", "documents:edit:readme");
    req.explain = true;
    let r = c.check(req).await.unwrap().into_inner();
    let e = r.explanation.unwrap();
    assert_eq!(e.catalog_entry, "documents:edit:?DOC?");
    assert_eq!(e.effective_roles, vec!["Users", "editors"]);
    assert_eq!(e.grants.len(), 1);
    let g = &e.grants[0];
    assert_eq!(
        (g.role.as_str(), g.effect.as_str(), g.pattern.as_str()),
        ("editors", "allow", "documents:edit:*")
    );
    assert_eq!(
        g.via,
        vec!["user:bob", "group:platform", "group:engineering"]
    );

    let mut req = check("acme", "alice", "documents:edit:locked");
    req.explain = true;
    let e = c
        .check(req)
        .await
        .unwrap()
        .into_inner()
        .explanation
        .unwrap();
    assert_eq!(e.grants.len(), 1);
    assert_eq!(
        (e.grants[0].effect.as_str(), e.grants[0].pattern.as_str()),
        ("deny", "documents:edit:locked")
    );

    let mut req = check("acme", "alice", "profile:edit:alice");
    req.explain = true;
    let e = c
        .check(req)
        .await
        .unwrap()
        .into_inner()
        .explanation
        .unwrap();
    assert_eq!(e.grants[0].role, "Users");
    assert_eq!(e.grants[0].via, vec!["user:alice", "default"]);
}

#[tokio::test]
async fn bad_input_gets_the_right_code_and_names_the_field() {
    let (_h, mut c) = server(DataPlaneConfig::default()).await;
    let cases = [
        (
            check("", "alice", "documents:view"),
            Code::InvalidArgument,
            "`tenant` must not be empty",
        ),
        (
            check("acme", "", "documents:view"),
            Code::InvalidArgument,
            "`subject` must not be empty",
        ),
        (
            check("acme", "alice", ""),
            Code::InvalidArgument,
            "`permission` must not be empty",
        ),
        // A subject may be an alias: up to 512 bytes.
        (
            check("acme", &"x".repeat(600), "documents:view"),
            Code::InvalidArgument,
            "`subject` is 600 bytes",
        ),
        (
            check("acme", "alice", &"a".repeat(600)),
            Code::InvalidArgument,
            "`permission` is 600 bytes",
        ),
        (
            check("acme", "alice", "documents::view"),
            Code::InvalidArgument,
            "empty segment",
        ),
        (
            check("acme", "alice", "documents:vi ew"),
            Code::InvalidArgument,
            "character ` `",
        ),
        (
            check("nope", "alice", "documents:view"),
            Code::NotFound,
            "unknown tenant `nope`",
        ),
    ];
    for (req, code, message) in cases {
        let e = c.check(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{}", e.message());
        assert!(
            e.message().contains(message),
            "`{}` lacks `{message}`",
            e.message()
        );
    }
}

/// A subject is a user id: `group:x`, non-ASCII or spaced text is
/// malformed (INVALID_ARGUMENT naming `subject`), not an unknown member.
#[tokio::test]
async fn malformed_subjects_are_invalid_not_unknown() {
    let (_h, mut c) = server(DataPlaneConfig::default()).await;
    for bad in ["group:editors", "jos\u{e9}", "a b", "x\u{1b}[2J"] {
        let e = c
            .check(check("acme", bad, "documents:view"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {}", e.message());
        assert!(e.message().contains("`subject`"), "{}", e.message());
        assert!(!e.message().contains('\u{1b}'), "{}", e.message());

        let r = c
            .batch_check(BatchCheckRequest {
                items: vec![
                    item("acme", bad, "documents:view", "bad"),
                    item("acme", "ghost", "documents:view", "ghost"),
                ],
                consistency: None,
                explain: false,
            })
            .await
            .unwrap()
            .into_inner();
        let outcome = |i: usize| r.results[i].outcome.clone().unwrap();
        assert!(
            matches!(outcome(0), Outcome::Error(ref e) if e.code == Code::InvalidArgument as i32 && e.message.contains("`subject`")),
            "{:?}",
            outcome(0)
        );
        assert!(
            matches!(outcome(1), Outcome::Response(ref x) if x.reason() == Reason::UnknownSubject)
        );

        let e = c
            .list_subject_permissions(ListSubjectPermissionsRequest {
                tenant: "acme".into(),
                subject: bad.into(),
                consistency: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {}", e.message());
        assert!(e.message().contains("`subject`"), "{}", e.message());
    }
    // A well-formed id that is no member is still a decision.
    let r = c
        .check(check("acme", "ghost@example.com", "documents:view"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reason(), Reason::UnknownSubject);
}

fn item(tenant: &str, subject: &str, permission: &str, id: &str) -> BatchCheckItem {
    BatchCheckItem {
        tenant: tenant.into(),
        subject: subject.into(),
        permission: permission.into(),
        correlation_id: id.into(),
    }
}

#[tokio::test]
async fn batch_keeps_order_and_one_bad_item_does_not_fail_it() {
    let (_h, mut c) = server(DataPlaneConfig::default()).await;
    let items = vec![
        item("acme", "alice", "documents:view", "a"),
        item("acme", "alice", "bad::path", "b"),
        item("nope", "alice", "documents:view", "c"),
        item("acme", "", "documents:view", "d"),
        item("acme", "alice", "documents:edit:locked", "e"),
    ];
    let r = c
        .batch_check(BatchCheckRequest {
            items,
            consistency: None,
            explain: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.revision, 1);
    let ids: Vec<&str> = r
        .results
        .iter()
        .map(|x| x.correlation_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    let outcome = |i: usize| r.results[i].outcome.clone().unwrap();
    assert!(matches!(outcome(0), Outcome::Response(ref x) if x.decision() == Decision::Allow));
    assert!(
        matches!(outcome(1), Outcome::Error(ref e) if e.code == Code::InvalidArgument as i32 && e.message.contains("empty segment"))
    );
    assert!(matches!(outcome(2), Outcome::Error(ref e) if e.code == Code::NotFound as i32));
    assert!(
        matches!(outcome(3), Outcome::Error(ref e) if e.code == Code::InvalidArgument as i32 && e.message.contains("`subject`"))
    );
    assert!(matches!(outcome(4), Outcome::Response(ref x) if x.reason() == Reason::DeniedByGrant));
}

#[tokio::test]
async fn batch_size_is_limited() {
    let (_h, mut c) = server(DataPlaneConfig {
        max_batch: 3,
        ..DataPlaneConfig::default()
    })
    .await;
    let items = vec![item("acme", "alice", "documents:view", ""); 4];
    let e = c
        .batch_check(BatchCheckRequest {
            items: items.clone(),
            consistency: None,
            explain: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.message(), "batch has 4 items, more than the limit of 3");
    let ok = c
        .batch_check(BatchCheckRequest {
            items: items[..3].to_vec(),
            consistency: None,
            explain: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.results.len(), 3);
    assert!(
        matches!(&ok.results[0].outcome, Some(Outcome::Response(x)) if x.explanation.is_some())
    );
}

#[tokio::test]
async fn strict_catalog_turns_unknown_permissions_into_errors() {
    let (_h, mut c) = server(DataPlaneConfig {
        strict_catalog: true,
        ..DataPlaneConfig::default()
    })
    .await;
    let e = c
        .check(check("acme", "alice", "documents:print"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("not covered by the catalog"),
        "{}",
        e.message()
    );
    // Covered permissions still answer.
    assert!(
        c.check(check("acme", "alice", "documents:view"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn at_least_revision_waits_then_answers_unavailable() {
    let (_h, mut c) = server(DataPlaneConfig {
        consistency_wait: Duration::from_millis(30),
        ..DataPlaneConfig::default()
    })
    .await;
    let mut req = check("acme", "alice", "documents:view");
    req.consistency = Some(Consistency {
        requirement: Some(Requirement::AtLeastRevision(1)),
    });
    assert_eq!(c.check(req.clone()).await.unwrap().into_inner().revision, 1);
    req.consistency = Some(Consistency {
        requirement: Some(Requirement::AtLeastRevision(2)),
    });
    let e = c.check(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message().contains("revision 1") && e.message().contains("revision 2"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn listings_for_uis_and_access_reviews() {
    let (_h, mut c) = server(DataPlaneConfig::default()).await;
    let r = c
        .list_subject_permissions(ListSubjectPermissionsRequest {
            tenant: "acme".into(),
            subject: "bob".into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.active && !r.administrator);
    assert_eq!(r.roles, vec!["Users", "editors"]);
    let patterns: Vec<(&str, &str)> = r
        .permissions
        .iter()
        .map(|p| (p.pattern.as_str(), p.effect.as_str()))
        .collect();
    assert_eq!(
        patterns,
        vec![
            ("documents:edit:*", "allow"),
            ("documents:edit:locked", "deny"),
            ("documents:view", "allow"),
            ("profile:edit:{subject}", "allow")
        ]
    );
    let e = c
        .list_subject_permissions(ListSubjectPermissionsRequest {
            tenant: "acme".into(),
            subject: "ghost".into(),
            consistency: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Who may edit documents? alice and bob (editors), dave (Administrators); not carol (inactive).
    let mut all = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = c
            .list_subjects(ListSubjectsRequest {
                tenant: "acme".into(),
                permission: "documents:edit:readme".into(),
                consistency: None,
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        all.extend(r.subjects);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(all, vec!["alice", "bob", "dave"]);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn health_serves_until_shutdown() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let (h, _c) = server(DataPlaneConfig::default()).await;
    let mut health = HealthClient::new(channel(&h).await);
    for service in ["", "rampart.v1.Authorization"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    // A watcher sees the transition to NOT_SERVING when shutdown begins.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "rampart.v1.Authorization".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let reporter = h.health.clone();
    let stopping = tokio::spawn(h.shutdown(Duration::from_secs(2)));
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    drop(watch);
    stopping.await.unwrap();
    drop(reporter);
}

#[tokio::test]
async fn reflection_lists_the_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (h, _c) = server(DataPlaneConfig::default()).await;
    let mut client = ServerReflectionClient::new(channel(&h).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"rampart.v1.Authorization".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    let _ = proto::FILE_DESCRIPTOR_SET.len();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_in_flight_limit_are_shed_not_queued() {
    use rampart::server::limits::Limits;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let (h, c) = server(DataPlaneConfig {
        consistency_wait: Duration::from_secs(2),
        limits: Limits {
            max_in_flight: 1,
            max_message_bytes: 2048,
            ..Limits::default()
        },
        ..DataPlaneConfig::default()
    })
    .await;
    // One call holds the only permit: it waits for a revision that never comes.
    let mut waiting = c.clone();
    let held = tokio::spawn(async move {
        let mut r = check("acme", "alice", "documents:view");
        r.consistency = Some(Consistency {
            requirement: Some(Requirement::AtLeastRevision(1_000)),
        });
        waiting.check(r).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut other = c.clone();
    let shed = other
        .check(check("acme", "alice", "documents:view"))
        .await
        .unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    assert!(
        shed.message().contains("--max-in-flight"),
        "{}",
        shed.message()
    );
    // Health is never limited.
    let health = HealthClient::new(channel(&h).await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    // The held call ends (UNAVAILABLE: its revision never came); the
    // permit is back.
    assert_eq!(held.await.unwrap().unwrap_err().code(), Code::Unavailable);
    other
        .check(check("acme", "alice", "documents:view"))
        .await
        .unwrap();
    // A message over the size limit is refused, naming the limit.
    let big = BatchCheckRequest {
        items: vec![item("acme", "alice", "documents:view", ""); 100],
        consistency: None,
        explain: false,
    };
    let too_big = other.batch_check(big).await.unwrap_err();
    assert_eq!(too_big.code(), Code::ResourceExhausted, "{too_big:?}");
    assert!(too_big.message().contains("2048"), "{}", too_big.message());
}

#[tokio::test]
async fn a_call_past_the_server_deadline_is_cut() {
    use rampart::server::limits::Limits;
    let (_h, mut c) = server(DataPlaneConfig {
        consistency_wait: Duration::from_secs(5),
        limits: Limits {
            call_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
        ..DataPlaneConfig::default()
    })
    .await;
    let mut r = check("acme", "alice", "documents:view");
    r.consistency = Some(Consistency {
        requirement: Some(Requirement::AtLeastRevision(1_000)),
    });
    let started = std::time::Instant::now();
    let cut = c.check(r).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut at the deadline, not after the 5 s wait"
    );
    assert_eq!(cut.code(), Code::DeadlineExceeded, "{cut:?}");
    assert!(
        cut.message().contains("--call-timeout-ms"),
        "{}",
        cut.message()
    );
}
