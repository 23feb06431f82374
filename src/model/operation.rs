//! The admin operations, and the permission templates that authorize each:
//! rampart's built-in `ACM:…` names by default, or a tenant's own
//! vocabulary (`TenantSettings::admin_permissions`), so that a rediacc
//! tenant authorizes creating a group with `CreatePermissionGroup` and a
//! CaosDB tenant deactivating a user with its realm-scoped
//! `ACM:USER:UPDATE:STATUS:{user.realm}:{user}`.
//!
//! A template is a permission with placeholders: `{tenant}`, the
//! operation's `{role}`, `{group}` and `{user}`, and `{user.NAME}` for an
//! attribute of that user (`realm`). An operation is authorized when the
//! actor is allowed every template that applies to it; a template that
//! names a `{user}` or `{group}` the operation does not have (assigning a
//! role to a group, for `{user}`) does not apply, and an operation none of
//! whose templates applies is refused.

use std::collections::BTreeMap;
use std::fmt;

use super::template::{Template, TemplateError};

/// An admin operation a tenant can map to its own permissions.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    UpdateTenant,
    CreateRole,
    UpdateRoleDescription,
    DeleteRole,
    Grant,
    Revoke,
    SetGrants,
    CreateGroup,
    DeleteGroup,
    AddMember,
    RemoveMember,
    AddUser,
    UpdateUserStatus,
    UpdateUserInfo,
    /// Setting a user's attributes (part of `update_user_info`'s change):
    /// judged on the user as it is and as it will be.
    UpdateUserAttributes,
    RemoveUser,
    /// A user removing themselves from the tenant.
    LeaveTenant,
    Assign,
    Unassign,
    // --- reads made as a user: a list leaves out the rows the reader may
    // not see; get_role is refused.
    GetRole,
    ListRoles,
    ListGroups,
    ListUsers,
    ListBindings,
}

/// Which placeholders an operation offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offers {
    role: bool,
    group: bool,
    user: bool,
}

impl Operation {
    pub const ALL: [Operation; 24] = [
        Operation::UpdateTenant,
        Operation::CreateRole,
        Operation::UpdateRoleDescription,
        Operation::DeleteRole,
        Operation::Grant,
        Operation::Revoke,
        Operation::SetGrants,
        Operation::CreateGroup,
        Operation::DeleteGroup,
        Operation::AddMember,
        Operation::RemoveMember,
        Operation::AddUser,
        Operation::UpdateUserStatus,
        Operation::UpdateUserInfo,
        Operation::UpdateUserAttributes,
        Operation::RemoveUser,
        Operation::LeaveTenant,
        Operation::Assign,
        Operation::Unassign,
        Operation::GetRole,
        Operation::ListRoles,
        Operation::ListGroups,
        Operation::ListUsers,
        Operation::ListBindings,
    ];

