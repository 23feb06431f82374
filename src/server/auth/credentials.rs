//! The credentials file (`--tokens-file`, `RAMPART_TOKENS`): bearer tokens
//! by their SHA-256 hash and client-certificate mappings, each with its
//! scopes; parsing and validating it without echoing its values, and
//! looking a token or a certificate up.
//!
//! A `[[client_cert]]` entry matches certificates by exactly one name:
//! `subject_cn` (the subject's common name; principal `cert:<CN>`) or
//! `uri_san` (one of the URI subject alternative names, a SPIFFE ID say;
//! principal `uri:<URI>`). Both compare exactly. When a certificate
//! matches both kinds, the `uri_san` entry wins: the first one, in file
//! order, that any of its URI SANs equals; scopes are never combined.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use thiserror::Error;
use tonic::Status;

use super::{Bounds, Principal, Scope, Scopes, bounds};
use crate::client::parse_hash;
use crate::server::tls::peer_names;

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
    tenants: Option<Vec<String>>,
    actor: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CertSpec {
    subject_cn: Option<String>,
    uri_san: Option<String>,
    scopes: Vec<Scope>,
    tenants: Option<Vec<String>>,
    actor: Option<String>,
}

/// What a client-certificate mapping matches a certificate by.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CertName {
    /// The subject CN, exactly.
    SubjectCn(String),
    /// One of the URI SANs, exactly.
    UriSan(String),
}

impl CertName {
    /// Its key in the credentials file.
    fn key(&self) -> &'static str {
        match self {
            CertName::SubjectCn(_) => "subject_cn",
            CertName::UriSan(_) => "uri_san",
        }
    }

    /// How errors name the entry.
    fn entry(&self) -> String {
        let (CertName::SubjectCn(name) | CertName::UriSan(name)) = self;
        format!("[[client_cert]] `{name}`")
    }

    /// The principal of a certificate it matches.
    fn principal(&self, scopes: Scopes, bounds: Bounds) -> Principal {
        let name = match self {
            CertName::SubjectCn(cn) => format!("cert:{cn}"),
            CertName::UriSan(uri) => format!("uri:{uri}"),
        };
        Principal {
            name: name.into(),
            scopes,
            bounds,
        }
    }
}

