//! Authentication and scopes: who is calling, and may they call this?
//!
//! Owns the credentials (bearer tokens configured by their SHA-256 hash,
//! client certificates mapped by subject CN), the scope each RPC needs
//! ([`required`]), the tower layer that enforces it in front of every
//! service ([`AuthLayer`]). The client side (tokens sent) is `crate::client`'s.
//! The one rule it leaves to the Admin service is the one that needs the
//! message: acting as the operator (an empty `actor`) needs `operator`.
//!
//! It never logs, prints or returns a token, and never echoes the contents
//! of a credentials file in an error (a token pasted by mistake where its
//! hash belongs must not end up in a log).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use thiserror::Error;
use tonic::Status;
use tonic::transport::server::TlsConnectInfo;

use super::edge::{BoxFuture, Edge, Inner};
use super::tls::subject_cn;
use crate::client::{parse_hash, valid_token};
use crate::proto::{admin_server, authorization_server, replication_server};

/// What a credential may do. `Operator` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `rampart.v1.Authorization`: Check, BatchCheck, the listings.
    Check,
    /// `rampart.v1.Admin`, acting as a user (the administration rules apply).
    Admin,
    /// `rampart.v1.Replication` Watch, Export, GetState: replicas, backups.
    Watch,
    /// Everything: acting as the operator on Admin, Replication Import.
    Operator,
}

impl Scope {
    const ALL: [Scope; 4] = [Scope::Check, Scope::Admin, Scope::Watch, Scope::Operator];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The scope's name in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Admin => "admin",
            Scope::Watch => "watch",
            Scope::Operator => "operator",
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether this set allows `scope` (`operator` allows everything).
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Operator.bit()) != 0
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = Scope::ALL
            .iter()
            .filter(|s| self.0 & s.bit() != 0)
            .map(|s| format!("`{}`", s.name()))
            .collect();
        if names.is_empty() {
            f.write_str("no scope")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// An authenticated caller, put into each request's extensions by
/// [`AuthLayer`]. The Admin service records `name` as the audit log's
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `name`, or `cert:` and the certificate's subject CN.
    pub name: Arc<str>,
    pub scopes: Scopes,
}

impl Principal {
    /// Whether the caller holds `scope` (`operator` holds everything).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Health and reflection: open, so probes work without a credential.
    Open,
    /// A scope.
    Scope(Scope),
    /// A path no service serves: any valid credential (it gets UNIMPLEMENTED),
    /// so an anonymous caller cannot probe for services.
    Authenticated,
}

const AUTHORIZATION: &str = authorization_server::SERVICE_NAME;
const ADMIN: &str = admin_server::SERVICE_NAME;
const REPLICATION: &str = replication_server::SERVICE_NAME;

/// The scope table: what the call at `path` (`/package.Service/Method`) needs.
/// Admin calls that act as the operator also need `operator`; the Admin
/// service checks that, since it depends on the message.
pub fn required(path: &str) -> Need {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Need::Open,
        AUTHORIZATION => Need::Scope(Scope::Check),
        ADMIN => Need::Scope(Scope::Admin),
        REPLICATION if method == "Import" => Need::Scope(Scope::Operator),
        REPLICATION => Need::Scope(Scope::Watch),
        _ => Need::Authenticated,
    }
}

/// Why a credentials file or variable cannot be used. Never carries a
/// value from the file: only names, lines and what is wrong.
#[derive(Debug, Error)]
pub enum CredentialsError {
    #[error("cannot read `{path}`: {why}")]
    Read { path: String, why: String },
    #[error("{origin}: line {line}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: {what}: {message}")]
    Invalid {
        origin: String,
        what: String,
        message: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    token: Vec<TokenSpec>,
    #[serde(default)]
    client_cert: Vec<CertSpec>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    sha256: String,
    scopes: Vec<Scope>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CertSpec {
    subject_cn: String,
    scopes: Vec<Scope>,
}

/// The configured credentials: token hashes and client-certificate
/// mappings, each with its principal.
#[derive(Clone, Default)]
pub struct Credentials {
    tokens: Vec<([u8; 32], Principal)>,
    certs: Vec<(String, Principal)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens.len())
            .field("client_certs", &self.certs.len())
            .finish()
    }
}

