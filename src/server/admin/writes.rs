//! The Admin changes: each request becomes one `Mutation`
//! (`convert::admin`), submitted to the engine's one writer as its actor.

use tonic::{Request, Response, Status};

use super::{AdminService, MutationResult, acting_as, caller};
use crate::engine::{Committed, SubmitError};
use crate::model::rules::Actor;
use crate::model::{HasKind, Mutation};
use crate::proto;
use crate::server::auth::{Principal, Scope};
use crate::server::convert::FieldError;
use crate::server::convert::admin::{ChangeRequest, actor};

/// Any change request: converted to its mutation, then submitted.
pub(super) async fn change<R>(service: &AdminService, request: Request<R>) -> MutationResult
where
    R: ChangeRequest + Send + Sync,
    for<'a> Mutation: TryFrom<&'a R, Error = FieldError>,
{
    let (who, r) = caller(request);
    let m = Mutation::try_from(&r)?;
    submit(service, who.as_ref(), r.actor(), r.dry_run(), m).await
}

/// Submits a change. `who` is the authenticated caller (`None` when the
/// server runs without credentials): acting as the operator (an empty
/// `actor`) needs its `operator` scope, and the audit log records its
/// name as the credential.
async fn submit(
    service: &AdminService,
    who: Option<&Principal>,
    actor_name: &str,
    dry_run: bool,
    mutation: Mutation,
) -> MutationResult {
    let actor_name = acting_as(who, actor_name)?;
    if let Some(who) = who
        && actor_name.is_empty()
        && !who.has(Scope::Operator)
    {
        return Err(Status::permission_denied(format!(
            "acting as the operator (an empty `actor`) needs the `operator` scope; `{}` has {}",
            who.name, who.scopes
        )));
    }
    if let Some(leader) = &service.leader {
        return Err(Status::failed_precondition(format!(
            "this node is a read replica: send admin calls to the leader at {leader}"
        )));
    }
    let actor = actor(actor_name)?;
    let credential = match (who, &actor) {
        (Some(who), _) => &*who.name,
        (None, Actor::Operator) => "operator",
        (None, Actor::User(_)) => "user",
    };
    let kind = mutation.kind();
    // Judged against the state the change is made to (a race with another
    // writer can only make a warning stale, never refuse anything).
    let warnings = crate::model::rules::warnings(service.engine.load().state(), &mutation);
    match service
        .engine
        .submit_confined(
            actor,
            credential,
            who.and_then(|w| w.bounds.tenants.clone()),
            mutation,
            dry_run,
        )
        .await
    {
        Ok(Committed {
            revision,
            dry_run,
            mutation,
        }) => {
            tracing::info!(kind, revision, dry_run, "mutation accepted");
            Ok(Response::new(proto::MutationResponse {
                revision,
                dry_run,
                change: serde_json::to_string(&mutation).unwrap_or_default(),
                warnings,
            }))
        }
        Err(SubmitError::Refused(e)) => {
            tracing::info!(kind, refusal = ?e.refusal(), message = %e, "mutation refused");
            Err(proto::status(&e))
        }
        Err(SubmitError::Store(e)) => {
            tracing::error!(kind, error = %e, "store failed");
            // By the failure's kind, as everywhere: a failed store is
            // UNAVAILABLE, a corrupt one INTERNAL.
            Err(Status::new(
                proto::code(e.kind()),
                format!("the change was not committed: {e}"),
            ))
        }
        Err(e @ SubmitError::ReadOnly(_)) => Err(proto::status(&e)),
    }
}
