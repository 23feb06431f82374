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
//! | `meta`       | `checkpoint`                          | revision u64 ++ header bytes u64 (big-endian) |
//! | `checkpoint` | revision u64 ++ part u32 ++ chunk u32 | up to 4 KiB of a part's JSON   |
//!
//! A checkpoint is a set of parts under its revision: part 0 is the header
//! (revision, catalog, bridge grants, and each tenant's id and size), part
//! `i + 1` is tenant `i` as `image::TenantImage` JSON. Each part is cut into
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

use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use ::sled::transaction::{ConflictableTransactionError, TransactionError, abort};
use ::sled::{Db, IVec, Transactional, Tree};
use serde::{Deserialize, Serialize};

use super::image::{self, ImageError};
use super::{
    AuditFilter, AuditRecord, Change, History, Outcomes, Recovery, Store, StoreError,
    decode_change, encode_audit, encode_change, max_count, new_history_id, replay,
};
use crate::model::{CatalogEntry, Grant, Mutation, State, TenantId};

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
/// sled's page cache.
const CACHE_BYTES: u64 = 64 << 20;
/// Changelog keys deleted per step of compaction or cleanup.
const DELETE_STEP: usize = 512;
/// Bytes of a part per checkpoint chunk. A sled leaf holds up to 17 entries
/// before it splits, so 4 KiB keeps leaves well under the blob threshold.
const CHUNK_BYTES: usize = 4 * 1024;
/// Flush a checkpoint's log writes every this many chunks (1 MiB), so a
/// commit's flush never has to push more than about that much of it.
const FLUSH_EVERY_CHUNKS: usize = 256;
/// The header's `format`, bumped when the checkpoint layout changes.
const FORMAT: u32 = 1;

/// The production store: a sled database in one folder.
pub struct SledStore {
    db: Db,
    changelog: Tree,
    audit: Tree,
    meta: Tree,
    checkpoints: Tree,
    /// sled's log file, to `fdatasync` after sled's own flush.
    log: File,
    /// Serialises checkpoints with each other and with reading one.
    checkpointing: Mutex<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

/// The checkpoint header (part 0).
#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    revision: u64,
    catalog: Vec<CatalogEntry>,
    bridges_grants: Vec<Grant>,
    /// Tenant `i` is part `i + 1`.
    tenants: Vec<PartInfo>,
}

#[derive(Serialize, Deserialize)]
struct PartInfo {
    id: TenantId,
    bytes: u64,
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

fn chunk_key(revision: u64, part: u32, chunk: u32) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&revision.to_be_bytes());
    key[8..12].copy_from_slice(&part.to_be_bytes());
    key[12..].copy_from_slice(&chunk.to_be_bytes());
    key
}

fn part_prefix(revision: u64, part: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&revision.to_be_bytes());
    key[8..].copy_from_slice(&part.to_be_bytes());
    key
}

