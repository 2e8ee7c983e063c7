//! The Docker Engine API over HTTP/1.1 on a unix socket.
//!
//! Routing strips the optional `/v1.NN` prefix, then matches method and
//! path segments. Handlers call the engine on blocking threads. Errors become
//! a status code and `{"message": ...}` in one place (`error_response`).
//! Attach and exec hijack the connection through HTTP upgrade (the docker
//! CLI sends `Upgrade: tcp`), then relay raw bytes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cais_api::{ErrorResponse, API_VERSION, MIN_API_VERSION};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filters::{self, event_matches, Filters};

pub type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut r = Response::new(full(
        serde_json::to_vec(value).expect("responses serialize"),
    ));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// The one place errors become HTTP responses.
pub fn error_response(e: &Error) -> Response<Body> {
    let status = match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotModified(_) => return empty(StatusCode::NOT_MODIFIED),
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json(
        status,
        &ErrorResponse {
            message: e.to_string(),
        },
    )
}

/// A streaming body fed through a channel.
pub(crate) fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal("engine task", e))?
}

/// Query parameters, decoded.
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(q: Option<&str>) -> Query {
        let mut m = BTreeMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(decode(k), decode(v));
        }
        Query(m)
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
    pub(crate) fn int(&self, k: &str) -> Result<Option<i64>> {
        self.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::InvalidArgument(format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    }
    /// The `filters` parameter, checked against the keys the endpoint
    /// `accepts` (see `filters`).
    pub(crate) fn filters(&self, accepts: &[&str]) -> Result<Filters> {
        Filters::parse(self.get("filters"), accepts)
    }
}

/// Seconds since the epoch, for `until=` durations.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes> {
    let body = http_body_util::Limited::new(req.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))
}

/// Reads the body of a request that is upgraded afterwards.
pub(crate) async fn read_body_ref(req: &mut Request<Incoming>) -> Result<Bytes> {
    let body = http_body_util::Limited::new(req.body_mut(), 1 << 20);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Error::InvalidArgument(format!("invalid JSON: {e}")))
}

