//! Requests the API server passes on to a node's agent, as it passes them
//! to a kubelet: `pods/NAME/log` becomes `GET /containerLogs/NS/POD/C` on
//! the agent at the node's `InternalIP` and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, and the answer streams
//! back as it comes.
//!
//! The server authenticates to the agent with the cluster's admin client
//! certificate; it does not check the agent's serving certificate (which
//! the agent makes itself), as the Kubernetes API server does not without
//! `--kubelet-certificate-authority`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::http::Body;
use crate::rest::Ctx;

/// What `pods/log` passes on to the agent (the rest is the server's).
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

/// A TLS client for agents: the admin certificate, any server certificate.
pub fn client_config(cert_pem: &str, key_pem: &str) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| e.to_string())?
        .ok_or("no private key")?;
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())
}

/// Accepts the agent's self-made certificate (signatures still checked,
/// so the handshake is with the key the certificate names).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET pods/NAME/log`: the container's log from the pod's node.
pub async fn pod_log(
    tls: Option<&tokio_rustls::TlsConnector>,
    cx: &Ctx,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let pod = cx.get(name).await?;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let containers: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let apps: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match cx.params.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if apps.len() == 1 => apps[0].to_string(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                apps.join(" ")
            )))
        }
    };
    let nodes = cx
        .model
        .registry
        .find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not registered"))?;
    let node = cx
        .storage
        .get(&nodes, None, node_name)
        .await?
        .ok_or_else(|| ApiError::not_found("", "nodes", node_name))?;
    let address = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or("");
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(0);
    let Some(tls) = tls.filter(|_| !address.is_empty() && port != 0) else {
        return Err(ApiError::bad_request(format!(
            "node {node_name} serves no logs (no address or agent port)"
        )));
    };
    let mut query: Vec<String> = Vec::new();
    for p in LOG_PARAMS {
        if let Some(v) = cx.params.get(p) {
            query.push(format!("{p}={}", encode(v)));
        }
    }
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        encode(ns),
        encode(name),
        encode(&container),
        query.join("&")
    );
    let unreachable = |e: String| {
        ApiError::internal(format!("reaching node {node_name} ({address}:{port}): {e}"))
    };
    let tcp = tokio::net::TcpStream::connect((address, port as u16))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let server_name = rustls::pki_types::ServerName::try_from(address.to_string())
        .map_err(|e| unreachable(e.to_string()))?;
    let stream = tls
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(conn);
    let request = hyper::Request::get(&path)
        .header("host", format!("{address}:{port}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if status != 200 {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(match status {
            404 => ApiError::bad_request(message),
            400 => ApiError::bad_request(message),
            _ => ApiError::internal(message),
        });
    }
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                if tx.send(data).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut r = Response::new(Body::Stream(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}
