//! The OpenID AuthZEN Authorization API 1.0 over rampart's model: the
//! request and response shapes, and the `[authzen]` mapping of
//! `rampart.toml` that turns a request's subject, action, resource and
//! context into the tenant, subject and permission rampart decides.
//!
//! ```toml
//! [authzen]
//! tenant = "todo"                       # a template, like every field
//! subject = "{subject.id}"              # the default
//! [[authzen.rules]]                     # first match wins
//! action = "can_update_todo"            # matches action.name (optional)
//! resource_type = "todo"                # matches resource.type (optional)
//! permission = "todos:update:{resource.properties.ownerID}"
//! [[authzen.rules]]
//! permission = "{resource.type}:{action.name}"   # a catch-all
//! ```
//!
//! A request no rule matches, or whose templates do not render (a property
//! missing, a value with `:`), is decided `false` with a reason in the
//! decision's `context`: never an error, so a PEP gets a decision for every
//! evaluation it sent.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::reply::not_null;
use crate::model::template::{Template, TemplateError};

/// Placeholders the templates may name (for the start-up error).
const NAMES: &str = "subject.type, subject.id, subject.properties.KEY, action.name, \
action.properties.KEY, resource.type, resource.id, resource.properties.KEY, context.KEY";

/// Whether `name` is a placeholder of an AuthZEN request.
fn known(name: &str) -> bool {
    matches!(
        name,
        "subject.type" | "subject.id" | "action.name" | "resource.type" | "resource.id"
    ) || [
        "subject.properties.",
        "action.properties.",
        "resource.properties.",
        "context.",
    ]
    .iter()
    .any(|p| name.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

// ---------------------------------------------------------------- wire

/// `subject`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

/// `resource`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

/// `action`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

/// One access evaluation: `POST /access/v1/evaluation`'s body, and an
/// item of `evaluations` once the defaults are filled in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub subject: Subject,
    pub action: Action,
    pub resource: Resource,
    #[serde(default)]
    pub context: Map<String, Value>,
}

/// An item of `evaluations`: any part may be left to the request's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    #[serde(default, deserialize_with = "not_null")]
    pub subject: Option<Subject>,
    #[serde(default, deserialize_with = "not_null")]
    pub action: Option<Action>,
    #[serde(default, deserialize_with = "not_null")]
    pub resource: Option<Resource>,
    #[serde(default, deserialize_with = "not_null")]
    pub context: Option<Map<String, Value>>,
}

/// How `evaluations` are run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// `options` of `evaluations`; keys rampart does not know are ignored (the
/// specification leaves options open to each PDP).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    #[serde(default)]
    pub evaluations_semantic: Semantic,
}

/// `POST /access/v1/evaluations`' body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluations {
    #[serde(default, deserialize_with = "not_null")]
    pub subject: Option<Subject>,
    #[serde(default, deserialize_with = "not_null")]
    pub action: Option<Action>,
    #[serde(default, deserialize_with = "not_null")]
    pub resource: Option<Resource>,
    #[serde(default, deserialize_with = "not_null")]
    pub context: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "not_null")]
    pub evaluations: Option<Vec<Partial>>,
    #[serde(default, deserialize_with = "not_null")]
    pub options: Option<Options>,
}

impl Evaluations {
    /// Each item with the request's defaults filled in; an item still
    /// missing a part is an error naming it.
    pub fn items(self) -> Result<(Vec<Evaluation>, Semantic), String> {
        let semantic = self.options.unwrap_or_default().evaluations_semantic;
        let defaults = Partial {
            subject: self.subject,
            action: self.action,
            resource: self.resource,
            context: self.context,
        };
        let (items, one) = match self.evaluations {
            Some(items) if !items.is_empty() => (items, false),
            _ => (vec![Partial::default()], true),
        };
        let evaluations = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let at = |part: &str| {
                    if one {
                        format!("the request has no `{part}`")
                    } else {
                        format!(
                            "evaluations[{i}] has no `{part}`, and the request gives no default"
                        )
                    }
                };
                Ok(Evaluation {
                    subject: item
                        .subject
                        .or_else(|| defaults.subject.clone())
                        .ok_or_else(|| at("subject"))?,
                    action: item
                        .action
                        .or_else(|| defaults.action.clone())
                        .ok_or_else(|| at("action"))?,
                    resource: item
                        .resource
                        .or_else(|| defaults.resource.clone())
                        .ok_or_else(|| at("resource"))?,
                    context: item
                        .context
                        .or_else(|| defaults.context.clone())
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((evaluations, semantic))
    }
}

/// A decision: `{"decision": true, "context": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision: bool,
    pub context: Map<String, Value>,
}

impl Decision {
    /// The deny of an evaluation no decision came back for (never expected:
    /// a batch answers every item it was sent).
    pub fn none() -> Self {
        Self::unmapped("INTERNAL", "no decision was made".to_owned())
    }

