//! The Admin service's conversions: each change request into the one
//! `Mutation` it asks for (`Mutation::try_from(&request)`), the lookups'
//! fields into checked values, and the state's roles and grants into
//! messages.

use super::{FieldError, bounded, free_text, parsed};
use crate::model::audit::AuditFilter;
use crate::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use crate::model::ids::Alias;
use crate::model::operation::{AdminPermissions, MAX_TEMPLATE_BYTES, Operation};
use crate::model::policy_file::MAX_EMAIL_BYTES;
use crate::model::rules::Actor;
use crate::model::tenant::{Attributes, RoleKind, check_attributes};
use crate::model::text::{MAX_DESCRIPTION_CHARS, MAX_SHORT_TEXT_CHARS};
use crate::model::{
    Effect, Grant, GrantPattern, GrantPolicy, GroupName, Mutation, RoleName, SettingsChange,
    Subject, TenantId, TenantSettings, Timestamp, UserId, UserStatus,
};
use crate::proto;

/// What every change request carries besides its change: who it acts as
/// (empty: the operator) and whether only to try it.
pub trait ChangeRequest {
    fn actor(&self) -> &str;
    fn dry_run(&self) -> bool;
}

macro_rules! change_requests {
    ($($request:ident),* $(,)?) => {$(
        impl ChangeRequest for proto::$request {
            fn actor(&self) -> &str {
                &self.actor
            }
            fn dry_run(&self) -> bool {
                self.dry_run
            }
        }
    )*};
}

change_requests!(
    CreateTenantRequest,
    UpdateTenantRequest,
    DeleteTenantRequest,
    DefineCatalogEntryRequest,
    SetCatalogStabilityRequest,
    RemoveCatalogEntryRequest,
    SetBridgesGrantsRequest,
    CreateRoleRequest,
    UpdateRoleDescriptionRequest,
    DeleteRoleRequest,
    GrantRequest,
    RevokeRequest,
    SetGrantsRequest,
    CreateGroupRequest,
    DeleteGroupRequest,
    AddMemberRequest,
    RemoveMemberRequest,
    AddUserRequest,
    UpdateUserStatusRequest,
    UpdateUserInfoRequest,
    RemoveUserRequest,
    AssignRequest,
    UnassignRequest,
);

/// The acting user of a change; empty: the operator.
pub fn actor(v: &str) -> Result<Actor, FieldError> {
    Ok(if v.is_empty() {
        Actor::Operator
    } else {
        Actor::User(parsed("actor", UserId::new(v))?)
    })
}

fn tenant(v: &str) -> Result<TenantId, FieldError> {
    parsed("tenant", TenantId::new(v))
}
fn role(v: &str) -> Result<RoleName, FieldError> {
    parsed("role", RoleName::new(v))
}
fn group(v: &str) -> Result<GroupName, FieldError> {
    parsed("group", GroupName::new(v))
}
fn user(v: &str) -> Result<UserId, FieldError> {
    parsed("user", UserId::new(v))
}
fn subject(name: &'static str, v: &str) -> Result<Subject, FieldError> {
    parsed(name, Subject::parse(v))
}
fn grant(spec: Option<&proto::GrantSpec>) -> Result<Grant, FieldError> {
    let spec = spec.ok_or(FieldError::Missing("grant"))?;
    let effect = match spec.effect.as_str() {
        "" | "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => {
            return Err(FieldError::NotOneOf {
                field: "grant.effect",
                expected: "allow or deny",
                got: other.to_owned(),
            });
        }
    };
    Ok(Grant {
        effect,
        pattern: parsed("grant.pattern", GrantPattern::parse(&spec.pattern))?,
    })
}
fn grants(specs: &[proto::GrantSpec]) -> Result<Vec<Grant>, FieldError> {
    specs.iter().map(|g| grant(Some(g))).collect()
}
fn stability(v: &str) -> Result<Stability, FieldError> {
    if v.is_empty() {
        return Ok(Stability::Stable);
    }
    Stability::parse(v).ok_or_else(|| FieldError::NotOneOf {
        field: "stability",
        expected: "stable, preview or deprecated",
        got: v.to_owned(),
    })
}
fn status(v: &str) -> Result<UserStatus, FieldError> {
    if v.is_empty() {
        return Ok(UserStatus::Active);
    }
    UserStatus::parse(v).ok_or_else(|| FieldError::NotOneOf {
        field: "status",
        expected: "active or inactive",
        got: v.to_owned(),
    })
}
fn settings(s: Option<&proto::TenantSettings>) -> Result<TenantSettings, FieldError> {
    Ok(SettingsChange::try_from(s)?.applied_to(&TenantSettings::default()))
}

