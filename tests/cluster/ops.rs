//! The mutations the cluster tests submit: one [`Op`] per Admin call, how
//! each becomes its gRPC request, and whether a changelog entry is that op.

use rampart::proto;
use rampart::proto::admin_client::AdminClient;
use serde_json::Value;
use tonic::transport::Channel;

/// A grant as the tests write it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct G {
    pub deny: bool,
    pub pattern: String,
}

impl G {
    pub fn spec(&self) -> proto::GrantSpec {
        proto::GrantSpec {
            effect: if self.deny { "deny" } else { "allow" }.into(),
            pattern: self.pattern.clone(),
        }
    }

    fn json(&self) -> Value {
        serde_json::json!({
            "effect": if self.deny { "deny" } else { "allow" },
            "pattern": self.pattern,
        })
    }
}

/// Patterns the quickstart catalog covers (the built-in `ACM:` entries
/// among them, so actors can be given administration rights).
pub const COVERED: &[&str] = &[
    "documents:view",
    "documents:edit:*",
    "documents:edit:roadmap",
    "documents:delete:*",
    "reports:view",
    "reports:*",
    "profile:edit:{subject}",
    "ACM:ROLE:INSERT",
    "ACM:USER:INSERT",
    "ACM:GROUP:*",
    "ACM:ROLE:ASSIGN:*",
    "ACM:USER:UPDATE:STATUS:*",
];

/// A pattern the catalog does not cover: refused as INVALID_ARGUMENT.
pub const UNCOVERED: &str = "documents:print";

/// One Admin call. Tenants, users, roles and groups are named by id;
/// a member or binding subject is a user id or `group:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateTenant {
        t: String,
        name: String,
    },
    RenameTenant {
        t: String,
        name: String,
    },
    DeleteTenant {
        t: String,
    },
    AddUser {
        t: String,
        u: String,
        email: Option<String>,
        name: Option<String>,
        active: bool,
    },
    RemoveUser {
        t: String,
        u: String,
    },
    SetStatus {
        t: String,
        u: String,
        active: bool,
    },
    UpdateInfo {
        u: String,
        email: Option<String>,
        name: Option<String>,
    },
    CreateRole {
        t: String,
        r: String,
        desc: String,
    },
    DescribeRole {
        t: String,
        r: String,
        desc: String,
    },
    DeleteRole {
        t: String,
        r: String,
    },
    Grant {
        t: String,
        r: String,
        g: G,
    },
    Revoke {
        t: String,
        r: String,
        g: G,
    },
    SetGrants {
        t: String,
        r: String,
        gs: Vec<G>,
    },
    CreateGroup {
        t: String,
        g: String,
    },
    DeleteGroup {
        t: String,
        g: String,
    },
    AddMember {
        t: String,
        g: String,
        m: String,
    },
    RemoveMember {
        t: String,
        g: String,
        m: String,
    },
    Assign {
        t: String,
        s: String,
        r: String,
        expires: Option<String>,
    },
    Unassign {
        t: String,
        s: String,
        r: String,
    },
}

/// A far-future expiry: a live binding, but not the same as none.
pub const FAR: &str = "2099-01-01T00:00:00Z";

