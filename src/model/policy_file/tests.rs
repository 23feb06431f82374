use super::*;

const GOOD: &str = r#"
catalog:
  - { permission: "documents:view", category: Docs }
  - { permission: "documents:edit:?DOC?", category: Docs }
tenants:
  - id: acme
    name: Acme Corp
    settings: { single_role_per_user: false }
    roles:
      - name: editors
        description: Edit documents
        grants: ["documents:view", "documents:edit:*", { deny: "documents:edit:locked" }]
      - name: Users
        grants: ["documents:view"]
    groups:
      - { name: engineering, members: [alice, "group:platform"] }
      - { name: platform, members: [bob] }
    users:
      - { id: alice, email: alice@acme.test, status: active }
      - { id: bob }
    bindings:
      - { subject: alice, role: editors }
      - { subject: "group:engineering", role: editors, expires: "2027-01-01T00:00:00Z" }
      - { subject: bob, role: Administrators }
"#;

#[test]
fn loads_the_documented_shape() {
    let state = load_str(GOOD).unwrap();
    let acme = state.tenant("acme").unwrap();
    assert_eq!(acme.name, "Acme Corp");
    let editors = &acme.roles[&RoleName::new("editors").unwrap()];
    assert_eq!(editors.grants.len(), 3);
    assert_eq!(editors.grants[2].effect, Effect::Deny);
    assert_eq!(acme.roles[&RoleName::users()].grants.len(), 1);
    assert_eq!(acme.bindings.len(), 3);
    assert_eq!(acme.groups.len(), 2);
    assert_eq!(state.revision, 1);
}

#[test]
fn reports_every_error_with_its_location() {
    let bad = r#"
catalog:
  - { permission: "documents:view" }
  - { permission: "documents:view" }
tenants:
  - id: acme
    roles:
      - { name: editors, grants: ["documents:view", "documents:view", "nope:x", "a::b"] }
      - { name: Administrators }
      - { name: "   " }
      - { name: editors }
      - { name: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }
    groups:
      - { name: a, members: ["group:b", ghost] }
      - { name: b, members: ["group:a"] }
    users:
      - { id: alice, status: sleeping, email: "not-an-email" }
    bindings:
      - { subject: alice, role: nobody }
      - { subject: "group:zzz", role: Users }
      - { subject: alice, role: Users, expires: tomorrow }
"#;
    let errors = load_str(bad).unwrap_err().0;
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let has = |needle: &str| {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "missing `{needle}` in {text:#?}"
        )
    };
    has("catalog[1]: catalog entry `documents:view` is listed twice");
    has("tenants[acme].roles[editors].grants[1]: duplicate grant `allow documents:view`");
    has("tenants[acme].roles[editors].grants[2]: grant `nope:x` is not covered by the catalog");
    has("tenants[acme].roles[editors].grants[3]: permission `a::b` has an empty segment");
    has("tenants[acme].roles[Administrators]: system role `Administrators` is protected");
    has("tenants[acme].roles[   ]: role name `   ` must not be blank");
    has("duplicate role `editors`");
    has("is longer than 100 characters");
    has("tenants[acme].groups[a].members[1]: unknown user `ghost`");
    has("would make a cycle");
    has("tenants[acme].users[alice]: status `sleeping`");
    has("`not-an-email` is not an email address");
    has("tenants[acme].bindings[0]: unknown role `nobody`");
    has("tenants[acme].bindings[1]: unknown group `zzz`");
    has("tenants[acme].bindings[2]: `tomorrow` is not an RFC 3339 time");
    assert_eq!(errors.len(), 15, "{text:#?}");
}

#[test]
fn mutations_rebuild_the_same_state() {
    let state = load_str(GOOD).unwrap();
    let mut rebuilt = State::new();
    for m in to_mutations(&state) {
        crate::model::apply(&mut rebuilt, &m).unwrap();
    }
    rebuilt.revision = state.revision;
    assert_eq!(rebuilt, state);
}

