//! `/info`: what the daemon is and holds.

use crate::engine::Engine;

pub fn info(engine: &Engine) -> serde_json::Value {
    let containers = engine.list(true, &Default::default()).unwrap_or_default();
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

/// `GET /containers/{id}/changes`: what the container changed in its
/// image, from its overlay upper directory (0 modified, 1 added, 2 deleted).
pub fn changes(engine: &Engine, id: &str) -> crate::error::Result<Vec<serde_json::Value>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::{Path, PathBuf};
    engine.record(id)?;
    let m = engine.images.container_mount(id)?;
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    let in_lower = |rel: &Path| {
        m.lowerdirs
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
    };
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(m.upperdir.join(&rel)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = rel.join(e.file_name());
            let Ok(meta) = e.metadata() else { continue };
            // An overlayfs whiteout: a 0:0 character device.
            let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
                2
            } else if in_lower(&child) {
                0
            } else {
                1
            };
            out.push(serde_json::json!({"Path": format!("/{}", child.display()), "Kind": kind}));
            if meta.is_dir() {
                stack.push(child);
            }
        }
    }
    out.sort_by(|a, b| a["Path"].as_str().cmp(&b["Path"].as_str()));
    Ok(out)
}

/// `POST /containers/{id}/update`: new resource limits, applied to the
/// running container's cgroup and kept for its next start.
pub fn update(
    engine: &Engine,
    id: &str,
    new: &cais_api::HostConfig,
) -> crate::error::Result<Vec<String>> {
    use crate::error::Error;
    let rec = engine.record(id)?;
    let mut host = rec.host_config.clone();
    if new.memory != 0 {
        host.memory = new.memory;
    }
    if new.memory_swap != 0 {
        host.memory_swap = new.memory_swap;
    }
    if new.memory_reservation != 0 {
        host.memory_reservation = new.memory_reservation;
    }
    if new.nano_cpus != 0 {
        host.nano_cpus = new.nano_cpus;
    }
    if new.cpu_shares != 0 {
        host.cpu_shares = new.cpu_shares;
    }
    if new.cpu_quota != 0 {
        host.cpu_quota = new.cpu_quota;
    }
    if new.cpu_period != 0 {
        host.cpu_period = new.cpu_period;
    }
    if !new.cpuset_cpus.is_empty() {
        host.cpuset_cpus = new.cpuset_cpus.clone();
    }
    if new.pids_limit.is_some() {
        host.pids_limit = new.pids_limit;
    }
    if !new.restart_policy.name.is_empty() {
        host.restart_policy = new.restart_policy.clone();
    }
    if host.memory > 0 && host.memory < 6 * 1024 * 1024 {
        return Err(Error::InvalidArgument(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    if rec.state.running {
        let mut resources = crate::spec::resources(&host);
        // Device rules were set at start; leave them alone.
        if let Some(o) = resources.as_object_mut() {
            o.remove("devices");
        }
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_value(resources)
            .map_err(|e| Error::internal("building resources", e))?;
        let cg = cais_cgroups::Cgroup::new(
            cais_cgroups::Layout::detect().map_err(|e| Error::internal("cgroups", e))?,
            &format!("/cais/{id}"),
        )
        .map_err(|e| Error::internal("cgroups", e))?;
        cg.apply(&resources).map_err(|e| {
            Error::InvalidArgument(format!(
                "Cannot update container {id}: {}",
                crate::error::chain(&e)
            ))
        })?;
    }
    engine.set_host_config(id, host)?;
    Ok(Vec::new())
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
pub fn df(engine: &Engine) -> crate::error::Result<serde_json::Value> {
    let containers = engine.list(true, &Default::default()).unwrap_or_default();
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
            let users = engine.volume_users(&v.name).len();
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
