//! The Admin API over real gRPC: refusals carry the rule's code and message,
//! dry runs change nothing, and a Check sent after a reply sees the change.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::{
    self, AddMemberRequest, AssignRequest, CheckRequest, Consistency, CreateRoleRequest, Decision,
    GetRoleRequest, GrantRequest, GrantSpec, ListRolesRequest, RemoveUserRequest, UnassignRequest,
    consistency::Requirement,
};
use tonic::Code;
use tonic::transport::Channel;

async fn clients() -> (
    AdminClient<Channel>,
    AuthorizationClient<Channel>,
    rampart::cli::serve::ServerHandle,
) {
    let (channel, handle) = common::rules_fixture_server().await;
    (
        AdminClient::new(channel.clone()),
        AuthorizationClient::new(channel),
        handle,
    )
}

fn check(subject: &str, permission: &str, at_least: u64) -> CheckRequest {
    CheckRequest {
        tenant: "acme".into(),
        subject: subject.into(),
        permission: permission.into(),
        consistency: Some(Consistency {
            requirement: Some(Requirement::AtLeastRevision(at_least)),
        }),
        explain: false,
    }
}

#[tokio::test]
async fn a_change_is_visible_to_the_next_check() {
    let (mut admin, mut authz, _h) = clients().await;
    let before = authz
        .check(check("bob", "billing:view", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.decision(), Decision::Deny);
    let done = admin
        .assign(AssignRequest {
            actor: "alice".into(),
            dry_run: false,
            tenant: "acme".into(),
            subject: "bob".into(),
            role: "billing".into(),
            expires: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.revision, 2);
    assert!(
        done.change.contains("\"kind\":\"assign\""),
        "{}",
        done.change
    );
    let after = authz
        .check(check("bob", "billing:view", done.revision))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.decision(), Decision::Allow);
    assert_eq!(after.revision, 2);
}

#[tokio::test]
async fn dry_runs_change_nothing() {
    let (mut admin, _authz, _h) = clients().await;
    let dry = admin
        .create_role(CreateRoleRequest {
            actor: "alice".into(),
            dry_run: true,
            tenant: "acme".into(),
            role: "auditors".into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dry.dry_run);
    assert_eq!(dry.revision, 2, "the revision it would get");
    let roles = admin
        .list_roles(ListRolesRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roles.revision, 1);
    assert!(!roles.roles.iter().any(|r| r.role == "auditors"));
    // Sorted by name, with counts.
    let names: Vec<&str> = roles.roles.iter().map(|r| r.role.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let editors = roles.roles.iter().find(|r| r.role == "editors").unwrap();
    assert_eq!((editors.members, editors.grants), (2, 2));
}

#[tokio::test]
async fn refusals_carry_the_rules_code_and_message() {
    let (mut admin, _authz, _h) = clients().await;
    let e = admin
        .assign(AssignRequest {
            actor: "mallory".into(),
            dry_run: false,
            tenant: "acme".into(),
            subject: "bob".into(),
            role: "Administrators".into(),
            expires: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("no escalation"), "{}", e.message());

    let e = admin
        .grant(GrantRequest {
            actor: String::new(),
            dry_run: false,
            tenant: "acme".into(),
            role: "Administrators".into(),
            grant: Some(GrantSpec {
                effect: "allow".into(),
                pattern: "billing:view".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    let e = admin
        .grant(GrantRequest {
            actor: String::new(),
            dry_run: false,
            tenant: "acme".into(),
            role: "empty".into(),
            grant: Some(GrantSpec {
                effect: "allow".into(),
                pattern: "nope:x".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not covered by the catalog"));

    let e = admin
        .grant(GrantRequest {
            actor: String::new(),
            dry_run: false,
            tenant: "acme".into(),
            role: "editors".into(),
            grant: Some(GrantSpec {
                effect: "allow".into(),
                pattern: "documents:view".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    let e = admin
        .unassign(UnassignRequest {
            actor: String::new(),
            dry_run: false,
            tenant: "acme".into(),
            subject: "erin".into(),
            role: "billing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let e = admin
        .remove_user(RemoveUserRequest {
            actor: "mallory".into(),
            dry_run: false,
            tenant: "acme".into(),
            user: "mallory".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("only tenant"), "{}", e.message());

    let e = admin
        .add_member(AddMemberRequest {
            actor: "dave".into(),
            dry_run: false,
            tenant: "acme".into(),
            group: "admins".into(),
            member: "dave".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let e = admin
        .create_role(CreateRoleRequest {
            actor: "bad actor".into(),
            dry_run: false,
            tenant: "acme".into(),
            role: "x".into(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("`actor`"), "{}", e.message());

    let role = admin
        .get_role(GetRoleRequest {
            tenant: "acme".into(),
            role: "Administrators".into(),
            actor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(role.kind, "administrators");
    assert_eq!(
        role.grants,
        vec![proto::GrantSpec {
            effect: "allow".into(),
            pattern: "*".into()
        }]
    );
}

/// Free text is bounded and printable, refused at the edge naming the
/// field, and no error message echoes an input whole.
#[tokio::test]
async fn free_text_is_bounded_and_errors_quote_a_short_prefix() {
    let (mut admin, _authz, _h) = clients().await;
    let create = |description: String| CreateRoleRequest {
        actor: "alice".into(),
        dry_run: false,
        tenant: "acme".into(),
        role: "auditors".into(),
        description,
    };

    let e = admin
        .create_role(create("x".repeat(100_000)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("`description`"), "{}", e.message());
    assert!(e.message().len() < 1_024, "{} bytes", e.message().len());

    // Just over the limit in characters (under the byte bound) too.
    let e = admin
        .create_role(create("é".repeat(1_001)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("`description`"), "{}", e.message());

    for bad in ["red\u{1b}[2Jalert", "a\rb", "nul\0"] {
        let e = admin.create_role(create(bad.into())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
        assert!(e.message().contains("`description`"), "{}", e.message());
        assert!(
            !e.message().chars().any(char::is_control),
            "{:?}",
            e.message()
        );
    }

    // A role with a sensible description is still created.
    admin
        .create_role(create("Reads the audit log, é and all.".into()))
        .await
        .unwrap();

    // A 3 MB bad email is refused with a short message.
    let e = admin
        .add_user(proto::AddUserRequest {
            actor: "alice".into(),
            dry_run: false,
            tenant: "acme".into(),
            user: "newcomer".into(),
            email: "x".repeat(3_000_000),
            display_name: String::new(),
            status: String::new(),
            aliases: Vec::new(),
            attributes: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`email`"), "{}", e.message());
    assert!(e.message().len() < 1_024, "{} bytes", e.message().len());
    // One under the size but malformed: quoted, not whole.
    let e = admin
        .add_user(proto::AddUserRequest {
            actor: "alice".into(),
            dry_run: false,
            tenant: "acme".into(),
            user: "newcomer".into(),
            email: "y".repeat(250),
            display_name: String::new(),
            status: String::new(),
            aliases: Vec::new(),
            attributes: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("not an email address"),
        "{}",
        e.message()
    );
    assert!(e.message().len() < 200, "{}", e.message());

    // A word outside its set is quoted short too.
    let e = admin
        .add_user(proto::AddUserRequest {
            actor: "alice".into(),
            dry_run: false,
            tenant: "acme".into(),
            user: "newcomer".into(),
            email: String::new(),
            display_name: "Erin".into(),
            status: "z".repeat(100_000),
            aliases: Vec::new(),
            attributes: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().len() < 1_024, "{} bytes", e.message().len());

    // A lookup of an unknown tenant quotes it short and escaped.
    let e = admin
        .get_role(GetRoleRequest {
            tenant: format!("\u{1b}{}", "t".repeat(100_000)),
            role: "Users".into(),
            actor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().len() < 1_024, "{} bytes", e.message().len());
    assert!(!e.message().contains('\u{1b}'), "{:?}", e.message());
}

/// Every user of `acme`, following `next_page_token` with `page_size`,
/// and the pages' sizes.
async fn users_by_pages(
    admin: &mut AdminClient<Channel>,
    page_size: u32,
) -> (Vec<String>, Vec<usize>) {
    let (mut users, mut sizes, mut token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let page = admin
            .list_users(proto::ListUsersRequest {
                tenant: "acme".into(),
                page_size,
                page_token: token,
                actor: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.users.len());
        users.extend(page.users.into_iter().map(|u| u.user));
        token = page.next_page_token;
        if token.is_empty() {
            return (users, sizes);
        }
    }
}

#[tokio::test]
async fn listings_page_through_every_row_once_in_order() {
    let (mut admin, _, _h) = clients().await;
    for i in 0..23 {
        admin
            .add_user(proto::AddUserRequest {
                actor: "alice".into(),
                tenant: "acme".into(),
                user: format!("paged-{i:02}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Without page_size: the default page (1000) holds them all.
    let whole = admin
        .list_users(proto::ListUsersRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(whole.next_page_token.is_empty());
    let all: Vec<String> = whole.users.into_iter().map(|u| u.user).collect();
    assert!(all.len() > 23);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, all, "sorted by id, each once");

    let (paged, sizes) = users_by_pages(&mut admin, 7).await;
    assert_eq!(paged, all);
    assert!(sizes.len() >= 4, "{sizes:?}");
    assert!(sizes.iter().all(|&n| (1..=7).contains(&n)), "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&n| n == 7),
        "{sizes:?}"
    );

    // A row removed behind the cursor changes nothing ahead of it (gina,
    // on the first page, is also in globex, so she may leave acme).
    let first = admin
        .list_users(proto::ListUsersRequest {
            tenant: "acme".into(),
            page_size: 7,
            page_token: String::new(),
            actor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.users.iter().any(|u| u.user == "gina"));
    admin
        .remove_user(RemoveUserRequest {
            actor: "alice".into(),
            dry_run: false,
            tenant: "acme".into(),
            user: "gina".into(),
        })
        .await
        .unwrap();
    let second = admin
        .list_users(proto::ListUsersRequest {
            tenant: "acme".into(),
            page_size: 7,
            page_token: first.next_page_token,
            actor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let second: Vec<String> = second.users.into_iter().map(|u| u.user).collect();
    assert_eq!(second, all[7..14]);

    // The other listings page the same way: one row a page gives the
    // whole listing.
    let roles = admin
        .list_roles(ListRolesRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut token = String::new();
    let mut one_by_one = Vec::new();
    loop {
        let page = admin
            .list_roles(ListRolesRequest {
                tenant: "acme".into(),
                page_size: 1,
                page_token: token,
                actor: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.roles.len(), 1);
        one_by_one.extend(page.roles);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(one_by_one, roles.roles);
    let catalog = admin
        .list_catalog(proto::ListCatalogRequest::default())
        .await
        .unwrap()
        .into_inner();
    let (mut token, mut one_by_one) = (String::new(), Vec::new());
    loop {
        let page = admin
            .list_catalog(proto::ListCatalogRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        one_by_one.extend(page.entries);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(one_by_one, catalog.entries);
    let bindings = admin
        .list_bindings(proto::ListBindingsRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bindings.bindings.len() > 1);
    let (mut token, mut one_by_one) = (String::new(), Vec::new());
    loop {
        let page = admin
            .list_bindings(proto::ListBindingsRequest {
                tenant: "acme".into(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        one_by_one.extend(page.bindings);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(one_by_one, bindings.bindings);
    let tenants = admin
        .list_tenants(proto::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(tenants.tenants.len() > 1);
    let (mut token, mut one_by_one) = (String::new(), Vec::new());
    loop {
        let page = admin
            .list_tenants(proto::ListTenantsRequest {
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        one_by_one.extend(page.tenants);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(one_by_one, tenants.tenants);
}

#[tokio::test]
async fn a_bad_page_token_or_page_size_is_invalid_argument() {
    let (mut admin, _, _h) = clients().await;
    let list = |page_size: u32, page_token: &str| proto::ListUsersRequest {
        tenant: "acme".into(),
        page_size,
        page_token: page_token.into(),
        actor: String::new(),
    };
    // Not hex; hex of a key with a separator where a user id has none.
    for token in ["not-a-token", "zz", "616c69636500626f62"] {
        let e = admin.list_users(list(5, token)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{token}");
        assert!(e.message().contains("page_token"), "{}", e.message());
    }
    let e = admin.list_users(list(10_001, "")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("page_size"), "{}", e.message());
    let e = admin
        .list_roles(ListRolesRequest {
            tenant: "acme".into(),
            page_size: 1,
            page_token: "xyz".into(),
            actor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("page_token"), "{}", e.message());
    // The largest page size is fine.
    admin.list_users(list(10_000, "")).await.unwrap();
}
