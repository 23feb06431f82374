//! rampart: a policy decision point for role- and group-based access control.
//!
//! `model` is the pure domain, `policy` compiles it into snapshots and
//! evaluates checks, `server` speaks gRPC, `cli` is the command line.

pub mod model;
pub mod policy;
