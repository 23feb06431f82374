//! The Admin nouns of `rampart ctl`: each verb is one `rampart.v1.Admin`
//! call (`grant add` of several patterns is one call per pattern), its
//! arguments mapped field by field, its answer turned into a [`Report`].
//! The server decides everything; nothing here second-guesses a rule.

use serde_json::{Value, json};
use tonic::Response;

use super::args::{
    BindingCmd, BridgesCmd, CatalogCmd, GrantCmd, GroupCmd, Paging, RoleCmd, TenantCmd, UserCmd,
    value_name,
};
use super::output::{Column, Report, cell, col, table};
use super::{Client, CtlError, Failure};
use crate::proto::{self, MutationResponse};

type Answer = Result<Response<MutationResponse>, tonic::Status>;

/// A mutation's answer as a report.
fn done(client: &Client, answer: Answer) -> Result<Report, Failure> {
    let m = answer.map_err(|s| client.fail(s))?.into_inner();
    Ok(Report::Mutations(vec![m]))
}

/// The server's rows per page of the Admin listings when asked for none.
const SERVER_PAGE: u32 = 1_000;

/// A listing read page by page from `start` (empty: the first page),
/// following each `next_page_token` until the last page or `--limit` rows:
/// the rows, the first page's revision, and the token of the page after
/// the last one read (empty: none follows). `call` asks for one page
/// (`page_size`, `page_token`), `rows` takes a page apart.
pub(super) async fn pages<T, F, Fut>(
    client: &Client,
    paging: Paging,
    server_default: u32,
    start: String,
    mut call: F,
    rows: impl Fn(T) -> (Vec<Value>, u64, String),
) -> Result<(Vec<Value>, u64, String), Failure>
where
    F: FnMut(u32, String) -> Fut,
    Fut: std::future::Future<Output = Result<Response<T>, tonic::Status>>,
{
    let mut items = Vec::new();
    let mut revision = None;
    let mut token = start;
    while let Some(size) = paging.ask(items.len(), server_default) {
        let page = client.read(call(size, token.clone()).await)?;
        let (found, rev, next) = rows(page);
        items.extend(found);
        revision.get_or_insert(rev);
        token = next;
        if token.is_empty() {
            break;
        }
    }
    Ok((items, revision.unwrap_or(0), token))
}

pub async fn tenant(mut client: Client, cmd: TenantCmd) -> Result<Report, Failure> {
    let answer = match cmd {
        TenantCmd::Create {
            tenant,
            name,
            single_role_per_user,
            mutate,
        } => {
            let r = proto::CreateTenantRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                name: name.unwrap_or_default(),
                settings: Some(proto::TenantSettings {
                    single_role_per_user,
                }),
            };
            client.admin.create_tenant(r).await
        }
        TenantCmd::Update {
            tenant,
            name,
            single_role_per_user,
            mutate,
        } => {
            let r = proto::UpdateTenantRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                name,
                settings: single_role_per_user.map(|single_role_per_user| proto::TenantSettings {
                    single_role_per_user,
                }),
            };
            client.admin.update_tenant(r).await
        }
        TenantCmd::Delete { tenant, mutate } => {
            let r = proto::DeleteTenantRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
            };
            client.admin.delete_tenant(r).await
        }
        TenantCmd::List { paging } => {
            const COLUMNS: &[Column] = &[
                col("TENANT", "tenant"),
                col("NAME", "name"),
                col("SINGLE_ROLE", "single_role_per_user"),
                col("ROLES", "roles"),
                col("GROUPS", "groups"),
                col("USERS", "users"),
            ];
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListTenantsRequest {
                    page_size,
                    page_token,
                };
                async move { admin.list_tenants(r).await }
            };
            let rows = |r: proto::ListTenantsResponse| {
                let items = r.tenants.iter().map(|t| {
                    json!({
                        "tenant": t.tenant,
                        "name": t.name,
                        "single_role_per_user": t.settings.as_ref().is_some_and(|s| s.single_role_per_user),
                        "roles": t.roles,
                        "groups": t.groups,
                        "users": t.users,
                    })
                });
                (items.collect(), r.revision, r.next_page_token)
            };
            let (items, revision, _) =
                pages(&client, paging, SERVER_PAGE, String::new(), call, rows).await?;
            return Ok(Report::list(COLUMNS, items, revision));
        }
    };
    done(&client, answer)
}

