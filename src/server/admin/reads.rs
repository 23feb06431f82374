//! The Admin listings (tenants, catalog, roles, groups, users, bindings):
//! each answered from the current snapshot, at its revision, a page at a
//! time: a page is the rows after the token's key, in key order, so paging
//! is stable across concurrent writes.
//!
//! A read of a tenant's roles, groups, users or bindings may name an
//! `actor`: it is then made as that user, by the read rules
//! (`model::rules::Reader`): GetRole is refused without the role's
//! permission, and a list leaves out the rows the user may not see (a page
//! fills with the rows it may, and its token is the last one's key).

use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;
use prost::Message;

use tonic::{Request, Response, Status};

use super::{acting_as, caller};
use crate::engine::{Engine, Scope};
use crate::model::rules::{ReadOp, Reader, Row};
use crate::model::{Subject, Tenant, Timestamp};
use crate::policy::Snapshot;
use crate::proto;
use crate::server::auth::{Principal, confine};
use crate::server::convert::admin::{
    BindingFilter, PAGE_BYTES, Page, RoleLookup, actor, grant_spec, kind_name, page_token,
    settings_info,
};

/// The entries of `map` after `after` (none: all), in key order.
fn after<'a, K: Ord + Clone, V: Clone>(
    map: &'a OrdMap<K, V>,
    after: &Option<K>,
) -> impl Iterator<Item = (&'a K, &'a V)> {
    let start = after.clone().map_or(Bound::Unbounded, Bound::Excluded);
    map.range((start, Bound::Unbounded))
}

/// One page of `rows` (each with its key, in key order, from where the
/// page starts): at most `size` rows, fewer once they pass [`PAGE_BYTES`]
/// encoded (but always one), and the token of the page after it (empty:
/// this is the last).
fn page<K, T: Message>(
    rows: impl Iterator<Item = (K, T)>,
    size: usize,
    token: impl Fn(&K) -> String,
) -> (Vec<T>, String) {
    let mut rows = rows.peekable();
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some((key, row)) = rows.next() {
        bytes += row.encoded_len();
        out.push(row);
        if out.len() >= size || bytes >= PAGE_BYTES {
            let next = if rows.peek().is_some() {
                token(&key)
            } else {
                String::new()
            };
            return (out, next);
        }
    }
    (out, String::new())
}

/// The tenant `id` in `snapshot`, or NOT_FOUND naming it (saying so when
/// the node holds other tenants only, `serve --tenants`); first,
/// PERMISSION_DENIED if the caller's credential is confined elsewhere.
fn known_tenant<'a>(
    snapshot: &'a Snapshot,
    scope: Option<&Scope>,
    who: Option<&Principal>,
    id: &str,
) -> Result<&'a Arc<crate::model::Tenant>, Status> {
    confine(who, id)?;
    snapshot.state().tenant(id).ok_or_else(|| match scope {
        Some(scope) if !scope.holds(id) => Status::not_found(scope.not_served(id)),
        _ => Status::not_found(format!("unknown tenant `{}`", crate::model::quote(id))),
    })
}

/// Who reads tenant `t`: the request's `actor` as the credential allows
/// ([`acting_as`]; malformed: INVALID_ARGUMENT naming `actor`), admitted by
/// the read rules: the credential itself, or an active member.
fn reader(
    snapshot: &Snapshot,
    who: Option<&Principal>,
    t: &Tenant,
    actor_name: &str,
) -> Result<Reader, Status> {
    let actor = actor(acting_as(who, actor_name)?)?;
    Reader::admit(snapshot.state(), snapshot, &actor, &t.id, Timestamp::now())
        .map_err(|e| proto::status(&e))
}