    /// The name in settings and policy files, e.g. `update_user_status`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::UpdateTenant => "update_tenant",
            Operation::CreateRole => "create_role",
            Operation::UpdateRoleDescription => "update_role_description",
            Operation::DeleteRole => "delete_role",
            Operation::Grant => "grant",
            Operation::Revoke => "revoke",
            Operation::SetGrants => "set_grants",
            Operation::CreateGroup => "create_group",
            Operation::DeleteGroup => "delete_group",
            Operation::AddMember => "add_member",
            Operation::RemoveMember => "remove_member",
            Operation::AddUser => "add_user",
            Operation::UpdateUserStatus => "update_user_status",
            Operation::UpdateUserInfo => "update_user_info",
            Operation::UpdateUserAttributes => "update_user_attributes",
            Operation::RemoveUser => "remove_user",
            Operation::LeaveTenant => "leave_tenant",
            Operation::Assign => "assign",
            Operation::Unassign => "unassign",
            Operation::GetRole => "get_role",
            Operation::ListRoles => "list_roles",
            Operation::ListGroups => "list_groups",
            Operation::ListUsers => "list_users",
            Operation::ListBindings => "list_bindings",
        }
    }

    /// The operation named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Every name, for an error.
    pub fn names() -> String {
        Self::ALL.map(Operation::name).join(", ")
    }

    /// The built-in templates: what authorizes the operation when the
    /// tenant maps it to nothing of its own.
    pub fn defaults(self) -> &'static [&'static str] {
        match self {
            Operation::UpdateTenant => &["ACM:TENANT:UPDATE:SETTINGS"],
            Operation::CreateRole => &["ACM:ROLE:INSERT"],
            Operation::UpdateRoleDescription => &["ACM:ROLE:UPDATE:DESCRIPTION:{role}"],
            Operation::DeleteRole => &["ACM:ROLE:DELETE:{role}"],
            Operation::Grant | Operation::Revoke | Operation::SetGrants => {
                &["ACM:ROLE:UPDATE:PERMISSIONS:{role}"]
            }
            Operation::CreateGroup => &["ACM:GROUP:INSERT"],
            Operation::DeleteGroup => &["ACM:GROUP:DELETE:{group}"],
            Operation::AddMember | Operation::RemoveMember => &["ACM:GROUP:UPDATE:MEMBERS:{group}"],
            Operation::AddUser => &["ACM:USER:INSERT"],
            Operation::UpdateUserStatus => &["ACM:USER:UPDATE:STATUS:{user}"],
            Operation::UpdateUserInfo => &["ACM:USER:UPDATE:INFO:{user}"],
            Operation::UpdateUserAttributes => &["ACM:USER:UPDATE:ATTRIBUTES:{user}"],
            Operation::RemoveUser => &["ACM:USER:DELETE:{user}"],
            Operation::LeaveTenant => &["ACM:USER:UPDATE:ROLES:{user}"],
            Operation::Assign | Operation::Unassign => {
                &["ACM:ROLE:ASSIGN:{role}", "ACM:USER:UPDATE:ROLES:{user}"]
            }
            Operation::GetRole => &["ACM:ROLE:RETRIEVE:PERMISSIONS:{role}"],
            Operation::ListRoles => &["ACM:ROLE:RETRIEVE:DESCRIPTION:{role}"],
            Operation::ListGroups => &["ACM:GROUP:RETRIEVE:{group}"],
            Operation::ListUsers => &["ACM:USER:RETRIEVE:INFO:{user}"],
            // A user's binding row, or a group's.
            Operation::ListBindings => &[
                "ACM:USER:RETRIEVE:ROLES:{user}",
                "ACM:GROUP:RETRIEVE:{group}",
            ],
        }
    }

    fn offers(self) -> Offers {
        let (role, group, user) = match self {
            Operation::UpdateTenant | Operation::CreateGroup => (false, false, false),
            Operation::CreateRole
            | Operation::UpdateRoleDescription
            | Operation::DeleteRole
            | Operation::Grant
            | Operation::Revoke
            | Operation::SetGrants => (true, false, false),
            Operation::DeleteGroup | Operation::ListGroups => (false, true, false),
            Operation::GetRole | Operation::ListRoles => (true, false, false),
            Operation::ListUsers => (false, false, true),
            Operation::ListBindings => (false, true, true),
            // The group edited, and the member when it is a user.
            Operation::AddMember | Operation::RemoveMember => (false, true, true),
            Operation::AddUser
            | Operation::UpdateUserStatus
            | Operation::UpdateUserInfo
            | Operation::UpdateUserAttributes
            | Operation::RemoveUser
            | Operation::LeaveTenant => (false, false, true),
            // The role, and the subject: a user or a group.
            Operation::Assign | Operation::Unassign => (true, true, true),
        };
        Offers { role, group, user }
    }

    /// The placeholders the operation offers, for an error.
    fn offered(self) -> String {
        let o = self.offers();
        let mut names = vec!["{tenant}"];
        if o.role {
            names.push("{role}");
        }
        if o.group {
            names.push("{group}");
        }
        if o.user {
            names.push("{user}");
            names.push("{user.NAME}");
        }
        names.join(", ")
    }

    /// Parses `text` as one of this operation's templates.
    pub fn template(self, text: &str) -> Result<Template, TemplateError> {
        let o = self.offers();
        Template::parse(
            text,
            |name| match name {
                "tenant" => true,
                "role" => o.role,
                "group" => o.group,
                "user" => o.user,
                _ => o.user && name.strip_prefix("user.").is_some_and(|a| !a.is_empty()),
            },
            &self.offered(),
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tenant's own permissions for some operations: each replaces the
/// operation's built-in templates.
pub type AdminPermissions = BTreeMap<Operation, Vec<String>>;

/// Why a tenant's mapping is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("`admin_permissions.{operation}` lists no template: map it to at least one permission")]
    Empty { operation: Operation },
    #[error("`admin_permissions.{operation}` lists more than {MAX_TEMPLATES} templates")]
    TooMany { operation: Operation },
    #[error("`admin_permissions.{operation}`: {error}")]
    Template {
        operation: Operation,
        error: TemplateError,
    },
    #[error(
        "`admin_permissions.{operation}`: template `{template}` is no permission whatever its placeholders hold: {reason}"
    )]
    NotAPermission {
        operation: Operation,
        template: String,
        reason: String,
    },
    #[error(
        "`admin_permissions.{operation}`: a template is longer than {MAX_TEMPLATE_BYTES} bytes"
    )]
    TooLong { operation: Operation },
}

