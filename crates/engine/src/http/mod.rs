//! The Docker Engine API over HTTP/1.1 on a unix socket (and TCP with TLS
//! client certificates).
//!
//! Modules, each importing only those after it: this one accepts
//! connections and stamps every response with the API headers; `router`
//! holds every endpoint in one table; `handlers` has one module per
//! resource group (containers, exec, images, networks, volumes, system,
//! build, buildkit, archive) that turns a request into engine calls on
//! blocking threads and their results into responses; `plumbing` is what handlers
//! share (bodies, queries, streaming, upgrades) and `error_response`, the
//! one place errors become status codes and `{"message": ...}` bodies.
//! Attach and exec hijack the connection through HTTP upgrade (the docker
//! CLI sends `Upgrade: tcp`), then relay raw bytes; `/grpc` and `/session`
//! upgrade to HTTP/2 (`Upgrade: h2c`) for BuildKit's protocol.

mod handlers;
mod plumbing;
mod router;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cais_api::API_VERSION;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::engine::Engine;
pub use plumbing::{error_response, Body};

/// Serves one request.
pub async fn handle(
    engine: Arc<Engine>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    // With debug logging, each request's handling time (to its response's
    // head; streams go on after).
    let timed = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        (
            std::time::Instant::now(),
            req.method().clone(),
            req.uri().clone(),
        )
    });
    let mut resp = match router::route(engine, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if let Some((t, method, uri)) = timed {
        tracing::debug!(%method, %uri, status = resp.status().as_u16(), us = t.elapsed().as_micros() as u64, "request");
    }
    let h = resp.headers_mut();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Server", HeaderValue::from_static("cais"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    Ok(resp)
}

/// Accepts connections until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let engine = engine.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(engine.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        }
    }
}

/// Accepts TCP connections, completes the TLS handshake (client
/// certificate required) and serves each like a unix-socket one.
pub async fn serve_tls(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let engine = engine.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A client without a valid certificate fails here.
            let Ok(tls) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            let Ok(tls) = tls else { return };
            let svc = hyper::service::service_fn(move |req| handle(engine.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .with_upgrades()
                .await;
        });
    }
}
