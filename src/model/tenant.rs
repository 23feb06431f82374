//! A tenant and what lives in it: roles, groups, users and bindings.
//!
//! Plain data with the invariants that hold after any accepted change (names
//! unique, system roles present, bindings and members name things that
//! exist). Validation of changes lives in the loader and, later, in the
//! admin rules; compilation for checks lives in `policy/`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use imbl::{OrdMap, OrdSet};

use super::bindings::Bindings;
use super::catalog::{Catalog, CatalogEntry, Stability};
use super::ids::{
    ADMINISTRATORS, Alias, BRIDGES, GroupName, RoleName, Subject, TenantId, USERS, UserId,
};
use super::operation::AdminPermissions;
use super::permission::{Effect, Grant};
use super::time::Timestamp;

pub use super::user::{
    AttributeError, Attributes, MAX_ALIASES, MAX_ATTRIBUTES, User, UserStatus, UserStatusError,
    check_attributes,
};

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
    /// Roles whose active holders count as administrators for the
    /// last-administrator and leave-tenant rules, besides `Administrators`
    /// (which always counts): 002/004's "Company Admin" with a fixed set of
    /// permissions. The fields after this one are not written while they
    /// hold their default, so images and records read and write as before
    /// they existed.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub administrator_roles: BTreeSet<RoleName>,
    /// Deactivating or removing a user needs the actor to hold every grant
    /// that user holds (rediacc's "equal or fewer privileges" read
    /// strictly). Off, the seeds' permission alone suffices (001's
    /// `ACM:USER:UPDATE:STATUS`, 002/004's "Edit Users").
    #[serde(skip_serializing_if = "is_false")]
    pub removal_needs_all_grants: bool,
    /// `Users` accepts grant removals only (003: "Only custom groups can
    /// have permissions added", "Users group can have permissions removed").
    #[serde(skip_serializing_if = "is_false")]
    pub users_role_removals_only: bool,
    /// What granting a `preview` catalog entry does.
    #[serde(skip_serializing_if = "GrantPolicy::is_allow")]
    pub preview_grants: GrantPolicy,
    /// What granting a `deprecated` catalog entry does.
    #[serde(skip_serializing_if = "GrantPolicy::is_allow")]
    pub deprecated_grants: GrantPolicy,
    /// The tenant's own permissions for admin operations, each replacing
    /// the operation's built-in `ACM:` templates (`model::operation`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub admin_permissions: AdminPermissions,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What granting a catalog entry of some stability does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantPolicy {
    /// Granted as any other.
    #[default]
    Allow,
    /// Granted, and the answer carries a warning naming the entry.
    Warn,
    /// Refused, naming the entry.
    Refuse,
}

impl GrantPolicy {
    pub const NAMES: &'static str = "allow, warn or refuse";

    fn is_allow(&self) -> bool {
        *self == GrantPolicy::Allow
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantPolicy::Allow => "allow",
            GrantPolicy::Warn => "warn",
            GrantPolicy::Refuse => "refuse",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(GrantPolicy::Allow),
            "warn" => Some(GrantPolicy::Warn),
            "refuse" => Some(GrantPolicy::Refuse),
            _ => None,
        }
    }
}

impl TenantSettings {
    /// Whether holders of `role` count as administrators here.
    pub fn is_administrator_role(&self, role: &RoleName) -> bool {
        RoleKind::of(role) == RoleKind::Administrators || self.administrator_roles.contains(role)
    }

    /// The `preview` and `deprecated` catalog entries an allow `grant`
    /// reaches whose setting here is `policy`, each with its setting's
    /// name. A grant reaches every entry it overlaps: `documents:*` hands
    /// out `documents:beta` as surely as naming it does.
    pub fn stability_hits<'a>(
        &'a self,
        catalog: &'a Catalog,
        grant: &'a Grant,
        policy: GrantPolicy,
    ) -> impl Iterator<Item = (&'a CatalogEntry, &'static str)> + 'a {
        catalog
            .entries()
            .iter()
            .filter(move |_| grant.effect == Effect::Allow)
            .filter_map(move |entry| {
                let (setting, name) = match entry.stability {
                    Stability::Stable => return None,
                    Stability::Preview => (self.preview_grants, "preview_grants"),
                    Stability::Deprecated => (self.deprecated_grants, "deprecated_grants"),
                };
                (setting == policy && entry.pattern.overlaps(&grant.pattern))
                    .then_some((entry, name))
            })
    }
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
    /// The whole set, replacing the current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub administrator_roles: Option<BTreeSet<RoleName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_needs_all_grants: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_role_removals_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_grants: Option<GrantPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated_grants: Option<GrantPolicy>,
    /// The whole mapping, replacing the current one (empty: the built-in
    /// templates for every operation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_permissions: Option<AdminPermissions>,
}

