//! The user side of a compiled tenant.
//!
//! A user's roles come from two places, compiled apart: its own bindings
//! (and `Users`), and the groups that list it (and every group above
//! those). Users listed by the same groups form a *cohort*, and share the
//! cohort's roles; a check unites the user's own role set with its
//! cohort's. A user's entry is 8 bytes: its own role set's id (hash-consed:
//! users with the same own roles share one) or, for the few users an
//! expiring binding of their own reaches, the index of its phases (the
//! role set for each interval between expiries); its cohort; whether it is
//! active.
//!
//! So a change to a user's bindings or memberships recomputes that user's
//! entry, and a change to a group (its bindings, or the groups above it)
//! recomputes the cohorts that name a group under it: no user's entry
//! changes, however many users the group holds.
//!
//! An earlier design kept *classes* of users with the same own bindings and
//! direct groups; in tenants shaped like the benches nearly every user had
//! a class of its own, and the classes, their table and the per-user
//! groups index they needed cost 240 bytes a user (BENCHMARKS.md, "Issue
//! #15"). Cohorts are keyed by groups alone, which users share widely; a
//! user's own roles are its entry's.
//!
//! Everything is a persistent map or vector, or sits behind an `Arc`, so a
//! compiled tenant is copied in O(1) and patched in place of what changed.

use std::collections::HashSet;
use std::sync::Arc;

use super::chunked::Chunked;
use super::{FastMap, PMap, bits};
use crate::model::RoleName;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::tenant::{Binding, Tenant};

/// For each group, the groups that list it directly, sorted by name. (Not
/// users: a user's groups are its cohort's.)
pub(crate) type Parents = PMap<Subject, Arc<[GroupName]>>;

/// When a user's role set changes, and to which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phases {
    /// No expiring binding: one role set forever.
    One(u32),
    /// `(until, set)`, sorted by `until`; the set applies while `now < until`,
    /// and the last `until` is `i64::MAX`.
    Timed(Arc<[(i64, u32)]>),
}

/// The role set in force at `now` (seconds since the epoch) of timed
/// phases.
#[inline]
pub(crate) fn set_at(phases: &[(i64, u32)], now: i64) -> u32 {
    phases
        .iter()
        .find(|(until, _)| now < *until)
        .or(phases.last())
        .map_or(u32::MAX, |(_, set)| *set)
}

/// One user, compiled: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserEntry {
    /// The user's own role set, or (when timed) its own phases.
    own: u32,
    /// `cohort << 2 | timed << 1 | active`.
    meta: u32,
}

/// The most cohorts a tenant may hold (the entry keeps two flag bits
/// beside the id).
pub(crate) const MAX_COHORTS: usize = 1 << 30;

impl UserEntry {
    pub(crate) fn new(
        active: bool,
        own: Phases,
        cohort: u32,
        keep: impl FnOnce(Arc<[(i64, u32)]>) -> u32,
    ) -> Self {
        debug_assert!(
            (cohort as usize) < MAX_COHORTS,
            "cohort {cohort} out of range"
        );
        let (timed, own) = match own {
            Phases::One(set) => (false, set),
            Phases::Timed(phases) => (true, keep(phases)),
        };
        Self {
            own,
            meta: cohort << 2 | u32::from(timed) << 1 | u32::from(active),
        }
    }

    /// Whether the user is active.
    #[inline]
    pub(crate) fn active(self) -> bool {
        self.meta & 1 != 0
    }

    /// Whether `own` indexes the tenant's timed phases, not its role sets.
    #[inline]
    pub(crate) fn timed(self) -> bool {
        self.meta & 2 != 0
    }

    /// The user's own role set, or (when [`timed`](Self::timed)) phases.
    #[inline]
    pub(crate) fn own(self) -> u32 {
        self.own
    }

    /// The user's cohort: the groups that list it.
    #[inline]
    pub(crate) fn cohort(self) -> u32 {
        self.meta >> 2
    }
}

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

/// The phases of the users an expiring binding reaches, in the order
/// compiles and patches added them (a patch never removes one: see
/// `TenantSnapshot::at_full`).
pub(crate) type Timed = imbl::Vector<Arc<[(i64, u32)]>>;

