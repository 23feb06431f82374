//! `--mode ext-authz`: each check request as the CheckRequest Envoy's HTTP
//! ext_authz filter would send for it, so one server can be driven through
//! its native Check and through Envoy's with the same decisions.
//!
//! The permission becomes the path (`documents:edit:roadmap` is
//! `GET /documents/edit/roadmap`), the tenant and subject two headers
//! (`x-tenant`, `x-user`), beside the peer addresses and (`--envoy-headers
//! all`, the default) the other headers a real request carries. The server needs a mapping that turns those back into
//! the same check: `benches/ext_authz.toml` is one, for any permission of
//! up to six segments.

use std::collections::HashMap;
use std::sync::Arc;

use http::uri::PathAndQuery;
use prost::Message as _;
use tonic::Status;
use tonic::client::Grpc;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_prost::ProstDecoder;

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};

use super::{EnvoyHeaders, Item};
use crate::client::Bearer;

fn peer(ip: &str, port: u32) -> Peer {
    Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_owned(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..SocketAddress::default()
            })),
        }),
        ..Peer::default()
    }
}

/// The CheckRequest Envoy would send for `item`, with `which` headers; `n`
/// makes its request id.
pub fn request(item: &Item, n: usize, which: EnvoyHeaders) -> CheckRequest {
    let path = format!("/{}", item.permission.replace(':', "/"));
    let id = format!("00000000-0000-4000-8000-{n:012}");
    let mapped = [
        ("x-request-id", id.as_str()),
        ("x-tenant", item.tenant.as_str()),
        ("x-user", item.subject.as_str()),
    ];
    let others = [
        (":authority", "app.example.test"),
        (":method", "GET"),
        (":path", path.as_str()),
        (":scheme", "http"),
        ("accept", "application/json"),
        ("user-agent", "rampart-bench"),
        ("x-forwarded-proto", "http"),
    ];
    let others = match which {
        EnvoyHeaders::All => &others[..],
        EnvoyHeaders::Mapped => &[],
    };
    let headers: HashMap<String, String> = mapped
        .iter()
        .chain(others)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer("10.0.0.7", 41_234)),
            destination: Some(peer("10.0.0.9", 8_080)),
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    id: n.to_string(),
                    method: "GET".into(),
                    path,
                    host: "app.example.test".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    size: 0,
                    headers,
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    }
}

/// The path of Envoy's Check.
const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// A client of Envoy's Check that sends a request built once and shared
/// (an `Arc`), where the generated client takes each request by value: the
/// load generator would otherwise deep-copy a CheckRequest (a map of
/// headers) for every call, on the cores the server shares. The bytes on
/// the wire are prost's encoding of the message, as the generated client's.
#[derive(Debug, Clone)]
pub struct Client {
    grpc: Grpc<InterceptedService<Channel, Bearer>>,
}

impl Client {
    pub fn new(channel: Channel, bearer: Bearer) -> Self {
        Self {
            grpc: Grpc::new(InterceptedService::new(channel, bearer)),
        }
    }

    /// One Check.
    pub async fn check(&mut self, request: Arc<CheckRequest>) -> Result<CheckResponse, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
        self.grpc
            .unary(
                tonic::Request::new(request),
                PathAndQuery::from_static(CHECK),
                Shared,
            )
            .await
            .map(tonic::Response::into_inner)
    }
}

/// The codec of [`Client`]: encodes a shared request, decodes as
/// tonic-prost does.
#[derive(Debug, Clone, Copy)]
struct Shared;

impl Codec for Shared {
    type Encode = Arc<CheckRequest>;
    type Decode = CheckResponse;
    type Encoder = Shared;
    type Decoder = ProstDecoder<CheckResponse>;

    fn encoder(&mut self) -> Shared {
        Shared
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

impl Encoder for Shared {
    type Item = Arc<CheckRequest>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

/// Whether the policy decided (its answer carries the revision), as
/// opposed to a deny of the mapping (no route, a missing header): a run
/// whose mapping does not fit its requests counts those as errors.
pub fn decided(r: &CheckResponse) -> bool {
    let headers = match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => &ok.headers,
        Some(HttpResponse::DeniedResponse(d)) => &d.headers,
        _ => return false,
    };
    headers.iter().any(|h| {
        h.header
            .as_ref()
            .is_some_and(|h| h.key == "x-rampart-revision")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_becomes_the_path_and_the_names_headers() {
        let r = request(
            &Item {
                tenant: "acme".into(),
                subject: "alice".into(),
                permission: "documents:edit:roadmap".into(),
            },
            7,
            EnvoyHeaders::All,
        );
        let http = r.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.path, "/documents/edit/roadmap");
        assert_eq!(http.headers["x-tenant"], "acme");
        assert_eq!(http.headers["x-user"], "alice");
        assert_eq!(http.headers[":path"], "/documents/edit/roadmap");
        assert_eq!(http.headers.len(), 10);
        let item = Item {
            tenant: "acme".into(),
            subject: "alice".into(),
            permission: "documents:view".into(),
        };
        let r = request(&item, 7, EnvoyHeaders::Mapped);
        let http = r.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.headers.len(), 3);
    }
}
