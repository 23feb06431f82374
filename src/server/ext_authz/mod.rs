//! Envoy external authorization: `envoy.service.auth.v3.Authorization/Check`
//! on the gRPC port, with Envoy's own messages (the `envoy-types` crate).
//!
//! Each CheckRequest is mapped, by the `[ext_authz]` table of `rampart.toml`
//! ([`Mapping`]), to the (tenant, subject, permission) of a rampart Check:
//! the path is cut into decoded segments (`route.rs`), the first route whose
//! method and pattern take it is chosen, and its templates are rendered from
//! the request's headers, path, method, peers and context extensions. The
//! decision itself is asked of the `rampart.v1.Authorization` service in
//! process, with the caller's extensions (its `Principal`: a confined
//! credential stays confined) and request id, so metrics, the decision log
//! and `--strict-catalog` apply as to any Check. The answer and its wire
//! shape are `answer.rs`'s.
//!
//! A request rampart cannot map is denied with a reason and a message, never
//! answered with an error: Envoy's `failure_mode_allow` turns an error into
//! an allow, and a misconfigured mapping must not. For the same reason the
//! service is registered even without an `[ext_authz]` table, and then
//! denies everything (`NOT_CONFIGURED`).
//!
//! It owns no decision logic and touches no engine: it reaches the policy
//! only through [`AuthorizationService`].

pub mod answer;
pub mod mapping;
pub mod route;

pub use answer::{Answer, Reason};
pub use mapping::{ExtAuthzConfig, Mapping, MappingError, Methods, RouteConfig};

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Extensions, Request, Response, Status};
use tracing::{Instrument as _, Span};

pub use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    AuthorizationServer as ExtAuthzServer, SERVICE_NAME,
};

use super::authorization::AuthorizationService;
use crate::model::quote;
use crate::model::template::{RenderError, Template};
use crate::proto;
use mapping::{Action, Route};
use route::Captures;

/// The Envoy Authorization service.
#[derive(Debug, Clone)]
pub struct ExtAuthzService {
    checks: AuthorizationService,
    mapping: Option<Arc<Mapping>>,
}

impl ExtAuthzService {
    /// Asks `checks` for every decision; `mapping` `None`: every request
    /// is denied `NOT_CONFIGURED`.
    pub fn new(checks: AuthorizationService, mapping: Option<Arc<Mapping>>) -> Self {
        Self { checks, mapping }
    }

    /// The answer to one CheckRequest; `metadata` and `extensions` are the
    /// gRPC call's.
    pub async fn answer(
        &self,
        metadata: &MetadataMap,
        extensions: Extensions,
        request: &CheckRequest,
    ) -> Answer {
        match self.prepare(metadata, extensions, request) {
            Step::Answered(answer) => answer,
            Step::Ask { check, tenant } => self.ask(check, &tenant).await,
        }
    }

    /// Everything before the decision: the route, the rendered fields, the
    /// Check request to ask (with the call's extensions), or the answer
    /// when the request cannot be mapped.
    fn prepare(
        &self,
        metadata: &MetadataMap,
        extensions: Extensions,
        request: &CheckRequest,
    ) -> Step {
        let Some(mapping) = &self.mapping else {
            return Step::Answered(Answer::deny(
                Reason::NotConfigured,
                "this rampart has no `[ext_authz]` table in its --config",
            ));
        };
        let attributes = request.attributes.as_ref();
        let Some((attributes, http)) = attributes.and_then(|a| {
            a.request
                .as_ref()
                .and_then(|r| r.http.as_ref())
                .map(|h| (a, h))
        }) else {
            return Step::Answered(Answer::deny(
                Reason::NotHttp,
                "the CheckRequest carries no HTTP request (only Envoy's HTTP ext_authz filter is served)",
            ));
        };
        let path = http.path.split(['?', '#']).next().unwrap_or_default();
        let segments = match route::segments(&http.path) {
            Ok(s) => s,
            Err(e) => {
                return Step::Answered(Answer::deny(
                    Reason::BadPath,
                    format!("`{}`: {e}", quote(path)),
                ));
            }
        };
        let Some((route, captures)) = find(mapping, &http.method, &segments) else {
            return Step::Answered(Answer::deny(
                Reason::NoRoute,
                format!("no route takes `{} {}`", quote(&http.method), quote(path)),
            ));
        };
        let Action::Check {
            tenant,
            subject,
            permission,
        } = &route.action
        else {
            return Step::Answered(Answer::public());
        };
        let view = View {
            attributes,
            http,
            segments: &segments,
            captures: &captures,
        };
        // The subject first: a request with none is unauthenticated (401),
        // whatever else it lacks.
        let rendered = view.render("subject", subject).and_then(|subject| {
            Ok(proto::CheckRequest {
                tenant: view.render("tenant", tenant)?,
                subject,
                permission: view.render("permission", permission)?,
                consistency: None,
                explain: false,
            })
        });
        let message = match rendered {
            Ok(m) => m,
            Err(deny) => return Step::Answered(deny),
        };
        let tenant = quote(&message.tenant);
        let mut check = Request::from_parts(MetadataMap::new(), extensions, message);
        // Only the decision log reads it: no header map built otherwise.
        if self.checks.logs_decisions()
            && let Some(id) = request_id(metadata, http)
        {
            check.metadata_mut().insert("x-request-id", id);
        }
        Step::Ask { check, tenant }
    }

