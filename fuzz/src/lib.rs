//! What the fuzz targets and the seed maker (`examples/make_seeds.rs`)
//! share.

/// The messages of the `grpc_requests` target, by the first byte of an
/// input (modulo their number). The target holds its handlers to this list.
pub const GRPC_MESSAGES: &[&str] = &[
    "Check",
    "BatchCheck",
    "ListSubjectPermissions",
    "ListSubjects",
    "CreateTenant",
    "UpdateTenant",
    "DeleteTenant",
    "ListTenants",
    "DefineCatalogEntry",
    "SetCatalogStability",
    "RemoveCatalogEntry",
    "ListCatalog",
    "SetBridgesGrants",
    "CreateRole",
    "UpdateRoleDescription",
    "DeleteRole",
    "GetRole",
    "ListRoles",
    "Grant",
    "Revoke",
    "SetGrants",
    "CreateGroup",
    "DeleteGroup",
    "AddMember",
    "RemoveMember",
    "ListGroups",
    "AddUser",
    "UpdateUserStatus",
    "UpdateUserInfo",
    "RemoveUser",
    "ListUsers",
    "Assign",
    "Unassign",
    "ListBindings",
    "ListAuditLog",
    "Watch",
    "Export",
    "Import",
    "GetState",
    "envoy Check",
];

/// The first byte of a `grpc_requests` input for `message`.
pub fn grpc_pick(message: &str) -> Option<u8> {
    GRPC_MESSAGES
        .iter()
        .position(|m| *m == message)
        .and_then(|i| u8::try_from(i).ok())
}
