//! Every endpoint in one table: the optional `/v1.NN` prefix is checked
//! against the versions served and stripped, then method and path segments
//! pick a handler. Nothing here does the work.

use std::sync::Arc;

use cais_api::{version_lt, API_VERSION, MIN_API_VERSION};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::handlers::{
    archive, build, buildkit, containers, exec, images, networks, swarm, system, volumes,
};
use super::plumbing::{decode, decode_path, Body, Query};
use crate::engine::Engine;
use crate::error::{Error, Kind, Result};

pub(super) async fn route(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    let method = req.method().clone();
    let full_path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let (version, path) = strip_version(&full_path)?;
    // Segments are matched decoded, as dockerd's router matches them
    // (`/networks/test%2001`, `/images/x%40sha256:...`).
    let decoded: Vec<String> = path.trim_matches('/').split('/').map(decode_path).collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (&method, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(system::ping(&method)),
        (&Method::GET, ["version"]) => Ok(system::version()),
        (&Method::GET, ["info"]) => system::info(engine).await,
        (&Method::GET, ["system", "df"]) => system::df(engine).await,
        (&Method::GET, ["events"]) => system::events(engine, &query),
        (&Method::POST, ["containers", "create"]) => containers::create(engine, req, &query).await,
        (&Method::GET, ["containers", "json"]) => containers::list(engine, &query).await,
        (&Method::POST, ["containers", "prune"]) => containers::prune(engine, &query).await,
        (_, ["containers", name, rest @ ..]) => {
            let id = containers::resolve(&engine, name).await?;
            container(engine, req, &method, id, rest, &query).await
        }
        (&Method::POST, ["exec", id, "start"]) => exec::start(engine, req, id.to_string()).await,
        (&Method::POST, ["exec", id, "resize"]) => exec::resize(&engine, id, &query),
        (&Method::GET, ["exec", id, "json"]) => exec::inspect(engine, id.to_string()).await,
        (&Method::POST, ["commit"]) => containers::commit(engine, req, &query).await,
        (&Method::POST, ["build"]) => build::build(engine, req).await,
        (&Method::POST, ["build", "prune"]) => build::prune(engine).await,
        (&Method::POST, ["grpc"]) => buildkit::grpc(engine, req).await,
        (&Method::POST, ["session"]) => buildkit::session(engine, req).await,
        (_, ["images", rest @ ..]) => image(engine, req, &method, rest, &query, version).await,
        (_, ["volumes", rest @ ..]) => volume(engine, req, &method, rest, &query).await,
        (_, ["networks", rest @ ..]) => network(engine, req, &method, rest, &query).await,
        (_, ["swarm", rest @ ..]) => swarm::swarm(&method, rest),
        (_, ["nodes" | "services" | "tasks" | "secrets" | "configs", ..]) => swarm::manager_only(),
        _ => Err(Error::not_found(
            Kind::Page,
            format!("{method} {full_path}"),
        )),
    }
}

