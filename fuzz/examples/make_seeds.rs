//! Writes the committed seed corpus, `fuzz/corpus/<target>/seed-*`, from
//! the repository's own files and code: the example policies, the deploy
//! tokens file, an export of the quickstart made by the export writer,
//! certificates made with rcgen, one encoded request of every gRPC
//! message. Run it again after changing a format:
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//!
//! It writes only its own `seed-*` files: a seed it does not make (an input
//! a run found, kept as a seed) is left alone, and libFuzzer's own corpus
//! growth is not committed (fuzz/.gitignore). The certificates get new keys
//! on every run.

use std::fs;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest as EnvoyCheck};
use prost::Message;
use rampart::model::{QUICKSTART_POLICY, policy_file};
use rampart::proto;
use rampart::replication::export::lines;
use rampart::store::image::binary::{encode_tenant, payload};
use rampart_fuzz::grpc_pick;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};

const TODO_POLICY: &str = include_str!("../../examples/authzen-todo/policy.yaml");
const TOKENS: &str = include_str!("../../deploy/base/tokens.toml");

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn policy_file_seeds() {
    let dir = corpus("policy_file");
    write(&dir, "quickstart.yaml", QUICKSTART_POLICY);
    write(&dir, "authzen-todo.yaml", TODO_POLICY);
    // Errors with locations: a bad grant, an unknown role, a bad time.
    write(
        &dir,
        "errors.yaml",
        "catalog: [{ permission: \"x:?A?\" }]\ntenants:\n  - id: t\n    roles: [{ name: r, grants: [\"x:*:y\", { deny: \"x:a\" }] }]\n    users: [{ id: u, aliases: [\"u-1\"] }]\n    groups: [{ name: g, members: [u, \"group:g\"] }]\n    bindings: [{ subject: u, role: nobody }, { subject: \"group:g\", role: r, expires: \"soon\" }]\n",
    );
}

fn permission_seeds() {
    let dir = corpus("permission");
    let seeds: [(&str, &str); 5] = [
        (
            "star",
            "documents:edit:*\ndocuments:edit:?DOC?\ndocuments:edit:roadmap\nalice",
        ),
        (
            "subject",
            "ACM:USER:UPDATE:INFO:{subject}\nACM:USER:*\nACM:USER:UPDATE:INFO:bob\nbob",
        ),
        (
            "email",
            "profile:edit:{subject}\nprofile:edit:?USER?\nprofile:edit:john+x@company.com\njohn+x@company.com",
        ),
        (
            "rest",
            "*\nSCRIPTING:EXECUTE:?PATH*?\nSCRIPTING:EXECUTE:my_scripts:a/b.py\nx",
        ),
        ("bad", "a::b\n?bad\na:*:b\n\u{e9}"),
    ];
    for (name, text) in seeds {
        write(&dir, name, text);
    }
}

fn tokens_file_seeds() {
    let dir = corpus("tokens_file");
    write(&dir, "deploy-base.toml", TOKENS);
    write(
        &dir,
        "client-certs.toml",
        "[[token]]\nname = \"ann-admin\"\nsha256 = \"60a1a48acbf668539b5acf86bc66c12ea9a4ca8a26fbb31735ed5086eb8aebab\"\nscopes = [\"admin\"]\ntenants = [\"acme\"]\nactor = \"ann\"\n\n[[client_cert]]\nsubject_cn = \"replica-1\"\nscopes = [\"watch\"]\n\n[[client_cert]]\nuri_san = \"spiffe://cluster.local/ns/shop/sa/checkout\"\nscopes = [\"check\"]\n",
    );
    // A token pasted where its hash belongs: the error must not show it.
    write(
        &dir,
        "pasted-token.toml",
        "[[token]]\nname = \"x\"\nsha256 = \"rmp_0123456789abcdefghijklmnopqrstuv\"\nscopes = \"rmp_0123456789abcdefghijklmnopqrstuv\"\n",
    );
}

