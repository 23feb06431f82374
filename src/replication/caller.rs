//! Who calls the Replication service, as far as it cares: the credential's
//! name and the tenants it is confined to (the tokens file's `tenants` on a
//! `watch` credential, say a sidecar's follow token).
//!
//! Authentication is `server`'s, which this module may not import: the
//! composition root (`cli::serve`) puts a [`Caller`] into each Replication
//! request's extensions from the authenticated principal. A request with
//! no `Caller` (a node without credentials) may see every tenant.
//!
//! It owns only the rule "a confined caller gets its tenants and no
//! others" ([`Caller::narrow`]); which tenants a node holds is the
//! engine's [`Scope`], and what a stream filtered to tenants sends is
//! `filter.rs`'s.

use std::sync::Arc;

use crate::engine::Scope;
use crate::model::{ErrorKind, HasKind, backticked};

/// The caller of a Replication request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential's name (a token's `name`, `cert:<CN>`, `uri:<URI>`).
    pub name: Arc<str>,
    /// The tenants it is confined to; `None`: every tenant.
    pub tenants: Option<Scope>,
}

/// A request that names a tenant outside its caller's: PERMISSION_DENIED,
/// naming the credential, its tenants and those it named outside them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential `{credential}` is confined to tenant(s) {}: not {}", backticked(.allowed), backticked(.outside))]
pub struct Confined {
    pub credential: String,
    pub allowed: Vec<String>,
    pub outside: Vec<String>,
}

impl HasKind for Confined {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PermissionDenied
    }
}

impl Caller {
    /// The caller of `request`, if the composition root named one.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Caller> {
        request.extensions().get::<Caller>()
    }

    /// The tenants a Watch or an Export that asked for `asked` (`None`:
    /// none named, so every tenant) covers for `caller`: what it asked for
    /// when each of those is one of a confined caller's tenants, and with
    /// none named the caller's own tenants, so a confined caller never
    /// receives another tenant's data.
    pub fn narrow(
        caller: Option<&Caller>,
        asked: Option<Scope>,
    ) -> Result<Option<Scope>, Confined> {
        let Some((name, own)) = caller.and_then(|c| c.tenants.as_ref().map(|t| (&c.name, t)))
        else {
            return Ok(asked);
        };
        match asked {
            None => Ok(Some(own.clone())),
            Some(asked) if own.covers(&asked) => Ok(Some(asked)),
            Some(asked) => Err(Confined {
                credential: name.to_string(),
                allowed: own.names(),
                outside: own.missing(&asked),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;

    fn scope(ids: &[&str]) -> Option<Scope> {
        Scope::new(ids.iter().map(|id| TenantId::new(*id).unwrap()))
    }

    #[test]
    fn a_confined_caller_gets_its_tenants_and_no_others() {
        let sidecar = Caller {
            name: "sidecar".into(),
            tenants: scope(&["acme", "initech"]),
        };
        let narrow = |asked: &[&str]| Caller::narrow(Some(&sidecar), scope(asked));
        assert_eq!(narrow(&[]).unwrap(), scope(&["acme", "initech"]));
        assert_eq!(narrow(&["acme"]).unwrap(), scope(&["acme"]));
        let refused = narrow(&["globex", "acme", "umbrella"]).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "credential `sidecar` is confined to tenant(s) `acme`, `initech`: not `globex`, `umbrella`"
        );
        assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn an_unconfined_caller_or_none_gets_what_it_asks_for() {
        let replica = Caller {
            name: "replica".into(),
            tenants: None,
        };
        for caller in [Some(&replica), None] {
            assert_eq!(Caller::narrow(caller, None).unwrap(), None);
            assert_eq!(
                Caller::narrow(caller, scope(&["globex"])).unwrap(),
                scope(&["globex"])
            );
        }
    }
}
