//! Credential reload: on SIGHUP, and whenever the tokens file's contents
//! change (a Kubernetes Secret volume changes with no signal).

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::security::SecurityArgs;
use crate::server::auth;

/// How often the tokens file is checked for a change: a Kubernetes Secret
/// volume is updated in place, and nothing signals the process.
pub(super) const TOKENS_POLL: Duration = Duration::from_secs(10);

/// Reloads the credentials on SIGHUP and whenever the tokens file's
/// contents change. A file that cannot be read or parsed leaves the
/// credentials in use (the error names the entry, never a value). A server
/// started without credentials stays open: a reload cannot turn
/// authentication on or off, only change who gets in.
pub(super) async fn reload_credentials(
    args: SecurityArgs,
    live: Option<auth::LiveCredentials>,
    mut hangup: Option<tokio::signal::unix::Signal>,
    poll: Duration,
) {
    let read = |args: &SecurityArgs| {
        args.tokens_file
            .as_deref()
            .and_then(|path| auth::Credentials::read_file(path).ok())
    };
    // Not read here: the file may have changed since `serve` read it at
    // startup (recovery can take a while), so the first tick reloads it.
    let mut seen: Option<String> = None;
    let mut first = true;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        let signalled = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match &mut hangup {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let Some(live) = &live else {
            if signalled {
                info!("SIGHUP: no credentials are configured, so there is nothing to reload");
            }
            continue;
        };
        let now = read(&args);
        if !signalled && now == seen {
            continue;
        }
        let quiet = std::mem::take(&mut first) && !signalled;
        seen.clone_from(&now);
        let trigger = if signalled {
            "SIGHUP"
        } else {
            "the tokens file changed"
        };
        if args.tokens_file.is_some() && now.is_none() {
            error!(
                trigger,
                "cannot read the tokens file; the credentials in use stay"
            );
            continue;
        }
        // Exactly the bytes just compared: a file being rewritten in place
        // is not read twice.
        match args.credentials_from(now.as_deref(), |k| std::env::var(k).ok()) {
            Ok(Some(credentials)) => {
                let (tokens, certs) = credentials.counts();
                if (tokens, certs) == (0, 0) && live.load().counts() != (0, 0) {
                    // Most likely a file caught half-written: refusing every
                    // call is the worse outcome.
                    error!(
                        trigger,
                        "the tokens file now holds no token and no client certificate; the credentials in use stay (empty it on purpose by restarting)"
                    );
                    continue;
                }
                live.store(Arc::new(credentials));
                if !quiet {
                    info!(
                        tokens,
                        client_cert_mappings = certs,
                        trigger,
                        "credentials reloaded"
                    );
                }
            }
            Ok(None) => {
                warn!(
                    trigger,
                    "no tokens file or RAMPART_TOKENS to reload from; the credentials in use stay"
                )
            }
            Err(e) => error!(
                trigger,
                "cannot reload the credentials: {e}; the ones in use stay"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_tokens_file_is_reloaded_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        let entry = |name: &str, token: &str| {
            format!(
                "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n",
                crate::client::hash_hex(token)
            )
        };
        // As a Secret volume or an editor does it: a whole new file.
        let replace = |text: &str| {
            let new = dir.path().join("tokens.toml.new");
            std::fs::write(&new, text).unwrap();
            std::fs::rename(&new, &file).unwrap();
        };
        replace(&entry("first", "tok-first"));
        let args = SecurityArgs {
            tokens_file: Some(file.clone()),
            ..SecurityArgs::default()
        };
        let live: auth::LiveCredentials = Arc::new(arc_swap::ArcSwap::from_pointee(
            args.credentials(|_| None).unwrap().unwrap(),
        ));
        let task = tokio::spawn(reload_credentials(
            args,
            Some(Arc::clone(&live)),
            None,
            Duration::from_millis(20),
        ));
        let admits = |token: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
            live.load()
                .authenticate(&headers, &http::Extensions::new())
                .is_ok()
        };
        assert!(admits("tok-first"));
        // A broken file: the credentials in use stay.
        std::fs::write(&file, "[[token]]\nname = \"x\"\nsha256 = \"not-a-hash\"\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            admits("tok-first"),
            "a broken file replaced the credentials"
        );
        // A good one replaces them, with no signal.
        std::fs::write(&file, entry("second", "tok-second")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !admits("tok-second") {
            assert!(
                std::time::Instant::now() < deadline,
                "the changed file was not reloaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!admits("tok-first"), "a revoked token still gets in");
        task.abort();
    }
}
