//! `rampart bench`: a load generator for a running server. It drives Check,
//! BatchCheck or Envoy's Check (ext_authz) with N connections and M requests in flight for a bounded
//! time, and reports throughput and latency percentiles. Traffic goes only
//! to the address given (loopback by default).
//!
//! `--mode mutate` drives the Admin API instead: M writers each toggle a
//! role binding of their own users (assign, then unassign, ...), and after
//! every acknowledged change send a Check at the revision the reply gave,
//! which must show the change. It reports acknowledged mutations/s, the
//! acknowledgement latency, and mutation → visible latency (from sending the
//! mutation to the Check answer that reflects it).

//!
//! - `args.rs`: the command line.
//! - `items.rs`: the requests a load run cycles through.
//! - `check.rs`: `--mode check`, `--mode batch` and `--mode ext-authz`.
//! - `envoy.rs`: a check request as the CheckRequest Envoy would send.
//! - `mutate.rs`: `--mode mutate`.
//! - `report.rs`: what a run measured, and how it is printed.

mod args;
mod check;
mod envoy;
mod items;
mod mutate;
mod report;

use std::process::ExitCode;

use tonic::transport::Channel;

pub use args::{BenchArgs, EnvoyHeaders, Mode};
pub use items::{Item, ItemsError, parse_items};
pub use mutate::{MUTATE_PERMISSION, MUTATE_ROLE, MUTATE_USERS_PER_WRITER, mutate_user};
pub use report::Report;

use crate::client::ClientError;

/// Why a run could not be made (the calls that fail during one are counted
/// in its report instead).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The TLS settings or the token.
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("bad --server `{server}`: {source}")]
    BadServer { server: String, source: ClientError },
    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: String,
        source: tonic::transport::Error,
    },
    #[error("no connection")]
    NoConnection,
    /// `--mode mutate`'s setup was refused.
    #[error("setup: {what} in tenant `{tenant}`: {:?}: {}", status.code(), status.message())]
    Setup {
        what: &'static str,
        tenant: String,
        status: tonic::Status,
    },
    #[error("worker failed: {0}")]
    Worker(tokio::task::JoinError),
    #[error("writer failed: {0}")]
    Writer(tokio::task::JoinError),
}

/// Drives the server as `args` says.
pub async fn run(args: &BenchArgs, items: Vec<Item>) -> Result<Report, BenchError> {
    let tls = crate::client::ClientTls::load(args.ca.as_deref(), None, None)?;
    let bearer = crate::client::Bearer::new(args.token.as_ref())?;
    let endpoint = crate::client::endpoint(&args.server, tls.as_ref())
        .map_err(|source| BenchError::BadServer {
            server: args.server.clone(),
            source,
        })?
        .tcp_nodelay(true);
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..args.connections {
        channels.push(
            endpoint
                .connect()
                .await
                .map_err(|source| BenchError::Connect {
                    server: args.server.clone(),
                    source,
                })?,
        );
    }
    if args.mode == Mode::Mutate {
        let checks = match &args.check_server {
            None => channels.clone(),
            Some(server) => {
                let endpoint = crate::client::endpoint(server, tls.as_ref())
                    .map_err(|source| BenchError::BadServer {
                        server: server.clone(),
                        source,
                    })?
                    .tcp_nodelay(true);
                let mut checks = Vec::new();
                for _ in 0..args.connections {
                    checks.push(endpoint.connect().await.map_err(|source| {
                        BenchError::Connect {
                            server: server.clone(),
                            source,
                        }
                    })?);
                }
                checks
            }
        };
        return mutate::run_mutate(args, &channels, &checks).await;
    }
    check::run_load(args, &channels, bearer, items).await
}

/// Runs `rampart bench`.
pub fn bench_main(args: BenchArgs) -> ExitCode {
    let items = match &args.requests_file {
        None => items::quickstart_items(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|t| parse_items(&t).map_err(|e| format!("{}: {e}", path.display())))
        {
            Ok(items) => items,
            Err(e) => {
                eprintln!("rampart bench: {e}");
                return ExitCode::from(64);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, items)) {
        Ok(r) => {
            report::print(&args, &r);
            if r.errors > 0 && r.calls == 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("rampart bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// The mutate mode against an in-process server on the quickstart: every
    /// acknowledged toggle is visible at its revision, and a second run on
    /// the same server (setup already done, users left bound) works too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mutate_mode_sees_every_acknowledged_change() {
        let state = crate::cli::serve::load_bootstrap(None).unwrap();
        let engine = Arc::new(crate::engine::Engine::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = crate::cli::serve::start(listener, engine, Default::default())
            .await
            .unwrap();
        let args = |duration_secs| BenchArgs {
            server: format!("http://{}", handle.addr),
            check_server: None,
            mode: Mode::Mutate,
            tenant: "acme".into(),
            connections: 1,
            concurrency: 3,
            duration_secs,
            warmup_secs: 0,
            batch_size: 1,
            envoy_headers: EnvoyHeaders::All,
            requests_file: None,
            json: false,
            token: None,
            ca: None,
            rate: None,
        };
        for round in 0..3 {
            let mut a = args(1);
            // The second round confirms through `--check-server` (here the
            // same node, by another connection).
            if round == 1 {
                a.check_server = Some(a.server.clone());
            }
            // The third offers a fixed rate: 3 writers, 30/s in all, so
            // about 30 in its second.
            if round == 2 {
                a.rate = Some(30);
            }
            let r = run(&a, Vec::new()).await.unwrap();
            assert_eq!((r.mode, r.errors, r.mismatches), ("mutate", 0, 0));
            assert!(r.calls > 0);
            assert_eq!(r.decisions, r.calls);
            if round == 2 {
                assert!(r.calls <= 33, "{} mutations at 30/s for 1 s", r.calls);
            }
        }
        handle.shutdown(Duration::from_secs(1)).await;
    }

    /// `--mode ext-authz` against a server with benches/ext_authz.toml:
    /// every request reaches a decision of the policy (none is a deny of
    /// the mapping, which would count as an error).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ext_authz_mode_reaches_the_same_decisions() {
        let state = crate::cli::serve::load_bootstrap(None).unwrap();
        let engine = Arc::new(crate::engine::Engine::new(state));
        let config =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ext_authz.toml");
        let mapping = crate::cli::serve::ext_authz_mapping(Some(&config)).unwrap();
        assert!(mapping.is_some());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = crate::cli::serve::start_with(
            listener,
            engine,
            crate::cli::serve::ServerOptions {
                ext_authz: mapping,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let args = BenchArgs {
            server: format!("http://{}", handle.addr),
            check_server: None,
            mode: Mode::ExtAuthz,
            tenant: "acme".into(),
            connections: 1,
            concurrency: 4,
            duration_secs: 1,
            warmup_secs: 0,
            batch_size: 1,
            envoy_headers: EnvoyHeaders::All,
            requests_file: None,
            json: false,
            token: None,
            ca: None,
            rate: None,
        };
        let r = run(&args, items::quickstart_items()).await.unwrap();
        assert_eq!((r.mode, r.errors), ("ext-authz", 0));
        assert!(r.calls > 0);
        handle.shutdown(Duration::from_secs(1)).await;
    }
}