pub async fn catalog(mut client: Client, cmd: CatalogCmd) -> Result<Report, Failure> {
    let answer = match cmd {
        CatalogCmd::Define {
            permission,
            category,
            description,
            stability,
            mutate,
        } => {
            let r = proto::DefineCatalogEntryRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                entry: Some(proto::CatalogEntry {
                    permission,
                    category,
                    description,
                    stability: stability.map(value_name).unwrap_or_default(),
                    builtin: false,
                }),
            };
            client.admin.define_catalog_entry(r).await
        }
        CatalogCmd::Stability {
            permission,
            stability,
            mutate,
        } => {
            let r = proto::SetCatalogStabilityRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                permission,
                stability: value_name(stability),
            };
            client.admin.set_catalog_stability(r).await
        }
        CatalogCmd::Remove {
            permission,
            cascade,
            mutate,
        } => {
            let r = proto::RemoveCatalogEntryRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                permission,
                cascade,
            };
            client.admin.remove_catalog_entry(r).await
        }
        CatalogCmd::List { category, paging } => {
            const COLUMNS: &[Column] = &[
                col("PERMISSION", "permission"),
                col("CATEGORY", "category"),
                col("STABILITY", "stability"),
                col("BUILTIN", "builtin"),
                col("DESCRIPTION", "description"),
            ];
            let category = category.unwrap_or_default();
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListCatalogRequest {
                    category: category.clone(),
                    page_size,
                    page_token,
                };
                async move { admin.list_catalog(r).await }
            };
            let rows = |r: proto::ListCatalogResponse| {
                let items = r.entries.iter().map(|e| {
                    json!({
                        "permission": e.permission,
                        "category": e.category,
                        "stability": e.stability,
                        "builtin": e.builtin,
                        "description": e.description,
                    })
                });
                (items.collect(), r.revision, r.next_page_token)
            };
            let (items, revision, _) =
                pages(&client, paging, SERVER_PAGE, String::new(), call, rows).await?;
            return Ok(Report::list(COLUMNS, items, revision));
        }
    };
    done(&client, answer)
}

pub async fn bridges(mut client: Client, cmd: BridgesCmd) -> Result<Report, Failure> {
    let BridgesCmd::Set {
        grants,
        clear,
        mutate,
    } = cmd;
    let r = proto::SetBridgesGrantsRequest {
        actor: mutate.actor(),
        dry_run: mutate.dry_run,
        grants: grants.for_set(clear)?,
    };
    let answer = client.admin.set_bridges_grants(r).await;
    done(&client, answer)
}

pub async fn role(mut client: Client, cmd: RoleCmd) -> Result<Report, Failure> {
    let answer = match cmd {
        RoleCmd::Create {
            role,
            description,
            mutate,
        } => {
            let r = proto::CreateRoleRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: role.tenant,
                role: role.role,
                description,
            };
            client.admin.create_role(r).await
        }
        RoleCmd::Describe {
            role,
            description,
            mutate,
        } => {
            let r = proto::UpdateRoleDescriptionRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: role.tenant,
                role: role.role,
                description,
            };
            client.admin.update_role_description(r).await
        }
        RoleCmd::Delete { role, mutate } => {
            let r = proto::DeleteRoleRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: role.tenant,
                role: role.role,
            };
            client.admin.delete_role(r).await
        }
        RoleCmd::Get { role } => {
            let r = client
                .admin
                .get_role(proto::GetRoleRequest {
                    tenant: role.tenant,
                    role: role.role,
                })
                .await;
            return Ok(role_report(&client.read(r)?));
        }
        RoleCmd::List { tenant, paging } => {
            const COLUMNS: &[Column] = &[
                col("ROLE", "role"),
                col("KIND", "kind"),
                col("MEMBERS", "members"),
                col("GRANTS", "grants"),
                col("DESCRIPTION", "description"),
            ];
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListRolesRequest {
                    tenant: tenant.clone(),
                    page_size,
                    page_token,
                };
                async move { admin.list_roles(r).await }
            };
            let rows = |r: proto::ListRolesResponse| {
                let items = r.roles.iter().map(|s| {
                    json!({
                        "role": s.role,
                        "kind": s.kind,
                        "members": s.members,
                        "grants": s.grants,
                        "description": s.description,
                    })
                });
                (items.collect(), r.revision, r.next_page_token)
            };
            let (items, revision, _) =
                pages(&client, paging, SERVER_PAGE, String::new(), call, rows).await?;
            return Ok(Report::list(COLUMNS, items, revision));
        }
    };
    done(&client, answer)
}

