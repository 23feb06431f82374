//! `rampart bench`: a load generator for a running server. It drives Check
//! or BatchCheck with N connections and M requests in flight for a bounded
//! time, and reports throughput and latency percentiles. Traffic goes only
//! to the address given (loopback by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::proto::authorization_client::AuthorizationClient;
use super::proto::{BatchCheckItem, BatchCheckRequest, CheckRequest};

/// Which RPC to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Check,
    Batch,
}

/// `rampart bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server to drive.
    #[arg(long, env = "RAMPART_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// `check` (one decision per call) or `batch` (BatchCheck of --batch-size items).
    #[arg(long, value_enum, default_value = "check")]
    pub mode: Mode,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
    /// Requests in flight at once, spread over the connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// How long to measure, in seconds (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration_secs: u64,
    /// Warm-up before measuring, in seconds.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
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
    pub token: Option<super::auth::Secret>,
    /// CA of an `https://` server (PEM).
    #[arg(long, env = "RAMPART_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
}

/// One request to cycle through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub tenant: String,
    pub subject: String,
    pub permission: String,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub mode: &'static str,
    pub calls: u64,
    pub errors: u64,
    pub decisions: u64,
    pub seconds: f64,
    pub calls_per_sec: f64,
    pub decisions_per_sec: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

fn quickstart_items() -> Vec<Item> {
    [
        ("alice", "documents:view"),
        ("alice", "documents:edit:locked"),
        ("alice", "documents:edit:readme"),
        ("bob", "documents:view"),
        ("carol", "documents:view"),
        ("nobody", "documents:view"),
    ]
    .into_iter()
    .map(|(s, p)| Item {
        tenant: "acme".into(),
        subject: s.into(),
        permission: p.into(),
    })
    .collect()
}

/// Parses a requests file: `TENANT SUBJECT PERMISSION` per line; `#` comments.
pub fn parse_items(text: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [tenant, subject, permission] = parts.as_slice() else {
            return Err(format!(
                "line {}: expected `TENANT SUBJECT PERMISSION`",
                n + 1
            ));
        };
        items.push(Item {
            tenant: (*tenant).into(),
            subject: (*subject).into(),
            permission: (*permission).into(),
        });
    }
    if items.is_empty() {
        return Err("no requests in the file".into());
    }
    Ok(items)
}

fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    u64::from(sorted[rank.min(sorted.len() - 1)])
}

/// Drives the server as `args` says.
pub async fn run(args: &BenchArgs, items: Vec<Item>) -> Result<Report, String> {
    let tls = super::tls::ClientTls::load(args.ca.as_deref(), None, None)?;
    let bearer = super::auth::Bearer::new(args.token.as_ref())?;
    let endpoint = super::tls::endpoint(&args.server, tls.as_ref())
        .map_err(|e| format!("bad --server `{}`: {e}", args.server))?
        .tcp_nodelay(true);
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..args.connections {
        channels.push(
            endpoint
                .connect()
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", args.server))?,
        );
    }
    let items = Arc::new(items);
    let batch: Arc<Vec<BatchCheckItem>> = Arc::new(
        (0..args.batch_size as usize)
            .map(|i| {
                let it = &items[i % items.len()];
                BatchCheckItem {
                    tenant: it.tenant.clone(),
                    subject: it.subject.clone(),
                    permission: it.permission.clone(),
                    correlation_id: i.to_string(),
                }
            })
            .collect(),
    );
    let warm_until = Instant::now() + Duration::from_secs(args.warmup_secs);
    let end = warm_until + Duration::from_secs(args.duration_secs);
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency as usize {
        let mut client = AuthorizationClient::with_interceptor(
            channels[worker % channels.len()].clone(),
            bearer.clone(),
        );
        let items = Arc::clone(&items);
        let batch = Arc::clone(&batch);
        let mode = args.mode;
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut next = worker;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let ok = match mode {
                    Mode::Check => {
                        let it = &items[next % items.len()];
                        next += 1;
                        client
                            .check(CheckRequest {
                                tenant: it.tenant.clone(),
                                subject: it.subject.clone(),
                                permission: it.permission.clone(),
                                consistency: None,
                                explain: false,
                            })
                            .await
                            .is_ok()
                    }
                    Mode::Batch => client
                        .batch_check(BatchCheckRequest {
                            items: (*batch).clone(),
                            consistency: None,
                            explain: false,
                        })
                        .await
                        .is_ok(),
                };
                if started < warm_until {
                    continue;
                }
                if ok {
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    latencies.push(us);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, err) = t.await.map_err(|e| format!("worker failed: {e}"))?;
        all.extend(lat);
        errors += err;
    }
    all.sort_unstable();
    let seconds = args.duration_secs as f64;
    let calls = all.len() as u64;
    let per_call = match args.mode {
        Mode::Check => 1,
        Mode::Batch => u64::from(args.batch_size),
    };
    Ok(Report {
        mode: match args.mode {
            Mode::Check => "check",
            Mode::Batch => "batch",
        },
        calls,
        errors,
        decisions: calls * per_call,
        seconds,
        calls_per_sec: calls as f64 / seconds,
        decisions_per_sec: (calls * per_call) as f64 / seconds,
        p50_us: percentile(&all, 50.0),
        p90_us: percentile(&all, 90.0),
        p99_us: percentile(&all, 99.0),
        max_us: all.last().copied().map_or(0, u64::from),
    })
}

/// Runs `rampart bench`.
pub fn bench_main(args: BenchArgs) -> ExitCode {
    let items = match &args.requests_file {
        None => quickstart_items(),
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
            if args.json {
                println!(
                    "{{\"mode\":\"{}\",\"calls\":{},\"errors\":{},\"decisions\":{},\"seconds\":{},\"calls_per_sec\":{:.0},\"decisions_per_sec\":{:.0},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}}",
                    r.mode,
                    r.calls,
                    r.errors,
                    r.decisions,
                    r.seconds,
                    r.calls_per_sec,
                    r.decisions_per_sec,
                    r.p50_us,
                    r.p90_us,
                    r.p99_us,
                    r.max_us
                );
            } else {
                println!(
                    "{} x{} conns, {} in flight, {} s: {} calls ({} errors), {:.0} calls/s, {:.0} decisions/s; latency p50 {} us, p90 {} us, p99 {} us, max {} us",
                    r.mode,
                    args.connections,
                    args.concurrency,
                    r.seconds,
                    r.calls,
                    r.errors,
                    r.calls_per_sec,
                    r.decisions_per_sec,
                    r.p50_us,
                    r.p90_us,
                    r.p99_us,
                    r.max_us
                );
            }
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
    use super::*;

    #[test]
    fn parses_request_files() {
        let items = parse_items("# comment\nacme alice documents:view\n\n t  u  p \n").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].permission, "p");
        assert!(parse_items("acme alice").unwrap_err().contains("line 1"));
        assert!(parse_items("# nothing").is_err());
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
