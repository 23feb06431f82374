//! Two engines on one PostgreSQL database are two nodes that both take
//! writes: a commit that loses the race for the next revision catches up
//! from the changelog, validates again on top, and commits (issue #12's
//! first step of "any node takes writes"). Skipped, saying so, where
//! PostgreSQL is not installed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::sync::Arc;

use rampart::engine::{Engine, SubmitError};
use rampart::model::State;
use rampart::model::rules::Actor;
use rampart::model::{ErrorKind, HasKind, Mutation, RoleName, TenantId, UserId, UserStatus};
use rampart::store::{
    AuditFilter, AuditRecord, Change, History, Outcome, Outcomes, PgStore, Store, StoreError,
};

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn add_user(id: &str) -> Mutation {
    Mutation::AddUser {
        tenant: tenant(),
        user: UserId::new(id).unwrap(),
        email: None,
        display_name: None,
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

fn create_role(name: &str) -> Mutation {
    Mutation::CreateRole {
        tenant: tenant(),
        role: RoleName::new(name).unwrap(),
        description: String::new(),
    }
}

/// An engine over its own connection to `url` (opened off any runtime:
/// the `postgres` client blocks).
fn node(url: &str) -> (Arc<dyn Store>, Arc<Engine>) {
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(url).unwrap());
    let engine = Arc::new(Engine::open(Arc::clone(&store)).unwrap());
    (store, engine)
}

async fn submit(engine: &Arc<Engine>, m: Mutation) -> Result<u64, SubmitError> {
    engine
        .submit(Actor::Operator, "operator", m, false)
        .await
        .map(|c| c.revision)
}

/// A `PgStore` that does not say it is shared, so its engine validates
/// against whatever it last saw (no catch-up first): the way to make a
/// commit lose the race on purpose.
struct Unannounced(PgStore);

impl Store for Unannounced {
    fn load(&self) -> Result<State, StoreError> {
        self.0.load()
    }
    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        self.0.commit_batch(batch)
    }
    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.0.append(changes)
    }
    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.0.changelog(after, limit)
    }
    fn history(&self) -> Result<History, StoreError> {
        self.0.history()
    }
    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        self.0.checkpoint_revision()
    }
    fn compact(&self, before: u64) -> Result<u64, StoreError> {
        self.0.compact(before)
    }
    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        self.0.install(state, history)
    }
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.audit(filter)
    }
    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        self.0.checkpoint(state)
    }
    fn revision(&self) -> Result<u64, StoreError> {
        self.0.revision()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.0.flush()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn create_tenant() -> Mutation {
    Mutation::CreateTenant {
        tenant: tenant(),
        name: "Acme".into(),
        settings: Default::default(),
    }
}

#[test]
fn a_commit_that_loses_the_race_catches_up_validates_again_and_retries() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let (store_a, a) = node(&url);
    let rt = runtime();
    assert_eq!(rt.block_on(submit(&a, create_tenant())).unwrap(), 1);
    // B starts at revision 1 and, not told the store is shared, does not
    // look before it validates.
    let stale: Arc<dyn Store> = Arc::new(Unannounced(PgStore::connect(&url).unwrap()));
    let b = Arc::new(Engine::open(Arc::clone(&stale)).unwrap());
    rt.block_on(async {
        assert_eq!(submit(&a, add_user("yan")).await.unwrap(), 2);
        // B commits "revision 2": taken. It catches up (yan), validates
        // zoe again on top, and commits at 3.
        assert_eq!(b.load().revision(), 1);
        assert_eq!(submit(&b, add_user("zoe")).await.unwrap(), 3);
        let seen = b.load();
        assert_eq!(seen.revision(), 3);
        assert!(
            seen.state().tenants["acme"]
                .users
                .contains_key(&UserId::new("yan").unwrap())
        );

        // Validation runs again on the caught-up state: A creates
        // `viewers`; B, which has not seen it, creates it too, loses the
        // race, and on top of A's it is a duplicate: refused (and audited),
        // not committed twice.
        assert_eq!(submit(&a, create_role("viewers")).await.unwrap(), 4);
        match submit(&b, create_role("viewers")).await {
            Err(SubmitError::Refused(e)) => {
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(b.load().revision(), 4, "B caught up to A's viewers");
    });
    let log = store_a.changelog(0, 0).unwrap();
    assert_eq!(
        log.iter().map(|c| c.revision).collect::<Vec<_>>(),
        (1..=4).collect::<Vec<_>>()
    );
    let held = store_a.load().unwrap();
    assert_eq!(**b.load().state(), held);
    let audit = store_a.audit(&AuditFilter::default()).unwrap();
    assert_eq!(audit.len(), 5, "four commits and B's refusal");
    assert!(matches!(audit[4].outcome, Outcome::Refused { .. }));
    assert_eq!(audit[4].actor, None);
}

/// Two nodes that know the store is shared take writes at once: each
/// catches up before validating and retries a lost race, so every write
/// lands exactly once, with no gap.
#[test]
fn two_nodes_writing_at_once_lose_no_write() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let (store, a) = node(&url);
    let (_, b) = node(&url);
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(submit(&a, create_tenant()).await.unwrap(), 1);
        let mut tasks = Vec::new();
        for i in 0..16 {
            for (name, engine) in [("a", &a), ("b", &b)] {
                let engine = Arc::clone(engine);
                let user = format!("{name}{i}");
                tasks.push(tokio::spawn(async move {
                    submit(&engine, add_user(&user)).await
                }));
            }
        }
        let mut revisions = Vec::new();
        for t in tasks {
            revisions.push(t.await.unwrap().unwrap());
        }
        revisions.sort_unstable();
        assert_eq!(revisions, (2..=33).collect::<Vec<_>>());
    });
    let held = store.load().unwrap();
    assert_eq!(held.revision, 33);
    assert_eq!(held.tenants["acme"].users.len(), 32);
    assert_eq!(store.changelog(0, 0).unwrap().len(), 33);
}

