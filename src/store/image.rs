//! A serde image of a whole [`State`], for checkpoints.
//!
//! Maps keyed by a value's own name become lists (JSON cannot key a map by
//! the `(subject, role)` tuple of `Tenant::bindings`), and the catalog is
//! kept as its entries, built-ins included so their restated category,
//! description and stability survive. Reading an image checks what the
//! lists cannot express (no name twice, the system roles present), so a
//! damaged image is an [`ImageError`], never a state that breaks an
//! invariant. This module only converts; where images are kept is the
//! backend's business.
//!
//! Two encodings: JSON ([`encode_tenant`]), for the export file and the
//! checkpoints of format 1, and the binary image of [`binary`], for the
//! checkpoints written since (faster to read, and smaller).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

use crate::model::catalog::CatalogError;
use crate::model::ids::SYSTEM_ROLES;
use crate::model::packed;
use crate::model::{
    Binding, Bindings, Catalog, CatalogEntry, Grant, Group, Role, State, Tenant, TenantId,
    TenantSettings, User,
};

pub mod binary;

/// The whole state at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub revision: u64,
    /// Every catalog entry, built-ins first, in catalog order.
    pub catalog: Vec<CatalogEntry>,
    pub bridges_grants: Vec<Grant>,
    /// In tenant id order.
    pub tenants: Vec<TenantImage>,
}

/// One tenant, with its maps as lists in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantImage {
    pub id: TenantId,
    pub name: String,
    pub settings: TenantSettings,
    pub roles: Vec<Role>,
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub bindings: Vec<Binding>,
}

/// Why an image does not make a valid state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageError {
    #[error("not a valid image: {0}")]
    Decode(String),
    #[error("tenant `{tenant}` lists {what} `{name}` twice")]
    Duplicate {
        tenant: String,
        what: &'static str,
        name: String,
    },
    #[error("tenant `{tenant}` lacks the system role `{role}`")]
    MissingSystemRole { tenant: String, role: &'static str },
    #[error("tenant `{0}` is listed twice")]
    DuplicateTenant(String),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// A binary image was expected, and these bytes do not start with its tag.
    #[error("not a binary tenant image: it does not start with the tag")]
    NotBinary,
    /// A binary image cut short: `bytes` of the `want` its frame says.
    #[error("truncated: {bytes} bytes of a binary tenant image of {want}")]
    Truncated { bytes: usize, want: u64 },
    /// A binary image of a layout this build does not know.
    #[error(
        "a binary tenant image of version {found}: this rampart reads version {known} (written by a newer rampart?)"
    )]
    Version { found: u16, known: u16 },
    /// A binary image whose bytes are not those written.
    #[error("the binary tenant image's checksum is {found:08x} instead of {want:08x}")]
    Checksum { found: u32, want: u32 },
    /// A binary image that is well framed but does not describe a tenant.
    #[error("malformed binary tenant image: {0}")]
    Malformed(String),
    /// A tenant that cannot be written as a binary image.
    #[error("cannot encode the binary tenant image: {0}")]
    Encode(String),
}

impl Image {
    /// The image of `state` (copies the data; see [`encode_tenant`] for a
    /// tenant's image written without a copy).
    pub fn of(state: &State) -> Self {
        Self {
            revision: state.revision,
            catalog: state.catalog.entries().to_vec(),
            bridges_grants: state.bridges_grants.to_vec(),
            tenants: state.tenants.values().map(|t| TenantImage::of(t)).collect(),
        }
    }

    /// The state this image describes.
    pub fn into_state(self) -> Result<State, ImageError> {
        let tenants = self
            .tenants
            .into_iter()
            .map(TenantImage::into_tenant)
            .collect::<Result<Vec<_>, _>>()?;
        assemble(self.revision, self.catalog, self.bridges_grants, tenants)
    }
}

