//! Tenant isolation, as properties of the administration rules: whatever
//! changes the actors of tenant `acme` try, in any order, nothing tenant
//! `beta` sees changes (its roles, groups, users and their profiles,
//! bindings and settings, hence every decision and listing there), nor the
//! catalog or the bridge grants every tenant shares. The same holds for a
//! credential confined to `acme`, whoever it acts as, even a user who is an
//! Administrator of `beta`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use proptest::prelude::*;
use rampart::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use rampart::model::rules::{Actor, check_confined, validate};
use rampart::model::{
    Grant, GrantPattern, GroupName, Mutation, RoleName, SettingsChange, State, Subject, TenantId,
    TenantSettings, Timestamp, UserId, UserStatus, policy_file,
};

const POLICY: &str = r#"
catalog:
  - { permission: "docs:?DOC?" }
  - { permission: "billing:view" }
bridges_grants: ["docs:read"]
tenants:
  - id: acme
    roles:
      - { name: user-admins, grants: ["ACM:*", "docs:*", "billing:view"] }
      - { name: readers, grants: ["docs:read"] }
    groups:
      - { name: team, members: [cara] }
    users:
      - { id: ann }
      - { id: dan }
      - { id: cara }
      - { id: sam, email: sam@beta.test }
      - { id: pat }
    bindings:
      - { subject: ann, role: Administrators }
      - { subject: dan, role: user-admins }
      - { subject: "group:team", role: readers }
  - id: beta
    roles:
      - { name: readers, grants: ["docs:read"] }
    groups:
      - { name: ops, members: [sam] }
    users:
      - { id: boss, email: boss@beta.test, display_name: The Boss }
      - { id: sam }
      - { id: pat }
      - { id: bea }
    bindings:
      - { subject: boss, role: Administrators }
      - { subject: pat, role: Administrators }
      - { subject: "group:ops", role: readers }
"#;

const TENANTS: [&str; 3] = ["acme", "beta", "gamma"];
const USERS: [&str; 8] = ["ann", "dan", "cara", "sam", "pat", "boss", "bea", "newbie"];
const ROLES: [&str; 5] = ["user-admins", "readers", "Administrators", "Users", "extra"];
const GROUPS: [&str; 3] = ["team", "ops", "extra"];
const PATTERNS: [&str; 5] = ["docs:read", "docs:*", "billing:view", "*", "ACM:*"];
/// Members of `acme` only: whatever rights they hold, they hold there.
const ACME_ONLY: [&str; 3] = ["ann", "dan", "cara"];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn tenant() -> impl Strategy<Value = TenantId> {
    pick(&TENANTS).prop_map(|t| TenantId::new(t).unwrap())
}
fn user() -> impl Strategy<Value = UserId> {
    pick(&USERS).prop_map(|u| UserId::new(u).unwrap())
}
fn role() -> impl Strategy<Value = RoleName> {
    pick(&ROLES).prop_map(|r| RoleName::new(r).unwrap())
}
fn group() -> impl Strategy<Value = GroupName> {
    pick(&GROUPS).prop_map(|g| GroupName::new(g).unwrap())
}
fn grant() -> impl Strategy<Value = Grant> {
    (any::<bool>(), pick(&PATTERNS)).prop_map(|(allow, p)| {
        let p = GrantPattern::parse(p).unwrap();
        if allow {
            Grant::allow(p)
        } else {
            Grant::deny(p)
        }
    })
}
fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        user().prop_map(Subject::User),
        group().prop_map(Subject::Group)
    ]
}
fn status() -> impl Strategy<Value = UserStatus> {
    any::<bool>().prop_map(|a| {
        if a {
            UserStatus::Active
        } else {
            UserStatus::Inactive
        }
    })
}
/// No change, none, or one of a few aliases (some shared users hold).
fn aliases() -> impl Strategy<Value = Option<Vec<rampart::model::ids::Alias>>> {
    let alias = |a: &str| rampart::model::ids::Alias::new(a).unwrap();
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Vec::new())),
        1 => Just(Some(vec![alias("spiffe://x/sa/a")])),
        1 => Just(Some(vec![alias("idp-1"), alias("spiffe://x/sa/a")])),
    ]
}

fn text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("x@acme.test".to_owned())),
        Just(Some("Someone".to_owned())),
    ]
}

