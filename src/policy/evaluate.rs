//! Deciding checks against a compiled [`Snapshot`], and the listings built
//! on it.

use thiserror::Error;

use super::bits;
use super::catalog_index::smallvec_lite::Segments;
use super::compile::{GrantIndex, Snapshot, TenantSnapshot};
use super::reference;
use crate::model::catalog::Stability;
use crate::model::decision::{Decision, Reason};
use crate::model::ids::{IdError, UserId, check_identity};
use crate::model::permission::{Effect, PathError, validate_path};
use crate::model::tenant::UserStatus;
use crate::model::{RoleName, Timestamp};

/// One question: may `subject` do `permission` in `tenant`?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub tenant: &'a str,
    pub subject: &'a str,
    pub permission: &'a str,
}

/// A decision and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: Reason,
}

impl Verdict {
    const fn deny(reason: Reason) -> Self {
        Self {
            decision: Decision::Deny,
            reason,
        }
    }
}

/// A request that cannot be decided: malformed, or for an unknown tenant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckError {
    #[error("unknown tenant `{}`", crate::model::quote(.0))]
    UnknownTenant(String),
    #[error(transparent)]
    InvalidPermission(PathError),
    #[error("`subject`: {0}")]
    InvalidSubject(IdError),
}

impl crate::model::HasKind for CheckError {
    fn kind(&self) -> crate::model::ErrorKind {
        match self {
            CheckError::UnknownTenant(_) => crate::model::ErrorKind::NotFound,
            CheckError::InvalidPermission(_) | CheckError::InvalidSubject(_) => {
                crate::model::ErrorKind::InvalidArgument
            }
        }
    }
}

/// Refuses an empty, oversize or malformed subject: a subject is a user id
/// or an alias, so 1–512 bytes of ASCII graphic characters, not `group:…`
/// (non-ASCII or spaced text, or a group, is `INVALID_ARGUMENT`). A
/// well-formed subject is looked up, as an id and then as an alias, and is
/// `UNKNOWN_SUBJECT` if no member is known by it.
pub(crate) fn check_subject(subject: &str) -> Result<(), CheckError> {
    check_identity("subject", subject).map_err(CheckError::InvalidSubject)
}

/// Decides `request` against `snapshot` at `now`, by the decision rule:
/// unknown tenant and malformed input are errors; otherwise a verdict.
pub fn evaluate(
    snapshot: &Snapshot,
    request: &Request<'_>,
    now: Timestamp,
) -> Result<Verdict, CheckError> {
    let tenant = snapshot.tenants.get(request.tenant).map(|t| &**t);
    evaluate_with(snapshot, tenant, request, now)
}

/// [`evaluate`] with `request.tenant` already looked up in `snapshot`
/// (`None`: it has no such tenant), for a caller deciding many requests of
/// one tenant (a batch looks it up once).
pub fn evaluate_with(
    snapshot: &Snapshot,
    tenant: Option<&TenantSnapshot>,
    request: &Request<'_>,
    now: Timestamp,
) -> Result<Verdict, CheckError> {
    let tenant = tenant.ok_or_else(|| CheckError::UnknownTenant(request.tenant.to_owned()))?;
    evaluate_in(snapshot, tenant, request.subject, request.permission, now)
}

/// Who a subject is in a tenant at one time: [`member`] looks it up once,
/// and [`decide_for`] decides any number of permissions with it (a batch
/// that asks many things about one subject resolves it once).
#[derive(Debug, Clone)]
pub enum Member<'a> {
    /// Not a well-formed subject.
    Invalid(CheckError),
    /// No member is known by it, as an id or an alias.
    Unknown,
    /// A member, inactive.
    Inactive,
    /// An active member: its id (the subject, or the member whose alias it
    /// is) and its roles at that time.
    Active { id: &'a str, set: bits::Union<'a> },
}

/// Looks `subject` up in `tenant` at `now`: as a member's id, then as an
/// alias; `{subject}` grants then match the member's id.
#[inline]
pub fn member<'a>(tenant: &'a TenantSnapshot, subject: &'a str, now: Timestamp) -> Member<'a> {
    if let Err(e) = check_subject(subject) {
        return Member::Invalid(e);
    }
    // A member's id is one probe, as before aliases; an alias costs a
    // second lookup, only on a miss.
    let (user, id) = match tenant.users.get(subject) {
        Some(user) => (user, subject),
        None => match tenant.by_alias(subject) {
            Some(found) => found,
            None => return Member::Unknown,
        },
    };
    if !user.active() {
        return Member::Inactive;
    }
    Member::Active {
        id,
        set: tenant.user_roles(*user, now.unix()),
    }
}

/// [`evaluate`] with the tenant already found.
pub(crate) fn evaluate_in(
    snapshot: &Snapshot,
    tenant: &TenantSnapshot,
    subject: &str,
    permission: &str,
    now: Timestamp,
) -> Result<Verdict, CheckError> {
    decide_for(snapshot, tenant, &member(tenant, subject, now), permission)
}