impl TenantImage {
    /// The image of `tenant`.
    pub fn of(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
            settings: tenant.settings.clone(),
            roles: tenant.roles.values().cloned().collect(),
            groups: tenant.groups.values().cloned().collect(),
            users: tenant.users.values().cloned().collect(),
            bindings: tenant.bindings.values().cloned().collect(),
        }
    }

    /// The tenant this image describes.
    pub fn into_tenant(self) -> Result<Tenant, ImageError> {
        let tenant = self.id.as_str();
        let duplicate = |what: &'static str, name: String| ImageError::Duplicate {
            tenant: tenant.to_owned(),
            what,
            name,
        };
        let mut roles = BTreeMap::new();
        for role in self.roles {
            let name = role.name.clone();
            if roles.insert(name.clone(), role).is_some() {
                return Err(duplicate("role", name.to_string()));
            }
        }
        for system in SYSTEM_ROLES {
            if !roles.contains_key(system) {
                return Err(ImageError::MissingSystemRole {
                    tenant: tenant.to_owned(),
                    role: system,
                });
            }
        }
        let mut groups = BTreeMap::new();
        for group in self.groups {
            let name = group.name.clone();
            if groups.insert(name.clone(), group).is_some() {
                return Err(duplicate("group", name.to_string()));
            }
        }
        let mut users = BTreeMap::new();
        for user in self.users {
            let id = user.id.clone();
            if users.insert(id.clone(), user).is_some() {
                return Err(duplicate("user", id.to_string()));
            }
        }
        let mut bindings = BTreeMap::new();
        for binding in self.bindings {
            let key = (binding.subject.clone(), binding.role.clone());
            if bindings.insert(key, binding).is_some() {
                return Err(duplicate("binding", "(subject, role)".to_owned()));
            }
        }
        // Built with full nodes (`model::packed`): by far the largest
        // maps of a loaded state.
        let mut t = Tenant::new(self.id.clone(), self.name);
        t.settings = self.settings;
        t.roles = packed::map(roles.into_iter().collect());
        t.groups = packed::map(groups.into_iter().collect());
        t.users = packed::map(users.into_iter().collect());
        t.bindings = Bindings::from_sorted(bindings.into_values().collect());
        // The alias index is derived, never written: rebuilt here, so an
        // image from before aliases (none) and one with them read alike.
        if let Some(alias) = t.reindex_aliases() {
            return Err(duplicate("alias", crate::model::quote(alias.as_str())));
        }
        Ok(t)
    }
}

/// Rebuilds a catalog from its entries: the built-ins, then `define` for
/// each entry (which restates a built-in and appends a user entry).
pub fn rebuild_catalog(entries: Vec<CatalogEntry>) -> Result<Catalog, ImageError> {
    let mut catalog = Catalog::with_builtins();
    for entry in entries {
        catalog.define(entry)?;
    }
    Ok(catalog)
}

/// A state from its parts, as a backend that keeps them apart reads them.
pub fn assemble(
    revision: u64,
    catalog: Vec<CatalogEntry>,
    bridges_grants: Vec<Grant>,
    tenants: Vec<Tenant>,
) -> Result<State, ImageError> {
    let mut state = State::new();
    state.revision = revision;
    state.catalog = Arc::new(rebuild_catalog(catalog)?);
    state.bridges_grants = bridges_grants.into();
    for tenant in tenants {
        let id = tenant.id.clone();
        if state.tenants.insert(id.clone(), Arc::new(tenant)).is_some() {
            return Err(ImageError::DuplicateTenant(id.to_string()));
        }
    }
    Ok(state)
}

/// The JSON of `TenantImage::of(tenant)`, written straight from the
/// tenant's maps without copying them.
pub fn encode_tenant(tenant: &Tenant) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&TenantView::from(tenant))
}

/// Reads what [`encode_tenant`] wrote.
/// Every identifier mentioned more than once shares one allocation
/// (`model::intern`).
pub fn decode_tenant(bytes: &[u8]) -> Result<Tenant, ImageError> {
    crate::model::intern::interning(|| {
        serde_json::from_slice::<TenantImage>(bytes)
            .map_err(|e| ImageError::Decode(e.to_string()))?
            .into_tenant()
    })
}

/// Borrowed twin of [`TenantImage`]: same field names and order, so the
/// JSON is the same.
#[derive(Serialize)]
struct TenantView<'a> {
    id: &'a TenantId,
    name: &'a str,
    settings: &'a TenantSettings,
    #[serde(serialize_with = "values")]
    roles: &'a imbl::OrdMap<crate::model::RoleName, Role>,
    #[serde(serialize_with = "values")]
    groups: &'a imbl::OrdMap<crate::model::GroupName, Group>,
    #[serde(serialize_with = "values")]
    users: &'a imbl::OrdMap<crate::model::UserId, User>,
    #[serde(serialize_with = "bindings")]
    bindings: &'a Bindings,
}

