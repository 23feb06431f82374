//! Every `rampart serve` flag (clap): the node, security, limits and
//! telemetry, and what they turn into.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::security::SecurityArgs;
use crate::engine::Scope;
use crate::model::TenantId;
use crate::replication::{ReplicaStatus, ReplicationConfig, Role};
use crate::server::DataPlaneConfig;
use crate::server::limits::Limits;
use crate::store::Retention;
use crate::telemetry::traces::LogFormat;
use crate::telemetry::{DecisionLogConfig, Target, TelemetryConfig};

/// `rampart serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RAMPART_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Where the store lives (sled): the changelog, the audit log, checkpoints.
    #[arg(long, env = "RAMPART_DATA_DIR", default_value = "./rampart-data")]
    pub data_dir: PathBuf,
    /// Keep the store in PostgreSQL instead of sled in --data-dir, shared
    /// by every node given the same one: a libpq-style URL, `postgres://user@host[:port][,host2…]/db`
    /// (`target_session_attrs=read-write` and other parameters accepted).
    /// rampart creates and migrates its tables.
    #[arg(
        long,
        env = "RAMPART_STORE",
        value_name = "URL",
        conflicts_with = "follow",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// With `--store postgres://…`: the CA (PEM) a TLS server's certificate
    /// must chain to, instead of the system's roots. The URL's `sslmode`
    /// (`disable`, `prefer`: the default, or `require`) says whether TLS
    /// is used; when it is, the certificate must also name the host.
    #[arg(long, env = "RAMPART_STORE_CA", value_name = "PEM", requires = "store")]
    pub store_ca: Option<PathBuf>,
    /// Policy file applied (as operator mutations) when the store is empty;
    /// without it, the built-in quickstart demo policy. Ignored, with a log
    /// line, when the store already holds a state.
    #[arg(long, env = "RAMPART_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,
    /// Start an empty store empty (revision 0) instead of bootstrapping it:
    /// to restore a backup with `rampart ctl import`.
    #[arg(long, env = "RAMPART_NO_BOOTSTRAP", conflicts_with = "bootstrap")]
    pub no_bootstrap: bool,
    /// Write a checkpoint after this many new revisions (recovery replays
    /// only what follows the newest checkpoint).
    #[arg(long, env = "RAMPART_CHECKPOINT_EVERY", default_value_t = 10_000)]
    pub checkpoint_every: u64,
    /// Answer permissions the catalog does not cover with INVALID_ARGUMENT
    /// instead of DENY UNKNOWN_PERMISSION.
    #[arg(long, env = "RAMPART_STRICT_CATALOG")]
    pub strict_catalog: bool,
    /// Most items in one BatchCheck.
    #[arg(long, env = "RAMPART_MAX_BATCH", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_batch: u32,
    /// How long a check with `at_least_revision` waits for that revision, in milliseconds.
    #[arg(long, env = "RAMPART_CONSISTENCY_WAIT_MS", default_value_t = 100)]
    pub consistency_wait_ms: u64,
    /// How long shutdown waits for in-flight calls, in milliseconds.
    #[arg(long, env = "RAMPART_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Run as a read replica of the leader at this URL (e.g.
    /// `http://leader:50051`): bootstrap from its export, follow its
    /// changelog, answer checks, refuse admin calls.
    #[arg(long, env = "RAMPART_FOLLOW", value_name = "URL")]
    pub follow: Option<String>,
    /// With --follow: hold only these tenants (tenant ids, comma-separated):
    /// bootstrap from an export of them, follow only their changes (and
    /// those of the catalog and the Bridges grants), and answer a check
    /// about any other tenant NOT_FOUND saying so. For a sidecar beside an
    /// application that needs those tenants only; give it a follow token
    /// confined to them on the leader (`tenants` in its tokens file), so a
    /// compromised pod cannot read other tenants. Such a replica keeps its
    /// state in memory (--data-dir is not used) and bootstraps again from
    /// its leader at each start.
    #[arg(long, env = "RAMPART_TENANTS", value_name = "IDS", value_delimiter = ',', value_parser = parse_tenant)]
    pub tenants: Vec<TenantId>,
    /// A replica reports NOT_SERVING while the change it applies is older
    /// than this, in milliseconds.
    #[arg(long, env = "RAMPART_MAX_LAG_MS", default_value_t = 5_000)]
    pub max_lag_ms: u64,
    /// Keep at least the last this many changelog revisions for replicas
    /// to catch up from (0: no revision bound).
    #[arg(long, env = "RAMPART_RETAIN_REVISIONS", default_value_t = 100_000)]
    pub retain_revisions: u64,
    /// Keep at least the changelog entries younger than this (`90s`, `30m`,
    /// `12h`, `7d`); an entry goes only when every bound set allows it.
    #[arg(long, env = "RAMPART_RETAIN_FOR", value_parser = parse_duration)]
    pub retain_for: Option<Duration>,
    /// Refuse writes (UNAVAILABLE, before the store is touched) while the
    /// data dir's filesystem has less free space than this: bytes, or with
    /// a unit (`64MiB`, `1GiB`, `500MB`); 0 turns the check off. Reads and
    /// checks go on; writes resume as soon as space is back.
    #[arg(long, env = "RAMPART_MIN_FREE_SPACE", default_value = "64MiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub min_free_space: u64,
    /// The longest one store write may take, in milliseconds: a write that
    /// overruns it (sled stuck, as on a full disk) is answered UNAVAILABLE
    /// and the node exits with code 75 to be restarted.
    #[arg(long, env = "RAMPART_STORE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_timeout_ms: u64,
    /// With a shared store (`--store postgres://…`): how often this node
    /// looks for the other nodes' writes, in milliseconds, besides being
    /// woken by the database when they commit (LISTEN/NOTIFY). The poll is
    /// the guarantee when a notification is lost (the listening connection
    /// down, or a pooler in front that does not pass LISTEN on).
    #[arg(long, env = "RAMPART_POLL_STORE_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_store_ms: u64,
    /// How often an idle Watch stream gets a checkpoint, in milliseconds.
    #[arg(long, env = "RAMPART_WATCH_HEARTBEAT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub watch_heartbeat_ms: u64,
    // Authentication and TLS (security.rs).
    #[command(flatten)]
    pub security: SecurityArgs,
    // Limits and load shedding (server/limits.rs).
    #[command(flatten)]
    pub limits: LimitsArgs,
    /// Serve the HTTP/JSON API (AuthZEN 1.0, the JSON mirror of Check and
    /// BatchCheck, /openapi.json) on this address, with the gRPC port's TLS,
    /// credentials and limits (default: off). The AuthZEN mapping is the
    /// `[authzen]` table of the --config file.
    #[arg(long, env = "RAMPART_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// The base URL the AuthZEN metadata (/.well-known/authzen-configuration)
    /// names; default: the scheme and Host of each request.
    #[arg(
        long,
        env = "RAMPART_HTTP_PUBLIC_URL",
        value_name = "URL",
        requires = "http_listen"
    )]
    pub http_public_url: Option<String>,
    /// Read settings from this TOML file (every key a flag's name): flags
    /// and RAMPART_* variables take precedence over it.
    #[arg(long, env = "RAMPART_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (and where each value came from,
    /// secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Logs on stderr as `text` or `json` (one object per line).
    #[arg(long, env = "RAMPART_LOG_FORMAT", default_value = "text", value_parser = log_format_parser())]
    pub log_format: LogFormat,
    // Metrics and the decision log (telemetry/).
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// `--log-format`: telemetry's names as clap's possible values (listed in
/// `--help`, suggested after a typo), read with telemetry's own `FromStr`,
/// so the telemetry module does not depend on clap.
fn log_format_parser() -> impl clap::builder::TypedValueParser<Value = LogFormat> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(LogFormat::NAMES).try_map(|s| s.parse::<LogFormat>())
}

