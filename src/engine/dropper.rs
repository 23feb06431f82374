//! Where replaced snapshots are freed: on a thread of their own, never on a
//! reader's.
//!
//! Freeing a 100k-user snapshot takes about 100 ms (millions of small
//! allocations). Without this, whoever released the last `Arc` of a
//! snapshot after a swap freed it: usually a Check, which then answered
//! 100 ms late, on a tokio worker every other call on it waited behind.
//!
//! The writer hands every snapshot it replaces (the published one a swap
//! took out, and the intermediate ones of a batch) to [`Dropper::retire`],
//! which sends the `Arc` to a dedicated thread. That thread keeps one
//! reference to each until it is the only holder left, then frees it. A
//! reader that loaded the old snapshot (an `Arc` from `load_full`, or a
//! guard `ArcSwap::swap` turned into one) only ever drops a count, since the
//! dropper's own reference outlives it. No `unsafe`, no lock a reader takes:
//! the readers' path is unchanged.
//!
//! "The only holder" is [`Arc::try_unwrap`]: atomic, so no reader can be
//! between loading and cloning a snapshot that is no longer published. The
//! thread looks again with a growing wait (1 ms, doubling, at most
//! [`MAX_WAIT`]) while it holds snapshots that are still in use, and sleeps
//! on the channel while it holds none. When the engine is dropped the
//! channel closes: the thread lets go of what it holds (readers still
//! holding one free it, at shutdown) and ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The longest the dropper waits before looking again at a snapshot a
/// reader still holds.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// The name of the dropper thread.
pub const THREAD_NAME: &str = "rampart-dropper";

/// Hands replaced values to a background thread that frees each once no
/// one else holds it.
#[derive(Debug)]
pub struct Dropper<T: Send + Sync + 'static> {
    /// `None` only if the thread could not be started: values are then
    /// dropped where they are retired (the writer), as before.
    tx: Option<Sender<Arc<T>>>,
    freed: Arc<Freed>,
}

/// How many values the thread has freed, with a way to wait for more.
#[derive(Debug, Default)]
struct Freed {
    count: Mutex<u64>,
    changed: Condvar,
    /// The same count, for a reader that does not wait.
    seen: AtomicU64,
}

impl<T: Send + Sync + 'static> Dropper<T> {
    /// Starts the thread.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel::<Arc<T>>();
        let freed = Arc::new(Freed::default());
        let counter = Arc::clone(&freed);
        let started = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(&rx, &counter));
        if let Err(e) = &started {
            tracing::warn!(
                "could not start the {THREAD_NAME} thread ({e}): replaced snapshots are freed by whoever releases them last"
            );
        }
        Self {
            tx: started.ok().map(|_| tx),
            freed,
        }
    }

    /// Hands `value` to the thread, which frees it once it holds the only
    /// reference.
    pub fn retire(&self, value: Arc<T>) {
        let Some(tx) = &self.tx else {
            return;
        };
        // A send fails only if the thread is gone (it panicked): the value
        // comes back and is dropped here.
        let _ = tx.send(value);
    }

    /// How many retired values the thread has freed so far.
    pub fn freed(&self) -> u64 {
        self.freed.seen.load(Ordering::Acquire)
    }

    /// Waits until the thread has freed at least `n` values in all, or
    /// `limit` passed; the count then.
    pub fn wait_freed(&self, n: u64, limit: Duration) -> u64 {
        let count = self
            .freed
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (count, _) = self
            .freed
            .changed
            .wait_timeout_while(count, limit, |c| *c < n)
            .unwrap_or_else(PoisonError::into_inner);
        *count
    }
}

impl<T: Send + Sync + 'static> Default for Dropper<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The thread: collect retired values, free each once it is the last
/// reference, until the sender is dropped.
fn run<T>(rx: &mpsc::Receiver<Arc<T>>, freed: &Freed) {
    let mut held: Vec<Arc<T>> = Vec::new();
    let mut wait = Duration::from_millis(1);
    loop {
        let next = if held.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(wait)
        };
        match next {
            Ok(value) => {
                held.push(value);
                held.extend(rx.try_iter());
                wait = Duration::from_millis(1);
            }
            Err(RecvTimeoutError::Timeout) => wait = (wait * 2).min(MAX_WAIT),
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let mut still = Vec::with_capacity(held.len());
        let mut n = 0;
        for value in held.drain(..) {
            match Arc::try_unwrap(value) {
                Ok(last) => {
                    drop(last);
                    n += 1;
                }
                Err(shared) => still.push(shared),
            }
        }
        held = still;
        if n > 0 {
            let mut count = freed.count.lock().unwrap_or_else(PoisonError::into_inner);
            *count += n;
            freed.seen.store(*count, Ordering::Release);
            freed.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    /// A payload that reports which thread dropped it.
    struct Payload(mpsc::Sender<(ThreadId, Option<String>)>);

    impl Drop for Payload {
        fn drop(&mut self) {
            let me = std::thread::current();
            let _ = self.0.send((me.id(), me.name().map(str::to_owned)));
        }
    }

    #[test]
    fn the_last_reader_to_let_go_does_not_free_the_payload() {
        let dropper = Dropper::new();
        let (tx, dropped) = mpsc::channel();
        let published = Arc::new(Payload(tx));
        // A reader loads the snapshot, then the writer replaces it.
        let held = Arc::clone(&published);
        let (go, released) = mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let me = std::thread::current().id();
            released.recv().unwrap();
            drop(held);
            me
        });
        dropper.retire(published);
        go.send(()).unwrap();
        let reader = reader.join().unwrap();
        let (by, name) = dropped.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_ne!(by, reader, "the reader freed the payload");
        assert_ne!(by, std::thread::current().id());
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_eq!(dropper.wait_freed(1, Duration::from_secs(60)), 1);
    }

    #[test]
    fn a_value_no_one_else_holds_is_freed_at_once_and_a_held_one_later() {
        let dropper = Dropper::new();
        let (tx, dropped) = mpsc::channel();
        dropper.retire(Arc::new(Payload(tx.clone())));
        let (_, name) = dropped.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        let value = Arc::new(Payload(tx));
        let held = Arc::clone(&value);
        dropper.retire(value);
        // Held: the thread keeps looking and must not have freed it.
        assert_eq!(dropper.wait_freed(1, Duration::from_secs(60)), 1);
        assert!(dropped.try_recv().is_err());
        drop(held);
        let (_, name) = dropped.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_eq!(dropper.wait_freed(2, Duration::from_secs(60)), 2);
    }
}
