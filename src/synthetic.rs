//! Synthetic policies for benchmarks: a deterministic generator of large,
//! realistically shaped states, the representative checks the benches time,
//! and a neutral export the peer benches translate into casbin and Cedar.
//!
//! Owns nothing the server uses: it builds a [`State`] directly from the
//! model's plain structs, as a loaded policy file would, and never touches
//! `policy/` internals. No randomness from outside: a tiny splitmix64 seeded
//! by [`Spec::seed`] makes every run the same.
//!
//! The shape (per tenant): a shared catalog of `svcNN:resourceNN:action`
//! entries, about a tenth of them taking an id (`svcNN:resourceNN:action:?ID?`);
//! roles of 10–30 grants centred on a home service, mostly exact allows,
//! some `prefix:*` wildcards and a few denies; groups nested `group_depth`
//! levels deep, most bound to a role or two; users bound directly to one or
//! two roles drawn from a Zipf-like distribution, members of one to three
//! groups, a few of them with expiring bindings, about 1% inactive.

mod flat;
mod footprint;
mod probes;

use std::sync::Arc;

pub use flat::{FlatRole, FlatTenant, flatten};
pub use footprint::{Piece, footprint};
pub use probes::{Probe, Probes, mixed, probes};

use crate::model::catalog::{CatalogEntry, CatalogPattern, Stability};
use crate::model::{
    Binding, Catalog, Grant, GrantPattern, Group, GroupName, Role, RoleName, State, Subject,
    Tenant, TenantId, Timestamp, User, UserId, UserStatus,
};

/// The instant the benches check at: 2026-11-22T00:00:00Z. Expiring
/// bindings fall on both sides of it.
pub const NOW: Timestamp = Timestamp::from_unix(1_795_305_600);

/// The actions of every catalog resource.
const ACTIONS: [&str; 5] = ["read", "list", "create", "update", "delete"];
/// Resources per service; with five actions, a service has 100 entries.
const RESOURCES: usize = 20;
const PER_SERVICE: usize = RESOURCES * ACTIONS.len();
/// The id put in a parameterised path when a probe needs a concrete one.
pub const SAMPLE_ID: &str = "4711";

/// The shape of a synthetic state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub tenants: usize,
    pub users_per_tenant: usize,
    pub groups_per_tenant: usize,
    /// How many levels groups nest: 3 means top ⊃ middle ⊃ leaf.
    pub group_depth: usize,
    /// Custom roles per tenant, besides the three system roles.
    pub roles_per_tenant: usize,
    /// Entries of the shared catalog, besides the built-in admin ones.
    pub catalog_entries: usize,
    /// Fewest and most grants of a custom role.
    pub grants_per_role: (usize, usize),
    /// Users out of 1,000 who are inactive.
    pub inactive_per_mille: u32,
    /// Direct user bindings out of 1,000 that expire (half already expired at [`NOW`]).
    pub expiring_per_mille: u32,
    pub seed: u64,
}

impl Spec {
    /// The issue's tenant: 1 tenant, 100,000 users, 1,000 groups nested 3
    /// deep, 200 roles, 2,000 catalog entries.
    pub fn issue_tenant() -> Self {
        Self {
            tenants: 1,
            users_per_tenant: 100_000,
            groups_per_tenant: 1_000,
            group_depth: 3,
            roles_per_tenant: 200,
            catalog_entries: 2_000,
            grants_per_role: (10, 30),
            inactive_per_mille: 10,
            expiring_per_mille: 10,
            seed: 0x5EED_2026_1122,
        }
    }

    /// A million users over 100 tenants of 10,000, each shaped like
    /// [`Spec::issue_tenant`] with groups scaled to users (one per 100).
    pub fn million() -> Self {
        Self {
            tenants: 100,
            users_per_tenant: 10_000,
            groups_per_tenant: 100,
            ..Self::issue_tenant()
        }
    }

    /// The id of tenant `i`.
    pub fn tenant_id(i: usize) -> String {
        format!("t{i:03}")
    }
}