    /// Asks the Authorization service; its answer, or its error as a deny.
    /// `tenant` is the request's, quoted, for a message.
    async fn ask(&self, check: Request<proto::CheckRequest>, tenant: &str) -> Answer {
        match proto::authorization_server::Authorization::check(&self.checks, check).await {
            Ok(r) => {
                let r = r.into_inner();
                Answer::decided(
                    r.decision == proto::Decision::Allow as i32,
                    super::convert::reason_name(r.reason),
                    r.revision,
                )
            }
            // The client reads the message: the confinement's own names
            // the credential and its tenants, which are Envoy's business.
            Err(status) if status.code() == Code::PermissionDenied => Answer::deny(
                Reason::TenantNotAllowed,
                format!("the credential Envoy calls rampart with may not check tenant `{tenant}`"),
            ),
            Err(status) => Answer::deny(
                match status.code() {
                    Code::NotFound => Reason::UnknownTenant,
                    Code::InvalidArgument => Reason::InvalidRequest,
                    _ => Reason::Error,
                },
                status.message(),
            ),
        }
    }
}

/// Where [`ExtAuthzService::prepare`] got to.
enum Step {
    /// The request cannot be mapped (or needs no check): the answer.
    Answered(Answer),
    /// Ask this Check; `tenant` quoted, for a message.
    Ask {
        check: Request<proto::CheckRequest>,
        tenant: String,
    },
}

/// The first route that takes `method` and `segments`, and its captures.
fn find<'p>(
    mapping: &'p Mapping,
    method: &str,
    segments: &'p [Cow<'p, str>],
) -> Option<(&'p Route, Captures<'p>)> {
    mapping
        .routes()
        .iter()
        .filter(|r| r.takes(method))
        .find_map(|r| r.pattern.matches(segments).map(|c| (r, c)))
}

/// The request id the decision log records: the HTTP request's
/// `x-request-id` (Envoy sets one on every request, and its access log
/// shows it), else the gRPC call's. (`HttpRequest.id` is Envoy's stream
/// number, which nothing outside Envoy knows.)
fn request_id(
    metadata: &MetadataMap,
    http: &HttpRequest,
) -> Option<MetadataValue<tonic::metadata::Ascii>> {
    header(http, "x-request-id")
        .and_then(|v| MetadataValue::try_from(v.as_ref()).ok())
        .or_else(|| metadata.get("x-request-id").cloned())
}

/// What the templates of one request read.
struct View<'a> {
    attributes: &'a AttributeContext,
    http: &'a HttpRequest,
    segments: &'a [Cow<'a, str>],
    captures: &'a Captures<'a>,
}

impl<'a> View<'a> {
    /// `template` rendered, or the deny that names what was missing.
    fn render(&self, field: &str, template: &Template) -> Result<String, Answer> {
        template.render(|name| self.get(name)).map_err(|e| {
            let reason = match (&e, field) {
                (RenderError::Colon { .. }, _) => Reason::BadValue,
                (_, "subject") => Reason::NoSubject,
                (_, "tenant") => Reason::NoTenant,
                _ => Reason::NoPermission,
            };
            Answer::deny(reason, format!("{field}: {e}"))
        })
    }

