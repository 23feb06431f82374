//! A small metrics registry of plain atomics, rendered in the Prometheus
//! text exposition format 0.0.4.
//!
//! Every label combination is created up front (decisions × reasons,
//! mutation kinds × outcomes, RPC methods × status codes), so recording is
//! a few relaxed atomic adds: no lock, no allocation, no map lookup by a
//! label value. Only [`Exposition`] (at scrape time) allocates. Nothing here
//! knows tonic, tokio or sled.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::Mutation;
use crate::model::{Decision, Reason};

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds of latency histograms, in nanoseconds: 50 µs to 5 s.
pub const SECONDS_BUCKETS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Bucket bounds of the batch-size histogram, in items.
pub const SIZE_BUCKETS: &[u64] = &[
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
];

/// A fixed-bucket histogram over integer observations (nanoseconds or
/// items). Each observation adds to one bucket, the sum and the count; the
/// cumulative `le` counts are computed at scrape time.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One per bound, then `+Inf`; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
    /// Rendered value of one unit (1e-9 for nanoseconds as seconds).
    scale: f64,
}

impl Histogram {
    /// A histogram of durations, rendered in seconds.
    pub fn seconds() -> Self {
        Self::new(SECONDS_BUCKETS, 1e-9)
    }

    /// A histogram of sizes.
    pub fn sizes() -> Self {
        Self::new(SIZE_BUCKETS, 1.0)
    }

    fn new(bounds: &'static [u64], scale: f64) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
            scale,
        }
    }

    /// Records one observation, in the histogram's unit.
    #[inline]
    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration (for histograms made by [`Histogram::seconds`]).
    #[inline]
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Every mutation kind, as [`Mutation::kind`] names it.
pub const MUTATION_KINDS: [&str; 23] = [
    "create_tenant",
    "update_tenant",
    "delete_tenant",
    "define_catalog_entry",
    "set_catalog_stability",
    "remove_catalog_entry",
    "set_bridges_grants",
    "create_role",
    "update_role_description",
    "delete_role",
    "grant",
    "revoke",
    "set_grants",
    "create_group",
    "delete_group",
    "add_member",
    "remove_member",
    "add_user",
    "update_user_status",
    "update_user_info",
    "remove_user",
    "assign",
    "unassign",
];

/// What became of a submitted mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutationOutcome {
    Applied,
    Refused,
    /// The store failed; nothing changed.
    Failed,
}

impl MutationOutcome {
    const ALL: [MutationOutcome; 3] = [Self::Applied, Self::Refused, Self::Failed];

    fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// The writer's metrics: compile times and mutations. Owned by the engine.
#[derive(Debug)]
pub struct EngineMetrics {
    /// Each `compile` (whole state) and `recompile` (what a change touched).
    pub compile: Histogram,
    /// Kind × outcome; a kind not in [`MUTATION_KINDS`] lands in the last row.
    mutations: Box<[[Counter; 3]]>,
    /// Times a shared store's history went another way than this node's,
    /// which then reloaded from it.
    pub diverged: Counter,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            compile: Histogram::seconds(),
            mutations: (0..=MUTATION_KINDS.len())
                .map(|_| Default::default())
                .collect(),
            diverged: Counter::default(),
        }
    }
}

impl EngineMetrics {
    /// Counts one submitted (not dry-run) mutation.
    pub fn mutation(&self, mutation: &Mutation, outcome: MutationOutcome) {
        let kind = mutation.kind();
        let row = MUTATION_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(MUTATION_KINDS.len());
        if let Some(row) = self.mutations.get(row) {
            row[outcome as usize].inc();
        }
    }

    /// Counts a shared store found to have gone another way.
    pub fn diverged(&self) {
        self.diverged.inc();
    }

    /// How many mutations of `kind` ended with `outcome`.
    pub fn mutations(&self, kind: &str, outcome: MutationOutcome) -> u64 {
        MUTATION_KINDS
            .iter()
            .position(|k| *k == kind)
            .and_then(|row| self.mutations.get(row))
            .map_or(0, |row| row[outcome as usize].get())
    }
}

const DECISIONS: [Decision; 2] = [Decision::Allow, Decision::Deny];
const REASONS: [Reason; 6] = Reason::ALL;

