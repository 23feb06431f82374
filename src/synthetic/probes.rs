//! The representative checks the benches time, found by inspecting a
//! generated state: an allow through an exact grant, an allow through a
//! `prefix:*` grant only, a deny that overrides an allow, an unknown
//! subject, and a mixed list for batches.
//!
//! The search reads the model directly (effective roles and grant
//! matching, as `policy::reference` does) with the tenant's indexes built
//! once, so finding probes in a 100k-user tenant takes milliseconds.

use std::collections::{HashMap, HashSet};

use super::{NOW, Rng, SAMPLE_ID};
use crate::model::catalog::CatalogSegment;
use crate::model::permission::{Effect, Grant, GrantPattern, PatternSegment};
use crate::model::{Binding, GroupName, State, Subject, Tenant, User, UserStatus};
use crate::policy::Request;

/// One check, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub tenant: String,
    pub subject: String,
    pub permission: String,
}

impl Probe {
    /// The check as [`crate::policy::evaluate`] takes it.
    pub fn request(&self) -> Request<'_> {
        Request {
            tenant: &self.tenant,
            subject: &self.subject,
            permission: &self.permission,
        }
    }
}

/// The four single checks the benches time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// `GRANTED`, and every matching grant is an exact allow (one hash probe).
    pub exact_allow: Probe,
    /// `GRANTED` through `prefix:*` allows only, on a permission no grant of
    /// the tenant names exactly, so the evaluator walks the wildcard trie.
    pub wildcard_allow: Probe,
    /// `DENIED_BY_GRANT`, with an allow of the same subject also matching.
    pub deny: Probe,
    /// `UNKNOWN_SUBJECT`, with the exact probe's permission.
    pub unknown_subject: Probe,
}

/// A subject id that no generated tenant has.
pub const UNKNOWN_SUBJECT: &str = "nobody";
/// A well-formed permission that no generated catalog covers.
pub const UNCOVERED_PERMISSION: &str = "unlisted:thing:read";

struct Picker<'a> {
    state: &'a State,
    tenant: &'a Tenant,
    parents: HashMap<Subject, Vec<GroupName>>,
    bindings: HashMap<Subject, Vec<Binding>>,
    /// Every path some grant of the tenant names exactly: what the compiler interns.
    exact_paths: HashSet<&'a str>,
}

/// What a subject's grants say about one permission.
#[derive(Debug, Default)]
struct Matches {
    exact_allow: bool,
    wildcard_allow: bool,
    deny: bool,
}

impl<'a> Picker<'a> {
    fn new(state: &'a State, tenant: &'a Tenant) -> Self {
        let exact_paths = tenant
            .roles
            .values()
            .flat_map(|r| state.grants_of(r))
            .filter_map(|g| g.pattern.as_exact())
            .collect();
        Self {
            state,
            tenant,
            parents: tenant.parents(),
            bindings: tenant.bindings_by_subject(),
            exact_paths,
        }
    }

    /// The grants of every role in effect for `user` at [`NOW`].
    fn grants(&self, user: &User) -> Vec<&'a Grant> {
        let tenant: &'a Tenant = self.tenant;
        let state: &'a State = self.state;
        tenant
            .effective_roles(&user.id, NOW, &self.parents, &self.bindings)
            .iter()
            .filter_map(|e| tenant.roles.get(&e.role))
            .flat_map(|role| state.grants_of(role))
            .collect()
    }

    fn matches(grants: &[&Grant], path: &str, subject: &str) -> Matches {
        let mut m = Matches::default();
        for g in grants.iter().filter(|g| g.pattern.matches(path, subject)) {
            match (g.effect, g.pattern.as_exact().is_some()) {
                (Effect::Deny, _) => m.deny = true,
                (Effect::Allow, true) => m.exact_allow = true,
                (Effect::Allow, false) => m.wildcard_allow = true,
            }
        }
        m
    }

    /// Active users, starting half way through so probes are not all `u0000000`.
    fn active_users(&self) -> impl Iterator<Item = &'a User> {
        let users = &self.tenant.users;
        let half = users.len() / 2;
        users
            .values()
            .skip(half)
            .chain(users.values().take(half))
            .filter(|u| u.status == UserStatus::Active)
    }

    /// Catalog-covered paths `pattern` matches, from the entries in catalog
    /// order starting at `start`: the pattern itself if exact, else the
    /// pattern's literals followed by the rest of an overlapping entry, ids
    /// filled with [`SAMPLE_ID`].
    fn instances(
        &self,
        pattern: &'a GrantPattern,
        start: usize,
    ) -> impl Iterator<Item = String> + 'a {
        let entries = self.state.catalog.entries();
        let catalog = &self.state.catalog;
        let exact = pattern.as_exact().map(str::to_owned);
        let star = pattern.has_star();
        let rotated = entries.iter().skip(start).chain(entries.iter().take(start));
        exact.into_iter().chain(
            rotated
                .filter(move |e| star && e.pattern.overlaps(pattern))
                .filter_map(move |e| {
                    let mut parts: Vec<&str> = Vec::new();
                    for s in pattern.segments() {
                        match s {
                            PatternSegment::Literal(l) => parts.push(l),
                            PatternSegment::Subject => return None,
                        }
                    }
                    for s in e.pattern.segments().iter().skip(parts.len()) {
                        parts.push(match s {
                            CatalogSegment::Literal(l) => l,
                            CatalogSegment::Param(_) | CatalogSegment::Rest(_) => SAMPLE_ID,
                        });
                    }
                    Some(parts.join(":"))
                })
                .filter(move |p| pattern.matches(p, "") && catalog.covering(p).is_some()),
        )
    }

    fn probe(&self, subject: &str, permission: String) -> Probe {
        Probe {
            tenant: self.tenant.id.to_string(),
            subject: subject.to_owned(),
            permission,
        }
    }

    fn exact_allow(&self) -> Option<Probe> {
        self.active_users().find_map(|user| {
            let grants = self.grants(user);
            grants
                .iter()
                .filter(|g| g.effect == Effect::Allow)
                .filter_map(|g| g.pattern.as_exact())
                .filter(|p| self.state.catalog.covering(p).is_some())
                .find(|p| {
                    let m = Self::matches(&grants, p, user.id.as_str());
                    !m.deny && !m.wildcard_allow
                })
                .map(|p| self.probe(user.id.as_str(), p.to_owned()))
        })
    }

    fn wildcard_allow(&self) -> Option<Probe> {
        self.active_users().find_map(|user| {
            let grants = self.grants(user);
            grants
                .iter()
                .filter(|g| {
                    g.effect == Effect::Allow && g.pattern.has_star() && g.pattern.as_str() != "*"
                })
                .flat_map(|g| self.instances(&g.pattern, 0))
                .find(|p| {
                    let m = Self::matches(&grants, p, user.id.as_str());
                    !self.exact_paths.contains(p.as_str())
                        && !m.deny
                        && !m.exact_allow
                        && m.wildcard_allow
                })
                .map(|p| self.probe(user.id.as_str(), p))
        })
    }

    fn deny(&self) -> Option<Probe> {
        self.active_users().find_map(|user| {
            let grants = self.grants(user);
            grants
                .iter()
                .filter(|g| g.effect == Effect::Deny)
                .flat_map(|g| self.instances(&g.pattern, 0))
                .find(|p| {
                    let m = Self::matches(&grants, p, user.id.as_str());
                    m.deny && (m.exact_allow || m.wildcard_allow)
                })
                .map(|p| self.probe(user.id.as_str(), p))
        })
    }
}

