//! What an actor holds in a tenant ([`ActorView`]), where that comes from
//! ([`Authority`], [`view_of`]), and how grant patterns compare
//! ([`subsumes`], [`overlaps`]).

use std::collections::{BTreeSet, HashMap};

use crate::model::ids::{GroupName, RoleName, Subject, TenantId, UserId};
use crate::model::permission::{Effect, Grant, GrantPattern, PatternSegment};
use crate::model::state::State;
use crate::model::tenant::{Binding, RoleKind, Tenant, UserStatus};
use crate::model::time::Timestamp;

/// What an actor holds in one tenant, now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActorView {
    pub member: bool,
    pub active: bool,
    pub administrator: bool,
    /// The roles in effect, `Users` included.
    pub roles: BTreeSet<RoleName>,
    /// Every grant of those roles (`Administrators` contributes `allow *`).
    pub grants: Vec<Grant>,
}

impl ActorView {
    /// Whether the actor is allowed `path` by the decision rule (deny wins).
    pub fn allows(&self, path: &str, actor: &str) -> bool {
        if !self.active {
            return false;
        }
        let mut allow = false;
        for g in &self.grants {
            if g.pattern.matches(path, actor) {
                match g.effect {
                    Effect::Deny => return false,
                    Effect::Allow => allow = true,
                }
            }
        }
        allow
    }

    /// Whether the actor holds every permission `pattern` names: some allow
    /// of its own covers the pattern, and none of its denies overlaps it.
    pub fn holds(&self, pattern: &GrantPattern, actor: &str) -> bool {
        self.active
            && self
                .grants
                .iter()
                .any(|g| g.effect == Effect::Allow && subsumes(&g.pattern, pattern, actor))
            && !self
                .grants
                .iter()
                .any(|g| g.effect == Effect::Deny && overlaps(&g.pattern, pattern, actor))
    }
}

/// Whether `outer` matches every path `inner` matches. A `{subject}` in
/// `inner` is relative to whoever checks, so only `{subject}` in `outer`
/// (or a `*`) covers it.
pub fn subsumes(outer: &GrantPattern, inner: &GrantPattern, _actor: &str) -> bool {
    let (o, i) = (outer.segments(), inner.segments());
    let length_ok = match (outer.has_star(), inner.has_star()) {
        (false, false) => o.len() == i.len(),
        (false, true) => false,
        (true, false) => i.len() > o.len(),
        (true, true) => i.len() >= o.len(),
    };
    length_ok
        && o.iter().zip(i).all(|(a, b)| match (a, b) {
            (PatternSegment::Literal(x), PatternSegment::Literal(y)) => x == y,
            (PatternSegment::Subject, PatternSegment::Subject) => true,
            _ => false,
        })
}

/// Whether some path matches both patterns (for the checking `actor`, a
/// `{subject}` segment is conservatively taken to match anything).
pub fn overlaps(a: &GrantPattern, b: &GrantPattern, _actor: &str) -> bool {
    let (x, y) = (a.segments(), b.segments());
    let length_ok = match (a.has_star(), b.has_star()) {
        (false, false) => x.len() == y.len(),
        (true, false) => y.len() > x.len(),
        (false, true) => x.len() > y.len(),
        (true, true) => true,
    };
    length_ok
        && x.iter().zip(y).all(|(p, q)| match (p, q) {
            (PatternSegment::Literal(s), PatternSegment::Literal(t)) => s == t,
            _ => true,
        })
}

/// Gives [`validate`](super::validate) what an actor holds; implemented by the compiled
/// snapshot (fast) and by the plain state (for tests).
pub trait Authority {
    fn view(&self, tenant: &TenantId, user: &UserId, now: Timestamp) -> ActorView;
}

/// The plain, uncompiled authority: walks the model.
impl Authority for State {
    fn view(&self, tenant: &TenantId, user: &UserId, now: Timestamp) -> ActorView {
        let Some(t) = self.tenants.get(tenant) else {
            return ActorView::default();
        };
        view_of(self, t, user, now, &t.parents(), &t.bindings_by_subject())
    }
}

/// The actor view from a tenant and its membership indexes.
pub fn view_of(
    state: &State,
    t: &Tenant,
    user: &UserId,
    now: Timestamp,
    parents: &HashMap<Subject, Vec<GroupName>>,
    bindings: &HashMap<Subject, Vec<Binding>>,
) -> ActorView {
    let Some(u) = t.users.get(user) else {
        return ActorView::default();
    };
    let effective = t.effective_roles(user, now, parents, bindings);
    let mut view = ActorView {
        member: true,
        active: u.status == UserStatus::Active,
        ..ActorView::default()
    };
    for e in effective {
        if let Some(role) = t.roles.get(&e.role) {
            view.administrator |= role.kind() == RoleKind::Administrators;
            view.grants.extend(state.grants_of(role).iter().cloned());
        }
        view.roles.insert(e.role);
    }
    view
}
