//! The `rampart` binary as a user runs it: `validate`, `test`, and `serve`
//! with the built-in quickstart answering over gRPC.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::process::Command;

mod common;
use common::BIN;

#[test]
fn validate_reports_every_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "catalog: [{ permission: \"a\" }]\ntenants:\n  - id: t\n    roles: [{ name: r, grants: [\"b\", \"a:*\"] }]\n    bindings: [{ subject: ghost, role: r }]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 error(s)"), "{err}");
    assert!(
        err.contains("tenants[t].roles[r].grants[0]: grant `b` is not covered by the catalog"),
        "{err}"
    );
    assert!(
        err.contains("tenants[t].roles[r].grants[1]: grant `a:*` is not covered"),
        "{err}"
    );
    assert!(
        err.contains("tenants[t].bindings[0]: unknown user `ghost`"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["validate", "examples/quickstart/policy.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn test_prints_failures_and_a_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "examples/quickstart/policy.yaml",
        dir.path().join("policy.yaml"),
    )
    .unwrap();
    let tests = dir.path().join("tests.yaml");
    std::fs::write(
        &tests,
        "policy: policy.yaml\nchecks:\n  - { name: right, tenant: acme, subject: alice, permission: documents:view, expect: allow }\n  - { name: wrong, tenant: acme, subject: alice, permission: documents:view, expect: deny, reason: NO_MATCHING_GRANT }\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("test").arg(&tests).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL"), "{text}");
    assert!(
        text.contains("expected deny (NO_MATCHING_GRANT), got allow (GRANTED)"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("1 passed, 1 failed"));

    let out = Command::new(BIN)
        .args(["test", "examples/quickstart/tests.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(" passed, 0 failed\n"));
}

#[test]
fn serve_starts_with_the_builtin_quickstart_and_stops_on_sigterm() {
    let port = common::free_port();
    let data = tempfile::tempdir().unwrap();
    let server = common::Server::start(data.path(), port);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let response = runtime.block_on(async {
        use rampart::server::proto::{CheckRequest, authorization_client::AuthorizationClient};
        let mut c = AuthorizationClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        c.check(CheckRequest {
            tenant: "acme".into(),
            subject: "alice".into(),
            permission: "documents:edit:locked".into(),
            consistency: None,
            explain: false,
        })
        .await
        .unwrap()
        .into_inner()
    });
    assert_eq!(
        response.reason(),
        rampart::server::proto::Reason::DeniedByGrant
    );

    // SIGTERM: a clean exit.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}