impl SledStore {
    /// Opens (or creates) the store in the folder `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // sled's default page cache is 1 GiB. Checks never read sled and
        // the state lives in the model, so a small bound is enough (the
        // 1M-user cold start's RSS moved only from 1,717 to 1,704 MiB).
        let db = ::sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(backend)?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let changelog = tree("changelog")?;
        let audit = tree("audit")?;
        let meta = tree("meta")?;
        let checkpoints = tree("checkpoint")?;
        // sled 0.34 keeps its log in `<path>/db`. fsync works on a read-only
        // handle: it syncs the file, not the descriptor.
        let log = File::open(path.join("db")).map_err(|e| io("open sled's log `db`", e))?;
        let store = Self {
            db,
            changelog,
            audit,
            meta,
            checkpoints,
            log,
            checkpointing: Mutex::new(()),
        };
        if store.meta.get(HISTORY).map_err(backend)?.is_none() {
            store
                .meta
                .insert(HISTORY, new_history_id().as_bytes())
                .map_err(backend)?;
            store.durable()?;
        }
        // Unreadable counters are reported by the first call that needs them.
        if let Ok(live) = store.history() {
            store.delete_changelog(..live.first)?;
            store.delete_changelog(live.last.saturating_add(1)..)?;
        }
        Ok(store)
    }

    /// Deletes the changelog keys in `range`, a step at a time.
    fn delete_changelog(
        &self,
        range: impl std::ops::RangeBounds<u64> + Clone,
    ) -> Result<u64, StoreError> {
        use std::ops::Bound;
        let bound = |b: Bound<&u64>| match b {
            Bound::Included(n) => Bound::Included(n.to_be_bytes()),
            Bound::Excluded(n) => Bound::Excluded(n.to_be_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let keys = (bound(range.start_bound()), bound(range.end_bound()));
        let mut removed = 0;
        loop {
            let step: Vec<IVec> = self
                .changelog
                .range::<[u8; 8], _>(keys)
                .keys()
                .take(DELETE_STEP)
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            if step.is_empty() {
                return Ok(removed);
            }
            let mut batch = ::sled::Batch::default();
            for key in &step {
                batch.remove(key.clone());
            }
            self.changelog.apply_batch(batch).map_err(backend)?;
            removed += step.len() as u64;
        }
    }

    /// Makes every write so far durable: sled's flush, then `fdatasync`.
    fn durable(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        self.log
            .sync_data()
            .map_err(|e| io("fdatasync sled's log", e))
    }

    /// The current checkpoint: its revision and header length.
    fn current_checkpoint(&self) -> Result<Option<(u64, u64)>, StoreError> {
        match self.meta.get(CHECKPOINT).map_err(backend)? {
            None => Ok(None),
            Some(v) => match (be_u64(&v), v.get(8..).and_then(be_u64)) {
                (Some(rev), Some(len)) if v.len() == 16 => Ok(Some((rev, len))),
                _ => Err(corrupt("meta `checkpoint`", "not two 8-byte numbers")),
            },
        }
    }

    /// The bytes of part `part` of checkpoint `revision`, which must be
    /// exactly `bytes` long in chunks numbered from 0.
    fn read_part(
        &self,
        revision: u64,
        part: u32,
        bytes: u64,
        at: &dyn Fn() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        // `bytes` is read from disk: a hint, bounded so a damaged one cannot
        // ask for an absurd allocation.
        let hint = usize::try_from(bytes.min(1 << 28)).unwrap_or(0);
        let mut out = Vec::with_capacity(hint);
        for (n, item) in self
            .checkpoints
            .scan_prefix(part_prefix(revision, part))
            .enumerate()
        {
            let (key, value) = item.map_err(backend)?;
            let chunk = key
                .get(12..16)
                .and_then(|c| c.try_into().ok())
                .map(u32::from_be_bytes);
            if key.len() != 16 || chunk.and_then(|c| usize::try_from(c).ok()) != Some(n) {
                return Err(corrupt(at(), format!("chunk {n} is missing")));
            }
            out.extend_from_slice(&value);
        }
        if out.len() as u64 != bytes {
            return Err(corrupt(
                at(),
                format!("{} bytes instead of {bytes}", out.len()),
            ));
        }
        Ok(out)
    }

    /// The state in the current checkpoint, or `None` without one.
    fn read_checkpoint(&self) -> Result<Option<State>, StoreError> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((revision, header_bytes)) = self.current_checkpoint()? else {
            return Ok(None);
        };
        let header_at = || format!("checkpoint {revision} header");
        let bytes = self.read_part(revision, 0, header_bytes, &header_at)?;
        let header: Header = decode(header_at, &bytes)?;
        if header.format != FORMAT || header.revision != revision {
            return Err(corrupt(
                header_at(),
                format!("format {} at revision {}", header.format, header.revision),
            ));
        }
        // Tenants are independent parts: read and decode them on every
        // core (decoding JSON is most of a cold start).
        let read_one = |i: usize, info: &PartInfo| -> Result<crate::model::Tenant, StoreError> {
            let at = || format!("checkpoint {revision} tenant `{}`", info.id);
            let part = u32::try_from(i + 1).map_err(|_| corrupt(at(), "too many tenants"))?;
            let bytes = self.read_part(revision, part, info.bytes, &at)?;
            let tenant = image::decode_tenant(&bytes).map_err(|e| corrupt(at(), e))?;
            if tenant.id != info.id {
                return Err(corrupt(at(), format!("holds tenant `{}`", tenant.id)));
            }
            Ok(tenant)
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, 8)
            .min(header.tenants.len().max(1));
        let parts = &header.tenants;
        let decoded: Vec<Vec<(usize, Result<crate::model::Tenant, StoreError>)>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers)
                    .map(|w| {
                        let read_one = &read_one;
                        scope.spawn(move || {
                            parts
                                .iter()
                                .enumerate()
                                .skip(w)
                                .step_by(workers)
                                .map(|(i, info)| (i, read_one(i, info)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            vec![(
                                0,
                                Err(StoreError::Backend("a checkpoint reader panicked".into())),
                            )]
                        })
                    })
                    .collect()
            });
        let mut slots: Vec<Option<crate::model::Tenant>> = Vec::new();
        slots.resize_with(parts.len(), || None);
        let mut first_error: Option<(usize, StoreError)> = None;
        for (i, result) in decoded.into_iter().flatten() {
            match result {
                Ok(tenant) => {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(tenant);
                    }
                }
                // The same error a one-by-one read would report: the first.
                Err(e) if first_error.as_ref().is_none_or(|(j, _)| i < *j) => {
                    first_error = Some((i, e));
                }
                Err(_) => {}
            }
        }
        if let Some((_, e)) = first_error {
            return Err(e);
        }
        let tenants: Vec<crate::model::Tenant> = slots.into_iter().flatten().collect();
        if tenants.len() != parts.len() {
            return Err(corrupt(header_at(), "a tenant part was not read"));
        }
        image::assemble(revision, header.catalog, header.bridges_grants, tenants)
            .map(Some)
            .map_err(|e: ImageError| corrupt(header_at(), e))
    }

    /// [`Store::load`], also saying where recovery started.
    pub fn recover(&self) -> Result<Recovery, StoreError> {
        let before = self.revision()?;
        let mut state = self.read_checkpoint()?.unwrap_or_default();
        let checkpoint = state.revision;
        let entries = self
            .changelog
            .range(checkpoint.saturating_add(1).to_be_bytes()..)
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                let revision = key_u64("changelog", &key)?;
                decode_change(revision, &value)
            });
        let replayed = replay(&mut state, entries)?;
        let after = self.revision()?;
        // INVARIANT: a commit writes the changelog entry and `revision` in one
        // transaction, so the changelog ends where `revision` says (which
        // only grows while we read).
        if checkpoint > after || state.revision < before || state.revision > after {
            return Err(corrupt(
                "meta `revision`",
                format!(
                    "says {after}, but the checkpoint is at {checkpoint} and the changelog ends at {}",
                    state.revision
                ),
            ));
        }
        Ok(Recovery {
            state,
            checkpoint,
            replayed,
        })
    }

    /// Removes every checkpoint key but those of checkpoint `keep`. Scans
    /// only the keys it removes.
    fn remove_checkpoints_but(&self, keep: Option<u64>) -> Result<(), StoreError> {
        let below = keep.map(u64::to_be_bytes);
        let above = keep.and_then(|k| k.checked_add(1)).map(u64::to_be_bytes);
        let doomed: Vec<_> = match (below, above) {
            (None, _) => vec![self.checkpoints.iter()],
            (Some(below), None) => vec![self.checkpoints.range(..below)],
            (Some(below), Some(above)) => vec![
                self.checkpoints.range(..below),
                self.checkpoints.range(above..),
            ],
        };
        for key in doomed.into_iter().flat_map(|range| range.keys()) {
            self.checkpoints
                .remove(key.map_err(backend)?)
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Writes `bytes` as part `part` of checkpoint `revision`.
    fn write_part(&self, revision: u64, part: u32, bytes: &[u8]) -> Result<(), StoreError> {
        for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            let n = u32::try_from(i)
                .map_err(|_| StoreError::Backend("a checkpoint part is too large".into()))?;
            self.checkpoints
                .insert(chunk_key(revision, part, n), chunk)
                .map_err(backend)?;
            if (i + 1).is_multiple_of(FLUSH_EVERY_CHUNKS) {
                // Without this, a commit's flush must push every chunk
                // written since the last one: measured stalls of 0.4-0.5 s
                // during a 1M-user checkpoint, under 0.1 s with it.
                self.db.flush().map_err(backend)?;
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<State, StoreError> {
        self.recover().map(|r| r.state)
    }

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

    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        // Encode (and check) everything before the transaction.
        let mut entries = Vec::with_capacity(batch.len());
        for entry in batch {
            entries.push(match entry {
                Outcomes::Applied {
                    revision,
                    mutation,
                    audit,
                } => {
                    let change = encode_change(&Change {
                        revision: *revision,
                        time: Some(audit.time),
                        mutation: mutation.clone(),
                    })?;
                    let mut audit = audit.clone();
                    audit.revision = *revision;
                    (Some((*revision, change)), audit)
                }
                Outcomes::Refused(audit) => (None, audit.clone()),
            });
        }
        let result =
            (&self.changelog, &self.audit, &self.meta).transaction(|(log, records, meta)| {
                let mut have = counter(meta.get(REVISION)?, REVISION, 0)
                    .map_err(ConflictableTransactionError::Abort)?;
                let mut seq = counter(meta.get(NEXT_AUDIT_SEQ)?, NEXT_AUDIT_SEQ, 1)
                    .map_err(ConflictableTransactionError::Abort)?;
                for (change, audit) in &entries {
                    if let Some((revision, bytes)) = change {
                        if Some(*revision) != have.checked_add(1) {
                            return abort(StoreError::OutOfOrder {
                                have,
                                got: *revision,
                            });
                        }
                        log.insert(&revision.to_be_bytes()[..], bytes.as_slice())?;
                        have = *revision;
                    }
                    let mut record = audit.clone();
                    record.seq = seq;
                    let record =
                        encode_audit(&record).map_err(ConflictableTransactionError::Abort)?;
                    records.insert(&seq.to_be_bytes()[..], record)?;
                    seq = seq.saturating_add(1);
                }
                meta.insert(REVISION, &have.to_be_bytes()[..])?;
                meta.insert(NEXT_AUDIT_SEQ, &seq.to_be_bytes()[..])?;
                Ok(())
            });
        tx(result)?;
        self.durable()
    }

    fn record_refusal(&self, audit: AuditRecord) -> Result<(), StoreError> {
        self.commit_batch(&[Outcomes::Refused(audit)])
    }

    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        let Some(last) = changes.last() else {
            return Ok(());
        };
        let entries = changes
            .iter()
            .map(|c| encode_change(c).map(|e| (c.revision, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let result = (&self.changelog, &self.meta).transaction(|(log, meta)| {
            let mut have = counter(meta.get(REVISION)?, REVISION, 0)
                .map_err(ConflictableTransactionError::Abort)?;
            for (revision, entry) in &entries {
                if Some(*revision) != have.checked_add(1) {
                    return abort(StoreError::OutOfOrder {
                        have,
                        got: *revision,
                    });
                }
                log.insert(&revision.to_be_bytes()[..], entry.as_slice())?;
                have = *revision;
            }
            meta.insert(REVISION, &last.revision.to_be_bytes()[..])?;
            Ok(())
        });
        tx(result)?;
        self.durable()
    }

    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let live = self.history()?;
        let first = after.saturating_add(1).max(live.first);
        if first > live.last {
            return Ok(Vec::new());
        }
        self.changelog
            .range(first.to_be_bytes()..=live.last.to_be_bytes())
            .take(max_count(limit))
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                let revision = key_u64("changelog", &key)?;
                decode_change(revision, &value)
            })
            .collect()
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
        // Serialised with install (which moves the checkpoint and the
        // history): a cutoff computed before an install must not apply after.
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let live = self.history()?;
        let cutoff = before
            .min(self.checkpoint_revision()?.saturating_add(1))
            .min(live.last.saturating_add(1));
        if cutoff <= live.first {
            return Ok(live.first);
        }
        // INVARIANT: the entries below `first_retained` are never read, so
        // it is raised durably before any of them goes.
        self.meta
            .insert(FIRST_RETAINED, &cutoff.to_be_bytes()[..])
            .map_err(backend)?;
        self.durable()?;
        self.delete_changelog(..cutoff)?;
        Ok(cutoff)
    }

    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let revision = state.revision;
        let mut current = self.current_checkpoint()?.map(|(rev, _)| rev);
        if current == Some(revision) {
            // The new checkpoint's keys would overwrite the current one's:
            // drop the pointer first (a crash now leaves a store that no
            // longer recovers, rather than a mix of two states).
            self.meta.remove(CHECKPOINT).map_err(backend)?;
            self.durable()?;
            current = None;
        }
        let pointer = self.write_image(state, current)?;
        let first = revision.saturating_add(1);
        tx(self.meta.transaction(|meta| {
            meta.insert(CHECKPOINT, &pointer[..])?;
            meta.insert(REVISION, &revision.to_be_bytes()[..])?;
            meta.insert(FIRST_RETAINED, &first.to_be_bytes()[..])?;
            meta.insert(HISTORY, history.as_bytes())?;
            Ok(())
        }))?;
        self.durable()?;
        self.remove_checkpoints_but(Some(revision))?;
        self.delete_changelog(..)?;
        self.durable()
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let Some(first) = filter.after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let limit = max_count(filter.limit);
        let mut out = Vec::new();
        for item in self.audit.range(first.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(backend)?;
            let seq = key_u64("audit", &key)?;
            let mut record: AuditRecord = decode(|| format!("audit seq {seq}"), &value)?;
            record.seq = seq;
            if filter.matches(&record) {
                out.push(record);
            }
        }
        Ok(out)
    }

    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let have = self.revision()?;
        let revision = state.revision;
        if revision > have {
            return Err(StoreError::OutOfOrder {
                have,
                got: revision,
            });
        }
        let current = self.current_checkpoint()?;
        if current.is_some_and(|(rev, _)| rev >= revision) {
            return Ok(());
        }
        let pointer = self.write_image(state, current.map(|(rev, _)| rev))?;
        self.meta
            .insert(CHECKPOINT, &pointer[..])
            .map_err(backend)?;
        self.durable()?;
        self.remove_checkpoints_but(Some(revision))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        counter(self.meta.get(REVISION).map_err(backend)?, REVISION, 0)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }
}