/// Every kind of change, aimed at either tenant (and one that does not exist).
fn mutation() -> impl Strategy<Value = Mutation> {
    let tenants = prop_oneof![
        (tenant(), any::<bool>(), any::<bool>()).prop_map(|(tenant, single, shared)| {
            Mutation::CreateTenant {
                tenant,
                name: "T".into(),
                settings: TenantSettings {
                    single_role_per_user: single,
                    shared_users: shared,
                    ..TenantSettings::default()
                },
            }
        }),
        (tenant(), any::<Option<bool>>(), any::<Option<bool>>()).prop_map(
            |(tenant, single, shared)| Mutation::UpdateTenant {
                tenant,
                name: Some("Renamed".into()),
                settings: Some(SettingsChange {
                    single_role_per_user: single,
                    shared_users: shared,
                    ..SettingsChange::default()
                }),
            }
        ),
        tenant().prop_map(|tenant| Mutation::DeleteTenant { tenant }),
        Just(Mutation::DefineCatalogEntry {
            entry: CatalogEntry {
                pattern: CatalogPattern::parse("new:?X?").unwrap(),
                category: "c".into(),
                description: "d".into(),
                stability: Stability::Stable,
                builtin: false,
            }
        }),
        Just(Mutation::SetCatalogStability {
            permission: CatalogPattern::parse("docs:?DOC?").unwrap(),
            stability: Stability::Deprecated,
        }),
        any::<bool>().prop_map(|cascade| Mutation::RemoveCatalogEntry {
            permission: CatalogPattern::parse("billing:view").unwrap(),
            cascade,
        }),
        prop::collection::vec(grant(), 0..2)
            .prop_map(|grants| Mutation::SetBridgesGrants { grants }),
    ];
    let roles = prop_oneof![
        (tenant(), role()).prop_map(|(tenant, role)| Mutation::CreateRole {
            tenant,
            role,
            description: String::new(),
        }),
        (tenant(), role()).prop_map(|(tenant, role)| Mutation::UpdateRoleDescription {
            tenant,
            role,
            description: "changed".into(),
        }),
        (tenant(), role()).prop_map(|(tenant, role)| Mutation::DeleteRole { tenant, role }),
        (tenant(), role(), grant()).prop_map(|(tenant, role, grant)| Mutation::Grant {
            tenant,
            role,
            grant
        }),
        (tenant(), role(), grant()).prop_map(|(tenant, role, grant)| Mutation::Revoke {
            tenant,
            role,
            grant
        }),
        (tenant(), role(), prop::collection::vec(grant(), 0..3)).prop_map(
            |(tenant, role, grants)| Mutation::SetGrants {
                tenant,
                role,
                grants
            }
        ),
    ];
    let groups = prop_oneof![
        (tenant(), group()).prop_map(|(tenant, group)| Mutation::CreateGroup {
            tenant,
            group,
            description: String::new(),
        }),
        (tenant(), group()).prop_map(|(tenant, group)| Mutation::DeleteGroup { tenant, group }),
        (tenant(), group(), subject()).prop_map(|(tenant, group, member)| Mutation::AddMember {
            tenant,
            group,
            member
        }),
        (tenant(), group(), subject()).prop_map(|(tenant, group, member)| {
            Mutation::RemoveMember {
                tenant,
                group,
                member,
            }
        }),
    ];
    let users = prop_oneof![
        (tenant(), user(), text(), text(), status(), aliases()).prop_map(
            |(tenant, user, email, display_name, status, aliases)| Mutation::AddUser {
                tenant,
                user,
                email: email.filter(|e| e.contains('@')),
                display_name: display_name.filter(|d| !d.contains('@')),
                status,
                attributes: if aliases.is_some() {
                    [("realm".to_owned(), "acme".to_owned())].into()
                } else {
                    Default::default()
                },
                aliases: aliases.unwrap_or_default(),
            }
        ),
        (tenant(), user(), status()).prop_map(|(tenant, user, status)| {
            Mutation::UpdateUserStatus {
                tenant,
                user,
                status,
            }
        }),
        (user(), text(), text(), aliases()).prop_map(|(user, email, display_name, aliases)| {
            Mutation::UpdateUserInfo {
                user,
                email: email.filter(|e| e.is_empty() || e.contains('@')),
                display_name: display_name.filter(|d| !d.contains('@')),
                attributes: aliases
                    .as_ref()
                    .map(|a| [("realm".to_owned(), format!("r{}", a.len()))].into()),
                aliases,
            }
        }),
        (tenant(), user()).prop_map(|(tenant, user)| Mutation::RemoveUser { tenant, user }),
        (tenant(), subject(), role()).prop_map(|(tenant, subject, role)| Mutation::Assign {
            tenant,
            subject,
            role,
            expires: None,
        }),
        (tenant(), subject(), role()).prop_map(|(tenant, subject, role)| Mutation::Unassign {
            tenant,
            subject,
            role
        }),
    ];
    prop_oneof![tenants, roles, groups, users]
}

fn fixture() -> State {
    policy_file::load_str(POLICY).unwrap()
}

