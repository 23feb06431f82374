//! A full disk: below `--min-free-space` every write is refused
//! `UNAVAILABLE` at once, before sled is touched, reads go on, and the first
//! write after space is back goes through, with nothing lost. A disk that
//! fills *during* a write (the watermark off, or passed in one batch): the
//! write fails `UNAVAILABLE` at once, sled (which keeps the error and fails
//! every later write with it) is opened again once space is freed, and
//! writes resume without a restart, with every acknowledged change kept.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart::engine::Engine;
use rampart::model::rules::Actor;
use rampart::model::{
    ErrorKind, HasKind, Mutation, TenantId, TenantSettings, Timestamp, UserId, UserStatus,
};
use rampart::proto::admin_client::AdminClient;
use rampart::proto::authorization_client::AuthorizationClient;
use rampart::proto::{AddUserRequest, CheckRequest, ListTenantsRequest, ListUsersRequest};
use rampart::store::{
    AuditFilter, AuditRecord, FreeSpace, Outcome, Repair, SledStore, Store, StoreError,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

mod common;
use common::{Server, free_port};

const MIB: u64 = 1 << 20;

fn create_acme() -> Mutation {
    Mutation::CreateTenant {
        tenant: TenantId::new("acme").unwrap(),
        name: "Acme".into(),
        settings: TenantSettings::default(),
    }
}

fn add_user(id: &str) -> Mutation {
    Mutation::AddUser {
        tenant: TenantId::new("acme").unwrap(),
        user: UserId::new(id).unwrap(),
        email: None,
        display_name: None,
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

fn record(m: &Mutation, revision: u64) -> AuditRecord {
    AuditRecord {
        seq: 0,
        time: Timestamp::now(),
        actor: None,
        credential: "test".into(),
        revision,
        tenant: m.tenant().map(ToString::to_string),
        also: Vec::new(),
        mutation: m.clone(),
        outcome: Outcome::Applied,
    }
}

fn assert_refused_for_space(e: &impl HasKind, message: &str, free: &str, min: &str) {
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{message}");
    assert!(
        message.contains(&format!(
            "the data dir's filesystem has {free} free, below the {min} watermark (--min-free-space)"
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_below_the_free_space_watermark_are_refused_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let free = Arc::new(AtomicU64::new(1 << 30));
    let seen = Arc::clone(&free);
    let space = Arc::new(FreeSpace::with_probe(
        64 * MIB,
        Box::new(move || Ok(seen.load(Ordering::Relaxed))),
    ));
    let store: Arc<dyn Store> = Arc::new(
        SledStore::open(dir.path())
            .unwrap()
            .with_free_space(Arc::clone(&space)),
    );
    let engine = Arc::new(Engine::open(Arc::clone(&store)).unwrap());
    let submit = |m: Mutation, dry_run: bool| {
        let engine = Arc::clone(&engine);
        async move { engine.submit(Actor::Operator, "test", m, dry_run).await }
    };
    assert_eq!(submit(create_acme(), false).await.unwrap().revision, 1);

    // 12 MiB free: refused at once, naming the cause, nothing written.
    free.store(12 * MIB, Ordering::Relaxed);
    let started = Instant::now();
    let refused = submit(add_user("alice"), false).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let message = refused.to_string();
    assert_refused_for_space(&refused, &message, "12 MiB", "64 MiB");
    assert!(message.contains("nothing was written"), "{message}");
    assert!(!space.writable());
    // The store directly, too: before sled, so its revision stays.
    let m = add_user("bob");
    let direct = store.commit(2, &m, record(&m, 2)).unwrap_err();
    assert!(matches!(direct, StoreError::Backend(_)), "{direct:?}");
    assert_refused_for_space(&direct, &direct.to_string(), "12 MiB", "64 MiB");

    // A dry run writes nothing (no audit record, no changelog entry): it
    // still answers.
    let dry = submit(add_user("alice"), true).await.unwrap();
    assert_eq!((dry.revision, dry.dry_run), (2, true));
    // Reads go on.
    assert_eq!(engine.load().revision(), 1);
    assert_eq!(store.revision().unwrap(), 1);
    assert_eq!(store.changelog(0, 0).unwrap().len(), 1);
    assert_eq!(store.audit(&AuditFilter::default()).unwrap().len(), 1);

    // Space is back: the next write goes through.
    free.store(1 << 30, Ordering::Relaxed);
    assert_eq!(submit(add_user("alice"), false).await.unwrap().revision, 2);
    assert!(space.writable());

    // Nothing lost across a restart.
    drop(engine);
    drop(store);
    let state = reopen(dir.path()).load().unwrap();
    assert_eq!(state.revision, 2);
    let acme = &state.tenants[&TenantId::new("acme").unwrap()];
    assert!(acme.users.contains_key(&UserId::new("alice").unwrap()));
}

/// sled's I/O threads may hold the folder a moment after the last handle.
fn reopen(dir: &Path) -> SledStore {
    let started = Instant::now();
    loop {
        match SledStore::open(dir) {
            Ok(s) => return s,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot reopen: {e}"),
        }
    }
}

/// A tmpfs mounted for the test, unmounted when dropped (even when the
/// test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Self(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |args: &[&str]| {
            std::process::Command::new("umount")
                .args(args)
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(&[]) && !umount(&["-l"]) {
            eprintln!("could not unmount the tmpfs at {}", self.0.display());
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Free bytes (for an unprivileged writer) on the file system of `dir`.
fn free_on(dir: &Path) -> u64 {
    let probe = FreeSpace::statvfs(dir, 1);
    probe.observe().expect("statvfs")
}

#[test]
fn a_full_tmpfs_refuses_commits_at_once_and_takes_them_again_once_freed() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let mount_point = tempfile::tempdir().unwrap();
    let _tmpfs = match Tmpfs::mount(mount_point.path(), "16m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: needs root to mount a tmpfs (mount failed: {e})");
            return;
        }
    };
    let data = mount_point.path().join("data");
    let space = Arc::new(FreeSpace::statvfs(mount_point.path(), 4 * MIB));
    let store = SledStore::open(&data)
        .unwrap()
        .with_free_space(Arc::clone(&space));
    let acme = create_acme();
    store.commit(1, &acme, record(&acme, 1)).unwrap();

    // Fill the tmpfs to 2 MiB below the watermark.
    let filler = mount_point.path().join("filler");
    let fill = free_on(mount_point.path()).saturating_sub(2 * MIB);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; MIB as usize];
        let mut left = fill;
        while left > 0 {
            let n = left.min(MIB) as usize;
            f.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        f.sync_all().unwrap();
    }
    let free = free_on(mount_point.path());
    assert!(free < 4 * MIB, "{free} bytes still free");

    let alice = add_user("alice");
    let started = Instant::now();
    let refused = store.commit(2, &alice, record(&alice, 2)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(refused.kind(), ErrorKind::Unavailable);
    assert!(
        refused
            .to_string()
            .contains("below the 4 MiB watermark (--min-free-space)"),
        "{refused}"
    );
    assert_eq!(store.revision().unwrap(), 1);
    assert_eq!(store.changelog(0, 0).unwrap().len(), 1);

    std::fs::remove_file(&filler).unwrap();
    store.commit(2, &alice, record(&alice, 2)).unwrap();
    assert_eq!(store.revision().unwrap(), 2);
    let state = store.load().unwrap();
    assert!(
        state.tenants[&TenantId::new("acme").unwrap()]
            .users
            .contains_key(&UserId::new("alice").unwrap())
    );
    drop(store);
}

/// Writes `bytes` into `path` (a ballast file), synced.
fn ballast(path: &Path, bytes: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![1u8; MIB as usize];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB) as usize;
        // A tmpfs may be a little short of what statvfs said: stop there.
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = f.sync_all();
}

/// Mounts a tmpfs of `size` for a test, or says why the test is skipped.
fn tmpfs(size: &str) -> Option<(tempfile::TempDir, Tmpfs)> {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return None;
    }
    let mount_point = tempfile::tempdir().unwrap();
    match Tmpfs::mount(mount_point.path(), size) {
        Ok(m) => Some((mount_point, m)),
        Err(e) => {
            eprintln!("skipped: needs root to mount a tmpfs (mount failed: {e})");
            None
        }
    }
}

fn user_with_a_long_name(id: &str) -> Mutation {
    Mutation::AddUser {
        tenant: TenantId::new("acme").unwrap(),
        user: UserId::new(id).unwrap(),
        email: None,
        display_name: Some("d".repeat(190)),
        status: UserStatus::Active,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

#[test]
fn a_store_whose_disk_fills_mid_write_closes_and_opens_again_once_freed() {
    let Some((mount_point, _tmpfs)) = tmpfs("16m") else {
        return;
    };
    let data = mount_point.path().join("data");
    // No watermark: the write itself meets the full disk.
    let store = SledStore::open(&data).unwrap();
    let acme = create_acme();
    store.commit(1, &acme, record(&acme, 1)).unwrap();
    ballast(
        &mount_point.path().join("ballast"),
        free_on(mount_point.path()).saturating_sub(256 << 10),
    );

    // Batches of 50 long users until one fails for lack of space.
    let mut acked = 1u64;
    let failure = loop {
        let batch: Vec<rampart::store::Outcomes> = (acked + 1..=acked + 50)
            .map(|r| {
                let m = user_with_a_long_name(&format!("u{r}"));
                rampart::store::Outcomes::Applied {
                    revision: r,
                    audit: record(&m, r),
                    mutation: m,
                }
            })
            .collect();
        match store.commit_batch(&batch) {
            Ok(()) => acked += 50,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "the disk never filled");
    };
    assert_eq!(failure.kind(), ErrorKind::Unavailable, "{failure}");
    assert!(
        failure.to_string().contains("No space left on device"),
        "{failure}"
    );

    // Closed for writes: the next one is refused at once, naming why,
    // while reads still answer (everything acknowledged is there).
    let m = add_user("late");
    let refused = store
        .commit(acked + 1, &m, record(&m, acked + 1))
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("the store takes no writes since one failed"),
        "{refused}"
    );
    assert_eq!(refused.kind(), ErrorKind::Unavailable);
    assert!(store.revision().unwrap() >= acked);
    // Still full: repair says so and changes nothing.
    let not_yet = store.repair().unwrap_err();
    assert!(not_yet.to_string().contains("free"), "{not_yet}");
    assert!(store.revision().unwrap() >= acked);

    // Space is back: opened again, holding exactly what reached the disk
    // (at least every acknowledged batch, at most the failed one too).
    std::fs::remove_file(mount_point.path().join("ballast")).unwrap();
    assert_eq!(store.repair().unwrap(), Repair::Reopened);
    let have = store.revision().unwrap();
    assert!(have == acked || have == acked + 50, "{have} after {acked}");
    let state = store.load().unwrap();
    assert_eq!(state.revision, have);
    assert_eq!(
        state.tenants[&TenantId::new("acme").unwrap()].users.len() as u64,
        have - 1
    );
    assert_eq!(store.repair().unwrap(), Repair::Sound);
    let m = add_user("after");
    store.commit(have + 1, &m, record(&m, have + 1)).unwrap();
    drop(store);
    assert_eq!(reopen(&data).revision().unwrap(), have + 1);
}

/// `rampart serve --min-free-space 0` on a small tmpfs: writes with long
/// display names until the disk is full in the middle of one.
#[test]
fn a_disk_that_fills_during_writes_never_hangs_the_node_and_writes_resume_once_freed() {
    let Some((mount_point, _tmpfs)) = tmpfs("32m") else {
        return;
    };
    let data = mount_point.path().join("data");
    let port = free_port();
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(
        &data,
        port,
        &["--min-free-space", "0", "--metrics-listen", &metrics],
    );
    let url = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut admin = AdminClient::new(channel.clone());
        let mut health = HealthClient::new(channel.clone());
        let mut checks = AuthorizationClient::new(channel.clone());
        let health_of = |service: &str| HealthCheckRequest {
            service: service.into(),
        };
        let add = |user: String| AddUserRequest {
            actor: String::new(),
            dry_run: false,
            tenant: "acme".into(),
            user,
            email: String::new(),
            display_name: "d".repeat(190),
            status: String::new(),
            aliases: Vec::new(),
            attributes: Default::default(),
        };
        let admin_status = |health: &mut HealthClient<tonic::transport::Channel>| {
            let mut health = health.clone();
            async move {
                health
                    .check(health_of("rampart.v1.Admin"))
                    .await
                    .map(|r| r.into_inner().status)
            }
        };
        // Every call gets far more time than a refusal may take.
        const DEADLINE: Duration = Duration::from_secs(30);
        const PROMPT: Duration = Duration::from_secs(5);

        let mut acked = BTreeSet::new();
        ballast(
            &mount_point.path().join("ballast"),
            free_on(mount_point.path()).saturating_sub(512 << 10),
        );
        let mut i = 0;
        let (first_failure, took) = loop {
            let user = format!("fill-{i}");
            i += 1;
            let started = Instant::now();
            let answer = tokio::time::timeout(DEADLINE, admin.add_user(add(user.clone())))
                .await
                .expect("a write hung until the client's deadline");
            match answer {
                Ok(_) => {
                    acked.insert(user);
                }
                Err(status) => break (status, started.elapsed()),
            }
            assert!(i < 50_000, "the disk never filled");
        };
        eprintln!(
            "the disk filled after {} acknowledged writes; the failing write answered in {took:?}: {}",
            acked.len(),
            first_failure.message()
        );
        assert_eq!(first_failure.code(), tonic::Code::Unavailable, "{first_failure:?}");
        assert!(took < PROMPT, "the failing write took {took:?}");
        // The writes after it are refused at once, naming the cause.
        for j in 0..5 {
            let started = Instant::now();
            let refused = tokio::time::timeout(DEADLINE, admin.add_user(add(format!("refused-{j}"))))
                .await
                .expect("a write hung until the client's deadline")
                .unwrap_err();
            assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
            assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        }
        // Checks, reads and health answer; Admin says it takes no writes.
        let check = checks
            .check(CheckRequest {
                tenant: "acme".into(),
                subject: "alice".into(),
                permission: "documents:view".into(),
                consistency: None,
                explain: false,
            })
            .await;
        assert!(check.is_ok(), "{check:?}");
        let whole = health.check(health_of("")).await.unwrap().into_inner().status;
        assert_eq!(whole, ServingStatus::Serving as i32);
        let admin_while_full = admin_status(&mut health).await;
        let gauge_while_full = writable_gauge(&metrics);

        // Space is freed: writes resume without a restart.
        std::fs::remove_file(mount_point.path().join("ballast")).unwrap();
        let freed = Instant::now();
        let mut last_error = None;
        let resumed = loop {
            if freed.elapsed() > Duration::from_secs(15) {
                break None;
            }
            let answer = tokio::time::timeout(DEADLINE, admin.add_user(add("after-free".into())))
                .await
                .expect("a write hung until the client's deadline");
            match answer {
                Ok(_) => break Some(freed.elapsed()),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some(resumed) = resumed else {
            panic!(
                "writes did not resume within 15 s after space was freed; the last answer: {last_error:?}"
            );
        };
        eprintln!("writes resumed {resumed:?} after space was freed");
        acked.insert("after-free".to_owned());
        assert_eq!(
            admin_while_full.map_err(|e| e.code()),
            Ok(ServingStatus::NotServing as i32),
            "the Admin service's health while writes were refused"
        );
        assert_eq!(
            admin_status(&mut health).await.map_err(|e| e.code()),
            Ok(ServingStatus::Serving as i32)
        );
        assert_eq!(gauge_while_full.as_deref(), Some("0"), "rampart_store_writable while full");
        assert_eq!(writable_gauge(&metrics).as_deref(), Some("1"));
        let users = all_users(&mut admin).await;
        let missing: Vec<_> = acked.difference(&users).collect();
        assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    });

    // And across a restart: every acknowledged change, nothing half done.
    assert!(server.terminate().success());
    let server = Server::start_with(&data, port, &["--min-free-space", "0"]);
    runtime.block_on(async {
        let mut admin = AdminClient::connect(url.clone()).await.unwrap();
        let users = all_users(&mut admin).await;
        assert!(users.contains("after-free"));
        assert!(users.contains("fill-0"));
        let revision = admin
            .list_tenants(ListTenantsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .revision;
        let quickstart = rampart::model::policy_file::to_mutations(
            &rampart::model::policy_file::load_str(rampart::model::QUICKSTART_POLICY).unwrap(),
        )
        .len();
        let added = users
            .iter()
            .filter(|u| u.starts_with("fill-") || u.starts_with("refused-") || *u == "after-free")
            .count();
        assert_eq!(revision as usize, quickstart + added);
    });
    drop(server);
}

/// `rampart_store_writable` as the metrics page at `addr` shows it.
fn writable_gauge(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut page = String::new();
    conn.read_to_string(&mut page).ok()?;
    page.lines()
        .find_map(|l| l.strip_prefix("rampart_store_writable "))
        .map(|v| v.trim().to_owned())
}

/// Every user of `acme`, page by page.
async fn all_users(admin: &mut AdminClient<tonic::transport::Channel>) -> BTreeSet<String> {
    let mut users = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_users(ListUsersRequest {
                tenant: "acme".into(),
                page_size: 10_000,
                page_token,
                actor: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        users.extend(page.users.into_iter().map(|u| u.user));
        page_token = page.next_page_token;
        if page_token.is_empty() {
            return users;
        }
    }
}

/// An ext4 image on a loop device, mounted for a test: `freeze` stops its
/// writes (they wait in the kernel), as a disk that no longer answers.
/// Thawed and unmounted when dropped.
struct Frozen {
    mount_point: PathBuf,
}

impl Frozen {
    fn mount(image: &Path, mount_point: &Path) -> Result<Self, String> {
        let run = |cmd: &str, args: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new(cmd)
                .args(args)
                .output()
                .map_err(|e| format!("{cmd}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        std::fs::File::create(image)
            .and_then(|f| f.set_len(96 * MIB))
            .map_err(|e| e.to_string())?;
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
        )?;
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mount_point.as_os_str(),
            ],
        )?;
        Ok(Self {
            mount_point: mount_point.to_path_buf(),
        })
    }

    fn fsfreeze(&self, flag: &str) -> bool {
        std::process::Command::new("fsfreeze")
            .arg(flag)
            .arg(&self.mount_point)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.fsfreeze("-u");
        let umount = |args: &[&str]| {
            std::process::Command::new("umount")
                .args(args)
                .arg(&self.mount_point)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(&["-d"]) && !umount(&["-l", "-d"]) {
            eprintln!("could not unmount {}", self.mount_point.display());
        }
    }
}

/// `rampart serve` with its log in `log`, ready once it says it serves.
fn serve_logged(data: &Path, port: u16, extra: &[&str], log: &Path) -> std::process::Child {
    let child = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_for_line(
        log,
        "serving rampart.v1.Authorization",
        Duration::from_secs(30),
    );
    child
}

/// Waits until `log` has a line containing `needle`; returns that line.
fn wait_for_line(log: &Path, needle: &str, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            started.elapsed() < within,
            "no line with {needle:?} within {within:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A disk that stops answering (a frozen filesystem): the write is answered
/// `UNAVAILABLE` once `--store-timeout-ms` passes, not at its deadline, and
/// the node exits with code 75 naming the cause; restarted once the disk
/// answers again, it holds every acknowledged change.
#[test]
fn a_store_that_stops_answering_stops_the_node_with_code_75_and_a_restart_keeps_every_change() {
    if !is_root() {
        eprintln!("skipped: needs root to mount and freeze a filesystem");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("mnt");
    std::fs::create_dir(&mount_point).unwrap();
    let disk = match Frozen::mount(&dir.path().join("disk.ext4"), &mount_point) {
        Ok(disk) => disk,
        Err(e) => {
            eprintln!("skipped: needs root to mount an ext4 image ({e})");
            return;
        }
    };
    let data = mount_point.join("data");
    let log = dir.path().join("serve.log");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = serve_logged(&data, port, &["--store-timeout-ms", "2000"], &log);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let add = |user: &str| AddUserRequest {
        actor: String::new(),
        dry_run: false,
        tenant: "acme".into(),
        user: user.into(),
        email: String::new(),
        display_name: String::new(),
        status: String::new(),
        aliases: Vec::new(),
        attributes: Default::default(),
    };
    runtime.block_on(async {
        let mut admin = AdminClient::connect(url.clone()).await.unwrap();
        for i in 0..5 {
            admin.add_user(add(&format!("before-{i}"))).await.unwrap();
        }
        assert!(disk.fsfreeze("-f"), "fsfreeze failed");
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(30), admin.add_user(add("frozen")))
            .await
            .expect("the write hung until the client's deadline");
        let took = started.elapsed();
        let refused = answer.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(
            refused.message().contains("did not finish within 2s"),
            "{refused:?}"
        );
        assert!(took < Duration::from_secs(10), "answered after {took:?}");
    });
    let line = wait_for_line(&log, "exiting with code 75", Duration::from_secs(15));
    assert!(line.contains("free space in the data dir"), "{line}");
    // The stuck write holds a thread in the kernel: the process ends once
    // the disk answers again.
    assert!(disk.fsfreeze("-u"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the node did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(75));

    // Restarted (as an orchestrator would): every acknowledged change.
    let server = Server::start(&data, port);
    runtime.block_on(async {
        let mut admin = AdminClient::connect(url.clone()).await.unwrap();
        let users = all_users(&mut admin).await;
        for i in 0..5 {
            assert!(users.contains(&format!("before-{i}")), "{users:?}");
        }
        admin.add_user(add("after-restart")).await.unwrap();
    });
    drop(server);
    drop(disk);
}
