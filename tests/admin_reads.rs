//! Admin reads made as a user over real gRPC: GetRole refused without the
//! role's permission, lists filtered to the rows the user may see and paged
//! through them, malformed and inactive actors refused, and a read without
//! an actor unchanged (every row).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use rampart::proto::admin_client::AdminClient;
use rampart::proto::{
    AssignRequest, CreateRoleRequest, GetRoleRequest, GrantSpec, ListBindingsRequest,
    ListGroupsRequest, ListRolesRequest, ListUsersRequest, SetGrantsRequest,
};
use tonic::Code;
use tonic::transport::Channel;

/// The rules fixture (tests/rules/policy.yaml), with `rita` holding a
/// role that lets her see some rows of each list: the descriptions of
/// billing, editors and empty, the group team, her own info, bob's roles.
async fn admin() -> (AdminClient<Channel>, rampart::cli::serve::ServerHandle) {
    let (channel, handle) = common::rules_fixture_server().await;
    let mut admin = AdminClient::new(channel);
    admin
        .add_user(rampart::proto::AddUserRequest {
            tenant: "acme".into(),
            user: "rita".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .create_role(CreateRoleRequest {
            tenant: "acme".into(),
            role: "auditors".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let grants = [
        "ACM:ROLE:RETRIEVE:DESCRIPTION:billing",
        "ACM:ROLE:RETRIEVE:DESCRIPTION:editors",
        "ACM:ROLE:RETRIEVE:DESCRIPTION:empty",
        "ACM:GROUP:RETRIEVE:team",
        "ACM:USER:RETRIEVE:INFO:{subject}",
        "ACM:USER:RETRIEVE:ROLES:bob",
    ];
    admin
        .set_grants(SetGrantsRequest {
            tenant: "acme".into(),
            role: "auditors".into(),
            grants: grants
                .iter()
                .map(|p| GrantSpec {
                    effect: "allow".into(),
                    pattern: (*p).into(),
                })
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .assign(AssignRequest {
            tenant: "acme".into(),
            subject: "rita".into(),
            role: "auditors".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    (admin, handle)
}

fn roles(actor: &str, page_size: u32, page_token: &str) -> ListRolesRequest {
    ListRolesRequest {
        tenant: "acme".into(),
        page_size,
        page_token: page_token.into(),
        actor: actor.into(),
    }
}

#[tokio::test]
async fn get_role_as_a_user_needs_the_roles_permission() {
    let (mut admin, _h) = admin().await;
    let get = |actor: &str, role: &str| GetRoleRequest {
        tenant: "acme".into(),
        role: role.into(),
        actor: actor.into(),
    };
    let e = admin.get_role(get("bob", "editors")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(
        e.message(),
        "actor `bob` lacks `ACM:ROLE:RETRIEVE:PERMISSIONS:editors` in tenant `acme`"
    );
    // Refused before the lookup: a role bob may not see is not told apart
    // from one that does not exist.
    let e = admin.get_role(get("bob", "ghost")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // rita sees descriptions, not permissions.
    let e = admin.get_role(get("rita", "billing")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // mallory holds ACM:ROLE:*.
    let role = admin
        .get_role(get("mallory", "editors"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(role.grants.len(), 2);
    assert_eq!(role.revision, 5);
    let e = admin.get_role(get("mallory", "ghost")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "unknown role `ghost` in tenant `acme`");

    // No actor: the credential, as before.
    let role = admin
        .get_role(get("", "editors"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(role.role, "editors");
}

#[tokio::test]
async fn a_reader_must_be_a_well_formed_active_member() {
    let (mut admin, _h) = admin().await;
    let users = |actor: &str| ListUsersRequest {
        tenant: "acme".into(),
        actor: actor.into(),
        ..Default::default()
    };
    for who in ["frank", "hank", "ghost"] {
        let e = admin.list_users(users(who)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{who}");
        assert_eq!(
            e.message(),
            format!("actor `{who}` is not an active member of tenant `acme`")
        );
    }
    let e = admin.list_users(users("a b")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("`actor`"), "{}", e.message());
    // An unknown tenant is NOT_FOUND, as without an actor.
    let e = admin
        .list_roles(ListRolesRequest {
            tenant: "nope".into(),
            actor: "bob".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn lists_hold_only_the_rows_the_reader_may_see() {
    let (mut admin, _h) = admin().await;
    // bob holds no ACM: permission: an empty page, not a refusal.
    let page = admin
        .list_roles(roles("bob", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(page.roles.is_empty());
    assert_eq!(page.next_page_token, "");
    assert_eq!(page.revision, 5);

    let names = |p: &[rampart::proto::RoleSummary]| -> Vec<String> {
        p.iter().map(|r| r.role.clone()).collect()
    };
    let page = admin
        .list_roles(roles("rita", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&page.roles), ["billing", "editors", "empty"]);
    let everyone = admin
        .list_roles(roles("", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everyone.roles.len(), 8, "no actor: every row");

    let groups = admin
        .list_groups(ListGroupsRequest {
            tenant: "acme".into(),
            actor: "rita".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let groups: Vec<&str> = groups.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(groups, ["team"]);

    let users = admin
        .list_users(ListUsersRequest {
            tenant: "acme".into(),
            actor: "rita".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let users: Vec<&str> = users.users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(users, ["rita"], "`{{subject}}`: her own info");

    let bindings = |actor: &str, subject: &str| ListBindingsRequest {
        tenant: "acme".into(),
        subject: subject.into(),
        actor: actor.into(),
        ..Default::default()
    };
    let page = admin
        .list_bindings(bindings("rita", ""))
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<(&str, &str)> = page
        .bindings
        .iter()
        .map(|b| (b.subject.as_str(), b.role.as_str()))
        .collect();
    assert_eq!(rows, [("bob", "editors")]);
    let page = admin
        .list_bindings(bindings("rita", "alice"))
        .await
        .unwrap()
        .into_inner();
    assert!(page.bindings.is_empty());
}

#[tokio::test]
async fn filtered_lists_page_through_the_visible_rows() {
    let (mut admin, _h) = admin().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_roles(roles("rita", 1, &token))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert_eq!(page.roles.len(), 1, "a page fills with visible rows");
        seen.extend(page.roles.into_iter().map(|r| r.role));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["billing", "editors", "empty"]);
    assert_eq!(pages, 3, "no empty page after the last visible row");

    let first = admin
        .list_roles(roles("rita", 2, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.roles.len(), 2);
    let rest = admin
        .list_roles(roles("rita", 2, &first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    let rest: Vec<&str> = rest.roles.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(rest, ["empty"]);
    // A token is a key: another reader may go on from it, seeing its own rows.
    let after = admin
        .list_roles(roles("mallory", 0, &first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    let after: Vec<&str> = after.roles.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(after, ["empty", "user-admins"]);
}