impl Op {
    /// The changelog's name for the kind (`Mutation::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::CreateTenant { .. } => "create_tenant",
            Op::RenameTenant { .. } => "update_tenant",
            Op::DeleteTenant { .. } => "delete_tenant",
            Op::AddUser { .. } => "add_user",
            Op::RemoveUser { .. } => "remove_user",
            Op::SetStatus { .. } => "update_user_status",
            Op::UpdateInfo { .. } => "update_user_info",
            Op::CreateRole { .. } => "create_role",
            Op::DescribeRole { .. } => "update_role_description",
            Op::DeleteRole { .. } => "delete_role",
            Op::Grant { .. } => "grant",
            Op::Revoke { .. } => "revoke",
            Op::SetGrants { .. } => "set_grants",
            Op::CreateGroup { .. } => "create_group",
            Op::DeleteGroup { .. } => "delete_group",
            Op::AddMember { .. } => "add_member",
            Op::RemoveMember { .. } => "remove_member",
            Op::Assign { .. } => "assign",
            Op::Unassign { .. } => "unassign",
        }
    }

    /// The tenant the op is in; `None` for profile information.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Op::UpdateInfo { .. } => None,
            Op::CreateTenant { t, .. }
            | Op::RenameTenant { t, .. }
            | Op::DeleteTenant { t }
            | Op::AddUser { t, .. }
            | Op::RemoveUser { t, .. }
            | Op::SetStatus { t, .. }
            | Op::CreateRole { t, .. }
            | Op::DescribeRole { t, .. }
            | Op::DeleteRole { t, .. }
            | Op::Grant { t, .. }
            | Op::Revoke { t, .. }
            | Op::SetGrants { t, .. }
            | Op::CreateGroup { t, .. }
            | Op::DeleteGroup { t, .. }
            | Op::AddMember { t, .. }
            | Op::RemoveMember { t, .. }
            | Op::Assign { t, .. }
            | Op::Unassign { t, .. } => Some(t),
        }
    }

    /// Whether the changelog entry `change` (the mutation's JSON) records
    /// this op: its kind and every name and value the op carries. An
    /// `add_user`'s profile may have been completed from the user's other
    /// tenants, so only the fields the op sets are compared.
    pub fn matches(&self, change: &Value) -> bool {
        let s = |k: &str| change.get(k).and_then(Value::as_str);
        let opt = |k: &str| match change.get(k) {
            Some(Value::String(v)) => Some(Some(v.as_str())),
            Some(Value::Null) | None => Some(None),
            Some(_) => None,
        };
        if s("kind") != Some(self.kind()) {
            return false;
        }
        let tenant_ok = self.tenant().is_none_or(|t| s("tenant") == Some(t));
        tenant_ok
            && match self {
                Op::CreateTenant { name, .. } => s("name") == Some(name),
                Op::RenameTenant { name, .. } => s("name") == Some(name),
                Op::DeleteTenant { .. } => true,
                Op::AddUser {
                    u,
                    email,
                    name,
                    active,
                    ..
                } => {
                    s("user") == Some(u)
                        && email.as_ref().is_none_or(|e| s("email") == Some(e))
                        && name.as_ref().is_none_or(|n| s("display_name") == Some(n))
                        && s("status") == Some(if *active { "active" } else { "inactive" })
                }
                Op::RemoveUser { u, .. } => s("user") == Some(u),
                Op::SetStatus { u, active, .. } => {
                    s("user") == Some(u)
                        && s("status") == Some(if *active { "active" } else { "inactive" })
                }
                Op::UpdateInfo { u, email, name } => {
                    s("user") == Some(u)
                        && opt("email") == Some(email.as_deref())
                        && opt("display_name") == Some(name.as_deref())
                }
                Op::CreateRole { r, desc, .. } | Op::DescribeRole { r, desc, .. } => {
                    s("role") == Some(r) && s("description") == Some(desc)
                }
                Op::DeleteRole { r, .. } => s("role") == Some(r),
                Op::Grant { r, g, .. } | Op::Revoke { r, g, .. } => {
                    s("role") == Some(r) && change.get("grant") == Some(&g.json())
                }
                Op::SetGrants { r, gs, .. } => {
                    s("role") == Some(r)
                        && change.get("grants")
                            == Some(&Value::Array(gs.iter().map(G::json).collect()))
                }
                Op::CreateGroup { g, .. } | Op::DeleteGroup { g, .. } => s("group") == Some(g),
                Op::AddMember { g, m, .. } | Op::RemoveMember { g, m, .. } => {
                    s("group") == Some(g) && s("member") == Some(m)
                }
                Op::Assign {
                    s: subject,
                    r,
                    expires,
                    ..
                } => {
                    s("subject") == Some(subject)
                        && s("role") == Some(r)
                        && opt("expires") == Some(expires.as_deref())
                }
                Op::Unassign { s: subject, r, .. } => {
                    s("subject") == Some(subject) && s("role") == Some(r)
                }
            }
    }

    /// Sends the op as `actor` (empty: the operator credential).
    pub async fn send(
        &self,
        admin: &mut AdminClient<Channel>,
        actor: &str,
    ) -> Result<proto::MutationResponse, tonic::Status> {
        let actor = actor.to_owned();
        let dry_run = false;
        let answer = match self.clone() {
            Op::CreateTenant { t, name } => {
                admin
                    .create_tenant(proto::CreateTenantRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        name,
                        settings: None,
                    })
                    .await
            }
            Op::RenameTenant { t, name } => {
                admin
                    .update_tenant(proto::UpdateTenantRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        name: Some(name),
                        settings: None,
                    })
                    .await
            }
            Op::DeleteTenant { t } => {
                admin
                    .delete_tenant(proto::DeleteTenantRequest {
                        actor,
                        dry_run,
                        tenant: t,
                    })
                    .await
            }
            Op::AddUser {
                t,
                u,
                email,
                name,
                active,
            } => {
                admin
                    .add_user(proto::AddUserRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        user: u,
                        email: email.unwrap_or_default(),
                        display_name: name.unwrap_or_default(),
                        status: if active { "active" } else { "inactive" }.into(),
                        aliases: Vec::new(),
                        attributes: Default::default(),
                    })
                    .await
            }
            Op::RemoveUser { t, u } => {
                admin
                    .remove_user(proto::RemoveUserRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        user: u,
                    })
                    .await
            }
            Op::SetStatus { t, u, active } => {
                admin
                    .update_user_status(proto::UpdateUserStatusRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        user: u,
                        status: if active { "active" } else { "inactive" }.into(),
                    })
                    .await
            }
            Op::UpdateInfo { u, email, name } => {
                admin
                    .update_user_info(proto::UpdateUserInfoRequest {
                        actor,
                        dry_run,
                        user: u,
                        email,
                        display_name: name,
                        aliases: None,
                        attributes: None,
                    })
                    .await
            }
            Op::CreateRole { t, r, desc } => {
                admin
                    .create_role(proto::CreateRoleRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        role: r,
                        description: desc,
                    })
                    .await
            }
            Op::DescribeRole { t, r, desc } => {
                admin
                    .update_role_description(proto::UpdateRoleDescriptionRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        role: r,
                        description: desc,
                    })
                    .await
            }
            Op::DeleteRole { t, r } => {
                admin
                    .delete_role(proto::DeleteRoleRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        role: r,
                    })
                    .await
            }
            Op::Grant { t, r, g } => {
                admin
                    .grant(proto::GrantRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        role: r,
                        grant: Some(g.spec()),
                    })
                    .await
            }
            Op::Revoke { t, r, g } => {
                admin
                    .revoke(proto::RevokeRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        role: r,
                        grant: Some(g.spec()),
                    })
                    .await
            }
            Op::SetGrants { t, r, gs } => {
                admin
                    .set_grants(proto::SetGrantsRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        role: r,
                        grants: gs.iter().map(G::spec).collect(),
                    })
                    .await
            }
            Op::CreateGroup { t, g } => {
                admin
                    .create_group(proto::CreateGroupRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        group: g,
                        description: String::new(),
                    })
                    .await
            }
            Op::DeleteGroup { t, g } => {
                admin
                    .delete_group(proto::DeleteGroupRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        group: g,
                    })
                    .await
            }
            Op::AddMember { t, g, m } => {
                admin
                    .add_member(proto::AddMemberRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        group: g,
                        member: m,
                    })
                    .await
            }
            Op::RemoveMember { t, g, m } => {
                admin
                    .remove_member(proto::RemoveMemberRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        group: g,
                        member: m,
                    })
                    .await
            }
            Op::Assign { t, s, r, expires } => {
                admin
                    .assign(proto::AssignRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        subject: s,
                        role: r,
                        expires: expires.unwrap_or_default(),
                    })
                    .await
            }
            Op::Unassign { t, s, r } => {
                admin
                    .unassign(proto::UnassignRequest {
                        actor,
                        dry_run,
                        tenant: t,
                        subject: s,
                        role: r,
                    })
                    .await
            }
        };
        answer.map(tonic::Response::into_inner)
    }
}
