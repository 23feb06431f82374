//! The HTTP/JSON listener (`--http-listen`): the OpenID AuthZEN
//! Authorization API 1.0 (`authzen.rs`), rampart's JSON mirror of Check and
//! BatchCheck (`mirror.rs`), and the OpenAPI document of both.
//!
//! It shares everything but the framing with the gRPC port: the same
//! credentials decide who calls and with which scope (`auth`), the same
//! connection guard bounds connections, idle and silent ones and charges
//! failing calls to their connection (`conn`), the same limits bound body
//! size, calls in flight and call time (`limits::Limits`), the decisions
//! go through the same `AuthorizationService` (so its metrics, decision log
//! and `--strict-catalog` apply), calls are counted in
//! `rampart_rpc_duration_seconds` under service `http` with the gRPC code
//! of their status, and traced by the same layer. HTTP/2 takes the gRPC
//! port's streams per connection and keepalive; an HTTP/1.1 request's head
//! must arrive within `--handshake-timeout-secs`. Served with axum's
//! router on hyper (HTTP/1.1 with keep-alive, and HTTP/2), TLS through
//! tokio-rustls with the gRPC port's certificate.

pub mod authzen;
mod handlers;
pub mod mirror;
pub mod reply;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service as _;

use super::auth::{LiveCredentials, PeerCerts};
use super::authorization::AuthorizationService;
use super::conn::{self, client_fault, conn_state};
use super::limits::Limits;
use super::tls::ServerTls;
use crate::telemetry::metrics::RpcMetrics;

pub use reply::ApiError;

/// The endpoints, as `(method, path, the gRPC call whose scope it needs)`;
/// `None`: open to every caller (discovery and the API's own document).
pub const ENDPOINTS: &[(&str, &str, Option<&str>)] = &[
    (
        "POST",
        "/access/v1/evaluation",
        Some("/rampart.v1.Authorization/Check"),
    ),
    (
        "POST",
        "/access/v1/evaluations",
        Some("/rampart.v1.Authorization/BatchCheck"),
    ),
    (
        "POST",
        "/access/v1/search/subject",
        Some("/rampart.v1.Authorization/ListSubjects"),
    ),
    (
        "POST",
        "/access/v1/search/resource",
        Some("/rampart.v1.Authorization/ListSubjectPermissions"),
    ),
    (
        "POST",
        "/access/v1/search/action",
        Some("/rampart.v1.Authorization/BatchCheck"),
    ),
    ("POST", "/v1/check", Some("/rampart.v1.Authorization/Check")),
    (
        "POST",
        "/v1/batch-check",
        Some("/rampart.v1.Authorization/BatchCheck"),
    ),
    ("GET", "/.well-known/authzen-configuration", None),
    ("GET", "/openapi.json", None),
];

/// The rows the HTTP endpoints add to the RPC metrics: service `http`,
/// method `POST /access/v1/evaluation` and so on.
pub fn metric_rows() -> impl Iterator<Item = (String, String)> {
    ENDPOINTS
        .iter()
        .map(|(method, path, _)| ("http".to_owned(), format!("{method} {path}")))
}

/// What the HTTP listener serves, and with what.
#[derive(Debug)]
pub struct HttpEdges {
    /// Decides, counts and logs, as for the gRPC port.
    pub authorization: AuthorizationService,
    /// The `[authzen]` mapping; without it the AuthZEN endpoints answer 404
    /// naming the missing table (the JSON mirror still serves).
    pub authzen: Option<authzen::Mapping>,
    /// The URL the AuthZEN metadata advertises (`--http-public-url`); else
    /// built from each request's `Host`.
    pub public_url: Option<String>,
    pub tls: Option<ServerTls>,
    pub credentials: Option<LiveCredentials>,
    pub rpc: Arc<RpcMetrics>,
    pub limits: Limits,
    pub max_batch: usize,
    pub connections: Arc<conn::Guard>,
}

/// The listener serving.
#[derive(Debug)]
pub struct HttpServing {
    pub addr: SocketAddr,
    pub join: tokio::task::JoinHandle<()>,
}

/// What each request's handler reads.
#[derive(Debug, Clone)]
struct App {
    authorization: AuthorizationService,
    authzen: Option<Arc<authzen::Mapping>>,
    public_url: Option<Arc<str>>,
    tls: bool,
    max_body: usize,
    max_batch: usize,
}

/// What the layer in front of every endpoint reads.
#[derive(Debug, Clone)]
struct Front {
    credentials: Option<LiveCredentials>,
    rpc: Arc<RpcMetrics>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    call_timeout: Duration,
}

