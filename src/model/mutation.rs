//! `Mutation`: the one kind of change. It is validated (`rules/`),
//! persisted in the changelog, audited, applied (`apply.rs`), and streamed
//! to replicas, so leader and replica states are equal at equal revisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::{CatalogEntry, CatalogPattern, Stability};
use super::ids::{Alias, GroupName, RoleName, Subject, TenantId, UserId};
use super::permission::Grant;
use super::state::State;
use super::tenant::{
    Attributes, MAX_ALIASES, MAX_ATTRIBUTES, SettingsChange, TenantSettings, UserStatus,
};
use super::time::Timestamp;

/// A change to the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mutation {
    // --- tenants (operator only, except settings)
    CreateTenant {
        tenant: TenantId,
        name: String,
        #[serde(default)]
        settings: TenantSettings,
    },
    UpdateTenant {
        tenant: TenantId,
        name: Option<String>,
        settings: Option<SettingsChange>,
    },
    DeleteTenant {
        tenant: TenantId,
    },
    // --- the catalog (operator only; deployment-wide)
    DefineCatalogEntry {
        entry: CatalogEntry,
    },
    SetCatalogStability {
        permission: CatalogPattern,
        stability: Stability,
    },
    /// Removes an entry; with `cascade`, also every grant only it covered.
    RemoveCatalogEntry {
        permission: CatalogPattern,
        #[serde(default)]
        cascade: bool,
    },
    SetBridgesGrants {
        grants: Vec<Grant>,
    },
    // --- roles and grants
    CreateRole {
        tenant: TenantId,
        role: RoleName,
        #[serde(default)]
        description: String,
    },
    UpdateRoleDescription {
        tenant: TenantId,
        role: RoleName,
        description: String,
    },
    DeleteRole {
        tenant: TenantId,
        role: RoleName,
    },
    Grant {
        tenant: TenantId,
        role: RoleName,
        grant: Grant,
    },
    Revoke {
        tenant: TenantId,
        role: RoleName,
        grant: Grant,
    },
    SetGrants {
        tenant: TenantId,
        role: RoleName,
        grants: Vec<Grant>,
    },
    // --- groups
    CreateGroup {
        tenant: TenantId,
        group: GroupName,
        #[serde(default)]
        description: String,
    },
    DeleteGroup {
        tenant: TenantId,
        group: GroupName,
    },
    AddMember {
        tenant: TenantId,
        group: GroupName,
        member: Subject,
    },
    RemoveMember {
        tenant: TenantId,
        group: GroupName,
        member: Subject,
    },
    // --- users
    AddUser {
        tenant: TenantId,
        user: UserId,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        display_name: Option<String>,
        #[serde(default)]
        status: UserStatus,
        /// Other identities the user is known by (profile data, as the
        /// email). Empty: none, or, for a user of other tenants, theirs.
        /// Not written when empty, so records read and write as before.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        aliases: Vec<Alias>,
        /// The user's attributes (profile data, as the email). Empty: none,
        /// or, for a user of other tenants, theirs. Not written when empty.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        attributes: Attributes,
    },
    UpdateUserStatus {
        tenant: TenantId,
        user: UserId,
        status: UserStatus,
    },
    /// Profile information is the user's own, so it changes in every tenant
    /// the user belongs to. `None` leaves a field as it is; `Some("")` clears
    /// it; `aliases: Some(list)` replaces the aliases (an empty list clears them).
    UpdateUserInfo {
        user: UserId,
        email: Option<String>,
        display_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aliases: Option<Vec<Alias>>,
        /// The whole set, replacing the user's; `None` leaves them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attributes: Option<Attributes>,
    },
    /// Removes the user from the tenant, with its bindings and memberships.
    RemoveUser {
        tenant: TenantId,
        user: UserId,
    },
    // --- bindings
    Assign {
        tenant: TenantId,
        subject: Subject,
        role: RoleName,
        #[serde(default)]
        expires: Option<Timestamp>,
    },
    Unassign {
        tenant: TenantId,
        subject: Subject,
        role: RoleName,
    },
}

