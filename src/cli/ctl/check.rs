//! The data-plane verbs of `rampart ctl`: `check` (one decision, with its
//! explanation on request) and `batch-check` (many, read from a file or
//! stdin, answered in input order). A deny is an answer, not an error.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::output::{Report, code_name, decision_name, reason_name, table};
use super::{Client, CtlError, Failure};
use crate::proto::{
    self, BatchCheckItem, BatchCheckRequest, CheckRequest, Consistency,
    batch_check_result::Outcome, consistency::Requirement,
};

/// `check` arguments.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[arg(long)]
    pub tenant: String,
    /// A user id.
    #[arg(long)]
    pub subject: String,
    /// A permission path, e.g. `documents:view`.
    #[arg(long)]
    pub permission: String,
    /// Show the deciding grants, their roles and how each reached the subject.
    #[arg(long)]
    pub explain: bool,
    /// Answer only from this revision or newer (e.g. the one a change returned).
    #[arg(long)]
    pub at_least_revision: Option<u64>,
    /// Exit 0 on allow and 3 on deny (by default a deny exits 0 too).
    #[arg(long)]
    pub exit_code: bool,
}

/// `batch-check` arguments.
#[derive(Debug, Clone, Args)]
pub struct BatchCheckArgs {
    /// Requests, one per line: `TENANT SUBJECT PERMISSION [CORRELATION_ID]`
    /// (`#` comments), or a JSON array of
    /// `{"tenant","subject","permission","correlation_id"}` if the input
    /// starts with `[`. `-` or nothing: stdin.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Items per BatchCheck call (the server's limit is 1000 by default).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chunk: u32,
    /// Answer only from this revision or newer.
    #[arg(long)]
    pub at_least_revision: Option<u64>,
}

fn consistency(at_least: Option<u64>) -> Option<Consistency> {
    at_least.map(|r| Consistency {
        requirement: Some(Requirement::AtLeastRevision(r)),
    })
}

pub async fn check(mut client: Client, a: CheckArgs) -> Result<Report, Failure> {
    let r = client
        .authz
        .check(CheckRequest {
            tenant: a.tenant,
            subject: a.subject,
            permission: a.permission,
            consistency: consistency(a.at_least_revision),
            explain: a.explain,
        })
        .await
        .map_err(|s| client.fail(s))?
        .into_inner();
    let report = check_report(&r);
    if a.exit_code && r.decision() != proto::Decision::Allow {
        return Err(Failure {
            printed: Some(report),
            error: CtlError::Exit(3),
        });
    }
    Ok(report)
}

fn check_report(r: &proto::CheckResponse) -> Report {
    let decision = decision_name(r.decision());
    let reason = reason_name(r.reason());
    let mut json = json!({
        "decision": decision,
        "reason": reason,
        "revision": r.revision,
    });
    let mut text = table(
        ["DECISION", "REASON", "REVISION"]
            .map(String::from)
            .to_vec(),
        vec![vec![decision, reason, r.revision.to_string()]],
    );
    if let Some(e) = &r.explanation {
        let grants: Vec<Value> = e
            .grants
            .iter()
            .map(|g| {
                json!({
                    "role": g.role,
                    "effect": g.effect,
                    "pattern": g.pattern,
                    "via": g.via,
                    "expires": g.expires,
                })
            })
            .collect();
        json["explanation"] = json!({
            "user": e.user,
            "catalog_entry": e.catalog_entry,
            "catalog_stability": e.catalog_stability,
            "effective_roles": e.effective_roles,
            "grants": grants,
        });
        let or_none = |s: String| if s.is_empty() { "(none)".to_owned() } else { s };
        text.push_str(&format!(
            "\nuser:            {}\ncatalog entry:   {}\neffective roles: {}\n",
            or_none(e.user.clone()),
            if e.catalog_stability.is_empty() || e.catalog_stability == "stable" {
                or_none(e.catalog_entry.clone())
            } else {
                format!("{} ({})", e.catalog_entry, e.catalog_stability)
            },
            or_none(e.effective_roles.join(", ")),
        ));
        if !e.grants.is_empty() {
            text.push('\n');
            text.push_str(&table(
                ["ROLE", "EFFECT", "PATTERN", "EXPIRES", "VIA"]
                    .map(String::from)
                    .to_vec(),
                e.grants
                    .iter()
                    .map(|g| {
                        vec![
                            g.role.clone(),
                            g.effect.clone(),
                            g.pattern.clone(),
                            if g.expires.is_empty() {
                                "-".to_owned()
                            } else {
                                g.expires.clone()
                            },
                            g.via.join(" -> "),
                        ]
                    })
                    .collect(),
            ));
        }
    }
    Report::Custom { json, table: text }
}

