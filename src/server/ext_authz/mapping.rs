//! The `[ext_authz]` table of `rampart.toml` as written ([`ExtAuthzConfig`]),
//! and the [`Mapping`] built from it at start-up: the routes in order, each
//! with its method filter, path pattern, and either the templates of a check
//! or "public".
//!
//! Every template is parsed against the placeholders its route offers (a
//! `{path.NAME}` must be one of the route's named segments, a
//! `{segment.N}` within its length), so a misspelt or impossible
//! placeholder fails the start, naming the route and the key. The top-level
//! `tenant` and `subject` are parsed once for every route that uses them.

use serde::Deserialize;

use super::route::{MAX_SEGMENTS, Pattern, PatternError};
use crate::model::template::{Template, TemplateError};

/// `[ext_authz]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtAuthzConfig {
    /// The tenant template of every route that does not set its own.
    pub tenant: Option<String>,
    /// The subject template of every route that does not set its own.
    pub subject: Option<String>,
    /// `[[ext_authz.routes]]`, tried in order; the first match decides.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One `[[ext_authz.routes]]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `"GET"`, `["GET", "HEAD"]`, or absent / `"*"`: any method.
    pub method: Option<Methods>,
    /// `/documents/{doc}`, `/files/{path*}`.
    pub path: String,
    /// The permission template; required unless `allow = true`.
    pub permission: Option<String>,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    /// Allow without a check (no tenant, subject or permission).
    #[serde(default)]
    pub allow: bool,
}

/// A route's `method`: one, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Methods {
    One(String),
    Many(Vec<String>),
}

/// Why the `[ext_authz]` table cannot be served; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("`[ext_authz]` has no `[[ext_authz.routes]]`: every request would be denied")]
    NoRoutes,
    #[error("{at}: key `{key}`: {source}")]
    Template {
        at: String,
        key: &'static str,
        source: TemplateError,
    },
    #[error("{at}: key `path`: `{path}` {source}")]
    Pattern {
        at: String,
        path: String,
        source: PatternError,
    },
    #[error("{at}: key `{key}`: {why}")]
    Invalid {
        at: String,
        key: &'static str,
        why: String,
    },
}

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Allow without a check (`allow = true`).
    Public,
    /// Render these and ask the Authorization service.
    Check {
        tenant: Template,
        subject: Template,
        permission: Template,
    },
}

/// One route, built.
#[derive(Debug, Clone)]
pub struct Route {
    /// Counted from 1, as the errors and the README count them.
    pub number: usize,
    /// `None`: any method.
    methods: Option<Vec<String>>,
    pub pattern: Pattern,
    pub action: Action,
}

impl Route {
    /// Whether the route takes `method`.
    pub fn takes(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == method))
    }
}

/// The routes, in order.
#[derive(Debug, Clone)]
pub struct Mapping {
    routes: Vec<Route>,
}

impl Mapping {
    /// Builds the mapping; the first error, naming its route and key.
    pub fn build(config: &ExtAuthzConfig) -> Result<Self, MappingError> {
        if config.routes.is_empty() {
            return Err(MappingError::NoRoutes);
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| build_route(config, i + 1, r))
            .collect::<Result<_, _>>()?;
        Ok(Self { routes })
    }

    /// The routes, in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

fn build_route(
    config: &ExtAuthzConfig,
    number: usize,
    r: &RouteConfig,
) -> Result<Route, MappingError> {
    let at = format!("[[ext_authz.routes]] number {number} (path `{}`)", r.path);
    let pattern = Pattern::parse(&r.path).map_err(|source| MappingError::Pattern {
        at: at.clone(),
        path: r.path.clone(),
        source,
    })?;
    let methods = methods(r.method.as_ref()).map_err(|why| MappingError::Invalid {
        at: at.clone(),
        key: "method",
        why,
    })?;
    let action = if r.allow {
        for (key, set) in [
            ("permission", r.permission.is_some()),
            ("tenant", r.tenant.is_some()),
            ("subject", r.subject.is_some()),
        ] {
            if set {
                return Err(MappingError::Invalid {
                    at,
                    key,
                    why: "a route with `allow = true` is allowed without a check, so it takes no tenant, subject or permission".into(),
                });
            }
        }
        Action::Public
    } else {
        let places = Places::of(&pattern);
        let template = |key: &'static str, own: Option<&String>, shared: Option<&String>| {
            let (text, at) = match (own, shared) {
                (Some(t), _) => (t, at.clone()),
                (None, Some(t)) => (t, format!("`[ext_authz]` (used by {at})")),
                (None, None) => {
                    let why = if key == "permission" {
                        "missing: set it on the route (or `allow = true`)"
                    } else {
                        "missing: set it on the route or in `[ext_authz]`"
                    };
                    return Err(MappingError::Invalid {
                        at: at.clone(),
                        key,
                        why: why.into(),
                    });
                }
            };
            Template::parse(text, |n| places.known(n), &places.describe())
                .map_err(|source| MappingError::Template { at, key, source })
        };
        Action::Check {
            tenant: template("tenant", r.tenant.as_ref(), config.tenant.as_ref())?,
            subject: template("subject", r.subject.as_ref(), config.subject.as_ref())?,
            permission: template("permission", r.permission.as_ref(), None)?,
        }
    };
    Ok(Route {
        number,
        methods,
        pattern,
        action,
    })
}

