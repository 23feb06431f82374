//! User aliases over real gRPC: set through the Admin API, shown by
//! ListUsers, and resolved by Check, BatchCheck, explain and
//! ListSubjectPermissions as the member they belong to, with the refusals
//! (who may set them, uniqueness, shape) carrying their codes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;

use rampart::cli::serve::start;
use rampart::engine::Engine;
use rampart::model::policy_file;
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::batch_check_result::Outcome;
use rampart::proto::{
    AddUserRequest, AliasList, BatchCheckItem, BatchCheckRequest, CheckRequest, CheckResponse,
    Decision, ListSubjectPermissionsRequest, ListUsersRequest, Reason, RemoveUserRequest,
    UpdateUserInfoRequest,
};
use rampart::server::DataPlaneConfig;
use tonic::Code;
use tonic::transport::Channel;

/// The AuthZEN Todo application's shape: owners may update their own todos.
const POLICY: &str = r#"
catalog:
  - { permission: "todo:update:?OWNER?" }
  - { permission: "todo:read" }
tenants:
  - id: todo
    roles:
      - { name: Users, grants: ["todo:read", "todo:update:{subject}"] }
      - { name: user-admins, grants: ["ACM:USER:*", "todo:read", "todo:update:{subject}"] }
    users:
      - { id: admin }
      - { id: morty@the-citadel.com }
      - { id: summer@the-smiths.com }
    bindings:
      - { subject: admin, role: Administrators }
      - { subject: morty@the-citadel.com, role: user-admins }
"#;

const RICK: &str = "rick@the-citadel.com";
const RICK_IDP: &str = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const RICK_SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/rick";

