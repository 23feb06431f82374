//! Durable storage: the changelog (`revision → mutation`), the audit log,
//! and state checkpoints, behind the [`Store`] trait so another backend can
//! come later. `sled/` is the production backend, `memory.rs` the one for
//! tests, `postgres/` the one several nodes share. The
//! audit records themselves are model vocabulary (`model::audit`),
//! re-exported here.
//!
//! Recovery is checkpoint + replay: [`Store::load`] reads the newest
//! checkpoint and applies every later changelog entry with `model::apply`.
//! A commit writes the changelog entry and its audit record in one
//! transaction and flushes before returning, so an acknowledged mutation is
//! durable.
//!
//! On-disk layout and durability notes for sled are in `sled/mod.rs`; the
//! images a checkpoint is made of are in `image.rs` (JSON, checkpoint
//! format 1 and the export file) and `image/binary.rs` (a tenant's binary
//! image, checkpoint format 2).

mod blocking;
pub mod image;
pub mod memory;
mod parallel;
pub mod postgres;
pub mod retention;
pub mod sled;
pub mod space;

pub use self::blocking::blocking;
pub use self::memory::MemoryStore;
pub use self::postgres::PgStore;
pub use self::retention::Retention;
pub use self::sled::SledStore;
pub use self::space::FreeSpace;
pub use crate::model::audit::{AuditFilter, AuditRecord, Outcome, Outcomes};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{ErrorKind, HasKind, Mutation, State, Timestamp, apply};

/// One changelog entry: the mutation committed at `revision`, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    /// The commit time; `None` for entries written before times were kept.
    pub time: Option<Timestamp>,
    pub mutation: Mutation,
}

/// A changelog entry's stored value (its revision is the key).
#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
struct StoredChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<Timestamp>,
    mutation: Mutation,
}

/// Encodes a changelog entry's value, refusing one that would not read back.
pub(crate) fn encode_change(change: &Change) -> Result<Vec<u8>, StoreError> {
    let stored = StoredChange {
        time: change.time,
        mutation: change.mutation.clone(),
    };
    encode_checked(
        || format!("the mutation for revision {}", change.revision),
        &stored,
    )
}

/// Decodes the changelog value stored at `revision`: `{time, mutation}`, or
/// a bare mutation (the format before times were kept).
pub(crate) fn decode_change(revision: u64, bytes: &[u8]) -> Result<Change, StoreError> {
    let corrupt = |why: serde_json::Error| StoreError::Corrupt {
        at: format!("changelog revision {revision}"),
        why: why.to_string(),
    };
    match serde_json::from_slice::<StoredChange>(bytes) {
        Ok(s) => Ok(Change {
            revision,
            time: s.time,
            mutation: s.mutation,
        }),
        Err(first) => match serde_json::from_slice::<Mutation>(bytes) {
            Ok(mutation) => Ok(Change {
                revision,
                time: None,
                mutation,
            }),
            Err(_) => Err(corrupt(first)),
        },
    }
}

/// Which revisions a store's changelog holds, and which history they
/// belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Names this line of revisions. A store starts a new one when it is
    /// created empty or a backup is imported into it; a replica takes its
    /// leader's. Revision `r` means the same state on two stores only if
    /// they share the history id.
    pub id: String,
    /// The oldest revision still in the changelog: every entry from here to
    /// `last` is present. `last + 1` when the changelog holds none.
    pub first: u64,
    /// The last committed revision.
    pub last: u64,
}

/// A fresh, random history id (32 hex digits), from the standard library's
/// per-process random hash keys and the clock: no dependency needed for an
/// id that only has to differ between stores.
pub fn new_history_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

/// The JSON of `value`, refusing a value whose JSON does not read back as
/// the same value: writing it would fail every later read (for the
/// changelog: every restart, at replay). A `Timestamp` outside years
/// 0–9999 is one today: it is written as `@<seconds>`, which it cannot read.
pub(crate) fn encode_checked<T>(what: impl Fn() -> String, value: &T) -> Result<Vec<u8>, StoreError>
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let unreadable =
        |why: String| StoreError::Backend(format!("{} would not read back: {why}", what()));
    let json = serde_json::to_vec(value).map_err(|e| unreadable(e.to_string()))?;
    match serde_json::from_slice::<T>(&json) {
        Ok(back) if back == *value => Ok(json),
        Ok(back) => Err(unreadable(format!("reads back as {back:?}"))),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

/// [`encode_checked`] for an audit record (after its `seq` is set).
pub(crate) fn encode_audit(record: &AuditRecord) -> Result<Vec<u8>, StoreError> {
    encode_checked(|| format!("audit record {}", record.seq), record)
}

/// `limit` as a count: 0 means no limit.
pub(crate) fn max_count(limit: usize) -> usize {
    if limit == 0 { usize::MAX } else { limit }
}

/// What recovery did, for logs and tests: where it started and how much it
/// replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The state at the last committed revision.
    pub state: State,
    /// The revision of the checkpoint recovery started from (0: none).
    pub checkpoint: u64,
    /// How many changelog entries were applied after the checkpoint.
    pub replayed: u64,
}

