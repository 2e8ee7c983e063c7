//! The HTTP side: TLS to the API server (the kubeconfig's CA, client
//! certificate or bearer token), a small pool of HTTP/1.1 connections for
//! requests and a connection of its own for each watch stream.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::Config;
use crate::error::{Error, Result, Status};

/// Idle connections kept for reuse; more are opened when all are busy.
const POOL: usize = 16;

/// A client of one API server. Cheap to clone (one shared pool).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    address: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    token: Option<String>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// A response whose body is still being read (a watch).
pub(crate) struct Streaming {
    pub(crate) body: Incoming,
}

impl Client {
    /// A client for what `config` names. Fails on unreadable key material.
    pub fn new(config: &Config) -> Result<Client> {
        let (host, port) = config.host_port()?;
        let address = format!("{host}:{port}");
        let bad = |reason: String| Error::Config {
            path: Default::default(),
            reason,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?;
        let builder = if config.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            let pem = config.ca_pem.as_deref().ok_or_else(|| {
                bad("no certificate authority (and insecure-skip-tls-verify is off)".into())
            })?;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert = cert.map_err(|e| bad(format!("certificate authority: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("certificate authority: {e}")))?;
            }
            builder.with_root_certificates(roots)
        };
        let tls = match (&config.client_cert_pem, &config.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain = rustls_pemfile::certs(&mut &cert[..])
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("client certificate: {e}")))?;
                let key = rustls_pemfile::private_key(&mut &key[..])
                    .map_err(|e| bad(format!("client key: {e}")))?
                    .ok_or_else(|| bad("client key: no private key in the PEM".into()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| bad(format!("server name {host:?}: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                address,
                host,
                port,
                server_name,
                tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                token: config.token.clone(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Reads the kubeconfig at `path` and makes a client of it.
    pub fn from_kubeconfig(path: &std::path::Path) -> Result<Client> {
        Client::new(&Config::load(path)?)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let i = &self.inner;
        let connect_error = |source| Error::Connect {
            address: i.address.clone(),
            source,
        };
        let tcp = tokio::net::TcpStream::connect((i.host.as_str(), i.port))
            .await
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        let tls = i
            .tls
            .connect(i.server_name.clone(), tcp)
            .await
            .map_err(connect_error)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.http_error(e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API server connection ended");
            }
        });
        Ok(sender)
    }

    fn http_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Http {
            address: self.inner.address.clone(),
            reason: e.to_string(),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL && !sender.is_closed() {
            idle.push(sender);
        }
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<hyper::Request<Full<Bytes>>> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.inner.address)
            .header("accept", "application/json")
            .header("user-agent", "cais-kube");
        if let Some(t) = &self.inner.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Encode {
                path: path.to_string(),
                reason: e.to_string(),
            })
    }

    /// Sends one request; a pooled connection that turns out closed is
    /// replaced once by a fresh one.
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        pooled: bool,
    ) -> Result<(hyper::Response<Incoming>, SendRequest<Full<Bytes>>)> {
        let reused = if pooled { self.take_idle() } else { None };
        if let Some(mut sender) = reused {
            if sender.ready().await.is_ok() {
                let req = self.build(method, path, content_type, body.clone())?;
                match sender.send_request(req).await {
                    Ok(resp) => return Ok((resp, sender)),
                    // The server closed an idle connection just as it was
                    // reused: nothing reached it, so send again.
                    Err(e) if e.is_canceled() || e.is_closed() || e.is_incomplete_message() => {}
                    Err(e) => return Err(self.http_error(e)),
                }
            }
        }
        let mut sender = self.connect().await?;
        sender.ready().await.map_err(|e| self.http_error(e))?;
        let req = self.build(method, path, content_type, body)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.http_error(e))?;
        Ok((resp, sender))
    }

    /// `method path` with `body`; the answer's body, or the server's
    /// Status as an error.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Bytes> {
        let (resp, sender) = self.send(method, path, content_type, body, true).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.http_error(e))?
            .to_bytes();
        self.give_back(sender);
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(api_error(method, path, status.as_u16(), &bytes))
        }
    }

    /// A `GET` whose body is read as it comes (watches), on a connection
    /// of its own.
    pub(crate) async fn stream(&self, path: &str) -> Result<Streaming> {
        let (resp, _sender) = self.send("GET", path, None, Vec::new(), false).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Streaming {
                body: resp.into_body(),
            });
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.http_error(e))?
            .to_bytes();
        Err(api_error("GET", path, status.as_u16(), &bytes))
    }

    pub(crate) fn address(&self) -> &str {
        &self.inner.address
    }
}

/// The error of a refused request: the Status the server sent, or one made
/// up from the HTTP code when the body is not a Status.
pub(crate) fn api_error(method: &str, path: &str, code: u16, body: &[u8]) -> Error {
    let mut status: Status = serde_json::from_slice(body).unwrap_or_default();
    if status.code == 0 {
        status.code = code;
    }
    if status.message.is_empty() {
        status.message = String::from_utf8_lossy(body).chars().take(200).collect();
    }
    Error::Api {
        method: method.to_string(),
        path: path.to_string(),
        status,
    }
}

/// kubeconfig's `insecure-skip-tls-verify`: any certificate is taken, the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