async fn clients() -> (
    AdminClient<Channel>,
    AuthorizationClient<Channel>,
    rampart::cli::serve::ServerHandle,
) {
    let engine = Arc::new(Engine::new(policy_file::load_str(POLICY).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(listener, engine, DataPlaneConfig::default())
        .await
        .unwrap();
    let url = format!("http://{}", handle.addr);
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    (
        AdminClient::new(channel.clone()),
        AuthorizationClient::new(channel),
        handle,
    )
}

fn add_rick(actor: &str, aliases: &[&str]) -> AddUserRequest {
    AddUserRequest {
        actor: actor.into(),
        dry_run: false,
        tenant: "todo".into(),
        user: RICK.into(),
        email: String::new(),
        display_name: "Rick".into(),
        status: String::new(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        attributes: Default::default(),
    }
}

fn set_aliases(actor: &str, user: &str, aliases: Option<&[&str]>) -> UpdateUserInfoRequest {
    UpdateUserInfoRequest {
        actor: actor.into(),
        dry_run: false,
        user: user.into(),
        email: None,
        display_name: None,
        aliases: aliases.map(|list| AliasList {
            aliases: list.iter().map(|a| (*a).to_owned()).collect(),
        }),
        attributes: None,
    }
}

async fn check(
    authz: &mut AuthorizationClient<Channel>,
    subject: &str,
    permission: &str,
) -> Result<CheckResponse, tonic::Status> {
    authz
        .check(CheckRequest {
            tenant: "todo".into(),
            subject: subject.into(),
            permission: permission.into(),
            consistency: None,
            explain: true,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn user_aliases(admin: &mut AdminClient<Channel>, user: &str) -> Option<Vec<String>> {
    let users = admin
        .list_users(ListUsersRequest {
            tenant: "todo".into(),
            page_size: 0,
            page_token: String::new(),
            actor: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    users
        .into_iter()
        .find(|u| u.user == user)
        .map(|u| u.aliases)
}

#[tokio::test]
async fn an_alias_is_checked_as_its_user_and_explained() {
    let (mut admin, mut authz, _h) = clients().await;
    admin
        .add_user(add_rick("admin", &[RICK_SPIFFE, RICK_IDP]))
        .await
        .unwrap();
    // Listed sorted.
    assert_eq!(
        user_aliases(&mut admin, RICK).await.unwrap(),
        [RICK_IDP, RICK_SPIFFE]
    );

    // `{subject}` is the user's id: rick's own todo, by his IdP subject id.
    let own = format!("todo:update:{RICK}");
    let r = check(&mut authz, RICK_IDP, &own).await.unwrap();
    assert_eq!(
        (r.decision(), r.reason()),
        (Decision::Allow, Reason::Granted)
    );
    let why = r.explanation.unwrap();
    assert_eq!(why.user, RICK, "the explanation names the member");
    assert_eq!(
        why.grants[0].via,
        [format!("user:{RICK}"), "default".into()]
    );
    // Not someone else's, nor a todo "owned" by the alias text.
    for other in ["todo:update:summer@the-smiths.com", "todo:update:x"] {
        let r = check(&mut authz, RICK_IDP, other).await.unwrap();
        assert_eq!(r.reason(), Reason::NoMatchingGrant, "{other}");
    }
    // By id, nothing changed; the explanation names the id too.
    let r = check(&mut authz, RICK, &own).await.unwrap();
    assert_eq!(r.decision(), Decision::Allow);
    assert_eq!(r.explanation.unwrap().user, RICK);

    // An identity nobody has is unknown, and the explanation names nobody.
    let r = check(
        &mut authz,
        "spiffe://cluster.local/ns/shop/sa/cart",
        "todo:read",
    )
    .await
    .unwrap();
    assert_eq!(r.reason(), Reason::UnknownSubject);
    assert_eq!(r.explanation.unwrap().user, "");
    // Malformed is still malformed.
    for bad in ["group:x", "a b"] {
        let e = check(&mut authz, bad, "todo:read").await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
    }
    // A subject may be an alias's length (512 bytes), not more.
    let long = "x".repeat(512);
    let r = check(&mut authz, &long, "todo:read").await.unwrap();
    assert_eq!(r.reason(), Reason::UnknownSubject);
    let e = check(&mut authz, &"x".repeat(513), "todo:read")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // BatchCheck resolves each item.
    let item = |subject: &str, permission: &str| BatchCheckItem {
        tenant: "todo".into(),
        subject: subject.into(),
        permission: permission.into(),
        correlation_id: subject.into(),
    };
    let batch = authz
        .batch_check(BatchCheckRequest {
            items: vec![
                item(RICK_SPIFFE, &own),
                item(RICK_IDP, "todo:update:summer@the-smiths.com"),
                item("nobody", "todo:read"),
            ],
            consistency: None,
            explain: false,
        })
        .await
        .unwrap()
        .into_inner();
    let reasons: Vec<Reason> = batch
        .results
        .iter()
        .map(|r| match r.outcome.as_ref().unwrap() {
            Outcome::Response(x) => x.reason(),
            Outcome::Error(e) => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            Reason::Granted,
            Reason::NoMatchingGrant,
            Reason::UnknownSubject
        ]
    );

    // ListSubjectPermissions by alias names the member.
    let listing = authz
        .list_subject_permissions(ListSubjectPermissionsRequest {
            tenant: "todo".into(),
            subject: RICK_SPIFFE.into(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listing.user, RICK);
    assert!(listing.permissions.iter().any(|p| p.pattern == "todo:read"));

    // Removing the user takes the aliases with it.
    admin
        .remove_user(RemoveUserRequest {
            actor: "admin".into(),
            dry_run: false,
            tenant: "todo".into(),
            user: RICK.into(),
        })
        .await
        .unwrap();
    let r = check(&mut authz, RICK_IDP, &own).await.unwrap();
    assert_eq!(r.reason(), Reason::UnknownSubject);
}

#[tokio::test]
async fn aliases_are_set_cleared_and_refused_by_the_rules() {
    let (mut admin, mut authz, _h) = clients().await;
    admin
        .add_user(add_rick("admin", &[RICK_IDP]))
        .await
        .unwrap();

    // Unset leaves them; another field changes alone.
    let mut keep = set_aliases(RICK, RICK, None);
    keep.display_name = Some("Rick Sanchez".into());
    admin.update_user_info(keep).await.unwrap();
    assert_eq!(user_aliases(&mut admin, RICK).await.unwrap(), [RICK_IDP]);

    // One's own aliases are not one's own to set (PERMISSION_DENIED)...
    let e = admin
        .update_user_info(set_aliases(RICK, RICK, Some(&["mine"])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("setting one's own"), "{}", e.message());
    // ...but a user admin's.
    let r = admin
        .update_user_info(set_aliases(
            "morty@the-citadel.com",
            RICK,
            Some(&[RICK_SPIFFE, "E-1001"]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.revision > 0);
    let both = ["E-1001", RICK_SPIFFE];
    assert_eq!(user_aliases(&mut admin, RICK).await.unwrap(), both);
    let r = check(&mut authz, RICK_IDP, "todo:read").await.unwrap();
    assert_eq!(r.reason(), Reason::UnknownSubject, "the old alias is gone");
    let r = check(&mut authz, RICK_SPIFFE, "todo:read").await.unwrap();
    assert_eq!(r.decision(), Decision::Allow);

    // Uniqueness: another's alias, another's id, a new user's id.
    let e = admin
        .update_user_info(set_aliases(
            "admin",
            "summer@the-smiths.com",
            Some(&[RICK_SPIFFE]),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(
        e.message()
            .contains(&format!("is already an alias of user `{RICK}`")),
        "{}",
        e.message()
    );
    let e = admin
        .update_user_info(set_aliases(
            "admin",
            "summer@the-smiths.com",
            Some(&["admin"]),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(
        e.message().contains("is the id of user `admin`"),
        "{}",
        e.message()
    );
    let mut newcomer = add_rick("admin", &[]);
    newcomer.user = "E-1001".into();
    let e = admin.add_user(newcomer).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(
        e.message().contains(&format!(
            "user id `E-1001` is already an alias of user `{RICK}`"
        )),
        "{}",
        e.message()
    );

    // Shape: the alias and the rule are named.
    let e = admin
        .update_user_info(set_aliases("admin", RICK, Some(&["has space"])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("`aliases`: alias `has space`")
            && e.message().contains("ASCII graphic"),
        "{}",
        e.message()
    );
    let many: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = admin
        .update_user_info(set_aliases("admin", RICK, Some(&many)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("at most 16"), "{}", e.message());

    // A dry run changes nothing.
    let mut dry = set_aliases("admin", RICK, Some(&["dry"]));
    dry.dry_run = true;
    admin.update_user_info(dry).await.unwrap();
    assert_eq!(user_aliases(&mut admin, RICK).await.unwrap(), both);

    // An empty list clears them.
    admin
        .update_user_info(set_aliases("admin", RICK, Some(&[])))
        .await
        .unwrap();
    assert!(user_aliases(&mut admin, RICK).await.unwrap().is_empty());
    let r = check(&mut authz, RICK_SPIFFE, "todo:read").await.unwrap();
    assert_eq!(r.reason(), Reason::UnknownSubject);
}
