//! The endpoints: each reads its body, asks the Authorization service in
//! process, and answers JSON.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::{Map, Value, json};
use tonic::metadata::MetadataMap;

use super::authzen::{self, Decision, Decisions, Evaluation, Semantic};
use super::mirror;
use super::reply::{ApiError, json_body};
use super::{App, base_url};
use crate::policy;
use crate::proto::{self, authorization_server::Authorization as _};
use crate::server::auth::Principal;
use crate::server::convert;
use crate::telemetry::metrics::code_name;

/// The OpenAPI document of every endpoint (committed beside this file).
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<App> {
    Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/access/v1/search/subject", post(search_subject))
        .route("/access/v1/search/resource", post(search_resource))
        .route("/access/v1/search/action", post(search_action))
        .route("/v1/check", post(check))
        .route("/v1/batch-check", post(batch_check))
        .route("/.well-known/authzen-configuration", get(configuration))
        .route("/openapi.json", get(openapi))
}

/// A request's parts the handlers need: the caller, its request id, its
/// headers (as gRPC metadata for an in-process call), and the body.
struct Parts {
    who: Option<Principal>,
    request_id: Option<String>,
    headers: http::HeaderMap,
    body: axum::body::Body,
}

fn parts(request: Request) -> Parts {
    let (parts, body) = request.into_parts();
    Parts {
        who: parts.extensions.get::<Principal>().cloned(),
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers: parts.headers,
        body,
    }
}

/// `message` as a gRPC request from the caller of `p`.
fn grpc<T>(p: &Parts, message: T) -> tonic::Request<T> {
    let mut extensions = tonic::Extensions::new();
    if let Some(who) = &p.who {
        extensions.insert(who.clone());
    }
    let mut metadata = http::HeaderMap::new();
    if let Some(id) = p.headers.get("x-request-id") {
        metadata.insert("x-request-id", id.clone());
    }
    tonic::Request::from_parts(MetadataMap::from_headers(metadata), extensions, message)
}

fn mapping(app: &App) -> Result<&authzen::Mapping, ApiError> {
    app.authzen.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server has no AuthZEN mapping: add an `[authzen]` table to its --config file",
        )
    })
}

// ------------------------------------------------------------ AuthZEN

async fn evaluation(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let p = parts(request);
    let mapping = mapping(&app)?;
    let e: Evaluation = json_body(&p.headers, p.body, app.max_body).await?;
    let decisions = decide(
        &app,
        &p.who,
        p.request_id.as_deref(),
        mapping,
        vec![e],
        Semantic::ExecuteAll,
    )
    .await?;
    Ok(single(decisions))
}

/// The answer to a single evaluation: its one decision.
fn single(mut decisions: Vec<Decision>) -> Response {
    Json(decisions.pop().unwrap_or_else(Decision::none)).into_response()
}

async fn evaluations(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let mut p = parts(request);
    let mapping = mapping(&app)?;
    let body = std::mem::take(&mut p.body);
    let request: authzen::Evaluations = json_body(&p.headers, body, app.max_body).await?;
    let one = request.evaluations.as_ref().is_none_or(Vec::is_empty);
    let (items, semantic) = request.items().map_err(ApiError::bad_request)?;
    if items.len() > app.max_batch {
        return Err(ApiError::bad_request(format!(
            "`evaluations` has {} items, more than the limit of {} (--max-batch)",
            items.len(),
            app.max_batch
        )));
    }
    let decisions = decide(
        &app,
        &p.who,
        p.request_id.as_deref(),
        mapping,
        items,
        semantic,
    )
    .await?;
    if one {
        return Ok(single(decisions));
    }
    Ok(Json(Decisions {
        evaluations: decisions,
    })
    .into_response())
}

