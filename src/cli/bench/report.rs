//! What a run measured, and how it is printed.

use std::time::Duration;

use super::{BenchArgs, Mode};

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

pub fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    u64::from(sorted[rank.min(sorted.len() - 1)])
}

pub fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Prints a report as `args` asks (`--json`: one object).
pub fn print(args: &BenchArgs, r: &Report) {
    if args.mode == Mode::Mutate {
        print_mutate(args, r);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
