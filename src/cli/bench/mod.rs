//! `rampart bench`: a load generator for a running server. It drives Check
//! or BatchCheck with N connections and M requests in flight for a bounded
//! time, and reports throughput and latency percentiles. Traffic goes only
//! to the address given (loopback by default).
//!
//! `--mode mutate` drives the Admin API instead: M writers each toggle a
//! role binding of their own users (assign, then unassign, ...), and after
//! every acknowledged change send a Check at the revision the reply gave,
//! which must show the change. It reports acknowledged mutations/s, the
//! acknowledgement latency, and mutation → visible latency (from sending the
//! mutation to the Check answer that reflects it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::proto::admin_client::AdminClient;
use crate::proto::authorization_client::AuthorizationClient;
use crate::proto::consistency::Requirement;
use crate::proto::{
    AddUserRequest, AssignRequest, BatchCheckItem, BatchCheckRequest, CatalogEntry, CheckRequest,
    Consistency, CreateRoleRequest, Decision, DefineCatalogEntryRequest, GrantRequest, GrantSpec,
    UnassignRequest,
};

/// Which RPC to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Check,
    Batch,
    Mutate,
}

/// The catalog entry, role and user names `--mode mutate` adds to its tenant.
pub const MUTATE_PERMISSION: &str = "rampart-bench:toggle";
pub const MUTATE_ROLE: &str = "rampart-bench-toggle";
/// Users per writer in `--mode mutate`; a writer cycles through them.
pub const MUTATE_USERS_PER_WRITER: usize = 4;

/// The id of `--mode mutate`'s user `k` of writer `writer`.
pub fn mutate_user(writer: usize, k: usize) -> String {
    format!("rampart-bench-w{writer}-{k}")
}

/// `rampart bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server to drive.
    #[arg(long, env = "RAMPART_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// `check` (one decision per call), `batch` (BatchCheck of --batch-size
    /// items), or `mutate` (--concurrency writers toggle role bindings in
    /// --tenant through the Admin API, each change confirmed by a Check).
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
    /// `--mode mutate` only (zero otherwise): checks at the acknowledged
    /// revision that did not show the change (also counted in `errors`).
    pub mismatches: u64,
    /// `--mode mutate` only: from sending a mutation to the Check answer
    /// that shows it, for the `calls` that were confirmed.
    pub visible_p50_us: u64,
    pub visible_p90_us: u64,
    pub visible_p99_us: u64,
    pub visible_max_us: u64,
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

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Drives the server as `args` says.
pub async fn run(args: &BenchArgs, items: Vec<Item>) -> Result<Report, String> {
    let tls = crate::client::ClientTls::load(args.ca.as_deref(), None, None)
        .map_err(|e| e.to_string())?;
    let bearer = crate::client::Bearer::new(args.token.as_ref()).map_err(|e| e.to_string())?;
    let endpoint = crate::client::endpoint(&args.server, tls.as_ref())
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
    if args.mode == Mode::Mutate {
        return run_mutate(args, &channels).await;
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
                    Mode::Mutate => false,
                };
                if started < warm_until {
                    continue;
                }
                if ok {
                    latencies.push(micros(started.elapsed()));
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
        Mode::Check | Mode::Mutate => 1,
        Mode::Batch => u64::from(args.batch_size),
    };
    Ok(Report {
        mode: match args.mode {
            Mode::Check => "check",
            Mode::Batch => "batch",
            Mode::Mutate => "mutate",
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
        mismatches: 0,
        visible_p50_us: 0,
        visible_p90_us: 0,
        visible_p99_us: 0,
        visible_max_us: 0,
    })
}

/// Whether an Admin reply is a success, or a refusal that says the thing
/// is already there (setup is idempotent across runs).
fn created<T>(reply: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
    match reply {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s),
    }
}

