//! The one writer, and the published snapshot.
//!
//! Readers call [`Engine::load`] (an `ArcSwap` load, no lock). Every change
//! goes through [`Engine::submit`], serialised by one async mutex, in
//! batches of whatever was submitted meanwhile (group commit): validate
//! each (the admin rules, against the state the one before left) and
//! recompile what it touched → commit the batch (the store writes the
//! changelog entries and audit records in one transaction and flushes) →
//! swap → reply. Durable before
//! visible: a change is in the snapshot only after the store acknowledged
//! it, and in the snapshot before the caller hears back, so a Check sent
//! after the reply sees it. A refused attempt is audited and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use std::sync::PoisonError;
use thiserror::Error;

use tokio::sync::{Mutex, oneshot, watch};

use crate::model::rules::{Actor, AdminError, validate};
use crate::model::{Mutation, State, Timestamp, apply};
use crate::policy::{Snapshot, compile, recompile};
use crate::store::{AuditRecord, Change, Outcome, Outcomes, Store, StoreError};
use crate::telemetry::metrics::{EngineMetrics, MutationOutcome};

/// Why a submitted change did not happen.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// A rule refused it.
    #[error(transparent)]
    Refused(#[from] AdminError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This node does not take this change (a read replica; an import into
    /// a node that holds a state).
    #[error("{0}")]
    ReadOnly(String),
}

/// A change that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The revision it was committed at (for a dry run: would be).
    pub revision: u64,
    pub dry_run: bool,
    pub mutation: Mutation,
}

/// A change waiting for the next group commit.
struct Queued {
    actor: Actor,
    credential: String,
    mutation: Mutation,
    reply: oneshot::Sender<Result<Committed, SubmitError>>,
}

/// Holds the current snapshot and serialises changes.
pub struct Engine {
    current: ArcSwap<Snapshot>,
    revision: watch::Sender<u64>,
    writer: Mutex<()>,
    /// Changes submitted and not yet taken by a batch.
    queue: std::sync::Mutex<Vec<Queued>>,
    store: Option<Arc<dyn Store>>,
    /// Compile times and mutation outcomes (relaxed atomics).
    metrics: EngineMetrics,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("revision", &self.load().revision())
            .field("durable", &self.store.is_some())
            .finish()
    }
}

impl Engine {
    /// An engine serving `state` from memory, with no store: changes are
    /// not durable. For tests, benchmarks and `serve --in-memory`.
    pub fn new(state: State) -> Self {
        Self::build(state, None)
    }

    /// An engine over `store`, starting from the state it holds.
    pub fn open(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let state = store.load()?;
        Ok(Self::build(state, Some(store)))
    }

    fn build(state: State, store: Option<Arc<dyn Store>>) -> Self {
        let metrics = EngineMetrics::default();
        let snapshot = timed(&metrics, || compile(Arc::new(state)));
        let (revision, _) = watch::channel(snapshot.revision());
        Self {
            current: ArcSwap::from_pointee(snapshot),
            revision,
            writer: Mutex::new(()),
            queue: std::sync::Mutex::new(Vec::new()),
            store,
            metrics,
        }
    }

    /// The writer's metrics.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// The current snapshot. Never blocks.
    #[inline]
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The store, if durable.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Applies changes replicated from the leader (which validated and
    /// audited them): consecutive revisions, the first the next one. They
    /// are stored in one flush (when durable), then published once, at the
    /// last revision: all or nothing, like a local change.
    pub async fn replicate(&self, changes: Vec<Change>) -> Result<u64, SubmitError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        let mut compiled: Option<Snapshot> = None;
        let mut state = (**snapshot.state()).clone();
        for change in &changes {
            let have = state.revision;
            if Some(change.revision) != have.checked_add(1) {
                return Err(StoreError::OutOfOrder {
                    have,
                    got: change.revision,
                }
                .into());
            }
            let touched =
                apply(&mut state, &change.mutation).map_err(|error| AdminError::Replicated {
                    revision: change.revision,
                    error,
                })?;
            let prev: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
            compiled = Some(timed(&self.metrics, || {
                recompile(prev, Arc::new(state.clone()), &touched)
            }));
        }
        let Some(compiled) = compiled else {
            return Ok(snapshot.revision());
        };
        if let Some(store) = &self.store {
            let writing = Arc::clone(store);
            if let Err(e) = blocking(move || writing.append(&changes)).await {
                let why = self.resync(store, snapshot.revision(), &e).await;
                return Err(StoreError::Backend(why).into());
            }
        }
        let revision = compiled.revision();
        self.publish(compiled);
        Ok(revision)
    }

