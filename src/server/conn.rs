//! Client connections, and the budget of failing calls each one has.
//!
//! Every accepted TCP connection is wrapped in a [`Conn`] whose
//! [`ConnInfo`] tonic puts into each request's extensions (inside its
//! `TlsConnectInfo` with TLS). The outermost layer
//! (`telemetry::layer::MetricsLayer`) sees each call's status code and,
//! for a call the client got wrong (`UNAUTHENTICATED`, `PERMISSION_DENIED`,
//! `INVALID_ARGUMENT`), spends one token of the connection's budget: a
//! token bucket of `--max-failed-calls-per-sec` tokens, refilled at that
//! rate.
//!
//! A connection that overdraws its budget is not closed but *paused*: the
//! server stops reading from it until the debt is paid back at the
//! configured rate (at most 5 s at a time). Its calls in flight still get
//! their answers, up to the client's flow-control window (the server does
//! not read its WINDOW_UPDATEs either); new ones wait in the kernel's
//! buffers, and the client's own flow control stops it. At shutdown every
//! pause is lifted, so none holds up the drain. So a client flooding bad calls gets at most that many failures a
//! second and costs the server almost nothing beyond them, while every
//! other connection (a NATed neighbour on the same address included) is
//! untouched. A client that opens a fresh connection for every few calls
//! is not stopped by this: that needs a limit in front of rampart (a
//! network policy, a load balancer's rate limit).
//!
//! The connections themselves are bounded too. Past `--max-connections`
//! open at once, a new connection is closed as soon as it is accepted
//! (counted in `rampart_connections_refused_total`, with one warning every
//! 10 s). A connection whose peer sends nothing at all, not even the HTTP/2
//! preface, for `--handshake-timeout-secs` is closed; so is one with no
//! call open for `--idle-timeout-secs` (its calls are counted from a
//! request's arrival to the end of its response body, by [`StreamsLayer`]).
//! Both are enforced by [`Conn::poll_read`]: when the socket has nothing
//! to read and the deadline has passed, it reports end of file and hyper
//! closes the connection. HTTP/2 keepalive does not cover these: hyper
//! starts its PINGs only after the handshake, and a live peer answers them.
//! Ending the stream is not a GOAWAY: tonic keeps each connection's
//! `graceful_shutdown` to itself (ARCHITECTURE.md says what sending one
//! would take).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TlsConnectInfo};

use super::edge::BoxFuture;
use super::limits::Limits;

/// Whether a status code is the client's fault, and so spends budget:
/// INVALID_ARGUMENT (an undecodable body too: `wire.rs` turns tonic's
/// INTERNAL into it), PERMISSION_DENIED, UNIMPLEMENTED (probing for
/// methods), UNAUTHENTICATED. Not INTERNAL (a fault of ours), nor
/// OUT_OF_RANGE (a replica behind the changelog gets it in earnest), nor
/// RESOURCE_EXHAUSTED in general (a shed call is not the client's fault):
/// an oversize message and a wrong content-type (HTTP 415) are charged
/// where they are answered (`limits.rs`, `wire.rs`).
pub fn client_fault(code: usize) -> bool {
    matches!(code, 3 | 7 | 12 | 16)
}

/// The longest a connection is paused at once: its debt is capped at this
/// many seconds' worth. Below the HTTP/2 keepalive (30 s + 10 s), so a
/// paused client is not also cut off for missing PINGs, and short enough
/// that a paused connection does not hold up a shutdown for long.
const MAX_PAUSE_SECS: f64 = 5.0;

/// At most one warning about paused connections per this many seconds.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The budget every connection starts with, and what the server counts.
#[derive(Debug)]
pub struct Guard {
    /// Failing calls a second a connection may make; `0`: no limit.
    rate: u32,
    /// Connections that have overdrawn their budget at least once.
    throttled: AtomicU64,
    /// When the last warning was logged.
    warned: Mutex<Option<Instant>>,
    /// Set at shutdown: no connection is paused any more, so none holds up
    /// the drain.
    stopping: AtomicBool,
    /// Most connections open at once; 0: no limit.
    max_connections: usize,
    /// Close a connection with no call open for this long; zero: never.
    idle_timeout: Duration,
    /// Close a connection whose peer has sent nothing for this long; zero:
    /// never.
    handshake_timeout: Duration,
    /// Connections open now.
    open: AtomicUsize,
    /// Connections closed at once for being past `max_connections`.
    refused: AtomicU64,
    /// When the last warning about a refused connection was logged.
    warned_refused: Mutex<Option<Instant>>,
}