/// Decides `items` in order from one snapshot, under `semantic`: the ones
/// that map are asked as one batch; the ones that do not are denies naming
/// why, in their place.
async fn decide(
    app: &App,
    who: &Option<Principal>,
    request_id: Option<&str>,
    mapping: &authzen::Mapping,
    items: Vec<Evaluation>,
    semantic: Semantic,
) -> Result<Vec<Decision>, ApiError> {
    let targets: Vec<Result<authzen::Target, authzen::Unmapped>> =
        items.iter().map(|e| mapping.target(e)).collect();
    // deny_on_first_deny: nothing after the first item that cannot map.
    let cut = match semantic {
        Semantic::DenyOnFirstDeny => targets
            .iter()
            .position(Result::is_err)
            .map_or(targets.len(), |i| i + 1),
        _ => targets.len(),
    };
    let batch = proto::BatchCheckRequest {
        items: targets[..cut]
            .iter()
            .filter_map(|t| t.as_ref().ok())
            .map(|t| proto::BatchCheckItem {
                tenant: t.tenant.as_str().into(),
                subject: t.subject.as_str().into(),
                permission: t.permission.as_str().into(),
                correlation_id: proto::Text::default(),
            })
            .collect(),
        consistency: None,
        explain: false,
    };
    let sent = batch.items.len();
    let stop = match semantic {
        Semantic::ExecuteAll => None,
        Semantic::DenyOnFirstDeny => Some(policy::Decision::Deny),
        Semantic::PermitOnFirstPermit => Some(policy::Decision::Allow),
    };
    let answered = if sent == 0 {
        proto::BatchCheckResponse::default()
    } else {
        app.authorization
            .decide_batch(who.as_ref(), request_id, batch, stop)
            .await?
    };
    let stopped_early = answered.results.len() < sent;
    let mut results = answered.results.into_iter();
    let mut decisions = Vec::with_capacity(cut);
    for target in targets.into_iter().take(cut) {
        let decision = match target {
            Err(unmapped) => Decision::unmapped(unmapped.reason, unmapped.message),
            Ok(_) => match results.next() {
                Some(result) => from_result(result, answered.revision),
                None if stopped_early => break,
                None => Decision::none(),
            },
        };
        let stop_here = match semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !decision.decision,
            Semantic::PermitOnFirstPermit => decision.decision,
        };
        decisions.push(decision);
        if stop_here {
            break;
        }
    }
    Ok(decisions)
}

fn from_result(result: proto::BatchCheckResult, revision: u64) -> Decision {
    use proto::batch_check_result::Outcome;
    let mut context = Map::new();
    let decision = match result.outcome {
        Some(Outcome::Response(r)) => {
            context.insert("reason".into(), convert::reason_name(r.reason).into());
            r.decision == proto::Decision::Allow as i32
        }
        Some(Outcome::Error(e)) => {
            context.insert(
                "reason".into(),
                code_name(usize::try_from(e.code).unwrap_or(2)).into(),
            );
            context.insert("message".into(), e.message.into());
            false
        }
        None => false,
    };
    context.insert("revision".into(), revision.into());
    Decision { decision, context }
}

/// `POST /access/v1/search/subject`: who may do the action on the resource
/// (ListSubjects of the permission the mapping gives).
async fn search_subject(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let mut p = parts(request);
    let mapping = mapping(&app)?;
    let body = std::mem::take(&mut p.body);
    let search: authzen::Search = json_body(&p.headers, body, app.max_body).await?;
    let subject = search
        .subject
        .ok_or_else(|| ApiError::bad_request("a subject search needs `subject` (its `type`)"))?;
    let action = search
        .action
        .ok_or_else(|| ApiError::bad_request("a subject search needs `action`"))?;
    let resource = entity(search.resource, "resource", "a subject search")?;
    let probe = Evaluation {
        subject: authzen::Subject {
            kind: subject.kind.clone(),
            id: String::new(),
            properties: subject.properties,
        },
        action,
        resource,
        context: search.context.unwrap_or_default(),
    };
    let (tenant, permission) = mapping
        .search_target(&probe)
        .map_err(|u| ApiError::bad_request(u.message))?;
    let page = search.page.unwrap_or_default();
    let listed = app
        .authorization
        .list_subjects(grpc(
            &p,
            proto::ListSubjectsRequest {
                tenant,
                permission,
                page_size: page.limit.unwrap_or(0),
                page_token: page.token.unwrap_or_default(),
                consistency: None,
            },
        ))
        .await?
        .into_inner();
    Ok(Json(json!({
        "results": listed.subjects.iter().map(|id| json!({"type": subject.kind, "id": id})).collect::<Vec<_>>(),
        "page": {"next_token": listed.next_page_token},
        "context": {"revision": listed.revision},
    }))
    .into_response())
}