/// The distinct role sets of a tenant's users, `words` each, hash-consed.
///
/// Copying is O(1): the arena is shared until a set is added (then copied
/// once: the number of distinct sets is small), the table is persistent.
/// A patch never removes a set, so the arena may hold sets nothing uses
/// any more; the compiler bounds that (see `TenantSnapshot::sets_at_full`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleSets {
    words: usize,
    arena: Arc<Vec<u64>>,
    /// A set's hash → its id. Two sets of one hash keep the later (the
    /// earlier is then added again if met again: a wasted set, never a
    /// wrong one), so the table holds no copy of the sets.
    ids: PMap<u64, u32>,
}

/// The hash [`RoleSets`] finds a set by.
fn set_hash(set: &[u64]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5e75).hash_one(set)
}

/// Hands out ids for role sets.
pub(crate) trait Intern {
    fn words(&self) -> usize;
    /// The id of `set`, adding it if it is new.
    fn intern(&mut self, set: Vec<u64>) -> u32;
}

impl RoleSets {
    /// How many sets.
    pub(crate) fn len(&self) -> usize {
        self.arena.len() / self.words.max(1)
    }

    /// Set `id`'s bits; empty for an unknown id.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> &[u64] {
        let start = id as usize * self.words;
        self.arena.get(start..start + self.words).unwrap_or(&[])
    }
}

impl Intern for RoleSets {
    fn words(&self) -> usize {
        self.words
    }

    fn intern(&mut self, set: Vec<u64>) -> u32 {
        let hash = set_hash(&set);
        if let Some(&id) = self.ids.get(&hash)
            && self.get(id) == set.as_slice()
        {
            return id;
        }
        let id = self.len() as u32;
        Arc::make_mut(&mut self.arena).extend_from_slice(&set);
        self.ids.insert(hash, id);
        id
    }
}

/// Role sets for a full compile: a plain hash table, made persistent once.
pub(crate) struct RoleSetsBuilder {
    words: usize,
    arena: Vec<u64>,
    ids: FastMap<u64, u32>,
}

impl RoleSetsBuilder {
    pub(crate) fn new(words: usize) -> Self {
        Self {
            words,
            arena: Vec::new(),
            ids: FastMap::default(),
        }
    }

    pub(crate) fn finish(mut self) -> RoleSets {
        self.arena.shrink_to_fit();
        RoleSets {
            words: self.words,
            arena: Arc::new(self.arena),
            ids: self.ids.into_iter().collect(),
        }
    }
}

impl Intern for RoleSetsBuilder {
    fn words(&self) -> usize {
        self.words
    }

    fn intern(&mut self, set: Vec<u64>) -> u32 {
        let hash = set_hash(&set);
        if let Some(&id) = self.ids.get(&hash) {
            let start = id as usize * self.words;
            if self.arena.get(start..start + self.words) == Some(set.as_slice()) {
                return id;
            }
        }
        let id = (self.arena.len() / self.words.max(1)) as u32;
        self.arena.extend_from_slice(&set);
        self.ids.insert(hash, id);
        id
    }
}

/// Where a [`Resolver`] reads bindings and memberships.
pub(crate) trait Index {
    /// The groups that list `subject` directly, sorted.
    fn parents(&self, subject: &Subject) -> Option<&Arc<[GroupName]>>;
    /// Calls `f` with each binding of `subject`, in role-name order.
    fn bindings(&self, subject: &Subject, f: &mut dyn FnMut(&Binding));
}

/// The index of a full compile: every subject's bindings and groups,
/// gathered in one pass each.
pub(crate) struct Built<'a> {
    flat: Vec<&'a Binding>,
    ranges: FastMap<&'a Subject, (usize, usize)>,
    parents: FastMap<Subject, Arc<[GroupName]>>,
}

