//! What the Envoy front end answers, and how it is put on Envoy's wire.
//!
//! - Allowed: status `OK` and an `OkHttpResponse` whose headers reach the
//!   upstream: `x-rampart-decision`, `x-rampart-reason` and (for a decision
//!   of the policy) `x-rampart-revision`, each set with
//!   `OVERWRITE_IF_EXISTS_OR_ADD`, so a value the client sent under the same
//!   name is replaced. Every other `x-rampart-*` header the client sent is
//!   listed in `headers_to_remove`. Envoy applies its removals *after* its
//!   sets, so the headers rampart sets are never listed there: they would
//!   be removed too.
//! - Denied: status `PERMISSION_DENIED` (`UNAUTHENTICATED` when there is no
//!   subject) and a `DeniedHttpResponse`: HTTP 403 (401), the same
//!   `x-rampart-*` headers and `content-type: application/json`, and a JSON
//!   body `{"decision":"DENY","reason":…,"revision":…,"message":…}`
//!   (`revision` when the policy decided, `message` when rampart has
//!   something to say about the request).

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response::HttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use envoy_types::pb::google::rpc;
use tonic::Code;

/// The headers rampart sets on the upstream request (and on a deny).
pub const DECISION: &str = "x-rampart-decision";
pub const REASON: &str = "x-rampart-reason";
pub const REVISION: &str = "x-rampart-revision";
/// The prefix of every header a client may not send to the upstream.
const PREFIX: &str = "x-rampart-";

/// Whether a header (any case) is one of the `x-rampart-*` the upstream
/// trusts.
pub fn is_ours(name: &str) -> bool {
    name.len() >= PREFIX.len()
        && name.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
}

/// Why the front end denied (or allowed) without, or before, a decision of
/// the policy. A decision of the policy carries the policy's own reason
/// (`GRANTED`, `NO_MATCHING_GRANT`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The server has no `[ext_authz]` table.
    NotConfigured,
    /// The CheckRequest has no HTTP request (the network filter's checks).
    NotHttp,
    /// The path is malformed (`route::PathError`).
    BadPath,
    /// No route takes this method and path.
    NoRoute,
    /// The subject template did not render: HTTP 401.
    NoSubject,
    /// The tenant template did not render.
    NoTenant,
    /// The permission template did not render.
    NoPermission,
    /// A value a template took holds a `:`.
    BadValue,
    /// The tenant does not exist (Check: `NOT_FOUND`).
    UnknownTenant,
    /// Check refused the request as malformed (`INVALID_ARGUMENT`: the
    /// tenant, subject or permission is not valid, or `--strict-catalog`).
    InvalidRequest,
    /// The credential Envoy calls with is confined to other tenants.
    TenantNotAllowed,
    /// Check failed in a way none of the above names.
    Error,
    /// The route is `allow = true`: allowed without a check.
    PublicRoute,
}

impl Reason {
    /// The reason's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotConfigured => "NOT_CONFIGURED",
            Reason::NotHttp => "NOT_HTTP",
            Reason::BadPath => "BAD_PATH",
            Reason::NoRoute => "NO_ROUTE",
            Reason::NoSubject => "NO_SUBJECT",
            Reason::NoTenant => "NO_TENANT",
            Reason::NoPermission => "NO_PERMISSION",
            Reason::BadValue => "BAD_VALUE",
            Reason::UnknownTenant => "UNKNOWN_TENANT",
            Reason::InvalidRequest => "INVALID_REQUEST",
            Reason::TenantNotAllowed => "TENANT_NOT_ALLOWED",
            Reason::Error => "ERROR",
            Reason::PublicRoute => "PUBLIC_ROUTE",
        }
    }
}

/// The front end's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub allow: bool,
    /// The policy's reason, or one of [`Reason`]'s.
    pub reason: &'static str,
    /// The snapshot revision, when the policy decided.
    pub revision: Option<u64>,
    /// What went wrong with the request, for a deny that is not the
    /// policy's.
    pub message: Option<String>,
    /// HTTP 401 rather than 403.
    pub unauthenticated: bool,
}

