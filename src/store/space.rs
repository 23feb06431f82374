//! The free-space watermark: a write is refused, before sled is touched,
//! while the file system holding the data directory has less free space
//! than `--min-free-space`.
//!
//! Why: sled 0.34 does not recover from a full disk. Once a flush fails
//! with `ENOSPC` it fails every later write with it, even once space is
//! freed (issue #11 saw them hang instead), until the store is opened again
//! (`sled/reopen.rs`). Refusing first keeps sled away from the full disk: the caller
//! gets `UNAVAILABLE` naming the cause at once, reads keep working, and the
//! first write after space is back goes through (the check runs per write;
//! it is one `statvfs`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::StoreError;

/// How much space is free, in bytes: `statvfs` in production, anything in
/// a test.
pub type Probe = Box<dyn Fn() -> io::Result<u64> + Send + Sync>;

/// The watermark and what the last look at the file system saw. Shared
/// between the store (which checks it before each write) and the metrics
/// scrape (which reads it).
pub struct FreeSpace {
    /// Fewer free bytes than this refuse writes; 0 never does.
    min: u64,
    probe: Probe,
    /// Free bytes at the last look; `u64::MAX` before the first one, or
    /// when the probe failed.
    free: AtomicU64,
    /// Whether writes are being refused now (for the log lines on a change).
    refusing: AtomicBool,
}

impl std::fmt::Debug for FreeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreeSpace")
            .field("min", &self.min)
            .field("free", &self.free.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FreeSpace {
    /// The watermark `min` (bytes) on the file system holding `dir`, read
    /// with `statvfs` (the space an unprivileged process may use).
    pub fn statvfs(dir: impl AsRef<Path>, min: u64) -> Self {
        let dir: PathBuf = dir.as_ref().to_path_buf();
        Self::with_probe(min, Box::new(move || available(&dir)))
    }

    /// The watermark `min` (bytes), with `probe` telling the free space.
    pub fn with_probe(min: u64, probe: Probe) -> Self {
        Self {
            min,
            probe,
            free: AtomicU64::new(u64::MAX),
            refusing: AtomicBool::new(false),
        }
    }

    /// The watermark, in bytes (0: off).
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Looks at the file system now: returns the free bytes (`None` when
    /// the probe failed) and logs when writes start or stop being refused.
    pub fn observe(&self) -> Option<u64> {
        let free = match (self.probe)() {
            Ok(free) => free,
            Err(e) => {
                // Not knowing is no reason to refuse: the write goes on,
                // and a full disk fails it as before.
                tracing::debug!(error = %e, "cannot read the data dir's free space");
                self.free.store(u64::MAX, Ordering::Relaxed);
                return None;
            }
        };
        self.free.store(free, Ordering::Relaxed);
        let low = free < self.min;
        if self.refusing.swap(low, Ordering::Relaxed) != low {
            if low {
                tracing::warn!(
                    free_bytes = free,
                    min_free_bytes = self.min,
                    "{}: writes are refused (UNAVAILABLE) until space is freed; reads and checks go on",
                    self.describe(free)
                );
            } else {
                tracing::info!(
                    free_bytes = free,
                    min_free_bytes = self.min,
                    "the data dir's filesystem has {} free again: writes resume",
                    bytes(free)
                );
            }
        }
        Some(free)
    }

    /// Refuses a write while the free space is below the watermark:
    /// [`StoreError::Backend`] (kind `Unavailable`) naming the cause.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.min == 0 {
            return Ok(());
        }
        match self.observe() {
            Some(free) if free < self.min => Err(StoreError::Backend(self.describe(free))),
            _ => Ok(()),
        }
    }

    /// Free bytes at the last look (`None`: not known).
    pub fn free_bytes(&self) -> Option<u64> {
        match self.free.load(Ordering::Relaxed) {
            u64::MAX => None,
            free => Some(free),
        }
    }

    /// Whether a write would be let through at the last look.
    pub fn writable(&self) -> bool {
        self.free_bytes().is_none_or(|free| free >= self.min)
    }

    fn describe(&self, free: u64) -> String {
        format!(
            "the data dir's filesystem has {} free, below the {} watermark (--min-free-space)",
            bytes(free),
            bytes(self.min)
        )
    }
}

/// The bytes an unprivileged process may still write on the file system
/// holding `dir`.
pub(crate) fn available(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `n` bytes for a person: `12 MiB`, `1.5 GiB`, `512 bytes`.
pub fn bytes(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match n {
        _ if n >= GIB && n.is_multiple_of(GIB) => format!("{} GiB", n / GIB),
        _ if n >= GIB => format!("{:.1} GiB", n as f64 / GIB as f64),
        _ if n >= MIB => format!("{} MiB", n / MIB),
        _ if n >= KIB => format!("{} KiB", n / KIB),
        _ => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bytes_reads_well() {
        assert_eq!(bytes(12 << 20), "12 MiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(1 << 30), "1 GiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(bytes(2048), "2 KiB");
        assert_eq!(bytes(7), "7 bytes");
    }

    #[test]
    fn the_watermark_refuses_below_it_and_lets_through_above() {
        let free = Arc::new(AtomicU64::new(12 << 20));
        let seen = Arc::clone(&free);
        let space =
            FreeSpace::with_probe(64 << 20, Box::new(move || Ok(seen.load(Ordering::Relaxed))));
        assert!(space.writable(), "nothing seen yet");
        let refused = space.check().unwrap_err();
        assert_eq!(
            refused.to_string(),
            "storage: the data dir's filesystem has 12 MiB free, below the 64 MiB watermark (--min-free-space)"
        );
        assert_eq!(
            crate::model::HasKind::kind(&refused),
            crate::model::ErrorKind::Unavailable
        );
        assert!(!space.writable());
        assert_eq!(space.free_bytes(), Some(12 << 20));
        free.store(1 << 30, Ordering::Relaxed);
        space.check().unwrap();
        assert!(space.writable());
    }

    #[test]
    fn zero_disables_it_and_a_failed_probe_lets_writes_through() {
        let off = FreeSpace::with_probe(0, Box::new(|| Ok(0)));
        off.check().unwrap();
        let blind = FreeSpace::with_probe(64 << 20, Box::new(|| Err(io::Error::other("no"))));
        blind.check().unwrap();
        assert_eq!(blind.free_bytes(), None);
        assert!(blind.writable());
    }

    #[test]
    fn statvfs_reads_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let space = FreeSpace::statvfs(dir.path(), 1);
        assert!(space.observe().is_some_and(|free| free > 0));
    }
}
