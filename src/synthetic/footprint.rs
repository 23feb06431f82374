//! Where the bytes of a compiled state go: a snapshot taken apart one
//! structure at a time, reading an allocator's live-byte count after each
//! piece is dropped.
//!
//! The count comes from the caller (`benches/memory.rs` reads jemalloc's
//! `stats.allocated`), so this module owns no allocator. A piece's figure is
//! what dropping it freed *in this order*: a string shared by two
//! structures (a user id held by the model's map and the compiled map) is
//! counted with the last one dropped.

use std::sync::Arc;

use crate::policy::Snapshot;

/// One structure's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub name: &'static str,
    pub bytes: u64,
}

/// Drops `snapshot` piece by piece, reading `allocated()` (live heap bytes)
/// before and after each, and returns what each freed; a last piece,
/// `rest`, is whatever the named ones did not free. Pieces another owner
/// still holds (an `Arc` cloned elsewhere) free nothing.
pub fn footprint(snapshot: Snapshot, allocated: &mut dyn FnMut() -> u64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut last = allocated();
    let mut took = |name: &'static str, allocated: &mut dyn FnMut() -> u64| {
        let now = allocated();
        pieces.push(Piece {
            name,
            bytes: last.saturating_sub(now),
        });
        last = now;
    };

    let Snapshot {
        state,
        catalog,
        tenants,
        ..
    } = snapshot;
    let mut compiled: Vec<_> = tenants
        .into_values()
        .map(|t| Arc::try_unwrap(t).unwrap_or_else(|shared| (*shared).clone()))
        .collect();
    took("compiled: tenant table", allocated);

    macro_rules! drop_each {
        ($name:literal, $field:ident) => {
            for t in &mut compiled {
                t.$field = Default::default();
            }
            took($name, allocated);
        };
    }
    drop_each!("compiled: users (id → role set, cohort)", users);
    drop_each!("compiled: cohorts (groups → their roles)", cohorts);
    drop_each!("compiled: parents (group → groups)", parents);
    drop_each!("compiled: timed phases", timed);
    drop_each!("compiled: role sets", sets);
    drop_each!("compiled: grant index", grants);
    let models: Vec<_> = compiled.into_iter().map(|t| t.tenant).collect();
    drop(catalog);
    took("compiled: rest (role names, catalog index)", allocated);

    let mut state = Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
    drop(models);
    let mut tenants: Vec<_> = std::mem::take(&mut state.tenants)
        .into_values()
        .map(|t| Arc::try_unwrap(t).unwrap_or_else(|shared| (*shared).clone()))
        .collect();
    took("model: tenant table", allocated);
    for t in &mut tenants {
        t.bindings = Default::default();
    }
    took("model: bindings", allocated);
    for t in &mut tenants {
        t.groups = Default::default();
    }
    took("model: groups and members", allocated);
    for t in &mut tenants {
        t.roles = Default::default();
    }
    took("model: roles and grants", allocated);
    for t in &mut tenants {
        t.users = Default::default();
    }
    took("model: users (ids, profiles)", allocated);
    drop(tenants);
    drop(state);
    took("model: rest (alias index, settings, catalog)", allocated);
    pieces
}