    /// Replaces the whole state with `state` (a replica's bootstrap, an
    /// imported backup), as history `history`, and publishes it.
    pub async fn install(&self, state: State, history: &str) -> Result<u64, SubmitError> {
        let writer = self.writer.lock().await;
        self.install_locked(writer, state, history).await
    }

    /// [`Engine::install`], only while the engine holds no state (revision
    /// 0): for importing a backup. Runs in its own task, so a caller that
    /// goes away cannot stop it between the store and the swap.
    pub async fn install_if_empty(
        self: &Arc<Self>,
        state: State,
        history: &str,
    ) -> Result<u64, SubmitError> {
        let engine = Arc::clone(self);
        let history = history.to_owned();
        tokio::spawn(async move { engine.install_if_empty_now(state, &history).await })
            .await
            .unwrap_or_else(
                |e| Err(StoreError::Backend(format!("install task failed: {e}")).into()),
            )
    }

    async fn install_if_empty_now(&self, state: State, history: &str) -> Result<u64, SubmitError> {
        let writer = self.writer.lock().await;
        let have = self.load().revision();
        if have != 0 {
            return Err(SubmitError::ReadOnly(format!(
                "this node already holds a state (revision {have}): import only into an empty store"
            )));
        }
        self.install_locked(writer, state, history).await
    }

    async fn install_locked(
        &self,
        _writer: tokio::sync::MutexGuard<'_, ()>,
        state: State,
        history: &str,
    ) -> Result<u64, SubmitError> {
        let state = Arc::new(state);
        if let Some(store) = &self.store {
            let writing = Arc::clone(store);
            let installing = Arc::clone(&state);
            let history = history.to_owned();
            if let Err(e) = blocking(move || writing.install(&installing, &history)).await {
                // Whatever part of the install landed, serve what the store
                // now holds (when it still loads), not the old snapshot.
                let _ = self.reload(store).await;
                return Err(e.into());
            }
        }
        let revision = state.revision;
        let started = std::time::Instant::now();
        let compiled = tokio::task::spawn_blocking(move || compile(state))
            .await
            .map_err(|e| StoreError::Backend(format!("compile task failed: {e}")))?;
        self.metrics.compile.observe_duration(started.elapsed());
        self.publish(compiled);
        Ok(revision)
    }

    /// A receiver that sees every published revision.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Swaps in `snapshot` and wakes waiters. Only the writer calls this.
    fn publish(&self, snapshot: Snapshot) {
        let revision = snapshot.revision();
        self.current.store(Arc::new(snapshot));
        self.revision.send_replace(revision);
    }

    /// A snapshot at `revision` or newer, waiting at most `wait` for one;
    /// `Err` with the newest snapshot if none arrived in time.
    pub async fn at_least(
        &self,
        revision: u64,
        wait: Duration,
    ) -> Result<Arc<Snapshot>, Arc<Snapshot>> {
        let snapshot = self.load();
        if snapshot.revision() >= revision {
            return Ok(snapshot);
        }
        let mut rx = self.revision.subscribe();
        let reached = tokio::time::timeout(wait, rx.wait_for(|r| *r >= revision)).await;
        let snapshot = self.load();
        match reached {
            Ok(Ok(_)) if snapshot.revision() >= revision => Ok(snapshot),
            _ => Err(snapshot),
        }
    }