/// splitmix64: tiny, fast, and good enough to shape test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True `per_mille` times in 1,000.
    fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws ranks `0..n` with weight `1 / (rank + 1)^s`: a few are popular, most rare.
#[derive(Debug, Clone)]
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let Some(&total) = self.cdf.last() else {
            return 0;
        };
        let u = rng.unit() * total;
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// One catalog entry as the generator sees it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    service: usize,
    resource: usize,
    action: usize,
    /// Takes an id: `svc:res:action:?ID?`.
    param: bool,
}

impl Entry {
    fn prefix(&self) -> String {
        format!("svc{:02}:resource{:02}", self.service, self.resource)
    }

    fn catalog_text(&self) -> String {
        let base = format!("{}:{}", self.prefix(), ACTIONS[self.action]);
        if self.param {
            format!("{base}:?ID?")
        } else {
            base
        }
    }

    /// The grant naming exactly this entry's permissions: the path itself,
    /// or `path:*` for an entry that takes an id.
    fn grant_text(&self) -> String {
        let base = format!("{}:{}", self.prefix(), ACTIONS[self.action]);
        if self.param {
            format!("{base}:*")
        } else {
            base
        }
    }
}

fn catalog_entries(spec: &Spec, rng: &mut Rng) -> Vec<Entry> {
    (0..spec.catalog_entries)
        .map(|i| Entry {
            service: i / PER_SERVICE,
            resource: (i % PER_SERVICE) / ACTIONS.len(),
            action: i % ACTIONS.len(),
            param: rng.chance(100),
        })
        .collect()
}

fn build_catalog(entries: &[Entry], rng: &mut Rng) -> Catalog {
    let mut catalog = Catalog::with_builtins();
    for e in entries {
        let Ok(pattern) = CatalogPattern::parse(&e.catalog_text()) else {
            continue;
        };
        let stability = match rng.below(100) {
            0..=2 => Stability::Preview,
            3 => Stability::Deprecated,
            _ => Stability::Stable,
        };
        // INVARIANT: the texts are distinct, so `define` cannot refuse one.
        let _ = catalog.define(CatalogEntry {
            pattern,
            category: format!("svc{:02}", e.service),
            description: String::new(),
            stability,
            builtin: false,
        });
    }
    catalog
}

fn grant(effect_allow: bool, text: &str) -> Option<Grant> {
    let pattern = GrantPattern::parse(text).ok()?;
    Some(if effect_allow {
        Grant::allow(pattern)
    } else {
        Grant::deny(pattern)
    })
}

/// A custom role's grants: 10–30 around a home service, a few elsewhere.
fn role_grants(spec: &Spec, entries: &[Entry], home: usize, rng: &mut Rng) -> Vec<Grant> {
    let services = entries.len().div_ceil(PER_SERVICE).max(1);
    let want = rng.between(spec.grants_per_role.0, spec.grants_per_role.1);
    let mut out: Vec<Grant> = Vec::with_capacity(want);
    let mut attempts = 0;
    while out.len() < want && attempts < want * 10 && !entries.is_empty() {
        attempts += 1;
        let service = match rng.below(10) {
            0..=6 => home,
            7 | 8 => (home + 1) % services,
            _ => rng.below(services),
        };
        let first = service * PER_SERVICE;
        let span = entries.len().saturating_sub(first).min(PER_SERVICE);
        let Some(e) = entries.get(first + rng.below(span)) else {
            continue;
        };
        let roll = rng.below(1000);
        let g = if roll < 10 {
            grant(true, &format!("svc{:02}:*", e.service))
        } else if roll < 110 {
            grant(true, &format!("{}:*", e.prefix()))
        } else if roll < 150 {
            grant(false, &e.grant_text())
        } else if roll < 155 {
            grant(false, &format!("{}:*", e.prefix()))
        } else {
            grant(true, &e.grant_text())
        };
        if let Some(g) = g
            && !out.contains(&g)
        {
            out.push(g);
        }
    }
    out
}

