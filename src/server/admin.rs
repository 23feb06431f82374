//! The `rampart.v1.Admin` service: each mutating call becomes one
//! `Mutation` submitted to the engine's one writer; list calls read the
//! current snapshot. Field conversions and refusal codes live here and in
//! `convert.rs`, nowhere else.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::{Principal, Scope};
use crate::engine::{Committed, Engine, SubmitError};
use crate::model::audit::{AuditFilter, Outcome};
use crate::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use crate::model::rules::Actor;
use crate::model::tenant::RoleKind;
use crate::model::{
    Effect, Grant, GrantPattern, GroupName, Mutation, RoleName, Subject, TenantId, TenantSettings,
    Timestamp, UserId, UserStatus,
};
use crate::proto::{self, admin_server::Admin};

/// The service.
#[derive(Debug, Clone)]
pub struct AdminService {
    engine: Arc<Engine>,
    /// Set on a read replica: admin calls are refused, naming the leader.
    leader: Option<String>,
}

impl AdminService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            leader: None,
        }
    }

    /// On a read replica: refuse changes, naming the leader.
    pub fn with_leader(mut self, leader: Option<String>) -> Self {
        self.leader = leader;
        self
    }

    /// Submits a change. `who` is the authenticated caller (`None` when the
    /// server runs without credentials): acting as the operator (an empty
    /// `actor`) needs its `operator` scope, and the audit log records its
    /// name as the credential.
    async fn submit(
        &self,
        who: Option<&Principal>,
        actor: &str,
        dry_run: bool,
        mutation: Mutation,
    ) -> Result<Response<proto::MutationResponse>, Status> {
        if let Some(who) = who
            && actor.is_empty()
            && !who.has(Scope::Operator)
        {
            return Err(Status::permission_denied(format!(
                "acting as the operator (an empty `actor`) needs the `operator` scope; `{}` has {}",
                who.name, who.scopes
            )));
        }
        if let Some(leader) = &self.leader {
            return Err(Status::failed_precondition(format!(
                "this node is a read replica: send admin calls to the leader at {leader}"
            )));
        }
        let actor = if actor.is_empty() {
            Actor::Operator
        } else {
            Actor::User(field("actor", UserId::new(actor))?)
        };
        let credential = match (who, &actor) {
            (Some(who), _) => &*who.name,
            (None, Actor::Operator) => "operator",
            (None, Actor::User(_)) => "user",
        };
        let kind = mutation.kind();
        match self
            .engine
            .submit(actor, credential, mutation, dry_run)
            .await
        {
            Ok(Committed {
                revision,
                dry_run,
                mutation,
            }) => {
                tracing::info!(kind, revision, dry_run, "mutation accepted");
                Ok(Response::new(proto::MutationResponse {
                    revision,
                    dry_run,
                    change: serde_json::to_string(&mutation).unwrap_or_default(),
                }))
            }
            Err(SubmitError::Refused(e)) => {
                tracing::info!(kind, refusal = ?e.refusal(), message = %e, "mutation refused");
                Err(proto::status(&e))
            }
            Err(SubmitError::Store(e)) => {
                tracing::error!(kind, error = %e, "store failed");
                Err(Status::unavailable(format!(
                    "the change was not committed: {e}"
                )))
            }
            Err(SubmitError::ReadOnly(m)) => Err(Status::failed_precondition(m)),
        }
    }
}

/// The authenticated caller (set by the auth layer) and the message.
fn caller<T>(request: Request<T>) -> (Option<Principal>, T) {
    let who = request.extensions().get::<Principal>().cloned();
    (who, request.into_inner())
}

/// A field's validation error as INVALID_ARGUMENT naming the field.
fn field<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, Status> {
    r.map_err(|e| Status::invalid_argument(format!("`{name}`: {e}")))
}

