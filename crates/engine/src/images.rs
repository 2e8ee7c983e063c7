//! The image endpoints: the engine's side of the image store.

use std::collections::BTreeMap;
use std::sync::Arc;

use cais_api::ImageSummary;
use cais_image::store::{display_name, Removal};
use cais_image::{ImageRecord, ImageStore, Reference};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filters;
use crate::server::{blocking, json, Body, Query};

fn image_not_found(name: &str) -> impl Fn(cais_image::Error) -> Error + '_ {
    move |e| match e {
        cais_image::Error::NotFound { .. } => Error::NotFound(format!("No such image: {name}")),
        other => other.into(),
    }
}

fn created_secs(config: &cais_image::oci::ImageConfig) -> i64 {
    config
        .created
        .as_deref()
        .and_then(cais_image::time::parse_rfc3339)
        .unwrap_or(0)
}

/// Docker's `reference=` filter: a pattern (`*` within one path component,
/// as Go's `path.Match`) against the familiar name, with or without its tag.
fn reference_matches(pattern: &str, familiar: &str) -> bool {
    let repo = familiar.rsplit_once(':').map_or(familiar, |(r, _)| r);
    glob(pattern, familiar) || glob(pattern, repo)
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            // `*` never crosses a `/`.
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

fn familiar_tags(rec: &ImageRecord) -> Vec<String> {
    rec.tags.iter().map(|t| display_name(t)).collect()
}

pub(crate) fn summary(store: &ImageStore, rec: &ImageRecord) -> Result<ImageSummary> {
    let config = store.config(rec)?;
    let labels: BTreeMap<String, String> = config
        .config
        .as_ref()
        .and_then(|c| c.get("Labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let size = store.image_size(rec) as i64;
    Ok(ImageSummary {
        id: rec.id().to_string(),
        parent_id: String::new(),
        repo_tags: familiar_tags(rec),
        repo_digests: rec.repo_digests.iter().map(|d| display_name(d)).collect(),
        created: created_secs(&config),
        size,
        shared_size: -1,
        virtual_size: size,
        labels,
        containers: -1,
    })
}

/// `GET /images/{name}/json`, shaped like docker's.
pub fn inspect(store: &ImageStore, rec: &ImageRecord) -> Result<serde_json::Value> {
    let config = store.config(rec)?;
    Ok(serde_json::json!({
        "Id": rec.id().to_string(),
        "RepoTags": familiar_tags(rec),
        "RepoDigests": rec.repo_digests.iter().map(|d| display_name(d)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": config.author.clone().unwrap_or_default(),
        "Config": config.config.clone().unwrap_or(serde_json::json!({})),
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": store.image_size(rec),
        "GraphDriver": {"Name": "overlay2", "Data": {}},
        "RootFS": {"Type": "layers", "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": rec.added},
        "Descriptor": {"mediaType": rec.manifest_media_type, "digest": rec.manifest.to_string()},
    }))
}

fn history(store: &ImageStore, rec: &ImageRecord) -> Result<serde_json::Value> {
    let config = store.config(rec)?;
    let manifest = store.manifest(rec)?;
    let mut layers = manifest.layers.iter();
    let mut rows = Vec::new();
    for h in &config.history {
        let size = if h.empty_layer {
            0
        } else {
            layers.next().map(|l| l.size).unwrap_or(0)
        };
        rows.push(serde_json::json!({
            "Id": "<missing>",
            "Created": h.created.as_deref().and_then(cais_image::time::parse_rfc3339).unwrap_or(0),
            "CreatedBy": h.created_by.clone().unwrap_or_default(),
            "Tags": null,
            "Size": size,
            "Comment": h.comment.clone().unwrap_or_default(),
        }));
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first["Id"] = rec.id().to_string().into();
        first["Tags"] = serde_json::json!(familiar_tags(rec));
    }
    Ok(serde_json::Value::Array(rows))
}

fn removals(list: Vec<Removal>) -> serde_json::Value {
    serde_json::Value::Array(
        list.into_iter()
            .map(|r| match r {
                Removal::Untagged(n) => serde_json::json!({"Untagged": n}),
                Removal::Deleted(d) => serde_json::json!({"Deleted": d.to_string()}),
            })
            .collect(),
    )
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

/// Streams a request body into an unnamed temporary file (archives can
/// be large; nothing is held in memory), rewound for reading.
pub(crate) async fn body_to_file(
    req: Request<Incoming>,
    dir: &std::path::Path,
) -> Result<std::fs::File> {
    use http_body_util::BodyExt;
    use std::io::{Seek, Write};
    let file =
        tempfile::tempfile_in(dir).map_err(|e| Error::internal("creating a temporary file", e))?;
    let mut writer = file
        .try_clone()
        .map_err(|e| Error::internal("temporary file", e))?;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::InvalidArgument(format!("reading the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            writer
                .write_all(data)
                .map_err(|e| Error::internal("writing a temporary file", e))?;
        }
    }
    let mut file = file;
    file.rewind()
        .map_err(|e| Error::internal("temporary file", e))?;
    Ok(file)
}

fn json_lines(lines: &[serde_json::Value]) -> Response<Body> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut r = Response::new(crate::server::full(text));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Registry credentials from the `X-Registry-Auth` header (base64url of
/// `{"username", "password", "serveraddress"}`), as the docker CLI sends them.
pub(crate) fn registry_auth(
    req: &Request<Incoming>,
) -> Option<cais_registry::client::credentials::Credentials> {
    use base64::Engine as _;
    let raw = req.headers().get("X-Registry-Auth")?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw.trim_end_matches('='))
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let username = v["username"].as_str().unwrap_or_default().to_string();
    let password = v["password"].as_str().unwrap_or_default().to_string();
    (!username.is_empty())
        .then_some(cais_registry::client::credentials::Credentials { username, password })
}

/// Progress of a pull or push as Docker's JSON messages, handed to `send`
/// one at a time (the caller frames them as lines).
pub(crate) struct JsonProgress {
    send: Box<dyn Fn(serde_json::Value) + Send + Sync>,
    pulling: bool,
}

impl JsonProgress {
    pub(crate) fn new(
        pulling: bool,
        send: impl Fn(serde_json::Value) + Send + Sync + 'static,
    ) -> JsonProgress {
        JsonProgress {
            send: Box::new(send),
            pulling,
        }
    }

    /// Messages as lines on a streaming response body.
    fn to_body(pulling: bool, tx: tokio::sync::mpsc::Sender<bytes::Bytes>) -> JsonProgress {
        JsonProgress::new(pulling, move |v| {
            let _ = tx.blocking_send(bytes::Bytes::from(format!("{v}\n")));
        })
    }

    pub(crate) fn send(&self, v: serde_json::Value) {
        (self.send)(v)
    }
}

impl cais_image::pull::Progress for JsonProgress {
    fn update(&self, digest: &cais_image::Digest, status: cais_image::pull::Status) {
        use cais_image::pull::Status;
        let id = digest.hex().chars().take(12).collect::<String>();
        let msg = match status {
            Status::AlreadyExists => serde_json::json!({"status": "Already exists", "id": id}),
            Status::Waiting => serde_json::json!({"status": "Waiting", "id": id}),
            Status::Transferring { done, total } => serde_json::json!({
                "status": if self.pulling { "Downloading" } else { "Pushing" },
                "progressDetail": {"current": done, "total": total}, "id": id
            }),
            Status::Complete => {
                serde_json::json!({"status": if self.pulling { "Pull complete" } else { "Pushed" }, "id": id})
            }
            Status::RemoteExists => serde_json::json!({"status": "Layer already exists", "id": id}),
            Status::Mounted => {
                serde_json::json!({"status": "Mounted from another repository", "id": id})
            }
        };
        self.send(msg);
    }
}

pub(crate) fn error_line(e: &dyn std::error::Error) -> serde_json::Value {
    let text = crate::error::chain(e);
    serde_json::json!({"errorDetail": {"message": text}, "error": text})
}

/// `POST /images/create?fromImage=`: pulls, streaming progress.
async fn pull(
    engine: Arc<Engine>,
    req: &Request<Incoming>,
    query: &Query,
) -> Result<Response<Body>> {
    let image = query.get("fromImage").unwrap_or_default().to_string();
    let tag = query
        .get("tag")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let full = match &tag {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.clone(),
    };
    let reference: Reference = full
        .parse()
        .map_err(|err: cais_image::oci::Error| Error::InvalidArgument(crate::error::chain(&err)))?;
    let platform: cais_image::Platform = match query.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => p.parse().map_err(|err: cais_image::oci::Error| {
            Error::InvalidArgument(crate::error::chain(&err))
        })?,
        None => cais_image::Platform::default(),
    };
    let options = cais_registry::client::Options {
        credentials: registry_auth(req),
        ..Default::default()
    };
    // Reach the registry before answering, so a wrong name or a refused
    // login is an HTTP error and not a line in a 200 stream.
    let client = {
        let domain = reference.domain.clone();
        blocking(move || {
            let c = cais_registry::client::Client::new(&domain, &options)
                .map_err(|err| Error::NotFound(crate::error::chain(&err)))?;
            Ok(c)
        })
        .await?
    };
    let (tx, body) = crate::server::channel_body();
    let progress = Arc::new(JsonProgress::to_body(true, tx));
    tokio::task::spawn_blocking(move || {
        if let Err(e) = pull_with(&engine, &client, &reference, platform, progress.clone()) {
            progress.send(error_line(&e));
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Pulls `reference` through `client`, reporting docker's status lines
/// (also used by builds, for base images that are missing).
pub(crate) fn pull_with(
    engine: &Engine,
    client: &cais_registry::client::Client,
    reference: &Reference,
    platform: cais_image::Platform,
    progress: Arc<JsonProgress>,
) -> std::result::Result<(), cais_image::pull::TransferError> {
    progress.send(serde_json::json!({"status": format!("Pulling from {}", reference.path), "id": reference.tag.clone().unwrap_or_else(|| "latest".into())}));
    let opts = cais_image::pull::PullOptions {
        platform,
        jobs: 3,
        progress: progress.clone(),
    };
    let report = cais_image::pull::pull(&engine.images, client, reference, &opts)?;
    progress.send(serde_json::json!({"status": format!("Digest: {}", report.target)}));
    let verb = if report.fetched > 0 {
        "Downloaded newer image"
    } else {
        "Image is up to date"
    };
    progress.send(serde_json::json!({"status": format!("Status: {verb} for {}", display_name(&reference.to_string()))}));
    engine
        .events
        .emit("image", "pull", &reference.to_string(), BTreeMap::new());
    Ok(())
}

/// `POST /images/{name}/push`: pushes, streaming progress.
async fn push(
    engine: Arc<Engine>,
    req: &Request<Incoming>,
    name: String,
    query: &Query,
) -> Result<Response<Body>> {
    let full = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.clone(),
    };
    let target: Reference = full
        .parse()
        .map_err(|err: cais_image::oci::Error| Error::InvalidArgument(crate::error::chain(&err)))?;
    {
        let e = engine.clone();
        let f = full.clone();
        blocking(move || e.images.resolve(&f).map(drop).map_err(image_not_found(&f))).await?;
    }
    let options = cais_registry::client::Options {
        credentials: registry_auth(req),
        ..Default::default()
    };
    let (tx, body) = crate::server::channel_body();
    let progress = Arc::new(JsonProgress::to_body(false, tx));
    tokio::task::spawn_blocking(move || {
        progress.send(serde_json::json!({"status": format!("The push refers to repository [{}]", target.name())}));
        let client = match cais_registry::client::Client::new(&target.domain, &options) {
            Ok(c) => c,
            Err(e) => return progress.send(error_line(&e)),
        };
        let opts = cais_image::push::PushOptions {
            progress: progress.clone(),
            ..Default::default()
        };
        match cais_image::push::push(&engine.images, &client, &full, &target, &opts) {
            Ok(report) => {
                let size = engine
                    .images
                    .content()
                    .size(&report.manifest)
                    .unwrap_or_default();
                progress.send(serde_json::json!({"status": format!("{}: digest: {} size: {size}", target.tag.clone().unwrap_or_else(|| "latest".into()), report.manifest)}));
                engine
                    .events
                    .emit("image", "push", &target.to_string(), BTreeMap::new());
            }
            Err(e) => progress.send(error_line(&e)),
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `GET /images/get` and `/images/{name}/get`: a tarball that is both a
/// docker-archive and an OCI layout.
async fn save(engine: Arc<Engine>, names: Vec<String>) -> Result<Response<Body>> {
    if names.is_empty() {
        return Err(Error::InvalidArgument("no image names given".into()));
    }
    let dir = engine.cfg.exec_root.clone();
    let file = blocking(move || {
        for n in &names {
            engine.images.resolve(n).map_err(image_not_found(n))?;
        }
        let mut file = tempfile::tempfile_in(&dir)
            .map_err(|e| Error::internal("creating a temporary file", e))?;
        cais_image::archive::save(&engine.images, &names, &mut file)?;
        use std::io::Seek;
        file.rewind()
            .map_err(|e| Error::internal("temporary file", e))?;
        Ok(file)
    })
    .await?;
    let (tx, body) = crate::server::channel_body();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = file;
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0
                || tx
                    .blocking_send(bytes::Bytes::copy_from_slice(&buf[..n]))
                    .is_err()
            {
                break;
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

pub async fn route(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    method: &Method,
    segs: &[&str],
    query: &Query,
) -> Result<Response<Body>> {
    let e = engine.clone();
    match (method, segs) {
        (&Method::GET, ["get"]) => {
            let names: Vec<String> = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.strip_prefix("names="))
                .map(crate::server::decode)
                .collect();
            save(engine, names).await
        }
        (&Method::POST, ["load"]) => {
            // `quiet` only silences progress bars, which load has none of:
            // the "Loaded image" lines are always sent.
            let file = body_to_file(req, &engine.cfg.exec_root).await?;
            let loaded = blocking(move || {
                let loaded = cais_image::archive::load(
                    &e.images,
                    file,
                    &cais_image::archive::host_platform(),
                )
                .map_err(|err| Error::InvalidArgument(crate::error::chain(&err)))?;
                for l in &loaded {
                    e.events
                        .emit("image", "load", &l.image.id().to_string(), BTreeMap::new());
                }
                Ok(loaded)
            })
            .await?;
            let mut lines = Vec::new();
            for l in &loaded {
                if l.tags.is_empty() {
                    lines.push(serde_json::json!({"stream": format!("Loaded image ID: {}\n", l.image.id())}));
                }
                for t in &l.tags {
                    lines.push(serde_json::json!({"stream": format!("Loaded image: {}\n", display_name(t))}));
                }
            }
            Ok(json_lines(&lines))
        }
        (&Method::POST, ["create"]) if query.get("fromSrc").is_some() => {
            if query.get("fromSrc") != Some("-") {
                return Err(Error::InvalidArgument(
                    "only fromSrc=- (the request body) is supported".into(),
                ));
            }
            let reference = match (
                query.get("repo").filter(|r| !r.is_empty()),
                query.get("tag").filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r.to_string()),
                _ => None,
            }
            .map(|r| r.parse::<Reference>())
            .transpose()
            .map_err(|err| Error::InvalidArgument(crate::error::chain(&err)))?;
            let message = query
                .get("message")
                .filter(|m| !m.is_empty())
                .map(str::to_string);
            let file = body_to_file(req, &engine.cfg.exec_root).await?;
            let id = blocking(move || {
                let opts = cais_image::archive::ImportOptions {
                    reference,
                    message,
                    platform: None,
                    source: "-".into(),
                };
                let rec = cais_image::archive::import(&e.images, file, &opts)
                    .map_err(|err| Error::InvalidArgument(crate::error::chain(&err)))?;
                e.events
                    .emit("image", "import", &rec.id().to_string(), BTreeMap::new());
                Ok(rec.id().to_string())
            })
            .await?;
            Ok(json_lines(&[serde_json::json!({"status": id})]))
        }
        (&Method::POST, ["create"]) if query.get("fromImage").is_some() => {
            pull(engine, &req, query).await
        }
        (&Method::GET, ["json"]) => {
            let filters = query.filters(filters::IMAGE_LIST)?;
            let dangling = filters.boolean("dangling")?;
            let until = filters.until(crate::server::unix_now())?;
            let list = blocking(move || {
                let records = e.images.list()?;
                // `before`/`since` name an image; others are ordered by it.
                let created_of = |key: &str| -> Result<Option<i64>> {
                    let Some(name) = filters.values(key).first() else {
                        return Ok(None);
                    };
                    let rec = e.images.resolve(name).map_err(image_not_found(name))?;
                    Ok(Some(summary(&e.images, &rec)?.created))
                };
                let (before, since) = (created_of("before")?, created_of("since")?);
                let mut out = Vec::new();
                for rec in records {
                    let names = familiar_tags(&rec);
                    if dangling.is_some_and(|d| d != rec.tags.is_empty())
                        || !filters.any("reference", |r| {
                            names.iter().any(|n| reference_matches(r, n))
                        })
                    {
                        continue;
                    }
                    let s = summary(&e.images, &rec)?;
                    if filters.labels_match(&s.labels)
                        && before.is_none_or(|b| s.created < b)
                        && since.is_none_or(|t| s.created > t)
                        && until.is_none_or(|u| s.created < u)
                    {
                        out.push(s);
                    }
                }
                out.sort_by_key(|i| std::cmp::Reverse(i.created));
                Ok(out)
            })
            .await?;
            Ok(json(StatusCode::OK, &list))
        }
        (&Method::POST, ["prune"]) => {
            let filters = query.filters(filters::IMAGE_PRUNE)?;
            let all = filters.boolean("dangling")? == Some(false);
            let until = filters.until(crate::server::unix_now())?;
            let (removed, gc) = blocking(move || {
                let store = &e.images;
                let select = |rec: &ImageRecord| {
                    let Ok(s) = summary(store, rec) else {
                        return false;
                    };
                    filters.labels_match(&s.labels) && until.is_none_or(|u| s.created < u)
                };
                store.prune_selected(all, &select).map_err(Error::from)
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"ImagesDeleted": removals(removed), "SpaceReclaimed": gc.bytes}),
            ))
        }
        _ => {
            let (name, action) = name_and_action(segs);
            match (method, action) {
                (&Method::GET, Some("json")) => {
                    let v = blocking(move || {
                        let rec = e.images.resolve(&name).map_err(image_not_found(&name))?;
                        inspect(&e.images, &rec)
                    })
                    .await?;
                    Ok(json(StatusCode::OK, &v))
                }
                (&Method::GET, Some("get")) => save(engine, vec![name]).await,
                (&Method::POST, Some("push")) => push(engine, &req, name, query).await,
                (&Method::GET, Some("history")) => {
                    let v = blocking(move || {
                        let rec = e.images.resolve(&name).map_err(image_not_found(&name))?;
                        history(&e.images, &rec)
                    })
                    .await?;
                    Ok(json(StatusCode::OK, &v))
                }
                (&Method::POST, Some("tag")) => {
                    let repo = query.get("repo").unwrap_or_default().to_string();
                    let tag = query
                        .get("tag")
                        .filter(|t| !t.is_empty())
                        .unwrap_or("latest")
                        .to_string();
                    blocking(move || {
                        let target: Reference = format!("{repo}:{tag}").parse().map_err(
                            |err: cais_image::oci::Error| {
                                Error::InvalidArgument(crate::error::chain(&err))
                            },
                        )?;
                        let rec = e
                            .images
                            .tag(&name, &target)
                            .map_err(image_not_found(&name))?;
                        e.events.emit(
                            "image",
                            "tag",
                            &rec.id().to_string(),
                            BTreeMap::from([("name".to_string(), format!("{repo}:{tag}"))]),
                        );
                        Ok(())
                    })
                    .await?;
                    Ok(crate::server::empty(StatusCode::CREATED))
                }
                (&Method::DELETE, None) => {
                    let force = query.flag("force");
                    let v = blocking(move || {
                        let list = e.images.remove(&name, force).map_err(|err| match err {
                            cais_image::Error::NotFound { .. } => {
                                Error::NotFound(format!("No such image: {name}"))
                            }
                            cais_image::Error::Conflict { reason } => Error::Conflict(reason),
                            other => other.into(),
                        })?;
                        for r in &list {
                            let (action, id) = match r {
                                Removal::Untagged(n) => ("untag", n.clone()),
                                Removal::Deleted(d) => ("delete", d.to_string()),
                            };
                            e.events.emit("image", action, &id, BTreeMap::new());
                        }
                        Ok(removals(list))
                    })
                    .await?;
                    Ok(json(StatusCode::OK, &v))
                }
                _ => Err(Error::NotFound(format!(
                    "page not found: {method} /images/{}",
                    segs.join("/")
                ))),
            }
        }
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
}
