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

/// `GET /version`: the fields dockerd gives, the engine also as the one
/// component (dockerd lists containerd, runc and docker-init too; cais is
/// all of those).
pub(crate) fn version() -> Response<Body> {
    let uname = nix::sys::utsname::uname().ok();
    let v = cais_api::Version {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: "cais".into(),
        go_version: "none (cais is written in Rust)".into(),
        os: "linux".into(),
        arch: go_arch().into(),
        kernel_version: uname
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        build_time: String::new(),
    };
    let mut body = serde_json::to_value(&v).expect("the version serializes");
    body["Platform"] = serde_json::json!({"Name": "cais"});
    body["Components"] = serde_json::json!([{
        "Name": "Engine",
        "Version": v.version,
        "Details": {
            "ApiVersion": v.api_version,
            "Arch": v.arch,
            "BuildTime": v.build_time,
            "Experimental": "false",
            "GitCommit": v.git_commit,
            "GoVersion": v.go_version,
            "KernelVersion": v.kernel_version,
            "MinAPIVersion": v.min_api_version,
            "Os": v.os,
        },
    }]);
    json(StatusCode::OK, &body)
}

/// The architecture in Go's words (`GOARCH`), as `/version` gives it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `GET /info`.
pub(crate) async fn info(engine: Arc<Engine>) -> Result<Response<Body>> {
    let info = blocking(move || Ok(info_of(&engine))).await?;
    Ok(json(StatusCode::OK, &info))
}

/// `/info` with every field dockerd 20.10 to 28 gives, each computed
/// from the host and the engine where it means something for cais.
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
    let layout = cais_cgroups::Layout::detect().ok();
    let cgroup_version = match layout {
        Some(cais_cgroups::Layout::V2 { .. }) => "2",
        _ => "1",
    };
    // What the memory controller offers, from its files (cgroup v1 has
    // kernel memory and the OOM killer switch; v2 neither).
    let v1_memory = std::path::Path::new("/sys/fs/cgroup/memory");
    let v1_file = |f: &str| cgroup_version == "1" && v1_memory.join(f).exists();
    let sysctl_on = |path: &str| std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1");
    let os_release = os_release();
    let proxy = |name: &str| {
        std::env::var(name)
            .or_else(|_| std::env::var(name.to_lowercase()))
            .unwrap_or_default()
    };
    let own_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mut info = serde_json::json!({
        "ID": daemon_id(&engine.cfg.root),
        "Containers": containers.len(),
        "ContainersRunning": count("running"),
        "ContainersPaused": count("paused"),
        "ContainersStopped": containers.len() - count("running") - count("paused"),
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "overlayfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": true,
        "KernelMemory": v1_file("memory.kmem.limit_in_bytes"),
        "KernelMemoryTCP": v1_file("memory.kmem.tcp.limit_in_bytes"),
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": sysctl_on("/proc/sys/net/ipv4/ip_forward"),
        "BridgeNfIptables": sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        "Debug": false,
        "NFd": own_fds,
        "OomKillDisable": v1_file("memory.oom_control"),
        "NGoroutines": threads,
        "SystemTime": cais_runtime::state::rfc3339(std::time::SystemTime::now()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": engine.events.listeners(),
    });
    // In two parts: one `json!` of every field exceeds the macro's
    // recursion limit.
    let more = serde_json::json!({
        "KernelVersion": uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        "OperatingSystem": os_release.get("PRETTY_NAME").cloned().unwrap_or_else(|| "Linux".into()),
        "OSVersion": os_release.get("VERSION_ID").cloned().unwrap_or_default(),
        "OSType": "linux",
        "Architecture": uname.as_ref().map(|u| u.machine().to_string_lossy().into_owned()).unwrap_or_default(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true},
            },
            "Mirrors": [],
        },
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "GenericResources": null,
        "DockerRootDir": engine.cfg.root.to_string_lossy(),
        "HttpProxy": proxy("HTTP_PROXY"),
        "HttpsProxy": proxy("HTTPS_PROXY"),
        "NoProxy": proxy("NO_PROXY"),
        "Name": uname.as_ref().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_default(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"cais": {"path": engine.cfg.binary.to_string_lossy()}},
        "DefaultRuntime": "cais",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Warnings": null,
    });
    if let (Some(info), serde_json::Value::Object(more)) = (info.as_object_mut(), more) {
        info.extend(more);
    }
    info
}

/// The daemon's identity (`/info`'s `ID`): a random UUID made on first
/// use and kept in `<root>/engine/engine-id`, as dockerd keeps its own.
fn daemon_id(root: &std::path::Path) -> String {
    let path = root.join("engine/engine-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return id.trim().to_string();
        }
    }
    let hex = crate::ids::random_hex(16);
    let id = format!(
        "{}-{}-4{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[16..20],
        &hex[20..32]
    );
    // Written whole, then renamed into place: a reader sees no id or a
    // whole one.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &id).is_ok() && std::fs::rename(&tmp, &path).is_ok() {
        return id;
    }
    let _ = std::fs::remove_file(&tmp);
    id
}

/// The host's `/etc/os-release` (os-release(5)): `KEY=value` lines, values
/// possibly quoted.
fn os_release() -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            )
        })
        .collect()
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
