//! Tenant isolation over real gRPC (issue #11, findings 8 and 9): the
//! cross-tenant profile write, audit entries under every tenant a change
//! is seen by, and credentials confined to tenants and bound to an actor.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;

use rampart::cli::serve::security::Security;
use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::client::hash_hex;
use rampart::engine::Engine;
use rampart::model::policy_file;
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::{
    self, AddUserRequest, BatchCheckItem, BatchCheckRequest, CheckRequest, ListAuditLogRequest,
    ListTenantsRequest, ListUsersRequest, TenantSettings, UpdateTenantRequest,
    UpdateUserInfoRequest, batch_check_result::Outcome,
};
use rampart::server::auth::Credentials;
use rampart::store::SledStore;
use tonic::Code;
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
tenants:
  - id: acme
    users: [{ id: ann }]
    bindings: [{ subject: ann, role: Administrators }]
  - id: beta
    users: [{ id: boss, email: boss@beta.test }]
    bindings: [{ subject: boss, role: Administrators }]
"#;

/// `ops`: every tenant, any actor. `acme-admin`: admin, confined to acme
/// and bound to ann. `acme-checks`: check, confined to acme.
fn credentials() -> Credentials {
    let text = format!(
        r#"
[[token]]
name = "ops"
sha256 = "{}"
scopes = ["operator"]

[[token]]
name = "acme-admin"
sha256 = "{}"
scopes = ["admin", "check"]
tenants = ["acme"]
actor = "ann"

[[token]]
name = "acme-checks"
sha256 = "{}"
scopes = ["check"]
tenants = ["acme"]
"#,
        hash_hex("tok-ops"),
        hash_hex("tok-acme-admin"),
        hash_hex("tok-acme-checks"),
    );
    Credentials::parse(&text, "test").unwrap()
}

