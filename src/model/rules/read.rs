//! Reads made on behalf of a user: who may read which rows of a tenant.
//! Pure, like the rest of the rules: the state, what the reader holds
//! ([`Authority::view`]) and the time decide.
//!
//! An Admin read (GetRole, ListRoles, ListGroups, ListUsers, ListBindings)
//! that names an `actor` is made as that user: it must be an active member
//! of the tenant (else PERMISSION_DENIED, as for a change), and each row
//! needs the permissions the tenant maps the read to (`get_role`,
//! `list_roles`, … in `admin_permissions`), by default the built-in
//! `ACM:…:RETRIEVE` ones ([`Operation::defaults`]).
//! A list leaves out the rows the reader may not see: one that sees none
//! gets an empty page, not a refusal, since "which rows may I see" has an
//! answer for everyone. GetRole asks for one row by name, so a reader who
//! may not see it is refused (PERMISSION_DENIED naming the permission)
//! before the role is looked up: the refusal does not tell whether the role
//! exists. A read without an actor is the credential's own and sees every
//! row, as before reads had an actor.
//!
//! A template with no row placeholder (rediacc's `GetCompanyPermissionGroups`)
//! gates every row alike. The server (`server::admin::reads`) and
//! `rampart test` both ask [`Reader`], which asks the same
//! [`authorize`] as changes do.

use std::sync::Arc;

use super::Actor;
use super::authorize::{On, authorize};
use super::error::AdminError;
use super::shape::tenant;
use super::view::{ActorView, Authority};
use crate::model::ids::{GroupName, RoleName, Subject, TenantId, UserId};
use crate::model::operation::Operation;
use crate::model::state::State;
use crate::model::tenant::{Role, Tenant};
use crate::model::time::Timestamp;

/// An Admin read a user may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadOp {
    GetRole,
    ListRoles,
    ListGroups,
    ListUsers,
    ListBindings,
}

impl ReadOp {
    pub const ALL: [ReadOp; 5] = [
        ReadOp::GetRole,
        ReadOp::ListRoles,
        ReadOp::ListGroups,
        ReadOp::ListUsers,
        ReadOp::ListBindings,
    ];

    /// The read's name, as `rampart test` steps write it (`get_role`, …).
    pub fn name(self) -> &'static str {
        match self {
            ReadOp::GetRole => "get_role",
            ReadOp::ListRoles => "list_roles",
            ReadOp::ListGroups => "list_groups",
            ReadOp::ListUsers => "list_users",
            ReadOp::ListBindings => "list_bindings",
        }
    }

    /// The read named `name`.
    pub fn parse(name: &str) -> Option<ReadOp> {
        ReadOp::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The admin operation a tenant maps to its permissions.
    pub fn operation(self) -> Operation {
        match self {
            ReadOp::GetRole => Operation::GetRole,
            ReadOp::ListRoles => Operation::ListRoles,
            ReadOp::ListGroups => Operation::ListGroups,
            ReadOp::ListUsers => Operation::ListUsers,
            ReadOp::ListBindings => Operation::ListBindings,
        }
    }
}

