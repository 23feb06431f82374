//! The one writer, and the published snapshot.
//!
//! Readers call [`Engine::load`] (an `ArcSwap` load, no lock). Every change
//! goes through [`Engine::submit`], serialised by one async mutex:
//! validate (the admin rules, against the current snapshot) → commit (the
//! store writes the changelog entry and the audit record and flushes) →
//! recompile what the change touched → swap → reply. Durable before
//! visible: a change is in the snapshot only after the store acknowledged
//! it, and in the snapshot before the caller hears back, so a Check sent
//! after the reply sees it. A refused attempt is audited and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::sync::{Mutex, watch};

use crate::model::rules::{Actor, AdminError, Refusal, validate};
use crate::model::{Mutation, State, Timestamp, apply};
use crate::policy::{Snapshot, compile, recompile};
use crate::store::{AuditRecord, Change, Outcome, Store, StoreError};

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

/// Holds the current snapshot and serialises changes.
pub struct Engine {
    current: ArcSwap<Snapshot>,
    revision: watch::Sender<u64>,
    writer: Mutex<()>,
    store: Option<Arc<dyn Store>>,
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
        let snapshot = compile(Arc::new(state));
        let (revision, _) = watch::channel(snapshot.revision());
        Self {
            current: ArcSwap::from_pointee(snapshot),
            revision,
            writer: Mutex::new(()),
            store,
        }
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
            let touched = apply(&mut state, &change.mutation).map_err(|e| AdminError {
                refusal: Refusal::Invalid,
                message: format!("replicated revision {}: {e}", change.revision),
            })?;
            let prev: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
            compiled = Some(recompile(prev, Arc::new(state.clone()), &touched));
        }
        let Some(compiled) = compiled else {
            return Ok(snapshot.revision());
        };
        if let Some(store) = &self.store {
            let store = Arc::clone(store);
            blocking(move || store.append(&changes)).await?;
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
    /// 0): for importing a backup.
    pub async fn install_if_empty(&self, state: State, history: &str) -> Result<u64, SubmitError> {
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
            let store = Arc::clone(store);
            let state = Arc::clone(&state);
            let history = history.to_owned();
            blocking(move || store.install(&state, &history)).await?;
        }
        let revision = state.revision;
        let compiled = tokio::task::spawn_blocking(move || compile(state))
            .await
            .map_err(|e| StoreError::Backend(format!("compile task failed: {e}")))?;
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
    pub async fn submit(
        &self,
        actor: Actor,
        credential: &str,
        mutation: Mutation,
        dry_run: bool,
    ) -> Result<Committed, SubmitError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        let state = snapshot.state();
        let now = Timestamp::now();
        let record = |revision: u64, outcome: Outcome| AuditRecord {
            seq: 0,
            time: now,
            actor: match &actor {
                Actor::Operator => None,
                Actor::User(u) => Some(u.to_string()),
            },
            credential: credential.to_owned(),
            revision,
            tenant: mutation.tenant().map(ToString::to_string),
            mutation: mutation.clone(),
            outcome,
        };
        let (next, touched) = match validate(state, &*snapshot, &actor, &mutation, now) {
            Ok(ok) => ok,
            Err(refused) => {
                if !dry_run && let Some(store) = &self.store {
                    let audit = record(
                        state.revision,
                        Outcome::Refused {
                            code: refused.refusal.code_name().to_owned(),
                            message: refused.message.clone(),
                        },
                    );
                    let store = Arc::clone(store);
                    blocking(move || store.record_refusal(audit)).await?;
                }
                return Err(refused.into());
            }
        };
        let revision = next.revision;
        if dry_run {
            return Ok(Committed {
                revision,
                dry_run: true,
                mutation,
            });
        }
        if let Some(store) = &self.store {
            let audit = record(revision, Outcome::Applied);
            let store = Arc::clone(store);
            let m = mutation.clone();
            blocking(move || store.commit(revision, &m, audit)).await?;
        }
        let compiled = recompile(&snapshot, Arc::new(next), &touched);
        self.publish(compiled);
        Ok(Committed {
            revision,
            dry_run: false,
            mutation,
        })
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
            apply(&mut state, &m).map_err(|e| AdminError {
                refusal: Refusal::Invalid,
                message: e.to_string(),
            })?;
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
        self.publish(compile(Arc::new(state)));
        Ok(revision)
    }
}

/// Runs blocking store I/O off the async workers.
async fn blocking<T: Send + 'static>(
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
    use crate::model::{TenantId, TenantSettings};

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
        assert!(matches!(again, Err(SubmitError::Refused(e)) if e.refusal == Refusal::Exists));
        assert_eq!(engine.load().revision(), 1);
    }
}
