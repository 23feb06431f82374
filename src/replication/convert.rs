//! The Replication service's request fields into model values (Watch's
//! tenant filter). Replication does not import `server`, so its
//! conversions live here, in the same `TryFrom` style.

use crate::model::ids::IdError;
use crate::model::{ErrorKind, HasKind, TenantId};
use crate::proto;

/// The tenants a Watch wants the changes of (empty: all).
#[derive(Debug)]
pub struct WatchTenants(pub Vec<TenantId>);

/// A tenant in Watch's filter that is not a tenant id: INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenants: `{}`: {reason}", crate::model::quote(.tenant))]
pub struct BadTenant {
    pub tenant: String,
    pub reason: IdError,
}

impl HasKind for BadTenant {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl TryFrom<&proto::WatchRequest> for WatchTenants {
    type Error = BadTenant;
    fn try_from(r: &proto::WatchRequest) -> Result<Self, BadTenant> {
        r.tenants
            .iter()
            .map(|t| {
                TenantId::new(t.as_str()).map_err(|reason| BadTenant {
                    tenant: t.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}
