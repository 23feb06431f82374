//! The catalog compiled into a segment trie: "which entry covers this path?"
//! in one walk, parameters included.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::model::catalog::{Catalog, CatalogSegment};
use crate::model::permission::SEPARATOR;

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, u32, RandomState>,
    /// `?NAME?`: any one segment.
    param: Option<u32>,
    /// `?NAME*?` ends here: covers one or more further segments (entry index).
    rest: Option<u32>,
    /// An entry ends exactly here (entry index).
    terminal: Option<u32>,
}

/// A compiled catalog.
#[derive(Debug)]
pub struct CatalogIndex {
    nodes: Vec<Node>,
    /// The entries written without a parameter, by their text (a valid
    /// permission path that such an entry covers): each one's number, in
    /// entry order, so a tenant can keep what its grants say about each in
    /// a flat table (`GrantIndex::literal_walk`).
    literals: HashMap<Box<str>, u32, RandomState>,
    /// The same entries' texts, by number.
    literal_paths: Vec<Box<str>>,
}

impl CatalogIndex {
    /// Compiles `catalog`. An earlier entry wins where two cover the same path.
    pub fn build(catalog: &Catalog) -> Self {
        let mut nodes = vec![Node::default()];
        for (idx, entry) in catalog.entries().iter().enumerate() {
            let idx = idx as u32;
            let mut at = 0usize;
            for segment in entry.pattern.segments() {
                let next = match segment {
                    CatalogSegment::Rest(_) => {
                        nodes[at].rest.get_or_insert(idx);
                        break;
                    }
                    CatalogSegment::Param(_) => nodes[at].param,
                    CatalogSegment::Literal(lit) => nodes[at].literal.get(&**lit).copied(),
                };
                at = match next {
                    Some(n) => n as usize,
                    None => {
                        let n = nodes.len() as u32;
                        nodes.push(Node::default());
                        match segment {
                            CatalogSegment::Param(_) => nodes[at].param = Some(n),
                            CatalogSegment::Literal(lit) => {
                                nodes[at].literal.insert(Box::from(&**lit), n);
                            }
                            CatalogSegment::Rest(_) => {}
                        }
                        n as usize
                    }
                };
            }
            if !matches!(
                entry.pattern.segments().last(),
                Some(CatalogSegment::Rest(_))
            ) {
                nodes[at].terminal.get_or_insert(idx);
            }
        }
        let mut literals = HashMap::default();
        let mut literal_paths = Vec::new();
        for entry in catalog.entries() {
            let text = entry.pattern.as_str();
            let literal = entry
                .pattern
                .segments()
                .iter()
                .all(|s| matches!(s, CatalogSegment::Literal(_)));
            // Only a text that is itself a well-formed path: a check that
            // finds its permission here skips validating it.
            if literal
                && smallvec_lite::Segments::parse(text).is_some()
                && !literals.contains_key(text)
            {
                literals.insert(Box::from(text), literal_paths.len() as u32);
                literal_paths.push(Box::from(text));
            }
        }
        Self {
            nodes,
            literals,
            literal_paths,
        }
    }

    /// The number of the parameterless entry whose text is `path`, if one
    /// is: such a path is well formed and covered, with no walk.
    #[inline]
    pub fn literal(&self, path: &str) -> Option<u32> {
        self.literals.get(path).copied()
    }

    /// The texts of the parameterless entries, by number.
    pub fn literal_paths(&self) -> &[Box<str>] {
        &self.literal_paths
    }

    /// The index of an entry that covers `path`, preferring literal segments
    /// over parameters at each step.
    pub fn covering(&self, path: &str) -> Option<usize> {
        let segments: smallvec_lite::Segments<'_> = smallvec_lite::Segments::new(path);
        self.covering_segments(segments.as_slice())
    }

    /// [`CatalogIndex::covering`] for a path already split into segments.
    pub fn covering_segments(&self, segments: &[&str]) -> Option<usize> {
        self.walk(0, segments).map(|i| i as usize)
    }

