//! `rampart health`: one `grpc.health.v1.Health/Check`, for Kubernetes exec
//! probes (a pod that serves TLS only, which the kubelet's native gRPC probe
//! cannot reach) and for scripts.
//!
//! Owns the answer's meaning as an exit code and one line on stderr. It is a
//! client only, like `ctl`, and reaches the server with `ctl`'s options
//! (`super::connect`). `--timeout-ms` bounds connecting and the call
//! together, so a probe never hangs.
//!
//! Exit codes: 0 SERVING; 1 the server answered, but not SERVING (another
//! status, a service it does not know, or an error status); 2 usage; 69
//! (`EX_UNAVAILABLE`) no answer (refused, TLS failed, timed out).

use std::error::Error as StdError;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use thiserror::Error;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::connect::{ConnectArgs, Target, error_chain};
use super::ctl::{code_name, terminal_safe};

/// What `rampart health --help` says after the options.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   SERVING (stdout: SERVING)
  1   the server answered, but not SERVING: stdout has the status
      (NOT_SERVING, UNKNOWN, or SERVICE_UNKNOWN for a service it does not
      know); another gRPC error prints nothing on stdout
  2   usage: bad options, unreadable --ca/--cert/--key
  69  no answer (EX_UNAVAILABLE): connection refused, TLS handshake failed,
      the name does not resolve, or nothing within --timeout-ms
Every failure also prints one line on stderr saying what was wrong.";

/// `rampart health` arguments.
#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The service to ask about: `` (the default) is the whole server;
    /// rampart also answers for `rampart.v1.Authorization` and
    /// `rampart.v1.Admin` (NOT_SERVING while writes are refused).
    #[arg(long, default_value = "")]
    pub service: String,
    /// Bound on connecting and the call together, in milliseconds.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Print nothing on stdout (the exit code and stderr still say).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Why the answer is not SERVING, and so the exit code.
#[derive(Debug, Error)]
pub enum HealthError {
    /// The server answered with a status other than SERVING.
    #[error("{} at {url} is {status}", what(service))]
    NotServing {
        url: String,
        service: String,
        status: &'static str,
    },
    /// The server does not know the service.
    #[error("{url} does not know the service `{service}` (its health answers NOT_FOUND)")]
    UnknownService { url: String, service: String },
    /// The server answered the call with another error.
    #[error("{url} answered the health check with {code}: {message}")]
    Status {
        url: String,
        code: &'static str,
        message: String,
    },
    /// Options the server never saw.
    #[error("{0}")]
    Usage(String),
    #[error("connection refused by {url}")]
    Refused { url: String },
    #[error("TLS handshake with {url} failed: {why}")]
    Tls { url: String, why: String },
    #[error("no answer from {url} within {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("cannot reach {url}: {why}")]
    Unreachable { url: String, why: String },
}

fn what(service: &str) -> String {
    if service.is_empty() {
        "the server".to_owned()
    } else {
        format!("service `{service}`")
    }
}

impl HealthError {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotServing { .. } | Self::UnknownService { .. } | Self::Status { .. } => 1,
            Self::Usage(_) => 2,
            Self::Refused { .. }
            | Self::Tls { .. }
            | Self::Timeout { .. }
            | Self::Unreachable { .. } => 69,
        }
    }

    /// What stdout says: the status the server answered, if it answered one.
    fn answer(&self) -> Option<&'static str> {
        match self {
            Self::NotServing { status, .. } => Some(status),
            Self::UnknownService { .. } => Some(ServingStatus::ServiceUnknown.as_str_name()),
            _ => None,
        }
    }
}

/// Runs `rampart health`.
pub fn health_main(args: HealthArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart health: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(check(&args));
    let answer = match &result {
        Ok(()) => Some(ServingStatus::Serving.as_str_name()),
        Err(e) => e.answer(),
    };
    if let Some(answer) = answer.filter(|_| !args.quiet) {
        println!("{answer}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the server's message holds.
            let line = terminal_safe(&e.to_string()).replace('\n', "\\n");
            eprintln!("rampart health: {line}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// One Health/Check, connecting included, within `--timeout-ms`.
pub async fn check(args: &HealthArgs) -> Result<(), HealthError> {
    let Target {
        url,
        endpoint,
        bearer,
    } = args.connect.target().map_err(HealthError::Usage)?;
    let ms = args.timeout_ms;
    let limit = Duration::from_millis(ms);
    let call = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(&url, ms, &e))?;
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: args.service.clone(),
        });
        // The server learns the deadline too (`grpc-timeout`).
        request.set_timeout(limit);
        let answer = HealthClient::with_interceptor(channel, bearer)
            .check(request)
            .await;
        Ok::<_, HealthError>(answer)
    };
    let answer = match tokio::time::timeout(limit, call).await {
        Err(_elapsed) => return Err(HealthError::Timeout { url, ms }),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Ok(response))) => response.into_inner(),
        Ok(Ok(Err(status))) => return Err(failed_call(&url, ms, &args.service, &status)),
    };
    // A number this client does not know is no better than UNKNOWN.
    match ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown) {
        ServingStatus::Serving => Ok(()),
        status => Err(HealthError::NotServing {
            url,
            service: args.service.clone(),
            status: status.as_str_name(),
        }),
    }
}

