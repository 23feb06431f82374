//! Checkpoints in `rampart_checkpoint`: part 0 is the header (format,
//! revision, catalog, bridge grants, tenant count), part i+1 is tenant i's
//! image, so no single value grows with the whole state. Format 2 (written
//! since) keeps tenants as `image::binary` images, which carry their own
//! checksum; format 1 (a header without `format`) as JSON, still read.

use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};

use super::{StoreError, corrupt, int, pg};
use crate::model::{CatalogEntry, Grant, State};
use crate::store::image::{assemble, binary, decode_tenant};

/// The header's `format`: 2, tenant parts are binary images. A header
/// without it is format 1 (JSON parts). A rampart from before formats
/// refuses a header that has one (`deny_unknown_fields`), rather than
/// misreading the parts.
const FORMAT: u32 = 2;

fn format_one() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    #[serde(default = "format_one")]
    format: u32,
    revision: u64,
    catalog: Vec<CatalogEntry>,
    bridges_grants: Vec<Grant>,
    tenants: usize,
}

/// The parts of a checkpoint of `state`, in order.
pub(super) fn encode(state: &State) -> Result<Vec<Vec<u8>>, StoreError> {
    let unencodable = |e: &dyn std::fmt::Display| {
        StoreError::Backend(format!(
            "the checkpoint at revision {} cannot be encoded: {e}",
            state.revision
        ))
    };
    let header = Header {
        format: FORMAT,
        revision: state.revision,
        catalog: state.catalog.entries().to_vec(),
        bridges_grants: state.bridges_grants.to_vec(),
        tenants: state.tenants.len(),
    };
    let mut parts = vec![serde_json::to_vec(&header).map_err(|e| unencodable(&e))?];
    for tenant in state.tenants.values() {
        parts.push(binary::encode_tenant(tenant).map_err(|e| unencodable(&e))?);
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
    if !(1..=FORMAT).contains(&header.format) {
        return Err(corrupt(
            at(0),
            format!(
                "format {}: this rampart reads formats 1 to {FORMAT} (written by a newer rampart?)",
                header.format
            ),
        ));
    }
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
    let patterns = crate::model::intern::SharedPatterns::default();
    let tenants = crate::store::parallel::in_order(&parts, |i, (part, body)| {
        if usize::try_from(*part).ok() != Some(i + 1) {
            return Err(corrupt(at(*part), format!("expected part {}", i + 1)));
        }
        crate::model::intern::interning_with(&patterns, || match header.format {
            1 => decode_tenant(body),
            _ => binary::decode_tenant(body),
        })
        .map_err(|e| corrupt(at(*part), e))
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
