//! The one way to run blocking store work from async code.

use super::StoreError;

/// Runs blocking store I/O (or anything else that answers with a
/// [`StoreError`]) off the async workers. A task that panics or is
/// cancelled is a `Backend` failure.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Backend(format!("store task failed: {e}"))),
    }
}