impl Mutation {
    /// The snake_case name of the kind, e.g. `create_role`.
    pub fn kind(&self) -> &'static str {
        match self {
            Mutation::CreateTenant { .. } => "create_tenant",
            Mutation::UpdateTenant { .. } => "update_tenant",
            Mutation::DeleteTenant { .. } => "delete_tenant",
            Mutation::DefineCatalogEntry { .. } => "define_catalog_entry",
            Mutation::SetCatalogStability { .. } => "set_catalog_stability",
            Mutation::RemoveCatalogEntry { .. } => "remove_catalog_entry",
            Mutation::SetBridgesGrants { .. } => "set_bridges_grants",
            Mutation::CreateRole { .. } => "create_role",
            Mutation::UpdateRoleDescription { .. } => "update_role_description",
            Mutation::DeleteRole { .. } => "delete_role",
            Mutation::Grant { .. } => "grant",
            Mutation::Revoke { .. } => "revoke",
            Mutation::SetGrants { .. } => "set_grants",
            Mutation::CreateGroup { .. } => "create_group",
            Mutation::DeleteGroup { .. } => "delete_group",
            Mutation::AddMember { .. } => "add_member",
            Mutation::RemoveMember { .. } => "remove_member",
            Mutation::AddUser { .. } => "add_user",
            Mutation::UpdateUserStatus { .. } => "update_user_status",
            Mutation::UpdateUserInfo { .. } => "update_user_info",
            Mutation::RemoveUser { .. } => "remove_user",
            Mutation::Assign { .. } => "assign",
            Mutation::Unassign { .. } => "unassign",
        }
    }

    /// The tenant the mutation changes; `None` for deployment-wide changes
    /// (catalog, bridge grants) and for profile info (every tenant of the user).
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Mutation::CreateTenant { tenant, .. }
            | Mutation::UpdateTenant { tenant, .. }
            | Mutation::DeleteTenant { tenant }
            | Mutation::CreateRole { tenant, .. }
            | Mutation::UpdateRoleDescription { tenant, .. }
            | Mutation::DeleteRole { tenant, .. }
            | Mutation::Grant { tenant, .. }
            | Mutation::Revoke { tenant, .. }
            | Mutation::SetGrants { tenant, .. }
            | Mutation::CreateGroup { tenant, .. }
            | Mutation::DeleteGroup { tenant, .. }
            | Mutation::AddMember { tenant, .. }
            | Mutation::RemoveMember { tenant, .. }
            | Mutation::AddUser { tenant, .. }
            | Mutation::UpdateUserStatus { tenant, .. }
            | Mutation::RemoveUser { tenant, .. }
            | Mutation::Assign { tenant, .. }
            | Mutation::Unassign { tenant, .. } => Some(tenant),
            Mutation::DefineCatalogEntry { .. }
            | Mutation::SetCatalogStability { .. }
            | Mutation::RemoveCatalogEntry { .. }
            | Mutation::SetBridgesGrants { .. }
            | Mutation::UpdateUserInfo { .. } => None,
        }
    }
}

impl Mutation {
    /// Whether the change reaches every tenant: the catalog and the bridge
    /// grants (listed in every tenant's audit log).
    pub fn is_deployment_wide(&self) -> bool {
        matches!(
            self,
            Mutation::DefineCatalogEntry { .. }
                | Mutation::SetCatalogStability { .. }
                | Mutation::RemoveCatalogEntry { .. }
                | Mutation::SetBridgesGrants { .. }
        )
    }

    /// Makes the change as it is recorded against `state`: an `add_user`
    /// of a user who belongs to other tenants carries the profile it brings,
    /// so the changelog entry means the same to a replica that holds only
    /// some tenants (a filtered Watch). Anything else stays as it is.
    pub fn complete(&mut self, state: &State) {
        if let Mutation::AddUser {
            user,
            email,
            display_name,
            aliases,
            attributes,
            ..
        } = self
            && let Some((_, profile)) = state.profile_of(user)
        {
            if attributes.is_empty() {
                attributes.clone_from(profile.attributes());
            }
            if email.is_none() {
                *email = profile.email().map(str::to_owned);
            }
            if display_name.is_none() {
                *display_name = profile.display_name().map(str::to_owned);
            }
            if aliases.is_empty() {
                aliases.extend(profile.aliases().iter().cloned());
            }
        }
    }

    /// The tenants besides [`Mutation::tenant`] that see this change when
    /// made to `state`: every tenant of a user whose profile changes, and
    /// every other tenant of a user added to one. The audit log lists the
    /// change under each.
    pub fn also_seen_by(&self, state: &State) -> Vec<TenantId> {
        let (user, except) = match self {
            Mutation::UpdateUserInfo { user, .. } => (user, None),
            Mutation::AddUser { tenant, user, .. } => (user, Some(tenant)),
            _ => return Vec::new(),
        };
        state
            .tenants
            .values()
            .filter(|t| Some(&t.id) != except && t.users.contains_key(user))
            .map(|t| t.id.clone())
            .collect()
    }
}

/// How many grants the audit record of a refused attempt keeps.
pub const AUDIT_MAX_GRANTS: usize = 64;

fn cut(text: &mut String, max_chars: usize) -> bool {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => {
            text.truncate(end);
            true
        }
        None => false,
    }
}

