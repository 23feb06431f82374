//! The gRPC server: the Authorization service, health, reflection, and
//! `rampart serve`.
//!
//! Owns the transport and the edge conversions; decisions come from
//! `policy`, snapshots from `engine`.

pub mod admin;
pub mod auth;
pub mod authorization;
pub mod conn;
pub mod convert;
pub mod edge;
pub mod limits;
pub mod loadgen;
pub mod otel;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;
use tracing::{error, info, warn};

use crate::proto::{self, authorization_server::AuthorizationServer};
pub use authorization::{AuthorizationService, DataPlaneConfig};

use crate::engine::Engine;
use crate::model::{State, Timestamp, policy_file};
use crate::replication::{
    FollowConfig, ReplicaStatus, ReplicationConfig, ReplicationService, Role, follow,
};
use crate::store::sled::SledStore;
use crate::store::{Retention, Store};
use crate::telemetry::metrics::{CheckMetrics, RpcMetrics};
use crate::telemetry::{DecisionLog, Telemetry, TelemetryArgs, TelemetryConfig};

/// The demo policy `rampart serve` loads when given no `--bootstrap` file.
pub const QUICKSTART_POLICY: &str = include_str!("../../examples/quickstart/policy.yaml");

/// `rampart serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RAMPART_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Where the store lives (sled): the changelog, the audit log, checkpoints.
    #[arg(long, env = "RAMPART_DATA_DIR", default_value = "./rampart-data")]
    pub data_dir: PathBuf,
    /// Policy file applied (as operator mutations) when the store is empty;
    /// without it, the built-in quickstart demo policy. Ignored, with a log
    /// line, when the store already holds a state.
    #[arg(long, env = "RAMPART_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,
    /// Start an empty store empty (revision 0) instead of bootstrapping it:
    /// to restore a backup with `rampart ctl import`.
    #[arg(long, env = "RAMPART_NO_BOOTSTRAP", conflicts_with = "bootstrap")]
    pub no_bootstrap: bool,
    /// Write a checkpoint after this many new revisions (recovery replays
    /// only what follows the newest checkpoint).
    #[arg(long, env = "RAMPART_CHECKPOINT_EVERY", default_value_t = 10_000)]
    pub checkpoint_every: u64,
    /// Answer permissions the catalog does not cover with INVALID_ARGUMENT
    /// instead of DENY UNKNOWN_PERMISSION.
    #[arg(long, env = "RAMPART_STRICT_CATALOG")]
    pub strict_catalog: bool,
    /// Most items in one BatchCheck.
    #[arg(long, env = "RAMPART_MAX_BATCH", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_batch: u32,
    /// How long a check with `at_least_revision` waits for that revision, in milliseconds.
    #[arg(long, env = "RAMPART_CONSISTENCY_WAIT_MS", default_value_t = 100)]
    pub consistency_wait_ms: u64,
    /// How long shutdown waits for in-flight calls, in milliseconds.
    #[arg(long, env = "RAMPART_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Run as a read replica of the leader at this URL (e.g.
    /// `http://leader:50051`): bootstrap from its export, follow its
    /// changelog, answer checks, refuse admin calls.
    #[arg(long, env = "RAMPART_FOLLOW", value_name = "URL")]
    pub follow: Option<String>,
    /// A replica reports NOT_SERVING while the change it applies is older
    /// than this, in milliseconds.
    #[arg(long, env = "RAMPART_MAX_LAG_MS", default_value_t = 5_000)]
    pub max_lag_ms: u64,
    /// Keep at least the last this many changelog revisions for replicas
    /// to catch up from (0: no revision bound).
    #[arg(long, env = "RAMPART_RETAIN_REVISIONS", default_value_t = 100_000)]
    pub retain_revisions: u64,
    /// Keep at least the changelog entries younger than this (`90s`, `30m`,
    /// `12h`, `7d`); an entry goes only when every bound set allows it.
    #[arg(long, env = "RAMPART_RETAIN_FOR", value_parser = parse_duration)]
    pub retain_for: Option<Duration>,
    /// How often an idle Watch stream gets a checkpoint, in milliseconds.
    #[arg(long, env = "RAMPART_WATCH_HEARTBEAT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub watch_heartbeat_ms: u64,
    // Authentication and TLS (auth.rs, tls.rs).
    #[command(flatten)]
    pub security: tls::SecurityArgs,
    // Limits and load shedding (limits.rs).
    #[command(flatten)]
    pub limits: limits::LimitsArgs,
    /// Read settings from this TOML file (every key a flag's name): flags
    /// and RAMPART_* variables take precedence over it.
    #[arg(long, env = "RAMPART_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (and where each value came from,
    /// secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Logs on stderr as `text` or `json` (one object per line).
    #[arg(long, env = "RAMPART_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: otel::LogFormat,
    // Metrics and the decision log (telemetry/).
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// A duration as a number and a unit: `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 30m, 12h or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

