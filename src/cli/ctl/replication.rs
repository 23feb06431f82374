//! `rampart ctl status | export | import | watch`: the Replication service.
//!
//! `export` writes the export file's bytes (to stdout or `--file`) and
//! checks them against the digest the server sent; `import` sends a file
//! in chunks, with the file's own digest, to a node that holds no state;
//! `watch` prints the changelog as it happens, one line per event.
//!
//! What the server sent is escaped before it reaches a terminal: watch's
//! rows and the export's summary with `terminal_safe`, watch's JSON lines
//! with `json_line`, and an export written to a terminal (not to a file or
//! a pipe, which get the exact bytes the digest covers) with
//! `TerminalWriter`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::replication::export::format_digest;

use super::output::{
    Format, Report, TerminalWriter, embedded_json, json_line, table, terminal_safe,
};
use super::{Client, CtlError, Failure};
use crate::proto::{self, watch_event::Event};

/// Bytes per Import chunk.
const CHUNK: usize = 1 << 20;

/// `status` arguments.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Also compute the state digest (reads the whole state on the server).
    #[arg(long)]
    pub digest: bool,
}

/// `export` arguments.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Write here instead of stdout.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Only this tenant's part (repeat for more): the header (catalog,
    /// Bridges grants) and its line. Its digest is that of a replica
    /// holding these tenants (`serve --tenants`), not the whole state's.
    #[arg(long = "tenant", value_name = "TENANT")]
    pub tenants: Vec<String>,
}

/// `import` arguments.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The export file; `-` for stdin.
    pub file: PathBuf,
    /// Refuse the file unless it hashes to this (`sha256:…`, as `export`
    /// printed).
    #[arg(long)]
    pub expect_digest: Option<String>,
}

/// `watch` arguments.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Start after this revision (0: the whole retained changelog).
    #[arg(long, default_value_t = 0)]
    pub from_revision: u64,
    /// Only these tenants' changes (and those that concern no tenant).
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Stop after this many changes.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop at the first idle checkpoint (every change so far was printed).
    #[arg(long)]
    pub until_idle: bool,
    /// Print idle checkpoints too.
    #[arg(long)]
    pub checkpoints: bool,
}

/// `status`: the node's revision, history, role and replication status.
pub async fn status(mut client: Client, a: StatusArgs) -> Result<Report, Failure> {
    let r = client
        .replication
        .get_state(proto::GetStateRequest { digest: a.digest })
        .await;
    let s = client.read(r)?;
    let json = json!({
        "revision": s.revision,
        "history": s.history,
        "digest": s.digest,
        "role": s.role,
        "leader": s.leader,
        "oldest_retained": s.oldest_retained,
        "leader_revision": s.leader_revision,
        "lag_revisions": s.lag_revisions,
        "lag_ms": s.lag_ms,
        "reconnects": s.reconnects,
        "rebootstraps": s.rebootstraps,
        "connected": s.connected,
        "watchers": s.watchers,
        "store_writable": s.store_writable,
        "store_error": s.store_error,
        "tenants": s.tenants,
    });
    let mut rows = vec![
        ("role", s.role.clone()),
        ("revision", s.revision.to_string()),
        ("history", s.history.clone()),
        ("oldest retained", s.oldest_retained.to_string()),
        ("watchers", s.watchers.to_string()),
        ("store writable", s.store_writable.to_string()),
        (
            "tenants",
            if s.tenants.is_empty() {
                "all".to_owned()
            } else {
                format!("{} (--tenants)", s.tenants.join(", "))
            },
        ),
    ];
    if !s.store_error.is_empty() {
        rows.push(("store error", s.store_error.clone()));
    }
    if !s.digest.is_empty() {
        rows.push(("digest", s.digest.clone()));
    }
    if s.role == "replica" {
        rows.extend([
            ("leader", s.leader.clone()),
            ("connected", s.connected.to_string()),
            ("leader revision", s.leader_revision.to_string()),
            ("lag (revisions)", s.lag_revisions.to_string()),
            ("lag (ms)", s.lag_ms.to_string()),
            ("reconnects", s.reconnects.to_string()),
            ("rebootstraps", s.rebootstraps.to_string()),
        ]);
    }
    let text = table(
        vec!["FIELD".into(), "VALUE".into()],
        rows.into_iter()
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect(),
    );
    Ok(Report::Custom { json, table: text })
}

