//! The command line: `serve`, `validate`, `test`, `bench`, `ctl`, `health`,
//! `token`, and the hidden `dev-seed` (benchmarks only).
//!
//! Parses arguments (clap, every flag also a `RAMPART_*` variable) and hands
//! over to the library; holds no decision logic of its own.

pub mod bench;
pub mod config;
pub mod connect;
pub mod ctl;
pub mod health;
pub mod policy_test;
pub mod seed;
pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::model::policy_file;

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "A policy decision point for role- and group-based access"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Check and BatchCheck over gRPC.
    Serve(Box<serve::ServeArgs>),
    /// Check policy files and report every error with its location.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run policy test files (expected decisions) without a server.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print passing checks too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Drive a running server with Check or BatchCheck load and report throughput and latency.
    Bench(bench::BenchArgs),
    /// The admin client: every Admin call, check, batch-check and audit.
    Ctl(ctl::CtlArgs),
    /// Ask a server's gRPC health (grpc.health.v1.Health/Check), for probes
    /// and scripts: exit 0 only when SERVING.
    #[command(after_help = health::EXIT_CODES)]
    Health(health::HealthArgs),
    /// For benchmarks: write a synthetic state into an empty data folder.
    #[command(hide = true)]
    DevSeed(seed::SeedArgs),
    /// Bearer tokens: make one, or hash one for the tokens file.
    #[command(subcommand)]
    Token(TokenCmd),
}

/// `rampart token`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Read a token from stdin and print its SHA-256 (what the tokens file holds).
    Hash,
    /// Print a fresh random token (shown once) and its tokens-file entry.
    New {
        /// The entry's name (recorded as the audit log's credential).
        #[arg(long, default_value = "new-token")]
        name: String,
        /// Its scopes: check, admin, watch, operator (repeat or comma-separate).
        #[arg(long = "scope", value_delimiter = ',', default_value = "check", value_parser = ["check", "admin", "watch", "operator"])]
        scopes: Vec<String>,
        /// Confine it to these tenants (repeat or comma-separate): Check and
        /// Admin calls only there, and only changes no other tenant sees;
        /// Watch, Export and GetState only of these tenants (a sidecar's
        /// follow token). Not with the operator scope.
        #[arg(long = "tenant", value_delimiter = ',')]
        tenants: Vec<String>,
        /// Bind its Admin calls to this user: they act as this actor,
        /// whatever the call says.
        #[arg(long)]
        actor: Option<String>,
    },
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let folded = match config::fold(argv.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rampart: {e}");
            return ExitCode::from(64);
        }
    };
    let cli = Cli::parse_from(&folded);
    match cli.command {
        Command::Serve(args) if args.print_config => {
            print!("{}", config::render(&argv, &folded, args.config.as_deref()));
            // The mapping is checked as `serve` would check it.
            match serve::ext_authz_mapping(args.config.as_deref()) {
                Ok(Some(m)) => println!("# [ext_authz]: {} routes", m.routes().len()),
                Ok(None) => println!("# [ext_authz]: none (Envoy's Check denies every request)"),
                Err(e) => {
                    eprintln!("rampart: {e}");
                    return ExitCode::from(64);
                }
            }
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve::serve_main(*args),
        Command::Validate { files } => validate(&files),
        Command::Test { files, verbose } => test(&files, verbose),
        Command::Bench(args) => bench::bench_main(args),
        Command::Ctl(args) => ctl::ctl_main(args),
        Command::Health(args) => health::health_main(args),
        Command::DevSeed(args) => seed::seed_main(args),
        Command::Token(cmd) => token(cmd),
    }
}

fn token(cmd: TokenCmd) -> ExitCode {
    use crate::client::{hash_hex, valid_token};
    match cmd {
        TokenCmd::Hash => {
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                eprintln!("rampart token hash: cannot read stdin: {e}");
                return ExitCode::from(2);
            }
            let token = text.trim();
            if !valid_token(token) {
                eprintln!(
                    "rampart token hash: a token is 1 to 4096 visible ASCII characters on one line"
                );
                return ExitCode::from(2);
            }
            println!("{}", hash_hex(token));
            ExitCode::SUCCESS
        }
        TokenCmd::New {
            name,
            scopes,
            tenants,
            actor,
        } => {
            // The entry must be one the server accepts.
            let checked = crate::server::auth::bounds(
                scopes
                    .iter()
                    .filter_map(|s| crate::server::auth::Scope::parse(s))
                    .collect(),
                (!tenants.is_empty()).then(|| tenants.clone()),
                actor.clone(),
            );
            if let Err(why) = checked {
                eprintln!("rampart token new: {why}");
                return ExitCode::from(2);
            }
            new_token_entry(&name, &scopes, &tenants, actor.as_deref())
        }
    }
}

/// `rampart token new`: a fresh token and its tokens-file entry.
fn new_token_entry(
    name: &str,
    scopes: &[String],
    tenants: &[String],
    actor: Option<&str>,
) -> ExitCode {
    use crate::client::{hash_hex, new_token};
    match new_token() {
        Ok(token) => {
            let listed = |items: &[String]| {
                let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
                format!("[{}]", items.join(", "))
            };
            println!(
                "# The token: give it to the client (RAMPART_TOKEN). It is not stored anywhere."
            );
            println!("{token}");
            println!("# The tokens-file entry: it holds only the hash.");
            println!("[[token]]");
            println!("name = {}", toml_string(name));
            println!("sha256 = \"{}\"", hash_hex(&token));
            println!("scopes = {}", listed(scopes));
            if !tenants.is_empty() {
                println!("tenants = {}", listed(tenants));
            }
            if let Some(actor) = actor {
                println!("actor = {}", toml_string(actor));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart token new: the system's random source failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut bad = false;
    for file in files {
        let result = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| policy_file::load_str(&text).map_err(|e| e.to_string()));
        match result {
            Ok(state) => println!(
                "{}: ok ({} tenants, {} catalog entries)",
                file.display(),
                state.tenants.len(),
                state.catalog.entries().len()
            ),
            Err(e) => {
                bad = true;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn test(files: &[PathBuf], verbose: bool) -> ExitCode {
    let mut summary = policy_test::Summary::default();
    for file in files {
        policy_test::run_file(file, verbose, &mut summary);
    }
    print!("{}", summary.report);
    println!("{} passed, {} failed", summary.passed, summary.failed);
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
