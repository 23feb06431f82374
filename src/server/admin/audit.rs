//! ListAuditLog: the store's audit records, page by page.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::engine::Engine;
use crate::proto;
use crate::server::convert::admin::optional;
use crate::store::AuditFilter;

pub(super) async fn list_audit_log(
    engine: &Engine,
    r: Request<proto::ListAuditLogRequest>,
) -> Result<Response<proto::ListAuditLogResponse>, Status> {
    let r = r.into_inner();
    let Some(store) = engine.store() else {
        return Err(Status::failed_precondition(
            "this server runs without a store, so it keeps no audit log",
        ));
    };
    let limit = match r.page_size {
        0 => 100,
        n if n > 1_000 => {
            return Err(Status::invalid_argument(format!(
                "`page_size` {n} is more than the limit of 1000"
            )));
        }
        n => n as usize,
    };
    let after_seq = if r.page_token.is_empty() {
        0
    } else {
        r.page_token
            .parse()
            .map_err(|_| Status::invalid_argument("`page_token` is not one this server issued"))?
    };
    let filter = AuditFilter {
        tenant: optional(&r.tenant),
        actor: optional(&r.actor),
        from_revision: (r.from_revision > 0).then_some(r.from_revision),
        to_revision: (r.to_revision > 0).then_some(r.to_revision),
        after_seq,
        limit: limit + 1,
    };
    let store = Arc::clone(store);
    let mut records = tokio::task::spawn_blocking(move || store.audit(&filter))
        .await
        .map_err(|e| Status::internal(format!("audit task failed: {e}")))?
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_page_token = if more {
        records
            .last()
            .map(|r| r.seq.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let entries = records
        .into_iter()
        .map(|a| {
            let (outcome, code, message) = match a.outcome {
                crate::store::Outcome::Applied => {
                    ("applied".to_owned(), String::new(), String::new())
                }
                crate::store::Outcome::Refused { code, message } => {
                    ("refused".to_owned(), code, message)
                }
            };
            proto::AuditEntry {
                seq: a.seq,
                time: a.time.to_string(),
                actor: a.actor.unwrap_or_default(),
                credential: a.credential,
                revision: a.revision,
                tenant: a.tenant.unwrap_or_default(),
                change: serde_json::to_string(&a.mutation).unwrap_or_default(),
                outcome,
                code,
                message,
            }
        })
        .collect();
    Ok(Response::new(proto::ListAuditLogResponse {
        entries,
        next_page_token,
    }))
}
