//! Envoy external authorization over real gRPC, with a client built from
//! Envoy's own messages (`envoy-types`): every mapping source, first-match
//! routing, the method filter, `{name*}`, each answer's shape (the 403 and
//! 401 bodies parsed), the headers an allow sets and removes, the scope a
//! bearer token needs, a confined credential, metrics, the mapping's
//! start-up errors through the real binary, and the example in
//! `deploy/envoy/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use rampart::cli::serve::security::Security;
use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::client::hash_hex;
use rampart::engine::Engine;
use rampart::server::auth::Credentials;
use rampart::server::ext_authz::{ExtAuthzConfig, Mapping};
use rampart::telemetry::TelemetryConfig;
use rampart::telemetry::decision_log::{DecisionLogConfig, Target};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;
use tonic::transport::Channel;

/// Every source of a value, and the routing rules, over the quickstart
/// policy (alice edits documents but not `locked`; bob views documents and
/// reports; dave is an Administrator; globex's alice views reports only).
const MAPPING: &str = r#"
tenant = "{header.x-tenant}"
subject = "{header.x-user}"

# A fixed tenant.
[[routes]]
method = "GET"
path = "/acme/documents"
tenant = "acme"
permission = "documents:view"

# The tenant from a path segment, by number; a named segment in the permission.
[[routes]]
method = "PUT"
path = "/t/{tenant}/documents/{doc}"
tenant = "{segment.2}"
permission = "documents:edit:{path.doc}"

# The subject from the calling workload's mTLS identity.
[[routes]]
method = "GET"
path = "/mesh/reports"
tenant = "acme"
subject = "{source.principal}"
permission = "reports:view"

# Tenant and action from the route's context_extensions in Envoy.
[[routes]]
path = "/ctx/{doc}"
tenant = "{context.tenant}"
permission = "documents:{context.action}:{path.doc}"

# First match wins: this one hides the next for /first/special.
[[routes]]
method = "GET"
path = "/first/{x}"
permission = "reports:view"
[[routes]]
method = "GET"
path = "/first/special"
permission = "documents:view"

# The same path, another permission by method.
[[routes]]
method = ["GET", "HEAD"]
path = "/documents/{doc}"
permission = "documents:view"
[[routes]]
method = "PUT"
path = "/documents/{doc}"
permission = "documents:edit:{path.doc}"

# The rest of the path, joined by `/`.
[[routes]]
method = "DELETE"
path = "/files/{rest*}"
permission = "documents:delete:{path.rest}"

[[routes]]
path = "/health"
allow = true
"#;

async fn serve(mapping: Option<&str>, credentials: Option<Credentials>) -> ServerHandle {
    serve_config(mapping.map(|m| toml::from_str(m).unwrap()), credentials).await
}

async fn serve_config(
    config: Option<ExtAuthzConfig>,
    credentials: Option<Credentials>,
) -> ServerHandle {
    serve_with(config, credentials, None).await
}