#[test]
fn single_role_per_user_refuses_two_roles() {
    let text = r#"
catalog: [{ permission: "x" }]
tenants:
  - id: t
    settings: { single_role_per_user: true }
    roles: [{ name: a }, { name: b }]
    users: [{ id: u }]
    bindings: [{ subject: u, role: a }, { subject: u, role: b }]
"#;
    let errors = load_str(text).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("single_role_per_user"));
}

#[test]
fn yaml_errors_name_the_line() {
    let errors = load_str("tenants: [ { id: a, bogus: 1 } ]").unwrap_err().0;
    assert_eq!(errors[0].at, "yaml");
    assert!(errors[0].message.contains("bogus"), "{}", errors[0].message);
}

#[test]
fn deeply_nested_flow_collections_are_refused_before_parsing() {
    let text = format!("tenants: {}", "[".repeat(100_000));
    let errs = load_str(&text).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert_eq!(errs.0[0].at, "yaml");
    assert!(
        errs.0[0].message.contains("nesting depth") && errs.0[0].message.contains("64"),
        "{errs}"
    );
    let braces = load_str(&"{a: ".repeat(100_000)).unwrap_err();
    assert!(braces.0[0].message.contains("nesting depth"), "{braces}");
    // Ordinary files (flow lists and maps a level or two deep) still load.
    assert!(load_str(GOOD).is_ok());
    assert!(load_str(crate::model::QUICKSTART_POLICY).is_ok());
}

#[test]
fn free_text_is_bounded_and_printable_in_the_file() {
    let long = "x".repeat(1_001);
    let text = format!(
        r#"
catalog:
  - {{ permission: "a:b", category: "bad\u001b[2J", description: "{long}" }}
tenants:
  - id: acme
    name: "Acme\r"
    roles:
      - {{ name: editors, description: "{long}" }}
    groups:
      - {{ name: eng, description: "tab\there" }}
    users:
      - {{ id: alice, display_name: "{long}" }}
"#
    );
    let errs = load_str(&text).unwrap_err();
    let found: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    for want in [
        "catalog[0]: `category` has a control character (\\u{1b})",
        "tenants[acme]: `name` has a control character (\\r)",
        "tenants[acme].roles[editors]: `description` is longer than 1000 characters",
        "tenants[acme].groups[eng]: `description` has a control character (\\t)",
        "tenants[acme].users[alice]: `display_name` is longer than 200 characters",
    ] {
        assert!(found.iter().any(|f| f == want), "{want} not in {found:#?}");
    }
    assert!(
        !found.iter().any(|f| f.contains(&long)),
        "no message echoes the text whole"
    );
}

const ALIASES: &str = r#"
tenants:
  - id: acme
    users:
      - { id: rick, aliases: ["spiffe://cluster.local/ns/shop/sa/cart", E-1001] }
      - { id: morty }
  - id: beta
    users:
      - { id: rick }
"#;

#[test]
fn aliases_load_are_shared_and_round_trip() {
    let state = load_str(ALIASES).unwrap();
    let rick = UserId::new("rick").unwrap();
    for tenant in ["acme", "beta"] {
        let t = state.tenant(tenant).unwrap();
        // Given once, they are the user's in every tenant, and indexed.
        assert_eq!(t.users[&rick].aliases().len(), 2, "{tenant}");
        assert_eq!(t.alias_owner("E-1001"), Some(&rick), "{tenant}");
        assert!(t.alias_index_is_consistent());
    }
    // Bootstrapping from the file rebuilds the same state, index included.
    let mut rebuilt = State::new();
    for m in to_mutations(&state) {
        crate::model::apply(&mut rebuilt, &m).unwrap();
    }
    rebuilt.revision = state.revision;
    assert_eq!(rebuilt, state);
}

