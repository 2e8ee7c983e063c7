//! `/info`: what the daemon is and holds.

use crate::engine::Engine;

pub fn info(engine: &Engine) -> serde_json::Value {
    let containers = engine.list(true, &Default::default());
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
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Log": ["json-file"]},
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
