//! Why a mutation is refused: the [`AdminError`] naming the rule, one
//! variant a rule, and the [`Refusal`] kind of each, which the server maps
//! to a gRPC code.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::model::apply::ApplyError;
use crate::model::catalog::{CatalogError, CatalogPattern};
use crate::model::ids::{Alias, GroupName, RoleName, Subject, TenantId, UserId};
use crate::model::operation::{MappingError, Operation};
use crate::model::permission::{Grant, GrantPattern};
use crate::model::policy_file::EmailError;
use crate::model::tenant::{AliasClash, AttributeError, MAX_ALIASES};
use crate::model::text::TextError;
use crate::model::time::Timestamp;

/// The gRPC-independent kind of a refusal; the server maps it to a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor lacks the right (`PERMISSION_DENIED`).
    Denied,
    /// A rule such as last-admin (`FAILED_PRECONDITION`).
    Precondition,
    /// Malformed (`INVALID_ARGUMENT`).
    Invalid,
    /// Names something that is not there (`NOT_FOUND`).
    NotFound,
    /// Names something that is already there (`ALREADY_EXISTS`).
    Exists,
}

impl Refusal {
    /// The gRPC code name, e.g. `PERMISSION_DENIED` (for logs, the audit log
    /// and policy tests; the server maps to `tonic::Code` itself).
    pub fn code_name(self) -> &'static str {
        match self {
            Refusal::Denied => "PERMISSION_DENIED",
            Refusal::Precondition => "FAILED_PRECONDITION",
            Refusal::Invalid => "INVALID_ARGUMENT",
            Refusal::NotFound => "NOT_FOUND",
            Refusal::Exists => "ALREADY_EXISTS",
        }
    }
}

