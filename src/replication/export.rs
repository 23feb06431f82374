//! The export file: the whole state at one revision, as JSON lines, and its
//! digest.
//!
//! ```text
//! {"format":"rampart-export","version":1,"revision":42,"catalog":[…],"bridges_grants":[…],"tenants":2}
//! {"id":"acme","name":"Acme",…}        one line per tenant, in id order
//! {"id":"globex",…}
//! ```
//!
//! The lines are the checkpoint image (`store::image`), so an export is
//! canonical: two equal states give the same bytes. The digest is the
//! SHA-256 of those bytes, which makes it the state digest too: equal on
//! two nodes at the same revision, and different as soon as one grant
//! differs. The history id is not in the file (an imported backup starts a
//! new history and must still export the same bytes).
//!
//! An export of some tenants only (`ExportRequest.tenants`, a scoped
//! replica's bootstrap) has the same header, which also names them
//! (`"scope":["acme","globex"]`, sorted), and only their lines. Its digest
//! is the digest of that file: equal to the state digest of a replica that
//! holds those tenants at that revision (`GetState` on it), never to the
//! whole state's. A full export has no `scope` key, so its bytes are as
//! they always were; a build that does not know the key refuses a filtered
//! file rather than read it as a whole state.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::engine::Scope;
use crate::model::{CatalogEntry, Grant, State, TenantId};
use crate::store::image::{self, ImageError};

/// The first line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    revision: u64,
    catalog: Vec<CatalogEntry>,
    bridges_grants: Vec<Grant>,
    /// How many tenant lines follow.
    tenants: u64,
    /// The tenants an export of some tenants only was asked for (sorted;
    /// some may not exist); absent in a full export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    scope: Vec<TenantId>,
}

const FORMAT: &str = "rampart-export";
const VERSION: u32 = 1;

/// Why an export cannot be written or read.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot encode {0}")]
    Encode(String),
    #[error("export line {line}: {why}")]
    Line { line: u64, why: String },
    #[error("the export ends early: {0}")]
    Truncated(String),
    #[error("the export's digest is {stated} but its content hashes to {actual}")]
    Digest { stated: String, actual: String },
    #[error("the export is not a valid state: {0}")]
    Image(#[from] ImageError),
}

/// The lines of the export of `state`, each ending in `\n`, produced one at
/// a time (a tenant's line is built only when it is reached).
pub fn lines(state: &State) -> impl Iterator<Item = Result<Vec<u8>, ExportError>> + '_ {
    lines_in(state, None)
}

/// The lines of the export of `state`'s tenants in `scope` (`None`: every
/// tenant, as [`lines`]).
pub fn lines_in<'a>(
    state: &'a State,
    scope: Option<&'a Scope>,
) -> impl Iterator<Item = Result<Vec<u8>, ExportError>> + 'a {
    let held = move |id: &TenantId| scope.is_none_or(|s| s.holds(id.as_str()));
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        revision: state.revision,
        catalog: state.catalog.entries().to_vec(),
        bridges_grants: state.bridges_grants.to_vec(),
        tenants: state.tenants.keys().filter(|id| held(id)).count() as u64,
        scope: scope.map(|s| s.tenants().to_vec()).unwrap_or_default(),
    };
    let first =
        serde_json::to_vec(&header).map_err(|e| ExportError::Encode(format!("the header: {e}")));
    std::iter::once(first)
        .chain(
            state
                .tenants
                .iter()
                .filter(move |(id, _)| held(id))
                .map(|(_, t)| {
                    image::encode_tenant(t)
                        .map_err(|e| ExportError::Encode(format!("tenant `{}`: {e}", t.id)))
                }),
        )
        .map(|line| {
            line.map(|mut l| {
                l.push(b'\n');
                l
            })
        })
}