fn grant_policy(field: &'static str, v: Option<&str>) -> Result<Option<GrantPolicy>, FieldError> {
    match v {
        None | Some("") => Ok(None),
        Some(v) => GrantPolicy::parse(v)
            .map(Some)
            .ok_or_else(|| FieldError::NotOneOf {
                field,
                expected: GrantPolicy::NAMES,
                got: v.to_owned(),
            }),
    }
}

impl TryFrom<Option<&proto::TenantSettings>> for SettingsChange {
    type Error = FieldError;
    fn try_from(s: Option<&proto::TenantSettings>) -> Result<Self, FieldError> {
        let Some(s) = s else {
            return Ok(SettingsChange::default());
        };
        Ok(SettingsChange {
            single_role_per_user: s.single_role_per_user,
            shared_users: s.shared_users,
            administrator_roles: s
                .administrator_roles
                .as_ref()
                .map(|r| {
                    r.roles
                        .iter()
                        .map(|r| parsed("administrator_roles", RoleName::new(r)))
                        .collect()
                })
                .transpose()?,
            removal_needs_all_grants: s.removal_needs_all_grants,
            users_role_removals_only: s.users_role_removals_only,
            preview_grants: grant_policy("preview_grants", s.preview_grants.as_deref())?,
            deprecated_grants: grant_policy("deprecated_grants", s.deprecated_grants.as_deref())?,
            admin_permissions: s.admin_permissions.as_ref().map(mapping).transpose()?,
        })
    }
}

/// The settings as the Admin API shows them.
pub fn settings_info(s: &TenantSettings) -> proto::TenantSettings {
    proto::TenantSettings {
        single_role_per_user: Some(s.single_role_per_user),
        shared_users: Some(s.shared_users),
        administrator_roles: Some(proto::RoleNames {
            roles: s
                .administrator_roles
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        removal_needs_all_grants: Some(s.removal_needs_all_grants),
        users_role_removals_only: Some(s.users_role_removals_only),
        preview_grants: Some(s.preview_grants.as_str().to_owned()),
        deprecated_grants: Some(s.deprecated_grants.as_str().to_owned()),
        admin_permissions: Some(proto::AdminPermissions {
            operations: s
                .admin_permissions
                .iter()
                .map(|(op, templates)| {
                    (
                        op.name().to_owned(),
                        proto::Templates {
                            templates: templates.clone(),
                        },
                    )
                })
                .collect(),
        }),
    }
}

/// A tenant's mapping of admin operations: each name known (the rules
/// check the templates, so a refusal is audited).
fn mapping(m: &proto::AdminPermissions) -> Result<AdminPermissions, FieldError> {
    m.operations
        .iter()
        .map(|(name, t)| {
            let op = Operation::parse(name).ok_or_else(|| FieldError::NotOneOf {
                field: "admin_permissions",
                expected: "an admin operation (update_tenant, create_role, …, assign, unassign)",
                got: name.clone(),
            })?;
            for text in &t.templates {
                bounded("admin_permissions", text, MAX_TEMPLATE_BYTES)?;
            }
            Ok((op, t.templates.clone()))
        })
        .collect()
}

fn description(field: &'static str, v: &str) -> Result<String, FieldError> {
    free_text(field, v, MAX_DESCRIPTION_CHARS)
}
fn short_text(field: &'static str, v: &str) -> Result<String, FieldError> {
    free_text(field, v, MAX_SHORT_TEXT_CHARS)
}
/// An email's size only: the rules check its shape.
fn email(v: &str) -> Result<String, FieldError> {
    bounded("email", v, MAX_EMAIL_BYTES)?;
    Ok(v.to_owned())
}

/// Aliases as given: each must be one (its shape; the rules check the
/// count, duplicates and uniqueness, so a refusal is audited).
fn aliases(v: &[String]) -> Result<Vec<Alias>, FieldError> {
    v.iter().map(|a| parsed("aliases", Alias::new(a))).collect()
}

/// A user's attributes, each checked ([`check_attributes`]).
fn attributes(v: &std::collections::HashMap<String, String>) -> Result<Attributes, FieldError> {
    let map: Attributes = v.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    parsed("attributes", check_attributes(&map))?;
    Ok(map)
}

/// An empty string as `None`.
pub fn optional(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

impl TryFrom<&proto::CreateTenantRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::CreateTenantRequest) -> Result<Self, FieldError> {
        Ok(Self::CreateTenant {
            tenant: tenant(&r.tenant)?,
            name: if r.name.is_empty() {
                r.tenant.clone()
            } else {
                short_text("name", &r.name)?
            },
            settings: settings(r.settings.as_ref())?,
        })
    }
}

impl TryFrom<&proto::UpdateTenantRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::UpdateTenantRequest) -> Result<Self, FieldError> {
        Ok(Self::UpdateTenant {
            tenant: tenant(&r.tenant)?,
            name: r
                .name
                .as_deref()
                .map(|n| short_text("name", n))
                .transpose()?,
            settings: r
                .settings
                .as_ref()
                .map(|s| {
                    if *s == proto::TenantSettings::default() {
                        // Settings sent with nothing set: what a client from
                        // before the fields were `optional` sends to turn
                        // both of its settings off (proto3 does not send a
                        // `false`).
                        Ok(SettingsChange {
                            single_role_per_user: Some(false),
                            shared_users: Some(false),
                            ..SettingsChange::default()
                        })
                    } else {
                        SettingsChange::try_from(Some(s))
                    }
                })
                .transpose()?,
        })
    }
}

