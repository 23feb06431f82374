//! `--mode ext-authz`: each check request as the CheckRequest Envoy's HTTP
//! ext_authz filter would send for it, so one server can be driven through
//! its native Check and through Envoy's with the same decisions.
//!
//! The permission becomes the path (`documents:edit:roadmap` is
//! `GET /documents/edit/roadmap`), the tenant and subject two headers
//! (`x-tenant`, `x-user`), beside the headers and peer addresses a real
//! request carries. The server needs a mapping that turns those back into
//! the same check: `benches/ext_authz.toml` is one, for any permission of
//! up to six segments.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};

use super::Item;

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

/// The CheckRequest Envoy would send for `item`; `n` makes its request id.
pub fn request(item: &Item, n: usize) -> CheckRequest {
    let path = format!("/{}", item.permission.replace(':', "/"));
    let headers: HashMap<String, String> = [
        (":authority", "app.example.test"),
        (":method", "GET"),
        (":path", path.as_str()),
        (":scheme", "http"),
        ("accept", "application/json"),
        ("user-agent", "rampart-bench"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", &format!("00000000-0000-4000-8000-{n:012}")),
        ("x-tenant", &item.tenant),
        ("x-user", &item.subject),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
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
        );
        let http = r.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.path, "/documents/edit/roadmap");
        assert_eq!(http.headers["x-tenant"], "acme");
        assert_eq!(http.headers["x-user"], "alice");
        assert_eq!(http.headers[":path"], "/documents/edit/roadmap");
    }
}
