//! Checkpoints in `rampart_checkpoint`: part 0 is the header (revision,
//! catalog, bridge grants, tenant count), part i+1 is tenant i's image, so
//! no single value grows with the whole state.

use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};

use super::{StoreError, corrupt, int, pg};
use crate::model::{CatalogEntry, Grant, State};
use crate::store::image::{assemble, decode_tenant, encode_tenant};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    revision: u64,
    catalog: Vec<CatalogEntry>,
    bridges_grants: Vec<Grant>,
    tenants: usize,
}

/// The parts of a checkpoint of `state`, in order.
pub(super) fn encode(state: &State) -> Result<Vec<Vec<u8>>, StoreError> {
    let unencodable = |e: serde_json::Error| {
        StoreError::Backend(format!(
            "the checkpoint at revision {} cannot be encoded: {e}",
            state.revision
        ))
    };
    let header = Header {
        revision: state.revision,
        catalog: state.catalog.entries().to_vec(),
        bridges_grants: state.bridges_grants.to_vec(),
        tenants: state.tenants.len(),
    };
    let mut parts = vec![serde_json::to_vec(&header).map_err(unencodable)?];
    for tenant in state.tenants.values() {
        parts.push(encode_tenant(tenant).map_err(unencodable)?);
    }
    Ok(parts)
}

/// Writes `parts` as the checkpoint at `revision`.
pub(super) fn insert(
    tx: &mut impl GenericClient,
    target: &str,
    revision: i64,
    parts: &[Vec<u8>],
) -> Result<(), StoreError> {
    let numbers: Vec<i32> = (0..parts.len())
        .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    let bodies: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    tx.execute(
        "INSERT INTO rampart_checkpoint (revision, part, body) SELECT $1, * FROM unnest($2::integer[], $3::bytea[])",
        &[&revision, &numbers, &bodies],
    )
    .map_err(|e| pg(target, e))?;
    Ok(())
}

/// The state of the checkpoint at `revision` (0: none, the empty state).
pub(super) fn read(
    tx: &mut impl GenericClient,
    target: &str,
    revision: u64,
) -> Result<State, StoreError> {
    if revision == 0 {
        return Ok(State::new());
    }
    let at = |part: i32| format!("checkpoint {revision} part {part}");
    let rows = tx
        .query(
            "SELECT part, body FROM rampart_checkpoint WHERE revision = $1 ORDER BY part",
            &[&int("revision", revision)?],
        )
        .map_err(|e| pg(target, e))?;
    let Some((first, rest)) = rows.split_first() else {
        return Err(corrupt(format!("checkpoint {revision}"), "it is missing"));
    };
    let header: Header =
        serde_json::from_slice(first.get::<_, &[u8]>(1)).map_err(|e| corrupt(at(0), e))?;
    if first.get::<_, i32>(0) != 0 || header.revision != revision || header.tenants != rest.len() {
        return Err(corrupt(
            format!("checkpoint {revision}"),
            format!(
                "the header says revision {} with {} tenants, {} tenant parts are stored",
                header.revision,
                header.tenants,
                rest.len()
            ),
        ));
    }
    let parts: Vec<(i32, &[u8])> = rest.iter().map(|row| (row.get(0), row.get(1))).collect();
    let tenants = crate::store::parallel::in_order(&parts, |i, (part, body)| {
        if usize::try_from(*part).ok() != Some(i + 1) {
            return Err(corrupt(at(*part), format!("expected part {}", i + 1)));
        }
        decode_tenant(body).map_err(|e| corrupt(at(*part), e))
    })?;
    assemble(revision, header.catalog, header.bridges_grants, tenants)
        .map_err(|e| corrupt(format!("checkpoint {revision}"), e))
}

/// Writes the checkpoint of `state` beside the current one and moves
/// the pointer to it, unless a newer one or an install got there first.
pub(super) fn write(
    c: &mut Client,
    target: &str,
    state: &State,
    revision: i64,
) -> Result<(), StoreError> {
    let parts = encode(state)?;
    // The meta row is locked only to move the pointer, at the end.
    let mut tx = c.transaction().map_err(|e| pg(target, e))?;
    tx.execute(
        "DELETE FROM rampart_checkpoint WHERE revision = $1",
        &[&revision],
    )
    .map_err(|e| pg(target, e))?;
    insert(&mut tx, target, revision, &parts)?;
    let moved = tx
        .execute(
            "UPDATE rampart_meta SET checkpoint = $1 WHERE checkpoint < $1 AND revision >= $1",
            &[&revision],
        )
        .map_err(|e| pg(target, e))?;
    if moved == 0 {
        // A newer checkpoint or an install got there first.
        return tx.rollback().map_err(|e| pg(target, e));
    }
    tx.execute(
        "DELETE FROM rampart_checkpoint WHERE revision < $1",
        &[&revision],
    )
    .map_err(|e| pg(target, e))?;
    tx.commit().map_err(|e| pg(target, e))
}
