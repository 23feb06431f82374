//! Durability across `kill -9`: the real binary, concurrent mutations, a
//! SIGKILL at a random moment, a restart on the same data directory. Every
//! acknowledged mutation must be there, and nothing half-applied may show.
//! 20 cycles here; `RAMPART_CRASH_CYCLES=500 cargo test --release --test crash`
//! for a longer soak.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart::proto::admin_client::AdminClient;
use rampart::proto::{AddUserRequest, ListTenantsRequest, ListUsersRequest};

mod common;
use common::{Server, free_port};

/// A tiny deterministic generator, so a failing cycle can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn acknowledged_mutations_survive_kill_9() {
    let cycles: usize = std::env::var("RAMPART_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;

    for cycle in 0..cycles {
        let server = Server::start(&data, port);
        let url = format!("http://127.0.0.1:{port}");

        // After the restart: everything acknowledged before is there, and the
        // revision counts exactly the changes that are (nothing half-applied).
        let (users, revision) = runtime.block_on(async {
            let mut admin = AdminClient::connect(url.clone()).await.unwrap();
            // Every page: long runs add more users than one page holds.
            let mut users = BTreeSet::new();
            let mut page_token = String::new();
            loop {
                let page = admin
                    .list_users(ListUsersRequest {
                        tenant: "acme".into(),
                        page_size: 10_000,
                        page_token,
                        actor: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                users.extend(page.users.into_iter().map(|u| u.user));
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            let tenants = admin
                .list_tenants(ListTenantsRequest::default())
                .await
                .unwrap()
                .into_inner();
            (users, tenants.revision)
        });
        let wanted = acked.lock().unwrap().clone();
        let missing: Vec<&String> = wanted.difference(&users).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged but lost: {missing:?}"
        );
        let quickstart_users = users.iter().filter(|u| !u.starts_with("crash-")).count();
        let crash_users = users.len() - quickstart_users;
        // Each crash user is one AddUser = one revision on top of the bootstrap.
        assert_eq!(
            revision as usize,
            bootstrap_revision(&runtime, &url) + crash_users,
            "cycle {cycle}: revision does not match the changes present"
        );

        // Mutate from 4 concurrent clients, then SIGKILL at a random moment.
        let stop_after = Duration::from_millis(50 + next(&mut seed) % 400);
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + stop_after;
            let mut tasks = Vec::new();
            for client in 0..4 {
                let url = url.clone();
                let acked = Arc::clone(&acked);
                tasks.push(tokio::spawn(async move {
                    let Ok(mut admin) = AdminClient::connect(url).await else {
                        return;
                    };
                    let mut i = 0;
                    while tokio::time::Instant::now() < deadline {
                        let user = format!("crash-{cycle}-{client}-{i}");
                        i += 1;
                        let r = admin
                            .add_user(AddUserRequest {
                                actor: String::new(),
                                dry_run: false,
                                tenant: "acme".into(),
                                user: user.clone(),
                                email: String::new(),
                                display_name: String::new(),
                                status: String::new(),
                                aliases: Vec::new(),
                                attributes: Default::default(),
                            })
                            .await;
                        if r.is_ok() {
                            acked.lock().unwrap().insert(user);
                        }
                    }
                }));
            }
            // Kill while the clients are still sending.
            tokio::time::sleep_until(deadline - Duration::from_millis(10)).await;
            for t in tasks {
                t.abort();
            }
        });
        drop(server); // SIGKILL, then reap
    }
    assert!(
        acked.lock().unwrap().len() > cycles,
        "too few mutations were acknowledged to prove anything"
    );
}

/// The revision the built-in quickstart bootstrap ends at (the number of
/// operator mutations it takes), computed the same way the server does.
fn bootstrap_revision(_rt: &tokio::runtime::Runtime, _url: &str) -> usize {
    let state = rampart::model::policy_file::load_str(rampart::model::QUICKSTART_POLICY).unwrap();
    rampart::model::policy_file::to_mutations(&state).len()
}
