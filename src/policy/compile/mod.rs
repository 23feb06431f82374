//! Compiles a [`State`] into an immutable [`Snapshot`], and patches a
//! snapshot after a mutation.
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
//!
//! - a user's entry is its own role set's id (or, for the few users an
//!   expiring binding of their own reaches, the index of its phases) and
//!   its *cohort*: the groups that list it, whose roles users listed by the
//!   same groups share.
//!
//! A compiled tenant is two halves that change for different reasons: the
//! permission side ([`grants`], rebuilt when a grant, the catalog or the
//! bridge grants change) and the user side ([`users`]: persistent maps and
//! vectors, patched when a binding, a membership or a user changes: a
//! user's entry when its own bindings or groups change, the cohorts that
//! name a group under a group whose bindings or parents change). [`recompile`] redoes only what a mutation's
//! [`Touched`] names; [`compile`] builds everything and is the reference the
//! incremental path is tested against.

mod chunked;
mod cohorts;
mod grants;
mod parallel;
mod patch;
mod sharded;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::bits;
use super::catalog_index::CatalogIndex;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::tenant::{Binding, Tenant, UserStatus};
use crate::model::{RoleName, State, TenantId, Timestamp, Touched};
use users::{Index, Resolver};

pub(crate) use cohorts::Cohorts;
pub(crate) use grants::GrantIndex;
pub(crate) use users::{Parents, RoleSets, Timed, UserEntry};

pub(crate) type FastMap<K, V> = HashMap<K, V, RandomState>;
/// A persistent hash map: O(1) to copy, O(shard) to change.
pub(crate) type PMap<K, V> = sharded::Sharded<K, V>;

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

/// One tenant, compiled.
#[derive(Debug, Clone)]
pub struct TenantSnapshot {
    pub(crate) tenant: Arc<Tenant>,
    /// Words per role bitset.
    pub(crate) words: usize,
    /// Role index → name, sorted by name.
    pub(crate) roles: Arc<[RoleName]>,
    pub(crate) users: PMap<UserId, UserEntry>,
    /// The phases of the users an expiring binding of their own reaches.
    pub(crate) timed: Timed,
    /// The groups that list users, one entry per distinct list, with the
    /// roles they bring.
    pub(crate) cohorts: Cohorts,
    /// The distinct role sets the users' entries and phases point into.
    pub(crate) sets: RoleSets,
    /// How many timed phases, sets and cohorts the last full compile made.
    /// A patch never drops any, so once they outgrow these by far the
    /// tenant is compiled afresh.
    pub(crate) at_full: (usize, usize, usize),
    /// The permission side, shared until a grant changes.
    pub(crate) grants: Arc<GrantIndex>,
    /// Which groups list each group, for patches, explanations and the
    /// admin rules (a subject's bindings are a range of the tenant's own
    /// map; the groups that list a user are read from the model).
    pub(crate) parents: Parents,
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

    /// How many distinct role sets its users share (after a patch, possibly
    /// a few no user holds any more).
    pub fn role_set_count(&self) -> usize {
        self.sets.len()
    }

    /// The roles in force for `user` at `now`, from the compiled role sets,
    /// sorted; `None` if the tenant has no such user.
    pub fn compiled_roles(&self, user: &str, now: Timestamp) -> Option<Vec<RoleName>> {
        let entry = self.users.get(user)?;
        let set = self.user_roles(*entry, now.unix()).to_vec();
        Some(
            bits::ones(&set)
                .filter_map(|i| self.roles.get(i).cloned())
                .collect(),
        )
    }

    /// The compiled entry and the id of the member known by `alias` (read
    /// from the tenant model's alias index, which every compiled form
    /// points at the current model of, so no patch has to follow it).
    #[inline]
    pub(crate) fn by_alias(&self, alias: &str) -> Option<(&UserEntry, &str)> {
        let id = self.tenant.alias_owner(alias)?;
        Some((self.users.get(id)?, id.as_str()))
    }

    /// The roles of a user at `now`: its own role set and its cohort's
    /// (either empty if its phases or cohort are unknown, which cannot
    /// happen: a patch never drops any).
    #[inline]
    pub(crate) fn user_roles(&self, user: UserEntry, now: i64) -> bits::Union<'_> {
        let own = if user.timed() {
            self.timed
                .get(user.own() as usize)
                .map_or(&[][..], |p| self.sets.get(users::set_at(p, now)))
        } else {
            self.sets.get(user.own())
        };
        let groups = self
            .cohorts
            .set_at(user.cohort(), now)
            .map_or(&[][..], |set| self.sets.get(set));
        bits::Union(own, groups)
    }

    /// The parents and bindings of `user` and of every group above it: all
    /// of the indexes the model's `effective_roles` reads for that user.
    #[allow(
        clippy::type_complexity,
        reason = "the shape the model's effective_roles takes"
    )]
    pub(crate) fn indexes_for(
        &self,
        user: &UserId,
    ) -> (
        HashMap<Subject, Vec<GroupName>>,
        HashMap<Subject, Vec<Binding>>,
    ) {
        let mut parents = HashMap::new();
        let mut bindings = HashMap::new();
        let mut queue = vec![Subject::User(user.clone())];
        while let Some(subject) = queue.pop() {
            if parents.contains_key(&subject) || bindings.contains_key(&subject) {
                continue;
            }
            let own = self.tenant.bindings_of(&subject);
            if !own.is_empty() {
                bindings.insert(subject.clone(), own);
            }
            let groups = match &subject {
                Subject::User(_) => self.tenant.groups_listing(&subject),
                Subject::Group(_) => self
                    .parents
                    .get(&subject)
                    .map(|g| g.to_vec())
                    .unwrap_or_default(),
            };
            if !groups.is_empty() {
                queue.extend(groups.iter().cloned().map(Subject::Group));
                parents.insert(subject, groups);
            }
        }
        (parents, bindings)
    }
}

