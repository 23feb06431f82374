//! Templates that turn a request into a permission: the tenant, subject and
//! permission the Envoy (`ext_authz`) and AuthZEN front ends configure in
//! `rampart.toml`, such as `documents:view:{path.doc}` or
//! `{header.x-tenant}`, and the permissions a tenant maps its admin
//! operations to (`model::operation`), such as
//! `ACM:USER:UPDATE:STATUS:{user.realm}:{user}`.
//!
//! A template is literal text with `{name}` placeholders. Which names exist
//! is the front end's business: it says so when a template is parsed (so a
//! misspelt name fails at start-up, naming it), and it looks each one up
//! when a request is rendered. A value that is missing, empty, or carries
//! `:` (which would add segments to a permission, reaching grants the
//! template never meant) fails the rendering, naming the placeholder; the
//! front end answers that with a deny and its reason.

use std::borrow::Cow;
use std::fmt;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// One piece of a template, as [`Template::pieces`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Literal(&'a str),
    Var(&'a str),
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.text)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a template's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{0}` is empty")]
    Empty(String),
    #[error("template `{0}` has a `{{` without its `}}`")]
    Unclosed(String),
    #[error("template `{0}` has a `}}` without its `{{`")]
    Unopened(String),
    #[error("template `{text}` has an empty placeholder `{{}}`")]
    EmptyName { text: String },
    #[error("template `{text}` names `{{{name}}}`, which is not one of: {known}")]
    Unknown {
        text: String,
        name: String,
        known: String,
    },
}

/// Why a request did not render: what the deny's reason names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the request has no `{0}`")]
    Missing(String),
    #[error("`{0}` is empty")]
    Empty(String),
    #[error("`{name}` is `{value}`, which has a `:`")]
    Colon { name: String, value: String },
}

/// The longest value quoted back in a [`RenderError`].
const QUOTED: usize = 64;

impl Template {
    /// Parses `text`; `known` says which placeholder names exist, and
    /// `names` lists them for the error.
    pub fn parse(
        text: &str,
        known: impl Fn(&str) -> bool,
        names: &str,
    ) -> Result<Self, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty(text.to_owned()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let open = rest.find('{');
            let close = rest.find('}');
            match (open, close) {
                (None, None) => {
                    parts.push(Part::Literal(rest.to_owned()));
                    break;
                }
                (_, Some(c)) if open.is_none_or(|o| c < o) => {
                    return Err(TemplateError::Unopened(text.to_owned()));
                }
                (Some(_), None) => return Err(TemplateError::Unclosed(text.to_owned())),
                (Some(o), Some(c)) => {
                    if o > 0 {
                        parts.push(Part::Literal(rest[..o].to_owned()));
                    }
                    let name = &rest[o + 1..c];
                    if name.contains('{') {
                        return Err(TemplateError::Unclosed(text.to_owned()));
                    }
                    if name.is_empty() {
                        return Err(TemplateError::EmptyName {
                            text: text.to_owned(),
                        });
                    }
                    if !known(name) {
                        return Err(TemplateError::Unknown {
                            text: text.to_owned(),
                            name: name.to_owned(),
                            known: names.to_owned(),
                        });
                    }
                    parts.push(Part::Var(name.to_owned()));
                    rest = &rest[c + 1..];
                }
                (None, Some(_)) => return Err(TemplateError::Unopened(text.to_owned())),
            }
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The pieces, in order: literal text and placeholder names.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        self.parts.iter().map(|p| match p {
            Part::Literal(text) => Piece::Literal(text),
            Part::Var(name) => Piece::Var(name),
        })
    }

    /// The placeholders' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The text with every placeholder replaced by `lookup`'s value.
    pub fn render<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<Cow<'a, str>>,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(name) => {
                    let value = lookup(name).ok_or_else(|| RenderError::Missing(name.clone()))?;
                    if value.is_empty() {
                        return Err(RenderError::Empty(name.clone()));
                    }
                    if value.contains(':') {
                        return Err(RenderError::Colon {
                            name: name.clone(),
                            value: quote(&value),
                        });
                    }
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }
}

/// `value`, cut to [`QUOTED`] bytes at a character boundary.
fn quote(value: &str) -> String {
    if value.len() <= QUOTED {
        return value.to_owned();
    }
    let mut end = QUOTED;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &str) -> bool {
        true
    }

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse(text, any, "anything")
    }

    #[test]
    fn literals_and_placeholders_render_in_order() {
        let t = parse("documents:{action}:{path.doc}").unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["action", "path.doc"]);
        let out = t
            .render(|n| match n {
                "action" => Some("view".into()),
                "path.doc" => Some("d-1".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(out, "documents:view:d-1");
        assert_eq!(parse("acme").unwrap().render(|_| None).unwrap(), "acme");
        assert_eq!(
            parse("{a}{b}")
                .unwrap()
                .render(|n| Some(n.to_owned().into()))
                .unwrap(),
            "ab"
        );
    }

    #[test]
    fn malformed_templates_are_refused_naming_the_fault() {
        assert_eq!(parse(""), Err(TemplateError::Empty(String::new())));
        assert!(matches!(parse("a:{b"), Err(TemplateError::Unclosed(_))));
        assert!(matches!(parse("a:{b{c}}"), Err(TemplateError::Unclosed(_))));
        assert!(matches!(parse("a:b}"), Err(TemplateError::Unopened(_))));
        assert!(matches!(parse("a:}{b}"), Err(TemplateError::Unopened(_))));
        assert!(matches!(
            parse("a:{}"),
            Err(TemplateError::EmptyName { .. })
        ));
        let e = Template::parse("x:{hedaer.a}", |n| n.starts_with("header."), "header.NAME")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "template `x:{hedaer.a}` names `{hedaer.a}`, which is not one of: header.NAME"
        );
    }

    #[test]
    fn missing_empty_and_colon_values_fail_naming_the_placeholder() {
        let t = parse("docs:view:{path.doc}").unwrap();
        assert_eq!(
            t.render(|_| None),
            Err(RenderError::Missing("path.doc".into()))
        );
        assert_eq!(
            t.render(|_| Some("".into())),
            Err(RenderError::Empty("path.doc".into()))
        );
        let e = t.render(|_| Some("a:*".into())).unwrap_err();
        assert_eq!(e.to_string(), "`path.doc` is `a:*`, which has a `:`");
        let long = format!("{}:", "é".repeat(100));
        let RenderError::Colon { value, .. } =
            t.render(|_| Some(long.as_str().into())).unwrap_err()
        else {
            panic!("expected a colon error");
        };
        assert!(value.len() <= QUOTED + '…'.len_utf8(), "{value}");
    }
}
