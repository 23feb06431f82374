//! Authentication and transport security over real gRPC: the scope matrix
//! (each credential × each service and method class, with the exact codes),
//! acting as the operator on Admin, the audit log's credential, TLS and mTLS
//! handshakes with certificates made here (rcgen), a replica following a
//! TLS leader with a token, and the non-loopback refusal of the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rampart::cli::serve::security::Security;
use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::client::{ClientSecurity, ClientTls, hash_hex, parse_hash};
use rampart::engine::Engine;
use rampart::model::policy_file;
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::replication_client::ReplicationClient;
use rampart::proto::{self, CheckRequest, CreateRoleRequest, ListRolesRequest};
use rampart::replication::{ReplicaStatus, ReplicationConfig, Role};
use rampart::server::DataPlaneConfig;
use rampart::server::auth::{Credentials, Scope, Scopes};
use rampart::server::tls::ServerTls;
use rampart::store::SledStore;

use common::tls::Ca;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
tenants:
  - id: t0
    roles:
      - { name: readers, grants: ["docs:read"] }
    users: [{ id: root }, { id: alice }]
    bindings:
      - { subject: root, role: Administrators }
      - { subject: alice, role: readers }
"#;

/// The tokens of the matrix, by scope.
const TOKENS: [(&str, &str, Scope); 4] = [
    ("orders-svc", "tok-check", Scope::Check),
    ("delegated-admin", "tok-admin", Scope::Admin),
    ("replica", "tok-watch", Scope::Watch),
    ("ops-console", "tok-operator", Scope::Operator),
];

fn credentials() -> Credentials {
    let mut c = Credentials::default();
    for (name, token, scope) in TOKENS {
        c.add_token(
            name,
            parse_hash(&hash_hex(token)).unwrap(),
            Scopes::from_iter([scope]),
            "test",
        )
        .unwrap();
    }
    c.add_client_cert("replica-1", Scopes::from_iter([Scope::Watch]));
    c
}

async fn serve(dir: &Path, security: Security, role: Role) -> (Arc<Engine>, ServerHandle) {
    let engine = Arc::new(Engine::open(Arc::new(SledStore::open(dir).unwrap())).unwrap());
    if engine.load().revision() == 0 && matches!(role, Role::Leader) {
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
                heartbeat: Duration::from_millis(200),
                ..ReplicationConfig::default()
            },
            security,
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    (engine, handle)
}

/// How a call presents itself.
#[derive(Debug, Clone, Copy)]
enum Cred {
    Nothing,
    Malformed,
    Wrong,
    Token(&'static str),
}

fn request<T>(message: T, cred: Cred) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    let value = match cred {
        Cred::Nothing => return r,
        Cred::Malformed => "Basic dXNlcjpwYXNz".to_owned(),
        Cred::Wrong => "Bearer tok-not-configured".to_owned(),
        Cred::Token(t) => format!("Bearer {t}"),
    };
    r.metadata_mut()
        .insert("authorization", value.parse().unwrap());
    r
}

/// The method classes of the matrix.
#[derive(Debug, Clone, Copy)]
enum Call {
    Check,
    AdminRead,
    AdminAsUser,
    AdminAsOperator,
    GetState,
    Watch,
    Import,
    Health,
}

