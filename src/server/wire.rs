//! The layer that holds clients to the gRPC wire format, and gives their
//! malformed requests the codes that say so.
//!
//! - A request whose `content-type` is not `application/grpc` (or
//!   `application/grpc+proto`, `application/grpc;…`), missing included, is
//!   answered HTTP 415 Unsupported Media Type before it reaches a service,
//!   as the gRPC spec (PROTOCOL-HTTP2.md) says a server should.
//! - tonic answers a body that does not decode (a protobuf decode error, a
//!   bad compression flag, a body cut off mid-message) with `INTERNAL`; it
//!   becomes `INVALID_ARGUMENT`: the client sent it wrong.
//! - tonic answers a message over the decoding limit with `OUT_OF_RANGE`;
//!   it becomes `RESOURCE_EXHAUSTED`, the gRPC convention for a message
//!   too large (`OUT_OF_RANGE` stays what it means elsewhere: a replica
//!   behind the changelog).
//!
//! Every one of these is charged to the connection's budget of failing
//! calls (`conn.rs`): the 415 and the oversize message here, the decode
//! error by the budget layer outside, which sees `INVALID_ARGUMENT`.
//!
//! The rewrite reads the status tonic puts in the response *headers*: a
//! request message is decoded before any response is sent (unary and
//! server-streaming calls alike), so a decode failure is always answered
//! trailers-only, with `grpc-status` and `grpc-message` as headers. It is
//! recognised by tonic's and prost's messages (`failed to decode Protobuf
//! message`, `protocol error: received message`, `Unexpected EOF decoding
//! stream`, `decoded message length too large`), which
//! `tests/grpc.rs` pins against the tonic in use. A decode failure inside
//! Import's stream (client-streaming, answered after the headers) is left
//! as tonic reports it.

use http::{HeaderValue, StatusCode};
use tonic::{Code, Status};

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

/// What a status tonic answered a malformed request with becomes.
pub fn rewrite(code: Code, message: &str) -> Option<Code> {
    match code {
        Code::Internal
            if message.starts_with("failed to decode Protobuf message")
                || message.starts_with("protocol error: received message")
                || message.starts_with("Unexpected EOF decoding stream") =>
        {
            Some(Code::InvalidArgument)
        }
        Code::OutOfRange if message.contains("decoded message length too large") => {
            Some(Code::ResourceExhausted)
        }
        _ => None,
    }
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
            if let Ok(response) = &mut result
                && response.headers().contains_key("grpc-status")
                && let Some(status) = Status::from_header_map(response.headers())
                && let Some(code) = rewrite(status.code(), status.message())
            {
                if code == Code::ResourceExhausted
                    && let Some(conn) = conn
                {
                    conn.failed();
                }
                let rewritten = Status::new(code, status.message().to_owned());
                let headers = response.headers_mut();
                headers.remove("grpc-status");
                headers.remove("grpc-message");
                headers.remove("grpc-status-details-bin");
                // Only fails on a message that cannot be a header, which
                // the one just read could.
                let _ = rewritten.add_header(headers);
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
    fn decode_failures_are_the_clients_and_oversize_is_exhaustion() {
        assert_eq!(
            rewrite(
                Code::Internal,
                "failed to decode Protobuf message: invalid wire type"
            ),
            Some(Code::InvalidArgument)
        );
        assert_eq!(
            rewrite(Code::Internal, "Unexpected EOF decoding stream."),
            Some(Code::InvalidArgument)
        );
        assert_eq!(
            rewrite(
                Code::OutOfRange,
                "Error, decoded message length too large: found 9 bytes, the limit is: 2 bytes"
            ),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(rewrite(Code::Internal, "the store is corrupt"), None);
        assert_eq!(rewrite(Code::OutOfRange, "revision 3 was compacted"), None);
    }
}
