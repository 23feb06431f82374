//! The request path as segments, and the route patterns matched against
//! them.
//!
//! A path is read strictly, since the segments it yields become parts of a
//! permission: the query string (from the first `?`) and any fragment are cut
//! off; the rest must start with `/`; each segment between slashes is
//! percent-decoded, and a segment is refused ([`PathError`], the deny
//! `BAD_PATH`) when its escapes are malformed, when it decodes to a `/` (a
//! `%2F` would turn one segment into two for the upstream, or two into one
//! here), to bytes that are not UTF-8, to a control character, or to `.` or
//! `..` (a normalising upstream would serve another path than the one
//! matched). An empty segment in the middle (`//`) is refused too; one
//! trailing `/` is ignored, so `/documents/` is `/documents`. `/` alone has
//! no segments.
//!
//! A pattern is literal segments and named ones: `{name}` takes any one
//! segment; a last `{name*}` takes one or more, their values joined by `/`
//! (a character a decoded segment never holds, and one a permission segment
//! may).

use std::borrow::Cow;

/// The most segments a path may have (the permission limit).
pub const MAX_SEGMENTS: usize = 32;

/// Why a request path is not one rampart will match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("segment {0} has a `%` not followed by two hex digits")]
    BadEscape(usize),
    #[error("segment {0} decodes to bytes that are not UTF-8")]
    NotUtf8(usize),
    #[error("segment {0} holds an encoded `/`")]
    EncodedSlash(usize),
    #[error("segment {0} holds a control character")]
    Control(usize),
    #[error("segment {0} is `.` or `..`")]
    Dots(usize),
    #[error("segment {0} is empty (`//`)")]
    Empty(usize),
    #[error("the path has more than {MAX_SEGMENTS} segments")]
    TooLong,
}

/// `path` (as Envoy reports it: the request target, query included) as
/// decoded segments.
pub fn segments(path: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = path[..end]
        .strip_prefix('/')
        .ok_or(PathError::NotAbsolute)?;
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Err(PathError::Empty(1));
    }
    let mut out = Vec::with_capacity(8);
    for (i, raw) in path.split('/').enumerate() {
        let n = i + 1;
        if n > MAX_SEGMENTS {
            return Err(PathError::TooLong);
        }
        if raw.is_empty() {
            return Err(PathError::Empty(n));
        }
        let segment = decode(raw, n)?;
        if segment.contains('/') {
            return Err(PathError::EncodedSlash(n));
        }
        if segment.chars().any(char::is_control) {
            return Err(PathError::Control(n));
        }
        if segment == "." || segment == ".." {
            return Err(PathError::Dots(n));
        }
        out.push(segment);
    }
    Ok(out)
}

/// One segment percent-decoded (borrowed when it has no `%`).
fn decode(raw: &str, n: usize) -> Result<Cow<'_, str>, PathError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| hex(*b));
            let lo = bytes.get(i + 2).and_then(|b| hex(*b));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape(n));
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::NotUtf8(n))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Name(String),
}

/// A route's path pattern: `/documents/{doc}`, `/files/{path*}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Vec<Part>,
    /// The name of a last `{name*}`.
    rest: Option<String>,
}

/// Why a pattern's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("does not start with `/`")]
    NotAbsolute,
    #[error("has an empty segment (`//`)")]
    Empty,
    #[error("segment `{0}` is neither literal text nor one `{{name}}`")]
    Mixed(String),
    #[error("segment `{0}` has a character that needs percent-encoding, or is `.`/`..`")]
    BadLiteral(String),
    #[error("`{{{0}}}`: a name is letters, digits and `_`")]
    BadName(String),
    #[error("names `{{{0}}}` twice")]
    Twice(String),
    #[error("has `{{{0}*}}` before its last segment")]
    RestNotLast(String),
    #[error("has more than {MAX_SEGMENTS} segments")]
    TooLong,
}

/// The values of a route's named segments for one path.
pub type Captures<'p> = Vec<(&'p str, Cow<'p, str>)>;

