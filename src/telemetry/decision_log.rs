//! The decision log: one JSON object per decision, to a file or stdout,
//! sampled.
//!
//! The check path never writes: it decides whether to keep a record (one
//! atomic add), builds it, and `try_send`s it into a bounded channel; a
//! writer thread formats and writes. When the channel is full the record is
//! dropped and counted (`rampart_decision_log_dropped_total`), so a slow
//! disk slows nothing but the log.
//!
//! Sampling is deterministic, not random: record `n` (counted over every
//! decision) is kept when `floor((n + 1) * rate) > floor(n * rate)`, which
//! keeps exactly `rate` of them, evenly spread (rate 0.25: every fourth).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use super::metrics::CheckMetrics;

/// Records waiting for the writer; past this, records are dropped.
const CAPACITY: usize = 8_192;
/// Sampling resolution: the rate in millionths.
const PPM: u64 = 1_000_000;

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// Appended to (created if missing).
    File(PathBuf),
}

/// Decision-log settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLogConfig {
    pub target: Target,
    /// The share of decisions logged, 0.0 to 1.0.
    pub sample: f64,
    /// Log every deny, whatever the sampling.
    pub denies: bool,
}

/// One decision, as the check path hands it over.
#[derive(Debug)]
pub struct Record {
    pub time: SystemTime,
    pub request_id: String,
    pub correlation_id: String,
    pub tenant: String,
    pub subject: String,
    pub permission: String,
    pub decision: &'static str,
    pub reason: &'static str,
    pub revision: u64,
    pub method: &'static str,
}

/// The line written for a [`Record`].
#[derive(serde::Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    correlation_id: &'a str,
    tenant: &'a str,
    subject: &'a str,
    permission: &'a str,
    decision: &'a str,
    reason: &'a str,
    revision: u64,
    method: &'a str,
}

/// The sending half, shared by the data plane.
#[derive(Debug)]
pub struct DecisionLog {
    tx: SyncSender<Record>,
    rate_ppm: u64,
    denies: bool,
    seen: AtomicU64,
    ids: AtomicU64,
    metrics: Arc<CheckMetrics>,
}

/// A prefix that makes generated request ids unique across restarts.
static BOOT: LazyLock<u64> = LazyLock::new(|| {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
});

impl DecisionLog {
    /// Opens the target and starts the writer thread, which ends (after
    /// writing what is queued) when the last sender is dropped; join it to
    /// know everything was written.
    pub fn start(
        config: &DecisionLogConfig,
        metrics: Arc<CheckMetrics>,
    ) -> std::io::Result<(Arc<Self>, std::thread::JoinHandle<()>)> {
        let out: Box<dyn Write + Send> = match &config.target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = sync_channel(CAPACITY);
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(&rx, std::io::BufWriter::new(out)))?;
        let log = Arc::new(Self {
            tx,
            rate_ppm: (config.sample.clamp(0.0, 1.0) * PPM as f64).round() as u64,
            denies: config.denies,
            seen: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            metrics,
        });
        Ok((log, writer))
    }

    /// Whether to log the next decision (a deny when `deny`).
    #[inline]
    pub fn wants(&self, deny: bool) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        (deny && self.denies) || sampled(n, self.rate_ppm)
    }

    /// A request id for a call that brought none.
    pub fn request_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{:x}-{n}", *BOOT)
    }

    /// Hands `record` to the writer, or drops and counts it.
    pub fn send(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.decision_log_dropped.inc();
            }
        }
    }
}

/// Whether record `n` is kept at `rate_ppm` millionths.
fn sampled(n: u64, rate_ppm: u64) -> bool {
    let (n, rate) = (u128::from(n), u128::from(rate_ppm));
    (n + 1) * rate / u128::from(PPM) > n * rate / u128::from(PPM)
}

/// Writes records as they come, flushing whenever the queue runs dry.
fn write_loop(rx: &Receiver<Record>, mut out: impl Write) {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(r) = next {
            let line = Line {
                time: time::OffsetDateTime::from(r.time)
                    .format(&format)
                    .unwrap_or_default(),
                request_id: &r.request_id,
                correlation_id: &r.correlation_id,
                tenant: &r.tenant,
                subject: &r.subject,
                permission: &r.permission,
                decision: r.decision,
                reason: r.reason,
                revision: r.revision,
                method: r.method,
            };
            if let Ok(mut text) = serde_json::to_vec(&line) {
                text.push(b'\n');
                if out.write_all(&text).is_err() {
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_exactly_the_rate() {
        for (rate, kept) in [(0, 0), (250_000, 250), (500_000, 500), (PPM, 1_000)] {
            let n = (0..1_000).filter(|n| sampled(*n, rate)).count();
            assert_eq!(n, kept, "rate {rate}");
        }
        // Evenly spread: a quarter is every fourth.
        let quarter: Vec<u64> = (0..12).filter(|n| sampled(*n, 250_000)).collect();
        assert_eq!(quarter, [3, 7, 11]);
    }
}