impl Guard {
    /// A budget of `failed_calls_per_sec`, and no bound on connections.
    pub fn new(failed_calls_per_sec: u32) -> Arc<Self> {
        Self::with_limits(&Limits {
            max_failed_calls_per_sec: failed_calls_per_sec,
            max_connections: 0,
            idle_timeout: Duration::ZERO,
            handshake_timeout: Duration::ZERO,
            ..Limits::default()
        })
    }

    /// The budget and the connection bounds of `limits`.
    pub fn with_limits(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            rate: limits.max_failed_calls_per_sec,
            throttled: AtomicU64::new(0),
            warned: Mutex::new(None),
            stopping: AtomicBool::new(false),
            max_connections: limits.max_connections,
            idle_timeout: limits.idle_timeout,
            handshake_timeout: limits.handshake_timeout,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            warned_refused: Mutex::new(None),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed) as u64
    }

    /// Connections closed at once for being past `--max-connections`.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Wraps an accepted connection, or closes it (`None`) when
    /// `--max-connections` are open already.
    pub fn admit(self: &Arc<Self>, io: TcpStream) -> Option<Conn> {
        let max = self.max_connections;
        if max > 0 {
            let admitted = self
                .open
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                    (open < max).then_some(open + 1)
                })
                .is_ok();
            if !admitted {
                let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                let now = Instant::now();
                let mut warned = self
                    .warned_refused
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if warned.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY) {
                    *warned = Some(now);
                    tracing::warn!(
                        peer = ?io.peer_addr().ok(),
                        limit = max,
                        refused_connections = refused,
                        "a connection was closed as soon as accepted: --max-connections are open already (at most one such warning every 10 s; rampart_connections_refused_total counts them all)"
                    );
                }
                drop(io);
                return None;
            }
        } else {
            self.open.fetch_add(1, Ordering::Relaxed);
        }
        Some(self.conn(io))
    }

    /// Lifts every pause, now and from now on: the server is draining.
    pub fn stop_pausing(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Connections paused at least once for overdrawing their budget.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Wraps an accepted connection, whatever the bound on connections.
    pub fn wrap(self: &Arc<Self>, io: TcpStream) -> Conn {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.conn(io)
    }

    fn conn(self: &Arc<Self>, io: TcpStream) -> Conn {
        let peer = io.peer_addr().ok();
        let now = Instant::now();
        Conn {
            io,
            state: Arc::new(ConnState {
                guard: Arc::clone(self),
                peer,
                opened: now,
                bucket: Mutex::new(Bucket {
                    tokens: f64::from(self.rate),
                    at: now,
                }),
                paused_until: AtomicU64::new(0),
                counted: AtomicBool::new(false),
                streams: AtomicUsize::new(0),
                active: AtomicU64::new(0),
            }),
            pause: None,
            read_any: false,
            idle: None,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    /// May go below zero: the debt a pause pays back.
    tokens: f64,
    at: Instant,
}

/// One connection's budget.
#[derive(Debug)]
pub struct ConnState {
    guard: Arc<Guard>,
    peer: Option<SocketAddr>,
    opened: Instant,
    bucket: Mutex<Bucket>,
    /// Nanoseconds after `opened` until which the connection is not read;
    /// 0: never paused.
    paused_until: AtomicU64,
    /// Whether this connection is in the `throttled` count already.
    counted: AtomicBool,
    /// Calls open now: from the request's arrival to the end of its
    /// response body.
    streams: AtomicUsize,
    /// Nanoseconds after `opened` when the last call started or ended.
    active: AtomicU64,
}

impl ConnState {
    /// Spends one token for a failed call; overdrawn, pauses the
    /// connection until the debt is paid back.
    pub fn failed(&self) {
        let rate = self.guard.rate;
        if rate == 0 {
            return;
        }
        let rate = f64::from(rate);
        let now = Instant::now();
        let debt = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
            bucket.tokens = ((bucket.tokens + refill).min(rate) - 1.0).max(-rate * MAX_PAUSE_SECS);
            bucket.at = now;
            -bucket.tokens
        };
        if debt <= 0.0 {
            return;
        }
        let until = now + Duration::from_secs_f64(debt / rate);
        let nanos = u64::try_from(until.saturating_duration_since(self.opened).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.paused_until.fetch_max(nanos, Ordering::Relaxed);
        if !self.counted.swap(true, Ordering::Relaxed) {
            let throttled = self.guard.throttled.fetch_add(1, Ordering::Relaxed) + 1;
            let mut warned = self.guard.warned.lock().unwrap_or_else(|e| e.into_inner());
            if warned.is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY) {
                *warned = Some(now);
                tracing::warn!(
                    peer = ?self.peer,
                    limit = self.guard.rate,
                    throttled_connections = throttled,
                    "a connection makes more failing calls a second than --max-failed-calls-per-sec allows: reading from it is paused while it is over (at most one such warning every 10 s; rampart_connections_throttled_total counts them all)"
                );
            }
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.active.fetch_max(nanos, Ordering::Relaxed);
    }

    /// A call starts: the connection is not idle until it ends.
    pub fn open_call(self: &Arc<Self>) -> CallGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.touch();
        CallGuard(Arc::clone(self))
    }

    /// Until when the connection may stay as it is: `None`, forever.
    fn idle_deadline(&self, read_any: bool) -> Option<Instant> {
        let guard = &self.guard;
        if !read_any && !guard.handshake_timeout.is_zero() {
            return Some(self.opened + guard.handshake_timeout);
        }
        if guard.idle_timeout.is_zero() {
            return None;
        }
        if self.streams.load(Ordering::Relaxed) > 0 {
            // Busy: look again in a while.
            return Some(Instant::now() + guard.idle_timeout);
        }
        let active = Duration::from_nanos(self.active.load(Ordering::Relaxed));
        Some(self.opened + active + guard.idle_timeout)
    }

    /// Until when the connection is not read, if it is paused now.
    fn paused(&self) -> Option<Instant> {
        if self.guard.stopping.load(Ordering::Relaxed) {
            return None;
        }
        match self.paused_until.load(Ordering::Relaxed) {
            0 => None,
            nanos => {
                let until = self.opened + Duration::from_nanos(nanos);
                (until > Instant::now()).then_some(until)
            }
        }
    }
}

/// What tonic puts into each request's extensions for a [`Conn`] (inside
/// `TlsConnectInfo` with TLS). It replaces tonic's `TcpConnectInfo`, so
/// `tonic::Request::remote_addr()` is `None`: use [`remote_addr`].
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote_addr: Option<SocketAddr>,
    pub state: Arc<ConnState>,
}

