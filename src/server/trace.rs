//! One span per RPC, a child of the caller's W3C `traceparent`, sampled
//! once per RPC by the head sampler that `telemetry::traces` installed.

use opentelemetry::propagation::Extractor;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::edge::{BoxFuture, Edge, Inner};
use crate::telemetry::traces;

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// One span per RPC (health and reflection excepted, and only while spans
/// are exported), child of the caller's `traceparent` when it sent one. The services' own spans (a
/// Check's tenant, decision, reason, revision) nest inside it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl Edge for TraceLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        let path = request.uri().path();
        let Some(sampler) = traces::sampler().filter(|_| {
            !path.starts_with("/grpc.health.") && !path.starts_with("/grpc.reflection.")
        }) else {
            return Box::pin(inner.call(request));
        };
        // Without a traceparent there is no parent to extract.
        let parent = if request.headers().contains_key("traceparent") {
            opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&Headers(request.headers()))
            })
        } else {
            opentelemetry::Context::new()
        };
        let remote = {
            use opentelemetry::trace::TraceContextExt;
            let context = parent.span().span_context().clone();
            context.is_valid().then(|| {
                (
                    u128::from_be_bytes(context.trace_id().to_bytes()),
                    context.is_sampled(),
                )
            })
        };
        let sampled = sampler.sample(remote, traces::coin());
        if !sampled {
            let call = traces::sync_scope(false, || inner.call(request));
            return Box::pin(traces::scope(false, call));
        }
        let grpc =
            super::wire::grpc_content_type(request.headers().get(http::header::CONTENT_TYPE));
        let span = if grpc {
            let (service, method) = path
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or(("", path));
            tracing::info_span!(
                "rpc",
                otel.name = %path.trim_start_matches('/'),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
            )
        } else {
            // The HTTP/JSON listener's calls (`json/`).
            let method = request.method().as_str();
            tracing::info_span!(
                "http",
                otel.name = %format!("{method} {path}"),
                otel.kind = "server",
                http.request.method = %method,
                url.path = %path,
            )
        };
        let _ = span.set_parent(parent);
        let call = {
            let _entered = span.enter();
            traces::sync_scope(true, || inner.call(request))
        };
        Box::pin(traces::scope(true, call.instrument(span)))
    }
}
