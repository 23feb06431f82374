//! The layer that holds clients to the gRPC wire format, and gives their
//! malformed requests the codes that say so.
//!
//! - A request whose `content-type` is not `application/grpc` (or
//!   `application/grpc+proto`, `application/grpc;…`), missing included, is
//!   answered HTTP 415 Unsupported Media Type before it reaches a service,
//!   as the gRPC spec (PROTOCOL-HTTP2.md) says a server should.
//! - A request message that does not decode is `INVALID_ARGUMENT` (the
//!   client sent it wrong). rampart's codec (`proto::codec`) marks a decode
//!   failure with the metadata key `rampart-undecodable` on tonic's
//!   `INTERNAL`; this layer answers such a response `INVALID_ARGUMENT` with
//!   the same message, and drops the mark. It reads the *headers*: a request
//!   message is decoded before any response is sent, so the failure is
//!   answered trailers-only (unary and server-streaming calls alike, and
//!   Import, whose handler returns the error before its response).
//!
//! A body whose gRPC framing is wrong (no message, a message cut off, a
//! bad compressed flag) or whose message is over `--max-message-bytes` never
//! reaches tonic: the limit layer, which holds the whole body anyway, answers
//! it (`limits.rs`); Import's stream maps what tonic reports
//! (`replication::service`). So no code here depends on tonic's or prost's
//! wording. Health and reflection use tonic's own codec and keep tonic's
//! codes.
//!
//! Every one of these is charged to the connection's budget of failing
//! calls (`conn.rs`): the 415 here, a decode error and a bad frame by the
//! budget layer outside, which sees `INVALID_ARGUMENT`, an oversize message
//! where it is answered.

use http::{HeaderMap, HeaderValue, StatusCode};
use tonic::{Code, Status};

use crate::proto::codec::UNDECODABLE;

use super::conn::conn_state;
use super::edge::{BoxFuture, Edge, Inner};

/// Whether a `content-type` is gRPC's.
pub fn grpc_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = value.strip_prefix("application/grpc") else {
        return false;
    };
    rest.is_empty() || rest.starts_with('+') || rest.starts_with(';')
}

/// Turns a trailers-only answer whose status carries the undecodable mark
/// into `INVALID_ARGUMENT` with the same message, without the mark.
/// Returns whether it did.
pub fn rewrite_undecodable(headers: &mut HeaderMap) -> bool {
    if headers.remove(UNDECODABLE).is_none() || !headers.contains_key("grpc-status") {
        return false;
    }
    let message = Status::from_header_map(headers)
        .map(|s| s.message().to_owned())
        .unwrap_or_default();
    headers.remove("grpc-status");
    headers.remove("grpc-message");
    headers.remove("grpc-status-details-bin");
    // Only fails on a message that cannot be a header, which the one just
    // read could.
    let _ = Status::new(Code::InvalidArgument, message).add_header(headers);
    true
}

/// The content-type check and the decode-error rewrite, as an [`Edge`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WireLayer;

impl Edge for WireLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        let conn = conn_state(request.extensions()).cloned();
        if !grpc_content_type(request.headers().get(http::header::CONTENT_TYPE)) {
            if let Some(conn) = conn {
                conn.failed();
            }
            let mut response = http::Response::new(R::default());
            *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return Box::pin(std::future::ready(Ok(response)));
        }
        let call = inner.call(request);
        Box::pin(async move {
            let mut result = call.await;
            if let Ok(response) = &mut result {
                rewrite_undecodable(response.headers_mut());
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_content_types_pass() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc; charset=utf-8",
        ] {
            assert!(
                grpc_content_type(Some(&HeaderValue::from_static(ok))),
                "{ok}"
            );
        }
        for bad in [
            "application/json",
            "text/plain",
            "application/grpcx",
            "application/grpc-web",
            "",
        ] {
            assert!(
                !grpc_content_type(Some(&HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
        assert!(!grpc_content_type(None));
    }

    #[test]
    fn only_a_marked_status_becomes_invalid_argument() {
        let mut marked = Status::internal("failed to decode Protobuf message: invalid wire type");
        marked.metadata_mut().insert(
            UNDECODABLE,
            tonic::metadata::MetadataValue::from_static("1"),
        );
        let mut headers = marked.into_http::<()>().into_parts().0.headers;
        assert!(headers.contains_key(UNDECODABLE));
        assert!(rewrite_undecodable(&mut headers));
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "failed to decode Protobuf message: invalid wire type"
        );
        assert!(!headers.contains_key(UNDECODABLE), "the mark is dropped");

        // Our own INTERNAL, whatever its words, stays.
        for message in ["the store is corrupt", "failed to decode Protobuf message"] {
            let mut headers = Status::internal(message)
                .into_http::<()>()
                .into_parts()
                .0
                .headers;
            assert!(!rewrite_undecodable(&mut headers));
            assert_eq!(
                Status::from_header_map(&headers).unwrap().code(),
                Code::Internal
            );
        }
    }
}
