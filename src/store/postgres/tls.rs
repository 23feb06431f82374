//! TLS to PostgreSQL: rustls (the TLS stack already in the tree, through
//! tonic) behind `tokio-postgres-rustls`. The URL's `sslmode` decides
//! whether it is used (`disable`, `prefer`: the default, TLS when the
//! server offers it, `require`); when it is, the server's certificate is
//! always verified, against `--store-ca` or the system's roots, and must
//! name the host connected to (libpq's `verify-full`, the only mode that
//! stops a man in the middle).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// The connector: roots from the PEM file `ca`, or the system's.
pub(super) fn connector(ca: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| {
                    StoreError::Backend(format!("PostgreSQL CA file {}: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(StoreError::Backend(format!(
                    "PostgreSQL CA file {}: no certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    StoreError::Backend(format!("PostgreSQL CA file {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            // What the system has; none at all is fine until a server
            // offers TLS (then its certificate cannot be verified).
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Backend(format!("TLS to PostgreSQL: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
