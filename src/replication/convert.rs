//! The Replication service's request fields into model values (the
//! tenants a Watch or an Export is filtered to). Replication does not
//! import `server`, so its conversions live here, in the same `TryFrom`
//! style.

use crate::engine::Scope;
use crate::model::ids::IdError;
use crate::model::{ErrorKind, HasKind, TenantId};
use crate::proto;

/// The tenants a Watch wants the changes of (empty: all).
#[derive(Debug)]
pub struct WatchTenants(pub Vec<TenantId>);

/// The tenants an Export is asked for (`None`: all).
#[derive(Debug)]
pub struct ExportTenants(pub Option<Scope>);

/// A tenant in a filter that is not a tenant id: INVALID_ARGUMENT.
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

/// Each of `tenants` as a tenant id; the first that is not one fails.
fn tenant_ids(tenants: &[String]) -> Result<Vec<TenantId>, BadTenant> {
    tenants
        .iter()
        .map(|t| {
            TenantId::new(t.as_str()).map_err(|reason| BadTenant {
                tenant: t.clone(),
                reason,
            })
        })
        .collect()
}

impl TryFrom<&proto::WatchRequest> for WatchTenants {
    type Error = BadTenant;
    fn try_from(r: &proto::WatchRequest) -> Result<Self, BadTenant> {
        tenant_ids(&r.tenants).map(Self)
    }
}

impl TryFrom<&proto::ExportRequest> for ExportTenants {
    type Error = BadTenant;
    fn try_from(r: &proto::ExportRequest) -> Result<Self, BadTenant> {
        tenant_ids(&r.tenants).map(|ids| Self(Scope::new(ids)))
    }
}
