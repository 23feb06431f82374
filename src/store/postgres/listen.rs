//! The wake-up: a thread with a connection of its own that LISTENs on
//! [`HEAD_CHANNEL`], where every commit notifies its new head, and passes
//! the newest head heard of to the node ([`Store::heads`]). A hint only:
//! notifications sent while this connection is down are lost, so the node
//! polls as well; on every (re)connection the thread reads the head once,
//! which covers what it missed.
//!
//! [`Store::heads`]: crate::store::Store::heads

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::watch;

use super::pool::{Pool, drop_client, pg};
use super::rows::{HEAD_CHANNEL, META, meta_of};
use crate::store::StoreError;

/// How long one wait for a notification lasts; the thread checks whether
/// it should stop, and probes a silent connection, between waits.
const WAIT: Duration = Duration::from_secs(1);

/// A connection silent this long is probed with a round trip, so one
/// whose peer vanished (no FIN: a failover, a network cut) is replaced.
const PROBE_AFTER: Duration = Duration::from_secs(5);

/// How long to wait before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// The listener of one store: started on the first [`Listener::subscribe`],
/// stopped when dropped (within [`WAIT`]).
pub(super) struct Listener {
    heads: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Starts the thread. `pool` gives it its connections (its own, not
    /// the pool's).
    pub(super) fn start(pool: Arc<Pool>) -> Result<Self, StoreError> {
        let (tx, heads) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("rampart-pg-listen".into())
            .spawn(move || run(&pool, &tx, &stopping))
            .map_err(|e| StoreError::Backend(format!("cannot start the listener thread: {e}")))?;
        Ok(Self { heads, stop })
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.heads.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(pool: &Pool, heads: &watch::Sender<u64>, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        match listen(pool, heads, stop) {
            Ok(()) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "not listening for other nodes' commits; following by polling until this is back");
                }
                failing = true;
            }
        }
        std::thread::sleep(RETRY);
    }
}

/// Raises the head heard of to `revision`, waking the node if it moved.
fn heard(heads: &watch::Sender<u64>, revision: u64) {
    heads.send_if_modified(|head| {
        let newer = revision > *head;
        if newer {
            *head = revision;
        }
        newer
    });
}

/// One connection's life: LISTEN, read the head, pass on every
/// notification. `Ok` when told to stop, the error when the connection
/// failed.
fn listen(pool: &Pool, heads: &watch::Sender<u64>, stop: &AtomicBool) -> Result<(), StoreError> {
    let mut client = pool.connect()?;
    let result = serve(&mut client, &pool.target, heads, stop);
    drop_client(client);
    result
}

fn serve(
    client: &mut Client,
    target: &str,
    heads: &watch::Sender<u64>,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    client
        .batch_execute(&format!("LISTEN {HEAD_CHANNEL}"))
        .map_err(|e| pg(target, e))?;
    let meta = meta_of(&client.query_one(META, &[]).map_err(|e| pg(target, e))?)?;
    heard(heads, meta.revision);
    tracing::debug!(store = %target, head = meta.revision, "listening for other nodes' commits");
    let mut silent = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let mut got = false;
        {
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(WAIT);
            while let Some(n) = waiting.next().map_err(|e| pg(target, e))? {
                got = true;
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                // A payload that is not a revision is someone else's.
                if let Ok(revision) = n.payload().parse::<u64>() {
                    heard(heads, revision);
                }
            }
        }
        if client.is_closed() {
            return Err(StoreError::Backend(format!(
                "PostgreSQL store {target}: the listening connection closed"
            )));
        }
        silent = if got { Duration::ZERO } else { silent + WAIT };
        if silent >= PROBE_AFTER {
            client.is_valid(WAIT).map_err(|e| pg(target, e))?;
            silent = Duration::ZERO;
        }
    }
    Ok(())
}
