//! The audit log's vocabulary: what a record says about an attempted
//! change, how a batch of outcomes is handed to the store, and which records
//! a caller asks for. The store keeps these records; the engine writes them;
//! the services read them. None of it depends on how they are stored.

use serde::{Deserialize, Serialize};

use super::rules::{Actor, AdminError};
use super::{Mutation, State, Timestamp};

/// How an attempted change ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Committed at the record's revision.
    Applied,
    /// Refused by a rule; nothing changed.
    Refused { code: String, message: String },
}

/// One audit log record: every mutation, and every refused attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Assigned by the store: increases by one per record, applied or refused.
    #[serde(default)]
    pub seq: u64,
    pub time: Timestamp,
    /// The acting user; `None` for an operator credential.
    pub actor: Option<String>,
    /// Which credential made the call (a token name, `operator`, `bootstrap`).
    pub credential: String,
    /// The revision the mutation was committed at; for a refusal, the
    /// revision the state was at.
    pub revision: u64,
    /// The tenant it concerned, if any (for filtering).
    pub tenant: Option<String>,
    /// The other tenants that see the change, in id order: those a profile
    /// change shows in, and those of a user added to `tenant`
    /// ([`Mutation::also_seen_by`]). Each lists the record too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    pub mutation: Mutation,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl AuditRecord {
    /// The record of one attempted change, the one place its fields are
    /// chosen: the engine's writer keeps it, and `rampart test`'s
    /// `expect_audit` looks at it. `state` is the state the change was
    /// decided against; `verdict`, the revision it was committed at or the
    /// rule that refused it. An accepted change is recorded self-contained
    /// ([`Mutation::complete`]), as replicas (filtered ones too) apply it; a
    /// refused one as it was sent, bounded ([`Mutation::bounded_for_audit`]),
    /// so its record shows nothing the actor may not see and costs the log
    /// a bounded record. `seq` is the store's to assign.
    pub fn attempt(
        state: &State,
        actor: &Actor,
        credential: &str,
        mutation: &Mutation,
        verdict: Result<u64, &AdminError>,
        now: Timestamp,
    ) -> AuditRecord {
        let also = (mutation.also_seen_by(state).iter())
            .map(ToString::to_string)
            .collect();
        let (mutation, revision, outcome) = match verdict {
            Ok(revision) => {
                let mut m = mutation.clone();
                m.complete(state);
                (m, revision, Outcome::Applied)
            }
            Err(refused) => {
                let (kept, was_cut) = mutation.bounded_for_audit();
                let mut message = refused.to_string();
                if was_cut {
                    message.push_str(" (audit record truncated)");
                }
                let code = refused.refusal().code_name().to_owned();
                (kept, state.revision, Outcome::Refused { code, message })
            }
        };
        AuditRecord {
            seq: 0,
            time: now,
            actor: match actor {
                Actor::Operator => None,
                Actor::User(u) => Some(u.to_string()),
            },
            credential: credential.to_owned(),
            revision,
            tenant: mutation.tenant().map(ToString::to_string),
            also,
            mutation,
            outcome,
        }
    }
}

/// One entry of a batch committed to the store (`Store::commit_batch`):
/// what happened to each attempted change, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcomes {
    /// A mutation committed at `revision`, with its audit record.
    Applied {
        revision: u64,
        mutation: Mutation,
        audit: AuditRecord,
    },
    /// A refused attempt's audit record.
    Refused(AuditRecord),
}

/// Which audit records to list. Every condition that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `None`: any. `Some("")`: only records without a `tenant` (catalog,
    /// bridge grants, profile info). Otherwise the records that tenant sees:
    /// its own, those that list it among `also`, and deployment-wide ones
    /// (catalog, bridge grants), which reach every tenant.
    pub tenant: Option<String>,
    /// `None`: any. `Some("")`: only records of operator credentials
    /// (`actor: None`; a user id is never empty). Otherwise that user.
    pub actor: Option<String>,
    /// Inclusive revision range.
    pub from_revision: Option<u64>,
    pub to_revision: Option<u64>,
    /// Start after this `seq` (paging); 0 from the start.
    pub after_seq: u64,
    /// At most this many records (the caller bounds it); 0 means no limit.
    pub limit: usize,
}

impl AuditFilter {
    /// Whether `record` passes every condition but `after_seq` and `limit`.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        fn field(want: &Option<String>, have: &Option<String>) -> bool {
            match (want.as_deref(), have.as_deref()) {
                (None, _) => true,
                (Some(""), have) => have.is_none(),
                (Some(want), have) => have == Some(want),
            }
        }
        let tenant = match self.tenant.as_deref() {
            Some(want) if !want.is_empty() => {
                record.tenant.as_deref() == Some(want)
                    || record.also.iter().any(|t| t == want)
                    || record.mutation.is_deployment_wide()
            }
            _ => field(&self.tenant, &record.tenant),
        };
        tenant
            && field(&self.actor, &record.actor)
            && self
                .from_revision
                .is_none_or(|from| record.revision >= from)
            && self.to_revision.is_none_or(|to| record.revision <= to)
    }
}
