use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::*;
use crate::model::Effect;
use crate::policy::{Decision, Reason, compile, evaluate, reference};

/// The issue tenant's shape at 1/50 of the users and 1/10 of the groups,
/// so debug-build tests stay quick.
fn small() -> Spec {
    Spec {
        users_per_tenant: 2_000,
        groups_per_tenant: 100,
        ..Spec::issue_tenant()
    }
}

#[test]
fn generation_is_deterministic_and_seeded() {
    let a = generate(&small());
    assert_eq!(a, generate(&small()));
    let other = generate(&Spec { seed: 7, ..small() });
    assert_ne!(a, other);
}

#[test]
fn the_shape_is_what_the_spec_says() {
    let spec = Spec {
        tenants: 2,
        ..small()
    };
    let state = generate(&spec);
    let s = stats(&state);
    assert_eq!(s.tenants, 2);
    assert_eq!(s.users, 4_000);
    assert_eq!(s.groups, 200);
    assert_eq!(s.roles, 2 * (200 + 3));
    assert_eq!(
        s.catalog_entries,
        2_000 + crate::model::catalog::ADMIN_PERMISSIONS.len()
    );
    assert!(
        (10..=80).contains(&s.inactive_users),
        "about 1% inactive: {s:?}"
    );
    assert!(
        s.expiring_bindings > 0 && s.wildcard_grants > 0 && s.deny_grants > 0,
        "{s:?}"
    );
    assert!(s.deny_grants * 10 < s.grants, "denies are few: {s:?}");
    // Distinct user ids across tenants: a million users are a million people.
    let ids: HashSet<&str> = state
        .tenants
        .values()
        .flat_map(|t| t.users.keys().map(|u| u.as_str()))
        .collect();
    assert_eq!(ids.len(), 4_000);

    for t in state.tenants.values() {
        for role in t.roles.values().filter(|r| !r.name.is_system()) {
            assert!(
                (10..=30).contains(&role.grants.len()),
                "{}: {}",
                role.name,
                role.grants.len()
            );
        }
        for role in t.roles.values() {
            for g in &role.grants {
                assert!(
                    state.catalog.covers_grant(&g.pattern),
                    "grant {g} is outside the catalog"
                );
            }
        }
        let levels = group_levels(t);
        assert_eq!(levels.values().max(), Some(&(spec.group_depth - 1)));
        for (name, group) in &t.groups {
            for member in &group.members {
                if let Subject::Group(child) = member {
                    assert!(
                        !t.would_cycle(name, child),
                        "{name} ⊃ {child} closes a cycle"
                    );
                }
            }
        }
        for b in t.bindings.values() {
            assert!(t.roles.contains_key(&b.role));
            match &b.subject {
                Subject::User(u) => assert!(t.users.contains_key(u)),
                Subject::Group(g) => assert!(t.groups.contains_key(g)),
            }
        }
        for u in t.users.keys() {
            let subject = Subject::User(u.clone());
            let in_groups = t
                .groups
                .values()
                .filter(|g| g.members.contains(&subject))
                .count();
            assert!((1..=3).contains(&in_groups), "{u} is in {in_groups} groups");
        }
        // Zipf-like: the most bound role is far more common than the median one.
        let mut per_role: HashMap<&RoleName, usize> = HashMap::new();
        for b in t.bindings.values() {
            *per_role.entry(&b.role).or_default() += 1;
        }
        let mut counts: Vec<usize> = per_role.values().copied().collect();
        counts.sort_unstable();
        assert!(
            counts[counts.len() - 1] > 10 * counts[counts.len() / 2],
            "{counts:?}"
        );
    }
}

#[test]
fn probes_give_the_decision_they_are_named_for() {
    let state = Arc::new(generate(&small()));
    let snapshot = compile(Arc::clone(&state));
    let tenant = Spec::tenant_id(0);
    let p = probes(&state, &tenant).unwrap();
    let cases = [
        (&p.exact_allow, Decision::Allow, Reason::Granted),
        (&p.wildcard_allow, Decision::Allow, Reason::Granted),
        (&p.deny, Decision::Deny, Reason::DeniedByGrant),
        (&p.unknown_subject, Decision::Deny, Reason::UnknownSubject),
    ];
    for (probe, decision, reason) in cases {
        let compiled = evaluate(&snapshot, &probe.request(), NOW).unwrap();
        let plain = reference::decide(&state, &probe.request(), NOW).unwrap();
        assert_eq!(compiled, plain.verdict, "{probe:?}");
        assert_eq!(
            (compiled.decision, compiled.reason),
            (decision, reason),
            "{probe:?}"
        );
    }

    // The exact probe is one interned lookup; the wildcard one is not interned
    // (the trie is walked) and only `prefix:*` grants match it.
    let t = snapshot.tenant(&tenant).unwrap();
    assert!(
        t.grants
            .perms
            .contains_key(p.exact_allow.permission.as_str())
    );
    assert!(
        !t.grants
            .perms
            .contains_key(p.wildcard_allow.permission.as_str())
    );
    let matching = |probe: &Probe| {
        reference::decide(&state, &probe.request(), NOW)
            .unwrap()
            .matching
    };
    assert!(
        matching(&p.exact_allow)
            .iter()
            .all(|(_, g)| g.effect == Effect::Allow && g.pattern.as_exact().is_some())
    );
    assert!(
        matching(&p.wildcard_allow)
            .iter()
            .all(|(_, g)| g.effect == Effect::Allow && g.pattern.has_star())
    );
    let deny = matching(&p.deny);
    assert!(
        deny.iter().any(|(_, g)| g.effect == Effect::Allow),
        "a deny that overrides an allow"
    );
}

