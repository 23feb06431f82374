//! The example policies in `examples/`: each one loads, and its policy tests
//! (`tests.yaml`) pass with at least 15 checks and a minimum number of admin
//! steps (accepted and refused, ending with checks that prove their effect).
//! The set of examples is fixed (the five seed systems and the AuthZEN
//! interop scenario), so a missing one fails here. The rediacc example's load-time rules (one
//! permission group per user, protected system groups, ...) are shown by
//! editing its policy and expecting the loader to refuse it.

// Helpers outside `#[test]` functions fail the test with a message, too.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rampart::cli::policy_test::{Summary, run_file};
use rampart::model::policy_file::load_str;

const EXPECTED: [&str; 6] = [
    "authzen-todo",
    "caosdb",
    "iot-platform",
    "quickstart",
    "reflex",
    "rediacc",
];
const MIN_CHECKS: usize = 15;
/// The fewest admin steps (`do:`) each example's `steps:` must have.
const MIN_ADMIN_STEPS: [(&str, usize); 6] = [
    ("authzen-todo", 4),
    ("caosdb", 15),
    ("iot-platform", 35),
    ("quickstart", 8),
    ("reflex", 15),
    ("rediacc", 80),
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every folder in `examples/` that has a `tests.yaml`, by name.
fn example_folders() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(examples_dir())
        .expect("examples/ is readable")
        .map(|entry| entry.expect("examples/ entry").path())
        .filter(|path| path.is_dir() && path.join("tests.yaml").is_file())
        .map(|path| {
            let name = path
                .file_name()
                .expect("a folder name")
                .to_string_lossy()
                .into_owned();
            (name, path)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_examples_are_exactly_the_five_seed_systems_and_the_authzen_scenario() {
    let names: BTreeSet<String> = example_folders()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let expected: BTreeSet<String> = EXPECTED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(names, expected, "example folders with a tests.yaml");
}

#[test]
fn every_example_policy_loads() {
    for (name, dir) in example_folders() {
        let path = dir.join("policy.yaml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let state = load_str(&text).unwrap_or_else(|e| panic!("examples/{name}/policy.yaml: {e}"));
        assert!(
            !state.tenants.is_empty(),
            "examples/{name}/policy.yaml has no tenant"
        );
    }
}

#[test]
fn every_example_passes_its_policy_tests() {
    for (name, dir) in example_folders() {
        let mut summary = Summary::default();
        run_file(&dir.join("tests.yaml"), false, &mut summary);
        assert_eq!(
            summary.failed, 0,
            "examples/{name}/tests.yaml: {} failed\n{}",
            summary.failed, summary.report
        );
        assert!(
            summary.passed >= MIN_CHECKS,
            "examples/{name}/tests.yaml: only {} checks passed, want at least {MIN_CHECKS}\n{}",
            summary.passed,
            summary.report
        );
    }
}

#[test]
fn every_example_has_admin_steps_that_end_with_checks() {
    for (name, dir) in example_folders() {
        let path = dir.join("tests.yaml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let steps = file
            .get("steps")
            .and_then(serde_norway::Value::as_sequence)
            .unwrap_or_else(|| panic!("examples/{name}/tests.yaml has no `steps:`"));
        let field = |step: &serde_norway::Value, key: &str| {
            step.get(key)
                .and_then(serde_norway::Value::as_str)
                .map(str::to_owned)
        };
        let admin: Vec<&serde_norway::Value> =
            steps.iter().filter(|s| s.get("do").is_some()).collect();
        let min = MIN_ADMIN_STEPS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, m)| *m);
        assert!(
            admin.len() >= min,
            "examples/{name}/tests.yaml: {} admin steps, want at least {min}",
            admin.len()
        );
        let accepted = admin
            .iter()
            .filter(|s| field(s, "expect").as_deref() == Some("OK"))
            .count();
        assert!(
            accepted > 0 && accepted < admin.len(),
            "examples/{name}/tests.yaml: want both accepted and refused admin steps ({accepted} of {} accepted)",
            admin.len()
        );
        assert!(
            steps.iter().all(|s| field(s, "name").is_some()),
            "examples/{name}/tests.yaml: every step has a name"
        );
        assert!(
            steps.last().is_some_and(|s| s.get("check").is_some()),
            "examples/{name}/tests.yaml: the steps end with a check proving their effect"
        );
    }
}

fn rediacc_policy() -> String {
    let path = examples_dir().join("rediacc").join("policy.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with the one occurrence of `from` replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` should occur once in the policy"
    );
    text.replacen(from, to, 1)
}

/// Loads `text`, expects it refused, and expects one error mentioning `needle`.
fn refused_with(text: &str, needle: &str) {
    let errors = load_str(text)
        .expect_err("the edited policy should be refused")
        .0;
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        messages.iter().any(|m| m.contains(needle)),
        "no error mentions `{needle}`: {messages:#?}"
    );
}

#[test]
fn rediacc_a_user_belongs_to_one_permission_group() {
    let binding = "      - { subject: john@company.com, role: developers }\n";
    let text = edit(
        &rediacc_policy(),
        binding,
        &format!("{binding}      - {{ subject: john@company.com, role: read-only }}\n"),
    );
    refused_with(&text, "single_role_per_user");
}

#[test]
fn rediacc_administrators_and_bridges_take_no_permissions() {
    for system in ["Administrators", "Bridges"] {
        let text = edit(
            &rediacc_policy(),
            "    roles:\n",
            &format!("    roles:\n      - {{ name: {system}, grants: [CreateMachine] }}\n"),
        );
        refused_with(&text, &format!("system role `{system}` is protected"));
    }
}

#[test]
fn rediacc_no_duplicate_permissions_in_a_group() {
    let text = edit(
        &rediacc_policy(),
        "grants: [CreateMachine, GetTeamMachines]",
        "grants: [CreateMachine, GetTeamMachines, CreateMachine]",
    );
    refused_with(&text, "duplicate grant `allow CreateMachine`");
}

#[test]
fn rediacc_permissions_must_be_system_permission_names() {
    let text = edit(
        &rediacc_policy(),
        "grants: [CreateMachine, GetTeamMachines]",
        "grants: [CreateMachine, GetTeamMachines, ListMachines]",
    );
    refused_with(&text, "grant `ListMachines` is not covered by the catalog");
}

#[test]
fn rediacc_group_names_are_at_most_100_characters() {
    let long = "g".repeat(101);
    let text = edit(
        &rediacc_policy(),
        "    roles:\n",
        &format!("    roles:\n      - {{ name: {long} }}\n"),
    );
    refused_with(&text, "is longer than 100 characters");
}