impl<'a> From<&'a Tenant> for TenantView<'a> {
    fn from(t: &'a Tenant) -> Self {
        Self {
            id: &t.id,
            name: &t.name,
            settings: &t.settings,
            roles: &t.roles,
            groups: &t.groups,
            users: &t.users,
            bindings: &t.bindings,
        }
    }
}

/// The bindings as a list, in key order (as [`values`]).
fn bindings<S: Serializer>(bindings: &&Bindings, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(bindings.values())
}

/// A map's values as a list (`serialize_with` passes `&field`, hence `&&`).
fn values<S: Serializer, K: Ord + Clone, V: Serialize + Clone>(
    map: &&imbl::OrdMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(map.values())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::ids::Alias;
    use crate::model::{
        CatalogPattern, GrantPattern, GroupName, RoleName, Stability, Subject, Timestamp, UserId,
        UserStatus,
    };

    /// A state with a bit of everything an image must keep.
    pub(in crate::store::image) fn sample() -> State {
        let mut state = State::new();
        state.revision = 42;
        let mut catalog = Catalog::with_builtins();
        catalog
            .define(CatalogEntry {
                pattern: CatalogPattern::parse("ACM:ROLE:INSERT").unwrap(),
                category: "Roles".into(),
                description: "restated".into(),
                stability: Stability::Preview,
                builtin: false,
            })
            .unwrap();
        for text in ["documents:view", "SCRIPTING:EXECUTE:?PATH*?", "z:?X?"] {
            catalog
                .define(CatalogEntry {
                    pattern: CatalogPattern::parse(text).unwrap(),
                    category: "c".into(),
                    description: text.into(),
                    stability: Stability::Stable,
                    builtin: false,
                })
                .unwrap();
        }
        assert!(catalog.remove("documents:view"));
        catalog
            .define(CatalogEntry {
                pattern: CatalogPattern::parse("documents:view").unwrap(),
                category: "again".into(),
                description: String::new(),
                stability: Stability::Stable,
                builtin: false,
            })
            .unwrap();
        state.catalog = Arc::new(catalog);
        state.bridges_grants =
            vec![Grant::allow(GrantPattern::parse("documents:*").unwrap())].into();
        for id in ["acme", "beta"] {
            let mut t = Tenant::new(TenantId::new(id).unwrap(), format!("{id} Inc."));
            t.settings.single_role_per_user = id == "beta";
            let editors = RoleName::new("editors").unwrap();
            let mut role = Role::new(editors.clone());
            role.description = "edit".into();
            role.grants = vec![
                Grant::allow(GrantPattern::parse("documents:view").unwrap()),
                Grant::deny(GrantPattern::parse("documents:*").unwrap()),
            ];
            t.roles.insert(editors.clone(), role);
            let alice = UserId::new("alice@x.org").unwrap();
            let mut user = User::new(alice.clone()).with_email(Some("alice@x.org".into()));
            user.status = UserStatus::Inactive;
            t.users.insert(alice.clone(), user);
            // A member with aliases: the index is rebuilt on reading.
            t.insert_user(
                User::new(UserId::new("rick").unwrap()).with_aliases(
                    ["spiffe://c/ns/x/sa/rick", "CiRmZDA2"]
                        .iter()
                        .map(|a| Alias::new(a).unwrap())
                        .collect(),
                ),
            );
            let eng = GroupName::new("eng team").unwrap();
            t.groups.insert(
                eng.clone(),
                Group {
                    name: eng.clone(),
                    description: "engineers".into(),
                    members: imbl::OrdSet::unit(Subject::User(alice.clone())),
                },
            );
            for (subject, expires) in [
                (
                    Subject::User(alice.clone()),
                    Some(Timestamp::from_unix(1_798_761_600)),
                ),
                (Subject::Group(eng.clone()), None),
            ] {
                t.bindings.insert(Binding {
                    subject,
                    role: editors.clone(),
                    expires,
                });
            }
            state.tenants.insert(t.id.clone(), Arc::new(t));
        }
        state
    }

    #[test]
    fn state_round_trips_through_json() {
        let state = sample();
        let text = serde_json::to_string(&Image::of(&state)).unwrap();
        let back: Image = serde_json::from_str(&text).unwrap();
        assert_eq!(back.into_state().unwrap(), state);
    }

    #[test]
    fn the_alias_index_is_rebuilt_on_reading() {
        let state = sample();
        let text = serde_json::to_string(&Image::of(&state)).unwrap();
        let back = serde_json::from_str::<Image>(&text)
            .unwrap()
            .into_state()
            .unwrap();
        for t in back.tenants.values() {
            assert!(t.alias_index_is_consistent());
            let rick = t.member("spiffe://c/ns/x/sa/rick").map(|u| u.id.as_str());
            assert_eq!(rick, Some("rick"));
        }
        // A user without aliases is written as before they existed...
        let acme = encode_tenant(&state.tenants["acme"]).unwrap();
        let acme = String::from_utf8(acme).unwrap();
        assert_eq!(acme.matches("\"aliases\"").count(), 1, "{acme}");
        assert!(acme.contains(
            r#"{"id":"alice@x.org","email":"alice@x.org","display_name":null,"status":"inactive"}"#
        ));
    }

    #[test]
    fn an_image_from_before_aliases_reads() {
        // Written by a build without aliases: users carry no `aliases`.
        let old = r#"{"id":"acme","name":"Acme","settings":{"single_role_per_user":false},
            "roles":[{"name":"Administrators","description":"","grants":[]},
                     {"name":"Bridges","description":"","grants":[]},
                     {"name":"Users","description":"","grants":[]}],
            "groups":[],
            "users":[{"id":"alice","email":null,"display_name":null,"status":"active"}],
            "bindings":[{"subject":"alice","role":"Administrators","expires":null}]}"#;
        let t = decode_tenant(old.as_bytes()).unwrap();
        assert!(t.users["alice"].aliases().is_empty());
        assert_eq!(t.aliases().count(), 0);
        assert!(t.alias_index_is_consistent());
        // It writes back the same, less white space.
        let again: serde_json::Value = serde_json::from_slice(&encode_tenant(&t).unwrap()).unwrap();
        let mut expected: serde_json::Value = serde_json::from_str(old).unwrap();
        expected["settings"]["shared_users"] = false.into();
        assert_eq!(again, expected);
    }

    #[test]
    fn empty_state_round_trips() {
        let state = State::new();
        assert_eq!(Image::of(&state).into_state().unwrap(), state);
    }

    #[test]
    fn borrowed_encoding_matches_the_owned_image() {
        let state = sample();
        for t in state.tenants.values() {
            let borrowed = encode_tenant(t).unwrap();
            let owned = serde_json::to_vec(&TenantImage::of(t)).unwrap();
            assert_eq!(borrowed, owned);
            assert_eq!(&decode_tenant(&borrowed).unwrap(), &**t);
        }
    }

    #[test]
    fn damaged_images_are_errors() {
        let state = sample();
        let acme = &state.tenants["acme"];

        let mut twice = TenantImage::of(acme);
        twice.users.push(twice.users[0].clone());
        assert!(matches!(
            twice.into_tenant(),
            Err(ImageError::Duplicate { what: "user", .. })
        ));

        let mut no_admins = TenantImage::of(acme);
        no_admins
            .roles
            .retain(|r| r.name.as_str() != "Administrators");
        assert!(matches!(
            no_admins.into_tenant(),
            Err(ImageError::MissingSystemRole {
                role: "Administrators",
                ..
            })
        ));

        let mut image = Image::of(&state);
        image.tenants.push(image.tenants[0].clone());
        assert!(matches!(
            image.into_state(),
            Err(ImageError::DuplicateTenant(_))
        ));

        let mut image = Image::of(&state);
        let last = image.catalog.last().unwrap().clone();
        image.catalog.push(last);
        assert!(matches!(image.into_state(), Err(ImageError::Catalog(_))));

        // Two users with one alias: the index cannot hold it.
        let mut shared = TenantImage::of(acme);
        let rick = shared
            .users
            .iter()
            .find(|u| u.id.as_str() == "rick")
            .cloned();
        let alice = shared
            .users
            .iter_mut()
            .find(|u| u.id.as_str() == "alice@x.org");
        alice.unwrap().set_aliases(rick.unwrap().aliases().clone());
        assert!(matches!(
            shared.into_tenant(),
            Err(ImageError::Duplicate { what: "alias", .. })
        ));

        assert!(matches!(
            decode_tenant(b"{\"id\":\"\"}"),
            Err(ImageError::Decode(_))
        ));
    }
}