    /// The value of placeholder `name`; `None` when the request has none
    /// (or an empty one).
    fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        let value: Option<Cow<'a, str>> = if let Some(h) = name.strip_prefix("header.") {
            header(self.http, h)
        } else if let Some(p) = name.strip_prefix("path.") {
            self.captures
                .iter()
                .find(|(n, _)| *n == p)
                .map(|(_, v)| v.clone())
        } else if let Some(n) = name.strip_prefix("segment.") {
            n.parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| self.segments.get(i))
                .map(|s| Cow::Borrowed(s.as_ref()))
        } else if let Some(k) = name.strip_prefix("context.") {
            self.attributes
                .context_extensions
                .get(k)
                .map(|v| Cow::Borrowed(v.as_str()))
        } else {
            let peer = |p: Option<&'a Peer>| p.map(|p| p.principal.as_str());
            let spiffe = |p: Option<&'a str>| p.and_then(|p| p.strip_prefix("spiffe://"));
            match name {
                "method" => Some(self.http.method.as_str()),
                "source.principal" => peer(self.attributes.source.as_ref()),
                "destination.principal" => peer(self.attributes.destination.as_ref()),
                "source.spiffe" => spiffe(peer(self.attributes.source.as_ref())),
                "destination.spiffe" => spiffe(peer(self.attributes.destination.as_ref())),
                _ => None,
            }
            .map(Cow::Borrowed)
        };
        value.filter(|v| !v.is_empty())
    }
}

/// Header `name` (lower case) of the request: from `headers`, or from
/// `header_map` when Envoy sends raw headers (`encode_raw_headers`).
fn header<'a>(http: &'a HttpRequest, name: &str) -> Option<Cow<'a, str>> {
    if let Some(v) = http.headers.get(name) {
        return Some(Cow::Borrowed(v.as_str()));
    }
    let map = http.header_map.as_ref()?;
    let mut values = map
        .headers
        .iter()
        .filter(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| {
            if h.raw_value.is_empty() {
                Some(h.value.as_str())
            } else {
                std::str::from_utf8(&h.raw_value).ok()
            }
        });
    let first = values.next()??;
    // Several: joined by `,`, as Envoy joins them in `headers`.
    let mut joined: Option<String> = None;
    for v in values {
        let all = joined.get_or_insert_with(|| first.to_owned());
        all.push(',');
        all.push_str(v?);
    }
    Some(joined.map_or(Cow::Borrowed(first), Cow::Owned))
}

/// The names of the `x-rampart-*` headers the client sent (usually none:
/// no allocation).
fn forged(request: &CheckRequest) -> Vec<String> {
    let http = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let plain = http
        .into_iter()
        .flat_map(|h| h.headers.keys().map(String::as_str));
    let raw = http
        .and_then(|h| h.header_map.as_ref())
        .into_iter()
        .flat_map(|m| m.headers.iter().map(|h| h.key.as_str()));
    plain
        .chain(raw)
        .filter(|name| answer::is_ours(name))
        .map(str::to_owned)
        .collect()
}

/// Written out rather than with `#[async_trait]`: the mapping runs before
/// the future is made, so the boxed future holds only what the decision
/// needs, not the 1 KiB CheckRequest. That keeps its allocation small
/// enough for the allocator's per-thread cache (about 1 KiB), one of the
/// costs BENCHMARKS.md measured on this path.
impl Authorization for ExtAuthzService {
    fn check<'life0, 'async_trait>(
        &'life0 self,
        request: Request<CheckRequest>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<CheckResponse>, Status>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let span = tracing::info_span!("ExtAuthz", reason = tracing::field::Empty);
        let entered = span.enter();
        let (metadata, extensions, message) = request.into_parts();
        let forged = forged(&message);
        let step = self.prepare(&metadata, extensions, &message);
        drop((metadata, message));
        drop(entered);
        Box::pin(
            async move {
                let answer = match step {
                    Step::Answered(answer) => answer,
                    Step::Ask { check, tenant } => self.ask(check, &tenant).await,
                };
                Span::current().record("reason", answer.reason);
                Ok(Response::new(
                    answer.into_response(forged.iter().map(String::as_str)),
                ))
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests;