pub(super) fn list_tenants(
    engine: &Engine,
    r: Request<proto::ListTenantsRequest>,
) -> Result<Response<proto::ListTenantsResponse>, Status> {
    let Page { size, after } = Page::try_from(r.get_ref())?;
    let (who, _) = caller(r);
    let snapshot = engine.load();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let tenants = snapshot
        .state()
        .tenants
        .range((start, Bound::Unbounded))
        // A confined credential sees its own tenants only.
        .filter(|(k, _)| who.as_ref().is_none_or(|w| w.may_see(k.as_str())))
        .map(|(k, t)| {
            let row = proto::TenantInfo {
                tenant: t.id.to_string(),
                name: t.name.clone(),
                settings: Some(settings_info(&t.settings)),
                roles: t.roles.len() as u32,
                groups: t.groups.len() as u32,
                users: t.users.len() as u32,
            };
            (k, row)
        });
    let (tenants, next_page_token) = page(tenants, size, |k| page_token(&[k.as_str()]));
    Ok(Response::new(proto::ListTenantsResponse {
        tenants,
        revision: snapshot.revision(),
        next_page_token,
    }))
}

pub(super) fn list_catalog(
    engine: &Engine,
    r: Request<proto::ListCatalogRequest>,
) -> Result<Response<proto::ListCatalogResponse>, Status> {
    let r = r.into_inner();
    let Page { size, after } = Page::<(String, String)>::try_from(&r)?;
    let snapshot = engine.load();
    let mut entries: Vec<proto::CatalogEntry> = snapshot
        .state()
        .catalog
        .entries()
        .iter()
        .filter(|e| r.category.is_empty() || e.category == r.category)
        .filter(|e| {
            after.as_ref().is_none_or(|(c, p)| {
                (e.category.as_str(), e.pattern.as_str()) > (c.as_str(), p.as_str())
            })
        })
        .map(|e| proto::CatalogEntry {
            permission: e.pattern.as_str().to_owned(),
            category: e.category.clone(),
            description: e.description.clone(),
            stability: e.stability.as_str().to_owned(),
            builtin: e.builtin,
        })
        .collect();
    entries.sort_by(|a, b| (&a.category, &a.permission).cmp(&(&b.category, &b.permission)));
    let (entries, next_page_token) = page(
        entries
            .into_iter()
            .map(|e| ((e.category.clone(), e.permission.clone()), e)),
        size,
        |(c, p)| page_token(&[c, p]),
    );
    Ok(Response::new(proto::ListCatalogResponse {
        entries,
        revision: snapshot.revision(),
        next_page_token,
    }))
}

pub(super) fn get_role(
    engine: &Engine,
    r: Request<proto::GetRoleRequest>,
) -> Result<Response<proto::RoleInfo>, Status> {
    let (who, r) = caller(r);
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, engine.scope(), who.as_ref(), &r.tenant)?;
    let RoleLookup { role: name } = RoleLookup::try_from(&r)?;
    let found = reader(&snapshot, who.as_ref(), t, &r.actor)?
        .get_role(t, &name)
        .map_err(|e| proto::status(&e))?;
    Ok(Response::new(proto::RoleInfo {
        role: name.to_string(),
        description: found.description.clone(),
        kind: kind_name(&name).to_owned(),
        members: t.bindings.values().filter(|b| b.role == name).count() as u32,
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
    let (who, r) = caller(r);
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, engine.scope(), who.as_ref(), &r.tenant)?;
    let Page { size, after: start } = Page::try_from(&r)?;
    let reader = reader(&snapshot, who.as_ref(), t, &r.actor)?;
    let roles = after(&t.roles, &start)
        .filter(|(k, _)| reader.sees(ReadOp::ListRoles, Row::Role(k)))
        .map(|(k, role)| {
            let row = proto::RoleSummary {
                role: role.name.to_string(),
                description: role.description.clone(),
                kind: kind_name(&role.name).to_owned(),
                members: t.bindings.values().filter(|b| b.role == role.name).count() as u32,
                grants: snapshot.state().grants_of(role).len() as u32,
            };
            (k, row)
        });
    let (roles, next_page_token) = page(roles, size, |k| page_token(&[k.as_str()]));
    Ok(Response::new(proto::ListRolesResponse {
        roles,
        revision: snapshot.revision(),
        next_page_token,
    }))
}

pub(super) fn list_groups(
    engine: &Engine,
    r: Request<proto::ListGroupsRequest>,
) -> Result<Response<proto::ListGroupsResponse>, Status> {
    let (who, r) = caller(r);
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, engine.scope(), who.as_ref(), &r.tenant)?;
    let Page { size, after: start } = Page::try_from(&r)?;
    let reader = reader(&snapshot, who.as_ref(), t, &r.actor)?;
    let groups = after(&t.groups, &start)
        .filter(|(k, _)| reader.sees(ReadOp::ListGroups, Row::Group(k)))
        .map(|(k, g)| {
            let row = proto::GroupInfo {
                group: g.name.to_string(),
                description: g.description.clone(),
                members: g.members.iter().map(Subject::reference).collect(),
            };
            (k, row)
        });
    let (groups, next_page_token) = page(groups, size, |k| page_token(&[k.as_str()]));
    Ok(Response::new(proto::ListGroupsResponse {
        groups,
        revision: snapshot.revision(),
        next_page_token,
    }))
}