/// The code `call` ends with (the status of the first response for streams).
async fn code(channel: &Channel, call: Call, cred: Cred) -> Code {
    let authz = AuthorizationClient::new(channel.clone());
    let admin = AdminClient::new(channel.clone());
    let replication = ReplicationClient::new(channel.clone());
    let code_of = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let create = |actor: &str| CreateRoleRequest {
        actor: actor.into(),
        dry_run: true,
        tenant: "t0".into(),
        role: "auditors".into(),
        description: String::new(),
    };
    match call {
        Call::Check => code_of(
            authz
                .clone()
                .check(request(
                    CheckRequest {
                        tenant: "t0".into(),
                        subject: "alice".into(),
                        permission: "docs:read".into(),
                        ..CheckRequest::default()
                    },
                    cred,
                ))
                .await
                .map(drop),
        ),
        Call::AdminRead => code_of(
            admin
                .clone()
                .list_roles(request(
                    ListRolesRequest {
                        tenant: "t0".into(),
                        ..Default::default()
                    },
                    cred,
                ))
                .await
                .map(drop),
        ),
        Call::AdminAsUser => code_of(
            admin
                .clone()
                .create_role(request(create("root"), cred))
                .await
                .map(drop),
        ),
        Call::AdminAsOperator => code_of(
            admin
                .clone()
                .create_role(request(create(""), cred))
                .await
                .map(drop),
        ),
        Call::GetState => code_of(
            replication
                .clone()
                .get_state(request(proto::GetStateRequest { digest: false }, cred))
                .await
                .map(drop),
        ),
        Call::Watch => code_of(
            replication
                .clone()
                .watch(request(proto::WatchRequest::default(), cred))
                .await
                .map(drop),
        ),
        Call::Import => {
            let chunks = tokio_stream::iter(vec![proto::ExportChunk::default()]);
            code_of(
                replication
                    .clone()
                    .import(request(chunks, cred))
                    .await
                    .map(drop),
            )
        }
        Call::Health => {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            code_of(
                health
                    .check(request(
                        tonic_health::pb::HealthCheckRequest::default(),
                        cred,
                    ))
                    .await
                    .map(drop),
            )
        }
    }
}