/// The name of a decision as the metrics and the decision log spell it.
pub fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "ALLOW",
        Decision::Deny => "DENY",
    }
}

/// The data plane's metrics: decisions and batch sizes.
#[derive(Debug)]
pub struct CheckMetrics {
    checks: [[Counter; REASONS.len()]; DECISIONS.len()],
    pub batch_size: Histogram,
    /// Decision-log records dropped because the writer fell behind.
    pub decision_log_dropped: Counter,
}

impl Default for CheckMetrics {
    fn default() -> Self {
        Self {
            checks: Default::default(),
            batch_size: Histogram::sizes(),
            decision_log_dropped: Counter::default(),
        }
    }
}

impl CheckMetrics {
    /// Counts one decision (a Check, or one BatchCheck item).
    #[inline]
    pub fn check(&self, decision: Decision, reason: Reason) {
        self.checks[decision as usize][reason as usize].inc();
    }

    /// Counts the decisions of a batch, tallied by the caller: one add per
    /// decision and reason that occurred, not one per item (every item's
    /// add would contend for the same cache line across cores).
    pub fn checks(&self, tally: &CheckTally) {
        for (row, counts) in self.checks.iter().zip(&tally.0) {
            for (counter, &n) in row.iter().zip(counts) {
                if n > 0 {
                    counter.add(n);
                }
            }
        }
    }
}

/// Decisions counted locally, then added to [`CheckMetrics`] at once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckTally([[u64; REASONS.len()]; DECISIONS.len()]);

impl CheckTally {
    /// Counts one decision.
    #[inline]
    pub fn count(&mut self, decision: Decision, reason: Reason) {
        if let Some(n) = self
            .0
            .get_mut(decision as usize)
            .and_then(|row| row.get_mut(reason as usize))
        {
            *n += 1;
        }
    }
}

/// gRPC status code names, by code.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status code as gRPC spells it (`PERMISSION_DENIED`); a code
/// gRPC does not define is `UNKNOWN`.
pub fn code_name(code: usize) -> &'static str {
    CODES.get(code).copied().unwrap_or("UNKNOWN")
}

/// One RPC method's latency, one histogram per status code (created
/// lazily would need a lock; 17 small histograms per method do not).
#[derive(Debug)]
struct Method {
    service: String,
    method: String,
    by_code: Box<[Histogram]>,
}

/// RPC latency by service, method and status code. The methods are read
/// from the `.proto` files at startup, plus health and reflection; a path
/// outside them is counted as service and method `other`.
#[derive(Debug)]
pub struct RpcMetrics {
    methods: Vec<Method>,
    by_path: std::collections::HashMap<String, usize>,
}

impl RpcMetrics {
    /// One row for each `(service, method)` in `methods` (the server takes
    /// them from the generated descriptor set), and `other`.
    pub fn new(methods: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut all: Vec<(String, String)> = methods.into_iter().collect();
        all.push(("other".to_owned(), "other".to_owned()));
        let by_path = all
            .iter()
            .enumerate()
            .map(|(i, (s, m))| (format!("/{s}/{m}"), i))
            .collect();
        let methods = all
            .into_iter()
            .map(|(service, method)| Method {
                service,
                method,
                by_code: (0..CODES.len()).map(|_| Histogram::seconds()).collect(),
            })
            .collect();
        Self { methods, by_path }
    }
}

impl RpcMetrics {
    /// How many rows there are, `other` included.
    pub fn rows(&self) -> usize {
        self.methods.len()
    }

    /// The row of `path` (`/package.Service/Method`), for [`RpcMetrics::observe`].
    #[inline]
    pub fn method(&self, path: &str) -> usize {
        self.by_path
            .get(path)
            .copied()
            .unwrap_or(self.methods.len().saturating_sub(1))
    }

    /// Records one call to the method at row `method` that ended with `code`.
    #[inline]
    pub fn observe(&self, method: usize, code: usize, elapsed: Duration) {
        // A code gRPC does not define counts as UNKNOWN.
        let code = if code < CODES.len() { code } else { 2 };
        if let Some(h) = self.methods.get(method).and_then(|m| m.by_code.get(code)) {
            h.observe_duration(elapsed);
        }
    }
}

