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
//!
//! This file is the handle and its reads; `writer.rs` is everything done
//! under the writer lock, `repair.rs` what it does when the store fails
//! a write, and `dropper.rs` the thread that frees replaced snapshots, so
//! that no reader releasing the last reference to one pays for freeing it.

mod catch_up;
mod dropper;
mod repair;
mod scope;
mod writer;

pub use self::dropper::Dropper;
pub use self::repair::{REPAIR_EVERY, STORE_TIMEOUT, StoreHealth};
pub use self::scope::Scope;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::sync::{Mutex, watch};

use self::writer::Queued;
use crate::model::audit::{AuditFilter, AuditRecord};
use crate::model::rules::AdminError;
use crate::model::{ErrorKind, HasKind, Mutation, State};
use crate::policy::{Snapshot, compile};
use crate::store::{History, Store, StoreError, blocking};
use crate::telemetry::metrics::EngineMetrics;

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

impl HasKind for SubmitError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The rule that refused it says which kind of refusal it is.
            Self::Refused(e) => e.kind(),
            // As the store says: `Unavailable` for a failed write.
            Self::Store(e) => e.kind(),
            // Not on this node, in its present state (a replica; a node
            // that already holds a state).
            Self::ReadOnly(_) => ErrorKind::FailedPrecondition,
        }
    }
}

/// A change that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The revision it was committed at (for a dry run: would be).
    pub revision: u64,
    pub dry_run: bool,
    pub mutation: Mutation,
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
    /// The bound on one store write (`repair.rs`).
    store_timeout: Duration,
    /// Whether the store takes writes (`repair.rs`).
    health: watch::Sender<StoreHealth>,
    /// When a failed store was last tried again.
    last_repair: std::sync::Mutex<Option<std::time::Instant>>,
    /// The tenants this engine holds (`None`: every tenant); a scoped
    /// engine has no store (`scope.rs`).
    scope: Option<Scope>,
    /// The history of the state installed last, for an engine with no
    /// store (which otherwise keeps it).
    installed_history: std::sync::Mutex<String>,
    /// Frees replaced snapshots off the readers' threads (`dropper.rs`).
    dropper: Dropper<Snapshot>,
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
            store_timeout: STORE_TIMEOUT,
            health: watch::channel(StoreHealth::Writable).0,
            last_repair: std::sync::Mutex::new(None),
            scope: None,
            installed_history: std::sync::Mutex::new(String::new()),
            dropper: Dropper::new(),
        }
    }

    /// The thread that frees replaced snapshots: how many it has freed.
    pub fn dropper(&self) -> &Dropper<Snapshot> {
        &self.dropper
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

    /// A receiver that sees every published revision.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
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

    /// The published snapshot and the store's history, read together: no
    /// change or install is half done while the writer is held. For
    /// Export and the digest, which must label a state with its history.
    pub async fn consistent_view(&self) -> Result<(Arc<Snapshot>, History), StoreError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        let history = self.history_now(snapshot.revision()).await?;
        Ok((snapshot, history))
    }

    /// The history this engine's state belongs to and the revisions its
    /// changelog holds: the store's; with no store, the history of the
    /// state installed last (empty if none was) and no changelog.
    pub async fn history(&self) -> Result<History, StoreError> {
        self.history_now(self.load().revision()).await
    }

    async fn history_now(&self, revision: u64) -> Result<History, StoreError> {
        match &self.store {
            Some(store) => {
                let store = Arc::clone(store);
                blocking(move || store.history()).await
            }
            None => Ok(History {
                id: self
                    .installed_history
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone(),
                first: revision.saturating_add(1),
                last: revision,
            }),
        }
    }

    /// Whether changes are durable (the engine has a store, and so keeps
    /// an audit log).
    pub fn is_durable(&self) -> bool {
        self.store.is_some()
    }

    /// The audit records matching `filter`, in `seq` order, read off the
    /// async workers; `None` when the engine has no store (and so keeps no
    /// audit log).
    pub async fn audit(&self, filter: AuditFilter) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let store = Arc::clone(store);
        blocking(move || store.audit(&filter)).await.map(Some)
    }
}

/// Runs `compile` and records how long it took.
fn timed(metrics: &EngineMetrics, compile: impl FnOnce() -> Snapshot) -> Snapshot {
    let started = std::time::Instant::now();
    let snapshot = compile();
    metrics.compile.observe_duration(started.elapsed());
    snapshot
}

#[cfg(test)]
mod tests;