/// Serves the endpoints on `listener` until `stopping` turns true, then
/// lets the calls in flight finish.
pub async fn spawn(
    listener: TcpListener,
    edges: HttpEdges,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<HttpServing, Box<dyn std::error::Error + Send + Sync>> {
    let addr = listener.local_addr()?;
    let acceptor = edges
        .tls
        .as_ref()
        .map(tls_acceptor)
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    let app = App {
        authorization: edges.authorization,
        authzen: edges.authzen.map(Arc::new),
        public_url: edges.public_url.map(Into::into),
        tls: acceptor.is_some(),
        max_body: edges.limits.max_message_bytes,
        max_batch: edges.max_batch,
    };
    let front = Front {
        credentials: edges.credentials,
        rpc: edges.rpc,
        in_flight: Arc::new(Semaphore::new(edges.limits.max_in_flight)),
        max_in_flight: edges.limits.max_in_flight,
        call_timeout: edges.limits.call_timeout,
    };
    let router = base_router(app)
        .layer(axum::middleware::from_fn_with_state(front, edge))
        .layer(super::edge::EdgeLayer(super::trace::TraceLayer));
    let connections = edges.connections;
    let limits = edges.limits;
    let join = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.handshake_timeout.max(Duration::from_secs(1)));
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(limits.max_streams_per_connection)
            .keep_alive_interval(Some(limits.keepalive_interval))
            .keep_alive_timeout(limits.keepalive_timeout);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.wait_for(|s| *s) => break,
            };
            let (io, _) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = io.set_nodelay(true);
            let Some(conn) = connections.admit(io) else {
                continue;
            };
            let info = tonic::transport::server::Connected::connect_info(&conn);
            let router = router.clone();
            let builder = builder.clone();
            let acceptor = acceptor.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                match acceptor {
                    None => serve_connection(&builder, watcher, conn, router, info, None).await,
                    Some(acceptor) => {
                        let tls = match acceptor.accept(conn).await {
                            Ok(tls) => tls,
                            Err(e) => {
                                tracing::debug!(error = %e, "HTTP TLS handshake failed");
                                return;
                            }
                        };
                        let certs = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| PeerCerts(Arc::new(c.to_vec())));
                        serve_connection(&builder, watcher, tls, router, info, certs).await;
                    }
                }
            });
        }
        drop(listener);
        // Calls in flight finish; idle keep-alive connections are closed.
        let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    });
    Ok(HttpServing { addr, join })
}

/// Serves one connection (plain or TLS) until it closes or the shutdown
/// drains it, with the connection's facts put into every request's
/// extensions (as tonic does for the gRPC port).
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    router: Router,
    info: conn::ConnInfo,
    certs: Option<PeerCerts>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(info.clone());
            if let Some(certs) = &certs {
                request.extensions_mut().insert(certs.clone());
            }
            router.clone().call(request)
        });
    let served = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(served.into_owned()).await {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// The server's rustls configuration from its PEM certificate and key, and
/// the CA client certificates must chain to (optional for the client).
fn tls_acceptor(
    tls: &ServerTls,
) -> Result<Arc<rustls::ServerConfig>, Box<dyn std::error::Error + Send + Sync>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&tls.cert).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&tls.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots.add(cert?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// In front of every endpoint: counts and times the call, holds it open on
/// its connection (for the idle timeout), authenticates it, takes an
/// in-flight slot, bounds its time, charges a client's fault to its
/// connection, and echoes `X-Request-ID`.
async fn edge(State(front): State<Front>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = ENDPOINTS
        .iter()
        .find(|(m, p, _)| request.method().as_str() == *m && request.uri().path() == *p);
    let row = front.rpc.method(&match endpoint {
        Some((m, p, _)) => format!("/http/{m} {p}"),
        None => String::new(),
    });
    let state = conn_state(request.extensions()).cloned();
    let _open = state.as_ref().map(|s| s.open_call());
    let request_id = request
        .headers()
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .cloned();
    let mut response = match admit(&front, endpoint, &mut request) {
        Err(e) => e.into_response(),
        Ok(_permit) => match tokio::time::timeout(front.call_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the call took longer than {} ms (--call-timeout-ms)",
                    front.call_timeout.as_millis()
                ),
            )
            .into_response(),
        },
    };
    if let Some(id) = request_id {
        response.headers_mut().insert("x-request-id", id);
    }
    let code = reply::grpc_code(response.status());
    front.rpc.observe(row, code, started.elapsed());
    if let Some(state) = state
        && client_fault(code)
    {
        state.failed();
    }
    response
}

/// Authenticates `request` for `endpoint` (its principal goes into the
/// extensions) and takes an in-flight slot; the refusal otherwise.
fn admit(
    front: &Front,
    endpoint: Option<&(&str, &str, Option<&str>)>,
    request: &mut Request,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
    let Some((_, _, Some(scope_of))) = endpoint else {
        // Open endpoints, and paths the router answers 404/405.
        return Ok(None);
    };
    if let Some(credentials) = &front.credentials {
        match credentials
            .load()
            .authorize(scope_of, request.headers(), request.extensions())
        {
            Ok(Some(who)) => {
                request.extensions_mut().insert(who);
            }
            Ok(None) => {}
            Err(status) => return Err(status.into()),
        }
    }
    Arc::clone(&front.in_flight)
        .try_acquire_owned()
        .map(Some)
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the server has {} calls in flight, its limit (--max-in-flight)",
                    front.max_in_flight
                ),
            )
        })
}

/// The base URL the AuthZEN metadata names: `--http-public-url`, else the
/// request's scheme and `Host`.
fn base_url(app: &App, headers: &http::HeaderMap) -> String {
    if let Some(url) = &app.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if app.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// 405 with the methods the path takes, 404 for a path none serves.
async fn fallback(method: Method, uri: http::Uri) -> Response {
    let allowed: Vec<&str> = ENDPOINTS
        .iter()
        .filter(|(_, p, _)| *p == uri.path())
        .map(|(m, _, _)| *m)
        .collect();
    if allowed.is_empty() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no endpoint at `{}` (see /openapi.json)", uri.path()),
        )
        .into_response();
    }
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{}` takes {}, not {method}",
            uri.path(),
            allowed.join(", ")
        ),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(http::header::ALLOW, v);
    }
    response
}

/// The router before the layers.
fn base_router(app: App) -> Router {
    handlers::routes()
        .fallback(fallback)
        .method_not_allowed_fallback(fallback)
        .with_state(app)
}
