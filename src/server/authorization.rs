//! The `rampart.v1.Authorization` service: Check, BatchCheck and the two
//! listings, each answered from one snapshot whose revision it reports.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Code, Request, Response, Status};
use tracing::Span;

use super::auth::{Principal, confine};
use super::convert::{self, MAX_CORRELATION_BYTES};
use crate::engine::Engine;
use crate::model::Timestamp;
use crate::policy::{self, Decision, Reason, Snapshot, TenantSnapshot};
use crate::proto::{self, authorization_server::Authorization};
use crate::telemetry::DecisionLog;
use crate::telemetry::decision_log::Record;
use crate::telemetry::metrics::{CheckMetrics, CheckTally, decision_name};

/// Data-plane settings.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Most items in one BatchCheck.
    pub max_batch: usize,
    /// Answer a permission the catalog does not cover with `INVALID_ARGUMENT`
    /// instead of `DENY UNKNOWN_PERMISSION`.
    pub strict_catalog: bool,
    /// How long `at_least_revision` waits for a newer snapshot.
    pub consistency_wait: Duration,
    /// In-flight, message size, deadline and keepalive limits of the server.
    pub limits: super::limits::Limits,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            max_batch: 1_000,
            strict_catalog: false,
            consistency_wait: Duration::from_millis(100),
            limits: super::limits::Limits::default(),
        }
    }
}

/// Default and largest page of ListSubjects.
const DEFAULT_PAGE: usize = 1_000;
const MAX_PAGE: usize = 10_000;

/// The service.
#[derive(Debug, Clone)]
pub struct AuthorizationService {
    engine: Arc<Engine>,
    config: Arc<DataPlaneConfig>,
    metrics: Arc<CheckMetrics>,
    log: Option<Arc<DecisionLog>>,
}

/// The call a decision belongs to, for the decision log.
struct Call<'a> {
    method: &'static str,
    /// The caller's `x-request-id`.
    request_id: Option<&'a str>,
    /// The id logged: the caller's, or one made for the call when its
    /// first decision is logged (every item of a batch shares it).
    logged_id: &'a OnceCell<String>,
    correlation_id: &'a str,
    /// The caller, when the server authenticates: its credential may be
    /// confined to some tenants.
    who: Option<&'a Principal>,
}

/// What one call (a Check, a whole BatchCheck) has looked up and counted
/// so far: the tenant the last item named, in a batch each subject asked
/// about in it, and the decisions, added to the metrics once at the end
/// ([`Memo::finish`]).
#[derive(Default)]
struct Memo<'a> {
    /// The last tenant id asked about, and what the snapshot holds for it.
    tenant: Option<(&'a str, Option<&'a TenantSnapshot>)>,
    /// In a batch: the subjects of that tenant looked up so far (cleared
    /// when an item names another tenant). A Check looks up its one.
    members: Option<HashMap<&'a str, policy::Member<'a>, foldhash::fast::RandomState>>,
    tally: CheckTally,
}

impl<'a> Memo<'a> {
    /// For a batch: remembers each subject it looks up.
    fn for_batch() -> Self {
        Self {
            members: Some(HashMap::default()),
            ..Self::default()
        }
    }

    /// `tenant` in `snapshot`, looked up again only when it is not the
    /// one the item before named.
    fn tenant(&mut self, snapshot: &'a Snapshot, tenant: &'a str) -> Option<&'a TenantSnapshot> {
        match self.tenant {
            Some((last, found)) if last == tenant => found,
            _ => {
                let found = snapshot.tenant(tenant).map(|t| &**t);
                self.tenant = Some((tenant, found));
                if let Some(members) = &mut self.members {
                    members.clear();
                }
                found
            }
        }
    }

    /// Decides `permission` for `subject` in `tenant` (the one [`Memo::tenant`]
    /// last found), looking the subject up once per batch.
    fn decide(
        &mut self,
        snapshot: &Snapshot,
        tenant: &'a TenantSnapshot,
        subject: &'a str,
        permission: &str,
        now: Timestamp,
    ) -> Result<policy::Verdict, policy::CheckError> {
        match &mut self.members {
            Some(members) => {
                let member = members
                    .entry(subject)
                    .or_insert_with(|| policy::member(tenant, subject, now));
                policy::decide_for(snapshot, tenant, member, permission)
            }
            None => policy::decide_for(
                snapshot,
                tenant,
                &policy::member(tenant, subject, now),
                permission,
            ),
        }
    }

    fn finish(&self, metrics: &CheckMetrics) {
        metrics.checks(&self.tally);
    }
}

