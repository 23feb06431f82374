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

    /// The phases of a user's own roles: its bindings, and `Users`.
    pub(crate) fn own(&self, user: &Subject, sets: &mut impl Intern) -> Phases {
        // Role → latest expiry over every path that brings it (i64::MAX: never).
        let mut reach: Vec<(u32, i64)> = Vec::new();
        self.add_bindings(&mut reach, user);
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
