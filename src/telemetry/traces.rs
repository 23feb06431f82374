//! Logs and traces: the `tracing` subscriber (text or JSON on stderr,
//! filtered by `RUST_LOG`), OTLP trace export over gRPC when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set, and a
//! tower layer that opens one span per RPC as a child of the caller's W3C
//! `traceparent`.
//!
//! `RUST_LOG` filters the logs only: the exported spans are rampart's
//! info-level spans whatever it says.
//!
//! Sampling is decided here, once per RPC, before any span exists
//! ([`HeadSampler`], from the standard `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`): an RPC that is not sampled creates no span at
//! all, neither its own nor the services' (a task-local flag that a global
//! filter reads: `Gate`). Left to the SDK, every span would be built in full
//! and then dropped by its sampler, which cost a third of Check throughput
//! at a 1 % ratio (BENCHMARKS.md).
//!
//! The exporter reads the rest of its settings from the standard
//! `OTEL_EXPORTER_OTLP_*` and `OTEL_SERVICE_NAME` variables; spans are
//! batched on the SDK's own thread and flushed by [`Telemetry::shutdown`].

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written. Read from its name (`text`, `json`) with
/// `FromStr`; the command line offers [`LogFormat::NAMES`] (this module
/// knows nothing of clap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl LogFormat {
    /// Every format, each as its name.
    pub const ALL: [Self; 2] = [Self::Text, Self::Json];
    /// The names `FromStr` reads, in the order of [`LogFormat::ALL`].
    pub const NAMES: [&'static str; 2] = [Self::Text.name(), Self::Json.name()];

    /// The format's name, as a flag or a config file spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A log format name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a log format: `text` or `json`", crate::model::quote(.0))]
pub struct LogFormatError(String);

impl std::str::FromStr for LogFormat {
    type Err = LogFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| LogFormatError(s.to_owned()))
    }
}

/// How RPCs are sampled, set once by [`init`] when spans are exported;
/// unset, no span is exported and the per-RPC span would only cost time
/// (the services' own spans still log as before).
static SAMPLER: std::sync::OnceLock<HeadSampler> = std::sync::OnceLock::new();

tokio::task_local! {
    /// Whether the RPC this task serves is sampled: set by the server's
    /// per-RPC layer (`server::trace`), read by
    /// the global filter (`Gate`), so an unsampled call's spans are never built.
    static SAMPLED: bool;
}

/// The head sampler: the standard `OTEL_TRACES_SAMPLER` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadSampler {
    /// Follow the caller's `sampled` flag when it sent a `traceparent`.
    pub parent_based: bool,
    /// Share of root RPCs sampled, 0.0 to 1.0.
    pub ratio: f64,
}

impl Default for HeadSampler {
    /// The SDK's default: `parentbased_always_on`.
    fn default() -> Self {
        Self {
            parent_based: true,
            ratio: 1.0,
        }
    }
}

/// Why `OTEL_TRACES_SAMPLER` or its argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    #[error("OTEL_TRACES_SAMPLER_ARG `{0}` is not a ratio from 0 to 1")]
    Ratio(String),
    #[error(
        "OTEL_TRACES_SAMPLER `{0}` is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
    )]
    Sampler(String),
}

impl HeadSampler {
    /// From `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`; `Err` names
    /// what is wrong (the default is used then).
    pub fn from_env(sampler: Option<&str>, arg: Option<&str>) -> Result<Self, SamplerError> {
        let ratio = || -> Result<f64, SamplerError> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| SamplerError::Ratio(a.to_owned())),
            }
        };
        // Enum values are case-insensitive (the OpenTelemetry spec).
        let sampler = sampler.map(|s| s.trim().to_ascii_lowercase());
        let (parent_based, ratio) = match sampler.as_deref().unwrap_or("") {
            "" | "parentbased_always_on" => (true, 1.0),
            "parentbased_always_off" => (true, 0.0),
            "parentbased_traceidratio" => (true, ratio()?),
            "always_on" => (false, 1.0),
            "always_off" => (false, 0.0),
            "traceidratio" => (false, ratio()?),
            other => return Err(SamplerError::Sampler(other.to_owned())),
        };
        Ok(Self {
            parent_based,
            ratio,
        })
    }

    /// Whether an RPC is sampled: the caller's flag if parent-based and it
    /// sent one, else the ratio, applied to the caller's trace id when there
    /// is one (so every service of a trace agrees) or to `random`.
    pub fn sample(&self, parent: Option<(u128, bool)>, random: u64) -> bool {
        match parent {
            Some((_, sampled)) if self.parent_based => sampled,
            _ if self.ratio >= 1.0 => true,
            _ if self.ratio <= 0.0 => false,
            Some((trace_id, _)) => below(trace_id as u64, self.ratio),
            None => below(random, self.ratio),
        }
    }
}

/// Whether `x`, as a share of `u64::MAX`, is below `ratio`.
fn below(x: u64, ratio: f64) -> bool {
    ((x >> 11) as f64) / ((1u64 << 53) as f64) < ratio
}

