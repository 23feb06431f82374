//! Cohorts: users listed by the same groups share what those groups (and
//! every group above them) bring, computed once per cohort (see the
//! `users` module doc). A cohort's groups are a run of per-tenant group
//! numbers; its phases one `u32`.

use std::collections::HashSet;
use std::sync::Arc;

use super::PMap;
use super::chunked::Chunked;
use super::users::{Phases, set_at};
use crate::model::ids::GroupName;

/// A cohort's groups (a run of [`Cohorts::runs`]) and its phases.
#[derive(Debug, Clone, Copy)]
struct CohortEntry {
    start: u32,
    len: u32,
    /// A role set's id or, with [`TIMED`] set, an index into
    /// [`Cohorts::timed`].
    at: u32,
}

const TIMED: u32 = 1 << 31;

/// A tenant's cohorts, numbered; cohort 0 is the users no group lists.
/// Persistent, like the rest; a patch never removes a cohort (see
/// `TenantSnapshot::at_full`). Groups are numbered here (a name keeps its
/// number for good, even once deleted) so a cohort's groups are a run of
/// 4-byte numbers: a cohort costs about 30 bytes (BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cohorts {
    list: Chunked<CohortEntry>,
    /// Every cohort's groups, by number, sorted: one run per cohort.
    runs: Chunked<u32>,
    /// The phases of the cohorts whose groups' bindings expire.
    timed: Chunked<Arc<[(i64, u32)]>>,
    /// A cohort's groups' hash (32 bits) → its id, open addressing: a
    /// cohort whose key is taken by another goes to the next free key (no
    /// cohort is ever removed but by a full compile, so a probe sequence
    /// never breaks). 8 bytes a slot.
    ids: PMap<u32, u32>,
    /// Group → its number here; and back.
    group_ids: PMap<GroupName, u32>,
    group_names: Chunked<GroupName>,
}

pub(super) fn runs_hash(groups: &[u32]) -> u32 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0xc0_4027).hash_one(groups) as u32
}

impl Cohorts {
    /// How many cohorts and timed phases: what grows as patches leave
    /// unused ones behind.
    pub(crate) fn weight(&self) -> usize {
        self.list.len() + self.timed.len()
    }

    /// How many cohorts.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The role set cohort `id` brings at `now`.
    #[inline]
    pub(crate) fn set_at(&self, id: u32, now: i64) -> Option<u32> {
        let at = self.list.get(id as usize)?.at;
        if at & TIMED == 0 {
            return Some(at);
        }
        Some(set_at(self.timed.get((at & !TIMED) as usize)?, now))
    }

    /// Cohort `id`'s phases.
    #[cfg(test)]
    pub(crate) fn phases(&self, id: u32) -> Option<Phases> {
        let at = self.list.get(id as usize)?.at;
        Some(if at & TIMED == 0 {
            Phases::One(at)
        } else {
            Phases::Timed(Arc::clone(self.timed.get((at & !TIMED) as usize)?))
        })
    }

    /// Cohort `id`'s groups, in name order.
    pub(crate) fn groups(&self, id: u32) -> Vec<GroupName> {
        let mut names: Vec<GroupName> = self
            .run(id)
            .filter_map(|g| self.group_names.get(g as usize).cloned())
            .collect();
        names.sort();
        names
    }

    fn run(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let (start, len) = self
            .list
            .get(id as usize)
            .map_or((0, 0), |e| (e.start as usize, e.len as usize));
        (start..start + len).filter_map(|i| self.runs.get(i).copied())
    }

    fn group_id(&mut self, name: &GroupName) -> u32 {
        if let Some(&id) = self.group_ids.get(name) {
            return id;
        }
        let id = self.group_names.push(name.clone()) as u32;
        self.group_ids.insert(name.clone(), id);
        id
    }

    fn store(&mut self, phases: Phases) -> u32 {
        debug_assert!(self.timed.len() < TIMED as usize);
        match phases {
            Phases::One(set) => set,
            Phases::Timed(phases) => self.timed.push(phases) as u32 | TIMED,
        }
    }

    /// The id of the cohort of `groups`, added with the phases `phases`
    /// gives if it is new.
    pub(crate) fn intern(
        &mut self,
        groups: &[GroupName],
        phases: impl FnOnce(&[GroupName]) -> Phases,
    ) -> u32 {
        let mut run: Vec<u32> = groups.iter().map(|g| self.group_id(g)).collect();
        run.sort_unstable();
        run.dedup();
        let mut key = runs_hash(&run);
        while let Some(&id) = self.ids.get(&key) {
            if self.run(id).eq(run.iter().copied()) {
                return id;
            }
            key = key.wrapping_add(1);
        }
        let at = self.store(phases(groups));
        let start = self.runs.len() as u32;
        for &g in &run {
            self.runs.push(g);
        }
        let entry = CohortEntry {
            start,
            len: run.len() as u32,
            at,
        };
        let id = self.list.push(entry) as u32;
        self.ids.insert(key, id);
        id
    }

    /// Computes again the phases of every cohort that names one of
    /// `groups`.
    pub(crate) fn redo(
        &mut self,
        groups: &HashSet<GroupName>,
        mut phases: impl FnMut(&[GroupName]) -> Phases,
    ) {
        // Group numbers are dense: a flag each.
        let mut wanted = vec![false; self.group_names.len()];
        let mut any = false;
        for id in groups.iter().filter_map(|g| self.group_ids.get(g)) {
            if let Some(w) = wanted.get_mut(*id as usize) {
                *w = true;
                any = true;
            }
        }
        if !any {
            return;
        }
        // One pass over both: the runs are in cohort order, back to back.
        let mut runs = self.runs.iter();
        let hit: Vec<u32> = (self.list.iter().enumerate())
            .filter(|(_, e)| {
                let run = runs.by_ref().take(e.len as usize);
                run.fold(false, |hit, g| {
                    hit | wanted.get(*g as usize).copied().unwrap_or(false)
                })
            })
            .map(|(id, _)| id as u32)
            .collect();
        drop(runs);
        for id in hit {
            let Some(&entry) = self.list.get(id as usize) else {
                continue;
            };
            let names = self.groups(id);
            let redone = phases(&names);
            // Timed phases that did not change keep their index, so that
            // patches of a group with an expiring binding do not pile them up.
            let same = match (&redone, entry.at & TIMED != 0) {
                (Phases::One(set), false) => *set == entry.at,
                (Phases::Timed(p), true) => self.timed.get((entry.at & !TIMED) as usize) == Some(p),
                _ => false,
            };
            if !same {
                let at = self.store(redone);
                self.list.set(id as usize, CohortEntry { at, ..entry });
            }
        }
    }

    /// Frees the room kept for growth (after a full compile).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.list.shrink_to_fit();
        self.runs.shrink_to_fit();
        self.timed.shrink_to_fit();
        self.group_names.shrink_to_fit();
    }
}
