//! `rampart dev-seed` (hidden; for benchmarks): writes a synthetic state
//! (`crate::synthetic`) into an empty data folder, so `rampart serve
//! --data-dir` starts from it.
//!
//! Bootstrapping a million users through the Admin API would take one
//! durable commit per mutation (millions of `fdatasync`s). Instead this
//! commits one marker mutation at revision 1 (creating the first tenant,
//! audited with the credential `dev-seed`) and then writes the whole
//! generated state as the store's checkpoint at revision 1, through the
//! ordinary `Store` API. Recovery reads that checkpoint and replays nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::model::{Mutation, TenantSettings, Timestamp};
use crate::store::{AuditRecord, Outcome, PgStore, SledStore, Store, StoreError};
use crate::synthetic::{self, Spec};

/// Which synthetic state to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedSpec {
    /// `Spec::issue_tenant()`: one tenant `t000` of 100,000 users.
    IssueTenant,
    /// `Spec::million()`: 1,000,000 users over 100 tenants `t000`..`t099`.
    Million,
}

/// `rampart dev-seed` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// The synthetic state to write.
    #[arg(long, value_enum)]
    pub spec: SeedSpec,
    /// The data folder to fill; it must be empty or not exist.
    #[arg(long, required_unless_present = "store")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL store to fill instead (`postgres://…`); it must be
    /// empty.
    #[arg(long, conflicts_with = "data_dir", value_name = "URL")]
    pub store: Option<String>,
}

/// Runs `rampart dev-seed`.
pub fn seed_main(args: SeedArgs) -> ExitCode {
    match seed(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart dev-seed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the seed was not written.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{place} already holds a state (revision {revision}); give an empty one")]
    NotEmpty { place: String, revision: u64 },
    #[error("the spec generated no tenant")]
    NoTenant,
}

fn seed(args: &SeedArgs) -> Result<(), SeedError> {
    let spec = match args.spec {
        SeedSpec::IssueTenant => Spec::issue_tenant(),
        SeedSpec::Million => Spec::million(),
    };
    let (store, place): (Box<dyn Store>, String) = match (&args.store, &args.data_dir) {
        (Some(url), _) => {
            let store = PgStore::connect(url)?;
            let place = format!("PostgreSQL store {}", store.target());
            (Box::new(store), place)
        }
        (None, Some(dir)) => (
            Box::new(SledStore::open(dir)?),
            format!("`{}`", dir.display()),
        ),
        (None, None) => {
            return Err(SeedError::Store(StoreError::Backend(
                "give --data-dir or --store".into(),
            )));
        }
    };
    let have = store.revision()?;
    if have != 0 {
        return Err(SeedError::NotEmpty {
            place,
            revision: have,
        });
    }
    let started = Instant::now();
    let state = synthetic::generate(&spec);
    let generated = started.elapsed();
    let first = state
        .tenants
        .keys()
        .next()
        .cloned()
        .ok_or(SeedError::NoTenant)?;
    let marker = Mutation::CreateTenant {
        tenant: first.clone(),
        name: "synthetic".into(),
        settings: TenantSettings::default(),
    };
    let audit = AuditRecord {
        seq: 0,
        time: Timestamp::now(),
        actor: None,
        credential: "dev-seed".into(),
        revision: state.revision,
        tenant: Some(first.to_string()),
        also: Vec::new(),
        mutation: marker.clone(),
        outcome: Outcome::Applied,
    };
    let started = Instant::now();
    store
        .commit(state.revision, &marker, audit)
        .and_then(|()| store.checkpoint(&state))
        .and_then(|()| store.flush())?;
    let stats = synthetic::stats(&state);
    println!(
        "seeded {place} at revision {}: {stats:?}; generated in {:.2} s, checkpointed in {:.2} s",
        state.revision,
        generated.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
