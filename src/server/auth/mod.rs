//! Authentication and scopes: who is calling, and may they call this?
//!
//! Owns the credentials (bearer tokens configured by their SHA-256 hash,
//! client certificates mapped by subject CN or URI SAN), the scope each RPC
//! needs ([`required`]), the tower layer that enforces it in front of every
//! service ([`AuthLayer`]). The client side (tokens sent) is `crate::client`'s.
//! The one rule it leaves to the Admin service is the one that needs the
//! message: acting as the operator (an empty `actor`) needs `operator`.
//!
//! It never logs, prints or returns a token, and never echoes the contents
//! of a credentials file in an error (a token pasted by mistake where its
//! hash belongs must not end up in a log).
//!
//! - `scopes`: [`Scope`], [`Scopes`], [`Principal`] and its [`Bounds`]
//!   (tenants, a bound actor) as an entry's scopes allow them ([`bounds`]),
//!   [`confine`], [`Need`];
//! - `credentials`: the credentials file and what it configures
//!   ([`Credentials`], [`CredentialsError`]);
//! - `layer`: authenticating one call ([`AuthLayer`], [`LiveCredentials`]).

mod credentials;
mod layer;
mod scopes;

pub use credentials::{Credentials, CredentialsError};
pub use layer::{AuthLayer, LiveCredentials, PeerCerts};
pub use scopes::{Bounds, Need, Principal, Scope, Scopes, bounds, confine};

use crate::proto::{admin_server, authorization_server, replication_server};

const AUTHORIZATION: &str = authorization_server::SERVICE_NAME;
const ADMIN: &str = admin_server::SERVICE_NAME;
const REPLICATION: &str = replication_server::SERVICE_NAME;

/// The scope table: what the call at `path` (`/package.Service/Method`) needs.
/// Admin calls that act as the operator also need `operator`; the Admin
/// service checks that, since it depends on the message.
pub fn required(path: &str) -> Need {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Need::Open,
        AUTHORIZATION | super::ext_authz::SERVICE_NAME => Need::Scope(Scope::Check),
        ADMIN => Need::Scope(Scope::Admin),
        REPLICATION if method == "Import" => Need::Scope(Scope::Operator),
        REPLICATION => Need::Scope(Scope::Watch),
        _ => Need::Authenticated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_table() {
        assert_eq!(required("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(
            required("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Need::Open
        );
        assert_eq!(
            required("/rampart.v1.Authorization/Check"),
            Need::Scope(Scope::Check)
        );
        assert_eq!(
            required("/envoy.service.auth.v3.Authorization/Check"),
            Need::Scope(Scope::Check)
        );
        assert_eq!(
            required("/rampart.v1.Admin/ListAuditLog"),
            Need::Scope(Scope::Admin)
        );
        assert_eq!(
            required("/rampart.v1.Replication/Watch"),
            Need::Scope(Scope::Watch)
        );
        assert_eq!(
            required("/rampart.v1.Replication/Import"),
            Need::Scope(Scope::Operator)
        );
        assert_eq!(required("/other.Thing/Do"), Need::Authenticated);
    }
}
