//! The permission catalog: the deployment's list of valid permissions.
//!
//! An entry is a path whose segments may be parameters: `?ROLE?` takes any one
//! segment, and as the last segment `?PATH*?` takes one or more. The admin
//! permissions that rampart itself checks (`ACM:...`) are built into every
//! catalog. This module only answers "does the catalog cover this path or
//! grant?" plainly; `policy/` compiles the same answer into a trie.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use super::ids::truncate;
use super::permission::{GrantPattern, PathError, PatternSegment, SEPARATOR, segment_char};

/// Whether an entry is ready for use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stability {
    #[default]
    Stable,
    /// Still in development (reflex's `**` headings).
    Preview,
    /// Going away (caosdb's `SERVERLOGS:RETRIEVE`).
    Deprecated,
}

impl Stability {
    /// `stable`, `preview` or `deprecated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stability::Stable => "stable",
            Stability::Preview => "preview",
            Stability::Deprecated => "deprecated",
        }
    }

    /// Parses `stable`, `preview` or `deprecated`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stable" => Some(Stability::Stable),
            "preview" => Some(Stability::Preview),
            "deprecated" => Some(Stability::Deprecated),
            _ => None,
        }
    }
}

/// One segment of a catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CatalogSegment {
    Literal(Arc<str>),
    /// `?NAME?`: any one segment.
    Param(Arc<str>),
    /// `?NAME*?`, last only: one or more segments.
    Rest(Arc<str>),
}

/// A catalog entry's pattern, e.g. `ACM:USER:DELETE:?REALM?:?USER?`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CatalogPattern {
    text: Arc<str>,
    segments: Arc<[CatalogSegment]>,
}

fn param_name(segment: &str) -> Option<(&str, bool)> {
    let inner = segment.strip_prefix('?')?.strip_suffix('?')?;
    let (name, rest) = match inner.strip_suffix('*') {
        Some(name) => (name, true),
        None => (inner, false),
    };
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some((name, rest))
}

impl CatalogPattern {
    /// Parses an entry such as `SCRIPTING:EXECUTE:?PATH*?`.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        // Reuse the path limits; parameters are checked segment by segment.
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.len() > super::permission::MAX_PATH_BYTES {
            return Err(PathError::TooLong(truncate(text)));
        }
        let parts: Vec<&str> = text.split(SEPARATOR).collect();
        if parts.len() > super::permission::MAX_SEGMENTS {
            return Err(PathError::TooManySegments(truncate(text)));
        }
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(PathError::EmptySegment(truncate(text)));
            }
            if part.starts_with('?') {
                let Some((name, rest)) = param_name(part) else {
                    return Err(PathError::BadParameter {
                        path: truncate(text),
                        segment: truncate(part),
                    });
                };
                if rest && i != last {
                    return Err(PathError::RestNotLast(truncate(text)));
                }
                segments.push(if rest {
                    CatalogSegment::Rest(Arc::from(name))
                } else {
                    CatalogSegment::Param(Arc::from(name))
                });
            } else {
                if let Some(ch) = part
                    .chars()
                    .find(|c| !c.is_ascii() || !segment_char(*c as u8))
                {
                    return Err(PathError::BadChar {
                        path: truncate(text),
                        ch,
                    });
                }
                segments.push(CatalogSegment::Literal(Arc::from(*part)));
            }
        }
        Ok(Self {
            text: Arc::from(text),
            segments: segments.into(),
        })
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments.
    pub fn segments(&self) -> &[CatalogSegment] {
        &self.segments
    }

    /// The entry with parameter names erased (`a:?:?*`): two entries of the
    /// same shape cover exactly the same paths.
    pub fn shape(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                CatalogSegment::Literal(lit) => &**lit,
                CatalogSegment::Param(_) => "?",
                CatalogSegment::Rest(_) => "?*",
            })
            .collect();
        parts.join(":")
    }

    /// The path this entry names exactly, when it has no parameters.
    pub fn as_exact(&self) -> Option<&str> {
        self.segments
            .iter()
            .all(|s| matches!(s, CatalogSegment::Literal(_)))
            .then_some(&*self.text)
    }

    /// Whether the entry covers the permission `path`.
    pub fn covers_path(&self, path: &str) -> bool {
        let mut parts = path.split(SEPARATOR);
        for segment in self.segments.iter() {
            match segment {
                CatalogSegment::Rest(_) => return parts.next().is_some(),
                CatalogSegment::Param(_) => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                CatalogSegment::Literal(lit) => {
                    if parts.next() != Some(&**lit) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// Whether some permission that `grant` matches is covered by this entry,
    /// i.e. the grant names at least one permission this entry allows.
    pub fn overlaps(&self, grant: &GrantPattern) -> bool {
        let g = grant.segments();
        let c = &self.segments;
        let mut i = 0;
        loop {
            match (g.get(i), c.get(i)) {
                // Both ended together: the grant names exactly an entry path.
                (None, None) => return !grant.has_star(),
                // The grant's `*` takes whatever the entry has left (one or more).
                (None, Some(_)) => return grant.has_star(),
                // The entry ended while the grant goes on.
                (Some(_), None) => return false,
                (Some(_), Some(CatalogSegment::Rest(_))) => return true,
                (Some(PatternSegment::Literal(a)), Some(CatalogSegment::Literal(b))) if a != b => {
                    return false;
                }
                _ => i += 1,
            }
        }
    }
}

impl TryFrom<String> for CatalogPattern {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, PathError> {
        Self::parse(&value)
    }
}

impl From<CatalogPattern> for String {
    fn from(value: CatalogPattern) -> String {
        value.text.to_string()
    }
}

impl fmt::Display for CatalogPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CatalogPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CatalogEntry {
    pub pattern: CatalogPattern,
    pub category: String,
    pub description: String,
    pub stability: Stability,
    /// Built into every catalog (the `ACM:...` admin permissions).
    pub builtin: bool,
}

/// Why a catalog could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogError {
    #[error("catalog entry `{0}` is listed twice")]
    Duplicate(String),
    #[error(
        "catalog entry `{0}` covers the same permissions as `{1}` (only parameter names differ)"
    )]
    SameShape(String, String),
}

