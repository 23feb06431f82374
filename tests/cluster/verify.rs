//! What a node shows of a writer's part of the state, read through the
//! Admin and Authorization APIs, and compared with the writer's model right
//! after each of its acknowledged changes ([`verify_op`], at its
//! revision). `end.rs` compares everything once the writes are over.

use std::collections::{BTreeMap, BTreeSet};

use rampart::proto;
use tonic::{Code, Status};

use super::model::{Model, Permissions, Role, SHARED_TENANTS, View, foreign_roles};
use super::ops::{G, Op};
use super::{Conn, at_least, transport};

/// The grants of the roles no writer made (system and quickstart roles),
/// read once after setup.
#[derive(Debug, Clone, Default)]
pub struct Fixed(BTreeMap<(String, String), Vec<G>>);

impl Fixed {
    /// Reads them from a node: each shared tenant's foreign roles, and the
    /// system roles as a new tenant has them (`Administrators` and
    /// `Bridges` hold the deployment's grants; `Users` starts empty).
    pub async fn load(conn: &mut Conn) -> Self {
        let mut out = BTreeMap::new();
        for t in SHARED_TENANTS {
            for r in foreign_roles(t) {
                let role = role(conn, t, r).await.unwrap().unwrap();
                out.insert(((*t).to_owned(), (*r).to_owned()), role.grants);
            }
        }
        for r in ["Administrators", "Bridges"] {
            let grants = out[&("acme".to_owned(), r.to_owned())].clone();
            out.insert(("*".to_owned(), r.to_owned()), grants);
        }
        out.insert(("*".to_owned(), "Users".to_owned()), Vec::new());
        Self(out)
    }

    pub fn grants(&self, t: &str, r: &str) -> Vec<G> {
        self.0
            .get(&(t.to_owned(), r.to_owned()))
            .or_else(|| self.0.get(&("*".to_owned(), r.to_owned())))
            .cloned()
            .unwrap_or_default()
    }
}

fn grant(spec: &proto::GrantSpec) -> G {
    G {
        deny: spec.effect == "deny",
        pattern: spec.pattern.clone(),
    }
}

fn not_found<T>(r: Result<T, Status>) -> Result<Option<T>, Status> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::NotFound && !transport(&s) => Ok(None),
        Err(s) => Err(s),
    }
}

/// A role's description and grants; `None` if it (or its tenant) is not there.
pub async fn role(conn: &mut Conn, t: &str, r: &str) -> Result<Option<Role>, Status> {
    let info = not_found(
        conn.admin
            .get_role(proto::GetRoleRequest {
                tenant: t.into(),
                role: r.into(),
                actor: String::new(),
            })
            .await,
    )?;
    Ok(info.map(|i| {
        let i = i.into_inner();
        Role {
            description: i.description,
            grants: i.grants.iter().map(grant).collect(),
        }
    }))
}

/// `ListSubjectPermissions` at `revision` or later; `None` for a
/// subject (or tenant) that is not there.
pub async fn permissions(
    conn: &mut Conn,
    t: &str,
    u: &str,
    revision: u64,
) -> Result<Option<Permissions>, Status> {
    let answer = not_found(
        conn.authz
            .list_subject_permissions(proto::ListSubjectPermissionsRequest {
                tenant: t.into(),
                subject: u.into(),
                consistency: Some(at_least(revision)),
            })
            .await,
    )?;
    Ok(answer.map(|a| {
        let a = a.into_inner();
        let mut grants: Vec<(String, String, String)> = a
            .permissions
            .into_iter()
            .map(|p| (p.pattern, p.effect, p.role))
            .collect();
        grants.sort();
        let mut roles = a.roles;
        roles.sort();
        Permissions {
            active: a.active,
            roles,
            grants,
        }
    }))
}

