//! The metrics listener: `GET /metrics` over a minimal HTTP/1.1 responder.
//!
//! Hand-written rather than hyper: one request per connection
//! (`Connection: close`), one path, a scrape every few seconds. That takes
//! fifty lines and no new direct dependency; hyper's server API (through
//! `hyper-util`) would add two and more code to wire than this.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::Telemetry;

/// The largest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client gets to send its request and read the page.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one past it is closed as accepted, so idle
/// sockets cannot pile up here and take the descriptors the gRPC listener
/// needs (a scraper holds one or two).
pub const MAX_CONNECTIONS: usize = 64;

/// Serves `telemetry` on `listener` until `stopping` turns true.
pub async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    debug!("metrics connection closed: {MAX_CONNECTIONS} already open");
                    drop(stream);
                    continue;
                };
                let telemetry = Arc::clone(&telemetry);
                tokio::spawn(async move {
                    let _slot = slot;
                    let answered = tokio::time::timeout(TIMEOUT, respond(stream, &telemetry))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
                    if let Err(e) = answered {
                        debug!(error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, telemetry: &Telemetry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = std::str::from_utf8(line).unwrap_or_default().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            telemetry.render(),
        ),
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "metrics are at /metrics\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
