//! Load generator (work in progress in this commit).

use std::process::ExitCode;

/// `rampart bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs `rampart bench`.
pub fn bench_main(_args: BenchArgs) -> ExitCode {
    eprintln!("bench: not built yet");
    ExitCode::FAILURE
}
