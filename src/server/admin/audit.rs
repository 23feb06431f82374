//! ListAuditLog: the store's audit records, page by page.

use prost::Message;
use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::model::audit::Outcome;
use crate::proto;
use crate::server::auth::confine;
use crate::server::convert::admin::{AuditPage, PAGE_BYTES};

pub(super) async fn list_audit_log(
    engine: &Engine,
    r: Request<proto::ListAuditLogRequest>,
) -> Result<Response<proto::ListAuditLogResponse>, Status> {
    let (who, mut r) = super::caller(r);
    // A confined credential reads its own tenants' records only: the one it
    // names, or its only tenant when it names none.
    if let Some(tenants) = who.as_ref().and_then(|w| w.bounds.tenants.as_deref()) {
        if r.tenant.is_empty()
            && let [only] = tenants
        {
            r.tenant.clone_from(only);
        }
        if r.tenant.is_empty() {
            return Err(Status::permission_denied(format!(
                "credential `{}` is confined to tenant(s) {}: name one of them in `tenant`",
                who.as_ref().map_or("", |w| &w.name),
                crate::model::backticked(tenants)
            )));
        }
        confine(who.as_ref(), &r.tenant)?;
    }
    let no_log = || {
        Status::failed_precondition("this server runs without a store, so it keeps no audit log")
    };
    if !engine.is_durable() {
        return Err(no_log());
    }
    let AuditPage { filter, limit } = AuditPage::try_from(&r)?;
    let Some(mut records) = engine.audit(filter).await.map_err(|e| proto::status(&e))? else {
        return Err(no_log());
    };
    let mut more = records.len() > limit;
    records.truncate(limit);
    let mut entries: Vec<proto::AuditEntry> = records
        .into_iter()
        .map(|a| {
            let (outcome, code, message) = match a.outcome {
                Outcome::Applied => ("applied".to_owned(), String::new(), String::new()),
                Outcome::Refused { code, message } => ("refused".to_owned(), code, message),
            };
            proto::AuditEntry {
                seq: a.seq,
                time: a.time.to_string(),
                actor: a.actor.unwrap_or_default(),
                credential: a.credential,
                revision: a.revision,
                tenant: a.tenant.unwrap_or_default(),
                // A confined credential is not told which other tenants a
                // user of its own also belongs to.
                also_tenants: a
                    .also
                    .into_iter()
                    .filter(|t| who.as_ref().is_none_or(|w| w.may_see(t)))
                    .collect(),
                change: serde_json::to_string(&a.mutation).unwrap_or_default(),
                outcome,
                code,
                message,
            }
        })
        .collect();
    // A page stops early once its entries pass PAGE_BYTES (keeping one).
    let mut bytes = 0;
    if let Some(cut) = entries.iter().position(|e| {
        bytes += e.encoded_len();
        bytes >= PAGE_BYTES
    }) && cut + 1 < entries.len()
    {
        entries.truncate(cut + 1);
        more = true;
    }
    let next_page_token = if more {
        entries
            .last()
            .map(|e| e.seq.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(proto::ListAuditLogResponse {
        entries,
        next_page_token,
    }))
}
