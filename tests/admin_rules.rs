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