/// A fresh pseudo-random number per call (splitmix64 over a per-thread
/// counter, so threads share no cache line): the sampling coin of a root
/// RPC.
pub fn coin() -> u64 {
    thread_local! {
        // A random start per thread (std's hash keys are random).
        static NEXT: std::cell::Cell<u64> = std::cell::Cell::new({
            use std::hash::{BuildHasher, Hasher};
            std::hash::RandomState::new().build_hasher().finish()
        });
    }
    let mut z = NEXT.with(|n| {
        let z = n.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        n.set(z);
        z
    });
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The head sampler [`init`] installed, when spans are exported.
pub fn sampler() -> Option<&'static HeadSampler> {
    SAMPLER.get()
}

/// Calls `f` (which starts an RPC's future) with the RPC's sampling decision
/// set for this task.
pub fn sync_scope<T>(sampled: bool, f: impl FnOnce() -> T) -> T {
    SAMPLED.sync_scope(sampled, f)
}

/// Runs `call` with the RPC's sampling decision set for its task.
pub fn scope<F: std::future::Future>(
    sampled: bool,
    call: F,
) -> impl std::future::Future<Output = F::Output> {
    SAMPLED.scope(sampled, call)
}

/// What [`init`] set up, to flush at exit.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the trace exporter (a no-op without one).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("rampart: flushing traces failed: {e}");
        }
    }
}

/// Whether the environment asks for OTLP export.
fn otlp_requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// Installs the global subscriber (once; later calls do nothing) and, when
/// the environment asks for it, the OTLP exporter. Call inside the tokio
/// runtime: the exporter's gRPC channel lives on it.
pub fn init(format: LogFormat) -> Telemetry {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => Box::new(fmt),
        LogFormat::Json => Box::new(fmt.json().flatten_event(true).with_current_span(true)),
    };
    let mut telemetry = Telemetry::default();
    let mut exporter_error = None;
    let mut sampler_error = None;
    let otel = if otlp_requested() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                let service = std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "rampart".to_owned());
                let sampler = HeadSampler::from_env(
                    std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
                    std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
                )
                .unwrap_or_else(|e| {
                    sampler_error = Some(e);
                    HeadSampler::default()
                });
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    // Decided per RPC by the HeadSampler, before any span.
                    .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service)
                            .build(),
                    )
                    .build();
                let tracer = provider.tracer("rampart");
                telemetry.provider = Some(provider);
                let _ = SAMPLER.set(sampler);
                // Its own filter: RUST_LOG quiets the logs, not the
                // traces (RUST_LOG=warn used to drop every span).
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(
                            tracing_subscriber::filter::Targets::new()
                                .with_target("rampart", tracing::Level::INFO),
                        ),
                )
            }
            Err(e) => {
                exporter_error = Some(e.to_string());
                None
            }
        }
    } else {
        None
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporting = otel.is_some();
    // Outermost: a span or event it refuses is never built.
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(fmt)
        .with(Gate {
            env: filter,
            exporting,
        })
        .try_init();
    if let Some(e) = sampler_error {
        tracing::warn!("{e}; sampling with parentbased_always_on");
    }
    if let Some(e) = exporter_error {
        tracing::error!(error = %e, "cannot start the OTLP trace exporter; traces are not exported");
    } else if telemetry.exporting() {
        tracing::info!("exporting traces over OTLP");
    }
    telemetry
}

/// The one global filter: `RUST_LOG` for everything, except that while
/// spans are exported, rampart's info spans are on inside a sampled RPC (and
/// outside any RPC) and off inside an unsampled one, whatever `RUST_LOG`
/// says. So an unsampled RPC builds no span at all.
///
/// Why not per-layer filters: tracing-subscriber's registry still builds
/// and enters a span that every per-layer filter refused, and a global
/// filter beside per-layer ones makes every callsite ask on every call; both
/// were measured to cost Check throughput (BENCHMARKS.md).
struct Gate {
    env: tracing_subscriber::EnvFilter,
    exporting: bool,
}

impl Gate {
    /// A span the exporter wants: rampart's, at info or above.
    fn exported(&self, meta: &tracing::Metadata<'_>) -> bool {
        self.exporting
            && meta.is_span()
            && *meta.level() <= tracing::Level::INFO
            && meta.target().starts_with("rampart")
    }
}

