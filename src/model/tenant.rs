//! A tenant and what lives in it: roles, groups, users and bindings.
//!
//! Plain data with the invariants that hold after any accepted change (names
//! unique, system roles present, bindings and members name things that
//! exist). Validation of changes lives in the loader and, later, in the
//! admin rules; compilation for checks lives in `policy/`.

use std::collections::{BTreeSet, HashMap, VecDeque};

use imbl::{OrdMap, OrdSet};

use super::ids::{ADMINISTRATORS, BRIDGES, GroupName, RoleName, Subject, TenantId, USERS, UserId};
use super::permission::Grant;
use super::time::Timestamp;

/// Per-tenant switches.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Assigning a role to a user replaces the user's current role (rediacc:
    /// "users can only belong to one permission group").
    pub single_role_per_user: bool,
    /// This tenant shares its users with the other tenants they belong to:
    /// another tenant may add them, and whoever holds
    /// `ACM:USER:UPDATE:INFO:<user>` in any tenant the user is in may edit
    /// the profile this tenant sees (the seeds' multi-company platform,
    /// 002/004). Off, a change this tenant would see needs rights here.
    pub shared_users: bool,
}

/// What an `update_tenant` changes of a tenant's settings: a `None` stays
/// as it is. (A record written before this type read as a whole
/// [`TenantSettings`], which this parses into the same change.)
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SettingsChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_role_per_user: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_users: Option<bool>,
}

impl SettingsChange {
    /// The settings after this change.
    pub fn applied_to(&self, settings: &TenantSettings) -> TenantSettings {
        TenantSettings {
            single_role_per_user: self
                .single_role_per_user
                .unwrap_or(settings.single_role_per_user),
            shared_users: self.shared_users.unwrap_or(settings.shared_users),
        }
    }
}

/// What kind of role a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    /// Holds everything; grants cannot change; cannot be deleted.
    Administrators,
    /// Every member's default role; editable, not deletable.
    Users,
    /// Service accounts; protected; its grants are the deployment's `bridges_grants`.
    Bridges,
    /// A role the tenant made.
    Custom,
}

impl RoleKind {
    /// The kind of the role named `name`.
    pub fn of(name: &RoleName) -> Self {
        match name.as_str() {
            ADMINISTRATORS => RoleKind::Administrators,
            USERS => RoleKind::Users,
            BRIDGES => RoleKind::Bridges,
            _ => RoleKind::Custom,
        }
    }
}

/// A named set of grants ("permission group").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Role {
    pub name: RoleName,
    pub description: String,
    /// In the order they were granted; no duplicates.
    pub grants: Vec<Grant>,
}

impl Role {
    /// An empty role.
    pub fn new(name: RoleName) -> Self {
        Self {
            name,
            description: String::new(),
            grants: Vec::new(),
        }
    }

    /// Which system role, if any, this is.
    pub fn kind(&self) -> RoleKind {
        RoleKind::of(&self.name)
    }
}

/// A named set of users and groups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    pub name: GroupName,
    pub description: String,
    pub members: OrdSet<Subject>,
}

/// Whether a user may do anything at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum UserStatus {
    #[default]
    Active,
    /// Denied everything.
    Inactive,
}

impl UserStatus {
    /// `active` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
        }
    }

    /// Parses `active` or `inactive` (any case, as caosdb writes `ACTIVE`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "active" => Some(UserStatus::Active),
            "inactive" => Some(UserStatus::Inactive),
            _ => None,
        }
    }
}

/// Text that is not a [`UserStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status `{}` is not one of active, inactive", crate::model::quote(.value))]
pub struct UserStatusError {
    /// The text as given.
    pub value: String,
}

impl TryFrom<String> for UserStatus {
    type Error = UserStatusError;
    fn try_from(value: String) -> Result<Self, UserStatusError> {
        UserStatus::parse(&value).ok_or(UserStatusError { value })
    }
}

/// A member of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub status: UserStatus,
}

/// Subject → role, optionally until a time (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    pub subject: Subject,
    pub role: RoleName,
    pub expires: Option<Timestamp>,
}

