//! One node, assembled: the engine's gRPC services (`server`), the
//! Replication service and, on a replica, the follower (`replication`),
//! the metrics listener and the decision log (`telemetry`), and the order
//! they stop in. Tests and benchmarks start nodes through [`start_with`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tracing::{error, info, warn};

use super::security::Security;
use crate::engine::{Engine, Scope, StoreHealth};
use crate::model::TenantId;
use crate::proto;
use crate::replication::{
    Caller, FollowConfig, ReplicaStatus, ReplicationConfig, ReplicationService, Role, follow,
};
use crate::server::{self, DataPlaneConfig, Edges, auth, conn, set_admin_health, set_health};
use crate::store::FreeSpace;
use crate::telemetry::gauges::ReplicaGauges;
use crate::telemetry::metrics::CheckMetrics;
use crate::telemetry::{DecisionLog, Telemetry, TelemetryConfig};

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its health reporter.
    pub health: HealthReporter,
    /// Where `GET /metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the HTTP/JSON API is served, when it is.
    pub http_addr: Option<SocketAddr>,
    /// The credentials calls are checked against (`None`: every call is
    /// open); a reload stores a new set here.
    pub credentials: Option<auth::LiveCredentials>,
    shutdown: oneshot::Sender<()>,
    join: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Tells Watch streams to end.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The connections' budgets: shutdown lifts every pause.
    connections: Arc<conn::Guard>,
    /// A replica's follower task.
    follower: Option<JoinHandle<()>>,
    /// The metrics listener; ends when `stopping` turns true.
    metrics: Option<JoinHandle<()>>,
    /// The HTTP/JSON listener; stops accepting when `stopping` turns true
    /// and ends once its calls in flight have.
    http: Option<JoinHandle<()>>,
    /// Keeps the Admin service's health on whether the store takes writes.
    admin_health: JoinHandle<()>,
    /// The decision log's writer thread: it ends, having written
    /// everything queued, once the server (holding the log) is dropped.
    decision_log_writer: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Reports NOT_SERVING, stops accepting, and waits (at most `grace`) for
    /// in-flight calls to finish.
    pub async fn shutdown(self, grace: Duration) {
        self.admin_health.abort();
        set_health(&self.health, false).await;
        set_admin_health(&self.health, false).await;
        if let Some(follower) = &self.follower {
            follower.abort();
        }
        self.stopping.send_replace(true);
        self.connections.stop_pausing();
        let _ = self.shutdown.send(());
        if let Some(metrics) = self.metrics {
            let _ = metrics.await;
        }
        if let Some(http) = self.http {
            let _ = tokio::time::timeout(grace, http).await;
        }
        match tokio::time::timeout(grace, self.join).await {
            Ok(Ok(Ok(()))) => {
                info!("server stopped");
                // The services (and their decision-log senders) are gone:
                // wait for the writer to write what is queued.
                if let Some(writer) = self.decision_log_writer {
                    let joined = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::task::spawn_blocking(move || writer.join()),
                    )
                    .await;
                    if !matches!(joined, Ok(Ok(Ok(())))) {
                        warn!(
                            "the decision log's writer did not finish; its last records may be lost"
                        );
                    }
                }
            }
            Ok(Ok(Err(e))) => error!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => error!(error = %e, "server task failed"),
            Err(_) => warn!(
                grace_ms = grace.as_millis() as u64,
                "in-flight calls did not finish within the grace period"
            ),
        }
    }
}

/// What a server runs with. The default: a loopback leader with the default
/// limits, no credentials, no TLS, no metrics listener and no decision log.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub data_plane: DataPlaneConfig,
    /// Leader or replica, the Watch heartbeat, changelog retention.
    pub replication: ReplicationConfig,
    /// TLS, credentials (every call but health and reflection authenticated
    /// by [`auth::AuthLayer`]) and, for a replica, how it reaches its leader.
    pub security: Security,
    /// Metrics on their own listener, and the decision log.
    pub telemetry: TelemetryConfig,
    /// The store's free-space watermark, for the metrics page (none: no
    /// `rampart_store_*` gauges).
    pub free_space: Option<Arc<FreeSpace>>,
    /// The `[ext_authz]` mapping of Envoy's Check (none: it denies every
    /// request, `NOT_CONFIGURED`).
    pub ext_authz: Option<Arc<server::ext_authz::Mapping>>,
    /// The HTTP/JSON listener (`--http-listen`), off by default.
    pub http: Option<HttpOptions>,
}

/// The HTTP/JSON listener's settings; its TLS, credentials and limits are
/// the gRPC port's.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// The `[authzen]` mapping of the config file.
    pub authzen: Option<server::json::authzen::Mapping>,
    /// `--http-public-url`.
    pub public_url: Option<String>,
}