/// One request of the input: where it was, and the item or why it is not one.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The line number (text input) or 1-based position (JSON input).
    pub line: usize,
    pub item: Result<BatchCheckItem, ItemError>,
}

/// Why an input item is not a request (the item keeps its place).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error(
        "line {line}: expected `TENANT SUBJECT PERMISSION [CORRELATION_ID]`, got {fields} fields"
    )]
    Fields { line: usize, fields: usize },
    #[error("item {item}: expected an object")]
    NotObject { item: usize },
    #[error("item {item}: `{field}` is missing")]
    Missing { item: usize, field: &'static str },
    #[error("item {item}: `{field}` must be a string, not `{got}`")]
    NotString {
        item: usize,
        field: &'static str,
        got: String,
    },
}

/// Input that is not requests at all: JSON that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("the input is not a JSON array: {0}")]
pub struct InputError(serde_json::Error);

/// Reads the requests: the file, or stdin for `-` or no file.
pub fn read_input(a: &BatchCheckArgs) -> Result<Vec<Line>, CtlError> {
    let text = match &a.input {
        Some(path) if path.as_os_str() != "-" => std::fs::read_to_string(path)
            .map_err(|e| CtlError::Usage(format!("cannot read `{}`: {e}", path.display())))?,
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CtlError::Usage(format!("cannot read stdin: {e}")))?;
            text
        }
    };
    let lines = parse_input(&text).map_err(|e| CtlError::Usage(e.to_string()))?;
    if lines.is_empty() {
        return Err(CtlError::Usage("no requests in the input".into()));
    }
    Ok(lines)
}

/// Parses requests: a JSON array if the text starts with `[`, else lines of
/// `TENANT SUBJECT PERMISSION [CORRELATION_ID]`. A bad item keeps its place
/// (as an error); only JSON that does not parse at all fails the input.
pub fn parse_input(text: &str) -> Result<Vec<Line>, InputError> {
    if text.trim_start().starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(text).map_err(InputError)?;
        return Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| Line {
                line: i + 1,
                item: json_item(i + 1, v),
            })
            .collect());
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map(|(n, l)| Line {
            line: n + 1,
            item: text_item(n + 1, l),
        })
        .collect())
}

fn text_item(n: usize, line: &str) -> Result<BatchCheckItem, ItemError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (tenant, subject, permission, id) = match fields.as_slice() {
        [t, s, p] => (t, s, p, ""),
        [t, s, p, id] => (t, s, p, *id),
        other => {
            return Err(ItemError::Fields {
                line: n,
                fields: other.len(),
            });
        }
    };
    Ok(BatchCheckItem {
        tenant: (*tenant).into(),
        subject: (*subject).into(),
        permission: (*permission).into(),
        correlation_id: id.into(),
    })
}

fn json_item(item: usize, v: &Value) -> Result<BatchCheckItem, ItemError> {
    let Value::Object(o) = v else {
        return Err(ItemError::NotObject { item });
    };
    let field = |field: &'static str, required: bool| match o.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None | Some(Value::Null) => Err(ItemError::Missing { item, field }),
        Some(other) => Err(ItemError::NotString {
            item,
            field,
            got: other.to_string(),
        }),
    };
    Ok(BatchCheckItem {
        tenant: field("tenant", true)?.into(),
        subject: field("subject", true)?.into(),
        permission: field("permission", true)?.into(),
        correlation_id: field("correlation_id", false)?.into(),
    })
}