async fn serve(dir: &std::path::Path) -> ServerHandle {
    let engine = Arc::new(Engine::open(Arc::new(SledStore::open(dir).unwrap())).unwrap());
    let state = policy_file::load_str(POLICY).unwrap();
    engine
        .bootstrap(policy_file::to_mutations(&state), "bootstrap")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(
        listener,
        engine,
        ServerOptions {
            security: Security {
                credentials: Some(Arc::new(credentials())),
                ..Security::default()
            },
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap()
}

async fn channel(handle: &ServerHandle) -> Channel {
    Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn with<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn add_boss_to_acme(actor: &str) -> AddUserRequest {
    AddUserRequest {
        actor: actor.into(),
        tenant: "acme".into(),
        user: "boss".into(),
        ..Default::default()
    }
}

fn boss_email(actor: &str, email: &str) -> UpdateUserInfoRequest {
    UpdateUserInfoRequest {
        actor: actor.into(),
        user: "boss".into(),
        email: Some(email.into()),
        ..Default::default()
    }
}

async fn users(admin: &mut AdminClient<Channel>, tenant: &str) -> Vec<proto::UserInfo> {
    let r = ListUsersRequest {
        tenant: tenant.into(),
        ..Default::default()
    };
    admin
        .list_users(with(r, "tok-ops"))
        .await
        .unwrap()
        .into_inner()
        .users
}

async fn audit(
    admin: &mut AdminClient<Channel>,
    tenant: &str,
    token: &str,
) -> Vec<proto::AuditEntry> {
    let r = ListAuditLogRequest {
        tenant: tenant.into(),
        page_size: 1000,
        ..Default::default()
    };
    admin
        .list_audit_log(with(r, token))
        .await
        .unwrap()
        .into_inner()
        .entries
}

/// Finding 8: an Administrator of acme added boss (an Administrator of
/// beta) to acme, then changed boss's email, which beta sees; the change
/// was audited with an empty tenant, so beta's log never showed it.
#[tokio::test]
async fn a_tenant_admin_cannot_change_what_another_tenant_sees_without_its_consent() {
    let dir = tempfile::tempdir().unwrap();
    let handle = serve(dir.path()).await;
    let mut admin = AdminClient::new(channel(&handle).await);

    // Without beta's consent: refused, and beta's log shows the attempt.
    let e = admin
        .add_user(with(add_boss_to_acme("ann"), "tok-ops"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("does not share its users"), "{e:?}");
    assert!(
        !e.message().contains("beta"),
        "names the other tenant: {e:?}"
    );
    let seen = audit(&mut admin, "beta", "tok-ops").await;
    let attempt = seen
        .iter()
        .find(|a| a.change.contains("add_user") && a.tenant == "acme")
        .unwrap();
    assert_eq!(attempt.outcome, "refused");
    assert_eq!(attempt.tenant, "acme");
    assert_eq!(attempt.also_tenants, ["beta"]);

    // beta's Administrator shares beta's users.
    let consent = UpdateTenantRequest {
        actor: "boss".into(),
        tenant: "beta".into(),
        settings: Some(TenantSettings {
            shared_users: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    admin.update_tenant(with(consent, "tok-ops")).await.unwrap();

    // Now the seeds' rule holds as written: ann adds boss and edits his email.
    let added = admin
        .add_user(with(add_boss_to_acme("ann"), "tok-ops"))
        .await
        .unwrap()
        .into_inner();
    // The change is recorded with the profile it brings, so a replica that
    // holds acme alone applies the same.
    assert!(added.change.contains("boss@beta.test"), "{}", added.change);
    let acme_boss = users(&mut admin, "acme").await;
    let acme_boss = acme_boss.iter().find(|u| u.user == "boss").unwrap();
    assert_eq!(
        acme_boss.email, "boss@beta.test",
        "one profile in every tenant"
    );
    admin
        .update_user_info(with(boss_email("ann", "boss@acme.test"), "tok-ops"))
        .await
        .unwrap();
    for tenant in ["acme", "beta"] {
        let list = users(&mut admin, tenant).await;
        let boss = list.iter().find(|u| u.user == "boss").unwrap();
        assert_eq!(boss.email, "boss@acme.test", "in {tenant}");
    }
    // Both changes are in beta's log, not only acme's.
    let seen = audit(&mut admin, "beta", "tok-ops").await;
    let info = seen
        .iter()
        .find(|a| a.change.contains("update_user_info"))
        .unwrap();
    assert_eq!(info.outcome, "applied");
    assert_eq!(info.also_tenants, ["acme", "beta"]);
    assert!(
        seen.iter()
            .any(|a| a.change.contains("add_user") && a.tenant == "acme" && a.outcome == "applied")
    );
    let acme = audit(&mut admin, "acme", "tok-ops").await;
    assert!(acme.iter().any(|a| a.change.contains("update_user_info")));
}

/// Finding 9: a credential confined to acme and bound to ann.
#[tokio::test]
async fn a_confined_credential_stays_in_its_tenants_and_acts_as_its_actor() {
    let dir = tempfile::tempdir().unwrap();
    let handle = serve(dir.path()).await;
    let ch = channel(&handle).await;
    let mut admin = AdminClient::new(ch.clone());
    let mut authz = AuthorizationClient::new(ch);

    // Checks: only in acme.
    let check = |tenant: &str| CheckRequest {
        tenant: tenant.into(),
        subject: "ann".into(),
        permission: "docs:x".into(),
        ..Default::default()
    };
    authz
        .check(with(check("acme"), "tok-acme-checks"))
        .await
        .unwrap();
    let e = authz
        .check(with(check("beta"), "tok-acme-checks"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("confined to tenant(s) `acme`"),
        "{e:?}"
    );
    let batch = BatchCheckRequest {
        items: ["acme", "beta"]
            .iter()
            .map(|t| BatchCheckItem {
                tenant: (*t).into(),
                subject: "ann".into(),
                permission: "docs:x".into(),
                correlation_id: (*t).into(),
            })
            .collect(),
        ..Default::default()
    };
    let results = authz
        .batch_check(with(batch, "tok-acme-checks"))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(matches!(results[0].outcome, Some(Outcome::Response(_))));
    match &results[1].outcome {
        Some(Outcome::Error(e)) => assert_eq!(e.code, Code::PermissionDenied as i32),
        other => panic!("beta's item answered {other:?}"),
    }

    // Admin reads: its tenants only.
    let tenants = admin
        .list_tenants(with(ListTenantsRequest::default(), "tok-acme-admin"))
        .await
        .unwrap()
        .into_inner()
        .tenants;
    let ids: Vec<&str> = tenants.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(ids, ["acme"]);
    let r = ListUsersRequest {
        tenant: "beta".into(),
        ..Default::default()
    };
    let e = admin
        .list_users(with(r, "tok-acme-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // The bound actor: an empty actor acts as ann; another is refused.
    let add = |actor: &str, user: &str| AddUserRequest {
        actor: actor.into(),
        tenant: "acme".into(),
        user: user.into(),
        ..Default::default()
    };
    admin
        .add_user(with(add("", "carl"), "tok-acme-admin"))
        .await
        .unwrap();
    let e = admin
        .add_user(with(add("boss", "dora"), "tok-acme-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("acts as `ann` only"), "{e:?}");
    // Reads too: as ann (who sees every row), never as another user.
    let read = |actor: &str| ListUsersRequest {
        tenant: "acme".into(),
        actor: actor.into(),
        ..Default::default()
    };
    let seen = admin
        .list_users(with(read(""), "tok-acme-admin"))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(seen.len(), 2, "ann and carl: {seen:?}");
    let e = admin
        .list_users(with(read("carl"), "tok-acme-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("acts as `ann` only"), "{e:?}");
    let mine = audit(&mut admin, "", "tok-acme-admin").await;
    let carl = mine.iter().find(|a| a.change.contains("carl")).unwrap();
    assert_eq!(
        (carl.actor.as_str(), carl.credential.as_str()),
        ("ann", "acme-admin")
    );
    // beta's own records (its bootstrap) are not acme's to read.
    assert!(mine.iter().all(|a| a.tenant != "beta"), "{mine:?}");

    // Even with beta's consent, a change beta sees is outside the credential.
    let consent = UpdateTenantRequest {
        actor: "boss".into(),
        tenant: "beta".into(),
        settings: Some(TenantSettings {
            shared_users: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    admin.update_tenant(with(consent, "tok-ops")).await.unwrap();
    let e = admin
        .add_user(with(add_boss_to_acme(""), "tok-acme-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("confined to tenant(s) `acme`"),
        "{e:?}"
    );
    // A dry run too.
    let dry = AddUserRequest {
        dry_run: true,
        ..add_boss_to_acme("")
    };
    let e = admin
        .add_user(with(dry, "tok-acme-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Its own log shows the attempt, but not which other tenant boss is in,
    // nor his profile there.
    let mine = audit(&mut admin, "", "tok-acme-admin").await;
    let attempt = mine
        .iter()
        .find(|a| a.change.contains("\"boss\"") && a.outcome == "refused")
        .unwrap();
    assert!(attempt.also_tenants.is_empty(), "{attempt:?}");
    assert!(!attempt.change.contains("boss@beta.test"), "{attempt:?}");
    // The same change through an unconfined credential goes through.
    admin
        .add_user(with(add_boss_to_acme("ann"), "tok-ops"))
        .await
        .unwrap();
    let e = admin
        .update_user_info(with(boss_email("", "b@acme.test"), "tok-acme-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("seen by another tenant"), "{e:?}");
    let beta = users(&mut admin, "beta").await;
    assert_eq!(
        beta.iter().find(|u| u.user == "boss").unwrap().email,
        "boss@beta.test"
    );
}

#[test]
fn confinement_is_checked_when_the_credentials_load() {
    let entry = |extra: &str, scopes: &str| {
        format!(
            "[[token]]\nname = \"t\"\nsha256 = \"{}\"\nscopes = [{scopes}]\n{extra}\n",
            hash_hex("x")
        )
    };
    let refused = [
        (entry("tenants = []", "\"check\""), "`tenants` is empty"),
        (
            entry("tenants = [\"acme\"]", "\"operator\""),
            "an `operator` credential changes the whole deployment",
        ),
        (
            entry("tenants = [\"acme\"]", "\"watch\", \"operator\""),
            "an `operator` credential changes the whole deployment",
        ),
        (
            entry("tenants = [\"no spaces\"]", "\"check\""),
            "not a valid tenant id",
        ),
        (
            entry("actor = \"ann\"", "\"check\""),
            "`actor` binds Admin calls",
        ),
        (
            entry("actor = \"ann\"", "\"operator\""),
            "`actor` binds Admin calls",
        ),
        (entry("actor = \"a b\"", "\"admin\""), "not a valid user id"),
    ];
    for (text, why) in refused {
        let e = Credentials::parse(&text, "tokens.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{text}: {e}");
        assert!(
            !e.contains("no spaces") && !e.contains("a b"),
            "echoes a value: {e}"
        );
    }
    let ok = entry(
        "tenants = [\"acme\", \"beta\"]\nactor = \"ann\"",
        "\"admin\", \"check\"",
    );
    Credentials::parse(&ok, "tokens.toml").unwrap();
    // A sidecar's follow token: Watch, Export and GetState of its tenants.
    let sidecar = entry("tenants = [\"acme\"]", "\"watch\"");
    assert_eq!(
        Credentials::parse(&sidecar, "tokens.toml")
            .unwrap()
            .counts(),
        (1, 0)
    );
}