/// Compares "1.41" style versions.
fn version_lt(a: &str, b: &str) -> bool {
    let p = |v: &str| -> (u32, u32) {
        let (x, y) = v.split_once('.').unwrap_or((v, "0"));
        (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
    };
    p(a) < p(b)
}

/// Serves one request.
pub async fn handle(
    engine: Arc<Engine>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let mut resp = match route(engine, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    let h = resp.headers_mut();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Server", HeaderValue::from_static("cais"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    Ok(resp)
}

async fn route(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    let method = req.method().clone();
    let full_path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let mut path = full_path.as_str();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((ver, tail)) = rest.split_once('/') {
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
                path = &full_path[ver.len() + 2..];
                let _ = tail;
            }
        }
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let e = engine.clone();
    match (&method, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => {
            let mut r = Response::new(full(if method == Method::HEAD { "" } else { "OK" }));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r.headers_mut().insert(
                "Cache-Control",
                HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
            r.headers_mut()
                .insert("Builder-Version", HeaderValue::from_static("1"));
            Ok(r)
        }
        (&Method::GET, ["version"]) => Ok(json(StatusCode::OK, &version())),
        (&Method::GET, ["info"]) => {
            let info = blocking(move || Ok(crate::system::info(&e))).await?;
            Ok(json(StatusCode::OK, &info))
        }
        (&Method::GET, ["system", "df"]) => {
            let df = blocking(move || crate::system::df(&e)).await?;
            Ok(json(StatusCode::OK, &df))
        }
        (&Method::GET, ["events"]) => events(engine, &query),
        (&Method::POST, ["containers", "create"]) => {
            let name = query.get("name").map(str::to_string);
            let body = read_body(req, 4 << 20).await?;
            let create: cais_api::CreateRequest = parse_json(&body)?;
            let r = blocking(move || e.create(create, name.as_deref())).await?;
            Ok(json(StatusCode::CREATED, &r))
        }
        (&Method::GET, ["containers", "json"]) => {
            let all = query.flag("all");
            let filters = query.filters(filters::CONTAINER_LIST)?;
            filters.check_container_statuses()?;
            let limit = query.int("limit")?;
            let mut list = blocking(move || e.list(all || limit.is_some(), &filters)).await?;
            if let Some(n) = limit.filter(|n| *n > 0) {
                list.truncate(n as usize);
            }
            Ok(json(StatusCode::OK, &list))
        }
        (&Method::POST, ["containers", "prune"]) => {
            let filters = query.filters(filters::PRUNE)?;
            let until = filters.until(unix_now())?;
            let ids = blocking(move || Ok(e.prune(&filters, until))).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"ContainersDeleted": ids, "SpaceReclaimed": 0}),
            ))
        }
        (_, ["containers", name, rest @ ..]) => {
            let name = name.to_string();
            let id = {
                let e = engine.clone();
                blocking(move || e.resolve(&name)).await?
            };
            container_route(engine, req, &method, &id, rest, &query).await
        }
        (&Method::POST, ["exec", id, "start"]) => {
            let id = id.to_string();
            crate::stream::exec_start(engine, req, id).await
        }
        (&Method::POST, ["exec", id, "resize"]) => {
            let id = id.to_string();
            let (h, w) = (query.int("h")?.unwrap_or(0), query.int("w")?.unwrap_or(0));
            crate::stream::exec_resize(&id, h as u16, w as u16)?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::GET, ["exec", id, "json"]) => {
            let id = id.to_string();
            let r = blocking(move || e.exec_inspect(&id)).await?;
            Ok(json(StatusCode::OK, &r))
        }
        (&Method::POST, ["commit"]) => {
            let container = query.get("container").unwrap_or_default().to_string();
            let reference = match (query.get("repo"), query.get("tag")) {
                (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => Some(format!("{r}:{t}")),
                (Some(r), _) if !r.is_empty() => Some(r.to_string()),
                _ => None,
            };
            let author = query.get("author").unwrap_or_default().to_string();
            let comment = query.get("comment").unwrap_or_default().to_string();
            let id = blocking(move || {
                let id = e.resolve(&container)?;
                e.commit(&id, reference.as_deref(), &author, &comment)
            })
            .await?;
            Ok(json(StatusCode::CREATED, &serde_json::json!({"Id": id})))
        }
        (&Method::POST, ["build"]) => crate::build::build(engine, req).await,
        (&Method::POST, ["build", "prune"]) => {
            let (entries, bytes) = blocking(move || crate::build::prune_cache(&e)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"CachesDeleted": entries, "SpaceReclaimed": bytes}),
            ))
        }
        (_, ["session"]) => Err(Error::InvalidArgument(
            "cais has no BuildKit sessions: use the classic builder, e.g. DOCKER_BUILDKIT=0 docker build"
                .into(),
        )),
        (_, ["images", ..]) => crate::images::route(engine, req, &method, &segs[1..], &query).await,
        (_, ["volumes", ..]) => volumes_route(engine, req, &method, &segs[1..], &query).await,
        (_, ["networks", ..]) => networks_route(engine, req, &method, &segs[1..], &query).await,
        _ => Err(Error::NotFound(format!(
            "page not found: {method} {full_path}"
        ))),
    }
}

fn version() -> cais_api::Version {
    let uname = nix::sys::utsname::uname().ok();
    cais_api::Version {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: "cais".into(),
        go_version: "none (cais is written in Rust)".into(),
        os: "linux".into(),
        arch: std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64"),
        kernel_version: uname
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        build_time: String::new(),
    }
}