/// A route's `method`, checked: `None` for any.
fn methods(m: Option<&Methods>) -> Result<Option<Vec<String>>, String> {
    let list: Vec<&String> = match m {
        None => return Ok(None),
        Some(Methods::One(one)) => vec![one],
        Some(Methods::Many(many)) => many.iter().collect(),
    };
    if list.is_empty() {
        return Err("an empty list matches no request: leave `method` out for any".into());
    }
    if list.iter().any(|m| m.as_str() == "*") {
        if list.len() > 1 {
            return Err("`*` (any method) stands alone".into());
        }
        return Ok(None);
    }
    for m in &list {
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "`{}` is not an upper-case method name such as `GET` (methods are case-sensitive)",
                crate::model::quote(m)
            ));
        }
    }
    Ok(Some(list.into_iter().cloned().collect()))
}

/// The placeholders one route offers its templates.
struct Places<'p> {
    pattern: &'p Pattern,
}

/// The names every route offers, whatever its path.
const FIXED: [&str; 5] = [
    "method",
    "source.principal",
    "source.spiffe",
    "destination.principal",
    "destination.spiffe",
];

impl<'p> Places<'p> {
    fn of(pattern: &'p Pattern) -> Self {
        Self { pattern }
    }

    /// The largest `N` of `{segment.N}`.
    fn max_segment(&self) -> usize {
        if self.pattern.has_rest() {
            MAX_SEGMENTS
        } else {
            self.pattern.fixed_len()
        }
    }

    fn known(&self, name: &str) -> bool {
        if let Some(h) = name.strip_prefix("header.") {
            let h = h.strip_prefix(':').unwrap_or(h);
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        } else if let Some(p) = name.strip_prefix("path.") {
            self.pattern.names().any(|n| n == p)
        } else if let Some(n) = name.strip_prefix("segment.") {
            !n.starts_with('0')
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<usize>()
                    .is_ok_and(|n| (1..=self.max_segment()).contains(&n))
        } else if let Some(k) = name.strip_prefix("context.") {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        } else {
            FIXED.contains(&name)
        }
    }

