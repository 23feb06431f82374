//! The Admin nouns of `rampart ctl`: each verb is one `rampart.v1.Admin`
//! call (`grant add` of several patterns is one call per pattern), its
//! arguments mapped field by field, its answer turned into a [`Report`].
//! The server decides everything; nothing here second-guesses a rule.

use serde_json::{Value, json};
use tonic::Response;

mod members;
mod roles;

pub use members::{binding, group, user};
pub use roles::{grant, role};

use super::args::{BridgesCmd, CatalogCmd, Paging, TenantCmd, value_name};
use super::output::{Column, Report, col};
use super::{Client, Failure};
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
            shared_users,
            guards,
            mutate,
        } => {
            let mut settings = proto::TenantSettings {
                single_role_per_user: Some(single_role_per_user),
                shared_users: Some(shared_users),
                ..Default::default()
            };
            guards.set(&mut settings);
            let r = proto::CreateTenantRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                name: name.unwrap_or_default(),
                settings: Some(settings),
            };
            client.admin.create_tenant(r).await
        }
        TenantCmd::Update {
            tenant,
            name,
            single_role_per_user,
            shared_users,
            guards,
            mutate,
        } => {
            let changes = single_role_per_user.is_some() || shared_users.is_some() || guards.any();
            let mut settings = proto::TenantSettings {
                single_role_per_user,
                shared_users,
                ..Default::default()
            };
            guards.set(&mut settings);
            let r = proto::UpdateTenantRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                tenant,
                name,
                settings: changes.then_some(settings),
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
                col("SHARED_USERS", "shared_users"),
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
                        "single_role_per_user": t.settings.as_ref().and_then(|s| s.single_role_per_user).unwrap_or(false),
                        "shared_users": t.settings.as_ref().and_then(|s| s.shared_users).unwrap_or(false),
                        "administrator_roles": t.settings.as_ref().and_then(|s| s.administrator_roles.as_ref()).map(|r| r.roles.clone()).unwrap_or_default(),
                        "removal_needs_all_grants": t.settings.as_ref().and_then(|s| s.removal_needs_all_grants).unwrap_or(false),
                        "users_role_removals_only": t.settings.as_ref().and_then(|s| s.users_role_removals_only).unwrap_or(false),
                        "preview_grants": t.settings.as_ref().and_then(|s| s.preview_grants.clone()).unwrap_or_else(|| "allow".into()),
                        "deprecated_grants": t.settings.as_ref().and_then(|s| s.deprecated_grants.clone()).unwrap_or_else(|| "allow".into()),
                        "admin_permissions": t.settings.as_ref().and_then(|s| s.admin_permissions.as_ref()).map(|m| m.operations.iter().map(|(k, v)| (k.clone(), v.templates.clone())).collect::<std::collections::BTreeMap<_, _>>()).unwrap_or_default(),
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
