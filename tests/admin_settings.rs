//! The tenant settings that guard administration, over real gRPC: they
//! read back from ListTenants, a bad value is INVALID_ARGUMENT naming the
//! field, `warn` answers with a warning, `refuse` refuses, and a Check's
//! explanation names the stability of the entry that covers it.

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
    CheckRequest, GrantRequest, GrantSpec, ListTenantsRequest, RoleNames, TenantSettings,
    UpdateTenantRequest,
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

fn update(actor: &str, settings: TenantSettings) -> UpdateTenantRequest {
    UpdateTenantRequest {
        actor: actor.into(),
        tenant: "acme".into(),
        settings: Some(settings),
        ..Default::default()
    }
}

fn grant(role: &str, pattern: &str) -> GrantRequest {
    GrantRequest {
        tenant: "acme".into(),
        role: role.into(),
        grant: Some(GrantSpec {
            effect: "allow".into(),
            pattern: pattern.into(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn guard_settings_round_trip_and_bad_values_name_the_field() {
    let (mut admin, _authz, _h) = clients().await;
    let bad = admin
        .update_tenant(update(
            "",
            TenantSettings {
                preview_grants: Some("never".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("preview_grants") && bad.message().contains("allow, warn or refuse"),
        "{}",
        bad.message()
    );
    let bad = admin
        .update_tenant(update(
            "",
            TenantSettings {
                administrator_roles: Some(RoleNames {
                    roles: vec!["  ".into()],
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("administrator_roles"),
        "{}",
        bad.message()
    );

    // A delegated admin with the right to change settings still may not
    // change these (mallory holds no ACM:TENANT:UPDATE:SETTINGS here, so
    // the first refusal is that one; alice is an Administrator).
    let refused = admin
        .update_tenant(update(
            "mallory",
            TenantSettings {
                removal_needs_all_grants: Some(true),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    admin
        .update_tenant(update(
            "alice",
            TenantSettings {
                administrator_roles: Some(RoleNames {
                    roles: vec!["user-admins".into()],
                }),
                removal_needs_all_grants: Some(true),
                users_role_removals_only: Some(true),
                deprecated_grants: Some("warn".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let tenants = admin
        .list_tenants(ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let acme = tenants.tenants.iter().find(|t| t.tenant == "acme").unwrap();
    let s = acme.settings.clone().unwrap();
    assert_eq!(s.administrator_roles.unwrap().roles, ["user-admins"]);
    assert_eq!(s.removal_needs_all_grants, Some(true));
    assert_eq!(s.users_role_removals_only, Some(true));
    assert_eq!(s.preview_grants.as_deref(), Some("allow"));
    assert_eq!(s.deprecated_grants.as_deref(), Some("warn"));
    // An update that names none of them leaves them as they are.
    admin
        .update_tenant(update(
            "",
            TenantSettings {
                shared_users: Some(true),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let tenants = admin
        .list_tenants(ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let s = tenants.tenants[0].settings.clone().unwrap();
    assert_eq!(s.administrator_roles.unwrap().roles, ["user-admins"]);
    assert_eq!(s.deprecated_grants.as_deref(), Some("warn"));
}

#[tokio::test]
async fn stability_warns_refuses_and_is_explained() {
    let (mut admin, mut authz, _h) = clients().await;
    admin
        .update_tenant(update(
            "",
            TenantSettings {
                preview_grants: Some("refuse".into()),
                deprecated_grants: Some("warn".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let refused = admin
        .grant(grant("empty", "reports:beta"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("`reports:beta`") && refused.message().contains("preview"),
        "{}",
        refused.message()
    );
    let warned = admin
        .grant(grant("empty", "reports:legacy"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(warned.warnings.len(), 1, "{:?}", warned.warnings);
    assert!(
        warned.warnings[0].contains("`reports:legacy`")
            && warned.warnings[0].contains("deprecated"),
        "{:?}",
        warned.warnings
    );
    let plain = admin
        .grant(grant("empty", "documents:view"))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);

    let explain = |permission: &str| CheckRequest {
        tenant: "acme".into(),
        subject: "alice".into(),
        permission: permission.into(),
        explain: true,
        ..Default::default()
    };
    let e = authz
        .check(explain("reports:legacy"))
        .await
        .unwrap()
        .into_inner()
        .explanation
        .unwrap();
    assert_eq!(e.catalog_entry, "reports:legacy");
    assert_eq!(e.catalog_stability, "deprecated");
    let e = authz
        .check(explain("documents:view"))
        .await
        .unwrap()
        .into_inner()
        .explanation
        .unwrap();
    assert_eq!(e.catalog_stability, "stable");
    let e = authz
        .check(explain("nope:x"))
        .await
        .unwrap()
        .into_inner()
        .explanation
        .unwrap();
    assert_eq!(e.catalog_stability, "");
}

#[tokio::test]
async fn admin_permissions_and_attributes_round_trip() {
    use rampart::proto::{
        AddUserRequest, AdminPermissions, AttributeMap, CreateGroupRequest, ListUsersRequest,
        Templates, UpdateUserInfoRequest,
    };
    let (mut admin, _authz, _h) = clients().await;
    let mapping = |ops: &[(&str, &[&str])]| TenantSettings {
        admin_permissions: Some(AdminPermissions {
            operations: ops
                .iter()
                .map(|(op, t)| {
                    (
                        (*op).to_owned(),
                        Templates {
                            templates: t.iter().map(|t| (*t).to_owned()).collect(),
                        },
                    )
                })
                .collect(),
        }),
        ..Default::default()
    };
    let bad = admin
        .update_tenant(update("", mapping(&[("make_group", &["x"])])))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("admin_permissions") && bad.message().contains("make_group"),
        "{}",
        bad.message()
    );
    let bad = admin
        .update_tenant(update("", mapping(&[("create_group", &["x:{user}"])])))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("{user}"), "{}", bad.message());
    // Only an Administrators member (alice) or the operator sets it.
    let refused = admin
        .update_tenant(update(
            "mallory",
            mapping(&[("create_group", &["documents:view"])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    admin
        .update_tenant(update(
            "alice",
            mapping(&[("create_group", &["documents:view"])]),
        ))
        .await
        .unwrap();
    let tenants = admin
        .list_tenants(ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let s = tenants.tenants[0].settings.clone().unwrap();
    let ops = s.admin_permissions.unwrap().operations;
    assert_eq!(ops["create_group"].templates, ["documents:view"]);
    // bob (an editor, documents:view) may now create groups; erin may not.
    let group = |actor: &str, group: &str| CreateGroupRequest {
        actor: actor.into(),
        tenant: "acme".into(),
        group: group.into(),
        ..Default::default()
    };
    admin.create_group(group("bob", "crew")).await.unwrap();
    let refused = admin
        .create_group(group("frank", "crew2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Attributes: set, shown, checked.
    let bad = admin
        .add_user(AddUserRequest {
            tenant: "acme".into(),
            user: "zed".into(),
            attributes: [("Realm".to_owned(), "x".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("attributes"), "{}", bad.message());
    admin
        .add_user(AddUserRequest {
            tenant: "acme".into(),
            user: "zed".into(),
            attributes: [("realm".to_owned(), "ldap".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let users = |admin: &mut AdminClient<Channel>| {
        let mut admin = admin.clone();
        async move {
            admin
                .list_users(ListUsersRequest {
                    tenant: "acme".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .users
        }
    };
    let zed = users(&mut admin)
        .await
        .into_iter()
        .find(|u| u.user == "zed")
        .unwrap();
    assert_eq!(
        zed.attributes.get("realm").map(String::as_str),
        Some("ldap")
    );
    admin
        .update_user_info(UpdateUserInfoRequest {
            user: "zed".into(),
            attributes: Some(AttributeMap::default()),
            ..Default::default()
        })
        .await
        .unwrap();
    let zed = users(&mut admin)
        .await
        .into_iter()
        .find(|u| u.user == "zed")
        .unwrap();
    assert!(zed.attributes.is_empty(), "{:?}", zed.attributes);
}
