//! The `rampart` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
