//! TLS trust for registries: the system roots, CAs given on the command
//! line, and the per-registry directory docker uses
//! (`/etc/docker/certs.d/<host[:port]>/*.crt`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::Options;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading CA certificates {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no certificate in {path}")]
    Empty { path: PathBuf },
    #[error("certificate in {path} rejected")]
    Rejected {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("tls protocol setup")]
    Protocol(#[source] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut n = 0;
    for cert in rustls_pemfile::certs(&mut bytes.as_slice()) {
        let cert = cert.map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        roots.add(cert).map_err(|source| Error::Rejected {
            path: path.to_owned(),
            source,
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::Empty {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The verifying configuration for `registry`.
pub fn client_config(registry: &str, options: &Options) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped, as every TLS client does:
    // one bad file in /etc/ssl/certs must not stop all pulls.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for ca in &options.ca_certs {
        add_pem(&mut roots, ca)?;
    }
    if let Some(dir) = &options.certs_dir {
        let dir = dir.join(registry);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                .collect();
            files.sort();
            for f in files {
                add_pem(&mut roots, &f)?;
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(Error::Protocol)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A configuration that accepts any certificate: for registries the user
/// declared insecure, as docker does before falling back to plain HTTP.
pub fn insecure_config() -> Arc<ClientConfig> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