/// The caller (`None` without credentials) and the message.
fn parts<T>(request: Request<T>) -> (Option<Principal>, T) {
    let (_, extensions, message) = request.into_parts();
    (extensions.get::<Principal>().cloned(), message)
}

/// The caller's `x-request-id`, if it sent a printable one.
fn request_id<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_CORRELATION_BYTES)
        .map(str::to_owned)
}

impl AuthorizationService {
    pub fn new(engine: Arc<Engine>, config: DataPlaneConfig) -> Self {
        Self {
            engine,
            config: Arc::new(config),
            metrics: Arc::default(),
            log: None,
        }
    }

    /// Counts decisions into `metrics` and, with `log`, logs them.
    pub fn with_telemetry(
        mut self,
        metrics: Arc<CheckMetrics>,
        log: Option<Arc<DecisionLog>>,
    ) -> Self {
        self.metrics = metrics;
        self.log = log;
        self
    }

    /// Whether decisions are written to a decision log (which records the
    /// caller's `x-request-id`).
    pub fn logs_decisions(&self) -> bool {
        self.log.is_some()
    }

    /// The snapshot a request may be answered from, honouring its consistency.
    async fn snapshot(
        &self,
        consistency: Option<&proto::Consistency>,
    ) -> Result<Arc<Snapshot>, Status> {
        use proto::consistency::Requirement;
        match consistency.and_then(|c| c.requirement.as_ref()) {
            Some(Requirement::AtLeastRevision(wanted)) => self
                .engine
                .at_least(*wanted, self.config.consistency_wait)
                .await
                .map_err(|have| {
                    Status::unavailable(format!(
                        "snapshot is at revision {} and revision {wanted} did not arrive within {} ms (at_least_revision)",
                        have.revision(),
                        self.config.consistency_wait.as_millis()
                    ))
                }),
            Some(Requirement::MinimizeLatency(_)) | None => Ok(self.engine.load()),
        }
    }

    /// Decides one item; the verdict, or the status it fails with. Counts
    /// the decision (into `memo`) and hands it to the decision log.
    #[expect(clippy::too_many_arguments, reason = "one item's fields and its call")]
    fn decide<'a>(
        &self,
        call: &Call<'_>,
        memo: &mut Memo<'a>,
        snapshot: &'a Snapshot,
        tenant: &'a str,
        subject: &'a str,
        permission: &str,
        explain: bool,
        now: Timestamp,
    ) -> Result<proto::CheckResponse, Status> {
        convert::check_fields(tenant, subject, permission)?;
        confine(call.who, tenant)?;
        let request = policy::Request {
            tenant,
            subject,
            permission,
        };
        let (verdict, explanation) = if explain {
            let (v, e) = policy::explain(snapshot, &request, now)
                .map_err(|e| convert::check_status(&e, self.engine.scope()))?;
            (v, Some(e))
        } else {
            let v = match memo.tenant(snapshot, tenant) {
                Some(found) => memo.decide(snapshot, found, subject, permission, now),
                None => policy::evaluate_with(snapshot, None, &request, now),
            }
            .map_err(|e| convert::check_status(&e, self.engine.scope()))?;
            (v, None)
        };
        if self.config.strict_catalog && verdict.reason == Reason::UnknownPermission {
            return Err(Status::invalid_argument(format!(
                "permission `{permission}` is not covered by the catalog (the server runs with --strict-catalog)"
            )));
        }
        memo.tally.count(verdict.decision, verdict.reason);
        if let Some(log) = &self.log
            && log.wants(verdict.decision == Decision::Deny)
        {
            log.send(Record {
                time: std::time::SystemTime::now(),
                request_id: call
                    .logged_id
                    .get_or_init(|| {
                        call.request_id
                            .map_or_else(|| log.request_id(), str::to_owned)
                    })
                    .clone(),
                correlation_id: call.correlation_id.to_owned(),
                tenant: tenant.to_owned(),
                subject: subject.to_owned(),
                permission: permission.to_owned(),
                decision: decision_name(verdict.decision),
                reason: verdict.reason.as_str(),
                revision: snapshot.revision(),
                method: call.method,
            });
        }
        Ok(convert::response(verdict, snapshot.revision(), explanation))
    }
}

