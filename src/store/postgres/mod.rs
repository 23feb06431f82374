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
//! The client is the synchronous `postgres` crate, which runs its own
//! small tokio runtime: its calls must not be made on an async worker
//! (they are called through `store::blocking`, like sled's), and a client
//! dropped where a runtime is current is dropped on a thread of its own.
//! One connection, behind a mutex; a lost one is replaced on the next call.
//! This module must not touch anything above `model`.

mod checkpoint;
mod schema;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, IsolationLevel, NoTls, Transaction};

pub use self::schema::VERSION as SCHEMA_VERSION;
use super::{
    AuditFilter, AuditRecord, Change, History, Outcomes, Recovery, Store, StoreError,
    decode_change, encode_audit, encode_change, max_count, replay,
};
use crate::model::State;

/// How long a connection attempt may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows deleted per statement when compacting.
const DELETE_STEP: i64 = 10_000;

/// Audit rows read per query while filtering.
const AUDIT_PAGE: i64 = 1_000;

/// The session-level advisory lock a bootstrapping node holds from
/// `begin_bootstrap` to `finish_bootstrap`. PostgreSQL releases it when
/// that node's connection ends, so a bootstrap mark whose lock is free was
/// left by a node that stopped, and one whose lock is held is in progress.
const BOOTSTRAP_LOCK: i64 = 0x72_61_6d_70_62_6f_6f_74;

fn advisory(c: &mut Client, target: &str, call: &str) -> Result<bool, StoreError> {
    c.query_one(&format!("SELECT {call}($1)"), &[&BOOTSTRAP_LOCK])
        .map(|row| row.get::<_, bool>(0))
        .map_err(|e| pg(target, e))
}

/// A store in a PostgreSQL database.
pub struct PgStore {
    config: Config,
    /// Hosts, ports and database, without credentials: how errors name
    /// the store.
    target: String,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// A PostgreSQL error, naming the store. A revision taken by another
/// writer is reported by the caller as `Conflict`, not through here.
pub(crate) fn pg(target: &str, e: postgres::Error) -> StoreError {
    // The client's own message is terse ("error connecting to server"):
    // the causes say why (refused, timed out, a server error's detail).
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !why.contains(&text) {
            why.push_str(": ");
            why.push_str(&text);
        }
        source = cause.source();
    }
    StoreError::Backend(format!("PostgreSQL store {target}: {why}"))
}

fn corrupt(at: impl Into<String>, why: impl ToString) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        why: why.to_string(),
    }
}

/// A u64 counter as a PostgreSQL bigint.
fn int(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| {
        StoreError::Backend(format!("{what} {v} is past what PostgreSQL's bigint holds"))
    })
}

/// A bigint read back as a u64 counter.
fn uint(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("rampart_meta.{what}"), format!("negative: {v}")))
}

/// The meta row.
#[derive(Debug, Clone)]
struct Meta {
    revision: u64,
    first_retained: u64,
    next_audit_seq: u64,
    checkpoint: u64,
    history: String,
    bootstrapping: Option<u64>,
}

const META: &str = "SELECT revision, first_retained, next_audit_seq, checkpoint, history, bootstrapping FROM rampart_meta";

fn meta_of(row: &postgres::Row) -> Result<Meta, StoreError> {
    Ok(Meta {
        revision: uint("revision", row.get(0))?,
        first_retained: uint("first_retained", row.get(1))?,
        next_audit_seq: uint("next_audit_seq", row.get(2))?,
        checkpoint: uint("checkpoint", row.get(3))?,
        history: row.get(4),
        bootstrapping: row
            .get::<_, Option<i64>>(5)
            .map(|v| uint("bootstrapping", v))
            .transpose()?,
    })
}

/// Where a revision lands on a head of `have`: the next one, or an error.
/// One at or below the head was taken by another writer (`Conflict`);
/// revision 0 or one past the next leaves a gap (`OutOfOrder`).
fn follows(have: u64, got: u64) -> Result<(), StoreError> {
    if Some(got) == have.checked_add(1) {
        Ok(())
    } else if got >= 1 && got <= have {
        Err(StoreError::Conflict { have, got })
    } else {
        Err(StoreError::OutOfOrder { have, got })
    }
}

