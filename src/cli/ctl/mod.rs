//! `rampart ctl`: the command-line client for every Admin call, plus
//! `check`, `batch-check`, `audit`, and the Replication calls (`status`,
//! `export`, `import`, `watch`).
//!
//! Owns the top of the argument tree, the connection and the exit codes;
//! the Admin nouns' arguments live in `args.rs` and their calls in
//! `admin.rs`, `audit` in `audit.rs`, the data-plane calls in `check.rs`,
//! the Replication calls in `replication.rs`, printing in `output.rs`. It is a client only: it never reads the engine or the model,
//! only the generated `proto` types, so it behaves exactly as any other
//! client of the server would.
//!
//! Exit codes: 0 success (a `check` deny included, unless `--exit-code`),
//! 1 the server refused or failed, 2 usage (clap's, and unreadable input),
//! 3 a deny under `check --exit-code`, 69 (`EX_UNAVAILABLE`) the server
//! cannot be reached.

mod admin;
mod args;
mod audit;
mod check;
mod output;
mod replication;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use thiserror::Error;

use super::connect::{ConnectArgs, Target, error_chain};
use crate::client::AuthedChannel;

use crate::proto::admin_client::AdminClient;
use crate::proto::authorization_client::AuthorizationClient;
use crate::proto::replication_client::ReplicationClient;
use output::Report;
pub use output::{Format, code_name, terminal_safe};

/// `rampart ctl` arguments.
#[derive(Debug, Args)]
pub struct CtlArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// `table` (aligned columns) or `json` (one document, for scripts).
    #[arg(
        short,
        long,
        global = true,
        value_enum,
        env = "RAMPART_OUTPUT",
        default_value = "table"
    )]
    pub output: Format,
    /// How long to wait for the connection, in milliseconds.
    #[arg(
        long,
        global = true,
        env = "RAMPART_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub connect_timeout_ms: u64,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The nouns (and the verbs that stand alone).
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Tenants: create, update, delete, list.
    #[command(subcommand)]
    Tenant(args::TenantCmd),
    /// The permission catalog (global): define, stability, remove, list.
    #[command(subcommand)]
    Catalog(args::CatalogCmd),
    /// The grants every tenant's `Bridges` role holds (global).
    #[command(subcommand)]
    Bridges(args::BridgesCmd),
    /// Roles: create, describe, delete, get, list.
    #[command(subcommand)]
    Role(args::RoleCmd),
    /// A role's grants: add, remove, set.
    #[command(subcommand)]
    Grant(args::GrantCmd),
    /// Groups and their members.
    #[command(subcommand)]
    Group(args::GroupCmd),
    /// Users of a tenant.
    #[command(subcommand)]
    User(args::UserCmd),
    /// Bindings of users and groups to roles: assign, unassign, list.
    #[command(subcommand)]
    Binding(args::BindingCmd),
    /// Same as `binding assign`.
    Assign(args::AssignArgs),
    /// Same as `binding unassign`.
    Unassign(args::UnassignArgs),
    /// May SUBJECT do PERMISSION in TENANT? A deny is an answer: exit 0
    /// unless --exit-code.
    Check(check::CheckArgs),
    /// Decide many requests read from a file or stdin, one row per item in order.
    BatchCheck(check::BatchCheckArgs),
    /// The audit log: every change and every refused attempt.
    Audit(audit::AuditArgs),
    /// The node's revision, history, role, replication lag (and digest).
    Status(replication::StatusArgs),
    /// The whole state at one revision, to stdout or --file (a backup).
    Export(replication::ExportArgs),
    /// Load an export into a node that holds no state.
    Import(replication::ImportArgs),
    /// Print the changelog as it happens, from a revision.
    Watch(replication::WatchArgs),
}

/// Acting as a user, or trying a change without making it: on every
/// mutating verb.
#[derive(Debug, Clone, Args)]
pub struct Mutate {
    /// Act as this user of the tenant (the administration rules apply);
    /// without it, as the operator.
    #[arg(long, visible_alias = "as", env = "RAMPART_ACTOR")]
    pub actor: Option<String>,
    /// Validate the change and report the revision it would get; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Mutate {
    fn actor(&self) -> String {
        self.actor.clone().unwrap_or_default()
    }
}

/// Reading as a user: on `role get` and the tenant listings (`role`,
/// `group`, `user` and `binding list`). The same option as [`Mutate`]'s.
#[derive(Debug, Clone, Default, Args)]
pub struct ReadAs {
    /// Read as this user of the tenant: only the rows its `ACM:…:RETRIEVE`
    /// permissions cover; without it, as the credential (every row).
    #[arg(long, visible_alias = "as", env = "RAMPART_ACTOR")]
    pub actor: Option<String>,
}

impl ReadAs {
    fn actor(&self) -> String {
        self.actor.clone().unwrap_or_default()
    }
}

