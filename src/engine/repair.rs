//! When the store fails a write: it is repaired (`Store::repair`: sled
//! opened again), what it then holds is checked against what was
//! published, and writes are refused meanwhile, at once. Every store write
//! of the writer is bounded in time; a store that overruns the bound, or
//! that no longer holds what was acknowledged, is [`StoreHealth::Stuck`],
//! and the composition root (`cli::serve`) stops the process for a restart.
//! All of it runs under the writer lock.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::Engine;
use crate::model::State;
use crate::policy::{Snapshot, compile};
use crate::store::{Repair, Store, StoreError, blocking};

/// Whether the store takes writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Writes go to the store.
    Writable,
    /// A write failed and the store could not be repaired yet (on a full
    /// disk, until space is freed): writes are refused at once, naming
    /// this; reads and checks go on; repair is tried again.
    Failed(String),
    /// The store overran its time bound or no longer holds what was
    /// acknowledged: it cannot be repaired in place, and writes are
    /// refused until the process is restarted.
    Stuck(String),
}

/// How often a failed store is tried again from the write path (the
/// maintenance loop tries every second too).
pub const REPAIR_EVERY: Duration = Duration::from_secs(1);
/// The default bound on one store write ([`Engine::with_store_timeout`]).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// The least bound on opening the store again and reading its state back
/// (a 1M-user store recovers in about 5 s).
const REPAIR_TIMEOUT: Duration = Duration::from_secs(60);
/// The bound on an install (a replica's bootstrap, an import): it writes a
/// whole checkpoint.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// What a store opened again holds, against the published snapshot.
enum Reopened {
    /// The published state, at this revision.
    Same(u64),
    /// More: the failed write reached the disk. Compiled, to publish.
    Ahead(Snapshot),
    /// Less than was published, or another state: why.
    Lost(String),
}

impl Reopened {
    /// Compares `state`, read back, with `published` (on a blocking
    /// thread: a large state takes a while to compare or compile).
    fn check(state: State, published: &Snapshot, expect: Expect) -> Self {
        let (have, had) = (state.revision, published.revision());
        if have == had && state == **published.state() {
            return Self::Same(have);
        }
        if have > had || expect == Expect::Anything {
            return Self::Ahead(compile(Arc::new(state)));
        }
        Self::Lost(format!(
            "the store, opened again after a failed write, holds revision {have}, but revision \
             {had} was published{}: it does not hold what was acknowledged",
            if have == had {
                " with another state"
            } else {
                ""
            }
        ))
    }
}

/// What the store may hold once repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// What was published, or more (a failed write that reached the disk
    /// before it failed): never less.
    Published,
    /// Anything (after a failed install, which may lower the revision).
    Anything,
}

impl Engine {
    /// Bounds every store write of the writer to `timeout` (default
    /// [`STORE_TIMEOUT`]; an install gets 10 minutes, a repair at least 60
    /// seconds). A write that overruns it is answered `UNAVAILABLE`, and
    /// the store is [`StoreHealth::Stuck`]: a thread is still inside it, so
    /// it cannot be opened again in this process.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Whether the store takes writes; every change is sent.
    pub fn store_health(&self) -> tokio::sync::watch::Receiver<StoreHealth> {
        self.health.subscribe()
    }

    /// Tries to repair a [`StoreHealth::Failed`] store now (the maintenance
    /// loop calls it every second): on success, writes resume.
    pub async fn repair_store(&self) {
        let _writer = self.writer.lock().await;
        if let (Some(store), StoreHealth::Failed(_)) = (&self.store, self.health()) {
            let _ = self.repair_locked(store, Expect::Published).await;
        }
    }

    pub(super) fn health(&self) -> StoreHealth {
        self.health.borrow().clone()
    }

