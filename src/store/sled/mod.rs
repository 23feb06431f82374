//! `SledStore`: the production [`Store`], on sled.
//!
//! # Layout
//!
//! | tree         | key                                   | value                          |
//! |--------------|---------------------------------------|--------------------------------|
//! | `changelog`  | revision, big-endian u64              | JSON `{time, mutation}`        |
//! | `audit`      | seq, big-endian u64                   | JSON `AuditRecord`             |
//! | `meta`       | `revision`                            | last revision, big-endian u64  |
//! | `meta`       | `next_audit_seq`                      | next seq, big-endian u64       |
//! | `meta`       | `first_retained`                      | oldest changelog revision kept, big-endian u64 (absent: 1) |
//! | `meta`       | `history`                             | the history id, UTF-8          |
//! | `meta`       | `checkpoint`                          | revision u64 ++ header bytes u64 ++ header CRC-32 u32 (big-endian) |
//! | `checkpoint` | revision u64 ++ part u32 ++ chunk u32 | up to 4 KiB of a part          |
//!
//! A checkpoint is a set of parts under its revision: part 0 is the header
//! (JSON: format, revision, catalog, bridge grants, and each tenant's id,
//! size and CRC-32), part `i + 1` is tenant `i`: an `image::binary` image
//! (format 2), or `image::TenantImage` JSON (format 1, still read). Each part is cut into
//! small chunks so no sled page grows past sled's blob threshold (~128 KiB
//! with the default segment size): blobs are separate files that sled never
//! fsyncs.
//!
//! # Durability
//!
//! A commit writes the changelog entry, its audit record and the meta
//! counters in one sled transaction, then makes the log durable: sled's
//! `flush` writes the log with `sync_file_range` on Linux, which neither
//! flushes the drive's write cache nor the file's size (sled issue #1452),
//! so after it we `fdatasync` sled's log file ourselves.
//!
//! A checkpoint is written beside the current one under its own revision,
//! made durable, and only then made current by one insert of the `meta`
//! pointer (made durable too); the older checkpoint is deleted afterwards.
//! A crash at any point leaves the old or the new checkpoint whole, and
//! leftovers are removed by the next checkpoint.
//!
//! Only the changelog entries from `first_retained` to `revision` are
//! live. Compaction raises `first_retained` (durably) before it deletes
//! what lies below; an install (a replica's bootstrap, an import) writes its
//! checkpoint, then moves the pointer, `revision`, `first_retained` and
//! `history` in one transaction, and deletes the old entries afterwards.
//! Entries outside the live range that a crash left behind are deleted when
//! the store is opened, and never read before that. The writes are ordinary
//! inserts, not one batch: a sled batch holds sled's global write lock for
//! its whole length, which would stall commits behind a large checkpoint.
//!
//! This file opens the store and holds the keys and helpers;
//! `changelog.rs` writes and reads the changelog and the audit log,
//! `checkpoint.rs` writes and reads checkpoints and recovers from them.

mod changelog;
mod checkpoint;
mod reopen;

pub use self::reopen::SledStore;

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ::sled::transaction::TransactionError;
use ::sled::{Db, IVec, Tree};
use serde::{Deserialize, Serialize};

use super::{
    AuditFilter, AuditRecord, Change, History, Outcomes, Store, StoreError, new_history_id,
};
use crate::model::State;

/// `meta` key: the last committed revision.
const REVISION: &[u8] = b"revision";
/// `meta` key: the seq the next audit record gets.
const NEXT_AUDIT_SEQ: &[u8] = b"next_audit_seq";
/// `meta` key: the current checkpoint (revision, header length).
const CHECKPOINT: &[u8] = b"checkpoint";
/// `meta` key: the oldest changelog revision kept.
const FIRST_RETAINED: &[u8] = b"first_retained";
/// `meta` key: the history id.
const HISTORY: &[u8] = b"history";
/// `meta` key: a bootstrap is under way; its value is the audit seq it
/// started at. A store opened with it discards what the bootstrap wrote.
const BOOTSTRAPPING: &[u8] = b"bootstrapping";
/// The file beside sled's, in the store's folder, holding the last
/// acknowledged revision (see [`Head`]).
const HEAD_FILE: &str = "head";
/// sled's page cache.
const CACHE_BYTES: u64 = 64 << 20;
/// Changelog keys deleted per step of compaction or cleanup.
const DELETE_STEP: usize = 512;
/// One open sled database: the trees, sled's log file and the head file.
/// [`SledStore`] holds one at a time and replaces it after a failed write
/// (`reopen.rs`).
struct Handle {
    db: Db,
    changelog: Tree,
    audit: Tree,
    meta: Tree,
    checkpoints: Tree,
    /// sled's log file, to `fdatasync` after sled's own flush.
    log: File,
    /// The last acknowledged revision, outside sled.
    head: Head,
    /// Serialises checkpoints with each other and with reading one.
    checkpointing: Mutex<()>,
    /// A write could not be made durable (sled's flush, an `fdatasync` or
    /// the head file failed): this handle is not to be written through
    /// again (see [`Handle::fit`]).
    broken: AtomicBool,
}

