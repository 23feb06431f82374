//! Permission paths (`ACM:USER:DELETE:local:alice`) and grant patterns
//! (`documents:edit:*`, `ACM:USER:UPDATE:INFO:{subject}`).
//!
//! A path is a case-sensitive list of segments joined by `:`. Matching lives
//! here as the plain, obviously-correct definition; `policy/` compiles the
//! same semantics into tries and bitsets.

use std::fmt;
use std::sync::Arc;

use arcstr::ArcStr;
use thiserror::Error;

use super::ids::truncate;

/// At most this many segments in a permission path.
pub const MAX_SEGMENTS: usize = 32;
/// At most this many bytes in a permission path.
pub const MAX_PATH_BYTES: usize = 512;
/// The separator between segments.
pub const SEPARATOR: char = ':';
/// The grant segment replaced by the checking subject's id.
pub const SUBJECT_SEGMENT: &str = "{subject}";

/// Why a permission path or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("permission must not be empty")]
    Empty,
    #[error("permission `{0}` is longer than 512 bytes")]
    TooLong(String),
    #[error("permission `{0}` has more than 32 segments")]
    TooManySegments(String),
    #[error("permission `{0}` has an empty segment")]
    EmptySegment(String),
    #[error("permission `{path}` has the character `{}` outside `A-Z a-z 0-9 _ - . / @ +`", .ch.escape_default())]
    BadChar { path: String, ch: char },
    #[error("pattern `{0}` may only have `*` as its last segment")]
    StarNotLast(String),
    #[error("catalog entry `{0}` may only have a `?NAME*?` parameter as its last segment")]
    RestNotLast(String),
    #[error(
        "catalog entry `{path}` has a malformed parameter `{segment}` (expected `?NAME?` or `?NAME*?`)"
    )]
    BadParameter { path: String, segment: String },
}

/// Whether `b` may appear in a literal segment: `A-Z a-z 0-9 _ - . /`, and
/// also `@ +` so that a `{subject}` segment can match an email-style user id.
pub fn segment_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'@' | b'+')
}

/// Splits `text` into segments after checking length, segment count and
/// emptiness.
fn split(text: &str) -> Result<Vec<&str>, PathError> {
    if text.is_empty() {
        return Err(PathError::Empty);
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(truncate(text)));
    }
    let segments: Vec<&str> = text.split(SEPARATOR).collect();
    if segments.len() > MAX_SEGMENTS {
        return Err(PathError::TooManySegments(truncate(text)));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(PathError::EmptySegment(truncate(text)));
    }
    Ok(segments)
}

fn check_literal(path: &str, segment: &str) -> Result<(), PathError> {
    match segment
        .chars()
        .find(|c| !c.is_ascii() || !segment_char(*c as u8))
    {
        Some(ch) => Err(PathError::BadChar {
            path: truncate(path),
            ch,
        }),
        None => Ok(()),
    }
}

/// A validated permission path: what a check asks about.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermissionPath(Arc<str>);

impl PermissionPath {
    /// Validates `text` as a path of literal segments.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        validate_path(text)?;
        Ok(Self(Arc::from(text)))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split(SEPARATOR)
    }
}

/// Checks that `text` is a well-formed permission path without allocating.
pub fn validate_path(text: &str) -> Result<(), PathError> {
    if text.is_empty() {
        return Err(PathError::Empty);
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(truncate(text)));
    }
    let mut segments = 0;
    for segment in text.split(SEPARATOR) {
        segments += 1;
        if segment.is_empty() {
            return Err(PathError::EmptySegment(truncate(text)));
        }
        check_literal(text, segment)?;
    }
    if segments > MAX_SEGMENTS {
        return Err(PathError::TooManySegments(truncate(text)));
    }
    Ok(())
}

impl fmt::Display for PermissionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PermissionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Allow or deny.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of a grant pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternSegment {
    /// Matches exactly this text.
    Literal(ArcStr),
    /// Matches the checking subject's own id.
    Subject,
}

