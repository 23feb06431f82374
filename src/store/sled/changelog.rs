//! The two logs a commit appends to: the changelog (`revision → change`)
//! and the audit log (`seq → record`), written together in one transaction;
//! reading them back; and compacting the changelog.

use std::sync::PoisonError;

use ::sled::transaction::{ConflictableTransactionError, abort};
use ::sled::{IVec, Transactional};

use super::{
    DELETE_STEP, FIRST_RETAINED, Handle, NEXT_AUDIT_SEQ, REVISION, backend, counter, decode,
    key_u64, tx,
};
use crate::model::audit::{AuditFilter, AuditRecord, Outcomes};
use crate::store::{
    Change, Store, StoreError, decode_change, encode_audit, encode_change, max_count,
};

impl Handle {
    /// [`Store::commit_batch`]: every changelog entry, audit
    /// record and counter of `batch` in one transaction, then one flush.
    pub(super) fn commit_outcomes(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
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
        self.durable()?;
        match entries.iter().rev().find_map(|(change, _)| change.as_ref()) {
            Some((revision, _)) => self.write_head(*revision),
            None => Ok(()),
        }
    }

    /// [`Store::append`]: replicated changes in one
    /// transaction, then one flush.
    pub(super) fn append_changes(&self, changes: &[Change]) -> Result<(), StoreError> {
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
        self.durable()?;
        self.write_head(last.revision)
    }

    /// [`Store::changelog`]: the live entries after `after`.
    pub(super) fn read_changelog(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
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

    /// [`Store::compact`]: raises `first_retained`, then
    /// deletes what lies below it.
    pub(super) fn compact_below(&self, before: u64) -> Result<u64, StoreError> {
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

    /// Deletes the changelog keys in `range`, a step at a time.
    pub(super) fn delete_changelog(
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

    /// Deletes the audit records from `seq` on, in steps.
    pub(super) fn delete_audit_from(&self, seq: u64) -> Result<(), StoreError> {
        loop {
            let step: Vec<IVec> = self
                .audit
                .range(seq.to_be_bytes()..)
                .keys()
                .take(DELETE_STEP)
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            if step.is_empty() {
                return Ok(());
            }
            let mut batch = ::sled::Batch::default();
            for key in step {
                batch.remove(key);
            }
            self.audit.apply_batch(batch).map_err(backend)?;
        }
    }

    /// [`Store::audit`]: the records matching `filter`.
    pub(super) fn read_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
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
}