/// Every tenant: id → display name.
pub(super) async fn tenants(conn: &mut Conn) -> Result<BTreeMap<String, String>, Status> {
    let mut out = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = conn
            .admin
            .list_tenants(proto::ListTenantsRequest {
                page_size: 10_000,
                page_token,
            })
            .await?
            .into_inner();
        out.extend(page.tenants.into_iter().map(|t| (t.tenant, t.name)));
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

fn unpaged(token: &str, what: &str) {
    assert!(token.is_empty(), "{what} did not fit in one page of 10000");
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A tenant's users: id → (active, email, display name).
async fn users(
    conn: &mut Conn,
    t: &str,
) -> Result<Option<BTreeMap<String, (bool, Option<String>, Option<String>)>>, Status> {
    let page = not_found(
        conn.admin
            .list_users(proto::ListUsersRequest {
                tenant: t.into(),
                page_size: 10_000,
                page_token: String::new(),
                actor: String::new(),
            })
            .await,
    )?;
    Ok(page.map(|p| {
        let p = p.into_inner();
        unpaged(&p.next_page_token, "users");
        p.users
            .into_iter()
            .map(|u| {
                (
                    u.user,
                    (u.status == "active", opt(u.email), opt(u.display_name)),
                )
            })
            .collect()
    }))
}

/// A tenant's groups: name → members.
async fn groups(
    conn: &mut Conn,
    t: &str,
) -> Result<Option<BTreeMap<String, BTreeSet<String>>>, Status> {
    let page = not_found(
        conn.admin
            .list_groups(proto::ListGroupsRequest {
                tenant: t.into(),
                page_size: 10_000,
                page_token: String::new(),
                actor: String::new(),
            })
            .await,
    )?;
    Ok(page.map(|p| {
        let p = p.into_inner();
        unpaged(&p.next_page_token, "groups");
        p.groups
            .into_iter()
            .map(|g| (g.group, g.members.into_iter().collect()))
            .collect()
    }))
}

/// A tenant's bindings (of `subject` only, if given): (subject, role) → expiry.
async fn bindings(
    conn: &mut Conn,
    t: &str,
    subject: Option<&str>,
) -> Result<Option<BTreeMap<(String, String), Option<String>>>, Status> {
    let page = not_found(
        conn.admin
            .list_bindings(proto::ListBindingsRequest {
                tenant: t.into(),
                subject: subject.unwrap_or_default().into(),
                page_size: 10_000,
                page_token: String::new(),
                actor: String::new(),
            })
            .await,
    )?;
    Ok(page.map(|p| {
        let p = p.into_inner();
        unpaged(&p.next_page_token, "bindings");
        p.bindings
            .into_iter()
            .map(|b| ((b.subject, b.role), opt(b.expires)))
            .collect()
    }))
}

/// A tenant's role names.
async fn role_names(conn: &mut Conn, t: &str) -> Result<Option<Vec<String>>, Status> {
    let page = not_found(
        conn.admin
            .list_roles(proto::ListRolesRequest {
                tenant: t.into(),
                page_size: 10_000,
                page_token: String::new(),
                actor: String::new(),
            })
            .await,
    )?;
    Ok(page.map(|p| {
        let p = p.into_inner();
        unpaged(&p.next_page_token, "roles");
        p.roles.into_iter().map(|r| r.role).collect()
    }))
}

/// Whether `name` (a user, role, group, or `group:NAME`) is `prefix`'s.
fn mine(prefix: &str, name: &str) -> bool {
    name.strip_prefix("group:")
        .unwrap_or(name)
        .starts_with(prefix)
}

/// A tenant as one node shows it, read once and cut into each writer's part.
pub(super) struct TenantShown {
    name: String,
    users: BTreeMap<String, (bool, Option<String>, Option<String>)>,
    roles: BTreeMap<String, Role>,
    groups: BTreeMap<String, BTreeSet<String>>,
    bindings: BTreeMap<(String, String), Option<String>>,
}

impl TenantShown {
    pub(super) async fn read(
        conn: &mut Conn,
        t: &str,
        name: String,
    ) -> Result<Option<Self>, Status> {
        let (Some(users), Some(names), Some(groups), Some(bindings)) = (
            users(conn, t).await?,
            role_names(conn, t).await?,
            groups(conn, t).await?,
            bindings(conn, t, None).await?,
        ) else {
            return Ok(None);
        };
        let mut roles = BTreeMap::new();
        for r in names {
            if let Some(role) = role(conn, t, &r).await? {
                roles.insert(r, role);
            }
        }
        Ok(Some(Self {
            name,
            users,
            roles,
            groups,
            bindings,
        }))
    }

    pub(super) fn part(&self, prefix: &str, shared: bool) -> View {
        View {
            name: (!shared).then(|| self.name.clone()),
            users: self
                .users
                .iter()
                .filter(|(u, _)| mine(prefix, u))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            roles: self
                .roles
                .iter()
                .filter(|(r, _)| mine(prefix, r))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|(g, _)| mine(prefix, g))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            bindings: self
                .bindings
                .iter()
                .filter(|((s, _), _)| mine(prefix, s))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// After `op` was acknowledged at `revision`: reads, on `conn`'s node at
/// that revision or later, what `op` changed, and compares it with the
/// writer's `model` (which already includes `op`; nothing of this writer's
/// changes before the writer's next op). `Ok(false)`: the node went away.
pub async fn verify_op(
    conn: &mut Conn,
    revision: u64,
    op: &Op,
    model: &Model,
    fixed: &Fixed,
) -> Result<bool, String> {
    match verify_inner(conn, revision, op, model, fixed).await {
        Ok(()) => Ok(true),
        Err(Failed::Gone) => Ok(false),
        Err(Failed::Differs(e)) => Err(e),
    }
}

enum Failed {
    Gone,
    Differs(String),
}

impl From<Status> for Failed {
    fn from(s: Status) -> Self {
        if transport(&s) {
            Failed::Gone
        } else {
            Failed::Differs(format!("{:?}: {}", s.code(), s.message()))
        }
    }
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, shown: T, expected: T) -> Result<(), Failed> {
    if shown == expected {
        Ok(())
    } else {
        Err(Failed::Differs(format!(
            "{what}: the node shows {shown:?}, expected {expected:?}"
        )))
    }
}

async fn verify_inner(
    conn: &mut Conn,
    revision: u64,
    op: &Op,
    model: &Model,
    fixed: &Fixed,
) -> Result<(), Failed> {
    let at = conn.reach(revision).await?;
    if at < revision {
        return Err(Failed::Differs(format!(
            "answered at {at}, asked at least {revision}"
        )));
    }
    let fixed = |t: &str, r: &str| fixed.grants(t, r);
    let view = |t: &str| model.view(t).unwrap_or_default();
    let check_user = |t: &str, u: &str| model.permissions(t, u, &fixed);
    match op {
        Op::CreateTenant { t, .. } | Op::RenameTenant { t, .. } | Op::DeleteTenant { t } => {
            let shown = tenants(conn).await?.get(t).cloned();
            same(
                &format!("tenant {t}"),
                shown,
                model.view(t).and_then(|v| v.name),
            )?;
        }
        Op::AddUser { t, u, .. } | Op::RemoveUser { t, u } | Op::SetStatus { t, u, .. } => {
            let shown = permissions(conn, t, u, revision).await?;
            same(
                &format!("permissions of {u} in {t}"),
                shown,
                check_user(t, u),
            )?;
            let row = users(conn, t).await?.and_then(|mut all| all.remove(u));
            same(
                &format!("user {u} in {t}"),
                row,
                view(t).users.get(u).cloned(),
            )?;
        }
        Op::UpdateInfo { u, .. } => {
            for (t, m) in &model.tenants {
                if m.users.contains_key(u) {
                    let row = users(conn, t).await?.and_then(|mut all| all.remove(u));
                    same(
                        &format!("user {u} in {t}"),
                        row,
                        view(t).users.get(u).cloned(),
                    )?;
                }
            }
        }
        Op::CreateRole { t, r, .. }
        | Op::DescribeRole { t, r, .. }
        | Op::DeleteRole { t, r }
        | Op::Grant { t, r, .. }
        | Op::Revoke { t, r, .. }
        | Op::SetGrants { t, r, .. } => {
            let shown = role(conn, t, r).await?;
            let expected = match view(t).roles.get(r) {
                Some(role) => Some(role.clone()),
                // A foreign role an op named (and was refused for).
                None if model.tenants.contains_key(t) && foreign_roles(t).contains(&r.as_str()) => {
                    shown.clone()
                }
                None => None,
            };
            same(&format!("role {r} in {t}"), shown, expected)?;
        }
        Op::CreateGroup { t, .. }
        | Op::DeleteGroup { t, .. }
        | Op::AddMember { t, .. }
        | Op::RemoveMember { t, .. } => {
            let shown: BTreeMap<_, _> = groups(conn, t)
                .await?
                .unwrap_or_default()
                .into_iter()
                .filter(|(g, _)| mine(&model.prefix, g))
                .collect();
            same(&format!("groups in {t}"), shown, view(t).groups)?;
            if let Op::AddMember { m, .. } | Op::RemoveMember { m, .. } = op
                && !m.starts_with("group:")
            {
                let shown = permissions(conn, t, m, revision).await?;
                same(
                    &format!("permissions of {m} in {t}"),
                    shown,
                    check_user(t, m),
                )?;
            }
        }
        Op::Assign { t, s, .. } | Op::Unassign { t, s, .. } => {
            let shown = bindings(conn, t, Some(s)).await?.unwrap_or_default();
            let expected: BTreeMap<_, _> = view(t)
                .bindings
                .into_iter()
                .filter(|((subject, _), _)| subject == s)
                .collect();
            same(&format!("bindings of {s} in {t}"), shown, expected)?;
            if !s.starts_with("group:") {
                let shown = permissions(conn, t, s, revision).await?;
                same(
                    &format!("permissions of {s} in {t}"),
                    shown,
                    check_user(t, s),
                )?;
            }
        }
    }
    Ok(())
}
