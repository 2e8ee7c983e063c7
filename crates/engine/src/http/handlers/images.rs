//! `/images/...`: list, inspect, history, tag, remove, prune, pull and push
//! (streaming docker's progress lines), save, load and import.

use std::collections::BTreeMap;
use std::sync::Arc;

use cais_image::store::{display_name, Removal};
use cais_image::{ImageRecord, Reference};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::engine::Engine;
use crate::error::{Error, Kind, Result};
use crate::filters;
use crate::http::plumbing::{
    all_values, blocking, body_to_file, channel_body, empty, json, json_lines, streaming, unix_now,
    Body, Query,
};
use crate::images::{error_line, image_not_found, pull_with, summary, JsonProgress};

/// Registry credentials from the `X-Registry-Auth` header (base64url of
/// `{"username", "password", "serveraddress"}`), as the docker CLI sends them.
fn registry_auth(
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

/// `POST /images/create?fromImage=`: pulls, streaming progress.
pub(crate) async fn pull(
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
    let reference: Reference = full.parse().map_err(Error::OciInput)?;
    let platform: cais_image::Platform = match query.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => p.parse().map_err(Error::OciInput)?,
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
            let c =
                cais_registry::client::Client::new(&domain, &options).map_err(Error::Registry)?;
            Ok(c)
        })
        .await?
    };
    let (tx, body) = channel_body();
    let progress = Arc::new(JsonProgress::to_body(true, tx));
    tokio::task::spawn_blocking(move || {
        if let Err(e) = pull_with(
            &engine.images,
            &engine.events,
            &client,
            &reference,
            platform,
            progress.clone(),
        ) {
            progress.send(error_line(&e));
        }
    });
    Ok(streaming(body, "application/json"))
}

/// `POST /images/{name}/push`: pushes, streaming progress.
pub(crate) async fn push(
    engine: Arc<Engine>,
    req: &Request<Incoming>,
    name: String,
    query: &Query,
) -> Result<Response<Body>> {
    let full = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.clone(),
    };
    let target: Reference = full.parse().map_err(Error::OciInput)?;
    {
        let e = engine.clone();
        let f = full.clone();
        blocking(move || e.images.resolve(&f).map(drop).map_err(image_not_found(&f))).await?;
    }
    let options = cais_registry::client::Options {
        credentials: registry_auth(req),
        ..Default::default()
    };
    let (tx, body) = channel_body();
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
    Ok(streaming(body, "application/json"))
}

/// `GET /images/get?names=` and `/images/{name}/get`: a tarball that is
/// both a docker-archive and an OCI layout.
pub(crate) async fn save(engine: Arc<Engine>, names: Vec<String>) -> Result<Response<Body>> {
    if names.is_empty() {
        return Err(Error::InvalidArgument("no image names given".into()));
    }
    let dir = engine.cfg.exec_root.clone();
    let file = blocking(move || {
        for n in &names {
            engine.images.resolve(n).map_err(image_not_found(n))?;
        }
        let mut file =
            tempfile::tempfile_in(&dir).map_err(Error::io("creating a temporary file in", &dir))?;
        cais_image::archive::save(&engine.images, &names, &mut file)?;
        use std::io::Seek;
        file.rewind()
            .map_err(Error::io("rewinding a temporary file in", &dir))?;
        Ok(file)
    })
    .await?;
    let (tx, body) = channel_body();
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
    Ok(streaming(body, "application/x-tar"))
}

/// `POST /images/load`. An archive the store refuses is answered as
/// dockerd answers it: `200` with the error as the stream's one line
/// (clients read errors from the stream once the body was taken).
pub(crate) async fn load(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    // `quiet` only silences progress bars, which load has none of: the
    // "Loaded image" lines are always sent.
    let file = body_to_file(req, &engine.cfg.exec_root).await?;
    let loaded = blocking(move || {
        let loaded =
            cais_image::archive::load(&engine.images, file, &cais_image::archive::host_platform())
                .map_err(Error::ImageInput)?;
        for l in &loaded {
            engine
                .events
                .emit("image", "load", &l.image.id().to_string(), BTreeMap::new());
        }
        Ok(loaded)
    })
    .await;
    let loaded = match loaded {
        Ok(l) => l,
        Err(e @ Error::ImageInput(_)) => return Ok(json_lines(&[error_line(&e)])),
        Err(e) => return Err(e),
    };
    let mut lines = Vec::new();
    for l in &loaded {
        if l.tags.is_empty() {
            lines.push(
                serde_json::json!({"stream": format!("Loaded image ID: {}\n", l.image.id())}),
            );
        }
        for t in &l.tags {
            lines.push(
                serde_json::json!({"stream": format!("Loaded image: {}\n", display_name(t))}),
            );
        }
    }
    Ok(json_lines(&lines))
}