impl Mutation {
    /// The mutation as the audit log keeps a refused attempt: free text cut
    /// to its limit ([`super::text`]) and a grant list to its first
    /// [`AUDIT_MAX_GRANTS`], so a refused attempt costs the log a bounded
    /// record. `true` when anything was cut.
    pub fn bounded_for_audit(&self) -> (Mutation, bool) {
        use super::text::{MAX_DESCRIPTION_CHARS as D, MAX_SHORT_TEXT_CHARS as S};
        let mut m = self.clone();
        let cut_grants = |g: &mut Vec<_>| {
            let over = g.len() > AUDIT_MAX_GRANTS;
            g.truncate(AUDIT_MAX_GRANTS);
            over
        };
        let opt = |t: &mut Option<String>, max| t.as_mut().is_some_and(|t| cut(t, max));
        // Each alias is at most 512 bytes by its type; a refused list may be long.
        let cut_aliases = |a: &mut Vec<Alias>| {
            let over = a.len() > MAX_ALIASES;
            a.truncate(MAX_ALIASES);
            over
        };
        // Each attribute is bounded by its type's check; a refused map may be long.
        let cut_attributes = |a: &mut Attributes| {
            let over = a.len() > MAX_ATTRIBUTES;
            while a.len() > MAX_ATTRIBUTES {
                a.pop_last();
            }
            over
        };
        let was_cut = match &mut m {
            Mutation::CreateTenant { name, .. } => cut(name, S),
            Mutation::UpdateTenant { name, .. } => opt(name, S),
            Mutation::DefineCatalogEntry { entry } => {
                cut(&mut entry.category, S) | cut(&mut entry.description, D)
            }
            Mutation::CreateRole { description, .. }
            | Mutation::UpdateRoleDescription { description, .. }
            | Mutation::CreateGroup { description, .. } => cut(description, D),
            Mutation::SetBridgesGrants { grants } | Mutation::SetGrants { grants, .. } => {
                cut_grants(grants)
            }
            Mutation::AddUser {
                email,
                display_name,
                aliases,
                attributes,
                ..
            } => {
                opt(email, super::policy_file::MAX_EMAIL_BYTES)
                    | opt(display_name, S)
                    | cut_aliases(aliases)
                    | cut_attributes(attributes)
            }
            Mutation::UpdateUserInfo {
                email,
                display_name,
                aliases,
                attributes,
                ..
            } => {
                opt(email, super::policy_file::MAX_EMAIL_BYTES)
                    | opt(display_name, S)
                    | aliases.as_mut().is_some_and(cut_aliases)
                    | attributes.as_mut().is_some_and(cut_attributes)
            }
            Mutation::DeleteTenant { .. }
            | Mutation::SetCatalogStability { .. }
            | Mutation::RemoveCatalogEntry { .. }
            | Mutation::DeleteRole { .. }
            | Mutation::Grant { .. }
            | Mutation::Revoke { .. }
            | Mutation::DeleteGroup { .. }
            | Mutation::AddMember { .. }
            | Mutation::RemoveMember { .. }
            | Mutation::UpdateUserStatus { .. }
            | Mutation::RemoveUser { .. }
            | Mutation::Assign { .. }
            | Mutation::Unassign { .. } => false,
        };
        (m, was_cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_attempts_are_audited_bounded() {
        let huge = Mutation::CreateRole {
            tenant: t("acme"),
            role: RoleName::new("r").unwrap(),
            description: "x".repeat(4_000_000),
        };
        let (kept, was_cut) = huge.bounded_for_audit();
        assert!(was_cut);
        assert!(serde_json::to_string(&kept).unwrap().len() < 2_000);
        let small = Mutation::CreateRole {
            tenant: t("acme"),
            role: RoleName::new("r").unwrap(),
            description: "editors".into(),
        };
        assert_eq!(small.bounded_for_audit(), (small.clone(), false));
        let grant: crate::model::Grant = serde_json::from_str("\"a:b\"").unwrap();
        let many = Mutation::SetBridgesGrants {
            grants: vec![grant; 10_000],
        };
        let (kept, was_cut) = many.bounded_for_audit();
        assert!(was_cut);
        assert!(
            matches!(kept, Mutation::SetBridgesGrants { grants } if grants.len() == AUDIT_MAX_GRANTS)
        );
    }

    fn t(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[test]
    fn mutations_round_trip_through_json() {
        let m = Mutation::Assign {
            tenant: t("acme"),
            subject: Subject::parse("group:eng").unwrap(),
            role: RoleName::new("editors").unwrap(),
            expires: Some(Timestamp::from_unix(10)),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"kind\":\"assign\""), "{text}");
        assert_eq!(serde_json::from_str::<Mutation>(&text).unwrap(), m);
    }
}