impl Credentials {
    /// Parses a tokens file's TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CredentialsError> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| CredentialsError::Syntax {
            origin: origin.to_owned(),
            line: e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            }),
            // The message alone (toml's Display quotes the offending line),
            // and without what it quotes: a type error quotes the value,
            // which may be a token pasted in the wrong place.
            message: redact_quoted(e.message()),
        })?;
        let mut creds = Credentials::default();
        let invalid = |what: String, message: &str| CredentialsError::Invalid {
            origin: origin.to_owned(),
            what,
            message: message.to_owned(),
        };
        for (i, t) in spec.token.into_iter().enumerate() {
            let what = format!("[[token]] {}", i + 1);
            check_name(&t.name).map_err(|m| invalid(what.clone(), m))?;
            let hash = parse_hash(&t.sha256).ok_or_else(|| {
                invalid(
                    format!("[[token]] `{}`", t.name),
                    "`sha256` must be 64 hex digits, the output of `rampart token hash` (not the token itself)",
                )
            })?;
            if t.scopes.is_empty() {
                return Err(invalid(
                    format!("[[token]] `{}`", t.name),
                    "`scopes` is empty",
                ));
            }
            creds.add_token(&t.name, hash, t.scopes.into_iter().collect(), origin)?;
        }
        for (i, c) in spec.client_cert.into_iter().enumerate() {
            check_name(&c.subject_cn)
                .map_err(|m| invalid(format!("[[client_cert]] {}", i + 1), m))?;
            if c.scopes.is_empty() {
                return Err(invalid(
                    format!("[[client_cert]] `{}`", c.subject_cn),
                    "`scopes` is empty",
                ));
            }
            if creds.certs.iter().any(|(cn, _)| *cn == c.subject_cn) {
                return Err(invalid(
                    format!("[[client_cert]] `{}`", c.subject_cn),
                    "this `subject_cn` is mapped twice",
                ));
            }
            let principal = Principal {
                name: format!("cert:{}", c.subject_cn).into(),
                scopes: c.scopes.into_iter().collect(),
            };
            creds.certs.push((c.subject_cn, principal));
        }
        Ok(creds)
    }

    /// Reads a tokens file's text (see [`Credentials::parse`]).
    pub fn read_file(path: &Path) -> Result<String, CredentialsError> {
        std::fs::read_to_string(path).map_err(|e| CredentialsError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    }

    /// Adds a token by its hash (for tests and embedding).
    pub fn add_token(
        &mut self,
        name: &str,
        sha256: [u8; 32],
        scopes: Scopes,
        origin: &str,
    ) -> Result<(), CredentialsError> {
        let invalid = |message: &str| CredentialsError::Invalid {
            origin: origin.to_owned(),
            what: format!("[[token]] `{name}`"),
            message: message.to_owned(),
        };
        if self.tokens.iter().any(|(_, p)| &*p.name == name) {
            return Err(invalid("this name is used twice"));
        }
        if self.tokens.iter().any(|(h, _)| *h == sha256) {
            return Err(invalid("this hash is also another token's"));
        }
        self.tokens.push((
            sha256,
            Principal {
                name: name.into(),
                scopes,
            },
        ));
        Ok(())
    }

    /// Maps client certificates whose subject CN is `subject_cn` to `scopes`.
    pub fn add_client_cert(&mut self, subject_cn: &str, scopes: Scopes) {
        self.certs.push((
            subject_cn.to_owned(),
            Principal {
                name: format!("cert:{subject_cn}").into(),
                scopes,
            },
        ));
    }

    /// Both sets of entries; a name, hash or CN in both is refused.
    pub fn merge(mut self, other: Credentials, origin: &str) -> Result<Self, CredentialsError> {
        for (hash, p) in other.tokens {
            self.add_token(&p.name, hash, p.scopes, origin)?;
        }
        for (cn, p) in other.certs {
            if self.certs.iter().any(|(c, _)| *c == cn) {
                return Err(CredentialsError::Invalid {
                    origin: origin.to_owned(),
                    what: format!("[[client_cert]] `{cn}`"),
                    message: "this `subject_cn` is mapped twice".to_owned(),
                });
            }
            self.certs.push((cn, p));
        }
        Ok(self)
    }

    /// How many tokens and certificate mappings are configured.
    pub fn counts(&self) -> (usize, usize) {
        (self.tokens.len(), self.certs.len())
    }

    /// The token whose hash matches `token`'s. Every configured hash is
    /// compared, in constant time, whatever matches.
    fn token(&self, token: &str) -> Option<&Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, (hash, _)) in self.tokens.iter().enumerate() {
            let same = presented.ct_eq(hash);
            index.conditional_assign(&(i as u32), same);
            found |= same;
        }
        if bool::from(found) {
            self.tokens.get(index as usize).map(|(_, p)| p)
        } else {
            None
        }
    }

    fn cert(&self, der: &[u8]) -> Result<&Principal, Status> {
        let cn = subject_cn(der).ok_or_else(|| {
            Status::unauthenticated("the client certificate has no subject CN to map to scopes")
        })?;
        self.certs
            .iter()
            .find(|(c, _)| *c == cn)
            .map(|(_, p)| p)
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "client certificate `{cn}` is not mapped to any scopes"
                ))
            })
    }

    /// Who sent this request: its bearer token if it has an `authorization`
    /// header, else its verified client certificate.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Principal, Status> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = bearer(value).ok_or_else(|| {
                Status::unauthenticated(
                    "the `authorization` header is malformed: expected `Bearer <token>`",
                )
            })?;
            return self
                .token(token)
                .cloned()
                .ok_or_else(|| Status::unauthenticated("the bearer token is not valid here"));
        }
        let cert = extensions
            .get::<TlsConnectInfo<super::conn::ConnInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        if let Some(cert) = cert.as_ref().and_then(|c| c.first()) {
            return self.cert(cert).cloned();
        }
        Err(Status::unauthenticated(
            "this call needs a credential: `authorization: Bearer <token>` or a client certificate",
        ))
    }

    /// Authenticates a call to `path` and checks the scope it needs.
    /// `Ok(None)` for an open service.
    pub fn authorize(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Option<Principal>, Status> {
        let need = required(path);
        if need == Need::Open {
            return Ok(None);
        }
        let who = self.authenticate(headers, extensions)?;
        if let Need::Scope(scope) = need
            && !who.has(scope)
        {
            return Err(Status::permission_denied(format!(
                "`{}` lacks the `{}` scope that {} needs; it has {}",
                who.name,
                scope.name(),
                path.trim_start_matches('/'),
                who.scopes
            )));
        }
        Ok(Some(who))
    }
}