/// A call that did not answer a status, as what went wrong.
fn failed_call(url: &str, ms: u64, service: &str, status: &tonic::Status) -> HealthError {
    // A status with a source is the client's own (the connection failed
    // during the call, or the deadline passed); the server's answers carry
    // none.
    if let Some(source) = status.source() {
        let mut e = unreachable(url, ms, source);
        if let HealthError::Unreachable { why, .. } = &mut e
            && url.starts_with("http://")
        {
            // What plaintext to a TLS port looks like.
            why.push_str(" (if the server serves TLS: https:// and --ca)");
        }
        return e;
    }
    match status.code() {
        Code::NotFound => HealthError::UnknownService {
            url: url.to_owned(),
            service: service.to_owned(),
        },
        Code::DeadlineExceeded => HealthError::Timeout {
            url: url.to_owned(),
            ms,
        },
        code => HealthError::Status {
            url: url.to_owned(),
            code: code_name(code),
            message: status.message().to_owned(),
        },
    }
}

/// A failure to connect, or a connection lost during the call, as what
/// went wrong: the first cause in `e`'s chain that says more than "cannot
/// reach".
fn unreachable(url: &str, ms: u64, e: &(dyn StdError + 'static)) -> HealthError {
    let url = url.to_owned();
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<tonic::TimeoutExpired>() {
            return HealthError::Timeout { url, ms };
        }
        let io = s.downcast_ref::<std::io::Error>();
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            io.and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return HealthError::Tls {
                url,
                why: tls.to_string(),
            };
        }
        match io.map(std::io::Error::kind) {
            Some(std::io::ErrorKind::ConnectionRefused) => return HealthError::Refused { url },
            // rustls reports an alert from the server (say, our client
            // certificate refused) as invalid data; hyper passes on only
            // its text.
            Some(std::io::ErrorKind::InvalidData) if url.starts_with("https://") => {
                return HealthError::Tls {
                    url,
                    why: s.to_string(),
                };
            }
            _ => {}
        }
        source = s.source();
    }
    HealthError::Unreachable {
        url,
        why: error_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    #[test]
    fn the_servers_answers_and_the_clients_failures_are_told_apart() {
        let url = "http://h:1";
        let e = failed_call(url, 5, "x.Y", &Status::not_found("service not registered"));
        assert!(matches!(e, HealthError::UnknownService { .. }), "{e}");
        assert_eq!((e.exit_code(), e.answer()), (1, Some("SERVICE_UNKNOWN")));
        let e = failed_call(url, 5, "", &Status::unimplemented("no health here"));
        assert_eq!(
            e.to_string(),
            "http://h:1 answered the health check with UNIMPLEMENTED: no health here"
        );
        assert_eq!((e.exit_code(), e.answer()), (1, None));
        let e = failed_call(url, 5, "", &Status::deadline_exceeded("late"));
        assert_eq!(e.to_string(), "no answer from http://h:1 within 5 ms");
        assert_eq!(e.exit_code(), 69);

        // Statuses the client made itself carry their cause.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = failed_call(url, 5, "", &Status::from_error(Box::new(refused)));
        assert_eq!(e.to_string(), "connection refused by http://h:1");
        assert_eq!((e.exit_code(), e.answer()), (69, None));
        let alert = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::General("bad record".into()),
            )
        };
        let e = failed_call("https://h:1", 5, "", &Status::from_error(Box::new(alert())));
        assert!(
            e.to_string()
                .starts_with("TLS handshake with https://h:1 failed"),
            "{e}"
        );
        // Plaintext to a TLS port (the server hangs up): the likely cause named.
        let hung_up = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed");
        let e = failed_call(url, 5, "", &Status::from_error(Box::new(hung_up)));
        assert!(matches!(e, HealthError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("https:// and --ca"), "{e}");
    }

    #[test]
    fn not_serving_names_the_service_and_its_status() {
        let e = HealthError::NotServing {
            url: "http://h:1".into(),
            service: "rampart.v1.Admin".into(),
            status: ServingStatus::NotServing.as_str_name(),
        };
        assert_eq!(
            e.to_string(),
            "service `rampart.v1.Admin` at http://h:1 is NOT_SERVING"
        );
        assert_eq!((e.exit_code(), e.answer()), (1, Some("NOT_SERVING")));
    }
}