/// The longest template.
pub const MAX_TEMPLATE_BYTES: usize = 512;

/// At most this many templates an operation.
pub const MAX_TEMPLATES: usize = 8;

/// Checks every template of `mapping` against its operation.
pub fn check_mapping(mapping: &AdminPermissions) -> Result<(), MappingError> {
    for (&operation, templates) in mapping {
        if templates.is_empty() {
            return Err(MappingError::Empty { operation });
        }
        if templates.len() > MAX_TEMPLATES {
            return Err(MappingError::TooMany { operation });
        }
        for text in templates {
            if text.len() > MAX_TEMPLATE_BYTES {
                return Err(MappingError::TooLong { operation });
            }
            let template = operation
                .template(text)
                .map_err(|error| MappingError::Template { operation, error })?;
            // With a plain segment in every placeholder it must be a
            // permission, or no one could ever be allowed it.
            let sample = template
                .render(|_| Some("x".into()))
                .unwrap_or_else(|_| text.clone());
            if let Err(e) = crate::model::permission::validate_path(&sample) {
                return Err(MappingError::NotAPermission {
                    operation,
                    template: text.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_defaults_parse() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.name()), Some(op));
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.name()));
            for t in op.defaults() {
                op.template(t).unwrap();
            }
        }
        assert_eq!(Operation::parse("nope"), None);
    }

    #[test]
    fn templates_name_only_what_the_operation_offers() {
        assert!(
            Operation::UpdateUserStatus
                .template("ACM:USER:UPDATE:STATUS:{user.realm}:{user}")
                .is_ok()
        );
        let e = Operation::CreateGroup
            .template("CreatePermissionGroup:{role}")
            .unwrap_err();
        assert!(e.to_string().contains("{tenant}"), "{e}");
        assert!(Operation::Assign.template("X:{group}").is_ok());
        assert!(Operation::Grant.template("X:{user.realm}").is_err());
        assert!(Operation::AddUser.template("X:{user.}").is_err());
        let mut m = AdminPermissions::new();
        m.insert(Operation::Grant, vec![]);
        assert!(matches!(check_mapping(&m), Err(MappingError::Empty { .. })));
        m.insert(Operation::Grant, vec!["a:{b".into()]);
        let e = check_mapping(&m).unwrap_err().to_string();
        assert!(
            e.starts_with("`admin_permissions.grant`: template `a:{b`"),
            "{e}"
        );
        for never in ["ACM::X", "ACM:*", "a b:{role}"] {
            m.insert(Operation::Grant, vec![never.into()]);
            assert!(
                matches!(check_mapping(&m), Err(MappingError::NotAPermission { .. })),
                "{never}"
            );
        }
        m.insert(Operation::Grant, vec!["x".repeat(MAX_TEMPLATE_BYTES + 1)]);
        assert!(matches!(
            check_mapping(&m),
            Err(MappingError::TooLong { .. })
        ));
    }
}
