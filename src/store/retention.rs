//! How much changelog to keep, and the revision compaction may cut at.

use super::{Store, StoreError};
use crate::model::Timestamp;

/// How much changelog to keep. An entry is removed only when every bound
/// that is set says so, and never one the newest checkpoint still needs
/// for recovery. With no bound set, nothing is removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at least the last this many revisions.
    pub revisions: Option<u64>,
    /// Keep at least the entries committed within this long.
    pub age: Option<std::time::Duration>,
}

impl Retention {
    /// The revision compaction may remove entries below, as of `now`: every
    /// entry before it is outside each set bound and covered by the
    /// checkpoint. Reads entry times from `store` when an age is set.
    pub fn cutoff(&self, store: &dyn Store, now: Timestamp) -> Result<u64, StoreError> {
        let history = store.history()?;
        if self.revisions.is_none() && self.age.is_none() {
            return Ok(history.first);
        }
        // Entries after the checkpoint are what recovery replays.
        let mut cutoff = store.checkpoint_revision()?.saturating_add(1);
        if let Some(n) = self.revisions {
            cutoff = cutoff.min(history.last.saturating_add(1).saturating_sub(n));
        }
        if let Some(age) = self.age {
            let oldest_kept = now
                .unix()
                .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
            // The first entry young enough to keep; entries are in commit
            // (so time) order.
            let mut at = history.first.saturating_sub(1);
            'scan: while at.saturating_add(1) < cutoff {
                let page = store.changelog(at, 1024)?;
                if page.is_empty() {
                    break;
                }
                for change in page {
                    if change.revision >= cutoff
                        || change.time.is_some_and(|t| t.unix() >= oldest_kept)
                    {
                        cutoff = cutoff.min(change.revision);
                        break 'scan;
                    }
                    at = change.revision;
                }
            }
        }
        Ok(cutoff.max(history.first))
    }
}
