//! The families read at scrape time rather than recorded as they happen:
//! the snapshot revision, the tenants held, Watch streams, throttled
//! connections, a replica's lag, the data dir's free space. Each is written
//! by the source the composition root registers.

use super::metrics::Exposition;
use crate::model::TenantId;

/// A replica's follower, as one scrape reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplicaGauges {
    /// Revisions the leader has that this replica has not applied yet.
    pub lag_revisions: u64,
    /// Age of the change being applied when it was applied; 0 once caught up.
    pub lag_seconds: f64,
    pub reconnects: u64,
    pub rebootstraps: u64,
}

impl Exposition {
    /// `rampart_snapshot_revision`.
    pub fn revision(&mut self, revision: u64) {
        self.family(
            "rampart_snapshot_revision",
            "gauge",
            "Revision of the snapshot checks are answered from.",
        );
        self.sample("rampart_snapshot_revision", &[], revision);
    }

    /// `rampart_tenants_held` and, on a replica started with `--tenants`,
    /// `rampart_tenants_scope_info` naming them.
    pub fn tenants(&mut self, held: usize, scope: Option<&[TenantId]>) {
        self.family(
            "rampart_tenants_held",
            "gauge",
            "Tenants the snapshot holds (on a replica started with --tenants, those of its tenants that exist).",
        );
        self.sample("rampart_tenants_held", &[], held);
        if let Some(scope) = scope {
            let named = scope
                .iter()
                .map(TenantId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            self.family(
                "rampart_tenants_scope_info",
                "gauge",
                "Always 1 on a replica started with --tenants, which holds those tenants only; the label names them, sorted, comma-separated.",
            );
            self.sample("rampart_tenants_scope_info", &[("tenants", &named)], 1);
        }
    }

    /// `rampart_watch_streams`.
    pub fn watch_streams(&mut self, open: u64) {
        self.family(
            "rampart_watch_streams",
            "gauge",
            "Replication Watch streams open now.",
        );
        self.sample("rampart_watch_streams", &[], open);
    }

    /// `rampart_connections_throttled_total`.
    pub fn throttled(&mut self, total: u64) {
        self.family(
            "rampart_connections_throttled_total",
            "counter",
            "Connections paused for making more failing calls a second than --max-failed-calls-per-sec.",
        );
        self.sample("rampart_connections_throttled_total", &[], total);
    }

    /// `rampart_connections_open` and `rampart_connections_refused_total`.
    pub fn connections(&mut self, open: u64, refused: u64) {
        self.family(
            "rampart_connections_open",
            "gauge",
            "Client connections open now.",
        );
        self.sample("rampart_connections_open", &[], open);
        self.family(
            "rampart_connections_refused_total",
            "counter",
            "Connections closed as soon as accepted because --max-connections were open already.",
        );
        self.sample("rampart_connections_refused_total", &[], refused);
    }

    /// `rampart_store_writable` and `rampart_store_free_bytes` (the latter
    /// only when the free space could be read).
    pub fn store_space(&mut self, free: Option<u64>, writable: bool) {
        self.family(
            "rampart_store_writable",
            "gauge",
            "1 while the store takes writes; 0 while they are refused (the data dir's filesystem below --min-free-space, or the store closed after a failed write).",
        );
        self.sample("rampart_store_writable", &[], u8::from(writable));
        if let Some(free) = free {
            self.family(
                "rampart_store_free_bytes",
                "gauge",
                "Bytes free (for rampart's user) on the data dir's filesystem.",
            );
            self.sample("rampart_store_free_bytes", &[], free);
        }
    }

    /// A replica's lag, reconnects and re-bootstraps.
    pub fn replica(&mut self, r: ReplicaGauges) {
        self.family(
            "rampart_replica_lag_revisions",
            "gauge",
            "Revisions the leader has that this replica has not applied yet.",
        );
        self.sample("rampart_replica_lag_revisions", &[], r.lag_revisions);
        self.family(
            "rampart_replica_lag_seconds",
            "gauge",
            "Age of the change being applied when it was applied; 0 once caught up.",
        );
        self.sample("rampart_replica_lag_seconds", &[], r.lag_seconds);
        self.family(
            "rampart_replica_reconnects_total",
            "counter",
            "Times this replica lost its leader and reconnected.",
        );
        self.sample("rampart_replica_reconnects_total", &[], r.reconnects);
        self.family(
            "rampart_replica_rebootstraps_total",
            "counter",
            "Times this replica bootstrapped again from an Export.",
        );
        self.sample("rampart_replica_rebootstraps_total", &[], r.rebootstraps);
    }
}