impl AuthorizationService {
    /// A BatchCheck for `who` (the caller, when the server authenticates):
    /// every item decided from one snapshot, in order. With `stop`, the
    /// items after the first one decided `stop` are neither decided nor
    /// answered (AuthZEN's `deny_on_first_deny`, `permit_on_first_permit`).
    pub async fn decide_batch(
        &self,
        who: Option<&Principal>,
        request_id: Option<&str>,
        req: proto::BatchCheckRequest,
        stop: Option<Decision>,
    ) -> Result<proto::BatchCheckResponse, Status> {
        self.metrics.batch_size.observe(req.items.len() as u64);
        if req.items.len() > self.config.max_batch {
            return Err(Status::invalid_argument(format!(
                "batch has {} items, more than the limit of {}",
                req.items.len(),
                self.config.max_batch
            )));
        }
        let snapshot = self.snapshot(req.consistency.as_ref()).await?;
        let now = Timestamp::now();
        let revision = snapshot.revision();
        let logged_id = OnceCell::new();
        let mut memo = Memo::for_batch();
        let mut results = Vec::with_capacity(req.items.len());
        for item in &req.items {
            // The item's fields are slices of the request's buffer
            // (`proto::item`); read each once.
            let (tenant, subject, permission, correlation_id) = (
                item.tenant.as_str(),
                item.subject.as_str(),
                item.permission.as_str(),
                item.correlation_id.as_str(),
            );
            let outcome = if correlation_id.len() > MAX_CORRELATION_BYTES {
                Err(Status::invalid_argument(format!(
                    "`correlation_id` is {} bytes, more than the limit of {MAX_CORRELATION_BYTES}",
                    correlation_id.len()
                )))
            } else {
                let call = Call {
                    method: "BatchCheck",
                    request_id,
                    logged_id: &logged_id,
                    correlation_id,
                    who,
                };
                self.decide(
                    &call,
                    &mut memo,
                    &snapshot,
                    tenant,
                    subject,
                    permission,
                    req.explain,
                    now,
                )
            };
            let stopped = stop.is_some_and(|stop| {
                outcome
                    .as_ref()
                    .is_ok_and(|r| r.decision == convert::decision(stop) as i32)
            });
            results.push(proto::BatchCheckResult {
                correlation_id: item.correlation_id.clone(),
                outcome: Some(match outcome {
                    Ok(r) => proto::batch_check_result::Outcome::Response(r),
                    Err(s) => proto::batch_check_result::Outcome::Error(proto::ItemError {
                        code: s.code() as i32,
                        message: s.message().to_owned(),
                    }),
                }),
            });
            if stopped {
                break;
            }
        }
        memo.finish(&self.metrics);
        Ok(proto::BatchCheckResponse { results, revision })
    }
}

fn record(verdict: &proto::CheckResponse) {
    let span = Span::current();
    span.record("revision", verdict.revision);
    let decision = if verdict.decision == proto::Decision::Allow as i32 {
        Decision::Allow
    } else {
        Decision::Deny
    };
    span.record("decision", tracing::field::debug(decision));
    if let Ok(r) = proto::Reason::try_from(verdict.reason) {
        span.record("reason", r.as_str_name());
    }
}

