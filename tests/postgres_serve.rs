//! `rampart serve --store postgres://…` against a real, throwaway
//! PostgreSQL (tests/common/postgres.rs; skipped, saying so, where it is
//! not installed): a node bootstraps into the database, serves, restarts
//! and recovers from it; an outage refuses writes as UNAVAILABLE naming the
//! store while checks keep answering.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::process::Command;

use common::{BIN, Server};

/// `rampart ctl -o json ARGS` against `port`: (exit code, stdout, stderr).
fn ctl(port: u16, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args([
            "ctl",
            "-o",
            "json",
            "--server",
            &format!("127.0.0.1:{port}"),
        ])
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
    let (code, out, err) = ctl(port, args);
    assert_eq!(code, 0, "ctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn check(port: u16, subject: &str) -> serde_json::Value {
    ctl_json(
        port,
        &[
            "check",
            "--tenant",
            "acme",
            "--subject",
            subject,
            "--permission",
            "documents:edit:readme",
        ],
    )
}

#[test]
fn a_node_on_postgres_bootstraps_serves_restarts_and_recovers() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let server = Server::start_with(&dir.path().join("unused"), port, &["--store", &url]);
    let bootstrapped = ctl_json(port, &["status"])["revision"].as_u64().unwrap();
    assert!(bootstrapped > 0, "the quickstart policy was bootstrapped");
    ctl_json(port, &["user", "add", "--tenant", "acme", "--user", "zoe"]);
    let done = ctl_json(
        port,
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
    let revision = done["revision"].as_u64().unwrap();
    assert_eq!(revision, bootstrapped + 2);
    assert_eq!(check(port, "zoe")["decision"], "allow");
    let before = ctl_json(port, &["status", "--digest"]);
    assert!(server.terminate().success());
    // Nothing went to the data dir: the store is the database.
    assert!(!dir.path().join("unused").join("db").exists());

    // A restart (on another data dir, to be sure) recovers from PostgreSQL
    // and does not bootstrap again.
    let server = Server::start_with(&dir.path().join("other"), port, &["--store", &url]);
    let after = ctl_json(port, &["status", "--digest"]);
    assert_eq!(after["revision"], before["revision"]);
    assert_eq!(after["digest"], before["digest"]);
    assert_eq!(after["history"], before["history"]);
    let answer = check(port, "zoe");
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["revision"].as_u64().unwrap(), revision);
    let audit = ctl_json(port, &["audit", "--tenant", "acme"]);
    assert!(audit.to_string().contains("zoe"), "{audit}");
    // And it takes writes on top.
    let next = ctl_json(port, &["user", "add", "--tenant", "acme", "--user", "yan"]);
    assert_eq!(next["revision"].as_u64().unwrap(), revision + 1);
    assert!(server.terminate().success());
}