/// Decides `permission` for a subject already looked up in `tenant`
/// ([`member`], at the time of the check), by the decision rule in its
/// order: a malformed permission is an error before anything about the
/// subject is.
pub fn decide_for(
    snapshot: &Snapshot,
    tenant: &TenantSnapshot,
    member: &Member<'_>,
    permission: &str,
) -> Result<Verdict, CheckError> {
    // Interned paths are valid by construction, and so are the texts of
    // parameterless catalog entries (whose trie answers the tenant keeps);
    // split and validate the others once, in one pass, and hand the
    // segments to both walks.
    let grants = &*tenant.grants;
    let interned = grants.perms.get(permission).copied();
    let literal = match interned {
        Some(_) => None,
        None => snapshot
            .catalog
            .literal(permission)
            .and_then(|l| grants.literal_bits(l)),
    };
    let segments = match (interned, literal) {
        (Some(_), _) | (None, Some(_)) => None,
        (None, None) => match Segments::parse(permission) {
            Some(s) => Some(s),
            None => {
                validate_path(permission).map_err(CheckError::InvalidPermission)?;
                // INVARIANT: `parse` and `validate_path` accept the same paths
                // (tests/never_panics.rs checks it); be safe if they ever differ.
                Some(Segments::new(permission))
            }
        },
    };
    let (subject, set) = match member {
        Member::Invalid(e) => return Err(e.clone()),
        Member::Unknown => return Ok(Verdict::deny(Reason::UnknownSubject)),
        Member::Inactive => return Ok(Verdict::deny(Reason::SubjectInactive)),
        Member::Active { id, set } => (*id, *set),
    };
    let covered = match (interned, &segments) {
        (Some(p), _) => grants
            .perm_covered
            .get(p as usize)
            .is_some_and(Option::is_some),
        // A catalog entry's own text: covered by that entry.
        (None, _) if literal.is_some() => true,
        (None, Some(segments)) => snapshot
            .catalog
            .covering_segments(segments.as_slice())
            .is_some(),
        (None, None) => false,
    };
    if !covered {
        return Ok(Verdict::deny(Reason::UnknownPermission));
    }
    let (mut allow, mut deny) = match (interned, literal, &segments) {
        (Some(p), _, _) => (
            set.intersects(grants.perm_allow(p)),
            set.intersects(grants.perm_deny(p)),
        ),
        (None, Some((allow, deny)), _) => (set.intersects(allow), set.intersects(deny)),
        (None, None, Some(segments)) => walk(grants, segments.as_slice(), set),
        (None, None, None) => (false, false),
    };
    for g in &grants.subject_grants {
        if set.get(g.role) && g.pattern.matches(permission, subject) {
            match g.effect {
                Effect::Allow => allow = true,
                Effect::Deny => deny = true,
            }
        }
    }
    Ok(if deny {
        Verdict::deny(Reason::DeniedByGrant)
    } else if allow {
        Verdict {
            decision: Decision::Allow,
            reason: Reason::Granted,
        }
    } else {
        Verdict::deny(Reason::NoMatchingGrant)
    })
}

/// Walks the wildcard trie along `segments`: does a `prefix:*` grant of
/// one of `set`'s roles allow it, and does one deny it?
fn walk(grants: &GrantIndex, segments: &[&str], set: bits::Union<'_>) -> (bool, bool) {
    let (mut allow, mut deny) = (false, false);
    let mut at = 0usize;
    for segment in segments {
        let Some(node) = grants.trie.get(at) else {
            break;
        };
        if let Some(o) = node.star {
            allow |= set.intersects(grants.star_allow(o));
            deny |= set.intersects(grants.star_deny(o));
        }
        match node.children.get(*segment) {
            Some(&n) => at = n as usize,
            None => break,
        }
    }
    (allow, deny)
}

/// A grant that decided, and how its role reached the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidingGrant {
    pub role: RoleName,
    pub effect: Effect,
    pub pattern: String,
    /// `user:alice`, then each group the binding came through; for the
    /// implicit `Users` role, `user:alice` then `default`.
    pub via: Vec<String>,
    pub expires: Option<Timestamp>,
}

/// Why a check came out as it did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Explanation {
    /// The member the check was decided as: the subject itself when it is a
    /// member's id, the member whose alias it is otherwise; `None` when no
    /// member is known by it.
    pub user: Option<UserId>,
    pub grants: Vec<DecidingGrant>,
    pub catalog_entry: Option<String>,
    /// The stability of `catalog_entry`.
    pub catalog_stability: Option<Stability>,
    pub effective_roles: Vec<RoleName>,
}