impl PgStore {
    /// Connects to the database at `url` (a libpq-style URL or key=value
    /// string: several hosts and `target_session_attrs=read-write` are
    /// accepted), creates or migrates rampart's schema, and undoes an
    /// interrupted bootstrap.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL store URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe(&config);
        let store = Self {
            config,
            target,
            client: Mutex::new(None),
        };
        store.with(schema::migrate)?;
        let meta = store.meta()?;
        if meta.bootstrapping.is_some() {
            // Only a bootstrap whose node is gone is undone; one in
            // progress on another node is left alone, and this node waits
            // for it (started again later, it finds the state).
            // A node that has just stopped may still hold it for a moment
            // (its backend has not yet seen the connection close).
            let mut free = false;
            for _ in 0..20 {
                free = store.with(|c, t| advisory(c, t, "pg_try_advisory_lock"))?;
                if free {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !free {
                return Err(StoreError::Backend(format!(
                    "PostgreSQL store {}: another node is bootstrapping it; start this node once that is done",
                    store.target
                )));
            }
            let discarded = store.discard_bootstrap();
            store.with(|c, t| advisory(c, t, "pg_advisory_unlock"))?;
            discarded?;
        }
        Ok(store)
    }

    /// Hosts, ports and database of this store, without credentials.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        // A panic while holding the client leaves at worst a connection in
        // an unknown state; it is checked (and replaced) below.
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection, connecting first when there is none (or
    /// it was lost). A connection that failed under `f` is dropped, so the
    /// next call connects again.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.lock();
        if slot.as_ref().is_none_or(Client::is_closed) {
            if let Some(old) = slot.take() {
                drop_client(old);
            }
            let client = self
                .config
                .connect(NoTls)
                .map_err(|e| pg(&self.target, e))?;
            *slot = Some(client);
        }
        let Some(client) = slot.as_mut() else {
            return Err(StoreError::Backend(format!(
                "PostgreSQL store {}: no connection",
                self.target
            )));
        };
        let result = f(client, &self.target);
        if result.is_err()
            && client.is_closed()
            && let Some(old) = slot.take()
        {
            drop_client(old);
        }
        result
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
            Ok(Recovery {
                state,
                checkpoint: meta.checkpoint,
                replayed,
            })
        })
    }

    /// Undoes an interrupted bootstrap (begun at the audit seq its mark
    /// holds, on an empty store), in one transaction: the store is empty
    /// again, keeping its history id and the audit records from before.
    /// The mark is read again under the meta row's lock: another node may
    /// have undone it meanwhile.
    fn discard_bootstrap(&self) -> Result<(), StoreError> {
        self.with(|c, target| {
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            let Some(seq) = Self::lock_meta(&mut tx, target)?.bootstrapping else {
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
        })
    }

    /// Sets the bootstrap mark (the audit seq the bootstrap starts at),
    /// only on an empty store.
    fn mark_bootstrap(c: &mut Client, target: &str) -> Result<(), StoreError> {
        let mut tx = c.transaction().map_err(|e| pg(target, e))?;
        let meta = Self::lock_meta(&mut tx, target)?;
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

    /// Locks the meta row for a write that moves the head.
    fn lock_meta(tx: &mut Transaction<'_>, target: &str) -> Result<Meta, StoreError> {
        meta_of(
            &tx.query_one(&format!("{META} FOR UPDATE"), &[])
                .map_err(|e| pg(target, e))?,
        )
    }

    /// Inserts changelog rows; a revision another writer took meanwhile is
    /// `Conflict` (the meta lock makes that a bug, the key catches it).
    fn insert_changes(
        tx: &mut Transaction<'_>,
        target: &str,
        have: u64,
        rows: &[(i64, Vec<u8>)],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let revisions: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        tx.execute(
            "INSERT INTO rampart_changelog (revision, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[&revisions, &bodies],
        )
        .map_err(|e| {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                StoreError::Conflict {
                    have,
                    got: u64::try_from(revisions[0]).unwrap_or(0),
                }
            } else {
                pg(target, e)
            }
        })?;
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(client) = self.lock().take() {
            drop_client(client);
        }
    }
}

/// Drops a client where that is safe: the `postgres` client blocks on its
/// own runtime when it closes, which panics on a thread where a tokio
/// runtime is current.
fn drop_client(client: Client) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("rampart-pg-close".into())
            .spawn(move || drop(client));
    } else {
        drop(client);
    }
}

/// `host:port[,host:port…]/dbname` of a configuration, no credentials.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "`{}/{}`",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// A changelog row as a [`Change`].
fn change_of(row: &postgres::Row) -> Result<Change, StoreError> {
    let revision: i64 = row.get(0);
    let revision = u64::try_from(revision)
        .map_err(|_| corrupt("rampart_changelog", format!("negative revision {revision}")))?;
    let body: &[u8] = row.get(1);
    decode_change(revision, body)
}

