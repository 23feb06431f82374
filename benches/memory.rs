//! Where the memory of a loaded state goes, per structure.
//!
//! Builds a synthetic state (`Spec::million()` by default; `issue` for the
//! 100,000-user tenant), writes every tenant as a checkpoint part and reads
//! it back (so the model is laid out as after a restart, not as the
//! generator shares it), compiles it, then takes the snapshot apart one
//! structure at a time (`rampart::synthetic::footprint`), reading
//! jemalloc's live-byte count (`stats.allocated`: bytes handed out,
//! rounded up to jemalloc's size classes) after each piece.
//!
//! Run with `cargo bench --bench memory` (or `-- issue`). It prints one
//! table: each piece's bytes, bytes per user, and the share of the whole.
//! A later change reruns it and compares the tables; `RSS at SERVING` of a
//! real server is `benches/coldstart.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "bench code"
)]

use std::sync::Arc;
use std::time::Instant;

use rampart::policy::compile;
use rampart::store::image;
use rampart::synthetic::{self, Spec};
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Live heap bytes, as jemalloc counts them.
fn allocated() -> u64 {
    epoch::advance().unwrap();
    stats::allocated::read().unwrap() as u64
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "million".into());
    let spec = match which.as_str() {
        "million" => Spec::million(),
        "issue" => Spec::issue_tenant(),
        other => panic!("unknown spec `{other}`: million or issue"),
    };
    let users = (spec.tenants * spec.users_per_tenant) as u64;

    let started = Instant::now();
    let state = synthetic::generate(&spec);
    let parts: Vec<Vec<u8>> = state
        .tenants
        .values()
        .map(|t| image::binary::encode_tenant(t).unwrap())
        .collect();
    let catalog = state.catalog.entries().to_vec();
    let bridges = state.bridges_grants.to_vec();
    let revision = state.revision;
    drop(state);
    let encoded: u64 = parts.iter().map(|p| p.len() as u64).sum();
    eprintln!(
        "generated and encoded {} tenants ({}) in {:.1} s",
        parts.len(),
        mib(encoded),
        started.elapsed().as_secs_f64()
    );

    let base = allocated();
    // As a checkpoint is read: binary parts, one pattern pool for all.
    let patterns = rampart::model::intern::SharedPatterns::default();
    let tenants: Vec<_> = parts
        .iter()
        .map(|p| {
            rampart::model::intern::interning_with(&patterns, || {
                image::binary::decode_tenant(p).unwrap()
            })
        })
        .collect();
    let state = image::assemble(revision, catalog, bridges, tenants).unwrap();
    let model = allocated() - base;
    drop(parts);
    let before_compile = allocated();
    let snapshot = compile(Arc::new(state));
    let compiled = allocated() - before_compile;

    let mut measure = allocated;
    let pieces = synthetic::footprint(snapshot, &mut measure);
    let total: u64 = pieces.iter().map(|p| p.bytes).sum();

    println!(
        "\nmemory of `{which}`: {users} users, {} tenants (jemalloc stats.allocated)\n",
        spec.tenants
    );
    println!("| piece | bytes | per user | share |");
    println!("|---|---:|---:|---:|");
    for p in &pieces {
        println!(
            "| {} | {} | {:.0} B | {:.1}% |",
            p.name,
            mib(p.bytes),
            p.bytes as f64 / users as f64,
            100.0 * p.bytes as f64 / total.max(1) as f64
        );
    }
    println!(
        "| **all** | **{}** | **{:.0} B** | |",
        mib(total),
        total as f64 / users as f64
    );
    println!(
        "\nmodel as decoded {} ({:.0} B a user), compile added {} ({:.0} B a user)",
        mib(model),
        model as f64 / users as f64,
        mib(compiled),
        compiled as f64 / users as f64
    );
}
