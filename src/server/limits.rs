//! Limits and load shedding: how many calls may be in flight, how large a
//! message may be, how long a call may take, and HTTP/2 keepalive.
//!
//! The in-flight limit is a semaphore taken without waiting: a call that
//! finds none free is answered `RESOURCE_EXHAUSTED` at once, rather than
//! queued without bound behind the ones already running. Health and
//! reflection never take a permit, so a saturated server still answers its
//! probes. A streaming call (Watch, Export) holds its permit only until its
//! response starts.
//!
//! A call takes its permit only once its request has arrived whole: the
//! layer reads the body first (bounded by the call deadline and by
//! `--max-message-bytes`), so a client that sends headers and never
//! finishes its body holds an HTTP/2 stream of its own connection (at most
//! `--max-streams-per-connection` of them) but no in-flight slot. Import,
//! the one client-streaming call, is not buffered: it takes its permit at
//! once, as before.
//!
//! The body it holds is checked as gRPC framing before any service sees it
//! ([`check_framing`]): no message at all, a message cut off, a compressed
//! flag other than 0 and 1 (or 1 with no `grpc-encoding`) are
//! `INVALID_ARGUMENT`; a message whose frame declares more than
//! `--max-message-bytes` is `RESOURCE_EXHAUSTED`. tonic would answer these
//! `INTERNAL` and `OUT_OF_RANGE`, in words that could change with any
//! upgrade; answered here, they need no rewriting (`wire.rs`).

use std::sync::Arc;
use std::time::Duration;

use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;

use super::conn::conn_state;
use super::edge::BoxFuture;

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
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may
    /// have open at once.
    pub max_streams_per_connection: u32,
    /// Connections open at once; past it a new one is closed at once
    /// (`conn.rs`); 0: no limit.
    pub max_connections: usize,
    /// A connection with no call open for this long is closed; zero: never.
    pub idle_timeout: Duration,
    /// A connection whose peer sends nothing at all (not even the HTTP/2
    /// preface or a TLS hello) for this long is closed; zero: never.
    pub handshake_timeout: Duration,
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
            max_streams_per_connection: 100,
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
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
    /// The most a request body may hold: one message of
    /// `--max-message-bytes` and its 5-byte gRPC frame header.
    max_body: usize,
}

impl LimitLayer {
    pub fn new(limits: &Limits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.max_in_flight)),
            max: limits.max_in_flight,
            deadline: limits.call_timeout,
            max_body: limits.max_message_bytes.saturating_add(FRAME_HEADER),
        }
    }

    fn shed(&self) -> Status {
        Status::resource_exhausted(format!(
            "the server is at its limit of {} calls in flight (--max-in-flight); retry with backoff",
            self.max
        ))
    }
}

impl<S> tower_layer::Layer<S> for LimitLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limited {
            inner,
            limit: self.clone(),
        }
    }
}

/// [`LimitLayer`]'s service.
#[derive(Debug, Clone)]
pub struct Limited<S> {
    inner: S,
    limit: LimitLayer,
}

/// How reading a request body ended.
enum Read {
    Whole(Bytes),
    TooLarge,
    Failed,
}

/// Reads `body` whole, up to `max` bytes.
async fn read_body(mut body: Body, max: usize) -> Read {
    let mut whole = BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if whole.len() + data.len() > max {
                        return Read::TooLarge;
                    }
                    whole.extend_from_slice(&data);
                }
            }
            Err(_) => return Read::Failed,
        }
    }
    Read::Whole(whole.freeze())
}

/// The size of a gRPC message's frame header: a compressed flag and a
/// 4-byte big-endian length.
const FRAME_HEADER: usize = 5;

/// What is wrong with a request body as gRPC framing (PROTOCOL-HTTP2.md:
/// `Length-Prefixed-Message`s, each a compressed flag, a length and that
/// many bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("the request body holds no message")]
    NoMessage,
    #[error("the request body ends inside a message's 5-byte header ({left} bytes of it)")]
    CutHeader { left: usize },
    #[error("the request's message is cut off: its header says {declared} bytes, {left} follow")]
    CutMessage { declared: usize, left: usize },
    #[error("the request's message has compressed flag {0}; only 0 and 1 exist")]
    BadFlag(u8),
    #[error("the request's message is marked compressed but the request names no `grpc-encoding`")]
    CompressedWithoutEncoding,
    #[error("the request is larger than the server's limit of {limit} bytes (--max-message-bytes)")]
    TooLarge { limit: usize },
}

/// Checks that `body` is one or more whole gRPC messages of at most `limit`
/// bytes each; `encoded`: the request names a `grpc-encoding`, so a
/// compressed message may come (tonic then decides whether it supports it).
pub fn check_framing(body: &[u8], encoded: bool, limit: usize) -> Result<(), FramingError> {
    if body.is_empty() {
        return Err(FramingError::NoMessage);
    }
    let mut rest = body;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_first_chunk::<FRAME_HEADER>() else {
            return Err(FramingError::CutHeader { left: rest.len() });
        };
        let [flag, length @ ..] = *header;
        match flag {
            0 => {}
            1 if encoded => {}
            1 => return Err(FramingError::CompressedWithoutEncoding),
            other => return Err(FramingError::BadFlag(other)),
        }
        let declared = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
        if declared > limit {
            return Err(FramingError::TooLarge { limit });
        }
        let Some(next) = after.get(declared..) else {
            return Err(FramingError::CutMessage {
                declared,
                left: after.len(),
            });
        };
        rest = next;
    }
    Ok(())
}

