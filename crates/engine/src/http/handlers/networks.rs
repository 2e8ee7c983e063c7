//! `/networks/...`: list, create, prune, inspect, remove, connect and
//! disconnect.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::engine::Engine;
use crate::error::Result;
use crate::filters;
use crate::http::plumbing::{blocking, empty, json, parse_json, read_body, unix_now, Body, Query};

/// `GET /networks`.
pub(crate) async fn list(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::NETWORK_LIST)?;
    let list = blocking(move || engine.networks.list(&filters)).await?;
    Ok(json(StatusCode::OK, &list))
}

/// `POST /networks/create`.
pub(crate) async fn create(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let r: cais_api::NetworkCreateRequest = parse_json(&body)?;
    let created = blocking(move || engine.networks.create(r)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

/// `POST /networks/prune`.
pub(crate) async fn prune(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::PRUNE)?;
    let until = filters.until(unix_now())?;
    let deleted = blocking(move || Ok(engine.networks.prune(&filters, until))).await?;
    Ok(json(
        StatusCode::OK,
        &cais_api::NetworkPruneResponse {
            networks_deleted: deleted,
        },
    ))
}

/// `GET /networks/{key}`.
pub(crate) async fn inspect(engine: Arc<Engine>, key: String) -> Result<Response<Body>> {
    let n = blocking(move || engine.networks.inspect(&key)).await?;
    Ok(json(StatusCode::OK, &n))
}

/// `DELETE /networks/{key}`.
pub(crate) async fn remove(engine: Arc<Engine>, key: String) -> Result<Response<Body>> {
    blocking(move || engine.networks.remove(&key)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/{key}/connect`.
pub(crate) async fn connect(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    key: String,
) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let r: cais_api::NetworkConnectRequest = parse_json(&body)?;
    blocking(move || engine.wiring.connect(&key, r)).await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/{key}/disconnect`.
pub(crate) async fn disconnect(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    key: String,
) -> Result<Response<Body>> {
    let body = read_body(req, 1 << 20).await?;
    let r: cais_api::NetworkDisconnectRequest = parse_json(&body)?;
    blocking(move || engine.wiring.disconnect(&key, r)).await?;
    Ok(empty(StatusCode::OK))
}