impl ServeArgs {
    fn data_plane(&self) -> DataPlaneConfig {
        DataPlaneConfig {
            max_batch: self.max_batch as usize,
            strict_catalog: self.strict_catalog,
            consistency_wait: Duration::from_millis(self.consistency_wait_ms),
            limits: self.limits.limits(),
        }
    }

    fn retention(&self) -> Retention {
        Retention {
            revisions: (self.retain_revisions > 0).then_some(self.retain_revisions),
            age: self.retain_for,
        }
    }

    fn replication(&self) -> ReplicationConfig {
        ReplicationConfig {
            role: match &self.follow {
                None => Role::Leader,
                Some(leader) => Role::Replica {
                    leader: leader.clone(),
                    status: Arc::new(ReplicaStatus::default()),
                    max_lag: Duration::from_millis(self.max_lag_ms),
                },
            },
            heartbeat: Duration::from_millis(self.watch_heartbeat_ms),
            retention: self.retention(),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its health reporter.
    pub health: HealthReporter,
    /// Where `GET /metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
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
    /// The decision log's writer thread: it ends, having written
    /// everything queued, once the server (holding the log) is dropped.
    decision_log_writer: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Reports NOT_SERVING, stops accepting, and waits (at most `grace`) for
    /// in-flight calls to finish.
    pub async fn shutdown(self, grace: Duration) {
        set_health(&self.health, false).await;
        if let Some(follower) = &self.follower {
            follower.abort();
        }
        self.stopping.send_replace(true);
        self.connections.stop_pausing();
        let _ = self.shutdown.send(());
        if let Some(metrics) = self.metrics {
            let _ = metrics.await;
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

/// Sets the health of the whole server and of the Authorization service.
pub async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    health
        .set_service_status(
            <AuthorizationServer<AuthorizationService> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
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
    pub security: tls::Security,
    /// Metrics on their own listener, and the decision log.
    pub telemetry: TelemetryConfig,
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
        data_plane: config,
        replication,
        security,
        telemetry,
    } = options;
    let addr = listener.local_addr()?;
    // Bound first: a taken metrics port fails the start before anything serves.
    let metrics_listener = match telemetry.metrics_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen for metrics on {at}: {e}"))?,
        ),
        None => None,
    };
    let checks = Arc::new(CheckMetrics::default());
    let rpc = Arc::new(RpcMetrics::default());
    let (decision_log, decision_log_writer) = match &telemetry.decision_log {
        Some(c) => {
            let (log, writer) = DecisionLog::start(c, Arc::clone(&checks))
                .map_err(|e| format!("cannot open the decision log {:?}: {e}", c.target))?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
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
    let limits = config.limits;
    let authorization = AuthorizationServer::new(
        AuthorizationService::new(Arc::clone(&engine), config)
            .with_telemetry(Arc::clone(&checks), decision_log),
    )
    .max_decoding_message_size(limits.max_message_bytes);
    let leader = match &replication.role {
        Role::Leader => None,
        Role::Replica { leader, .. } => Some(leader.clone()),
    };
    let admin = proto::admin_server::AdminServer::new(
        admin::AdminService::new(Arc::clone(&engine)).with_leader(leader),
    )
    .max_decoding_message_size(limits.max_message_bytes);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let replication_service =
        ReplicationService::new(Arc::clone(&engine), replication.clone(), stopped.clone());
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let guard = conn::Guard::new(limits.max_failed_calls_per_sec);
    let metrics = metrics_listener.map(|l| {
        let sources = Telemetry {
            connections: Arc::clone(&guard),
            checks,
            rpc: Arc::clone(&rpc),
            engine: Arc::clone(&engine),
            replica: match &replication.role {
                Role::Leader => None,
                Role::Replica { status, .. } => Some(Arc::clone(status)),
            },
            watchers: replication_service.watcher_count(),
        };
        tokio::spawn(crate::telemetry::http::serve(l, Arc::new(sources), stopped))
    });
    let replication_service =
        proto::replication_server::ReplicationServer::new(replication_service)
            .max_decoding_message_size(64 << 20);
    let credentials: Option<auth::LiveCredentials> = security
        .credentials
        .clone()
        .map(|c| Arc::new(arc_swap::ArcSwap::new(c)));
    let (shutdown, stop) = oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(tls) = &security.tls {
        builder = builder.tls_config(tls.config())?;
    }
    // Outermost, so calls the auth layer refuses are timed with their code.
    let router = builder
        // Outermost first: every call is timed and counted, then
        // authenticated; one that fails authentication never takes an
        // in-flight permit.
        .layer(edge::EdgeLayer(crate::telemetry::layer::MetricsLayer::new(
            rpc,
        )))
        .layer(edge::EdgeLayer(auth::AuthLayer::new(credentials.clone())))
        .layer(edge::EdgeLayer(limits::LimitLayer::new(&limits)))
        .layer(edge::EdgeLayer(otel::TraceLayer))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authorization)
        .add_service(admin)
        .add_service(replication_service);
    // TCP_NODELAY: without it, a large response (a BatchCheck of 1,000
    // results) meets Nagle's algorithm and the peer's delayed ACK: ~40 ms.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
        .map({
            let guard = Arc::clone(&guard);
            move |accepted| accepted.map(|io| guard.wrap(io))
        });
    let join = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop.await;
    }));
    let follower = match replication.role {
        // INVARIANT: the engine was built from a loaded state, so a snapshot is in place.
        Role::Leader => {
            set_health(&health, true).await;
            None
        }
        Role::Replica {
            leader,
            status,
            max_lag,
        } => Some(tokio::spawn(follow(
            Arc::clone(&engine),
            FollowConfig {
                leader,
                max_lag,
                backoff_max: Duration::from_secs(5),
                security: security.follow,
            },
            status,
            health.clone(),
        ))),
    };
    Ok(ServerHandle {
        addr,
        health,
        metrics_addr,
        credentials,
        shutdown,
        join,
        stopping,
        connections: guard,
        follower,
        metrics,
        decision_log_writer,
    })
}