async fn serve_with(
    config: Option<ExtAuthzConfig>,
    credentials: Option<Credentials>,
    decision_log: Option<DecisionLogConfig>,
) -> ServerHandle {
    let state = rampart::cli::serve::load_bootstrap(None).unwrap();
    let engine = Arc::new(Engine::new(state));
    let ext_authz = config.map(|c| Arc::new(Mapping::build(&c).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(
        listener,
        engine,
        ServerOptions {
            security: Security {
                credentials: credentials.map(Arc::new),
                ..Security::default()
            },
            telemetry: TelemetryConfig {
                metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
                decision_log,
            },
            ext_authz,
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap()
}

async fn client(h: &ServerHandle) -> AuthorizationClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthorizationClient::new(channel)
}

/// A CheckRequest as Envoy's HTTP filter sends it.
#[derive(Clone, Default)]
struct Http {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    source: &'static str,
    context: Vec<(&'static str, &'static str)>,
}

impl Http {
    fn new(method: &'static str, path: &'static str) -> Self {
        Self {
            method,
            path,
            ..Self::default()
        }
    }

    fn header(mut self, k: &'static str, v: &'static str) -> Self {
        self.headers.push((k, v));
        self
    }

    fn user(self, user: &'static str) -> Self {
        self.header("x-user", user)
    }

    fn acme(self, user: &'static str) -> Self {
        self.header("x-tenant", "acme").user(user)
    }

    fn request(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> = self
            .headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        headers.insert(":method".into(), self.method.into());
        headers.insert(":path".into(), self.path.into());
        headers.insert(":authority".into(), "app.test".into());
        CheckRequest {
            attributes: Some(AttributeContext {
                source: (!self.source.is_empty()).then(|| Peer {
                    principal: self.source.into(),
                    ..Peer::default()
                }),
                request: Some(AttrRequest {
                    time: None,
                    http: Some(HttpRequest {
                        id: "req-1".into(),
                        method: self.method.into(),
                        path: self.path.into(),
                        host: "app.test".into(),
                        headers,
                        ..HttpRequest::default()
                    }),
                }),
                context_extensions: self
                    .context
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..AttributeContext::default()
            }),
        }
    }
}

async fn check(c: &mut AuthorizationClient<Channel>, http: &Http) -> CheckResponse {
    c.check(http.request()).await.unwrap().into_inner()
}

fn headers(list: &[HeaderValueOption]) -> HashMap<String, String> {
    list.iter()
        .map(|h| {
            let h = h.header.as_ref().unwrap();
            (h.key.clone(), h.value.clone())
        })
        .collect()
}

fn ok(r: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(r.status.as_ref().unwrap().code, Code::Ok as i32, "{r:?}");
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an OK response: {other:?}"),
    }
}

/// The deny's gRPC code, HTTP status, headers and parsed JSON body.
fn denied(r: &CheckResponse) -> (Code, i32, HashMap<String, String>, serde_json::Value) {
    let code = Code::from_i32(r.status.as_ref().unwrap().code);
    let Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
        status,
        headers: h,
        body,
    })) = &r.http_response
    else {
        panic!("not a denied response: {r:?}");
    };
    let h = headers(h);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-rampart-decision"], "DENY");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["decision"], "DENY");
    assert_eq!(
        body["reason"].as_str(),
        Some(h["x-rampart-reason"].as_str())
    );
    (code, status.unwrap().code, h, body)
}

/// The reason of an allow, or of a deny.
fn reason(r: &CheckResponse) -> String {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => headers(&ok.headers)["x-rampart-reason"].clone(),
        Some(HttpResponse::DeniedResponse(_)) => denied(r).3["reason"].as_str().unwrap().to_owned(),
        other => panic!("no answer: {other:?}"),
    }
}