/// One `--tenants` value: a tenant id, or an error naming it.
fn parse_tenant(text: &str) -> Result<TenantId, String> {
    TenantId::new(text).map_err(|e| e.to_string())
}

/// A duration as a number and a unit: `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 30m, 12h or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// A size in bytes: a number with an optional unit, binary (`KiB`, `MiB`,
/// `GiB`, `TiB`, or just `K`, `M`, `G`, `T`) or decimal (`KB`, `MB`, `GB`,
/// `TB`); `B` or no unit is bytes. Case does not matter.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 64MiB, 1GiB or 1048576"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "`{text}`: the unit must be one of B, KiB, MiB, GiB, TiB, KB, MB, GB, TB"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

impl ServeArgs {
    pub fn data_plane(&self) -> DataPlaneConfig {
        DataPlaneConfig {
            max_batch: self.max_batch as usize,
            strict_catalog: self.strict_catalog,
            consistency_wait: Duration::from_millis(self.consistency_wait_ms),
            limits: self.limits.limits(),
        }
    }

    /// The tenants this node holds (`--tenants`; `None`: every tenant), or
    /// why the flags do not allow it.
    pub fn scope(&self) -> Result<Option<Scope>, String> {
        let scope = Scope::new(self.tenants.iter().cloned());
        if scope.is_some() && self.follow.is_none() {
            return Err(
                "--tenants needs --follow: only a read replica can hold some of the tenants (a leader holds every tenant); add --follow URL of the leader, or drop --tenants"
                    .to_owned(),
            );
        }
        Ok(scope)
    }