async fn container_route(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    id: &str,
    rest: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    let e = engine.clone();
    let id = id.to_string();
    match (method, rest) {
        (&Method::GET, ["json"]) => {
            let r = blocking(move || e.inspect(&id)).await?;
            Ok(json(StatusCode::OK, &r))
        }
        (&Method::POST, ["start"]) => {
            blocking(move || e.start(&id)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["stop"]) => {
            let t = query.int("t")?.or(query.int("timeout")?);
            let signal = query
                .get("signal")
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            blocking(move || e.stop(&id, t, signal.as_deref())).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["restart"]) => {
            let t = query.int("t")?;
            blocking(move || e.restart(&id, t)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["kill"]) => {
            let signal = query.get("signal").unwrap_or("SIGKILL").to_string();
            blocking(move || e.kill(&id, &signal)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["pause"]) => {
            blocking(move || e.pause(&id)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["unpause"]) => {
            blocking(move || e.unpause(&id)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["rename"]) => {
            let name = query.get("name").unwrap_or_default().to_string();
            blocking(move || e.rename(&id, &name)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::DELETE, []) => {
            let (force, v) = (query.flag("force"), query.flag("v"));
            blocking(move || e.remove(&id, force, v)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["wait"]) => {
            let condition = query.get("condition").unwrap_or("not-running").to_string();
            // Send the headers now: the docker CLI waits for them before it
            // starts the container.
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let r = blocking(move || e.wait(&id, &condition)).await;
                let out = match r {
                    Ok(code) => serde_json::json!({"StatusCode": code}),
                    Err(err) => {
                        serde_json::json!({"StatusCode": -1, "Error": {"Message": err.to_string()}})
                    }
                };
                let _ = tx.send(Bytes::from(format!("{out}\n"))).await;
            });
            let mut r = Response::new(body);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        (&Method::GET, ["logs"]) => crate::stream::logs(engine, &id, query),
        (&Method::POST, ["attach"]) => crate::stream::attach(engine, req, id, query).await,
        (&Method::POST, ["resize"]) => {
            let (h, w) = (
                query.int("h")?.unwrap_or(0) as u16,
                query.int("w")?.unwrap_or(0) as u16,
            );
            let dir = engine.container_dir(&id);
            blocking(move || {
                crate::shim::connect(
                    &dir,
                    &crate::shim::Request::Resize {
                        height: h,
                        width: w,
                    },
                )
                .map(drop)
                .map_err(|e| Error::Conflict(format!("cannot resize: {e}")))
            })
            .await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::POST, ["exec"]) => {
            let body = read_body(req, 1 << 20).await?;
            let cfg: cais_api::ExecConfig = parse_json(&body)?;
            let exec_id = blocking(move || e.exec_create(&id, cfg)).await?;
            Ok(json(
                StatusCode::CREATED,
                &serde_json::json!({"Id": exec_id}),
            ))
        }
        (&Method::GET, ["top"]) => {
            let args = query.get("ps_args").unwrap_or_default().to_string();
            let (titles, processes) = blocking(move || e.top(&id, &args)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"Titles": titles, "Processes": processes}),
            ))
        }
        (&Method::GET, ["stats"]) => crate::stream::stats(engine, id, query),
        (&Method::GET, ["changes"]) => {
            let changes = blocking(move || crate::system::changes(&e, &id)).await?;
            Ok(json(StatusCode::OK, &changes))
        }
        (&Method::GET, ["export"]) => crate::stream::export(engine, id).await,
        (&Method::HEAD | &Method::GET, ["archive"]) => {
            let path = query.get("path").unwrap_or("/").to_string();
            crate::archive::get_archive(engine, id, path, method == Method::HEAD).await
        }
        (&Method::PUT, ["archive"]) => {
            let path = query.get("path").unwrap_or("/").to_string();
            crate::archive::put_archive(engine, req, id, path).await
        }
        (&Method::POST, ["update"]) => {
            let body = read_body(req, 1 << 20).await?;
            let update: cais_api::HostConfig = parse_json(&body)?;
            let warnings = blocking(move || crate::system::update(&e, &id, &update)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"Warnings": warnings}),
            ))
        }
        _ => Err(Error::NotFound(format!(
            "page not found: {method} /containers/{id}/{}",
            rest.join("/")
        ))),
    }
}

