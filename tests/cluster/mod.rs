//! Several real `rampart serve` nodes on one PostgreSQL database, driven
//! through the crate's own gRPC clients: starting and killing nodes, the
//! calls the checks need, and reading the changelog back with Watch.
//! `ops.rs` is the mutations, `random.rs` picks them, `model.rs` says
//! what they must do, `writer.rs` submits them and keeps the ledger,
//! `verify.rs` reads back each acknowledged change, and `end.rs` compares
//! everything once the writes are over.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "test code"
)]

pub mod end;
pub mod model;
pub mod ops;
pub mod random;
pub mod verify;
pub mod writer;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart::proto;
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::replication_client::ReplicationClient;
use tonic::transport::{Channel, Endpoint};

use crate::common::{BIN, Server};

/// How long a node may take to start (bootstrap, recover, compile) on a
/// busy machine before the test gives up on it.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// How long a node waits for a revision asked with `at_least_revision`:
/// generous, so a slow machine delays the test instead of failing it.
pub const CONSISTENCY_WAIT_MS: u64 = 30_000;

/// One `rampart serve --store <url>` and how to start it again.
pub struct Node {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    pub server: Option<Server>,
}

impl Node {
    /// Starts a node on `url` with its (unused) data dir and its log under
    /// `dir`, and waits until it serves.
    pub fn start(dir: &Path, name: &str, url: &str, extra: &[&str]) -> Self {
        let mut node = Self::new(dir, name, url, extra);
        node.restart();
        node
    }

    /// A node not started yet.
    pub fn new(dir: &Path, name: &str, url: &str, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "--store".into(),
            url.into(),
            "--consistency-wait-ms".into(),
            CONSISTENCY_WAIT_MS.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Node {
            port: crate::common::free_port(),
            data: dir.join(name),
            log: dir.join(format!("{name}.log")),
            args,
            server: None,
        }
    }

    /// Starts the node again (same port, same arguments) and waits until
    /// it serves.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("{e}");
        }
    }

    /// [`Node::restart`], or why the node exited before it served (its
    /// exit status and the end of its log).
    pub fn try_restart(&mut self) -> Result<(), String> {
        assert!(self.server.is_none(), "the node is running");
        self.server = Some(spawn_logged(&self.data, self.port, &self.args, &self.log)?);
        Ok(())
    }

    /// SIGKILL, at once, and reaped: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.0.kill().unwrap();
            server.0.wait().unwrap();
        }
    }

    /// The node's log lines that warn or report an error.
    pub fn warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// `rampart serve` on `port` with `args`, its stderr appended to `log`;
/// returns once it logs that it serves (a guard that kills it when
/// dropped, so a failing test never leaves it running).
fn spawn_logged(data: &Path, port: u16, args: &[String], log: &Path) -> Result<Server, String> {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut server = Server(child);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + READY_WITHIN;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("serving rampart.v1.Authorization") => return Ok(server),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            _ => {}
        }
    }
    // Its stderr closed: it exited (or is about to).
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match server.0.try_wait().unwrap() {
            Some(status) => break Some(status),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => break None,
        }
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    Err(format!(
        "node on port {port} did not become ready (exit status {status:?}); the end of its log:\n{}",
        lines[lines.len().saturating_sub(20)..].join("\n")
    ))
}

/// The three services of one node over one connection of their own.
#[derive(Clone)]
pub struct Conn {
    pub port: u16,
    pub admin: AdminClient<Channel>,
    pub authz: AuthorizationClient<Channel>,
    pub repl: ReplicationClient<Channel>,
}

impl Conn {
    /// A connection made on first use and again after the node restarts.
    /// Call from within the tokio runtime.
    pub fn lazy(port: u16) -> Self {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .tcp_nodelay(true)
            .connect_lazy();
        Self {
            port,
            admin: AdminClient::new(channel.clone()),
            authz: AuthorizationClient::new(channel.clone()),
            repl: ReplicationClient::new(channel).max_decoding_message_size(64 << 20),
        }
    }

