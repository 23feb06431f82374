//! The pure domain: ids, permission paths, the catalog, tenants with their
//! roles, groups, users and bindings, the state, the policy file, the
//! admin rules, and what a check decides.
//!
//! Nothing here imports tokio, tonic or sled: the model can be read, tested
//! and benchmarked without a runtime.

pub mod apply;
pub mod audit;
pub mod bindings;
pub mod catalog;
pub mod decision;
pub mod ids;
pub mod intern;
pub mod kind;
pub mod mutation;
pub mod operation;
pub mod packed;
pub mod permission;
pub mod policy_file;
pub mod rules;
pub mod state;
pub mod template;
pub mod tenant;
pub mod text;
pub mod time;
pub mod user;

pub use apply::{ApplyError, TenantTouch, Touched, apply};
pub use bindings::Bindings;
pub use catalog::{Catalog, CatalogEntry, CatalogPattern, Stability};
pub use decision::{Decision, Reason};
pub use ids::{GroupName, RoleName, Subject, TenantId, UserId};
pub use kind::{ErrorKind, HasKind};
pub use mutation::Mutation;
pub use permission::{Effect, Grant, GrantPattern, PermissionPath};
pub use state::State;
pub use tenant::{
    Binding, GrantPolicy, Group, Role, RoleKind, SettingsChange, Tenant, TenantSettings, User,
    UserStatus,
};
pub use text::{TextError, backticked, check_text, quote};
pub use time::Timestamp;

/// The demo policy `rampart serve` loads when given no `--bootstrap` file.
pub const QUICKSTART_POLICY: &str = include_str!("../../examples/quickstart/policy.yaml");