/// `export`: the bytes go to the file or stdout; the summary to stderr.
pub async fn export(mut client: Client, a: ExportArgs) -> Result<Report, Failure> {
    let r = client
        .replication
        .export(proto::ExportRequest {
            tenants: a.tenants.clone(),
        })
        .await;
    let mut stream = client.read(r)?;
    let mut out: Box<dyn Write> = match &a.file {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CtlError::Usage(format!("cannot create `{}`: {e}", path.display())))?,
        )),
        // On a terminal, for reading: escaped. Redirected, the exact bytes.
        None if std::io::stdout().is_terminal() => {
            Box::new(TerminalWriter::new(std::io::stdout().lock()))
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let write_failed = |e: std::io::Error| CtlError::Usage(format!("cannot write the export: {e}"));
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut last = None;
    while let Some(chunk) = stream.message().await.map_err(|s| client.fail(s))? {
        hasher.update(&chunk.data);
        bytes += chunk.data.len() as u64;
        out.write_all(&chunk.data).map_err(write_failed)?;
        last = Some((chunk.revision, chunk.digest, chunk.history));
    }
    out.flush().map_err(write_failed)?;
    let Some((revision, stated, history)) = last else {
        return Err(CtlError::Usage("the server sent an empty export".into()).into());
    };
    let actual = format_digest(hasher);
    if stated != actual {
        return Err(CtlError::Usage(format!(
            "the export is damaged: the server's digest is `{stated}`, the bytes received hash to `{actual}`"
        ))
        .into());
    }
    let part = if a.tenants.is_empty() {
        String::new()
    } else {
        format!(" of tenant(s) {}", a.tenants.join(", "))
    };
    eprintln!(
        "{}",
        terminal_safe(&format!(
            "rampart ctl: exported revision {revision}{part} ({bytes} bytes, {actual}, history {history})"
        ))
    );
    Ok(Report::Nothing)
}

/// `import`: the file in chunks, the last with the file's digest.
pub async fn import(mut client: Client, a: ImportArgs, data: Vec<u8>) -> Result<Report, Failure> {
    let mut hasher = Sha256::new();
    hasher.update(&data);
    let digest = format_digest(hasher);
    if let Some(want) = &a.expect_digest
        && *want != digest
    {
        return Err(CtlError::Usage(format!(
            "`{}` hashes to `{digest}`, not `{want}`",
            a.file.display()
        ))
        .into());
    }
    let mut chunks: Vec<proto::ExportChunk> = data
        .chunks(CHUNK)
        .map(|c| proto::ExportChunk {
            data: c.to_vec(),
            ..Default::default()
        })
        .collect();
    match chunks.last_mut() {
        Some(last) => last.digest.clone_from(&digest),
        None => {
            return Err(CtlError::Usage(format!("`{}` is empty", a.file.display())).into());
        }
    }
    let r = client.replication.import(tokio_stream::iter(chunks)).await;
    let done = client.read(r)?;
    let json = json!({
        "revision": done.revision,
        "digest": done.digest,
        "history": done.history,
    });
    let text = format!(
        "imported revision {} ({}), new history {}\n",
        done.revision, done.digest, done.history
    );
    Ok(Report::Custom { json, table: text })
}

/// Reads `import`'s file (or stdin) before connecting.
pub fn read_import(a: &ImportArgs) -> Result<Vec<u8>, CtlError> {
    let mut data = Vec::new();
    if a.file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| CtlError::Usage(format!("cannot read stdin: {e}")))?;
    } else {
        data = std::fs::read(&a.file)
            .map_err(|e| CtlError::Usage(format!("cannot read `{}`: {e}", a.file.display())))?;
    }
    Ok(data)
}

/// The header of `watch`'s table.
const WATCH_HEADER: &str = "REVISION  TIME  KIND  TENANT  MUTATION";

/// A Watch event as `watch` prints it (no line break): a row, or a JSON
/// object with `--output json`, with no control character either way.
/// `None` for an event with nothing in it.
fn watch_line(event: &proto::WatchEvent, format: Format) -> Option<String> {
    let head = event.head_revision;
    let (value, text) = match event.event.as_ref()? {
        Event::Change(c) => {
            let mutation = embedded_json(&String::from_utf8_lossy(&c.mutation));
            let text = format!(
                "{}  {}  {}  {}  {}",
                c.revision,
                if c.time.is_empty() { "-" } else { &c.time },
                c.kind,
                if c.tenant.is_empty() { "-" } else { &c.tenant },
                mutation
            );
            let value = json!({
                "revision": c.revision,
                "time": c.time,
                "kind": c.kind,
                "tenant": c.tenant,
                "mutation": mutation,
                "head_revision": head,
            });
            (value, text)
        }
        Event::Checkpoint(c) => (
            json!({"checkpoint": c.revision, "history": c.history, "head_revision": head}),
            format!("{}  (checkpoint: idle, history {})", c.revision, c.history),
        ),
    };
    Some(match format {
        Format::Json => json_line(&value),
        Format::Table => terminal_safe(&text),
    })
}

