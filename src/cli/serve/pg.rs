//! `rampart serve --store postgres://…`: the store opened in PostgreSQL
//! and the engine recovered from it; every node given the same database
//! takes writes and follows the others' (issue #12).

use std::sync::Arc;
use std::time::Duration;

use super::Opened;
use crate::engine::Engine;
use crate::store::{PgStore, Store};

/// Whether `url` names a PostgreSQL store (the libpq URL schemes).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects to the PostgreSQL store at `url` (creating or migrating its
/// schema) and recovers the engine from it, each store write bounded by
/// `store_timeout` (`--store-timeout-ms`, as for sled: a commit can wait
/// without end, for a synchronous standby that is gone). Off the async
/// workers: the `postgres` client blocks. The message names the store,
/// never the password.
pub async fn open_postgres(
    url: String,
    ca: Option<std::path::PathBuf>,
    store_timeout: Duration,
) -> Result<Opened, String> {
    if !is_postgres(&url) {
        return Err(
            "`--store` takes a PostgreSQL URL (`postgres://…` or `postgresql://…`); without it the store is sled in `--data-dir`"
                .to_owned(),
        );
    }
    let opening = tokio::task::spawn_blocking(move || {
        let store = PgStore::connect_with(&url, ca.as_deref())
            .map_err(|e| format!("cannot open the store: {e}"))?;
        let target = store.target().to_owned();
        let store: Arc<dyn Store> = Arc::new(store);
        let engine = Engine::open(Arc::clone(&store)).map_err(|e| {
            format!("cannot recover the state from the PostgreSQL store {target}: {e}")
        })?;
        tracing::info!(store = %target, "store: PostgreSQL (shared with every node on it; --data-dir is not used)");
        Ok((store, Arc::new(engine.with_store_timeout(store_timeout))))
    });
    opening
        .await
        .unwrap_or_else(|e| Err(format!("opening the store failed: {e}")))
}

/// `url` with its password (`user:password@`, or a `password=`
/// parameter) replaced by `***`, for `--print-config`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme) = out.find("://") {
        let rest = scheme + 3;
        let end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..end].rfind('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(query) = out.find('?') {
        let (head, params) = out.split_at(query + 1);
        let params: Vec<String> = params
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{head}{}", params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://rampart:s3cret@db1:5432,db2/policy?target_session_attrs=read-write"),
            "postgres://rampart:***@db1:5432,db2/policy?target_session_attrs=read-write"
        );
        assert_eq!(
            redact("postgresql://rampart@db/policy?password=s3cret&sslmode=disable"),
            "postgresql://rampart@db/policy?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://db/policy"), "postgres://db/policy");
    }
}