    /// Validates, commits and publishes one change, as `actor` with
    /// `credential` (named in the audit log). With `dry_run`, validates and
    /// reports the revision it would get, changing nothing.
    ///
    /// Changes submitted together are committed together (group commit):
    /// the request joins a queue, and one batch task validates each queued
    /// change against the state left by the one before, writes them all in
    /// one store transaction and one flush, publishes once, then answers
    /// each. The batch runs in its own task, so a caller that goes away (a
    /// cancelled RPC) cannot stop a commit between the store and the swap.
    pub async fn submit(
        self: &Arc<Self>,
        actor: Actor,
        credential: &str,
        mutation: Mutation,
        dry_run: bool,
    ) -> Result<Committed, SubmitError> {
        if dry_run {
            let _writer = self.writer.lock().await;
            let snapshot = self.load();
            let (next, _) = validate(
                snapshot.state(),
                &*snapshot,
                &actor,
                &mutation,
                Timestamp::now(),
            )?;
            return Ok(Committed {
                revision: next.revision,
                dry_run: true,
                mutation,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Queued {
                actor,
                credential: credential.to_owned(),
                mutation,
                reply,
            });
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.drain().await });
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Backend("the writer task ended without an answer".into()).into())
        })
    }

    /// Takes the writer and commits whatever is queued (possibly nothing:
    /// an earlier batch may have taken this caller's request).
    async fn drain(&self) {
        let _writer = self.writer.lock().await;
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        if !batch.is_empty() {
            self.commit_batch(batch).await;
        }
    }

    /// One group commit. Caller holds the writer.
    async fn commit_batch(&self, batch: Vec<Queued>) {
        let snapshot = self.load();
        let mut state = Arc::clone(snapshot.state());
        let mut compiled: Option<Snapshot> = None;
        let now = Timestamp::now();
        let mut records = Vec::with_capacity(batch.len());
        let mut answers = Vec::with_capacity(batch.len());
        for q in &batch {
            let authority: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
            let record = |revision: u64, outcome: Outcome| AuditRecord {
                seq: 0,
                time: now,
                actor: match &q.actor {
                    Actor::Operator => None,
                    Actor::User(u) => Some(u.to_string()),
                },
                credential: q.credential.clone(),
                revision,
                tenant: q.mutation.tenant().map(ToString::to_string),
                mutation: q.mutation.clone(),
                outcome,
            };
            match validate(&state, authority, &q.actor, &q.mutation, now) {
                Ok((next, touched)) => {
                    let revision = next.revision;
                    let next = Arc::new(next);
                    let recompiled = timed(&self.metrics, || {
                        recompile(authority, Arc::clone(&next), &touched)
                    });
                    compiled = Some(recompiled);
                    state = next;
                    records.push(Outcomes::Applied {
                        revision,
                        mutation: q.mutation.clone(),
                        audit: record(revision, Outcome::Applied),
                    });
                    answers.push(Ok(revision));
                }
                Err(refused) => {
                    records.push(Outcomes::Refused(record(
                        state.revision,
                        Outcome::Refused {
                            code: refused.refusal().code_name().to_owned(),
                            message: refused.to_string(),
                        },
                    )));
                    answers.push(Err(refused));
                }
            }
        }
        if let Some(store) = &self.store {
            let writing = Arc::clone(store);
            if let Err(e) = blocking(move || writing.commit_batch(&records)).await {
                // The transaction may have committed before the flush
                // failed: the outcome is unknown, and the snapshot must
                // follow the store, or every later change is refused.
                let why = self.resync(store, snapshot.revision(), &e).await;
                for q in batch {
                    self.metrics.mutation(&q.mutation, MutationOutcome::Failed);
                    let _ = q.reply.send(Err(StoreError::Backend(why.clone()).into()));
                }
                return;
            }
        }
        if let Some(compiled) = compiled {
            self.publish(compiled);
        }
        for (q, answer) in batch.into_iter().zip(answers) {
            let outcome = match answer {
                Ok(_) => MutationOutcome::Applied,
                Err(_) => MutationOutcome::Refused,
            };
            self.metrics.mutation(&q.mutation, outcome);
            let _ = q.reply.send(match answer {
                Ok(revision) => Ok(Committed {
                    revision,
                    dry_run: false,
                    mutation: q.mutation,
                }),
                Err(refused) => Err(refused.into()),
            });
        }
    }

    /// After a failed store write: when the store's revision moved past the
    /// published one (the transaction committed, the flush failed), reload
    /// the state from the store and publish it, so the engine and its store
    /// agree again. Returns the message for the callers. Caller holds the
    /// writer.
    async fn resync(&self, store: &Arc<dyn Store>, published: u64, failure: &StoreError) -> String {
        let reading = Arc::clone(store);
        match blocking(move || reading.revision()).await {
            Ok(have) if have == published => format!("{failure}; nothing was written"),
            Ok(have) => match self.reload(store).await {
                Ok(()) => {
                    tracing::error!(error = %failure, revision = have, "the store failed after writing; reloaded the state from it");
                    format!(
                        "{failure}; the change may have been applied (the store is now at revision {have}): read it back before retrying"
                    )
                }
                Err(e) => format!("{failure}; reloading after it failed too: {e}"),
            },
            Err(e) => format!("{failure}; the store cannot say its revision either: {e}"),
        }
    }

    /// Loads the state `store` holds, compiles and publishes it. Caller
    /// holds the writer.
    async fn reload(&self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        let reading = Arc::clone(store);
        let compiled = blocking(move || reading.load().map(|s| compile(Arc::new(s)))).await?;
        self.publish(compiled);
        Ok(())
    }

    /// The published snapshot and the store's history, read together: no
    /// change or install is half done while the writer is held. For
    /// Export and the digest, which must label a state with its history.
    pub async fn consistent_view(
        &self,
    ) -> Result<(Arc<Snapshot>, Option<crate::store::History>), StoreError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        let history = match &self.store {
            Some(store) => {
                let store = Arc::clone(store);
                Some(blocking(move || store.history()).await?)
            }
            None => None,
        };
        Ok((snapshot, history))
    }

    /// Applies `mutations` as the operator without the admin rules (they
    /// come from a validated policy file), committing each, then publishes
    /// once. For bootstrapping an empty store.
    pub async fn bootstrap(
        &self,
        mutations: Vec<Mutation>,
        credential: &str,
    ) -> Result<u64, SubmitError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        let mut state = (**snapshot.state()).clone();
        let now = Timestamp::now();
        for m in mutations {
            apply(&mut state, &m).map_err(AdminError::Bootstrap)?;
            if let Some(store) = &self.store {
                let audit = AuditRecord {
                    seq: 0,
                    time: now,
                    actor: None,
                    credential: credential.to_owned(),
                    revision: state.revision,
                    tenant: m.tenant().map(ToString::to_string),
                    mutation: m.clone(),
                    outcome: Outcome::Applied,
                };
                let store = Arc::clone(store);
                let revision = state.revision;
                blocking(move || store.commit(revision, &m, audit)).await?;
            }
        }
        let revision = state.revision;
        self.publish(timed(&self.metrics, || compile(Arc::new(state))));
        Ok(revision)
    }
}

