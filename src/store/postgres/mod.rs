//! `PgStore`: the [`Store`] contract on PostgreSQL, so several nodes can
//! share one changelog (issue #12; this is its foundation: one node writes
//! at a time through the engine, the contract holds for several).
//!
//! Layout (schema in `schema.rs`): one `rampart_meta` row (head revision,
//! first retained revision, next audit seq, checkpoint revision, history
//! id, bootstrap mark), `rampart_changelog` keyed by revision,
//! `rampart_audit` keyed by seq, `rampart_checkpoint` keyed by (revision,
//! part) with part 0 the header and part i+1 tenant i (`checkpoint.rs`).
//! Values are the same JSON the sled backend writes.
//!
//! Every write that moves the head locks the meta row (`SELECT … FOR
//! UPDATE`) and is one transaction: that row is the compare-and-set, so a
//! commit of revision N+1 lands only if N is the head when it commits. A
//! revision someone else already took is [`StoreError::Conflict`]; the
//! changelog's primary key backs this up.
//!
//! Every commit also notifies [`rows::HEAD_CHANNEL`] with its new head
//! (delivered when it commits); each node LISTENs there (`listen.rs`) to
//! follow at once, and polls as well, since notifications are lost while
//! its listening connection is down.
//!
//! The client is the synchronous `postgres` crate, which runs its own
//! small tokio runtime: its calls must not be made on an async worker
//! (they are called through `store::blocking`, like sled's), and a client
//! dropped where a runtime is current is dropped on a thread of its own.
//! Connections come from a small pool (`pool.rs`); a lost one is replaced.
//! This module must not touch anything above `model`.

mod bootstrap;
mod checkpoint;
mod listen;
mod pool;
mod rows;
mod schema;
mod tls;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use postgres::{Client, Config, IsolationLevel};
use tokio::sync::watch;

use self::bootstrap::advisory_on;
pub use self::pool::MAX_CONNECTIONS;
pub(crate) use self::pool::pg;
use self::pool::{Pool, drop_client};
use self::rows::{
    META, Meta, change_of, corrupt, follows, insert_changes, int, lock_meta, meta_of, moving_head,
    write_batch,
};
pub use self::schema::VERSION as SCHEMA_VERSION;
use super::{
    AuditFilter, AuditRecord, Change, History, Outcomes, Recovery, Store, StoreError,
    encode_change, max_count, replay,
};
use crate::model::State;

/// Rows deleted per statement when compacting.
const DELETE_STEP: i64 = 10_000;

/// Audit rows read per query while filtering.
const AUDIT_PAGE: i64 = 1_000;

/// How long `hold_head` waits for the meta row before giving up.
const HOLD_WAIT: Duration = Duration::from_secs(5);

/// The session-level advisory lock a node holds while it writes a
/// checkpoint ("rampchkp" in ASCII); public so tests can hold it.
pub const CHECKPOINT_LOCK: i64 = 0x72_61_6d_70_63_68_6b_70;