impl Answer {
    /// A deny of the front end's own, with a message.
    pub fn deny(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            allow: false,
            reason: reason.as_str(),
            revision: None,
            message: Some(message.into()),
            unauthenticated: reason == Reason::NoSubject,
        }
    }

    /// A decision of the policy.
    pub fn decided(allow: bool, reason: &'static str, revision: u64) -> Self {
        Self {
            allow,
            reason,
            revision: Some(revision),
            message: None,
            unauthenticated: false,
        }
    }

    /// An allow without a check.
    pub fn public() -> Self {
        Self {
            allow: true,
            reason: Reason::PublicRoute.as_str(),
            revision: None,
            message: None,
            unauthenticated: false,
        }
    }

    /// The answer as Envoy's CheckResponse. `sent` are the names of the
    /// headers the client sent, lower case (Envoy's): the `x-rampart-*`
    /// ones rampart does not set are removed.
    pub fn into_response<'a>(self, sent: impl Iterator<Item = &'a str>) -> CheckResponse {
        let revision = self.revision.map(|r| r.to_string());
        let mut headers = vec![
            header(DECISION, if self.allow { "ALLOW" } else { "DENY" }),
            header(REASON, self.reason),
        ];
        if let Some(r) = &revision {
            headers.push(header(REVISION, r));
        }
        if self.allow {
            let headers_to_remove = sent
                .filter(|name| {
                    is_ours(name)
                        && !(name.eq_ignore_ascii_case(DECISION)
                            || name.eq_ignore_ascii_case(REASON)
                            || (revision.is_some() && name.eq_ignore_ascii_case(REVISION)))
                })
                .map(str::to_owned)
                .collect();
            return CheckResponse {
                status: Some(rpc::Status {
                    code: Code::Ok as i32,
                    message: String::new(),
                    details: Vec::new(),
                }),
                dynamic_metadata: None,
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers,
                    headers_to_remove,
                    ..OkHttpResponse::default()
                })),
            };
        }
        let (code, http) = if self.unauthenticated {
            (Code::Unauthenticated, StatusCode::Unauthorized)
        } else {
            (Code::PermissionDenied, StatusCode::Forbidden)
        };
        headers.push(header("content-type", "application/json"));
        let body = Body {
            decision: "DENY",
            reason: self.reason,
            revision: self.revision,
            message: self.message.as_deref(),
        };
        // INVARIANT: a struct of strings and a number always serialises.
        let body = serde_json::to_string(&body).unwrap_or_default();
        CheckResponse {
            status: Some(rpc::Status {
                code: code as i32,
                message: match self.message {
                    Some(m) => format!("{}: {m}", self.reason),
                    None => self.reason.to_owned(),
                },
                details: Vec::new(),
            }),
            dynamic_metadata: None,
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: http as i32 }),
                headers,
                body,
            })),
        }
    }
}

/// A deny's JSON body.
#[derive(serde::Serialize)]
struct Body<'a> {
    decision: &'static str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// A header set on the request (or the local reply), replacing any value
/// it had.
fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &[HeaderValueOption]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                let v = h.header.as_ref().unwrap();
                assert_eq!(
                    h.append_action,
                    HeaderAppendAction::OverwriteIfExistsOrAdd as i32
                );
                (v.key.clone(), v.value.clone())
            })
            .collect()
    }

    #[test]
    fn an_allow_sets_its_headers_and_removes_the_other_forged_ones() {
        let sent = [
            "x-rampart-decision",
            "x-rampart-revision",
            "X-Rampart-Admin",
            "x-rampart-",
            "x-other",
        ];
        let r = Answer::decided(true, "GRANTED", 7).into_response(sent.into_iter());
        assert_eq!(r.status.as_ref().unwrap().code, 0);
        let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
            panic!("not an OK response");
        };
        assert_eq!(
            pairs(&ok.headers),
            [
                ("x-rampart-decision".into(), "ALLOW".into()),
                ("x-rampart-reason".into(), "GRANTED".into()),
                ("x-rampart-revision".into(), "7".into())
            ]
        );
        assert_eq!(ok.headers_to_remove, ["X-Rampart-Admin", "x-rampart-"]);
        // A public route sets no revision, so a forged one is removed.
        let r = Answer::public().into_response(sent.into_iter());
        let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
            panic!("not an OK response");
        };
        assert_eq!(ok.headers.len(), 2);
        assert_eq!(
            ok.headers_to_remove,
            ["x-rampart-revision", "X-Rampart-Admin", "x-rampart-"]
        );
    }

    #[test]
    fn a_deny_has_its_status_code_and_a_json_body() {
        let r = Answer::decided(false, "NO_MATCHING_GRANT", 3).into_response(std::iter::empty());
        assert_eq!(
            r.status.as_ref().unwrap().code,
            Code::PermissionDenied as i32
        );
        let Some(HttpResponse::DeniedResponse(d)) = r.http_response else {
            panic!("not a denied response");
        };
        assert_eq!(d.status.unwrap().code, 403);
        assert_eq!(
            d.body,
            r#"{"decision":"DENY","reason":"NO_MATCHING_GRANT","revision":3}"#
        );
        assert!(pairs(&d.headers).contains(&("content-type".into(), "application/json".into())));
        let r = Answer::deny(Reason::NoSubject, "the request has no `header.x-user`")
            .into_response(std::iter::empty());
        assert_eq!(
            r.status.as_ref().unwrap().code,
            Code::Unauthenticated as i32
        );
        let Some(HttpResponse::DeniedResponse(d)) = r.http_response else {
            panic!("not a denied response");
        };
        assert_eq!(d.status.unwrap().code, 401);
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["reason"], "NO_SUBJECT");
        assert_eq!(body["message"], "the request has no `header.x-user`");
        assert!(body.get("revision").is_none());
    }
}
