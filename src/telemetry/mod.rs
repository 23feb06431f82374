//! Telemetry: metric handles, Prometheus metrics on their own HTTP
//! listener, the decision log, and logs and traces.
//!
//! - `metrics.rs`: the registry (atomic counters and fixed-bucket
//!   histograms, every label combination made up front) and the text
//!   exposition format. Pure: no tokio, no tonic.
//! - `decision_log.rs`: JSON lines through a bounded channel to a writer
//!   thread, sampled.
//! - `http.rs`: `GET /metrics`.
//! - `traces.rs`: the `tracing` subscriber, OTLP export and head sampling.
//!
//! Imports nothing of the crate but `model`. The recording side is owned by
//! whoever records (the data plane holds [`metrics::CheckMetrics`], the
//! engine [`metrics::EngineMetrics`], the server's layer
//! [`metrics::RpcMetrics`]); a scrape ([`Telemetry`]) calls the sources the
//! composition root registered, each of which writes its own families
//! (revision, replica lag, Watch streams…). It never changes what a call
//! answers.

pub mod decision_log;
pub mod gauges;
pub mod http;
pub mod metrics;
pub mod traces;

use std::net::SocketAddr;

pub use decision_log::{DecisionLog, DecisionLogConfig, Target};
use metrics::Exposition;

/// What telemetry a server runs with; the default: none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// Where `GET /metrics` is served (port 0: any free port).
    pub metrics_listen: Option<SocketAddr>,
    pub decision_log: Option<DecisionLogConfig>,
}

/// One source of a scrape: writes its families into the page.
pub type Source = Box<dyn Fn(&mut Exposition) + Send + Sync>;

/// The sources one scrape reads, in order.
#[derive(Default)]
pub struct Telemetry {
    sources: Vec<Source>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl Telemetry {
    /// Adds a source; it runs on every scrape, after the ones before it.
    pub fn source(mut self, source: impl Fn(&mut Exposition) + Send + Sync + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// The metrics page: the build, then every source.
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
        for source in &self.sources {
            source(&mut page);
        }
        page.finish()
    }
}