/// What tenant `beta` sees, and what every tenant shares, are as before.
fn assert_beta_unchanged(before: &State, after: &State, steps: &[String]) {
    assert_eq!(
        before.tenants.get("beta").map(|t| &**t),
        after.tenants.get("beta").map(|t| &**t),
        "beta changed after: {steps:#?}"
    );
    assert_eq!(
        before.catalog, after.catalog,
        "the catalog changed after: {steps:#?}"
    );
    assert_eq!(
        before.bridges_grants, after.bridges_grants,
        "the bridge grants changed after: {steps:#?}"
    );
    // Nor does acme take in a user of beta's without beta's consent.
    let members = |s: &State, t: &str| -> Vec<UserId> {
        s.tenants
            .get(t)
            .map(|t| t.users.keys().cloned().collect())
            .unwrap_or_default()
    };
    let beta = members(before, "beta");
    let acme_before = members(before, "acme");
    for u in members(after, "acme") {
        assert!(
            !beta.contains(&u) || acme_before.contains(&u),
            "acme took in beta's `{u}` after: {steps:#?}"
        );
    }
}

/// Applies each change the rules accept, as `actor`, optionally through a
/// credential confined to `acme`; returns the final state and what applied.
fn run(
    steps: &[(usize, Mutation)],
    actors: &[&str],
    confined: bool,
) -> (State, State, Vec<String>) {
    let before = fixture();
    let mut state = before.clone();
    let mut applied = Vec::new();
    let now = Timestamp::now();
    for (who, m) in steps {
        let actor = Actor::User(UserId::new(actors[who % actors.len()]).unwrap());
        if confined && check_confined(&state, &["acme".to_owned()], m).is_err() {
            continue;
        }
        let authority = state.clone();
        if let Ok((next, _)) = validate(&state, &authority, &actor, m, now) {
            applied.push(format!("{actor:?}: {}", serde_json::to_string(m).unwrap()));
            state = next;
        }
    }
    (before, state, applied)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Actors whose rights are all in `acme` never change what `beta` sees.
    #[test]
    fn actors_of_one_tenant_never_change_what_another_sees(
        steps in prop::collection::vec((0usize..3, mutation()), 1..40)
    ) {
        let (before, after, applied) = run(&steps, &ACME_ONLY, false);
        assert_beta_unchanged(&before, &after, &applied);
    }

    /// A credential confined to `acme` never changes what `beta` sees,
    /// whoever it acts as: even `pat` and `boss`, Administrators of `beta`.
    #[test]
    fn a_credential_confined_to_one_tenant_never_changes_another(
        steps in prop::collection::vec((0usize..8, mutation()), 1..40)
    ) {
        let (before, after, applied) = run(&steps, &USERS, true);
        assert_beta_unchanged(&before, &after, &applied);
    }
}

/// The property is not empty: acme's actors do change acme (so the
/// generator reaches accepted changes), and an actor with rights in `beta`
/// does change it (so the comparison would see a change).
#[test]
fn the_properties_have_teeth() {
    let steps = [
        (
            0,
            Mutation::AddUser {
                tenant: TenantId::new("acme").unwrap(),
                user: UserId::new("newbie").unwrap(),
                email: None,
                display_name: None,
                status: UserStatus::Active,
                aliases: Vec::new(),
                attributes: Default::default(),
            },
        ),
        (
            1,
            Mutation::UpdateUserInfo {
                user: UserId::new("sam").unwrap(),
                email: Some("sam@acme.test".into()),
                display_name: None,
                aliases: None,
                attributes: None,
            },
        ),
    ];
    // ann adds newbie to acme; dan may not edit sam's profile: beta sees it.
    let (before, after, applied) = run(&steps, &ACME_ONLY, false);
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_ne!(before.tenants.get("acme"), after.tenants.get("acme"));
    assert_beta_unchanged(&before, &after, &applied);

    // With beta sharing its users, the seeds' rule lets dan edit sam's
    // profile (Edit Users in acme, one of sam's tenants), which beta sees.
    let mut shared = fixture();
    let beta = TenantId::new("beta").unwrap();
    let consent = Mutation::UpdateTenant {
        tenant: beta.clone(),
        name: None,
        settings: Some(SettingsChange {
            shared_users: Some(true),
            ..SettingsChange::default()
        }),
    };
    let boss = Actor::User(UserId::new("boss").unwrap());
    shared = validate(&shared, &shared.clone(), &boss, &consent, Timestamp::now())
        .unwrap()
        .0;
    let dan = Actor::User(UserId::new("dan").unwrap());
    let (_, edited) = (
        (),
        validate(
            &shared,
            &shared.clone(),
            &dan,
            &steps[1].1,
            Timestamp::now(),
        )
        .unwrap()
        .0,
    );
    let email = |s: &State| {
        s.tenants["beta"].users[&UserId::new("sam").unwrap()]
            .email()
            .map(str::to_owned)
    };
    assert_eq!(email(&edited).as_deref(), Some("sam@acme.test"));
    // Yet a credential confined to acme may not, even then.
    let refused = check_confined(&shared, &["acme".to_owned()], &steps[1].1).unwrap_err();
    assert!(refused.to_string().contains("confined"), "{refused}");
}