/// Generates the state `spec` describes. The same spec gives the same state.
pub fn generate(spec: &Spec) -> State {
    let mut rng = Rng::new(spec.seed);
    let entries = catalog_entries(spec, &mut rng);
    let mut state = State::new();
    state.catalog = Arc::new(build_catalog(&entries, &mut rng));
    state.bridges_grants = grant(true, "svc00:*")
        .into_iter()
        .collect::<Vec<_>>()
        .into();
    for t in 0..spec.tenants {
        let mut trng = Rng::new(spec.seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        if let Some(tenant) = generate_tenant(spec, t, &entries, &mut trng) {
            state.tenants.insert(tenant.id.clone(), Arc::new(tenant));
        }
    }
    state.revision = 1;
    state
}

fn bind(tenant: &mut Tenant, subject: Subject, role: RoleName, expires: Option<Timestamp>) {
    tenant.bindings.insert(Binding {
        subject,
        role,
        expires,
    });
}

fn generate_tenant(spec: &Spec, t: usize, entries: &[Entry], rng: &mut Rng) -> Option<Tenant> {
    let id = TenantId::new(Spec::tenant_id(t)).ok()?;
    let mut tenant = Tenant::new(id, format!("Synthetic tenant {t}"));
    let services = entries.len().div_ceil(PER_SERVICE).max(1);

    // Roles. `Users` gets a few everyday reads of the first service.
    let mut roles: Vec<RoleName> = Vec::with_capacity(spec.roles_per_tenant);
    for r in 0..spec.roles_per_tenant {
        let role_name = RoleName::new(format!("role{r:03}")).ok()?;
        let mut role = Role::new(role_name.clone());
        role.description = format!("works mostly on svc{:02}", r % services);
        role.grants = role_grants(spec, entries, r % services, rng);
        tenant.roles.insert(role_name.clone(), role);
        roles.push(role_name);
    }
    if let Some(users_role) = tenant.roles.get_mut(&RoleName::users()) {
        users_role.grants = entries
            .iter()
            .filter(|e| e.service == 0 && e.action == 0)
            .take(5)
            .filter_map(|e| grant(true, &e.grant_text()))
            .collect();
    }
    let role_zipf = Zipf::new(roles.len(), 1.0);

    // Groups: level 0 is the top; a group at level l > 0 sits in one at l - 1.
    // Deeper levels are larger (weights 1, 2, 3, ...).
    let depth = spec.group_depth.max(1);
    let weight_total: usize = (1..=depth).sum();
    let mut levels: Vec<Vec<GroupName>> = vec![Vec::new(); depth];
    let mut g = 0usize;
    for (l, level) in levels.iter_mut().enumerate() {
        let count = if l + 1 == depth {
            spec.groups_per_tenant.saturating_sub(g)
        } else {
            spec.groups_per_tenant * (l + 1) / weight_total
        };
        for _ in 0..count {
            level.push(GroupName::new(format!("group{g:04}")).ok()?);
            g += 1;
        }
    }
    for (l, level) in levels.iter().enumerate() {
        for group in level {
            // Members come later: child groups from the child's side, then users.
            tenant.groups.insert(
                group.clone(),
                Group {
                    name: group.clone(),
                    description: format!("level {l}"),
                    members: imbl::OrdSet::new(),
                },
            );
            let bound = match rng.below(10) {
                0..=2 => 0,
                3..=7 => 1,
                _ => 2,
            };
            for _ in 0..bound {
                if let Some(role) = roles.get(role_zipf.sample(rng)) {
                    bind(
                        &mut tenant,
                        Subject::Group(group.clone()),
                        role.clone(),
                        None,
                    );
                }
            }
        }
    }
    for l in 1..depth {
        let (upper, lower) = levels.split_at(l);
        let (Some(parents), Some(children)) = (upper.last(), lower.first()) else {
            continue;
        };
        if parents.is_empty() {
            continue;
        }
        for child in children {
            let parent = &parents[rng.below(parents.len())];
            if let Some(group) = tenant.groups.get_mut(parent) {
                group.members.insert(Subject::Group(child.clone()));
            }
        }
    }

    // Users: most join leaf groups, a few join higher ones directly.
    let leaves: &[GroupName] = levels
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .map_or(&[], Vec::as_slice);
    let all_groups: Vec<&GroupName> = levels.iter().flatten().collect();
    let leaf_zipf = Zipf::new(leaves.len(), 0.8);
    let admins = (spec.users_per_tenant / 50_000).max(2);
    let bridges = (spec.users_per_tenant / 20_000).max(1);
    let base = t * spec.users_per_tenant;
    for i in 0..spec.users_per_tenant {
        let user_id = UserId::new(format!("u{:07}", base + i)).ok()?;
        let status = if rng.chance(spec.inactive_per_mille) {
            UserStatus::Inactive
        } else {
            UserStatus::Active
        };
        tenant.users.insert(user_id.clone(), {
            let mut user =
                User::new(user_id.clone()).with_email(Some(format!("{user_id}@example.com")));
            user.status = status;
            user
        });
        let subject = Subject::User(user_id);
        let system = if i < admins {
            Some(RoleName::administrators())
        } else if i < admins + bridges {
            Some(RoleName::bridges())
        } else {
            None
        };
        if let Some(role) = system {
            bind(&mut tenant, subject.clone(), role, None);
        }
        for _ in 0..rng.between(1, 2) {
            let Some(role) = roles.get(role_zipf.sample(rng)) else {
                continue;
            };
            let expires = rng.chance(spec.expiring_per_mille).then(|| {
                let days = rng.between(1, 90) as i64 * 86_400;
                if rng.chance(500) {
                    Timestamp::from_unix(NOW.unix() - days)
                } else {
                    Timestamp::from_unix(NOW.unix() + days)
                }
            });
            bind(&mut tenant, subject.clone(), role.clone(), expires);
        }
        for _ in 0..rng.between(1, 3) {
            let group = if rng.chance(900) {
                leaves.get(leaf_zipf.sample(rng))
            } else {
                all_groups.get(rng.below(all_groups.len())).copied()
            };
            if let Some(group) = group.and_then(|g| tenant.groups.get_mut(g)) {
                group.members.insert(subject.clone());
            }
        }
    }
    Some(tenant)
}

/// Counts of what [`generate`] made, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub tenants: usize,
    pub users: usize,
    pub inactive_users: usize,
    pub groups: usize,
    pub roles: usize,
    pub grants: usize,
    pub wildcard_grants: usize,
    pub deny_grants: usize,
    pub bindings: usize,
    pub expiring_bindings: usize,
    pub memberships: usize,
    pub catalog_entries: usize,
}

