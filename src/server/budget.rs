//! The layer that charges a call the client got wrong to its connection's
//! budget of failing calls (`conn.rs`): an overdrawn connection is paused.

use super::conn::{client_fault, conn_state};
use super::edge::{BoxFuture, Edge, Inner};
use super::status_code;

/// Charges each call answered with a client's-fault code
/// ([`client_fault`]) to the connection it came on.
#[derive(Debug, Clone, Copy, Default)]
pub struct BudgetLayer;

impl Edge for BudgetLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        let conn = conn_state(request.extensions()).cloned();
        let call = inner.call(request);
        Box::pin(async move {
            let result = call.await;
            if let Some(conn) = conn
                && client_fault(status_code(&result))
            {
                conn.failed();
            }
            result
        })
    }
}