impl<'a> Built<'a> {
    pub(crate) fn new(tenant: &'a Tenant) -> Self {
        // The bindings are ordered by (subject, role): one run per subject.
        let flat: Vec<&Binding> = tenant.bindings.values().collect();
        let mut ranges: FastMap<&Subject, (usize, usize)> = FastMap::default();
        let mut start = 0;
        for (i, b) in flat.iter().enumerate() {
            let next = flat.get(i + 1).map(|n| &n.subject);
            if next != Some(&b.subject) {
                ranges.insert(&b.subject, (start, i + 1));
                start = i + 1;
            }
        }
        // Groups in name order, so each member's list comes out sorted.
        let mut pairs: Vec<(&Subject, &GroupName)> = Vec::new();
        for group in tenant.groups.values() {
            pairs.extend(group.members.iter().map(|m| (m, &group.name)));
        }
        pairs.sort_by(|a, b| a.0.cmp(b.0)); // stable: groups stay in order
        let mut parents: FastMap<Subject, Arc<[GroupName]>> = FastMap::default();
        for run in pairs.chunk_by(|a, b| a.0 == b.0) {
            if let Some((member, _)) = run.first() {
                let groups: Arc<[GroupName]> = run.iter().map(|(_, g)| (*g).clone()).collect();
                parents.insert((*member).clone(), groups);
            }
        }
        Self {
            flat,
            ranges,
            parents,
        }
    }

    /// The persistent parents index: the groups' entries only.
    pub(crate) fn parents_index(&self) -> Parents {
        self.parents
            .iter()
            .filter(|(s, _)| matches!(s, Subject::Group(_)))
            .map(|(s, g)| (s.clone(), Arc::clone(g)))
            .collect()
    }
}

impl Index for Built<'_> {
    fn parents(&self, subject: &Subject) -> Option<&Arc<[GroupName]>> {
        self.parents.get(subject)
    }

    fn bindings(&self, subject: &Subject, f: &mut dyn FnMut(&Binding)) {
        if let Some(&(start, end)) = self.ranges.get(subject) {
            for b in self.flat.get(start..end).unwrap_or(&[]) {
                f(b);
            }
        }
    }
}

/// The index of a patch: the tenant's own bindings (ranges of them) and
/// the patched groups' parents index.
pub(crate) struct Live<'a> {
    pub(crate) tenant: &'a Tenant,
    pub(crate) parents: &'a Parents,
}

impl Index for Live<'_> {
    fn parents(&self, subject: &Subject) -> Option<&Arc<[GroupName]>> {
        self.parents.get(subject)
    }

    fn bindings(&self, subject: &Subject, f: &mut dyn FnMut(&Binding)) {
        for b in &self.tenant.bindings_of(subject) {
            f(b);
        }
    }
}

/// Computes users' phases from an [`Index`].
pub(crate) struct Resolver<'a, I: Index> {
    role_index: FastMap<&'a RoleName, u32>,
    users_role: Option<u32>,
    index: &'a I,
    /// Group → the roles its members get from it and every group above it.
    memo: FastMap<GroupName, Arc<[(u32, i64)]>>,
}

impl<'a, I: Index> Resolver<'a, I> {
    pub(crate) fn new(roles: &'a [RoleName], index: &'a I) -> Self {
        let role_index: FastMap<&RoleName, u32> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| (r, i as u32))
            .collect();
        let users_role = role_index.get(&RoleName::users()).copied();
        Self {
            role_index,
            users_role,
            index,
            memo: FastMap::default(),
        }
    }

    /// The phases of `user`'s own roles: its bindings, and `Users`.
    pub(crate) fn own(&self, user: &UserId, sets: &mut impl Intern) -> Phases {
        // Role → latest expiry over every path that brings it (i64::MAX: never).
        let mut reach: Vec<(u32, i64)> = Vec::new();
        self.add_bindings(&mut reach, &Subject::User(user.clone()));
        if let Some(r) = self.users_role {
            merge(&mut reach, r, i64::MAX);
        }
        phases_of(&reach, sets)
    }

    /// The phases of the roles `groups` and every group above them bring
    /// to the users they list.
    pub(crate) fn cohort(&mut self, groups: &[GroupName], sets: &mut impl Intern) -> Phases {
        let mut reach: Vec<(u32, i64)> = Vec::new();
        for group in groups {
            for &(r, until) in self.group_roles(group).iter() {
                merge(&mut reach, r, until);
            }
        }
        phases_of(&reach, sets)
    }

    fn add_bindings(&self, reach: &mut Vec<(u32, i64)>, subject: &Subject) {
        self.index.bindings(subject, &mut |b| {
            if let Some(&r) = self.role_index.get(&b.role) {
                merge(reach, r, b.expires.map_or(i64::MAX, |t| t.unix()));
            }
        });
    }

    /// The roles a group's members get from it and every group containing
    /// it, transitively: the bindings of every group reachable upwards.
    /// Cycles are refused on write; the walk stops at a group it has seen,
    /// so the answer does not depend on the order groups are resolved in.
    fn group_roles(&mut self, group: &GroupName) -> Arc<[(u32, i64)]> {
        if let Some(found) = self.memo.get(group) {
            return Arc::clone(found);
        }
        let mut reach = Vec::new();
        let mut seen: HashSet<GroupName> = HashSet::from([group.clone()]);
        let mut queue: Vec<GroupName> = vec![group.clone()];
        while let Some(g) = queue.pop() {
            let subject = Subject::Group(g);
            self.add_bindings(&mut reach, &subject);
            for parent in self
                .index
                .parents(&subject)
                .into_iter()
                .flat_map(|p| p.iter())
            {
                if seen.insert(parent.clone()) {
                    queue.push(parent.clone());
                }
            }
        }
        let reach: Arc<[(u32, i64)]> = Arc::from(reach);
        self.memo.insert(group.clone(), Arc::clone(&reach));
        reach
    }
}