/// Why a mutation was refused: one variant per rule, carrying what its
/// message names. [`AdminError::refusal`] gives the kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdminError {
    // --- what the mutation names must exist (NOT_FOUND)
    #[error("unknown tenant `{tenant}`")]
    UnknownTenant { tenant: TenantId },
    #[error("unknown role `{role}` in tenant `{tenant}`")]
    UnknownRole { tenant: TenantId, role: RoleName },
    #[error("unknown {subject} in tenant `{tenant}`")]
    UnknownSubject { tenant: TenantId, subject: Subject },
    #[error("unknown user `{user}`")]
    UnknownUser { user: UserId },
    #[error("unknown catalog entry `{permission}`")]
    UnknownCatalogEntry { permission: CatalogPattern },
    #[error("role `{role}` has no grant `{grant}`")]
    NotGranted { role: RoleName, grant: Grant },
    #[error("{member} is not a member of group `{group}`")]
    NotMember { group: GroupName, member: Subject },
    #[error("{subject} is not bound to `{role}`")]
    NotBound { subject: Subject, role: RoleName },

    // --- what the mutation creates must not exist (ALREADY_EXISTS)
    #[error("tenant `{tenant}` already exists")]
    TenantExists { tenant: TenantId },
    #[error(transparent)]
    CatalogConflict(CatalogError),
    #[error("role `{role}` already exists in tenant `{tenant}`")]
    RoleExists { tenant: TenantId, role: RoleName },
    #[error("role `{role}` already has `{grant}`")]
    AlreadyGranted { role: RoleName, grant: Grant },
    #[error("group `{group}` already exists in tenant `{tenant}`")]
    GroupExists { tenant: TenantId, group: GroupName },
    #[error("{member} is already a member of group `{group}`")]
    AlreadyMember { group: GroupName, member: Subject },
    #[error("user `{user}` is already a member of tenant `{tenant}`")]
    UserExists { tenant: TenantId, user: UserId },
    #[error("{subject} is already bound to `{role}`")]
    AlreadyBound { subject: Subject, role: RoleName },
    /// An alias (or a new member's id) someone else in a tenant is known by.
    #[error(transparent)]
    AliasClash(AliasClash),

    // --- malformed (INVALID_ARGUMENT)
    #[error(
        "grant `{pattern}` is not covered by the catalog: a permission must be a valid system permission name"
    )]
    NotCovered { pattern: GrantPattern },
    #[error("grant `{grant}` is listed twice")]
    DuplicateGrant { grant: Grant },
    #[error("`{role}` is a reserved name: Administrators, Users and Bridges are system roles")]
    ReservedRoleName { role: RoleName },
    /// A free-text field over its size or with a control character.
    #[error(transparent)]
    InvalidText(TextError),
    #[error(transparent)]
    InvalidEmail(EmailError),
    #[error("expiry {expires} is not in the future")]
    ExpiryNotInFuture { expires: Timestamp },
    #[error("user `{user}` would have {count} aliases: at most {MAX_ALIASES} are allowed")]
    TooManyAliases { user: UserId, count: usize },
    #[error("alias `{}` is listed twice", crate::model::quote(.alias.as_str()))]
    DuplicateAlias { alias: Alias },
    #[error("alias `{user}` is the user's own id: an alias is another identity")]
    AliasIsOwnId { user: UserId },

    // --- rules on the state (FAILED_PRECONDITION)
    #[error("cannot turn on `single_role_per_user`: `{subject}` has more than one role")]
    SingleRoleConflict { subject: Subject },
    #[error("catalog entry `{permission}` is built in and cannot be removed")]
    BuiltinCatalogEntry { permission: CatalogPattern },
    #[error(
        "catalog entry `{permission}` is still used by grant `{pattern}` of role `{role}` in tenant `{tenant}` (remove it with cascade to drop such grants too)"
    )]
    CatalogEntryInUse {
        permission: CatalogPattern,
        pattern: GrantPattern,
        role: RoleName,
        tenant: TenantId,
    },
    #[error("catalog entry `{permission}` is still used by bridges grant `{pattern}`")]
    CatalogEntryInBridgesGrants {
        permission: CatalogPattern,
        pattern: GrantPattern,
    },
    #[error("the grants of `Administrators` cannot change: it holds every permission")]
    AdministratorsGrantsFixed,
    #[error(
        "the grants of `Bridges` cannot change here: it is a protected system role (its grants are the deployment's bridges_grants)"
    )]
    BridgesGrantsProtected,
    #[error("system role `{role}` is protected")]
    ProtectedRole { role: RoleName },
    #[error("system role `{role}` cannot be deleted")]
    SystemRoleUndeletable { role: RoleName },
    #[error("role `{role}` has {members} member(s): unassign them before deleting it")]
    RoleHasMembers { role: RoleName, members: usize },
    #[error("adding {member} to group `{group}` would make a cycle")]
    GroupCycle { group: GroupName, member: Subject },
    #[error(
        "`{actor}` may leave tenant `{tenant}` only while another active Administrator remains"
    )]
    LeaveWithoutAdministrator { actor: UserId, tenant: TenantId },
    #[error("`{actor}` may not leave tenant `{tenant}`: it is their only tenant")]
    LeaveOnlyTenant { actor: UserId, tenant: TenantId },
    #[error(
        "`{user}` already belongs to another tenant with another {field}: a profile is the user's own, the same in every tenant (add the user without it, or change it with update_user_info)"
    )]
    ProfileDiffers {
        user: UserId,
        tenant: TenantId,
        field: &'static str,
    },
    #[error(
        "cannot remove the last active Administrator of tenant `{tenant}` ({})",
        join(administrators)
    )]
    LastAdministrator {
        tenant: TenantId,
        administrators: BTreeSet<UserId>,
    },
    #[error(
        "tenant `{tenant}` must keep an active administrator whose binding does not expire ({} now): this change would leave only expiring ones, and none at all after they expire",
        join(administrators)
    )]
    LastLastingAdministrator {
        tenant: TenantId,
        administrators: BTreeSet<UserId>,
    },
    #[error(
        "role `{role}` counts as an administrator role in tenant `{tenant}`'s settings: take it out of `administrator_roles` before deleting it"
    )]
    AdministratorRoleInUse { tenant: TenantId, role: RoleName },
    #[error("`administrator_roles` names `{role}`, which is not a role of tenant `{tenant}`")]
    UnknownAdministratorRole { tenant: TenantId, role: RoleName },
    #[error(
        "`administrator_roles` names system role `{role}`: it lists custom roles (`Administrators` always counts)"
    )]
    SystemAdministratorRole { role: RoleName },
    #[error(
        "tenant `{tenant}` accepts only removals of `Users` grants (`users_role_removals_only`): grant to a custom role instead"
    )]
    UsersRoleRemovalsOnly { tenant: TenantId },
    #[error(
        "`{pattern}` reaches catalog entry `{entry}`, which is {stability}, and tenant `{tenant}` refuses granting {stability} entries (`{setting}: refuse`)"
    )]
    StabilityRefused {
        tenant: TenantId,
        pattern: GrantPattern,
        entry: CatalogPattern,
        stability: &'static str,
        setting: &'static str,
    },
    #[error("{0}")]
    InvalidAttributes(AttributeError),
    #[error("{0}")]
    BadMapping(MappingError),
    /// A stored mapping that no longer parses (written by an older version).
    #[error("tenant `{tenant}`'s mapping cannot be used: {error}")]
    StoredMappingInvalid {
        tenant: TenantId,
        error: MappingError,
    },
    #[error(
        "a new tenant has no custom role to count as an administrator: create `{role}` first, then set `administrator_roles`"
    )]
    AdministratorRolesOnCreate { role: RoleName },
    /// The mutation does not fit the state after all checks (its message is
    /// apply's reason, without the kind).
    #[error("{}", .0.why)]
    DoesNotApply(ApplyError),

    // --- who asks (PERMISSION_DENIED)
    #[error("`{kind}` changes the whole deployment and needs an operator credential")]
    OperatorOnly { kind: &'static str },
    #[error("actor `{actor}` is not active in any tenant")]
    InactiveEverywhere { actor: UserId },
    #[error(
        "actor `{actor}` lacks `ACM:USER:UPDATE:INFO:{user}` (or what the tenant maps `update_user_info` to) in every tenant `{user}` belongs to"
    )]
    CannotUpdateInfo { actor: UserId, user: UserId },
    /// Aliases are identities checks are decided as: one's own are set by
    /// someone who may edit one's profile, not by oneself alone.
    #[error(
        "a user's aliases are identities checks are decided as (and attributes may decide what an admin change needs), so setting one's own needs `ACM:USER:UPDATE:INFO:{actor}` (or what the tenant maps `update_user_info` to), which actor `{actor}` lacks in every tenant they belong to"
    )]
    CannotSetOwnAliases { actor: UserId },
    /// Tenant isolation: a profile another tenant sees, or a user another
    /// tenant has, changes only with rights there or that tenant's consent.
    /// The message does not name the other tenant: that `user` belongs to
    /// it is that tenant's business (its audit log lists the attempt).
    #[error(
        "`{user}` also belongs to another tenant, which would see this change and does not share its users: actor `{actor}` needs `ACM:USER:UPDATE:INFO:{user}` there (or what it maps `update_user_info` to), or that tenant must turn on `shared_users`"
    )]
    SeenByAnotherTenant {
        actor: UserId,
        user: UserId,
        tenant: TenantId,
    },
    /// The call's credential is confined to some tenants (its `tenants`)
    /// and the change is seen by another, or by the whole deployment.
    #[error(
        "the call's credential is confined to tenant(s) {}: this change is seen by {}",
        crate::model::text::backticked(allowed),
        if seen_by.is_some() { "another tenant" } else { "the whole deployment" }
    )]
    OutsideCredential {
        allowed: Vec<String>,
        seen_by: Option<TenantId>,
    },
    #[error("actor `{actor}` is not an active member of tenant `{tenant}`")]
    NotActiveMember { actor: UserId, tenant: TenantId },
    #[error("actor `{actor}` lacks `{permission}` in tenant `{tenant}`")]
    MissingPermission {
        actor: UserId,
        permission: String,
        tenant: TenantId,
    },
    #[error(
        "actor `{actor}` lacks `ACM:USER:UPDATE:ATTRIBUTES:{user}` (or what the tenant maps `update_user_attributes` to) for `{user}` as it is and as it would be, in every tenant `{user}` belongs to: attributes may decide what an admin change needs"
    )]
    CannotSetAttributes { actor: UserId, user: UserId },
    #[error("no one adds themselves to a tenant")]
    SelfAdd,
    #[error("no one edits their own grants: actor `{actor}` holds role `{role}`")]
    SelfEditGrants { actor: UserId, role: RoleName },
    #[error("no one edits their own group memberships: actor `{actor}` is in group `{group}`")]
    SelfEditGroup { actor: UserId, group: GroupName },
    #[error("no one edits their own group memberships: {member} is or contains actor `{actor}`")]
    SelfEditMembership { actor: UserId, member: Subject },
    #[error("no one edits their own roles: {subject} is or contains actor `{actor}`")]
    SelfEditRoles { actor: UserId, subject: Subject },
    #[error("no one changes their own status")]
    SelfEditStatus,
    #[error(
        "no escalation: actor `{actor}` does not hold `{pattern}` and so cannot grant or revoke it"
    )]
    Escalation {
        actor: UserId,
        pattern: GrantPattern,
    },
    #[error(
        "no escalation: actor `{actor}` does not hold `{pattern}` of role `{role}` and so cannot hand it out"
    )]
    EscalationThroughRole {
        actor: UserId,
        pattern: GrantPattern,
        role: RoleName,
    },
    #[error(
        "no escalation: `{target}` holds `{pattern}` which actor `{actor}` does not, so `{actor}` cannot deactivate or remove them"
    )]
    Outranked {
        actor: UserId,
        target: UserId,
        pattern: GrantPattern,
    },
    #[error(
        "none of tenant `{tenant}`'s templates for `{operation}` applies to this change (each names a `{{user}}` or `{{group}}` it does not have): map `{operation}` to a permission that does"
    )]
    NoApplicableTemplate {
        operation: Operation,
        tenant: TenantId,
    },
    #[error(
        "`{target}` is a member of `Administrators`: only another member deactivates or removes them, which actor `{actor}` is not"
    )]
    AdministratorOutranks { actor: UserId, target: UserId },
    #[error("only Administrators may assign `Bridges`")]
    BridgesNeedAdministrator,
    #[error(
        "changing who counts as an administrator, what removing a user needs, or what `Users` and the catalog's stabilities accept needs an operator or a member of `Administrators`, which actor `{actor}` is not in tenant `{tenant}`"
    )]
    GuardsNeedAdministrator { actor: UserId, tenant: TenantId },

    // --- replaying changes that were validated before (INVALID_ARGUMENT)
    /// A replicated change that does not apply to the follower's state.
    #[error("replicated revision {revision}: {error}")]
    Replicated { revision: u64, error: ApplyError },
    /// A bootstrap mutation that does not apply to the state so far.
    #[error("{0}")]
    Bootstrap(ApplyError),
}