/// Applies changelog entries to `state` in order; each must be the next
/// revision. Returns how many were applied. A gap or an entry that does not
/// apply is `Corrupt`, naming the revision.
pub(crate) fn replay(
    state: &mut State,
    entries: impl IntoIterator<Item = Result<Change, StoreError>>,
) -> Result<u64, StoreError> {
    let mut count = 0;
    for entry in entries {
        let Change {
            revision, mutation, ..
        } = entry?;
        let at = || format!("changelog revision {revision}");
        if Some(revision) != state.revision.checked_add(1) {
            return Err(StoreError::Corrupt {
                at: at(),
                why: format!("expected revision {}", state.revision.saturating_add(1)),
            });
        }
        apply(state, &mutation).map_err(|e| StoreError::Corrupt {
            at: at(),
            why: e.to_string(),
        })?;
        count += 1;
    }
    Ok(count)
}

/// A storage failure. Never a rule refusal: those are `AdminError`s.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("corrupt record at {at}: {why}")]
    Corrupt { at: String, why: String },
    #[error("revision {got} does not follow {have}")]
    OutOfOrder { have: u64, got: u64 },
    /// Revision `got` was taken by another writer first: the head is
    /// already `have`. Only a store several nodes write (PostgreSQL) says
    /// this; the writer catches up and tries again.
    #[error("revision {got} was committed by another writer first (the head is {have})")]
    Conflict { have: u64, got: u64 },
    /// The shared store's history is no longer this node's: the entry at
    /// revision `at`, which this node committed or followed, is gone or
    /// different (a database failover that lost commits it had seen, or a
    /// restore from backup). The node reloads its state from the store.
    #[error("the store's history went another way at revision {at}: {why}")]
    Diverged { at: u64, why: String },
    /// The database holds a schema newer than this build knows.
    #[error(
        "the store's schema is version {found}, newer than this rampart knows ({known}): run a newer rampart"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The disk, the file system or sled failed (or a blocking task
            // died): the node cannot do it now; the same request may
            // succeed later, or on another node.
            Self::Backend(_) => ErrorKind::Unavailable,
            // A record that does not read back: rampart's own data is
            // damaged, and retrying will not help.
            Self::Corrupt { .. } => ErrorKind::Internal,
            // A write that does not follow the last revision: the caller
            // (the engine, the follower) broke the store's contract, a bug
            // in rampart rather than in the request.
            Self::OutOfOrder { .. } => ErrorKind::Internal,
            // Another node committed first: catching up and trying again
            // may succeed, so the same request may succeed later.
            Self::Conflict { .. } => ErrorKind::Unavailable,
            // The node reloads from the store; a request caught in it may
            // succeed when sent again.
            Self::Diverged { .. } => ErrorKind::Unavailable,
            // Not something a retry fixes: an operator must run a newer
            // build (or restore the database).
            Self::SchemaTooNew { .. } => ErrorKind::FailedPrecondition,
        }
    }
}

/// What [`Store::repair`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The store could take writes all along: what it holds is what its
    /// reads said.
    Sound,
    /// The store had to be opened again: it now holds what was on disk,
    /// which may differ from what it answered before (a failed write that
    /// reached the disk, or one that only reached a cache). Read it again.
    Reopened,
}

/// Durable storage of the changelog, the audit log and checkpoints.
pub trait Store: Send + Sync {
    /// The state at the last committed revision: the newest checkpoint with
    /// every later changelog entry applied. An empty store gives `State::new()`
    /// (revision 0).
    fn load(&self) -> Result<State, StoreError>;

    /// Commits a batch of outcomes in order, all or nothing, in one
    /// transaction and one flush (group commit): each applied one appended
    /// to the changelog at its revision (the first the last revision + 1,
    /// each the one before + 1) with its audit record, each refused one
    /// recorded in the audit log only. The store sets each record's `seq`,
    /// and an applied one's `revision`.
    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError>;

    /// Durably appends `mutation` at `revision` with its audit record: a
    /// batch of one.
    fn commit(
        &self,
        revision: u64,
        mutation: &Mutation,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        self.commit_batch(&[Outcomes::Applied {
            revision,
            mutation: mutation.clone(),
            audit,
        }])
    }