    pub fn retention(&self) -> Retention {
        Retention {
            revisions: (self.retain_revisions > 0).then_some(self.retain_revisions),
            age: self.retain_for,
        }
    }

    pub fn replication(&self) -> ReplicationConfig {
        ReplicationConfig {
            role: match &self.follow {
                None => Role::Leader,
                Some(leader) => Role::Replica {
                    leader: leader.clone(),
                    status: Arc::new(ReplicaStatus::default()),
                    max_lag: Duration::from_millis(self.max_lag_ms),
                },
            },
            heartbeat: Duration::from_millis(self.watch_heartbeat_ms),
            retention: self.retention(),
        }
    }
}

/// `rampart serve`'s limit flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsArgs {
    /// Most calls in flight at once (health and reflection not counted);
    /// past it, calls are refused with RESOURCE_EXHAUSTED, not queued.
    #[arg(long, env = "RAMPART_MAX_IN_FLIGHT", default_value_t = 4_096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Largest request message of the Authorization and Admin services, in
    /// bytes (Replication's Import chunks have their own 64 MiB bound).
    #[arg(long, env = "RAMPART_MAX_MESSAGE_BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_message_bytes: u32,
    /// Server-side deadline of a unary call, in milliseconds (a client's
    /// shorter `grpc-timeout` applies too). Streams are not cut by it.
    #[arg(long, env = "RAMPART_CALL_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub call_timeout_ms: u64,
    /// Failing calls (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT)
    /// a second one connection may make; past it, the server stops reading
    /// from that connection until it is back under (0: no limit).
    #[arg(long, env = "RAMPART_MAX_FAILED_CALLS_PER_SEC", default_value_t = 100)]
    pub max_failed_calls_per_sec: u32,
    /// Streams (calls) one HTTP/2 connection may have open at once
    /// (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "RAMPART_MAX_STREAMS_PER_CONNECTION", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,
    /// Client connections open at once; past it, a new connection is closed
    /// as soon as it is accepted (0: no limit). `auto`: the process's
    /// open-file limit (`ulimit -n`) less 64 for rampart's own files, at
    /// most 10000. A number above that is kept, with a warning.
    #[arg(long, env = "RAMPART_MAX_CONNECTIONS", default_value = "auto", value_parser = parse_max_connections, value_name = "N|auto")]
    pub max_connections: MaxConnections,
    /// Close a connection with no call open for this many seconds (0: never).
    #[arg(long, env = "RAMPART_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// Close a connection whose peer sends nothing at all (not even the
    /// HTTP/2 preface or a TLS hello) for this many seconds (0: never).
    #[arg(long, env = "RAMPART_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
}

