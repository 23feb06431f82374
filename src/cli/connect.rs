//! How a client command reaches a server: the options `rampart ctl` and
//! `rampart health` share (`--server`, `--token`, `--ca`, `--cert`, `--key`,
//! each also a `RAMPART_*` variable) and the endpoint they make, through
//! `crate::client`. One definition, so the two commands cannot drift apart.
//!
//! Builds an endpoint and a bearer interceptor only; it neither connects nor
//! decides what a failure means to its command (its exit code).

use std::path::PathBuf;

use clap::Args;
use tonic::transport::Endpoint;

use crate::client::{self, Bearer, ClientTls, Secret};

/// Where the server is and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server to talk to (`http://HOST:PORT`, or `https://` with --ca;
    /// `http://` is assumed if omitted).
    #[arg(
        long,
        global = true,
        env = "RAMPART_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token to send (prefer the variable: a flag shows in `ps`).
    #[arg(long, global = true, env = "RAMPART_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// CA that signed the server's certificate (PEM), for an `https://` server.
    #[arg(long, global = true, env = "RAMPART_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Client certificate for mTLS (PEM).
    #[arg(
        long,
        global = true,
        env = "RAMPART_CERT",
        value_name = "PEM",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,
    /// Key of --cert (PEM).
    #[arg(
        long,
        global = true,
        env = "RAMPART_KEY",
        value_name = "PEM",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
}

/// An endpoint to connect to, and the interceptor that sends the token.
#[derive(Debug, Clone)]
pub struct Target {
    /// `--server` as a URL (`http://` added when it has no scheme).
    pub url: String,
    pub endpoint: Endpoint,
    pub bearer: Bearer,
}

impl ConnectArgs {
    /// `--server` as a URL: `http://` is assumed when it names no scheme.
    pub fn url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("http://{}", self.server)
        }
    }

    /// The endpoint and the bearer, with the TLS files read. The error (an
    /// unreadable file, a bad URL or token) is the server never asked, and
    /// says which setting is wrong.
    pub fn target(&self) -> Result<Target, String> {
        let url = self.url();
        let tls = ClientTls::load(
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let bearer = Bearer::new(self.token.as_ref()).map_err(|e| e.to_string())?;
        let endpoint = client::endpoint(&url, tls.as_ref())
            .map_err(|e| format!("bad --server `{}`: {e}", self.server))?
            .tcp_nodelay(true);
        Ok(Target {
            url,
            endpoint,
            bearer,
        })
    }
}

/// An error and its sources, `: `-joined, skipping repeats.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str) -> ConnectArgs {
        ConnectArgs {
            server: server.to_owned(),
            token: None,
            ca: None,
            cert: None,
            key: None,
        }
    }

    #[test]
    fn a_server_without_a_scheme_is_http() {
        assert_eq!(args("h:1").url(), "http://h:1");
        assert_eq!(args("https://h:1").url(), "https://h:1");
    }

    #[test]
    fn https_without_a_ca_is_refused_before_connecting() {
        let err = args("https://h:1").target().unwrap_err();
        assert!(
            err.contains("--server `https://h:1`") && err.contains("CA"),
            "{err}"
        );
        assert_eq!(args("h:1").target().unwrap().url, "http://h:1");
    }
}