fn backend(e: ::sled::Error) -> StoreError {
    match e {
        ::sled::Error::Corruption { .. } => StoreError::Corrupt {
            at: "sled".into(),
            why: e.to_string(),
        },
        other => StoreError::Backend(other.to_string()),
    }
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

fn tx(result: Result<(), TransactionError<StoreError>>) -> Result<(), StoreError> {
    match result {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(backend(e)),
    }
}

fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("cannot encode {what}: {e}")))
}

fn corrupt(at: impl Into<String>, why: impl ToString) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        why: why.to_string(),
    }
}

fn decode<'a, T: Deserialize<'a>>(
    at: impl Fn() -> String,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(at(), e))
}

/// A big-endian u64 at the start of `bytes`.
fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn key_u64(tree: &str, key: &[u8]) -> Result<u64, StoreError> {
    match be_u64(key) {
        Some(n) if key.len() == 8 => Ok(n),
        _ => Err(corrupt(
            format!("{tree} key {key:02x?}"),
            "not an 8-byte number",
        )),
    }
}

/// A `meta` counter; `default` when absent.
fn counter(value: Option<IVec>, name: &[u8], default: u64) -> Result<u64, StoreError> {
    match value {
        None => Ok(default),
        Some(v) if v.len() == 8 => be_u64(&v).ok_or_else(|| bad_counter(name)),
        Some(_) => Err(bad_counter(name)),
    }
}

fn bad_counter(name: &[u8]) -> StoreError {
    corrupt(
        format!("meta `{}`", String::from_utf8_lossy(name)),
        "not an 8-byte number",
    )
}

impl Handle {
    /// Opens (or creates) the store in the folder `path`.
    fn open(path: &Path) -> Result<Self, StoreError> {
        // sled's default page cache is 1 GiB. Checks never read sled and
        // the state lives in the model, so a small bound is enough (the
        // 1M-user cold start's RSS moved only from 1,717 to 1,704 MiB).
        let config = || {
            ::sled::Config::new()
                .path(path)
                .cache_capacity(CACHE_BYTES)
                .open()
        };
        let db = match config() {
            Err(::sled::Error::Corruption { .. }) if remove_unfinished_snapshots(path)? > 0 => {
                config().map_err(backend)?
            }
            other => other.map_err(backend)?,
        };
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let changelog = tree("changelog")?;
        let audit = tree("audit")?;
        let meta = tree("meta")?;
        let checkpoints = tree("checkpoint")?;
        // sled 0.34 keeps its log in `<path>/db`. fsync works on a read-only
        // handle: it syncs the file, not the descriptor.
        let log = File::open(path.join("db")).map_err(|e| io("open sled's log `db`", e))?;
        let head = Head::open(&path.join(HEAD_FILE))?;
        let store = Self {
            db,
            changelog,
            audit,
            meta,
            checkpoints,
            log,
            head,
            checkpointing: Mutex::new(()),
            broken: AtomicBool::new(false),
        };
        if let Some(seq) = store.meta.get(BOOTSTRAPPING).map_err(backend)? {
            let seq = counter(Some(seq), BOOTSTRAPPING, 1)?;
            store.discard_bootstrap(seq)?;
        }
        if store.meta.get(HISTORY).map_err(backend)?.is_none() {
            store
                .meta
                .insert(HISTORY, new_history_id().as_bytes())
                .map_err(backend)?;
            store.durable()?;
        }
        store.check_head(path)?;
        // Unreadable counters are reported by the first call that needs them.
        if let Ok(live) = store.history() {
            store.delete_changelog(..live.first)?;
            store.delete_changelog(live.last.saturating_add(1)..)?;
        }
        Ok(store)
    }