/// A page of the text exposition format being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A histogram's buckets, sum and count, with `labels` on each.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, count) in h.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = h
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| (*b as f64 * h.scale).to_string());
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        // `_count` is the `+Inf` bucket, so a scrape racing an observation
        // never shows them apart.
        self.sample(
            &format!("{name}_sum"),
            labels,
            h.sum.load(Ordering::Relaxed) as f64 * h.scale,
        );
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    /// The decision counters.
    pub fn checks(&mut self, m: &CheckMetrics) {
        self.family(
            "rampart_checks_total",
            "counter",
            "Decisions made, by Check and by each BatchCheck item.",
        );
        for d in DECISIONS {
            for r in REASONS {
                let n = m.checks[d as usize][r as usize].get();
                self.sample(
                    "rampart_checks_total",
                    &[("decision", decision_name(d)), ("reason", r.as_str())],
                    n,
                );
            }
        }
        self.family(
            "rampart_batch_size",
            "histogram",
            "Items per BatchCheck request.",
        );
        self.histogram("rampart_batch_size", &[], &m.batch_size);
        self.family(
            "rampart_decision_log_dropped_total",
            "counter",
            "Decision-log records dropped because the writer fell behind.",
        );
        self.sample(
            "rampart_decision_log_dropped_total",
            &[],
            m.decision_log_dropped.get(),
        );
    }

    /// The writer's metrics.
    pub fn engine(&mut self, m: &EngineMetrics) {
        self.family(
            "rampart_compile_duration_seconds",
            "histogram",
            "Time to compile a snapshot: the whole state, or what one change touched.",
        );
        self.histogram("rampart_compile_duration_seconds", &[], &m.compile);
        self.family(
            "rampart_mutations_total",
            "counter",
            "Mutations submitted (dry runs excluded), by kind and outcome.",
        );
        for (kind, row) in MUTATION_KINDS.iter().zip(m.mutations.iter()) {
            for outcome in MutationOutcome::ALL {
                self.sample(
                    "rampart_mutations_total",
                    &[("kind", kind), ("outcome", outcome.name())],
                    row[outcome as usize].get(),
                );
            }
        }
        self.family(
            "rampart_store_diverged_total",
            "counter",
            "Times the shared store's history went another way than this node's (a failover that lost commits, a restore), and the node reloaded from it.",
        );
        self.sample("rampart_store_diverged_total", &[], m.diverged.get());
    }

    /// RPC latencies; only the method × code combinations seen so far.
    pub fn rpcs(&mut self, m: &RpcMetrics) {
        self.family(
            "rampart_rpc_duration_seconds",
            "histogram",
            "Time from a call's arrival to its response headers, by service, method and status code.",
        );
        for method in &m.methods {
            for (code, h) in CODES.iter().zip(method.by_code.iter()) {
                if h.count() > 0 {
                    self.histogram(
                        "rampart_rpc_duration_seconds",
                        &[
                            ("service", &method.service),
                            ("method", &method.method),
                            ("code", code),
                        ],
                        h,
                    );
                }
            }
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_le_inclusive() {
        let h = Histogram::sizes();
        for v in [1, 1, 2, 3, 1_000, 20_000] {
            h.observe(v);
        }
        let mut page = Exposition::default();
        page.histogram("x", &[("a", "b\"c")], &h);
        let text = page.finish();
        assert!(
            text.contains("x_bucket{a=\"b\\\"c\",le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_bucket{a=\"b\\\"c\",le=\"2\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_bucket{a=\"b\\\"c\",le=\"5\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("x_bucket{a=\"b\\\"c\",le=\"1000\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("x_bucket{a=\"b\\\"c\",le=\"+Inf\"} 6\n"),
            "{text}"
        );
        assert!(text.contains("x_sum{a=\"b\\\"c\"} 21007\n"), "{text}");
        assert!(text.contains("x_count{a=\"b\\\"c\"} 6\n"), "{text}");
    }

    #[test]
    fn seconds_buckets_render_in_seconds() {
        let h = Histogram::seconds();
        h.observe_duration(Duration::from_micros(60));
        let mut page = Exposition::default();
        page.histogram("t", &[], &h);
        let text = page.finish();
        assert!(text.contains("t_bucket{le=\"0.00005\"} 0\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"5\"} 1\n"), "{text}");
    }

    #[test]
    fn every_mutation_kind_is_listed_once() {
        let mut kinds = MUTATION_KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), MUTATION_KINDS.len());
    }
}
