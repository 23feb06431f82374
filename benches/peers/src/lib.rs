//! Translations of a synthetic rampart tenant ([`rampart::synthetic::FlatTenant`])
//! into casbin-rs and cedar-policy, for the peer comparison bench.
//!
//! Both translations keep rampart's semantics for the checks the bench
//! makes (catalog-covered permissions, at [`rampart::synthetic::NOW`]):
//! roles reached directly or through nested groups, `prefix:*` grants that
//! match one or more trailing segments, deny overriding allow, unknown and
//! inactive subjects denied. Neither peer checks the catalog or binding
//! expiry: [`rampart::synthetic::flatten`] resolves those beforehand, which
//! only saves the peers work.
//!
//! **casbin**: RBAC without domains (the bench has one tenant, so domains
//! would only add a lookup), one `p` line per grant, `g` lines for every
//! membership and binding, `keyMatch` for `prefix:*` (its `*` is a prefix
//! match, the same as rampart's for valid paths), and the effect
//! `some(allow) && !some(deny)`.
//!
//! **Cedar**: users, groups and roles are entities (a member's parents are
//! its groups and the roles bound to it, so `principal in Role::"r"` is the
//! transitive role check, precomputed by Cedar when entities load); one
//! `permit` and at most one `forbid` per role, whose condition tests the
//! permission (`context.permission`) against the role's exact grants as a
//! set literal and its `prefix:*` grants with `like`. One policy per role
//! rather than per grant, because Cedar evaluates every policy of the set on
//! every request.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicySet, Request as CedarRequest, RestrictedExpression,
};
use rampart::model::{Effect, Subject};
use rampart::synthetic::FlatTenant;

/// Errors from building a peer, as text: this is a bench helper.
pub type PeerError = String;

// ---------------------------------------------------------------- casbin

/// The casbin model: RBAC, `keyMatch` objects, deny overrides allow.
pub const CASBIN_MODEL: &str = "\
[request_definition]
r = sub, obj

[policy_definition]
p = sub, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj)
";

fn casbin_subject(s: &Subject) -> String {
    // `user:u0000001` or `group:group0001`: users and groups never collide.
    s.to_string()
}

/// The casbin name of a user id.
pub fn casbin_user(id: &str) -> String {
    format!("user:{id}")
}

fn casbin_role(name: &str) -> String {
    format!("role:{name}")
}

/// The policy of `flat` as casbin CSV lines (`p, ...` and `g, ...`).
pub fn casbin_policy(flat: &FlatTenant) -> String {
    let mut out = String::new();
    for role in &flat.roles {
        for (effect, pattern) in &role.grants {
            let _ = writeln!(
                out,
                "p, {}, {pattern}, {}",
                casbin_role(&role.name),
                effect.as_str()
            );
        }
    }
    for (member, group) in &flat.memberships {
        let _ = writeln!(out, "g, {}, group:{group}", casbin_subject(member));
    }
    for (subject, role) in &flat.bindings {
        let _ = writeln!(out, "g, {}, {}", casbin_subject(subject), casbin_role(role));
    }
    out
}

/// A casbin enforcer loaded with `flat`.
pub async fn casbin_enforcer(flat: &FlatTenant) -> Result<casbin::Enforcer, PeerError> {
    use casbin::CoreApi;
    let model = casbin::DefaultModel::from_str(CASBIN_MODEL)
        .await
        .map_err(|e| e.to_string())?;
    let adapter = casbin::StringAdapter::new(casbin_policy(flat));
    casbin::Enforcer::new(model, adapter)
        .await
        .map_err(|e| e.to_string())
}