    /// Undoes an interrupted bootstrap (begun at audit seq `seq`, on an
    /// empty store): the store becomes empty again, keeping its history id
    /// and the audit records from before. Each step can be redone, and the
    /// mark goes last, so a crash here is undone at the next open.
    fn discard_bootstrap(&self, seq: u64) -> Result<(), StoreError> {
        let had = self.revision()?;
        tracing::warn!(
            revision = had,
            "the store holds an interrupted bootstrap (the process stopped before it finished): discarding it, the store is empty again"
        );
        self.write_head(0)?;
        tx(self.meta.transaction(|meta| {
            meta.insert(REVISION, &0u64.to_be_bytes()[..])?;
            meta.insert(NEXT_AUDIT_SEQ, &seq.to_be_bytes()[..])?;
            meta.remove(FIRST_RETAINED)?;
            meta.remove(CHECKPOINT)?;
            Ok(())
        }))?;
        self.durable()?;
        self.delete_changelog(..)?;
        self.delete_audit_from(seq)?;
        self.checkpoints.clear().map_err(backend)?;
        self.durable()?;
        self.meta.remove(BOOTSTRAPPING).map_err(backend)?;
        self.durable()
    }

    /// Refuses a store that holds less than was acknowledged: sled's files
    /// were truncated or damaged, and serving would silently go back in
    /// time. A store without a recorded head (new, or from before heads
    /// were kept) records its revision now; one ahead of it keeps it (the
    /// next commit moves it).
    fn check_head(&self, path: &Path) -> Result<(), StoreError> {
        // Unreadable counters are reported by the first call that needs them.
        let Ok(have) = self.revision() else {
            return Ok(());
        };
        match self.head.read()? {
            Some(acked) if acked > have => Err(corrupt(
                format!("`{}`", path.join(HEAD_FILE).display()),
                format!(
                    "the store recovered revision {have}, but revision {acked} was acknowledged: \
                     sled's files lost data (truncated or damaged). Restore from a backup \
                     (`rampart ctl import` into an empty data directory, or a copy of the \
                     directory), or, to serve revision {have} anyway and lose what came after it, \
                     delete the file `{HEAD_FILE}` in the data directory and start again"
                ),
            )),
            // Ahead of the head: a crash between sled's flush and the head
            // write. The next commit moves it.
            Some(_) => Ok(()),
            None => self.write_head(have),
        }
    }

    /// Makes every write so far durable: sled's flush, then `fdatasync`.
    /// A failure breaks the handle: sled 0.34 keeps the first I/O error
    /// of a flush and fails every later write and flush with it, even once
    /// the cause is gone, and after a failed `fdatasync` Linux may have
    /// dropped the dirty pages, so a later one that succeeds proves nothing.
    fn durable(&self) -> Result<(), StoreError> {
        let made = self.db.flush().map_err(backend).and_then(|_| {
            self.log
                .sync_data()
                .map_err(|e| io("fdatasync sled's log", e))
        });
        if made.is_err() {
            self.broken.store(true, Ordering::Relaxed);
        }
        made
    }

    /// Records `revision` as acknowledged in the head file; a failure
    /// breaks the handle, as in [`Handle::durable`].
    fn write_head(&self, revision: u64) -> Result<(), StoreError> {
        let written = self.head.write(revision);
        if written.is_err() {
            self.broken.store(true, Ordering::Relaxed);
        }
        written
    }

    /// Whether writes through this handle can still be made durable: no
    /// flush, `fdatasync` or head write failed, and a flush now succeeds
    /// (sled answers at once with the error it kept, if it kept one). Asked
    /// after a write failed: a write can also fail before it reaches the
    /// disk (a record that would not read back, a revision out of order),
    /// which leaves the handle fit.
    fn fit(&self) -> bool {
        !self.broken.load(Ordering::Relaxed) && self.durable().is_ok()
    }
}

/// The last acknowledged revision, in a small file of its own beside
/// sled's (20 decimal digits and a newline, rewritten in place and
/// `fdatasync`ed after each durable commit). sled's log cannot tell that
/// its own tail is gone: a truncated `db` recovers to an older revision as
/// if nothing happened. This file can. It is written after sled is
/// durable, so it never runs ahead of an intact store; when a revision
/// goes down (an install), it is lowered before.
struct Head {
    file: File,
}

