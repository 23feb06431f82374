//! The tower layer that times every RPC by service, method and status code,
//! and charges a call the client got wrong to its connection's budget
//! (`server::conn`).

use std::sync::Arc;
use std::time::Instant;

use super::metrics::RpcMetrics;
use crate::server::conn::{client_fault, conn_state};
use crate::server::edge::{BoxFuture, Edge, Inner};

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
        let conn = conn_state(request.extensions()).cloned();
        let call = inner.call(request);
        Box::pin(async move {
            let result = call.await;
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                // The transport failed: no gRPC status; counted as UNKNOWN.
                Err(_) => 2,
            };
            metrics.observe(method, code, started.elapsed());
            if let Some(conn) = conn
                && client_fault(code)
            {
                conn.failed();
            }
            result
        })
    }
}