/// The representative checks of `tenant` in `state`, or `None` if the
/// tenant is missing or too small to hold one of each.
pub fn probes(state: &State, tenant: &str) -> Option<Probes> {
    let picker = Picker::new(state, state.tenant(tenant)?);
    let exact_allow = picker.exact_allow()?;
    let unknown_subject = picker.probe(UNKNOWN_SUBJECT, exact_allow.permission.clone());
    Some(Probes {
        wildcard_allow: picker.wildcard_allow()?,
        deny: picker.deny()?,
        exact_allow,
        unknown_subject,
    })
}

/// `n` checks against `tenant` as a busy service might send them, the same
/// for the same `seed`: about 45% a permission one of the subject's exact
/// grants names, 20% one only a wildcard grant of theirs covers (with an
/// id), 25% an arbitrary catalog permission (mostly `NO_MATCHING_GRANT`),
/// 5% an unknown subject and 5% a permission outside the catalog. Subjects
/// are drawn uniformly, inactive ones included. Empty if the tenant is missing.
pub fn mixed(state: &State, tenant: &str, n: usize, seed: u64) -> Vec<Probe> {
    let Some(t) = state.tenant(tenant) else {
        return Vec::new();
    };
    let picker = Picker::new(state, t);
    let users: Vec<&User> = t.users.values().collect();
    let entries = state.catalog.entries();
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let roll = rng.below(100);
        let Some(user) = users.get(rng.below(users.len())) else {
            return out;
        };
        let subject = user.id.as_str();
        if roll < 5 {
            out.push(picker.probe(
                &format!("ghost{}", rng.below(1_000_000)),
                SAMPLE_PATH.to_owned(),
            ));
            continue;
        }
        if roll < 10 {
            out.push(picker.probe(subject, UNCOVERED_PERMISSION.to_owned()));
            continue;
        }
        let grants = picker.grants(user);
        let pick = |rng: &mut Rng, wildcard: bool| -> Option<String> {
            let kind: Vec<&&Grant> = grants
                .iter()
                .filter(|g| g.pattern.has_star() == wildcard && g.pattern.as_str() != "*")
                .collect();
            let g = kind.get(rng.below(kind.len()))?;
            let start = rng.below(entries.len());
            picker.instances(&g.pattern, start).next()
        };
        let permission = if roll < 55 {
            pick(&mut rng, false)
        } else if roll < 75 {
            pick(&mut rng, true)
        } else {
            None
        };
        let permission = permission.or_else(|| {
            let e = entries.get(rng.below(entries.len()))?;
            let parts: Vec<&str> = e
                .pattern
                .segments()
                .iter()
                .map(|s| match s {
                    CatalogSegment::Literal(l) => &**l,
                    CatalogSegment::Param(_) | CatalogSegment::Rest(_) => SAMPLE_ID,
                })
                .collect();
            Some(parts.join(":"))
        });
        if let Some(permission) = permission {
            out.push(picker.probe(subject, permission));
        }
    }
    out
}

/// The permission of unknown-subject checks in [`mixed`].
const SAMPLE_PATH: &str = "svc00:resource00:read";
