//! `MemoryStore`: the [`Store`] contract kept in memory behind a mutex, for
//! tests of the layers above. Nothing survives the process; everything else
//! (ordering, audit sequence numbers, filters, checkpoint + replay) behaves
//! as the sled store does.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    AuditFilter, AuditRecord, Change, History, Outcomes, Recovery, Store, StoreError, encode_audit,
    encode_change, max_count, new_history_id, replay,
};
use crate::model::State;

/// An in-memory store.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                history: new_history_id(),
                ..Inner::default()
            }),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    changelog: BTreeMap<u64, Change>,
    /// The last committed revision.
    revision: u64,
    history: String,
    /// In `seq` order; `seq` starts at 1.
    audit: Vec<AuditRecord>,
    /// The newest checkpoint. States share their tenants through `Arc`s,
    /// so keeping one is cheap.
    checkpoint: Option<State>,
}

impl Inner {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn push_change(&mut self, change: Change) -> Result<(), StoreError> {
        let have = self.revision;
        if Some(change.revision) != have.checked_add(1) {
            return Err(StoreError::OutOfOrder {
                have,
                got: change.revision,
            });
        }
        self.revision = change.revision;
        self.changelog.insert(change.revision, change);
        Ok(())
    }

    /// Checks and appends `audit`, giving it the next `seq`.
    fn push_audit(&mut self, mut audit: AuditRecord) -> Result<(), StoreError> {
        audit.seq = self.audit.len() as u64 + 1;
        encode_audit(&audit)?;
        self.audit.push(audit);
        Ok(())
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every method checks before it changes anything, so a panic in
        // another holder cannot have left the data half-changed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Store::load`], also saying where recovery started.
    pub fn recover(&self) -> Result<Recovery, StoreError> {
        let inner = self.lock();
        let mut state = inner.checkpoint.clone().unwrap_or_default();
        let checkpoint = state.revision;
        let after = inner
            .changelog
            .range(checkpoint.saturating_add(1)..)
            .map(|(_, c)| Ok(c.clone()));
        let replayed = replay(&mut state, after)?;
        Ok(Recovery {
            state,
            checkpoint,
            replayed,
        })
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<State, StoreError> {
        self.recover().map(|r| r.state)
    }

    fn append(&self, changes: &[Change]) -> Result<(), StoreError> {
        for change in changes {
            encode_change(change)?;
        }
        let mut inner = self.lock();
        let mut have = inner.revision;
        for change in changes {
            if Some(change.revision) != have.checked_add(1) {
                return Err(StoreError::OutOfOrder {
                    have,
                    got: change.revision,
                });
            }
            have = change.revision;
        }
        for change in changes {
            inner.push_change(change.clone())?;
        }
        Ok(())
    }

    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        // Check everything first (all or nothing), building each record once.
        let mut have = inner.revision;
        let mut records = Vec::with_capacity(batch.len());
        for entry in batch {
            let (change, audit) = match entry {
                Outcomes::Applied {
                    revision,
                    mutation,
                    audit,
                } => {
                    if Some(*revision) != have.checked_add(1) {
                        return Err(StoreError::OutOfOrder {
                            have,
                            got: *revision,
                        });
                    }
                    have = *revision;
                    let change = Change {
                        revision: *revision,
                        time: Some(audit.time),
                        mutation: mutation.clone(),
                    };
                    encode_change(&change)?;
                    let mut audit = audit.clone();
                    audit.revision = *revision;
                    (Some(change), audit)
                }
                Outcomes::Refused(audit) => (None, audit.clone()),
            };
            encode_audit(&audit)?;
            records.push((change, audit));
        }
        for (change, audit) in records {
            inner.push_audit(audit)?;
            if let Some(change) = change {
                inner.push_change(change)?;
            }
        }
        Ok(())
    }

    fn changelog(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .lock()
            .changelog
            .range(first..)
            .take(max_count(limit))
            .map(|(_, c)| c.clone())
            .collect())
    }

    fn history(&self) -> Result<History, StoreError> {
        let inner = self.lock();
        let last = inner.revision;
        Ok(History {
            id: inner.history.clone(),
            first: inner
                .changelog
                .keys()
                .next()
                .copied()
                .unwrap_or(last.saturating_add(1)),
            last,
        })
    }

    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock().checkpoint.as_ref().map_or(0, |c| c.revision))
    }

    fn compact(&self, before: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let covered = inner
            .checkpoint
            .as_ref()
            .map_or(0, |c| c.revision)
            .saturating_add(1);
        let keep = inner.changelog.split_off(&before.min(covered));
        inner.changelog = keep;
        let last = inner.revision;
        Ok(inner
            .changelog
            .keys()
            .next()
            .copied()
            .unwrap_or(last.saturating_add(1)))
    }

    fn install(&self, state: &State, history: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.changelog.clear();
        inner.revision = state.revision;
        inner.checkpoint = Some(state.clone());
        history.clone_into(&mut inner.history);
        Ok(())
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let inner = self.lock();
        let start = usize::try_from(filter.after_seq).unwrap_or(usize::MAX);
        Ok(inner
            .audit
            .iter()
            .skip(start)
            .filter(|r| filter.matches(r))
            .take(max_count(filter.limit))
            .cloned()
            .collect())
    }

    fn checkpoint(&self, state: &State) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let have = inner.revision();
        if state.revision > have {
            return Err(StoreError::OutOfOrder {
                have,
                got: state.revision,
            });
        }
        let newer = inner
            .checkpoint
            .as_ref()
            .is_none_or(|c| state.revision > c.revision);
        if newer {
            inner.checkpoint = Some(state.clone());
        }
        Ok(())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock().revision())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
