//! The rows every write reads or moves: the meta row (the head, the
//! compare-and-set), changelog rows, and the counters' conversions.

use postgres::GenericClient;
use postgres::error::SqlState;

use super::pg;
use crate::store::{Change, Outcomes, StoreError, decode_change, encode_audit};

/// The channel a commit notifies with its new head revision (as text);
/// nodes LISTEN on it to follow without waiting for their next poll.
pub(super) const HEAD_CHANNEL: &str = "rampart_head";

/// The statement that moves the head: `UPDATE rampart_meta SET {set}`,
/// notifying [`HEAD_CHANNEL`] of the new revision in the same statement
/// (PostgreSQL delivers it when the transaction commits, never before).
pub(super) fn moving_head(set: &str) -> String {
    format!("UPDATE rampart_meta SET {set} RETURNING pg_notify('{HEAD_CHANNEL}', revision::text)")
}

pub(super) fn corrupt(at: impl Into<String>, why: impl ToString) -> StoreError {
    StoreError::Corrupt {
        at: at.into(),
        why: why.to_string(),
    }
}

/// A u64 counter as a PostgreSQL bigint.
pub(super) fn int(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| {
        StoreError::Backend(format!("{what} {v} is past what PostgreSQL's bigint holds"))
    })
}

/// A bigint read back as a u64 counter.
fn uint(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("rampart_meta.{what}"), format!("negative: {v}")))
}

/// The meta row.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) revision: u64,
    pub(super) first_retained: u64,
    pub(super) next_audit_seq: u64,
    pub(super) checkpoint: u64,
    pub(super) history: String,
    pub(super) bootstrapping: Option<u64>,
}

pub(super) const META: &str = "SELECT revision, first_retained, next_audit_seq, checkpoint, history, bootstrapping FROM rampart_meta";

pub(super) fn meta_of(row: &postgres::Row) -> Result<Meta, StoreError> {
    Ok(Meta {
        revision: uint("revision", row.get(0))?,
        first_retained: uint("first_retained", row.get(1))?,
        next_audit_seq: uint("next_audit_seq", row.get(2))?,
        checkpoint: uint("checkpoint", row.get(3))?,
        history: row.get(4),
        bootstrapping: row
            .get::<_, Option<i64>>(5)
            .map(|v| uint("bootstrapping", v))
            .transpose()?,
    })
}

/// Where a revision lands on a head of `have`: the next one, or an error.
/// One at or below the head was taken by another writer (`Conflict`);
/// revision 0 or one past the next leaves a gap (`OutOfOrder`).
pub(super) fn follows(have: u64, got: u64) -> Result<(), StoreError> {
    if Some(got) == have.checked_add(1) {
        Ok(())
    } else if got >= 1 && got <= have {
        Err(StoreError::Conflict { have, got })
    } else {
        Err(StoreError::OutOfOrder { have, got })
    }
}

/// Locks the meta row for a write that moves the head.
pub(super) fn lock_meta(tx: &mut impl GenericClient, target: &str) -> Result<Meta, StoreError> {
    meta_of(
        &tx.query_one(&format!("{META} FOR UPDATE"), &[])
            .map_err(|e| pg(target, e))?,
    )
}

/// Inserts changelog rows; a revision another writer took meanwhile is
/// `Conflict` (the meta lock makes that a bug, the key catches it).
pub(super) fn insert_changes(
    tx: &mut impl GenericClient,
    target: &str,
    have: u64,
    rows: &[(i64, Vec<u8>)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let revisions: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
    tx.execute(
        "INSERT INTO rampart_changelog (revision, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&revisions, &bodies],
    )
    .map_err(|e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict {
                have,
                got: u64::try_from(revisions[0]).unwrap_or(0),
            }
        } else {
            pg(target, e)
        }
    })?;
    Ok(())
}

/// A changelog row as a [`Change`].
pub(super) fn change_of(row: &postgres::Row) -> Result<Change, StoreError> {
    let revision: i64 = row.get(0);
    let revision = u64::try_from(revision)
        .map_err(|_| corrupt("rampart_changelog", format!("negative revision {revision}")))?;
    let body: &[u8] = row.get(1);
    decode_change(revision, body)
}

/// The statements of one batch (changelog rows, audit records, the head),
/// on a transaction already open: the meta row locked first, each applied
/// revision checked to follow the head.
pub(super) fn write_batch(
    tx: &mut impl GenericClient,
    target: &str,
    batch: &[Outcomes],
    changes: &[(i64, Vec<u8>)],
) -> Result<(), StoreError> {
    let meta = lock_meta(tx, target)?;
    let mut have = meta.revision;
    let mut seq = meta.next_audit_seq;
    let mut audits: Vec<(i64, Vec<u8>)> = Vec::with_capacity(batch.len());
    for entry in batch {
        let mut record = match entry {
            Outcomes::Applied {
                revision, audit, ..
            } => {
                follows(have, *revision)?;
                have = *revision;
                let mut audit = audit.clone();
                audit.revision = *revision;
                audit
            }
            Outcomes::Refused(audit) => audit.clone(),
        };
        record.seq = seq;
        audits.push((int("seq", seq)?, encode_audit(&record)?));
        seq += 1;
    }
    insert_changes(tx, target, meta.revision, changes)?;
    if !audits.is_empty() {
        let seqs: Vec<i64> = audits.iter().map(|r| r.0).collect();
        let bodies: Vec<&[u8]> = audits.iter().map(|r| r.1.as_slice()).collect();
        tx.execute(
            "INSERT INTO rampart_audit (seq, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[&seqs, &bodies],
        )
        .map_err(|e| pg(target, e))?;
    }
    tx.execute(
        &moving_head("revision = $1, next_audit_seq = $2"),
        &[&int("revision", have)?, &int("seq", seq)?],
    )
    .map_err(|e| pg(target, e))?;
    Ok(())
}