/// Compiles every tenant of `state`, each on its own, on every core.
pub fn compile(state: Arc<State>) -> Snapshot {
    let catalog = Arc::new(CatalogIndex::build(&state.catalog));
    // Largest first, so that no core is left with a big tenant at the end.
    let mut order: Vec<(&TenantId, &Arc<Tenant>)> = state.tenants.iter().collect();
    order.sort_by_key(|(_, t)| std::cmp::Reverse(t.users.len() + t.bindings.len()));
    let compiled = parallel::map(&order, |(_, tenant)| {
        Arc::new(compile_tenant(&state, &catalog, Arc::clone(tenant)))
    });
    let tenants: FastMap<TenantId, Arc<TenantSnapshot>> = order
        .iter()
        .map(|(id, _)| (*id).clone())
        .zip(compiled)
        .collect();
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
    let words = bits::words_for(roles.len());
    let grants = Arc::new(GrantIndex::build(state, catalog, &tenant, &roles, words));

    let index = users::Built::new(&tenant);
    let mut sets = users::RoleSetsBuilder::new(words);
    let mut resolver = Resolver::new(&roles, &index);
    let mut timed: Vec<Arc<[(i64, u32)]>> = Vec::new();
    let mut cohorts = Cohorts::default();
    cohorts.intern(&[], |g| resolver.cohort(g, &mut sets));
    let mut entries: Vec<(UserId, UserEntry)> = Vec::with_capacity(tenant.users.len());
    for (id, user) in &tenant.users {
        let subject = Subject::User(id.clone());
        let groups: &[GroupName] = index.parents(&subject).map_or(&[], |g| g);
        let cohort = cohorts.intern(groups, |g| resolver.cohort(g, &mut sets));
        let own = resolver.own(&subject, &mut sets);
        let entry = UserEntry::new(user.status == UserStatus::Active, own, cohort, |p| {
            timed.push(p);
            (timed.len() - 1) as u32
        });
        entries.push((id.clone(), entry));
    }
    drop(resolver);
    let sets = sets.finish();
    cohorts.shrink_to_fit();

    TenantSnapshot {
        words,
        roles,
        users: entries.into_iter().collect(),
        at_full: (timed.len(), sets.len(), cohorts.weight()),
        timed: timed.into_iter().collect(),
        cohorts,
        sets,
        grants,
        parents: index.parents_index(),
        tenant,
    }
}

/// Compiles `state` reusing what `prev` already compiled: the tenants
/// `touched` does not name are kept as they are; those it names are patched
/// (only the users under the subjects it names are computed again, and the
/// permission side only if a grant changed) or, when their roles changed,
/// compiled afresh. A catalog or bridge-grant change rebuilds the catalog
/// index and every tenant's permission side, and keeps every user side.
pub fn recompile(prev: &Snapshot, state: Arc<State>, touched: &Touched) -> Snapshot {
    let catalog = if touched.all {
        Arc::new(CatalogIndex::build(&state.catalog))
    } else {
        Arc::clone(&prev.catalog)
    };
    let mut tenants = FastMap::default();
    tenants.reserve(state.tenants.len());
    let untouched = crate::model::TenantTouch::default();
    for (id, tenant) in &state.tenants {
        let touch = touched.tenants.get(id);
        let compiled = match prev.tenants.get(id) {
            None => Arc::new(compile_tenant(&state, &catalog, Arc::clone(tenant))),
            Some(before) if touch.is_none() && !touched.all => {
                if Arc::ptr_eq(&before.tenant, tenant) {
                    Arc::clone(before)
                } else {
                    // The tenant changed but the mutation did not say so:
                    // do not trust the old compiled form.
                    Arc::new(compile_tenant(&state, &catalog, Arc::clone(tenant)))
                }
            }
            Some(before) => Arc::new(patch::patch_tenant(
                &state,
                &catalog,
                before,
                Arc::clone(tenant),
                touch.unwrap_or(&untouched),
                touched.all,
            )),
        };
        tenants.insert(id.clone(), compiled);
    }
    Snapshot {
        revision: state.revision,
        state,
        catalog,
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
            Some(t) => {
                let (parents, bindings) = t.indexes_for(user);
                crate::model::rules::view_of(&self.state, &t.tenant, user, now, &parents, &bindings)
            }
            None => crate::model::rules::ActorView::default(),
        }
    }
}

#[cfg(test)]
mod tests;
