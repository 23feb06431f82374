//! `rampart serve`, assembled: the flags (`args.rs`, `security.rs`), the
//! store opened and recovered, the bootstrap, the node started
//! (`node.rs`), the maintenance loop (`maintenance.rs`), credential reload
//! (`reload.rs`), signals and the order of shutdown. The one composition
//! root: nothing below `cli` opens a store or starts a task for itself.

pub mod args;
mod maintenance;
pub mod node;
pub mod pg;
mod reload;
pub mod security;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{error, info};

pub use args::{ServeArgs, parse_duration};
pub use node::{HttpOptions, ServerHandle, ServerOptions, start, start_with};

use super::config::{ConfigError, built_section};
use crate::engine::{Engine, StoreHealth};
use crate::model::{State, policy_file};
use crate::server::ext_authz::{ExtAuthzConfig, Mapping};
use crate::store::FreeSpace;
use crate::store::sled::SledStore;
use crate::store::{Store, StoreError, blocking};
use crate::telemetry::traces;

/// Why the policy `rampart serve` starts from cannot be used.
#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{name}: {errors}")]
    Invalid {
        name: String,
        errors: policy_file::LoadErrors,
    },
}

/// Loads the policy `rampart serve` starts from: `path`, or the built-in
/// quickstart policy.
pub fn load_bootstrap(path: Option<&Path>) -> Result<State, BootstrapError> {
    let (name, text) = match path {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|source| BootstrapError::Read {
                path: p.to_owned(),
                source,
            })?,
        ),
        None => (
            "built-in quickstart policy".to_owned(),
            crate::model::QUICKSTART_POLICY.to_owned(),
        ),
    };
    policy_file::load_str(&text).map_err(|errors| BootstrapError::Invalid { name, errors })
}

/// The `[ext_authz]` table of the config file at `config`, built into the
/// mapping Envoy's Check uses; `None` without a file or without the table.
/// An error names the file and the key.
pub fn ext_authz_mapping(config: Option<&Path>) -> Result<Option<Arc<Mapping>>, ConfigError> {
    built_section(config, "ext_authz", |c: &ExtAuthzConfig| {
        Mapping::build(c).map(Arc::new)
    })
}

/// A store and the engine recovered from it.
pub type Opened = (Arc<dyn Store>, Arc<Engine>);

/// Opens the store in `data_dir` and recovers the engine from it. A
/// replica's store is a disposable copy of its leader's: when it does not
/// open or recover as corrupt, it is moved aside (renamed
/// `<data_dir>.corrupt-<unix seconds>`, logged) and the replica starts
/// empty, to bootstrap again from the leader. A leader's is never touched:
/// the error (naming the remedy) is the answer.
pub fn open_store(data_dir: &Path, replica: bool) -> Result<Opened, String> {
    open_store_with(data_dir, replica, None, crate::engine::STORE_TIMEOUT)
}

/// [`open_store`], with writes refused while the data dir's filesystem is
/// below `space`'s watermark (`--min-free-space`), and each store write
/// bounded by `store_timeout` (`--store-timeout-ms`).
pub fn open_store_with(
    data_dir: &Path,
    replica: bool,
    space: Option<Arc<FreeSpace>>,
    store_timeout: Duration,
) -> Result<Opened, String> {
    let open = || -> Result<Opened, (bool, String)> {
        let store: Arc<dyn Store> = match SledStore::open(data_dir) {
            Ok(s) => Arc::new(match &space {
                Some(space) => s.with_free_space(Arc::clone(space)),
                None => s,
            }),
            Err(e) => {
                let corrupt = matches!(e, StoreError::Corrupt { .. });
                return Err((
                    corrupt,
                    format!("cannot open the store in `{}`: {e}", data_dir.display()),
                ));
            }
        };
        match Engine::open(Arc::clone(&store)) {
            Ok(e) => Ok((store, Arc::new(e.with_store_timeout(store_timeout)))),
            Err(e) => Err((
                matches!(e, StoreError::Corrupt { .. }),
                format!(
                    "cannot recover the state from `{}`: {e}",
                    data_dir.display()
                ),
            )),
        }
    };
    match open() {
        Ok(opened) => Ok(opened),
        Err((true, why)) if replica => {
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut aside = data_dir.as_os_str().to_owned();
            aside.push(format!(".corrupt-{seconds}"));
            let aside = std::path::PathBuf::from(aside);
            // sled's threads may hold the folder a moment after the failed
            // open; the rename does not mind.
            std::fs::rename(data_dir, &aside).map_err(|e| {
                format!(
                    "{why}; moving it aside to `{}` failed too: {e}",
                    aside.display()
                )
            })?;
            tracing::warn!(error = %why, moved_to = %aside.display(), "a replica's store is corrupt: moved it aside, bootstrapping again from the leader");
            open().map_err(|(_, why)| why)
        }
        Err((_, why)) => Err(why),
    }
}