#[test]
fn an_outage_refuses_writes_as_unavailable_and_checks_keep_answering() {
    let Some(programs) = common::postgres::programs() else {
        common::postgres::skip();
        return;
    };
    // A cluster of its own: this test stops it.
    let cluster = common::postgres::Cluster::start(programs).unwrap();
    let url = cluster.database();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let server = Server::start_with(dir.path(), port, &["--store", &url]);
    ctl_json(port, &["user", "add", "--tenant", "acme", "--user", "zoe"]);
    let head = ctl_json(port, &["status"])["revision"].as_u64().unwrap();

    cluster.stop();
    let (code, _, err) = ctl(port, &["user", "add", "--tenant", "acme", "--user", "yan"]);
    assert_eq!(code, 1, "{err}");
    eprintln!("the refused write: {err}");
    assert!(
        err.contains("UNAVAILABLE: the change was not committed"),
        "{err}"
    );
    assert!(
        err.contains(&format!("PostgreSQL store `127.0.0.1:{}", cluster.port)),
        "{err}"
    );
    // Checks are answered from memory, at the last committed revision.
    let answer = check(port, "zoe");
    assert_eq!(answer["revision"].as_u64().unwrap(), head, "{answer}");
    // The outage shows in the node's state, naming the store.
    let state = ctl_json(port, &["status"]);
    assert_eq!(state["store_writable"], false, "{state}");
    assert!(
        state["store_error"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL store"),
        "{state}"
    );
    assert_eq!(state["revision"].as_u64().unwrap(), head, "{state}");

    // Back up: writes resume by themselves (the node retries the store once
    // a second) and land on the head.
    cluster.restart();
    let started = std::time::Instant::now();
    let next = loop {
        let (code, out, err) = ctl(port, &["user", "add", "--tenant", "acme", "--user", "yan"]);
        if code == 0 {
            break serde_json::from_str::<serde_json::Value>(&out).unwrap();
        }
        assert!(err.contains("UNAVAILABLE"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "writes did not resume after the database came back: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(next["revision"].as_u64().unwrap(), head + 1);
    let state = ctl_json(port, &["status"]);
    assert_eq!(state["store_writable"], true, "{state}");
    assert_eq!(state["store_error"], "", "{state}");
    assert!(server.terminate().success());
}

/// Two real nodes on one database: a write acknowledged by one is read
/// through the other, which follows the shared store by itself.
#[test]
fn two_nodes_on_one_database_read_each_others_writes() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (common::free_port(), common::free_port());
    let a = Server::start_with(&dir.path().join("a"), port_a, &["--store", &url]);
    // B starts on the bootstrapped database and does not bootstrap again.
    let b = Server::start_with(&dir.path().join("b"), port_b, &["--store", &url]);
    for (i, (write, read)) in [(port_a, port_b), (port_b, port_a)].into_iter().enumerate() {
        let user = format!("reader{i}");
        ctl_json(write, &["user", "add", "--tenant", "acme", "--user", &user]);
        let done = ctl_json(
            write,
            &[
                "assign",
                "--tenant",
                "acme",
                "--subject",
                &user,
                "--role",
                "editors",
            ],
        );
        let revision = done["revision"].as_u64().unwrap().to_string();
        let answer = ctl_json(
            read,
            &[
                "check",
                "--tenant",
                "acme",
                "--subject",
                &user,
                "--permission",
                "documents:edit:readme",
                "--at-least-revision",
                &revision,
            ],
        );
        assert_eq!(answer["decision"], "allow", "{answer}");
    }
    let (sa, sb) = (
        ctl_json(port_a, &["status", "--digest"]),
        ctl_json(port_b, &["status", "--digest"]),
    );
    assert_eq!(sa["revision"], sb["revision"]);
    assert_eq!(sa["digest"], sb["digest"]);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Nodes started together on an empty database race to bootstrap it: one
/// does, the others wait for it and follow, and every node serves the same
/// single bootstrap (none exits).
#[test]
fn nodes_started_together_on_an_empty_database_bootstrap_it_once() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let nodes: Vec<Server> = std::thread::scope(|s| {
        let starting: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let data = dir.path().join(format!("n{i}"));
                let url = url.clone();
                s.spawn(move || Server::start_with(&data, *port, &["--store", &url]))
            })
            .collect();
        starting.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let states: Vec<serde_json::Value> = ports
        .iter()
        .map(|p| ctl_json(*p, &["status", "--digest"]))
        .collect();
    // A node that followed may have looked before the last batch landed:
    // a write through each settles them on one head.
    for (i, port) in ports.iter().enumerate() {
        ctl_json(
            *port,
            &[
                "user",
                "add",
                "--tenant",
                "acme",
                "--user",
                &format!("n{i}"),
            ],
        );
    }
    let head = ctl_json(ports[2], &["status"])["revision"]
        .as_u64()
        .unwrap();
    let settled: Vec<serde_json::Value> = ports
        .iter()
        .map(|p| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let s = ctl_json(*p, &["status", "--digest"]);
                if s["revision"].as_u64().unwrap() >= head || std::time::Instant::now() > deadline {
                    return s;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
        .collect();
    // One bootstrap: every node started on the same one, and the three
    // writes came right after it.
    let bootstrap = states[0]["revision"].as_u64().unwrap();
    assert!(bootstrap > 0);
    assert!(
        states
            .iter()
            .all(|s| s["revision"].as_u64() == Some(bootstrap)),
        "{states:?}"
    );
    assert_eq!(head, bootstrap + 3);
    assert!(
        settled
            .windows(2)
            .all(|w| w[0]["revision"] == w[1]["revision"] && w[0]["digest"] == w[1]["digest"]),
        "{settled:?}"
    );
    for node in nodes {
        assert!(node.terminate().success());
    }
}

/// Another session holding the meta row (a node frozen inside its commit)
/// holds every node's writes: they are refused `UNAVAILABLE` naming the
/// store after `--store-timeout-ms`, the node stays up and answers checks,
/// and writes resume once the row is free.
#[test]
fn a_held_meta_row_refuses_writes_without_stopping_the_node() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut server = Server::start_with(
        &dir.path().join("n"),
        port,
        &["--store", &url, "--store-timeout-ms", "1500"],
    );
    ctl_json(
        port,
        &["user", "add", "--tenant", "acme", "--user", "before"],
    );
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = std::sync::mpsc::channel::<()>();
    let holder = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut tx = raw.transaction().unwrap();
            tx.query("SELECT * FROM rampart_meta FOR UPDATE", &[])
                .unwrap();
            held.send(()).unwrap();
            let _ = hold.recv();
            tx.rollback().unwrap();
        })
    };
    is_held.recv().unwrap();
    let (code, _, err) = ctl(port, &["user", "add", "--tenant", "acme", "--user", "held"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("UNAVAILABLE") || err.contains("unavailable"),
        "{err}"
    );
    assert!(err.contains("PostgreSQL store"), "{err}");
    assert_eq!(check(port, "alice")["decision"], "allow");
    assert!(server.0.try_wait().unwrap().is_none(), "the node stayed up");
    release.send(()).unwrap();
    holder.join().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (code, _, err) = ctl(
            port,
            &["user", "add", "--tenant", "acme", "--user", "after"],
        );
        if code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "writes did not resume: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(server.terminate().success());
}
