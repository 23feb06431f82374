use super::*;
use crate::model::rules::{Actor, Refusal};
use crate::model::{TenantId, TenantSettings, UserId, UserStatus};
use crate::store::{Change, MemoryStore, Outcomes};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn add_user(id: &str) -> Mutation {
    Mutation::AddUser {
        tenant: TenantId::new("acme").unwrap(),
        user: UserId::new(id).unwrap(),
        email: None,
        display_name: None,
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

async fn with_acme() -> (Arc<Engine>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let engine = Arc::new(Engine::open(Arc::clone(&store) as Arc<dyn Store>).unwrap());
    engine
        .submit(
            Actor::Operator,
            "test",
            Mutation::CreateTenant {
                tenant: TenantId::new("acme").unwrap(),
                name: "Acme".into(),
                settings: TenantSettings::default(),
            },
            false,
        )
        .await
        .unwrap();
    (engine, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_commit_in_groups_with_one_revision_each() {
    let (engine, store) = with_acme().await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let engine = Arc::clone(&engine);
        // Every sixth repeats an id: refused as a duplicate, audited.
        let id = if i % 6 == 5 {
            format!("u{}", i - 1)
        } else {
            format!("u{i}")
        };
        tasks.push(tokio::spawn(async move {
            engine
                .submit(Actor::Operator, "test", add_user(&id), false)
                .await
        }));
    }
    let mut revisions = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(c) => revisions.push(c.revision),
            Err(SubmitError::Refused(e)) => {
                assert_eq!(e.refusal(), Refusal::Exists);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    revisions.sort_unstable();
    // The duplicate loses the race or wins it: 50 distinct ids applied.
    assert_eq!(revisions, (2..=51).collect::<Vec<_>>());
    assert_eq!(refused, 10);
    assert_eq!(engine.load().revision(), 51);
    assert_eq!(engine.load().state().tenants["acme"].users.len(), 50);
    // The store holds exactly what was acknowledged, and every attempt.
    assert_eq!(store.load().unwrap(), **engine.load().state());
    assert_eq!(store.audit(&AuditFilter::default()).unwrap().len(), 61);
}

/// A store that hands every call to `inner` and fails as it is told: every
/// write once `writes_left` reaches 0 (a crash: nothing more lands), and one
/// batch after it landed when `fail_after_batch` is set (a failed flush).
struct Faulty<S> {
    inner: S,
    writes_left: AtomicUsize,
    fail_after_batch: AtomicBool,
}

impl<S> Faulty<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            writes_left: AtomicUsize::new(usize::MAX),
            fail_after_batch: AtomicBool::new(false),
        }
    }

    fn crashing_after(inner: S, writes: usize) -> Self {
        let s = Self::new(inner);
        s.writes_left.store(writes, Ordering::SeqCst);
        s
    }

    fn write(&self) -> Result<(), StoreError> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Backend("killed".into()));
        }
        self.writes_left.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

impl<S: Store> Store for Faulty<S> {
    fn load(&self) -> Result<State, StoreError> {
        self.inner.load()
    }
    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        self.write()?;
        self.inner.commit_batch(batch)?;
        if self.fail_after_batch.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend("fdatasync failed".into()));
        }
        Ok(())
    }
    fn begin_bootstrap(&self) -> Result<(), StoreError> {
        self.inner.begin_bootstrap()
    }
    fn finish_bootstrap(&self) -> Result<(), StoreError> {
        self.inner.finish_bootstrap()
    }
    fn append(&self, c: &[Change]) -> Result<(), StoreError> {
        self.inner.append(c)
    }
    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.inner.changelog(after, limit)
    }
    fn history(&self) -> Result<crate::store::History, StoreError> {
        self.inner.history()
    }
    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        self.inner.checkpoint_revision()
    }
    fn compact(&self, before: u64) -> Result<u64, StoreError> {
        self.inner.compact(before)
    }
    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        self.inner.install(state, history)
    }
    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit(f)
    }
    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        self.inner.checkpoint(state)
    }
    fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

