//! One Watch stream, as a task: the store's changelog read page by page
//! from the client's revision, then, once caught up, the engine's revision
//! channel waited on for more (or a checkpoint after the heartbeat).
//!
//! Every watcher reads the same durable log, so a slow watcher holds
//! nothing up but itself, and "in order, no gaps" holds by construction:
//! each page is checked to follow the last. A page never goes past the
//! published revision (a change is published once durable), and each page
//! re-reads the node's history, ending the stream if it changed.
//!
//! A stream filtered to some tenants asks its [`TenantFilter`] what to
//! send, and moves it along every change, sent or not; before it starts,
//! it moves the filter from the snapshot it was made at to the client's
//! revision ([`Watcher::seed`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::filter::TenantFilter;
use super::refusal::WatchError;
use crate::engine::Engine;
use crate::model::Mutation;
use crate::proto;
use crate::store::{Change, Store, StoreError};

/// Changelog entries read per page.
pub(super) const PAGE: usize = 512;

/// Where a stream's events go.
pub(super) type Events = mpsc::Sender<Result<proto::WatchEvent, Status>>;

/// Runs blocking store work off the async workers; a failure is its
/// kind's status (a failed read is UNAVAILABLE, as in every service).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    crate::store::blocking(f)
        .await
        .map_err(|e| proto::status(&e))
}

/// The wire form of a change.
pub fn change_event(change: &Change, head: u64) -> Result<proto::WatchEvent, Status> {
    let mutation = serde_json::to_vec(&change.mutation)
        .map_err(|e| Status::internal(format!("revision {}: {e}", change.revision)))?;
    Ok(proto::WatchEvent {
        event: Some(proto::watch_event::Event::Change(proto::Change {
            revision: change.revision,
            time: change.time.map(|t| t.to_string()).unwrap_or_default(),
            kind: change.mutation.kind().to_owned(),
            tenant: change
                .mutation
                .tenant()
                .map(ToString::to_string)
                .unwrap_or_default(),
            mutation,
        })),
        head_revision: head,
    })
}

/// A Watch checkpoint: the stream has got to `cursor` of `history`.
fn checkpoint_event(cursor: u64, history: &str, head: u64) -> proto::WatchEvent {
    proto::WatchEvent {
        event: Some(proto::watch_event::Event::Checkpoint(
            proto::WatchCheckpoint {
                revision: cursor,
                history: history.to_owned(),
            },
        )),
        head_revision: head.max(cursor),
    }
}

/// One stream's settings and state.
pub(super) struct Watcher {
    /// The node's engine: its published snapshot, which a filter starts
    /// again from whenever the stream is caught up with it.
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    /// The engine's published revisions.
    pub revisions: watch::Receiver<u64>,
    /// Becomes `true` when the server shuts down.
    pub stopping: watch::Receiver<bool>,
    pub heartbeat: Duration,
    /// The history the stream reads; another one ends it.
    pub history: String,
    /// The revision the client has: events start after it.
    pub from: u64,
    /// The tenants whose changes it sends, made at the revision beside it
    /// (`None`: every change).
    pub filter: Option<(TenantFilter, u64)>,
}

impl Watcher {
    /// Streams into `tx` until the client goes away, the server stops or
    /// the stream cannot go on (its error is the last event).
    pub(super) async fn run(mut self, tx: Events) {
        let history = self.history.clone();
        let mut filter = match self.filter.take() {
            None => None,
            Some((filter, at)) => match self.seed(filter, at, &tx).await {
                Ok(filter) => Some(filter),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            },
        };
        let mut cursor = self.from;
        // The first time the client is caught up it hears so at once (a
        // replica becomes ready without waiting a heartbeat).
        let mut told_caught_up = false;
        // The last revision the client heard of, by a change or a
        // checkpoint.
        let mut told = self.from;
        loop {
            // Only what is published: a change is published once durable,
            // so a watcher never gets a change the node could still lose
            // in a crash.
            let head = *self.revisions.borrow_and_update();
            let page = match self.page(cursor, head).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if page.is_empty() {
                if let Some(filter) = &mut filter {
                    let snapshot = self.engine.load();
                    if snapshot.revision() == cursor {
                        filter.rebase(snapshot.state());
                    }
                }
                let checkpoint = checkpoint_event(cursor, &history, head);
                if !told_caught_up {
                    told_caught_up = true;
                    if tx.send(Ok(checkpoint)).await.is_err() {
                        return;
                    }
                    continue;
                }
                if !self.idle(&tx, checkpoint).await {
                    return;
                }
                continue;
            }
            for change in page {
                if Some(change.revision) != cursor.checked_add(1) {
                    // Compacted between pages: the client must bootstrap.
                    let compacted = WatchError::Compacted {
                        wanted: cursor.saturating_add(1),
                        next: change.revision,
                    };
                    let _ = tx.send(Err(proto::status(&compacted))).await;
                    return;
                }
                cursor = change.revision;
                let wanted = filter.as_ref().is_none_or(|f| f.admits(&change.mutation));
                if let Some(filter) = &mut filter {
                    filter.forward(&change.mutation);
                }
                if !wanted {
                    continue;
                }
                let event = change_event(&change, head.max(cursor));
                if tx.send(event).await.is_err() {
                    return;
                }
                told = cursor;
            }
            if cursor > told {
                // The page ended with changes the filter left out: say at
                // once how far the stream got, so a scoped replica reaches
                // the revision (`at_least_revision`) without waiting for a
                // heartbeat.
                let checkpoint = checkpoint_event(cursor, &history, head);
                if tx.send(Ok(checkpoint)).await.is_err() {
                    return;
                }
                told = cursor;
            }
        }
    }