/// `POST /images/create?fromSrc=-&changes=...`: a root filesystem tar in
/// the body; `changes` (Dockerfile instructions) make its config.
pub(crate) async fn import(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    query: &Query,
) -> Result<Response<Body>> {
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
    .map_err(Error::OciInput)?;
    // dockerd's history comment when no message is given.
    let message = Some(
        query
            .get("message")
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| "Imported from -".to_string()),
    );
    let changes = all_values(req.uri().query().unwrap_or(""), "changes");
    // The changes are checked before the body is read.
    let config = if changes.is_empty() {
        None
    } else {
        let mut config = serde_json::Value::Null;
        cais_build::apply_changes(&mut config, &changes).map_err(Error::Build)?;
        Some(config)
    };
    let file = body_to_file(req, &engine.cfg.exec_root).await?;
    let id = blocking(move || {
        let opts = cais_image::archive::ImportOptions {
            reference,
            message,
            platform: None,
            source: "-".into(),
            config,
        };
        let rec =
            cais_image::archive::import(&engine.images, file, &opts).map_err(Error::ImageInput)?;
        engine
            .events
            .emit("image", "import", &rec.id().to_string(), BTreeMap::new());
        Ok(rec.id().to_string())
    })
    .await?;
    Ok(json_lines(&[serde_json::json!({"status": id})]))
}

/// `GET /images/json`.
pub(crate) async fn list(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::IMAGE_LIST)?;
    let dangling = filters.boolean("dangling")?;
    let until = filters.until(unix_now())?;
    let list =
        blocking(move || crate::images::list(&engine.images, &filters, dangling, until)).await?;
    Ok(json(StatusCode::OK, &list))
}

/// `POST /images/prune`.
pub(crate) async fn prune(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let filters = query.filters(filters::IMAGE_PRUNE)?;
    let all = filters.boolean("dangling")? == Some(false);
    let until = filters.until(unix_now())?;
    let (removed, gc) = blocking(move || {
        let store = &engine.images;
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

/// `GET /images/{name}/json`, as API `version` shows it.
pub(crate) async fn inspect(
    engine: Arc<Engine>,
    name: String,
    version: String,
) -> Result<Response<Body>> {
    let v = blocking(move || {
        let rec = engine
            .images
            .resolve(&name)
            .map_err(image_not_found(&name))?;
        crate::images::inspect(&engine.images, &rec, &version)
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `GET /images/{name}/history`.
pub(crate) async fn history(engine: Arc<Engine>, name: String) -> Result<Response<Body>> {
    let v = blocking(move || {
        let rec = engine
            .images
            .resolve(&name)
            .map_err(image_not_found(&name))?;
        crate::images::history(&engine.images, &rec)
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub(crate) async fn tag(
    engine: Arc<Engine>,
    name: String,
    query: &Query,
) -> Result<Response<Body>> {
    let repo = query.get("repo").unwrap_or_default().to_string();
    let tag = query
        .get("tag")
        .filter(|t| !t.is_empty())
        .unwrap_or("latest")
        .to_string();
    blocking(move || {
        let target: Reference = format!("{repo}:{tag}").parse().map_err(Error::OciInput)?;
        let rec = engine
            .images
            .tag(&name, &target)
            .map_err(image_not_found(&name))?;
        engine.events.emit(
            "image",
            "tag",
            &rec.id().to_string(),
            BTreeMap::from([("name".to_string(), format!("{repo}:{tag}"))]),
        );
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=`.
pub(crate) async fn remove(
    engine: Arc<Engine>,
    name: String,
    query: &Query,
) -> Result<Response<Body>> {
    let force = query.flag("force");
    let v = blocking(move || {
        let list = engine
            .images
            .remove(&name, force)
            .map_err(|err| match err {
                cais_image::Error::NotFound { .. } => Error::not_found(Kind::Image, &name),
                cais_image::Error::Conflict { reason } => Error::Conflict(reason),
                other => other.into(),
            })?;
        for r in &list {
            let (action, id) = match r {
                Removal::Untagged(n) => ("untag", n.clone()),
                Removal::Deleted(d) => ("delete", d.to_string()),
            };
            engine.events.emit("image", action, &id, BTreeMap::new());
        }
        Ok(removals(list))
    })
    .await?;
    Ok(json(StatusCode::OK, &v))
}