    /// Waits (server side, up to [`CONSISTENCY_WAIT_MS`]) until the node
    /// answers at `revision` or later.
    pub async fn reach(&mut self, revision: u64) -> Result<u64, tonic::Status> {
        self.authz
            .check(proto::CheckRequest {
                tenant: "acme".into(),
                subject: "dave".into(),
                permission: "documents:view".into(),
                consistency: Some(at_least(revision)),
                explain: false,
            })
            .await
            .map(|r| r.into_inner().revision)
    }

    /// The node's revision and, with `digest`, its state digest.
    pub async fn state(&mut self, digest: bool) -> Result<proto::GetStateResponse, tonic::Status> {
        self.repl
            .get_state(proto::GetStateRequest { digest })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The changelog entries after `after` up to `upto`, read with Watch
    /// (which sends the stored ones first, in order). Bounded in time.
    pub async fn changelog(
        &mut self,
        after: u64,
        upto: u64,
    ) -> Result<Vec<proto::Change>, ReadFailed> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let port = self.port;
        let failed = |s: tonic::Status| ReadFailed {
            gone: transport(&s),
            why: format!("watch from {after} on port {port}: {s}"),
        };
        let read = async {
            let mut stream = self
                .repl
                .watch(proto::WatchRequest {
                    from_revision: after,
                    tenants: Vec::new(),
                    history: String::new(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            let mut out = Vec::new();
            while let Some(event) = stream.message().await.map_err(failed)? {
                if let Some(proto::watch_event::Event::Change(change)) = event.event {
                    let revision = change.revision;
                    out.push(change);
                    if revision >= upto {
                        return Ok(out);
                    }
                }
            }
            Err(ReadFailed {
                gone: true,
                why: format!("watch from {after} on port {port} ended before revision {upto}"),
            })
        };
        tokio::time::timeout(Duration::from_secs(120), read)
            .await
            .map_err(|_| ReadFailed {
                gone: false,
                why: format!("watch from {after} to {upto} on port {port} took over 120 s"),
            })?
    }
}

/// Why reading the changelog failed; `gone`: the node went away (or the
/// connection broke), so another node may be asked.
#[derive(Debug)]
pub struct ReadFailed {
    pub gone: bool,
    pub why: String,
}

impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// `at_least_revision = revision`.
pub fn at_least(revision: u64) -> proto::Consistency {
    proto::Consistency {
        requirement: Some(proto::consistency::Requirement::AtLeastRevision(revision)),
    }
}

/// Whether a failed call failed in the transport (the node went away, the
/// connection broke) rather than being answered by the node: a status the
/// server sends carries no source error, one tonic makes up does.
pub fn transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// What one node's Watch stream delivered, live, during a run.
#[derive(Debug, Default)]
pub struct Watched {
    pub port: u16,
    /// (revision, mutation) in the order received.
    pub changes: Vec<(u64, Vec<u8>)>,
    /// Revisions that did not follow the one before (a gap or a repeat).
    pub out_of_order: Vec<String>,
    /// Streams opened again after the node went away.
    pub reconnects: usize,
}

/// Tails node `port`'s Watch from revision `from`, as a replica would:
/// opens it again from the last revision received when the node goes
/// away, and stops once it has received `target` (0: not known yet).
pub async fn tail(
    port: u16,
    from: u64,
    target: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Watched {
    use std::sync::atomic::Ordering;
    let mut conn = Conn::lazy(port);
    let mut out = Watched {
        port,
        ..Watched::default()
    };
    let mut last = from;
    let done = |last: u64| {
        let t = target.load(Ordering::SeqCst);
        t != 0 && last >= t
    };
    let mut opened = false;
    while !done(last) {
        let request = proto::WatchRequest {
            from_revision: last,
            tenants: Vec::new(),
            history: String::new(),
        };
        let mut stream = match conn.repl.watch(request).await {
            Ok(s) => s.into_inner(),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        out.reconnects += usize::from(opened);
        opened = true;
        while !done(last) {
            let event =
                match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
                    Err(_) => continue,
                    Ok(Ok(Some(event))) => event,
                    Ok(Ok(None) | Err(_)) => break,
                };
            if let Some(proto::watch_event::Event::Change(c)) = event.event {
                if c.revision != last + 1 {
                    out.out_of_order
                        .push(format!("revision {} after {last}", c.revision));
                }
                last = last.max(c.revision);
                out.changes.push((c.revision, c.mutation));
            }
        }
    }
    out
}