/// The configured credentials: token hashes and client-certificate
/// mappings, each with its principal.
#[derive(Clone, Default)]
pub struct Credentials {
    tokens: Vec<([u8; 32], Principal)>,
    certs: Vec<(CertName, Principal)>,
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
            let scopes = t.scopes.into_iter().collect();
            let bounds = bounds(scopes, t.tenants, t.actor)
                .map_err(|m| invalid(format!("[[token]] `{}`", t.name), m))?;
            creds.add_bounded_token(&t.name, hash, scopes, bounds, origin)?;
        }
        for (i, c) in spec.client_cert.into_iter().enumerate() {
            let entry = || format!("[[client_cert]] {}", i + 1);
            let name = match (c.subject_cn, c.uri_san) {
                (Some(cn), None) => {
                    check_name(&cn).map_err(|m| invalid(entry(), m))?;
                    CertName::SubjectCn(cn)
                }
                (None, Some(uri)) => {
                    check_uri_san(&uri).map_err(|m| invalid(entry(), m))?;
                    CertName::UriSan(uri)
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        entry(),
                        "has both `subject_cn` and `uri_san`: give exactly one",
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        entry(),
                        "has neither `subject_cn` nor `uri_san`: give exactly one",
                    ));
                }
            };
            if c.scopes.is_empty() {
                return Err(invalid(name.entry(), "`scopes` is empty"));
            }
            let scopes = c.scopes.into_iter().collect();
            let bounds =
                bounds(scopes, c.tenants, c.actor).map_err(|m| invalid(name.entry(), m))?;
            creds.add_cert(name.principal(scopes, bounds), name, origin)?;
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
        self.add_bounded_token(name, sha256, scopes, Bounds::default(), origin)
    }

    /// Adds a token by its hash, confined to `bounds` (which the caller
    /// has checked as [`Credentials::parse`] does).
    pub fn add_bounded_token(
        &mut self,
        name: &str,
        sha256: [u8; 32],
        scopes: Scopes,
        bounds: Bounds,
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
                bounds,
            },
        ));
        Ok(())
    }

    /// Maps client certificates whose subject CN is `subject_cn` to `scopes`.
    pub fn add_client_cert(&mut self, subject_cn: &str, scopes: Scopes) {
        let name = CertName::SubjectCn(subject_cn.to_owned());
        self.certs
            .push((name.clone(), name.principal(scopes, Bounds::default())));
    }

    /// Maps client certificates with `uri_san` among their URI SANs (a
    /// SPIFFE ID, say) to `scopes`. The URI is validated as in a file, and
    /// mapping one twice is refused.
    pub fn add_client_cert_uri(
        &mut self,
        uri_san: &str,
        scopes: Scopes,
        origin: &str,
    ) -> Result<(), CredentialsError> {
        check_uri_san(uri_san).map_err(|message| CredentialsError::Invalid {
            origin: origin.to_owned(),
            what: "[[client_cert]]".to_owned(),
            message: message.to_owned(),
        })?;
        let name = CertName::UriSan(uri_san.to_owned());
        self.add_cert(name.principal(scopes, Bounds::default()), name, origin)
    }

    /// Adds a certificate mapping, refusing a name already mapped.
    fn add_cert(
        &mut self,
        principal: Principal,
        name: CertName,
        origin: &str,
    ) -> Result<(), CredentialsError> {
        if self.certs.iter().any(|(n, _)| *n == name) {
            return Err(CredentialsError::Invalid {
                origin: origin.to_owned(),
                what: name.entry(),
                message: format!("this `{}` is mapped twice", name.key()),
            });
        }
        self.certs.push((name, principal));
        Ok(())
    }

    /// Both sets of entries; a name, hash, CN or URI SAN in both is refused.
    pub fn merge(mut self, other: Credentials, origin: &str) -> Result<Self, CredentialsError> {
        for (hash, p) in other.tokens {
            self.add_bounded_token(&p.name, hash, p.scopes, p.bounds, origin)?;
        }
        for (name, p) in other.certs {
            self.add_cert(p, name, origin)?;
        }
        Ok(self)
    }

    /// How many tokens and certificate mappings are configured.
    pub fn counts(&self) -> (usize, usize) {
        (self.tokens.len(), self.certs.len())
    }

    /// The token whose hash matches `token`'s. Every configured hash is
    /// compared, in constant time, whatever matches.
    pub(super) fn token(&self, token: &str) -> Option<&Principal> {
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

    /// The mapping of a verified client certificate (DER): the first
    /// `uri_san` entry that one of its URI SANs equals, else the
    /// `subject_cn` entry its CN equals.
    pub(super) fn cert(&self, der: &[u8]) -> Result<&Principal, Status> {
        let names = peer_names(der).ok_or_else(|| {
            Status::unauthenticated("the client certificate cannot be read to map it to scopes")
        })?;
        let by_uri = self
            .certs
            .iter()
            .find(|(n, _)| matches!(n, CertName::UriSan(uri) if names.uri_sans.contains(uri)));
        let by_cn = || {
            self.certs.iter().find(
                |(n, _)| matches!(n, CertName::SubjectCn(cn) if names.subject_cn.as_ref() == Some(cn)),
            )
        };
        if let Some((_, principal)) = by_uri.or_else(by_cn) {
            return Ok(principal);
        }
        Err(Status::unauthenticated(
            match (&names.subject_cn, names.uri_sans.is_empty()) {
                (Some(cn), _) => format!("client certificate `{cn}` is not mapped to any scopes"),
                (None, false) => format!(
                    "the client certificate with URI SAN `{}` is not mapped to any scopes",
                    names.uri_sans.join("`, `")
                ),
                (None, true) => {
                    "the client certificate has no subject CN or URI SAN to map to scopes"
                        .to_owned()
                }
            },
        ))
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

/// A `uri_san`: an absolute URI with a scheme and an authority (parsed by
/// `http::Uri`), and for `spiffe:` a well-formed SPIFFE ID. The messages
/// never quote it.
fn check_uri_san(text: &str) -> Result<(), &'static str> {
    const ABSOLUTE: &str = "`uri_san` must be an absolute URI of at most 2048 characters, `scheme://authority/path`, such as `spiffe://cluster.local/ns/shop/sa/checkout`";
    const TRUST_DOMAIN: &str = "a SPIFFE ID needs a trust domain: `spiffe://<trust domain>/<path>`, the trust domain in lowercase letters, digits, `.`, `-` and `_`, with no port or user";
    const PATH: &str = "a SPIFFE ID's path is `/`-separated segments of letters, digits, `.`, `-` and `_` (none empty, `.` or `..`), with no query or fragment";
    const SPIFFE: &str = "spiffe://";
    if text.len() > 2048 {
        return Err(ABSOLUTE);
    }
    let uri: http::Uri = text.parse().map_err(|_| ABSOLUTE)?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(ABSOLUTE);
    };
    if authority.host().is_empty() {
        return Err(ABSOLUTE);
    }
    if !scheme.eq_ignore_ascii_case("spiffe") {
        return Ok(());
    }
    // SPIFFE IDs are compared as written: the scheme and trust domain must
    // already be in their lowercase form.
    let Some(rest) = text.strip_prefix(SPIFFE) else {
        return Err("a SPIFFE ID is written with a lowercase `spiffe://`");
    };
    let (domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let domain_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b);
    if domain.is_empty() || !domain.bytes().all(domain_ok) {
        return Err(TRUST_DOMAIN);
    }
    let segment_ok = |s: &str| {
        !matches!(s, "" | "." | "..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    if !path.is_empty() && !path.split('/').skip(1).all(segment_ok) {
        return Err(PATH);
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::client::hash_hex;
    use crate::server::tls::tests::{cert, uri};

    #[test]
    fn a_token_in_the_wrong_place_is_not_echoed() {
        // A type error: toml's message quotes the value.
        let text = "[[token]]\nname = \"x\"\nsha256 = \"00\"\nscopes = \"rampart_secret123\"\n";
        let err = Credentials::parse(text, "test").unwrap_err().to_string();
        assert!(!err.contains("rampart_secret123"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert_eq!(redact_quoted("a \"b\" c `d` e \"f"), "a \"…\" c `…` e \"…");
    }

    pub(in crate::server::auth) fn creds() -> Credentials {
        let text = format!(
            "[[token]]\nname = \"svc\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n\n\
             [[token]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"operator\"]\n\n\
             [[client_cert]]\nsubject_cn = \"replica-1\"\nscopes = [\"watch\"]\n",
            hash_hex("t-svc"),
            hash_hex("t-ops").to_uppercase()
        );
        Credentials::parse(&text, "test").unwrap()
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

    const SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/checkout";

    /// `replica-1` by CN (`watch`) and the checkout SPIFFE ID (`check`).
    fn cert_creds() -> Credentials {
        let text = format!(
            "[[client_cert]]\nsubject_cn = \"replica-1\"\nscopes = [\"watch\"]\n\n\
             [[client_cert]]\nuri_san = \"{SPIFFE}\"\nscopes = [\"check\"]\n"
        );
        Credentials::parse(&text, "test").unwrap()
    }

    #[test]
    fn a_certificate_maps_by_cn_or_by_uri_san() {
        let c = cert_creds();
        let by_cn = c.cert(&cert(Some("replica-1"), &[])).unwrap();
        assert_eq!(&*by_cn.name, "cert:replica-1");
        assert!(by_cn.has(Scope::Watch) && !by_cn.has(Scope::Check));
        let by_uri = c
            .cert(&cert(None, &[uri("https://other.example/"), uri(SPIFFE)]))
            .unwrap();
        assert_eq!(&*by_uri.name, format!("uri:{SPIFFE}"));
        assert!(by_uri.has(Scope::Check) && !by_uri.has(Scope::Watch));
        assert!(!by_uri.has(Scope::Admin));
        // An unmapped URI SAN does not hide a mapped CN.
        let cn_only = c
            .cert(&cert(
                Some("replica-1"),
                &[uri("spiffe://cluster.local/other")],
            ))
            .unwrap();
        assert_eq!(&*cn_only.name, "cert:replica-1");
    }

    #[test]
    fn the_uri_san_entry_wins_over_the_cn_entry_and_scopes_never_add_up() {
        let c = cert_creds();
        let both = c.cert(&cert(Some("replica-1"), &[uri(SPIFFE)])).unwrap();
        assert_eq!(&*both.name, format!("uri:{SPIFFE}"));
        assert!(both.has(Scope::Check) && !both.has(Scope::Watch));
        // The first `uri_san` entry in file order, whatever the SAN order.
        let text = "[[client_cert]]\nuri_san = \"spiffe://td/b\"\nscopes = [\"watch\"]\n\
                    [[client_cert]]\nuri_san = \"spiffe://td/a\"\nscopes = [\"check\"]\n";
        let c = Credentials::parse(text, "test").unwrap();
        let p = c
            .cert(&cert(None, &[uri("spiffe://td/a"), uri("spiffe://td/b")]))
            .unwrap();
        assert_eq!(&*p.name, "uri:spiffe://td/b");
    }

    #[test]
    fn unmapped_unnamed_and_unreadable_certificates_are_refused() {
        let c = cert_creds();
        let refused = |der: &[u8]| {
            let e = c.cert(der).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            e.message().to_owned()
        };
        assert!(refused(&cert(Some("stranger"), &[])).contains("`stranger` is not mapped"));
        let m = refused(&cert(
            None,
            &[uri("spiffe://cluster.local/ns/shop/sa/cart")],
        ));
        assert!(m.contains("spiffe://cluster.local/ns/shop/sa/cart"), "{m}");
        // A URI SAN matches exactly: no prefix, no case folding.
        refused(&cert(None, &[uri("spiffe://cluster.local/ns/shop/sa")]));
        refused(&cert(None, &[uri(&SPIFFE.replace("checkout", "Checkout"))]));
        assert!(refused(&cert(None, &[])).contains("no subject CN or URI SAN"));
        let der = cert(Some("replica-1"), &[uri(SPIFFE)]);
        assert!(refused(&der[..der.len() / 2]).contains("cannot be read"));
        assert!(refused(b"not a certificate").contains("cannot be read"));
    }

    #[test]
    fn client_cert_entries_need_exactly_one_valid_name() {
        let entry = |body: &str| format!("[[client_cert]]\n{body}\nscopes = [\"check\"]\n");
        let cases = [
            (
                entry(&format!("subject_cn = \"a\"\nuri_san = \"{SPIFFE}\"")),
                "[[client_cert]] 1: has both `subject_cn` and `uri_san`",
            ),
            (entry(""), "[[client_cert]] 1: has neither"),
            (
                format!("{0}{0}", entry(&format!("uri_san = \"{SPIFFE}\""))),
                "this `uri_san` is mapped twice",
            ),
            (
                format!(
                    "{}{}",
                    entry("subject_cn = \"a\""),
                    entry("uri_san = \"secret value\"")
                ),
                "[[client_cert]] 2: `uri_san` must be an absolute URI",
            ),
            (entry("uri_san = \"\""), "must be an absolute URI"),
            (
                entry("uri_san = \"cluster.local/ns\""),
                "must be an absolute URI",
            ),
            (
                entry("uri_san = \"cluster.local\""),
                "must be an absolute URI",
            ),
            (entry("uri_san = \"spiffe:///ns/x\""), "absolute URI"),
            (
                entry("uri_san = \"spiffe://Cluster.local/ns\""),
                "trust domain",
            ),
            (entry("uri_san = \"spiffe://td:443/ns\""), "trust domain"),
            (entry("uri_san = \"spiffe://u@td/ns\""), "trust domain"),
            (
                entry("uri_san = \"SPIFFE://td/ns\""),
                "lowercase `spiffe://`",
            ),
            (entry("uri_san = \"spiffe://td/ns/\""), "path"),
            (entry("uri_san = \"spiffe://td/ns//x\""), "path"),
            (entry("uri_san = \"spiffe://td/ns/../x\""), "path"),
            (entry("uri_san = \"spiffe://td/ns?x=1\""), "path"),
            (entry("uri_san = \"spiffe://td/ns#x\""), "path"),
            (entry("uri_san = 7"), "invalid type"),
        ];
        for (text, want) in cases {
            let e = Credentials::parse(&text, "`f`").unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("secret value"), "{e}");
        }
        for ok in [
            SPIFFE,
            "spiffe://cluster.local",
            "spiffe://prod_1.example-corp.org/a.b/c-d/E_F",
            "https://shop.example/checkout",
        ] {
            let text = entry(&format!("uri_san = \"{ok}\""));
            let c = Credentials::parse(&text, "test").unwrap();
            assert_eq!(c.counts(), (0, 1), "{ok}");
        }
    }

    #[test]
    fn merging_refuses_a_uri_san_mapped_in_both() {
        let mut other = Credentials::default();
        other
            .add_client_cert_uri(SPIFFE, Scopes::from_iter([Scope::Admin]), "env")
            .unwrap();
        let e = cert_creds().merge(other, "env").unwrap_err().to_string();
        assert!(e.contains("this `uri_san` is mapped twice"), "{e}");
        let mut c = Credentials::default();
        let e = c
            .add_client_cert_uri("not a uri", Scopes::from_iter([Scope::Check]), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute URI"), "{e}");
        // A CN and a URI SAN with the same text are different names.
        let mut c = cert_creds();
        c.add_client_cert_uri("spiffe://replica-1", Scopes::default(), "x")
            .unwrap();
        assert_eq!(c.counts(), (0, 3));
    }

    #[test]
    fn tenants_confine_watch_credentials_too_but_not_operator_ones() {
        let entry = |scopes: &str| {
            format!(
                "[[token]]\nname = \"sidecar\"\nsha256 = \"{}\"\nscopes = [{scopes}]\ntenants = [\"globex\", \"acme\"]\n",
                hash_hex("t-sidecar")
            )
        };
        for scopes in ["\"watch\"", "\"watch\", \"check\"", "\"admin\", \"watch\""] {
            let creds = Credentials::parse(&entry(scopes), "test").unwrap();
            let p = creds.token("t-sidecar").unwrap();
            assert!(p.has(Scope::Watch) && !p.has(Scope::Operator), "{scopes}");
            let tenants = p.bounds.tenants.as_deref().unwrap();
            assert_eq!(tenants, ["acme".to_owned(), "globex".to_owned()]);
            assert!(p.may_see("acme") && !p.may_see("initech"));
        }
        for scopes in ["\"operator\"", "\"watch\", \"operator\""] {
            let e = Credentials::parse(&entry(scopes), "tokens.toml")
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "tokens.toml: [[token]] `sidecar`: `tenants` confines `check`, `admin` and `watch`; an `operator` credential changes the whole deployment"
            );
        }
        // The same rule for a certificate's entry.
        let cert = "[[client_cert]]\nsubject_cn = \"sidecar\"\nscopes = [\"watch\"]\ntenants = [\"acme\"]\n";
        assert_eq!(Credentials::parse(cert, "test").unwrap().counts(), (0, 1));
        let e = Credentials::parse(&cert.replace("watch", "operator"), "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("an `operator` credential"), "{e}");
    }

    #[test]
    fn credentials_do_not_show_in_debug() {
        assert!(!format!("{:?}", creds()).contains(&hash_hex("t-svc")));
    }
}
