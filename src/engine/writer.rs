//! The one writer: every change to the state goes through here, under
//! the writer lock. Local changes are group-committed (validated one after
//! the other against the state the one before left, written in one store
//! transaction, published once); replicated changes and installs are stored
//! then published. A store failure is repaired and checked before the next
//! write (`repair.rs`), so the engine and its store never disagree for long.

use std::sync::{Arc, PoisonError};

use tokio::sync::oneshot;

use super::repair::{Expect, message};
use super::{Committed, Engine, SubmitError, timed};
use crate::model::apply::Touched;
use crate::model::rules::{Actor, AdminError, Authority, check_confined, validate};
use crate::model::{Mutation, State, Timestamp, apply};
use crate::policy::{Snapshot, compile, recompile};
use crate::store::{AuditRecord, Change, Outcome, Outcomes, StoreError};
use crate::telemetry::metrics::MutationOutcome;

/// A change waiting for the next group commit.
pub(super) struct Queued {
    actor: Actor,
    credential: String,
    /// The tenants the credential is confined to; `None`: every tenant.
    tenants: Option<Arc<[String]>>,
    mutation: Mutation,
    reply: oneshot::Sender<Result<Committed, SubmitError>>,
}

impl Engine {
    /// Applies changes replicated from the leader (which validated and
    /// audited them): consecutive revisions, the first the next one. They
    /// are stored in one flush (when durable), then published once, at the
    /// last revision: all or nothing, like a local change.
    pub async fn replicate(&self, changes: Vec<Change>) -> Result<u64, SubmitError> {
        let _writer = self.writer.lock().await;
        if let Some(store) = &self.store {
            self.writable_locked(store).await?;
        }
        let snapshot = self.load();
        let mut compiled: Option<Snapshot> = None;
        let mut state = (**snapshot.state()).clone();
        for change in &changes {
            let have = state.revision;
            // A scoped engine hears only its tenants' changes: the
            // revisions in between were left out by its leader's filter.
            let follows = match &self.scope {
                None => Some(change.revision) == have.checked_add(1),
                Some(_) => change.revision > have,
            };
            if !follows {
                return Err(StoreError::OutOfOrder {
                    have,
                    got: change.revision,
                }
                .into());
            }
            if let Some(scope) = &self.scope {
                state.revision = change.revision - 1;
                if !scope.keeps(&state, &change.mutation) {
                    state.revision = change.revision;
                    continue;
                }
            }
            let touched =
                apply(&mut state, &change.mutation).map_err(|error| AdminError::Replicated {
                    revision: change.revision,
                    error,
                })?;
            let prev: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
            let next = timed(&self.metrics, || {
                recompile(prev, Arc::new(state.clone()), &touched)
            });
            self.retire(compiled.replace(next));
        }
        if self.scope.is_some()
            && compiled
                .as_ref()
                .map_or(snapshot.revision(), Snapshot::revision)
                != state.revision
        {
            // The last changes were left out: the same tenants, at their revision.
            let prev: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
            compiled = Some(recompile(prev, Arc::new(state), &Touched::default()));
        }
        let Some(compiled) = compiled else {
            return Ok(snapshot.revision());
        };
        if let Some(store) = &self.store {
            let writing = Arc::clone(store);
            let appended = self
                .store_call(self.write_timeout(), move || writing.append(&changes))
                .await;
            if let Err(e) = appended {
                let why = self.after_failure(store, snapshot.revision(), &e).await;
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
        let mut state = state;
        if let Some(scope) = &self.scope {
            // Whatever the export held (a leader that ignores the filter).
            scope.restrict(&mut state);
        }
        let state = Arc::new(state);
        if let Some(store) = &self.store {
            self.writable_locked(store).await?;
            let writing = Arc::clone(store);
            let installing = Arc::clone(&state);
            let history = history.to_owned();
            let installed = self
                .store_call(self.install_timeout(), move || {
                    writing.install(&installing, &history)
                })
                .await;
            if let Err(e) = installed {
                // Whatever part of the install landed, serve what the store
                // now holds (once it loads), not the old snapshot.
                let _ = self.repair_locked(store, Expect::Anything).await;
                return Err(e.into());
            }
        }
        let revision = state.revision;
        if self.store.is_none() {
            history.clone_into(
                &mut self
                    .installed_history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
        let started = std::time::Instant::now();
        let compiled = tokio::task::spawn_blocking(move || compile(state))
            .await
            .map_err(|e| StoreError::Backend(format!("compile task failed: {e}")))?;
        self.metrics.compile.observe_duration(started.elapsed());
        self.publish(compiled);
        Ok(revision)
    }

    /// Swaps in `snapshot` and wakes waiters. Only the writer calls this.
    /// The snapshot it replaces goes to the dropper thread, which frees it
    /// once no reader holds it (`dropper.rs`).
    pub(super) fn publish(&self, snapshot: Snapshot) {
        let revision = snapshot.revision();
        let old = self.current.swap(Arc::new(snapshot));
        self.dropper.retire(old);
        self.revision.send_replace(revision);
    }

    /// A snapshot compiled within a batch and replaced by the next one: freed
    /// by the dropper, not on the writer's worker (which serves checks too).
    pub(super) fn retire(&self, replaced: Option<Snapshot>) {
        if let Some(replaced) = replaced {
            self.dropper.retire(Arc::new(replaced));
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
        self.submit_confined(actor, credential, None, mutation, dry_run)
            .await
    }

    /// [`Engine::submit`] for a credential confined to `tenants` (`None`:
    /// every tenant): a change that another tenant sees is refused, and
    /// audited, like any rule's refusal ([`check_confined`]).
    pub async fn submit_confined(
        self: &Arc<Self>,
        actor: Actor,
        credential: &str,
        tenants: Option<Arc<[String]>>,
        mutation: Mutation,
        dry_run: bool,
    ) -> Result<Committed, SubmitError> {
        if dry_run {
            let _writer = self.writer.lock().await;
            // Judged, like a real write, against the newest state.
            self.catch_up_if_shared().await;
            let snapshot = self.load();
            let (next, _) = checked(
                snapshot.state(),
                &*snapshot,
                &actor,
                tenants.as_deref(),
                &mutation,
                Timestamp::now(),
            )?;
            let mut mutation = mutation;
            mutation.complete(snapshot.state());
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
                tenants,
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
            self.commit_batch(batch, 0).await;
        }
    }

    /// One group commit; `conflicts`: how many times this batch lost the
    /// race for the next revision already. Caller holds the writer.
    async fn commit_batch(&self, mut batch: Vec<Queued>, conflicts: u32) {
        if let Some(store) = &self.store
            && let Err(refused) = self.writable_locked(store).await
        {
            super::catch_up::release_head(store).await;
            // Refused before anything is validated or written.
            let why = message(&refused);
            for q in batch {
                self.metrics.mutation(&q.mutation, MutationOutcome::Failed);
                let _ = q.reply.send(Err(StoreError::Backend(why.clone()).into()));
            }
            return;
        }
        // As submitted: completing a mutation fills in from the state, and
        // a retry must complete it from the state it caught up to.
        let submitted: Vec<Mutation> = batch.iter().map(|q| q.mutation.clone()).collect();
        if conflicts == 0 {
            self.catch_up_if_shared().await;
        }
        let snapshot = self.load();
        let mut state = Arc::clone(snapshot.state());
        let mut compiled: Option<Snapshot> = None;
        let now = Timestamp::now();
        let mut records = Vec::with_capacity(batch.len());
        let mut answers = Vec::with_capacity(batch.len());
        for q in &mut batch {
            let authority: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
            let verdict = checked(
                &state,
                authority,
                &q.actor,
                q.tenants.as_deref(),
                &q.mutation,
                now,
            );
            // The record says how the attempt ended (`AuditRecord::attempt`:
            // an applied change completed, a refused one bounded).
            let audit = AuditRecord::attempt(
                &state,
                &q.actor,
                &q.credential,
                &q.mutation,
                verdict.as_ref().map(|(next, _)| next.revision),
                now,
            );
            match verdict {
                Ok((next, touched)) => {
                    // Committed, replicated and answered as recorded.
                    q.mutation.clone_from(&audit.mutation);
                    let revision = next.revision;
                    let next = Arc::new(next);
                    let recompiled = timed(&self.metrics, || {
                        recompile(authority, Arc::clone(&next), &touched)
                    });
                    self.retire(compiled.replace(recompiled));
                    state = next;
                    records.push(Outcomes::Applied {
                        revision,
                        mutation: q.mutation.clone(),
                        audit,
                    });
                    answers.push(Ok(revision));
                }
                Err(refused) => {
                    records.push(Outcomes::Refused(audit));
                    answers.push(Err(refused));
                }
            }
        }
        if let Some(store) = &self.store {
            let writing = Arc::clone(store);
            let committed = self
                .store_call(self.write_timeout(), move || writing.commit_batch(&records))
                .await;
            if let Err(e) = committed {
                // Another node committed first (a shared store): catch up,
                // then validate and commit the whole batch again on top.
                if matches!(e, StoreError::Conflict { .. })
                    && conflicts < super::catch_up::CONFLICT_RETRIES
                    && self.take_head_and_catch_up(store, conflicts).await
                {
                    for (q, mutation) in batch.iter_mut().zip(submitted) {
                        q.mutation = mutation;
                    }
                    return Box::pin(self.commit_batch(batch, conflicts + 1)).await;
                }
                let why = if matches!(e, StoreError::Conflict { .. }) {
                    // Lost the race every time: nothing of this batch was
                    // written. Catch up anyway for the next one.
                    let _ = self.catch_up(store).await;
                    format!(
                        "{e}; lost the race {} times, nothing was written",
                        conflicts + 1
                    )
                } else {
                    // The transaction may have committed before the flush
                    // failed: the outcome is unknown, and the snapshot must
                    // follow the store, or every later change is refused.
                    self.after_failure(store, snapshot.revision(), &e).await
                };
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

    /// Applies `mutations` as the operator without the admin rules (they
    /// come from a validated policy file), then publishes once. For
    /// bootstrapping an empty store: all or nothing across a crash. The
    /// store is marked as bootstrapping first (a store reopened with the
    /// mark discards what was committed under it), the mutations are
    /// committed in batches of [`BOOTSTRAP_BATCH`] (one audit record each,
    /// as for any change), and the mark is removed last.
    pub async fn bootstrap(
        &self,
        mutations: Vec<Mutation>,
        credential: &str,
    ) -> Result<u64, SubmitError> {
        let _writer = self.writer.lock().await;
        let snapshot = self.load();
        let mut state = (**snapshot.state()).clone();
        let now = Timestamp::now();
        let mut outcomes = Vec::with_capacity(mutations.len());
        for m in mutations {
            let also = m.also_seen_by(&state);
            let also = also.iter().map(ToString::to_string).collect();
            apply(&mut state, &m).map_err(AdminError::Bootstrap)?;
            let audit = AuditRecord {
                seq: 0,
                time: now,
                actor: None,
                credential: credential.to_owned(),
                revision: state.revision,
                tenant: m.tenant().map(ToString::to_string),
                also,
                mutation: m.clone(),
                outcome: Outcome::Applied,
            };
            outcomes.push(Outcomes::Applied {
                revision: state.revision,
                mutation: m,
                audit,
            });
        }
        if let Some(store) = &self.store {
            self.writable_locked(store).await?;
            let bound = self.write_timeout();
            let writing = Arc::clone(store);
            // On a shared store this may wait for another node's bootstrap.
            self.store_call(self.install_timeout(), move || writing.begin_bootstrap())
                .await?;
            let mut rest = outcomes;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(BOOTSTRAP_BATCH));
                let batch = std::mem::replace(&mut rest, tail);
                let writing = Arc::clone(store);
                self.store_call(bound, move || writing.commit_batch(&batch))
                    .await?;
            }
            let writing = Arc::clone(store);
            self.store_call(bound, move || writing.finish_bootstrap())
                .await?;
        }
        let revision = state.revision;
        self.publish(timed(&self.metrics, || compile(Arc::new(state))));
        Ok(revision)
    }
}

/// Mutations per store transaction in [`Engine::bootstrap`]: large enough
/// that a 20,000-user policy takes a few dozen flushes, not 40,000; small
/// enough that no one sled transaction holds much in memory.
pub const BOOTSTRAP_BATCH: usize = 1024;

/// Every rule ([`validate`]), then the credential's confinement. In this
/// order a confined credential learns nothing from a refusal that any
/// other caller would not: who asks is answered first.
fn checked(
    state: &State,
    authority: &dyn Authority,
    actor: &Actor,
    tenants: Option<&[String]>,
    mutation: &Mutation,
    now: Timestamp,
) -> Result<(State, Touched), AdminError> {
    let after = validate(state, authority, actor, mutation, now)?;
    if let Some(tenants) = tenants {
        check_confined(state, tenants, mutation)?;
    }
    Ok(after)
}
