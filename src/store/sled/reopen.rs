//! `SledStore`: the [`Store`] over one sled [`Handle`] at a time, closed
//! for writes after a write that could not be made durable and opened
//! again by [`Store::repair`].
//!
//! Why: sled 0.34 keeps the first I/O error of a flush (on a full disk,
//! `ENOSPC`) and answers every later write and flush with it at once, even
//! once space is freed; only a new `Db` starts clean, from what is on disk.
//! So a handle found unfit after a failed write is closed for writes (they
//! answer `UNAVAILABLE` naming the failure). Reads still go to it: it holds
//! everything acknowledged (its cache may also hold what the failed write
//! left, never made durable; the engine never publishes that, so Watch does
//! not stream it). `repair` opens the folder again once its file system has
//! room, which checks it against the head file as at startup. A `Db`
//! cannot be opened twice (sled locks its file), so the old handle goes
//! first, and `repair` waits a bounded time for the calls still using it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::Handle;
use crate::model::State;
use crate::store::space::{available, bytes};
use crate::store::{
    AuditFilter, AuditRecord, Change, FreeSpace, History, Outcomes, Recovery, Repair, Store,
    StoreError,
};

/// How long [`Store::repair`] waits for the closed handle's last users,
/// and for sled's threads to let go of its file lock.
const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// The least free space [`Store::repair`] opens the store again with
/// (or the watermark, when higher): sled writes as it opens, and fails to
/// open on a full disk. Below it the closed handle keeps serving reads.
const REOPEN_ROOM: u64 = 1 << 20;

/// The production store: a sled database in one folder.
pub struct SledStore {
    path: PathBuf,
    slot: RwLock<Slot>,
    /// The free-space watermark writes are checked against (none: off).
    space: Option<Arc<FreeSpace>>,
}

/// The handle a [`SledStore`] answers from.
enum Slot {
    /// Reads and writes.
    Open(Arc<Handle>),
    /// Closed for writes after the failure `cause`; reads still answered
    /// by `old`.
    Closed { cause: String, old: Arc<Handle> },
    /// No handle: being opened again, or the last attempt failed (`last`).
    Gone { cause: String, last: Option<String> },
}