/// `role get`: the role in one row, then its grants.
fn role_report(r: &proto::RoleInfo) -> Report {
    let grants: Vec<Value> = r
        .grants
        .iter()
        .map(|g| json!({ "effect": g.effect, "pattern": g.pattern }))
        .collect();
    let json = json!({
        "role": r.role,
        "kind": r.kind,
        "members": r.members,
        "description": r.description,
        "grants": grants,
        "revision": r.revision,
    });
    let head = table(
        ["ROLE", "KIND", "MEMBERS", "DESCRIPTION"]
            .map(String::from)
            .to_vec(),
        vec![vec![
            r.role.clone(),
            r.kind.clone(),
            r.members.to_string(),
            cell(&json["description"]),
        ]],
    );
    let body = table(
        ["EFFECT", "PATTERN"].map(String::from).to_vec(),
        r.grants
            .iter()
            .map(|g| vec![g.effect.clone(), g.pattern.clone()])
            .collect(),
    );
    Report::Custom {
        json,
        table: format!("{head}\n{body}"),
    }
}

pub async fn grant(mut client: Client, cmd: GrantCmd) -> Result<Report, Failure> {
    let (role, grants, mutate, add) = match cmd {
        GrantCmd::Set {
            role,
            grants,
            clear,
            mutate,
        } => {
            let r = proto::SetGrantsRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: role.tenant,
                role: role.role,
                grants: grants.for_set(clear)?,
            };
            let answer = client.admin.set_grants(r).await;
            return done(&client, answer);
        }
        GrantCmd::Add {
            role,
            grants,
            mutate,
        } => (role, grants, mutate, true),
        GrantCmd::Remove {
            role,
            grants,
            mutate,
        } => (role, grants, mutate, false),
    };
    if grants.patterns.is_empty() {
        return Err(CtlError::Usage("give at least one PATTERN".into()).into());
    }
    let mut applied = Vec::new();
    for spec in grants.specs() {
        let answer = if add {
            let r = proto::GrantRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: role.tenant.clone(),
                role: role.role.clone(),
                grant: Some(spec),
            };
            client.admin.grant(r).await
        } else {
            let r = proto::RevokeRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: role.tenant.clone(),
                role: role.role.clone(),
                grant: Some(spec),
            };
            client.admin.revoke(r).await
        };
        match answer {
            Ok(m) => applied.push(m.into_inner()),
            Err(status) => {
                return Err(Failure {
                    printed: (!applied.is_empty()).then_some(Report::Mutations(applied)),
                    error: client.fail(status),
                });
            }
        }
    }
    Ok(Report::Mutations(applied))
}

pub async fn group(mut client: Client, cmd: GroupCmd) -> Result<Report, Failure> {
    let answer = match cmd {
        GroupCmd::Create {
            group,
            description,
            mutate,
        } => {
            let r = proto::CreateGroupRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: group.tenant,
                group: group.group,
                description,
            };
            client.admin.create_group(r).await
        }
        GroupCmd::Delete { group, mutate } => {
            let r = proto::DeleteGroupRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: group.tenant,
                group: group.group,
            };
            client.admin.delete_group(r).await
        }
        GroupCmd::AddMember {
            group,
            member,
            mutate,
        } => {
            let r = proto::AddMemberRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: group.tenant,
                group: group.group,
                member,
            };
            client.admin.add_member(r).await
        }
        GroupCmd::RemoveMember {
            group,
            member,
            mutate,
        } => {
            let r = proto::RemoveMemberRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant: group.tenant,
                group: group.group,
                member,
            };
            client.admin.remove_member(r).await
        }
        GroupCmd::List { tenant, paging } => {
            const COLUMNS: &[Column] = &[
                col("GROUP", "group"),
                col("MEMBERS", "members"),
                col("DESCRIPTION", "description"),
            ];
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListGroupsRequest {
                    tenant: tenant.clone(),
                    page_size,
                    page_token,
                };
                async move { admin.list_groups(r).await }
            };
            let rows = |r: proto::ListGroupsResponse| {
                let items = r.groups.iter().map(|g| {
                    json!({
                        "group": g.group,
                        "members": g.members,
                        "description": g.description,
                    })
                });
                (items.collect(), r.revision, r.next_page_token)
            };
            let (items, revision, _) =
                pages(&client, paging, SERVER_PAGE, String::new(), call, rows).await?;
            return Ok(Report::list(COLUMNS, items, revision));
        }
    };
    done(&client, answer)
}

