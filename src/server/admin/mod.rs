//! The `rampart.v1.Admin` service: each mutating call becomes one
//! `Mutation` submitted to the engine's one writer; list calls read the
//! current snapshot. Request fields become model values in
//! `convert::admin`, nowhere else.
//!
//! - `writes.rs`: the changes (convert, check the actor, submit).
//! - `reads.rs`: the listings, from the current snapshot.
//! - `audit.rs`: ListAuditLog, from the store.

mod audit;
mod reads;
mod writes;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::proto::{self, admin_server::Admin};
use crate::server::auth::Principal;

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
}

type MutationResult = Result<Response<proto::MutationResponse>, Status>;

/// The authenticated caller (set by the auth layer; `None` when the server
/// runs without credentials) and the message.
fn caller<T>(request: Request<T>) -> (Option<Principal>, T) {
    let who = request.extensions().get::<Principal>().cloned();
    (who, request.into_inner())
}

/// The user a call names as its `actor`, as the credential allows: a
/// credential bound to an actor acts (and reads) as that user, always, so
/// an empty `actor` means that one and another is refused.
fn acting_as<'a>(who: Option<&'a Principal>, actor: &'a str) -> Result<&'a str, Status> {
    match who.and_then(|w| w.bounds.actor.as_deref()) {
        Some(bound) if actor.is_empty() || actor == bound => Ok(bound),
        Some(bound) => Err(Status::permission_denied(format!(
            "credential `{}` acts as `{bound}` only; the call names actor `{}`",
            who.map_or("", |w| &w.name),
            crate::model::quote(actor)
        ))),
        None => Ok(actor),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_tenant(&self, r: Request<proto::CreateTenantRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn update_tenant(&self, r: Request<proto::UpdateTenantRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn delete_tenant(&self, r: Request<proto::DeleteTenantRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn list_tenants(
        &self,
        r: Request<proto::ListTenantsRequest>,
    ) -> Result<Response<proto::ListTenantsResponse>, Status> {
        reads::list_tenants(&self.engine, r)
    }

    async fn define_catalog_entry(
        &self,
        r: Request<proto::DefineCatalogEntryRequest>,
    ) -> MutationResult {
        writes::change(self, r).await
    }

    async fn set_catalog_stability(
        &self,
        r: Request<proto::SetCatalogStabilityRequest>,
    ) -> MutationResult {
        writes::change(self, r).await
    }

    async fn remove_catalog_entry(
        &self,
        r: Request<proto::RemoveCatalogEntryRequest>,
    ) -> MutationResult {
        writes::change(self, r).await
    }

    async fn list_catalog(
        &self,
        r: Request<proto::ListCatalogRequest>,
    ) -> Result<Response<proto::ListCatalogResponse>, Status> {
        reads::list_catalog(&self.engine, r)
    }

    async fn set_bridges_grants(
        &self,
        r: Request<proto::SetBridgesGrantsRequest>,
    ) -> MutationResult {
        writes::change(self, r).await
    }

    async fn create_role(&self, r: Request<proto::CreateRoleRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn update_role_description(
        &self,
        r: Request<proto::UpdateRoleDescriptionRequest>,
    ) -> MutationResult {
        writes::change(self, r).await
    }

    async fn delete_role(&self, r: Request<proto::DeleteRoleRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn get_role(
        &self,
        r: Request<proto::GetRoleRequest>,
    ) -> Result<Response<proto::RoleInfo>, Status> {
        reads::get_role(&self.engine, r)
    }

    async fn list_roles(
        &self,
        r: Request<proto::ListRolesRequest>,
    ) -> Result<Response<proto::ListRolesResponse>, Status> {
        reads::list_roles(&self.engine, r)
    }

    async fn grant(&self, r: Request<proto::GrantRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn revoke(&self, r: Request<proto::RevokeRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn set_grants(&self, r: Request<proto::SetGrantsRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn create_group(&self, r: Request<proto::CreateGroupRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn delete_group(&self, r: Request<proto::DeleteGroupRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn add_member(&self, r: Request<proto::AddMemberRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn remove_member(&self, r: Request<proto::RemoveMemberRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn list_groups(
        &self,
        r: Request<proto::ListGroupsRequest>,
    ) -> Result<Response<proto::ListGroupsResponse>, Status> {
        reads::list_groups(&self.engine, r)
    }

    async fn add_user(&self, r: Request<proto::AddUserRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn update_user_status(
        &self,
        r: Request<proto::UpdateUserStatusRequest>,
    ) -> MutationResult {
        writes::change(self, r).await
    }

    async fn update_user_info(&self, r: Request<proto::UpdateUserInfoRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn remove_user(&self, r: Request<proto::RemoveUserRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn list_users(
        &self,
        r: Request<proto::ListUsersRequest>,
    ) -> Result<Response<proto::ListUsersResponse>, Status> {
        reads::list_users(&self.engine, r)
    }

    async fn assign(&self, r: Request<proto::AssignRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn unassign(&self, r: Request<proto::UnassignRequest>) -> MutationResult {
        writes::change(self, r).await
    }

    async fn list_bindings(
        &self,
        r: Request<proto::ListBindingsRequest>,
    ) -> Result<Response<proto::ListBindingsResponse>, Status> {
        reads::list_bindings(&self.engine, r)
    }

    async fn list_audit_log(
        &self,
        r: Request<proto::ListAuditLogRequest>,
    ) -> Result<Response<proto::ListAuditLogResponse>, Status> {
        audit::list_audit_log(&self.engine, r).await
    }
}