/// Sends the good items in chunks (each later chunk at least as fresh as
/// the first), then prints one row per input item, in input order.
pub async fn batch_check(
    mut client: Client,
    a: BatchCheckArgs,
    lines: Vec<Line>,
) -> Result<Report, Failure> {
    let items: Vec<&BatchCheckItem> = lines.iter().filter_map(|l| l.item.as_ref().ok()).collect();
    let mut results: Vec<proto::BatchCheckResult> = Vec::with_capacity(items.len());
    let mut revision = 0;
    let mut at_least = a.at_least_revision;
    for chunk in items.chunks(a.chunk as usize) {
        let r = client
            .authz
            .batch_check(BatchCheckRequest {
                items: chunk.iter().map(|i| (*i).clone()).collect(),
                consistency: consistency(at_least),
                explain: false,
            })
            .await
            .map_err(|s| client.fail(s))?
            .into_inner();
        if r.results.len() != chunk.len() {
            return Err(CtlError::Status(Box::new(tonic::Status::internal(format!(
                "the server answered {} results for {} items",
                r.results.len(),
                chunk.len()
            ))))
            .into());
        }
        revision = revision.max(r.revision);
        at_least = Some(at_least.unwrap_or(0).max(r.revision));
        results.extend(r.results);
    }
    let mut answers = results.into_iter();
    let mut rows = Vec::with_capacity(lines.len());
    let mut json_items = Vec::with_capacity(lines.len());
    let mut failed = 0;
    for l in &lines {
        let (item, outcome) = match &l.item {
            Ok(item) => (
                item.clone(),
                answers
                    .next()
                    .and_then(|r| r.outcome)
                    .ok_or_else(|| (tonic::Code::Internal, "no answer".to_owned()))
                    .and_then(|o| match o {
                        Outcome::Response(r) => Ok(r),
                        Outcome::Error(e) => Err((tonic::Code::from(e.code), e.message)),
                    }),
            ),
            Err(why) => (
                BatchCheckItem::default(),
                Err((tonic::Code::InvalidArgument, why.to_string())),
            ),
        };
        let mut doc = json!({
            "line": l.line,
            "tenant": item.tenant,
            "subject": item.subject,
            "permission": item.permission,
            "correlation_id": item.correlation_id,
        });
        let (decision, reason) = match outcome {
            Ok(r) => {
                let (d, why) = (decision_name(r.decision()), reason_name(r.reason()));
                doc["decision"] = d.clone().into();
                doc["reason"] = why.clone().into();
                doc["revision"] = r.revision.into();
                (d, why)
            }
            Err((code, message)) => {
                failed += 1;
                doc["error"] = json!({ "code": code_name(code), "message": message });
                (
                    "error".to_owned(),
                    format!("{}: {message}", code_name(code)),
                )
            }
        };
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        rows.push(vec![
            l.line.to_string(),
            dash(&item.tenant),
            dash(&item.subject),
            dash(&item.permission),
            dash(&item.correlation_id),
            decision,
            reason,
        ]);
        json_items.push(doc);
    }
    let report = Report::Custom {
        json: json!({ "items": json_items, "revision": revision }),
        table: table(
            [
                "LINE",
                "TENANT",
                "SUBJECT",
                "PERMISSION",
                "CORRELATION_ID",
                "DECISION",
                "REASON",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        ),
    };
    if failed > 0 {
        return Err(Failure {
            printed: Some(report),
            error: CtlError::Items {
                failed,
                total: lines.len(),
            },
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_input_keeps_bad_lines_in_place() {
        let lines =
            parse_input("# header\nacme alice documents:view\n\nacme bob\nacme bob x:y c-1\n")
                .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].line, 2);
        assert_eq!(lines[0].item.as_ref().unwrap().subject, "alice");
        assert!(
            lines[1]
                .item
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("line 4: expected")
        );
        assert_eq!(lines[2].item.as_ref().unwrap().correlation_id, "c-1");
    }

    #[test]
    fn json_input_is_an_array_of_objects() {
        let lines = parse_input(
            r#" [{"tenant":"acme","subject":"alice","permission":"p","correlation_id":"1"},
                 {"tenant":"acme","subject":"bob"}, 3]"#,
        )
        .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].item.as_ref().unwrap().correlation_id, "1");
        assert_eq!(
            lines[1].item.as_ref().unwrap_err().to_string(),
            "item 2: `permission` is missing"
        );
        assert!(lines[2].item.is_err());
        assert!(parse_input("[not json").is_err());
    }
}
