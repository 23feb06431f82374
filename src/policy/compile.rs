//! Compiles a [`State`] into an immutable [`Snapshot`].
//!
//! Per tenant:
//! - roles are numbered, and every user's effective role set becomes a bitset,
//!   hash-consed so users with the same roles share one ("a million users
//!   cost a handful of matchers");
//! - binding expiry becomes *phases*: a user's role set for each interval
//!   between the expiry times that touch it, so a check never recomputes;
//! - every permission written literally in a grant is interned with the
//!   allow and deny role bitsets of every grant that matches it, wildcards
//!   included, so an exact check is one probe and two bitset ANDs;
//! - wildcard grants (`prefix:*`) go into a segment trie for permissions
//!   that are not interned; `{subject}` grants stay as patterns resolved at
//!   check time.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::bits;
use super::catalog_index::CatalogIndex;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::permission::{Effect, GrantPattern, PatternSegment};
use crate::model::tenant::{Binding, Tenant, UserStatus};
use crate::model::{RoleName, State, TenantId};

pub(crate) type FastMap<K, V> = HashMap<K, V, RandomState>;

/// An immutable, compiled view of the whole state at one revision.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) revision: u64,
    pub(crate) state: Arc<State>,
    pub(crate) catalog: Arc<CatalogIndex>,
    pub(crate) tenants: FastMap<TenantId, Arc<TenantSnapshot>>,
}

impl Snapshot {
    /// The revision this snapshot was compiled at.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The state it was compiled from.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The compiled tenant with this id.
    pub fn tenant(&self, id: &str) -> Option<&Arc<TenantSnapshot>> {
        self.tenants.get(id)
    }

    /// How many distinct role sets (matchers) the tenants hold in all.
    pub fn matcher_count(&self) -> usize {
        self.tenants.values().map(|t| t.role_set_count()).sum()
    }
}

/// When a user's role set changes, and to which.
#[derive(Debug, Clone)]
pub(crate) enum Phases {
    /// No expiring binding: one role set forever.
    One(u32),
    /// `(until, set)`, sorted by `until`; the set applies while `now < until`,
    /// and the last `until` is `i64::MAX`.
    Timed(Box<[(i64, u32)]>),
}

#[derive(Debug, Clone)]
pub(crate) struct UserEntry {
    pub(crate) active: bool,
    pub(crate) phases: Phases,
}

