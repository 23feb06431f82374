//! The skeleton of the tower layers in front of the services: each one
//! ([`auth::AuthLayer`](super::auth::AuthLayer),
//! [`limits::LimitLayer`](super::limits::LimitLayer),
//! [`otel::TraceLayer`](super::otel::TraceLayer) and
//! `telemetry::layer::MetricsLayer`) implements [`Edge`]: what it does with
//! one call. [`EdgeLayer`] makes it a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future every edge returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service a layer wraps: an HTTP service whose future and error can
/// be moved into a boxed future.
pub trait Inner<B, R>:
    tower_service::Service<
        http::Request<B>,
        Response = http::Response<R>,
        Future: Send + 'static,
        Error: Send + 'static,
    >
{
}

impl<T, B, R> Inner<B, R> for T where
    T: tower_service::Service<
            http::Request<B>,
            Response = http::Response<R>,
            Future: Send + 'static,
            Error: Send + 'static,
        >
{
}

/// What a layer does with one call: answer it itself (`status.into_http()`),
/// or pass it to `inner` and perhaps look at the answer.
pub trait Edge {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>>;
}

/// An [`Edge`] as a tower layer.
#[derive(Debug, Clone)]
pub struct EdgeLayer<E>(pub E);

impl<S, E: Clone> tower_layer::Layer<S> for EdgeLayer<E> {
    type Service = EdgeService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            inner,
            edge: self.0.clone(),
        }
    }
}

/// [`EdgeLayer`]'s service.
#[derive(Debug, Clone)]
pub struct EdgeService<S, E> {
    inner: S,
    edge: E,
}

impl<S, E, B, R> tower_service::Service<http::Request<B>> for EdgeService<S, E>
where
    E: Edge,
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.edge.call(&mut self.inner, request)
    }
}