#[test]
fn alias_errors_have_locations() {
    let long = "x".repeat(513);
    let many: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
    let bad = format!(
        r#"
tenants:
  - id: acme
    users:
      - {{ id: rick, aliases: ["has space", "group:x", "{long}", rick, E-1, E-1] }}
      - {{ id: morty, aliases: [E-1, rick] }}
      - {{ id: summer, aliases: [{}] }}
  - id: beta
    users:
      - {{ id: rick, aliases: [other] }}
"#,
        many.join(", ")
    );
    let errors = load_str(&bad).unwrap_err().0;
    let at = |place: &str, text: &str| {
        errors
            .iter()
            .any(|e| e.at == place && e.message.contains(text))
    };
    let rick = "tenants[acme].users[rick]";
    assert!(
        at(&format!("{rick}.aliases[0]"), "ASCII graphic"),
        "{errors:?}"
    );
    assert!(at(&format!("{rick}.aliases[1]"), "starts with `group:`"));
    assert!(at(&format!("{rick}.aliases[2]"), "longer than 512 bytes"));
    assert!(at(&format!("{rick}.aliases[3]"), "own id"));
    assert!(at(&format!("{rick}.aliases[5]"), "listed twice"));
    assert!(at("tenants[acme].users[summer].aliases", "at most 16"));
    assert!(at(
        "tenants[beta].users[rick]",
        "other aliases in tenant `acme`"
    ));
    // Clashes are found once the file's profiles are whole, so only on a
    // file that is otherwise fine.
    let clash = r#"
tenants:
  - id: acme
    users:
      - { id: rick, aliases: [E-1] }
      - { id: morty, aliases: [E-1, rick] }
  - id: beta
    users:
      - { id: rick }
      - { id: E-1 }
"#;
    let errors = load_str(clash).unwrap_err().0;
    let at = |place: &str, text: &str| {
        errors
            .iter()
            .any(|e| e.at == place && e.message.contains(text))
    };
    // Users are read in id order: morty holds E-1 first.
    let (morty, rick) = (
        "tenants[acme].users[morty].aliases",
        "tenants[acme].users[rick].aliases",
    );
    assert!(at(rick, "also an alias of user `morty`"), "{errors:?}");
    assert!(at(morty, "is the id of user `rick`"), "{errors:?}");
    // rick's alias, shared to beta, is a member's id there.
    assert!(
        at(
            "tenants[beta].users[rick].aliases",
            "is the id of user `E-1`"
        ),
        "{errors:?}"
    );
}

#[test]
fn guard_settings_load_and_are_checked() {
    let text = r#"
catalog:
  - { permission: "reports:view" }
  - { permission: "reports:beta", stability: preview }
tenants:
  - id: acme
    settings:
      administrator_roles: [company-admin]
      removal_needs_all_grants: true
      users_role_removals_only: true
      preview_grants: refuse
      deprecated_grants: warn
    roles:
      - { name: company-admin, grants: ["reports:view"] }
"#;
    let state = load_str(text).unwrap();
    let s = &state.tenant("acme").unwrap().settings;
    assert_eq!(
        s.administrator_roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
        ["company-admin"]
    );
    assert!(s.removal_needs_all_grants && s.users_role_removals_only);
    assert_eq!(s.preview_grants, GrantPolicy::Refuse);
    assert_eq!(s.deprecated_grants, GrantPolicy::Warn);
    // Replayed as mutations, the settings come back the same.
    let mut replayed = State::new();
    for m in to_mutations(&state) {
        crate::model::apply(&mut replayed, &m).unwrap();
    }
    assert_eq!(replayed.tenant("acme").unwrap().settings, *s);

    let bad = r#"
catalog:
  - { permission: "reports:beta", stability: preview }
tenants:
  - id: acme
    settings: { administrator_roles: [ghost, Users], preview_grants: refuse, deprecated_grants: sometimes }
    roles:
      - { name: testers, grants: ["reports:*"] }
"#;
    let e = load_str(bad).unwrap_err().to_string();
    assert!(e.contains("sometimes"), "{e}");
    let bad = bad.replace(", deprecated_grants: sometimes", "");
    let e = load_str(&bad).unwrap_err().to_string();
    assert!(e.contains("unknown role `ghost`"), "{e}");
    assert!(e.contains("`Users` is a system role"), "{e}");
    assert!(
        e.contains("`reports:*` reaches catalog entry `reports:beta`, which is preview"),
        "{e}"
    );
}
