//! Bootstrapping a shared store: the mark, the session lock that says a
//! bootstrap is in progress, waiting for another node's, and undoing one
//! whose node stopped.

use std::sync::PoisonError;
use std::time::Duration;

use postgres::Client;

use super::pool::{drop_client, pg};
use super::rows::{int, lock_meta};
use super::{PgStore, StoreError};

/// The session-level advisory lock a bootstrapping node holds from
/// `begin_bootstrap` to `finish_bootstrap`. PostgreSQL releases it when
/// that node's connection ends, so a bootstrap mark whose lock is free was
/// left by a node that stopped, and one whose lock is held is in progress.
const BOOTSTRAP_LOCK: i64 = 0x72_61_6d_70_62_6f_6f_74;

/// How long a node waits for another one bootstrapping the store.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(300);

pub(super) fn advisory(c: &mut Client, target: &str, call: &str) -> Result<bool, StoreError> {
    advisory_on(c, target, call, BOOTSTRAP_LOCK)
}

pub(super) fn advisory_on(
    c: &mut Client,
    target: &str,
    call: &str,
    key: i64,
) -> Result<bool, StoreError> {
    c.query_one(&format!("SELECT {call}($1)"), &[&key])
        .map(|row| row.get::<_, bool>(0))
        .map_err(|e| pg(target, e))
}

/// Undoes an interrupted bootstrap (begun at the audit seq its mark
/// holds, on an empty store), in one transaction: the store is empty
/// again, keeping its history id and the audit records from before.
///
/// Only a bootstrap whose node is gone is undone: its node held
/// [`BOOTSTRAP_LOCK`] for the session, so the lock is free. One in
/// progress on another node is left alone, and this node does not
/// start (started again later, it finds the state). The mark is read
/// again under the meta row's lock: another node may have undone it.
pub(super) fn discard(c: &mut Client, target: &str) -> Result<(), StoreError> {
    // A node that has just stopped may still hold the lock for a
    // moment (its backend has not yet seen the connection close).
    let mut free = false;
    for _ in 0..20 {
        free = advisory(c, target, "pg_try_advisory_lock")?;
        if free {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !free {
        return Err(StoreError::Backend(format!(
            "PostgreSQL store {target}: another node is bootstrapping it; start this node once that is done"
        )));
    }
    let discarded = discard_locked(c, target);
    advisory(c, target, "pg_advisory_unlock")?;
    discarded
}

fn discard_locked(c: &mut Client, target: &str) -> Result<(), StoreError> {
    let mut tx = c.transaction().map_err(|e| pg(target, e))?;
    let Some(seq) = lock_meta(&mut tx, target)?.bootstrapping else {
        return Ok(());
    };
    tracing::warn!(
        store = %target,
        "the store holds an interrupted bootstrap (the process stopped before it finished): discarding it, the store is empty again"
    );
    let seq = int("seq", seq)?;
    tx.batch_execute("DELETE FROM rampart_changelog; DELETE FROM rampart_checkpoint")
        .map_err(|e| pg(target, e))?;
    tx.execute("DELETE FROM rampart_audit WHERE seq >= $1", &[&seq])
        .map_err(|e| pg(target, e))?;
    tx.execute(
        "UPDATE rampart_meta SET revision = 0, first_retained = 1, checkpoint = 0, next_audit_seq = $1, bootstrapping = NULL",
        &[&seq],
    )
    .map_err(|e| pg(target, e))?;
    tx.commit().map_err(|e| pg(target, e))
}

/// Sets the bootstrap mark (the audit seq the bootstrap starts at),
/// only on an empty store.
fn mark(c: &mut Client, target: &str) -> Result<(), StoreError> {
    let mut tx = c.transaction().map_err(|e| pg(target, e))?;
    let meta = lock_meta(&mut tx, target)?;
    if meta.revision != 0 {
        return Err(StoreError::OutOfOrder {
            have: meta.revision,
            got: 1,
        });
    }
    tx.execute(
        "UPDATE rampart_meta SET bootstrapping = $1",
        &[&int("seq", meta.next_audit_seq)?],
    )
    .map_err(|e| pg(target, e))?;
    tx.commit().map_err(|e| pg(target, e))
}

impl PgStore {
    pub(super) fn begin_bootstrapping(&self) -> Result<(), StoreError> {
        // A connection of its own, held until `finish_bootstrap`: the lock
        // is the session's, and ends with it if this process stops.
        // Nodes started together on an empty database race for it: the
        // others wait for the one bootstrapping, then find the store no
        // longer empty (`OutOfOrder`), and follow it.
        let mut c = self.pool.connect()?;
        let target = self.target();
        let started = std::time::Instant::now();
        let marked = loop {
            match advisory(&mut c, target, "pg_try_advisory_lock") {
                Ok(true) => break mark(&mut c, target),
                Ok(false) if started.elapsed() < BOOTSTRAP_WAIT => {
                    if started.elapsed() < Duration::from_millis(200) {
                        tracing::info!(store = %target, "another node is bootstrapping the store: waiting for it");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Ok(false) => {
                    break Err(StoreError::Backend(format!(
                        "PostgreSQL store {target}: another node has been bootstrapping it for {BOOTSTRAP_WAIT:?}"
                    )));
                }
                Err(e) => break Err(e),
            }
        };
        if marked.is_err() {
            drop_client(c);
            return marked;
        }
        let mut held = self
            .bootstrapping
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = held.replace(c) {
            drop_client(old);
        }
        Ok(())
    }

    pub(super) fn finish_bootstrapping(&self) -> Result<(), StoreError> {
        self.with(|c, target| {
            c.execute("UPDATE rampart_meta SET bootstrapping = NULL", &[])
                .map_err(|e| pg(target, e))
        })?;
        // Closing the session releases the lock.
        let held = self
            .bootstrapping
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(c) = held {
            drop_client(c);
        }
        Ok(())
    }
}
