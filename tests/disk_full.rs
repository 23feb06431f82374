//! A full disk: below `--min-free-space` every write is refused
//! `UNAVAILABLE` at once, before sled is touched (sled 0.34 hangs for good
//! after a flush that hit `ENOSPC`), reads go on, and the first write after
//! space is back goes through, with nothing lost.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart::engine::Engine;
use rampart::model::rules::Actor;
use rampart::model::{
    ErrorKind, HasKind, Mutation, TenantId, TenantSettings, Timestamp, UserId, UserStatus,
};
use rampart::store::{AuditFilter, AuditRecord, FreeSpace, Outcome, SledStore, Store, StoreError};

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