fn conn_info(extensions: &http::Extensions) -> Option<&ConnInfo> {
    extensions.get::<ConnInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<ConnInfo>>()
            .map(TlsConnectInfo::get_ref)
    })
}

/// The connection a request came on, with or without TLS.
pub fn conn_state(extensions: &http::Extensions) -> Option<&Arc<ConnState>> {
    conn_info(extensions).map(|info| &info.state)
}

/// The peer's address of the connection a request came on.
pub fn remote_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    conn_info(extensions).and_then(|info| info.remote_addr)
}

/// One call open on a connection; dropped, the call has ended.
#[derive(Debug)]
pub struct CallGuard(Arc<ConnState>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted TCP connection that is not read while it is paused, and
/// reads as closed once it has been idle too long.
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    state: Arc<ConnState>,
    pause: Option<Pin<Box<Sleep>>>,
    /// Whether the peer has sent a byte yet.
    read_any: bool,
    idle: Option<Pin<Box<Sleep>>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.state.guard.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conn {
    /// With nothing to read: whether the connection has been idle (or
    /// silent) past its deadline, arming a timer to look again otherwise.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(deadline) = self.state.idle_deadline(self.read_any) else {
                return Poll::Pending;
            };
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            let timer = self
                .idle
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            // A busy connection's deadline moves with every read: the
            // timer armed earlier is kept until it fires.
            let busy = self.state.streams.load(Ordering::Relaxed) > 0;
            if timer.deadline() != deadline && (!busy || timer.is_elapsed()) {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            remote_addr: self.state.peer,
            state: Arc::clone(&self.state),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(until) = this.state.paused() {
            let deadline = tokio::time::Instant::from_std(until);
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if pause.deadline() != deadline {
                pause.as_mut().reset(deadline);
            }
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.read_any = true;
                }
                Poll::Ready(Ok(()))
            }
            // Idle past its deadline: end of file, and hyper closes it.
            Poll::Pending => this.poll_idle(cx).map(Ok),
            ready => ready,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The layer that counts each connection's open calls, for the idle
/// timeout: a call is open from its request's arrival to the end (or the
/// drop) of its response body, so a Watch stream keeps its connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamsLayer;

impl<S> tower_layer::Layer<S> for StreamsLayer {
    type Service = Streams<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Streams(inner)
    }
}