    /// A deny that names why the request could not be decided.
    pub fn unmapped(reason: &str, message: String) -> Self {
        let mut context = Map::new();
        context.insert("reason".into(), reason.into());
        context.insert("message".into(), message.into());
        Self {
            decision: false,
            context,
        }
    }
}

/// `POST /access/v1/evaluations`' answer.
#[derive(Debug, Clone, Serialize)]
pub struct Decisions {
    pub evaluations: Vec<Decision>,
}

/// The search requests: each part optional here, required by the endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    #[serde(default, deserialize_with = "not_null")]
    pub subject: Option<SearchEntity>,
    #[serde(default, deserialize_with = "not_null")]
    pub action: Option<Action>,
    #[serde(default, deserialize_with = "not_null")]
    pub resource: Option<SearchEntity>,
    #[serde(default, deserialize_with = "not_null")]
    pub context: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "not_null")]
    pub page: Option<Page>,
}

/// A subject or resource in a search: the one searched for has no `id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchEntity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "not_null")]
    pub id: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// A search's page request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default, deserialize_with = "not_null")]
    pub token: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub limit: Option<u32>,
}

// ------------------------------------------------------------- mapping

/// The `[authzen]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    pub tenant: String,
    #[serde(default = "default_subject")]
    pub subject: String,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn default_subject() -> String {
    "{subject.id}".to_owned()
}

/// One `[[authzen.rules]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub subject_type: Option<String>,
    pub permission: String,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
}

/// A rule, parsed.
#[derive(Debug, Clone)]
struct Rule {
    action: Option<String>,
    resource_type: Option<String>,
    subject_type: Option<String>,
    permission: Template,
    tenant: Option<Template>,
    subject: Option<Template>,
}

/// Whether a rule's optional field lets `have` through.
fn fits(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have)
}

impl Rule {
    /// Whether the rule applies to a resource and subject of these types.
    fn fits_types(&self, resource_type: &str, subject_type: &str) -> bool {
        fits(&self.resource_type, resource_type) && fits(&self.subject_type, subject_type)
    }

    fn matches(&self, action: &str, resource_type: &str, subject_type: &str) -> bool {
        fits(&self.action, action) && self.fits_types(resource_type, subject_type)
    }
}

/// The mapping, parsed: every template checked at start-up.
#[derive(Debug, Clone)]
pub struct Mapping {
    tenant: Template,
    subject: Template,
    rules: Vec<Rule>,
}

/// What an evaluation maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant: String,
    pub subject: String,
    pub permission: String,
}

/// Why an evaluation maps to nothing: the reason and message of its deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub reason: &'static str,
    pub message: String,
}

/// The reason of a request no rule matches.
pub const NO_RULE: &str = "NO_RULE";
/// The reason of a request whose templates did not render.
pub const UNMAPPED: &str = "UNMAPPED";

fn template(text: &str, key: &str) -> Result<Template, String> {
    Template::parse(text, known, NAMES).map_err(|e: TemplateError| format!("`{key}`: {e}"))
}

