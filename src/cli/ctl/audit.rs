//! `rampart ctl audit`: the audit log, page by page, every change and
//! every refused attempt with who tried it.

use clap::Args;
use serde_json::json;

use super::admin::pages;
use super::args::Paging;
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
    /// Stop after this many entries in all (default 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Entries per request (default: the server's, 100; at most 1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub page_size: Option<u32>,
    /// Every entry: follow the pages to the end.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Start after the page that returned this token.
    #[arg(long, conflicts_with = "all")]
    pub page_token: Option<String>,
}

/// The entries `audit` shows without `--limit` or `--all`.
const DEFAULT_LIMIT: u32 = 100;
/// The server's entries per page when asked for none.
const SERVER_PAGE: u32 = 100;

/// `audit`: the first `--limit` entries (100 by default), page by page, or
/// every entry with `--all`. When more follow, that is announced on stderr
/// with the token to go on from.
pub async fn run(client: Client, a: AuditArgs) -> Result<Report, Failure> {
    const COLUMNS: &[Column] = &[
        col("SEQ", "seq"),
        col("TIME", "time"),
        col("REVISION", "revision"),
        col("TENANT", "tenant"),
        col("ALSO_TENANTS", "also_tenants"),
        col("ACTOR", "actor"),
        col("CREDENTIAL", "credential"),
        col("OUTCOME", "outcome"),
        col("CODE", "code"),
        col("CHANGE", "change"),
        col("MESSAGE", "message"),
    ];
    let paging = Paging {
        limit: (!a.all).then_some(a.limit.unwrap_or(DEFAULT_LIMIT)),
        page_size: a.page_size,
    };
    let call = |page_size, page_token| {
        let mut admin = client.admin.clone();
        let r = proto::ListAuditLogRequest {
            tenant: a.tenant.clone().unwrap_or_default(),
            actor: a.actor.clone().unwrap_or_default(),
            from_revision: a.from_revision.unwrap_or(0),
            to_revision: a.to_revision.unwrap_or(0),
            page_size,
            page_token,
        };
        async move { admin.list_audit_log(r).await }
    };
    let rows = |page: proto::ListAuditLogResponse| {
        let items = page.entries.iter().map(|e| {
            json!({
                "seq": e.seq,
                "time": e.time,
                "revision": e.revision,
                "tenant": e.tenant,
                "also_tenants": e.also_tenants,
                "actor": e.actor,
                "credential": e.credential,
                "outcome": e.outcome,
                "code": e.code,
                "change": embedded_json(&e.change),
                "message": e.message,
            })
        });
        (items.collect(), 0, page.next_page_token)
    };
    let start = a.page_token.clone().unwrap_or_default();
    let (items, _, token) = pages(&client, paging, SERVER_PAGE, start, call, rows).await?;
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
