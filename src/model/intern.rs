//! Sharing while decoding: inside [`interning`], every identifier and
//! grant pattern made on this thread shares one allocation per distinct
//! text.
//!
//! Decoding a tenant names each user in its record, in its bindings' keys
//! and values and in its groups' member lists, and each role's grants
//! repeat the catalog's paths: without this each mention is allocations of
//! its own (about 160 bytes a user, and 150 a grant, of a decoded state,
//! measured with `benches/memory.rs`). Outside `interning` nothing is
//! pooled, so values made at run time cost what they did.
//!
//! Tenants of one deployment mostly grant the same catalog's paths, so a
//! reader of many tenants (a checkpoint, an export) passes one
//! [`SharedPatterns`] to [`interning_with`] on every thread it decodes on:
//! each distinct pattern is then one allocation for the whole state, not
//! one a tenant (30 MiB of the 1M-user bench state, BENCHMARKS.md).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use arcstr::ArcStr;

use super::permission::{GrantPattern, PathError};

#[derive(Default)]
struct Pool {
    strings: HashSet<ArcStr>,
    patterns: HashMap<ArcStr, GrantPattern>,
    shared: Option<SharedPatterns>,
}

/// Grant patterns pooled across threads and tenants: what one reader of
/// many tenants hands to [`interning_with`].
#[derive(Debug, Clone, Default)]
pub struct SharedPatterns(Arc<Mutex<HashMap<ArcStr, GrantPattern>>>);

impl SharedPatterns {
    fn get(&self, text: &str) -> Option<GrantPattern> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(text).cloned()
    }

    fn insert(&self, text: ArcStr, pattern: GrantPattern) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(text).or_insert(pattern);
    }
}

thread_local! {
    static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

/// Runs `f` with identifiers and grant patterns made on this thread pooled
/// by text. Nested calls share the outer pool; the pool is dropped when
/// the outer call ends.
pub fn interning<R>(f: impl FnOnce() -> R) -> R {
    pooled(None, f)
}

/// [`interning`], with grant patterns also looked up in and added to
/// `shared` (unless an outer call on this thread already pools).
pub fn interning_with<R>(shared: &SharedPatterns, f: impl FnOnce() -> R) -> R {
    pooled(Some(shared), f)
}

fn pooled<R>(shared: Option<&SharedPatterns>, f: impl FnOnce() -> R) -> R {
    let outer = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let outer = pool.is_some();
        if !outer {
            *pool = Some(Pool {
                shared: shared.cloned(),
                ..Pool::default()
            });
        }
        outer
    });
    let out = f();
    if !outer {
        POOL.with(|pool| pool.borrow_mut().take());
    }
    out
}

/// `value` as a shared string: the pooled one inside [`interning`].
pub(crate) fn shared(value: &str) -> ArcStr {
    POOL.with(|pool| match pool.borrow_mut().as_mut() {
        Some(pool) => match pool.strings.get(value) {
            Some(known) => known.clone(),
            None => {
                let new = ArcStr::from(value);
                pool.strings.insert(new.clone());
                new
            }
        },
        None => ArcStr::from(value),
    })
}

/// The pattern `text` parses to: the pooled one inside [`interning`].
pub(crate) fn pattern(
    text: &str,
    parse: impl FnOnce(&str) -> Result<GrantPattern, PathError>,
) -> Result<GrantPattern, PathError> {
    // The pool's answer: `Some(found)`; `None` outside `interning`.
    let known = POOL.with(|pool| {
        pool.borrow()
            .as_ref()
            .map(|pool| match pool.patterns.get(text) {
                Some(local) => Found::Local(local.clone()),
                None => match pool.shared.as_ref().and_then(|s| s.get(text)) {
                    Some(across) => Found::Shared(across),
                    None => Found::Nowhere,
                },
            })
    });
    let (new, share) = match known {
        None => return parse(text),
        Some(Found::Local(known)) => return Ok(known),
        Some(Found::Shared(across)) => (across, false),
        // Parsed with the pool released: parsing pools the segments.
        Some(Found::Nowhere) => (parse(text)?, true),
    };
    let key = shared(text);
    POOL.with(|pool| {
        if let Some(pool) = pool.borrow_mut().as_mut() {
            if let Some(across) = pool.shared.as_ref().filter(|_| share) {
                across.insert(key.clone(), new.clone());
            }
            pool.patterns.insert(key, new.clone());
        }
    });
    Ok(new)
}

/// Where [`pattern`] found a pattern.
enum Found {
    Local(GrantPattern),
    Shared(GrantPattern),
    Nowhere,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::UserId;

    #[test]
    fn ids_made_while_interning_share_their_text() {
        let (a, b, other) = interning(|| {
            let a = UserId::new("alice").unwrap();
            // Nested: the same pool.
            let b = interning(|| UserId::new("alice").unwrap());
            (a, b, UserId::new("bob").unwrap())
        });
        assert!(a.shares_with(&b));
        assert_eq!((a.as_str(), other.as_str()), ("alice", "bob"));
        // Outside, each is its own; the pool is gone.
        let c = UserId::new("alice").unwrap();
        let d = UserId::new("alice").unwrap();
        assert!(!c.shares_with(&d) && !a.shares_with(&c));
        assert!(POOL.with(|pool| pool.borrow().is_none()));
    }

    #[test]
    fn patterns_are_shared_across_threads_and_pools() {
        let shared = SharedPatterns::default();
        let on_thread = |s: SharedPatterns| {
            std::thread::spawn(move || {
                interning_with(&s, || GrantPattern::parse("docs:read:*").unwrap())
            })
            .join()
            .unwrap()
        };
        let a = on_thread(shared.clone());
        let b = on_thread(shared.clone());
        let c = interning_with(&shared, || GrantPattern::parse("docs:read:*").unwrap());
        assert!(a.shares_with(&b) && a.shares_with(&c));
        // Without the shared pool, each pool parses its own.
        let d = interning(|| GrantPattern::parse("docs:read:*").unwrap());
        assert!(!a.shares_with(&d) && a == d);
        assert!(interning_with(&shared, || GrantPattern::parse("docs:*:x").is_err()));
    }

    #[test]
    fn patterns_parsed_while_interning_are_shared() {
        let (a, b) = interning(|| {
            (
                GrantPattern::parse("docs:read:*").unwrap(),
                GrantPattern::parse("docs:read:*").unwrap(),
            )
        });
        assert!(a.shares_with(&b));
        assert_eq!(a.as_str(), "docs:read:*");
        assert!(interning(|| GrantPattern::parse("docs:*:x").is_err()));
        let c = GrantPattern::parse("docs:read:*").unwrap();
        assert!(!a.shares_with(&c) && a == c);
    }
}
