//! Hands the memory glibc's allocator keeps free back to the system.
//!
//! glibc keeps what a program frees in its arenas for later allocations:
//! after `rampart serve` loads a store, the decoding and compiling it
//! freed stays resident (about 23 MiB of a 100,000-user tenant's 78 MiB,
//! BENCHMARKS.md). `malloc_trim(0)` returns every whole free page of every
//! arena. rampart forbids `unsafe` code; this crate is the one place that
//! allows it, for this one call, which takes no pointer and has no
//! precondition (glibc locks each arena while it walks it).

/// Returns the allocator's free pages to the system; whether any came
/// back. Elsewhere than glibc (musl, macOS) it does nothing and returns
/// `false`: those allocators have no such call.
///
/// It walks every arena under its lock: call it when little else
/// allocates (after a load, before serving), not on a hot path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    #[allow(unsafe_code, reason = "the FFI call this crate exists for")]
    // SAFETY: `malloc_trim` takes no pointer, reads no memory of ours, and
    // is MT-safe (malloc_trim(3)): any thread may call it at any time.
    let released = unsafe { libc::malloc_trim(0) };
    released == 1
}

/// See the glibc version: nothing to do here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_pages_come_back() {
        // Many small blocks (below the mmap threshold, so they live in an
        // arena), then all freed but the last: the pages they held are
        // free inside the heap, which only a trim returns.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1000]).collect();
        let keep = blocks.pop();
        drop(blocks);
        assert!(
            release_free_memory(),
            "20 MB were freed: some page must come back"
        );
        assert_eq!(keep.map(|k| k.len()), Some(1000));
    }
}
