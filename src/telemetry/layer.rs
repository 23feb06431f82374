//! The tower layer that times every RPC by service, method and status code,
//! and charges a call the client got wrong to its connection's budget
//! (`server::conn`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::metrics::RpcMetrics;
use crate::server::conn::{client_fault, conn_state};

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

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// [`MetricsLayer`]'s service.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for MetricsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        // Resolved now: the path is not kept (no allocation per call).
        let method = self.metrics.method(request.uri().path());
        let metrics = Arc::clone(&self.metrics);
        let conn = conn_state(request.extensions()).cloned();
        let call = self.inner.call(request);
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
