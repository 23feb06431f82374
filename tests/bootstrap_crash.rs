//! `rampart serve --bootstrap` of a 20,000-user policy, killed with
//! `kill -9` at random points of the bootstrap and started again with the
//! same flags: what it then serves is the whole policy (every user, every
//! binding, the revision of every mutation), never a part of it.
//! `RAMPART_BOOTSTRAP_CYCLES=N` for more cycles (default 3, two kills each).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart::proto::admin_client::AdminClient;
use rampart::proto::{ListBindingsRequest, ListTenantsRequest, ListUsersRequest};
use tonic::transport::Channel;

mod common;
use common::{BIN, free_port};

const USERS: usize = 20_000;

/// A tenant of `users` users, each bound to one of three roles.
fn policy(users: usize) -> String {
    let mut yaml = String::from(
        "catalog:\n  - { permission: \"documents:view\" }\n  - { permission: \"documents:edit:?DOC?\" }\n  - { permission: \"reports:view\" }\ntenants:\n  - id: big\n    name: Big Co\n    roles:\n      - { name: readers, grants: [\"documents:view\"] }\n      - { name: writers, grants: [\"documents:view\", \"documents:edit:*\"] }\n      - { name: reporters, grants: [\"reports:view\"] }\n    users:\n",
    );
    for i in 0..users {
        yaml.push_str(&format!(
            "      - {{ id: user-{i:05}, email: user-{i:05}@big.test, display_name: User {i} }}\n"
        ));
    }
    yaml.push_str("    bindings:\n");
    let roles = ["readers", "writers", "reporters"];
    for i in 0..users {
        yaml.push_str(&format!(
            "      - {{ subject: user-{i:05}, role: {} }}\n",
            roles[i % roles.len()]
        ));
    }
    yaml
}

/// `rampart serve --bootstrap policy` with its log in `log` (not waited for).
fn spawn(data: &Path, port: u16, policy: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .arg("--bootstrap")
        .arg(policy)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn log_has(log: &Path, needle: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle))
}

/// Waits (up to `within`) until the node serves; panics if it exits first.
fn wait_ready(child: &mut Child, log: &Path, within: Duration) {
    let started = Instant::now();
    while !log_has(log, "serving rampart.v1.Authorization") {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the node exited ({status}) before serving:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < within,
            "the node did not serve within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL, then reap.
fn kill9(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// What the node serves of tenant `big`: users, bindings (subject → role)
/// and the revision.
async fn served(url: String) -> (usize, Vec<(String, String)>, u64) {
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut admin = AdminClient::new(channel).max_decoding_message_size(64 << 20);
    let mut users = 0;
    let mut token = String::new();
    loop {
        let page = admin
            .list_users(ListUsersRequest {
                tenant: "big".into(),
                page_size: 10_000,
                page_token: token,
                actor: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        users += page.users.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut bindings = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_bindings(ListBindingsRequest {
                tenant: "big".into(),
                subject: String::new(),
                page_size: 10_000,
                page_token: token,
                actor: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        bindings.extend(page.bindings.into_iter().map(|b| (b.subject, b.role)));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let revision = admin
        .list_tenants(ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision;
    (users, bindings, revision)
}

/// A tiny deterministic generator, so a failing cycle can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn a_bootstrap_killed_at_any_point_serves_all_of_the_policy_or_nothing() {
    let cycles: usize = std::env::var("RAMPART_BOOTSTRAP_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let text = policy(USERS);
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, &text).unwrap();
    let state = rampart::model::policy_file::load_str(&text).unwrap();
    let mutations = rampart::model::policy_file::to_mutations(&state).len() as u64;
    let want: Vec<(String, String)> = {
        let roles = ["readers", "writers", "reporters"];
        (0..USERS)
            .map(|i| (format!("user-{i:05}"), roles[i % roles.len()].to_owned()))
            .collect()
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let check = |cycle: usize| {
        let (users, mut bindings, revision) = runtime.block_on(served(url.clone()));
        bindings.sort();
        assert_eq!(
            (users, bindings.len(), revision),
            (USERS, USERS, mutations),
            "cycle {cycle}: a partial policy is served"
        );
        assert!(bindings == want, "cycle {cycle}: the bindings differ");
    };

    // How long a whole bootstrap takes here: the kills land within it.
    let data = dir.path().join("calibrate");
    let log = dir.path().join("calibrate.log");
    let started = Instant::now();
    let mut child = spawn(&data, port, &file, &log);
    wait_ready(&mut child, &log, Duration::from_secs(300));
    let whole = started.elapsed();
    check(0);
    kill9(child);
    eprintln!("a whole bootstrap of {USERS} users ({mutations} mutations) took {whole:?}");

    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for cycle in 1..=cycles {
        let data = dir.path().join(format!("cycle-{cycle}"));
        for kill in 0..2 {
            let log = dir.path().join(format!("cycle-{cycle}-kill-{kill}.log"));
            let child = spawn(&data, port, &file, &log);
            // Anywhere from early in the commits to near the end.
            let permille = 200 + next(&mut seed) % 780;
            std::thread::sleep(whole * permille as u32 / 1000);
            let finished = log_has(&log, "empty store bootstrapped");
            kill9(child);
            eprintln!(
                "cycle {cycle}: killed at {permille}‰ of a bootstrap{}",
                if finished { " (after it finished)" } else { "" }
            );
        }
        let log = dir.path().join(format!("cycle-{cycle}-restart.log"));
        let mut child = spawn(&data, port, &file, &log);
        wait_ready(&mut child, &log, Duration::from_secs(300));
        check(cycle);
        kill9(child);
    }
    // Each killed start that found an interrupted bootstrap said so too.
    let discarded = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter(|e| log_has(&e.path(), "interrupted bootstrap"))
        .count();
    eprintln!("{discarded} starts discarded an interrupted bootstrap");
    assert!(
        discarded > 0,
        "no kill landed inside a bootstrap: the test proved nothing"
    );
}
