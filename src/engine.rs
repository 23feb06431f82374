//! The published snapshot: swapped atomically, read without locks.
//!
//! Readers call [`Engine::load`] (an `ArcSwap` load, no lock). The one writer
//! publishes a newly compiled snapshot with [`Engine::publish`], which also
//! wakes anyone waiting for a revision (`at_least_revision`). The admin
//! writer (validate → commit → apply → compile → swap) builds on this.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::model::State;
use crate::policy::{Snapshot, compile};

/// Holds the current snapshot.
#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Snapshot>,
    revision: watch::Sender<u64>,
}

impl Engine {
    /// An engine serving `state`, compiled.
    pub fn new(state: State) -> Self {
        let snapshot = compile(Arc::new(state));
        let (revision, _) = watch::channel(snapshot.revision());
        Self {
            current: ArcSwap::from_pointee(snapshot),
            revision,
        }
    }

    /// The current snapshot. Never blocks.
    #[inline]
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Swaps in `snapshot` and wakes waiters. The caller is the one writer.
    pub fn publish(&self, snapshot: Snapshot) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut next = State::new();
        next.revision = 1;
        engine.publish(compile(Arc::new(next)));
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.revision(), 1);
    }
}