/// Why a command failed, and so its exit code.
#[derive(Debug, Error)]
pub enum CtlError {
    /// The server answered with an error status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(Box<tonic::Status>),
    /// The server could not be reached.
    #[error("cannot reach the server at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// Bad arguments or input the server never saw.
    #[error("{0}")]
    Usage(String),
    /// Some items of a batch got an error (every row is still printed).
    #[error("{failed} of {total} items got an error")]
    Items { failed: usize, total: usize },
    /// The command ran and printed its answer, but wants this exit code.
    #[error("exit {0}")]
    Exit(u8),
}

impl CtlError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Status(_) | Self::Items { .. } => 1,
            Self::Usage(_) => 2,
            Self::Unreachable { .. } => 69,
            Self::Exit(code) => *code,
        })
    }
}

/// The connection: both services over one channel.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    pub admin: AdminClient<AuthedChannel>,
    pub authz: AuthorizationClient<AuthedChannel>,
    pub replication: ReplicationClient<AuthedChannel>,
}

impl Client {
    async fn connect(args: &CtlArgs, timeout: Duration) -> Result<Self, CtlError> {
        let Target {
            url,
            endpoint,
            bearer,
        } = args.connect.target().map_err(CtlError::Usage)?;
        let channel = endpoint
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| CtlError::Unreachable {
                url: url.clone(),
                why: error_chain(&e),
            })?;
        Ok(Self {
            url,
            // Listings page, but a server without paging answers in one.
            admin: AdminClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(64 << 20),
            authz: AuthorizationClient::with_interceptor(channel.clone(), bearer.clone()),
            replication: ReplicationClient::with_interceptor(channel, bearer)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        })
    }

    /// A read's answer, or the error it became.
    pub fn read<T>(
        &self,
        answer: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, CtlError> {
        answer
            .map(tonic::Response::into_inner)
            .map_err(|s| self.fail(s))
    }

    /// A failed call as an error: a transport failure (the connection
    /// dropped) is `Unreachable`, anything the server said is `Status`.
    pub fn fail(&self, status: tonic::Status) -> CtlError {
        if status.code() == tonic::Code::Unavailable && std::error::Error::source(&status).is_some()
        {
            CtlError::Unreachable {
                url: self.url.clone(),
                why: error_chain(&status),
            }
        } else {
            CtlError::Status(Box::new(status))
        }
    }
}

/// Runs `rampart ctl`.
pub fn ctl_main(args: CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart ctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = args.output;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            print!("{}", report.render(format));
            ExitCode::SUCCESS
        }
        Err(Failure { printed, error }) => {
            if let Some(report) = printed {
                print!("{}", report.render(format));
            }
            if !matches!(error, CtlError::Exit(_)) {
                // The message may carry the server's words.
                eprintln!("rampart ctl: {}", output::terminal_safe(&error.to_string()));
            }
            error.exit_code()
        }
    }
}

/// A failed command, with whatever it has to print first (the answer of a
/// `check --exit-code` deny, the grants added before a refusal).
#[derive(Debug)]
pub struct Failure {
    pub printed: Option<Report>,
    pub error: CtlError,
}

impl From<CtlError> for Failure {
    fn from(error: CtlError) -> Self {
        Self {
            printed: None,
            error,
        }
    }
}

async fn run(args: CtlArgs) -> Result<Report, Failure> {
    // Input is read before connecting: bad input is a usage error whether
    // or not the server is up.
    let input = match &args.command {
        CtlCommand::BatchCheck(a) => check::read_input(a)?,
        _ => Vec::new(),
    };
    let import = match &args.command {
        CtlCommand::Import(a) => replication::read_import(a)?,
        _ => Vec::new(),
    };
    let timeout = Duration::from_millis(args.connect_timeout_ms);
    let client = Client::connect(&args, timeout).await?;
    match args.command {
        CtlCommand::Tenant(c) => admin::tenant(client, c).await,
        CtlCommand::Catalog(c) => admin::catalog(client, c).await,
        CtlCommand::Bridges(c) => admin::bridges(client, c).await,
        CtlCommand::Role(c) => admin::role(client, c).await,
        CtlCommand::Grant(c) => admin::grant(client, c).await,
        CtlCommand::Group(c) => admin::group(client, c).await,
        CtlCommand::User(c) => admin::user(client, c).await,
        CtlCommand::Binding(c) => admin::binding(client, c).await,
        CtlCommand::Assign(a) => admin::binding(client, args::BindingCmd::Assign(a)).await,
        CtlCommand::Unassign(a) => admin::binding(client, args::BindingCmd::Unassign(a)).await,
        CtlCommand::Check(a) => check::check(client, a).await,
        CtlCommand::BatchCheck(a) => check::batch_check(client, a, input).await,
        CtlCommand::Audit(a) => audit::run(client, a).await,
        CtlCommand::Status(a) => replication::status(client, a).await,
        CtlCommand::Export(a) => replication::export(client, a).await,
        CtlCommand::Import(a) => replication::import(client, a, import).await,
        CtlCommand::Watch(a) => replication::watch(client, a, args.output).await,
    }
}
