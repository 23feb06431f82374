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
}

/// Finds `initdb` and `pg_ctl`: in [`BIN_DIR`] when set, else on `PATH`,
/// else in the newest `/usr/lib/postgresql/<version>/bin` (where Debian
/// puts them).
pub fn programs() -> Option<Programs> {
    if let Some(dir) = std::env::var_os(BIN_DIR) {
        let dir = PathBuf::from(dir);
        let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
        return (initdb.is_file() && pg_ctl.is_file()).then_some(Programs { initdb, pg_ctl });
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
    let dirs = on_path
        .into_iter()
        .chain(debian.into_iter().rev().map(|(_, p)| p));
    for dir in dirs {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        if initdb.is_file() && pg_ctl.is_file() {
            return Some(Programs { initdb, pg_ctl });
        }
    }
    None
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
        let data = cluster.dir.join("data");
        let sock = cluster.dir.join("sock");
        let mut initdb = as_owner(&cluster.programs.initdb);
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("--no-instructions");
        run(initdb, "initdb")?;
        let mut mkdir = as_owner(Path::new("mkdir"));
        mkdir.arg(&sock);
        run(mkdir, "mkdir sock")?;
        // A port taken between our probe and the server's bind: try another.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -F -c max_connections=200",
                sock.display()
            );
            let mut start = as_owner(&cluster.programs.pg_ctl);
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            match run(start, "pg_ctl start") {
                Ok(()) => {
                    cluster.port = port;
                    cluster.options = options;
                    return Ok(cluster);
                }
                Err(e) => {
                    let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
                    last = format!("{e}\n{log}");
                }
            }
        }
        Err(last)
    }

    /// The watchdog: waits for the end of its standard input, then stops
    /// this cluster's server (if it runs) and removes its folder.
    fn spawn_watchdog(&self) -> Result<(Child, ChildStdin), String> {
        let data = self.dir.join("data");
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
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        self.url(&name)
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn restart(&self) {
        let mut start = as_owner(&self.programs.pg_ctl);
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &self.options, "start"]);
        run(start, "pg_ctl start").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server now (an outage), leaving the folder.
    pub fn stop(&self) {
        let mut stop = as_owner(&self.programs.pg_ctl);
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop").unwrap_or_else(|e| panic!("{e}"));
    }
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
