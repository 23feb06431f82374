//! Faults the fuzz targets (`fuzz/`, README "Fuzzing") found, each kept as
//! a test with the smallest input that shows it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use rampart::model::policy_file::{load_str, to_mutations};
use rampart::model::{RoleName, State, apply};
use rampart::replication::export::digest;

/// Found by `policy_file`: a policy file may give the `Users` role a
/// description, but the bootstrap mutations (what `rampart serve` writes
/// to an empty store) only set a system role's grants, so a store
/// bootstrapped from the file held another state than the file, with
/// another digest.
#[test]
fn bootstrap_keeps_the_users_role_description() {
    let text = r#"
catalog: [{ permission: "reports:view" }]
tenants:
  - id: acme
    roles:
      - { name: Users, description: "Every member", grants: ["reports:view"] }
      - { name: viewers, description: "Read reports" }
"#;
    let state = load_str(text).unwrap();
    let mut rebuilt = State::new();
    for m in to_mutations(&state) {
        apply(&mut rebuilt, &m).unwrap();
    }
    rebuilt.revision = state.revision;
    let users = &rebuilt.tenant("acme").unwrap().roles[&RoleName::users()];
    assert_eq!(users.description, "Every member");
    assert_eq!(rebuilt, state);
    assert_eq!(digest(&rebuilt).unwrap(), digest(&state).unwrap());
}
