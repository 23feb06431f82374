//! Every administration rule, as data: `tests/rules/tests.yaml` runs through
//! the admin rules (`model::rules::validate`) step by step.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;

use rampart::cli::policy_test::{Summary, run_file};

#[test]
fn every_rule_holds() {
    let mut summary = Summary::default();
    run_file(Path::new("tests/rules/tests.yaml"), false, &mut summary);
    assert_eq!(summary.failed, 0, "{}", summary.report);
    assert!(summary.passed >= 80, "only {} steps ran", summary.passed);
}

/// Every example policy, replayed as operator mutations from an empty state,
/// is the same state: bootstrapping a store from a file loses nothing.
#[test]
fn every_example_bootstraps_as_mutations() {
    use rampart::model::{State, apply, policy_file};
    for dir in std::fs::read_dir("examples").unwrap() {
        let path = dir.unwrap().path().join("policy.yaml");
        if !path.exists() {
            continue;
        }
        let state = policy_file::load_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut rebuilt = State::new();
        for m in policy_file::to_mutations(&state) {
            apply(&mut rebuilt, &m).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        rebuilt.revision = state.revision;
        assert_eq!(rebuilt, state, "{}", path.display());
    }
}
