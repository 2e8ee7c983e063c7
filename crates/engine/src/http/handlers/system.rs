//! `/_ping`, `/version`, `/info`, `/system/df` and `/events`: what the
//! daemon is and holds, and what happens in it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cais_api::{API_VERSION, MIN_API_VERSION};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};

use crate::engine::Engine;
use crate::error::Result;
use crate::filters::{self, event_matches};
use crate::http::plumbing::{
    blocking, channel_body, full, json, parse_unix_nanos, streaming, Body, Query,
};

/// `GET|HEAD /_ping`.
pub(crate) fn ping(method: &Method) -> Response<Body> {
    let mut r = Response::new(full(if method == Method::HEAD { "" } else { "OK" }));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    // BuildKit's protocol is served (`/grpc`, `/session`), so the daemon
    // says so, as dockerd does. The docker CLI 28 reads this only for a
    // Windows daemon; on Linux, without buildx, it still uses the classic
    // `POST /build`.
    r.headers_mut()
        .insert("Builder-Version", HeaderValue::from_static("2"));
    r
}

/// `GET /version`.
pub(crate) fn version() -> Response<Body> {
    let uname = nix::sys::utsname::uname().ok();
    let v = cais_api::Version {
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
    };
    json(StatusCode::OK, &v)
}

/// `GET /info`.
pub(crate) async fn info(engine: Arc<Engine>) -> Result<Response<Body>> {
    let info = blocking(move || Ok(info_of(&engine))).await?;
    Ok(json(StatusCode::OK, &info))
}

fn info_of(engine: &Engine) -> serde_json::Value {
    let containers = engine
        .views
        .list(true, &Default::default())
        .unwrap_or_default();
    let count = |s: &str| containers.iter().filter(|c| c.state == s).count();
    let images = engine.images.list().map(|l| l.len()).unwrap_or(0);
    let uname = nix::sys::utsname::uname().ok();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .unwrap_or(0)
        * 1024;
    let cgroup_version = match cais_cgroups::Layout::detect() {
        Ok(cais_cgroups::Layout::V2 { .. }) => "2",
        _ => "1",
    };
    serde_json::json!({
        "ID": "cais",
        "Containers": containers.len(),
        "ContainersRunning": count("running"),
        "ContainersPaused": count("paused"),
        "ContainersStopped": containers.len() - count("running") - count("paused"),
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "overlayfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "PidsLimit": true,
        "OomKillDisable": false,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": cais_runtime::state::rfc3339(std::time::SystemTime::now()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "KernelVersion": uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        "OperatingSystem": "cais",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "DockerRootDir": engine.cfg.root.to_string_lossy(),
        "Name": uname.as_ref().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_default(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"cais": {"path": engine.cfg.binary.to_string_lossy()}},
        "DefaultRuntime": "cais",
        "LiveRestoreEnabled": true,
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    })
}

/// Bytes used by a directory tree (files' sizes; links not followed).
fn tree_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| tree_size(&e.path()))
        .sum()
}

/// `GET /system/df`: disk used by images, containers and volumes.
pub(crate) async fn df(engine: Arc<Engine>) -> Result<Response<Body>> {
    let df = blocking(move || df_of(&engine)).await?;
    Ok(json(StatusCode::OK, &df))
}

fn df_of(engine: &Engine) -> Result<serde_json::Value> {
    let containers = engine
        .views
        .list(true, &Default::default())
        .unwrap_or_default();
    let mut images = Vec::new();
    let mut layers_size = 0i64;
    for rec in engine.images.list()? {
        let mut s = crate::images::summary(&engine.images, &rec)?;
        s.containers = containers.iter().filter(|c| c.image_id == s.id).count() as i64;
        layers_size += s.size;
        images.push(s);
    }
    let containers_json: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| {
            let upper = engine
                .images
                .container_mount(&c.id)
                .map(|m| tree_size(&m.upperdir))
                .unwrap_or(0);
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["SizeRw"] = upper.into();
            v["SizeRootFs"] = upper.into();
            v
        })
        .collect();
    let volumes: Vec<serde_json::Value> = engine
        .volumes
        .list()
        .into_iter()
        .map(|v| {
            let users = engine.table.volume_users(&v.name).len();
            let size = tree_size(std::path::Path::new(&v.mountpoint));
            let mut j = serde_json::to_value(&v).unwrap_or_default();
            j["UsageData"] = serde_json::json!({"Size": size, "RefCount": users});
            j
        })
        .collect();
    Ok(serde_json::json!({
        "LayersSize": layers_size,
        "Images": images,
        "Containers": containers_json,
        "Volumes": volumes,
        "BuildCache": [],
    }))
}

/// `GET /events`: past events since `since`, then live ones until `until`
/// (or for as long as the client listens), filtered.
pub(crate) fn events(engine: Arc<Engine>, query: &Query) -> Result<Response<Body>> {
    let since = query
        .get("since")
        .and_then(parse_unix_nanos)
        .unwrap_or(i64::MIN);
    let until = query.get("until").and_then(parse_unix_nanos);
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
    Ok(streaming(body, "application/json"))
}
