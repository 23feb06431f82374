//! Helpers shared by the tests that run the real `rampart` binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "test code; each test file uses a part"
)]

pub mod node;
pub mod postgres;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `rampart serve`; killed (SIGKILL) and reaped when dropped, so a
/// failing assertion never leaves it running.
pub struct Server(pub Child);

impl Server {
    /// Starts `rampart serve` on `port` with its store in `data`, and waits
    /// (up to 30 s) until it logs that it is serving.
    pub fn start(data: &Path, port: u16) -> Self {
        Self::start_with(data, port, &[])
    }

    /// [`Server::start`] with more `serve` arguments.
    pub fn start_with(data: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let server = Server(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
                && line.contains("serving rampart.v1.Authorization")
            {
                return server;
            }
        }
        panic!("server did not become ready");
    }

    /// Sends SIGTERM and waits (up to 10 s) for a clean exit.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.sigterm();
        self.terminate_wait()
    }

    /// Sends SIGTERM (and returns at once).
    pub fn sigterm(&self) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (up to 10 s) for the process to exit after a signal sent
    /// elsewhere.
    pub fn terminate_wait(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An in-process server on a loopback port over the admin rules' fixture
/// (`tests/rules/policy.yaml`), and a channel to it; the tests of the Admin
/// API over real gRPC share it.
pub async fn rules_fixture_server() -> (tonic::transport::Channel, rampart::cli::serve::ServerHandle)
{
    let text = std::fs::read_to_string("tests/rules/policy.yaml").unwrap();
    let state = rampart::model::policy_file::load_str(&text).unwrap();
    let engine = std::sync::Arc::new(rampart::engine::Engine::new(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = rampart::cli::serve::start(
        listener,
        engine,
        rampart::server::DataPlaneConfig::default(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", handle.addr);
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, handle)
}