impl Mapping {
    /// Parses every template; an error names the key.
    pub fn new(config: &MappingConfig) -> Result<Self, String> {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let key = |k: &str| format!("rules[{i}].{k}");
                Ok(Rule {
                    action: r.action.clone(),
                    resource_type: r.resource_type.clone(),
                    subject_type: r.subject_type.clone(),
                    permission: template(&r.permission, &key("permission"))?,
                    tenant: r
                        .tenant
                        .as_deref()
                        .map(|t| template(t, &key("tenant")))
                        .transpose()?,
                    subject: r
                        .subject
                        .as_deref()
                        .map(|t| template(t, &key("subject")))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if rules.is_empty() {
            return Err("`rules`: at least one rule is needed (`[[authzen.rules]]`)".to_owned());
        }
        Ok(Self {
            tenant: template(&config.tenant, "tenant")?,
            subject: template(&config.subject, "subject")?,
            rules,
        })
    }

    /// The first rule that matches `e`'s action, resource type and subject
    /// type; `NO_RULE` naming them otherwise.
    fn rule(&self, e: &Evaluation) -> Result<&Rule, Unmapped> {
        self.rules
            .iter()
            .find(|r| r.matches(&e.action.name, &e.resource.kind, &e.subject.kind))
            .ok_or_else(|| Unmapped {
                reason: NO_RULE,
                message: format!(
                    "no [[authzen.rules]] matches action `{}` on a resource of type `{}`",
                    e.action.name, e.resource.kind
                ),
            })
    }

    /// The tenant, subject and permission `evaluation` asks about.
    pub fn target(&self, e: &Evaluation) -> Result<Target, Unmapped> {
        let rule = self.rule(e)?;
        Ok(Target {
            tenant: render(rule.tenant.as_ref().unwrap_or(&self.tenant), "tenant", e)?,
            subject: render(rule.subject.as_ref().unwrap_or(&self.subject), "subject", e)?,
            permission: render(&rule.permission, "permission", e)?,
        })
    }

    /// The tenant and permission of a subject search (`subject.id` absent):
    /// an error when the mapping needs the subject's id to know them.
    pub fn search_target(&self, e: &Evaluation) -> Result<(String, String), Unmapped> {
        let rule = self.rule(e)?;
        let tenant = rule.tenant.as_ref().unwrap_or(&self.tenant);
        if let Some(name) = tenant
            .names()
            .chain(rule.permission.names())
            .find(|n| n.starts_with("subject."))
        {
            return Err(Unmapped {
                reason: UNMAPPED,
                message: format!(
                    "the rule for action `{}` needs `{{{name}}}` of the subject, which a subject search does not have",
                    e.action.name
                ),
            });
        }
        Ok((
            render(tenant, "tenant", e)?,
            render(&rule.permission, "permission", e)?,
        ))
    }

    /// The action names the rules name for a resource and subject of these
    /// types, in rule order, each once (an action search asks each).
    pub fn actions(&self, resource_type: &str, subject_type: &str) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if let Some(action) = rule.action.as_deref()
                && rule.fits_types(resource_type, subject_type)
                && !names.contains(&action)
            {
                names.push(action);
            }
        }
        names
    }
}

/// `t` rendered from `e`; `UNMAPPED` naming the `what` and why otherwise.
fn render(t: &Template, what: &str, e: &Evaluation) -> Result<String, Unmapped> {
    t.render(|name| lookup(e, name)).map_err(|err| Unmapped {
        reason: UNMAPPED,
        message: format!("the {what} `{t}` does not apply: {err}"),
    })
}