/// The admin permissions rampart checks, after caosdb's `ACM:` scheme.
pub const ADMIN_PERMISSIONS: &[(&str, &str)] = &[
    ("ACM:ROLE:INSERT", "Create a role"),
    ("ACM:ROLE:DELETE:?ROLE?", "Delete a role"),
    (
        "ACM:ROLE:UPDATE:PERMISSIONS:?ROLE?",
        "Set the grants of a role",
    ),
    (
        "ACM:ROLE:UPDATE:DESCRIPTION:?ROLE?",
        "Update the description of a role",
    ),
    ("ACM:ROLE:ASSIGN:?ROLE?", "Assign a role to a user or group"),
    (
        "ACM:ROLE:RETRIEVE:PERMISSIONS:?ROLE?",
        "Read the grants of a role",
    ),
    (
        "ACM:ROLE:RETRIEVE:DESCRIPTION:?ROLE?",
        "Read the description of a role",
    ),
    ("ACM:USER:INSERT", "Add a user to the tenant"),
    ("ACM:USER:DELETE:?USER?", "Remove a user from the tenant"),
    (
        "ACM:USER:UPDATE:STATUS:?USER?",
        "Mark a user active or inactive",
    ),
    ("ACM:USER:UPDATE:ROLES:?USER?", "Change the roles of a user"),
    (
        "ACM:USER:UPDATE:INFO:?USER?",
        "Update the email and display name of a user",
    ),
    (
        "ACM:USER:UPDATE:ATTRIBUTES:?USER?",
        "Set the attributes of a user (which admin permission templates may read)",
    ),
    ("ACM:USER:RETRIEVE:INFO:?USER?", "Read the info of a user"),
    ("ACM:USER:RETRIEVE:ROLES:?USER?", "Read the roles of a user"),
    ("ACM:GROUP:INSERT", "Create a user group"),
    ("ACM:GROUP:DELETE:?GROUP?", "Delete a user group"),
    (
        "ACM:GROUP:UPDATE:MEMBERS:?GROUP?",
        "Add or remove members of a user group",
    ),
    (
        "ACM:GROUP:UPDATE:DESCRIPTION:?GROUP?",
        "Update the description of a user group",
    ),
    (
        "ACM:GROUP:RETRIEVE:?GROUP?",
        "Read a user group and its members",
    ),
    ("ACM:TENANT:UPDATE:SETTINGS", "Change the tenant's settings"),
    ("ACM:AUDIT:RETRIEVE", "Read the audit log"),
];

/// The category of the built-in admin permissions.
pub const ADMIN_CATEGORY: &str = "rampart administration";