/// A node that does not write still sees the others' writes: following the
/// shared store (what `rampart serve` polls every `--poll-store-ms`) brings
/// it to their revision, and a read that asks for that revision waits for
/// it rather than answering from the past.
#[test]
fn a_node_that_only_reads_follows_the_others_writes() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let (_, a) = node(&url);
    let (_, b) = node(&url);
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(submit(&a, create_tenant()).await.unwrap(), 1);
        assert_eq!(b.load().revision(), 0, "B has not looked yet");
        // Nothing new to B: one cheap look, no change.
        assert_eq!(a.follow_shared().await.unwrap(), Some(1));
        // B follows in the background, as the server does.
        let follower = {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                loop {
                    b.follow_shared().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        };
        for i in 0..20 {
            let revision = submit(&a, add_user(&format!("u{i}"))).await.unwrap();
            // Read your write through the other node.
            let seen = b
                .at_least(revision, std::time::Duration::from_secs(10))
                .await
                .unwrap();
            assert!(seen.revision() >= revision);
            assert!(
                seen.state().tenants["acme"]
                    .users
                    .contains_key(&UserId::new(format!("u{i}")).unwrap())
            );
        }
        follower.abort();
        assert_eq!(**a.load().state(), **b.load().state());
    });
}

/// A dry run is judged like a write, against the newest state: a node
/// that has not yet followed the others still refuses what they made
/// impossible, and says the revision a real write would get.
#[test]
fn a_dry_run_catches_up_before_it_judges() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let (store, a) = node(&url);
    let (_, b) = node(&url);
    runtime().block_on(async {
        assert_eq!(submit(&a, create_tenant()).await.unwrap(), 1);
        assert_eq!(submit(&a, add_user("taken")).await.unwrap(), 2);
        assert_eq!(b.load().revision(), 0, "B has not looked yet");
        let refused = b
            .submit(Actor::Operator, "operator", add_user("taken"), true)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::AlreadyExists, "{refused}");
        let would = b
            .submit(Actor::Operator, "operator", add_user("free"), true)
            .await
            .unwrap();
        assert!(would.dry_run);
        assert_eq!(would.revision, 3);
        let head = rampart::store::blocking(move || store.revision()).await;
        assert_eq!(head.unwrap(), 2, "a dry run writes nothing");
    });
}

/// Goes back in time as a failover to an asynchronous standby would: the
/// changelog after `revision` is gone and the head is `revision` again.
/// On a thread of its own: the `postgres` client blocks.
fn lose_commits_after(url: &str, revision: i64) {
    let url = url.to_owned();
    std::thread::spawn(move || lose(&url, revision))
        .join()
        .unwrap();
}

fn lose(url: &str, revision: i64) {
    let mut raw = postgres::Client::connect(url, postgres::NoTls).unwrap();
    raw.execute(
        "DELETE FROM rampart_changelog WHERE revision > $1",
        &[&revision],
    )
    .unwrap();
    raw.execute("UPDATE rampart_meta SET revision = $1", &[&revision])
        .unwrap();
}

fn users(engine: &Engine) -> Vec<String> {
    let snapshot = engine.load();
    let mut out: Vec<String> = snapshot.state().tenants["acme"]
        .users
        .keys()
        .map(ToString::to_string)
        .collect();
    out.sort();
    out
}

/// A database that lost commits a node had seen (failover to a standby
/// that had not received them): the node finds the store's history went
/// another way, whether the head is now below its revision or others
/// committed different changes at the same revisions since, and reloads
/// from the store instead of serving, or building on, what is gone.
#[test]
fn a_node_whose_store_went_back_in_time_reloads_from_it() {
    let Some(url) = common::postgres::database() else {
        return;
    };
    let (_, a) = node(&url);
    let (_, b) = node(&url);
    runtime().block_on(async {
        submit(&a, create_tenant()).await.unwrap();
        submit(&a, add_user("kept")).await.unwrap();
        assert_eq!(submit(&a, add_user("lost")).await.unwrap(), 3);
        assert_eq!(b.follow_shared().await.unwrap(), Some(3));
        assert_eq!(users(&b), ["kept", "lost"]);

        // The head is below B's revision: B reloads at the next look.
        lose_commits_after(&url, 2);
        assert_eq!(b.follow_shared().await.unwrap(), Some(2));
        assert_eq!(users(&b), ["kept"]);
        assert_eq!(b.metrics().diverged.get(), 1);

        // A was at 3 too: its next write catches up first, finds the
        // store went back, reloads, and commits on the store's history.
        assert_eq!(submit(&a, add_user("after")).await.unwrap(), 3);
        assert_eq!(users(&a), ["after", "kept"]);

        // Now the same revision with another change: B (at 3, with
        // "after") and the store agree; lose 3 again and commit a
        // different change there, then one more.
        assert_eq!(b.follow_shared().await.unwrap(), Some(3));
        lose_commits_after(&url, 2);
        let opening = url.clone();
        let (_, c) = std::thread::spawn(move || node(&opening)).join().unwrap();
        assert_eq!(submit(&c, add_user("other")).await.unwrap(), 3);
        assert_eq!(submit(&c, add_user("next")).await.unwrap(), 4);
        b.follow_shared().await.unwrap();
        assert_eq!(users(&b), ["kept", "next", "other"]);
        assert_eq!(**b.load().state(), **c.load().state());
        assert_eq!(b.metrics().diverged.get(), 2);
    });
}
