//! Who a caller is and what it may do: [`Scope`], [`Scopes`], the
//! [`Bounds`] an entry may add to them ([`bounds`]), the [`Principal`]
//! put into each authenticated request, and what a call [`Need`]s.

use std::fmt;
use std::sync::Arc;

use crate::model::{TenantId, UserId};

/// What a credential may do. `Operator` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `rampart.v1.Authorization`: Check, BatchCheck, the listings; and
    /// Envoy's `envoy.service.auth.v3.Authorization` Check.
    Check,
    /// `rampart.v1.Admin`, acting as a user (the administration rules apply).
    Admin,
    /// `rampart.v1.Replication` Watch, Export, GetState: replicas, backups.
    Watch,
    /// Everything: acting as the operator on Admin, Replication Import.
    Operator,
}

impl Scope {
    /// The scope named `name` in the tokens file.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(crate) const ALL: [Scope; 4] = [Scope::Check, Scope::Admin, Scope::Watch, Scope::Operator];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The scope's name in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Admin => "admin",
            Scope::Watch => "watch",
            Scope::Operator => "operator",
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether this set allows `scope` (`operator` allows everything).
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Operator.bit()) != 0
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = Scope::ALL
            .iter()
            .filter(|s| self.0 & s.bit() != 0)
            .map(|s| format!("`{}`", s.name()))
            .collect();
        if names.is_empty() {
            f.write_str("no scope")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// What a credential is confined to beyond its scopes (the tokens file's
/// `tenants` and `actor`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// `Some`: Check and Admin calls only in these tenants, and only changes
    /// no other tenant sees; Watch, Export and GetState only of these
    /// tenants (enforced by the Replication service, to which the
    /// composition root hands them). `None`: every tenant.
    pub tenants: Option<Arc<[String]>>,
    /// `Some`: Admin calls act as this user, whatever their `actor` says
    /// (an empty `actor` means this one; another is refused).
    pub actor: Option<Arc<str>>,
}

/// An entry's `tenants` and `actor`, checked against its scopes. Errors
/// name the field, never its value.
pub fn bounds(
    scopes: Scopes,
    tenants: Option<Vec<String>>,
    actor: Option<String>,
) -> Result<Bounds, &'static str> {
    if let Some(tenants) = &tenants {
        if tenants.is_empty() {
            return Err("`tenants` is empty: leave it out to allow every tenant");
        }
        if scopes.allows(Scope::Operator) {
            return Err(
                "`tenants` confines `check`, `admin` and `watch`; an `operator` credential changes the whole deployment",
            );
        }
        if tenants.iter().any(|t| TenantId::new(t).is_err()) {
            return Err("`tenants` lists a value that is not a valid tenant id");
        }
    }
    if let Some(actor) = &actor {
        if !scopes.allows(Scope::Admin) || scopes.allows(Scope::Operator) {
            return Err(
                "`actor` binds Admin calls to one user: it needs the `admin` scope and not `operator` (which acts as anyone)",
            );
        }
        if UserId::new(actor).is_err() {
            return Err("`actor` is not a valid user id");
        }
    }
    Ok(Bounds {
        tenants: tenants.map(|mut t| {
            t.sort();
            t.dedup();
            t.into()
        }),
        actor: actor.map(Into::into),
    })
}

/// An authenticated caller, put into each request's extensions by
/// [`AuthLayer`](super::AuthLayer). The Admin service records `name` as the
/// audit log's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `name`; for a client certificate, `cert:` and its
    /// subject CN, or `uri:` and its URI SAN (a SPIFFE ID, say).
    pub name: Arc<str>,
    pub scopes: Scopes,
    pub bounds: Bounds,
}

impl Principal {
    /// Whether the caller holds `scope` (`operator` holds everything).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    /// Whether the caller may call about `tenant`.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.bounds
            .tenants
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == tenant))
    }
}

/// PERMISSION_DENIED unless the caller `who` (`None`: the server runs
/// without credentials) may call about `tenant`. The message names the
/// credential's tenants, not whether `tenant` exists.
pub fn confine(who: Option<&Principal>, tenant: &str) -> Result<(), tonic::Status> {
    match who {
        Some(p) if !p.may_see(tenant) => Err(tonic::Status::permission_denied(format!(
            "credential `{}` is confined to tenant(s) {}: not `{}`",
            p.name,
            crate::model::backticked(p.bounds.tenants.as_deref().unwrap_or_default()),
            crate::model::quote(tenant)
        ))),
        _ => Ok(()),
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health and reflection: open, so probes work without a credential.
    Open,
    /// A scope.
    Scope(Scope),
    /// A path no service serves: any valid credential (it gets UNIMPLEMENTED),
    /// so an anonymous caller cannot probe for services.
    Authenticated,
}
