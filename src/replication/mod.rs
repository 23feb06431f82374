//! Replication: the changelog streamed to read replicas, the whole state
//! exported and imported, and the replica that follows a leader.
//!
//! - `caller.rs`: who calls, and the tenants its credential confines it to.
//! - `convert.rs`: the service's request fields into model values.
//! - `export.rs`: the export file (JSON lines) and the state digest.
//! - `refusal.rs`: why a Watch is refused or ended (`WatchError`, its
//!   kind `OutOfRange` through `proto::status`).
//! - `service.rs`: the `rampart.v1.Replication` gRPC service (Watch,
//!   Export, Import, GetState) that every node serves.
//! - `watch.rs`: one Watch stream, a task paging through the changelog.
//! - `filter.rs`: what a Watch filtered to some tenants sends.
//! - `follower.rs`: `rampart serve --follow`: bootstrap with Export, tail
//!   Watch, apply through `Engine::replicate`, reconnect, re-bootstrap.
//!
//! The guarantees and what is not promised are in ARCHITECTURE.md
//! ("Replication").

pub mod caller;
pub mod convert;
pub mod export;
mod filter;
pub mod follower;
pub mod refusal;
pub mod service;
mod watch;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::store::Retention;

pub use caller::Caller;
pub use follower::{FollowConfig, follow};
pub use service::ReplicationService;
pub use watch::change_event;

/// The response header that names the tenants a Watch or an Export
/// covers, when not every tenant.
pub const TENANTS_HEADER: &str = "rampart-tenants";

/// A replica's replication status, shared between the follower task, the
/// Replication service (GetState) and the logs. Plain atomics: read
/// without locks, written by the follower alone.
#[derive(Debug, Default)]
pub struct ReplicaStatus {
    /// The leader's last revision as last heard.
    pub leader_revision: AtomicU64,
    /// How old the change being applied was when it was applied, in
    /// milliseconds; 0 once caught up.
    pub lag_ms: AtomicU64,
    pub reconnects: AtomicU64,
    pub rebootstraps: AtomicU64,
    pub connected: AtomicBool,
    /// Caught up with the leader at least once since start.
    pub caught_up: AtomicBool,
}

impl ReplicaStatus {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What a node is: a leader, or a replica of one.
#[derive(Debug, Clone)]
pub enum Role {
    Leader,
    Replica {
        /// The leader's address, as given to `--follow`.
        leader: String,
        status: std::sync::Arc<ReplicaStatus>,
        /// Health is NOT_SERVING while the lag exceeds this.
        max_lag: Duration,
    },
}

/// Replication settings of a node.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    pub role: Role,
    /// How often an idle Watch stream gets a checkpoint.
    pub heartbeat: Duration,
    /// How much changelog to keep.
    pub retention: Retention,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            role: Role::Leader,
            heartbeat: Duration::from_secs(5),
            retention: Retention::default(),
        }
    }
}