/// `text` with every `"…"` and `` `…` `` span emptied of its content.
fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        Err("the name must be 1 to 100 characters, none of them control characters")
    } else {
        Ok(())
    }
}

/// The token in `Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && valid_token(token)).then_some(token)
}

/// The credentials a server checks calls against, swapped whole when the
/// tokens file is reloaded (a call sees the old set or the new one).
pub type LiveCredentials = Arc<arc_swap::ArcSwap<Credentials>>;

/// The tower layer that authenticates every call (when credentials are
/// configured) and puts the [`Principal`] into the request's extensions.
/// Without credentials it lets everything through: loopback dev mode.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    credentials: Option<LiveCredentials>,
}

impl AuthLayer {
    pub fn new(credentials: Option<LiveCredentials>) -> Self {
        Self { credentials }
    }
}

impl Edge for AuthLayer {
    fn call<S: Inner<B, R>, B, R: Default + Send + 'static>(
        &self,
        inner: &mut S,
        mut request: http::Request<B>,
    ) -> BoxFuture<Result<http::Response<R>, S::Error>> {
        if let Some(credentials) = &self.credentials {
            match credentials.load().authorize(
                request.uri().path(),
                request.headers(),
                request.extensions(),
            ) {
                Ok(Some(who)) => {
                    request.extensions_mut().insert(who);
                }
                Ok(None) => {}
                Err(status) => {
                    tracing::debug!(path = request.uri().path(), code = ?status.code(), reason = status.message(), "call refused");
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            }
        }
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::hash_hex;

    #[test]
    fn a_token_in_the_wrong_place_is_not_echoed() {
        // A type error: toml's message quotes the value.
        let text = "[[token]]\nname = \"x\"\nsha256 = \"00\"\nscopes = \"rampart_secret123\"\n";
        let err = Credentials::parse(text, "test").unwrap_err().to_string();
        assert!(!err.contains("rampart_secret123"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert_eq!(redact_quoted("a \"b\" c `d` e \"f"), "a \"…\" c `…` e \"…");
    }

    fn creds() -> Credentials {
        let text = format!(
            "[[token]]\nname = \"svc\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n\n\
             [[token]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"operator\"]\n\n\
             [[client_cert]]\nsubject_cn = \"replica-1\"\nscopes = [\"watch\"]\n",
            hash_hex("t-svc"),
            hash_hex("t-ops").to_uppercase()
        );
        Credentials::parse(&text, "test").unwrap()
    }

    fn headers(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        h
    }

    #[test]
    fn the_scope_table() {
        assert_eq!(required("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(
            required("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Need::Open
        );
        assert_eq!(
            required("/rampart.v1.Authorization/Check"),
            Need::Scope(Scope::Check)
        );
        assert_eq!(
            required("/rampart.v1.Admin/ListAuditLog"),
            Need::Scope(Scope::Admin)
        );
        assert_eq!(
            required("/rampart.v1.Replication/Watch"),
            Need::Scope(Scope::Watch)
        );
        assert_eq!(
            required("/rampart.v1.Replication/Import"),
            Need::Scope(Scope::Operator)
        );
        assert_eq!(required("/other.Thing/Do"), Need::Authenticated);
    }

    #[test]
    fn tokens_match_by_hash_and_operator_implies_everything() {
        let c = creds();
        let none = http::Extensions::new();
        let svc = c.authenticate(&headers("Bearer t-svc"), &none).unwrap();
        assert_eq!(&*svc.name, "svc");
        assert!(svc.has(Scope::Check) && !svc.has(Scope::Admin));
        let ops = c.authenticate(&headers("bearer t-ops"), &none).unwrap();
        assert!(Scope::ALL.iter().all(|s| ops.has(*s)));
        for bad in ["Bearer nope", "Basic dTpw", "Bearer", "t-svc", "Bearer  "] {
            let e = c.authenticate(&headers(bad), &none).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
            assert!(!e.message().contains("t-svc"), "{bad}: {}", e.message());
        }
        let e = c.authenticate(&http::HeaderMap::new(), &none).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn bad_files_name_the_problem_and_never_echo_values() {
        let cases = [
            (
                "[[token]]\nname = \"a\"\nsha256 = \"secret-token-value\"\nscopes = [\"check\"]\n",
                "64 hex digits",
            ),
            (
                "[[token]]\nname = \"a\"\nsha256 = \"secret-token-value\nscopes = [\"check\"]\n",
                "line 3",
            ),
            (
                &format!(
                    "[[token]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = []\n",
                    hash_hex("x")
                ),
                "`scopes` is empty",
            ),
            (
                &format!(
                    "[[token]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = [\"root\"]\n",
                    hash_hex("x")
                ),
                "unknown variant",
            ),
            (
                &format!(
                    "[[token]]\nname = \"a\"\nsha256 = \"{0}\"\nscopes = [\"check\"]\n[[token]]\nname = \"b\"\nsha256 = \"{0}\"\nscopes = [\"check\"]\n",
                    hash_hex("x")
                ),
                "another token",
            ),
            ("[[tokens]]\nname = \"a\"\n", "unknown field"),
        ];
        for (text, want) in cases {
            let e = Credentials::parse(text, "`f`").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("secret-token-value"), "{e}");
        }
    }

    #[test]
    fn credentials_do_not_show_in_debug() {
        assert!(!format!("{:?}", creds()).contains(&hash_hex("t-svc")));
    }
}