    /// What [`Places::known`] takes, for the error.
    fn describe(&self) -> String {
        let names: Vec<&str> = self.pattern.names().collect();
        let path = if names.is_empty() {
            "path.NAME (this route's path names no segment)".to_owned()
        } else {
            format!("path.NAME (NAME one of: {})", names.join(", "))
        };
        let segment = match self.max_segment() {
            0 => "segment.N (this route's path has no segment)".to_owned(),
            n => format!("segment.N (N from 1 to {n})"),
        };
        format!(
            "header.NAME (a lower-case header name), {path}, {segment}, {}, context.KEY",
            FIXED.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ExtAuthzConfig {
        toml::from_str(text).unwrap()
    }

    fn build(text: &str) -> Result<Mapping, MappingError> {
        Mapping::build(&config(text))
    }

    #[test]
    fn a_full_mapping_builds() {
        let m = build(
            r#"
            tenant = "{header.x-tenant}"
            subject = "{header.x-user}"
            [[routes]]
            method = ["GET", "HEAD"]
            path = "/documents/{doc}"
            permission = "documents:view:{path.doc}"
            [[routes]]
            path = "/t/{tenant}/files/{rest*}"
            tenant = "{path.tenant}"
            subject = "{source.spiffe}"
            permission = "files:{method}:{path.rest}:{segment.9}:{context.app}"
            [[routes]]
            method = "*"
            path = "/health"
            allow = true
            "#,
        )
        .unwrap();
        let r = m.routes();
        assert_eq!(r.len(), 3);
        assert!(r[0].takes("GET") && r[0].takes("HEAD") && !r[0].takes("get"));
        assert!(!r[0].takes("POST"));
        assert!(r[1].takes("DELETE") && r[2].takes("PATCH"));
        assert!(matches!(r[2].action, Action::Public));
        assert_eq!(r[1].number, 2);
    }

    fn error(text: &str) -> String {
        build(text).unwrap_err().to_string()
    }

    #[test]
    fn an_unknown_placeholder_is_named_with_its_route_and_key() {
        let e = error(
            r#"
            tenant = "acme"
            subject = "{header.x-user}"
            [[routes]]
            path = "/documents/{doc}"
            permission = "documents:view:{path.dco}"
            "#,
        );
        assert!(
            e.starts_with("[[ext_authz.routes]] number 1 (path `/documents/{doc}`): key `permission`: template `documents:view:{path.dco}` names `{path.dco}`"),
            "{e}"
        );
        assert!(e.contains("NAME one of: doc"), "{e}");
        let e = error(
            r#"
            tenant = "{path.tenant}"
            subject = "{header.x-user}"
            [[routes]]
            path = "/t/{tenant}"
            permission = "p"
            [[routes]]
            path = "/other"
            permission = "p"
            "#,
        );
        assert!(
            e.starts_with("`[ext_authz]` (used by [[ext_authz.routes]] number 2 (path `/other`)): key `tenant`"),
            "{e}"
        );
        for (bad, why) in [
            ("{header.X-User}", "upper case header"),
            ("{header.}", "no header name"),
            ("{segment.0}", "segments count from 1"),
            ("{segment.3}", "past the path"),
            ("{segment.01}", "leading zero"),
            ("{context.}", "no key"),
            ("{source}", "not a name"),
            ("{query.a}", "not offered"),
        ] {
            let text = format!(
                "tenant = \"a\"\nsubject = \"{bad}\"\n[[routes]]\npath = \"/a/{{b}}\"\npermission = \"p\""
            );
            let e = error(&text);
            assert!(
                e.contains("key `subject`") && e.contains("which is not one of"),
                "{why}: {e}"
            );
        }
    }

    #[test]
    fn bad_routes_are_refused_naming_the_key() {
        assert_eq!(build("tenant = \"a\"").unwrap_err(), MappingError::NoRoutes);
        for (route, key, part) in [
            (
                "path = \"documents\"\npermission = \"p\"",
                "path",
                "does not start with `/`",
            ),
            (
                "path = \"/a\"\nmethod = \"get\"\npermission = \"p\"",
                "method",
                "`get` is not an upper-case method",
            ),
            (
                "path = \"/a\"\nmethod = []\npermission = \"p\"",
                "method",
                "empty list",
            ),
            (
                "path = \"/a\"\nmethod = [\"*\", \"GET\"]\npermission = \"p\"",
                "method",
                "stands alone",
            ),
            ("path = \"/a\"", "permission", "missing"),
            (
                "path = \"/a\"\nallow = true\npermission = \"p\"",
                "permission",
                "allow = true",
            ),
            (
                "path = \"/a\"\nallow = true\nsubject = \"s\"",
                "subject",
                "allow = true",
            ),
            (
                "path = \"/a\"\npermission = \"p:{x\"",
                "permission",
                "without its",
            ),
        ] {
            let e = error(&format!(
                "tenant = \"t\"\nsubject = \"s\"\n[[routes]]\n{route}"
            ));
            assert!(
                e.contains(&format!("key `{key}`")) && e.contains(part),
                "{route}: {e}"
            );
        }
        let e = error("[[routes]]\npath = \"/a\"\npermission = \"p\"");
        assert!(
            e.contains("key `tenant`: missing: set it on the route or in `[ext_authz]`"),
            "{e}"
        );
        let e = toml::from_str::<ExtAuthzConfig>("[[routes]]\npath = \"/a\"\npermision = \"p\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("permision"), "{e}");
    }

    #[test]
    fn a_public_route_needs_no_tenant_or_subject_anywhere() {
        let m = build("[[routes]]\npath = \"/health\"\nallow = true").unwrap();
        assert!(matches!(m.routes()[0].action, Action::Public));
    }
}
