//! Compiling independent tenants on every core.
//!
//! `policy` may import only `model`, so this does not share
//! `store::parallel` (which reads checkpoint parts and speaks
//! `StoreError`): compiling cannot fail, and its items differ widely in
//! size, so workers take the next item as they finish one instead of a
//! fixed share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many threads: past it, memory bandwidth rather than cores
/// bounds a compile.
const MAX_WORKERS: usize = 8;

/// `f` of every item, on up to [`MAX_WORKERS`] threads (one per core), the
/// results in the items' order. Items are taken in order as workers free
/// up, so a caller that puts the largest first gets the shortest run. A
/// panic in `f` is resumed on the calling thread, as a serial loop would
/// have panicked.
pub(crate) fn map<T, R>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_WORKERS)
        .min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Mutex<Option<R>>> = Vec::new();
    slots.resize_with(items.len(), || Mutex::new(None));
    let (f, next, slots_ref) = (&f, &next, &slots);
    let panicked = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(item), Some(slot)) = (items.get(i), slots_ref.get(i)) else {
                            break;
                        };
                        let r = f(item);
                        *slot
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().err()).next()
    });
    if let Some(payload) = panicked {
        std::panic::resume_unwind(payload);
    }
    slots
        .into_iter()
        .filter_map(|slot| {
            slot.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_items_order() {
        let items: Vec<u64> = (0..257).collect();
        let out = map(&items, |n| n * n);
        assert_eq!(out, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert!(map(&Vec::<u64>::new(), |n| *n).is_empty());
        assert_eq!(map(&[7u64], |n| n + 1), vec![8]);
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<u64> = (0..64).collect();
        let caught = std::panic::catch_unwind(|| {
            map(&items, |n| {
                assert!(*n != 40, "item forty");
                *n
            })
        });
        assert!(caught.is_err());
    }
}
