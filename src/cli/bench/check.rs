//! `--mode check`, `--mode batch` and `--mode ext-authz`: workers cycle
//! through the requests as fast as their answers come, each call timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::report::{Report, micros, percentile};
use super::{BenchArgs, BenchError, Item, Mode, envoy};
use crate::client::Bearer;
use crate::proto::authorization_client::AuthorizationClient;
use crate::proto::{BatchCheckItem, BatchCheckRequest, CheckRequest};

/// Drives Check, BatchCheck or Envoy's Check over `channels` as `args`
/// says.
pub async fn run_load(
    args: &BenchArgs,
    channels: &[Channel],
    bearer: Bearer,
    items: Vec<Item>,
) -> Result<Report, BenchError> {
    let items = Arc::new(items);
    let batch: Arc<Vec<BatchCheckItem>> = Arc::new(
        (0..args.batch_size as usize)
            .map(|i| {
                let it = &items[i % items.len()];
                BatchCheckItem {
                    tenant: it.tenant.as_str().into(),
                    subject: it.subject.as_str().into(),
                    permission: it.permission.as_str().into(),
                    correlation_id: i.to_string().into(),
                }
            })
            .collect(),
    );
    // Built once, like the native requests; a call shares one (see
    // `envoy::Client`).
    let envoy_requests: Arc<Vec<Arc<_>>> = Arc::new(if args.mode == Mode::ExtAuthz {
        items
            .iter()
            .enumerate()
            .map(|(n, it)| Arc::new(envoy::request(it, n, args.envoy_headers)))
            .collect()
    } else {
        Vec::new()
    });
    let warm_until = Instant::now() + Duration::from_secs(args.warmup_secs);
    let end = warm_until + Duration::from_secs(args.duration_secs);
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency as usize {
        let mut client = AuthorizationClient::with_interceptor(
            channels[worker % channels.len()].clone(),
            bearer.clone(),
        );
        let mut envoy_client =
            envoy::Client::new(channels[worker % channels.len()].clone(), bearer.clone());
        let items = Arc::clone(&items);
        let envoy_requests = Arc::clone(&envoy_requests);
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
                    Mode::ExtAuthz => {
                        let request = Arc::clone(&envoy_requests[next % envoy_requests.len()]);
                        next += 1;
                        // A deny of the mapping (no route…) is not the
                        // decision being measured: an error.
                        envoy_client
                            .check(request)
                            .await
                            .is_ok_and(|r| envoy::decided(&r))
                    }
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
        let (lat, err) = t.await.map_err(BenchError::Worker)?;
        all.extend(lat);
        errors += err;
    }
    all.sort_unstable();
    let seconds = args.duration_secs as f64;
    let calls = all.len() as u64;
    let per_call = match args.mode {
        Mode::Check | Mode::ExtAuthz | Mode::Mutate => 1,
        Mode::Batch => u64::from(args.batch_size),
    };
    Ok(Report {
        mode: match args.mode {
            Mode::Check => "check",
            Mode::Batch => "batch",
            Mode::ExtAuthz => "ext-authz",
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