impl Slot {
    /// Why writes are refused (`None`: they are not).
    fn refusal(&self) -> Option<String> {
        match self {
            Slot::Open(_) => None,
            Slot::Closed { cause, .. } | Slot::Gone { cause, last: None } => Some(format!(
                "the store takes no writes since one failed ({cause}); it is opened again once \
                 the data dir's filesystem has room"
            )),
            Slot::Gone {
                cause,
                last: Some(last),
            } => Some(format!(
                "the store takes no writes since one failed ({cause}); opening it again failed: {last}"
            )),
        }
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in the folder `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let handle = Handle::open(&path)?;
        Ok(Self {
            path,
            slot: RwLock::new(Slot::Open(Arc::new(handle))),
            space: None,
        })
    }

    /// Refuses every later write (commits, refusals recorded, replicated
    /// changes, installs, checkpoints, bootstraps) before it reaches sled
    /// while `space` says the file system is below its watermark (see
    /// `store/space.rs`). Reads are never checked.
    pub fn with_free_space(mut self, space: Arc<FreeSpace>) -> Self {
        self.space = Some(space);
        self
    }

    /// [`Store::load`], also saying where recovery started.
    pub fn recover(&self) -> Result<Recovery, StoreError> {
        self.reader()?.recover()
    }

    /// Refuses a write while the file system is below the watermark.
    fn room(&self) -> Result<(), StoreError> {
        self.space.as_ref().map_or(Ok(()), |space| space.check())
    }

    /// The handle reads go to.
    fn reader(&self) -> Result<Arc<Handle>, StoreError> {
        match &*self.slot.read().unwrap_or_else(PoisonError::into_inner) {
            Slot::Open(handle) | Slot::Closed { old: handle, .. } => Ok(Arc::clone(handle)),
            gone => Err(StoreError::Backend(gone.refusal().unwrap_or_default())),
        }
    }

    /// The handle writes go to, or why there is none.
    fn writer(&self) -> Result<Arc<Handle>, StoreError> {
        match &*self.slot.read().unwrap_or_else(PoisonError::into_inner) {
            Slot::Open(handle) => Ok(Arc::clone(handle)),
            closed => Err(StoreError::Backend(closed.refusal().unwrap_or_default())),
        }
    }

    /// Runs a write through the open handle, once the watermark lets it
    /// ([`SledStore::guarded`]).
    fn write<T>(&self, f: impl FnOnce(&Handle) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.room()?;
        self.guarded(f)
    }

    /// Runs `f` on the open handle; when it fails and the handle can no
    /// longer make writes durable, closes the handle for writes.
    fn guarded<T>(
        &self,
        f: impl FnOnce(&Handle) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let handle = self.writer()?;
        let result = f(&handle);
        if let Err(e) = &result
            && !handle.fit()
        {
            self.close(&handle, e);
        }
        result
    }

    /// Closes `handle` for writes after `failure`, if it is the open one.
    fn close(&self, handle: &Arc<Handle>, failure: &StoreError) {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if matches!(&*slot, Slot::Open(open) if Arc::ptr_eq(open, handle)) {
            tracing::error!(
                error = %failure,
                data_dir = %self.path.display(),
                "a write to the store failed and sled can no longer make writes durable: \
                 writes are refused until the store is opened again, once the data dir's \
                 filesystem has room"
            );
            *slot = Slot::Closed {
                cause: message(failure),
                old: Arc::clone(handle),
            };
        }
    }

    /// Whether the data dir's file system has room to open sled again (yes
    /// when it cannot be told).
    fn has_room(&self) -> Result<(), String> {
        let least = self
            .space
            .as_ref()
            .map_or(REOPEN_ROOM, |space| space.min().max(REOPEN_ROOM));
        match available(&self.path) {
            Ok(free) if free < least => Err(format!(
                "the data dir's filesystem has {} free; the store opens again once it has {}",
                bytes(free),
                bytes(least)
            )),
            _ => Ok(()),
        }
    }

    /// Drops the closed handle (waiting for its last users) and opens the
    /// folder again; `None` when another repair did meanwhile.
    fn reopen(&self) -> Result<Option<Handle>, StoreError> {
        let old = {
            let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                Slot::Open(_) => return Ok(None),
                Slot::Closed { cause, old } => {
                    let old = Arc::downgrade(old);
                    *slot = Slot::Gone {
                        cause: cause.clone(),
                        last: None,
                    };
                    Some(old)
                }
                Slot::Gone { .. } => None,
            }
        };
        let started = Instant::now();
        // Every call that took the old handle must let go of it: sled's
        // file lock goes with its last user.
        while old.as_ref().is_some_and(|old| old.strong_count() > 0) {
            if started.elapsed() > RELEASE_WAIT {
                return Err(StoreError::Backend(format!(
                    "a call still uses the closed handle after {RELEASE_WAIT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            match Handle::open(&self.path) {
                // sled's I/O threads may hold its lock a moment longer.
                Err(StoreError::Backend(e))
                    if e.contains("could not acquire lock") && started.elapsed() < RELEASE_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.map(Some),
            }
        }
    }

    /// Records why the last attempt to open the store again failed.
    fn reopen_failed(&self, e: &StoreError) {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if let Slot::Gone { last, .. } = &mut *slot {
            *last = Some(message(e));
        }
    }
}

/// A failure's message without the `storage: ` its display starts with,
/// for a message that already says it is about the store.
fn message(e: &StoreError) -> String {
    match e {
        StoreError::Backend(why) => why.clone(),
        other => other.to_string(),
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<State, StoreError> {
        self.reader()?.load()
    }

    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        self.write(|h| h.commit_batch(batch))
    }

    fn begin_bootstrap(&self) -> Result<(), StoreError> {
        self.write(Handle::begin_bootstrap)
    }

    fn finish_bootstrap(&self) -> Result<(), StoreError> {
        // Not checked against the watermark: it only removes the mark, and
        // a bootstrap refused there would be discarded whole.
        self.guarded(Handle::finish_bootstrap)
    }

    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.write(|h| h.append(changes))
    }

    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.reader()?.changelog(after, limit)
    }

    fn history(&self) -> Result<History, StoreError> {
        self.reader()?.history()
    }

    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        self.reader()?.checkpoint_revision()
    }

    fn compact(&self, before: u64) -> Result<u64, StoreError> {
        // Not checked against the watermark: it only deletes (and runs
        // every few seconds, so a refusal would be logged each time).
        self.guarded(|h| h.compact(before))
    }

    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        self.write(|h| h.install(state, history))
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.reader()?.audit(filter)
    }

    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        self.write(|h| h.checkpoint(state))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.reader()?.revision()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.guarded(Handle::flush)
    }

    fn repair(&self) -> Result<Repair, StoreError> {
        if let Ok(handle) = self.writer() {
            if handle.fit() {
                return Ok(Repair::Sound);
            }
            self.close(
                &handle,
                &StoreError::Backend("sled can no longer make writes durable".into()),
            );
        }
        let cause = match &*self.slot.read().unwrap_or_else(PoisonError::into_inner) {
            Slot::Open(_) => return Ok(Repair::Reopened),
            Slot::Closed { cause, .. } | Slot::Gone { cause, .. } => cause.clone(),
        };
        let refusal = format!("the store takes no writes since one failed ({cause})");
        // Not on a full disk: sled would fail to open, and the closed
        // handle would no longer answer reads.
        if let Err(room) = self.has_room() {
            return Err(StoreError::Backend(format!("{refusal}; {room}")));
        }
        match self.reopen() {
            Ok(Some(handle)) => {
                *self.slot.write().unwrap_or_else(PoisonError::into_inner) =
                    Slot::Open(Arc::new(handle));
                tracing::info!(
                    data_dir = %self.path.display(),
                    "the store is open again after a failed write: writes resume"
                );
                Ok(Repair::Reopened)
            }
            Ok(None) => Ok(Repair::Reopened),
            Err(e) => {
                self.reopen_failed(&e);
                match e {
                    // The folder holds less than was acknowledged, or
                    // damaged records: named as at startup; retrying will
                    // not help.
                    StoreError::Corrupt { .. } => Err(e),
                    other => Err(StoreError::Backend(format!(
                        "{refusal}; opening it again failed: {}",
                        message(&other)
                    ))),
                }
            }
        }
    }
}