#[tonic::async_trait]
impl Authorization for AuthorizationService {
    #[tracing::instrument(name = "Check", skip_all, fields(tenant = %request.get_ref().tenant, decision, reason, revision))]
    async fn check(
        &self,
        request: Request<proto::CheckRequest>,
    ) -> Result<Response<proto::CheckResponse>, Status> {
        let id = request_id(&request);
        let (who, req) = parts(request);
        let snapshot = self.snapshot(req.consistency.as_ref()).await?;
        let call = Call {
            method: "Check",
            request_id: id.as_deref(),
            logged_id: &OnceCell::new(),
            correlation_id: "",
            who: who.as_ref(),
        };
        let mut memo = Memo::default();
        let response = self.decide(
            &call,
            &mut memo,
            &snapshot,
            &req.tenant,
            &req.subject,
            &req.permission,
            req.explain,
            Timestamp::now(),
        );
        memo.finish(&self.metrics);
        let response = response?;
        record(&response);
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "BatchCheck", skip_all, fields(items = request.get_ref().items.len(), revision))]
    async fn batch_check(
        &self,
        request: Request<proto::BatchCheckRequest>,
    ) -> Result<Response<proto::BatchCheckResponse>, Status> {
        let id = request_id(&request);
        let (who, req) = parts(request);
        let response = self
            .decide_batch(who.as_ref(), id.as_deref(), req, None)
            .await?;
        Span::current().record("revision", response.revision);
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "ListSubjectPermissions", skip_all, fields(tenant = %request.get_ref().tenant, revision))]
    async fn list_subject_permissions(
        &self,
        request: Request<proto::ListSubjectPermissionsRequest>,
    ) -> Result<Response<proto::ListSubjectPermissionsResponse>, Status> {
        let (who, req) = parts(request);
        convert::required("tenant", &req.tenant, convert::MAX_FIELD_BYTES)?;
        confine(who.as_ref(), &req.tenant)?;
        convert::required("subject", &req.subject, convert::MAX_SUBJECT_BYTES)?;
        let snapshot = self.snapshot(req.consistency.as_ref()).await?;
        let listing = policy::list_subject_permissions(
            &snapshot,
            &req.tenant,
            &req.subject,
            Timestamp::now(),
        )
        .map_err(|e| convert::check_status(&e, self.engine.scope()))?
        .ok_or_else(|| {
            Status::new(
                Code::NotFound,
                format!(
                    "subject `{}` is not a member of tenant `{}` (by id or alias)",
                    crate::model::quote(&req.subject),
                    req.tenant
                ),
            )
        })?;
        Span::current().record("revision", snapshot.revision());
        Ok(Response::new(proto::ListSubjectPermissionsResponse {
            active: listing.active,
            administrator: listing.administrator,
            roles: listing.roles.iter().map(ToString::to_string).collect(),
            permissions: listing
                .permissions
                .into_iter()
                .map(|(pattern, effect, role)| proto::SubjectPermission {
                    pattern,
                    effect: effect.as_str().to_owned(),
                    role: role.to_string(),
                })
                .collect(),
            revision: snapshot.revision(),
            user: listing.user.to_string(),
        }))
    }

    #[tracing::instrument(name = "ListSubjects", skip_all, fields(tenant = %request.get_ref().tenant, revision))]
    async fn list_subjects(
        &self,
        request: Request<proto::ListSubjectsRequest>,
    ) -> Result<Response<proto::ListSubjectsResponse>, Status> {
        let (who, req) = parts(request);
        convert::required("tenant", &req.tenant, convert::MAX_FIELD_BYTES)?;
        confine(who.as_ref(), &req.tenant)?;
        convert::required("permission", &req.permission, convert::MAX_PERMISSION_BYTES)?;
        let limit = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "`page_size` {n} is more than the limit of {MAX_PAGE}"
                )));
            }
            n => n,
        };
        let snapshot = self.snapshot(req.consistency.as_ref()).await?;
        let after = (!req.page_token.is_empty()).then_some(req.page_token.as_str());
        let (subjects, more) = policy::list_subjects(
            &snapshot,
            &req.tenant,
            &req.permission,
            after,
            limit,
            Timestamp::now(),
        )
        .map_err(|e| convert::check_status(&e, self.engine.scope()))?;
        let next_page_token = if more {
            subjects.last().cloned().unwrap_or_default()
        } else {
            String::new()
        };
        Span::current().record("revision", snapshot.revision());
        Ok(Response::new(proto::ListSubjectsResponse {
            subjects,
            next_page_token,
            revision: snapshot.revision(),
        }))
    }
}
