//! The `rampart serve` flags for credentials and TLS, what they load into
//! ([`Security`]), and the startup rule that refuses a non-loopback address
//! with no credentials. It never logs a token or a key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::client::{ClientSecurity, ClientTls, Secret, endpoint, read_pem};
use crate::server::auth::{Credentials, CredentialsError};
use crate::server::tls::ServerTls;

/// The `rampart serve` flags for credentials and TLS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityArgs {
    /// Bearer tokens (by SHA-256) and client-certificate mappings, with
    /// their scopes: a TOML file. The same TOML may also be given inline in
    /// RAMPART_TOKENS; both are used.
    #[arg(long, env = "RAMPART_TOKENS_FILE", value_name = "PATH")]
    pub tokens_file: Option<PathBuf>,
    /// The server's certificate chain (PEM): serve TLS.
    #[arg(
        long,
        env = "RAMPART_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(
        long,
        env = "RAMPART_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Verify client certificates against this CA (PEM): mTLS. A verified
    /// certificate gets the scopes its `[[client_cert]]` entry gives.
    #[arg(
        long,
        env = "RAMPART_TLS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Listen on a non-loopback address with no credentials configured
    /// (anyone who reaches the port can act as the operator).
    #[arg(long, env = "RAMPART_INSECURE")]
    pub insecure: bool,
    /// The CA to trust for an `https://` --follow URL (PEM).
    #[arg(
        long,
        env = "RAMPART_FOLLOW_CA",
        value_name = "PEM",
        requires = "follow"
    )]
    pub follow_ca: Option<PathBuf>,
    /// The replica's client certificate for mTLS to its leader (PEM).
    #[arg(long, env = "RAMPART_FOLLOW_CERT", value_name = "PEM", requires_all = ["follow", "follow_key"])]
    pub follow_cert: Option<PathBuf>,
    /// The key of --follow-cert (PEM).
    #[arg(
        long,
        env = "RAMPART_FOLLOW_KEY",
        value_name = "PEM",
        requires = "follow_cert"
    )]
    pub follow_key: Option<PathBuf>,
    /// A file holding the bearer token the replica sends its leader (it
    /// needs the `watch` scope; for a replica of some tenants, best one
    /// confined to them: `tenants` in the leader's tokens file). Or put the
    /// token in RAMPART_FOLLOW_TOKEN.
    #[arg(
        long,
        env = "RAMPART_FOLLOW_TOKEN_FILE",
        value_name = "PATH",
        requires = "follow"
    )]
    pub follow_token_file: Option<PathBuf>,
}

/// What `rampart serve` runs with: TLS, credentials, and how a replica
/// reaches its leader.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Serve TLS with this.
    pub tls: Option<ServerTls>,
    /// Authenticate every call (but health and reflection) against these;
    /// `None`: everything is open (loopback dev mode).
    pub credentials: Option<Arc<Credentials>>,
    /// How a replica connects to its leader.
    pub follow: ClientSecurity,
}

impl Security {
    /// Logs how the server is protected: counts and modes, never a token
    /// or a hash.
    pub fn log(&self, listen: SocketAddr) {
        let (tokens, certs) = self.credentials.as_ref().map_or((0, 0), |c| c.counts());
        let tls = match &self.tls {
            None => "off",
            Some(t) if t.client_ca.is_some() => "on, client certificates verified",
            Some(_) => "on",
        };
        match &self.credentials {
            Some(_) => tracing::info!(
                tokens,
                client_cert_mappings = certs,
                tls,
                "authentication on"
            ),
            None if listen.ip().is_loopback() => {
                tracing::info!(
                    tls,
                    "no credentials configured: every call is open (loopback only)"
                )
            }
            None => {
                tracing::warn!(%listen, tls, "no credentials configured and --insecure: every call is open to anyone who reaches this address")
            }
        }
    }
}

/// Why `rampart serve` will not start with these flags.
#[derive(Debug, Error)]
pub enum SecurityError {
    /// The non-loopback rule: exit 64.
    #[error(
        "refusing to listen on non-loopback address {0} with no credentials configured: anyone who can reach it could act as the operator; configure bearer tokens (--tokens-file or RAMPART_TOKENS) or client certificates (--tls-client-ca), or pass --insecure to accept the risk"
    )]
    Unprotected(SocketAddr),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    File(#[from] crate::client::ClientError),
    #[error("{0}")]
    Config(String),
}

