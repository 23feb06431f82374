//! A throwaway PostgreSQL cluster for tests, made from the system's
//! `initdb` and `pg_ctl` (Debian's `postgresql` package; no Docker, no
//! download): a temporary folder, a server on a free loopback port with its
//! unix socket inside that folder, and a fresh database per test.
//!
//! One cluster is shared by every test of a test binary ([`database`]).
//! Statics are never dropped, so each cluster comes with a watchdog: a
//! `sh` child that waits for the end of its standard input (which this
//! process holds open until it exits, however it exits) and then stops
//! exactly this server (`pg_ctl -D <its folder> stop -m immediate`) and
//! removes the folder. An owned [`Cluster`] does the same when dropped.
//!
//! A cluster can also get a streaming standby ([`Cluster::standby`], made
//! with `pg_basebackup -R`), be made to wait for it on every commit
//! ([`Cluster::require_synchronous`]), be killed as a crash would
//! ([`Cluster::kill`]), and the standby promoted ([`Cluster::promote`]): the
//! failover tests' database side. A standby is a [`Cluster`] like any
//! other, with its own folder and watchdog.
//!
//! Without PostgreSQL the tests print that they were skipped and how to run
//! them; with `RAMPART_REQUIRE_POSTGRES=1` (CI) that is a failure instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Set to `1` to make a missing PostgreSQL a failure rather than a skip.
pub const REQUIRE: &str = "RAMPART_REQUIRE_POSTGRES";

/// Set to a folder to take `initdb` and `pg_ctl` from there only (another
/// PostgreSQL version; a folder without them shows the skip).
pub const BIN_DIR: &str = "RAMPART_POSTGRES_BIN";

/// The PostgreSQL programs this harness runs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    /// Beside the other two; only [`Cluster::standby`] needs it, and says
    /// so when it is missing.
    pub pg_basebackup: PathBuf,
}

impl Programs {
    /// The programs in `dir`, when it holds `initdb` and `pg_ctl`.
    /// `pg_basebackup` is taken from there too, or else from beside the
    /// file `initdb` links to (a folder on `PATH` may hold links to only
    /// some of Debian's `/usr/lib/postgresql/<version>/bin`).
    fn in_dir(dir: &Path) -> Option<Self> {
        let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
        if !(initdb.is_file() && pg_ctl.is_file()) {
            return None;
        }
        let mut pg_basebackup = dir.join("pg_basebackup");
        if !pg_basebackup.is_file()
            && let Some(real) = std::fs::canonicalize(&initdb)
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("pg_basebackup")))
        {
            pg_basebackup = real;
        }
        Some(Programs {
            initdb,
            pg_ctl,
            pg_basebackup,
        })
    }
}

/// Finds `initdb` and `pg_ctl`: in [`BIN_DIR`] when set, else on `PATH`,
/// else in the newest `/usr/lib/postgresql/<version>/bin` (where Debian
/// puts them).
pub fn programs() -> Option<Programs> {
    if let Some(dir) = std::env::var_os(BIN_DIR) {
        return Programs::in_dir(Path::new(&dir));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    debian.sort();
    on_path
        .into_iter()
        .chain(debian.into_iter().rev().map(|(_, p)| p))
        .find_map(|dir| Programs::in_dir(&dir))
}

/// Whether this process runs as root (initdb refuses to).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A running throwaway cluster.
pub struct Cluster {
    /// The folder holding `data/`, `sock/` and `log`.
    dir: PathBuf,
    pub port: u16,
    /// The server options it was started with (`pg_ctl -o`).
    options: String,
    programs: Programs,
    /// Its standard input closed, the watchdog stops the server and removes
    /// the folder.
    watchdog: Option<(Child, ChildStdin)>,
    next_db: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish()
    }
}