#[tokio::test]
async fn an_allow_carries_the_decision_and_strips_forged_headers() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    let r = check(
        &mut c,
        &Http::new("GET", "/acme/documents?page=2")
            .user("alice")
            .header("x-rampart-decision", "ALLOW")
            .header("x-rampart-admin", "yes"),
    )
    .await;
    let ok = ok(&r);
    let set = headers(&ok.headers);
    assert_eq!(set["x-rampart-decision"], "ALLOW");
    assert_eq!(set["x-rampart-reason"], "GRANTED");
    assert!(set["x-rampart-revision"].parse::<u64>().unwrap() > 0);
    // Set headers replace what the client sent; the others are removed.
    assert!(ok.headers.iter().all(|h| h.append_action == 2));
    assert_eq!(ok.headers_to_remove, ["x-rampart-admin"]);
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn every_source_of_a_value_maps() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    // Fixed tenant, header subject.
    assert_eq!(
        reason(&check(&mut c, &Http::new("GET", "/acme/documents").user("bob")).await),
        "GRANTED"
    );
    // Header tenant: globex's alice views reports, not documents.
    let r = check(
        &mut c,
        &Http::new("GET", "/documents/x")
            .header("x-tenant", "globex")
            .user("alice"),
    )
    .await;
    assert_eq!(reason(&r), "NO_MATCHING_GRANT");
    // The tenant from segment 2, the document from a named segment.
    let put = |p| Http::new("PUT", p).user("alice");
    assert_eq!(
        reason(&check(&mut c, &put("/t/acme/documents/roadmap")).await),
        "GRANTED"
    );
    assert_eq!(
        reason(&check(&mut c, &put("/t/acme/documents/locked")).await),
        "DENIED_BY_GRANT"
    );
    assert_eq!(
        reason(&check(&mut c, &put("/t/globex/documents/roadmap")).await),
        "NO_MATCHING_GRANT"
    );
    // The source principal: bob views reports, alice does not.
    let mesh = |source| Http {
        source,
        ..Http::new("GET", "/mesh/reports")
    };
    assert_eq!(reason(&check(&mut c, &mesh("bob")).await), "GRANTED");
    assert_eq!(
        reason(&check(&mut c, &mesh("alice")).await),
        "NO_MATCHING_GRANT"
    );
    // Context extensions.
    let ctx = |action| Http {
        context: vec![("tenant", "acme"), ("action", action)],
        ..Http::new("POST", "/ctx/roadmap").user("alice")
    };
    assert_eq!(reason(&check(&mut c, &ctx("edit")).await), "GRANTED");
    assert_eq!(
        reason(&check(&mut c, &ctx("delete")).await),
        "NO_MATCHING_GRANT"
    );
    // A missing context key is a permission that does not render.
    let r = check(&mut c, &Http::new("POST", "/ctx/roadmap").user("alice")).await;
    assert_eq!(reason(&r), "NO_TENANT");
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_first_matching_route_decides_and_methods_filter() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    // /first/special meets `/first/{x}` (reports:view) first.
    let first = Http::new("GET", "/first/special").acme("alice");
    assert_eq!(reason(&check(&mut c, &first).await), "NO_MATCHING_GRANT");
    assert_eq!(
        reason(&check(&mut c, &Http::new("GET", "/first/special").acme("bob")).await),
        "GRANTED"
    );
    // GET and HEAD view; PUT edits; POST has no route.
    for m in ["GET", "HEAD"] {
        let r = check(&mut c, &Http::new(m, "/documents/locked").acme("alice")).await;
        assert_eq!(reason(&r), "GRANTED", "{m}");
    }
    let r = check(&mut c, &Http::new("PUT", "/documents/locked").acme("alice")).await;
    assert_eq!(reason(&r), "DENIED_BY_GRANT");
    let r = check(
        &mut c,
        &Http::new("POST", "/documents/locked").acme("alice"),
    )
    .await;
    let (code, status, _, body) = denied(&r);
    assert_eq!((code, status), (Code::PermissionDenied, 403));
    assert_eq!(body["reason"], "NO_ROUTE");
    assert_eq!(body["message"], "no route takes `POST /documents/locked`");
    assert!(body.get("revision").is_none());
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_rest_segment_takes_the_rest_of_the_path() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    let r = check(
        &mut c,
        &Http::new("DELETE", "/files/2026/q3%2Dplan").acme("dave"),
    )
    .await;
    assert_eq!(reason(&r), "GRANTED");
    // alice may edit, not delete.
    let r = check(
        &mut c,
        &Http::new("DELETE", "/files/2026/plan").acme("alice"),
    )
    .await;
    assert_eq!(reason(&r), "NO_MATCHING_GRANT");
    let r = check(&mut c, &Http::new("DELETE", "/files").acme("dave")).await;
    assert_eq!(reason(&r), "NO_ROUTE");
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_policy_deny_is_403_with_a_json_body_and_its_revision() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    let r = check(
        &mut c,
        &Http::new("GET", "/mesh/reports").header("x-user", "x"),
    )
    .await;
    // No source principal here: the route's subject is the peer's.
    let (code, status, hdrs, body) = denied(&r);
    assert_eq!((code, status), (Code::Unauthenticated, 401));
    assert_eq!(body["reason"], "NO_SUBJECT");
    assert_eq!(
        body["message"],
        "subject: the request has no `source.principal`"
    );
    assert!(!hdrs.contains_key("x-rampart-revision"));

    let r = check(&mut c, &Http::new("PUT", "/documents/locked").acme("alice")).await;
    let (code, status, hdrs, body) = denied(&r);
    assert_eq!((code, status), (Code::PermissionDenied, 403));
    let revision = body["revision"].as_u64().unwrap();
    assert!(revision > 0);
    assert_eq!(hdrs["x-rampart-revision"], revision.to_string());
    assert_eq!(
        body,
        serde_json::json!({"decision": "DENY", "reason": "DENIED_BY_GRANT", "revision": revision})
    );
    for (user, why) in [("carol", "SUBJECT_INACTIVE"), ("zed", "UNKNOWN_SUBJECT")] {
        let r = check(&mut c, &Http::new("GET", "/documents/d").acme(user)).await;
        assert_eq!(denied(&r).3["reason"], why);
    }
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn unmapped_and_malformed_requests_are_denied_with_a_reason() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    let cases: Vec<(Http, &str, &str)> = vec![
        (
            Http::new("GET", "/documents/d").header("x-tenant", "acme"),
            "NO_SUBJECT",
            "subject: the request has no `header.x-user`",
        ),
        (
            Http::new("GET", "/documents/d").user("alice"),
            "NO_TENANT",
            "tenant: the request has no `header.x-tenant`",
        ),
        (
            Http::new("GET", "/documents/d")
                .header("x-tenant", "nope")
                .user("alice"),
            "UNKNOWN_TENANT",
            "nope",
        ),
        (
            Http::new("GET", "/documents/d").acme("alice:admin"),
            "BAD_VALUE",
            "`header.x-user` is `alice:admin`, which has a `:`",
        ),
        (
            Http::new("PUT", "/documents/a%3A*").acme("alice"),
            "BAD_VALUE",
            "`path.doc` is `a:*`, which has a `:`",
        ),
        (
            Http::new("GET", "/documents/%zz").acme("alice"),
            "BAD_PATH",
            "`/documents/%zz`: segment 2 has a `%` not followed by two hex digits",
        ),
        (
            Http::new("GET", "/documents/a%2Fb").acme("alice"),
            "BAD_PATH",
            "encoded `/`",
        ),
        (
            Http::new("GET", "/documents/..").acme("alice"),
            "BAD_PATH",
            "`.` or `..`",
        ),
        (
            Http::new("PUT", "/documents/bad%20doc").acme("alice"),
            "INVALID_REQUEST",
            "permission",
        ),
        (
            Http::new("GET", "/documents/d").acme("al ice"),
            "INVALID_REQUEST",
            "subject",
        ),
        (
            Http::new("GET", "/nowhere").acme("alice"),
            "NO_ROUTE",
            "no route takes `GET /nowhere`",
        ),
    ];
    for (http, want, part) in cases {
        let r = check(&mut c, &http).await;
        let (code, status, _, body) = denied(&r);
        let expected = if want == "NO_SUBJECT" {
            (Code::Unauthenticated, 401)
        } else {
            (Code::PermissionDenied, 403)
        };
        assert_eq!((code, status), expected, "{}", http.path);
        assert_eq!(body["reason"], want, "{} {body}", http.path);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(part), "{}: {message}", http.path);
        // The gRPC status message says the same, for Envoy's logs.
        assert_eq!(
            r.status.as_ref().unwrap().message,
            format!("{want}: {message}")
        );
    }
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_public_route_allows_without_a_check() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    let r = check(
        &mut c,
        &Http::new("GET", "/health").header("x-rampart-revision", "999"),
    )
    .await;
    let ok = ok(&r);
    let set = headers(&ok.headers);
    assert_eq!(set["x-rampart-reason"], "PUBLIC_ROUTE");
    assert!(!set.contains_key("x-rampart-revision"));
    assert_eq!(ok.headers_to_remove, ["x-rampart-revision"]);
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn without_a_mapping_every_request_is_denied_not_configured() {
    let h = serve(None, None).await;
    let mut c = client(&h).await;
    let r = check(&mut c, &Http::new("GET", "/acme/documents").user("alice")).await;
    let (code, status, _, body) = denied(&r);
    assert_eq!((code, status), (Code::PermissionDenied, 403));
    assert_eq!(body["reason"], "NOT_CONFIGURED");
    h.shutdown(Duration::from_secs(1)).await;
}

