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
fn test_names_the_read_and_audit_steps_that_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("tests/rules/policy.yaml", dir.path().join("policy.yaml")).unwrap();
    let tests = dir.path().join("tests.yaml");
    std::fs::write(
        &tests,
        r#"policy: policy.yaml
tenant: acme
steps:
  - { name: bob sees editors, as: bob, read: list_roles, expect: OK, rows: [editors] }
  - { name: alice reads a role, as: alice, read: get_role, args: { role: editors }, expect: OK, count: 2 }
  - { name: logged as applied, as: bob, do: create_role, args: { role: z }, expect: PERMISSION_DENIED, expect_audit: { outcome: applied } }
  - { name: logged as refused, as: bob, do: create_role, args: { role: z }, expect: PERMISSION_DENIED, expect_audit: { actor: bob, outcome: refused } }
  - { name: rows on a change, do: create_role, args: { role: z }, expect: OK, rows: [z] }
  - { name: a read of nothing, read: list_roles, args: { role: z }, expect: OK }
  - { name: audit of a read, read: list_users, expect: OK, expect_audit: { outcome: applied } }
"#,
    )
    .unwrap();
    let out = Command::new(BIN).arg("test").arg(&tests).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "FAIL {}: bob sees editors\n     list_roles: expected rows {{\"editors\"}}, got {{}}",
        tests.display()
    );
    assert!(text.contains(&want), "{text}");
    assert!(
        text.contains(
            "logged as applied\n     create_role: expect_audit: outcome `applied` expected, the record has `refused`"
        ),
        "{text}"
    );
    assert!(
        text.contains("rows on a change\n     `rows` and `count` go with a `read` step"),
        "{text}"
    );
    assert!(
        text.contains("a read of nothing\n     list_roles: takes no args"),
        "{text}"
    );
    assert!(
        text.contains("audit of a read\n     `expect_audit` goes with a `do` step"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("2 passed, 5 failed"), "{text}");

    // A field no step has: the file does not load, and the error names the step.
    std::fs::write(
        &tests,
        "policy: policy.yaml\ntenant: acme\nsteps:\n  - { name: typo, read: list_roles, expect: OK, row: [x] }\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("test").arg(&tests).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("steps[0]: unknown field `row`"), "{text}");
}

#[test]
fn serve_starts_with_the_builtin_quickstart_and_stops_on_sigterm() {
    let port = common::free_port();
    let data = tempfile::tempdir().unwrap();
    let server = common::Server::start(data.path(), port);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let response = runtime.block_on(async {
        use rampart::proto::{CheckRequest, authorization_client::AuthorizationClient};
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
    assert_eq!(response.reason(), rampart::proto::Reason::DeniedByGrant);

    // SIGTERM: a clean exit.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// `rampart ctl ARGS` against `port`: (exit code, stdout, stderr).
fn ctl(port: u16, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--server", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_json(port: u16, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = ctl(port, &all);
    assert_eq!(code, 0, "ctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_replica_process_follows_and_a_backup_round_trips_through_ctl() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, p3) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let leader = common::Server::start(&dir.path().join("leader"), p1);
    let leader_url = format!("http://127.0.0.1:{p1}");
    let replica =
        common::Server::start_with(&dir.path().join("replica"), p2, &["--follow", &leader_url]);

    // Write on the leader, read the write on the replica.
    let done = ctl_json(p1, &["user", "add", "--tenant", "acme", "--user", "zoe"]);
    let revision = done["revision"].as_u64().unwrap();
    ctl_json(
        p1,
        &[
            "assign",
            "--tenant",
            "acme",
            "--subject",
            "zoe",
            "--role",
            "editors",
        ],
    );
    let answer = ctl_json(
        p2,
        &[
            "check",
            "--tenant",
            "acme",
            "--subject",
            "zoe",
            "--permission",
            "documents:edit:readme",
            "--at-least-revision",
            &(revision + 1).to_string(),
        ],
    );
    assert_eq!(answer["decision"], "allow", "{answer}");
    let lead = ctl_json(p1, &["status", "--digest"]);
    let rep = ctl_json(p2, &["status", "--digest"]);
    assert_eq!(rep["role"], "replica");
    assert_eq!(rep["revision"], lead["revision"]);
    assert_eq!(rep["digest"], lead["digest"]);
    assert_eq!(rep["history"], lead["history"]);
    assert_eq!(rep["leader"], leader_url.as_str());
    // kill -9 the replica, change more on the leader, restart the replica
    // on its store: it resumes and converges.
    drop(replica);
    for u in ["k1", "k2", "k3"] {
        ctl_json(p1, &["user", "add", "--tenant", "acme", "--user", u]);
    }
    let replica =
        common::Server::start_with(&dir.path().join("replica"), p2, &["--follow", &leader_url]);
    let lead = ctl_json(p1, &["status", "--digest"]);
    let head = lead["revision"].as_u64().unwrap().to_string();
    let answer = ctl_json(
        p2,
        &[
            "check",
            "--tenant",
            "acme",
            "--subject",
            "k3",
            "--permission",
            "documents:view",
            "--at-least-revision",
            &head,
        ],
    );
    assert_eq!(answer["revision"], lead["revision"], "{answer}");
    let rep = ctl_json(p2, &["status", "--digest"]);
    assert_eq!(rep["digest"], lead["digest"]);
    assert_eq!(rep["rebootstraps"], 0, "it resumed from its own store");
    // Admin calls on the replica are refused, naming the leader.
    let (code, _, err) = ctl(p2, &["user", "add", "--tenant", "acme", "--user", "x"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("FAILED_PRECONDITION") && err.contains(&leader_url),
        "{err}"
    );
    // The changelog, every revision in order.
    let (code, out, err) = ctl(
        p1,
        &[
            "-o",
            "json",
            "watch",
            "--from-revision",
            "0",
            "--until-idle",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let revisions: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["revision"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let head = lead["revision"].as_u64().unwrap();
    assert_eq!(revisions, (1..=head).collect::<Vec<_>>());

    // Backup and restore into an empty node: the same digest, the same bytes.
    let backup = dir.path().join("backup.jsonl");
    let (code, _, err) = ctl(p2, &["export", "--file", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(lead["digest"].as_str().unwrap()), "{err}");
    let restored =
        common::Server::start_with(&dir.path().join("restored"), p3, &["--no-bootstrap"]);
    let imported = ctl_json(
        p3,
        &[
            "import",
            backup.to_str().unwrap(),
            "--expect-digest",
            lead["digest"].as_str().unwrap(),
        ],
    );
    assert_eq!(imported["digest"], lead["digest"]);
    assert_ne!(imported["history"], lead["history"]);
    let again = dir.path().join("again.jsonl");
    assert_eq!(ctl(p3, &["export", "--file", again.to_str().unwrap()]).0, 0);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let (code, _, err) = ctl(p3, &["import", backup.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("import only into an empty store"), "{err}");

    for s in [replica, restored, leader] {
        assert!(s.terminate().success());
    }
}

#[test]
fn config_file_precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rampart.toml");
    std::fs::write(
        &file,
        "max_batch = 50\nconsistency-wait-ms = 250\nstrict_catalog = true\nretain_for = \"7d\"\nshutdown_grace_ms = 1234\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--consistency-wait-ms", "10", "--print-config"])
        .env("RAMPART_MAX_BATCH", "70")
        .env("RAMPART_SHUTDOWN_GRACE_MS", "")
        .env_remove("RAMPART_SHUTDOWN_GRACE_MS")
        .env("RAMPART_FOLLOW_TOKEN", "super-secret-value")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"))
            .to_owned()
    };
    assert!(
        line("consistency_wait_ms").contains("= 10 ")
            && line("consistency_wait_ms").ends_with("# flag")
    );
    assert!(line("max_batch").contains("= 70 ") && line("max_batch").ends_with("# environment"));
    assert!(
        line("strict_catalog").contains("= true ") && line("strict_catalog").ends_with("# file")
    );
    assert!(line("retain_for").contains("\"7d\"") && line("retain_for").ends_with("# file"));
    assert!(line("shutdown_grace_ms").contains("= 1234 "));
    assert!(line("checkpoint_every").ends_with("# default"));
    assert!(!text.contains("super-secret-value"), "secrets are redacted");
    assert!(text.contains("RAMPART_FOLLOW_TOKEN: set (redacted)"));

    // A bad key or value exits 64 naming the key.
    for (content, want) in [
        ("max_batch = 0\n", "key `max_batch`"),
        ("nope = 1\n", "key `nope`: not a `rampart serve` setting"),
        ("insecure = \"yes\"\n", "key `insecure`"),
        ("max_batch = \n", "not valid TOML"),
    ] {
        std::fs::write(&file, content).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{content}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{content}: {err}");
    }
    // The documented example parses.
    let out = Command::new(BIN)
        .args(["serve", "--config", "deploy/rampart.toml", "--print-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_drains_in_flight_calls_and_closes_watch_streams() {
    use rampart::proto::replication_client::ReplicationClient;
    use rampart::proto::{
        CheckRequest, Consistency, WatchRequest, authorization_client::AuthorizationClient,
        consistency::Requirement,
    };
    let port = common::free_port();
    let data = tempfile::tempdir().unwrap();
    let server = common::Server::start_with(
        data.path(),
        port,
        &[
            "--consistency-wait-ms",
            "1500",
            "--shutdown-grace-ms",
            "5000",
        ],
    );
    let url = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (slow, mut watch) = runtime.block_on(async {
        let mut watch = ReplicationClient::connect(url.clone())
            .await
            .unwrap()
            .watch(WatchRequest::default())
            .await
            .unwrap()
            .into_inner();
        // The stream is live: it has sent the changelog so far.
        assert!(watch.message().await.unwrap().is_some());
        // A call that takes 1.5 s: it waits for a revision that never comes.
        let mut c = AuthorizationClient::connect(url.clone()).await.unwrap();
        let slow = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let answer = c
                .check(CheckRequest {
                    tenant: "acme".into(),
                    subject: "alice".into(),
                    permission: "documents:view".into(),
                    consistency: Some(Consistency {
                        requirement: Some(Requirement::AtLeastRevision(1_000_000)),
                    }),
                    explain: false,
                })
                .await;
            (answer, started.elapsed())
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        (slow, watch)
    });
    server.sigterm();
    runtime.block_on(async {
        // The in-flight call is not cut: it ends as it would have, with
        // UNAVAILABLE naming the revision it waited for, after its full wait.
        let (answer, took) = slow.await.unwrap();
        let status = answer.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("at_least_revision"), "{status:?}");
        assert!(took >= std::time::Duration::from_millis(1_400), "{took:?}");
        // The Watch stream is closed by the server, not left hanging.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match watch.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(s) => return Some(s),
                }
            }
        })
        .await
        .expect("the Watch stream ends at shutdown");
        if let Some(s) = ended {
            assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        }
    });
    // And the process exits 0 within the grace period.
    let status = server.terminate_wait();
    assert!(status.success(), "{status:?}");
}