/// `--mode mutate`'s setup, as the operator: the catalog entry, the role
/// holding it, and every writer's users.
async fn mutate_setup(args: &BenchArgs, channel: Channel) -> Result<(), String> {
    let mut admin = AdminClient::new(channel);
    let tenant = args.tenant.clone();
    let failed = |what: &str, s: tonic::Status| {
        format!(
            "setup: {what} in tenant `{tenant}`: {:?}: {}",
            s.code(),
            s.message()
        )
    };
    created(
        admin
            .define_catalog_entry(DefineCatalogEntryRequest {
                entry: Some(CatalogEntry {
                    permission: MUTATE_PERMISSION.into(),
                    category: "rampart bench".into(),
                    description: "toggled by `rampart bench --mode mutate`".into(),
                    stability: "stable".into(),
                    builtin: false,
                }),
                ..Default::default()
            })
            .await,
    )
    .map_err(|s| failed("define the catalog entry", s))?;
    created(
        admin
            .create_role(CreateRoleRequest {
                tenant: tenant.clone(),
                role: MUTATE_ROLE.into(),
                description: "toggled by `rampart bench --mode mutate`".into(),
                ..Default::default()
            })
            .await,
    )
    .map_err(|s| failed("create the role", s))?;
    created(
        admin
            .grant(GrantRequest {
                tenant: tenant.clone(),
                role: MUTATE_ROLE.into(),
                grant: Some(GrantSpec {
                    effect: "allow".into(),
                    pattern: MUTATE_PERMISSION.into(),
                }),
                ..Default::default()
            })
            .await,
    )
    .map_err(|s| failed("grant the role", s))?;
    for writer in 0..args.concurrency as usize {
        for k in 0..MUTATE_USERS_PER_WRITER {
            created(
                admin
                    .add_user(AddUserRequest {
                        tenant: tenant.clone(),
                        user: mutate_user(writer, k),
                        status: "active".into(),
                        ..Default::default()
                    })
                    .await,
            )
            .map_err(|s| failed("add a user", s))?;
        }
    }
    Ok(())
}

/// A Check of `user` for the toggled permission, at `revision` or newer:
/// whether it is allowed.
async fn toggled(
    client: &mut AuthorizationClient<Channel>,
    tenant: &str,
    user: &str,
    revision: u64,
) -> Result<bool, tonic::Status> {
    let reply = client
        .check(CheckRequest {
            tenant: tenant.to_owned(),
            subject: user.to_owned(),
            permission: MUTATE_PERMISSION.into(),
            consistency: Some(Consistency {
                requirement: Some(Requirement::AtLeastRevision(revision)),
            }),
            explain: false,
        })
        .await?;
    Ok(reply.into_inner().decision == Decision::Allow as i32)
}

/// What one writer measured.
#[derive(Debug, Default)]
struct WriterResult {
    ack: Vec<u32>,
    visible: Vec<u32>,
    errors: u64,
    mismatches: u64,
}

async fn mutate_writer(
    channel: Channel,
    tenant: String,
    writer: usize,
    warm_until: Instant,
    end: Instant,
) -> WriterResult {
    let mut admin = AdminClient::new(channel.clone());
    let mut check = AuthorizationClient::new(channel);
    let users: Vec<String> = (0..MUTATE_USERS_PER_WRITER)
        .map(|k| mutate_user(writer, k))
        .collect();
    let mut out = WriterResult::default();
    // Whether each user holds the role now; `None`: ask the server first.
    let mut bound: Vec<Option<bool>> = vec![None; users.len()];
    let mut step = 0usize;
    loop {
        let k = step % users.len();
        step += 1;
        let user = &users[k];
        let holds = match bound[k] {
            Some(b) => b,
            None => match toggled(&mut check, &tenant, user, 0).await {
                Ok(b) => *bound[k].insert(b),
                Err(_) => {
                    let now = Instant::now();
                    if now >= warm_until {
                        out.errors += 1;
                    }
                    if now >= end {
                        break;
                    }
                    continue;
                }
            },
        };
        let started = Instant::now();
        if started >= end {
            break;
        }
        let measuring = started >= warm_until;
        let reply = if holds {
            admin
                .unassign(UnassignRequest {
                    tenant: tenant.clone(),
                    subject: user.clone(),
                    role: MUTATE_ROLE.into(),
                    ..Default::default()
                })
                .await
        } else {
            admin
                .assign(AssignRequest {
                    tenant: tenant.clone(),
                    subject: user.clone(),
                    role: MUTATE_ROLE.into(),
                    ..Default::default()
                })
                .await
        };
        let acked = started.elapsed();
        let revision = match reply {
            Ok(r) => r.into_inner().revision,
            Err(_) => {
                // Ask the server where this user stands before the next try.
                bound[k] = None;
                if measuring {
                    out.errors += 1;
                }
                continue;
            }
        };
        let want = !holds;
        bound[k] = Some(want);
        let answer = toggled(&mut check, &tenant, user, revision).await;
        let visible = started.elapsed();
        if !measuring {
            continue;
        }
        out.ack.push(micros(acked));
        match answer {
            Ok(now) if now == want => out.visible.push(micros(visible)),
            Ok(_) => {
                out.mismatches += 1;
                out.errors += 1;
            }
            Err(_) => out.errors += 1,
        }
    }
    out
}