/// `watch`: one line per event as it arrives (a table row, or a JSON
/// object per line with `--output json`).
pub async fn watch(mut client: Client, a: WatchArgs, format: Format) -> Result<Report, Failure> {
    let r = client
        .replication
        .watch(proto::WatchRequest {
            from_revision: a.from_revision,
            tenants: a.tenants.clone(),
            history: String::new(),
        })
        .await;
    let mut stream = client.read(r)?;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the watch quietly.
    let mut print = |line: String| {
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_ok()
    };
    let mut changes = 0u64;
    if format == Format::Table && !print(WATCH_HEADER.into()) {
        return Ok(Report::Nothing);
    }
    while let Some(event) = stream.message().await.map_err(|s| client.fail(s))? {
        let printed = match &event.event {
            Some(Event::Change(_)) => {
                changes += 1;
                watch_line(&event, format).is_none_or(&mut print)
            }
            Some(Event::Checkpoint(_)) => {
                if a.until_idle {
                    break;
                }
                !a.checkpoints || watch_line(&event, format).is_none_or(&mut print)
            }
            None => true,
        };
        if !printed || a.count.is_some_and(|n| changes >= n) {
            break;
        }
    }
    Ok(Report::Nothing)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn change(tenant: &str, kind: &str, mutation: &[u8]) -> proto::WatchEvent {
        proto::WatchEvent {
            event: Some(Event::Change(proto::Change {
                revision: 7,
                time: "2026-01-02T03:04:05Z\u{1b}[1A".into(),
                kind: kind.into(),
                tenant: tenant.into(),
                mutation: mutation.to_vec(),
            })),
            head_revision: 9,
        }
    }

    fn printable(line: &str) -> bool {
        !line.chars().any(char::is_control)
    }

    #[test]
    fn watch_rows_escape_what_the_server_sent() {
        // Control characters in the plain fields, inside the mutation's
        // JSON strings (ESC escaped by JSON, U+009B not), and in a mutation
        // that is not JSON at all.
        let event = change(
            "acme\u{1b}]0;pwned\u{7}",
            "grant\r",
            "{\"role\":\"r\\u001b[2J\u{9b}\"}".as_bytes(),
        );
        let row = watch_line(&event, Format::Table).unwrap();
        assert!(printable(&row), "{row:?}");
        assert_eq!(
            row,
            r#"7  2026-01-02T03:04:05Z\u{1b}[1A  grant\r  acme\u{1b}]0;pwned\u{7}  {"role":"r\u001b[2J\u{9b}"}"#
        );
        let raw = change("acme", "grant", b"not json \x1b[2J\x07");
        let row = watch_line(&raw, Format::Table).unwrap();
        assert!(printable(&row), "{row:?}");
        assert!(row.ends_with(r#""not json \u001b[2J\u0007""#), "{row}");

        let line = watch_line(&event, Format::Json).unwrap();
        assert!(printable(&line), "{line:?}");
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["tenant"], "acme\u{1b}]0;pwned\u{7}");
        assert_eq!(doc["mutation"]["role"], "r\u{1b}[2J\u{9b}");
        assert_eq!(doc["head_revision"], 9);
    }

    #[test]
    fn watch_checkpoints_escape_the_history() {
        let event = proto::WatchEvent {
            event: Some(Event::Checkpoint(proto::WatchCheckpoint {
                revision: 3,
                history: "h\u{1b}[2J\u{9b}".into(),
            })),
            head_revision: 3,
        };
        let row = watch_line(&event, Format::Table).unwrap();
        assert_eq!(row, r"3  (checkpoint: idle, history h\u{1b}[2J\u{9b})");
        let line = watch_line(&event, Format::Json).unwrap();
        assert!(printable(&line), "{line:?}");
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["history"], "h\u{1b}[2J\u{9b}");
        let empty = proto::WatchEvent::default();
        assert_eq!(watch_line(&empty, Format::Table), None);
    }
}
