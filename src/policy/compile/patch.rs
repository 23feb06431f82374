//! Patching a compiled tenant after a mutation. Only what the mutation
//! names is computed again: the entries of the users whose own bindings,
//! groups or status changed, and the cohorts that name a group under a
//! group whose bindings or enclosing groups changed. Everything else is
//! shared with the previous snapshot.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::users::{self, Live, Resolver, UserEntry};
use super::{GrantIndex, TenantSnapshot, compile_tenant};
use crate::model::State;
use crate::model::TenantTouch;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::tenant::{Tenant, UserStatus};
use crate::policy::catalog_index::CatalogIndex;

/// Timed phases, sets or cohorts a patched tenant may hold beyond twice
/// those of its last full compile before it is compiled afresh (which drops
/// the unused ones).
pub(super) const SPARE: usize = 1024;

/// `prev` brought up to `tenant` after a change described by `touch`;
/// `grants_too` rebuilds the permission side whatever `touch` says (the
/// catalog or the bridge grants changed).
pub(super) fn patch_tenant(
    state: &State,
    catalog: &CatalogIndex,
    prev: &TenantSnapshot,
    tenant: Arc<Tenant>,
    touch: &TenantTouch,
    grants_too: bool,
) -> TenantSnapshot {
    // Role bits are positions by name: a different set of roles shifts them.
    let same_roles = prev.tenant.roles.ptr_eq(&tenant.roles)
        || (prev.roles.len() == tenant.roles.len()
            && prev
                .roles
                .iter()
                .zip(tenant.roles.keys())
                .all(|(a, b)| a == b));
    if touch.full || !same_roles {
        return compile_tenant(state, catalog, tenant);
    }
    let mut next = prev.clone();
    if touch.grants || grants_too {
        next.grants = Arc::new(GrantIndex::build(
            state,
            catalog,
            &tenant,
            &prev.roles,
            prev.words,
        ));
    }

    // What to redo: users whose own bindings, groups or status changed
    // (and, of those, the ones whose groups may have changed); groups whose
    // bindings or enclosing groups changed.
    let mut redo_users: BTreeSet<&UserId> = BTreeSet::new();
    let mut regroup: HashSet<&UserId> = HashSet::new();
    let mut redo_groups: Vec<&GroupName> = Vec::new();
    let named = touch
        .subjects
        .iter()
        .chain(touch.members.iter().map(|(_, m)| m));
    for subject in named {
        match subject {
            Subject::User(u) => {
                redo_users.insert(u);
            }
            Subject::Group(g) => redo_groups.push(g),
        }
    }
    for (group, member) in &touch.members {
        match member {
            Subject::Group(_) => set_listed(&mut next.parents, &tenant, group, member),
            Subject::User(u) => {
                regroup.insert(u);
            }
        }
    }

    let index = Live {
        tenant: &tenant,
        parents: &next.parents,
    };
    let mut resolver = Resolver::new(&prev.roles, &index);
    let sets = &mut next.sets;

    // The cohorts that name a group under a changed group (or one it
    // listed before the change) bring other roles now; no user's entry
    // changes.
    if !redo_groups.is_empty() {
        let mut under: HashSet<GroupName> = HashSet::new();
        for group in redo_groups {
            users::groups_under(&tenant, group, &mut under);
            users::groups_under(&prev.tenant, group, &mut under);
        }
        next.cohorts
            .redo(&under, |groups| resolver.cohort(groups, sets));
    }

    // The users named: their own roles again, and their cohort when their
    // groups may have changed or they are new.
    regroup.extend(
        redo_users
            .iter()
            .copied()
            .filter(|u| prev.users.get(*u).is_none()),
    );
    let mut groups = users::user_groups(&tenant, regroup.iter().copied());
    for id in redo_users {
        let Some(user) = tenant.users.get(id) else {
            next.users.remove(id);
            continue;
        };
        let subject = Subject::User(id.clone());
        let cohort = match prev.users.get(id).filter(|_| !regroup.contains(id)) {
            Some(e) => e.cohort(),
            None => {
                let listed = groups.remove(&subject);
                let listed: &[GroupName] = listed.as_deref().unwrap_or(&[]);
                next.cohorts.intern(listed, |g| resolver.cohort(g, sets))
            }
        };
        let own = resolver.own(&subject, sets);
        let timed = &mut next.timed;
        let entry = UserEntry::new(user.status == UserStatus::Active, own, cohort, |p| {
            timed.push_back(p);
            (timed.len() - 1) as u32
        });
        if next.users.get(id) != Some(&entry) {
            next.users.insert(id.clone(), entry);
        }
    }
    drop(resolver);

    let (timed, sets, cohorts) = next.at_full;
    if next.timed.len() > 2 * timed + SPARE
        || next.sets.len() > 2 * sets + SPARE
        || next.cohorts.weight() > (2 * cohorts + SPARE).min(users::MAX_COHORTS)
    {
        return compile_tenant(state, catalog, tenant);
    }
    next.tenant = tenant;
    next
}

/// Records in `parents` whether `tenant`'s `group` lists `member`.
fn set_listed(parents: &mut users::Parents, tenant: &Tenant, group: &GroupName, member: &Subject) {
    let listed = tenant
        .groups
        .get(group)
        .is_some_and(|g| g.members.contains(member));
    let mut groups: Vec<GroupName> = parents
        .get(member)
        .map(|g| g.iter().filter(|&g| g != group).cloned().collect())
        .unwrap_or_default();
    if listed {
        let at = groups.partition_point(|g| g < group);
        groups.insert(at, group.clone());
    }
    if groups.is_empty() {
        parents.remove(member);
    } else {
        parents.insert(member.clone(), Arc::from(groups));
    }
}