/// Runs `compile` and records how long it took.
fn timed(metrics: &EngineMetrics, compile: impl FnOnce() -> Snapshot) -> Snapshot {
    let started = std::time::Instant::now();
    let snapshot = compile();
    metrics.compile.observe_duration(started.elapsed());
    snapshot
}

/// Runs blocking store I/O off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Backend(format!("store task failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rules::Refusal;
    use crate::model::{TenantId, TenantSettings, UserId, UserStatus};
    use crate::store::{AuditFilter, MemoryStore};

    fn add_user(id: &str) -> Mutation {
        Mutation::AddUser {
            tenant: TenantId::new("acme").unwrap(),
            user: UserId::new(id).unwrap(),
            email: None,
            display_name: None,
            status: UserStatus::Active,
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

    /// A store whose writes land but whose flush then fails, once.
    struct FlushFails {
        inner: MemoryStore,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Store for FlushFails {
        fn load(&self) -> Result<State, StoreError> {
            self.inner.load()
        }
        fn commit(&self, r: u64, m: &Mutation, a: AuditRecord) -> Result<(), StoreError> {
            self.inner.commit(r, m, a)
        }
        fn record_refusal(&self, a: AuditRecord) -> Result<(), StoreError> {
            self.inner.record_refusal(a)
        }
        fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
            self.inner.commit_batch(batch)?;
            if self.fail.swap(false, std::sync::atomic::Ordering::SeqCst) {
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
        let store = Arc::new(FlushFails {
            inner: MemoryStore::new(),
            fail: std::sync::atomic::AtomicBool::new(false),
        });
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
        store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
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
}