fn cert(cn: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn cert_subject_seeds() {
    let dir = corpus("cert_subject");
    let uri = |u: &str| SanType::URI(u.try_into().unwrap());
    write(&dir, "cn.der", cert(Some("replica-1"), vec![]));
    write(
        &dir,
        "cn-and-spiffe.der",
        cert(
            Some("checkout"),
            vec![
                uri("spiffe://cluster.local/ns/shop/sa/checkout"),
                SanType::DnsName("checkout.shop".try_into().unwrap()),
            ],
        ),
    );
    write(
        &dir,
        "uris-only.der",
        cert(
            None,
            vec![uri("spiffe://a/b"), uri("https://example.test/x")],
        ),
    );
}

/// The example policies export and image seeds are made of.
const EXAMPLES: [(&str, &str); 2] = [
    ("quickstart", QUICKSTART_POLICY),
    ("authzen-todo", TODO_POLICY),
];

fn export_seeds() {
    let dir = corpus("export_import");
    for (name, text) in EXAMPLES {
        let state = policy_file::load_str(text).unwrap();
        let bytes: Vec<u8> = lines(&state)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .concat();
        // The first byte sets the chunk size (export_import.rs).
        for chunk in [6u8, 63] {
            let mut input = vec![chunk];
            input.extend_from_slice(&bytes);
            write(&dir, &format!("{name}-{}.jsonl", chunk + 1), input);
        }
    }
}

fn binary_image_seeds() {
    let dir = corpus("binary_image");
    for (name, text) in EXAMPLES {
        let state = policy_file::load_str(text).unwrap();
        for (id, tenant) in &state.tenants {
            let image = encode_tenant(tenant).unwrap();
            // The first byte chooses (binary_image.rs): odd, the image as
            // it is; even, its payload, framed by the target.
            let mut whole = vec![1u8];
            whole.extend_from_slice(&image);
            write(&dir, &format!("{name}-{id}.image"), whole);
            let mut framed = vec![0u8];
            framed.extend_from_slice(payload(&image).unwrap());
            write(&dir, &format!("{name}-{id}.payload"), framed);
        }
    }
}

fn grpc(dir: &Path, message: &str, name: &str, encoded: Vec<u8>) {
    let pick = grpc_pick(message).unwrap_or_else(|| panic!("no message {message}"));
    let mut input = vec![pick];
    input.extend(encoded);
    write(dir, &format!("{}-{name}", message.replace(' ', "-")), input);
}

fn grpc_requests_seeds() {
    let dir = corpus("grpc_requests");
    let dir = &dir;
    let s = |v: &str| v.to_owned();
    let grant = |effect: &str, pattern: &str| proto::GrantSpec {
        effect: s(effect),
        pattern: s(pattern),
    };
    let check = |tenant: &str, subject: &str, permission: &str| proto::CheckRequest {
        tenant: s(tenant),
        subject: s(subject),
        permission: s(permission),
        consistency: None,
        explain: true,
    };
    grpc(
        dir,
        "Check",
        "alice-edit",
        check("acme", "alice", "documents:edit:roadmap").encode_to_vec(),
    );
    grpc(
        dir,
        "Check",
        "bob-alias",
        check("acme", "00u1b0bokta", "reports:view").encode_to_vec(),
    );
    grpc(
        dir,
        "BatchCheck",
        "two",
        proto::BatchCheckRequest {
            items: vec![
                proto::BatchCheckItem {
                    correlation_id: s("1").into(),
                    tenant: s("acme").into(),
                    subject: s("dave").into(),
                    permission: s("ACM:ROLE:INSERT").into(),
                },
                proto::BatchCheckItem {
                    correlation_id: s("2").into(),
                    tenant: s("globex").into(),
                    subject: s("alice").into(),
                    permission: s("bad::path").into(),
                },
            ],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListSubjectPermissions",
        "bob",
        proto::ListSubjectPermissionsRequest {
            tenant: s("acme"),
            subject: s("bob"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListSubjects",
        "view",
        proto::ListSubjectsRequest {
            tenant: s("acme"),
            permission: s("documents:view"),
            page_size: 2,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "CreateTenant",
        "initech",
        proto::CreateTenantRequest {
            tenant: s("initech"),
            name: s("Initech"),
            settings: Some(proto::TenantSettings {
                single_role_per_user: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "UpdateTenant",
        "rename",
        proto::UpdateTenantRequest {
            tenant: s("acme"),
            name: Some(s("ACME")),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "DeleteTenant",
        "globex",
        proto::DeleteTenantRequest {
            tenant: s("globex"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListTenants",
        "page",
        proto::ListTenantsRequest {
            page_size: 1,
            page_token: String::new(),
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "DefineCatalogEntry",
        "files",
        proto::DefineCatalogEntryRequest {
            entry: Some(proto::CatalogEntry {
                permission: s("files:read:?PATH*?"),
                category: s("Files"),
                description: s("Read files"),
                stability: s("preview"),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "SetCatalogStability",
        "deprecated",
        proto::SetCatalogStabilityRequest {
            permission: s("reports:view"),
            stability: s("deprecated"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "RemoveCatalogEntry",
        "cascade",
        proto::RemoveCatalogEntryRequest {
            permission: s("documents:delete:?DOC?"),
            cascade: true,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListCatalog",
        "all",
        proto::ListCatalogRequest::default().encode_to_vec(),
    );
    grpc(
        dir,
        "SetBridgesGrants",
        "reports",
        proto::SetBridgesGrantsRequest {
            grants: vec![grant("allow", "reports:*")],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "CreateRole",
        "auditors",
        proto::CreateRoleRequest {
            actor: s("dave"),
            tenant: s("acme"),
            role: s("auditors"),
            description: s("Read reports"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "UpdateRoleDescription",
        "editors",
        proto::UpdateRoleDescriptionRequest {
            tenant: s("acme"),
            role: s("editors"),
            description: s("Write"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "DeleteRole",
        "viewers",
        proto::DeleteRoleRequest {
            tenant: s("acme"),
            role: s("viewers"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "GetRole",
        "editors",
        proto::GetRoleRequest {
            tenant: s("acme"),
            role: s("editors"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListRoles",
        "acme",
        proto::ListRolesRequest {
            tenant: s("acme"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "Grant",
        "deny",
        proto::GrantRequest {
            actor: s("alice"),
            tenant: s("acme"),
            role: s("editors"),
            grant: Some(grant("deny", "documents:edit:{subject}")),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "Revoke",
        "view",
        proto::RevokeRequest {
            tenant: s("acme"),
            role: s("viewers"),
            grant: Some(grant("", "documents:view")),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "SetGrants",
        "two",
        proto::SetGrantsRequest {
            tenant: s("acme"),
            role: s("Users"),
            grants: vec![grant("allow", "reports:view"), grant("deny", "documents:*")],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "CreateGroup",
        "ops",
        proto::CreateGroupRequest {
            tenant: s("acme"),
            group: s("ops"),
            description: s("Operations"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "DeleteGroup",
        "platform",
        proto::DeleteGroupRequest {
            tenant: s("acme"),
            group: s("platform"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "AddMember",
        "cycle",
        proto::AddMemberRequest {
            tenant: s("acme"),
            group: s("platform"),
            member: s("group:engineering"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "RemoveMember",
        "bob",
        proto::RemoveMemberRequest {
            tenant: s("acme"),
            group: s("platform"),
            member: s("bob"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListGroups",
        "acme",
        proto::ListGroupsRequest {
            tenant: s("acme"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "AddUser",
        "frank",
        proto::AddUserRequest {
            tenant: s("acme"),
            user: s("frank"),
            email: s("frank@acme.test"),
            display_name: s("Frank"),
            status: s("inactive"),
            aliases: vec![s("spiffe://acme.test/frank"), s("00u1b0bokta")],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "UpdateUserStatus",
        "carol",
        proto::UpdateUserStatusRequest {
            tenant: s("acme"),
            user: s("carol"),
            status: s("active"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "UpdateUserInfo",
        "aliases",
        proto::UpdateUserInfoRequest {
            actor: s("alice"),
            user: s("alice"),
            email: Some(String::new()),
            aliases: Some(proto::AliasList {
                aliases: vec![s("E-1001")],
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "RemoveUser",
        "dave",
        proto::RemoveUserRequest {
            tenant: s("acme"),
            user: s("dave"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListUsers",
        "acme",
        proto::ListUsersRequest {
            tenant: s("acme"),
            page_size: 2,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "Assign",
        "expiring",
        proto::AssignRequest {
            tenant: s("acme"),
            subject: s("group:platform"),
            role: s("editors"),
            expires: s("2030-01-01T00:00:00Z"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "Unassign",
        "dave",
        proto::UnassignRequest {
            tenant: s("acme"),
            subject: s("dave"),
            role: s("Administrators"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListBindings",
        "alice",
        proto::ListBindingsRequest {
            tenant: s("acme"),
            subject: s("alice"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "ListAuditLog",
        "acme",
        proto::ListAuditLogRequest {
            tenant: s("acme"),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "Watch",
        "acme",
        proto::WatchRequest {
            from_revision: 1,
            tenants: vec![s("acme"), s("globex")],
            history: String::new(),
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "Export",
        "empty",
        proto::ExportRequest::default().encode_to_vec(),
    );
    let state = policy_file::load_str(QUICKSTART_POLICY).unwrap();
    let export: Vec<u8> = lines(&state)
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .concat();
    grpc(
        dir,
        "Import",
        "quickstart",
        proto::ExportChunk {
            revision: 1,
            data: export,
            digest: String::new(),
            history: String::new(),
        }
        .encode_to_vec(),
    );
    grpc(
        dir,
        "GetState",
        "digest",
        proto::GetStateRequest { digest: true }.encode_to_vec(),
    );
    let envoy = |method: &str, path: &str, sub: &str| EnvoyCheck {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: s("spiffe://cluster.local/ns/shop/sa/checkout"),
                address: Some(Address::default()),
                ..Default::default()
            }),
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    method: s(method),
                    path: s(path),
                    headers: [
                        ("x-jwt-tenant", "acme"),
                        ("x-jwt-sub", sub),
                        ("x-rampart-decision", "ALLOW"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (s(k), s(v)))
                    .collect(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    };
    grpc(
        dir,
        "envoy Check",
        "edit",
        envoy("PUT", "/documents/road%20map?x=1", "alice").encode_to_vec(),
    );
    grpc(
        dir,
        "envoy Check",
        "profile",
        envoy("PUT", "/users/bob/profile", "bob").encode_to_vec(),
    );
}

/// Inputs for the structure the differential target derives with
/// `arbitrary`: bytes from a fixed generator, of a few sizes.
fn differential_seeds() {
    let dir = corpus("evaluator_differential");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for size in [64usize, 256, 1024, 2048] {
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        write(&dir, &format!("xorshift-{size}"), bytes);
    }
}

fn main() {
    policy_file_seeds();
    permission_seeds();
    tokens_file_seeds();
    cert_subject_seeds();
    export_seeds();
    binary_image_seeds();
    grpc_requests_seeds();
    differential_seeds();
}
