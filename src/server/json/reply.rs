//! What every HTTP endpoint shares: reading a JSON body (content type,
//! size, shape), the error answer (`{"error": …, "message": …}` with the
//! status that fits), and the gRPC status each HTTP status is counted as.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use tonic::Code;

/// An error answer: an HTTP status and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The short name of the status, the `error` field.
    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::NOT_IMPLEMENTED => "not_implemented",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            _ => "internal",
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::new(http_status(status.code()), status.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.kind(), "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The HTTP status of a gRPC code (the mapping of gRPC's HTTP gateway).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The gRPC code an HTTP answer is counted under in
/// `rampart_rpc_duration_seconds` (service `http`).
pub fn grpc_code(status: StatusCode) -> usize {
    let code = match status.as_u16() {
        200..=299 => Code::Ok,
        400 | 405 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        413 | 429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    code as usize
}

/// Whether the request says its body is JSON (`application/json`, with
/// parameters or not).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The body of a POST as `T`: 415 if it is not JSON, 413 past `limit`
/// bytes, 400 naming the field when it does not parse (unknown fields
/// included: every request type denies them).
pub async fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    if !is_json(headers) {
        let given = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            match given {
                Some(t) => format!("the body must be `application/json`, not `{t}`"),
                None => "the body must be `application/json` (no content-type was sent)".to_owned(),
            },
        ));
    }
    let bytes = read(body, limit).await?;
    parse(&bytes)
}

/// For an optional request field, as `#[serde(default, deserialize_with =
/// "not_null")]`: absent is `None`, and `null` is refused as a value of the
/// wrong type, as the OpenAPI document says (no field is nullable), rather
/// than read as absent.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {limit} bytes (--max-message-bytes)"),
        )
    };
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body could not be read: {e}"
        ))),
    }
}

/// `bytes` as `T`, or a 400 whose message names the fault and where.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the body is empty: a JSON object is expected",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
    }

    fn json_headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn bodies_are_checked_for_type_size_and_shape() {
        let ok = json_headers("application/json; charset=utf-8");
        let t: Thing = json_body(&ok, Body::from(r#"{"name":"a"}"#), 100)
            .await
            .unwrap();
        assert_eq!(t.name, "a");
        let e = json_body::<Thing>(&json_headers("text/plain"), Body::from("{}"), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.message.contains("text/plain"), "{}", e.message);
        let e = json_body::<Thing>(&HeaderMap::new(), Body::from("{}"), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let e = json_body::<Thing>(&ok, Body::from(vec![b' '; 101]), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let e = json_body::<Thing>(&ok, Body::from(r#"{"name":"a","x":1}"#), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("unknown field `x`"), "{}", e.message);
        let e = json_body::<Thing>(&ok, Body::from("{}"), 100)
            .await
            .unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
        let e = json_body::<Thing>(&ok, Body::from(""), 100)
            .await
            .unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
        let e = json_body::<Thing>(&ok, Body::from("{nope"), 100)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_optional_field_may_be_absent_but_not_null() {
        #[derive(Debug, serde::Deserialize)]
        struct Maybe {
            #[serde(default, deserialize_with = "not_null")]
            limit: Option<u32>,
        }
        assert_eq!(parse::<Maybe>(b"{}").unwrap().limit, None);
        assert_eq!(parse::<Maybe>(br#"{"limit":3}"#).unwrap().limit, Some(3));
        let e = parse::<Maybe>(br#"{"limit":null}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("invalid type: null"), "{}", e.message);
    }

    #[test]
    fn statuses_map_both_ways() {
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(grpc_code(StatusCode::OK), 0);
        assert_eq!(
            grpc_code(StatusCode::UNAUTHORIZED),
            Code::Unauthenticated as usize
        );
        assert_eq!(
            grpc_code(StatusCode::PAYLOAD_TOO_LARGE),
            Code::ResourceExhausted as usize
        );
    }
}