/// `sha256:<hex>` of what `hasher` was fed.
pub fn format_digest(hasher: Sha256) -> String {
    let digest = hasher.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The state digest: `sha256:<hex>` of the export of `state`.
pub fn digest(state: &State) -> Result<String, ExportError> {
    digest_in(state, None)
}

/// `sha256:<hex>` of the export of `state`'s tenants in `scope` (`None`:
/// the state digest, as [`digest`]).
pub fn digest_in(state: &State, scope: Option<&Scope>) -> Result<String, ExportError> {
    let mut hasher = Sha256::new();
    for line in lines_in(state, scope) {
        hasher.update(line?);
    }
    Ok(format_digest(hasher))
}

/// Reads an export fed in arbitrary chunks, and checks it against its
/// digest.
#[derive(Default)]
pub struct Reader {
    hasher: Sha256,
    /// Bytes of a line not yet complete.
    partial: Vec<u8>,
    line: u64,
    header: Option<Header>,
    tenants: Vec<crate::model::Tenant>,
    /// One pattern pool for every tenant read (`model::intern`).
    patterns: crate::model::intern::SharedPatterns,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("line", &self.line)
            .field("tenants", &self.tenants.len())
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the file.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ExportError> {
        self.hasher.update(data);
        while let Some(end) = data.iter().position(|b| *b == b'\n') {
            let (head, rest) = data.split_at(end);
            if self.partial.is_empty() {
                self.take_line(head)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.take_line(&line)?;
            }
            data = rest.get(1..).unwrap_or_default();
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }

    fn take_line(&mut self, line: &[u8]) -> Result<(), ExportError> {
        self.line += 1;
        let at = self.line;
        let bad = |why: String| ExportError::Line { line: at, why };
        match &self.header {
            None => {
                let header: Header =
                    serde_json::from_slice(line).map_err(|e| bad(format!("not a header: {e}")))?;
                if header.format != FORMAT || header.version != VERSION {
                    return Err(bad(format!(
                        "format `{}` version {}; this build reads `{FORMAT}` version {VERSION}",
                        header.format, header.version
                    )));
                }
                self.header = Some(header);
            }
            Some(header) => {
                if self.tenants.len() as u64 >= header.tenants {
                    return Err(bad(format!(
                        "the header announced {} tenants; this is one more",
                        header.tenants
                    )));
                }
                let tenant = crate::model::intern::interning_with(&self.patterns, || {
                    image::decode_tenant(line)
                })
                .map_err(|e| bad(e.to_string()))?;
                self.tenants.push(tenant);
            }
        }
        Ok(())
    }

    /// The state read, after checking it is complete and hashes to
    /// `stated` (when given), and its digest.
    pub fn finish(self, stated: Option<&str>) -> Result<(State, String), ExportError> {
        if !self.partial.is_empty() {
            return Err(ExportError::Truncated(format!(
                "line {} has no end",
                self.line + 1
            )));
        }
        let Some(header) = self.header else {
            return Err(ExportError::Truncated("no header".into()));
        };
        if self.tenants.len() as u64 != header.tenants {
            return Err(ExportError::Truncated(format!(
                "{} of {} tenants",
                self.tenants.len(),
                header.tenants
            )));
        }
        let actual = format_digest(self.hasher);
        if let Some(stated) = stated
            && stated != actual
        {
            return Err(ExportError::Digest {
                stated: stated.to_owned(),
                actual,
            });
        }
        let state = image::assemble(
            header.revision,
            header.catalog,
            header.bridges_grants,
            self.tenants,
        )?;
        Ok((state, actual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy_file;

    fn demo() -> State {
        let mut s = policy_file::load_str(crate::model::QUICKSTART_POLICY).unwrap();
        s.revision = 7;
        s
    }

    fn export(state: &State) -> Vec<u8> {
        lines(state).flat_map(Result::unwrap).collect()
    }

    #[test]
    fn round_trips_in_any_chunking() {
        let state = demo();
        let bytes = export(&state);
        let want = digest(&state).unwrap();
        for size in [1, 7, 4096, bytes.len()] {
            let mut r = Reader::new();
            for chunk in bytes.chunks(size) {
                r.feed(chunk).unwrap();
            }
            let (back, got) = r.finish(Some(&want)).unwrap();
            assert_eq!(back, state, "chunks of {size}");
            assert_eq!(got, want);
            assert_eq!(export(&back), bytes, "canonical: the same bytes again");
        }
    }

    #[test]
    fn refuses_damage_naming_it() {
        let state = demo();
        let bytes = export(&state);
        let want = digest(&state).unwrap();

        let mut r = Reader::new();
        r.feed(&bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(r.finish(None), Err(ExportError::Truncated(_))));

        let mut flipped = bytes.clone();
        let at = flipped.iter().rposition(|b| *b == b'a').unwrap();
        flipped[at] = b'b';
        let mut r = Reader::new();
        let fed = r.feed(&flipped);
        if fed.is_ok() {
            let err = r.finish(Some(&want)).unwrap_err();
            assert!(err.to_string().contains("digest"), "{err}");
        }

        let mut r = Reader::new();
        let err = r.feed(b"{\"format\":\"other\"}\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_filtered_export_holds_the_header_and_the_named_tenants_only() {
        let state = demo();
        let t = |id: &str| TenantId::new(id).unwrap();
        let scope = Scope::new([t("globex"), t("not-yet")]).unwrap();
        let bytes: Vec<u8> = lines_in(&state, Some(&scope))
            .flat_map(Result::unwrap)
            .collect();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(header["tenants"], 1);
        assert_eq!(header["scope"], serde_json::json!(["globex", "not-yet"]));
        assert_eq!(
            header["catalog"],
            serde_json::to_value(state.catalog.entries()).unwrap()
        );
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("{\"id\":\"globex\"")
        );
        // A full export has no `scope` key: its bytes are as before.
        assert!(
            !String::from_utf8(export(&state))
                .unwrap()
                .contains("\"scope\"")
        );

        // It reads back as the state of those tenants, and its digest is
        // the digest of that state exported with the same filter: what a
        // replica holding them reports.
        let mut r = Reader::new();
        r.feed(&bytes).unwrap();
        let (back, got) = r.finish(None).unwrap();
        let mut held = state.clone();
        scope.restrict(&mut held);
        assert_eq!(back, held);
        assert_eq!(got, digest_in(&held, Some(&scope)).unwrap());
        assert_eq!(got, digest_in(&state, Some(&scope)).unwrap());
        assert_ne!(
            got,
            digest(&held).unwrap(),
            "the filter is part of the file"
        );
        assert_ne!(got, digest(&state).unwrap());
    }

    #[test]
    fn digest_tells_states_apart() {
        let a = demo();
        let mut b = demo();
        b.revision += 1;
        assert_ne!(digest(&a).unwrap(), digest(&b).unwrap());
        assert_eq!(digest(&a).unwrap(), digest(&demo()).unwrap());
        assert!(digest(&a).unwrap().starts_with("sha256:"));
    }
}
