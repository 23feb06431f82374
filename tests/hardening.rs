//! The edge against hostile clients: half-open streams, silent and idle
//! connections, too many connections, and requests that are not gRPC or
//! do not decode. Raw HTTP/2 (the `h2` crate) and raw TCP, next to a
//! well-behaved tonic client that must keep being served.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use rampart::cli::serve::{ServerHandle, ServerOptions, start_with};
use rampart::engine::Engine;
use rampart::model::policy_file;
use rampart::proto::CheckRequest;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::server::DataPlaneConfig;
use rampart::server::limits::Limits;
use rampart::telemetry::TelemetryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

const POLICY: &str = r#"
catalog:
  - { permission: "documents:view" }
tenants:
  - id: acme
    roles:
      - name: viewers
        grants: ["documents:view"]
    users:
      - { id: alice }
    bindings:
      - { subject: alice, role: viewers }
"#;

const CHECK: &str = "/rampart.v1.Authorization/Check";

async fn server(limits: Limits) -> ServerHandle {
    server_with(DataPlaneConfig {
        limits,
        ..DataPlaneConfig::default()
    })
    .await
}

async fn server_with(data_plane: DataPlaneConfig) -> ServerHandle {
    let engine = Arc::new(Engine::new(policy_file::load_str(POLICY).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_with(
        listener,
        engine,
        ServerOptions {
            data_plane,
            telemetry: TelemetryConfig {
                metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
                decision_log: None,
            },
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap()
}

fn check() -> CheckRequest {
    CheckRequest {
        tenant: "acme".into(),
        subject: "alice".into(),
        permission: "documents:view".into(),
        ..CheckRequest::default()
    }
}

/// A message as one gRPC frame: no compression, its length, itself.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// One Check on a fresh tonic connection: its decision or its code.
async fn good_check(addr: SocketAddr) -> Result<i32, tonic::Code> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .map_err(|_| tonic::Code::Unavailable)?;
    AuthorizationClient::new(channel)
        .check(check())
        .await
        .map(|r| r.into_inner().decision)
        .map_err(|s| s.code())
}

/// A raw HTTP/2 connection.
async fn h2_connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn request(path: &str, content_type: Option<&str>) -> http::Request<()> {
    let mut builder =
        http::Request::post(format!("http://localhost{path}")).header("te", "trailers");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(()).unwrap()
}

/// One call on a raw connection: the HTTP status and the gRPC status
/// (from the headers of a trailers-only answer, else from the trailers).
async fn raw_call(
    send: &h2::client::SendRequest<Bytes>,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>) {
    let mut send = send.clone().ready().await.unwrap();
    let (response, mut stream) = send
        .send_request(request(path, content_type), false)
        .unwrap();
    // The server may answer from the headers alone (a wrong content type,
    // a throttled connection) and close the stream before the body is
    // sent: then the body has nowhere to go, and the answer still counts.
    let _ = stream.send_data(Bytes::from(body), true);
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let grpc = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    if let Some(code) = grpc(response.headers()) {
        return (status, Some(code));
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        let Ok(data) = data else { break };
        let _ = body.flow_control().release_capacity(data.len());
    }
    let trailers = body.trailers().await.ok().flatten();
    (status, trailers.as_ref().and_then(grpc))
}

/// The headers of a trailers-only answer to a gRPC call with `body`.
async fn raw_headers(
    send: &h2::client::SendRequest<Bytes>,
    path: &str,
    body: Vec<u8>,
) -> http::HeaderMap {
    let mut send = send.clone().ready().await.unwrap();
    let (response, mut stream) = send
        .send_request(request(path, Some("application/grpc")), false)
        .unwrap();
    // The server may answer from the headers alone (a wrong content type,
    // a throttled connection) and close the stream before the body is
    // sent: then the body has nowhere to go, and the answer still counts.
    let _ = stream.send_data(Bytes::from(body), true);
    let response = response.await.unwrap();
    assert!(
        response.headers().contains_key("grpc-status"),
        "not trailers-only: {response:?}"
    );
    response.headers().clone()
}

/// A `grpc-message` as written: percent-encoded.
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

/// The value of an unlabelled sample on the server's `/metrics` page.
async fn metric(handle: &ServerHandle, name: &str) -> f64 {
    let addr = handle.metrics_addr.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        .trim()
        .parse()
        .unwrap()
}

/// How long until the server closes `stream` (reads end of file or an
/// error), at most `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

// Finding 1 -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_streams_on_one_connection_do_not_starve_other_clients() {
    let handle = server(Limits {
        max_in_flight: 64,
        ..Limits::default()
    })
    .await;
    // One connection opens as many streams as it may (up to 300), each
    // with its headers and 3 bytes of a body it never finishes.
    let send = h2_connect(handle.addr).await;
    let mut held = Vec::new();
    for _ in 0..300 {
        let Ok(Ok(mut ready)) =
            tokio::time::timeout(Duration::from_millis(300), send.clone().ready()).await
        else {
            break;
        };
        let (response, mut stream) = ready
            .send_request(request(CHECK, Some("application/grpc")), false)
            .unwrap();
        stream
            .send_data(Bytes::from_static(&[0, 0, 0]), false)
            .unwrap();
        held.push((response, stream));
    }
    // Give the server the time to see them all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let opened = held.len();
    // Every other client is served all the while.
    let started = Instant::now();
    let mut ok = 0;
    for _ in 0..50 {
        if good_check(handle.addr).await == Ok(1) {
            ok += 1;
        }
    }
    let elapsed = started.elapsed();
    eprintln!("half-open streams accepted: {opened}; good checks OK: {ok}/50 in {elapsed:?}");
    assert_eq!(
        ok, 50,
        "{opened} half-open streams starved the other clients"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // The server announced its limit of streams per connection (the
    // default 100): the client queues the rest.
    assert_eq!(
        send.current_max_send_streams(),
        100,
        "{opened} requests sent"
    );
    drop(held);
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_body_that_never_ends_is_cut_by_the_call_deadline() {
    let handle = server(Limits {
        call_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let send = h2_connect(handle.addr).await;
    let mut ready = send.ready().await.unwrap();
    let (response, mut stream) = ready
        .send_request(request(CHECK, Some("application/grpc")), false)
        .unwrap();
    stream
        .send_data(Bytes::from_static(&[0, 0, 0]), false)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(3), response)
        .await
        .expect("no answer in 3 s")
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
    drop(stream);
    handle.shutdown(Duration::from_secs(1)).await;
}

// Finding 2 -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_are_closed_after_the_handshake_timeout() {
    let handle = server(Limits {
        handshake_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(handle.addr).await.unwrap());
    }
    let mut slowest = Duration::ZERO;
    for stream in &mut silent {
        let closed = closed_within(stream, Duration::from_secs(5))
            .await
            .expect("a silent connection was still open after 5 s");
        slowest = slowest.max(closed);
    }
    eprintln!("50 silent connections closed, the last after {slowest:?}");
    // And a client that speaks is served.
    assert_eq!(good_check(handle.addr).await, Ok(1));
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_no_call_open_is_closed_after_the_idle_timeout() {
    let handle = server(Limits {
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    // An HTTP/2 connection that handshakes, makes one call, then idles
    // (answering PINGs, as h2 does).
    let tcp = TcpStream::connect(handle.addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(conn);
    let (_, code) = raw_call(
        &send,
        CHECK,
        Some("application/grpc"),
        frame(&check().encode_to_vec()),
    )
    .await;
    assert_eq!(code.as_deref(), Some("0"));
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("an idle connection was still open after 5 s")
        .unwrap()
        .ok();
    let idle = started.elapsed();
    eprintln!("an idle connection closed after {idle:?}");
    assert!(idle >= Duration::from_millis(900), "{idle:?}");
    // A call that lasts longer than the idle timeout keeps its
    // connection: a body-less slow call is cut only by its deadline.
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_open_longer_than_the_idle_timeout_keeps_its_connection() {
    use rampart::proto::{Consistency, consistency::Requirement};
    let handle = server_with(DataPlaneConfig {
        consistency_wait: Duration::from_millis(2_500),
        limits: Limits {
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..DataPlaneConfig::default()
    })
    .await;
    let channel = Channel::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AuthorizationClient::new(channel);
    // Waits 2.5 s for a revision that never comes: the server's answer,
    // not a connection cut under it.
    let mut slow = check();
    slow.consistency = Some(Consistency {
        requirement: Some(Requirement::AtLeastRevision(1_000)),
    });
    let started = Instant::now();
    let e = client.check(slow).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("revision 1000"), "{}", e.message());
    assert!(started.elapsed() >= Duration::from_millis(2_400));
    assert_eq!(
        client.check(check()).await.unwrap().into_inner().decision,
        1
    );
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_new_connection_is_closed_and_counted() {
    let handle = server(Limits {
        max_connections: 8,
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(handle.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(metric(&handle, "rampart_connections_open").await, 8.0);
    let mut ninth = TcpStream::connect(handle.addr).await.unwrap();
    let closed = closed_within(&mut ninth, Duration::from_secs(2))
        .await
        .expect("the 9th connection was not closed");
    eprintln!("the 9th connection was closed after {closed:?}");
    // A tonic client is refused too (it may try more than once).
    assert!(good_check(handle.addr).await.is_err());
    let refused = metric(&handle, "rampart_connections_refused_total").await;
    eprintln!("refused connections: {refused}");
    assert!(refused >= 2.0, "{refused}");
    // Once the others close, a good client is served.
    drop(held);
    let started = Instant::now();
    loop {
        match good_check(handle.addr).await {
            Ok(1) => break,
            other => assert!(
                started.elapsed() < Duration::from_secs(3),
                "still refused: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every connection closed is counted out (the good client's last one
    // closes as it is dropped).
    let started = Instant::now();
    while metric(&handle, "rampart_connections_open").await != 0.0 {
        assert!(started.elapsed() < Duration::from_secs(3), "still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown(Duration::from_secs(1)).await;
}

// Finding 3 -------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_get_the_codes_that_say_so() {
    let handle = server(Limits {
        max_message_bytes: 2048,
        ..Limits::default()
    })
    .await;
    let send = h2_connect(handle.addr).await;
    let good = frame(&check().encode_to_vec());
    assert_eq!(
        raw_call(&send, CHECK, Some("application/grpc"), good.clone()).await,
        (200, Some("0".into()))
    );
    // A body that does not decode: INVALID_ARGUMENT, not INTERNAL, and
    // rampart's mark for it (proto::codec) does not reach the client.
    let garbage = frame(&[0xff, 0xff, 0xff, 0xff]);
    let headers = raw_headers(&send, CHECK, garbage.clone()).await;
    assert_eq!(headers["grpc-status"], "3");
    assert!(
        headers["grpc-message"].to_str().unwrap().contains("decode"),
        "{headers:?}"
    );
    assert!(!headers.contains_key("rampart-undecodable"), "{headers:?}");
    // Bad framing: INVALID_ARGUMENT (tonic says INTERNAL), each named.
    let mut compressed = good.clone();
    compressed[0] = 1;
    let mut bad_flag = good.clone();
    bad_flag[0] = 9;
    for (body, says) in [
        (Vec::new(), "holds no message"),
        (good[..good.len() - 1].to_vec(), "is cut off"),
        (good[..3].to_vec(), "5-byte header"),
        ([good.clone(), vec![0]].concat(), "5-byte header"),
        (bad_flag, "compressed flag 9"),
        (compressed, "names no `grpc-encoding`"),
    ] {
        let headers = raw_headers(&send, CHECK, body).await;
        assert_eq!(headers["grpc-status"], "3", "{says}: {headers:?}");
        let message = headers["grpc-message"].to_str().unwrap();
        let message = percent_decode(message);
        assert!(message.contains(says), "{says}: {message}");
    }
    // A frame that declares more than the limit, whatever follows.
    let liar = vec![0, 0, 0, 0x10, 0, 0x0a];
    assert_eq!(
        raw_call(&send, CHECK, Some("application/grpc"), liar).await,
        (200, Some("8".into()))
    );
    // Not gRPC: 415 before any service.
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let (status, _) = raw_call(&send, CHECK, content_type, good.clone()).await;
        assert_eq!(status, 415, "{content_type:?}");
    }
    // Over --max-message-bytes: RESOURCE_EXHAUSTED.
    let big = frame(&vec![0x0a; 3_000]);
    assert_eq!(
        raw_call(&send, CHECK, Some("application/grpc"), big).await,
        (200, Some("8".into()))
    );
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_charged_to_the_connections_budget() {
    let handle = server(Limits {
        max_message_bytes: 2048,
        max_failed_calls_per_sec: 5,
        ..Limits::default()
    })
    .await;
    let kinds: [(Option<&str>, Vec<u8>); 5] = [
        (Some("application/grpc"), frame(&[0xff, 0xff, 0xff, 0xff])),
        (Some("application/json"), b"{}".to_vec()),
        (Some("application/grpc"), frame(&vec![0x0a; 3_000])),
        (Some("application/grpc"), vec![0, 0, 0, 0, 9, 0x0a]),
        (Some("application/grpc"), vec![0, 0, 0, 0x10, 0, 0x0a]),
    ];
    for (n, (content_type, body)) in kinds.into_iter().enumerate() {
        // Each kind on its own connection: 8 such calls at 5 a second
        // overdraw its budget.
        let send = h2_connect(handle.addr).await;
        for _ in 0..8 {
            raw_call(&send, CHECK, content_type, body.clone()).await;
        }
        let throttled = metric(&handle, "rampart_connections_throttled_total").await;
        assert_eq!(throttled, (n + 1) as f64, "{content_type:?}");
    }
    // Well-behaved clients are untouched.
    assert_eq!(good_check(handle.addr).await, Ok(1));
    handle.shutdown(Duration::from_secs(1)).await;
}