async fn networks_route(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    rest: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    let e = engine.clone();
    match (method, rest) {
        (&Method::GET, []) => {
            let filters = query.filters(filters::NETWORK_LIST)?;
            let list = blocking(move || e.network_list(&filters)).await?;
            Ok(json(StatusCode::OK, &list))
        }
        (&Method::POST, ["create"]) => {
            let body = read_body(req, 1 << 20).await?;
            let r: cais_api::NetworkCreateRequest = parse_json(&body)?;
            let created = blocking(move || e.network_create(r)).await?;
            Ok(json(StatusCode::CREATED, &created))
        }
        (&Method::POST, ["prune"]) => {
            let filters = query.filters(filters::PRUNE)?;
            let until = filters.until(unix_now())?;
            let deleted = blocking(move || Ok(e.network_prune(&filters, until))).await?;
            Ok(json(
                StatusCode::OK,
                &cais_api::NetworkPruneResponse {
                    networks_deleted: deleted,
                },
            ))
        }
        (&Method::GET, [key]) => {
            let key = key.to_string();
            let n = blocking(move || e.network_inspect(&key)).await?;
            Ok(json(StatusCode::OK, &n))
        }
        (&Method::DELETE, [key]) => {
            let key = key.to_string();
            blocking(move || e.network_remove(&key)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, [key, "connect"]) => {
            let key = key.to_string();
            let body = read_body(req, 1 << 20).await?;
            let r: cais_api::NetworkConnectRequest = parse_json(&body)?;
            blocking(move || e.network_connect(&key, r)).await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::POST, [key, "disconnect"]) => {
            let key = key.to_string();
            let body = read_body(req, 1 << 20).await?;
            let r: cais_api::NetworkDisconnectRequest = parse_json(&body)?;
            blocking(move || e.network_disconnect(&key, r)).await?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}

async fn volumes_route(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    rest: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    let e = engine.clone();
    match (method, rest) {
        (&Method::GET, []) => {
            let filters = query.filters(filters::VOLUME_LIST)?;
            let dangling = filters.boolean("dangling")?;
            let list = blocking(move || {
                let mut vols = e.volumes.list();
                vols.retain(|v| {
                    dangling.is_none_or(|d| e.volume_users(&v.name).is_empty() == d)
                        && filters.any("name", |n| filters::name_matches(n, &v.name))
                        && filters.any("driver", |d| d == v.driver)
                        && filters.labels_match(&v.labels)
                });
                Ok(vols)
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &cais_api::VolumeList {
                    volumes: list,
                    warnings: Vec::new(),
                },
            ))
        }
        (&Method::POST, ["create"]) => {
            let body = read_body(req, 1 << 20).await?;
            let mut r: cais_api::VolumeCreateRequest = parse_json(&body)?;
            if r.name.is_empty() {
                r.name = format!("{:016x}{:016x}", rand64(), rand64());
            }
            if !r.driver.is_empty() && r.driver != "local" {
                return Err(Error::NotFound(format!("plugin {:?} not found", r.driver)));
            }
            let v = blocking(move || {
                let v = e.volumes.create(&r.name, r.labels)?;
                e.events.emit(
                    "volume",
                    "create",
                    &v.name,
                    BTreeMap::from([("driver".to_string(), "local".to_string())]),
                );
                Ok(v)
            })
            .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        (&Method::POST, ["prune"]) => {
            let filters = query.filters(filters::VOLUME_PRUNE)?;
            let deleted = blocking(move || {
                let mut out = Vec::new();
                for v in e.volumes.list() {
                    // Docker prunes anonymous volumes only unless all=true.
                    if filters.labels_match(&v.labels)
                        && e.volume_users(&v.name).is_empty()
                        && e.volumes.remove(&v.name, &[]).is_ok()
                    {
                        out.push(v.name);
                    }
                }
                Ok(out)
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"VolumesDeleted": deleted, "SpaceReclaimed": 0}),
            ))
        }
        (&Method::GET, [name]) => {
            let name = name.to_string();
            let v = blocking(move || e.volumes.inspect(&name)).await?;
            Ok(json(StatusCode::OK, &v))
        }
        (&Method::DELETE, [name]) => {
            let name = name.to_string();
            let force = query.flag("force");
            blocking(move || {
                let users = if force {
                    Vec::new()
                } else {
                    e.volume_users(&name)
                };
                e.volumes.remove(&name, &users)?;
                e.events.emit("volume", "destroy", &name, BTreeMap::new());
                Ok(())
            })
            .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}

fn rand64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

fn parse_ts(s: &str) -> Option<i64> {
    // Unix seconds, possibly fractional ("1700000000.5"), to nanoseconds.
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = frac.chars().take(9).collect::<String>();
    while nanos.len() < 9 {
        nanos.push('0');
    }
    Some(secs * 1_000_000_000 + nanos.parse::<i64>().unwrap_or(0))
}

fn events(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let since = query.get("since").and_then(parse_ts).unwrap_or(i64::MIN);
    let until = query.get("until").and_then(parse_ts);
    let filters = query.filters(filters::EVENTS)?;
    let matches = move |ev: &cais_api::Event| event_matches(&filters, ev);
    let (tx, body) = channel_body();
    let mut live = engine.events.subscribe();
    let past = engine.events.history(since, until.unwrap_or(i64::MAX));
    tokio::spawn(async move {
        for ev in past.iter().filter(|e| matches(e)) {
            if tx
                .send(Bytes::from(format!(
                    "{}\n",
                    serde_json::to_string(ev).expect("events serialize")
                )))
                .await
                .is_err()
            {
                return;
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        if until.is_some_and(|u| u <= now) {
            return;
        }
        loop {
            let next = match until {
                Some(u) => {
                    let left = Duration::from_nanos((u - now).max(0) as u64);
                    match tokio::time::timeout(left, live.recv()).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
                None => live.recv().await,
            };
            match next {
                Ok(ev) if matches(&ev) => {
                    if tx
                        .send(Bytes::from(format!(
                            "{}\n",
                            serde_json::to_string(&ev).expect("events serialize")
                        )))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
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

/// Reads everything a hijacked connection sends until EOF (used by streams).
pub async fn drain<R: tokio::io::AsyncRead + Unpin>(mut r: R) {
    let mut buf = [0u8; 4096];
    while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Writes all of `data`, ignoring a peer that went away.
pub async fn write_quiet<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> bool {
    w.write_all(data).await.is_ok()
}

pub fn socket_path_default() -> PathBuf {
    PathBuf::from("/run/cais.sock")
}
