//! The server's TLS (rustls, through tonic's `tls-ring`), optional
//! client-certificate verification (mTLS), and [`subject_cn`]. Who may call
//! what is `auth`'s; the serve flags that configure this are
//! `cli::serve::security`'s. It never logs a key.

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

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

/// The subject common name of a DER certificate, if it has one. The
/// certificate was verified by rustls before this reads it; still, any
/// malformed input gives `None`, never a panic.
pub fn subject_cn(cert: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
    let (SEQUENCE, certificate, _) = tlv(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(certificate)? else {
        return None;
    };
    // version [0] (optional), serialNumber, signature, issuer, validity, subject.
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        rest = tlv(rest)?.2;
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2;
    }
    let (SEQUENCE, mut names, _) = tlv(rest)? else {
        return None;
    };
    while !names.is_empty() {
        let (SET, mut set, next) = tlv(names)? else {
            return None;
        };
        names = next;
        while !set.is_empty() {
            let (SEQUENCE, pair, next) = tlv(set)? else {
                return None;
            };
            set = next;
            let (0x06, oid, value) = tlv(pair)? else {
                return None;
            };
            if oid == COMMON_NAME {
                // UTF8String, PrintableString, IA5String.
                let (0x0c | 0x13 | 0x16, text, _) = tlv(value)? else {
                    return None;
                };
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

/// One DER element: its tag, its contents, and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes.iter().fold(0usize, |l, b| (l << 8) | usize::from(*b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_refuses_truncated_and_oversized_input() {
        assert_eq!(tlv(&[]), None);
        assert_eq!(tlv(&[0x30]), None);
        assert_eq!(tlv(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(
            tlv(&[0x30, 0x81, 0x01, 7, 9]),
            Some((0x30, &[7u8][..], &[9u8][..]))
        );
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = subject_cn(&junk);
        }
    }
}