impl AdminError {
    /// The kind of refusal, which the server maps to a gRPC code.
    pub fn refusal(&self) -> Refusal {
        use AdminError as E;
        match self {
            E::UnknownTenant { .. }
            | E::UnknownRole { .. }
            | E::UnknownSubject { .. }
            | E::UnknownUser { .. }
            | E::UnknownCatalogEntry { .. }
            | E::NotGranted { .. }
            | E::NotMember { .. }
            | E::NotBound { .. }
            | E::UnknownAdministratorRole { .. } => Refusal::NotFound,
            E::TenantExists { .. }
            | E::CatalogConflict(_)
            | E::RoleExists { .. }
            | E::AlreadyGranted { .. }
            | E::GroupExists { .. }
            | E::AlreadyMember { .. }
            | E::UserExists { .. }
            | E::AlreadyBound { .. }
            | E::AliasClash(_) => Refusal::Exists,
            E::NotCovered { .. }
            | E::DuplicateGrant { .. }
            | E::ReservedRoleName { .. }
            | E::SystemAdministratorRole { .. }
            | E::InvalidAttributes(_)
            | E::BadMapping(_)
            | E::AdministratorRolesOnCreate { .. }
            | E::InvalidText(_)
            | E::InvalidEmail(_)
            | E::ExpiryNotInFuture { .. }
            | E::TooManyAliases { .. }
            | E::DuplicateAlias { .. }
            | E::AliasIsOwnId { .. }
            | E::Replicated { .. }
            | E::Bootstrap(_) => Refusal::Invalid,
            E::SingleRoleConflict { .. }
            | E::BuiltinCatalogEntry { .. }
            | E::CatalogEntryInUse { .. }
            | E::CatalogEntryInBridgesGrants { .. }
            | E::AdministratorsGrantsFixed
            | E::BridgesGrantsProtected
            | E::ProtectedRole { .. }
            | E::SystemRoleUndeletable { .. }
            | E::RoleHasMembers { .. }
            | E::GroupCycle { .. }
            | E::LeaveWithoutAdministrator { .. }
            | E::LeaveOnlyTenant { .. }
            | E::ProfileDiffers { .. }
            | E::LastAdministrator { .. }
            | E::LastLastingAdministrator { .. }
            | E::StoredMappingInvalid { .. }
            | E::NoApplicableTemplate { .. }
            | E::AdministratorRoleInUse { .. }
            | E::UsersRoleRemovalsOnly { .. }
            | E::StabilityRefused { .. }
            | E::DoesNotApply(_) => Refusal::Precondition,
            E::OperatorOnly { .. }
            | E::InactiveEverywhere { .. }
            | E::CannotUpdateInfo { .. }
            | E::CannotSetOwnAliases { .. }
            | E::CannotSetAttributes { .. }
            | E::SeenByAnotherTenant { .. }
            | E::OutsideCredential { .. }
            | E::NotActiveMember { .. }
            | E::MissingPermission { .. }
            | E::SelfAdd
            | E::SelfEditGrants { .. }
            | E::SelfEditGroup { .. }
            | E::SelfEditMembership { .. }
            | E::SelfEditRoles { .. }
            | E::SelfEditStatus
            | E::Escalation { .. }
            | E::EscalationThroughRole { .. }
            | E::Outranked { .. }
            | E::BridgesNeedAdministrator
            | E::AdministratorOutranks { .. }
            | E::GuardsNeedAdministrator { .. } => Refusal::Denied,
        }
    }
}

