//! `rampart ctl audit`: the audit log, page by page, every change and
//! every refused attempt with who tried it.

use clap::Args;
use serde_json::json;

use super::output::{Column, Report, col, embedded_json};
use super::{Client, Failure};
use crate::proto;

/// `audit` arguments.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only changes to this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only changes by this user (`operator` for operator credentials).
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub from_revision: Option<u64>,
    #[arg(long)]
    pub to_revision: Option<u64>,
    /// Entries per page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub limit: u32,
    /// Follow the pages to the end.
    #[arg(long)]
    pub all: bool,
    /// Start after the page that returned this token.
    #[arg(long, conflicts_with = "all")]
    pub page_token: Option<String>,
}

/// `audit`: one page, or every page with `--all`. Without `--all`, a
/// further page is announced on stderr with its token.
pub async fn run(mut client: Client, a: AuditArgs) -> Result<Report, Failure> {
    const COLUMNS: &[Column] = &[
        col("SEQ", "seq"),
        col("TIME", "time"),
        col("REVISION", "revision"),
        col("TENANT", "tenant"),
        col("ACTOR", "actor"),
        col("CREDENTIAL", "credential"),
        col("OUTCOME", "outcome"),
        col("CODE", "code"),
        col("CHANGE", "change"),
        col("MESSAGE", "message"),
    ];
    let mut items = Vec::new();
    let mut token = a.page_token.clone().unwrap_or_default();
    loop {
        let r = client
            .admin
            .list_audit_log(proto::ListAuditLogRequest {
                tenant: a.tenant.clone().unwrap_or_default(),
                actor: a.actor.clone().unwrap_or_default(),
                from_revision: a.from_revision.unwrap_or(0),
                to_revision: a.to_revision.unwrap_or(0),
                page_size: a.limit,
                page_token: token.clone(),
            })
            .await;
        let page = client.read(r)?;
        items.extend(page.entries.iter().map(|e| {
            json!({
                "seq": e.seq,
                "time": e.time,
                "revision": e.revision,
                "tenant": e.tenant,
                "actor": e.actor,
                "credential": e.credential,
                "outcome": e.outcome,
                "code": e.code,
                "change": embedded_json(&e.change),
                "message": e.message,
            })
        }));
        token = page.next_page_token;
        if token.is_empty() || !a.all {
            break;
        }
    }
    if !token.is_empty() {
        eprintln!("rampart ctl: more entries follow: --all, or --page-token {token}");
    }
    let mut meta = serde_json::Map::new();
    meta.insert("next_page_token".into(), token.into());
    Ok(Report::List {
        columns: COLUMNS,
        items,
        meta,
    })
}
