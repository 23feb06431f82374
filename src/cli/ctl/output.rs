//! How `rampart ctl` prints: every command builds a [`Report`] once, and
//! the chosen [`Format`] renders it, either as aligned columns for people
//! or as one JSON document for scripts. Owns the table layout and the JSON
//! shapes; knows nothing about gRPC beyond the messages it renders.

use serde_json::{Map, Value, json};
use tonic::Code;

use crate::proto;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header row.
    Table,
    /// One JSON document per command, snake_case keys.
    Json,
}

/// A column of a listing: its header and the JSON key it shows.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub key: &'static str,
}

/// Shorthand for a [`Column`].
pub const fn col(header: &'static str, key: &'static str) -> Column {
    Column { header, key }
}

/// What a command has to say, before it is rendered.
#[derive(Debug)]
pub enum Report {
    /// Mutations, in the order they were sent. One renders as a single
    /// object; several (a `grant add` of many patterns) as `items`.
    Mutations(Vec<proto::MutationResponse>),
    /// Items with the columns a table shows; `meta` holds the other
    /// top-level JSON keys (`revision`, `next_page_token`).
    List {
        columns: &'static [Column],
        items: Vec<Value>,
        meta: Map<String, Value>,
    },
    /// Anything else: the JSON document and the table text, built together.
    Custom { json: Value, table: String },
    /// Nothing more to print: the command wrote its output as it went
    /// (`watch`, `export`).
    Nothing,
}

impl Report {
    /// A listing at `revision`.
    pub fn list(columns: &'static [Column], items: Vec<Value>, revision: u64) -> Self {
        let mut meta = Map::new();
        meta.insert("revision".into(), revision.into());
        Self::List {
            columns,
            items,
            meta,
        }
    }

    /// The text to print on stdout in `format` (ends with a newline unless empty).
    pub fn render(&self, format: Format) -> String {
        if matches!(self, Self::Nothing) {
            return String::new();
        }
        match format {
            Format::Json => {
                let mut s = self.json().to_string();
                s.push('\n');
                s
            }
            Format::Table => terminal_safe(&self.table()),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Mutations(done) => match done.as_slice() {
                [one] => mutation_json(one),
                many => {
                    let mut doc = Map::new();
                    doc.insert(
                        "items".into(),
                        many.iter().map(mutation_json).collect::<Vec<_>>().into(),
                    );
                    doc.insert(
                        "revision".into(),
                        many.last().map_or(0, |m| m.revision).into(),
                    );
                    doc.insert("dry_run".into(), many.iter().any(|m| m.dry_run).into());
                    Value::Object(doc)
                }
            },
            Self::List { items, meta, .. } => {
                let mut doc = Map::new();
                doc.insert("items".into(), Value::Array(items.clone()));
                doc.extend(meta.clone());
                Value::Object(doc)
            }
            Self::Custom { json, .. } => json.clone(),
            Self::Nothing => Value::Null,
        }
    }

    fn table(&self) -> String {
        match self {
            Self::Mutations(done) => done.iter().map(mutation_line).collect(),
            Self::List { columns, items, .. } => {
                let header = columns.iter().map(|c| c.header.to_owned()).collect();
                let rows = items
                    .iter()
                    .map(|item| columns.iter().map(|c| cell(&item[c.key])).collect())
                    .collect();
                table(header, rows)
            }
            Self::Custom { table, .. } => table.clone(),
            Self::Nothing => String::new(),
        }
    }
}

/// A mutation's JSON: the revision, whether it was a dry run, and the change
/// as the server recorded it (parsed, so scripts need not decode twice).
fn mutation_json(m: &proto::MutationResponse) -> Value {
    json!({
        "revision": m.revision,
        "dry_run": m.dry_run,
        "change": embedded_json(&m.change),
    })
}

fn mutation_line(m: &proto::MutationResponse) -> String {
    if m.dry_run {
        format!("dry run: would be revision {}\n{}\n", m.revision, m.change)
    } else {
        format!("ok revision {}\n", m.revision)
    }
}

