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
//! (a, b, a, b, ...) and each gets its own medians.

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

struct Run {
    to_serving: Duration,
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
    let to_serving = loop {
        if rt.block_on(serving(&addr)) {
            break started.elapsed();
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
    let dir = std::env::var_os("RAMPART_COLDSTART_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("coldstart-million"));
    if !dir.join("db").exists() {
        println!("seeding {} (once)", dir.display());
        let ok = Command::new(EXE)
            .args(["dev-seed", "--spec", "million", "--data-dir"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "dev-seed failed");
    }
    let runs: usize = std::env::var("RAMPART_COLDSTART_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let log = dir.with_extension("serve.log");
    let exes: Vec<PathBuf> = match std::env::var_os("RAMPART_COLDSTART_EXE") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![PathBuf::from(EXE)],
    };
    let mut all: Vec<Vec<Run>> = exes.iter().map(|_| Vec::new()).collect();
    for i in 0..runs {
        for (exe, done) in exes.iter().zip(&mut all) {
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let r = one_run(&rt, exe, &dir, &log);
            println!(
                "COLDSTART {} run {i}: spawn -> SERVING {:.2} s (server's load+compile {} ms); peak RSS {:.0} MiB, steady RSS {:.0} MiB; loadavg before {}",
                exe.display(),
                r.to_serving.as_secs_f64(),
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
        println!(
            "COLDSTART {} median of {runs}: spawn -> SERVING {t:.2} s [{t_lo:.2}-{t_hi:.2}] (target <= 5 s); peak RSS {p:.0} MiB [{p_lo:.0}-{p_hi:.0}]; steady RSS {s:.0} MiB [{s_lo:.0}-{s_hi:.0}] (target <= 300 MB)",
            exe.display()
        );
    }

    if std::env::var("RAMPART_COLDSTART_BREAKDOWN").as_deref() == Ok("0") {
        return;
    }
    let start = Instant::now();
    let store = SledStore::open(&dir).unwrap();
    let opened = start.elapsed();
    let recovery = store.recover().unwrap();
    let loaded = start.elapsed();
    drop(store);
    let state = Arc::new(recovery.state);
    println!(
        "COLDSTART breakdown (this process): sled open {:.2} s, checkpoint read + decode {:.2} s",
        opened.as_secs_f64(),
        (loaded - opened).as_secs_f64(),
    );
    let start = Instant::now();
    let snapshot = compile(state);
    println!(
        "COLDSTART compile (this process): {:.2} s; {} tenants, {} matchers",
        start.elapsed().as_secs_f64(),
        snapshot.state().tenants.len(),
        snapshot.matcher_count()
    );
}
