//! The engine's side of the image store: images as the API shows them
//! (summary, inspect, history, the list with its filters) and pulls with
//! docker's progress messages, which builds use too.

use std::collections::BTreeMap;
use std::sync::Arc;

use cais_api::ImageSummary;
use cais_image::store::display_name;
use cais_image::{ImageRecord, ImageStore, Reference};

use crate::error::{Error, Kind, Result};
use crate::events::Events;
use crate::filters::Filters;

pub(crate) fn image_not_found(name: &str) -> impl Fn(cais_image::Error) -> Error + '_ {
    move |e| match e {
        cais_image::Error::NotFound { .. } => Error::not_found(Kind::Image, name),
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

pub(crate) fn familiar_tags(rec: &ImageRecord) -> Vec<String> {
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

/// `GET /images/{name}/json`, shaped like docker's for the client's API
/// `version`: `VirtualSize` until 1.44, `Container` and `ContainerConfig`
/// (the container a commit was made from) until 1.45, as dockerd drops
/// them.
pub(crate) fn inspect(
    store: &ImageStore,
    rec: &ImageRecord,
    version: &str,
) -> Result<serde_json::Value> {
    let config = store.config(rec)?;
    let size = store.image_size(rec);
    let mut v = serde_json::json!({
        "Id": rec.id().to_string(),
        "RepoTags": familiar_tags(rec),
        "RepoDigests": rec.repo_digests.iter().map(|d| display_name(d)).collect::<Vec<_>>(),
        "Parent": rec.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Comment": config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": config.extra.get("docker_version").and_then(|v| v.as_str()).unwrap_or_default(),
        "Author": config.author.clone().unwrap_or_default(),
        "Config": container_config_view(config.config.as_ref()),
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": size,
        "GraphDriver": {"Name": "overlay2", "Data": {}},
        "RootFS": {"Type": "layers", "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": rec.added},
        "Descriptor": {"mediaType": rec.manifest_media_type, "digest": rec.manifest.to_string()},
    });
    if let Some(variant) = &config.variant {
        v["Variant"] = variant.clone().into();
    }
    if cais_api::version_lt(version, "1.44") {
        v["VirtualSize"] = size.into();
    }
    if cais_api::version_lt(version, "1.45") {
        v["Container"] = config
            .extra
            .get("container")
            .cloned()
            .unwrap_or_else(|| "".into());
        v["ContainerConfig"] = container_config_view(config.extra.get("container_config"));
    }
    Ok(v)
}

/// A container config (an image's `Config`, a commit's `ContainerConfig`)
/// with every field docker's config type has: what the image holds, and
/// for the rest its zero value (`""`, `false`, `null`); fields docker
/// leaves out when empty are left out when absent.
pub(crate) fn container_config_view(config: Option<&serde_json::Value>) -> serde_json::Value {
    const ALWAYS: [(&str, serde_json::Value); 17] = [
        ("Hostname", serde_json::Value::String(String::new())),
        ("Domainname", serde_json::Value::String(String::new())),
        ("User", serde_json::Value::String(String::new())),
        ("AttachStdin", serde_json::Value::Bool(false)),
        ("AttachStdout", serde_json::Value::Bool(false)),
        ("AttachStderr", serde_json::Value::Bool(false)),
        ("Tty", serde_json::Value::Bool(false)),
        ("OpenStdin", serde_json::Value::Bool(false)),
        ("StdinOnce", serde_json::Value::Bool(false)),
        ("Env", serde_json::Value::Null),
        ("Cmd", serde_json::Value::Null),
        ("Image", serde_json::Value::String(String::new())),
        ("Volumes", serde_json::Value::Null),
        ("WorkingDir", serde_json::Value::String(String::new())),
        ("Entrypoint", serde_json::Value::Null),
        ("OnBuild", serde_json::Value::Null),
        ("Labels", serde_json::Value::Null),
    ];
    const WHEN_SET: [&str; 8] = [
        "ExposedPorts",
        "Healthcheck",
        "ArgsEscaped",
        "NetworkDisabled",
        "MacAddress",
        "StopSignal",
        "StopTimeout",
        "Shell",
    ];
    let given = config.and_then(|c| c.as_object());
    let mut out = serde_json::Map::new();
    for (key, zero) in ALWAYS {
        let value = given.and_then(|g| g.get(key)).cloned().unwrap_or(zero);
        out.insert(key.to_string(), value);
    }
    for key in WHEN_SET {
        if let Some(value) = given.and_then(|g| g.get(key)).filter(|v| {
            !v.is_null() && *v != &serde_json::json!(false) && *v != &serde_json::json!("")
        }) {
            out.insert(key.to_string(), value.clone());
        }
    }
    serde_json::Value::Object(out)
}

pub(crate) fn history(store: &ImageStore, rec: &ImageRecord) -> Result<serde_json::Value> {
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
    pub(crate) fn to_body(
        pulling: bool,
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> JsonProgress {
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

/// Pulls `reference` through `client`, reporting docker's status lines
/// (also used by builds, for base images that are missing).
pub(crate) fn pull_with(
    store: &ImageStore,
    events: &Events,
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
    let report = cais_image::pull::pull(store, client, reference, &opts)?;
    progress.send(serde_json::json!({"status": format!("Digest: {}", report.target)}));
    let verb = if report.fetched > 0 {
        "Downloaded newer image"
    } else {
        "Image is up to date"
    };
    progress.send(serde_json::json!({"status": format!("Status: {verb} for {}", display_name(&reference.to_string()))}));
    events.emit("image", "pull", &reference.to_string(), BTreeMap::new());
    Ok(())
}

/// `GET /images/json`: the images that pass `filters` (keys checked by the
/// caller; `dangling` and `until` already read from them), newest first.
pub(crate) fn list(
    store: &ImageStore,
    filters: &Filters,
    dangling: Option<bool>,
    until: Option<i64>,
) -> Result<Vec<ImageSummary>> {
    let records = store.list()?;
    // `before`/`since` name an image; others are ordered by it.
    let created_of = |key: &str| -> Result<Option<i64>> {
        let Some(name) = filters.values(key).first() else {
            return Ok(None);
        };
        let rec = store.resolve(name).map_err(image_not_found(name))?;
        Ok(Some(summary(store, &rec)?.created))
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
        let s = summary(store, &rec)?;
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
}