pub(super) fn list_users(
    engine: &Engine,
    r: Request<proto::ListUsersRequest>,
) -> Result<Response<proto::ListUsersResponse>, Status> {
    let (who, r) = caller(r);
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, engine.scope(), who.as_ref(), &r.tenant)?;
    let Page { size, after: start } = Page::try_from(&r)?;
    let reader = reader(&snapshot, who.as_ref(), t, &r.actor)?;
    let users = after(&t.users, &start)
        .filter(|(k, _)| reader.sees(ReadOp::ListUsers, Row::User(k)))
        .map(|(k, u)| {
            let row = proto::UserInfo {
                user: u.id.to_string(),
                email: u.email().unwrap_or_default().to_owned(),
                display_name: u.display_name().unwrap_or_default().to_owned(),
                status: u.status.as_str().to_owned(),
                aliases: u.aliases().iter().map(|a| a.to_string()).collect(),
                attributes: u
                    .attributes()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            (k, row)
        });
    let (users, next_page_token) = page(users, size, |k| page_token(&[k.as_str()]));
    Ok(Response::new(proto::ListUsersResponse {
        users,
        revision: snapshot.revision(),
        next_page_token,
    }))
}

pub(super) fn list_bindings(
    engine: &Engine,
    r: Request<proto::ListBindingsRequest>,
) -> Result<Response<proto::ListBindingsResponse>, Status> {
    let (who, r) = caller(r);
    let snapshot = engine.load();
    let t = known_tenant(&snapshot, engine.scope(), who.as_ref(), &r.tenant)?;
    let BindingFilter { subject: only } = BindingFilter::try_from(&r)?;
    let Page { size, after: start } = Page::try_from(&r)?;
    let reader = reader(&snapshot, who.as_ref(), t, &r.actor)?;
    let bindings = t
        .bindings
        .after(start.as_ref().map(|(s, r)| (s, r)))
        .filter(|b| only.as_ref().is_none_or(|s| *s == b.subject))
        .filter(|b| reader.sees(ReadOp::ListBindings, Row::subject(&b.subject)))
        .map(|b| {
            let row = proto::BindingInfo {
                subject: b.subject.reference(),
                role: b.role.to_string(),
                expires: b.expires.map(|e| e.to_string()).unwrap_or_default(),
            };
            ((&b.subject, &b.role), row)
        });
    let (bindings, next_page_token) = page(bindings, size, |(s, role)| {
        page_token(&[&s.reference(), role.as_str()])
    });
    Ok(Response::new(proto::ListBindingsResponse {
        bindings,
        revision: snapshot.revision(),
        next_page_token,
    }))
}
