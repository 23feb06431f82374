//! Telemetry: Prometheus metrics on their own HTTP listener, and the
//! decision log.
//!
//! - `metrics.rs`: the registry (atomic counters and fixed-bucket
//!   histograms, every label combination made up front) and the text
//!   exposition format. Pure: no tokio, no tonic.
//! - `layer.rs`: the tower layer that times every RPC.
//! - `decision_log.rs`: JSON lines through a bounded channel to a writer
//!   thread, sampled.
//! - `http.rs`: `GET /metrics`.
//!
//! The recording side is owned by whoever records (the data plane holds
//! [`metrics::CheckMetrics`], the engine [`metrics::EngineMetrics`], the
//! layer [`metrics::RpcMetrics`]); [`Telemetry`] only reads them, with the
//! gauges that are read at scrape time (revision, replica lag, Watch
//! streams). It never changes what a call answers.

pub mod decision_log;
pub mod http;
pub mod layer;
pub mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Engine;
use crate::replication::ReplicaStatus;
pub use decision_log::{DecisionLog, DecisionLogConfig, Target};
use metrics::{CheckMetrics, Exposition, RpcMetrics};

/// `rampart serve` telemetry arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Serve Prometheus metrics at `http://ADDR/metrics` (default: off).
    #[arg(long, env = "RAMPART_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Write a decision log, one JSON object per line, to this file
    /// (appended) or to stdout (`-`). Default: off.
    #[arg(long, env = "RAMPART_DECISION_LOG", value_name = "PATH|-")]
    pub decision_log: Option<String>,
    /// The share of decisions the decision log keeps, 0.0 to 1.0.
    #[arg(long, env = "RAMPART_DECISION_LOG_SAMPLE", default_value_t = 1.0, value_parser = parse_rate, requires = "decision_log", value_name = "RATE")]
    pub decision_log_sample: f64,
    /// Log every deny, whatever `--decision-log-sample` says.
    #[arg(long, env = "RAMPART_DECISION_LOG_DENIES", requires = "decision_log")]
    pub decision_log_denies: bool,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{text}` is not a rate from 0.0 to 1.0")),
    }
}

impl TelemetryArgs {
    /// The settings these arguments ask for.
    pub fn config(&self) -> TelemetryConfig {
        TelemetryConfig {
            metrics_listen: self.metrics_listen,
            decision_log: self.decision_log.as_ref().map(|t| DecisionLogConfig {
                target: if t == "-" {
                    Target::Stdout
                } else {
                    Target::File(PathBuf::from(t))
                },
                sample: self.decision_log_sample,
                denies: self.decision_log_denies,
            }),
        }
    }
}

/// What telemetry a server runs with; the default: none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// Where `GET /metrics` is served (port 0: any free port).
    pub metrics_listen: Option<SocketAddr>,
    pub decision_log: Option<DecisionLogConfig>,
}

/// The sources one scrape reads.
#[derive(Debug)]
pub struct Telemetry {
    pub checks: Arc<CheckMetrics>,
    pub rpc: Arc<RpcMetrics>,
    pub engine: Arc<Engine>,
    /// A replica's follower status.
    pub replica: Option<Arc<ReplicaStatus>>,
    /// Watch streams open now.
    pub watchers: Arc<AtomicU64>,
    /// The connections' budgets of failing calls.
    pub connections: Arc<crate::server::conn::Guard>,
}

impl Telemetry {
    /// The metrics page.
    pub fn render(&self) -> String {
        let mut page = Exposition::default();
        page.family(
            "rampart_build_info",
            "gauge",
            "Always 1; the version is a label.",
        );
        page.sample(
            "rampart_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        let revision = self.engine.load().revision();
        page.family(
            "rampart_snapshot_revision",
            "gauge",
            "Revision of the snapshot checks are answered from.",
        );
        page.sample("rampart_snapshot_revision", &[], revision);
        page.engine(self.engine.metrics());
        page.checks(&self.checks);
        page.rpcs(&self.rpc);
        page.family(
            "rampart_watch_streams",
            "gauge",
            "Replication Watch streams open now.",
        );
        page.sample(
            "rampart_watch_streams",
            &[],
            self.watchers.load(Ordering::Relaxed),
        );
        page.family(
            "rampart_connections_throttled_total",
            "counter",
            "Connections paused for making more failing calls a second than --max-failed-calls-per-sec.",
        );
        page.sample(
            "rampart_connections_throttled_total",
            &[],
            self.connections.throttled(),
        );
        if let Some(status) = &self.replica {
            let get = ReplicaStatus::get;
            page.family(
                "rampart_replica_lag_revisions",
                "gauge",
                "Revisions the leader has that this replica has not applied yet.",
            );
            page.sample(
                "rampart_replica_lag_revisions",
                &[],
                get(&status.leader_revision).saturating_sub(revision),
            );
            page.family(
                "rampart_replica_lag_seconds",
                "gauge",
                "Age of the change being applied when it was applied; 0 once caught up.",
            );
            page.sample(
                "rampart_replica_lag_seconds",
                &[],
                get(&status.lag_ms) as f64 / 1_000.0,
            );
            page.family(
                "rampart_replica_reconnects_total",
                "counter",
                "Times this replica lost its leader and reconnected.",
            );
            page.sample(
                "rampart_replica_reconnects_total",
                &[],
                get(&status.reconnects),
            );
            page.family(
                "rampart_replica_rebootstraps_total",
                "counter",
                "Times this replica bootstrapped again from an Export.",
            );
            page.sample(
                "rampart_replica_rebootstraps_total",
                &[],
                get(&status.rebootstraps),
            );
        }
        page.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_shares_and_dash_is_stdout() {
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert_eq!(parse_rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "half", "NaN"] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        let args = TelemetryArgs {
            decision_log: Some("-".into()),
            decision_log_sample: 0.5,
            ..TelemetryArgs::default()
        };
        let config = args.config().decision_log.unwrap();
        assert_eq!(config.target, Target::Stdout);
        assert_eq!(config.sample, 0.5);
        assert_eq!(
            TelemetryArgs::default().config(),
            TelemetryConfig::default()
        );
    }
}
