//! HTTP: authentication of each request, routing of paths to discovery,
//! OpenAPI and the generic REST handler, content negotiation (JSON or
//! Table) and the one place errors become `Status` responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::auth::{authorize, denial, may_discover, Attributes, Decision, User};
use crate::discovery;
use crate::error::ApiError;
use crate::registry::Resource;
use crate::rest::{percent_decode, Ctx, Format, Params, Reply};
use crate::server::Api;

/// The largest request body accepted (the real server's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A response body: whole, or a stream of watch lines.
pub enum Body {
    Full(Full<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(f) => Pin::new(f).poll_frame(cx),
            Body::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(f) => f.is_end_stream(),
            Body::Stream(_) => false,
        }
    }
}

fn json_response(
    status: u16,
    value: &Value,
    content_type: &str,
    warnings: &[String],
) -> Response<Body> {
    let mut r = Response::new(Body::Full(Full::new(Bytes::from(value.to_string()))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append("warning", v);
        }
    }
    r
}

/// The one place an error becomes a response.
pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status(), "application/json", &[])
}

fn text(status: u16, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::Full(Full::new(Bytes::from(body.to_string()))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether the client asked for a Table.
fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
}

/// The program name of a user agent (`kubectl/v1.32.4 (...)` -> `kubectl`),
/// the default field manager.
fn agent_program(agent: &str) -> String {
    let first = agent.split('/').next().unwrap_or("").trim();
    if first.is_empty() {
        "unknown".into()
    } else {
        first.chars().take(128).collect()
    }
}

/// What a resource path names.
struct Target {
    resource: Arc<Resource>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// Handles one request of an already authenticated connection (`user`
/// from its client certificate) or one with a bearer token.
pub async fn handle(
    api: Arc<Api>,
    cert_user: Option<User>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match serve(&api, cert_user, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    Ok(response)
}

fn authenticate(
    api: &Api,
    cert_user: Option<User>,
    req: &Request<Incoming>,
) -> Result<User, ApiError> {
    if let Some(auth) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = auth.strip_prefix("Bearer ") {
            return api
                .tokens
                .user(token.trim())
                .cloned()
                .ok_or_else(ApiError::unauthorized);
        }
    }
    cert_user.ok_or_else(ApiError::unauthorized)
}

async fn serve(
    api: &Arc<Api>,
    cert_user: Option<User>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let user = authenticate(api, cert_user, &req)?;
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let accept = header("accept");
    let method = req.method().clone();

    // Health and version: any authenticated user.
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["version"]) => {
            return Ok(json_response(200, &version(), "application/json", &[]));
        }
        (Method::GET, ["healthz" | "livez" | "readyz", ..]) => return Ok(text(200, "ok")),
        _ => {}
    }
    let resource_path = matches!(segs.as_slice(), ["api", _, _, ..] | ["apis", _, _, _, ..]);
    if !resource_path && !may_discover(&user) {
        return Err(ApiError::forbidden(
            "",
            "",
            "",
            &format!(
                "User \"{}\" cannot {} path \"{}\"",
                user.name,
                method.as_str().to_lowercase(),
                path
            ),
        ));
    }
    let model = api.model();
    let registry = &model.registry;
    let discovery_json = |v: Value| Ok(json_response(200, &v, "application/json", &[]));
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["api"]) if discovery::wants_aggregated(&accept) => {
            return Ok(json_response(
                200,
                &discovery::aggregated(registry, true),
                discovery::AGGREGATED_V2,
                &[],
            ))
        }
        (Method::GET, ["apis"]) if discovery::wants_aggregated(&accept) => {
            return Ok(json_response(
                200,
                &discovery::aggregated(registry, false),
                discovery::AGGREGATED_V2,
                &[],
            ))
        }
        (Method::GET, ["api"]) => return discovery_json(discovery::api_versions(&api.address)),
        (Method::GET, ["apis"]) => return discovery_json(discovery::api_group_list(registry)),
        (Method::GET, ["api", version]) => {
            return discovery::resource_list(registry, "", version)
                .map_or_else(|| Err(ApiError::no_route()), discovery_json)
        }
        (Method::GET, ["apis", group]) => {
            return discovery::group_document(registry, group)
                .map_or_else(|| Err(ApiError::no_route()), discovery_json)
        }
        (Method::GET, ["apis", group, version]) => {
            return discovery::resource_list(registry, group, version)
                .map_or_else(|| Err(ApiError::no_route()), discovery_json)
        }
        (Method::GET, ["openapi", "v3"]) => return discovery_json(model.documents.root().clone()),
        (Method::GET, ["openapi", "v3", rest @ ..]) => {
            let key = rest.join("/");
            return model
                .documents
                .group_version(&key)
                .map_or_else(|| Err(ApiError::no_route()), |d| discovery_json(d.clone()));
        }
        (Method::GET, ["openapi", "v2"]) => return discovery_json(model.documents.v2().clone()),
        _ => {}
    }

    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", version, rest),
        ["apis", group, version, rest @ ..] => (group, version, rest),
        _ => return Err(ApiError::no_route()),
    };
    let target = route(registry, group, version, rest)?;
    let params = Params::parse(req.uri().query());
    let content_type = header("content-type");
    let table = wants_table(&accept);
    let mut cx = Ctx {
        model: model.clone(),
        cell: api.cell.clone(),
        storage: api.storage.clone(),
        resource: target.resource.clone(),
        namespace: target.namespace.clone(),
        params,
        default_manager: agent_program(&header("user-agent")),
        format: Format::Json,
    };
    let body = read_body(req).await?;
    if !crate::groups::authorization::is_review(&target.resource.group, &target.resource.plural) {
        authorize_request(&cx, &user, &method, &target, &body).await?;
    }
    let format = match Format::of(&content_type) {
        Some(f) => f,
        None if method == Method::PATCH => Format::Json,
        None => {
            return Err(ApiError::unsupported_media_type(&[
                "application/json",
                "application/yaml",
                crate::protobuf::MEDIA_TYPE,
            ]))
        }
    };
    cx.format = format;
    let sub = target.subresource.as_deref();
    if let Some(s) = sub {
        if !target.resource.has_subresource(s) {
            return Err(ApiError::no_route());
        }
    }
    let method_mutates = !matches!(method, Method::GET | Method::HEAD);
    if crate::groups::authorization::is_review(&target.resource.group, &target.resource.plural) {
        if method != Method::POST || target.name.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "{} only answers creates",
                target.resource.plural
            )));
        }
        let question = match cx.format {
            Format::Protobuf => crate::protobuf::decode(&body, model.schemas.definitions()),
            _ => serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string()),
        }
        .map_err(|e| ApiError::bad_request(format!("the review cannot be read: {e}")))?;
        let answer =
            crate::groups::authorization::answer(&target.resource.plural, &user, &question);
        return Ok(json_response(201, &answer, "application/json", &[]));
    }
    let reply = match (method, target.name.as_deref(), sub) {
        (Method::GET, None, None) if cx.params.flag("watch") => {
            crate::watch::prepare(&cx).await?;
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(crate::watch::run(cx, table, tx));
            let mut r = Response::new(Body::Stream(rx));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(r);
        }
        (Method::GET, None, None) => {
            let list = cx.list().await?;
            Reply {
                status: 200,
                body: if table { cx.table(&list)? } else { list },
                warnings: Vec::new(),
            }
        }
        (Method::POST, None, None) => need_namespace(&target).and(cx.create(&body).await)?,
        (Method::DELETE, None, None) => cx.delete_collection(&body).await?,
        (Method::GET, Some(name), None) => {
            let obj = cx.get(name).await?;
            Reply {
                status: 200,
                body: if table { cx.table(&obj)? } else { obj },
                warnings: Vec::new(),
            }
        }
        (Method::GET, Some(name), Some("status")) => Reply {
            status: 200,
            body: cx.get(name).await?,
            warnings: Vec::new(),
        },
        (Method::GET, Some(name), Some("scale")) => {
            let obj = cx.get(name).await?;
            Reply {
                status: 200,
                body: cx.scale_of(&obj)?,
                warnings: Vec::new(),
            }
        }
        (Method::PUT, Some(name), sub @ (None | Some("status" | "scale"))) => {
            cx.update(name, &body, sub).await?
        }
        (Method::PUT, Some(name), Some("finalize")) => cx.update(name, &body, None).await?,
        (Method::PATCH, Some(name), sub @ (None | Some("status" | "scale"))) => {
            cx.patch(name, &body, &content_type, sub).await?
        }
        (Method::DELETE, Some(name), None) => cx.delete(name, &body).await?,
        (Method::GET, Some(name), Some("log")) => {
            return crate::proxy::pod_log(api.agents_tls.as_ref(), &cx, name).await
        }
        (Method::POST, Some(name), Some("binding")) => cx.bind(name, &body).await?,
        (Method::POST, Some(name), Some("eviction")) => cx.evict(name, &body).await?,
        (method, _, _) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            )))
        }
    };
    // A definition written: serve (or stop serving) its resources at once.
    if target.resource.group == "apiextensions.k8s.io" && method_mutates {
        api.cell.refresh(&api.storage).await?;
    }
    Ok(json_response(
        reply.status,
        &reply.body,
        "application/json",
        &reply.warnings,
    ))
}