impl Store for PgStore {
    fn load(&self) -> Result<State, StoreError> {
        self.recover().map(|r| r.state)
    }

    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        // Encode (and check) every changelog entry before taking the lock.
        let mut changes = Vec::new();
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
            }
        }
        self.with(|c, target| {
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            let meta = Self::lock_meta(&mut tx, target)?;
            let mut have = meta.revision;
            let mut seq = meta.next_audit_seq;
            let mut audits: Vec<(i64, Vec<u8>)> = Vec::with_capacity(batch.len());
            for entry in batch {
                let mut record = match entry {
                    Outcomes::Applied {
                        revision, audit, ..
                    } => {
                        follows(have, *revision)?;
                        have = *revision;
                        let mut audit = audit.clone();
                        audit.revision = *revision;
                        audit
                    }
                    Outcomes::Refused(audit) => audit.clone(),
                };
                record.seq = seq;
                audits.push((int("seq", seq)?, encode_audit(&record)?));
                seq += 1;
            }
            Self::insert_changes(&mut tx, target, meta.revision, &changes)?;
            if !audits.is_empty() {
                let seqs: Vec<i64> = audits.iter().map(|r| r.0).collect();
                let bodies: Vec<&[u8]> = audits.iter().map(|r| r.1.as_slice()).collect();
                tx.execute(
                    "INSERT INTO rampart_audit (seq, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                    &[&seqs, &bodies],
                )
                .map_err(|e| pg(target, e))?;
            }
            tx.execute(
                "UPDATE rampart_meta SET revision = $1, next_audit_seq = $2",
                &[&int("revision", have)?, &int("seq", seq)?],
            )
            .map_err(|e| pg(target, e))?;
            tx.commit().map_err(|e| pg(target, e))
        })
    }

    fn begin_bootstrap(&self) -> Result<(), StoreError> {
        self.with(|c, target| {
            if !advisory(c, target, "pg_try_advisory_lock")? {
                return Err(StoreError::Backend(format!(
                    "PostgreSQL store {target}: another node is bootstrapping it"
                )));
            }
            let marked = Self::mark_bootstrap(c, target);
            if marked.is_err() {
                advisory(c, target, "pg_advisory_unlock")?;
            }
            marked
        })
    }

    fn finish_bootstrap(&self) -> Result<(), StoreError> {
        self.with(|c, target| {
            c.execute("UPDATE rampart_meta SET bootstrapping = NULL", &[])
                .map_err(|e| pg(target, e))?;
            advisory(c, target, "pg_advisory_unlock").map(drop)
        })
    }

    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            rows.push((int("revision", change.revision)?, encode_change(change)?));
        }
        self.with(|c, target| {
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            let meta = Self::lock_meta(&mut tx, target)?;
            let mut have = meta.revision;
            for change in changes {
                follows(have, change.revision)?;
                have = change.revision;
            }
            if have == meta.revision {
                return Ok(());
            }
            Self::insert_changes(&mut tx, target, meta.revision, &rows)?;
            tx.execute(
                "UPDATE rampart_meta SET revision = $1",
                &[&int("revision", have)?],
            )
            .map_err(|e| pg(target, e))?;
            tx.commit().map_err(|e| pg(target, e))
        })
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
            let meta = Self::lock_meta(&mut tx, target)?;
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
            Self::lock_meta(&mut tx, target)?;
            tx.batch_execute("DELETE FROM rampart_checkpoint; DELETE FROM rampart_changelog")
                .map_err(|e| pg(target, e))?;
            checkpoint::insert(&mut tx, target, revision, &parts)?;
            tx.execute(
                "UPDATE rampart_meta SET revision = $1, checkpoint = $1, first_retained = $2, history = $3",
                &[&revision, &first, &history],
            )
            .map_err(|e| pg(target, e))?;
            tx.commit().map_err(|e| pg(target, e))
        })
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
        let parts = checkpoint::encode(state)?;
        let revision = int("revision", state.revision)?;
        self.with(|c, target| {
            // Written beside the current one; the meta row is locked only
            // to move the pointer, at the end.
            let mut tx = c.transaction().map_err(|e| pg(target, e))?;
            tx.execute(
                "DELETE FROM rampart_checkpoint WHERE revision = $1",
                &[&revision],
            )
            .map_err(|e| pg(target, e))?;
            checkpoint::insert(&mut tx, target, revision, &parts)?;
            let moved = tx
                .execute(
                    "UPDATE rampart_meta SET checkpoint = $1 WHERE checkpoint < $1 AND revision >= $1",
                    &[&revision],
                )
                .map_err(|e| pg(target, e))?;
            if moved == 0 {
                // A newer checkpoint or an install got there first.
                return tx.rollback().map_err(|e| pg(target, e));
            }
            tx.execute(
                "DELETE FROM rampart_checkpoint WHERE revision < $1",
                &[&revision],
            )
            .map_err(|e| pg(target, e))?;
            tx.commit().map_err(|e| pg(target, e))
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
}