impl LimitsArgs {
    /// The limits these flags ask for. Reads the process's open-file limit
    /// for `--max-connections` and logs what it came to (a warning when an
    /// explicit value is past what the limit allows).
    pub fn limits(&self) -> Limits {
        let cap = connection_cap(self.max_connections, soft_open_file_limit());
        match &cap.warning {
            Some(warning) => tracing::warn!(max_connections = cap.max, "{warning}"),
            None => tracing::info!(max_connections = cap.max, "{}", cap.why),
        }
        Limits {
            max_in_flight: self.max_in_flight as usize,
            max_message_bytes: self.max_message_bytes as usize,
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            max_failed_calls_per_sec: self.max_failed_calls_per_sec,
            max_streams_per_connection: self.max_streams_per_connection,
            max_connections: cap.max,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs),
            ..Limits::default()
        }
    }
}

/// `--max-connections`: a number (0: no limit) or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxConnections {
    /// Follow the open-file limit ([`connection_cap`]).
    Auto,
    /// This many, whatever the limit (0: no limit).
    Fixed(u32),
}

/// `auto`, or a number of connections.
pub fn parse_max_connections(text: &str) -> Result<MaxConnections, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(MaxConnections::Auto);
    }
    text.parse().map(MaxConnections::Fixed).map_err(|_| {
        format!(
            "`{}` is not a number of connections (0: no limit) or `auto`",
            crate::model::quote(text)
        )
    })
}

/// File descriptors `auto` keeps back from client connections for
/// rampart's own: stdio; sled's files (`db`, `conf`, a snapshot being
/// written, blobs) and the `head` file; the gRPC and metrics listeners and
/// a scrape or two; the decision log; a replica's channel to its leader and
/// the OTLP exporter's; tokio's epoll and wakers; the tokens file read at a
/// reload; checkpoint reads. About 20 in all, so 64 leaves room.
pub const FD_HEADROOM: u64 = 64;

/// The most connections `auto` allows, whatever the open-file limit.
pub const AUTO_MAX_CONNECTIONS: u32 = 10_000;

/// What `--max-connections` comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCap {
    /// The cap (0: no limit).
    pub max: usize,
    /// Where it comes from, for the log.
    pub why: String,
    /// Set when the cap is past what the open-file limit allows: accepting
    /// would then fail for lack of descriptors (EMFILE) before the cap
    /// closes and counts the extra connections.
    pub warning: Option<String>,
}

/// `--max-connections` given the soft open-file limit (`None`: unlimited or
/// unknown). `auto` is the limit less [`FD_HEADROOM`], at least 1 and at
/// most [`AUTO_MAX_CONNECTIONS`]; a number is kept as given, with a warning
/// when it (or 0, no limit) is past that room.
pub fn connection_cap(flag: MaxConnections, soft_nofile: Option<u64>) -> ConnectionCap {
    let room = soft_nofile.map(|soft| (soft, soft.saturating_sub(FD_HEADROOM)));
    let too_many = |what: String, soft: u64, room: u64| {
        format!(
            "{what} is more than the open-file limit allows: {soft} file descriptors, less {FD_HEADROOM} for rampart's own, leave room for {room} connections; past that, accepting fails (EMFILE) instead of closing and counting the extra connections. Raise the limit (`ulimit -n`, systemd's LimitNOFILE) or lower --max-connections"
        )
    };
    match (flag, room) {
        (MaxConnections::Auto, None) => ConnectionCap {
            max: AUTO_MAX_CONNECTIONS as usize,
            why: format!(
                "--max-connections auto: {AUTO_MAX_CONNECTIONS} (the open-file limit is unlimited or unknown)"
            ),
            warning: None,
        },
        (MaxConnections::Auto, Some((soft, room))) => {
            let max = room.clamp(1, u64::from(AUTO_MAX_CONNECTIONS));
            ConnectionCap {
                max: usize::try_from(max).unwrap_or(1),
                why: format!(
                    "--max-connections auto: {max} (the open-file limit {soft} less {FD_HEADROOM} for rampart's own files, at most {AUTO_MAX_CONNECTIONS})"
                ),
                warning: (room == 0).then(|| {
                    format!(
                        "the open-file limit {soft} leaves no room for connections beside rampart's own {FD_HEADROOM} files: --max-connections auto is 1. Raise the limit (`ulimit -n`, systemd's LimitNOFILE)"
                    )
                }),
            }
        }
        (MaxConnections::Fixed(n), room) => {
            let warning = room.and_then(|(soft, room)| match n {
                0 => Some(too_many(
                    "--max-connections 0 (no limit)".to_owned(),
                    soft,
                    room,
                )),
                n if u64::from(n) > room => {
                    Some(too_many(format!("--max-connections {n}"), soft, room))
                }
                _ => None,
            });
            ConnectionCap {
                max: n as usize,
                why: format!("--max-connections {n} (as given)"),
                warning,
            }
        }
    }
}

