//! `POST /grpc` and `POST /session`: BuildKit's protocol, which `docker
//! compose build`, buildx's `docker` driver and other BuildKit clients use.
//! Both connections are upgraded to HTTP/2 without TLS (`Upgrade: h2c`,
//! answered 101) and handed over whole to `cais_buildkit`: on `/grpc` the
//! daemon serves the Control API and the gateway; on `/session` it calls
//! the client's services (files, credentials), the session's id and
//! methods coming from the request's `X-Docker-Expose-Session-*` headers.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::plumbing::{empty, Body};

/// The 101 answer, once the client asked for h2c.
fn switch(req: &Request<Incoming>, what: &str) -> Result<Response<Body>> {
    let h2c = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("h2c"));
    if !h2c {
        return Err(Error::InvalidArgument(format!(
            "{what} needs an upgraded connection (Upgrade: h2c)"
        )));
    }
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static("h2c"));
    Ok(r)
}

/// `POST /grpc`: BuildKit's Control API and gateway.
pub(crate) async fn grpc(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>> {
    let resp = switch(&req, "/grpc")?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => engine.buildkit.serve_grpc(io).await,
            Err(e) => tracing::debug!(error = %e, "a /grpc upgrade failed"),
        }
    });
    Ok(resp)
}

/// `POST /session`: a BuildKit client's session.
pub(crate) async fn session(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>> {
    let headers = cais_buildkit::SessionHeaders::from_headers(req.headers());
    if headers.id.is_empty() {
        return Err(Error::InvalidArgument(
            "a session needs an X-Docker-Expose-Session-Uuid header".into(),
        ));
    }
    let resp = switch(&req, "/session")?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "a /session upgrade failed");
                return;
            }
        };
        if let Err(e) = engine.buildkit.serve_session(headers, io).await {
            tracing::warn!(error = %e, "a BuildKit session failed");
        }
    });
    Ok(resp)
}
