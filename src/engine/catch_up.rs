//! Catching up with a store other nodes write (PostgreSQL): before a
//! batch is validated, and again when its commit loses the race for the
//! next revision (`StoreError::Conflict`), the writer applies what the
//! others committed since its snapshot, publishes it, and validates the
//! batch on top (`writer.rs`, bounded by [`CONFLICT_RETRIES`]). Between
//! writes, [`Engine::follow_shared`] (polled by `rampart serve`) does the
//! same, so a node sees the others' writes without writing itself.

use std::sync::Arc;

use super::{Engine, timed};
use crate::model::apply;
use crate::policy::{Snapshot, recompile};
use crate::store::{Store, StoreError, blocking};

/// How many times one batch catches up and tries again after losing the
/// race, before its callers hear `UNAVAILABLE` (the conflict). With three
/// nodes writing flat out, 8 was lost now and then (tests/postgres_cluster).
pub(super) const CONFLICT_RETRIES: u32 = 32;

/// [`Store::release_head`], off the async workers (it may talk to the
/// database).
pub(super) async fn release_head(store: &Arc<dyn Store>) {
    let releasing = Arc::clone(store);
    let _ = blocking(move || {
        releasing.release_head();
        Ok(())
    })
    .await;
}

/// Before the `attempt`th retry: a random pause of up to `attempt`
/// milliseconds (at most 16), so nodes that keep colliding spread out
/// rather than racing again in step.
pub(super) async fn back_off(attempt: u32) {
    let mut byte = [0u8; 1];
    // No randomness at hand: no pause, just the retry.
    if getrandom::getrandom(&mut byte).is_ok() {
        let most = u64::from(attempt.min(16));
        let pause = u64::from(byte[0]) * most * 1_000 / 255;
        tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
    }
}

/// Changelog entries read per round trip while catching up.
const PAGE: usize = 1_024;

impl Engine {
    /// Before a batch is validated on a store other nodes write: catch up
    /// with its head, so the batch is judged against the newest state. A
    /// failure is logged and the batch goes on from the published state:
    /// its commit then fails or conflicts, and says why.
    pub(super) async fn catch_up_if_shared(&self) {
        if let Some(store) = &self.store
            && store.shared()
            && let Err(e) = self.catch_up(store).await
        {
            tracing::warn!(error = %e, "could not catch up with the store before validating");
        }
    }

    /// On a store other nodes write (PostgreSQL): brings this node up to
    /// what the others committed, so its checks, listings, Watch and
    /// `at_least_revision` see their writes. One cheap read of the store's
    /// revision when nothing is new; the writer lock only when there is.
    /// `Ok(None)` for a store this node owns alone.
    pub async fn follow_shared(&self) -> Result<Option<u64>, StoreError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(None);
        };
        let reading = Arc::clone(store);
        let head = blocking(move || reading.revision()).await?;
        // A head below this node's is a store that went back (a failover
        // that lost commits): catching up finds that out and reloads.
        if head == self.load().revision() {
            return Ok(Some(head));
        }
        let _writer = self.writer.lock().await;
        self.catch_up(store).await.map(Some)
    }

    /// On a shared store that can tell: the newest head other nodes were
    /// heard to commit ([`Store::heads`]), to wake [`Engine::follow_shared`]
    /// between polls.
    pub fn shared_heads(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.store.as_ref().filter(|s| s.shared())?.heads()
    }

    /// After a batch lost the race: takes the head for this node
    /// ([`Store::hold_head`]: the other nodes' commits wait) and catches
    /// up, so the retry cannot lose again; without the hold (it timed out,
    /// the store cannot hold), after a random pause, as before. Whether
    /// the batch may be retried (it caught up).
    pub(super) async fn take_head_and_catch_up(
        &self,
        store: &Arc<dyn Store>,
        conflicts: u32,
    ) -> bool {
        let holding = Arc::clone(store);
        let held = self
            .store_call(self.write_timeout(), move || holding.hold_head())
            .await;
        if held.is_err() {
            back_off(conflicts + 1).await;
        }
        let caught_up = self.catch_up(store).await.is_ok();
        if !caught_up {
            release_head(store).await;
        }
        caught_up
    }

    /// Brings the published snapshot up to the store's head: applies every
    /// changelog entry after it (recompiling what each touched), publishes
    /// once, and returns the new revision. A changelog compacted past the
    /// published revision reloads the whole state instead. Caller holds
    /// the writer.
    pub(super) async fn catch_up(&self, store: &Arc<dyn Store>) -> Result<u64, StoreError> {
        let snapshot = self.load();
        let mut state = (**snapshot.state()).clone();
        let mut compiled: Option<Snapshot> = None;
        loop {
            let reading = Arc::clone(store);
            let after = state.revision;
            let read =
                blocking(move || Ok((reading.history()?.first, reading.follow(after, PAGE)?)))
                    .await;
            let (first, page) = match read {
                Err(StoreError::Diverged { at, why }) => {
                    // What this node serves is not the store's history any
                    // more: the store is the truth.
                    tracing::error!(
                        revision = at,
                        reason = %why,
                        "the shared store's history went another way than this node's (a database failover that lost commits, or a restore): reloading the whole state from it"
                    );
                    self.metrics.diverged();
                    self.reload(store, self.install_timeout()).await?;
                    return Ok(self.load().revision());
                }
                other => other?,
            };
            if first > after.saturating_add(1) {
                self.reload(store, self.install_timeout()).await?;
                return Ok(self.load().revision());
            }
            if page.is_empty() {
                break;
            }
            for change in page {
                let at = || format!("changelog revision {}", change.revision);
                if Some(change.revision) != state.revision.checked_add(1) {
                    return Err(StoreError::Corrupt {
                        at: at(),
                        why: format!("expected revision {}", state.revision.saturating_add(1)),
                    });
                }
                let touched =
                    apply(&mut state, &change.mutation).map_err(|e| StoreError::Corrupt {
                        at: at(),
                        why: e.to_string(),
                    })?;
                let prev: &Snapshot = compiled.as_ref().unwrap_or(&*snapshot);
                let next = timed(&self.metrics, || {
                    recompile(prev, Arc::new(state.clone()), &touched)
                });
                self.retire(compiled.replace(next));
            }
        }
        if let Some(compiled) = compiled {
            self.publish(compiled);
        }
        Ok(self.load().revision())
    }
}
