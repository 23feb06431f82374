//! The background maintenance of a durable node: checkpoints every so many
//! revisions, changelog compaction as the retention allows, and repairing
//! the store after a failed write.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::engine::{Engine, REPAIR_EVERY, StoreHealth};
use crate::model::Timestamp;
use crate::store::{Retention, Store, blocking};

/// Every few seconds: writes a checkpoint once `every` revisions have passed
/// since the last one (from a copy of the current state, an `Arc` clone,
/// off the writer), then compacts the changelog as `retention` allows.
/// Neither holds up checks or commits.
pub(super) async fn maintenance_loop(
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    every: u64,
    retention: Retention,
) {
    let mut last = engine.load().revision();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let health = engine.store_health();
    loop {
        tick.tick().await;
        if *health.borrow() != StoreHealth::Writable {
            // Closed after a failed write: every write would be refused
            // (and logged) until `repair_loop` opens it again.
            continue;
        }
        let compacting = Arc::clone(&store);
        match blocking(move || {
            let before = compacting.history()?.first;
            let cutoff = retention.cutoff(&*compacting, Timestamp::now())?;
            compacting.compact(cutoff).map(|first| (before, first))
        })
        .await
        {
            Ok((before, first)) if first > before => {
                info!(
                    removed = first - before,
                    oldest_retained = first,
                    "changelog compacted"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "compaction failed; will retry"),
        }
        let state = Arc::clone(engine.load().state());
        // A replica's bootstrap can move the revision back.
        last = last.min(state.revision);
        if state.revision < last.saturating_add(every.max(1)) {
            continue;
        }
        let revision = state.revision;
        let writing = Arc::clone(&store);
        // On a shared store another node may have written one meanwhile,
        // or be writing one now (then this node skips): the store says.
        match blocking(move || {
            if !writing.shared() {
                return writing.checkpoint(&state).map(|()| revision);
            }
            let theirs = writing.checkpoint_revision()?;
            if theirs.saturating_add(every.max(1)) > revision {
                return Ok(theirs);
            }
            writing.checkpoint(&state)?;
            writing.checkpoint_revision()
        })
        .await
        {
            Ok(now) if now >= revision => {
                info!(revision, "checkpoint written");
                last = revision;
            }
            Ok(now) => {
                debug!(
                    revision = now,
                    "a checkpoint by another node is recent enough"
                );
                last = last.max(now);
            }
            Err(e) => warn!(error = %e, "checkpoint failed; will retry"),
        }
    }
}

/// While the engine's store is failed (a write failed, on a full disk):
/// tries to repair it every [`REPAIR_EVERY`], so writes resume once space
/// is freed without waiting for a write to come and try.
pub(super) async fn repair_loop(engine: Arc<Engine>) {
    let mut health = engine.store_health();
    loop {
        let failed = health
            .wait_for(|h| matches!(h, StoreHealth::Failed(_)))
            .await
            .is_ok();
        if !failed {
            return;
        }
        tokio::time::sleep(REPAIR_EVERY).await;
        engine.repair_store().await;
    }
}

/// On a store other nodes write: applies what they committed
/// ([`Engine::follow_shared`]) as soon as the store says its head moved
/// past this node's, and every `every` whatever it says (notifications are
/// lost while the store's listening connection is down), so this node's
/// reads, Watch and `at_least_revision` see their writes. A failure (the
/// database away) is logged when it starts and when it ends; checks go on
/// from the last state.
pub(super) async fn follow_shared_loop(engine: Arc<Engine>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heads = engine.shared_heads();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            more = ahead(&mut heads, &engine) => if !more {
                heads = None;
            },
        }
        match engine.follow_shared().await {
            Ok(None) => return,
            Ok(Some(_)) if failing => {
                failing = false;
                info!("following the shared store again");
            }
            Ok(Some(_)) => {}
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, "cannot follow the shared store; checks answer from the last state");
            }
            Err(_) => {}
        }
    }
}

/// Waits until the store tells of a new head past this node's revision:
/// `true` then, `false` once it can no longer tell; never without `heads`.
/// Only news wakes it, so a head this node cannot reach (the database
/// away) does not spin the loop.
async fn ahead(heads: &mut Option<tokio::sync::watch::Receiver<u64>>, engine: &Engine) -> bool {
    let Some(heads) = heads else {
        return std::future::pending().await;
    };
    loop {
        if heads.changed().await.is_err() {
            return false;
        }
        if *heads.borrow_and_update() > engine.load().revision() {
            return true;
        }
    }
}