/// `--mode mutate`: see the module comment.
async fn run_mutate(args: &BenchArgs, channels: &[Channel]) -> Result<Report, String> {
    let first = channels.first().ok_or("no connection")?;
    mutate_setup(args, first.clone()).await?;
    let warm_until = Instant::now() + Duration::from_secs(args.warmup_secs);
    let end = warm_until + Duration::from_secs(args.duration_secs);
    let tasks: Vec<_> = (0..args.concurrency as usize)
        .map(|writer| {
            tokio::spawn(mutate_writer(
                channels[writer % channels.len()].clone(),
                args.tenant.clone(),
                writer,
                warm_until,
                end,
            ))
        })
        .collect();
    let mut total = WriterResult::default();
    for t in tasks {
        let r = t.await.map_err(|e| format!("writer failed: {e}"))?;
        total.ack.extend(r.ack);
        total.visible.extend(r.visible);
        total.errors += r.errors;
        total.mismatches += r.mismatches;
    }
    total.ack.sort_unstable();
    total.visible.sort_unstable();
    let seconds = args.duration_secs as f64;
    let calls = total.ack.len() as u64;
    let confirmed = total.visible.len() as u64;
    Ok(Report {
        mode: "mutate",
        calls,
        errors: total.errors,
        decisions: confirmed,
        seconds,
        calls_per_sec: calls as f64 / seconds,
        decisions_per_sec: confirmed as f64 / seconds,
        p50_us: percentile(&total.ack, 50.0),
        p90_us: percentile(&total.ack, 90.0),
        p99_us: percentile(&total.ack, 99.0),
        max_us: total.ack.last().copied().map_or(0, u64::from),
        mismatches: total.mismatches,
        visible_p50_us: percentile(&total.visible, 50.0),
        visible_p90_us: percentile(&total.visible, 90.0),
        visible_p99_us: percentile(&total.visible, 99.0),
        visible_max_us: total.visible.last().copied().map_or(0, u64::from),
    })
}

/// Prints a `--mode mutate` report: `calls` are acknowledged mutations,
/// `decisions` the checks that confirmed them.
fn print_mutate(args: &BenchArgs, r: &Report) {
    if args.json {
        println!(
            "{{\"mode\":\"{}\",\"calls\":{},\"errors\":{},\"mismatches\":{},\"decisions\":{},\"seconds\":{},\"calls_per_sec\":{:.0},\"decisions_per_sec\":{:.0},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{},\"visible_p50_us\":{},\"visible_p90_us\":{},\"visible_p99_us\":{},\"visible_max_us\":{}}}",
            r.mode,
            r.calls,
            r.errors,
            r.mismatches,
            r.decisions,
            r.seconds,
            r.calls_per_sec,
            r.decisions_per_sec,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.max_us,
            r.visible_p50_us,
            r.visible_p90_us,
            r.visible_p99_us,
            r.visible_max_us
        );
    } else {
        println!(
            "{} x{} conns, {} writers, {} s: {} acknowledged mutations ({} errors, {} mismatches), {:.0} mutations/s; ack latency p50 {} us, p90 {} us, p99 {} us, max {} us; mutation -> visible p50 {} us, p90 {} us, p99 {} us, max {} us",
            r.mode,
            args.connections,
            args.concurrency,
            r.seconds,
            r.calls,
            r.errors,
            r.mismatches,
            r.calls_per_sec,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.max_us,
            r.visible_p50_us,
            r.visible_p90_us,
            r.visible_p99_us,
            r.visible_max_us
        );
    }
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
            if args.mode == Mode::Mutate {
                print_mutate(&args, &r);
            } else if args.json {
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
            mode: Mode::Mutate,
            tenant: "acme".into(),
            connections: 1,
            concurrency: 3,
            duration_secs,
            warmup_secs: 0,
            batch_size: 1,
            requests_file: None,
            json: false,
            token: None,
            ca: None,
        };
        for _ in 0..2 {
            let r = run(&args(1), Vec::new()).await.unwrap();
            assert_eq!((r.mode, r.errors, r.mismatches), ("mutate", 0, 0));
            assert!(r.calls > 0);
            assert_eq!(r.decisions, r.calls);
        }
        handle.shutdown(Duration::from_secs(1)).await;
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