impl Binding {
    /// Whether the binding is in force at `now`.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// An isolated company, organization or realm.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub settings: TenantSettings,
    /// INVARIANT: holds the three system roles.
    ///
    /// The collections are persistent maps: copying a tenant is O(1) and a
    /// change O(log n), so a mutation of a 100k-user tenant copies almost
    /// nothing, and old snapshots keep sharing what did not change.
    pub roles: OrdMap<RoleName, Role>,
    pub groups: OrdMap<GroupName, Group>,
    pub users: OrdMap<UserId, User>,
    /// Keyed by (subject, role): a subject is bound to a role at most once.
    #[serde(with = "bindings_as_list")]
    pub bindings: OrdMap<(Subject, RoleName), Binding>,
}

impl Tenant {
    /// A tenant with only the system roles.
    pub fn new(id: TenantId, name: impl Into<String>) -> Self {
        let mut roles = OrdMap::new();
        for role in [
            RoleName::administrators(),
            RoleName::users(),
            RoleName::bridges(),
        ] {
            roles.insert(role.clone(), Role::new(role));
        }
        Self {
            id,
            name: name.into(),
            settings: TenantSettings::default(),
            roles,
            groups: OrdMap::new(),
            users: OrdMap::new(),
            bindings: OrdMap::new(),
        }
    }

    /// Drops the bindings `drop` says so of.
    pub fn drop_bindings(&mut self, drop: impl Fn(&Subject, &RoleName) -> bool) {
        let gone: Vec<(Subject, RoleName)> = self
            .bindings
            .keys()
            .filter(|(s, r)| drop(s, r))
            .cloned()
            .collect();
        for key in gone {
            self.bindings.remove(&key);
        }
    }

    /// Removes `subject` from every group that lists it.
    pub fn drop_member_everywhere(&mut self, subject: &Subject) {
        let holding: Vec<GroupName> = self
            .groups
            .values()
            .filter(|g| g.members.contains(subject))
            .map(|g| g.name.clone())
            .collect();
        for name in holding {
            if let Some(g) = self.groups.get_mut(&name) {
                g.members.remove(subject);
            }
        }
    }

    /// The groups that list `subject` directly, in name order.
    pub fn groups_listing(&self, subject: &Subject) -> Vec<GroupName> {
        self.groups
            .values()
            .filter(|g| g.members.contains(subject))
            .map(|g| g.name.clone())
            .collect()
    }

    /// The bindings of one subject, live or not, in role-name order: a range
    /// of the bindings map, O(log n + k).
    pub fn bindings_of(&self, subject: &Subject) -> Vec<Binding> {
        // `!` sorts before every valid role name: a name's first character
        // is neither white space nor a control character, so it is above
        // U+0020, and `!` is U+0021.
        let Ok(least) = RoleName::new("!") else {
            return self
                .bindings
                .values()
                .filter(|b| b.subject == *subject)
                .cloned()
                .collect();
        };
        self.bindings
            .range((subject.clone(), least)..)
            .take_while(|((s, _), _)| s == subject)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The groups `group` lists directly, in name order: a range of its
    /// members (groups sort after users), so O(log n + k) however many users
    /// it lists.
    pub fn subgroups(&self, group: &GroupName) -> Vec<&GroupName> {
        let Some(found) = self.groups.get(group) else {
            return Vec::new();
        };
        fn groups(s: &Subject) -> Option<&GroupName> {
            match s {
                Subject::Group(g) => Some(g),
                Subject::User(_) => None,
            }
        }
        // `!` sorts before every valid group name (see `bindings_of`).
        match GroupName::new("!") {
            Ok(least) => found
                .members
                .range(Subject::Group(least)..)
                .filter_map(groups)
                .collect(),
            Err(_) => found.members.iter().filter_map(groups).collect(),
        }
    }

    /// Who contains whom: for each subject, the groups that list it directly.
    pub fn parents(&self) -> HashMap<Subject, Vec<GroupName>> {
        let mut parents: HashMap<Subject, Vec<GroupName>> = HashMap::new();
        for group in self.groups.values() {
            for member in &group.members {
                parents
                    .entry(member.clone())
                    .or_default()
                    .push(group.name.clone());
            }
        }
        parents
    }

    /// The bindings of each subject, live or not, in role-name order.
    pub fn bindings_by_subject(&self) -> HashMap<Subject, Vec<Binding>> {
        let mut by: HashMap<Subject, Vec<Binding>> = HashMap::new();
        // The map is ordered by (subject, role), so each list is in role order.
        for binding in self.bindings.values() {
            by.entry(binding.subject.clone())
                .or_default()
                .push(binding.clone());
        }
        by
    }

    /// Whether adding `member` to `group` would close a cycle (including a
    /// group containing itself).
    pub fn would_cycle(&self, group: &GroupName, member: &GroupName) -> bool {
        // A cycle appears iff `group` is reachable from `member` downwards.
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([member]);
        while let Some(g) = queue.pop_front() {
            if g == group {
                return true;
            }
            if !seen.insert(g) {
                continue;
            }
            if let Some(found) = self.groups.get(g) {
                for m in &found.members {
                    if let Subject::Group(child) = m {
                        queue.push_back(child);
                    }
                }
            }
        }
        false
    }
}

/// Bindings are keyed by a tuple, which JSON cannot key a map by: they are
/// written as a list.
mod bindings_as_list {
    use imbl::OrdMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Binding, RoleName, Subject};