/// Asks casbin whether `user` may do `permission`.
pub fn casbin_allows(
    e: &casbin::Enforcer,
    user: &str,
    permission: &str,
) -> Result<bool, PeerError> {
    use casbin::CoreApi;
    e.enforce((casbin_user(user), permission))
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- Cedar

/// A Cedar policy set and entity store for one tenant.
pub struct CedarPeer {
    pub policies: PolicySet,
    pub entities: Entities,
    pub authorizer: Authorizer,
    action: EntityUid,
    user_type: EntityTypeName,
    permission_type: EntityTypeName,
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn cedar_string(text: &str) -> String {
    // Permission paths and role names here are plain; escape anyway.
    format!("\"{}\"", text.escape_default())
}

/// How a role's exact grants reach a Cedar policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CedarEncoding {
    /// A set literal in the policy: `["a:b", ...].contains(context.permission)`.
    SetLiteral,
    /// A set attribute of the role entity: `Role::"r".allow.contains(context.permission)`.
    RoleAttribute,
}

/// The Cedar policy text of `flat`: per role, one `permit` for its allows
/// and one `forbid` for its denies.
pub fn cedar_policy_text(flat: &FlatTenant, encoding: CedarEncoding) -> String {
    let mut out = String::new();
    for role in &flat.roles {
        for (effect, keyword) in [(Effect::Allow, "permit"), (Effect::Deny, "forbid")] {
            let patterns: Vec<&str> = role
                .grants
                .iter()
                .filter(|(e, _)| *e == effect)
                .map(|(_, p)| p.as_str())
                .collect();
            if patterns.is_empty() {
                continue;
            }
            let exact: Vec<String> = patterns
                .iter()
                .filter(|p| !p.ends_with('*'))
                .map(|p| cedar_string(p))
                .collect();
            let mut clauses: Vec<String> = Vec::new();
            if !exact.is_empty() {
                clauses.push(match encoding {
                    CedarEncoding::SetLiteral => {
                        format!("[{}].contains(context.permission)", exact.join(", "))
                    }
                    CedarEncoding::RoleAttribute => format!(
                        "Role::{}.{}.contains(context.permission)",
                        cedar_string(&role.name),
                        effect.as_str()
                    ),
                });
            }
            for p in patterns.iter().filter(|p| p.ends_with('*')) {
                if *p == "*" {
                    clauses.push("true".to_owned());
                } else {
                    // `a:b:*` → like "a:b:*": the prefix then one or more characters,
                    // which for a valid path is one or more segments.
                    clauses.push(format!("context.permission like {}", cedar_string(p)));
                }
            }
            let condition = if clauses.iter().any(|c| c == "true") {
                String::new()
            } else {
                format!(" when {{ {} }}", clauses.join(" || "))
            };
            let _ = writeln!(
                out,
                "{keyword}(principal in Role::{}, action == Action::\"check\", resource){condition};",
                cedar_string(&role.name)
            );
        }
    }
    out
}

impl CedarPeer {
    /// Loads `flat` into a policy set and an entity store.
    pub fn new(flat: &FlatTenant, encoding: CedarEncoding) -> Result<Self, PeerError> {
        let ty = |name: &str| EntityTypeName::from_str(name).map_err(|e| e.to_string());
        let (user_t, group_t, role_t) = (ty("User")?, ty("Group")?, ty("Role")?);
        let mut parents: HashMap<EntityUid, HashSet<EntityUid>> = HashMap::new();
        let subject_uid = |s: &Subject| match s {
            Subject::User(u) => uid(&user_t, u.as_str()),
            Subject::Group(g) => uid(&group_t, g.as_str()),
        };
        for (id, _) in &flat.users {
            parents.entry(uid(&user_t, id)).or_default();
        }
        for g in &flat.groups {
            parents.entry(uid(&group_t, g)).or_default();
        }
        for role in &flat.roles {
            parents.entry(uid(&role_t, &role.name)).or_default();
        }
        for (member, group) in &flat.memberships {
            parents
                .entry(subject_uid(member))
                .or_default()
                .insert(uid(&group_t, group));
        }
        for (subject, role) in &flat.bindings {
            parents
                .entry(subject_uid(subject))
                .or_default()
                .insert(uid(&role_t, role));
        }
        let mut attrs: HashMap<EntityUid, HashMap<String, RestrictedExpression>> = HashMap::new();
        if encoding == CedarEncoding::RoleAttribute {
            for role in &flat.roles {
                let entry = attrs.entry(uid(&role_t, &role.name)).or_default();
                for effect in [Effect::Allow, Effect::Deny] {
                    let exact = role
                        .grants
                        .iter()
                        .filter(|(e, p)| *e == effect && !p.ends_with('*'))
                        .map(|(_, p)| RestrictedExpression::new_string(p.clone()));
                    entry.insert(
                        effect.as_str().to_owned(),
                        RestrictedExpression::new_set(exact),
                    );
                }
            }
        }
        let entities = parents
            .into_iter()
            .map(|(id, ps)| {
                let a = attrs.remove(&id).unwrap_or_default();
                Entity::new(id, a, ps).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;
        let policies =
            PolicySet::from_str(&cedar_policy_text(flat, encoding)).map_err(|e| e.to_string())?;
        let action = EntityUid::from_str("Action::\"check\"").map_err(|e| e.to_string())?;
        Ok(Self {
            policies,
            entities,
            authorizer: Authorizer::new(),
            action,
            user_type: user_t,
            permission_type: ty("Permission")?,
        })
    }

    /// The Cedar request for "may `user` do `permission`?": the permission
    /// is the resource's id and `context.permission`.
    pub fn request(&self, user: &str, permission: &str) -> Result<CedarRequest, PeerError> {
        let context = Context::from_pairs([(
            "permission".to_owned(),
            RestrictedExpression::new_string(permission.to_owned()),
        )])
        .map_err(|e| e.to_string())?;
        CedarRequest::new(
            uid(&self.user_type, user),
            self.action.clone(),
            uid(&self.permission_type, permission),
            context,
            None,
        )
        .map_err(|e| e.to_string())
    }

    /// Decides a prepared request.
    pub fn allows(&self, request: &CedarRequest) -> bool {
        self.authorizer
            .is_authorized(request, &self.policies, &self.entities)
            .decision()
            == CedarDecision::Allow
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use rampart::policy::{Decision, compile, evaluate};
    use rampart::synthetic::{NOW, Spec, flatten, generate, mixed, probes};

    /// The peers decide like rampart on the probes and a mixed batch of a
    /// small tenant of the issue's shape.
    #[test]
    fn peers_agree_with_rampart() {
        let spec = Spec {
            users_per_tenant: 1_000,
            groups_per_tenant: 50,
            ..Spec::issue_tenant()
        };
        let state = Arc::new(generate(&spec));
        let snapshot = compile(Arc::clone(&state));
        let tenant = Spec::tenant_id(0);
        let flat = flatten(&state, &tenant, NOW).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let enforcer = rt.block_on(casbin_enforcer(&flat)).unwrap();
        let cedar = CedarPeer::new(&flat, CedarEncoding::SetLiteral).unwrap();
        let cedar_attr = CedarPeer::new(&flat, CedarEncoding::RoleAttribute).unwrap();
        let p = probes(&state, &tenant).unwrap();
        let list = mixed(&state, &tenant, 300, 1);
        let checks = [&p.exact_allow, &p.wildcard_allow, &p.deny]
            .into_iter()
            .chain(list.iter().filter(|c| {
                // Only catalog-covered checks of members: the peers know no
                // catalog, and casbin scans every role name for an unknown subject.
                state.catalog.covering(&c.permission).is_some()
                    && state
                        .tenant(&tenant)
                        .unwrap()
                        .users
                        .keys()
                        .any(|u| u.as_str() == c.subject)
            }));
        let mut allowed = 0;
        for c in checks {
            let want = evaluate(&snapshot, &c.request(), NOW).unwrap().decision == Decision::Allow;
            allowed += usize::from(want);
            assert_eq!(
                casbin_allows(&enforcer, &c.subject, &c.permission).unwrap(),
                want,
                "casbin {c:?}"
            );
            let req = cedar.request(&c.subject, &c.permission).unwrap();
            assert_eq!(cedar.allows(&req), want, "cedar {c:?}");
            assert_eq!(
                cedar_attr.allows(&req),
                want,
                "cedar (role attribute) {c:?}"
            );
        }
        assert!(allowed > 50, "the checks include allows: {allowed}");
        let ghost = cedar.request("nobody", &p.exact_allow.permission).unwrap();
        assert!(!cedar.allows(&ghost));
    }
}