/// Refuses what `user` may not do to `target` (the object itself is read
/// for the decisions that depend on it).
async fn authorize_request(
    cx: &Ctx,
    user: &User,
    method: &Method,
    target: &Target,
    body: &[u8],
) -> Result<(), ApiError> {
    let r = &target.resource;
    let verb = match (method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if cx.params.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    };
    let attributes = Attributes {
        verb,
        group: &r.group,
        resource: &r.plural,
        subresource: target.subresource.as_deref(),
        namespace: target.namespace.as_deref(),
        name: target.name.as_deref(),
    };
    let allowed = match authorize(user, &attributes) {
        Decision::Allow => true,
        Decision::Deny => false,
        Decision::IfNamed(name) => serde_json::from_slice::<Value>(body)
            .ok()
            .is_some_and(|b| b["metadata"]["name"].as_str() == Some(&name)),
        Decision::IfPodOnNode(node) => match target.name.as_deref() {
            Some(pod) => cx
                .storage
                .get(r, target.namespace.as_deref(), pod)
                .await?
                .is_some_and(|p| p["spec"]["nodeName"].as_str() == Some(&node)),
            None => false,
        },
    };
    if allowed {
        return Ok(());
    }
    Err(ApiError::forbidden(
        &r.group,
        &r.plural,
        target.name.as_deref().unwrap_or(""),
        &denial(user, &attributes),
    ))
}

