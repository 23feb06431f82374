//! The gRPC edge: rampart's tonic services (Authorization, Admin), the
//! conversions between the wire and the model, the status mapping, and the
//! tower layers every call passes (metrics, failing-call budget, auth,
//! limits, trace), assembled on one listener by [`spawn`].
//!
//! A leaf over an engine handle: decisions come from `policy`, snapshots
//! and changes from `engine`. It never imports `store`, `replication` or
//! `cli`; services it does not own (Replication) are handed to [`spawn`]
//! as routes by the composition root (`cli::serve`).

pub mod admin;
pub mod auth;
pub mod authorization;
pub mod budget;
pub mod conn;
pub mod convert;
pub mod edge;
pub mod ext_authz;
pub mod json;
pub mod limits;
pub mod metrics_layer;
pub mod tls;
pub mod trace;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

pub use authorization::{AuthorizationService, DataPlaneConfig};

use crate::engine::Engine;
use crate::proto::{self, authorization_server::AuthorizationServer};
use crate::telemetry::DecisionLog;
use crate::telemetry::metrics::{CheckMetrics, RpcMetrics};

/// Sets the health of the whole server and of the two Authorization
/// services (rampart's and Envoy's).
pub async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    health
        .set_service_status(proto::authorization_server::SERVICE_NAME, status)
        .await;
    health
        .set_service_status(ext_authz::SERVICE_NAME, status)
        .await;
}

/// Sets the health of the Admin service: whether it takes changes (the
/// store takes writes). Its reads answer either way.
pub async fn set_admin_health(health: &HealthReporter, writable: bool) {
    let status = if writable {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    health
        .set_service_status(proto::admin_server::SERVICE_NAME, status)
        .await;
}

/// The gRPC status code of a call's answer: the `grpc-status` header when
/// the response carries one (an error, answered trailers-only), else `OK`
/// (a unary success and an opened stream put theirs in the trailers); a
/// transport failure, and an HTTP error without a gRPC status (the 415 of
/// a request that is not gRPC, `wire.rs`), count as `UNKNOWN`.
pub fn status_code<R, E>(result: &Result<http::Response<R>, E>) -> usize {
    match result {
        Ok(response) => match response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            Some(code) => code,
            None if response.status() != http::StatusCode::OK => 2,
            None => 0,
        },
        Err(_) => 2,
    }
}

/// The RPC table the metrics count by: every method of the generated
/// descriptor set, plus Envoy's Check, health and reflection.
pub fn rpc_metrics() -> RpcMetrics {
    let mut methods = proto::methods();
    for (service, method) in [
        (ext_authz::SERVICE_NAME, "Check"),
        ("grpc.health.v1.Health", "Check"),
        ("grpc.health.v1.Health", "Watch"),
        (
            "grpc.reflection.v1.ServerReflection",
            "ServerReflectionInfo",
        ),
        (
            "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionInfo",
        ),
    ] {
        methods.push((service.to_owned(), method.to_owned()));
    }
    methods.extend(json::metric_rows());
    RpcMetrics::new(methods)
}

/// What one gRPC listener serves, and with what.
#[derive(Debug)]
pub struct Edges {
    pub engine: Arc<Engine>,
    pub data_plane: DataPlaneConfig,
    /// Serve TLS with this.
    pub tls: Option<tls::ServerTls>,
    /// Authenticate every call (but health and reflection) against these;
    /// `None`: every call is open.
    pub credentials: Option<auth::LiveCredentials>,
    /// A replica's leader: Admin calls are refused, naming it.
    pub leader: Option<String>,
    pub checks: Arc<CheckMetrics>,
    pub rpc: Arc<RpcMetrics>,
    pub decision_log: Option<Arc<DecisionLog>>,
    /// The connections' budgets of failing calls.
    pub connections: Arc<conn::Guard>,
    /// The `[ext_authz]` mapping of Envoy's Check; `None`: Envoy's Check
    /// denies every request (`NOT_CONFIGURED`).
    pub ext_authz: Option<Arc<ext_authz::Mapping>>,
}

/// A listener serving.
#[derive(Debug)]
pub struct Serving {
    pub addr: SocketAddr,
    /// Health starts NOT_SERVING; the caller says when it is ready.
    pub health: HealthReporter,
    /// Send to stop accepting and let in-flight calls finish.
    pub shutdown: oneshot::Sender<()>,
    pub join: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Serves Authorization, Envoy's Authorization, Admin, health, reflection
/// and `extra` on
/// `listener`, behind the layers (outermost first): every call is counted
/// as open on its connection (for the idle timeout), timed and counted,
/// charged to its connection's budget when the client got it wrong, held
/// to the gRPC wire format (`wire.rs`), authenticated (one that fails
/// never takes an in-flight permit), limited, and traced. Connections past
/// `--max-connections` are closed as accepted (`conn.rs`).
pub async fn spawn(
    listener: TcpListener,
    edges: Edges,
    extra: Routes,
) -> Result<Serving, Box<dyn std::error::Error + Send + Sync>> {
    let Edges {
        engine,
        data_plane,
        tls,
        credentials,
        leader,
        checks,
        rpc,
        decision_log,
        connections,
        ext_authz,
    } = edges;
    let addr = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, false).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let limits = data_plane.limits;
    let checker = AuthorizationService::new(Arc::clone(&engine), data_plane)
        .with_telemetry(checks, decision_log);
    let envoy =
        ext_authz::ExtAuthzServer::new(ext_authz::ExtAuthzService::new(checker.clone(), ext_authz))
            .max_decoding_message_size(limits.max_message_bytes);
    let authorization =
        AuthorizationServer::new(checker).max_decoding_message_size(limits.max_message_bytes);
    let admin = proto::admin_server::AdminServer::new(
        admin::AdminService::new(Arc::clone(&engine)).with_leader(leader),
    )
    .max_decoding_message_size(limits.max_message_bytes);
    let (shutdown, stop) = oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(limits.max_streams_per_connection);
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.config())?;
    }
    let routes = extra
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authorization)
        .add_service(envoy)
        .add_service(admin);
    let router = builder
        .layer(conn::StreamsLayer)
        .layer(edge::EdgeLayer(metrics_layer::MetricsLayer::new(rpc)))
        .layer(edge::EdgeLayer(budget::BudgetLayer))
        .layer(edge::EdgeLayer(wire::WireLayer))
        .layer(edge::EdgeLayer(auth::AuthLayer::new(credentials)))
        .layer(limits::LimitLayer::new(&limits))
        .layer(edge::EdgeLayer(trace::TraceLayer))
        .add_routes(routes);
    // TCP_NODELAY: without it, a large response (a BatchCheck of 1,000
    // results) meets Nagle's algorithm and the peer's delayed ACK: ~40 ms.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
        .filter_map(move |accepted| match accepted {
            Ok(io) => connections.admit(io).map(Ok),
            Err(e) => Some(Err(e)),
        });
    let join = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop.await;
    }));
    Ok(Serving {
        addr,
        health,
        shutdown,
        join,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_descriptor_set_has_a_row() {
        let m = rpc_metrics();
        let other = m.method("/no.Such/Rpc");
        assert_eq!(other, m.rows() - 1);
        for path in [
            "/rampart.v1.Authorization/Check",
            "/rampart.v1.Admin/ListAuditLog",
            "/rampart.v1.Replication/Watch",
            "/rampart.v1.Replication/Import",
            "/envoy.service.auth.v3.Authorization/Check",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert_ne!(m.method(path), other, "{path}");
        }
        assert!(m.rows() > 40, "{}", m.rows());
    }
}
