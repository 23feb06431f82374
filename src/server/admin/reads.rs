//! The Admin listings (tenants, catalog, roles, groups, users, bindings):
//! each answered from the current snapshot, at its revision.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::model::Subject;
use crate::policy::Snapshot;
use crate::proto;
use crate::server::convert::admin::{BindingFilter, RoleLookup, grant_spec, kind_name};

/// The tenant `id` in `snapshot`, or NOT_FOUND naming it.
fn known_tenant<'a>(
    snapshot: &'a Snapshot,
    id: &str,
) -> Result<&'a Arc<crate::model::Tenant>, Status> {
    snapshot
        .state()
        .tenant(id)
        .ok_or_else(|| Status::not_found(format!("unknown tenant `{}`", crate::model::quote(id))))
}

pub(super) fn list_tenants(
    engine: &Engine,
    _r: Request<proto::ListTenantsRequest>,
) -> Result<Response<proto::ListTenantsResponse>, Status> {
    let snapshot = engine.load();
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

pub(super) fn list_catalog(
    engine: &Engine,
    r: Request<proto::ListCatalogRequest>,
) -> Result<Response<proto::ListCatalogResponse>, Status> {
    let r = r.into_inner();
    let snapshot = engine.load();
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

pub(super) fn get_role(
    engine: &Engine,
    r: Request<proto::GetRoleRequest>,
) -> Result<Response<proto::RoleInfo>, Status> {
    let r = r.into_inner();
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, &r.tenant)?;
    let RoleLookup { role: name } = RoleLookup::try_from(&r)?;
    let found = t.roles.get(&name).ok_or_else(|| {
        Status::not_found(format!(
            "unknown role `{name}` in tenant `{}`",
            crate::model::quote(&r.tenant)
        ))
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

pub(super) fn list_roles(
    engine: &Engine,
    r: Request<proto::ListRolesRequest>,
) -> Result<Response<proto::ListRolesResponse>, Status> {
    let r = r.into_inner();
    let snapshot = engine.load();
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

pub(super) fn list_groups(
    engine: &Engine,
    r: Request<proto::ListGroupsRequest>,
) -> Result<Response<proto::ListGroupsResponse>, Status> {
    let r = r.into_inner();
    let snapshot = engine.load();
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

pub(super) fn list_users(
    engine: &Engine,
    r: Request<proto::ListUsersRequest>,
) -> Result<Response<proto::ListUsersResponse>, Status> {
    let r = r.into_inner();
    let snapshot = engine.load();
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

pub(super) fn list_bindings(
    engine: &Engine,
    r: Request<proto::ListBindingsRequest>,
) -> Result<Response<proto::ListBindingsResponse>, Status> {
    let r = r.into_inner();
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, &r.tenant)?;
    let BindingFilter { subject: only } = BindingFilter::try_from(&r)?;
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