pub async fn user(mut client: Client, cmd: UserCmd) -> Result<Report, Failure> {
    let answer = match cmd {
        UserCmd::Add {
            tenant,
            user,
            email,
            display_name,
            status,
            mutate,
        } => {
            let r = proto::AddUserRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                user,
                email,
                display_name,
                status: status.map(value_name).unwrap_or_default(),
            };
            client.admin.add_user(r).await
        }
        UserCmd::Status {
            tenant,
            user,
            status,
            mutate,
        } => {
            let r = proto::UpdateUserStatusRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                user,
                status: value_name(status),
            };
            client.admin.update_user_status(r).await
        }
        UserCmd::Info {
            user,
            email,
            display_name,
            mutate,
        } => {
            if email.is_none() && display_name.is_none() {
                return Err(CtlError::Usage("give --email or --display-name".into()).into());
            }
            let r = proto::UpdateUserInfoRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                user,
                email,
                display_name,
            };
            client.admin.update_user_info(r).await
        }
        UserCmd::Remove {
            tenant,
            user,
            mutate,
        } => {
            let r = proto::RemoveUserRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                user,
            };
            client.admin.remove_user(r).await
        }
        UserCmd::List { tenant, paging } => {
            const COLUMNS: &[Column] = &[
                col("USER", "user"),
                col("STATUS", "status"),
                col("EMAIL", "email"),
                col("DISPLAY_NAME", "display_name"),
            ];
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListUsersRequest {
                    tenant: tenant.clone(),
                    page_size,
                    page_token,
                };
                async move { admin.list_users(r).await }
            };
            let rows = |r: proto::ListUsersResponse| {
                let items = r.users.iter().map(|u| {
                    json!({
                        "user": u.user,
                        "status": u.status,
                        "email": u.email,
                        "display_name": u.display_name,
                    })
                });
                (items.collect(), r.revision, r.next_page_token)
            };
            let (items, revision, _) =
                pages(&client, paging, SERVER_PAGE, String::new(), call, rows).await?;
            return Ok(Report::list(COLUMNS, items, revision));
        }
    };
    done(&client, answer)
}

pub async fn binding(mut client: Client, cmd: BindingCmd) -> Result<Report, Failure> {
    let answer = match cmd {
        BindingCmd::Assign(a) => {
            let r = proto::AssignRequest {
                actor: a.mutate.actor(),
                dry_run: a.mutate.dry_run,
                tenant: a.tenant,
                subject: a.subject,
                role: a.role,
                expires: a.expires.unwrap_or_default(),
            };
            client.admin.assign(r).await
        }
        BindingCmd::Unassign(a) => {
            let r = proto::UnassignRequest {
                actor: a.mutate.actor(),
                dry_run: a.mutate.dry_run,
                tenant: a.tenant,
                subject: a.subject,
                role: a.role,
            };
            client.admin.unassign(r).await
        }
        BindingCmd::List {
            tenant,
            subject,
            paging,
        } => {
            const COLUMNS: &[Column] = &[
                col("SUBJECT", "subject"),
                col("ROLE", "role"),
                col("EXPIRES", "expires"),
            ];
            let subject = subject.unwrap_or_default();
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListBindingsRequest {
                    tenant: tenant.clone(),
                    subject: subject.clone(),
                    page_size,
                    page_token,
                };
                async move { admin.list_bindings(r).await }
            };
            let rows = |r: proto::ListBindingsResponse| {
                let items = r
                    .bindings
                    .iter()
                    .map(|b| json!({ "subject": b.subject, "role": b.role, "expires": b.expires }));
                (items.collect(), r.revision, r.next_page_token)
            };
            let (items, revision, _) =
                pages(&client, paging, SERVER_PAGE, String::new(), call, rows).await?;
            return Ok(Report::list(COLUMNS, items, revision));
        }
    };
    done(&client, answer)
}