/// The process's soft limit on open files (`RLIMIT_NOFILE`); `None` when
/// it is unlimited.
fn soft_open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// `rampart serve` telemetry arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Serve Prometheus metrics at `http://ADDR/metrics` (default: off).
    #[arg(long, env = "RAMPART_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Write a decision log, one JSON object per line, to this file
    /// (appended) or to stdout (`-`). Default: off.
    #[arg(long, env = "RAMPART_DECISION_LOG", value_name = "PATH|-")]
    pub decision_log: Option<String>,
    /// The share of decisions the decision log keeps, 0.0 to 1.0.
    #[arg(long, env = "RAMPART_DECISION_LOG_SAMPLE", default_value_t = 1.0, value_parser = parse_rate, requires = "decision_log", value_name = "RATE")]
    pub decision_log_sample: f64,
    /// Log every deny, whatever `--decision-log-sample` says.
    #[arg(long, env = "RAMPART_DECISION_LOG_DENIES", requires = "decision_log")]
    pub decision_log_denies: bool,
}

pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{text}` is not a rate from 0.0 to 1.0")),
    }
}

impl TelemetryArgs {
    /// The settings these arguments ask for.
    pub fn config(&self) -> TelemetryConfig {
        TelemetryConfig {
            metrics_listen: self.metrics_listen,
            decision_log: self.decision_log.as_ref().map(|t| DecisionLogConfig {
                target: if t == "-" {
                    Target::Stdout
                } else {
                    Target::File(PathBuf::from(t))
                },
                sample: self.decision_log_sample,
                denies: self.decision_log_denies,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_an_optional_unit() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("64mib"), Ok(64 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1 G"), Ok(1 << 30));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("12B"), Ok(12));
        assert!(parse_bytes("MiB").is_err());
        assert!(
            parse_bytes("64 parsecs")
                .unwrap_err()
                .contains("the unit must be")
        );
        assert!(
            parse_bytes("99999999999TiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(604_800)));
        for bad in ["", "7", "d", "7w", "-1d", "1.5h", "99999999999999999999d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains('`'), "{bad}: {err}");
        }
    }

    #[test]
    fn max_connections_follow_the_open_file_limit() {
        use MaxConnections::{Auto, Fixed};
        let max = |flag, soft| connection_cap(flag, soft).max;
        let warned = |flag, soft| connection_cap(flag, soft).warning;
        // auto: the limit less 64, at most 10,000, at least 1.
        assert_eq!(max(Auto, None), 10_000);
        assert_eq!(max(Auto, Some(1_048_576)), 10_000);
        assert_eq!(max(Auto, Some(10_064)), 10_000);
        assert_eq!(max(Auto, Some(10_000)), 9_936);
        assert_eq!(max(Auto, Some(1_024)), 960);
        assert_eq!(max(Auto, Some(65)), 1);
        assert_eq!(max(Auto, Some(64)), 1);
        assert_eq!(max(Auto, Some(0)), 1);
        assert_eq!(warned(Auto, Some(1_024)), None);
        assert_eq!(warned(Auto, None), None);
        let none_left = warned(Auto, Some(64)).unwrap();
        assert!(none_left.contains("open-file limit 64"), "{none_left}");
        let why = connection_cap(Auto, Some(1_024)).why;
        assert!(why.contains("960") && why.contains("1024"), "{why}");
        // A number is kept; past the room, with a warning naming the numbers.
        assert_eq!(max(Fixed(500), Some(1_024)), 500);
        assert_eq!(warned(Fixed(500), Some(1_024)), None);
        assert_eq!(warned(Fixed(960), Some(1_024)), None);
        assert_eq!(max(Fixed(20_000), Some(1_024)), 20_000);
        let over = warned(Fixed(961), Some(1_024)).unwrap();
        for part in [
            "--max-connections 961",
            "1024 file descriptors",
            "room for 960",
        ] {
            assert!(over.contains(part), "{part}: {over}");
        }
        assert_eq!(warned(Fixed(20_000), None), None);
        // 0 is no limit, and past any finite limit.
        assert_eq!(max(Fixed(0), Some(1_024)), 0);
        let unlimited = warned(Fixed(0), Some(1_024)).unwrap();
        assert!(
            unlimited.contains("--max-connections 0 (no limit)"),
            "{unlimited}"
        );
        assert_eq!(warned(Fixed(0), None), None);
    }

    #[test]
    fn max_connections_parse_auto_or_a_number() {
        assert_eq!(parse_max_connections("auto"), Ok(MaxConnections::Auto));
        assert_eq!(parse_max_connections("AUTO"), Ok(MaxConnections::Auto));
        assert_eq!(parse_max_connections("0"), Ok(MaxConnections::Fixed(0)));
        assert_eq!(
            parse_max_connections("2500"),
            Ok(MaxConnections::Fixed(2_500))
        );
        for bad in ["", "-1", "lots", "99999999999"] {
            let err = parse_max_connections(bad).unwrap_err();
            assert!(err.contains("or `auto`"), "{bad}: {err}");
        }
    }

    #[test]
    fn log_format_takes_telemetrys_names() {
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from([&["rampart", "serve"], args].concat()).map(|cli| {
                match cli.command {
                    crate::cli::Command::Serve(serve) => serve.log_format,
                    _ => unreachable!("parsed `serve`"),
                }
            })
        };
        assert_eq!(parse(&[]).unwrap(), LogFormat::Text);
        assert_eq!(parse(&["--log-format", "json"]).unwrap(), LogFormat::Json);
        assert_eq!(parse(&["--log-format", "text"]).unwrap(), LogFormat::Text);
        let err = parse(&["--log-format", "yaml"]).unwrap_err().to_string();
        assert!(err.contains("[possible values: text, json]"), "{err}");
    }

    #[test]
    fn tenants_are_tenant_ids_and_need_follow() {
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from([&["rampart", "serve"], args].concat()).map(|cli| {
                match cli.command {
                    crate::cli::Command::Serve(serve) => serve,
                    _ => unreachable!("parsed `serve`"),
                }
            })
        };
        let follow = ["--follow", "http://leader:50051"];
        let args = parse(
            &[
                &follow[..],
                &["--tenants", "globex,acme", "--tenants", "acme"],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(args.scope().unwrap().unwrap().names(), ["acme", "globex"]);
        assert_eq!(parse(&follow).unwrap().scope().unwrap(), None);
        assert_eq!(parse(&[]).unwrap().scope().unwrap(), None);
        // A bad id is named, with the rule it breaks.
        let err = parse(&[&follow[..], &["--tenants", "acme,bad/id"]].concat())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'bad/id'") && err.contains("--tenants"),
            "{err}"
        );
        assert!(
            err.contains("tenant id `bad/id` has a character outside"),
            "{err}"
        );
        let err = parse(&[&follow[..], &["--tenants", "acme,"]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tenant id must not be empty"), "{err}");
        // Only on a replica, for now.
        let err = parse(&["--tenants", "acme"]).unwrap().scope().unwrap_err();
        assert!(err.starts_with("--tenants needs --follow"), "{err}");
    }

    #[test]
    fn rates_are_shares_and_dash_is_stdout() {
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert_eq!(parse_rate("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "half", "NaN"] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        let args = TelemetryArgs {
            decision_log: Some("-".into()),
            decision_log_sample: 0.5,
            ..TelemetryArgs::default()
        };
        let config = args.config().decision_log.unwrap();
        assert_eq!(config.target, Target::Stdout);
        assert_eq!(config.sample, 0.5);
        assert_eq!(
            TelemetryArgs::default().config(),
            TelemetryConfig::default()
        );
    }
}
