//! The gRPC server: the Authorization service, health, reflection, and
//! `rampart serve`.
//!
//! Owns the transport and the edge conversions; decisions come from
//! `policy`, snapshots from `engine`.

pub mod admin;
pub mod authorization;
pub mod convert;
pub mod loadgen;
pub mod proto;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;
use tracing::{error, info, warn};

pub use authorization::{AuthorizationService, DataPlaneConfig};
use proto::authorization_server::AuthorizationServer;

use crate::engine::Engine;
use crate::model::{State, policy_file};
use crate::store::Store;
use crate::store::sled::SledStore;

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
}

impl ServeArgs {
    fn data_plane(&self) -> DataPlaneConfig {
        DataPlaneConfig {
            max_batch: self.max_batch as usize,
            strict_catalog: self.strict_catalog,
            consistency_wait: Duration::from_millis(self.consistency_wait_ms),
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
    shutdown: oneshot::Sender<()>,
    join: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ServerHandle {
    /// Reports NOT_SERVING, stops accepting, and waits (at most `grace`) for
    /// in-flight calls to finish.
    pub async fn shutdown(self, grace: Duration) {
        set_health(&self.health, false).await;
        let _ = self.shutdown.send(());
        match tokio::time::timeout(grace, self.join).await {
            Ok(Ok(Ok(()))) => info!("server stopped"),
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

/// Serves the data plane on `listener` from `engine`. Health reports
/// SERVING once this returns (the engine always holds a snapshot).
pub async fn start(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: DataPlaneConfig,
) -> Result<ServerHandle, Box<dyn std::error::Error + Send + Sync>> {
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
    let authorization =
        AuthorizationServer::new(AuthorizationService::new(Arc::clone(&engine), config));
    let admin = proto::admin_server::AdminServer::new(admin::AdminService::new(engine));
    let (shutdown, stop) = oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authorization)
        .add_service(admin);
    // TCP_NODELAY: without it, a large response (a BatchCheck of 1,000
    // results) meets Nagle's algorithm and the peer's delayed ACK: ~40 ms.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let join = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop.await;
    }));
    // INVARIANT: the engine was built from a loaded state, so a snapshot is in place.
    set_health(&health, true).await;
    Ok(ServerHandle {
        addr,
        health,
        shutdown,
        join,
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
    init_logging();
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
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> ExitCode {
    let stop = shutdown_signal();
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
    if recovered == 0 {
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
    let checkpoints = tokio::spawn(checkpoint_loop(
        Arc::clone(&engine),
        Arc::clone(&store),
        args.checkpoint_every,
    ));
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rampart: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let handle = match start(listener, Arc::clone(&engine), args.data_plane()).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("rampart: cannot start the server: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!(addr = %handle.addr, "serving rampart.v1.Authorization and rampart.v1.Admin");
    stop.await;
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

/// Writes a checkpoint whenever `every` revisions have passed since the last
/// one, from a copy of the current state (an `Arc` clone), off the writer.
async fn checkpoint_loop(engine: Arc<Engine>, store: Arc<dyn Store>, every: u64) {
    let mut last = engine.load().revision();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let state = Arc::clone(engine.load().state());
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
