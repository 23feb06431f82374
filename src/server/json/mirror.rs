//! rampart's own JSON mirror of Check and BatchCheck: `POST /v1/check` and
//! `POST /v1/batch-check`, with the proto's field names, the decision and
//! reason as their names (`ALLOW`, `GRANTED`), and the same answers as the
//! gRPC calls (they are those calls, made in process).

use serde::{Deserialize, Serialize};

use super::reply::not_null;
use crate::proto;
use crate::server::convert::{decision_name, reason_name};
use crate::telemetry::metrics::code_name;

/// `Consistency`: at most one of the two.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    #[serde(default, deserialize_with = "not_null")]
    pub minimize_latency: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub at_least_revision: Option<u64>,
}

impl Consistency {
    fn message(&self) -> Result<proto::Consistency, String> {
        use proto::consistency::Requirement;
        match (self.minimize_latency, self.at_least_revision) {
            (Some(_), Some(_)) => Err(
                "`consistency` takes one of `minimize_latency` and `at_least_revision`, not both"
                    .to_owned(),
            ),
            (_, Some(r)) => Ok(proto::Consistency {
                requirement: Some(Requirement::AtLeastRevision(r)),
            }),
            (Some(m), None) => Ok(proto::Consistency {
                requirement: Some(Requirement::MinimizeLatency(m)),
            }),
            (None, None) => Ok(proto::Consistency { requirement: None }),
        }
    }
}

fn consistency(c: Option<&Consistency>) -> Result<Option<proto::Consistency>, String> {
    c.map(Consistency::message).transpose()
}

/// `CheckRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub tenant: String,
    pub subject: String,
    pub permission: String,
    #[serde(default, deserialize_with = "not_null")]
    pub consistency: Option<Consistency>,
    #[serde(default)]
    pub explain: bool,
}

impl CheckRequest {
    pub fn message(self) -> Result<proto::CheckRequest, String> {
        Ok(proto::CheckRequest {
            consistency: consistency(self.consistency.as_ref())?,
            tenant: self.tenant,
            subject: self.subject,
            permission: self.permission,
            explain: self.explain,
        })
    }
}

/// `BatchCheckItem`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCheckItem {
    pub tenant: String,
    pub subject: String,
    pub permission: String,
    #[serde(default)]
    pub correlation_id: String,
}

/// `BatchCheckRequest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCheckRequest {
    pub items: Vec<BatchCheckItem>,
    #[serde(default, deserialize_with = "not_null")]
    pub consistency: Option<Consistency>,
    #[serde(default)]
    pub explain: bool,
}

impl BatchCheckRequest {
    pub fn message(self) -> Result<proto::BatchCheckRequest, String> {
        Ok(proto::BatchCheckRequest {
            consistency: consistency(self.consistency.as_ref())?,
            explain: self.explain,
            items: self
                .items
                .into_iter()
                .map(|i| proto::BatchCheckItem {
                    tenant: i.tenant.into(),
                    subject: i.subject.into(),
                    permission: i.permission.into(),
                    correlation_id: i.correlation_id.into(),
                })
                .collect(),
        })
    }
}

/// `DecidingGrant`.
#[derive(Debug, Clone, Serialize)]
pub struct DecidingGrant {
    pub role: String,
    pub effect: String,
    pub pattern: String,
    pub via: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expires: String,
}

/// `Explanation`.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub grants: Vec<DecidingGrant>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub catalog_entry: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub catalog_stability: String,
    pub effective_roles: Vec<String>,
}

/// `CheckResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResponse {
    pub decision: &'static str,
    pub reason: &'static str,
    pub revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl From<proto::CheckResponse> for CheckResponse {
    fn from(r: proto::CheckResponse) -> Self {
        Self {
            decision: decision_name(r.decision),
            reason: reason_name(r.reason),
            revision: r.revision,
            explanation: r.explanation.map(|e| Explanation {
                grants: e
                    .grants
                    .into_iter()
                    .map(|g| DecidingGrant {
                        role: g.role,
                        effect: g.effect,
                        pattern: g.pattern,
                        via: g.via,
                        expires: g.expires,
                    })
                    .collect(),
                catalog_entry: e.catalog_entry,
                catalog_stability: e.catalog_stability,
                effective_roles: e.effective_roles,
            }),
        }
    }
}

/// `ItemError`, with the code's name beside its number.
#[derive(Debug, Clone, Serialize)]
pub struct ItemError {
    pub code: i32,
    pub status: String,
    pub message: String,
}

/// `BatchCheckResult`: a response or an error.
#[derive(Debug, Clone, Serialize)]
pub struct BatchCheckResult {
    pub correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<CheckResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// `BatchCheckResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchCheckResponse {
    pub results: Vec<BatchCheckResult>,
    pub revision: u64,
}

impl From<proto::BatchCheckResponse> for BatchCheckResponse {
    fn from(r: proto::BatchCheckResponse) -> Self {
        use proto::batch_check_result::Outcome;
        Self {
            revision: r.revision,
            results: r
                .results
                .into_iter()
                .map(|item| {
                    let (response, error) = match item.outcome {
                        Some(Outcome::Response(r)) => (Some(r.into()), None),
                        Some(Outcome::Error(e)) => (
                            None,
                            Some(ItemError {
                                status: code_name(usize::try_from(e.code).unwrap_or(2)).to_owned(),
                                code: e.code,
                                message: e.message,
                            }),
                        ),
                        None => (None, None),
                    };
                    BatchCheckResult {
                        correlation_id: item.correlation_id.into(),
                        response,
                        error,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_takes_one_requirement() {
        let both = Consistency {
            minimize_latency: Some(true),
            at_least_revision: Some(3),
        };
        assert!(both.message().unwrap_err().contains("not both"));
        let at = Consistency {
            at_least_revision: Some(3),
            ..Consistency::default()
        };
        assert_eq!(
            at.message().unwrap().requirement,
            Some(proto::consistency::Requirement::AtLeastRevision(3))
        );
    }

    #[test]
    fn names_drop_the_enum_prefix() {
        assert_eq!(decision_name(proto::Decision::Allow as i32), "ALLOW");
        assert_eq!(
            reason_name(proto::Reason::NoMatchingGrant as i32),
            "NO_MATCHING_GRANT"
        );
        assert_eq!(reason_name(99), "UNSPECIFIED");
    }
}