/// What a row is about, as far as the permission it needs goes: a role, a
/// group or a user (a binding's row is its subject's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    Role(&'a RoleName),
    Group(&'a GroupName),
    User(&'a UserId),
}

impl<'a> Row<'a> {
    /// A binding's row: its subject, a user or a group.
    pub fn subject(s: &'a Subject) -> Row<'a> {
        match s {
            Subject::User(u) => Row::User(u),
            Subject::Group(g) => Row::Group(g),
        }
    }
}

/// Who reads a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// The call's credential itself (no actor): sees every row.
    Credential,
    /// An active member of `tenant`, with what it holds there.
    User {
        actor: UserId,
        tenant: Arc<Tenant>,
        view: ActorView,
    },
}

impl Reader {
    /// Admits `actor` to read tenant `id` at `now`: NOT_FOUND for an
    /// unknown tenant; for a user, PERMISSION_DENIED unless it is an active
    /// member there.
    pub fn admit(
        state: &State,
        authority: &dyn Authority,
        actor: &Actor,
        id: &TenantId,
        now: Timestamp,
    ) -> Result<Reader, AdminError> {
        tenant(state, id)?;
        let Some(t) = state.tenants.get(id) else {
            return Err(AdminError::UnknownTenant { tenant: id.clone() });
        };
        let Actor::User(actor) = actor else {
            return Ok(Reader::Credential);
        };
        let view = authority.view(id, actor, now);
        if !view.member || !view.active {
            return Err(AdminError::NotActiveMember {
                actor: actor.clone(),
                tenant: id.clone(),
            });
        }
        Ok(Reader::User {
            actor: actor.clone(),
            tenant: Arc::clone(t),
            view,
        })
    }

    /// Whether the reader sees `row` in `op`'s answer.
    pub fn sees(&self, op: ReadOp, row: Row<'_>) -> bool {
        self.require(op, row).is_ok()
    }

    /// The reader may see `row` in `op`'s answer, or PERMISSION_DENIED
    /// naming the permission it lacks.
    pub fn require(&self, op: ReadOp, row: Row<'_>) -> Result<(), AdminError> {
        let Reader::User {
            actor,
            tenant,
            view,
        } = self
        else {
            return Ok(());
        };
        let on = match row {
            Row::Role(r) => On::role(r),
            Row::Group(g) => On::group(g),
            Row::User(u) => On::user(tenant, u),
        };
        authorize(view, actor, tenant, op.operation(), on)
    }

    /// GetRole: the role `name` of `t`, if the reader may see its
    /// permissions (asked first, so a refusal does not tell whether the
    /// role exists), or NOT_FOUND.
    pub fn get_role<'t>(&self, t: &'t Tenant, name: &RoleName) -> Result<&'t Role, AdminError> {
        self.require(ReadOp::GetRole, Row::Role(name))?;
        t.roles.get(name).ok_or_else(|| AdminError::UnknownRole {
            tenant: t.id.clone(),
            role: name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy_file;

    const POLICY: &str = r#"
catalog: [{ permission: "docs:view" }]
tenants:
  - id: acme
    roles:
      - { name: viewers, grants: ["ACM:ROLE:RETRIEVE:*", "ACM:GROUP:RETRIEVE:ops", "ACM:USER:RETRIEVE:INFO:{subject}"] }
      - { name: "two words", grants: ["docs:view"] }
      - { name: partial, grants: ["ACM:ROLE:RETRIEVE:PERMISSIONS:viewers", "ACM:USER:RETRIEVE:ROLES:*", { deny: "ACM:USER:RETRIEVE:ROLES:ann" }] }
      - { name: empty }
    groups:
      - { name: ops, members: [vic] }
      - { name: devs, members: [] }
    users:
      - { id: ann }
      - { id: vic }
      - { id: pat }
      - { id: nora }
      - { id: ivy, status: inactive }
    bindings:
      - { subject: ann, role: Administrators }
      - { subject: vic, role: viewers }
      - { subject: pat, role: partial }
      - { subject: ivy, role: viewers }
      - { subject: "group:ops", role: empty }
  - id: beta
    users: [{ id: bo }]
    bindings: [{ subject: bo, role: Administrators }]
"#;

    fn state() -> State {
        policy_file::load_str(POLICY).unwrap()
    }

    fn acme() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    fn user(id: &str) -> Actor {
        Actor::User(UserId::new(id).unwrap())
    }

    fn admit(s: &State, who: &Actor) -> Result<Reader, AdminError> {
        Reader::admit(s, s, who, &acme(), Timestamp::from_unix(1_800_000_000))
    }

    fn roles_seen(s: &State, r: &Reader, op: ReadOp) -> Vec<String> {
        let t = s.tenant("acme").unwrap();
        t.roles
            .keys()
            .filter(|k| r.sees(op, Row::Role(k)))
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_permissions_are_the_catalogs_built_in_names() {
        let s = state();
        for op in ReadOp::ALL {
            assert_eq!(ReadOp::parse(op.name()), Some(op));
            assert_eq!(op.operation().name(), op.name());
            for template in op.operation().defaults() {
                let pattern = template
                    .replace("{role}", "x")
                    .replace("{group}", "x")
                    .replace("{user}", "x");
                assert!(
                    s.catalog.covering(&pattern).is_some(),
                    "`{pattern}` is not a built-in catalog entry"
                );
            }
        }
    }

    #[test]
    fn the_credential_sees_every_row() {
        let s = state();
        let r = admit(&s, &Actor::Operator).unwrap();
        assert_eq!(r, Reader::Credential);
        assert_eq!(roles_seen(&s, &r, ReadOp::ListRoles).len(), 7);
    }

    #[test]
    fn an_administrator_sees_everything() {
        let s = state();
        let r = admit(&s, &user("ann")).unwrap();
        assert_eq!(roles_seen(&s, &r, ReadOp::ListRoles).len(), 7);
        let t = s.tenant("acme").unwrap();
        let role = r.get_role(t, &RoleName::new("two words").unwrap()).unwrap();
        assert_eq!(role.name.as_str(), "two words");
    }

    #[test]
    fn readers_must_be_active_members() {
        let s = state();
        for who in ["ivy", "bo", "ghost"] {
            let e = admit(&s, &user(who)).unwrap_err();
            assert!(
                matches!(e, AdminError::NotActiveMember { .. }),
                "{who}: {e}"
            );
            assert_eq!(e.refusal().code_name(), "PERMISSION_DENIED");
        }
        let e = Reader::admit(
            &s,
            &s,
            &user("ann"),
            &TenantId::new("nope").unwrap(),
            Timestamp::from_unix(0),
        )
        .unwrap_err();
        assert_eq!(e.refusal().code_name(), "NOT_FOUND");
    }

    #[test]
    fn get_role_is_refused_naming_the_permission() {
        let s = state();
        let t = s.tenant("acme").unwrap();
        let pat = admit(&s, &user("pat")).unwrap();
        assert!(pat.get_role(t, &RoleName::new("viewers").unwrap()).is_ok());
        let e = pat
            .get_role(t, &RoleName::new("partial").unwrap())
            .unwrap_err();
        assert_eq!(e.refusal().code_name(), "PERMISSION_DENIED");
        assert_eq!(
            e.to_string(),
            "actor `pat` lacks `ACM:ROLE:RETRIEVE:PERMISSIONS:partial` in tenant `acme`"
        );
        // Refused before the lookup: no telling whether the role exists.
        let e = pat
            .get_role(t, &RoleName::new("ghost").unwrap())
            .unwrap_err();
        assert_eq!(e.refusal().code_name(), "PERMISSION_DENIED");
        let nora = admit(&s, &user("nora")).unwrap();
        assert!(nora.get_role(t, &RoleName::new("Users").unwrap()).is_err());
    }

    #[test]
    fn an_unknown_role_is_not_found_for_who_may_see_it() {
        let s = state();
        let t = s.tenant("acme").unwrap();
        for who in [Actor::Operator, user("vic"), user("ann")] {
            let r = admit(&s, &who).unwrap();
            let e = r.get_role(t, &RoleName::new("ghost").unwrap()).unwrap_err();
            assert_eq!(e.to_string(), "unknown role `ghost` in tenant `acme`");
            assert_eq!(e.refusal().code_name(), "NOT_FOUND");
        }
    }

    #[test]
    fn lists_leave_out_the_rows_the_reader_may_not_see() {
        let s = state();
        let t = s.tenant("acme").unwrap();
        let pat = admit(&s, &user("pat")).unwrap();
        // ACM:ROLE:RETRIEVE:PERMISSIONS:viewers is not the list's permission.
        assert!(roles_seen(&s, &pat, ReadOp::ListRoles).is_empty());
        assert_eq!(roles_seen(&s, &pat, ReadOp::GetRole), ["viewers"]);
        let vic = admit(&s, &user("vic")).unwrap();
        // `ACM:ROLE:RETRIEVE:*` covers "two words" only as a wildcard.
        assert_eq!(roles_seen(&s, &vic, ReadOp::ListRoles).len(), 7);
        let groups: Vec<&str> = t
            .groups
            .keys()
            .filter(|g| vic.sees(ReadOp::ListGroups, Row::Group(g)))
            .map(GroupName::as_str)
            .collect();
        assert_eq!(groups, ["ops"]);
        // `{subject}`: vic sees his own info only.
        let users: Vec<&str> = t
            .users
            .keys()
            .filter(|u| vic.sees(ReadOp::ListUsers, Row::User(u)))
            .map(UserId::as_str)
            .collect();
        assert_eq!(users, ["vic"]);
        // Bindings: a user's need ACM:USER:RETRIEVE:ROLES (a deny wins), a
        // group's ACM:GROUP:RETRIEVE.
        let bindings = |r: &Reader| -> Vec<String> {
            t.bindings
                .values()
                .filter(|b| r.sees(ReadOp::ListBindings, Row::subject(&b.subject)))
                .map(|b| format!("{} {}", b.subject.reference(), b.role))
                .collect()
        };
        assert_eq!(
            bindings(&pat),
            ["ivy viewers", "pat partial", "vic viewers"]
        );
        assert_eq!(bindings(&vic), ["group:ops empty"]);
        let nora = admit(&s, &user("nora")).unwrap();
        assert!(bindings(&nora).is_empty());
        assert!(roles_seen(&s, &nora, ReadOp::ListRoles).is_empty());
    }

    #[test]
    fn a_name_that_is_no_segment_needs_the_wildcard() {
        let s = state();
        let two = RoleName::new("two words").unwrap();
        let pat = admit(&s, &user("pat")).unwrap();
        let e = pat.require(ReadOp::GetRole, Row::Role(&two)).unwrap_err();
        assert!(
            e.to_string().contains("`ACM:ROLE:RETRIEVE:PERMISSIONS:*`"),
            "{e}"
        );
        let vic = admit(&s, &user("vic")).unwrap();
        assert!(vic.sees(ReadOp::GetRole, Row::Role(&two)));
    }
}
