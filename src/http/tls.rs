//! HTTPS without a proxy (`--tls-cert`, `--tls-key`): rustls through
//! tokio-rustls, so a phone or a second computer may use its camera on
//! `/record` (browsers allow `getUserMedia` only on HTTPS or localhost).
//! HTTP/1.1 only, as the plain listener (ALPN `http/1.1`).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// The acceptor for a PEM certificate chain and its PEM private key.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {e}", what.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| invalid(cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert_path, &e))?;
    if certs.is_empty() {
        return Err(invalid(cert_path, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| invalid(key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert_path, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(key_path, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