/// `a, b, c`: the administrators a refusal names.
fn join(users: &BTreeSet<UserId>) -> String {
    users
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::new(id).unwrap()
    }

    fn tenant(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[test]
    fn messages_read_as_before() {
        let apply_error = ApplyError {
            kind: "grant",
            why: "`allow x` is already granted".into(),
        };
        let cases = [
            (
                AdminError::LastAdministrator {
                    tenant: tenant("acme"),
                    administrators: [user("bob"), user("alice")].into(),
                },
                Refusal::Precondition,
                "cannot remove the last active Administrator of tenant `acme` (alice, bob)",
            ),
            (
                AdminError::DoesNotApply(apply_error.clone()),
                Refusal::Precondition,
                "`allow x` is already granted",
            ),
            (
                AdminError::Replicated {
                    revision: 7,
                    error: apply_error.clone(),
                },
                Refusal::Invalid,
                "replicated revision 7: cannot apply `grant`: `allow x` is already granted",
            ),
            (
                AdminError::Bootstrap(apply_error),
                Refusal::Invalid,
                "cannot apply `grant`: `allow x` is already granted",
            ),
            (
                AdminError::BridgesGrantsProtected,
                Refusal::Precondition,
                "the grants of `Bridges` cannot change here: it is a protected system role (its grants are the deployment's bridges_grants)",
            ),
            (
                AdminError::OperatorOnly {
                    kind: "create_tenant",
                },
                Refusal::Denied,
                "`create_tenant` changes the whole deployment and needs an operator credential",
            ),
            (
                AdminError::SelfEditRoles {
                    actor: user("alice"),
                    subject: Subject::parse("group:eng").unwrap(),
                },
                Refusal::Denied,
                "no one edits their own roles: group:eng is or contains actor `alice`",
            ),
            (
                AdminError::RoleHasMembers {
                    role: RoleName::new("editors").unwrap(),
                    members: 2,
                },
                Refusal::Precondition,
                "role `editors` has 2 member(s): unassign them before deleting it",
            ),
        ];
        for (e, refusal, message) in cases {
            assert_eq!(e.to_string(), message);
            assert_eq!(e.refusal(), refusal, "{message}");
        }
    }
}