#[tokio::test]
async fn a_store_that_fails_after_writing_does_not_wedge_the_writer() {
    let store = Arc::new(Faulty::new(MemoryStore::new()));
    let engine = Arc::new(Engine::open(Arc::clone(&store) as Arc<dyn Store>).unwrap());
    let create = Mutation::CreateTenant {
        tenant: TenantId::new("acme").unwrap(),
        name: "Acme".into(),
        settings: TenantSettings::default(),
    };
    engine
        .submit(Actor::Operator, "t", create, false)
        .await
        .unwrap();
    store.fail_after_batch.store(true, Ordering::SeqCst);
    let err = engine
        .submit(Actor::Operator, "t", add_user("zed"), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("may have been applied"), "{err}");
    // The engine follows the store: the change is there, and the next
    // one gets the next revision instead of a refusal forever.
    assert_eq!(engine.load().revision(), 2);
    let next = engine
        .submit(Actor::Operator, "t", add_user("amy"), false)
        .await
        .unwrap();
    assert_eq!(next.revision, 3);
    assert_eq!(store.revision().unwrap(), 3);
}

#[tokio::test]
async fn a_caller_that_goes_away_does_not_stop_its_commit() {
    let (engine, store) = with_acme().await;
    // Polled once (queued), then dropped, as a cancelled RPC is.
    let mut call = Box::pin(engine.submit(Actor::Operator, "test", add_user("zed"), false));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the answer comes from the batch task");
    drop(call);
    let snapshot = engine.at_least(2, Duration::from_secs(5)).await.unwrap();
    assert!(
        snapshot.state().tenants["acme"]
            .users
            .contains_key(&UserId::new("zed").unwrap())
    );
    assert_eq!(store.revision().unwrap(), 2);
    // And the writer is free for the next change.
    let next = engine
        .submit(Actor::Operator, "test", add_user("amy"), false)
        .await
        .unwrap();
    assert_eq!(next.revision, 3);
}

#[tokio::test]
async fn waits_for_a_revision_then_gives_up() {
    let engine = Arc::new(Engine::new(State::new()));
    assert_eq!(engine.load().revision(), 0);
    let too_new = engine.at_least(1, Duration::from_millis(20)).await;
    assert_eq!(too_new.unwrap_err().revision(), 0);

    let waiter = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move { engine.at_least(1, Duration::from_secs(5)).await })
    };
    let create = Mutation::CreateTenant {
        tenant: TenantId::new("acme").unwrap(),
        name: "Acme".into(),
        settings: TenantSettings::default(),
    };
    let done = engine
        .submit(Actor::Operator, "test", create.clone(), false)
        .await
        .unwrap();
    assert_eq!(done.revision, 1);
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.revision(), 1);
    assert!(
        got.tenant("acme").is_some(),
        "the change is visible once acknowledged"
    );

    // A dry run changes nothing; a repeat is refused.
    let dry = engine
        .submit(
            Actor::Operator,
            "test",
            Mutation::DeleteTenant {
                tenant: TenantId::new("acme").unwrap(),
            },
            true,
        )
        .await
        .unwrap();
    assert!(dry.dry_run && dry.revision == 2);
    assert!(engine.load().tenant("acme").is_some());
    let again = engine.submit(Actor::Operator, "test", create, false).await;
    assert!(matches!(again, Err(SubmitError::Refused(e)) if e.refusal() == Refusal::Exists));
    assert_eq!(engine.load().revision(), 1);
}

fn many_users(n: usize) -> Vec<Mutation> {
    let mut ms = vec![Mutation::CreateTenant {
        tenant: TenantId::new("acme").unwrap(),
        name: "Acme".into(),
        settings: TenantSettings::default(),
    }];
    ms.extend((0..n).map(|i| add_user(&format!("u{i}"))));
    ms
}

fn reopen(dir: &std::path::Path) -> crate::store::SledStore {
    let start = std::time::Instant::now();
    loop {
        match crate::store::SledStore::open(dir) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("lock") && start.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open: {e}"),
        }
    }
}

