//! Patching a compiled tenant after a mutation. Only what the mutation
//! names is computed again: the entries of the users whose own bindings,
//! groups or status changed, and of the users under a group whose bindings
//! or enclosing groups changed. Everything else is shared with the previous
//! snapshot.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::users::{self, Live, Resolver};
use super::{GrantIndex, TenantSnapshot, compile_tenant};
use crate::model::State;
use crate::model::TenantTouch;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::tenant::Tenant;
use crate::policy::catalog_index::CatalogIndex;

/// Timed phases or sets a patched tenant may hold beyond twice those of its
/// last full compile before it is compiled afresh (which drops the unused
/// ones).
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

    // What to redo: users whose own bindings, groups or status changed;
    // groups whose bindings or enclosing groups changed.
    let mut redo_users: BTreeSet<&UserId> = BTreeSet::new();
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
        if let Subject::Group(_) = member {
            set_listed(&mut next.parents, &tenant, group, member);
        }
    }

    // The users under a changed group: those its groups, and every group
    // it lists transitively, list now (one a change took out of a group is
    // named by the change itself). Such a user's groups did not change: if
    // as many groups of `under` list it as its entry counts, those are all
    // of its groups, and no look through the tenant's other groups is
    // needed to find them.
    let mut under_users: super::FastMap<&UserId, Vec<GroupName>> = Default::default();
    if !redo_groups.is_empty() {
        let mut under: HashSet<GroupName> = HashSet::new();
        for group in redo_groups {
            users::groups_under(&tenant, group, &mut under);
            users::groups_under(&prev.tenant, group, &mut under);
        }
        for group in under.iter().filter_map(|g| tenant.groups.get(g)) {
            for member in &group.members {
                if let Subject::User(u) = member
                    && !redo_users.contains(u)
                {
                    under_users.entry(u).or_default().push(group.name.clone());
                }
            }
        }
    }
    let mut lookup: Vec<&UserId> = redo_users.iter().copied().collect();
    let mut known = Vec::new();
    for (u, mut listed) in under_users {
        redo_users.insert(u);
        let counted = prev.users.get(u).map(|e| e.groups);
        if counted.is_some_and(|c| c < u8::MAX && usize::from(c) == listed.len()) {
            listed.sort();
            known.push((Subject::User(u.clone()), Arc::from(listed)));
        } else {
            lookup.push(u);
        }
    }
    let mut groups = users::user_groups(&tenant, lookup);
    groups.extend(known);

    let index = Live {
        tenant: &tenant,
        parents: &next.parents,
        users: groups,
    };
    let mut resolver = Resolver::new(&prev.roles, &index);
    for id in redo_users {
        let Some(user) = tenant.users.get(id) else {
            next.users.remove(id);
            continue;
        };
        let (phases, groups) = resolver.phases(id, &mut next.sets);
        let timed = &mut next.timed;
        let entry = users::entry(user.status, phases, groups, |p| {
            timed.push_back(p);
            (timed.len() - 1) as u32
        });
        if next.users.get(id) != Some(&entry) {
            next.users.insert(id.clone(), entry);
        }
    }
    drop(resolver);
    drop(index);

    let (timed, sets) = next.at_full;
    if next.timed.len() > 2 * timed + SPARE || next.sets.len() > 2 * sets + SPARE {
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