/// Decides `request` and explains the decision: the deciding grants (the
/// matching denies for `DENIED_BY_GRANT`, the matching allows for
/// `GRANTED`), their roles and the group chains that brought them.
pub fn explain(
    snapshot: &Snapshot,
    request: &Request<'_>,
    now: Timestamp,
) -> Result<(Verdict, Explanation), CheckError> {
    let verdict = evaluate(snapshot, request, now)?;
    let outcome = reference::decide(&snapshot.state, request, now)?;
    debug_assert_eq!(
        outcome.verdict, verdict,
        "compiled and reference evaluators disagree"
    );
    let wanted = match verdict.reason {
        Reason::DeniedByGrant => Some(Effect::Deny),
        Reason::Granted => Some(Effect::Allow),
        _ => None,
    };
    let mut grants = Vec::new();
    for (i, grant) in &outcome.matching {
        if Some(grant.effect) != wanted {
            continue;
        }
        let Some(e) = outcome.effective.get(*i) else {
            continue;
        };
        let Some(user) = &outcome.user else {
            continue;
        };
        let mut via: Vec<String> = vec![format!("user:{user}")];
        if e.chain.is_empty() {
            via.push("default".to_owned());
        } else {
            via.extend(e.chain.iter().skip(1).map(ToString::to_string));
        }
        grants.push(DecidingGrant {
            role: e.role.clone(),
            effect: grant.effect,
            pattern: grant.pattern.as_str().to_owned(),
            via,
            expires: e.expires,
        });
    }
    let mut effective_roles: Vec<RoleName> =
        outcome.effective.iter().map(|e| e.role.clone()).collect();
    effective_roles.sort();
    let catalog_stability = outcome
        .catalog_entry
        .as_deref()
        .and_then(|e| snapshot.state.catalog.get(e))
        .map(|e| e.stability);
    Ok((
        verdict,
        Explanation {
            user: outcome.user,
            grants,
            catalog_entry: outcome.catalog_entry,
            catalog_stability,
            effective_roles,
        },
    ))
}

/// What a subject holds in a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPermissions {
    /// The member the subject names: itself, or the member whose alias it is.
    pub user: UserId,
    pub active: bool,
    pub administrator: bool,
    /// Sorted.
    pub roles: Vec<RoleName>,
    /// `(pattern, effect, role)`, sorted by pattern then role.
    pub permissions: Vec<(String, Effect, RoleName)>,
}

/// Every grant a subject holds now, for UIs. `None` if the subject is not a
/// member; an error for an unknown tenant or a malformed subject.
pub fn list_subject_permissions(
    snapshot: &Snapshot,
    tenant: &str,
    subject: &str,
    now: Timestamp,
) -> Result<Option<SubjectPermissions>, CheckError> {
    let t = snapshot
        .tenants
        .get(tenant)
        .ok_or_else(|| CheckError::UnknownTenant(tenant.to_owned()))?;
    check_subject(subject)?;
    let Some(user) = t.tenant.member(subject) else {
        return Ok(None);
    };
    let (parents, bindings) = t.indexes_for(&user.id);
    let effective = t.tenant.effective_roles(&user.id, now, &parents, &bindings);
    let mut roles: Vec<RoleName> = effective.iter().map(|e| e.role.clone()).collect();
    roles.sort();
    let mut permissions = Vec::new();
    for e in &effective {
        if let Some(role) = t.tenant.roles.get(&e.role) {
            for g in snapshot.state.grants_of(role) {
                permissions.push((g.pattern.as_str().to_owned(), g.effect, e.role.clone()));
            }
        }
    }
    permissions.sort_by(|a, b| (&a.0, &a.2, a.1).cmp(&(&b.0, &b.2, b.1)));
    Ok(Some(SubjectPermissions {
        user: user.id.clone(),
        active: user.status == UserStatus::Active,
        administrator: roles.iter().any(|r| *r == RoleName::administrators()),
        roles,
        permissions,
    }))
}

/// Active users allowed `permission`, sorted by id, starting after `after`,
/// at most `limit`; and whether more follow.
pub fn list_subjects(
    snapshot: &Snapshot,
    tenant: &str,
    permission: &str,
    after: Option<&str>,
    limit: usize,
    now: Timestamp,
) -> Result<(Vec<String>, bool), CheckError> {
    let t = snapshot
        .tenants
        .get(tenant)
        .ok_or_else(|| CheckError::UnknownTenant(tenant.to_owned()))?;
    validate_path(permission).map_err(CheckError::InvalidPermission)?;
    let mut out = Vec::new();
    let lower = match after {
        Some(a) => std::ops::Bound::Excluded(a),
        None => std::ops::Bound::Unbounded,
    };
    let range = t
        .tenant
        .users
        .range::<_, str>((lower, std::ops::Bound::Unbounded));
    for (id, _) in range {
        if out.len() == limit {
            return Ok((out, true));
        }
        let verdict = evaluate_in(snapshot, t, id.as_str(), permission, now)?;
        if verdict.decision == Decision::Allow {
            out.push(id.to_string());
        }
    }
    Ok((out, false))
}