#[test]
fn probes_are_found_in_every_tenant_of_a_multi_tenant_state() {
    let state = generate(&Spec {
        tenants: 3,
        users_per_tenant: 500,
        groups_per_tenant: 20,
        ..Spec::million()
    });
    for i in 0..3 {
        let p = probes(&state, &Spec::tenant_id(i)).unwrap();
        assert_eq!(p.exact_allow.tenant, Spec::tenant_id(i));
    }
    assert!(probes(&state, "missing").is_none());
}

#[test]
fn mixed_requests_cover_every_outcome_and_the_evaluators_agree() {
    // The reference evaluator re-indexes the tenant on every call, so this
    // one runs on a smaller tenant.
    let state = Arc::new(generate(&Spec {
        users_per_tenant: 500,
        groups_per_tenant: 30,
        ..small()
    }));
    let snapshot = compile(Arc::clone(&state));
    let tenant = Spec::tenant_id(0);
    let list = mixed(&state, &tenant, 500, 42);
    assert_eq!(list.len(), 500);
    assert_eq!(list, mixed(&state, &tenant, 500, 42));
    let mut reasons: HashMap<Reason, usize> = HashMap::new();
    for probe in &list {
        let compiled = evaluate(&snapshot, &probe.request(), NOW).unwrap();
        let plain = reference::decide(&state, &probe.request(), NOW).unwrap();
        assert_eq!(compiled, plain.verdict, "{probe:?}");
        *reasons.entry(compiled.reason).or_default() += 1;
    }
    for reason in [
        Reason::Granted,
        Reason::NoMatchingGrant,
        Reason::DeniedByGrant,
        Reason::UnknownSubject,
        Reason::UnknownPermission,
        Reason::SubjectInactive,
    ] {
        assert!(reasons.contains_key(&reason), "no {reason} in {reasons:?}");
    }
    assert!(reasons[&Reason::Granted] > 150, "{reasons:?}");
}

/// Decides from a flattened tenant the way a role-only engine would: roles
/// through bindings and group chains, deny overrides allow.
struct FlatIndex<'a> {
    flat: &'a FlatTenant,
    parents: HashMap<&'a Subject, Vec<&'a str>>,
    roles: HashMap<&'a Subject, Vec<&'a str>>,
}

impl<'a> FlatIndex<'a> {
    fn new(flat: &'a FlatTenant) -> Self {
        let mut parents: HashMap<&Subject, Vec<&str>> = HashMap::new();
        for (m, g) in &flat.memberships {
            parents.entry(m).or_default().push(g);
        }
        let mut roles: HashMap<&Subject, Vec<&str>> = HashMap::new();
        for (s, r) in &flat.bindings {
            roles.entry(s).or_default().push(r);
        }
        Self {
            flat,
            parents,
            roles,
        }
    }

    fn decide(&self, subject: &str, permission: &str) -> Decision {
        let Ok(user) = crate::model::UserId::new(subject) else {
            return Decision::Deny;
        };
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([Subject::User(user)]);
        let mut held = HashSet::new();
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s.clone()) {
                continue;
            }
            held.extend(self.roles.get(&s).into_iter().flatten().copied());
            for g in self.parents.get(&s).into_iter().flatten() {
                queue.push_back(Subject::Group(GroupName::new(g).unwrap()));
            }
        }
        let (mut allow, mut deny) = (false, false);
        for role in self
            .flat
            .roles
            .iter()
            .filter(|r| held.contains(r.name.as_str()))
        {
            for (effect, text) in &role.grants {
                if GrantPattern::parse(text)
                    .unwrap()
                    .matches(permission, subject)
                {
                    match effect {
                        Effect::Allow => allow = true,
                        Effect::Deny => deny = true,
                    }
                }
            }
        }
        if allow && !deny {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

#[test]
fn the_flat_export_decides_covered_checks_as_rampart_does() {
    let state = Arc::new(generate(&small()));
    let snapshot = compile(Arc::clone(&state));
    let tenant = Spec::tenant_id(0);
    let flat = flatten(&state, &tenant, NOW).unwrap();
    assert_eq!(flat.users.len(), 2_000);
    assert_eq!(flat.roles.len(), 203);
    let admin = flat
        .roles
        .iter()
        .find(|r| r.name == "Administrators")
        .unwrap();
    assert_eq!(admin.grants, vec![(Effect::Allow, "*".to_owned())]);
    let index = FlatIndex::new(&flat);
    let p = probes(&state, &tenant).unwrap();
    let list = mixed(&state, &tenant, 1_000, 7);
    let checks = [
        &p.exact_allow,
        &p.wildcard_allow,
        &p.deny,
        &p.unknown_subject,
    ]
    .into_iter()
    .chain(
        list.iter()
            .filter(|c| c.permission != probes::UNCOVERED_PERMISSION),
    );
    for probe in checks {
        let verdict = evaluate(&snapshot, &probe.request(), NOW).unwrap();
        assert_eq!(
            index.decide(&probe.subject, &probe.permission),
            verdict.decision,
            "{probe:?}"
        );
    }
}