/// Serves a leader on `listener` from `engine` with `config` and every other
/// option at its default ([`start_with`]).
pub async fn start(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: DataPlaneConfig,
) -> Result<ServerHandle, Box<dyn std::error::Error + Send + Sync>> {
    start_with(
        listener,
        engine,
        ServerOptions {
            data_plane: config,
            ..ServerOptions::default()
        },
    )
    .await
}

/// Serves every service on `listener` from `engine`, as a leader or a
/// replica. A leader reports SERVING once this returns (the engine always
/// holds a snapshot); a replica's follower task reports SERVING once it has
/// caught up with its leader.
pub async fn start_with(
    listener: TcpListener,
    engine: Arc<Engine>,
    options: ServerOptions,
) -> Result<ServerHandle, Box<dyn std::error::Error + Send + Sync>> {
    let ServerOptions {
        data_plane,
        replication,
        security,
        telemetry,
        free_space,
        http,
        ext_authz,
    } = options;
    // Bound first: a taken metrics port fails the start before anything serves.
    let metrics_listener = match telemetry.metrics_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen for metrics on {at}: {e}"))?,
        ),
        None => None,
    };
    let http_listener = match &http {
        Some(h) => Some(
            TcpListener::bind(h.listen)
                .await
                .map_err(|e| format!("cannot listen for HTTP on {}: {e}", h.listen))?,
        ),
        None => None,
    };
    let checks = Arc::new(CheckMetrics::default());
    let rpc = Arc::new(server::rpc_metrics());
    let (decision_log, decision_log_writer) = match &telemetry.decision_log {
        Some(c) => {
            let (log, writer) = DecisionLog::start(c, Arc::clone(&checks))
                .map_err(|e| format!("cannot open the decision log {:?}: {e}", c.target))?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let replication_service =
        ReplicationService::new(Arc::clone(&engine), replication.clone(), stopped.clone());
    let watchers = replication_service.watcher_count();
    let replica = match &replication.role {
        Role::Leader => None,
        Role::Replica { status, .. } => Some(Arc::clone(status)),
    };
    let leader = match &replication.role {
        Role::Leader => None,
        Role::Replica { leader, .. } => Some(leader.clone()),
    };
    let guard = conn::Guard::with_limits(&data_plane.limits);
    let credentials: Option<auth::LiveCredentials> = security
        .credentials
        .clone()
        .map(|c| Arc::new(arc_swap::ArcSwap::new(c)));
    let extra = Routes::new(tonic::service::interceptor::InterceptedService::new(
        proto::replication_server::ReplicationServer::new(replication_service)
            .max_decoding_message_size(64 << 20),
        replication_caller,
    ));
    let http_edges = http.map(|h| server::json::HttpEdges {
        authorization: server::AuthorizationService::new(Arc::clone(&engine), data_plane.clone())
            .with_telemetry(Arc::clone(&checks), decision_log.clone()),
        authzen: h.authzen,
        public_url: h.public_url,
        tls: security.tls.clone(),
        credentials: credentials.clone(),
        rpc: Arc::clone(&rpc),
        limits: data_plane.limits,
        max_batch: data_plane.max_batch,
        connections: Arc::clone(&guard),
    });
    let serving = server::spawn(
        listener,
        Edges {
            engine: Arc::clone(&engine),
            data_plane,
            tls: security.tls,
            credentials: credentials.clone(),
            leader,
            checks: Arc::clone(&checks),
            rpc: Arc::clone(&rpc),
            decision_log,
            connections: Arc::clone(&guard),
            ext_authz,
        },
        extra,
    )
    .await?;
    let (http_addr, http) = match (http_listener, http_edges) {
        (Some(l), Some(edges)) => {
            let serving = server::json::spawn(l, edges, stopped.clone()).await?;
            (Some(serving.addr), Some(serving.join))
        }
        _ => (None, None),
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let metrics = metrics_listener.map(|l| {
        let scrape = scrape(&engine, checks, rpc, watchers, &guard, replica, free_space);
        tokio::spawn(crate::telemetry::http::serve(l, Arc::new(scrape), stopped))
    });
    let health = serving.health.clone();
    let admin_health = tokio::spawn(follow_store_health(engine.store_health(), health.clone()));
    let follower = match replication.role {
        // INVARIANT: the engine was built from a loaded state, so a snapshot is in place.
        Role::Leader => {
            release_freed_memory().await;
            set_health(&health, true).await;
            None
        }
        Role::Replica {
            leader,
            status,
            max_lag,
        } => {
            let reporter = health.clone();
            Some(tokio::spawn(follow(
                Arc::clone(&engine),
                FollowConfig {
                    leader,
                    max_lag,
                    backoff_max: Duration::from_secs(5),
                    security: security.follow,
                },
                status,
                Arc::new(move |serving| {
                    let reporter = reporter.clone();
                    Box::pin(async move {
                        if serving {
                            release_freed_memory().await;
                        }
                        set_health(&reporter, serving).await
                    })
                }),
            )))
        }
    };
    Ok(ServerHandle {
        addr: serving.addr,
        health,
        metrics_addr,
        http_addr,
        credentials,
        shutdown: serving.shutdown,
        join: serving.join,
        stopping,
        connections: guard,
        follower,
        metrics,
        http,
        admin_health,
        decision_log_writer,
    })
}

/// Hands the memory a load freed (decoding buffers, the intern pools,
/// compile scratch) back to the system before the node says SERVING: glibc
/// keeps it otherwise, a quarter of a 100,000-user tenant's resident
/// memory (BENCHMARKS.md, "Issue #15: thin ids"). On a blocking thread: it
/// walks every arena.
async fn release_freed_memory() {
    let released = tokio::task::spawn_blocking(rampart_malloc_trim::release_free_memory)
        .await
        .unwrap_or(false);
    tracing::debug!(released, "returned the memory the load freed to the system");
}

/// Hands the Replication service its [`Caller`]: the authenticated
/// principal's name and the tenants its credential confines it to (the
/// auth layer is `server`'s, which `replication` may not import). Without
/// a principal (no credentials configured) there is no caller: every
/// tenant. Fails closed: tenants that do not convert refuse the call.
fn replication_caller(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let Some(principal) = request.extensions().get::<auth::Principal>() else {
        return Ok(request);
    };
    let tenants = match &principal.bounds.tenants {
        None => None,
        Some(names) => {
            let ids = names.iter().map(|n| TenantId::new(n.as_str()).ok());
            match ids.collect::<Option<Vec<_>>>().and_then(Scope::new) {
                Some(scope) => Some(scope),
                None => {
                    return Err(tonic::Status::permission_denied(format!(
                        "credential `{}` is confined to tenants that are not tenant ids",
                        principal.name
                    )));
                }
            }
        }
    };
    let caller = Caller {
        name: Arc::clone(&principal.name),
        tenants,
    };
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// The Admin service is SERVING while the store takes writes, NOT_SERVING
/// while a failed write is being repaired (on a full disk, until space is
/// freed) or the store is stuck (the process is about to exit). The server
/// as a whole ("") and Authorization stay SERVING: checks and reads never
/// touch the store.
async fn follow_store_health(
    mut store: tokio::sync::watch::Receiver<StoreHealth>,
    health: HealthReporter,
) {
    loop {
        let writable = *store.borrow_and_update() == StoreHealth::Writable;
        set_admin_health(&health, writable).await;
        if store.changed().await.is_err() {
            return;
        }
    }
}

/// What a scrape of this node reads, in the order the page has always had.
fn scrape(
    engine: &Arc<Engine>,
    checks: Arc<CheckMetrics>,
    rpc: Arc<crate::telemetry::metrics::RpcMetrics>,
    watchers: Arc<std::sync::atomic::AtomicU64>,
    guard: &Arc<conn::Guard>,
    replica: Option<Arc<ReplicaStatus>>,
    free_space: Option<Arc<FreeSpace>>,
) -> Telemetry {
    let scrape_engine = Arc::clone(engine);
    let lag_engine = Arc::clone(engine);
    let guard = Arc::clone(guard);
    let scrape = Telemetry::default()
        .source(move |page| {
            let snapshot = scrape_engine.load();
            page.revision(snapshot.revision());
            page.tenants(
                snapshot.state().tenants.len(),
                scrape_engine.scope().map(crate::engine::Scope::tenants),
            );
            page.engine(scrape_engine.metrics());
        })
        .source(move |page| page.checks(&checks))
        .source(move |page| page.rpcs(&rpc))
        .source(move |page| page.watch_streams(watchers.load(Ordering::Relaxed)))
        .source(move |page| {
            page.throttled(guard.throttled());
            page.connections(guard.open(), guard.refused());
        });
    // Read at each scrape, so the gauges follow the disk between writes.
    // Writable: above the watermark, and the store not closed after a
    // failed write.
    let health = engine.store_health();
    let scrape = match free_space {
        Some(space) => scrape.source(move |page| {
            let free = space.observe();
            let open = *health.borrow() == StoreHealth::Writable;
            page.store_space(free, space.writable() && open);
        }),
        None if engine.is_durable() => scrape.source(move |page| {
            page.store_space(None, *health.borrow() == StoreHealth::Writable);
        }),
        None => scrape,
    };
    match replica {
        None => scrape,
        Some(status) => scrape.source(move |page| {
            let get = ReplicaStatus::get;
            page.replica(ReplicaGauges {
                lag_revisions: get(&status.leader_revision)
                    .saturating_sub(lag_engine.load().revision()),
                lag_seconds: get(&status.lag_ms) as f64 / 1_000.0,
                reconnects: get(&status.reconnects),
                rebootstraps: get(&status.rebootstraps),
            })
        }),
    }
}