impl SledStore {
    /// Writes `state` as a checkpoint that is not current yet (beside the
    /// current one, `current`), durably, and returns the `meta` pointer
    /// that makes it current. Caller holds `checkpointing`.
    fn write_image(&self, state: &State, current: Option<u64>) -> Result<[u8; 16], StoreError> {
        let revision = state.revision;
        // Leftovers of checkpoints that never became current, at this
        // revision or another.
        self.remove_checkpoints_but(current)?;
        let mut tenants = Vec::with_capacity(state.tenants.len());
        for (i, tenant) in state.tenants.values().enumerate() {
            let bytes = image::encode_tenant(tenant).map_err(|e| {
                StoreError::Backend(format!("cannot encode tenant `{}`: {e}", tenant.id))
            })?;
            let part =
                u32::try_from(i + 1).map_err(|_| StoreError::Backend("too many tenants".into()))?;
            self.write_part(revision, part, &bytes)?;
            tenants.push(PartInfo {
                id: tenant.id.clone(),
                bytes: bytes.len() as u64,
            });
        }
        let header = encode(
            "checkpoint header",
            &Header {
                format: FORMAT,
                revision,
                catalog: state.catalog.entries().to_vec(),
                bridges_grants: state.bridges_grants.to_vec(),
                tenants,
            },
        )?;
        self.write_part(revision, 0, &header)?;
        // INVARIANT: every part is durable before a pointer names it.
        self.durable()?;
        let mut pointer = [0; 16];
        pointer[..8].copy_from_slice(&revision.to_be_bytes());
        pointer[8..].copy_from_slice(&(header.len() as u64).to_be_bytes());
        Ok(pointer)
    }
}