/// The groups that list each of `users` directly, in name order (users no
/// group lists are left out): one look into every group for a few users,
/// one pass over every membership for many.
pub(crate) fn user_groups<'a>(
    tenant: &Tenant,
    users: impl IntoIterator<Item = &'a UserId>,
) -> FastMap<Subject, Arc<[GroupName]>> {
    let memberships: usize = tenant.groups.values().map(|g| g.members.len()).sum();
    let wanted: HashSet<Subject, foldhash::fast::RandomState> = users
        .into_iter()
        .map(|u| Subject::User(u.clone()))
        .collect();
    let mut lists: FastMap<Subject, Vec<GroupName>> = FastMap::default();
    // A set lookup costs about as much as a few steps of a walk.
    if wanted.len().saturating_mul(tenant.groups.len()) < memberships / 4 {
        for subject in &wanted {
            let groups = tenant.groups_listing(subject);
            if !groups.is_empty() {
                lists.insert(subject.clone(), groups);
            }
        }
    } else {
        for group in tenant.groups.values() {
            for member in group.members.iter().filter(|m| wanted.contains(*m)) {
                lists
                    .entry(member.clone())
                    .or_default()
                    .push(group.name.clone());
            }
        }
    }
    lists
        .into_iter()
        .map(|(s, groups)| (s, Arc::from(groups)))
        .collect()
}

fn merge(reach: &mut Vec<(u32, i64)>, role: u32, until: i64) {
    match reach.iter_mut().find(|(r, _)| *r == role) {
        Some((_, u)) => *u = (*u).max(until),
        None => reach.push((role, until)),
    }
}

/// Splits roles-with-expiry into phases of constant role set.
fn phases_of(reach: &[(u32, i64)], sets: &mut impl Intern) -> Phases {
    let words = sets.words();
    let set_until = |t: i64| {
        // Roles in force for every instant before `t` since the previous boundary:
        // those whose expiry is at or after `t`.
        let mut set = vec![0u64; words];
        for &(r, until) in reach {
            if until >= t {
                bits::set(&mut set, r as usize);
            }
        }
        set
    };
    let mut bounds: Vec<i64> = reach
        .iter()
        .map(|&(_, u)| u)
        .filter(|&u| u != i64::MAX)
        .collect();
    if bounds.is_empty() {
        return Phases::One(sets.intern(set_until(i64::MAX)));
    }
    bounds.sort_unstable();
    bounds.dedup();
    bounds.push(i64::MAX);
    Phases::Timed(
        bounds
            .into_iter()
            .map(|b| (b, sets.intern(set_until(b))))
            .collect(),
    )
}

/// `group` and every group it lists in `tenant`, transitively, into `out`.
pub(crate) fn groups_under(tenant: &Tenant, group: &GroupName, out: &mut HashSet<GroupName>) {
    let mut seen: HashSet<&GroupName> = HashSet::new();
    let mut stack = vec![group];
    while let Some(g) = stack.pop() {
        if !seen.insert(g) {
            continue;
        }
        stack.extend(tenant.subgroups(g));
    }
    out.extend(seen.into_iter().cloned());
}
