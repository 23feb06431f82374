//! A `watch` credential confined to tenants (the tokens file's `tenants`),
//! over real gRPC against a leader on sled: Watch, Export and GetState give
//! it its tenants and nothing of another.
//!
//! - naming a tenant outside the credential is PERMISSION_DENIED naming it;
//! - naming none, the credential's tenants are the filter: another tenant's
//!   change never arrives, a change of no tenant (the Bridges grants) and a
//!   profile change of a user it holds do, a profile change of another
//!   tenant's user does not;
//! - replayed from the changelog, a profile change arrives only if its user
//!   was in the tenant at that revision; a stream that would start before
//!   the deletion of one of its tenants is OUT_OF_RANGE;
//! - Export sends its tenants only; GetState's digest is that export's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::Duration;

use rampart::cli::serve::security::Security;
use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::client::hash_hex;
use rampart::engine::Engine;
use rampart::model::rules::Actor;
use rampart::model::{Grant, GrantPattern, Mutation, TenantId, UserId, UserStatus, policy_file};
use rampart::proto::replication_client::ReplicationClient;
use rampart::proto::{self, watch_event::Event};
use rampart::replication::{ReplicationConfig, TENANTS_HEADER};
use rampart::server::auth::Credentials;
use rampart::store::SledStore;
use tonic::Code;
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
tenants:
  - id: acme
    users: [{ id: root }, { id: ann }, { id: both }]
    bindings: [{ subject: root, role: Administrators }]
  - id: globex
    users: [{ id: root }, { id: gus }, { id: both }, { id: ann }]
    bindings: [{ subject: root, role: Administrators }]
  - id: initech
    users: [{ id: root }]
    bindings: [{ subject: root, role: Administrators }]
"#;

/// `replica`: watch, every tenant. `sidecar`: watch, acme only. `pair`:
/// watch, acme and initech.
fn credentials() -> Credentials {
    let text = format!(
        r#"
[[token]]
name = "replica"
sha256 = "{}"
scopes = ["watch"]

[[token]]
name = "sidecar"
sha256 = "{}"
scopes = ["watch"]
tenants = ["acme"]

[[token]]
name = "pair"
sha256 = "{}"
scopes = ["watch"]
tenants = ["initech", "acme"]
"#,
        hash_hex("tok-replica"),
        hash_hex("tok-sidecar"),
        hash_hex("tok-pair"),
    );
    Credentials::parse(&text, "test").unwrap()
}

struct Leader {
    engine: Arc<Engine>,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Leader {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Arc::new(Engine::open(Arc::new(SledStore::open(dir.path()).unwrap())).unwrap());
        let state = policy_file::load_str(POLICY).unwrap();
        engine
            .bootstrap(policy_file::to_mutations(&state), "bootstrap")
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = start_with(
            listener,
            Arc::clone(&engine),
            ServerOptions {
                replication: ReplicationConfig {
                    heartbeat: Duration::from_secs(60),
                    ..ReplicationConfig::default()
                },
                security: Security {
                    credentials: Some(Arc::new(credentials())),
                    ..Security::default()
                },
                ..ServerOptions::default()
            },
        )
        .await
        .unwrap();
        Leader {
            engine,
            handle,
            _dir: dir,
        }
    }

    async fn client(&self) -> ReplicationClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.handle.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        ReplicationClient::new(channel)
    }

    async fn submit(&self, mutation: Mutation) -> u64 {
        self.engine
            .submit(Actor::Operator, "test", mutation, false)
            .await
            .unwrap()
            .revision
    }

    fn head(&self) -> u64 {
        self.engine.load().revision()
    }
}