/// The deployment's permission catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    by_text: HashMap<Arc<str>, usize>,
    /// Entries by [`CatalogPattern::shape`], to refuse entries that differ
    /// only in parameter names.
    by_shape: HashMap<String, usize>,
    /// Entries by their first literal segment, to keep lookups short.
    by_first: HashMap<Arc<str>, Vec<usize>>,
    /// Entries whose first segment is a parameter.
    param_first: Vec<usize>,
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}
impl Eq for Catalog {}

impl Catalog {
    /// A catalog holding only the built-in admin permissions.
    pub fn with_builtins() -> Self {
        let mut catalog = Catalog::default();
        for (text, description) in ADMIN_PERMISSIONS {
            // INVARIANT: the built-in texts are valid catalog patterns (tested below).
            if let Ok(pattern) = CatalogPattern::parse(text) {
                catalog.push(CatalogEntry {
                    pattern,
                    category: ADMIN_CATEGORY.to_owned(),
                    description: (*description).to_owned(),
                    stability: Stability::Stable,
                    builtin: true,
                });
            }
        }
        catalog
    }

    fn push(&mut self, entry: CatalogEntry) {
        let idx = self.entries.len();
        self.by_text.insert(Arc::clone(&entry.pattern.text), idx);
        self.by_shape.insert(entry.pattern.shape(), idx);
        match entry.pattern.segments.first() {
            Some(CatalogSegment::Literal(first)) => self
                .by_first
                .entry(Arc::clone(first))
                .or_default()
                .push(idx),
            _ => self.param_first.push(idx),
        }
        self.entries.push(entry);
    }

    /// Adds an entry. Restating a built-in entry updates its category,
    /// description and stability; naming a user entry twice, or an entry of
    /// the same shape as another (only parameter names differ), is an error.
    pub fn define(&mut self, entry: CatalogEntry) -> Result<(), CatalogError> {
        if let Some(&idx) = self.by_shape.get(&entry.pattern.shape()) {
            let existing = &mut self.entries[idx];
            if existing.pattern.text != entry.pattern.text {
                return Err(CatalogError::SameShape(
                    entry.pattern.as_str().to_owned(),
                    existing.pattern.as_str().to_owned(),
                ));
            }
            if !existing.builtin {
                return Err(CatalogError::Duplicate(entry.pattern.as_str().to_owned()));
            }
            existing.category = entry.category;
            existing.description = entry.description;
            existing.stability = entry.stability;
            return Ok(());
        }
        self.push(entry);
        Ok(())
    }

    /// Sets an entry's stability; false if there is no such entry.
    pub fn set_stability(&mut self, text: &str, stability: Stability) -> bool {
        match self.by_text.get(text) {
            Some(&i) => {
                self.entries[i].stability = stability;
                true
            }
            None => false,
        }
    }

