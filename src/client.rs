//! The client half of rampart's wire: what `rampart ctl`, `rampart bench`
//! and a replica following its leader need to call a server. Bearer tokens
//! (their syntax, hashing and the interceptor that sends them), client TLS,
//! and building a channel's endpoint from a URL.
//!
//! Imports only the generated wire types' crate-level neighbours: nothing of
//! the server, so a client never links the server's layers.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tonic::Status;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Why a client could not be set up.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` holds no PEM block", path.display())]
    NotPem { path: PathBuf },
    #[error("a client certificate needs both its cert and its key")]
    HalfIdentity,
    #[error("`{url}` is not a URL: {reason}")]
    NotUrl { url: String, reason: String },
    #[error("TLS settings were given but `{url}` is not an https:// URL")]
    TlsWithoutHttps { url: String },
    #[error("`{url}` needs the CA that signed the server's certificate (a PEM file)")]
    NoCa { url: String },
    #[error("cannot use the TLS settings for `{url}`: {reason}")]
    Tls { url: String, reason: String },
    #[error("the token is not a valid header value")]
    BadToken,
}

/// A secret given on the command line or in the environment: its `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A token that is not 1 to 4096 visible ASCII characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a token is 1 to 4096 visible ASCII characters")]
pub struct InvalidToken;

impl std::str::FromStr for Secret {
    type Err = InvalidToken;

    fn from_str(s: &str) -> Result<Self, InvalidToken> {
        let s = s.trim();
        if valid_token(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidToken)
        }
    }
}

/// A 64-hex-digit SHA-256.
pub fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// The SHA-256 of a token, as the tokens file holds it (lowercase hex).
pub fn hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` can be sent in a header: 1 to 4096 visible ASCII characters.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A fresh token: `rampart_` and 32 bytes from the operating system's
/// random source, in hex (256 bits).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("rampart_{hex}"))
}

/// Sends `authorization: Bearer <token>` on every call (or nothing, without
/// a token).
#[derive(Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Bearer {
    /// Sends `token` with every call, or nothing when `None`.
    pub fn new(token: Option<&Secret>) -> Result<Self, ClientError> {
        match token {
            None => Ok(Self(None)),
            Some(t) => {
                let mut value: AsciiMetadataValue =
                    MetadataValue::try_from(format!("Bearer {}", t.expose()))
                        .map_err(|_| ClientError::BadToken)?;
                value.set_sensitive(true);
                Ok(Self(Some(value)))
            }
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client channel that sends the bearer token.
pub type AuthedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

/// How a client connects over TLS: the CA it trusts, and its own
/// certificate and key for mTLS, as PEM.
#[derive(Clone, Default)]
pub struct ClientTls {
    pub ca: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Reads `--ca`, `--cert` and `--key` style files; `None` when none is given.
    pub fn load(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<Self>, ClientError> {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read_pem(c)?, read_pem(k)?)),
            (None, None) => None,
            _ => return Err(ClientError::HalfIdentity),
        };
        let ca = ca.map(read_pem).transpose()?;
        Ok((ca.is_some() || identity.is_some()).then_some(Self { ca, identity }))
    }
}

/// How a client reaches a server: TLS settings and the bearer token.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    pub tls: Option<ClientTls>,
    pub token: Option<Secret>,
}

/// An endpoint for `url`: `https://` uses `tls` (which must name the CA to
/// trust: there are no built-in roots), `http://` refuses TLS settings.
pub fn endpoint(url: &str, tls: Option<&ClientTls>) -> Result<Endpoint, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| ClientError::NotUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let https = url.starts_with("https://");
    match (https, tls) {
        (false, None) => Ok(endpoint),
        (false, Some(_)) => Err(ClientError::TlsWithoutHttps {
            url: url.to_owned(),
        }),
        (true, tls) => {
            let tls = tls.cloned().unwrap_or_default();
            let Some(ca) = &tls.ca else {
                return Err(ClientError::NoCa {
                    url: url.to_owned(),
                });
            };
            let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint.tls_config(config).map_err(|e| ClientError::Tls {
                url: url.to_owned(),
                reason: e.to_string(),
            })
        }
    }
}

/// The bytes of a PEM file (a certificate, a key or a CA bundle); refused
/// when it holds no PEM block.
pub fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(ClientError::NotPem {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_fresh_and_valid() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(valid_token(&a) && a.len() == 8 + 64);
        assert_eq!(parse_hash(&hash_hex(&a)).map(|h| h.len()), Some(32));
    }

    #[test]
    fn secrets_and_bearers_do_not_show_in_debug() {
        let s: Secret = "t-svc".parse().unwrap();
        assert!(!format!("{s:?}").contains("t-svc"));
        let b = Bearer::new(Some(&s)).unwrap();
        assert!(!format!("{b:?}").contains("t-svc"));
    }

    #[test]
    fn https_needs_a_ca_and_http_refuses_tls_settings() {
        assert!(
            endpoint("https://h:1", None)
                .unwrap_err()
                .to_string()
                .contains("CA")
        );
        let tls = ClientTls {
            ca: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            identity: None,
        };
        assert!(
            endpoint("http://h:1", Some(&tls))
                .unwrap_err()
                .to_string()
                .contains("https")
        );
        assert!(endpoint("http://h:1", None).is_ok());
    }
}