/// A placeholder's value in `e`: a string as it is, a number or boolean as
/// text; a property may name a nested key (`resource.properties.owner.id`).
fn lookup<'a>(e: &'a Evaluation, name: &str) -> Option<Cow<'a, str>> {
    let text = |s: &'a str| Some(Cow::Borrowed(s));
    match name {
        "subject.type" => return text(&e.subject.kind),
        "subject.id" => return text(&e.subject.id),
        "action.name" => return text(&e.action.name),
        "resource.type" => return text(&e.resource.kind),
        "resource.id" => return text(&e.resource.id),
        _ => {}
    }
    let (map, path) = [
        ("subject.properties.", &e.subject.properties),
        ("action.properties.", &e.action.properties),
        ("resource.properties.", &e.resource.properties),
        ("context.", &e.context),
    ]
    .into_iter()
    .find_map(|(prefix, map)| name.strip_prefix(prefix).map(|rest| (map, rest)))?;
    let mut keys = path.split('.');
    let mut value = map.get(keys.next()?)?;
    for key in keys {
        value = value.as_object()?.get(key)?;
    }
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(toml_text: &str) -> Result<Mapping, String> {
        let config: MappingConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Mapping::new(&config)
    }

    fn todo() -> Mapping {
        mapping(
            r#"
            tenant = "todo"
            [[rules]]
            action = "can_update_todo"
            permission = "todos:update:{resource.properties.ownerID}"
            [[rules]]
            action = "can_read_user"
            resource_type = "user"
            permission = "users:read"
            [[rules]]
            permission = "{resource.type}:{action.name}"
            "#,
        )
        .unwrap()
    }

    fn eval(json: &str) -> Evaluation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_first_matching_rule_renders_the_target() {
        let m = todo();
        let e = eval(
            r#"{"subject":{"type":"user","id":"u1"},"action":{"name":"can_update_todo"},
                "resource":{"type":"todo","id":"t1","properties":{"ownerID":"rick@the-citadel.com"}}}"#,
        );
        assert_eq!(
            m.target(&e).unwrap(),
            Target {
                tenant: "todo".into(),
                subject: "u1".into(),
                permission: "todos:update:rick@the-citadel.com".into()
            }
        );
        let e = eval(
            r#"{"subject":{"type":"user","id":"u1"},"action":{"name":"can_read_todos"},
                "resource":{"type":"todo","id":"t1"}}"#,
        );
        assert_eq!(m.target(&e).unwrap().permission, "todo:can_read_todos");
        assert_eq!(
            m.actions("todo", "user"),
            ["can_update_todo"],
            "only named actions can be searched"
        );
        assert_eq!(
            m.actions("user", "user"),
            ["can_update_todo", "can_read_user"]
        );
    }

    #[test]
    fn what_does_not_render_is_unmapped_naming_why() {
        let m = todo();
        let e = eval(
            r#"{"subject":{"type":"user","id":"u1"},"action":{"name":"can_update_todo"},
                "resource":{"type":"todo","id":"t1"}}"#,
        );
        let u = m.target(&e).unwrap_err();
        assert_eq!(u.reason, UNMAPPED);
        assert!(
            u.message.contains("resource.properties.ownerID"),
            "{}",
            u.message
        );
        let e = eval(
            r#"{"subject":{"type":"user","id":"u1"},"action":{"name":"can_update_todo"},
                "resource":{"type":"todo","id":"t1","properties":{"ownerID":"a:*"}}}"#,
        );
        assert!(m.target(&e).unwrap_err().message.contains("has a `:`"));
        let strict = mapping(
            r#"
            tenant = "t"
            [[rules]]
            action = "read"
            permission = "docs:read"
            "#,
        )
        .unwrap();
        let e = eval(
            r#"{"subject":{"type":"user","id":"u1"},"action":{"name":"write"},
                "resource":{"type":"doc","id":"d"}}"#,
        );
        assert_eq!(strict.target(&e).unwrap_err().reason, NO_RULE);
    }

    #[test]
    fn properties_nest_and_numbers_render() {
        let m = mapping(
            r#"
            tenant = "{subject.properties.org.id}"
            subject = "{subject.properties.email}"
            [[rules]]
            permission = "docs:{context.level}:{resource.properties.public}"
            "#,
        )
        .unwrap();
        let e = eval(
            r#"{"subject":{"type":"user","id":"x","properties":{"org":{"id":"acme"},"email":"a@b.c"}},
                "action":{"name":"read"},"resource":{"type":"doc","id":"d","properties":{"public":true}},
                "context":{"level":3}}"#,
        );
        assert_eq!(
            m.target(&e).unwrap(),
            Target {
                tenant: "acme".into(),
                subject: "a@b.c".into(),
                permission: "docs:3:true".into()
            }
        );
    }

    #[test]
    fn bad_mappings_fail_naming_the_key() {
        let e = mapping("tenant = \"t\"\n[[rules]]\npermission = \"docs:{resource.owner}\"")
            .unwrap_err();
        assert!(e.starts_with("`rules[0].permission`"), "{e}");
        assert!(e.contains("resource.owner"), "{e}");
        let e = mapping("tenant = \"t\"").unwrap_err();
        assert!(e.contains("at least one rule"), "{e}");
        let e = mapping("tenant = \"{subject.properties.}\"\n[[rules]]\npermission = \"x\"")
            .unwrap_err();
        assert!(e.starts_with("`tenant`"), "{e}");
        assert!(mapping("tenant = \"t\"\nrulez = []").is_err());
    }

    #[test]
    fn evaluations_fill_in_defaults_and_name_what_is_missing() {
        let request: Evaluations = serde_json::from_str(
            r#"{"subject":{"type":"user","id":"u"},"action":{"name":"read"},
                "evaluations":[{"resource":{"type":"doc","id":"1"}},
                               {"resource":{"type":"doc","id":"2"},"action":{"name":"write"}}],
                "options":{"evaluations_semantic":"deny_on_first_deny","other":1}}"#,
        )
        .unwrap();
        let (items, semantic) = request.items().unwrap();
        assert_eq!(semantic, Semantic::DenyOnFirstDeny);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].action.name, "read");
        assert_eq!(items[1].action.name, "write");
        assert_eq!(items[1].subject.id, "u");
        let request: Evaluations = serde_json::from_str(
            r#"{"subject":{"type":"user","id":"u"},"evaluations":[{"resource":{"type":"doc","id":"1"}}, {}]}"#,
        )
        .unwrap();
        let e = request.items().unwrap_err();
        assert_eq!(
            e,
            "evaluations[0] has no `action`, and the request gives no default"
        );
        let e = serde_json::from_str::<Evaluations>(
            r#"{"options":{"evaluations_semantic":"sometimes"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
    }
}