/// The exit code of a node whose store cannot be repaired in place (a
/// write stuck in sled, or a store that no longer holds what was
/// acknowledged): 75, `EX_TEMPFAIL`, for the orchestrator to restart it.
pub const EXIT_STORE_STUCK: u8 = 75;

/// Runs `rampart serve` until SIGINT or SIGTERM, or until its store cannot
/// be repaired in place ([`EXIT_STORE_STUCK`]).
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
    let code = runtime.block_on(async {
        // Inside the runtime: the OTLP exporter's channel lives on it.
        let telemetry = traces::init(args.log_format);
        let code = serve(args).await;
        // Flush the spans of the shutdown too.
        tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .ok();
        code
    });
    // Not a plain drop, which waits for every blocking thread: a store
    // write stuck in sled never returns.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// The HTTP listener's settings from `--http-listen`, `--http-public-url`
/// and the `[authzen]` table; an error is the exit code and its message.
fn http_options(
    args: &ServeArgs,
    security: &security::Security,
) -> Result<Option<node::HttpOptions>, (u8, String)> {
    use crate::server::json::authzen;
    let authzen = built_section(
        args.config.as_deref(),
        "authzen",
        |c: &authzen::MappingConfig| authzen::Mapping::new(c),
    )
    .map_err(|e| (64, e.to_string()))?;
    let Some(listen) = args.http_listen else {
        if authzen.is_some() {
            tracing::warn!(
                "the config has an `[authzen]` table but --http-listen is not set: AuthZEN is not served"
            );
        }
        return Ok(None);
    };
    args.security
        .refuse_unprotected(security.credentials.is_some(), listen)
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    Ok(Some(node::HttpOptions {
        listen,
        authzen,
        public_url: args.http_public_url.clone(),
    }))
}