/// Loads the policy `rampart serve` starts from.
pub fn load_bootstrap(path: Option<&std::path::Path>) -> Result<State, String> {
    let (name, text) = match path {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?,
        ),
        None => (
            "built-in quickstart policy".to_owned(),
            QUICKSTART_POLICY.to_owned(),
        ),
    };
    policy_file::load_str(&text).map_err(|e| format!("{name}: {e}"))
}

/// Runs `rampart serve` until SIGINT or SIGTERM.
pub fn serve_main(args: ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Inside the runtime: the OTLP exporter's channel lives on it.
        let telemetry = otel::init(args.log_format);
        let code = serve(args).await;
        // Flush the spans of the shutdown too.
        tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .ok();
        code
    })
}

async fn serve(args: ServeArgs) -> ExitCode {
    let stop = shutdown_signal();
    // Installed now: SIGHUP's default action would end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // Credentials and TLS are checked before the store is touched.
    let security = match args
        .security
        .load(args.listen, args.follow.as_deref(), |k| {
            std::env::var(k).ok()
        }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    security.log(args.listen);
    let store: Arc<dyn Store> = match SledStore::open(&args.data_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!(
                "rampart: cannot open the store in `{}`: {e}",
                args.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let engine = match Engine::open(Arc::clone(&store)) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!(
                "rampart: cannot recover the state from `{}`: {e}",
                args.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let recovered = engine.load().revision();
    if let Some(leader) = &args.follow {
        if let Some(p) = &args.bootstrap {
            info!(file = %p.display(), "a replica takes its state from the leader; --bootstrap ignored");
        }
        info!(%leader, revision = recovered, "starting as a read replica");
    } else if recovered == 0 && args.no_bootstrap {
        info!("the store is empty and stays so (--no-bootstrap): waiting for `rampart ctl import`");
    } else if recovered == 0 {
        let state = match load_bootstrap(args.bootstrap.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                eprintln!("rampart: {e}");
                return ExitCode::from(65);
            }
        };
        let mutations = crate::model::policy_file::to_mutations(&state);
        let count = mutations.len();
        if let Err(e) = engine.bootstrap(mutations, "bootstrap").await {
            eprintln!("rampart: bootstrap failed: {e}");
            return ExitCode::FAILURE;
        }
        info!(
            mutations = count,
            source = %args.bootstrap.as_ref().map_or("built-in quickstart".to_owned(), |p| p.display().to_string()),
            "empty store bootstrapped"
        );
    } else {
        if let Some(p) = &args.bootstrap {
            info!(file = %p.display(), revision = recovered, "the store already holds a state; --bootstrap ignored");
        }
        info!(
            revision = recovered,
            ms = started.elapsed().as_millis() as u64,
            "state recovered from the store"
        );
    }
    let snapshot = engine.load();
    info!(
        tenants = snapshot.state().tenants.len(),
        revision = snapshot.revision(),
        matchers = snapshot.matcher_count(),
        data_dir = %args.data_dir.display(),
        "policy loaded"
    );
    let checkpoints = tokio::spawn(maintenance_loop(
        Arc::clone(&engine),
        Arc::clone(&store),
        args.checkpoint_every,
        args.retention(),
    ));
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rampart: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let options = ServerOptions {
        data_plane: args.data_plane(),
        replication: args.replication(),
        security,
        telemetry: args.telemetry.config(),
    };
    let handle = match start_with(listener, Arc::clone(&engine), options).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("rampart: cannot start the server: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!(addr = %handle.addr, role = if args.follow.is_some() { "replica" } else { "leader" }, "serving rampart.v1.Authorization, Admin and Replication");
    if let Some(at) = handle.metrics_addr {
        info!(url = %format!("http://{at}/metrics"), "serving metrics");
    }
    let reloads = tokio::spawn(reload_credentials(
        args.security.clone(),
        handle.credentials.clone(),
        hangup,
        TOKENS_POLL,
    ));
    stop.await;
    reloads.abort();
    info!("shutting down");
    handle
        .shutdown(Duration::from_millis(args.shutdown_grace_ms))
        .await;
    checkpoints.abort();
    let state = Arc::clone(engine.load().state());
    let done =
        tokio::task::spawn_blocking(move || store.checkpoint(&state).and_then(|()| store.flush()))
            .await;
    match done {
        Ok(Ok(())) => info!("store checkpointed and flushed"),
        Ok(Err(e)) => {
            error!(error = %e, "final checkpoint failed; the changelog still holds every change")
        }
        Err(e) => error!(error = %e, "final checkpoint task failed"),
    }
    ExitCode::SUCCESS
}

/// How often the tokens file is checked for a change: a Kubernetes Secret
/// volume is updated in place, and nothing signals the process.
const TOKENS_POLL: Duration = Duration::from_secs(10);

/// Reloads the credentials on SIGHUP and whenever the tokens file's
/// contents change. A file that cannot be read or parsed leaves the
/// credentials in use (the error names the entry, never a value). A server
/// started without credentials stays open: a reload cannot turn
/// authentication on or off, only change who gets in.
async fn reload_credentials(
    args: tls::SecurityArgs,
    live: Option<auth::LiveCredentials>,
    mut hangup: Option<tokio::signal::unix::Signal>,
    poll: Duration,
) {
    let read = |args: &tls::SecurityArgs| {
        args.tokens_file
            .as_deref()
            .and_then(|path| auth::Credentials::read_file(path).ok())
    };
    // Not read here: the file may have changed since `serve` read it at
    // startup (recovery can take a while), so the first tick reloads it.
    let mut seen: Option<String> = None;
    let mut first = true;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        let signalled = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match &mut hangup {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let Some(live) = &live else {
            if signalled {
                info!("SIGHUP: no credentials are configured, so there is nothing to reload");
            }
            continue;
        };
        let now = read(&args);
        if !signalled && now == seen {
            continue;
        }
        let quiet = std::mem::take(&mut first) && !signalled;
        seen.clone_from(&now);
        let trigger = if signalled {
            "SIGHUP"
        } else {
            "the tokens file changed"
        };
        if args.tokens_file.is_some() && now.is_none() {
            error!(
                trigger,
                "cannot read the tokens file; the credentials in use stay"
            );
            continue;
        }
        // Exactly the bytes just compared: a file being rewritten in place
        // is not read twice.
        match args.credentials_from(now.as_deref(), |k| std::env::var(k).ok()) {
            Ok(Some(credentials)) => {
                let (tokens, certs) = credentials.counts();
                if (tokens, certs) == (0, 0) && live.load().counts() != (0, 0) {
                    // Most likely a file caught half-written: refusing every
                    // call is the worse outcome.
                    error!(
                        trigger,
                        "the tokens file now holds no token and no client certificate; the credentials in use stay (empty it on purpose by restarting)"
                    );
                    continue;
                }
                live.store(Arc::new(credentials));
                if !quiet {
                    info!(
                        tokens,
                        client_cert_mappings = certs,
                        trigger,
                        "credentials reloaded"
                    );
                }
            }
            Ok(None) => {
                warn!(
                    trigger,
                    "no tokens file or RAMPART_TOKENS to reload from; the credentials in use stay"
                )
            }
            Err(e) => error!(
                trigger,
                "cannot reload the credentials: {e}; the ones in use stay"
            ),
        }
    }
}

/// Every few seconds: writes a checkpoint once `every` revisions have passed
/// since the last one (from a copy of the current state, an `Arc` clone,
/// off the writer), then compacts the changelog as `retention` allows.
/// Neither holds up checks or commits.
async fn maintenance_loop(
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    every: u64,
    retention: Retention,
) {
    let mut last = engine.load().revision();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let compacting = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || {
            let before = compacting.history()?.first;
            let cutoff = retention.cutoff(&*compacting, Timestamp::now())?;
            compacting.compact(cutoff).map(|first| (before, first))
        })
        .await
        {
            Ok(Ok((before, first))) if first > before => {
                info!(
                    removed = first - before,
                    oldest_retained = first,
                    "changelog compacted"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "compaction failed; will retry"),
            Err(e) => warn!(error = %e, "compaction task failed; will retry"),
        }
        let state = Arc::clone(engine.load().state());
        // A replica's bootstrap can move the revision back.
        last = last.min(state.revision);
        if state.revision < last.saturating_add(every.max(1)) {
            continue;
        }
        let revision = state.revision;
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.checkpoint(&state)).await {
            Ok(Ok(())) => {
                info!(revision, "checkpoint written");
                last = revision;
            }
            Ok(Err(e)) => warn!(error = %e, "checkpoint failed; will retry"),
            Err(e) => warn!(error = %e, "checkpoint task failed; will retry"),
        }
    }
}

/// Installs the SIGTERM/SIGINT handlers now, so a signal that arrives
/// before the caller starts waiting is not lost (and does not kill the
/// process with the default action); the future resolves on the first one.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(604_800)));
        for bad in ["", "7", "d", "7w", "-1d", "1.5h", "99999999999999999999d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains('`'), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn a_changed_tokens_file_is_reloaded_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        let entry = |name: &str, token: &str| {
            format!(
                "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n",
                crate::client::hash_hex(token)
            )
        };
        // As a Secret volume or an editor does it: a whole new file.
        let replace = |text: &str| {
            let new = dir.path().join("tokens.toml.new");
            std::fs::write(&new, text).unwrap();
            std::fs::rename(&new, &file).unwrap();
        };
        replace(&entry("first", "tok-first"));
        let args = tls::SecurityArgs {
            tokens_file: Some(file.clone()),
            ..tls::SecurityArgs::default()
        };
        let live: auth::LiveCredentials = Arc::new(arc_swap::ArcSwap::from_pointee(
            args.credentials(|_| None).unwrap().unwrap(),
        ));
        let task = tokio::spawn(reload_credentials(
            args,
            Some(Arc::clone(&live)),
            None,
            Duration::from_millis(20),
        ));
        let admits = |token: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
            live.load()
                .authenticate(&headers, &http::Extensions::new())
                .is_ok()
        };
        assert!(admits("tok-first"));
        // A broken file: the credentials in use stay.
        std::fs::write(&file, "[[token]]\nname = \"x\"\nsha256 = \"not-a-hash\"\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            admits("tok-first"),
            "a broken file replaced the credentials"
        );
        // A good one replaces them, with no signal.
        std::fs::write(&file, entry("second", "tok-second")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !admits("tok-second") {
            assert!(
                std::time::Instant::now() < deadline,
                "the changed file was not reloaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!admits("tok-first"), "a revoked token still gets in");
        task.abort();
    }
}
