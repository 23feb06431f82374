//! An in-process node for the replication tests: an engine and the server
//! `start_with` made for it, on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart::cli::serve::ServerHandle;
use rampart::engine::Engine;

/// One node: its engine and its server.
pub struct Node {
    pub engine: Arc<Engine>,
    pub handle: ServerHandle,
}

impl Node {
    /// Where its gRPC listener is, as a URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// Stops the server, then lets its tasks drop their engine (and
    /// store) handles, so the same store can be opened again.
    pub async fn stop(self) {
        self.handle.shutdown(Duration::from_secs(2)).await;
        drop(self.engine);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A listener on `addr` (a free loopback port for `None`), retried for up
/// to 10 s while a just-stopped node still holds the address.
pub async fn listen(addr: Option<SocketAddr>) -> tokio::net::TcpListener {
    let addr = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    let started = Instant::now();
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}