    /// `f` on a blocking thread, bounded by `timeout`. Once the store is
    /// stuck nothing more is sent to it.
    pub(super) async fn store_call<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if let StoreHealth::Stuck(why) = self.health() {
            return Err(StoreError::Backend(why));
        }
        match tokio::time::timeout(timeout, blocking(f)).await {
            Ok(result) => result,
            Err(_) if let Some(store) = self.store.as_ref().filter(|s| s.shared()) => {
                // A database that does not answer (down without a word, a
                // commit waiting for a synchronous standby that is gone):
                // the call goes on on its own connection, and what it
                // committed is found by catching up. Restarting this node
                // would not help: writes are refused until the store
                // answers again, and checks go on.
                let why = format!(
                    "{}: a write did not finish within {timeout:?}; the database does not \
                     answer (or waits for a synchronous standby that is gone)",
                    store.describe()
                );
                Err(StoreError::Backend(self.failed(why)))
            }
            Err(_) => {
                let why = format!(
                    "a store write did not finish within {timeout:?} (sled is stuck: a full or \
                     unresponsive disk): this node must be restarted"
                );
                self.set_health(StoreHealth::Stuck(why.clone()));
                Err(StoreError::Backend(why))
            }
        }
    }

    /// The bound on one store write.
    pub(super) fn write_timeout(&self) -> Duration {
        self.store_timeout
    }

    /// The bound on an install.
    pub(super) fn install_timeout(&self) -> Duration {
        self.store_timeout.max(INSTALL_TIMEOUT)
    }

    /// Before a write: refuses it at once while the store is failed,
    /// trying a repair first when the last try is [`REPAIR_EVERY`] old.
    pub(super) async fn writable_locked(&self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        match self.health() {
            StoreHealth::Writable => Ok(()),
            StoreHealth::Stuck(why) => Err(StoreError::Backend(why)),
            StoreHealth::Failed(why) => {
                let recent = self
                    .last_repair
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some_and(|at| at.elapsed() < REPAIR_EVERY);
                if recent {
                    return Err(StoreError::Backend(why));
                }
                self.repair_locked(store, Expect::Published)
                    .await
                    .map(|_| ())
                    .map_err(StoreError::Backend)
            }
        }
    }

    /// After `failure` of a write made when `published` was the published
    /// revision: repairs the store and says, for the callers, what became
    /// of the write.
    pub(super) async fn after_failure(
        &self,
        store: &Arc<dyn Store>,
        published: u64,
        failure: &StoreError,
    ) -> String {
        let failure = message(failure);
        let repaired = self.repair_locked(store, Expect::Published).await;
        if store.shared() {
            // Other nodes move the head too, and a call that timed out may
            // still commit: the head says nothing of this change.
            return format!(
                "{failure}; whether this change was written is not known: read it back before \
                 retrying"
            );
        }
        match repaired {
            Ok(have) if have == published => format!("{failure}; nothing was written"),
            Ok(have) => format!(
                "{failure}; the change may have been applied (the store is now at revision \
                 {have}): read it back before retrying"
            ),
            Err(why) => {
                let why = if why.contains(&failure) {
                    why
                } else {
                    format!("{failure}; {why}")
                };
                format!(
                    "{why}; whether this change was written is known once the store takes \
                     writes again: read it back before retrying"
                )
            }
        }
    }

    /// Makes the store fit for writes and the published snapshot what it
    /// holds: a sound store is reloaded if its revision moved; one opened
    /// again is read back whole and checked against the published state
    /// (with [`Expect::Published`], less than it, or the same revision
    /// holding another state, makes the store stuck). Returns the store's
    /// revision, or why writes stay refused.
    pub(super) async fn repair_locked(
        &self,
        store: &Arc<dyn Store>,
        expect: Expect,
    ) -> Result<u64, String> {
        *self
            .last_repair
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let bound = self.store_timeout.max(REPAIR_TIMEOUT);
        let repairing = Arc::clone(store);
        let repaired = match self.store_call(bound, move || repairing.repair()).await {
            Ok(repaired) => repaired,
            Err(e @ StoreError::Corrupt { .. }) => {
                return Err(self.stuck(format!(
                    "the store, opened again after a failed write, is corrupt: {e}"
                )));
            }
            Err(e) => return Err(self.failed(message(&e))),
        };
        let published = self.load();
        let reading = Arc::clone(store);
        let have = match repaired {
            Repair::Sound => self.store_call(bound, move || reading.revision()).await,
            Repair::Reopened => {
                let had = Arc::clone(&published);
                let checked = self
                    .store_call(bound, move || {
                        reading
                            .load()
                            .map(|state| Reopened::check(state, &had, expect))
                    })
                    .await;
                match checked {
                    Ok(Reopened::Same(have)) => Ok(have),
                    Ok(Reopened::Ahead(snapshot)) => {
                        let have = snapshot.revision();
                        tracing::warn!(
                            revision = have,
                            published = published.revision(),
                            "the store, opened again, holds more than was published (the failed \
                             write reached the disk): serving what it holds"
                        );
                        self.publish(snapshot);
                        Ok(have)
                    }
                    Ok(Reopened::Lost(why)) => return Err(self.stuck(why)),
                    Err(e) => Err(e),
                }
            }
        };
        let have = match have {
            Ok(have) => have,
            Err(e) => {
                return Err(self.failed(format!("reading the store back failed: {}", message(&e))));
            }
        };
        if repaired == Repair::Sound && (have != published.revision() || expect == Expect::Anything)
        {
            // A write that failed after its transaction landed (a sound
            // store: what it reads is on disk).
            if let Err(e) = self.reload(store, bound).await {
                return Err(self.failed(format!("reading the store back failed: {}", message(&e))));
            }
            tracing::error!(
                revision = have,
                "the store failed after writing; reloaded the state from it"
            );
        }
        self.set_health(StoreHealth::Writable);
        Ok(have)
    }

    /// Loads the state `store` holds, compiles and publishes it.
    pub(super) async fn reload(
        &self,
        store: &Arc<dyn Store>,
        bound: Duration,
    ) -> Result<(), StoreError> {
        let reading = Arc::clone(store);
        let compiled = self
            .store_call(bound, move || reading.load().map(|s| compile(Arc::new(s))))
            .await?;
        self.publish(compiled);
        Ok(())
    }

    fn failed(&self, why: String) -> String {
        self.set_health(StoreHealth::Failed(why.clone()));
        why
    }

    fn stuck(&self, why: String) -> String {
        self.set_health(StoreHealth::Stuck(why.clone()));
        why
    }

    /// Records the store's health, logging each change of kind.
    fn set_health(&self, health: StoreHealth) {
        self.health.send_if_modified(|now| {
            if *now == health || matches!(now, StoreHealth::Stuck(_)) {
                // Stuck stays stuck: only a restart clears it.
                return false;
            }
            match (&*now, &health) {
                (StoreHealth::Failed(_), StoreHealth::Failed(_)) => {}
                (_, StoreHealth::Writable) => {
                    tracing::info!("the store takes writes again");
                }
                (_, StoreHealth::Failed(why)) => {
                    tracing::warn!(reason = %why, "writes are refused (UNAVAILABLE) until the store is repaired; checks and reads go on");
                }
                (_, StoreHealth::Stuck(why)) => {
                    tracing::error!(reason = %why, "the store cannot be repaired in place: writes are refused until a restart");
                }
            }
            *now = health;
            true
        });
    }
}