fn need_namespace(target: &Target) -> Result<(), ApiError> {
    if target.resource.namespaced && target.namespace.is_none() {
        return Err(ApiError::no_route());
    }
    Ok(())
}

/// Maps the path after `/api/v1` or `/apis/G/V` to a target.
fn route(
    registry: &crate::registry::Registry,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let find = |plural: &str| {
        registry
            .find(group, version, plural)
            .ok_or_else(ApiError::no_route)
    };
    let target = |resource: Arc<Resource>,
                  namespace: Option<&str>,
                  name: Option<&str>,
                  sub: Option<&str>| Target {
        resource,
        namespace: namespace.map(String::from),
        name: name.map(String::from),
        subresource: sub.map(String::from),
    };
    match rest {
        // `namespaces/NAME[/status|/finalize]` is the namespace itself.
        ["namespaces", name] if group.is_empty() => {
            Ok(target(find("namespaces")?, None, Some(name), None))
        }
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            Ok(target(find("namespaces")?, None, Some(name), Some(sub)))
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let r = find(plural)?;
            if !r.namespaced {
                return Err(ApiError::no_route());
            }
            match tail {
                [] => Ok(target(r, Some(ns), None, None)),
                [name] => Ok(target(r, Some(ns), Some(name), None)),
                [name, sub] => Ok(target(r, Some(ns), Some(name), Some(sub))),
                _ => Err(ApiError::no_route()),
            }
        }
        [plural, tail @ ..] => {
            let r = find(plural)?;
            match (tail, r.namespaced) {
                ([], _) => Ok(target(r, None, None, None)),
                ([name], false) => Ok(target(r, None, Some(name), None)),
                ([name, sub], false) => Ok(target(r, None, Some(name), Some(sub))),
                _ => Err(ApiError::no_route()),
            }
        }
        [] => Err(ApiError::no_route()),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = Limited::new(req.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// `/version`: kubectl's dispatcher picks its own version from `minor`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("{}+cais", crate::VERSION),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
        assert_eq!(
            agent_program("kubectl/v1.32.4 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(agent_program(""), "unknown");
    }

    fn routed(r: Result<Target, ApiError>, what: &str) -> Target {
        match r {
            Ok(t) => t,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    #[test]
    fn routes() {
        let registry = crate::registry::Registry::new(
            crate::groups::all().into_iter().flat_map(|g| g.resources),
        );
        let t = routed(
            route(&registry, "", "v1", &["namespaces", "default"]),
            "namespace",
        );
        assert_eq!(
            (t.resource.plural.as_str(), t.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let t = routed(
            route(
                &registry,
                "",
                "v1",
                &["namespaces", "ns1", "pods", "web", "status"],
            ),
            "pod status",
        );
        assert_eq!(
            (
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            (Some("ns1"), Some("web"), Some("status"))
        );
        let t = routed(
            route(&registry, "apps", "v1", &["deployments"]),
            "all deployments",
        );
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = routed(route(&registry, "", "v1", &["nodes", "n1"]), "node");
        assert_eq!(t.name.as_deref(), Some("n1"));
        assert!(route(&registry, "", "v1", &["pods", "web"]).is_err());
        assert!(route(&registry, "", "v1", &["namespaces", "ns", "nodes"]).is_err());
        assert!(route(&registry, "", "v1", &["widgets"]).is_err());
        assert!(route(&registry, "apps", "v2", &["deployments"]).is_err());
        assert_eq!(version()["minor"], "32");
    }
}
