//! Authenticating one call: the bearer header, the verified client
//! certificate, the scope check ([`Credentials::authorize`]), and the tower
//! layer that runs it in front of every service ([`AuthLayer`]).

use std::sync::Arc;

use tonic::Status;
use tonic::transport::server::TlsConnectInfo;

use super::{Credentials, Need, Principal, required};
use crate::client::valid_token;
use crate::server::conn::ConnInfo;
use crate::server::edge::{BoxFuture, Edge, Inner};

impl Credentials {
    /// Who sent this request: its bearer token if it has an `authorization`
    /// header, else its verified client certificate.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Principal, Status> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = bearer(value).ok_or_else(|| {
                Status::unauthenticated(
                    "the `authorization` header is malformed: expected `Bearer <token>`",
                )
            })?;
            return self
                .token(token)
                .cloned()
                .ok_or_else(|| Status::unauthenticated("the bearer token is not valid here"));
        }
        let cert = extensions
            .get::<TlsConnectInfo<ConnInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .or_else(|| extensions.get::<PeerCerts>().map(|c| Arc::clone(&c.0)));
        if let Some(cert) = cert.as_ref().and_then(|c| c.first()) {
            return self.cert(cert).cloned();
        }
        Err(Status::unauthenticated(
            "this call needs a credential: `authorization: Bearer <token>` or a client certificate",
        ))
    }

    /// Authenticates a call to `path` and checks the scope it needs.
    /// `Ok(None)` for an open service.
    pub fn authorize(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Option<Principal>, Status> {
        let need = required(path);
        if need == Need::Open {
            return Ok(None);
        }
        let who = self.authenticate(headers, extensions)?;
        if let Need::Scope(scope) = need
            && !who.has(scope)
        {
            return Err(Status::permission_denied(format!(
                "`{}` lacks the `{}` scope that {} needs; it has {}",
                who.name,
                scope.name(),
                path.trim_start_matches('/'),
                who.scopes
            )));
        }
        Ok(Some(who))
    }
}

/// The verified client certificates of a connection that tonic did not
/// accept (the HTTP listener's), in its requests' extensions.
#[derive(Debug, Clone)]
pub struct PeerCerts(pub Arc<Vec<rustls::pki_types::CertificateDer<'static>>>);

/// The token in `Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && valid_token(token)).then_some(token)
}

/// The credentials a server checks calls against, swapped whole when the
/// tokens file is reloaded (a call sees the old set or the new one).
pub type LiveCredentials = Arc<arc_swap::ArcSwap<Credentials>>;

/// The tower layer that authenticates every call (when credentials are
/// configured) and puts the [`Principal`] into the request's extensions.
/// Without credentials it lets everything through: loopback dev mode.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    credentials: Option<LiveCredentials>,
}

impl AuthLayer {
    pub fn new(credentials: Option<LiveCredentials>) -> Self {
        Self { credentials }
    }
}

impl Edge for AuthLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        mut request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        if let Some(credentials) = &self.credentials {
            match credentials.load().authorize(
                request.uri().path(),
                request.headers(),
                request.extensions(),
            ) {
                Ok(Some(who)) => {
                    request.extensions_mut().insert(who);
                }
                Ok(None) => {}
                Err(status) => {
                    tracing::debug!(path = request.uri().path(), code = ?status.code(), reason = status.message(), "call refused");
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            }
        }
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scope;
    use super::super::credentials::tests::creds;

    fn headers(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        h
    }

    #[test]
    fn tokens_match_by_hash_and_operator_implies_everything() {
        let c = creds();
        let none = http::Extensions::new();
        let svc = c.authenticate(&headers("Bearer t-svc"), &none).unwrap();
        assert_eq!(&*svc.name, "svc");
        assert!(svc.has(Scope::Check) && !svc.has(Scope::Admin));
        let ops = c.authenticate(&headers("bearer t-ops"), &none).unwrap();
        assert!(Scope::ALL.iter().all(|s| ops.has(*s)));
        for bad in ["Bearer nope", "Basic dTpw", "Bearer", "t-svc", "Bearer  "] {
            let e = c.authenticate(&headers(bad), &none).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
            assert!(!e.message().contains("t-svc"), "{bad}: {}", e.message());
        }
        let e = c.authenticate(&http::HeaderMap::new(), &none).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
}