async fn serve(args: ServeArgs) -> ExitCode {
    let scope = match args.scope() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(64);
        }
    };
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
    let http = match http_options(&args, &security) {
        Ok(h) => h,
        Err((code, message)) => {
            eprintln!("rampart: {message}");
            return ExitCode::from(code);
        }
    };
    // The `[ext_authz]` mapping too: a bad one names its key, exit 64.
    let ext_authz = match ext_authz_mapping(args.config.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(64);
        }
    };
    match &ext_authz {
        Some(m) => info!(
            routes = m.routes().len(),
            "serving envoy.service.auth.v3.Authorization with the `[ext_authz]` mapping"
        ),
        None => info!(
            "no `[ext_authz]` table in the config: envoy.service.auth.v3.Authorization denies every request (NOT_CONFIGURED)"
        ),
    }
    let started = std::time::Instant::now();
    if let Some(scope) = scope {
        // A replica of some tenants: no store (engine/scope.rs).
        info!(
            tenants = %scope.listed(),
            leader = args.follow.as_deref().unwrap_or_default(),
            "starting as a read replica of some tenants (--tenants): the state is kept in memory, --data-dir is not used"
        );
        let engine = Arc::new(Engine::scoped(scope));
        let parts = Assembled {
            store: None,
            engine,
            security,
            http,
            ext_authz,
            free_space: None,
        };
        return run(args, parts, stop, hangup).await;
    }
    let free_space = (args.min_free_space > 0 && args.store.is_none())
        .then(|| Arc::new(FreeSpace::statvfs(&args.data_dir, args.min_free_space)));
    let opened = match args.store.clone() {
        Some(url) => {
            pg::open_postgres(
                url,
                args.store_ca.clone(),
                Duration::from_millis(args.store_timeout_ms),
            )
            .await
        }
        None => open_store_with(
            &args.data_dir,
            args.follow.is_some(),
            free_space.clone(),
            Duration::from_millis(args.store_timeout_ms),
        ),
    };
    let (store, engine) = match opened {
        Ok(opened) => opened,
        Err(message) => {
            error!("{message}");
            eprintln!("rampart: {message}");
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
        let bootstrapped = engine.bootstrap(mutations, "bootstrap").await;
        if bootstrapped.is_err()
            && let Ok(Some(revision)) = engine.follow_shared().await
            && revision > 0
        {
            // Nodes started together on an empty shared store: another
            // one bootstrapped it first; this one follows it.
            info!(
                revision,
                "another node bootstrapped the shared store first: following it"
            );
        } else if let Err(e) = bootstrapped {
            eprintln!("rampart: bootstrap failed: {e}");
            if let StoreHealth::Stuck(_) = &*engine.store_health().borrow() {
                return ExitCode::from(EXIT_STORE_STUCK);
            }
            return ExitCode::FAILURE;
        } else {
            info!(
                mutations = count,
                source = %args.bootstrap.as_ref().map_or("built-in quickstart".to_owned(), |p| p.display().to_string()),
                "empty store bootstrapped"
            );
        }
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
    let parts = Assembled {
        store: Some(store),
        engine,
        security,
        http,
        ext_authz,
        free_space,
    };
    run(args, parts, stop, hangup).await
}

/// What `serve` assembled before it listens.
struct Assembled {
    /// `None` for a replica of some tenants (`--tenants`), which keeps its
    /// state in memory.
    store: Option<Arc<dyn Store>>,
    engine: Arc<Engine>,
    security: security::Security,
    http: Option<node::HttpOptions>,
    ext_authz: Option<Arc<Mapping>>,
    free_space: Option<Arc<FreeSpace>>,
}

/// Serves the node until a signal or a stuck store, then shuts down in
/// order (and, with a store, checkpoints it).
async fn run(
    args: ServeArgs,
    parts: Assembled,
    stop: impl std::future::Future<Output = ()>,
    hangup: Option<tokio::signal::unix::Signal>,
) -> ExitCode {
    let Assembled {
        store,
        engine,
        security,
        http,
        ext_authz,
        free_space,
    } = parts;
    let checkpoints = store.as_ref().map(|store| {
        tokio::spawn(maintenance::maintenance_loop(
            Arc::clone(&engine),
            Arc::clone(store),
            args.checkpoint_every,
            args.retention(),
        ))
    });
    let repairs = tokio::spawn(maintenance::repair_loop(Arc::clone(&engine)));
    // A shared store (PostgreSQL): follow the other nodes' writes.
    let follows = store.as_ref().filter(|s| s.shared()).map(|_| {
        tokio::spawn(maintenance::follow_shared_loop(
            Arc::clone(&engine),
            Duration::from_millis(args.poll_store_ms),
        ))
    });
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rampart: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let options = node::ServerOptions {
        data_plane: args.data_plane(),
        replication: args.replication(),
        security,
        telemetry: args.telemetry.config(),
        free_space,
        http,
        ext_authz,
    };
    let handle = match node::start_with(listener, Arc::clone(&engine), options).await {
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
    if let Some(at) = handle.http_addr {
        info!(addr = %at, "serving the HTTP/JSON API (AuthZEN, /v1/check, /openapi.json)");
    }
    let reloads = tokio::spawn(reload::reload_credentials(
        args.security.clone(),
        handle.credentials.clone(),
        hangup,
        reload::TOKENS_POLL,
    ));
    let stuck = tokio::select! {
        () = stop => None,
        why = stuck(&engine) => Some(why),
    };
    reloads.abort();
    repairs.abort();
    if let Some(follows) = follows {
        follows.abort();
    }
    match &stuck {
        None => info!("shutting down"),
        Some(why) => error!(
            reason = %why,
            data_dir = %args.data_dir.display(),
            code = EXIT_STORE_STUCK,
            "the store cannot be repaired in place: shutting down and exiting with code {EXIT_STORE_STUCK} to be restarted; free space in the data dir's filesystem first (every acknowledged change is on disk)"
        ),
    }
    handle
        .shutdown(Duration::from_millis(args.shutdown_grace_ms))
        .await;
    if let Some(checkpoints) = checkpoints {
        checkpoints.abort();
    }
    if stuck.is_some() {
        // Nothing more is written: the store may hold a thread forever.
        return ExitCode::from(EXIT_STORE_STUCK);
    }
    let Some(store) = store else {
        return ExitCode::SUCCESS;
    };
    let state = Arc::clone(engine.load().state());
    let last = blocking(move || store.checkpoint(&state).and_then(|()| store.flush()));
    match tokio::time::timeout(FINAL_CHECKPOINT_TIMEOUT, last).await {
        Ok(Ok(())) => info!("store checkpointed and flushed"),
        Ok(Err(e)) => {
            error!(error = %e, "final checkpoint failed; the changelog still holds every change")
        }
        Err(_) => error!(
            "the final checkpoint did not finish within {FINAL_CHECKPOINT_TIMEOUT:?}; the changelog still holds every change"
        ),
    }
    ExitCode::SUCCESS
}

/// How long shutdown waits for the final checkpoint (a 1M-user state takes
/// seconds; a store stuck on a full disk, forever).
const FINAL_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(120);

/// Resolves, with the reason, once the engine's store is stuck (never
/// while it is writable or failed and being repaired).
async fn stuck(engine: &Engine) -> String {
    let mut health = engine.store_health();
    loop {
        if let StoreHealth::Stuck(why) = &*health.borrow_and_update() {
            return why.clone();
        }
        if health.changed().await.is_err() {
            // The engine is gone: never stuck.
            std::future::pending::<()>().await;
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
