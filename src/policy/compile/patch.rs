//! Patching a compiled tenant after a mutation. Only what the mutation
//! names is computed again: the entries of the users whose own bindings,
//! groups or status changed, and the classes under a group whose bindings
//! or enclosing groups changed. Everything else is shared with the previous
//! snapshot.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::users::{self, Class, Live, Resolver};
use super::{GrantIndex, TenantSnapshot, compile_tenant};
use crate::model::State;
use crate::model::TenantTouch;
use crate::model::ids::{GroupName, Subject, UserId};
use crate::model::tenant::Tenant;
use crate::policy::catalog_index::CatalogIndex;

/// Classes or sets a patched tenant may hold beyond twice those of its last
/// full compile before it is compiled afresh (which drops the unused ones).
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
        set_listed(&mut next.parents, &tenant, group, member);
    }

    let index = Live {
        tenant: &tenant,
        parents: &next.parents,
    };
    let mut resolver = Resolver::new(&prev.roles, &index);

    // Classes under a changed group: their keys are the same, their roles may not be.
    if !redo_groups.is_empty() {
        let mut under: HashSet<GroupName> = HashSet::new();
        for group in redo_groups {
            users::groups_under(&tenant, group, &mut under);
            users::groups_under(&prev.tenant, group, &mut under);
        }
        let stale: Vec<usize> = next
            .classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key.parents.iter().any(|g| under.contains(g)))
            .map(|(i, _)| i)
            .collect();
        for i in stale {
            if let Some(class) = next.classes.get(i) {
                let key = class.key.clone();
                let phases = resolver.phases(&key, &mut next.sets);
                next.classes.set(i, Class { key, phases });
            }
        }
    }

    // Users whose own bindings or groups changed move to another class.
    for id in redo_users {
        let Some(user) = tenant.users.get(id) else {
            next.users.remove(id);
            continue;
        };
        let key = resolver.key(id);
        let hash = key.hash64();
        let class = match next.class_ids.get(&hash) {
            Some(&c) if next.classes.get(c as usize).is_some_and(|k| k.key == key) => c,
            _ => {
                let c = next.classes.len() as u32;
                let phases = resolver.phases(&key, &mut next.sets);
                next.class_ids.insert(hash, c);
                next.classes.push_back(Class { key, phases });
                c
            }
        };
        next.users
            .insert(id.clone(), users::entry(user.status, class));
    }
    drop(resolver);

    let (classes, sets) = next.at_full;
    if next.classes.len() > 2 * classes + SPARE || next.sets.len() > 2 * sets + SPARE {
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