/// A store in a PostgreSQL database.
pub struct PgStore {
    pool: Arc<Pool>,
    /// The connection holding [`BOOTSTRAP_LOCK`] between `begin_bootstrap`
    /// and `finish_bootstrap`: a session lock lives on one connection.
    bootstrapping: Mutex<Option<Client>>,
    /// Started by the first [`Store::heads`].
    listener: OnceLock<Result<listen::Listener, String>>,
    /// The changelog entry this node committed or followed last, as
    /// stored: [`Store::follow`] checks the database still holds it.
    tip: Mutex<Option<Change>>,
    /// A connection inside a transaction that holds the meta row
    /// (`hold_head`), for the next `commit_batch` to commit in.
    held: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.pool.target)
            .finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` (a libpq-style URL or key=value
    /// string: several hosts and `target_session_attrs=read-write` are
    /// accepted), creates or migrates rampart's schema, and undoes an
    /// interrupted bootstrap.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None)
    }

    /// [`PgStore::connect`], verifying a TLS server's certificate against
    /// the PEM file `ca` (else the system's roots). The URL's `sslmode`
    /// says whether TLS is used (see `tls.rs`).
    pub fn connect_with(url: &str, ca: Option<&std::path::Path>) -> Result<Self, StoreError> {
        let config: Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL store URL: {e}")))?;
        let store = Self {
            pool: Arc::new(Pool::new(config, tls::connector(ca)?)),
            bootstrapping: Mutex::new(None),
            listener: OnceLock::new(),
            tip: Mutex::new(None),
            held: Mutex::new(None),
        };
        store.with(schema::migrate)?;
        if store.meta()?.bootstrapping.is_some() {
            store.with(bootstrap::discard)?;
        }
        Ok(store)
    }

    /// Hosts, ports and database of this store, without credentials.
    pub fn target(&self) -> &str {
        &self.pool.target
    }

    /// After `changes` were committed, or read to be applied: the last
    /// one is the tip.
    fn follows_to(&self, changes: &[Change]) {
        if let Some(last) = changes.last() {
            self.set_tip(Some(last.clone()));
        }
    }

    fn set_tip(&self, tip: Option<Change>) {
        *self.tip.lock().unwrap_or_else(PoisonError::into_inner) = tip;
    }

    /// Runs `f` on a connection of the pool.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.pool.with(f)
    }

    fn meta(&self) -> Result<Meta, StoreError> {
        self.with(|c, target| meta_of(&c.query_one(META, &[]).map_err(|e| pg(target, e))?))
    }

    /// [`Store::load`], also saying where recovery started. Reads one
    /// consistent snapshot of the database.
    pub fn recover(&self) -> Result<Recovery, StoreError> {
        self.with(|c, target| {
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(|e| pg(target, e))?;
            let meta = meta_of(&tx.query_one(META, &[]).map_err(|e| pg(target, e))?)?;
            let mut state = checkpoint::read(&mut tx, target, meta.checkpoint)?;
            let rows = tx
                .query(
                    "SELECT revision, body FROM rampart_changelog WHERE revision > $1 AND revision <= $2 ORDER BY revision",
                    &[&int("revision", meta.checkpoint)?, &int("revision", meta.revision)?],
                )
                .map_err(|e| pg(target, e))?;
            let replayed = replay(&mut state, rows.iter().map(change_of))?;
            let last = rows.last().map(change_of).transpose()?;
            if state.revision != meta.revision {
                return Err(corrupt(
                    "rampart_changelog",
                    format!(
                        "ends at revision {}, the head is {}",
                        state.revision, meta.revision
                    ),
                ));
            }
            tx.commit().map_err(|e| pg(target, e))?;
            self.set_tip(last);
            Ok(Recovery {
                state,
                checkpoint: meta.checkpoint,
                replayed,
            })
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = held.take() {
            drop_client(client);
        }
        let held = self
            .bootstrapping
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = held.take() {
            drop_client(client);
        }
    }
}

impl Store for PgStore {
    fn load(&self) -> Result<State, StoreError> {
        self.recover().map(|r| r.state)
    }

    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        // Encode (and check) every changelog entry before taking the lock.
        let mut changes = Vec::new();
        let mut last = None;
        for entry in batch {
            if let Outcomes::Applied {
                revision,
                mutation,
                audit,
            } = entry
            {
                let change = Change {
                    revision: *revision,
                    time: Some(audit.time),
                    mutation: mutation.clone(),
                };
                changes.push((int("revision", *revision)?, encode_change(&change)?));
                last = Some(change);
            }
        }
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match held {
            // The head is ours already (`hold_head`): commit in that
            // transaction, which ends it.
            Some(mut c) => {
                let target = self.target();
                let written = write_batch(&mut c, target, batch, &changes)
                    .and_then(|()| c.batch_execute("COMMIT").map_err(|e| pg(target, e)));
                if written.is_err() {
                    let _ = c.batch_execute("ROLLBACK");
                }
                self.pool.give_back(c, written.is_err());
                written?;
            }
            None => self.with(|c, target| {
                let mut tx = c.transaction().map_err(|e| pg(target, e))?;
                write_batch(&mut tx, target, batch, &changes)?;
                tx.commit().map_err(|e| pg(target, e))
            })?,
        }
        if last.is_some() {
            self.set_tip(last);
        }
        Ok(())
    }

    fn begin_bootstrap(&self) -> Result<(), StoreError> {
        self.begin_bootstrapping()
    }

    fn finish_bootstrap(&self) -> Result<(), StoreError> {
        self.finish_bootstrapping()
    }

    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            rows.push((int("revision", change.revision)?, encode_change(change)?));
        }
        self.with(|c, target| {
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            let meta = lock_meta(&mut tx, target)?;
            let mut have = meta.revision;
            for change in changes {
                follows(have, change.revision)?;
                have = change.revision;
            }
            if have == meta.revision {
                return Ok(());
            }
            insert_changes(&mut tx, target, meta.revision, &rows)?;
            tx.execute(&moving_head("revision = $1"), &[&int("revision", have)?])
                .map_err(|e| pg(target, e))?;
            tx.commit().map_err(|e| pg(target, e))
        })?;
        self.follows_to(changes);
        Ok(())
    }

    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(max_count(limit)).unwrap_or(i64::MAX);
        self.with(|c, target| {
            // Rows below `first_retained` may still be there while a
            // compaction deletes them; they are no longer the changelog.
            let rows = c
                .query(
                    "SELECT revision, body FROM rampart_changelog \
                     WHERE revision > $1 AND revision >= (SELECT first_retained FROM rampart_meta) \
                     ORDER BY revision LIMIT $2",
                    &[&after, &limit],
                )
                .map_err(|e| pg(target, e))?;
            rows.iter().map(change_of).collect()
        })
    }

    fn follow(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let tip = self
            .tip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|tip| tip.revision == after && after > 0);
        let Some(tip) = tip else {
            let page = self.changelog(after, limit)?;
            self.follows_to(&page);
            return Ok(page);
        };
        // The page starts at the tip itself, which must be what this node
        // has; it is not returned.
        let at = tip.revision;
        let mut page = self.changelog(at - 1, max_count(limit).saturating_add(1))?;
        match page.first() {
            Some(first) if first.revision == at => {
                if *first != tip {
                    return Err(StoreError::Diverged {
                        at,
                        why: "another change was committed at it".into(),
                    });
                }
                page.remove(0);
            }
            // No entry at the tip: compacted away since (nothing to compare
            // with), or the head went below it.
            _ => {
                let head = self.meta()?.revision;
                if head < at {
                    return Err(StoreError::Diverged {
                        at,
                        why: format!("the store's head is {head}, below this node's revision"),
                    });
                }
            }
        }
        self.follows_to(&page);
        Ok(page)
    }

    fn history(&self) -> Result<History, StoreError> {
        let meta = self.meta()?;
        Ok(History {
            id: meta.history,
            first: meta.first_retained,
            last: meta.revision,
        })
    }

    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        Ok(self.meta()?.checkpoint)
    }

    fn compact(&self, before: u64) -> Result<u64, StoreError> {
        let first = self.with(|c, target| {
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            let meta = lock_meta(&mut tx, target)?;
            let cut = before.min(meta.checkpoint.saturating_add(1));
            let first = meta
                .first_retained
                .max(cut)
                .min(meta.revision.saturating_add(1));
            if first != meta.first_retained {
                tx.execute(
                    "UPDATE rampart_meta SET first_retained = $1",
                    &[&int("revision", first)?],
                )
                .map_err(|e| pg(target, e))?;
            }
            tx.commit().map_err(|e| pg(target, e))?;
            Ok(first)
        })?;
        let below = int("revision", first)?;
        // In steps, each its own transaction, so commits are not held up.
        loop {
            let deleted = self.with(|c, target| {
                c.execute(
                    "DELETE FROM rampart_changelog WHERE revision IN \
                     (SELECT revision FROM rampart_changelog WHERE revision < $1 ORDER BY revision LIMIT $2)",
                    &[&below, &DELETE_STEP],
                )
                .map_err(|e| pg(target, e))
            })?;
            if deleted == 0 {
                return Ok(first);
            }
        }
    }

    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        let parts = checkpoint::encode(state)?;
        let revision = int("revision", state.revision)?;
        let first = int("revision", state.revision.saturating_add(1))?;
        self.with(|c, target| {
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            lock_meta(&mut tx, target)?;
            tx.batch_execute("DELETE FROM rampart_checkpoint; DELETE FROM rampart_changelog")
                .map_err(|e| pg(target, e))?;
            checkpoint::insert(&mut tx, target, revision, &parts)?;
            tx.execute(
                &moving_head("revision = $1, checkpoint = $1, first_retained = $2, history = $3"),
                &[&revision, &first, &history],
            )
            .map_err(|e| pg(target, e))?;
            tx.commit().map_err(|e| pg(target, e))
        })?;
        self.set_tip(None);
        Ok(())
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let Ok(mut after) = i64::try_from(filter.after_seq) else {
            return Ok(Vec::new());
        };
        let limit = max_count(filter.limit);
        let mut out = Vec::new();
        loop {
            let rows = self.with(|c, target| {
                c.query(
                    "SELECT seq, body FROM rampart_audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &AUDIT_PAGE],
                )
                .map_err(|e| pg(target, e))
            })?;
            for row in &rows {
                let seq: i64 = row.get(0);
                after = seq;
                let at = || format!("audit seq {seq}");
                let body: &[u8] = row.get(1);
                let mut record: AuditRecord =
                    serde_json::from_slice(body).map_err(|e| corrupt(at(), e))?;
                record.seq = u64::try_from(seq).map_err(|_| corrupt(at(), "negative seq"))?;
                if filter.matches(&record) {
                    out.push(record);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if rows.len() < AUDIT_PAGE as usize {
                return Ok(out);
            }
        }
    }

    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        let meta = self.meta()?;
        if state.revision > meta.revision {
            return Err(StoreError::OutOfOrder {
                have: meta.revision,
                got: state.revision,
            });
        }
        if state.revision <= meta.checkpoint {
            return Ok(());
        }
        let revision = int("revision", state.revision)?;
        self.with(|c, target| {
            // One node at a time writes one (the others skip: theirs would
            // be about the same, and a 1M-user checkpoint is hundreds of
            // MB). A session lock, not a transaction's: encoding takes
            // seconds, and no transaction should idle that long.
            if !advisory_on(c, target, "pg_try_advisory_lock", CHECKPOINT_LOCK)? {
                tracing::debug!("another node is writing a checkpoint: skipped");
                return Ok(());
            }
            let written = checkpoint::write(c, target, state, revision);
            let unlocked = advisory_on(c, target, "pg_advisory_unlock", CHECKPOINT_LOCK);
            written.and(unlocked.map(drop))
        })
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.meta()?.revision)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every write is a committed transaction: durable when it returns.
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("PostgreSQL store {}", self.target())
    }

    fn hold_head(&self) -> Result<(), StoreError> {
        self.release_head();
        let mut c = self.pool.take()?;
        let target = self.target();
        let locked = c
            .batch_execute(&format!(
                "BEGIN; SET LOCAL lock_timeout = {}",
                HOLD_WAIT.as_millis()
            ))
            .map_err(|e| pg(target, e))
            .and_then(|()| lock_meta(&mut c, target));
        if let Err(e) = locked {
            let _ = c.batch_execute("ROLLBACK");
            self.pool.give_back(c, true);
            return Err(e);
        }
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Some(c);
        Ok(())
    }

    fn release_head(&self) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut c) = held {
            let failed = c.batch_execute("ROLLBACK").is_err();
            self.pool.give_back(c, failed);
        }
    }

    fn heads(&self) -> Option<watch::Receiver<u64>> {
        let listener = self.listener.get_or_init(|| {
            listen::Listener::start(Arc::clone(&self.pool)).map_err(|e| e.to_string())
        });
        match listener {
            Ok(l) => Some(l.subscribe()),
            Err(e) => {
                tracing::warn!(error = %e, "following by polling only");
                None
            }
        }
    }
}