    pub fn serialize<S: Serializer>(
        map: &OrdMap<(Subject, RoleName), Binding>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let list: Vec<&Binding> = map.values().collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<OrdMap<(Subject, RoleName), Binding>, D::Error> {
        let list = Vec::<Binding>::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|b| ((b.subject.clone(), b.role.clone()), b))
            .collect())
    }
}

/// How a role reached a subject: the user, then each group the binding came
/// through, outermost last.
pub type Chain = Vec<Subject>;

/// A role in effect for a user, with the way it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRole {
    pub role: RoleName,
    /// Empty for the implicit `Users` role.
    pub chain: Chain,
    pub expires: Option<Timestamp>,
}

impl Tenant {
    /// The roles in effect for `user` at `now`, each once, with the shortest
    /// chain that brings it (ties: the first found in name order). `Users`
    /// comes first, with an empty chain.
    ///
    /// This is the plain definition of decision rule 4; `policy/` compiles
    /// the same answer ahead of time.
    pub fn effective_roles(
        &self,
        user: &UserId,
        now: Timestamp,
        parents: &HashMap<Subject, Vec<GroupName>>,
        bindings: &HashMap<Subject, Vec<Binding>>,
    ) -> Vec<EffectiveRole> {
        let mut out: Vec<EffectiveRole> = vec![EffectiveRole {
            role: RoleName::users(),
            chain: Vec::new(),
            expires: None,
        }];
        let start = Subject::User(user.clone());
        let mut seen: BTreeSet<Subject> = BTreeSet::from([start.clone()]);
        // Breadth first, so the first chain found for a role is a shortest one.
        let mut queue: VecDeque<Chain> = VecDeque::from([vec![start]]);
        while let Some(chain) = queue.pop_front() {
            let Some(at) = chain.last() else { continue };
            if let Some(bs) = bindings.get(at) {
                for b in bs {
                    if !b.live_at(now) || out.iter().any(|e| e.role == b.role) {
                        continue;
                    }
                    out.push(EffectiveRole {
                        role: b.role.clone(),
                        chain: chain.clone(),
                        expires: b.expires,
                    });
                }
            }
            if let Some(groups) = parents.get(at) {
                let mut groups = groups.clone();
                groups.sort();
                for g in groups {
                    let next = Subject::Group(g);
                    if seen.insert(next.clone()) {
                        let mut longer = chain.clone();
                        longer.push(next);
                        queue.push_back(longer);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str) -> GroupName {
        GroupName::new(name).unwrap()
    }

    fn tenant_with_groups(edges: &[(&str, &str)]) -> Tenant {
        let mut t = Tenant::new(TenantId::new("t").unwrap(), "T");
        for (parent, child) in edges {
            for name in [parent, child] {
                t.groups.entry(g(name)).or_insert_with(|| Group {
                    name: g(name),
                    description: String::new(),
                    members: OrdSet::new(),
                });
            }
            t.groups
                .get_mut(&g(parent))
                .unwrap()
                .members
                .insert(Subject::Group(g(child)));
        }
        t
    }

    #[test]
    fn cycles_are_detected() {
        let t = tenant_with_groups(&[("a", "b"), ("b", "c")]);
        assert!(t.would_cycle(&g("c"), &g("a")));
        assert!(t.would_cycle(&g("a"), &g("a")));
        assert!(!t.would_cycle(&g("a"), &g("c")));
    }

    #[test]
    fn effective_roles_follow_group_chains_and_expiry() {
        let mut t = tenant_with_groups(&[("outer", "inner")]);
        let alice = UserId::new("alice").unwrap();
        t.groups
            .get_mut(&g("inner"))
            .unwrap()
            .members
            .insert(Subject::User(alice.clone()));
        let editors = RoleName::new("editors").unwrap();
        let viewers = RoleName::new("viewers").unwrap();
        for (subject, role, expires) in [
            (Subject::Group(g("outer")), editors.clone(), None),
            (
                Subject::User(alice.clone()),
                viewers.clone(),
                Some(Timestamp(100)),
            ),
        ] {
            t.bindings.insert(
                (subject.clone(), role.clone()),
                Binding {
                    subject,
                    role,
                    expires,
                },
            );
        }
        let parents = t.parents();
        let bindings = t.bindings_by_subject();
        let at = |now| {
            t.effective_roles(&alice, Timestamp(now), &parents, &bindings)
                .into_iter()
                .map(|e| (e.role.to_string(), e.chain.len()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            at(99),
            vec![
                ("Users".into(), 0),
                ("viewers".into(), 1),
                ("editors".into(), 3)
            ]
        );
        assert_eq!(at(100), vec![("Users".into(), 0), ("editors".into(), 3)]);
    }

    #[test]
    fn bindings_of_one_subject_is_a_range() {
        // Nothing valid sorts before `!`.
        for below in ["", " x", "\u{1f}x", "\tx"] {
            assert!(RoleName::new(below).is_err(), "{below:?}");
        }
        let mut t = tenant_with_groups(&[("a", "b")]);
        let alice = Subject::User(UserId::new("alice").unwrap());
        let bob = Subject::User(UserId::new("bob").unwrap());
        let group = Subject::Group(g("a"));
        for (subject, role) in [
            (&alice, "!"),
            (&alice, "zed"),
            (&alice, "Users"),
            (&bob, "!"),
            (&bob, "x"),
            (&group, "\"quoted"),
        ] {
            let role = RoleName::new(role).unwrap();
            t.bindings.insert(
                (subject.clone(), role.clone()),
                Binding {
                    subject: subject.clone(),
                    role,
                    expires: None,
                },
            );
        }
        let all = t.bindings_by_subject();
        for subject in [&alice, &bob, &group, &Subject::Group(g("b"))] {
            assert_eq!(
                t.bindings_of(subject),
                all.get(subject).cloned().unwrap_or_default(),
                "{subject:?}"
            );
        }
        t.groups
            .get_mut(&g("b"))
            .unwrap()
            .members
            .insert(alice.clone());
        assert_eq!(t.groups_listing(&alice), vec![g("b")]);
        assert_eq!(t.groups_listing(&Subject::Group(g("b"))), vec![g("a")]);
        assert!(t.groups_listing(&bob).is_empty());
        for (name, member) in [("a", alice.clone()), ("a", Subject::Group(g("!")))] {
            t.groups.get_mut(&g(name)).unwrap().members.insert(member);
        }
        assert_eq!(t.subgroups(&g("a")), [&g("!"), &g("b")]);
        assert!(t.subgroups(&g("b")).is_empty() && t.subgroups(&g("zz")).is_empty());
    }
}