/// A grant's permission pattern: literal segments, `{subject}` segments, and
/// optionally a trailing `*` that matches one or more further segments.
/// `*` alone matches every permission.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GrantPattern {
    text: ArcStr,
    segments: Arc<[PatternSegment]>,
    star: bool,
}

impl GrantPattern {
    /// Parses a pattern such as `documents:edit:*` or `ACM:USER:UPDATE:INFO:{subject}`.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        super::intern::pattern(text, Self::parse_new)
    }

    /// Whether both hold one allocation (`model::intern`).
    #[cfg(test)]
    pub(crate) fn shares_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.segments, &other.segments)
    }

    fn parse_new(text: &str) -> Result<Self, PathError> {
        let parts = split(text)?;
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        let mut star = false;
        for (i, part) in parts.iter().enumerate() {
            match *part {
                "*" if i == last => star = true,
                "*" => return Err(PathError::StarNotLast(truncate(text))),
                SUBJECT_SEGMENT => segments.push(PatternSegment::Subject),
                literal => {
                    check_literal(text, literal)?;
                    segments.push(PatternSegment::Literal(super::intern::shared(literal)));
                }
            }
        }
        Ok(Self {
            text: super::intern::shared(text),
            segments: segments.into(),
            star,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments before any trailing `*`.
    pub fn segments(&self) -> &[PatternSegment] {
        &self.segments
    }

    /// Whether the pattern ends in `*`.
    pub fn has_star(&self) -> bool {
        self.star
    }

    /// Whether any segment is `{subject}`.
    pub fn has_subject(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, PatternSegment::Subject))
    }

    /// The path this pattern names exactly, when it has no `*` and no `{subject}`.
    pub fn as_exact(&self) -> Option<&str> {
        (!self.star && !self.has_subject()).then_some(&*self.text)
    }

    /// Whether the pattern matches `path` for `subject`: the reference
    /// definition the compiled evaluator must agree with.
    pub fn matches(&self, path: &str, subject: &str) -> bool {
        let mut parts = path.split(SEPARATOR);
        for segment in self.segments.iter() {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match segment {
                PatternSegment::Literal(lit) => **lit == *part,
                PatternSegment::Subject => part == subject,
            };
            if !ok {
                return false;
            }
        }
        let rest = parts.count();
        if self.star { rest >= 1 } else { rest == 0 }
    }
}

impl TryFrom<String> for GrantPattern {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, PathError> {
        Self::parse(&value)
    }
}

impl From<GrantPattern> for String {
    fn from(value: GrantPattern) -> String {
        value.text.to_string()
    }
}

impl fmt::Display for GrantPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for GrantPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

/// One entry of a role: an effect and a pattern. Written as
/// `{effect, pattern}`; read also as a plain pattern (allow) or as
/// `{allow: PATTERN}` / `{deny: PATTERN}`, as policy files write it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "GrantForm")]
pub struct Grant {
    pub effect: Effect,
    pub pattern: GrantPattern,
}

/// The forms a grant may be written in.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum GrantForm {
    Plain(String),
    Full { effect: Effect, pattern: String },
    Allow { allow: String },
    Deny { deny: String },
}

impl TryFrom<GrantForm> for Grant {
    type Error = PathError;
    fn try_from(form: GrantForm) -> Result<Self, PathError> {
        let (effect, text) = match form {
            GrantForm::Plain(t) | GrantForm::Allow { allow: t } => (Effect::Allow, t),
            GrantForm::Deny { deny: t } => (Effect::Deny, t),
            GrantForm::Full { effect, pattern } => (effect, pattern),
        };
        Ok(Grant {
            effect,
            pattern: GrantPattern::parse(&text)?,
        })
    }
}

