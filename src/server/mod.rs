//! The gRPC server (work in progress in this commit).

pub mod loadgen;

use std::process::ExitCode;

/// `rampart serve` arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs `rampart serve`.
pub fn serve_main(_args: ServeArgs) -> ExitCode {
    eprintln!("serve: not built yet");
    ExitCode::FAILURE
}