fn tenant(v: &str) -> Result<TenantId, Status> {
    field("tenant", TenantId::new(v))
}
fn role(v: &str) -> Result<RoleName, Status> {
    field("role", RoleName::new(v))
}
fn group(v: &str) -> Result<GroupName, Status> {
    field("group", GroupName::new(v))
}
fn user(v: &str) -> Result<UserId, Status> {
    field("user", UserId::new(v))
}
fn subject(name: &str, v: &str) -> Result<Subject, Status> {
    field(name, Subject::parse(v))
}
fn grant(spec: Option<&proto::GrantSpec>) -> Result<Grant, Status> {
    let spec = spec.ok_or_else(|| Status::invalid_argument("`grant` is required"))?;
    let effect = match spec.effect.as_str() {
        "" | "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => {
            return Err(Status::invalid_argument(format!(
                "`grant.effect` must be allow or deny, not `{other}`"
            )));
        }
    };
    Ok(Grant {
        effect,
        pattern: field("grant.pattern", GrantPattern::parse(&spec.pattern))?,
    })
}
fn grants(specs: &[proto::GrantSpec]) -> Result<Vec<Grant>, Status> {
    specs.iter().map(|g| grant(Some(g))).collect()
}
fn stability(v: &str) -> Result<Stability, Status> {
    if v.is_empty() {
        return Ok(Stability::Stable);
    }
    Stability::parse(v).ok_or_else(|| {
        Status::invalid_argument(format!(
            "`stability` must be stable, preview or deprecated, not `{v}`"
        ))
    })
}
fn status(v: &str) -> Result<UserStatus, Status> {
    if v.is_empty() {
        return Ok(UserStatus::Active);
    }
    UserStatus::parse(v).ok_or_else(|| {
        Status::invalid_argument(format!("`status` must be active or inactive, not `{v}`"))
    })
}
fn optional(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}
fn settings(s: Option<&proto::TenantSettings>) -> TenantSettings {
    TenantSettings {
        single_role_per_user: s.is_some_and(|s| s.single_role_per_user),
    }
}
fn grant_spec(g: &Grant) -> proto::GrantSpec {
    proto::GrantSpec {
        effect: g.effect.as_str().to_owned(),
        pattern: g.pattern.as_str().to_owned(),
    }
}
fn kind_name(r: &RoleName) -> &'static str {
    match RoleKind::of(r) {
        RoleKind::Administrators => "administrators",
        RoleKind::Users => "users",
        RoleKind::Bridges => "bridges",
        RoleKind::Custom => "custom",
    }
}

/// The tenant `id` in `snapshot`, or NOT_FOUND naming it.
fn known_tenant<'a>(
    snapshot: &'a crate::policy::Snapshot,
    id: &str,
) -> Result<&'a Arc<crate::model::Tenant>, Status> {
    snapshot
        .state()
        .tenant(id)
        .ok_or_else(|| Status::not_found(format!("unknown tenant `{id}`")))
}

