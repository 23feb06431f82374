//! The policy file as written: the serde structs a YAML document is read
//! into before the loader checks and resolves it.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDoc {
    #[serde(default)]
    pub(super) catalog: Vec<FileEntry>,
    #[serde(default)]
    pub(super) bridges_grants: Vec<FileGrant>,
    #[serde(default)]
    pub(super) tenants: Vec<FileTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEntry {
    pub(super) permission: String,
    #[serde(default)]
    pub(super) category: String,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) stability: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileGrant {
    Plain(String),
    Explicit(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTenant {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) settings: FileSettings,
    #[serde(default)]
    pub(super) roles: Vec<FileRole>,
    #[serde(default)]
    pub(super) groups: Vec<FileGroup>,
    #[serde(default)]
    pub(super) users: Vec<FileUser>,
    #[serde(default)]
    pub(super) bindings: Vec<FileBinding>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    #[serde(default)]
    pub(super) single_role_per_user: bool,
    #[serde(default)]
    pub(super) shared_users: bool,
    #[serde(default)]
    pub(super) administrator_roles: Vec<String>,
    #[serde(default)]
    pub(super) removal_needs_all_grants: bool,
    #[serde(default)]
    pub(super) users_role_removals_only: bool,
    #[serde(default)]
    pub(super) preview_grants: crate::model::tenant::GrantPolicy,
    #[serde(default)]
    pub(super) deprecated_grants: crate::model::tenant::GrantPolicy,
    #[serde(default)]
    pub(super) admin_permissions: crate::model::operation::AdminPermissions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRole {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) grants: Vec<FileGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGroup {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) members: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUser {
    pub(super) id: String,
    #[serde(default)]
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) display_name: Option<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
    /// Other identities the user is known by (given once, in any tenant).
    #[serde(default)]
    pub(super) aliases: Vec<String>,
    /// Named values the tenant's admin permission templates may read
    /// (`realm: ldap`); profile data, given once.
    #[serde(default)]
    pub(super) attributes: crate::model::tenant::Attributes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBinding {
    pub(super) subject: String,
    pub(super) role: String,
    #[serde(default)]
    pub(super) expires: Option<String>,
}
