//! What a Watch filtered to some tenants sends: the one filter, whether the
//! tenants were asked for (a scoped replica's `--tenants`) or imposed by a
//! confined credential (`caller.rs`).
//!
//! A change that names a tenant passes when it is one of them. A change
//! that names none passes when it reaches every tenant alike (the catalog,
//! the Bridges grants: a replica needs them to compile, and they hold no
//! tenant's data). A profile change (`update_user_info`) names no tenant
//! but is the data of every tenant its user is in: it passes only when the
//! user is in one of the filter's tenants *at that revision*, so the
//! profile of another tenant's user never leaves the node.
//!
//! Which users a tenant holds at a past revision is not in any snapshot,
//! so the filter keeps it: the filter's tenants as a snapshot held them
//! (the base), and the memberships that the changes between that snapshot
//! and the stream's cursor made differ (`over`). The stream moves it
//! backwards from its first snapshot to the client's revision before it
//! starts, forwards along every change after, and starts again from the
//! published snapshot whenever it is caught up with it. Only a deletion of
//! one of its tenants cannot be undone (the snapshot no longer says whom
//! it held): a stream that would start before one is refused
//! ([`Unknown`]), and its client bootstraps again.
//!
//! Pure: no store, no runtime. It must not decide who may ask for which
//! tenants (`caller.rs`) or read the changelog (`watch.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::Scope;
use crate::model::{Mutation, State, Tenant, TenantId, UserId};

/// The tenant filter of one Watch stream, at its cursor.
#[derive(Debug, Clone)]
pub(super) struct TenantFilter {
    tenants: Scope,
    /// Each of `tenants` (same order) as the base state held it; `None`
    /// where it did not exist.
    base: Vec<Option<Arc<Tenant>>>,
    /// Per tenant: the base no longer tells its members at the cursor (it
    /// was created or deleted in between), `over` alone does.
    fresh: Vec<bool>,
    /// Per tenant: memberships at the cursor that the base does not give.
    over: Vec<HashMap<UserId, bool>>,
}

/// A change the filter cannot move back over: the deletion of one of its
/// tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unknown {
    pub tenant: TenantId,
}

impl TenantFilter {
    /// The filter for `tenants` at the revision of `state`.
    pub(super) fn new(tenants: Scope, state: &State) -> Self {
        let n = tenants.tenants().len();
        let mut filter = Self {
            tenants,
            base: Vec::with_capacity(n),
            fresh: vec![false; n],
            over: vec![HashMap::new(); n],
        };
        filter.rebase(state);
        filter
    }

    /// The tenants it lets through.
    pub(super) fn tenants(&self) -> &Scope {
        &self.tenants
    }

    /// Starts again from `state`, which must be the state at the cursor.
    pub(super) fn rebase(&mut self, state: &State) {
        self.base = self
            .tenants
            .tenants()
            .iter()
            .map(|id| state.tenants.get(id).cloned())
            .collect();
        self.fresh.fill(false);
        self.over.iter_mut().for_each(HashMap::clear);
    }

    /// Whether the stream sends `mutation`, the change right after the
    /// cursor.
    pub(super) fn admits(&self, mutation: &Mutation) -> bool {
        match mutation {
            Mutation::UpdateUserInfo { user, .. } => {
                (0..self.base.len()).any(|i| self.is_member(i, user))
            }
            other => other
                .tenant()
                .is_none_or(|t| self.tenants.holds(t.as_str())),
        }
    }

    /// Whether `mutation` changes who one of the filter's tenants holds:
    /// the changes [`TenantFilter::forward`] and
    /// [`TenantFilter::backward`] act on.
    pub(super) fn tracks(&self, mutation: &Mutation) -> bool {
        self.index_of(mutation).is_some()
    }

    /// Moves the cursor forward past `mutation`.
    pub(super) fn forward(&mut self, mutation: &Mutation) {
        let Some(i) = self.index_of(mutation) else {
            return;
        };
        match mutation {
            Mutation::AddUser { user, .. } => {
                self.over[i].insert(user.clone(), true);
            }
            Mutation::RemoveUser { user, .. } => {
                self.over[i].insert(user.clone(), false);
            }
            // Created: empty, and what follows adds to `over`. Deleted:
            // empty until created again.
            _ => self.start_empty(i),
        }
    }

    /// Moves the cursor back before `mutation` (the change at the cursor).
    pub(super) fn backward(&mut self, mutation: &Mutation) -> Result<(), Unknown> {
        let Some(i) = self.index_of(mutation) else {
            return Ok(());
        };
        match mutation {
            Mutation::AddUser { user, .. } => {
                self.over[i].insert(user.clone(), false);
            }
            Mutation::RemoveUser { user, .. } => {
                self.over[i].insert(user.clone(), true);
            }
            // Before its creation the tenant held no one.
            Mutation::CreateTenant { .. } => self.start_empty(i),
            _ => {
                return Err(Unknown {
                    tenant: self.tenants.tenants()[i].clone(),
                });
            }
        }
        Ok(())
    }

    fn start_empty(&mut self, i: usize) {
        self.fresh[i] = true;
        self.over[i].clear();
    }

