//! Optional TLS (rustls on ring) so the same port serves `https://` and `wss://`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM file could not be read or parsed.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the certificate and key (they do not match, or are not supported).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS half of a server: what [`crate::serve_tls`] takes.
#[derive(Clone)]
pub struct Tls(pub(crate) TlsAcceptor);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Load a certificate chain and its private key from PEM files.
    ///
    /// # Errors
    /// [`TlsError`] naming the file or the mismatch.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_error(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(cert, &e))?;
        if certs.is_empty() {
            return Err(pem_error(cert, &"no certificate in the file"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, &e))?;
        Self::from_der(certs, key_der)
    }

    /// Use a certificate chain and key already in memory.
    ///
    /// # Errors
    /// [`TlsError::Config`] when rustls refuses them.
    pub fn from_der(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(TlsAcceptor::from(Arc::new(config))))
    }
}
