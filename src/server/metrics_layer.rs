//! The tower layer that times every RPC by service, method and status code.

use std::sync::Arc;
use std::time::Instant;

use super::edge::{BoxFuture, Edge, Inner};
use super::status_code;
use crate::telemetry::metrics::RpcMetrics;

/// Times each call from its arrival to its response headers. The status
/// code is the `grpc-status` header when the response carries one (an
/// error, answered trailers-only), else `OK`: a unary success and an opened
/// stream put their status in the trailers, which this layer does not wait
/// for (a Watch stream would hold its timing for hours).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Arc<RpcMetrics>,
}

impl MetricsLayer {
    pub fn new(metrics: Arc<RpcMetrics>) -> Self {
        Self { metrics }
    }
}

impl Edge for MetricsLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        let started = Instant::now();
        // Resolved now: the path is not kept (no allocation per call).
        let method = self.metrics.method(request.uri().path());
        let metrics = Arc::clone(&self.metrics);
        let call = inner.call(request);
        Box::pin(async move {
            let result = call.await;
            metrics.observe(method, status_code(&result), started.elapsed());
            result
        })
    }
}