fn with<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn u(id: &str) -> UserId {
    UserId::new(id).unwrap()
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

fn remove_user(tenant: &str, user: &str) -> Mutation {
    Mutation::RemoveUser {
        tenant: t(tenant),
        user: u(user),
    }
}

fn info(user: &str, email: &str) -> Mutation {
    Mutation::UpdateUserInfo {
        user: u(user),
        email: Some(email.into()),
        display_name: None,
        aliases: None,
        attributes: None,
    }
}

fn watch_request(from: u64, tenants: &[&str]) -> proto::WatchRequest {
    proto::WatchRequest {
        from_revision: from,
        tenants: tenants.iter().map(ToString::to_string).collect(),
        history: String::new(),
    }
}

/// A Watch stream and the `rampart-tenants` header it came with.
async fn watch(
    leader: &Leader,
    token: &str,
    from: u64,
    tenants: &[&str],
) -> Result<(tonic::Streaming<proto::WatchEvent>, Option<String>), tonic::Status> {
    let response = leader
        .client()
        .await
        .watch(with(watch_request(from, tenants), token))
        .await?;
    let header = response
        .metadata()
        .get(TENANTS_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((response.into_inner(), header))
}

/// The next change the stream sends (checkpoints skipped), within 10 s.
async fn next_change(stream: &mut tonic::Streaming<proto::WatchEvent>) -> proto::Change {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("no change within 10 s")
            .unwrap()
            .expect("the stream ended");
        if let Some(Event::Change(c)) = event.event {
            return c;
        }
    }
}

/// The changes of a stream up to and including revision `last`, as
/// `revision kind tenant` (the tenant `-` for a change of none), and the
/// e-mail a profile change sets.
async fn changes_through(
    stream: &mut tonic::Streaming<proto::WatchEvent>,
    last: u64,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let c = next_change(stream).await;
        let mutation: serde_json::Value = serde_json::from_slice(&c.mutation).unwrap();
        let tenant = if c.tenant.is_empty() { "-" } else { &c.tenant };
        let mut row = format!("{} {} {tenant}", c.revision, c.kind);
        if c.kind == "update_user_info" {
            row.push_str(&format!(" {}", mutation["email"].as_str().unwrap()));
        }
        seen.push(row);
        assert!(c.revision <= last, "past {last}: {seen:?}");
        if c.revision == last {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_a_tenant_outside_the_credential_is_permission_denied_naming_it() {
    let leader = Leader::start().await;
    let mut client = leader.client().await;
    let refused = |e: tonic::Status, outside: &str, of: &str| {
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert_eq!(
            e.message(),
            format!("credential `{of}` is confined to tenant(s) {outside}")
        );
    };
    for tenants in [&["globex"][..], &["acme", "globex"][..]] {
        let e = watch(&leader, "tok-sidecar", 0, tenants).await.unwrap_err();
        refused(e, "`acme`: not `globex`", "sidecar");
        let e = client
            .export(with(
                proto::ExportRequest {
                    tenants: tenants.iter().map(ToString::to_string).collect(),
                },
                "tok-sidecar",
            ))
            .await
            .unwrap_err();
        refused(e, "`acme`: not `globex`", "sidecar");
    }
    let e = watch(&leader, "tok-pair", 0, &["globex", "initech", "umbrella"])
        .await
        .unwrap_err();
    refused(e, "`acme`, `initech`: not `globex`, `umbrella`", "pair");
    // A malformed tenant is still INVALID_ARGUMENT naming it.
    let e = watch(&leader, "tok-sidecar", 0, &["bad/id"])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("`bad/id`"), "{e:?}");
    // Its own tenant is fine, and so is any tenant for an unconfined token.
    let (_, header) = watch(&leader, "tok-sidecar", leader.head(), &["acme"])
        .await
        .unwrap();
    assert_eq!(header.as_deref(), Some("acme"));
    let (_, header) = watch(&leader, "tok-replica", leader.head(), &["globex"])
        .await
        .unwrap();
    assert_eq!(header.as_deref(), Some("globex"));
    let (_, header) = watch(&leader, "tok-replica", leader.head(), &[])
        .await
        .unwrap();
    assert_eq!(header, None, "an unfiltered stream");
    leader.handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_filter_a_confined_stream_carries_its_tenants_changes_only() {
    let leader = Leader::start().await;
    let from = leader.head();
    let (mut sidecar, header) = watch(&leader, "tok-sidecar", from, &[]).await.unwrap();
    assert_eq!(
        header.as_deref(),
        Some("acme"),
        "its tenants are the filter"
    );
    let (mut replica, _) = watch(&leader, "tok-replica", from, &[]).await.unwrap();

    // Another tenant's change, then one of acme: the next change the
    // sidecar hears is acme's.
    let globex = leader.submit(add_user("globex", "gil")).await;
    let acme = leader.submit(add_user("acme", "al")).await;
    let first = next_change(&mut sidecar).await;
    assert_eq!((first.revision, first.tenant.as_str()), (acme, "acme"));
    assert_eq!(first.kind, "add_user");
    // The unconfined token hears both: the sidecar's stream left one out.
    assert_eq!(next_change(&mut replica).await.revision, globex);
    assert_eq!(next_change(&mut replica).await.revision, acme);

    // Profiles: a user only globex has, one both have, one of acme; the
    // Bridges grants concern every tenant; a deletion of globex does not
    // concern acme.
    let gus = leader.submit(info("gus", "gus@globex.test")).await;
    let both = leader.submit(info("both", "both@shared.test")).await;
    let ann = leader.submit(info("ann", "ann@acme.test")).await;
    let bridges = leader
        .submit(Mutation::SetBridgesGrants {
            grants: vec![Grant::allow(GrantPattern::parse("docs:read").unwrap())],
        })
        .await;
    leader
        .submit(Mutation::DeleteTenant {
            tenant: t("globex"),
        })
        .await;
    let last = leader.submit(add_user("acme", "zed")).await;
    let seen = changes_through(&mut sidecar, last).await;
    assert_eq!(
        seen,
        [
            format!("{both} update_user_info - both@shared.test"),
            format!("{ann} update_user_info - ann@acme.test"),
            format!("{bridges} set_bridges_grants -"),
            format!("{last} add_user acme"),
        ]
    );
    assert!(gus < both);
    leader.handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_profile_change_arrives_only_if_its_user_was_in_the_tenant_then() {
    let leader = Leader::start().await;
    let from = leader.head();
    // gus is globex's only, then joins acme; ann leaves acme (and stays
    // in globex).
    let gus_before = leader.submit(info("gus", "gus@1.test")).await;
    let joined = leader.submit(add_user("acme", "gus")).await;
    let gus_after = leader.submit(info("gus", "gus@2.test")).await;
    let ann_before = leader.submit(info("ann", "ann@1.test")).await;
    let left = leader.submit(remove_user("acme", "ann")).await;
    let ann_after = leader.submit(info("ann", "ann@2.test")).await;
    let last = leader.submit(add_user("acme", "zed")).await;
    // The stream starts after all of it, from before it: the filter is
    // moved back from the snapshot to `from`, then forward again.
    let (mut sidecar, _) = watch(&leader, "tok-sidecar", from, &[]).await.unwrap();
    let seen = changes_through(&mut sidecar, last).await;
    assert_eq!(
        seen,
        [
            format!("{joined} add_user acme"),
            format!("{gus_after} update_user_info - gus@2.test"),
            format!("{ann_before} update_user_info - ann@1.test"),
            format!("{left} remove_user acme"),
            format!("{last} add_user acme"),
        ]
    );
    assert!(gus_before < joined && ann_after < last);
    // Live from here on: a user who left hears nothing, one who joined does.
    let ann_later = leader.submit(info("ann", "ann@3.test")).await;
    let gus_later = leader.submit(info("gus", "gus@3.test")).await;
    let next = next_change(&mut sidecar).await;
    assert_eq!(next.revision, gus_later);
    assert!(ann_later < gus_later);
    leader.handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cannot_start_before_the_deletion_of_one_of_its_tenants() {
    let leader = Leader::start().await;
    let before = leader.head();
    let deleted = leader
        .submit(Mutation::DeleteTenant {
            tenant: t("initech"),
        })
        .await;
    let last = leader.submit(add_user("acme", "al")).await;
    let e = watch(&leader, "tok-pair", before, &[]).await.unwrap();
    let mut stream = e.0;
    let e = stream.message().await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "tenant `initech` was deleted at revision {deleted}, after revision {before}: a stream filtered to it cannot start before that: bootstrap again with Export"
        )
    );
    // From the deletion on, or without that tenant, it streams.
    let (mut stream, _) = watch(&leader, "tok-pair", deleted, &[]).await.unwrap();
    assert_eq!(next_change(&mut stream).await.revision, last);
    let (mut stream, _) = watch(&leader, "tok-pair", before, &["acme"]).await.unwrap();
    assert_eq!(next_change(&mut stream).await.revision, last);
    leader.handle.shutdown(Duration::from_secs(2)).await;
}

/// Every chunk of an Export: the file, the digest of its last chunk and
/// the `rampart-tenants` header.
async fn export(
    leader: &Leader,
    token: &str,
    tenants: &[&str],
) -> (String, String, Option<String>) {
    let response = leader
        .client()
        .await
        .export(with(
            proto::ExportRequest {
                tenants: tenants.iter().map(ToString::to_string).collect(),
            },
            token,
        ))
        .await
        .unwrap();
    let header = response
        .metadata()
        .get(TENANTS_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    let mut stream = response.into_inner();
    let (mut file, mut digest) = (Vec::new(), String::new());
    while let Some(chunk) = stream.message().await.unwrap() {
        file.extend_from_slice(&chunk.data);
        digest = chunk.digest;
    }
    (String::from_utf8(file).unwrap(), digest, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_get_state_of_a_confined_credential_hold_its_tenants_only() {
    let leader = Leader::start().await;
    leader.submit(info("both", "both@shared.test")).await;
    let (file, digest, header) = export(&leader, "tok-sidecar", &[]).await;
    assert_eq!(header.as_deref(), Some("acme"));
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 2, "the header and acme: {file}");
    let head: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(head["scope"], serde_json::json!(["acme"]));
    assert!(lines[1].contains("acme") && !file.contains("globex") && !file.contains("gus"));
    // The same as naming acme, and as an unconfined token's export of acme.
    assert_eq!(export(&leader, "tok-sidecar", &["acme"]).await.1, digest);
    let (_, of_acme, _) = export(&leader, "tok-replica", &["acme"]).await;
    assert_eq!(of_acme, digest);
    let (whole, whole_digest, header) = export(&leader, "tok-replica", &[]).await;
    assert_eq!(header, None);
    assert!(whole.contains("globex"));

    // GetState: the digest of what Export sends the credential; the
    // tenants are a node's --tenants (none on a leader, as for anyone).
    let state = |token: &'static str| {
        let leader = &leader;
        async move {
            leader
                .client()
                .await
                .get_state(with(proto::GetStateRequest { digest: true }, token))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mine = state("tok-sidecar").await;
    assert_eq!(mine.digest, digest);
    assert_eq!(mine.revision, leader.head());
    assert!(mine.tenants.is_empty());
    let all = state("tok-replica").await;
    assert_eq!(all.digest, whole_digest);
    assert_ne!(all.digest, mine.digest);
    // The cache is per set of tenants: the confined answer again.
    assert_eq!(state("tok-sidecar").await.digest, digest);
    leader.handle.shutdown(Duration::from_secs(2)).await;
}