impl<S> Layer<S> for Gate
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Always asked first: EnvFilter records the callsite here, which its
        // span-scoped directives (`[Check]=debug`) need.
        let env = Layer::<S>::register_callsite(&self.env, meta);
        if self.exported(meta) {
            return tracing::subscriber::Interest::sometimes();
        }
        env
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if self.exported(meta) {
            return SAMPLED.try_with(|sampled| *sampled).unwrap_or(true);
        }
        Layer::<S>::enabled(&self.env, meta, cx)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let env = Layer::<S>::max_level_hint(&self.env);
        if self.exporting {
            env.map(|l| l.max(tracing::level_filters::LevelFilter::INFO))
        } else {
            env
        }
    }

    // EnvFilter tracks spans for its span-scoped directives.
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        Layer::<S>::on_new_span(&self.env, attrs, id, cx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        Layer::<S>::on_record(&self.env, id, values, cx);
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        Layer::<S>::on_enter(&self.env, id, cx);
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        Layer::<S>::on_exit(&self.env, id, cx);
    }

    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        Layer::<S>::on_close(&self.env, id, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_sampler_names_and_bad_ones() {
        let parse = |s, a| HeadSampler::from_env(Some(s), a);
        assert_eq!(
            HeadSampler::from_env(None, None),
            Ok(HeadSampler::default())
        );
        assert_eq!(
            parse("traceidratio", Some("0.01")),
            Ok(HeadSampler {
                parent_based: false,
                ratio: 0.01
            })
        );
        assert_eq!(
            parse("parentbased_traceidratio", Some("0.5")),
            Ok(HeadSampler {
                parent_based: true,
                ratio: 0.5
            })
        );
        assert_eq!(parse("always_off", None).map(|s| s.ratio), Ok(0.0));
        assert_eq!(
            parse("TraceIdRatio", Some("0.25")).map(|s| s.ratio),
            Ok(0.25)
        );
        let err = parse("sometimes", None).unwrap_err().to_string();
        assert!(err.contains("`sometimes`"), "{err}");
        let err = parse("traceidratio", Some("2")).unwrap_err().to_string();
        assert!(err.contains("`2`"), "{err}");
    }

    #[test]
    fn log_formats_read_their_names_only() {
        for (format, name) in LogFormat::ALL.into_iter().zip(LogFormat::NAMES) {
            assert_eq!(name.parse::<LogFormat>(), Ok(format));
            assert_eq!(format.to_string(), name);
        }
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        for bad in ["JSON", "", " text", "yaml"] {
            let err = bad.parse::<LogFormat>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
            assert!(err.contains("`text` or `json`"), "{err}");
        }
        let err = "x\u{1b}[2J".parse::<LogFormat>().unwrap_err().to_string();
        assert!(err.starts_with(r"`x\u{1b}[2J` is not"), "{err}");
    }

    #[test]
    fn a_parent_decides_when_parent_based_and_the_ratio_otherwise() {
        let half = HeadSampler {
            parent_based: true,
            ratio: 0.5,
        };
        assert!(half.sample(Some((u128::MAX, true)), u64::MAX));
        assert!(!half.sample(Some((0, false)), 0));
        let root_only = HeadSampler {
            parent_based: false,
            ..half
        };
        // The caller's trace id decides, so every service agrees.
        assert!(root_only.sample(Some((1, false)), u64::MAX));
        assert!(!root_only.sample(Some((u128::from(u64::MAX), true)), 0));
        assert!(root_only.sample(None, 1));
        assert!(!root_only.sample(None, u64::MAX));
    }

    #[test]
    fn an_unsampled_rpc_builds_no_span_and_keeps_its_events() {
        let log = tracing_subscriber::fmt::layer().with_test_writer();
        let _default =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(log).with(Gate {
                env: tracing_subscriber::EnvFilter::new("info"),
                exporting: true,
            }));
        let unsampled = SAMPLED.sync_scope(false, || tracing::info_span!("rpc").is_disabled());
        let sampled = SAMPLED.sync_scope(true, || tracing::info_span!("rpc").is_disabled());
        let outside = tracing::info_span!("background").is_disabled();
        assert!(unsampled, "an unsampled RPC's span was built");
        assert!(!sampled && !outside);
        let event = SAMPLED.sync_scope(false, || tracing::event_enabled!(tracing::Level::INFO));
        assert!(event, "an unsampled RPC's events must still be logged");
    }

    #[test]
    fn span_scoped_log_directives_still_work_while_exporting() {
        let log = tracing_subscriber::fmt::layer().with_test_writer();
        let _default =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(log).with(Gate {
                env: tracing_subscriber::EnvFilter::new("warn,[scoped]=debug"),
                exporting: true,
            }));
        let inside = SAMPLED.sync_scope(true, || {
            let span = tracing::info_span!("scoped");
            let _entered = span.enter();
            tracing::event_enabled!(tracing::Level::DEBUG)
        });
        let outside = tracing::event_enabled!(tracing::Level::DEBUG);
        assert!(
            inside,
            "`[scoped]=debug` did not enable debug events inside the span"
        );
        assert!(!outside);
    }

    #[test]
    fn the_coin_samples_about_the_ratio() {
        let sampler = HeadSampler {
            parent_based: true,
            ratio: 0.01,
        };
        let kept = (0..100_000)
            .filter(|_| sampler.sample(None, coin()))
            .count();
        assert!((700..=1_300).contains(&kept), "{kept} of 100,000 at 1 %");
    }
}
