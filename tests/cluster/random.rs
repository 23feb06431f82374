//! The random side of the cluster tests: a seeded generator, and the op
//! one writer submits next, picked from what its [`Model`] says exists
//! (mostly ops the rules accept, some they refuse).

use super::model::{Model, SHARED_TENANTS, foreign_roles};
use super::ops::{COVERED, FAR, G, Op, UNCOVERED};

/// A small, seeded, reproducible random source (SplitMix64). A writer's
/// part of the state is its own, so the same seed gives each writer the
/// same ops in the same order (how many each gets before the total is
/// reached depends on timing, and a cut or UNAVAILABLE call adds a fence).
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
