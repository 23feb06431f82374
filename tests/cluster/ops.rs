//! The mutations the cluster tests submit: one [`Op`] per Admin call, how
//! each becomes its gRPC request, whether a changelog entry is that op,
//! and a seeded generator that picks the next op for one writer from what
//! its [`Model`] says exists (mostly valid ops, some that the rules refuse).

use rampart::proto;
use rampart::proto::admin_client::AdminClient;
use serde_json::Value;
use tonic::transport::Channel;

use super::model::{Model, SHARED_TENANTS, foreign_roles};

/// A small, seeded, reproducible random source (SplitMix64): the tests
/// print the seed, and the same seed makes the same choices per writer.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

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

/// How many users, roles, groups and own tenants a writer names: few, so
/// its ops meet what it made before (and collide with it: refusals).
pub const USERS: usize = 6;
pub const ROLES: usize = 4;
pub const GROUPS: usize = 3;
pub const OWN_TENANTS: usize = 2;

/// The id of a writer's own thing, e.g. `w03-u2`: the prefix is how the
/// tests tell one writer's changes and state from another's.
pub fn own(prefix: &str, what: char, i: usize) -> String {
    format!("{prefix}{what}{i}")
}

/// Picks the next op for the writer whose state is `model`, and whether
/// to send it as one of its users (an actor, judged by the rules) rather
/// than as the operator. Mostly ops that the rules accept, with some that
/// they refuse.
pub fn next_op(model: &Model, rng: &mut Rng) -> (Op, Option<String>) {
    let p = model.prefix.as_str();
    let own_tenants: Vec<String> = (0..OWN_TENANTS).map(|i| own(p, 't', i)).collect();
    let t: String = if rng.chance(75) {
        (*rng.pick(SHARED_TENANTS)).to_owned()
    } else {
        rng.pick(&own_tenants).clone()
    };
    let exists = model.tenants.get(&t);
    if !SHARED_TENANTS.contains(&t.as_str()) {
        match exists {
            None if rng.chance(70) => {
                return (
                    Op::CreateTenant {
                        name: format!("Tenant {t}"),
                        t,
                    },
                    None,
                );
            }
            Some(_) if rng.chance(2) => return (Op::DeleteTenant { t }, None),
            Some(_) if rng.chance(2) => {
                return (
                    Op::RenameTenant {
                        name: format!("Renamed {}", rng.below(1000)),
                        t,
                    },
                    None,
                );
            }
            _ => {}
        }
    }
    // Prefer things that exist (most ops then apply); sometimes any name.
    let users: Vec<String> = exists
        .map(|m| m.users.keys().cloned().collect())
        .unwrap_or_default();
    let roles: Vec<String> = exists
        .map(|m| m.roles.keys().cloned().collect())
        .unwrap_or_default();
    let groups: Vec<String> = exists
        .map(|m| m.groups.keys().cloned().collect())
        .unwrap_or_default();
    // A name that exists (mostly), or any of the writer's names.
    let any = |what: char, n: usize, have: &[String], rng: &mut Rng| -> String {
        if !have.is_empty() && rng.chance(92) {
            rng.pick(have).clone()
        } else {
            own(p, what, rng.below(n))
        }
    };
    // A name that does not exist yet (mostly), to make.
    let fresh = |what: char, n: usize, have: &[String], rng: &mut Rng| -> String {
        let free: Vec<String> = (0..n)
            .map(|i| own(p, what, i))
            .filter(|x| !have.contains(x))
            .collect();
        if !free.is_empty() && rng.chance(85) {
            rng.pick(&free).clone()
        } else {
            own(p, what, rng.below(n))
        }
    };
    let user = any('u', USERS, &users, rng);
    let role = any('r', ROLES, &roles, rng);
    let group = any('g', GROUPS, &groups, rng);
    let subject = if groups.is_empty() || rng.chance(75) {
        user.clone()
    } else {
        format!("group:{group}")
    };
    let grant = |rng: &mut Rng| G {
        deny: rng.chance(15),
        pattern: if rng.chance(3) {
            UNCOVERED.to_owned()
        } else {
            (*rng.pick(COVERED)).to_owned()
        },
    };
    let emails = ["a@example.test", "b@example.test"];
    let names = ["Ann", "Bo"];
    let mut kind = rng.below(100);
    // Make things before using them, mostly.
    if users.is_empty() && rng.chance(80) {
        kind = 0;
    } else if roles.is_empty() && (38..63).contains(&kind) && rng.chance(80) {
        kind = 27;
    } else if groups.is_empty() && (68..82).contains(&kind) && rng.chance(80) {
        kind = 63;
    }
    let op = match kind {
        0..14 => Op::AddUser {
            t: t.clone(),
            u: fresh('u', USERS, &users, rng),
            email: rng.chance(8).then(|| (*rng.pick(&emails)).to_owned()),
            name: rng.chance(8).then(|| (*rng.pick(&names)).to_owned()),
            active: rng.chance(90),
        },
        14..18 => Op::RemoveUser {
            t: t.clone(),
            u: user,
        },
        18..23 => Op::SetStatus {
            t: t.clone(),
            u: user,
            active: rng.chance(60),
        },
        23..27 => Op::UpdateInfo {
            u: user,
            email: rng.chance(60).then(|| {
                if rng.chance(25) {
                    String::new()
                } else {
                    (*rng.pick(&emails)).to_owned()
                }
            }),
            name: rng.chance(60).then(|| {
                if rng.chance(25) {
                    String::new()
                } else {
                    (*rng.pick(&names)).to_owned()
                }
            }),
        },
        27..35 => Op::CreateRole {
            t: t.clone(),
            r: fresh('r', ROLES, &roles, rng),
            desc: format!("made by {p}"),
        },
        35..38 => Op::DescribeRole {
            t: t.clone(),
            r: if rng.chance(5) {
                "Administrators".into()
            } else {
                role
            },
            desc: format!("described {}", rng.below(1000)),
        },
        38..42 => Op::DeleteRole {
            t: t.clone(),
            r: role,
        },
        42..52 => Op::Grant {
            t: t.clone(),
            r: if rng.chance(3) {
                "Administrators".into()
            } else {
                role
            },
            g: grant(rng),
        },
        52..57 => {
            // Mostly a grant the role has.
            let held = exists
                .and_then(|m| m.roles.get(&role))
                .map(|r| r.grants.clone())
                .unwrap_or_default();
            let g = if !held.is_empty() && rng.chance(90) {
                rng.pick(&held).clone()
            } else {
                grant(rng)
            };
            Op::Revoke {
                t: t.clone(),
                r: role,
                g,
            }
        }
        57..63 => {
            let mut gs: Vec<G> = (0..rng.below(5)).map(|_| grant(rng)).collect();
            if !rng.chance(10) {
                gs.sort();
                gs.dedup();
            }
            Op::SetGrants {
                t: t.clone(),
                r: role,
                gs,
            }
        }
        63..68 => Op::CreateGroup {
            t: t.clone(),
            g: fresh('g', GROUPS, &groups, rng),
        },
        68..70 => Op::DeleteGroup {
            t: t.clone(),
            g: group,
        },
        70..78 => {
            let m = if groups.len() < 2 || rng.chance(75) {
                user
            } else {
                format!("group:{}", any('g', GROUPS, &groups, rng))
            };
            Op::AddMember {
                t: t.clone(),
                g: group,
                m,
            }
        }
        78..82 => {
            let members: Vec<String> = exists
                .and_then(|m| m.groups.get(&group))
                .map(|g| g.iter().cloned().collect())
                .unwrap_or_default();
            let m = if !members.is_empty() && rng.chance(90) {
                rng.pick(&members).clone()
            } else {
                user
            };
            Op::RemoveMember {
                t: t.clone(),
                g: group,
                m,
            }
        }
        82..95 => {
            let mut targets = roles.clone();
            targets.extend(foreign_roles(&t).iter().map(|r| (*r).to_owned()));
            targets.retain(|r| r != "Users");
            if rng.chance(3) {
                targets = vec![own(p, 'r', rng.below(ROLES))];
            }
            Op::Assign {
                t: t.clone(),
                s: subject,
                r: rng.pick(&targets).clone(),
                expires: rng.chance(10).then(|| FAR.to_owned()),
            }
        }
        _ => {
            // Mostly a binding that exists.
            let bound: Vec<(String, String)> = exists
                .map(|m| m.bindings.keys().cloned().collect())
                .unwrap_or_default();
            let (s, r) = if !bound.is_empty() && rng.chance(90) {
                rng.pick(&bound).clone()
            } else {
                (subject, role)
            };
            Op::Unassign { t: t.clone(), s, r }
        }
    };
    // Sometimes one of the writer's own users of the tenant asks instead
    // of the operator: the rules judge it (rights, no self-edit, no
    // escalation), and only its own things are concerned either way.
    let actor = (!users.is_empty() && rng.chance(10)).then(|| rng.pick(&users).clone());
    (op, actor)
}
