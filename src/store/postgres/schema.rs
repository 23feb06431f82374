//! The PostgreSQL schema: created and migrated by rampart, versioned in
//! `rampart_schema`, and refused when it is newer than this build knows.

use postgres::Client;

use super::{StoreError, pg};
use crate::store::new_history_id;

/// The schema version this build writes and reads.
pub const VERSION: i32 = 1;

/// Serialises schema creation between nodes starting at once (an
/// arbitrary constant: "rampart" in ASCII).
const LOCK: i64 = 0x72_61_6d_70_61_72_74;

/// Version 1: the meta row, the changelog, the audit log, checkpoints.
/// Every JSON value is stored as the bytes the other backends write.
const V1: &str = "
CREATE TABLE rampart_meta (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint NOT NULL,
    first_retained bigint NOT NULL,
    next_audit_seq bigint NOT NULL,
    checkpoint bigint NOT NULL,
    history text NOT NULL,
    bootstrapping bigint
);
CREATE TABLE rampart_changelog (
    revision bigint PRIMARY KEY,
    body bytea NOT NULL
);
CREATE TABLE rampart_audit (
    seq bigint PRIMARY KEY,
    body bytea NOT NULL
);
CREATE TABLE rampart_checkpoint (
    revision bigint NOT NULL,
    part integer NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (revision, part)
);
";

/// Brings the database to [`VERSION`], or refuses one that is newer.
pub fn migrate(client: &mut Client, target: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(|e| pg(target, e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .map_err(|e| pg(target, e))?;
    // Without the server's "already exists, skipping" notice at every start.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS rampart_schema (version integer NOT NULL)",
    )
    .map_err(|e| pg(target, e))?;
    let found: Option<i32> = tx
        .query_opt("SELECT max(version) FROM rampart_schema", &[])
        .map_err(|e| pg(target, e))?
        .and_then(|row| row.get(0));
    match found {
        Some(v) if v > VERSION => {
            return Err(StoreError::SchemaTooNew {
                found: i64::from(v),
                known: i64::from(VERSION),
            });
        }
        Some(_) => {}
        None => {
            tx.batch_execute(V1).map_err(|e| pg(target, e))?;
            tx.execute(
                "INSERT INTO rampart_meta (revision, first_retained, next_audit_seq, checkpoint, history) VALUES (0, 1, 1, 0, $1)",
                &[&new_history_id()],
            )
            .map_err(|e| pg(target, e))?;
            tx.execute(
                "INSERT INTO rampart_schema (version) VALUES ($1)",
                &[&VERSION],
            )
            .map_err(|e| pg(target, e))?;
        }
    }
    tx.commit().map_err(|e| pg(target, e))
}