impl SecurityError {
    /// 64 (`EX_USAGE`) for the non-loopback rule, 78 (`EX_CONFIG`) for
    /// files that cannot be used.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unprotected(_) => 64,
            _ => 78,
        }
    }
}

impl SecurityArgs {
    /// The tokens file and RAMPART_TOKENS, merged: what `load` starts with
    /// and what a reload reads again. `None` when neither is given.
    pub fn credentials(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let text = self
            .tokens_file
            .as_deref()
            .map(Credentials::read_file)
            .transpose()?;
        self.credentials_from(text.as_deref(), env)
    }

    /// [`SecurityArgs::credentials`] with the tokens file's text already
    /// read (`None`: no file): a reload parses exactly the bytes it compared.
    pub fn credentials_from(
        &self,
        file_text: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let origin = self.tokens_file.as_ref().map_or_else(
            || "the tokens file".to_owned(),
            |p| format!("`{}`", p.display()),
        );
        let mut credentials = file_text
            .map(|text| Credentials::parse(text, &origin))
            .transpose()?;
        if let Some(inline) = env("RAMPART_TOKENS").filter(|t| !t.trim().is_empty()) {
            let parsed = Credentials::parse(&inline, "RAMPART_TOKENS")?;
            credentials = Some(match credentials {
                Some(c) => c.merge(parsed, "RAMPART_TOKENS")?,
                None => parsed,
            });
        }
        Ok(credentials)
    }

    /// The non-loopback rule: a listener on `listen` without credentials
    /// (`protected` false) is refused unless it is loopback or `--insecure`
    /// is given. The gRPC port and the HTTP listener both answer to it.
    pub fn refuse_unprotected(
        &self,
        protected: bool,
        listen: SocketAddr,
    ) -> Result<(), SecurityError> {
        if protected || listen.ip().is_loopback() || self.insecure {
            Ok(())
        } else {
            Err(SecurityError::Unprotected(listen))
        }
    }

    /// Reads every file the flags name, plus RAMPART_TOKENS and
    /// RAMPART_FOLLOW_TOKEN from `env`, and applies the non-loopback rule.
    pub fn load(
        &self,
        listen: SocketAddr,
        follow: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Security, SecurityError> {
        let mut credentials = self.credentials(&env)?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls {
                cert: read_pem(cert)?,
                key: read_pem(key)?,
                client_ca: self.tls_client_ca.as_deref().map(read_pem).transpose()?,
            }),
            _ => None,
        };
        if tls.as_ref().is_some_and(|t| t.client_ca.is_some()) && credentials.is_none() {
            // Verified certificates with nothing to map them: every call
            // but health and reflection is refused, which is safe.
            credentials = Some(Credentials::default());
        }
        self.refuse_unprotected(credentials.is_some(), listen)?;
        let follow_tls = ClientTls::load(
            self.follow_ca.as_deref(),
            self.follow_cert.as_deref(),
            self.follow_key.as_deref(),
        )
        .map_err(|e| SecurityError::Config(format!("--follow-ca/--follow-cert: {e}")))?;
        let token = match &self.follow_token_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                SecurityError::Config(format!("cannot read `{}`: {e}", path.display()))
            })?),
            None => env("RAMPART_FOLLOW_TOKEN"),
        };
        let token = token
            .map(|t| {
                t.parse::<Secret>()
                    .map_err(|e| SecurityError::Config(format!("the replica's bearer token: {e}")))
            })
            .transpose()?;
        if let Some(url) = follow {
            endpoint(url, follow_tls.as_ref())
                .map_err(|e| SecurityError::Config(format!("--follow: {e}")))?;
        }
        Ok(Security {
            tls,
            credentials: credentials.map(Arc::new),
            follow: ClientSecurity {
                tls: follow_tls,
                token,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_non_loopback_rule() {
        let none = |_: &str| None;
        let args = SecurityArgs::default();
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(args.load(local, None, none).unwrap().credentials.is_none());
        let e = args.load(any, None, none).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("--insecure"), "{e}");
        let insecure = SecurityArgs {
            insecure: true,
            ..SecurityArgs::default()
        };
        assert!(insecure.load(any, None, none).is_ok());
        let inline = format!(
            "[[token]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n",
            crate::client::hash_hex("x")
        );
        let with_tokens = args
            .load(any, None, |k: &str| {
                (k == "RAMPART_TOKENS").then(|| inline.clone())
            })
            .unwrap();
        assert_eq!(with_tokens.credentials.unwrap().counts(), (1, 0));
    }
}
