//! The server's TLS (rustls, through tonic's `tls-ring`), optional
//! client-certificate verification (mTLS), and the names a client
//! certificate carries ([`peer_names`], read with `x509-parser`). Who may
//! call what is `auth`'s; the serve flags that configure this are
//! `cli::serve::security`'s. It never logs a key.

use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The server's certificate and key, and the CA that client certificates
/// must chain to (mTLS), as PEM.
#[derive(Clone)]
pub struct ServerTls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mtls", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// tonic's configuration. With a client CA, a client may present a
    /// certificate (it must chain to that CA, or the handshake fails) or
    /// none and use a bearer token: probes and token clients keep working.
    pub fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key));
        match &self.client_ca {
            Some(ca) => config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(true),
            None => config,
        }
    }
}

/// The names of a client certificate that `auth` maps to scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNames {
    /// The first common name of the subject, if it is a string.
    pub subject_cn: Option<String>,
    /// Every URI in the subject alternative names (a SPIFFE ID, say), as
    /// written in the certificate.
    pub uri_sans: Vec<String>,
}

/// The subject CN and URI SANs of a DER certificate. The certificate was
/// verified by rustls before this reads it; still, input that is not a
/// certificate gives `None`, never a panic. A subject alternative name
/// extension that cannot be read gives no URI SANs (the CN still counts).
pub fn peer_names(cert: &[u8]) -> Option<PeerNames> {
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let subject_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let uri_sans = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) | Err(_) => Vec::new(),
    };
    Some(PeerNames {
        subject_cn,
        uri_sans,
    })
}

/// The subject common name of a DER certificate, if it has one (see
/// [`peer_names`]).
pub fn subject_cn(cert: &[u8]) -> Option<String> {
    peer_names(cert)?.subject_cn
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    /// A self-signed certificate with these names, as DER.
    pub(crate) fn cert(cn: Option<&str>, sans: &[SanType]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = sans.to_vec();
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    pub(crate) fn uri(text: &str) -> SanType {
        SanType::URI(text.try_into().unwrap())
    }

    const SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/checkout";

    #[test]
    fn reads_the_subject_cn_alone() {
        let der = cert(Some("replica-1"), &[]);
        assert_eq!(
            peer_names(&der),
            Some(PeerNames {
                subject_cn: Some("replica-1".into()),
                uri_sans: vec![],
            })
        );
        assert_eq!(subject_cn(&der).as_deref(), Some("replica-1"));
    }

    #[test]
    fn reads_a_uri_san_alone_and_ignores_other_sans() {
        let der = cert(
            None,
            &[
                SanType::DnsName("checkout.shop".try_into().unwrap()),
                uri(SPIFFE),
            ],
        );
        assert_eq!(
            peer_names(&der),
            Some(PeerNames {
                subject_cn: None,
                uri_sans: vec![SPIFFE.into()],
            })
        );
        assert_eq!(subject_cn(&der), None);
    }

    #[test]
    fn reads_the_cn_and_every_uri_san() {
        let der = cert(
            Some("checkout"),
            &[uri(SPIFFE), uri("https://shop.example/checkout")],
        );
        assert_eq!(
            peer_names(&der),
            Some(PeerNames {
                subject_cn: Some("checkout".into()),
                uri_sans: vec![SPIFFE.into(), "https://shop.example/checkout".into()],
            })
        );
    }

    #[test]
    fn malformed_der_gives_none_and_never_panics() {
        let der = cert(Some("replica-1"), &[uri(SPIFFE)]);
        assert_eq!(peer_names(&[]), None);
        assert_eq!(peer_names(&[0x30]), None);
        assert_eq!(peer_names(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        for cut in [1, 4, der.len() / 2, der.len() - 1] {
            assert_eq!(peer_names(&der[..cut]), None, "cut at {cut}");
        }
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            assert_eq!(peer_names(&junk), None);
        }
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = peer_names(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}
