//! The credentials file (`--tokens-file`, `RAMPART_TOKENS`): bearer tokens
//! by their SHA-256 hash and client-certificate mappings, each with its
//! scopes; parsing and validating it without echoing its values, and
//! looking a token or a certificate up.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use thiserror::Error;
use tonic::Status;

use super::{Principal, Scope, Scopes};
use crate::client::parse_hash;
use crate::server::tls::subject_cn;

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

    pub(super) fn cert(&self, der: &[u8]) -> Result<&Principal, Status> {
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

#[cfg(test)]
pub(super) mod tests {
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

    #[test]
    fn credentials_do_not_show_in_debug() {
        assert!(!format!("{:?}", creds()).contains(&hash_hex("t-svc")));
    }
}
