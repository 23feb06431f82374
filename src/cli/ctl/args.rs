//! The arguments of the Admin nouns of `rampart ctl` (tenant, catalog,
//! bridges, role, grant, group, user, binding): clap definitions only, plus
//! how a command-line grant becomes a `GrantSpec`. The calls are in
//! `admin.rs`.

use clap::{Args, Subcommand, ValueEnum};

use super::{CtlError, Mutate, ReadAs};
use crate::proto::GrantSpec;

/// A catalog entry's stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stability {
    Stable,
    Preview,
    Deprecated,
}

/// A user's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserStatus {
    Active,
    Inactive,
}

pub fn value_name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        #[arg(long)]
        tenant: String,
        /// Display name; the id if omitted.
        #[arg(long)]
        name: Option<String>,
        /// Allow each user at most one role binding.
        #[arg(long)]
        single_role_per_user: bool,
        /// Share this tenant's users with the other tenants they belong to:
        /// those may add them and edit their profile (see README, "Tenant
        /// isolation").
        #[arg(long)]
        shared_users: bool,
        #[command(flatten)]
        guards: Guards,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Rename a tenant or change its settings; what is not given stays.
    Update {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_name = "true|false")]
        single_role_per_user: Option<bool>,
        #[arg(long, value_name = "true|false")]
        shared_users: Option<bool>,
        #[command(flatten)]
        guards: Guards,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Delete a tenant and everything in it.
    Delete {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// List tenants with their role, group and user counts.
    List {
        #[command(flatten)]
        paging: Paging,
    },
}

/// The tenant settings that guard administration (only an operator or an
/// `Administrators` member may change them); what is not given stays.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Guards {
    /// Custom roles whose holders count as administrators for the
    /// last-administrator and leave rules, comma-separated (the whole set;
    /// "" for none). `Administrators` always counts.
    #[arg(long, value_name = "ROLE,...", value_delimiter = ',', num_args = 1)]
    pub administrator_roles: Option<Vec<String>>,
    /// Deactivating or removing a user needs the actor to hold every grant
    /// that user holds.
    #[arg(long, value_name = "true|false")]
    pub removal_needs_all_grants: Option<bool>,
    /// `Users` accepts grant removals only.
    #[arg(long, value_name = "true|false")]
    pub users_role_removals_only: Option<bool>,
    /// What granting a preview catalog entry does.
    #[arg(long, value_parser = ["allow", "warn", "refuse"])]
    pub preview_grants: Option<String>,
    /// What granting a deprecated catalog entry does.
    #[arg(long, value_parser = ["allow", "warn", "refuse"])]
    pub deprecated_grants: Option<String>,
    /// The tenant's own permission for an admin operation,
    /// `OPERATION=TEMPLATE[,TEMPLATE…]` (e.g.
    /// `create_group=CreatePermissionGroup`); repeat for more operations.
    /// The whole mapping: operations not given use the built-in `ACM:`
    /// permissions.
    #[arg(
        long = "admin-permission",
        value_name = "OPERATION=TEMPLATE,...",
        value_parser = admin_permission,
        conflicts_with = "clear_admin_permissions"
    )]
    pub admin_permissions: Vec<(String, Vec<String>)>,
    /// Every operation back to the built-in `ACM:` permissions.
    #[arg(long)]
    pub clear_admin_permissions: bool,
}

/// `OPERATION=TEMPLATE[,TEMPLATE…]`.
fn admin_permission(text: &str) -> Result<(String, Vec<String>), String> {
    let (op, templates) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not OPERATION=TEMPLATE[,TEMPLATE…]"))?;
    Ok((
        op.to_owned(),
        templates.split(',').map(str::to_owned).collect(),
    ))
}

impl Guards {
    /// Whether any is given.
    pub fn any(&self) -> bool {
        self.administrator_roles.is_some()
            || self.removal_needs_all_grants.is_some()
            || self.users_role_removals_only.is_some()
            || self.preview_grants.is_some()
            || self.deprecated_grants.is_some()
            || !self.admin_permissions.is_empty()
            || self.clear_admin_permissions
    }

