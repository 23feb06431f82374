//! `rampart ctl group`, `user` and `binding`: who is in a tenant and
//! which roles they hold.

use serde_json::json;

use super::super::args::{BindingCmd, GroupCmd, UserCmd, value_name};
use super::super::output::{Column, Report, col};
use super::super::{Client, CtlError, Failure};
use super::{SERVER_PAGE, done, pages};
use crate::proto;

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
        GroupCmd::List {
            tenant,
            paging,
            read,
        } => {
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
                    actor: read.actor(),
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
            aliases,
            attributes,
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
                aliases,
                attributes: attributes.into_iter().collect(),
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
            aliases,
            clear_aliases,
            attributes,
            clear_attributes,
            mutate,
        } => {
            let aliases =
                (clear_aliases || !aliases.is_empty()).then_some(proto::AliasList { aliases });
            let attributes =
                (clear_attributes || !attributes.is_empty()).then(|| proto::AttributeMap {
                    values: attributes.into_iter().collect(),
                });
            if email.is_none()
                && display_name.is_none()
                && aliases.is_none()
                && attributes.is_none()
            {
                return Err(CtlError::Usage(
                    "give --email, --display-name, --alias, --clear-aliases, --attribute or --clear-attributes".into(),
                )
                .into());
            }
            let r = proto::UpdateUserInfoRequest {
                actor: mutate.actor(),
                dry_run: mutate.dry_run,
                user,
                email,
                display_name,
                aliases,
                attributes,
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
        UserCmd::List {
            tenant,
            paging,
            read,
        } => {
            const COLUMNS: &[Column] = &[
                col("USER", "user"),
                col("STATUS", "status"),
                col("EMAIL", "email"),
                col("DISPLAY_NAME", "display_name"),
                col("ALIASES", "aliases"),
                col("ATTRIBUTES", "attributes"),
            ];
            let call = |page_size, page_token| {
                let mut admin = client.admin.clone();
                let r = proto::ListUsersRequest {
                    tenant: tenant.clone(),
                    page_size,
                    page_token,
                    actor: read.actor(),
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
                        "aliases": u.aliases,
                        "attributes": u.attributes.iter().collect::<std::collections::BTreeMap<_, _>>(),
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
            read,
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
                    actor: read.actor(),
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
