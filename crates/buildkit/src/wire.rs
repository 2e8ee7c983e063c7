//! gRPC over one HTTP/2 connection the engine hands over after an h2c
//! upgrade: [`serve`] answers as the HTTP/2 server (`/grpc`, and a
//! client's session in tests), [`Channel`] calls as the HTTP/2 client (the
//! daemon calling into a client's session on `/session`). No listener, no
//! reconnection: the connection is the session.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;

/// Serves `routes` as the HTTP/2 server side of `io` until the peer goes.
pub async fn serve<I>(io: I, routes: tonic::service::Routes) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    use hyper::service::Service as _;
    let svc = hyper_util::service::TowerToHyperService::new(routes);
    let logged = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        tracing::debug!(call = %req.uri().path(), "gRPC call");
        svc.call(req)
    });
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(io, logged)
        .await
}

/// The client side of an HTTP/2 connection, as a service tonic's generated
/// clients call through (`XClient::with_origin(channel, origin)`).
#[derive(Clone)]
pub struct Channel {
    send: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
}

/// The origin requests carry: HTTP/2 needs a scheme and an authority; the
/// peer on a hijacked connection ignores which.
pub fn origin() -> http::Uri {
    http::Uri::from_static("http://buildkit")
}

impl Channel {
    /// Starts HTTP/2 as the client on `io`. The returned future drives the
    /// connection and ends when it closes; run it on a task.
    pub async fn handshake<I>(
        io: I,
    ) -> Result<(Channel, impl Future<Output = ()> + Send + 'static), hyper::Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await?;
        let driver = async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "an HTTP/2 client connection ended");
            }
        };
        Ok((Channel { send }, driver))
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> ResponseFuture {
        Box::pin(self.send.send_request(req))
    }
}
