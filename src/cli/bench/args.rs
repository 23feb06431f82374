//! `rampart bench`'s command line.

use std::path::PathBuf;

/// Which RPC to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Check,
    Batch,
    /// Envoy's `envoy.service.auth.v3.Authorization/Check`.
    ExtAuthz,
    Mutate,
}

/// `--mode ext-authz`: which headers each Envoy request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EnvoyHeaders {
    /// Those of a typical request (`:authority`, `user-agent`, `accept`…):
    /// what Envoy sends by default, every header.
    All,
    /// Only `x-tenant`, `x-user` and `x-request-id`: what Envoy sends with
    /// `allowed_headers` (deploy/envoy/envoy.yaml).
    Mapped,
}

/// `rampart bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server to drive.
    #[arg(long, env = "RAMPART_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// `--mode mutate`: confirm each change with a Check on this server
    /// instead (another node on the same PostgreSQL store, say), so the
    /// visible latency is the time until that node answers with it.
    #[arg(long, value_name = "URL")]
    pub check_server: Option<String>,
    /// `check` (one decision per call), `batch` (BatchCheck of --batch-size
    /// items), `ext-authz` (Envoy's Check: each request as Envoy would send
    /// it, the permission as the path `/seg/seg/...`, tenant and subject in
    /// the `x-tenant` and `x-user` headers; the server needs a mapping such
    /// as benches/ext_authz.toml), or `mutate` (--concurrency writers toggle
    /// role bindings in --tenant through the Admin API, each change
    /// confirmed by a Check).
    #[arg(long, value_enum, default_value = "check")]
    pub mode: Mode,
    /// The tenant `--mode mutate` changes. It adds a catalog entry
    /// `rampart-bench:toggle`, a role `rampart-bench-toggle` holding it, and
    /// 4 users per writer (`rampart-bench-w<W>-<K>`), then toggles their
    /// bindings to that role.
    #[arg(long, default_value = "acme")]
    pub tenant: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
    /// Requests in flight at once, spread over the connections (in
    /// `--mode mutate`: writers).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// How long to measure, in seconds (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration_secs: u64,
    /// Warm-up before measuring, in seconds.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// `--mode ext-authz`: `all` the headers of a typical request (Envoy's
    /// default), or only the `mapped` ones (Envoy with `allowed_headers`).
    #[arg(long, value_enum, default_value = "all")]
    pub envoy_headers: EnvoyHeaders,
    /// Items per BatchCheck.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,
    /// Requests to cycle through, one per line: `TENANT SUBJECT PERMISSION`.
    /// Without it, a mix over the quickstart policy.
    #[arg(long)]
    pub requests_file: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Bearer token to send with every call.
    #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true)]
    pub token: Option<crate::client::Secret>,
    /// CA of an `https://` server (PEM).
    #[arg(long, env = "RAMPART_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// `--mode mutate`: offer this many mutations per second in all,
    /// spread evenly over the writers (an open loop while the writers keep
    /// up), instead of each writer sending its next one as soon as the
    /// last is confirmed.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
}