/// A command run as the cluster's owner: `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Cluster {
    /// Makes and starts a cluster, or says why it could not.
    pub fn start(programs: Programs) -> Result<Self, String> {
        let mut cluster = Self::prepare(programs)?;
        let mut initdb = as_owner(&cluster.programs.initdb);
        initdb
            .args(["-D"])
            .arg(cluster.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("--no-instructions");
        run(initdb, "initdb")?;
        cluster.serve("")?;
        Ok(cluster)
    }

    /// A new cluster's folder (owned by the cluster's owner, with an empty
    /// `sock/`) and its watchdog, but no data and no server yet.
    fn prepare(programs: Programs) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("rampart-pg-")
            .tempdir()
            .map_err(|e| format!("temporary folder: {e}"))?
            .keep();
        let mut cluster = Cluster {
            dir,
            port: 0,
            options: String::new(),
            programs,
            watchdog: None,
            next_db: AtomicU64::new(0),
        };
        // From here on, dropping `cluster` cleans up whatever was made.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        if is_root() {
            let uid = owner_ids()?;
            std::os::unix::fs::chown(&cluster.dir, Some(uid.0), Some(uid.1))
                .map_err(|e| format!("chown {}: {e}", cluster.dir.display()))?;
        }
        let mut mkdir = as_owner(Path::new("mkdir"));
        mkdir.arg(cluster.dir.join("sock"));
        run(mkdir, "mkdir sock")?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the server on `data/` on a free port, with `extra` server
    /// options, and records the port and the options for
    /// [`Cluster::restart`].
    fn serve(&mut self, extra: &str) -> Result<(), String> {
        let sock = self.dir.join("sock");
        // A port taken between our probe and the server's bind: try another.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -F -c max_connections=200{extra}",
                sock.display()
            );
            match self.pg_ctl_start(&options) {
                Ok(()) => {
                    self.port = port;
                    self.options = options;
                    return Ok(());
                }
                Err(e) => {
                    let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                    last = format!("{e}\n{log}");
                }
            }
        }
        Err(last)
    }

    fn pg_ctl_start(&self, options: &str) -> Result<(), String> {
        let mut start = as_owner(&self.programs.pg_ctl);
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", options, "start"]);
        run(start, "pg_ctl start")
    }

    /// `pg_ctl ARGS` on this cluster's data folder.
    fn pg_ctl(&self, args: &[&str], what: &str) -> Result<(), String> {
        let mut command = as_owner(&self.programs.pg_ctl);
        command.arg("-D").arg(self.data()).args(args);
        run(command, what).map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    /// The watchdog: waits for the end of its standard input, then stops
    /// this cluster's server (if it runs) and removes its folder.
    fn spawn_watchdog(&self) -> Result<(Child, ChildStdin), String> {
        let data = self.data();
        let stop = if is_root() {
            "runuser -u postgres -- \"$1\" -D \"$2\" stop -m immediate"
        } else {
            "\"$1\" -D \"$2\" stop -m immediate"
        };
        let script = format!(
            "cat >/dev/null; if [ -f \"$2/postmaster.pid\" ]; then {stop} >/dev/null 2>&1; fi; rm -rf \"$3\""
        );
        let mut child = Command::new("sh")
            .args(["-c", &script, "watchdog"])
            .arg(&self.programs.pg_ctl)
            .arg(&data)
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("watchdog: {e}"))?;
        let stdin = child.stdin.take().ok_or("watchdog: no stdin")?;
        Ok((child, stdin))
    }

    /// A connection URL to the database `name` (which need not exist).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        self.url(&self.database_name())
    }

    /// A new, empty database; returns its name (for URLs that name other
    /// hosts too, [`multi_host_url`]).
    pub fn database_name(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        name
    }

    /// A connection to the database `name` as `postgres`. Blocking: call
    /// it off any async runtime (the `postgres` client runs its own).
    pub fn client(&self, name: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(name), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster on port {}: {e}", self.port))
    }

    /// Turns TLS on: `cert` and `key` (PEM) become the server's, owned by
    /// the server's user and readable by it alone (PostgreSQL refuses a
    /// key others can read), and the configuration is reloaded.
    pub fn enable_tls(&self, cert: &[u8], key: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.join("data");
        for (name, bytes) in [("rampart-test.crt", cert), ("rampart-test.key", key)] {
            let path = data.join(name);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if is_root() {
                let (uid, gid) = owner_ids().unwrap();
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        let mut client = self.client("postgres");
        // One statement at a time: ALTER SYSTEM refuses a transaction
        // block, which several statements in one call make.
        for statement in [
            "ALTER SYSTEM SET ssl_cert_file = 'rampart-test.crt'",
            "ALTER SYSTEM SET ssl_key_file = 'rampart-test.key'",
            "ALTER SYSTEM SET ssl = on",
            "SELECT pg_reload_conf()",
        ] {
            client.batch_execute(statement).unwrap();
        }
        // The reload is a signal the server handles when it can: wait
        // until a new session sees TLS on.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let on: String = self
                .client("postgres")
                .query_one("SHOW ssl", &[])
                .unwrap()
                .get(0);
            if on == "on" {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "TLS did not come on");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts the server again after [`Cluster::stop`] or
    /// [`Cluster::kill`], on the same port and options (a standby starts
    /// as a standby again: its `standby.signal` is still there).
    pub fn restart(&self) {
        self.pg_ctl_start(&self.options)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server now (an outage), leaving the folder.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"], "pg_ctl stop")
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server the way a crash does (`-m immediate`: no
    /// shutdown checkpoint, connections cut, nothing more sent to a
    /// standby), leaving the folder.
    pub fn kill(&self) {
        self.pg_ctl(
            &["-m", "immediate", "-w", "stop"],
            "pg_ctl stop -m immediate",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A streaming standby of this (running) cluster: a base backup taken
    /// with `pg_basebackup -R` (which writes `primary_conninfo` and
    /// `standby.signal`) into a new folder with its own watchdog, started
    /// on its own free port with `cluster_name` set to `name`, which is
    /// the `application_name` it streams as (what
    /// [`Cluster::require_synchronous`] names). It follows asynchronously
    /// until then.
    pub fn standby(&self, name: &str) -> Result<Cluster, String> {
        let programs = self.programs.clone();
        if !programs.pg_basebackup.is_file() {
            return Err(format!(
                "`{}` not found beside initdb: a standby cannot be made",
                programs.pg_basebackup.display()
            ));
        }
        let mut standby = Self::prepare(programs)?;
        let mut backup = as_owner(&standby.programs.pg_basebackup);
        backup
            .arg("-D")
            .arg(standby.data())
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string());
        run(backup, "pg_basebackup")?;
        standby.serve(&format!(" -c cluster_name={name}"))?;
        Ok(standby)
    }

    /// Makes every commit on this cluster wait until the standby `name`
    /// has it on disk (`synchronous_standby_names`, set with ALTER SYSTEM
    /// and reloaded, so a standby made before, which copied this
    /// cluster's configuration, does not inherit it and does not wait
    /// for a standby of its own once promoted). Returns once the standby
    /// streams as the synchronous one (waits up to 60 s).
    pub fn require_synchronous(&self, name: &str) -> Result<(), String> {
        let mut client = self.client("postgres");
        // Two statements: ALTER SYSTEM refuses to run in the implicit
        // transaction of a multi-statement query.
        client
            .batch_execute(&format!(
                "ALTER SYSTEM SET synchronous_standby_names = '\"{name}\"'"
            ))
            .and_then(|()| client.batch_execute("SELECT pg_reload_conf()"))
            .map_err(|e| format!("synchronous_standby_names: {e}"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = String::from("not connected");
        loop {
            let rows = client
                .query(
                    "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1",
                    &[&name],
                )
                .map_err(|e| format!("pg_stat_replication: {e}"))?;
            if let Some(row) = rows.first() {
                let (state, sync): (String, String) = (row.get(0), row.get(1));
                if state == "streaming" && sync == "sync" {
                    return Ok(());
                }
                seen = format!("{state}, {sync}");
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the standby `{name}` does not stream synchronously within 60 s (last seen: {seen})"
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits (up to 60 s) until the standby `name` has replayed every
    /// change this cluster had written when called: what it would hold if
    /// promoted now.
    pub fn wait_replayed(&self, name: &str) -> Result<(), String> {
        let mut client = self.client("postgres");
        let now: String = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .map_err(|e| format!("pg_current_wal_lsn: {e}"))?
            .get(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let caught_up: Option<bool> = client
                .query_one(
                    "SELECT replay_lsn >= $2::text::pg_lsn FROM pg_stat_replication WHERE application_name = $1",
                    &[&name, &now],
                )
                .map(|row| row.get(0))
                .unwrap_or(None);
            if caught_up == Some(true) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the standby `{name}` did not replay up to {now} within 60 s"
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Promotes this standby to a primary that takes writes; returns once
    /// it does (`pg_ctl promote` waits).
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "60", "promote"], "pg_ctl promote")
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A URL naming several clusters' servers, in order, for the database
/// `name`, with `target_session_attrs=read-write`: the client connects to
/// the first that takes writes (after a failover, the promoted standby).
pub fn multi_host_url(clusters: &[&Cluster], name: &str) -> String {
    let hosts: Vec<String> = clusters
        .iter()
        .map(|c| format!("127.0.0.1:{}", c.port))
        .collect();
    format!(
        "postgres://postgres@{}/{name}?target_session_attrs=read-write",
        hosts.join(",")
    )
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.watchdog.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The `postgres` user's uid and gid.
fn owner_ids() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("id {flag} postgres: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "running as root, and there is no `postgres` user to run initdb".into())
    };
    Ok((id("-u")?, id("-g")?))
}

/// The message a test prints when it skips.
pub const SKIPPED: &str =
    "skipped: PostgreSQL not installed (initdb not found; apt-get install postgresql)";

/// Says (once per test binary) that the PostgreSQL tests are skipped, or
/// fails when [`REQUIRE`] is set. Written to the process's stderr itself,
/// not through `eprintln!`, which the test harness captures and hides for
/// a passing test.
pub fn skip() {
    assert!(
        std::env::var(REQUIRE).as_deref() != Ok("1"),
        "{REQUIRE}=1 but PostgreSQL is not installed (initdb not found on PATH or in /usr/lib/postgresql/*/bin)"
    );
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "{SKIPPED}; to run them: apt-get install postgresql, or {BIN_DIR}=<folder with initdb and pg_ctl>"
        );
    });
}

/// The cluster shared by this test binary, started on first use; `None`
/// (after printing [`SKIPPED`]) when PostgreSQL is not installed, unless
/// [`REQUIRE`] is set. A cluster that fails to start fails the test.
pub fn shared() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| match programs() {
        None => Ok(None),
        Some(p) => Cluster::start(p).map(Some),
    });
    match cluster {
        Ok(Some(c)) => Some(c),
        Ok(None) => {
            skip();
            None
        }
        Err(e) => panic!("the test PostgreSQL cluster did not start: {e}"),
    }
}

/// A fresh database in the shared cluster; `None` when skipped.
pub fn database() -> Option<String> {
    shared().map(Cluster::database)
}
