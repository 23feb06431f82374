//! How `rampart ctl` prints: every command builds a [`Report`] once, and
//! the chosen [`Format`] renders it, either as aligned columns for people
//! or as one JSON document for scripts. Owns the table layout and the JSON
//! shapes; knows nothing about gRPC beyond the messages it renders.
//!
//! Nothing the server sent reaches a terminal raw: tables and other text
//! go through [`terminal_safe`], JSON through [`json_line`], and bytes
//! (an export on a terminal) through [`TerminalWriter`].

use std::io::{self, Write};

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
                let mut s = json_line(&self.json());
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
        "warnings": m.warnings,
    })
}

fn mutation_line(m: &proto::MutationResponse) -> String {
    let mut out = if m.dry_run {
        format!("dry run: would be revision {}\n{}\n", m.revision, m.change)
    } else {
        format!("ok revision {}\n", m.revision)
    };
    for w in &m.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
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

/// A JSON document on one line, with no control character in it.
/// serde_json escapes the C0 controls (ESC included) itself, but writes DEL
/// and the C1 controls (U+0080 to U+009F; U+009B is a CSI to some
/// terminals) as they are. Those can only stand inside a string, where
/// `\u009b` is the same character to every JSON reader, so they are
/// written that way.
pub fn json_line(value: &Value) -> String {
    let text = value.to_string();
    if !text.chars().any(char::is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes on their way to a terminal, written as [`terminal_safe`] text: a
/// character split between two writes is held until its last byte comes,
/// and bytes that are not UTF-8 show as U+FFFD. `flush` ends the text: the
/// bytes of a character still unfinished then show as U+FFFD too.
#[derive(Debug)]
pub struct TerminalWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> TerminalWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }
}

impl<W: Write> Write for TerminalWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        // The start of a character whose end is still to come.
                        None => {
                            rest = bad;
                            break;
                        }
                        Some(n) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = bad.get(n..).unwrap_or_default();
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        self.inner.write_all(terminal_safe(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.inner
                .write_all(char::REPLACEMENT_CHARACTER.to_string().as_bytes())?;
        }
        self.inner.flush()
    }
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
    crate::telemetry::metrics::code_name(code as usize)
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
            warnings: Vec::new(),
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
    fn json_escapes_the_controls_serde_json_leaves_raw() {
        let value = json!({"description": "a\u{1b}[2J \u{7f} \u{9b}31m \\\u{85} é\n"});
        // serde_json alone leaves DEL and the C1 controls as they are.
        assert!(value.to_string().contains('\u{9b}'));
        let line = json_line(&value);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert_eq!(
            line,
            r#"{"description":"a\u001b[2J \u007f \u009b31m \\\u0085 é\n"}"#
        );
        // The same document to a JSON reader.
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), value);
        const COLUMNS: &[Column] = &[col("ROLE", "name")];
        let report = Report::list(COLUMNS, vec![json!({"name": "r\u{9b}2J"})], 1);
        let out = report.render(Format::Json);
        assert!(out.contains(r"r\u009b2J"), "{out}");
        assert!(!out.trim_end().chars().any(char::is_control), "{out:?}");
    }

    #[test]
    fn bytes_for_a_terminal_are_escaped_across_writes() {
        let mut out = Vec::new();
        let mut w = TerminalWriter::new(&mut out);
        // ESC, and é and U+009B (a C1 CSI) each split between two writes.
        for part in [
            &b"{\"a\":\"x\x1b[2J\xc3"[..],
            b"\xa9\xc2",
            b"\x9b1m\"}\n",
            b"\xff\r\n",
            b"\xe2\x82",
        ] {
            w.write_all(part).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "{\"a\":\"x\\u{1b}[2J\u{e9}\\u{9b}1m\"}\n\u{fffd}\\r\n\u{fffd}"
        );
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
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
