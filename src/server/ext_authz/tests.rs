//! The mapping from Envoy's attributes, in process (the gRPC wire, auth and
//! the answer shapes are `tests/ext_authz.rs`'s).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request as AttrRequest;

use super::*;
use crate::server::DataPlaneConfig;

fn service(mapping: &str) -> ExtAuthzService {
    let state = crate::model::policy_file::load_str(crate::model::QUICKSTART_POLICY).unwrap();
    let engine = Arc::new(crate::engine::Engine::new(state));
    let checks = AuthorizationService::new(engine, DataPlaneConfig::default());
    let config: ExtAuthzConfig = toml::from_str(mapping).unwrap();
    ExtAuthzService::new(checks, Some(Arc::new(Mapping::build(&config).unwrap())))
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<HashMap<_, _>>(),
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    }
}

async fn answer(s: &ExtAuthzService, r: &CheckRequest) -> Answer {
    s.answer(&MetadataMap::new(), Extensions::new(), r).await
}

const DOCS: &str = r#"
tenant = "acme"
subject = "{header.x-user}"
[[routes]]
method = "GET"
path = "/documents"
permission = "documents:view"
[[routes]]
method = "PUT"
path = "/documents/{doc}"
permission = "documents:edit:{path.doc}"
"#;

#[tokio::test]
async fn raw_headers_are_read_when_envoy_sends_them_so() {
    let s = service(DOCS);
    let mut r = request("PUT", "/documents/roadmap", &[]);
    let http = r
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "X-User".into(),
            value: String::new(),
            raw_value: b"alice".to_vec(),
        }],
    });
    assert_eq!(answer(&s, &r).await.reason, "GRANTED");
    // Two values of one header are joined by `,`, as Envoy joins them.
    let http = r
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    http.header_map.as_mut().unwrap().headers.push(HeaderValue {
        key: "x-user".into(),
        value: "bob".into(),
        raw_value: Vec::new(),
    });
    // `alice,bob` is a well-formed identity (an alias could be it) of no
    // member: denied as an unknown subject, not as alice.
    let a = answer(&s, &r).await;
    assert_eq!((a.allow, a.reason), (false, "UNKNOWN_SUBJECT"), "{a:?}");
}

#[tokio::test]
async fn an_empty_header_is_no_subject() {
    let s = service(DOCS);
    let a = answer(&s, &request("GET", "/documents", &[("x-user", "")])).await;
    assert_eq!((a.reason, a.unauthenticated), ("NO_SUBJECT", true));
    assert_eq!(
        a.message.as_deref(),
        Some("subject: the request has no `header.x-user`")
    );
}

#[tokio::test]
async fn spiffe_ids_lose_their_scheme_and_other_principals_do_not() {
    let s = service(
        r#"
        tenant = "acme"
        subject = "{source.spiffe}"
        [[routes]]
        path = "/documents"
        permission = "documents:view"
        [[routes]]
        path = "/p"
        subject = "{destination.principal}"
        permission = "documents:view"
        "#,
    );
    let peer = |principal: &str| Peer {
        principal: principal.into(),
        ..Peer::default()
    };
    let mut r = request("GET", "/documents", &[]);
    let attrs = r.attributes.as_mut().unwrap();
    attrs.source = Some(peer("spiffe://acme.test/ns/web/sa/frontend"));
    let a = answer(&s, &r).await;
    // `acme.test/ns/web/sa/frontend` is a valid user id, not a member.
    assert_eq!(a.reason, "UNKNOWN_SUBJECT", "{a:?}");
    r.attributes.as_mut().unwrap().source = Some(peer("alice"));
    let a = answer(&s, &r).await;
    assert_eq!(a.reason, "NO_SUBJECT", "not a SPIFFE ID: {a:?}");
    let mut r = request("GET", "/p", &[]);
    r.attributes.as_mut().unwrap().destination = Some(peer("bob"));
    assert_eq!(answer(&s, &r).await.reason, "GRANTED");
}

#[tokio::test]
async fn a_check_request_without_http_is_denied_not_http() {
    let s = service(DOCS);
    let a = answer(&s, &CheckRequest { attributes: None }).await;
    assert_eq!(a.reason, "NOT_HTTP");
    let a = answer(
        &s,
        &CheckRequest {
            attributes: Some(AttributeContext::default()),
        },
    )
    .await;
    assert_eq!(a.reason, "NOT_HTTP");
}

#[tokio::test]
async fn without_a_mapping_everything_is_denied_not_configured() {
    let state = crate::model::policy_file::load_str(crate::model::QUICKSTART_POLICY).unwrap();
    let engine = Arc::new(crate::engine::Engine::new(state));
    let s = ExtAuthzService::new(
        AuthorizationService::new(engine, DataPlaneConfig::default()),
        None,
    );
    let a = answer(&s, &request("GET", "/documents", &[("x-user", "alice")])).await;
    assert_eq!((a.allow, a.reason), (false, "NOT_CONFIGURED"));
}