impl Head {
    const LEN: usize = 21;

    fn open(path: &Path) -> Result<Self, StoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(&format!("open `{}`", path.display()), e))?;
        Ok(Self { file })
    }

    /// The recorded revision; `None` for a new (empty) file.
    fn read(&self) -> Result<Option<u64>, StoreError> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; Self::LEN + 1];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|e| io("read the `head` file", e))?;
        if n == 0 {
            return Ok(None);
        }
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| corrupt(format!("`{HEAD_FILE}`"), "not a revision number"))
    }

    fn write(&self, revision: u64) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let text = format!("{revision:020}\n");
        self.file
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io("write the `head` file", e))
    }
}

/// Removes sled's unfinished snapshot files from `path`: sled 0.34 writes a
/// snapshot to `snap.<lsn, 16 hex digits>.generating`, syncs it, then
/// renames it to `snap.<lsn>`. One left behind (a crash or a full disk
/// before the rename, often 0 bytes) sorts after every finished snapshot,
/// so sled reads it as the newest and fails with "corrupt". It was never
/// made current: deleting it loses nothing (sled falls back to the last
/// finished snapshot and replays its log from there). Called only after an
/// open failed as corrupt, so a live process's snapshot in progress is
/// never touched (sled's lock would refuse that open before). Returns how
/// many were removed.
fn remove_unfinished_snapshots(path: &Path) -> Result<usize, StoreError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => return Err(io(&format!("list `{}`", path.display()), e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io(&format!("list `{}`", path.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let unfinished = name
            .strip_prefix("snap.")
            .and_then(|rest| rest.strip_suffix(".generating"))
            .is_some_and(|lsn| lsn.len() == 16 && lsn.bytes().all(|b| b.is_ascii_hexdigit()));
        if unfinished {
            let file = entry.path();
            let bytes = entry.metadata().map_or(0, |m| m.len());
            std::fs::remove_file(&file)
                .map_err(|e| io(&format!("remove `{}`", file.display()), e))?;
            tracing::info!(file = %file.display(), bytes, "removed sled's unfinished snapshot file (left by a crash or a full disk)");
            removed += 1;
        }
    }
    Ok(removed)
}

impl Store for Handle {
    fn load(&self) -> Result<State, StoreError> {
        self.recover().map(|r| r.state)
    }

    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        self.commit_outcomes(batch)
    }

    fn begin_bootstrap(&self) -> Result<(), StoreError> {
        let have = self.revision()?;
        if have != 0 {
            return Err(StoreError::OutOfOrder { have, got: 1 });
        }
        let seq = counter(
            self.meta.get(NEXT_AUDIT_SEQ).map_err(backend)?,
            NEXT_AUDIT_SEQ,
            1,
        )?;
        self.meta
            .insert(BOOTSTRAPPING, &seq.to_be_bytes()[..])
            .map_err(backend)?;
        self.durable()
    }

    fn finish_bootstrap(&self) -> Result<(), StoreError> {
        self.meta.remove(BOOTSTRAPPING).map_err(backend)?;
        self.durable()
    }

    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.append_changes(changes)
    }

    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.read_changelog(after, limit)
    }

    fn history(&self) -> Result<History, StoreError> {
        let id = match self.meta.get(HISTORY).map_err(backend)? {
            Some(v) => {
                String::from_utf8(v.to_vec()).map_err(|_| corrupt("meta `history`", "not UTF-8"))?
            }
            None => String::new(),
        };
        let last = self.revision()?;
        let first = counter(
            self.meta.get(FIRST_RETAINED).map_err(backend)?,
            FIRST_RETAINED,
            1,
        )?;
        Ok(History {
            id,
            first: first.min(last.saturating_add(1)),
            last,
        })
    }

    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        Ok(self.current_checkpoint()?.map_or(0, |(rev, _)| rev))
    }

    fn compact(&self, before: u64) -> Result<u64, StoreError> {
        self.compact_below(before)
    }

    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        self.install_image(state, history)
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.read_audit(filter)
    }

    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        self.write_checkpoint(state)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        counter(self.meta.get(REVISION).map_err(backend)?, REVISION, 0)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }
}