type MutationResult = Result<Response<proto::MutationResponse>, Status>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_tenant(&self, r: Request<proto::CreateTenantRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::CreateTenant {
            tenant: tenant(&r.tenant)?,
            name: if r.name.is_empty() {
                r.tenant.clone()
            } else {
                r.name
            },
            settings: settings(r.settings.as_ref()),
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn update_tenant(&self, r: Request<proto::UpdateTenantRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::UpdateTenant {
            tenant: tenant(&r.tenant)?,
            name: r.name,
            settings: r.settings.as_ref().map(|s| settings(Some(s))),
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn delete_tenant(&self, r: Request<proto::DeleteTenantRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::DeleteTenant {
            tenant: tenant(&r.tenant)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn list_tenants(
        &self,
        _r: Request<proto::ListTenantsRequest>,
    ) -> Result<Response<proto::ListTenantsResponse>, Status> {
        let snapshot = self.engine.load();
        let tenants = snapshot
            .state()
            .tenants
            .values()
            .map(|t| proto::TenantInfo {
                tenant: t.id.to_string(),
                name: t.name.clone(),
                settings: Some(proto::TenantSettings {
                    single_role_per_user: t.settings.single_role_per_user,
                }),
                roles: t.roles.len() as u32,
                groups: t.groups.len() as u32,
                users: t.users.len() as u32,
            })
            .collect();
        Ok(Response::new(proto::ListTenantsResponse {
            tenants,
            revision: snapshot.revision(),
        }))
    }

    async fn define_catalog_entry(
        &self,
        r: Request<proto::DefineCatalogEntryRequest>,
    ) -> MutationResult {
        let (who, r) = caller(r);
        let e = r
            .entry
            .ok_or_else(|| Status::invalid_argument("`entry` is required"))?;
        let m = Mutation::DefineCatalogEntry {
            entry: CatalogEntry {
                pattern: field("entry.permission", CatalogPattern::parse(&e.permission))?,
                category: e.category,
                description: e.description,
                stability: stability(&e.stability)?,
                builtin: false,
            },
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn set_catalog_stability(
        &self,
        r: Request<proto::SetCatalogStabilityRequest>,
    ) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::SetCatalogStability {
            permission: field("permission", CatalogPattern::parse(&r.permission))?,
            stability: stability(&r.stability)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn remove_catalog_entry(
        &self,
        r: Request<proto::RemoveCatalogEntryRequest>,
    ) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::RemoveCatalogEntry {
            permission: field("permission", CatalogPattern::parse(&r.permission))?,
            cascade: r.cascade,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn list_catalog(
        &self,
        r: Request<proto::ListCatalogRequest>,
    ) -> Result<Response<proto::ListCatalogResponse>, Status> {
        let r = r.into_inner();
        let snapshot = self.engine.load();
        let mut entries: Vec<proto::CatalogEntry> = snapshot
            .state()
            .catalog
            .entries()
            .iter()
            .filter(|e| r.category.is_empty() || e.category == r.category)
            .map(|e| proto::CatalogEntry {
                permission: e.pattern.as_str().to_owned(),
                category: e.category.clone(),
                description: e.description.clone(),
                stability: e.stability.as_str().to_owned(),
                builtin: e.builtin,
            })
            .collect();
        entries.sort_by(|a, b| (&a.category, &a.permission).cmp(&(&b.category, &b.permission)));
        Ok(Response::new(proto::ListCatalogResponse {
            entries,
            revision: snapshot.revision(),
        }))
    }

    async fn set_bridges_grants(
        &self,
        r: Request<proto::SetBridgesGrantsRequest>,
    ) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::SetBridgesGrants {
            grants: grants(&r.grants)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn create_role(&self, r: Request<proto::CreateRoleRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::CreateRole {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            description: r.description,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn update_role_description(
        &self,
        r: Request<proto::UpdateRoleDescriptionRequest>,
    ) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::UpdateRoleDescription {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            description: r.description,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn delete_role(&self, r: Request<proto::DeleteRoleRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::DeleteRole {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn get_role(
        &self,
        r: Request<proto::GetRoleRequest>,
    ) -> Result<Response<proto::RoleInfo>, Status> {
        let r = r.into_inner();
        let snapshot = self.engine.load();
        let t = known_tenant(&snapshot, &r.tenant)?;
        let name = role(&r.role)?;
        let found = t.roles.get(&name).ok_or_else(|| {
            Status::not_found(format!("unknown role `{name}` in tenant `{}`", r.tenant))
        })?;
        Ok(Response::new(proto::RoleInfo {
            role: name.to_string(),
            description: found.description.clone(),
            kind: kind_name(&name).to_owned(),
            members: t.bindings.keys().filter(|(_, r)| *r == name).count() as u32,
            grants: snapshot
                .state()
                .grants_of(found)
                .iter()
                .map(grant_spec)
                .collect(),
            revision: snapshot.revision(),
        }))
    }

    async fn list_roles(
        &self,
        r: Request<proto::ListRolesRequest>,
    ) -> Result<Response<proto::ListRolesResponse>, Status> {
        let r = r.into_inner();
        let snapshot = self.engine.load();
        let t = known_tenant(&snapshot, &r.tenant)?;
        let roles = t
            .roles
            .values()
            .map(|role| proto::RoleSummary {
                role: role.name.to_string(),
                description: role.description.clone(),
                kind: kind_name(&role.name).to_owned(),
                members: t.bindings.keys().filter(|(_, r)| *r == role.name).count() as u32,
                grants: snapshot.state().grants_of(role).len() as u32,
            })
            .collect();
        Ok(Response::new(proto::ListRolesResponse {
            roles,
            revision: snapshot.revision(),
        }))
    }

    async fn grant(&self, r: Request<proto::GrantRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::Grant {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            grant: grant(r.grant.as_ref())?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn revoke(&self, r: Request<proto::RevokeRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::Revoke {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            grant: grant(r.grant.as_ref())?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn set_grants(&self, r: Request<proto::SetGrantsRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::SetGrants {
            tenant: tenant(&r.tenant)?,
            role: role(&r.role)?,
            grants: grants(&r.grants)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn create_group(&self, r: Request<proto::CreateGroupRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::CreateGroup {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
            description: r.description,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn delete_group(&self, r: Request<proto::DeleteGroupRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::DeleteGroup {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn add_member(&self, r: Request<proto::AddMemberRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::AddMember {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
            member: subject("member", &r.member)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn remove_member(&self, r: Request<proto::RemoveMemberRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::RemoveMember {
            tenant: tenant(&r.tenant)?,
            group: group(&r.group)?,
            member: subject("member", &r.member)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn list_groups(
        &self,
        r: Request<proto::ListGroupsRequest>,
    ) -> Result<Response<proto::ListGroupsResponse>, Status> {
        let r = r.into_inner();
        let snapshot = self.engine.load();
        let t = known_tenant(&snapshot, &r.tenant)?;
        let groups = t
            .groups
            .values()
            .map(|g| proto::GroupInfo {
                group: g.name.to_string(),
                description: g.description.clone(),
                members: g.members.iter().map(Subject::reference).collect(),
            })
            .collect();
        Ok(Response::new(proto::ListGroupsResponse {
            groups,
            revision: snapshot.revision(),
        }))
    }

    async fn add_user(&self, r: Request<proto::AddUserRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::AddUser {
            tenant: tenant(&r.tenant)?,
            user: user(&r.user)?,
            email: optional(&r.email),
            display_name: optional(&r.display_name),
            status: status(&r.status)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn update_user_status(
        &self,
        r: Request<proto::UpdateUserStatusRequest>,
    ) -> MutationResult {
        let (who, r) = caller(r);
        if r.status.is_empty() {
            return Err(Status::invalid_argument(
                "`status` must be active or inactive",
            ));
        }
        let m = Mutation::UpdateUserStatus {
            tenant: tenant(&r.tenant)?,
            user: user(&r.user)?,
            status: status(&r.status)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn update_user_info(&self, r: Request<proto::UpdateUserInfoRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::UpdateUserInfo {
            user: user(&r.user)?,
            email: r.email,
            display_name: r.display_name,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn remove_user(&self, r: Request<proto::RemoveUserRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::RemoveUser {
            tenant: tenant(&r.tenant)?,
            user: user(&r.user)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn list_users(
        &self,
        r: Request<proto::ListUsersRequest>,
    ) -> Result<Response<proto::ListUsersResponse>, Status> {
        let r = r.into_inner();
        let snapshot = self.engine.load();
        let t = known_tenant(&snapshot, &r.tenant)?;
        let users = t
            .users
            .values()
            .map(|u| proto::UserInfo {
                user: u.id.to_string(),
                email: u.email.clone().unwrap_or_default(),
                display_name: u.display_name.clone().unwrap_or_default(),
                status: u.status.as_str().to_owned(),
            })
            .collect();
        Ok(Response::new(proto::ListUsersResponse {
            users,
            revision: snapshot.revision(),
        }))
    }

    async fn assign(&self, r: Request<proto::AssignRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let expires = if r.expires.is_empty() {
            None
        } else {
            Some(field("expires", Timestamp::parse(&r.expires))?)
        };
        let m = Mutation::Assign {
            tenant: tenant(&r.tenant)?,
            subject: subject("subject", &r.subject)?,
            role: role(&r.role)?,
            expires,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn unassign(&self, r: Request<proto::UnassignRequest>) -> MutationResult {
        let (who, r) = caller(r);
        let m = Mutation::Unassign {
            tenant: tenant(&r.tenant)?,
            subject: subject("subject", &r.subject)?,
            role: role(&r.role)?,
        };
        self.submit(who.as_ref(), &r.actor, r.dry_run, m).await
    }

    async fn list_bindings(
        &self,
        r: Request<proto::ListBindingsRequest>,
    ) -> Result<Response<proto::ListBindingsResponse>, Status> {
        let r = r.into_inner();
        let snapshot = self.engine.load();
        let t = known_tenant(&snapshot, &r.tenant)?;
        let only = if r.subject.is_empty() {
            None
        } else {
            Some(subject("subject", &r.subject)?)
        };
        let bindings = t
            .bindings
            .values()
            .filter(|b| only.as_ref().is_none_or(|s| *s == b.subject))
            .map(|b| proto::BindingInfo {
                subject: b.subject.reference(),
                role: b.role.to_string(),
                expires: b.expires.map(|e| e.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::ListBindingsResponse {
            bindings,
            revision: snapshot.revision(),
        }))
    }

    async fn list_audit_log(
        &self,
        r: Request<proto::ListAuditLogRequest>,
    ) -> Result<Response<proto::ListAuditLogResponse>, Status> {
        let r = r.into_inner();
        let no_log = || {
            Status::failed_precondition(
                "this server runs without a store, so it keeps no audit log",
            )
        };
        if !self.engine.is_durable() {
            return Err(no_log());
        }
        let limit = match r.page_size {
            0 => 100,
            n if n > 1_000 => {
                return Err(Status::invalid_argument(format!(
                    "`page_size` {n} is more than the limit of 1000"
                )));
            }
            n => n as usize,
        };
        let after_seq = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse().map_err(|_| {
                Status::invalid_argument("`page_token` is not one this server issued")
            })?
        };
        let filter = AuditFilter {
            tenant: optional(&r.tenant),
            actor: optional(&r.actor),
            from_revision: (r.from_revision > 0).then_some(r.from_revision),
            to_revision: (r.to_revision > 0).then_some(r.to_revision),
            after_seq,
            limit: limit + 1,
        };
        // Any store failure is UNAVAILABLE here, whatever its kind.
        let Some(mut records) = self
            .engine
            .audit(filter)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
        else {
            return Err(no_log());
        };
        let more = records.len() > limit;
        records.truncate(limit);
        let next_page_token = if more {
            records
                .last()
                .map(|r| r.seq.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let entries = records
            .into_iter()
            .map(|a| {
                let (outcome, code, message) = match a.outcome {
                    Outcome::Applied => ("applied".to_owned(), String::new(), String::new()),
                    Outcome::Refused { code, message } => ("refused".to_owned(), code, message),
                };
                proto::AuditEntry {
                    seq: a.seq,
                    time: a.time.to_string(),
                    actor: a.actor.unwrap_or_default(),
                    credential: a.credential,
                    revision: a.revision,
                    tenant: a.tenant.unwrap_or_default(),
                    change: serde_json::to_string(&a.mutation).unwrap_or_default(),
                    outcome,
                    code,
                    message,
                }
            })
            .collect();
        Ok(Response::new(proto::ListAuditLogResponse {
            entries,
            next_page_token,
        }))
    }
}