    /// Removes a user-defined entry; false if there is none (built-ins stay).
    pub fn remove(&mut self, text: &str) -> bool {
        match self.by_text.get(text) {
            Some(&i) if !self.entries[i].builtin => {
                let entries = std::mem::take(&mut self.entries);
                *self = Catalog::default();
                for (j, e) in entries.into_iter().enumerate() {
                    if j != i {
                        self.push(e);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Every entry, built-ins first, then in definition order.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// The entry with exactly this text.
    pub fn get(&self, text: &str) -> Option<&CatalogEntry> {
        self.by_text.get(text).map(|&i| &self.entries[i])
    }

    fn candidates<'a>(
        &'a self,
        first: Option<&str>,
    ) -> impl Iterator<Item = &'a CatalogEntry> + 'a {
        let literal: &[usize] = match first {
            Some(first) => self.by_first.get(first).map(Vec::as_slice).unwrap_or(&[]),
            None => &[],
        };
        let all: Box<dyn Iterator<Item = usize>> = match first {
            Some(_) => Box::new(literal.iter().chain(self.param_first.iter()).copied()),
            None => Box::new(0..self.entries.len()),
        };
        all.map(|i| &self.entries[i])
    }

    /// The first entry that covers `path`, if any.
    pub fn covering(&self, path: &str) -> Option<&CatalogEntry> {
        let first = path.split(SEPARATOR).next();
        // Prefer an exact entry, then the earliest defined parameterised one.
        if let Some(entry) = self.get(path) {
            return Some(entry);
        }
        self.candidates(first).find(|e| e.pattern.covers_path(path))
    }

    /// Whether `grant` names at least one permission the catalog covers.
    pub fn covers_grant(&self, grant: &GrantPattern) -> bool {
        let first = match grant.segments().first() {
            Some(PatternSegment::Literal(first)) => Some(&**first),
            // `{subject}` first, or `*` alone: any entry may overlap.
            _ => None,
        };
        self.candidates(first).any(|e| e.pattern.overlaps(grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> CatalogEntry {
        CatalogEntry {
            pattern: CatalogPattern::parse(text).unwrap(),
            category: "c".into(),
            description: String::new(),
            stability: Stability::Stable,
            builtin: false,
        }
    }

    fn catalog(texts: &[&str]) -> Catalog {
        let mut c = Catalog::with_builtins();
        for t in texts {
            c.define(entry(t)).unwrap();
        }
        c
    }

    #[test]
    fn builtins_parse() {
        assert_eq!(
            Catalog::with_builtins().entries().len(),
            ADMIN_PERMISSIONS.len()
        );
    }

    #[test]
    fn parameters_cover_one_segment_rest_covers_many() {
        let c = catalog(&[
            "ACM:USER:DELETE:?REALM?:?USER?",
            "SCRIPTING:EXECUTE:?PATH*?",
            "view_cases",
        ]);
        assert!(c.covering("ACM:USER:DELETE:local:alice").is_some());
        assert!(
            c.covering("ACM:USER:DELETE:local").is_some(),
            "built-in ACM:USER:DELETE:?USER?"
        );
        assert!(c.covering("ACM:USER:DELETE:a:b:c").is_none());
        assert!(c.covering("SCRIPTING:EXECUTE:my_scripts:a:b").is_some());
        assert!(
            c.covering("SCRIPTING:EXECUTE").is_none(),
            "rest takes one or more"
        );
        assert!(c.covering("view_cases").is_some());
        assert!(c.covering("view_case").is_none());
    }

    #[test]
    fn grants_are_covered_when_they_overlap_an_entry() {
        let c = catalog(&[
            "ACM:USER:DELETE:?REALM?:?USER?",
            "SCRIPTING:EXECUTE:?PATH*?",
            "documents:view",
        ]);
        let covers = |g: &str| c.covers_grant(&GrantPattern::parse(g).unwrap());
        assert!(covers("ACM:*"));
        assert!(covers("*"));
        assert!(covers("SCRIPTING:EXECUTE:my_scripts:*"));
        assert!(covers("SCRIPTING:EXECUTE:x"));
        assert!(covers("ACM:USER:DELETE:local:{subject}"));
        assert!(covers("ACM:USER:UPDATE:INFO:{subject}"));
        assert!(covers("documents:view"));
        assert!(!covers("documents:view:*"));
        assert!(!covers("documents:edit"));
        assert!(!covers("SCRIPTING:RUN:x"));
        assert!(!covers("unknown:*"));
    }

    #[test]
    fn duplicates_are_refused_but_builtins_may_be_restated() {
        let mut c = catalog(&["a:b"]);
        assert_eq!(
            c.define(entry("a:b")),
            Err(CatalogError::Duplicate("a:b".into()))
        );
        let mut restated = entry("ACM:ROLE:INSERT");
        restated.category = "Role Management".into();
        c.define(restated).unwrap();
        assert_eq!(
            c.get("ACM:ROLE:INSERT").unwrap().category,
            "Role Management"
        );
        assert_eq!(c.entries().len(), ADMIN_PERMISSIONS.len() + 1);
        assert!(matches!(
            c.define(entry("ACM:ROLE:DELETE:?NAME?")),
            Err(CatalogError::SameShape(..))
        ));
        assert!(matches!(c.define(entry("a:?X?")), Ok(())));
        assert!(matches!(
            c.define(entry("a:?Y?")),
            Err(CatalogError::SameShape(..))
        ));
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(matches!(
            CatalogPattern::parse("a:?X*?:b"),
            Err(PathError::RestNotLast(_))
        ));
        assert!(matches!(
            CatalogPattern::parse("a:?X"),
            Err(PathError::BadParameter { .. })
        ));
        assert!(matches!(
            CatalogPattern::parse("a:??"),
            Err(PathError::BadParameter { .. })
        ));
        assert!(matches!(
            CatalogPattern::parse("a:*"),
            Err(PathError::BadChar { .. })
        ));
    }
}
