//! rampart: a policy decision point for role- and group-based access control.
//!
//! `model` is the pure domain, `policy` compiles it into snapshots and
//! evaluates checks, `store` keeps the changelog, the audit log and
//! checkpoints durably, `server` speaks gRPC, `telemetry` exports metrics
//! and the decision log, `cli` is the command line, and `synthetic`
//! generates large policies for benchmarks.

pub mod cli;
pub mod client;
pub mod engine;
pub mod model;
pub mod policy;
pub mod proto;
pub mod replication;
pub mod server;
pub mod store;
pub mod synthetic;
pub mod telemetry;
