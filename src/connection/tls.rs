//! TLS to a broker: the roots to trust (a CA file, or the system's), and for brokers that want
//! mutual TLS a client certificate with its key (PEM; RSA and EC keys), checked to belong
//! together before anything connects. Errors name the file and say what is wrong with it.

use std::sync::Arc;

use rumqttc::TlsConfiguration;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no PEM certificate")]
    CaEmpty { path: String },
    #[error("cannot load the system's root certificates ({0}); set ca_file")]
    SystemRoots(String),
    #[error("cannot read the client certificate file {path}: {source}")]
    CertFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the client certificate file {path} holds no PEM certificate")]
    CertEmpty { path: String },
    #[error("cannot read the client key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the client key file {path} holds no PEM private key (PKCS#8, RSA or EC \"BEGIN … PRIVATE KEY\")"
    )]
    KeyEmpty { path: String },
    #[error("the client key {key} does not belong to the certificate {certificate}: {problem}")]
    KeyMismatch {
        certificate: String,
        key: String,
        problem: String,
    },
    #[error("a client certificate needs its key: set client_key_file with client_cert_file")]
    CertWithoutKey,
    #[error("a client key needs its certificate: set client_cert_file with client_key_file")]
    KeyWithoutCert,
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client certificate chain and its key, read and checked.
pub struct ClientIdentity {
    certificates: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Reads a certificate and its key, and checks that the key belongs to the certificate.
pub fn load_client_identity(
    certificate_path: &str,
    key_path: &str,
) -> Result<ClientIdentity, TlsError> {
    let certificate_pem = std::fs::read(certificate_path).map_err(|source| TlsError::CertFile {
        path: certificate_path.into(),
        source,
    })?;
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&certificate_pem)
            .filter_map(Result::ok)
            .collect();
    if certificates.is_empty() {
        return Err(TlsError::CertEmpty {
            path: certificate_path.into(),
        });
    }
    let key_pem = std::fs::read(key_path).map_err(|source| TlsError::KeyFile {
        path: key_path.into(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::KeyEmpty {
        path: key_path.into(),
    })?;
    let problem = match CertifiedKey::from_der(certificates.clone(), key.clone_key(), &provider()) {
        Ok(_) => None,
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Some("its public key is not the certificate's".to_string())
        }
        // A key ring cannot sign with.
        Err(error @ rustls::Error::General(_)) => Some(error.to_string()),
        // Only a proven mismatch is refused: a certificate rustls cannot read for the check (an
        // X.509 v1 one, say) may still be one the broker accepts, and the handshake will tell.
        Err(_) => None,
    };
    if let Some(problem) = problem {
        return Err(TlsError::KeyMismatch {
            certificate: certificate_path.into(),
            key: key_path.into(),
            problem,
        });
    }
    Ok(ClientIdentity { certificates, key })
}

/// Checks the pair a connection names, as the API does before storing it.
pub fn check_client_identity(
    certificate_path: Option<&str>,
    key_path: Option<&str>,
) -> Result<(), TlsError> {
    match (certificate_path, key_path) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(TlsError::CertWithoutKey),
        (None, Some(_)) => Err(TlsError::KeyWithoutCert),
        (Some(certificate), Some(key)) => load_client_identity(certificate, key).map(|_| ()),
    }
}

fn roots(ca_file: Option<&str>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsError::CaFile {
                path: path.into(),
                source,
            })?;
            for certificate in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                let _ = roots.add(certificate);
            }
            if roots.is_empty() {
                return Err(TlsError::CaEmpty { path: path.into() });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let problem = found
                    .errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "none found".into());
                return Err(TlsError::SystemRoots(problem));
            }
        }
    }
    Ok(roots)
}

/// The client's TLS setup: trusted roots and, when given, the client identity.
pub fn client_configuration(
    ca_file: Option<&str>,
    client_cert_file: Option<&str>,
    client_key_file: Option<&str>,
) -> Result<TlsConfiguration, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Setup(error.to_string()))?
        .with_root_certificates(roots(ca_file)?);
    let config = match (client_cert_file, client_key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(TlsError::CertWithoutKey),
        (None, Some(_)) => return Err(TlsError::KeyWithoutCert),
        (Some(certificate), Some(key)) => {
            let identity = load_client_identity(certificate, key)?;
            builder
                .with_client_auth_cert(identity.certificates, identity.key)
                .map_err(|error| TlsError::Setup(error.to_string()))?
        }
    };
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_cannot_be_read_are_named() {
        let error = check_client_identity(
            Some("/nonexistent/client.crt"),
            Some("/nonexistent/client.key"),
        )
        .expect_err("missing files");
        assert!(
            error.to_string().contains("/nonexistent/client.crt"),
            "{error}"
        );
        assert!(matches!(
            check_client_identity(Some("a.crt"), None),
            Err(TlsError::CertWithoutKey)
        ));
        assert!(matches!(
            check_client_identity(None, Some("a.key")),
            Err(TlsError::KeyWithoutCert)
        ));
        assert!(check_client_identity(None, None).is_ok());
    }

    #[test]
    fn a_file_without_pem_is_refused_with_its_name() {
        let directory = tempfile::tempdir().expect("temp dir");
        let certificate = directory.path().join("client.crt");
        std::fs::write(&certificate, "not a certificate").expect("write");
        let path = certificate.display().to_string();
        match load_client_identity(&path, &path) {
            Err(TlsError::CertEmpty { path: named }) => assert_eq!(named, path),
            Err(other) => panic!("expected an empty certificate file, got {other}"),
            Ok(_) => panic!("expected an empty certificate file"),
        }
        let error = roots(Some(&path)).expect_err("no CA in it");
        assert!(error.to_string().contains(&path), "{error}");
    }
}