async fn plain_channel(handle: &ServerHandle) -> Channel {
    Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_scope_against_each_service() {
    use Code::{FailedPrecondition as Fp, Ok, PermissionDenied as D, Unauthenticated as U};
    let dir = tempfile::tempdir().unwrap();
    let security = Security {
        credentials: Some(Arc::new(credentials())),
        ..Security::default()
    };
    let (_engine, handle) = serve(dir.path(), security, Role::Leader).await;
    let channel = plain_channel(&handle).await;
    let creds = [
        Cred::Nothing,
        Cred::Malformed,
        Cred::Wrong,
        Cred::Token("tok-check"),
        Cred::Token("tok-admin"),
        Cred::Token("tok-watch"),
        Cred::Token("tok-operator"),
    ];
    // Columns: nothing, malformed, wrong, check, admin, watch, operator.
    // Import past authentication is refused because the node holds a state.
    let matrix: [(Call, [Code; 7]); 8] = [
        (Call::Check, [U, U, U, Ok, D, D, Ok]),
        (Call::AdminRead, [U, U, U, D, Ok, D, Ok]),
        (Call::AdminAsUser, [U, U, U, D, Ok, D, Ok]),
        (Call::AdminAsOperator, [U, U, U, D, D, D, Ok]),
        (Call::GetState, [U, U, U, D, D, Ok, Ok]),
        (Call::Watch, [U, U, U, D, D, Ok, Ok]),
        (Call::Import, [U, U, U, D, D, D, Fp]),
        (Call::Health, [Ok, Ok, Ok, Ok, Ok, Ok, Ok]),
    ];
    let mut wrong = Vec::new();
    for (call, codes) in matrix {
        for (cred, want) in creds.iter().zip(codes) {
            let got = code(&channel, call, *cred).await;
            if got != want {
                wrong.push(format!(
                    "{call:?} with {cred:?}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn refusals_say_why_and_never_echo_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let security = Security {
        credentials: Some(Arc::new(credentials())),
        ..Security::default()
    };
    let (_engine, handle) = serve(dir.path(), security, Role::Leader).await;
    let mut admin = AdminClient::new(plain_channel(&handle).await);
    let list = || ListRolesRequest {
        tenant: "t0".into(),
        ..Default::default()
    };
    let e = admin
        .list_roles(request(list(), Cred::Token("tok-check")))
        .await
        .unwrap_err();
    assert!(
        e.message().contains("`orders-svc` lacks the `admin` scope"),
        "{}",
        e.message()
    );
    let e = admin
        .list_roles(request(list(), Cred::Wrong))
        .await
        .unwrap_err();
    assert!(
        !e.message().contains("tok-not-configured"),
        "{}",
        e.message()
    );
    let e = admin
        .create_role(request(
            CreateRoleRequest {
                tenant: "t0".into(),
                role: "x".into(),
                ..CreateRoleRequest::default()
            },
            Cred::Token("tok-admin"),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("`operator` scope"), "{}", e.message());
    handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_audit_log_records_the_token_name() {
    let dir = tempfile::tempdir().unwrap();
    let security = Security {
        credentials: Some(Arc::new(credentials())),
        ..Security::default()
    };
    let (_engine, handle) = serve(dir.path(), security, Role::Leader).await;
    let mut admin = AdminClient::new(plain_channel(&handle).await);
    for (actor, role, token) in [
        ("", "auditors", "tok-operator"),
        ("root", "editors", "tok-admin"),
        // Refused by the administration rules (alice is no admin): audited too.
        ("alice", "nope", "tok-admin"),
    ] {
        let _ = admin
            .create_role(request(
                CreateRoleRequest {
                    actor: actor.into(),
                    tenant: "t0".into(),
                    role: role.into(),
                    ..CreateRoleRequest::default()
                },
                Cred::Token(token),
            ))
            .await;
    }
    let log = admin
        .list_audit_log(request(
            proto::ListAuditLogRequest::default(),
            Cred::Token("tok-admin"),
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let last: Vec<(&str, &str, &str)> = log
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|e| (e.actor.as_str(), e.credential.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        last,
        [
            ("", "ops-console", "applied"),
            ("root", "delegated-admin", "applied"),
            ("alice", "delegated-admin", "refused"),
        ]
    );
    handle.shutdown(Duration::from_secs(2)).await;
}

async fn tls_channel(
    handle: &ServerHandle,
    ca: &[u8],
    identity: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{}", handle.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

fn tls_security(ca: &Ca) -> Security {
    let (cert, key) = ca.leaf("rampart-server");
    Security {
        tls: Some(ServerTls {
            cert,
            key,
            client_ca: Some(ca.pem()),
        }),
        credentials: Some(Arc::new(credentials())),
        ..Security::default()
    }
}

#[tokio::test]
async fn tls_serves_token_clients_and_refuses_plaintext() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let (_engine, handle) = serve(dir.path(), tls_security(&ca), Role::Leader).await;
    let channel = tls_channel(&handle, &ca.pem(), None).await.unwrap();
    assert_eq!(
        code(&channel, Call::Check, Cred::Token("tok-check")).await,
        Code::Ok
    );
    assert_eq!(
        code(&channel, Call::Check, Cred::Nothing).await,
        Code::Unauthenticated
    );
    assert_eq!(code(&channel, Call::Health, Cred::Nothing).await, Code::Ok);
    // A plaintext client never gets an answer.
    let plain = Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(plain) = plain {
        let got = code(&plain, Call::Check, Cred::Token("tok-check")).await;
        assert_ne!(got, Code::Ok);
    }
    // A client that does not trust the server's CA fails the handshake.
    let other = Ca::new("other CA");
    assert!(tls_channel(&handle, &other.pem(), None).await.is_err());
    handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn mtls_maps_a_certificate_to_its_scopes_and_refuses_other_cas() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let (_engine, handle) = serve(dir.path(), tls_security(&ca), Role::Leader).await;
    let replica = ca.leaf("replica-1");
    let channel = tls_channel(&handle, &ca.pem(), Some(&replica))
        .await
        .unwrap();
    // `replica-1` maps to `watch`, and nothing else.
    assert_eq!(
        code(&channel, Call::GetState, Cred::Nothing).await,
        Code::Ok
    );
    assert_eq!(code(&channel, Call::Watch, Cred::Nothing).await, Code::Ok);
    assert_eq!(
        code(&channel, Call::Check, Cred::Nothing).await,
        Code::PermissionDenied
    );
    // A token on the same connection takes precedence over the certificate.
    assert_eq!(
        code(&channel, Call::Check, Cred::Token("tok-check")).await,
        Code::Ok
    );
    // A certificate from the CA that no entry maps: authenticated as nobody.
    let stranger = ca.leaf("stranger");
    let channel = tls_channel(&handle, &ca.pem(), Some(&stranger))
        .await
        .unwrap();
    assert_eq!(
        code(&channel, Call::GetState, Cred::Nothing).await,
        Code::Unauthenticated
    );
    // A certificate from another CA: the handshake fails, or the first call.
    let other = Ca::new("other CA");
    let forged = other.leaf("replica-1");
    if let Ok(channel) = tls_channel(&handle, &ca.pem(), Some(&forged)).await {
        let got = code(&channel, Call::GetState, Cred::Nothing).await;
        assert!(
            got == Code::Unavailable || got == Code::Unknown,
            "a certificate from another CA got {got:?}"
        );
    }
    handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn mtls_maps_a_spiffe_id_in_a_uri_san_to_its_scopes() {
    const CHECKOUT: &str = "spiffe://cluster.local/ns/shop/sa/checkout";
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let mut security = tls_security(&ca);
    let mut credentials = credentials();
    credentials
        .add_client_cert_uri(CHECKOUT, Scopes::from_iter([Scope::Check]), "test")
        .unwrap();
    security.credentials = Some(Arc::new(credentials));
    let (_engine, handle) = serve(dir.path(), security, Role::Leader).await;
    // Only the SPIFFE ID, no subject CN: it maps to `check`, and nothing else.
    let checkout = ca.client(None, &[CHECKOUT]);
    let channel = tls_channel(&handle, &ca.pem(), Some(&checkout))
        .await
        .unwrap();
    assert_eq!(code(&channel, Call::Check, Cred::Nothing).await, Code::Ok);
    for call in [Call::AdminRead, Call::AdminAsUser, Call::GetState] {
        assert_eq!(
            code(&channel, call, Cred::Nothing).await,
            Code::PermissionDenied,
            "{call:?}"
        );
    }
    // The refusal names the principal `uri:<SPIFFE ID>`.
    let refused = AdminClient::new(channel.clone())
        .list_roles(ListRolesRequest {
            tenant: "t0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains(&format!("`uri:{CHECKOUT}`")),
        "{}",
        refused.message()
    );
    // The CN `replica-1` (watch) and the SPIFFE ID (check): the URI SAN wins.
    let both = ca.client(Some("replica-1"), &[CHECKOUT]);
    let channel = tls_channel(&handle, &ca.pem(), Some(&both)).await.unwrap();
    assert_eq!(code(&channel, Call::Check, Cred::Nothing).await, Code::Ok);
    assert_eq!(
        code(&channel, Call::GetState, Cred::Nothing).await,
        Code::PermissionDenied
    );
    // Another SPIFFE ID from the same CA is not mapped.
    let cart = ca.client(None, &["spiffe://cluster.local/ns/shop/sa/cart"]);
    let channel = tls_channel(&handle, &ca.pem(), Some(&cart)).await.unwrap();
    assert_eq!(
        code(&channel, Call::Check, Cred::Nothing).await,
        Code::Unauthenticated
    );
    handle.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_replica_follows_a_tls_leader_with_a_token() {
    let ca = Ca::new("test CA");
    let leader_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let (leader, leader_handle) = serve(leader_dir.path(), tls_security(&ca), Role::Leader).await;
    let follow = ClientSecurity {
        tls: Some(ClientTls {
            ca: Some(ca.pem()),
            identity: None,
        }),
        token: Some("tok-watch".parse().unwrap()),
    };
    let (replica, replica_handle) = serve(
        replica_dir.path(),
        Security {
            follow,
            ..Security::default()
        },
        Role::Replica {
            leader: format!("https://{}", leader_handle.addr),
            status: Arc::new(ReplicaStatus::default()),
            max_lag: Duration::from_secs(5),
        },
    )
    .await;
    // Changes made after the replica bootstrapped reach it through Watch.
    let mut admin = AdminClient::new(tls_channel(&leader_handle, &ca.pem(), None).await.unwrap());
    for role in ["a", "b", "c"] {
        admin
            .create_role(request(
                CreateRoleRequest {
                    tenant: "t0".into(),
                    role: role.into(),
                    ..CreateRoleRequest::default()
                },
                Cred::Token("tok-operator"),
            ))
            .await
            .unwrap();
    }
    let head = leader.load().revision();
    assert!(
        replica
            .at_least(head, Duration::from_secs(30))
            .await
            .is_ok(),
        "the replica is at {} (leader {head})",
        replica.load().revision()
    );
    assert_eq!(
        replica.load().state().tenants.len(),
        leader.load().state().tenants.len()
    );
    replica_handle.shutdown(Duration::from_secs(2)).await;
    leader_handle.shutdown(Duration::from_secs(2)).await;
}

#[test]
fn serve_refuses_a_non_loopback_address_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .env_remove("RAMPART_TOKENS")
        .env_remove("RAMPART_TOKENS_FILE")
        .env_remove("RAMPART_INSECURE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0.0:0") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!data.exists(), "the store was touched before the refusal");
}

#[test]
fn a_bad_tokens_file_stops_serve_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        "[[token]]\nname = \"x\"\nsha256 = \"rampart_the-raw-token\"\nscopes = [\"check\"]\n",
    )
    .unwrap();
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tokens-file"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
    assert!(!stderr.contains("the-raw-token"), "{stderr}");
}

#[test]
fn token_new_prints_confined_entries_the_server_accepts_and_refuses_bad_ones() {
    let run = |args: &[&str]| {
        Command::new(common::BIN)
            .args(["token", "new", "--name", "console"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "--scope",
        "admin,check",
        "--tenant",
        "acme,beta",
        "--actor",
        "ann",
    ]);
    assert!(ok.status.success(), "{ok:?}");
    let text = String::from_utf8(ok.stdout).unwrap();
    let entry: String = text
        .lines()
        .skip_while(|l| !l.starts_with("[[token]]"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(entry.contains("tenants = [\"acme\", \"beta\"]"), "{entry}");
    assert!(entry.contains("actor = \"ann\""), "{entry}");
    Credentials::parse(&entry, "printed").unwrap();
    for bad in [
        &["--scope", "operator", "--tenant", "acme"][..],
        &["--scope", "check", "--actor", "ann"][..],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(out.stdout.is_empty(), "printed a token for {bad:?}");
    }
    // A sidecar's follow token, confined to its tenants.
    let watch = run(&["--scope", "watch", "--tenant", "acme"]);
    assert!(watch.status.success(), "{watch:?}");
    let text = String::from_utf8(watch.stdout).unwrap();
    let entry: String = text
        .lines()
        .skip_while(|l| !l.starts_with("[[token]]"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        entry.contains("scopes = [\"watch\"]") && entry.contains("tenants = [\"acme\"]"),
        "{entry}"
    );
    Credentials::parse(&entry, "printed").unwrap();
}

#[test]
fn token_new_hash_and_ctl_against_the_real_binary() {
    let new = Command::new(common::BIN)
        .args(["token", "new", "--name", "cli", "--scope", "check,admin"])
        .output()
        .unwrap();
    assert!(new.status.success());
    let text = String::from_utf8(new.stdout).unwrap();
    let token = text
        .lines()
        .find(|l| l.starts_with("rampart_"))
        .unwrap()
        .to_owned();
    let entry: String = text
        .lines()
        .skip_while(|l| !l.starts_with("[[token]]"))
        .map(|l| format!("{l}\n"))
        .collect();
    // `token hash` agrees with the entry.
    let mut hash = Command::new(common::BIN)
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        hash.stdin.as_mut().unwrap(),
        format!("{token}\n").as_bytes(),
    )
    .unwrap();
    let hashed = hash.wait_with_output().unwrap();
    let hashed = String::from_utf8(hashed.stdout).unwrap();
    assert!(
        entry.contains(&format!("sha256 = \"{}\"", hashed.trim())),
        "{entry}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, &entry).unwrap();
    let port = common::free_port();
    let server = common::Server::start_with(
        &dir.path().join("data"),
        port,
        &["--tokens-file", file.to_str().unwrap()],
    );
    let ctl = |token: Option<&str>| {
        let mut c = Command::new(common::BIN);
        c.args([
            "ctl",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "check",
            "--tenant",
            "acme",
            "--subject",
            "alice",
            "--permission",
            "documents:view",
        ])
        .env_remove("RAMPART_TOKEN");
        if let Some(t) = token {
            c.env("RAMPART_TOKEN", t);
        }
        c.output().unwrap()
    };
    let without = ctl(None);
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("UNAUTHENTICATED"));
    let with = ctl(Some(&token));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("allow"));

    // Rotation: a new token replaces the old one in the file, and SIGHUP
    // reloads it at once (no restart).
    let rotated = "rampart_rotated-token-for-the-reload-test";
    let rotated_entry = format!(
        "[[token]]\nname = \"cli-2\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n",
        hash_hex(rotated)
    );
    std::fs::write(&file, &rotated_entry).unwrap();
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &server.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ctl(Some(rotated)).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the tokens file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let revoked = ctl(Some(&token));
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("UNAUTHENTICATED"));
    // A broken file and SIGHUP: the server keeps the credentials it has,
    // and keeps running.
    std::fs::write(&file, "[[token]]\nname = 'broken'\nsha256 = 'nope'\n").unwrap();
    hup();
    std::thread::sleep(Duration::from_millis(500));
    assert!(ctl(Some(rotated)).status.success());
    assert!(server.terminate().success());
}

/// One HTTP/1.1 POST of `body` to `path` over TLS (with `identity` as the
/// client certificate, and `token` as a bearer token); the status and body.
async fn https_post(
    addr: std::net::SocketAddr,
    ca: &[u8],
    identity: Option<&(Vec<u8>, Vec<u8>)>,
    token: Option<&str>,
    path: &str,
    body: &str,
) -> (u16, String) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert)
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn the_http_listener_takes_the_grpc_ports_tls_certificates_and_tokens() {
    const CHECKOUT: &str = "spiffe://cluster.local/ns/shop/sa/checkout";
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let mut security = tls_security(&ca);
    let mut credentials = credentials();
    credentials
        .add_client_cert_uri(CHECKOUT, Scopes::from_iter([Scope::Check]), "test")
        .unwrap();
    security.credentials = Some(Arc::new(credentials));
    let engine = Arc::new(Engine::open(Arc::new(SledStore::open(dir.path()).unwrap())).unwrap());
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
            security,
            http: Some(rampart::cli::serve::HttpOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                authzen: None,
                public_url: None,
            }),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let http = handle.http_addr.unwrap();
    let check = r#"{"tenant":"t0","subject":"alice","permission":"docs:read"}"#;
    // A client certificate mapped to `check`: allowed, and the decision.
    let checkout = ca.client(None, &[CHECKOUT]);
    let (status, body) =
        https_post(http, &ca.pem(), Some(&checkout), None, "/v1/check", check).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""decision":"ALLOW""#), "{body}");
    // A certificate mapped to `watch` only: 403 naming the scope.
    let replica = ca.client(Some("replica-1"), &[]);
    let (status, body) =
        https_post(http, &ca.pem(), Some(&replica), None, "/v1/check", check).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("`check` scope"), "{body}");
    // No certificate: a token, or 401.
    let (status, body) = https_post(http, &ca.pem(), None, None, "/v1/check", check).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) =
        https_post(http, &ca.pem(), None, Some("tok-check"), "/v1/check", check).await;
    assert_eq!(status, 200, "{body}");
    // Plaintext HTTP to the TLS listener gets no HTTP answer.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        tcp.write_all(b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw)).await;
        assert!(
            !raw.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    handle.shutdown(Duration::from_secs(2)).await;
}