/// A bootstrap stopped midway (a `kill -9`, a failing disk) leaves
/// nothing behind: the store reopens empty, with the audit records from
/// before, and bootstraps again in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_is_all_or_nothing_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mutations = many_users(3 * crate::engine::writer::BOOTSTRAP_BATCH);
    {
        // One refused attempt before the bootstrap: its audit record stays.
        let store = reopen(dir.path());
        store
            .record_refusal(AuditRecord {
                seq: 0,
                time: crate::model::Timestamp::now(),
                actor: Some("mallory".into()),
                credential: "test".into(),
                revision: 0,
                tenant: None,
                also: Vec::new(),
                mutation: add_user("x"),
                outcome: crate::store::Outcome::Refused {
                    code: "no_permission".into(),
                    message: "no".into(),
                },
            })
            .unwrap();
    }
    {
        let store = Arc::new(Faulty::crashing_after(reopen(dir.path()), 1));
        let engine = Engine::open(Arc::clone(&store) as Arc<dyn Store>).unwrap();
        let err = engine
            .bootstrap(mutations.clone(), "bootstrap")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        // Something was committed before the "crash".
        assert!(store.revision().unwrap() > 0);
    }
    let store = Arc::new(reopen(dir.path()));
    assert_eq!(store.revision().unwrap(), 0, "a partial bootstrap survived");
    assert_eq!(store.load().unwrap(), State::new());
    assert_eq!(store.changelog(0, 0).unwrap(), vec![]);
    assert_eq!(store.audit(&AuditFilter::default()).unwrap().len(), 1);
    let engine = Engine::open(Arc::clone(&store) as Arc<dyn Store>).unwrap();
    let revision = engine
        .bootstrap(mutations.clone(), "bootstrap")
        .await
        .unwrap();
    assert_eq!(revision, mutations.len() as u64);
    drop(engine);
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.revision().unwrap(), mutations.len() as u64);
    assert_eq!(
        store.load().unwrap().tenants["acme"].users.len(),
        mutations.len() - 1
    );
    let audit = store.audit(&AuditFilter::default()).unwrap();
    assert_eq!(audit.len(), mutations.len() + 1);
    assert_eq!(audit.last().unwrap().revision, mutations.len() as u64);
}

/// A refused attempt is audited bounded, whatever it carried: a change that
/// reaches the engine without the server's edge checks (an embedding, a
/// policy test) still costs the durable log at most the limits' worth.
#[tokio::test]
async fn a_refused_attempt_is_audited_bounded() {
    let (engine, store) = with_acme().await;
    let huge = Mutation::CreateRole {
        tenant: TenantId::new("acme").unwrap(),
        role: crate::model::RoleName::new("spam").unwrap(),
        description: "x".repeat(4_000_000),
    };
    let e = engine
        .submit(Actor::Operator, "test", huge, false)
        .await
        .unwrap_err();
    let SubmitError::Refused(e) = e else {
        panic!("{e}")
    };
    assert_eq!(e.refusal(), Refusal::Invalid);
    assert!(e.to_string().contains("`description`"), "{e}");
    let audit = store.audit(&AuditFilter::default()).unwrap();
    let last = audit.last().unwrap();
    let size = serde_json::to_string(last).unwrap().len();
    assert!(size < 4_096, "the record is {size} bytes");
    assert!(
        matches!(&last.outcome, crate::model::audit::Outcome::Refused { message, .. } if message.contains("truncated")),
        "{:?}",
        last.outcome
    );
}

/// Issue #15: freeing a replaced snapshot never lands on a reader. The
/// reader here holds the published snapshot across a swap and lets go of
/// it on its own thread; the dropper thread holds a reference of its own
/// until then, so the reader's is never the last (the thread that does
/// free it is `dropper.rs`'s test).
#[test]
fn a_reader_letting_go_of_a_replaced_snapshot_does_not_free_it() {
    let engine = Engine::new(State::default());
    let freed = engine.dropper().freed();
    let held = engine.load();
    let weak = Arc::downgrade(&held);
    let (go, released) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        released.recv().unwrap();
        drop(held);
    });
    engine.publish(compile(Arc::new(State::default())));
    // Only the reader and the dropper hold it now: the engine let go.
    assert_eq!(weak.strong_count(), 2);
    go.send(()).unwrap();
    reader.join().unwrap();
    assert_eq!(
        engine
            .dropper()
            .wait_freed(freed + 1, Duration::from_secs(60)),
        freed + 1
    );
    assert_eq!(weak.strong_count(), 0);
}