impl TryFrom<&proto::DeleteTenantRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::DeleteTenantRequest) -> Result<Self, FieldError> {
        Ok(Self::DeleteTenant {
            tenant: tenant(&r.tenant)?,
        })
    }
}

impl TryFrom<&proto::DefineCatalogEntryRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::DefineCatalogEntryRequest) -> Result<Self, FieldError> {
        let e = r.entry.as_ref().ok_or(FieldError::Missing("entry"))?;
        Ok(Self::DefineCatalogEntry {
            entry: CatalogEntry {
                pattern: parsed("entry.permission", CatalogPattern::parse(&e.permission))?,
                category: short_text("entry.category", &e.category)?,
                description: description("entry.description", &e.description)?,
                stability: stability(&e.stability)?,
                builtin: false,
            },
        })
    }
}

impl TryFrom<&proto::SetCatalogStabilityRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::SetCatalogStabilityRequest) -> Result<Self, FieldError> {
        Ok(Self::SetCatalogStability {
            permission: parsed("permission", CatalogPattern::parse(&r.permission))?,
            stability: stability(&r.stability)?,
        })
    }
}

impl TryFrom<&proto::RemoveCatalogEntryRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::RemoveCatalogEntryRequest) -> Result<Self, FieldError> {
        Ok(Self::RemoveCatalogEntry {
            permission: parsed("permission", CatalogPattern::parse(&r.permission))?,
            cascade: r.cascade,
        })
    }
}

impl TryFrom<&proto::SetBridgesGrantsRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::SetBridgesGrantsRequest) -> Result<Self, FieldError> {
        Ok(Self::SetBridgesGrants {
            grants: grants(&r.grants)?,
        })
    }
}

impl TryFrom<&proto::CreateRoleRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::CreateRoleRequest) -> Result<Self, FieldError> {
        Ok(Self::CreateRole {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            description: description("description", &r.description)?,
        })
    }
}

impl TryFrom<&proto::UpdateRoleDescriptionRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::UpdateRoleDescriptionRequest) -> Result<Self, FieldError> {
        Ok(Self::UpdateRoleDescription {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            description: description("description", &r.description)?,
        })
    }
}

impl TryFrom<&proto::DeleteRoleRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::DeleteRoleRequest) -> Result<Self, FieldError> {
        Ok(Self::DeleteRole {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
        })
    }
}

impl TryFrom<&proto::GrantRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::GrantRequest) -> Result<Self, FieldError> {
        Ok(Self::Grant {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            grant: grant(r.grant.as_ref())?,
        })
    }
}

impl TryFrom<&proto::RevokeRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::RevokeRequest) -> Result<Self, FieldError> {
        Ok(Self::Revoke {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            grant: grant(r.grant.as_ref())?,
        })
    }
}

impl TryFrom<&proto::SetGrantsRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::SetGrantsRequest) -> Result<Self, FieldError> {
        Ok(Self::SetGrants {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            grants: grants(&r.grants)?,
        })
    }
}

impl TryFrom<&proto::CreateGroupRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::CreateGroupRequest) -> Result<Self, FieldError> {
        Ok(Self::CreateGroup {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
            description: description("description", &r.description)?,
        })
    }
}