/// A search's subject or resource that must name its `id`.
fn entity(
    e: Option<authzen::SearchEntity>,
    what: &str,
    search: &str,
) -> Result<authzen::Resource, ApiError> {
    let e = e.ok_or_else(|| ApiError::bad_request(format!("{search} needs `{what}`")))?;
    let id =
        e.id.ok_or_else(|| ApiError::bad_request(format!("{search} needs `{what}.id`")))?;
    Ok(authzen::Resource {
        kind: e.kind,
        id,
        properties: e.properties,
    })
}

/// `POST /access/v1/search/resource`: rampart keeps no inventory of
/// resources, so it cannot list them.
async fn search_resource(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let p = parts(request);
    mapping(&app)?;
    let _: authzen::Search = json_body(&p.headers, p.body, app.max_body).await?;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "rampart keeps no inventory of resources, so it cannot list the ones a subject may act on: \
         ask /access/v1/evaluations about the resources you have, or /access/v1/search/action",
    ))
}

/// `POST /access/v1/search/action`: which of the actions the rules name for
/// this resource type the subject may do (each asked, from one snapshot).
async fn search_action(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let mut p = parts(request);
    let mapping = mapping(&app)?;
    let body = std::mem::take(&mut p.body);
    let search: authzen::Search = json_body(&p.headers, body, app.max_body).await?;
    let subject = entity(search.subject, "subject", "an action search")?;
    let resource = entity(search.resource, "resource", "an action search")?;
    let names: Vec<String> = mapping
        .actions(&resource.kind, &subject.kind)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let items: Vec<Evaluation> = names
        .iter()
        .map(|name| Evaluation {
            subject: authzen::Subject {
                kind: subject.kind.clone(),
                id: subject.id.clone(),
                properties: subject.properties.clone(),
            },
            action: authzen::Action {
                name: name.clone(),
                properties: Map::new(),
            },
            resource: resource.clone(),
            context: search.context.clone().unwrap_or_default(),
        })
        .collect();
    let decisions = decide(
        &app,
        &p.who,
        p.request_id.as_deref(),
        mapping,
        items,
        Semantic::ExecuteAll,
    )
    .await?;
    let results: Vec<Value> = names
        .iter()
        .zip(&decisions)
        .filter(|(_, d)| d.decision)
        .map(|(name, _)| json!({"name": name}))
        .collect();
    Ok(Json(json!({"results": results, "page": {"next_token": ""}})).into_response())
}

/// `GET /.well-known/authzen-configuration`.
async fn configuration(State(app): State<App>, request: Request) -> Response {
    let base = base_url(&app, request.headers());
    let mut metadata = Map::new();
    metadata.insert("policy_decision_point".into(), base.clone().into());
    if app.authzen.is_some() {
        for (key, path) in [
            ("access_evaluation_endpoint", "/access/v1/evaluation"),
            ("access_evaluations_endpoint", "/access/v1/evaluations"),
            ("search_subject_endpoint", "/access/v1/search/subject"),
            ("search_action_endpoint", "/access/v1/search/action"),
        ] {
            metadata.insert(key.into(), format!("{base}{path}").into());
        }
    }
    Json(Value::Object(metadata)).into_response()
}

async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ------------------------------------------------------------- mirror

async fn check(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let mut p = parts(request);
    let body = std::mem::take(&mut p.body);
    let req: mirror::CheckRequest = json_body(&p.headers, body, app.max_body).await?;
    let message = req.message().map_err(ApiError::bad_request)?;
    let response = app.authorization.check(grpc(&p, message)).await?;
    Ok(Json(mirror::CheckResponse::from(response.into_inner())).into_response())
}

async fn batch_check(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let mut p = parts(request);
    let body = std::mem::take(&mut p.body);
    let req: mirror::BatchCheckRequest = json_body(&p.headers, body, app.max_body).await?;
    let message = req.message().map_err(ApiError::bad_request)?;
    let response = app
        .authorization
        .decide_batch(p.who.as_ref(), p.request_id.as_deref(), message, None)
        .await?;
    Ok(Json(mirror::BatchCheckResponse::from(response)).into_response())
}