impl Grant {
    /// An allow grant.
    pub fn allow(pattern: GrantPattern) -> Self {
        Self {
            effect: Effect::Allow,
            pattern,
        }
    }
    /// A deny grant.
    pub fn deny(pattern: GrantPattern) -> Self {
        Self {
            effect: Effect::Deny,
            pattern,
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.effect, self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated() {
        assert!(PermissionPath::parse("ACM:USER:DELETE:local:alice").is_ok());
        assert!(PermissionPath::parse("view_cases").is_ok());
        assert!(PermissionPath::parse("SCRIPTING:EXECUTE:my_scripts:a/b.py").is_ok());
        assert!(PermissionPath::parse("profile:edit:john+x@company.com").is_ok());
        assert_eq!(PermissionPath::parse(""), Err(PathError::Empty));
        assert!(matches!(
            PermissionPath::parse("a::b"),
            Err(PathError::EmptySegment(_))
        ));
        assert!(matches!(
            PermissionPath::parse("a:"),
            Err(PathError::EmptySegment(_))
        ));
        assert!(matches!(
            PermissionPath::parse("a:b c"),
            Err(PathError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            PermissionPath::parse("a:*"),
            Err(PathError::BadChar { ch: '*', .. })
        ));
        assert!(matches!(
            PermissionPath::parse("a:é"),
            Err(PathError::BadChar { ch: 'é', .. })
        ));
        let long = vec!["a"; 33].join(":");
        assert!(matches!(
            PermissionPath::parse(&long),
            Err(PathError::TooManySegments(_))
        ));
        assert!(PermissionPath::parse(&vec!["a"; 32].join(":")).is_ok());
        assert!(matches!(
            PermissionPath::parse(&"a".repeat(513)),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn patterns_match_like_the_seeds_say() {
        let p = GrantPattern::parse("ACM:*").unwrap();
        assert!(p.matches("ACM:ROLE:INSERT", "x"));
        assert!(p.matches("ACM:USER", "x"));
        assert!(!p.matches("ACM", "x"), "`*` needs at least one segment");
        assert!(!p.matches("ACMX:USER", "x"));

        let s = GrantPattern::parse("SCRIPTING:EXECUTE:my_scripts:*").unwrap();
        assert!(s.matches("SCRIPTING:EXECUTE:my_scripts:a:b", "x"));
        assert!(!s.matches("SCRIPTING:EXECUTE:other:a", "x"));

        let all = GrantPattern::parse("*").unwrap();
        assert!(all.matches("anything", "x"));
        assert!(all.matches("a:b:c", "x"));

        let own = GrantPattern::parse("ACM:USER:UPDATE:INFO:{subject}").unwrap();
        assert!(own.matches("ACM:USER:UPDATE:INFO:alice", "alice"));
        assert!(!own.matches("ACM:USER:UPDATE:INFO:bob", "alice"));
        assert!(own.matches("ACM:USER:UPDATE:INFO:john@company.com", "john@company.com"));
        assert!(own.as_exact().is_none());

        let exact = GrantPattern::parse("documents:view").unwrap();
        assert_eq!(exact.as_exact(), Some("documents:view"));
        assert!(exact.matches("documents:view", "x"));
        assert!(!exact.matches("documents:view:x", "x"));
        assert!(!exact.matches("documents", "x"));
    }

    #[test]
    fn grants_read_every_form() {
        let forms = [
            ("\"a:b\"", Effect::Allow),
            ("{\"allow\":\"a:b\"}", Effect::Allow),
            ("{\"deny\":\"a:b\"}", Effect::Deny),
            ("{\"effect\":\"deny\",\"pattern\":\"a:b\"}", Effect::Deny),
        ];
        for (text, effect) in forms {
            let g: Grant = serde_json::from_str(text).unwrap();
            assert_eq!((g.effect, g.pattern.as_str()), (effect, "a:b"), "{text}");
        }
        let g = Grant::deny(GrantPattern::parse("x:*").unwrap());
        let text = serde_json::to_string(&g).unwrap();
        assert_eq!(text, "{\"effect\":\"deny\",\"pattern\":\"x:*\"}");
        assert!(serde_json::from_str::<Grant>("\"a::b\"").is_err());
    }

    #[test]
    fn star_must_be_last() {
        assert!(matches!(
            GrantPattern::parse("a:*:b"),
            Err(PathError::StarNotLast(_))
        ));
        assert!(matches!(
            GrantPattern::parse("a:b*"),
            Err(PathError::BadChar { ch: '*', .. })
        ));
    }
}