impl TryFrom<&proto::DeleteGroupRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::DeleteGroupRequest) -> Result<Self, FieldError> {
        Ok(Self::DeleteGroup {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
        })
    }
}

impl TryFrom<&proto::AddMemberRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::AddMemberRequest) -> Result<Self, FieldError> {
        Ok(Self::AddMember {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
            member: subject("member", &r.member)?,
        })
    }
}

impl TryFrom<&proto::RemoveMemberRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::RemoveMemberRequest) -> Result<Self, FieldError> {
        Ok(Self::RemoveMember {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
            member: subject("member", &r.member)?,
        })
    }
}

impl TryFrom<&proto::AddUserRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::AddUserRequest) -> Result<Self, FieldError> {
        Ok(Self::AddUser {
            tenant: tenant(&r.tenant)?,
            user: user(&r.user)?,
            email: optional(&email(&r.email)?),
            display_name: optional(&short_text("display_name", &r.display_name)?),
            status: status(&r.status)?,
            aliases: aliases(&r.aliases)?,
            attributes: attributes(&r.attributes)?,
        })
    }
}

impl TryFrom<&proto::UpdateUserStatusRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::UpdateUserStatusRequest) -> Result<Self, FieldError> {
        if r.status.is_empty() {
            return Err(FieldError::Unset {
                field: "status",
                expected: "active or inactive",
            });
        }
        Ok(Self::UpdateUserStatus {
            tenant: tenant(&r.tenant)?,
            user: user(&r.user)?,
            status: status(&r.status)?,
        })
    }
}

impl TryFrom<&proto::UpdateUserInfoRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::UpdateUserInfoRequest) -> Result<Self, FieldError> {
        Ok(Self::UpdateUserInfo {
            user: user(&r.user)?,
            email: r.email.as_deref().map(email).transpose()?,
            display_name: r
                .display_name
                .as_deref()
                .map(|d| short_text("display_name", d))
                .transpose()?,
            aliases: r
                .aliases
                .as_ref()
                .map(|list| aliases(&list.aliases))
                .transpose()?,
            attributes: r
                .attributes
                .as_ref()
                .map(|m| attributes(&m.values))
                .transpose()?,
        })
    }
}

impl TryFrom<&proto::RemoveUserRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::RemoveUserRequest) -> Result<Self, FieldError> {
        Ok(Self::RemoveUser {
            tenant: tenant(&r.tenant)?,
            user: user(&r.user)?,
        })
    }
}

impl TryFrom<&proto::AssignRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::AssignRequest) -> Result<Self, FieldError> {
        let expires = if r.expires.is_empty() {
            None
        } else {
            Some(parsed("expires", Timestamp::parse(&r.expires))?)
        };
        Ok(Self::Assign {
            tenant: tenant(&r.tenant)?,
            subject: subject("subject", &r.subject)?,
            role: role(&r.role)?,
            expires,
        })
    }
}

impl TryFrom<&proto::UnassignRequest> for Mutation {
    type Error = FieldError;
    fn try_from(r: &proto::UnassignRequest) -> Result<Self, FieldError> {
        Ok(Self::Unassign {
            tenant: tenant(&r.tenant)?,
            subject: subject("subject", &r.subject)?,
            role: role(&r.role)?,
        })
    }
}

/// GetRole's role, once its tenant is known.
#[derive(Debug)]
pub struct RoleLookup {
    pub role: RoleName,
}

impl TryFrom<&proto::GetRoleRequest> for RoleLookup {
    type Error = FieldError;
    fn try_from(r: &proto::GetRoleRequest) -> Result<Self, FieldError> {
        Ok(Self {
            role: role(&r.role)?,
        })
    }
}

/// ListBindings' filter, once its tenant is known: one subject's, or all.
#[derive(Debug)]
pub struct BindingFilter {
    pub subject: Option<Subject>,
}

impl TryFrom<&proto::ListBindingsRequest> for BindingFilter {
    type Error = FieldError;
    fn try_from(r: &proto::ListBindingsRequest) -> Result<Self, FieldError> {
        Ok(Self {
            subject: if r.subject.is_empty() {
                None
            } else {
                Some(subject("subject", &r.subject)?)
            },
        })
    }
}

/// A grant as its message.
pub fn grant_spec(g: &Grant) -> proto::GrantSpec {
    proto::GrantSpec {
        effect: g.effect.as_str().to_owned(),
        pattern: g.pattern.as_str().to_owned(),
    }
}