impl Pattern {
    /// Parses a pattern: `/` then segments joined by `/`; `/` alone is the
    /// root. One trailing `/` is ignored, as in a request path.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let body = text.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
        let mut parts = Vec::new();
        let mut rest = None;
        if body.is_empty() {
            return Ok(Self { parts, rest });
        }
        let body = body.strip_suffix('/').unwrap_or(body);
        if body.is_empty() {
            return Err(PatternError::Empty);
        }
        let raw: Vec<&str> = body.split('/').collect();
        if raw.len() > MAX_SEGMENTS {
            return Err(PatternError::TooLong);
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, seg) in raw.iter().enumerate() {
            if seg.is_empty() {
                return Err(PatternError::Empty);
            }
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, star) = match inner.strip_suffix('*') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(PatternError::BadName(inner.to_owned()));
                }
                if names.contains(&name) {
                    return Err(PatternError::Twice(name.to_owned()));
                }
                names.push(name);
                if star {
                    if i + 1 != raw.len() {
                        return Err(PatternError::RestNotLast(name.to_owned()));
                    }
                    rest = Some(name.to_owned());
                } else {
                    parts.push(Part::Name(name.to_owned()));
                }
            } else if seg.contains(['{', '}']) {
                return Err(PatternError::Mixed((*seg).to_owned()));
            } else if *seg == "."
                || *seg == ".."
                || !seg
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"%?#".contains(&b))
            {
                return Err(PatternError::BadLiteral((*seg).to_owned()));
            } else {
                parts.push(Part::Literal((*seg).to_owned()));
            }
        }
        Ok(Self { parts, rest })
    }

    /// The names of the named segments, in order (a `{name*}` last).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Name(n) => Some(n.as_str()),
                Part::Literal(_) => None,
            })
            .chain(self.rest.as_deref())
    }

    /// How many segments a matching path has: exactly this many, or (with
    /// a `{name*}`) more than this many.
    pub fn fixed_len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the pattern ends in `{name*}`.
    pub fn has_rest(&self) -> bool {
        self.rest.is_some()
    }

    /// The named segments' values when `segments` match, else `None`.
    pub fn matches<'p>(&'p self, segments: &'p [Cow<'p, str>]) -> Option<Captures<'p>> {
        let fixed = self.parts.len();
        match &self.rest {
            None if segments.len() != fixed => return None,
            Some(_) if segments.len() <= fixed => return None,
            _ => {}
        }
        // The literals first: a route that does not match allocates nothing.
        let literals_match = self
            .parts
            .iter()
            .zip(segments)
            .all(|(part, seg)| match part {
                Part::Literal(l) => l == seg,
                Part::Name(_) => true,
            });
        if !literals_match {
            return None;
        }
        let mut captures = Vec::new();
        for (part, seg) in self.parts.iter().zip(segments) {
            if let Part::Name(n) = part {
                captures.push((n.as_str(), Cow::Borrowed(seg.as_ref())));
            }
        }
        if let Some(rest) = &self.rest {
            let tail = &segments[fixed..];
            let value = match tail {
                [one] => Cow::Borrowed(one.as_ref()),
                many => Cow::Owned(
                    many.iter()
                        .map(AsRef::as_ref)
                        .collect::<Vec<&str>>()
                        .join("/"),
                ),
            };
            captures.push((rest.as_str(), value));
        }
        Some(captures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        segments(path)
            .unwrap()
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn the_query_is_cut_and_segments_are_decoded() {
        assert_eq!(segs("/"), Vec::<String>::new());
        assert_eq!(segs("/?a=b"), Vec::<String>::new());
        assert_eq!(segs("/documents/d-1?x=/y"), ["documents", "d-1"]);
        assert_eq!(segs("/documents/"), ["documents"]);
        assert_eq!(segs("/a%20b/%C3%A9t%c3%a9#frag"), ["a b", "été"]);
        assert_eq!(
            segs("/a%3Ab"),
            ["a:b"],
            "a `:` is refused later, by the template"
        );
    }

    #[test]
    fn malformed_paths_are_refused_naming_the_segment() {
        use PathError::*;
        for (path, want) in [
            ("documents/d", NotAbsolute),
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("/a/%zz", BadEscape(2)),
            ("/a/%4", BadEscape(2)),
            ("/a%", BadEscape(1)),
            ("/%ff%fe", NotUtf8(1)),
            ("/a%2Fb", EncodedSlash(1)),
            ("/x/a%2fb", EncodedSlash(2)),
            ("/a%00", Control(1)),
            ("/a\tb", Control(1)),
            ("/a/../admin", Dots(2)),
            ("/a/%2E%2E/admin", Dots(2)),
            ("/./a", Dots(1)),
            ("/a//b", Empty(2)),
            ("//", Empty(1)),
            ("/a//", Empty(2)),
            ("///", Empty(1)),
        ] {
            assert_eq!(segments(path), Err(want.clone()), "{path:?}");
        }
        let long = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(segments(&long), Err(TooLong));
        assert!(segments(&"/a".repeat(MAX_SEGMENTS)).is_ok());
    }

    fn capture(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let p = Pattern::parse(pattern).unwrap();
        let s = segments(path).unwrap();
        p.matches(&s).map(|c| {
            c.into_iter()
                .map(|(n, v)| (n.to_owned(), v.into_owned()))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn literal_and_named_segments_match_exactly() {
        assert_eq!(capture("/", "/"), pairs(&[]));
        assert_eq!(capture("/", "/a"), None);
        assert_eq!(capture("/health", "/health"), pairs(&[]));
        assert_eq!(capture("/health", "/health/"), pairs(&[]));
        assert_eq!(capture("/health", "/Health"), None, "case-sensitive");
        assert_eq!(capture("/health", "/health/x"), None);
        assert_eq!(
            capture("/documents/{doc}", "/documents/d-1"),
            pairs(&[("doc", "d-1")])
        );
        assert_eq!(capture("/documents/{doc}", "/documents"), None);
        assert_eq!(capture("/documents/{doc}", "/documents/a/b"), None);
        assert_eq!(
            capture("/t/{tenant}/docs/{doc}", "/t/acme/docs/r%20e"),
            pairs(&[("tenant", "acme"), ("doc", "r e")])
        );
    }

    #[test]
    fn a_rest_segment_takes_one_or_more_joined_by_slash() {
        assert_eq!(
            capture("/files/{path*}", "/files/a"),
            pairs(&[("path", "a")])
        );
        assert_eq!(
            capture("/files/{path*}", "/files/a/b%20c/d"),
            pairs(&[("path", "a/b c/d")])
        );
        assert_eq!(capture("/files/{path*}", "/files"), None);
        assert_eq!(capture("/files/{path*}", "/other/a"), None);
        assert_eq!(capture("/{all*}", "/x/y"), pairs(&[("all", "x/y")]));
    }

    proptest::proptest! {
        /// Any segments, every byte escaped but the unreserved ones, come
        /// back as they were; and no input makes the reader panic.
        #[test]
        fn escaped_segments_decode_to_themselves(
            segs in proptest::collection::vec("[^/\\p{Cc}]{1,12}", 0..8),
            noise in "\\PC{0,40}",
        ) {
            let _ = segments(&noise);
            let _ = segments(&format!("/{noise}"));
            let segs: Vec<String> = segs.into_iter().filter(|s| s != "." && s != "..").collect();
            let path: String = segs
                .iter()
                .map(|s| {
                    let mut out = String::from("/");
                    for b in s.bytes() {
                        if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
                            out.push(b as char);
                        } else {
                            out.push_str(&format!("%{b:02X}"));
                        }
                    }
                    out
                })
                .collect();
            let path = if path.is_empty() { "/".to_owned() } else { path };
            let got: Vec<String> = segments(&path).unwrap().into_iter().map(Cow::into_owned).collect();
            proptest::prop_assert_eq!(got, segs);
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        use PatternError::*;
        for (text, want) in [
            ("documents", NotAbsolute),
            ("/a//b", Empty),
            ("//", Empty),
            ("/a//", Empty),
            ("/a-{b}", Mixed("a-{b}".into())),
            ("/{b}x", Mixed("{b}x".into())),
            ("/a b", BadLiteral("a b".into())),
            ("/a%20b", BadLiteral("a%20b".into())),
            ("/..", BadLiteral("..".into())),
            ("/{}", BadName(String::new())),
            ("/{a-b}", BadName("a-b".into())),
            ("/{*}", BadName("*".into())),
            ("/{a}/{a}", Twice("a".into())),
            ("/{a*}/b", RestNotLast("a".into())),
        ] {
            assert_eq!(Pattern::parse(text), Err(want), "{text}");
        }
        let p = Pattern::parse("/t/{tenant}/f/{path*}").unwrap();
        assert_eq!(p.names().collect::<Vec<_>>(), ["tenant", "path"]);
        assert_eq!((p.fixed_len(), p.has_rest()), (3, true));
    }
}