/// Counts the parts of `state`.
pub fn stats(state: &State) -> Stats {
    let mut s = Stats {
        tenants: state.tenants.len(),
        catalog_entries: state.catalog.entries().len(),
        ..Stats::default()
    };
    for t in state.tenants.values() {
        s.users += t.users.len();
        s.inactive_users += t
            .users
            .values()
            .filter(|u| u.status == UserStatus::Inactive)
            .count();
        s.groups += t.groups.len();
        s.roles += t.roles.len();
        s.memberships += t.groups.values().map(|g| g.members.len()).sum::<usize>();
        s.bindings += t.bindings.len();
        s.expiring_bindings += t.bindings.values().filter(|b| b.expires.is_some()).count();
        for role in t.roles.values() {
            s.grants += role.grants.len();
            s.wildcard_grants += role.grants.iter().filter(|g| g.pattern.has_star()).count();
            s.deny_grants += role
                .grants
                .iter()
                .filter(|g| g.effect == crate::model::Effect::Deny)
                .count();
        }
    }
    s
}

/// Each group's nesting level (0 at the top), for the shape tests.
#[cfg(test)]
fn group_levels(tenant: &Tenant) -> std::collections::BTreeMap<GroupName, usize> {
    // A group's level is the length of its chain of parents.
    let parents = tenant.parents();
    tenant
        .groups
        .keys()
        .map(|g| {
            let mut level = 0;
            let mut at = Subject::Group(g.clone());
            while let Some(Some(up)) = parents.get(&at).map(|p| p.first()) {
                level += 1;
                at = Subject::Group(up.clone());
            }
            (g.clone(), level)
        })
        .collect()
}

#[cfg(test)]
mod tests;