/// The name of a role's kind, as the messages say it.
pub fn kind_name(r: &RoleName) -> &'static str {
    match RoleKind::of(r) {
        RoleKind::Administrators => "administrators",
        RoleKind::Users => "users",
        RoleKind::Bridges => "bridges",
        RoleKind::Custom => "custom",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        let r = proto::GrantRequest {
            tenant: "acme".into(),
            role: "ops".into(),
            grant: None,
            ..Default::default()
        };
        let e = Mutation::try_from(&r).unwrap_err();
        assert_eq!(e.to_string(), "`grant` is required");
        let r = proto::UpdateUserStatusRequest {
            tenant: "acme".into(),
            user: "ann".into(),
            ..Default::default()
        };
        let e = Mutation::try_from(&r).unwrap_err();
        assert_eq!(e.to_string(), "`status` must be active or inactive");
        let r = proto::SetCatalogStabilityRequest {
            permission: "app.read".into(),
            stability: "gone".into(),
            ..Default::default()
        };
        let e = Mutation::try_from(&r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`stability` must be stable, preview or deprecated, not `gone`"
        );
        assert!(matches!(actor(""), Ok(Actor::Operator)));
        assert!(
            actor("not a user!")
                .unwrap_err()
                .to_string()
                .starts_with("`actor`: ")
        );
    }

    #[test]
    fn page_tokens_round_trip_and_sizes_are_bounded() {
        let r = proto::ListBindingsRequest {
            page_token: page_token(&["group:ops", "editors"]),
            ..Default::default()
        };
        let page = Page::<(Subject, RoleName)>::try_from(&r).unwrap();
        assert_eq!(page.size, DEFAULT_LIST_PAGE);
        let (subject, role) = page.after.unwrap();
        assert_eq!(
            (subject.reference(), role.as_str()),
            ("group:ops".into(), "editors")
        );
        let r = proto::ListCatalogRequest {
            page_token: page_token(&["", "a:b"]),
            page_size: MAX_LIST_PAGE,
            ..Default::default()
        };
        let page = Page::<(String, String)>::try_from(&r).unwrap();
        assert_eq!(page.after, Some((String::new(), "a:b".into())));
        assert_eq!(page.size, MAX_LIST_PAGE as usize);
        for token in [
            "a",
            "0g",
            "ff",
            &page_token(&["ann", "x"]),
            &page_token(&["no!"]),
        ] {
            let r = proto::ListUsersRequest {
                page_token: token.into(),
                ..Default::default()
            };
            let e = Page::<UserId>::try_from(&r).unwrap_err();
            assert_eq!(e.to_string(), "`page_token` is not one this server issued");
        }
        let r = proto::ListUsersRequest {
            page_size: MAX_LIST_PAGE + 1,
            ..Default::default()
        };
        let e = Page::<UserId>::try_from(&r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`page_size` 10001 is more than the limit of 10000"
        );
    }
}

/// The most audit records one ListAuditLog page holds, and the default.
const MAX_AUDIT_PAGE: u32 = 1_000;
const DEFAULT_AUDIT_PAGE: usize = 100;

/// One page of the audit log as asked for: the filter (asking for one
/// record more than the page, to know whether another page follows) and
/// the page's size.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub filter: AuditFilter,
    pub limit: usize,
}

impl TryFrom<&proto::ListAuditLogRequest> for AuditPage {
    type Error = FieldError;

    fn try_from(r: &proto::ListAuditLogRequest) -> Result<Self, FieldError> {
        let limit = page_size(r.page_size, DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE)?;
        let after_seq = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| FieldError::NotIssued("page_token"))?
        };
        let filter = AuditFilter {
            tenant: optional(&r.tenant),
            actor: optional(&r.actor),
            from_revision: (r.from_revision > 0).then_some(r.from_revision),
            to_revision: (r.to_revision > 0).then_some(r.to_revision),
            after_seq,
            limit: limit + 1,
        };
        Ok(Self { filter, limit })
    }
}

/// The rows per page of a listing when a request asks for none (AIP-158).
pub const DEFAULT_LIST_PAGE: usize = 1_000;
/// The most rows per page a listing request may ask for.
pub const MAX_LIST_PAGE: u32 = 10_000;
/// The encoded bytes after which a page stops early, whatever its size, so
/// that no answer nears a client's 4 MiB message limit; a page always holds
/// at least one row.
pub const PAGE_BYTES: usize = 1 << 20;

