//! The user side of a compiled tenant.
//!
//! A user's roles come from `Users`, its own bindings and the groups that
//! list it (and every group above those). Users with the same own bindings
//! and the same direct groups (the same [`ClassKey`]) have the same roles at
//! every instant, so they share a [`Class`], whose phases are computed once;
//! a user's entry is just its class and whether it is active. A change to a
//! group (its bindings, or the groups above it) recomputes the classes below
//! it, and no user entry; a change to one user's bindings or memberships
//! moves that one user to another class.
//!
//! Everything is a persistent map or vector, or sits behind an `Arc`, so a
//! compiled tenant is copied in O(1) and patched in place of what changed.

use std::collections::HashSet;
use std::sync::Arc;

use super::{FastMap, PMap, bits};
use crate::model::RoleName;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::tenant::{Binding, Tenant, UserStatus};

/// For each subject, the groups that list it directly, sorted by name.
pub(crate) type Parents = PMap<Subject, Arc<[GroupName]>>;

/// When a class's role set changes, and to which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phases {
    /// No expiring binding: one role set forever.
    One(u32),
    /// `(until, set)`, sorted by `until`; the set applies while `now < until`,
    /// and the last `until` is `i64::MAX`.
    Timed(Arc<[(i64, u32)]>),
}

impl Phases {
    /// The role set in force at `now` (seconds since the epoch).
    #[inline]
    pub(crate) fn set_at(&self, now: i64) -> u32 {
        match self {
            Phases::One(set) => *set,
            Phases::Timed(phases) => phases
                .iter()
                .find(|(until, _)| now < *until)
                .or(phases.last())
                .map_or(u32::MAX, |(_, set)| *set),
        }
    }
}

/// What a user's roles are computed from besides `Users`: its own bindings
/// (role bit, expiry or `i64::MAX`), in bit order, and its direct groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClassKey {
    pub(crate) direct: Arc<[(u32, i64)]>,
    pub(crate) parents: Arc<[GroupName]>,
}

impl ClassKey {
    /// The hash the class table finds a key by.
    pub(crate) fn hash64(&self) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0xc1a55).hash_one(self)
    }
}

/// Users that share a key, and their roles over time.
#[derive(Debug, Clone)]
pub(crate) struct Class {
    pub(crate) key: ClassKey,
    pub(crate) phases: Phases,
}

/// One user, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserEntry {
    pub(crate) active: bool,
    pub(crate) class: u32,
}

/// The distinct role sets of a tenant's classes, `words` each, hash-consed.
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

    pub(crate) fn finish(self) -> RoleSets {
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
        // The bindings map is ordered by (subject, role): one run per subject.
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

    /// The persistent parents index.
    pub(crate) fn parents_index(&self) -> Parents {
        self.parents
            .iter()
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

/// The index of a patch: the tenant's own bindings map (ranges of it) and
/// the patched parents index.
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

/// Computes class keys and classes' phases from an [`Index`].
pub(crate) struct Resolver<'a, I: Index> {
    role_index: FastMap<&'a RoleName, u32>,
    users_role: Option<u32>,
    index: &'a I,
    no_parents: Arc<[GroupName]>,
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
            no_parents: Arc::from(Vec::new()),
            memo: FastMap::default(),
        }
    }

    /// The key of `user`.
    pub(crate) fn key(&self, user: &UserId) -> ClassKey {
        let subject = Subject::User(user.clone());
        let mut direct = Vec::new();
        self.add_bindings(&mut direct, &subject);
        direct.sort_unstable();
        ClassKey {
            direct: Arc::from(direct),
            parents: self
                .index
                .parents(&subject)
                .map_or_else(|| Arc::clone(&self.no_parents), Arc::clone),
        }
    }

    /// The phases of the class `key` names.
    pub(crate) fn phases(&mut self, key: &ClassKey, sets: &mut impl Intern) -> Phases {
        // Role → latest expiry over every path that brings it (i64::MAX: never).
        let mut reach: Vec<(u32, i64)> = key.direct.to_vec();
        if let Some(r) = self.users_role {
            merge(&mut reach, r, i64::MAX);
        }
        for group in key.parents.iter() {
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

/// The entry of a user of `status` in `class`.
pub(crate) fn entry(status: UserStatus, class: u32) -> UserEntry {
    UserEntry {
        active: status == UserStatus::Active,
        class,
    }
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