/// A store failure's message without the `storage: ` its display starts
/// with, for a message that goes on to say more.
pub(super) fn message(e: &StoreError) -> String {
    match e {
        StoreError::Backend(why) => why.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::engine::SubmitError;
    use crate::model::rules::Actor;
    use crate::model::{
        ErrorKind, HasKind, Mutation, TenantId, TenantSettings, UserId, UserStatus,
    };
    use crate::store::{AuditFilter, AuditRecord, Change, History, MemoryStore, Outcomes};

    /// A store that does as told: commits that fail (after landing, or
    /// not), commits that never finish, repairs that answer from a script,
    /// and a state to load in place of the one it holds.
    #[derive(Default)]
    struct Scripted {
        inner: MemoryStore,
        commits: AtomicUsize,
        fail: AtomicBool,
        fail_after_landing: AtomicBool,
        hang: AtomicBool,
        repairs: Mutex<VecDeque<Result<Repair, StoreError>>>,
        loads: Mutex<Option<State>>,
    }

    impl Store for Scripted {
        fn load(&self) -> Result<State, StoreError> {
            match self.loads.lock().unwrap().take() {
                Some(state) => Ok(state),
                None => self.inner.load(),
            }
        }
        fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
            self.commits.fetch_add(1, Ordering::SeqCst);
            if self.hang.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(3));
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("No space left on device".into()));
            }
            self.inner.commit_batch(batch)?;
            if self.fail_after_landing.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Backend("fdatasync failed".into()));
            }
            Ok(())
        }
        fn append(&self, c: &[Change]) -> Result<(), StoreError> {
            self.inner.append(c)
        }
        fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
            self.inner.changelog(after, limit)
        }
        fn history(&self) -> Result<History, StoreError> {
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
        fn repair(&self) -> Result<Repair, StoreError> {
            self.repairs
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(Repair::Sound))
        }
    }

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

    async fn acme(timeout: Duration) -> (Arc<Engine>, Arc<Scripted>) {
        let store = Arc::new(Scripted::default());
        let engine = Arc::new(
            Engine::open(Arc::clone(&store) as Arc<dyn Store>)
                .unwrap()
                .with_store_timeout(timeout),
        );
        let create = Mutation::CreateTenant {
            tenant: TenantId::new("acme").unwrap(),
            name: "Acme".into(),
            settings: TenantSettings::default(),
        };
        engine
            .submit(Actor::Operator, "t", create, false)
            .await
            .unwrap();
        (engine, store)
    }

    async fn submit(engine: &Arc<Engine>, id: &str) -> Result<u64, SubmitError> {
        engine
            .submit(Actor::Operator, "t", add_user(id), false)
            .await
            .map(|c| c.revision)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_does_not_finish_in_time_is_refused_and_the_store_is_stuck() {
        let (engine, store) = acme(Duration::from_millis(100)).await;
        store.hang.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let e = submit(&engine, "zed").await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("did not finish within 100ms"), "{e}");
        assert!(matches!(engine.health(), StoreHealth::Stuck(_)));
        // Nothing more reaches the store; the answer is at once.
        let before = store.commits.load(Ordering::SeqCst);
        let started = Instant::now();
        let e = submit(&engine, "amy").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(e.to_string().contains("must be restarted"), "{e}");
        assert_eq!(store.commits.load(Ordering::SeqCst), before);
        // Stuck stays stuck, repairs or not; checks still read the snapshot.
        engine.repair_store().await;
        assert!(matches!(engine.health(), StoreHealth::Stuck(_)));
        assert_eq!(engine.load().revision(), 1);
    }

    #[tokio::test]
    async fn a_failed_store_refuses_writes_at_once_until_it_is_repaired() {
        let (engine, store) = acme(STORE_TIMEOUT).await;
        let mut health = engine.store_health();
        store.fail.store(true, Ordering::SeqCst);
        store
            .repairs
            .lock()
            .unwrap()
            .push_back(Err(StoreError::Backend("the disk is full".into())));
        let e = submit(&engine, "zed").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let message = e.to_string();
        assert!(
            message.contains("No space left on device; the disk is full"),
            "{message}"
        );
        assert!(
            message.contains("read it back before retrying"),
            "{message}"
        );
        assert!(health.has_changed().unwrap());
        assert_eq!(
            *health.borrow_and_update(),
            StoreHealth::Failed("the disk is full".into())
        );
        // Refused without reaching the store (a repair was tried just now).
        let commits = store.commits.load(Ordering::SeqCst);
        let e = submit(&engine, "amy").await.unwrap_err();
        assert!(e.to_string().contains("the disk is full"), "{e}");
        assert_eq!(store.commits.load(Ordering::SeqCst), commits);
        // Space is back: the store opens again holding what was published.
        store.fail.store(false, Ordering::SeqCst);
        store
            .repairs
            .lock()
            .unwrap()
            .push_back(Ok(Repair::Reopened));
        engine.repair_store().await;
        assert_eq!(*health.borrow_and_update(), StoreHealth::Writable);
        assert_eq!(submit(&engine, "amy").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_store_opened_again_with_more_than_was_published_is_served() {
        let (engine, store) = acme(STORE_TIMEOUT).await;
        // The batch lands, then its flush fails; reopened, the store holds it.
        store.fail_after_landing.store(true, Ordering::SeqCst);
        store
            .repairs
            .lock()
            .unwrap()
            .push_back(Ok(Repair::Reopened));
        let e = submit(&engine, "zed").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("may have been applied (the store is now at revision 2)"),
            "{e}"
        );
        assert_eq!(engine.load().revision(), 2);
        assert!(
            engine.load().state().tenants["acme"]
                .users
                .contains_key(&UserId::new("zed").unwrap())
        );
        assert_eq!(engine.health(), StoreHealth::Writable);
        assert_eq!(submit(&engine, "amy").await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_store_opened_again_with_less_than_was_published_is_stuck() {
        let (engine, store) = acme(STORE_TIMEOUT).await;
        assert_eq!(submit(&engine, "zed").await.unwrap(), 2);
        // Reopened, it holds revision 1 only: an acknowledged change is gone.
        let older = {
            let mut s = State::new();
            let create = Mutation::CreateTenant {
                tenant: TenantId::new("acme").unwrap(),
                name: "Acme".into(),
                settings: TenantSettings::default(),
            };
            crate::model::apply(&mut s, &create).unwrap();
            s
        };
        *store.loads.lock().unwrap() = Some(older);
        store.fail.store(true, Ordering::SeqCst);
        store
            .repairs
            .lock()
            .unwrap()
            .push_back(Ok(Repair::Reopened));
        let e = submit(&engine, "amy").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let StoreHealth::Stuck(why) = engine.health() else {
            panic!("{:?}", engine.health())
        };
        assert!(
            why.contains("holds revision 1, but revision 2 was published"),
            "{why}"
        );
        // The published snapshot is not replaced by the smaller one.
        assert_eq!(engine.load().revision(), 2);
    }
}