    /// Durably records a refused attempt (no revision): a batch of one.
    fn record_refusal(&self, audit: AuditRecord) -> Result<(), StoreError> {
        self.commit_batch(&[Outcomes::Refused(audit)])
    }

    /// Marks the start of a bootstrap (many commits that must land all or
    /// none): until [`Store::finish_bootstrap`], a store reopened after a
    /// crash discards every commit made since, and opens empty again. Only
    /// on an empty store (revision 0); the audit records already there stay.
    /// This default suits a store that does not outlive its process.
    fn begin_bootstrap(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Durably ends what [`Store::begin_bootstrap`] started: its commits
    /// now survive a crash like any other.
    fn finish_bootstrap(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Durably appends changes replicated from a leader (which audited
    /// them), in one transaction and one flush: the first must be the last
    /// revision + 1, each the one before + 1.
    fn append(&self, changes: &[Change]) -> Result<(), StoreError>;

    /// The changelog entries with revision > `after`, in order, at most
    /// `limit` (0: no limit). Starts at [`History::first`] when `after` is
    /// older.
    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The history id and the range of revisions the changelog holds.
    fn history(&self) -> Result<History, StoreError>;

    /// The revision of the newest checkpoint (0: none).
    fn checkpoint_revision(&self) -> Result<u64, StoreError>;

    /// Removes the changelog entries below `before` (bounded by the newest
    /// checkpoint: recovery needs what follows it), in small steps that do
    /// not hold up commits. Returns the new [`History::first`].
    fn compact(&self, before: u64) -> Result<u64, StoreError>;

    /// Replaces everything but the audit log with `state`, as history
    /// `history`: the checkpoint becomes `state`, the changelog restarts
    /// after `state.revision`. For a replica's bootstrap and for importing a
    /// backup. The caller serialises it with commits.
    fn install(&self, state: &State, history: &str) -> Result<(), StoreError>;

    /// Audit records matching `filter`, in `seq` order.
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Writes a checkpoint of `state` (at `state.revision`), so recovery
    /// replays only what follows it. May run concurrently with commits.
    /// A state ahead of the last commit is `OutOfOrder`; one not newer than
    /// the current checkpoint changes nothing.
    fn checkpoint(&self, state: &State) -> Result<(), StoreError>;

    /// The last committed revision (0 for an empty store).
    fn revision(&self) -> Result<u64, StoreError>;

    /// Flushes everything to disk.
    fn flush(&self) -> Result<(), StoreError>;

    /// After a failed write: makes the store fit to take writes again. A
    /// backend whose handle can no longer make writes durable (sled once a
    /// flush failed, on a full disk) closes it when the write fails (every
    /// call then fails until this succeeds) and opens the store again
    /// here, checked against what was acknowledged as at startup. An error
    /// that is not `Corrupt` may go away (the disk is still full): try
    /// again later. This default suits a store that never needs it.
    fn repair(&self) -> Result<Repair, StoreError> {
        Ok(Repair::Sound)
    }

    /// Whether other nodes may write this store too (PostgreSQL): the
    /// writer then catches up with the head before it validates, and a
    /// revision already taken is `Conflict`. A store one process owns says
    /// no.
    fn shared(&self) -> bool {
        false
    }

    /// On a shared store: the newest head revision this node has heard
    /// other writers commit, which changes as they do (PostgreSQL's
    /// LISTEN/NOTIFY). A wake-up only, never the guarantee: what is
    /// committed while the store cannot tell is missed, so a follower
    /// polls as well. `None` where the store cannot tell (and for a store
    /// one process owns).
    fn heads(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// On a shared store: takes the head for this node (PostgreSQL: a
    /// transaction holding the meta row), so no other node commits until
    /// this node's next `commit_batch`, which commits in it, or
    /// [`Store::release_head`]. For a batch that lost the race: catching
    /// up and committing under the hold cannot lose it again. A no-op on
    /// a store one process owns.
    fn hold_head(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Gives up a [`Store::hold_head`] not committed in (a no-op when
    /// none is held).
    fn release_head(&self) {}

    /// How messages name this store ("PostgreSQL store `host:port/db`").
    fn describe(&self) -> String {
        "the store".to_owned()
    }

    /// [`Store::changelog`] for a node that applies what it reads to its
    /// state (catching up with a shared store). A store other nodes write
    /// also checks that its history still holds what this node committed
    /// or followed last (the entry at `after`), and says
    /// [`StoreError::Diverged`] when it does not: the node must then
    /// reload. A store one process owns cannot diverge.
    fn follow(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.changelog(after, limit)
    }
}
