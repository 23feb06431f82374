//! The connections of one [`PgStore`](super::PgStore): a small pool, so the
//! writer, the follower, checkpoints and Admin reads of one node do not
//! queue behind each other on one connection.
//!
//! Hand-written (about a hundred lines) rather than `r2d2`: the `postgres`
//! client blocks on its own runtime when it closes, which panics where a
//! tokio runtime is current, so where a client is dropped must be chosen
//! ([`drop_client`]); a general pool drops them where it likes.
//!
//! Connections are opened on demand up to [`MAX_CONNECTIONS`]; a caller
//! past that waits for one to come back, at most the connect timeout. One
//! that sat idle for a while is checked before it is lent, so a database
//! that restarted meanwhile costs a reconnect, not a failed call; within
//! [`CHECK_IDLE_AFTER`] of its last use it is not, and a restart that
//! quick fails the one call that finds it closed, which also drops every
//! other idle connection (opened before the restart too).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// Connections one node opens at most: the writer, the follower, the
/// maintenance loop and a few Admin reads at once.
pub const MAX_CONNECTIONS: usize = 8;

/// How long a connection attempt may take when the URL does not say.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a session may sit idle inside a transaction before the server
/// ends it (rampart's own transactions never pause between statements).
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(15);

/// A connection idle longer than this is checked before it is lent.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(2);

/// A PostgreSQL error, naming the store. A revision taken by another
/// writer is reported by the caller as `Conflict`, not through here.
pub(crate) fn pg(target: &str, e: postgres::Error) -> StoreError {
    // The client's own message is terse ("error connecting to server"):
    // the causes say why (refused, timed out, a server error's detail).
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !why.contains(&text) {
            why.push_str(": ");
            why.push_str(&text);
        }
        source = cause.source();
    }
    StoreError::Backend(format!("PostgreSQL store {target}: {why}"))
}

#[derive(Default)]
struct Slots {
    /// Open connections not lent out, the most recently returned last,
    /// with when each came back.
    idle: Vec<(Client, Instant)>,
    /// Connections open: idle and lent out.
    open: usize,
}

pub(super) struct Pool {
    config: Config,
    /// Hosts, ports and database, without credentials: how errors name
    /// the store.
    pub(super) target: String,
    tls: MakeRustlsConnect,
    slots: Mutex<Slots>,
    returned: Condvar,
}

impl Pool {
    pub(super) fn new(mut config: Config, tls: MakeRustlsConnect) -> Self {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe(&config);
        Self {
            config,
            target,
            tls,
            slots: Mutex::default(),
            returned: Condvar::new(),
        }
    }

    /// A new connection of its own, outside the pool (the listener's, a
    /// bootstrap's that holds a session lock).
    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .config
            .connect(self.tls.clone())
            .map_err(|e| pg(&self.target, e))?;
        // A node frozen inside a transaction (a paused process or VM) would
        // hold the meta row, and with it every node's writes, for as long
        // as it stays frozen: the server ends such a transaction instead.
        let set = client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {}",
                IDLE_IN_TRANSACTION.as_millis()
            ))
            .map_err(|e| pg(&self.target, e));
        if let Err(e) = set {
            drop_client(client);
            return Err(e);
        }
        Ok(client)
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // The slots are a list and a count, consistent between statements.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a connection of the pool. A connection that failed
    /// under `f` (or while `f` panicked) is closed, not returned.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lease = Lease {
            pool: self,
            client: Some(self.take()?),
        };
        let Some(client) = lease.client.as_mut() else {
            return Err(StoreError::Backend(format!(
                "PostgreSQL store {}: no connection",
                self.target
            )));
        };
        f(client, &self.target)
    }

    /// An open connection: an idle one (checked if it idled long), a new
    /// one while fewer than [`MAX_CONNECTIONS`] are open, or the first one
    /// returned within the connect timeout.
    pub(super) fn take(&self) -> Result<Client, StoreError> {
        let wait = self.config.get_connect_timeout().copied();
        let deadline = Instant::now() + wait.unwrap_or(CONNECT_TIMEOUT);
        let mut slots = self.lock();
        loop {
            while let Some((mut client, since)) = slots.idle.pop() {
                if !client.is_closed() {
                    if since.elapsed() < CHECK_IDLE_AFTER {
                        return Ok(client);
                    }
                    // The check is a round trip: not under the lock.
                    drop(slots);
                    if client.is_valid(CONNECT_TIMEOUT).is_ok() {
                        return Ok(client);
                    }
                    slots = self.lock();
                }
                slots.open -= 1;
                drop_client(client);
            }
            if slots.open < MAX_CONNECTIONS {
                slots.open += 1;
                drop(slots);
                return self.connect().inspect_err(|_| {
                    self.lock().open -= 1;
                    self.returned.notify_one();
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Backend(format!(
                    "PostgreSQL store {}: all {MAX_CONNECTIONS} connections of this node stayed busy for {:?}",
                    self.target,
                    wait.unwrap_or(CONNECT_TIMEOUT)
                )));
            }
            slots = self
                .returned
                .wait_timeout(slots, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(super) fn give_back(&self, client: Client, broken: bool) {
        let mut slots = self.lock();
        if broken || client.is_closed() {
            slots.open -= 1;
            drop_client(client);
            // A connection found closed is likely the database restarted
            // or failed over: the idle ones were opened before, so they
            // are closed too, and would each fail one more call.
            for (old, _) in std::mem::take(&mut slots.idle) {
                slots.open -= 1;
                drop_client(old);
            }
        } else {
            slots.idle.push((client, Instant::now()));
        }
        drop(slots);
        self.returned.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (client, _) in std::mem::take(&mut self.lock().idle) {
            drop_client(client);
        }
    }
}

/// A connection lent out; returned to the pool when dropped.
struct Lease<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.give_back(client, std::thread::panicking());
        }
    }
}

/// Drops a client where that is safe: the `postgres` client blocks on its
/// own runtime when it closes, which panics on a thread where a tokio
/// runtime is current.
pub(super) fn drop_client(client: Client) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("rampart-pg-close".into())
            .spawn(move || drop(client));
    } else {
        drop(client);
    }
}

/// `host:port[,host:port…]/dbname` of a configuration, no credentials.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    format!(
        "`{}/{}`",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}