/// A page's row count: `default` for 0, OverLimit over `max`.
fn page_size(v: u32, default: usize, max: u32) -> Result<usize, FieldError> {
    match v {
        0 => Ok(default),
        n if n > max => Err(FieldError::OverLimit {
            field: "page_size",
            value: n.into(),
            max: max.into(),
        }),
        n => Ok(n as usize),
    }
}

/// A separator no key part holds (names and free text refuse control
/// characters).
const TOKEN_SEPARATOR: char = '\0';

/// The page token that resumes a listing after the row keyed by `parts`:
/// the key, hex-encoded. Opaque to clients, and stable across writes: the
/// next page starts after this key, wherever it now sits.
pub fn page_token(parts: &[&str]) -> String {
    parts
        .join(&TOKEN_SEPARATOR.to_string())
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key parts of a `page_token`, or NotIssued.
fn token_parts(token: &str, parts: usize) -> Result<Vec<String>, FieldError> {
    let bad = || FieldError::NotIssued("page_token");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<u8>, _>>()?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let found: Vec<String> = text.split(TOKEN_SEPARATOR).map(str::to_owned).collect();
    if found.len() != parts {
        return Err(bad());
    }
    Ok(found)
}

/// One page of a listing as asked for: at most `size` rows, those after
/// the key `after` (none: from the start).
#[derive(Debug, Clone)]
pub struct Page<K> {
    pub size: usize,
    pub after: Option<K>,
}

impl<K> Page<K> {
    /// Parses the size and the token, whose key has `parts` parts made into
    /// a key by `key` (None: not a key this server issues).
    fn parse(
        size: u32,
        token: &str,
        parts: usize,
        key: impl FnOnce(Vec<String>) -> Option<K>,
    ) -> Result<Self, FieldError> {
        let size = page_size(size, DEFAULT_LIST_PAGE, MAX_LIST_PAGE)?;
        let after = if token.is_empty() {
            None
        } else {
            Some(key(token_parts(token, parts)?).ok_or(FieldError::NotIssued("page_token"))?)
        };
        Ok(Self { size, after })
    }
}

/// The one-part key of a name-keyed listing.
fn one<T>(parts: Vec<String>, f: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    parts.first().and_then(|p| f(p))
}

impl TryFrom<&proto::ListTenantsRequest> for Page<TenantId> {
    type Error = FieldError;
    fn try_from(r: &proto::ListTenantsRequest) -> Result<Self, FieldError> {
        Self::parse(r.page_size, &r.page_token, 1, |p| {
            one(p, |v| TenantId::new(v).ok())
        })
    }
}

impl TryFrom<&proto::ListUsersRequest> for Page<UserId> {
    type Error = FieldError;
    fn try_from(r: &proto::ListUsersRequest) -> Result<Self, FieldError> {
        Self::parse(r.page_size, &r.page_token, 1, |p| {
            one(p, |v| UserId::new(v).ok())
        })
    }
}

impl TryFrom<&proto::ListRolesRequest> for Page<RoleName> {
    type Error = FieldError;
    fn try_from(r: &proto::ListRolesRequest) -> Result<Self, FieldError> {
        Self::parse(r.page_size, &r.page_token, 1, |p| {
            one(p, |v| RoleName::new(v).ok())
        })
    }
}

impl TryFrom<&proto::ListGroupsRequest> for Page<GroupName> {
    type Error = FieldError;
    fn try_from(r: &proto::ListGroupsRequest) -> Result<Self, FieldError> {
        Self::parse(r.page_size, &r.page_token, 1, |p| {
            one(p, |v| GroupName::new(v).ok())
        })
    }
}

/// Bindings are keyed by subject, then role.
impl TryFrom<&proto::ListBindingsRequest> for Page<(Subject, RoleName)> {
    type Error = FieldError;
    fn try_from(r: &proto::ListBindingsRequest) -> Result<Self, FieldError> {
        Self::parse(r.page_size, &r.page_token, 2, |p| {
            Some((Subject::parse(&p[0]).ok()?, RoleName::new(&p[1]).ok()?))
        })
    }
}

/// The catalog is listed by category, then permission.
impl TryFrom<&proto::ListCatalogRequest> for Page<(String, String)> {
    type Error = FieldError;
    fn try_from(r: &proto::ListCatalogRequest) -> Result<Self, FieldError> {
        Self::parse(r.page_size, &r.page_token, 2, |mut p| {
            let permission = p.pop()?;
            let category = p.pop()?;
            Some((category, permission))
        })
    }
}