/// The API version the client asks for and the path without its `/vX.Y`
/// prefix (a path without one asks for the newest); a version outside the
/// ones served is refused with dockerd's words.
fn strip_version(full_path: &str) -> Result<(&str, &str)> {
    if let Some(rest) = full_path.strip_prefix("/v") {
        if let Some((ver, _)) = rest.split_once('/') {
            if ver.contains('.') && ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
                if version_lt(ver, MIN_API_VERSION) {
                    return Err(Error::InvalidArgument(format!(
                        "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                    )));
                }
                if version_lt(API_VERSION, ver) {
                    return Err(Error::InvalidArgument(format!(
                        "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                    )));
                }
                return Ok((ver, &full_path[ver.len() + 2..]));
            }
        }
    }
    Ok((API_VERSION, full_path))
}

/// `/containers/{id}/...`, the container already resolved.
async fn container(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    id: String,
    rest: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    match (method, rest) {
        (&Method::GET, ["json"]) => containers::inspect(engine, id).await,
        (&Method::POST, ["start"]) => containers::start(engine, id).await,
        (&Method::POST, ["stop"]) => containers::stop(engine, id, query).await,
        (&Method::POST, ["restart"]) => containers::restart(engine, id, query).await,
        (&Method::POST, ["kill"]) => containers::kill(engine, id, query).await,
        (&Method::POST, ["pause"]) => containers::pause(engine, id).await,
        (&Method::POST, ["unpause"]) => containers::unpause(engine, id).await,
        (&Method::POST, ["rename"]) => containers::rename(engine, id, query).await,
        (&Method::DELETE, []) => containers::remove(engine, id, query).await,
        // `DELETE /containers/PARENT/ALIAS?link=1`: a legacy link, by the
        // name it gives the linked container.
        (&Method::DELETE, [alias]) if query.flag("link") => {
            containers::remove_link(engine, id, alias.to_string()).await
        }
        (&Method::POST, ["wait"]) => containers::wait(engine, id, query),
        (&Method::GET, ["logs"]) => containers::logs(engine, &id, query),
        (&Method::POST, ["attach"]) => containers::attach(engine, req, id, query).await,
        (&Method::GET, ["attach", "ws"]) => containers::attach_ws(engine, req, id, query).await,
        (&Method::POST, ["resize"]) => containers::resize(engine, id, query).await,
        (&Method::POST, ["exec"]) => exec::create(engine, req, id).await,
        (&Method::GET, ["top"]) => containers::top(engine, id, query).await,
        (&Method::GET, ["stats"]) => containers::stats(engine, id, query),
        (&Method::GET, ["changes"]) => containers::changes(engine, id).await,
        (&Method::GET, ["export"]) => containers::export(engine, id).await,
        (&Method::HEAD | &Method::GET, ["archive"]) => {
            let path = query.get("path").unwrap_or("/").to_string();
            archive::get(engine, id, path, method == Method::HEAD).await
        }
        (&Method::PUT, ["archive"]) => {
            let path = query.get("path").unwrap_or("/").to_string();
            archive::put(engine, req, id, path, query.flag("copyUIDGID")).await
        }
        (&Method::POST, ["update"]) => containers::update(engine, req, id).await,
        _ => Err(Error::not_found(
            Kind::Page,
            format!("{method} /containers/{id}/{}", rest.join("/")),
        )),
    }
}

/// `/images/...`: image names hold slashes, so the action is the last
/// segment when it is one.
async fn image(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    segs: &[&str],
    query: &Query,
    version: &str,
) -> Result<Response<Body>> {
    match (method, segs) {
        (&Method::GET, ["get"]) => {
            let names: Vec<String> = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.strip_prefix("names="))
                .map(decode)
                .collect();
            images::save(engine, names).await
        }
        (&Method::POST, ["load"]) => images::load(engine, req).await,
        (&Method::POST, ["create"]) if query.get("fromSrc").is_some() => {
            images::import(engine, req, query).await
        }
        (&Method::POST, ["create"]) if query.get("fromImage").is_some() => {
            images::pull(engine, &req, query).await
        }
        (&Method::GET, ["json"]) => images::list(engine, query).await,
        (&Method::POST, ["prune"]) => images::prune(engine, query).await,
        _ => {
            let (name, action) = name_and_action(segs);
            match (method, action) {
                (&Method::GET, Some("json")) => {
                    images::inspect(engine, name, version.to_string()).await
                }
                (&Method::GET, Some("get")) => images::save(engine, vec![name]).await,
                (&Method::POST, Some("push")) => images::push(engine, &req, name, query).await,
                (&Method::GET, Some("history")) => images::history(engine, name).await,
                (&Method::POST, Some("tag")) => images::tag(engine, name, query).await,
                (&Method::DELETE, None) => images::remove(engine, name, query).await,
                _ => Err(Error::not_found(
                    Kind::Page,
                    format!("{method} /images/{}", segs.join("/")),
                )),
            }
        }
    }
}

/// Splits `/images/<name...>/<action>` (names hold slashes).
fn name_and_action<'a>(segs: &[&'a str]) -> (String, Option<&'a str>) {
    match segs.last().copied() {
        Some(last @ ("json" | "tag" | "history" | "push" | "get")) if segs.len() > 1 => {
            (segs[..segs.len() - 1].join("/"), Some(last))
        }
        _ => (segs.join("/"), None),
    }
}

/// `/volumes/...`.
async fn volume(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    rest: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    match (method, rest) {
        (&Method::GET, []) => volumes::list(engine, query).await,
        (&Method::POST, ["create"]) => volumes::create(engine, req).await,
        (&Method::POST, ["prune"]) => volumes::prune(engine, query).await,
        (&Method::GET, [name]) => volumes::inspect(engine, name.to_string()).await,
        (&Method::DELETE, [name]) => volumes::remove(engine, name.to_string(), query).await,
        _ => Err(Error::not_found(Kind::Page, "")),
    }
}

/// `/networks/...`.
async fn network(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    rest: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    match (method, rest) {
        (&Method::GET, []) => networks::list(engine, query).await,
        (&Method::POST, ["create"]) => networks::create(engine, req).await,
        (&Method::POST, ["prune"]) => networks::prune(engine, query).await,
        (&Method::GET, [key]) => networks::inspect(engine, key.to_string()).await,
        (&Method::DELETE, [key]) => networks::remove(engine, key.to_string()).await,
        (&Method::POST, [key, "connect"]) => networks::connect(engine, req, key.to_string()).await,
        (&Method::POST, [key, "disconnect"]) => {
            networks::disconnect(engine, req, key.to_string()).await
        }
        _ => Err(Error::not_found(Kind::Page, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_split_names_with_slashes() {
        assert_eq!(
            name_and_action(&["busybox", "json"]),
            ("busybox".to_string(), Some("json"))
        );
        assert_eq!(
            name_and_action(&["127.0.0.1:5000", "a", "b:1", "tag"]),
            ("127.0.0.1:5000/a/b:1".to_string(), Some("tag"))
        );
        assert_eq!(
            name_and_action(&["library", "busybox"]),
            ("library/busybox".to_string(), None)
        );
        assert_eq!(name_and_action(&["json"]), ("json".to_string(), None));
    }

    #[test]
    fn api_versions_outside_the_served_range_are_refused() {
        assert_eq!(
            strip_version("/v1.41/containers/json").expect("served"),
            ("1.41", "/containers/json")
        );
        assert_eq!(
            strip_version("/_ping").expect("no prefix"),
            (API_VERSION, "/_ping")
        );
        assert!(strip_version("/v1.1/info").is_err());
        assert!(strip_version("/v9.99/info").is_err());
    }
}