fn tokens() -> Credentials {
    let text = format!(
        r#"
[[token]]
name = "envoy"
sha256 = "{}"
scopes = ["check"]

[[token]]
name = "admin-only"
sha256 = "{}"
scopes = ["admin"]

[[token]]
name = "globex-envoy"
sha256 = "{}"
scopes = ["check"]
tenants = ["globex"]
"#,
        hash_hex("tok-envoy"),
        hash_hex("tok-admin"),
        hash_hex("tok-globex"),
    );
    Credentials::parse(&text, "test").unwrap()
}

fn with_token(http: &Http, token: Option<&str>) -> tonic::Request<CheckRequest> {
    let mut r = tonic::Request::new(http.request());
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

#[tokio::test]
async fn envoys_token_needs_the_check_scope_and_stays_confined() {
    let h = serve(Some(MAPPING), Some(tokens())).await;
    let mut c = client(&h).await;
    let http = Http::new("GET", "/acme/documents").user("alice");
    let r = c
        .check(with_token(&http, Some("tok-envoy")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason(&r), "GRANTED");
    let e = c
        .check(with_token(&http, Some("tok-admin")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("check"), "{}", e.message());
    let e = c.check(with_token(&http, None)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A credential confined to globex reaches no acme decision.
    let r = c
        .check(with_token(&http, Some("tok-globex")))
        .await
        .unwrap()
        .into_inner();
    let (_, status, _, body) = denied(&r);
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("TENANT_NOT_ALLOWED"))
    );
    // The client is not told the credential's name or tenants.
    assert_eq!(
        body["message"],
        "the credential Envoy calls rampart with may not check tenant `acme`"
    );
    let globex = Http::new("GET", "/documents/x")
        .header("x-tenant", "globex")
        .user("alice");
    let r = c
        .check(with_token(&globex, Some("tok-globex")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason(&r), "NO_MATCHING_GRANT");
    h.shutdown(Duration::from_secs(1)).await;
}

/// `GET /metrics` of `h`, as text.
async fn scrape(h: &ServerHandle) -> String {
    let addr = h.metrics_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn decisions_are_counted_as_checks_and_the_rpc_is_timed() {
    let h = serve(Some(MAPPING), None).await;
    let mut c = client(&h).await;
    check(&mut c, &Http::new("GET", "/acme/documents").user("alice")).await;
    check(&mut c, &Http::new("GET", "/acme/documents").user("zed")).await;
    // A request that never reaches a decision is not counted as one.
    check(&mut c, &Http::new("GET", "/nowhere").user("alice")).await;
    let page = scrape(&h).await;
    let line = |needle: &str| {
        page.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{page}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        line(r#"rampart_checks_total{decision="ALLOW",reason="GRANTED"}"#),
        "1"
    );
    assert_eq!(
        line(r#"rampart_checks_total{decision="DENY",reason="UNKNOWN_SUBJECT"}"#),
        "1"
    );
    assert_eq!(
        line(
            r#"rampart_rpc_duration_seconds_count{service="envoy.service.auth.v3.Authorization",method="Check",code="OK"}"#
        ),
        "3"
    );
    h.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_decision_log_records_the_http_requests_id_and_health_reports_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let h = serve_with(
        Some(toml::from_str(MAPPING).unwrap()),
        None,
        Some(DecisionLogConfig {
            target: Target::File(path.clone()),
            sample: 1.0,
            denies: false,
        }),
    )
    .await;
    let mut c = client(&h).await;
    let http = Http::new("GET", "/acme/documents")
        .user("alice")
        .header("x-request-id", "envoy-req-42");
    assert_eq!(reason(&check(&mut c, &http).await), "GRANTED");
    let mut record = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            record = Some(serde_json::from_str::<serde_json::Value>(line).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = record.expect("no decision logged");
    assert_eq!(record["request_id"], "envoy-req-42", "{record}");
    assert_eq!(record["permission"], "documents:view", "{record}");
    assert_eq!(record["decision"], "ALLOW", "{record}");

    let channel = Channel::from_shared(format!("http://{}", h.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    h.shutdown(Duration::from_secs(1)).await;
}

/// Runs `rampart serve --config` with `toml` and returns its exit code and
/// stderr: a bad mapping stops it before anything is opened.
fn serve_with_config(toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rampart.toml");
    std::fs::write(&config, toml).unwrap();
    let out = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_mapping_stops_the_start_naming_the_key() {
    let (code, err) = serve_with_config(
        r#"
[ext_authz]
tenant = "acme"
subject = "{header.x-usr}"
[[ext_authz.routes]]
path = "/documents/{doc}"
permission = "documents:view:{path.document}"
"#,
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("key `permission`"), "{err}");
    assert!(err.contains("names `{path.document}`"), "{err}");
    assert!(err.contains("NAME one of: doc"), "{err}");
    let (code, err) = serve_with_config("[ext_authz]\ntenant = \"acme\"\nsubjet = \"x\"\n");
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("subjet"), "{err}");
    let (code, err) = serve_with_config(
        "[ext_authz]\ntenant = \"acme\"\nsubject = \"{Header.x}\"\n[[ext_authz.routes]]\npath = \"/a\"\npermission = \"p\"\n",
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("key `subject`") && err.contains("`{Header.x}`"),
        "{err}"
    );
}

/// The example beside the Envoy bootstrap: its flags are `serve`'s, its
/// mapping builds, and it answers the app's requests as its comments say.
#[tokio::test]
async fn the_deploy_example_mapping_loads_and_answers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/envoy/rampart.toml");
    let out = Command::new(common::BIN)
        .args(["serve", "--print-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let config: ExtAuthzConfig = table["ext_authz"].clone().try_into().unwrap();
    let mapping = Mapping::build(&config).unwrap();
    assert!(mapping.routes().len() >= 3);
    let h = serve_config(Some(config), None).await;
    let mut c = client(&h).await;
    let r = check(
        &mut c,
        &Http::new("GET", "/documents")
            .header("x-jwt-tenant", "acme")
            .header("x-jwt-sub", "bob"),
    )
    .await;
    assert_eq!(reason(&r), "GRANTED");
    let r = check(
        &mut c,
        &Http::new("PUT", "/documents/locked")
            .header("x-jwt-tenant", "acme")
            .header("x-jwt-sub", "alice"),
    )
    .await;
    assert_eq!(reason(&r), "DENIED_BY_GRANT");
    let r = check(&mut c, &Http::new("GET", "/healthz")).await;
    assert_eq!(reason(&r), "PUBLIC_ROUTE");
    h.shutdown(Duration::from_secs(1)).await;
}