impl UserEntry {
    /// The role set in force at `now` (seconds since the epoch).
    #[inline]
    pub(crate) fn set_at(&self, now: i64) -> u32 {
        match &self.phases {
            Phases::One(set) => *set,
            Phases::Timed(phases) => phases
                .iter()
                .find(|(until, _)| now < *until)
                .or(phases.last())
                .map_or(0, |(_, set)| *set),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct TrieNode {
    pub(crate) children: FastMap<Box<str>, u32>,
    /// Offset into `star_bits` of this node's `prefix:*` allow and deny sets.
    pub(crate) star: Option<u32>,
}

/// A grant with a `{subject}` segment, kept as a pattern.
#[derive(Debug)]
pub(crate) struct SubjectGrant {
    pub(crate) pattern: GrantPattern,
    pub(crate) effect: Effect,
    pub(crate) role: usize,
}

/// One tenant, compiled.
#[derive(Debug)]
pub struct TenantSnapshot {
    pub(crate) tenant: Arc<Tenant>,
    /// Words per role bitset.
    pub(crate) words: usize,
    /// Role index → name, sorted by name.
    pub(crate) roles: Arc<[RoleName]>,
    pub(crate) users: FastMap<UserId, UserEntry>,
    /// Arena of role sets, `words` each.
    pub(crate) role_sets: Vec<u64>,
    /// Interned exact permissions → index into `perm_bits`/`perm_covered`.
    pub(crate) perms: FastMap<Box<str>, u32>,
    /// Arena: for each interned permission, `words` allow then `words` deny.
    pub(crate) perm_bits: Vec<u64>,
    /// For each interned permission, the covering catalog entry.
    pub(crate) perm_covered: Vec<Option<u32>>,
    pub(crate) trie: Vec<TrieNode>,
    /// Arena: for each star node, `words` allow then `words` deny.
    pub(crate) star_bits: Vec<u64>,
    pub(crate) subject_grants: Vec<SubjectGrant>,
    /// Model indexes for explanations and listings.
    pub(crate) parents: HashMap<Subject, Vec<GroupName>>,
    pub(crate) bindings: HashMap<Subject, Vec<Binding>>,
}

impl TenantSnapshot {
    /// The tenant model this was compiled from.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The tenant's roles, sorted by name; a role's position is its bit.
    pub fn roles(&self) -> &[RoleName] {
        &self.roles
    }

    /// How many distinct role sets its users share.
    pub fn role_set_count(&self) -> usize {
        self.role_sets.len() / self.words
    }

    pub(crate) fn role_set(&self, set: u32) -> &[u64] {
        let start = set as usize * self.words;
        self.role_sets.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn perm_allow(&self, perm: u32) -> &[u64] {
        let start = perm as usize * 2 * self.words;
        self.perm_bits.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn perm_deny(&self, perm: u32) -> &[u64] {
        let start = (perm as usize * 2 + 1) * self.words;
        self.perm_bits.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn star_allow(&self, offset: u32) -> &[u64] {
        let start = offset as usize;
        self.star_bits.get(start..start + self.words).unwrap_or(&[])
    }

    pub(crate) fn star_deny(&self, offset: u32) -> &[u64] {
        let start = offset as usize + self.words;
        self.star_bits.get(start..start + self.words).unwrap_or(&[])
    }
}

/// Compiles every tenant of `state`.
pub fn compile(state: Arc<State>) -> Snapshot {
    let catalog = Arc::new(CatalogIndex::build(&state.catalog));
    let mut tenants = FastMap::default();
    for (id, tenant) in &state.tenants {
        tenants.insert(
            id.clone(),
            Arc::new(compile_tenant(&state, &catalog, Arc::clone(tenant))),
        );
    }
    Snapshot {
        revision: state.revision,
        state,
        catalog,
        tenants,
    }
}

/// Compiles one tenant against the state's catalog and bridge grants.
pub fn compile_tenant(
    state: &State,
    catalog: &CatalogIndex,
    tenant: Arc<Tenant>,
) -> TenantSnapshot {
    let roles: Arc<[RoleName]> = tenant.roles.keys().cloned().collect();
    let role_index: HashMap<&RoleName, usize> =
        roles.iter().enumerate().map(|(i, r)| (r, i)).collect();
    let words = bits::words_for(roles.len());
    let users_role = role_index.get(&RoleName::users()).copied();

    // --- grants: interned exact permissions, the wildcard trie, {subject} patterns.
    let mut trie = vec![TrieNode::default()];
    let mut star_bits: Vec<u64> = Vec::new();
    let mut exact: Vec<(Box<str>, Effect, usize)> = Vec::new();
    let mut subject_grants = Vec::new();
    for (ri, role_name) in roles.iter().enumerate() {
        let Some(role) = tenant.roles.get(role_name) else {
            continue;
        };
        for grant in state.grants_of(role) {
            let pattern = &grant.pattern;
            if pattern.has_subject() {
                subject_grants.push(SubjectGrant {
                    pattern: pattern.clone(),
                    effect: grant.effect,
                    role: ri,
                });
            } else if let Some(path) = pattern.as_exact() {
                exact.push((Box::from(path), grant.effect, ri));
            } else {
                // `prefix:*`: mark the node the prefix leads to.
                let mut at = 0usize;
                for segment in pattern.segments() {
                    let PatternSegment::Literal(lit) = segment else {
                        break;
                    };
                    at = match trie[at].children.get(&**lit) {
                        Some(&n) => n as usize,
                        None => {
                            let n = trie.len();
                            trie.push(TrieNode::default());
                            trie[at].children.insert(Box::from(&**lit), n as u32);
                            n
                        }
                    };
                }
                let offset = match trie[at].star {
                    Some(o) => o as usize,
                    None => {
                        let o = star_bits.len();
                        star_bits.resize(o + 2 * words, 0);
                        trie[at].star = Some(o as u32);
                        o
                    }
                };
                let half = if grant.effect == Effect::Allow {
                    0
                } else {
                    words
                };
                bits::set(&mut star_bits[offset + half..offset + half + words], ri);
            }
        }
    }

    let mut perms: FastMap<Box<str>, u32> = FastMap::default();
    let mut perm_bits: Vec<u64> = Vec::new();
    let mut perm_covered = Vec::new();
    for (path, effect, ri) in exact {
        let id = match perms.get(&path) {
            Some(&id) => id as usize,
            None => {
                let id = perm_covered.len();
                perm_covered.push(catalog.covering(&path).map(|i| i as u32));
                perm_bits.resize((id + 1) * 2 * words, 0);
                // Fold in every wildcard grant that matches this path.
                let mut at = 0usize;
                for segment in path.split(':') {
                    if let Some(o) = trie[at].star {
                        let o = o as usize;
                        let (allow, deny) = (o, o + words);
                        let base = id * 2 * words;
                        for w in 0..words {
                            perm_bits[base + w] |= star_bits[allow + w];
                            perm_bits[base + words + w] |= star_bits[deny + w];
                        }
                    }
                    match trie[at].children.get(segment) {
                        Some(&n) => at = n as usize,
                        None => break,
                    }
                }
                perms.insert(path, id as u32);
                id
            }
        };
        let half = if effect == Effect::Allow { 0 } else { words };
        let base = id * 2 * words + half;
        bits::set(&mut perm_bits[base..base + words], ri);
    }

    // --- users: effective role sets with expiry phases, hash-consed.
    let parents = tenant.parents();
    let bindings = tenant.bindings_by_subject();
    let mut inherited: HashMap<GroupName, Vec<(usize, i64)>> = HashMap::new();
    let mut role_sets: Vec<u64> = Vec::new();
    let mut set_ids: HashMap<Box<[u64]>, u32> = HashMap::new();
    let mut intern = |set: Vec<u64>| -> u32 {
        if let Some(&id) = set_ids.get(set.as_slice()) {
            return id;
        }
        let id = (role_sets.len() / words) as u32;
        role_sets.extend_from_slice(&set);
        set_ids.insert(set.into_boxed_slice(), id);
        id
    };
    let mut users = FastMap::default();
    users.reserve(tenant.users.len());
    for (id, user) in &tenant.users {
        // Role → latest expiry over every path that brings it (i64::MAX: never).
        let mut reach: Vec<(usize, i64)> = Vec::new();
        if let Some(r) = users_role {
            reach.push((r, i64::MAX));
        }
        let subject = Subject::User(id.clone());
        add_bindings(&mut reach, bindings.get(&subject), &role_index);
        for group in parents.get(&subject).into_iter().flatten() {
            for &(r, until) in group_roles(group, &parents, &bindings, &role_index, &mut inherited)
            {
                merge(&mut reach, r, until);
            }
        }
        let phases = phases_of(&reach, words, &mut intern);
        users.insert(
            id.clone(),
            UserEntry {
                active: user.status == UserStatus::Active,
                phases,
            },
        );
    }

    TenantSnapshot {
        tenant,
        words,
        roles,
        users,
        role_sets,
        perms,
        perm_bits,
        perm_covered,
        trie,
        star_bits,
        subject_grants,
        parents,
        bindings,
    }
}

fn merge(reach: &mut Vec<(usize, i64)>, role: usize, until: i64) {
    match reach.iter_mut().find(|(r, _)| *r == role) {
        Some((_, u)) => *u = (*u).max(until),
        None => reach.push((role, until)),
    }
}

fn add_bindings(
    reach: &mut Vec<(usize, i64)>,
    bindings: Option<&Vec<Binding>>,
    index: &HashMap<&RoleName, usize>,
) {
    for b in bindings.into_iter().flatten() {
        if let Some(&r) = index.get(&b.role) {
            merge(reach, r, b.expires.map_or(i64::MAX, |t| t.unix()));
        }
    }
}

/// The roles a group's members get from it and every group containing it,
/// memoised. Cycles cannot occur (refused on write); a guard entry stops
/// runaway recursion anyway.
fn group_roles<'a>(
    group: &GroupName,
    parents: &HashMap<Subject, Vec<GroupName>>,
    bindings: &HashMap<Subject, Vec<Binding>>,
    index: &HashMap<&RoleName, usize>,
    memo: &'a mut HashMap<GroupName, Vec<(usize, i64)>>,
) -> &'a [(usize, i64)] {
    if !memo.contains_key(group) {
        memo.insert(group.clone(), Vec::new()); // guard
        let subject = Subject::Group(group.clone());
        let mut reach = Vec::new();
        add_bindings(&mut reach, bindings.get(&subject), index);
        for parent in parents.get(&subject).into_iter().flatten() {
            let up = group_roles(parent, parents, bindings, index, memo).to_vec();
            for (r, until) in up {
                merge(&mut reach, r, until);
            }
        }
        memo.insert(group.clone(), reach);
    }
    memo.get(group).map(Vec::as_slice).unwrap_or(&[])
}

/// Splits a user's roles-with-expiry into phases of constant role set.
fn phases_of(
    reach: &[(usize, i64)],
    words: usize,
    intern: &mut impl FnMut(Vec<u64>) -> u32,
) -> Phases {
    let set_until = |t: i64| {
        // Roles in force for every instant before `t` since the previous boundary:
        // those whose expiry is at or after `t`.
        let mut set = vec![0u64; words];
        for &(r, until) in reach {
            if until >= t {
                bits::set(&mut set, r);
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
        return Phases::One(intern(set_until(i64::MAX)));
    }
    bounds.sort_unstable();
    bounds.dedup();
    bounds.push(i64::MAX);
    Phases::Timed(
        bounds
            .into_iter()
            .map(|b| (b, intern(set_until(b))))
            .collect(),
    )
}

/// Compiles `state` reusing what `prev` already compiled: only the tenants
/// `touched` names are compiled again, unless the change touched everything
/// (the catalog or the bridge grants).
pub fn recompile(prev: &Snapshot, state: Arc<State>, touched: &crate::model::Touched) -> Snapshot {
    if touched.all {
        return compile(state);
    }
    let mut tenants = prev.tenants.clone();
    for id in &touched.tenants {
        match state.tenants.get(id) {
            Some(t) => {
                tenants.insert(
                    id.clone(),
                    Arc::new(compile_tenant(&state, &prev.catalog, Arc::clone(t))),
                );
            }
            None => {
                tenants.remove(id);
            }
        }
    }
    Snapshot {
        revision: state.revision,
        state,
        catalog: Arc::clone(&prev.catalog),
        tenants,
    }
}

/// What an actor holds, from the compiled snapshot's precomputed indexes.
impl crate::model::rules::Authority for Snapshot {
    fn view(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: crate::model::Timestamp,
    ) -> crate::model::rules::ActorView {
        match self.tenants.get(tenant) {
            Some(t) => crate::model::rules::view_of(
                &self.state,
                &t.tenant,
                user,
                now,
                &t.parents,
                &t.bindings,
            ),
            None => crate::model::rules::ActorView::default(),
        }
    }
}
