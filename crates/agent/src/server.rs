//! The agent's HTTPS endpoint, which the API server reaches as it reaches
//! a kubelet: `GET /containerLogs/NS/POD/CONTAINER` (with `follow`,
//! `previous`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`,
//! `limitBytes`) streams a container's log from the engine, and
//! `/healthz` answers `ok`.
//!
//! Only clients with a certificate signed by the cluster's CA are served
//! (the API server's); the serving certificate is made at start, for the
//! node's name and address.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::pod;

/// A response body fed by a channel (a log as the engine sends it).
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn text(status: u16, message: &str) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Bytes::from(format!("{message}\n")));
    let mut r = Response::new(ChannelBody(rx));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r
}

fn tls_error(what: &str) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Io {
        what: format!("{what}: {reason}"),
        source: std::io::Error::other(reason),
    }
}

/// The TLS configuration: a certificate made now for `names`, clients
/// verified against `ca_pem`.
pub fn tls_config(ca_pem: &[u8], names: Vec<String>) -> Result<rustls::ServerConfig> {
    let err = tls_error("the agent's TLS configuration");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots
            .add(ca.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| err(e.to_string()))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| err(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `addr`; the listener and the port taken.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, u16)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io {
            what: format!("listening on {addr}"),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Io {
            what: format!("listening on {addr}"),
            source,
        })?
        .port();
    Ok((listener, port))
}

/// Serves until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    engine_host: String,
    node: String,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let engine_host = engine_host.clone();
        let node = node.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| {
                let engine_host = engine_host.clone();
                let node = node.clone();
                async move { Ok::<_, Infallible>(handle(req, engine_host, node).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(v), _) => {
                out.push(v as u8);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a log request asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct LogQuery {
    follow: bool,
    previous: bool,
    tail: Option<u64>,
    since: Option<i64>,
    timestamps: bool,
    limit: Option<u64>,
}

impl LogQuery {
    fn parse(query: &str) -> std::result::Result<LogQuery, String> {
        let mut q = LogQuery::default();
        let flag = |v: &str| v.is_empty() || v == "true" || v == "1";
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            let number = |what: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{what}: not a number: {v:?}"))
            };
            match k {
                "follow" => q.follow = flag(&v),
                "previous" => q.previous = flag(&v),
                "timestamps" => q.timestamps = flag(&v),
                "tailLines" => q.tail = Some(number("tailLines")?),
                "limitBytes" => q.limit = Some(number("limitBytes")?),
                "sinceSeconds" => {
                    let secs = number("sinceSeconds")? as i64;
                    q.since = Some(jiff::Timestamp::now().as_second() - secs);
                }
                "sinceTime" => {
                    let t: jiff::Timestamp = v
                        .parse()
                        .map_err(|_| format!("sinceTime: not an RFC 3339 time: {v:?}"))?;
                    q.since = Some(t.as_second());
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

async fn handle(
    req: Request<Incoming>,
    engine_host: String,
    node: String,
) -> Response<ChannelBody> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    match (
        req.method().as_str(),
        segs.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        ("GET", ["healthz"]) => text(200, "ok"),
        ("GET", ["containerLogs", ns, pod, container]) => {
            let query = match LogQuery::parse(req.uri().query().unwrap_or("")) {
                Ok(q) => q,
                Err(e) => return text(400, &e),
            };
            logs(
                engine_host,
                node,
                [ns.to_string(), pod.to_string(), container.to_string()],
                query,
            )
            .await
        }
        _ => text(404, &format!("no such path {path}")),
    }
}

/// Streams a container's log: the engine's stream, demultiplexed.
async fn logs(
    engine_host: String,
    node: String,
    [ns, pod_name, container]: [String; 3],
    q: LogQuery,
) -> Response<ChannelBody> {
    let (ready_tx, ready) = oneshot::channel::<std::result::Result<(), (u16, String)>>();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::task::spawn_blocking(move || {
        let fail = |status: u16, message: String| (status, message);
        let result = (|| {
            let engine =
                cais_client::Client::new(&engine_host).map_err(|e| fail(500, e.to_string()))?;
            let filters = json!({"label": [
                format!("{}={node}", pod::LABEL_NODE),
                format!("{}={ns}", pod::LABEL_POD_NAMESPACE),
                format!("{}={pod_name}", pod::LABEL_POD_NAME),
                format!("{}={container}", pod::LABEL_CONTAINER_NAME),
            ]});
            let mut found: Vec<(u32, String)> = engine
                .container_list(&[("all", "1".into()), ("filters", filters.to_string())])
                .map_err(|e| fail(500, e.to_string()))?
                .into_iter()
                .filter(|c| c.labels.get(pod::LABEL_KIND).map(String::as_str) != Some("sandbox"))
                .map(|c| {
                    let attempt = c
                        .labels
                        .get(pod::LABEL_ATTEMPT)
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(0);
                    (attempt, c.id)
                })
                .collect();
            found.sort();
            let pick = if q.previous {
                found.len().checked_sub(2).map(|i| found[i].1.clone()).ok_or_else(|| {
                    fail(400, format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found"))
                })?
            } else {
                found.last().map(|f| f.1.clone()).ok_or_else(|| {
                    fail(400, format!("container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"))
                })?
            };
            let mut query = vec![("stdout", "1".to_string()), ("stderr", "1".to_string())];
            if q.follow {
                query.push(("follow", "1".into()));
            }
            if q.timestamps {
                query.push(("timestamps", "1".into()));
            }
            if let Some(t) = q.tail {
                query.push(("tail", t.to_string()));
            }
            if let Some(s) = q.since {
                query.push(("since", s.to_string()));
            }
            engine
                .container_logs(&pick, &query)
                .map_err(|e| fail(500, e.to_string()))
        })();
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let multiplexed = response
            .header("content-type")
            .is_some_and(|c| c.contains("multiplexed"));
        let mut body = response.body;
        let mut left = q.limit.unwrap_or(u64::MAX);
        loop {
            let chunk = if multiplexed {
                match cais_client::http::read_frame(&mut body) {
                    Ok(Some((_, data))) => data,
                    _ => break,
                }
            } else {
                let mut buf = vec![0; 16 * 1024];
                match body.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        buf
                    }
                }
            };
            let mut chunk = chunk;
            if (chunk.len() as u64) > left {
                chunk.truncate(left as usize);
            }
            left -= chunk.len() as u64;
            if tx.blocking_send(Bytes::from(chunk)).is_err() || left == 0 {
                break;
            }
        }
    });
    match ready.await {
        Ok(Ok(())) => {
            let mut r = Response::new(ChannelBody(rx));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            r
        }
        Ok(Err((status, message))) => text(status, &message),
        Err(_) => text(500, "the log reader stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_queries() {
        let q = LogQuery::parse("follow=true&tailLines=5&timestamps=true&limitBytes=10")
            .expect("parses");
        assert_eq!(
            q,
            LogQuery {
                follow: true,
                previous: false,
                tail: Some(5),
                since: None,
                timestamps: true,
                limit: Some(10),
            }
        );
        let q =
            LogQuery::parse("sinceTime=2026-01-02T03%3A04%3A05Z&previous=true").expect("parses");
        assert_eq!(q.since, Some(1767323045));
        assert!(q.previous);
        assert!(LogQuery::parse("tailLines=x")
            .expect_err("refused")
            .contains("tailLines"));
        assert!(LogQuery::parse("sinceTime=yesterday").is_err());
    }

    #[test]
    fn paths_decode() {
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
