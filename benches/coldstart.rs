//! Cold start: a fresh `rampart serve` process over a sled store holding
//! `Spec::million()` (1M users over 100 tenants), timed from spawn to gRPC
//! health SERVING, with its peak (`VmHWM`) and steady (`VmRSS`, 3 s after
//! SERVING) resident set from `/proc/PID/status`.
//!
//! Run with `cargo bench --bench coldstart`. The store is written once, by
//! `rampart dev-seed --spec million`, into `target/tmp/coldstart-million`
//! (or `$RAMPART_COLDSTART_DIR`) and reused by later runs; delete it to
//! start over. `RAMPART_COLDSTART_RUNS` (default 3) sets the number of
//! processes started; the medians are printed last. Then, unless
//! `RAMPART_COLDSTART_BREAKDOWN=0`, the same store is opened in this
//! process to split the time into sled recovery and compile.
//!
//! The store's files are in the OS page cache after the first run (the
//! cache is not dropped: that needs root and slows everyone on the
//! machine), so this times the process, not the disk.
//!
//! To compare builds in one run, set `RAMPART_COLDSTART_EXE` to a
//! `:`-separated list of `rampart` binaries: their runs are interleaved
//! (a, b, a, b, ...) and each gets its own medians. `RAMPART_COLDSTART_DIR`
//! may then list one store per binary (`:`-separated, in the same order),
//! so each reads a store in its own checkpoint format; a missing one is
//! seeded by its own binary. The breakdown then runs once per store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "bench code"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart::policy::compile;
use rampart::store::SledStore;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const EXE: &str = env!("CARGO_BIN_EXE_rampart");

/// A `kB` line of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn serving(addr: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(addr.to_owned()) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    matches!(
        client.check(HealthCheckRequest { service: String::new() }).await,
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32
    )
}

/// The CPU time (user + system, every thread) the process has used, from
/// `/proc/PID/stat`, in seconds (the kernel counts in USER_HZ, 100 a second).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Run {
    to_serving: Duration,
    /// CPU seconds used by the server until SERVING: what the machine's
    /// load does not change much.
    cpu_s: f64,
    /// The server's own "state recovered" log line: open + load + compile.
    recovered_ms: Option<u64>,
    peak_mib: f64,
    steady_mib: f64,
}

fn one_run(rt: &tokio::runtime::Runtime, exe: &Path, dir: &Path, log: &Path) -> Run {
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (to_serving, cpu_s) = loop {
        if rt.block_on(serving(&addr)) {
            break (started.elapsed(), cpu_seconds(pid).unwrap_or(f64::NAN));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited with {status}; see {}", log.display());
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no SERVING");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_secs(3));
    let steady_mib = status_mib(pid, "VmRSS:").unwrap();
    let peak_mib = status_mib(pid, "VmHWM:").unwrap();
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    child.wait().unwrap();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let recovered_ms = text
        .lines()
        .find(|l| l.contains("state recovered"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ms=")))
        .and_then(|ms| ms.parse().ok());
    Run {
        to_serving,
        cpu_s,
        recovered_ms,
        peak_mib,
        steady_mib,
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let exes: Vec<PathBuf> = match std::env::var_os("RAMPART_COLDSTART_EXE") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![PathBuf::from(EXE)],
    };
    let dirs: Vec<PathBuf> = match std::env::var_os("RAMPART_COLDSTART_DIR") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![Path::new(env!("CARGO_TARGET_TMPDIR")).join("coldstart-million")],
    };
    assert!(
        dirs.len() == 1 || dirs.len() == exes.len(),
        "RAMPART_COLDSTART_DIR lists {} stores for {} binaries",
        dirs.len(),
        exes.len()
    );
    let dir_of = |i: usize| &dirs[if dirs.len() == 1 { 0 } else { i }];
    for (i, exe) in exes.iter().enumerate() {
        let dir = dir_of(i);
        if !dir.join("db").exists() {
            println!("seeding {} with {} (once)", dir.display(), exe.display());
            let ok = Command::new(exe)
                .args(["dev-seed", "--spec", "million", "--data-dir"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(ok.success(), "dev-seed failed");
        }
    }
    let runs: usize = std::env::var("RAMPART_COLDSTART_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut all: Vec<Vec<Run>> = exes.iter().map(|_| Vec::new()).collect();
    for i in 0..runs {
        for (e, (exe, done)) in exes.iter().zip(&mut all).enumerate() {
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let dir = dir_of(e);
            let log = dir.with_extension("serve.log");
            let r = one_run(&rt, exe, dir, &log);
            println!(
                "COLDSTART {} on {} run {i}: spawn -> SERVING {:.2} s, {:.2} CPU s (server's load+compile {} ms); peak RSS {:.0} MiB, steady RSS {:.0} MiB; loadavg before {}",
                exe.display(),
                dir.display(),
                r.to_serving.as_secs_f64(),
                r.cpu_s,
                r.recovered_ms.map_or("?".into(), |m| m.to_string()),
                r.peak_mib,
                r.steady_mib,
                load.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            done.push(r);
        }
    }
    for (exe, done) in exes.iter().zip(&all).filter(|(_, d)| !d.is_empty()) {
        let (t, t_lo, t_hi) = median(done.iter().map(|r| r.to_serving.as_secs_f64()).collect());
        let (p, p_lo, p_hi) = median(done.iter().map(|r| r.peak_mib).collect());
        let (s, s_lo, s_hi) = median(done.iter().map(|r| r.steady_mib).collect());
        let (c, c_lo, c_hi) = median(done.iter().map(|r| r.cpu_s).collect());
        println!(
            "COLDSTART {} median of {runs}: spawn -> SERVING {t:.2} s [{t_lo:.2}-{t_hi:.2}] (target <= 2 s), {c:.2} CPU s [{c_lo:.2}-{c_hi:.2}]; peak RSS {p:.0} MiB [{p_lo:.0}-{p_hi:.0}]; steady RSS {s:.0} MiB [{s_lo:.0}-{s_hi:.0}] (target <= 300 MB)",
            exe.display()
        );
    }

    if std::env::var("RAMPART_COLDSTART_BREAKDOWN").as_deref() == Ok("0") {
        return;
    }
    let mut seen = Vec::new();
    for dir in &dirs {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir);
        breakdown(dir);
    }
}

/// The same store opened in this process (this build's code, whatever
/// built the binaries above): sled open, checkpoint read + decode (and
/// replay), compile.
fn breakdown(dir: &Path) {
    let cpu = || cpu_seconds(std::process::id()).unwrap_or(f64::NAN);
    let start = Instant::now();
    let store = SledStore::open(dir).unwrap();
    let opened = start.elapsed();
    let cpu_opened = cpu();
    let recovery = store.recover().unwrap();
    let loaded = start.elapsed();
    let cpu_loaded = cpu();
    drop(store);
    let state = Arc::new(recovery.state);
    println!(
        "COLDSTART breakdown of {} (this process): sled open {:.2} s, checkpoint read + decode {:.2} s ({:.2} CPU s)",
        dir.display(),
        opened.as_secs_f64(),
        (loaded - opened).as_secs_f64(),
        cpu_loaded - cpu_opened,
    );
    let start = Instant::now();
    let cpu_start = cpu();
    let snapshot = compile(state);
    println!(
        "COLDSTART compile (this process): {:.2} s ({:.2} CPU s); {} tenants, {} matchers",
        start.elapsed().as_secs_f64(),
        cpu() - cpu_start,
        snapshot.state().tenants.len(),
        snapshot.matcher_count()
    );
}