    /// The changelog after `cursor`, up to `head` (at most a page), read
    /// with the history; a history other than the stream's is an error.
    async fn page(&self, cursor: u64, head: u64) -> Result<Vec<Change>, Status> {
        if cursor >= head {
            return Ok(Vec::new());
        }
        let store = Arc::clone(&self.store);
        let (page, now) = blocking(move || {
            let mut page = store.changelog(cursor, PAGE)?;
            page.retain(|c| c.revision <= head);
            Ok((page, store.history()?.id))
        })
        .await?;
        if now != self.history {
            // Installed anew (a replica's re-bootstrap): the revisions
            // after the cursor are another history's.
            let changed = WatchError::HistoryChanged {
                was: self.history.clone(),
                now,
            };
            return Err(proto::status(&changed));
        }
        Ok(page)
    }

    /// `filter`, made at revision `at`, moved to the client's revision
    /// along the changelog between them. OUT_OF_RANGE when the changes to
    /// move back over delete one of its tenants, or were compacted away
    /// meanwhile. Stops, CANCELLED, when the client has gone (`tx` closed):
    /// a client that opens and drops Watches does not cost a whole replay
    /// each.
    async fn seed(
        &self,
        mut filter: TenantFilter,
        at: u64,
        tx: &Events,
    ) -> Result<TenantFilter, Status> {
        let (low, high) = (self.from.min(at), self.from.max(at));
        // The mutations that move the filter, in revision order (only
        // those: a page's other changes are dropped as it is read).
        let mut tracked: Vec<(u64, Mutation)> = Vec::new();
        let mut cursor = low;
        while cursor < high {
            if tx.is_closed() {
                return Err(Status::cancelled("the client went away"));
            }
            let page = self.page(cursor, high).await?;
            if page.is_empty() {
                // Compacted up to past `high` since the stream started.
                let compacted = WatchError::Compacted {
                    wanted: cursor + 1,
                    next: high + 1,
                };
                return Err(proto::status(&compacted));
            }
            for change in page {
                if change.revision != cursor + 1 {
                    let compacted = WatchError::Compacted {
                        wanted: cursor + 1,
                        next: change.revision,
                    };
                    return Err(proto::status(&compacted));
                }
                cursor = change.revision;
                if filter.tracks(&change.mutation) {
                    tracked.push((change.revision, change.mutation));
                }
            }
        }
        if self.from >= at {
            tracked.iter().for_each(|(_, m)| filter.forward(m));
            return Ok(filter);
        }
        for (revision, mutation) in tracked.iter().rev() {
            filter.backward(mutation).map_err(|unknown| {
                proto::status(&WatchError::DeletedSince {
                    tenant: unknown.tenant.to_string(),
                    deleted: *revision,
                    from: self.from,
                })
            })?;
        }
        Ok(filter)
    }

    /// Waits, caught up, for a new revision (`true`), sending `checkpoint`
    /// at each heartbeat meanwhile; `false` when the stream must end.
    async fn idle(&mut self, tx: &Events, checkpoint: proto::WatchEvent) -> bool {
        tokio::select! {
            changed = self.revisions.changed() => changed.is_ok(),
            () = tokio::time::sleep(self.heartbeat) => tx.send(Ok(checkpoint)).await.is_ok(),
            () = tx.closed() => false,
            () = async { let _ = self.stopping.wait_for(|s| *s).await; } => {
                let _ = tx.send(Err(proto::status(&WatchError::ShuttingDown))).await;
                false
            }
        }
    }
}
