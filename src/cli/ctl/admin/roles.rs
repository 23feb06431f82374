//! `rampart ctl role` and `grant`: roles, their descriptions and grants.

use serde_json::{Value, json};

use super::super::args::{GrantCmd, RoleCmd};
use super::super::output::{Column, Report, cell, col, table};
use super::super::{Client, CtlError, Failure};
use super::{SERVER_PAGE, done, pages};
use crate::proto;

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
        RoleCmd::Get { role, read } => {
            let r = client
                .admin
                .get_role(proto::GetRoleRequest {
                    tenant: role.tenant,
                    role: role.role,
                    actor: read.actor(),
                })
                .await;
            return Ok(role_report(&client.read(r)?));
        }
        RoleCmd::List {
            tenant,
            paging,
            read,
        } => {
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
                    actor: read.actor(),
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