    /// The filter's index of the tenant whose members `mutation` changes.
    fn index_of(&self, mutation: &Mutation) -> Option<usize> {
        match mutation {
            Mutation::AddUser { tenant, .. }
            | Mutation::RemoveUser { tenant, .. }
            | Mutation::CreateTenant { tenant, .. }
            | Mutation::DeleteTenant { tenant } => {
                self.tenants.tenants().binary_search(tenant).ok()
            }
            _ => None,
        }
    }

    fn is_member(&self, i: usize, user: &UserId) -> bool {
        if let Some(member) = self.over[i].get(user) {
            return *member;
        }
        !self.fresh[i]
            && self.base[i]
                .as_ref()
                .is_some_and(|t| t.users.contains_key(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UserStatus, policy_file};

    const POLICY: &str = r#"
tenants:
  - id: acme
    users: [{ id: ann }, { id: both }]
  - id: globex
    users: [{ id: gus }, { id: both }]
"#;

    fn t(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    fn u(id: &str) -> UserId {
        UserId::new(id).unwrap()
    }

    fn acme_filter() -> TenantFilter {
        let state = policy_file::load_str(POLICY).unwrap();
        TenantFilter::new(Scope::new([t("acme")]).unwrap(), &state)
    }

    fn info(user: &str) -> Mutation {
        Mutation::UpdateUserInfo {
            user: u(user),
            email: Some(format!("{user}@example.com")),
            display_name: None,
            aliases: None,
            attributes: None,
        }
    }

    fn add(tenant: &str, user: &str) -> Mutation {
        Mutation::AddUser {
            tenant: t(tenant),
            user: u(user),
            email: None,
            display_name: None,
            status: UserStatus::Active,
            aliases: Vec::new(),
            attributes: Default::default(),
        }
    }

    fn remove(tenant: &str, user: &str) -> Mutation {
        Mutation::RemoveUser {
            tenant: t(tenant),
            user: u(user),
        }
    }

    #[test]
    fn its_tenants_changes_those_of_none_and_its_users_profiles_pass() {
        let f = acme_filter();
        assert!(f.admits(&add("acme", "new")));
        assert!(!f.admits(&add("globex", "new")));
        assert!(!f.admits(&Mutation::DeleteTenant {
            tenant: t("globex")
        }));
        assert!(f.admits(&Mutation::SetBridgesGrants { grants: Vec::new() }));
        // Profiles: a user of acme (alone or shared), not one of globex only.
        assert!(f.admits(&info("ann")));
        assert!(f.admits(&info("both")));
        assert!(!f.admits(&info("gus")));
        assert!(!f.admits(&info("nobody")));
        // Only membership changes of its tenants move it.
        assert!(f.tracks(&add("acme", "x")) && f.tracks(&remove("acme", "ann")));
        assert!(!f.tracks(&add("globex", "x")) && !f.tracks(&info("ann")));
    }

    #[test]
    fn moving_forward_follows_who_its_tenants_hold() {
        let mut f = acme_filter();
        f.forward(&add("globex", "gil"));
        assert!(!f.admits(&info("gil")), "joined another tenant");
        f.forward(&add("acme", "gus"));
        assert!(f.admits(&info("gus")), "joined acme");
        f.forward(&remove("acme", "ann"));
        assert!(!f.admits(&info("ann")), "left acme");
        f.forward(&Mutation::DeleteTenant { tenant: t("acme") });
        assert!(!f.admits(&info("both")) && !f.admits(&info("gus")));
        f.forward(&Mutation::CreateTenant {
            tenant: t("acme"),
            name: "Acme".into(),
            settings: Default::default(),
        });
        assert!(!f.admits(&info("both")), "created again, empty");
        f.forward(&add("acme", "both"));
        assert!(f.admits(&info("both")));
        // Back at a state: the snapshot's members again.
        f.rebase(&policy_file::load_str(POLICY).unwrap());
        assert!(f.admits(&info("ann")) && !f.admits(&info("gus")));
    }

    #[test]
    fn moving_back_undoes_joins_and_leaves_but_not_a_deletion() {
        // The base holds ann and both; moving back over "ann joined" and
        // "cy left" gives the members before them.
        let mut f = acme_filter();
        f.backward(&add("acme", "ann")).unwrap();
        f.backward(&remove("acme", "cy")).unwrap();
        assert!(!f.admits(&info("ann")), "not yet a member");
        assert!(f.admits(&info("cy")), "still a member");
        assert!(f.admits(&info("both")), "untouched");
        // Before its creation it held no one.
        f.backward(&Mutation::CreateTenant {
            tenant: t("acme"),
            name: "Acme".into(),
            settings: Default::default(),
        })
        .unwrap();
        assert!(!f.admits(&info("both")) && !f.admits(&info("cy")));
        // Whom a deleted tenant held is not known.
        let mut f = acme_filter();
        assert_eq!(
            f.backward(&Mutation::DeleteTenant { tenant: t("acme") }),
            Err(Unknown { tenant: t("acme") })
        );
        // Another tenant's deletion does not concern it.
        f.backward(&Mutation::DeleteTenant {
            tenant: t("globex"),
        })
        .unwrap();
    }
}
