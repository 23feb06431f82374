//! Checkpoints: a state written as parts (a header, then one part per
//! tenant) cut into small chunks beside the current checkpoint, made
//! current by one pointer insert; read back on every core; and recovery,
//! which starts from it and replays the changelog that follows.

use std::sync::PoisonError;

use serde::{Deserialize, Serialize};

use super::{
    CHECKPOINT, FIRST_RETAINED, HISTORY, Handle, REVISION, backend, be_u64, corrupt, decode,
    encode, key_u64, tx,
};
use crate::model::{CatalogEntry, Grant, State, TenantId};
use crate::store::image::{self, ImageError};
use crate::store::{Recovery, Store, StoreError, decode_change, replay};

/// Bytes of a part per checkpoint chunk. A sled leaf holds up to 17 entries
/// before it splits, so 4 KiB keeps leaves well under the blob threshold.
const CHUNK_BYTES: usize = 4 * 1024;
/// Flush a checkpoint's log writes every this many chunks (1 MiB), so a
/// commit's flush never has to push more than about that much of it.
const FLUSH_EVERY_CHUNKS: usize = 256;
/// The header's `format`, bumped when the checkpoint layout changes: 1,
/// tenant parts are the JSON of `image::encode_tenant`; 2, they are
/// `image::binary` images (with their own tag, version and checksum). The
/// header is JSON in both. Format 1 is still read; only 2 is written.
const FORMAT: u32 = 2;
/// The oldest format still read.
const OLDEST_FORMAT: u32 = 1;

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
    /// CRC-32 of the part's bytes, checked on reading (sled checks each
    /// log record; this catches a chunk lost, reordered or left over
    /// between them). Absent in checkpoints written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crc32: Option<u32>,
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

impl Handle {
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

    /// [`Store::checkpoint`]: writes `state` beside the current checkpoint,
    /// then makes it current.
    pub(super) fn write_checkpoint(&self, state: &State) -> Result<(), StoreError> {
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

    /// [`Store::install`]: `state` becomes the checkpoint and history
    /// `history` starts after it, with an empty changelog.
    pub(super) fn install_image(&self, state: &State, history: &str) -> Result<(), StoreError> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let revision = state.revision;
        if revision < self.revision()? {
            // Lowered first: a crash after the install must not find a head
            // above what the store holds.
            self.write_head(revision)?;
        }
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
        self.write_head(revision)?;
        self.remove_checkpoints_but(Some(revision))?;
        self.delete_changelog(..)?;
        self.durable()
    }

    /// The current checkpoint: its revision and header length.
    pub(super) fn current_checkpoint(&self) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self.pointer()?.map(|(rev, len, _)| (rev, len)))
    }

    /// The `meta` pointer to the current checkpoint: its revision, its
    /// header's length and (since checkpoints carry checksums) the
    /// header's CRC-32.
    fn pointer(&self) -> Result<Option<(u64, u64, Option<u32>)>, StoreError> {
        let Some(v) = self.meta.get(CHECKPOINT).map_err(backend)? else {
            return Ok(None);
        };
        let crc = v
            .get(16..20)
            .and_then(|c| c.try_into().ok())
            .map(u32::from_be_bytes);
        match (be_u64(&v), v.get(8..16).and_then(be_u64)) {
            (Some(rev), Some(len)) if v.len() == 16 || v.len() == 20 => Ok(Some((rev, len, crc))),
            _ => Err(corrupt(
                "meta `checkpoint`",
                "not two 8-byte numbers and a checksum",
            )),
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
        let Some((revision, header_bytes, header_crc)) = self.pointer()? else {
            return Ok(None);
        };
        let header_at = || format!("checkpoint {revision} header");
        let bytes = self.read_part(revision, 0, header_bytes, &header_at)?;
        check_crc(header_crc, &bytes, &header_at)?;
        let header: Header = decode(header_at, &bytes)?;
        let format = header.format;
        if !(OLDEST_FORMAT..=FORMAT).contains(&format) {
            return Err(corrupt(
                header_at(),
                format!(
                    "format {format}: this rampart reads formats {OLDEST_FORMAT} to {FORMAT} (written by a newer rampart?)"
                ),
            ));
        }
        if header.revision != revision {
            return Err(corrupt(
                header_at(),
                format!("holds revision {}", header.revision),
            ));
        }
        // Tenants are independent parts: each worker reads, checks and
        // decodes one at a time, so only the parts in flight are held as
        // bytes beside the decoded state.
        let patterns = crate::model::intern::SharedPatterns::default();
        let read_one = |i: usize, info: &PartInfo| -> Result<crate::model::Tenant, StoreError> {
            let at = || {
                format!(
                    "checkpoint {revision} part {} (tenant `{}`)",
                    i + 1,
                    info.id
                )
            };
            let part = u32::try_from(i + 1).map_err(|_| corrupt(at(), "too many tenants"))?;
            let bytes = self.read_part(revision, part, info.bytes, &at)?;
            check_crc(info.crc32, &bytes, &at)?;
            let tenant = crate::model::intern::interning_with(&patterns, || match format {
                1 => image::decode_tenant(&bytes),
                _ => image::binary::decode_tenant(&bytes),
            })
            .map_err(|e| corrupt(at(), e))?;
            if tenant.id != info.id {
                return Err(corrupt(at(), format!("holds tenant `{}`", tenant.id)));
            }
            Ok(tenant)
        };
        let tenants = crate::store::parallel::in_order(&header.tenants, read_one)?;
        image::assemble(revision, header.catalog, header.bridges_grants, tenants)
            .map(Some)
            .map_err(|e: ImageError| corrupt(header_at(), e))
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

    /// Writes `state` as a checkpoint that is not current yet (beside the
    /// current one, `current`), durably, and returns the `meta` pointer
    /// that makes it current. Caller holds `checkpointing`.
    fn write_image(&self, state: &State, current: Option<u64>) -> Result<[u8; 20], StoreError> {
        let revision = state.revision;
        // Leftovers of checkpoints that never became current, at this
        // revision or another.
        self.remove_checkpoints_but(current)?;
        let mut tenants = Vec::with_capacity(state.tenants.len());
        for (i, tenant) in state.tenants.values().enumerate() {
            let bytes = image::binary::encode_tenant(tenant).map_err(|e| {
                StoreError::Backend(format!("cannot encode tenant `{}`: {e}", tenant.id))
            })?;
            let part =
                u32::try_from(i + 1).map_err(|_| StoreError::Backend("too many tenants".into()))?;
            self.write_part(revision, part, &bytes)?;
            tenants.push(PartInfo {
                id: tenant.id.clone(),
                bytes: bytes.len() as u64,
                crc32: Some(crc32fast::hash(&bytes)),
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
        let mut pointer = [0; 20];
        pointer[..8].copy_from_slice(&revision.to_be_bytes());
        pointer[8..16].copy_from_slice(&(header.len() as u64).to_be_bytes());
        pointer[16..].copy_from_slice(&crc32fast::hash(&header).to_be_bytes());
        Ok(pointer)
    }
}

/// A part's bytes against the CRC-32 recorded for them, if one was (a
/// checkpoint written before checksums has none).
fn check_crc(want: Option<u32>, bytes: &[u8], at: &dyn Fn() -> String) -> Result<(), StoreError> {
    match want {
        Some(want) if crc32fast::hash(bytes) != want => Err(corrupt(
            at(),
            format!(
                "checksum {:08x} instead of {want:08x}",
                crc32fast::hash(bytes)
            ),
        )),
        _ => Ok(()),
    }
}
