//! Limits and load shedding: how many calls may be in flight, how large a
//! message may be, how long a call may take, and HTTP/2 keepalive.
//!
//! The in-flight limit is a semaphore taken without waiting: a call that
//! finds none free is answered `RESOURCE_EXHAUSTED` at once, rather than
//! queued without bound behind the ones already running. Health and
//! reflection never take a permit, so a saturated server still answers its
//! probes. A streaming call (Watch, Export) holds its permit only until its
//! response starts.

use std::sync::Arc;
use std::time::Duration;

use super::edge::{BoxFuture, Edge, Inner};
use tokio::sync::Semaphore;
use tonic::Status;

/// The limits a server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_in_flight: usize,
    pub max_message_bytes: usize,
    pub call_timeout: Duration,
    /// HTTP/2 PING interval and how long to wait for the answer: a dead
    /// peer's connection (and its streams) is closed.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// A connection's budget of failing calls a second (`conn.rs`); 0: none.
    pub max_failed_calls_per_sec: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 4_096,
            max_message_bytes: 4 << 20,
            call_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_failed_calls_per_sec: 100,
        }
    }
}

/// Whether a path is exempt from the in-flight limit: health and
/// reflection.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// Whether a call runs without the deadline: Import's response comes only
/// after the whole upload and the install, which may take minutes.
fn no_deadline(path: &str) -> bool {
    path == "/rampart.v1.Replication/Import"
}

/// The in-flight limit and the call deadline, as a tower layer.
#[derive(Debug, Clone)]
pub struct LimitLayer {
    permits: Arc<Semaphore>,
    max: usize,
    deadline: Duration,
}

impl LimitLayer {
    pub fn new(limits: &Limits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.max_in_flight)),
            max: limits.max_in_flight,
            deadline: limits.call_timeout,
        }
    }
}

impl Edge for LimitLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        if exempt(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                let deadline = if no_deadline(request.uri().path()) {
                    Duration::MAX
                } else {
                    self.deadline
                };
                let call = inner.call(request);
                Box::pin(async move {
                    // A stream's response is its headers: the deadline
                    // does not cut the stream itself.
                    let response = match tokio::time::timeout(deadline, call).await {
                        Ok(response) => response,
                        Err(_) => Ok(Status::deadline_exceeded(format!(
                            "the call took longer than the server's deadline of {} ms (--call-timeout-ms)",
                            deadline.as_millis()
                        ))
                        .into_http()),
                    };
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                let status = Status::resource_exhausted(format!(
                    "the server is at its limit of {} calls in flight (--max-in-flight); retry with backoff",
                    self.max
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_never_limited() {
        assert!(exempt("/grpc.health.v1.Health/Check"));
        assert!(exempt(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!exempt("/rampart.v1.Authorization/Check"));
        assert!(!exempt("/rampart.v1.Replication/Watch"));
        assert!(no_deadline("/rampart.v1.Replication/Import"));
        assert!(!no_deadline("/rampart.v1.Authorization/Check"));
    }
}