/// [`StreamsLayer`]'s service.
#[derive(Debug, Clone)]
pub struct Streams<S>(S);

impl<S, B> tower_service::Service<http::Request<B>> for Streams<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = conn_state(request.extensions()).map(ConnState::open_call);
        let call = self.0.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(match guard {
                None => response,
                Some(guard) => response.map(|body| {
                    tonic::body::Body::new(Guarded {
                        body,
                        _guard: guard,
                    })
                }),
            })
        })
    }
}

/// A response body that holds its call open until it ends.
struct Guarded {
    body: tonic::body::Body,
    _guard: CallGuard,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(guard: &Arc<Guard>) -> (Conn, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (guard.wrap(server), client)
    }

    #[test]
    fn only_the_clients_mistakes_count() {
        assert!(client_fault(3) && client_fault(7) && client_fault(12) && client_fault(16));
        // OK, NOT_FOUND, RESOURCE_EXHAUSTED, FAILED_PRECONDITION,
        // OUT_OF_RANGE, INTERNAL, UNAVAILABLE.
        for code in [0, 5, 8, 9, 11, 13, 14] {
            assert!(!client_fault(code), "{code}");
        }
    }

    #[tokio::test]
    async fn a_connection_is_paused_only_once_it_overdraws_and_for_its_debt() {
        let guard = Guard::new(10);
        let (conn, _client) = pair(&guard).await;
        for _ in 0..10 {
            conn.state.failed();
        }
        assert_eq!(conn.state.paused(), None, "within its budget");
        assert_eq!(guard.throttled(), 0);
        let before = Instant::now();
        for _ in 0..5 {
            conn.state.failed();
        }
        let until = conn.state.paused().expect("paused once overdrawn");
        // 5 tokens of debt at 10 a second: half a second, less what
        // refilled while the loop ran.
        let pause = until.saturating_duration_since(before);
        assert!(
            pause > Duration::from_millis(250) && pause <= Duration::from_millis(501),
            "{pause:?}"
        );
        assert_eq!(guard.throttled(), 1, "counted once per connection");
        conn.state.failed();
        assert_eq!(guard.throttled(), 1);
    }

    #[tokio::test]
    async fn a_paused_connection_is_not_read_until_its_pause_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let guard = Guard::new(20);
        let (mut conn, mut client) = pair(&guard).await;
        // 20 tokens of debt at 20 a second: about a second.
        for _ in 0..40 {
            conn.state.failed();
        }
        let until = conn.state.paused().expect("paused");
        client.write_all(b"x").await.expect("write");
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte).await.expect("read");
        assert!(Instant::now() >= until, "read before the pause ended");
        assert_eq!(&byte, b"x");
        assert_eq!(conn.state.paused(), None);
        // Writes are never held back.
        conn.write_all(b"y").await.expect("write back");
        client.read_exact(&mut byte).await.expect("read back");
        assert_eq!(&byte, b"y");
    }

    #[tokio::test]
    async fn a_pause_is_capped_and_lifted_at_shutdown() {
        let guard = Guard::new(10);
        let (conn, _client) = pair(&guard).await;
        for _ in 0..10_000 {
            conn.state.failed();
        }
        let until = conn.state.paused().expect("paused");
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs_f64(MAX_PAUSE_SECS),
            "a debt of 10,000 calls at 10 a second pauses for {left:?} more"
        );
        guard.stop_pausing();
        assert_eq!(conn.state.paused(), None, "a pause outlived the shutdown");
    }

    #[tokio::test]
    async fn zero_means_no_budget_at_all() {
        let guard = Guard::new(0);
        let (conn, _client) = pair(&guard).await;
        for _ in 0..10_000 {
            conn.state.failed();
        }
        assert_eq!(conn.state.paused(), None);
        assert_eq!(guard.throttled(), 0);
    }
}