    /// Sets the given ones on `settings`.
    pub fn set(self, settings: &mut crate::proto::TenantSettings) {
        settings.administrator_roles =
            self.administrator_roles
                .map(|roles| crate::proto::RoleNames {
                    roles: roles.into_iter().filter(|r| !r.is_empty()).collect(),
                });
        settings.removal_needs_all_grants = self.removal_needs_all_grants;
        settings.users_role_removals_only = self.users_role_removals_only;
        settings.preview_grants = self.preview_grants;
        settings.deprecated_grants = self.deprecated_grants;
        if self.clear_admin_permissions || !self.admin_permissions.is_empty() {
            settings.admin_permissions = Some(crate::proto::AdminPermissions {
                operations: self
                    .admin_permissions
                    .into_iter()
                    .map(|(op, templates)| (op, crate::proto::Templates { templates }))
                    .collect(),
            });
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Define (or redefine) a catalog entry.
    Define {
        /// The permission pattern, e.g. `documents:edit:?DOC?`.
        permission: String,
        #[arg(long)]
        category: String,
        #[arg(long)]
        description: String,
        /// Stable if omitted.
        #[arg(long, value_enum)]
        stability: Option<Stability>,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Set an entry's stability.
    Stability {
        permission: String,
        #[arg(value_enum)]
        stability: Stability,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Remove an entry; one still granted is refused unless --cascade.
    Remove {
        permission: String,
        /// Also remove every grant only this entry covered.
        #[arg(long)]
        cascade: bool,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// List entries, sorted by category then permission.
    List {
        #[arg(long)]
        category: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

/// Grants as given on the command line: `PATTERN`, `deny:PATTERN` or
/// `allow:PATTERN`.
#[derive(Debug, Clone, Args)]
pub struct GrantList {
    /// Patterns; `deny:PATTERN` makes that one a deny grant and
    /// `allow:PATTERN` an allow grant whatever --deny says (write a pattern
    /// whose first segment is `deny` or `allow` as `allow:deny:...`).
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Patterns without a prefix are deny grants.
    #[arg(long)]
    pub deny: bool,
}

impl GrantList {
    pub fn specs(&self) -> Vec<GrantSpec> {
        self.patterns
            .iter()
            .map(|p| grant_spec(p, self.deny))
            .collect()
    }
}

/// One command-line grant as a `GrantSpec`.
pub fn grant_spec(item: &str, deny: bool) -> GrantSpec {
    let (effect, pattern) = if let Some(p) = item.strip_prefix("deny:") {
        ("deny", p)
    } else if let Some(p) = item.strip_prefix("allow:") {
        ("allow", p)
    } else if deny {
        ("deny", item)
    } else {
        ("allow", item)
    };
    GrantSpec {
        effect: effect.to_owned(),
        pattern: pattern.to_owned(),
    }
}

#[derive(Debug, Subcommand)]
pub enum BridgesCmd {
    /// Replace the Bridges grants with exactly these (the role `Bridges` in
    /// every tenant holds them).
    Set {
        #[command(flatten)]
        grants: GrantList,
        /// Set an empty list (required to give no patterns).
        #[arg(long, conflicts_with = "patterns")]
        clear: bool,
        #[command(flatten)]
        mutate: Mutate,
    },
}

/// How a listing is read: every page the server offers (each up to
/// `--page-size` rows, the server's default 1000 without it), stopping
/// once `--limit` rows are in.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Paging {
    /// Stop after this many rows in all (default: every row).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Rows per request (default: the server's, 1000; at most 10000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: Option<u32>,
}

impl Paging {
    /// The `page_size` to ask for with `have` rows in: `--page-size` (0,
    /// the server's default, without it), but no more than `--limit`
    /// leaves; None once `--limit` rows are in.
    pub fn ask(&self, have: usize, server_default: u32) -> Option<u32> {
        let size = self.page_size.unwrap_or(0);
        let Some(limit) = self.limit else {
            return Some(size);
        };
        let left = (limit as usize).saturating_sub(have);
        if left == 0 {
            return None;
        }
        let per = if size == 0 { server_default } else { size };
        Some(per.min(u32::try_from(left).unwrap_or(u32::MAX)))
    }
}

/// `--tenant T --role R`.
#[derive(Debug, Clone, Args)]
pub struct RoleRef {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Create a role (with no grants).
    Create {
        #[command(flatten)]
        role: RoleRef,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Set a role's description.
    Describe {
        #[command(flatten)]
        role: RoleRef,
        #[arg(long)]
        description: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Delete a role and its bindings.
    Delete {
        #[command(flatten)]
        role: RoleRef,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Show a role and its grants, in the order they were granted.
    Get {
        #[command(flatten)]
        role: RoleRef,
        #[command(flatten)]
        read: ReadAs,
    },
    /// List a tenant's roles with member and grant counts.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        read: ReadAs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    /// Add grants to a role, one call per pattern, in order; stops at the
    /// first refusal (the ones before it stay).
    Add {
        #[command(flatten)]
        role: RoleRef,
        #[command(flatten)]
        grants: GrantList,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Remove grants from a role, one call per pattern, in order.
    Remove {
        #[command(flatten)]
        role: RoleRef,
        #[command(flatten)]
        grants: GrantList,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Replace a role's grants with exactly these, in one change.
    Set {
        #[command(flatten)]
        role: RoleRef,
        #[command(flatten)]
        grants: GrantList,
        /// Set an empty list (required to give no patterns).
        #[arg(long, conflicts_with = "patterns")]
        clear: bool,
        #[command(flatten)]
        mutate: Mutate,
    },
}

/// `--tenant T --group G`.
#[derive(Debug, Clone, Args)]
pub struct GroupRef {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub group: String,
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group.
    Create {
        #[command(flatten)]
        group: GroupRef,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Delete a group.
    Delete {
        #[command(flatten)]
        group: GroupRef,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Add a member: a user id or `group:NAME`.
    AddMember {
        #[command(flatten)]
        group: GroupRef,
        member: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Remove a member: a user id or `group:NAME`.
    RemoveMember {
        #[command(flatten)]
        group: GroupRef,
        member: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// List a tenant's groups and their members.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        read: ReadAs,
    },
}

/// `NAME=VALUE`.
fn attribute(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user to a tenant (a user known elsewhere keeps their info).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Active if omitted.
        #[arg(long, value_enum)]
        status: Option<UserStatus>,
        /// Another identity the user is known by (an identity provider's
        /// subject id, a SPIFFE ID); repeat for more.
        #[arg(long = "alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// An attribute admin permission templates may read, e.g.
        /// `realm=ldap`; repeat for more.
        #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = attribute)]
        attributes: Vec<(String, String)>,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Set a user's status in a tenant: active or inactive.
    Status {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(value_enum)]
        status: UserStatus,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Set a user's email, display name or aliases (in every tenant); an
    /// empty value clears it.
    Info {
        #[arg(long)]
        user: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Replace the user's aliases with these; repeat for more.
        #[arg(long = "alias", value_name = "ALIAS", conflicts_with = "clear_aliases")]
        aliases: Vec<String>,
        /// Remove every alias of the user.
        #[arg(long)]
        clear_aliases: bool,
        /// Replace the user's attributes with these (`NAME=VALUE`); repeat
        /// for more.
        #[arg(
            long = "attribute",
            value_name = "NAME=VALUE",
            value_parser = attribute,
            conflicts_with = "clear_attributes"
        )]
        attributes: Vec<(String, String)>,
        /// Remove every attribute of the user.
        #[arg(long)]
        clear_attributes: bool,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// Remove a user from a tenant, with their bindings and memberships.
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[command(flatten)]
        mutate: Mutate,
    },
    /// List a tenant's users.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        read: ReadAs,
    },
}

/// `binding assign` (and `assign`).
#[derive(Debug, Clone, Args)]
pub struct AssignArgs {
    #[arg(long)]
    pub tenant: String,
    /// A user id or `group:NAME`.
    #[arg(long)]
    pub subject: String,
    #[arg(long)]
    pub role: String,
    /// When the binding lapses, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
    #[arg(long)]
    pub expires: Option<String>,
    #[command(flatten)]
    pub mutate: Mutate,
}

/// `binding unassign` (and `unassign`).
#[derive(Debug, Clone, Args)]
pub struct UnassignArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub subject: String,
    #[arg(long)]
    pub role: String,
    #[command(flatten)]
    pub mutate: Mutate,
}

#[derive(Debug, Subcommand)]
pub enum BindingCmd {
    /// Bind a user or group to a role.
    Assign(AssignArgs),
    /// Remove a binding.
    Unassign(UnassignArgs),
    /// List a tenant's bindings.
    List {
        #[arg(long)]
        tenant: String,
        /// Only this subject's (a user id or `group:NAME`).
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        read: ReadAs,
    },
}

impl GrantList {
    /// The grants a `set` verb sends: the patterns, or none with `--clear`.
    pub fn for_set(&self, clear: bool) -> Result<Vec<GrantSpec>, CtlError> {
        if self.patterns.is_empty() && !clear {
            return Err(CtlError::Usage(
                "give the grants to set, or --clear to set none".into(),
            ));
        }
        Ok(self.specs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_items_take_an_effect_prefix() {
        let g = |item, deny| {
            let s = grant_spec(item, deny);
            (s.effect, s.pattern)
        };
        assert_eq!(
            g("documents:view", false),
            ("allow".into(), "documents:view".into())
        );
        assert_eq!(
            g("documents:view", true),
            ("deny".into(), "documents:view".into())
        );
        assert_eq!(
            g("deny:documents:*", false),
            ("deny".into(), "documents:*".into())
        );
        assert_eq!(g("allow:deny:x", true), ("allow".into(), "deny:x".into()));
    }

    #[test]
    fn set_verbs_need_patterns_or_clear() {
        let none = GrantList {
            patterns: vec![],
            deny: false,
        };
        assert!(matches!(none.for_set(false), Err(CtlError::Usage(_))));
        assert_eq!(none.for_set(true).ok().map(|v| v.len()), Some(0));
    }
}