impl SettingsChange {
    /// The settings after this change.
    pub fn applied_to(&self, settings: &TenantSettings) -> TenantSettings {
        TenantSettings {
            single_role_per_user: self
                .single_role_per_user
                .unwrap_or(settings.single_role_per_user),
            shared_users: self.shared_users.unwrap_or(settings.shared_users),
            administrator_roles: self
                .administrator_roles
                .clone()
                .unwrap_or_else(|| settings.administrator_roles.clone()),
            removal_needs_all_grants: self
                .removal_needs_all_grants
                .unwrap_or(settings.removal_needs_all_grants),
            users_role_removals_only: self
                .users_role_removals_only
                .unwrap_or(settings.users_role_removals_only),
            preview_grants: self.preview_grants.unwrap_or(settings.preview_grants),
            deprecated_grants: self.deprecated_grants.unwrap_or(settings.deprecated_grants),
            admin_permissions: self
                .admin_permissions
                .clone()
                .unwrap_or_else(|| settings.admin_permissions.clone()),
        }
    }

    /// Whether the change alters, of `current`, a setting that guards
    /// administration (who counts as an administrator, what authorizes each
    /// operation, what removal needs, what `Users` and the catalog's
    /// stabilities accept, and `shared_users`, which lets other tenants'
    /// editors change the profiles and attributes this tenant's rules
    /// read): only an operator or an `Administrators` member may, so no
    /// delegated admin loosens the rules that bound it. A setting sent as it
    /// is changes nothing.
    pub fn touches_guards(&self, current: &TenantSettings) -> bool {
        // Every setting but `single_role_per_user` guards administration,
        // so one added later is guarded unless said otherwise here.
        TenantSettings {
            single_role_per_user: current.single_role_per_user,
            ..self.applied_to(current)
        } != *current
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
    /// Read packed (`model::packed`): an image's member lists load with
    /// full nodes.
    #[serde(deserialize_with = "super::packed::deserialize_set")]
    pub members: OrdSet<Subject>,
}

/// Why an identity cannot be given to a user in a tenant: someone else
/// there is already known by it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasClash {
    #[error(
        "alias `{}` is the id of user `{holder}` in tenant `{tenant}`: an alias must not name another member",
        crate::model::quote(.alias.as_str())
    )]
    IsMember {
        alias: Alias,
        holder: UserId,
        tenant: TenantId,
    },
    #[error(
        "alias `{}` is already an alias of user `{holder}` in tenant `{tenant}`: an alias names one member",
        crate::model::quote(.alias.as_str())
    )]
    HeldBy {
        alias: Alias,
        holder: UserId,
        tenant: TenantId,
    },
    #[error(
        "user id `{user}` is already an alias of user `{holder}` in tenant `{tenant}`: an alias names one member"
    )]
    IdIsAlias {
        user: UserId,
        holder: UserId,
        tenant: TenantId,
    },
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
///
/// Not serde itself: a tenant is written and read as a
/// `store::image::TenantImage`, which rebuilds the alias index on reading.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// INVARIANT: a user's aliases change only through [`Tenant::insert_user`],
    /// [`Tenant::remove_user`] and [`Tenant::set_aliases`] (or the whole map is
    /// followed by [`Tenant::reindex_aliases`]), so `aliases` follows them.
    pub users: OrdMap<UserId, User>,
    /// In (subject, role) order: a subject is bound to a role at most once.
    pub bindings: Bindings,
    /// Alias → the member known by it: derived from `users`, never written
    /// out, so resolving an alias and checking one is free are O(log n).
    /// INVARIANT: holds exactly the aliases of `users`, each naming the
    /// user that has it; no alias is held twice.
    aliases: OrdMap<Alias, UserId>,
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
            bindings: Bindings::new(),
            aliases: OrdMap::new(),
        }
    }

    /// The member a check's subject names: the member with that id, or
    /// else the member with that alias.
    pub fn member(&self, subject: &str) -> Option<&User> {
        match self.users.get(subject) {
            Some(user) => Some(user),
            None => self.users.get(self.aliases.get(subject)?),
        }
    }

    /// The member known by `alias`, if any (not a member's own id).
    pub fn alias_owner(&self, alias: &str) -> Option<&UserId> {
        self.aliases.get(alias)
    }

    /// Every alias of the tenant's members, with the member, in alias order.
    pub fn aliases(&self) -> impl Iterator<Item = (&Alias, &UserId)> {
        self.aliases.iter()
    }

    /// Whether `user` may be known by `aliases` here: none is another
    /// member's id or alias, and, for a user who is not a member yet
    /// (`joining`), its id is no member's alias. O(k log n).
    pub fn alias_clash<'a>(
        &self,
        user: &UserId,
        aliases: impl IntoIterator<Item = &'a Alias>,
        joining: bool,
    ) -> Option<AliasClash> {
        if joining && let Some(holder) = self.aliases.get(user.as_str()) {
            return Some(AliasClash::IdIsAlias {
                user: user.clone(),
                holder: holder.clone(),
                tenant: self.id.clone(),
            });
        }
        for alias in aliases {
            if let Some((holder, _)) = self.users.get_key_value(alias.as_str())
                && holder != user
            {
                return Some(AliasClash::IsMember {
                    alias: alias.clone(),
                    holder: holder.clone(),
                    tenant: self.id.clone(),
                });
            }
            if let Some(holder) = self.aliases.get(alias)
                && holder != user
            {
                return Some(AliasClash::HeldBy {
                    alias: alias.clone(),
                    holder: holder.clone(),
                    tenant: self.id.clone(),
                });
            }
        }
        None
    }

    /// Adds (or replaces) a member, and its aliases to the index; the
    /// member it replaces, if any, is returned and its aliases leave the
    /// index. The caller has checked [`Tenant::alias_clash`].
    pub fn insert_user(&mut self, user: User) -> Option<User> {
        let before = self.users.insert(user.id.clone(), user.clone());
        if let Some(old) = &before {
            self.unindex(old);
        }
        for alias in user.aliases() {
            self.aliases.insert(alias.clone(), user.id.clone());
        }
        before
    }

    /// Removes a member, and its aliases from the index.
    pub fn remove_user(&mut self, id: &UserId) -> Option<User> {
        let removed = self.users.remove(id)?;
        self.unindex(&removed);
        Some(removed)
    }

    /// Replaces a member's aliases; `false` if `id` is not a member. The
    /// caller has checked [`Tenant::alias_clash`].
    pub fn set_aliases(&mut self, id: &UserId, aliases: BTreeSet<Alias>) -> bool {
        let Some(mut user) = self.users.get(id).cloned() else {
            return false;
        };
        user.set_aliases(aliases);
        self.insert_user(user);
        true
    }

    /// Rebuilds the alias index from `users`, for a tenant read from
    /// storage or built by hand: O(n) over the members. On an alias two
    /// members hold, the index keeps the first (in id order) and the alias
    /// is returned.
    pub fn reindex_aliases(&mut self) -> Option<Alias> {
        let mut index = OrdMap::new();
        let mut twice = None;
        for user in self.users.values() {
            for alias in user.aliases() {
                if index.contains_key(alias) {
                    twice.get_or_insert_with(|| alias.clone());
                    continue;
                }
                index.insert(alias.clone(), user.id.clone());
            }
        }
        self.aliases = index;
        twice
    }

    /// Whether the alias index is exactly what the members' aliases make
    /// (for tests: the index is derived data).
    pub fn alias_index_is_consistent(&self) -> bool {
        let mut rebuilt = self.clone();
        rebuilt.reindex_aliases().is_none() && rebuilt.aliases == self.aliases
    }

    fn unindex(&mut self, user: &User) {
        for alias in user.aliases() {
            if self.aliases.get(alias) == Some(&user.id) {
                self.aliases.remove(alias);
            }
        }
    }

    /// Drops the bindings `drop` says so of.
    pub fn drop_bindings(&mut self, drop: impl Fn(&Subject, &RoleName) -> bool) {
        self.bindings.retain(|b| !drop(&b.subject, &b.role));
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
    /// of the bindings, O(log n + k).
    pub fn bindings_of(&self, subject: &Subject) -> Vec<Binding> {
        self.bindings.of(subject).cloned().collect()
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
        // `!` sorts before every valid group name (see `Bindings::of`).
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
    use crate::model::user::tests::user_with;

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

    fn alias(a: &str) -> Alias {
        Alias::new(a).unwrap()
    }

    #[test]
    fn the_alias_index_follows_the_users() {
        let mut t = Tenant::new(TenantId::new("t").unwrap(), "T");
        let rick = UserId::new("rick").unwrap();
        t.insert_user(user_with("rick", &["idp-1", "spiffe://c/sa/r"]));
        t.insert_user(user_with("morty", &[]));
        assert_eq!(t.alias_owner("idp-1"), Some(&rick));
        assert_eq!(t.member("spiffe://c/sa/r").map(|u| &u.id), Some(&rick));
        assert_eq!(t.member("rick").map(|u| &u.id), Some(&rick));
        assert!(t.member("morty").is_some() && t.alias_owner("morty").is_none());
        assert!(t.alias_index_is_consistent());

        // Replacing the aliases drops the old ones from the index.
        assert!(t.set_aliases(&rick, [alias("idp-2")].into()));
        assert_eq!(t.alias_owner("idp-1"), None);
        assert_eq!(t.alias_owner("idp-2"), Some(&rick));
        assert!(!t.set_aliases(&UserId::new("ghost").unwrap(), BTreeSet::new()));
        assert!(t.alias_index_is_consistent());

        // Replacing the user does too.
        t.insert_user(user_with("rick", &["idp-3"]));
        assert_eq!(t.aliases().count(), 1);
        assert!(t.alias_index_is_consistent());

        t.remove_user(&rick);
        assert_eq!(t.aliases().count(), 0);
        assert!(t.member("idp-3").is_none());

        // Written to `users` by hand, the index is stale until rebuilt.
        t.users.insert(rick.clone(), user_with("rick", &["idp-4"]));
        assert!(!t.alias_index_is_consistent());
        assert_eq!(t.reindex_aliases(), None);
        assert_eq!(t.alias_owner("idp-4"), Some(&rick));
        // An alias two users hold is reported (a damaged image).
        t.users
            .insert(UserId::new("z").unwrap(), user_with("z", &["idp-4"]));
        assert_eq!(t.reindex_aliases(), Some(alias("idp-4")));
        assert_eq!(t.alias_owner("idp-4"), Some(&rick), "the first keeps it");
    }

    #[test]
    fn an_alias_names_one_member_both_ways() {
        let mut t = Tenant::new(TenantId::new("t").unwrap(), "T");
        t.insert_user(user_with("rick", &["idp-1"]));
        t.insert_user(user_with("morty", &[]));
        let morty = UserId::new("morty").unwrap();
        let rick = UserId::new("rick").unwrap();
        // Another's alias.
        assert!(matches!(
            t.alias_clash(&morty, &[alias("idp-1")], false),
            Some(AliasClash::HeldBy { holder, .. }) if holder == rick
        ));
        // Another member's id.
        let clash = t.alias_clash(&morty, &[alias("rick")], false).unwrap();
        assert!(matches!(&clash, AliasClash::IsMember { holder, .. } if *holder == rick));
        assert_eq!(
            clash.to_string(),
            "alias `rick` is the id of user `rick` in tenant `t`: an alias must not name another member"
        );
        // A new member's id that is an alias.
        let newcomer = UserId::new("idp-1").unwrap();
        assert!(matches!(
            t.alias_clash(&newcomer, &[], true),
            Some(AliasClash::IdIsAlias { holder, .. }) if holder == rick
        ));
        // One's own alias (kept on an update) is no clash; free ones neither.
        assert_eq!(t.alias_clash(&rick, &[alias("idp-1")], false), None);
        assert_eq!(t.alias_clash(&morty, &[alias("idp-2")], false), None);
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
                Some(Timestamp::from_unix(100)),
            ),
        ] {
            t.bindings.insert(Binding {
                subject,
                role,
                expires,
            });
        }
        let parents = t.parents();
        let bindings = t.bindings_by_subject();
        let at = |now| {
            t.effective_roles(&alice, Timestamp::from_unix(now), &parents, &bindings)
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
            t.bindings.insert(Binding {
                subject: subject.clone(),
                role,
                expires: None,
            });
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