/// A JSON text the server sent inside a string field, as a value; the
/// string itself if it does not parse.
pub fn embedded_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Text for a terminal: every control character but the line breaks
/// between rows escaped (`\u{1b}`), so stored text cannot drive the
/// terminal (ESC sequences, carriage returns, NUL).
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value as a table cell: strings bare, lists comma-joined, empty as `-`
/// so that every row has the same number of whitespace-separated fields.
pub fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        // A line break inside a cell would break the row.
        Value::String(s) => s.replace('\n', "\\n"),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    if s.is_empty() { "-".to_owned() } else { s }
}

/// Rows under a header, each column as wide as its widest cell, two spaces
/// apart, no trailing spaces.
pub fn table(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(c.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A gRPC code as gRPC spells it: `PERMISSION_DENIED`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A decision as a word: `allow`, `deny`.
pub fn decision_name(d: proto::Decision) -> String {
    enum_word(d.as_str_name(), "DECISION_")
}

/// A reason as a word: `granted`, `no_matching_grant`.
pub fn reason_name(r: proto::Reason) -> String {
    enum_word(r.as_str_name(), "REASON_")
}

fn enum_word(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let t = table(
            vec!["ROLE".into(), "MEMBERS".into(), "DESCRIPTION".into()],
            vec![
                vec!["Administrators".into(), "2".into(), "-".into()],
                vec!["x".into(), "10".into(), "a longer text".into()],
            ],
        );
        assert_eq!(
            t,
            "ROLE            MEMBERS  DESCRIPTION\n\
             Administrators  2        -\n\
             x               10       a longer text\n"
        );
    }

    #[test]
    fn cells_fill_empty_values_and_join_lists() {
        assert_eq!(cell(&json!("")), "-");
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&json!(["a", "group:b"])), "a,group:b");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!(true)), "yes");
    }

    #[test]
    fn mutations_render_one_object_or_items() {
        let m = |revision, dry_run| proto::MutationResponse {
            revision,
            dry_run,
            change: r#"{"kind":"grant"}"#.into(),
        };
        let one = Report::Mutations(vec![m(4, false)]);
        assert_eq!(one.render(Format::Table), "ok revision 4\n");
        let doc: Value = serde_json::from_str(&one.render(Format::Json)).unwrap();
        assert_eq!(doc["revision"], 4);
        assert_eq!(doc["change"]["kind"], "grant");
        let dry = Report::Mutations(vec![m(5, true)]);
        assert_eq!(
            dry.render(Format::Table),
            "dry run: would be revision 5\n{\"kind\":\"grant\"}\n"
        );
        let many = Report::Mutations(vec![m(4, false), m(5, false)]);
        let doc: Value = serde_json::from_str(&many.render(Format::Json)).unwrap();
        assert_eq!(doc["revision"], 5);
        assert_eq!(doc["items"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn tables_escape_control_characters() {
        const COLUMNS: &[Column] = &[col("ROLE", "name"), col("DESCRIPTION", "description")];
        let report = Report::list(
            COLUMNS,
            vec![json!({"name": "r", "description": "a\u{1b}[2J\r\0b\nc"})],
            1,
        );
        let out = report.render(Format::Table);
        assert_eq!(out, "ROLE  DESCRIPTION\nr     a\\u{1b}[2J\\r\\u{0}b\\nc\n");
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        let custom = Report::Custom {
            json: Value::Null,
            table: "x\u{1b}]0;pwned\u{7}\n".into(),
        };
        assert_eq!(custom.render(Format::Table), "x\\u{1b}]0;pwned\\u{7}\n");
        // JSON escapes them itself.
        assert!(!report.render(Format::Json).contains('\u{1b}'));
    }

    #[test]
    fn names_follow_grpc_spelling() {
        assert_eq!(code_name(Code::PermissionDenied), "PERMISSION_DENIED");
        assert_eq!(decision_name(proto::Decision::Allow), "allow");
        assert_eq!(
            reason_name(proto::Reason::NoMatchingGrant),
            "no_matching_grant"
        );
    }
}