    fn walk(&self, at: usize, rest: &[&str]) -> Option<u32> {
        let node = self.nodes.get(at)?;
        let Some((first, tail)) = rest.split_first() else {
            return node.terminal;
        };
        if let Some(&next) = node.literal.get(*first)
            && let Some(found) = self.walk(next as usize, tail)
        {
            return Some(found);
        }
        if let Some(next) = node.param
            && let Some(found) = self.walk(next as usize, tail)
        {
            return Some(found);
        }
        node.rest
    }
}

/// Splitting a path into a stack buffer of segments (at most 32, by the
/// path rules), so the hot path does not allocate.
pub mod smallvec_lite {
    use super::SEPARATOR;
    use crate::model::permission::MAX_SEGMENTS;

    pub struct Segments<'a> {
        buf: [&'a str; MAX_SEGMENTS],
        len: usize,
    }

    impl<'a> Segments<'a> {
        /// Splits `path`; segments past the limit are dropped (callers
        /// validate paths before trusting an answer).
        pub fn new(path: &'a str) -> Self {
            let mut buf = [""; MAX_SEGMENTS];
            let mut len = 0;
            for s in path.split(SEPARATOR) {
                if len == MAX_SEGMENTS {
                    break;
                }
                buf[len] = s;
                len += 1;
            }
            Self { buf, len }
        }

        pub fn as_slice(&self) -> &[&'a str] {
            &self.buf[..self.len]
        }

        /// Splits and validates `path` in one pass over its bytes: `None`
        /// if it is not a well-formed permission path (the caller then asks
        /// `validate_path` for the precise error).
        #[inline]
        pub fn parse(path: &'a str) -> Option<Self> {
            use crate::model::permission::{MAX_PATH_BYTES, segment_char};
            let bytes = path.as_bytes();
            if bytes.is_empty() || bytes.len() > MAX_PATH_BYTES {
                return None;
            }
            let mut buf = [""; MAX_SEGMENTS];
            let mut len = 0;
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if b == b':' {
                    if i == start || len == MAX_SEGMENTS {
                        return None;
                    }
                    buf[len] = path.get(start..i)?;
                    len += 1;
                    start = i + 1;
                } else if !segment_char(b) {
                    return None;
                }
            }
            if start == bytes.len() || len == MAX_SEGMENTS {
                return None;
            }
            buf[len] = path.get(start..)?;
            len += 1;
            Some(Self { buf, len })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::{CatalogEntry, CatalogPattern, Stability};

    fn catalog(texts: &[&str]) -> Catalog {
        let mut c = Catalog::with_builtins();
        for t in texts {
            c.define(CatalogEntry {
                pattern: CatalogPattern::parse(t).unwrap(),
                category: String::new(),
                description: String::new(),
                stability: Stability::Stable,
                builtin: false,
            })
            .unwrap();
        }
        c
    }

    #[test]
    fn agrees_with_the_plain_catalog() {
        let c = catalog(&[
            "a:?X?:c",
            "a:b:d",
            "a:?X*?",
            "SCRIPTING:EXECUTE:?P*?",
            "view_cases",
            "?ANY?:z",
        ]);
        let index = CatalogIndex::build(&c);
        for path in [
            "a:b:c",
            "a:b:d",
            "a:q",
            "a:b:c:d",
            "a",
            "view_cases",
            "view",
            "x:z",
            "SCRIPTING:EXECUTE",
            "SCRIPTING:EXECUTE:x:y",
            "ACM:ROLE:INSERT",
            "ACM:ROLE:DELETE:r",
            "ACM:ROLE:DELETE",
        ] {
            assert_eq!(
                index.covering(path).is_some(),
                c.covering(path).is_some(),
                "disagree on {path}"
            );
            if index.literal(path).is_some() {
                assert!(c.covering(path).is_some(), "{path} is no covered path");
            }
        }
        assert!(index.literal("a:b:d").is_some());
        assert!(index.literal("view_cases").is_some());
        assert!(index.literal("a:b:c").is_none(), "a parameter's path");
        assert!(index.literal("SCRIPTING:EXECUTE").is_none());
        let paths = index.literal_paths();
        for (n, path) in paths.iter().enumerate() {
            assert_eq!(index.literal(path), Some(n as u32));
        }
    }
}