/// Whether a request names a compression (`grpc-encoding` other than
/// `identity`).
fn encoded(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity")
}

fn deadline_exceeded(deadline: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the call took longer than the server's deadline of {} ms (--call-timeout-ms)",
        deadline.as_millis()
    ))
}

impl<S, R> tower_service::Service<http::Request<Body>> for Limited<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if exempt(path) {
            return Box::pin(self.inner.call(request));
        }
        if no_deadline(path) {
            // Client-streaming: not buffered; the permit is taken now.
            return match Arc::clone(&self.limit.permits).try_acquire_owned() {
                Ok(permit) => {
                    let call = self.inner.call(request);
                    Box::pin(async move {
                        let response = call.await;
                        drop(permit);
                        response
                    })
                }
                Err(_) => Box::pin(std::future::ready(Ok(self.limit.shed().into_http()))),
            };
        }
        // The service made ready is the one that is called, later.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let limit = self.limit.clone();
        Box::pin(async move {
            let deadline = limit.deadline;
            let call = async move {
                let (parts, body) = request.into_parts();
                let max_message = limit.max_body - FRAME_HEADER;
                let bytes = match read_body(body, limit.max_body).await {
                    Read::Whole(bytes) => bytes,
                    Read::TooLarge => {
                        if let Some(conn) = conn_state(&parts.extensions) {
                            conn.failed();
                        }
                        let e = FramingError::TooLarge { limit: max_message };
                        return Ok(Status::resource_exhausted(e.to_string()).into_http());
                    }
                    Read::Failed => {
                        return Ok(Status::cancelled("the request body was cut off").into_http());
                    }
                };
                match check_framing(&bytes, encoded(&parts.headers), max_message) {
                    Ok(()) => {}
                    Err(e @ FramingError::TooLarge { .. }) => {
                        if let Some(conn) = conn_state(&parts.extensions) {
                            conn.failed();
                        }
                        return Ok(Status::resource_exhausted(e.to_string()).into_http());
                    }
                    // Charged by the budget layer, which sees the code.
                    Err(e) => return Ok(Status::invalid_argument(e.to_string()).into_http()),
                }
                let Ok(permit) = Arc::clone(&limit.permits).try_acquire_owned() else {
                    return Ok(limit.shed().into_http());
                };
                let request = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
                let response = inner.call(request).await;
                drop(permit);
                response
            };
            // A stream's response is its headers: the deadline does not
            // cut the stream itself. It covers reading the request.
            match tokio::time::timeout(deadline, call).await {
                Ok(response) => response,
                Err(_) => Ok(deadline_exceeded(deadline).into_http()),
            }
        })
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

    /// `message` as one frame with `flag`.
    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn framing_is_whole_messages_within_the_limit() {
        use FramingError as F;
        let one = frame(0, b"abc");
        assert_eq!(check_framing(&one, false, 3), Ok(()));
        assert_eq!(check_framing(&frame(0, b""), false, 3), Ok(()));
        let two = [one.clone(), frame(0, b"de")].concat();
        assert_eq!(check_framing(&two, false, 3), Ok(()));
        assert_eq!(check_framing(&[], false, 3), Err(F::NoMessage));
        assert_eq!(
            check_framing(&one[..4], false, 3),
            Err(F::CutHeader { left: 4 })
        );
        assert_eq!(
            check_framing(&[one.clone(), vec![0, 0]].concat(), false, 3),
            Err(F::CutHeader { left: 2 })
        );
        assert_eq!(
            check_framing(&one[..7], false, 3),
            Err(F::CutMessage {
                declared: 3,
                left: 2
            })
        );
        assert_eq!(check_framing(&one, false, 2), Err(F::TooLarge { limit: 2 }));
        // The declared length counts, not the bytes that follow.
        let liar = [0, 0xff, 0xff, 0xff, 0xff, b'x'];
        assert_eq!(
            check_framing(&liar, false, 4 << 20),
            Err(F::TooLarge { limit: 4 << 20 })
        );
        assert_eq!(check_framing(&frame(2, b"a"), false, 3), Err(F::BadFlag(2)));
        assert_eq!(
            check_framing(&frame(1, b"a"), false, 3),
            Err(F::CompressedWithoutEncoding)
        );
        assert_eq!(check_framing(&frame(1, b"a"), true, 3), Ok(()));
        assert_eq!(
            F::CutMessage {
                declared: 3,
                left: 2
            }
            .to_string(),
            "the request's message is cut off: its header says 3 bytes, 2 follow"
        );
    }

    #[test]
    fn identity_is_no_encoding() {
        let mut headers = http::HeaderMap::new();
        assert!(!encoded(&headers));
        headers.insert("grpc-encoding", http::HeaderValue::from_static("identity"));
        assert!(!encoded(&headers));
        headers.insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        assert!(encoded(&headers));
    }
}
