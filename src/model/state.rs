//! The whole authorization state: the catalog, the deployment's `Bridges`
//! grants, and every tenant, at one revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::catalog::Catalog;
use super::ids::TenantId;
use super::ids::UserId;
use super::permission::{Grant, GrantPattern};
use super::tenant::{Role, RoleKind, Tenant, User};

/// Everything a snapshot is compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The revision of the last change applied.
    pub revision: u64,
    pub catalog: Arc<Catalog>,
    /// The grants of every tenant's `Bridges` role, set by the deployment.
    pub bridges_grants: Arc<[Grant]>,
    /// Each tenant behind its own `Arc`, so a change to one shares the rest.
    pub tenants: BTreeMap<TenantId, Arc<Tenant>>,
    /// `allow *`: what `Administrators` holds.
    admin_grants: Arc<[Grant]>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// An empty state with the built-in catalog.
    pub fn new() -> Self {
        let admin_grants: Arc<[Grant]> = match GrantPattern::parse("*") {
            Ok(all) => Arc::from(vec![Grant::allow(all)]),
            // INVARIANT: `*` is a valid pattern (tested in permission.rs).
            Err(_) => Arc::from(Vec::new()),
        };
        Self {
            revision: 0,
            catalog: Arc::new(Catalog::with_builtins()),
            bridges_grants: Arc::from(Vec::new()),
            tenants: BTreeMap::new(),
            admin_grants,
        }
    }

    /// The grants a role carries in effect: `Administrators` holds `*`,
    /// `Bridges` holds the deployment's bridge grants, any other its own.
    pub fn grants_of<'a>(&'a self, role: &'a Role) -> &'a [Grant] {
        match role.kind() {
            RoleKind::Administrators => &self.admin_grants,
            RoleKind::Bridges => &self.bridges_grants,
            RoleKind::Users | RoleKind::Custom => &role.grants,
        }
    }

    /// The user's profile as the tenants it belongs to see it (the same in
    /// each; the first by tenant id), and that tenant; `None` for a user of
    /// no tenant.
    pub fn profile_of(&self, user: &UserId) -> Option<(&TenantId, &User)> {
        self.tenants
            .iter()
            .find_map(|(id, t)| t.users.get(user).map(|u| (id, u)))
    }

    /// The tenant with this id.
    pub fn tenant(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(id)
    }
}
