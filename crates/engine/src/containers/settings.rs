//! A create or update request checked as dockerd checks it, before
//! anything is made: each refusal in dockerd's words (a 400), what the
//! kernel cannot do discarded with dockerd's warning (the response's
//! `Warnings`, which the docker CLI prints), and the defaults dockerd
//! fills in written into the request, so `inspect` shows them. What the
//! host must be asked (devices, log options, device requests) is checked
//! here too, so a container that was created can start.
//!
//! `containers::fields` says, field by field, where each setting is
//! applied; this module is where the refusals are.

use std::path::{Path, PathBuf};

use cais_api::{ContainerConfig, CreateRequest, HostConfig};

use crate::devices;
use crate::error::{Error, Result};
use crate::logfile;
use crate::spec;

/// The name of the one runtime containers run with (`Runtime`).
pub const DEFAULT_RUNTIME: &str = "cais";
/// `/dev/shm`'s size when the request gives none (64 MiB, dockerd's).
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;
/// The smallest memory limit or reservation dockerd takes.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// dockerd's `MinimumDuration` for health check durations (1 ms).
const MIN_HEALTH_DURATION: i64 = 1_000_000;

/// What the host's cgroups can do, for dockerd's discard warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kernel {
    pub memory: bool,
    pub swap: bool,
    pub swappiness: bool,
    pub reservation: bool,
    pub kernel_memory: bool,
    pub oom_kill_disable: bool,
    pub pids: bool,
    pub cpu_shares: bool,
    pub cpu_cfs: bool,
    pub cpu_realtime: bool,
    pub cpuset: bool,
    pub blkio_weight: bool,
    pub blkio_weight_device: bool,
    pub blkio_throttle: bool,
    pub cgroup_namespaces: bool,
    /// Online CPUs (`cpuset.cpus` of the root), e.g. "0-1".
    pub cpus: String,
    /// Memory nodes (`cpuset.mems` of the root).
    pub mems: String,
}

impl Kernel {
    /// Reads what the mounted hierarchies offer: a v1 controller's file at
    /// its root, or a v2 controller the root lists and its file.
    pub fn detect() -> Kernel {
        let Ok(layout) = cais_cgroups::Layout::detect() else {
            return Kernel::default();
        };
        let v1 = |controller: &str, file: &str| {
            layout
                .v1_controllers()
                .and_then(|c| c.get(controller))
                .is_some_and(|root| root.join(file).exists())
        };
        let v1_mounted = |controller: &str| {
            layout
                .v1_controllers()
                .is_some_and(|c| c.contains_key(controller))
        };
        let v2_controllers: Vec<String> = layout
            .unified()
            .and_then(|root| std::fs::read_to_string(root.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        // A controller on v1 is not on v2 (the hybrid rule of the cgroups
        // crate); on v2 its files exist in every child, not at the root.
        let v2 = |controller: &str, v1_name: &str| {
            !v1_mounted(v1_name) && v2_controllers.iter().any(|c| c == controller)
        };
        let read_root = |controller: &str, v1_file: &str, v2_file: &str| -> String {
            let path = match layout.v1_controllers().and_then(|c| c.get(controller)) {
                Some(root) => root.join(v1_file),
                None => match layout.unified() {
                    Some(root) => root.join(v2_file),
                    None => return String::new(),
                },
            };
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut cpus = read_root("cpuset", "cpuset.cpus", "cpuset.cpus.effective");
        if cpus.is_empty() {
            cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
        }
        let mut mems = read_root("cpuset", "cpuset.mems", "cpuset.mems.effective");
        if mems.is_empty() {
            mems = "0".into();
        }
        Kernel {
            memory: v1("memory", "memory.limit_in_bytes") || v2("memory", "memory"),
            swap: v1("memory", "memory.memsw.limit_in_bytes") || v2("memory", "memory"),
            swappiness: v1("memory", "memory.swappiness"),
            reservation: v1("memory", "memory.soft_limit_in_bytes") || v2("memory", "memory"),
            kernel_memory: v1("memory", "memory.kmem.limit_in_bytes"),
            oom_kill_disable: v1("memory", "memory.oom_control"),
            pids: v1("pids", "pids.max") || v1_mounted("pids") || v2("pids", "pids"),
            cpu_shares: v1("cpu", "cpu.shares") || v2("cpu", "cpu"),
            cpu_cfs: v1("cpu", "cpu.cfs_quota_us") || v2("cpu", "cpu"),
            cpu_realtime: v1("cpu", "cpu.rt_runtime_us"),
            cpuset: v1_mounted("cpuset") || v2("cpuset", "cpuset"),
            blkio_weight: v1("blkio", "blkio.weight")
                || v1("blkio", "blkio.bfq.weight")
                || v2("io", "blkio"),
            blkio_weight_device: v1("blkio", "blkio.weight_device")
                || v1("blkio", "blkio.bfq.weight_device")
                || v2("io", "blkio"),
            blkio_throttle: v1("blkio", "blkio.throttle.read_bps_device") || v2("io", "blkio"),
            cgroup_namespaces: Path::new("/proc/self/ns/cgroup").exists(),
            cpus,
            mems,
        }
    }
}

/// What a create check needs from the engine.
pub struct Context<'a> {
    pub kernel: &'a Kernel,
    /// Container name or id prefix → id ("No such container" when none).
    pub resolve: &'a dyn Fn(&str) -> Result<String>,
    /// The daemon's CDI spec directories.
    pub cdi_dirs: &'a [PathBuf],
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

/// Checks a create request, fills in dockerd's defaults and resolves the
/// containers it names to ids; returns the warnings.
pub fn check_create(req: &mut CreateRequest, ctx: &Context<'_>) -> Result<Vec<String>> {
    check_config(&mut req.config)?;
    let h = &mut req.host_config;
    let mut warnings = check_host_config(h, &req.config)?;
    warnings.extend(check_resources(h, ctx.kernel, false)?);
    check_platform(h, &req.config, ctx, &mut warnings)?;
    Ok(warnings)
}

/// `Config`: the working directory, the stop signal, the environment and
/// the health check.
fn check_config(c: &mut ContainerConfig) -> Result<()> {
    if !c.working_dir.is_empty() {
        if !c.working_dir.starts_with('/') {
            return Err(invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                c.working_dir
            )));
        }
        c.working_dir = clean_path(&c.working_dir);
    }
    if let Some(sig) = c.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        cais_runtime::signal::parse(sig).map_err(|_| invalid(format!("Invalid signal: {sig}")))?;
    }
    for e in &c.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(invalid(format!("invalid environment variable: {e}")));
        }
    }
    if let Some(h) = &c.healthcheck {
        for (name, v) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
        ] {
            if v != 0 && v < MIN_HEALTH_DURATION {
                return Err(invalid(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if h.retries < 0 {
            return Err(invalid("Retries in Healthcheck cannot be negative"));
        }
    }
    Ok(())
}

/// `/a//b/../c/` as `/a/c`.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// What dockerd checks of every host config: the restart policy,
/// capabilities, isolation, annotations.
fn check_host_config(h: &mut HostConfig, c: &ContainerConfig) -> Result<Vec<String>> {
    check_restart_policy(&h.restart_policy)?;
    if h.auto_remove && !matches!(h.restart_policy.name.as_str(), "" | "no") {
        return Err(invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    for (what, list) in [("CapAdd", &h.cap_add), ("CapDrop", &h.cap_drop)] {
        for cap in list {
            if cap.eq_ignore_ascii_case("all") {
                continue;
            }
            let name = normalize_cap(cap);
            if !spec::ALL_CAPS.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "invalid {what}: unknown capability: {name:?}"
                )));
            }
        }
    }
    if !matches!(h.isolation.to_ascii_lowercase().as_str(), "" | "default") {
        return Err(invalid(format!(
            "invalid isolation '{}' on linux",
            h.isolation
        )));
    }
    if h.annotations.contains_key("") {
        return Err(invalid(
            "invalid Annotations: the empty string is not permitted as an annotation key",
        ));
    }
    // Checked with a stand-in gateway: `host-gateway` is resolved at start.
    crate::networks::netconf::hosts_file(
        "check",
        None,
        &[],
        &h.extra_hosts,
        Some(std::net::Ipv4Addr::LOCALHOST),
    )?;
    let _ = c;
    Ok(Vec::new())
}

fn normalize_cap(cap: &str) -> String {
    let c = cap.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// dockerd's restart policy rules (an empty name takes any count, as
/// daemons before 25.0 wrote it).
pub fn check_restart_policy(p: &cais_api::RestartPolicy) -> Result<()> {
    match p.name.as_str() {
        "always" | "unless-stopped" | "no" => {
            if p.maximum_retry_count != 0 {
                let mut msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                if p.maximum_retry_count < 0 {
                    msg.push_str(" and cannot be negative");
                }
                return Err(invalid(msg));
            }
            Ok(())
        }
        "on-failure" if p.maximum_retry_count < 0 => Err(invalid(
            "invalid restart policy: maximum retry count cannot be negative",
        )),
        "on-failure" | "" => Ok(()),
        other => Err(invalid(format!(
            "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

/// The resources, in dockerd's order: memory, CPU, cpuset, block IO.
/// What the kernel cannot do is dropped with dockerd's warning.
pub fn check_resources(h: &mut HostConfig, k: &Kernel, update: bool) -> Result<Vec<String>> {
    let mut w = Vec::new();
    // A swappiness of -1 is "unset".
    if h.memory_swappiness == Some(-1) {
        h.memory_swappiness = None;
    }
    if h.memory != 0 && h.memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if h.memory > 0 && !k.memory {
        w.push("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        h.memory = 0;
        h.memory_swap = -1;
    }
    if h.memory > 0 && h.memory_swap != -1 && !k.swap {
        w.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        h.memory_swap = -1;
    }
    if h.memory > 0 && h.memory_swap > 0 && h.memory_swap < h.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if h.memory == 0 && h.memory_swap > 0 && !update {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if h.memory_swappiness.is_some() && !k.swappiness {
        w.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into());
        h.memory_swappiness = None;
    }
    if let Some(s) = h.memory_swappiness {
        if !(0..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if h.memory_reservation > 0 && !k.reservation {
        w.push("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        h.memory_reservation = 0;
    }
    if h.memory_reservation > 0 && h.memory_reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if h.memory > 0 && h.memory_reservation > 0 && h.memory < h.memory_reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if h.kernel_memory > 0 {
        if !k.kernel_memory {
            w.push("Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
            h.kernel_memory = 0;
        }
        if h.kernel_memory > 0 && h.kernel_memory < MIN_MEMORY {
            return Err(invalid("Minimum kernel memory limit allowed is 6MB"));
        }
    }
    if h.oom_kill_disable.is_some() && !k.oom_kill_disable {
        if h.oom_kill_disable == Some(true) {
            w.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".into());
        }
        h.oom_kill_disable = None;
    }
    if h.oom_kill_disable == Some(true) && h.memory == 0 {
        w.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
    }
    if h.pids_limit.is_some() && !k.pids {
        if h.pids_limit.is_some_and(|p| p > 0) {
            w.push("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.".into());
        }
        h.pids_limit = None;
    }
    if h.nano_cpus > 0 && h.cpu_period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if h.nano_cpus > 0 && h.cpu_quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if h.nano_cpus > 0 && !k.cpu_cfs {
        return Err(invalid("NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"));
    }
    if h.nano_cpus != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if h.nano_cpus < 0 || h.nano_cpus > n * 1_000_000_000 {
            return Err(invalid(format!(
                "range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
            )));
        }
    }
    if h.cpu_shares > 0 && !k.cpu_shares {
        w.push("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.".into());
        h.cpu_shares = 0;
    }
    if (h.cpu_period != 0 || h.cpu_quota != 0) && !k.cpu_cfs {
        w.push(
            "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.".into(),
        );
        h.cpu_period = 0;
        h.cpu_quota = 0;
    }
    if h.cpu_period != 0 && !(1000..=1_000_000).contains(&h.cpu_period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if h.cpu_quota > 0 && h.cpu_quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if h.cpu_percent > 0 {
        w.push("linux does not support CPU percent. Percent discarded.".into());
        h.cpu_percent = 0;
    }
    if (h.cpu_realtime_period != 0 || h.cpu_realtime_runtime != 0) && !k.cpu_realtime {
        return Err(invalid(
            "CPU real-time limits need the cgroup v1 cpu controller with cpu.rt_runtime_us (CONFIG_RT_GROUP_SCHED): this host has none",
        ));
    }
    if h.cpu_realtime_period != 0
        && h.cpu_realtime_runtime != 0
        && h.cpu_realtime_runtime > h.cpu_realtime_period
    {
        return Err(invalid(
            "cpu-rt-runtime can not be greater than cpu-rt-period",
        ));
    }
    if (!h.cpuset_cpus.is_empty() || !h.cpuset_mems.is_empty()) && !k.cpuset {
        w.push(
            "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded."
                .into(),
        );
        h.cpuset_cpus.clear();
        h.cpuset_mems.clear();
    }
    for (value, available, what, words) in [
        (&h.cpuset_cpus, &k.cpus, "cpus", "CPUs"),
        (&h.cpuset_mems, &k.mems, "mems", "memory nodes"),
    ] {
        if value.is_empty() {
            continue;
        }
        let asked = parse_cpuset(value)
            .map_err(|e| invalid(format!("Invalid value {value} for cpuset {what}: {e}")))?;
        let have = parse_cpuset(available).unwrap_or_default();
        if asked.iter().any(|c| !have.contains(c)) {
            return Err(invalid(format!(
                "Requested {words} are not available - requested {value}, available: {available}"
            )));
        }
    }
    if h.blkio_weight > 0 && !k.blkio_weight {
        w.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        h.blkio_weight = 0;
    }
    if h.blkio_weight > 0 && !(10..=1000).contains(&h.blkio_weight) {
        return Err(invalid("Range of blkio weight is from 10 to 1000"));
    }
    if h.io_maximum_bandwidth != 0 || h.io_maximum_iops != 0 {
        return Err(invalid(
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps",
        ));
    }
    if !h.blkio_weight_device.is_empty() && !k.blkio_weight_device {
        w.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
        h.blkio_weight_device.clear();
    }
    for (list, what) in [
        (&mut h.blkio_device_read_bps, "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded."),
        (&mut h.blkio_device_write_bps, "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded."),
        (&mut h.blkio_device_read_iops, "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded."),
        (&mut h.blkio_device_write_iops, "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded."),
    ] {
        if !list.is_empty() && !k.blkio_throttle {
            w.push(what.into());
            list.clear();
        }
    }
    for d in &h.blkio_weight_device {
        if !(10..=1000).contains(&d.weight) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    // Block devices named by path must be there (read again at start).
    spec::resources(h).map_err(invalid)?;
    Ok(w)
}

/// `0-2,4` as the CPUs (or nodes) it names.
fn parse_cpuset(s: &str) -> std::result::Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("invalid format: {s}");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// The namespace modes, runtime, logging, devices, limits, sysctls,
/// security options and the rest that is Linux's; defaults filled in.
fn check_platform(
    h: &mut HostConfig,
    c: &ContainerConfig,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    // Namespace modes; another container's is kept by id, so a rename
    // does not break the sharing.
    if !valid_mode(&h.ipc_mode, &["", "none", "private", "shareable", "host"]) {
        return Err(invalid(format!("invalid IPC mode: {}", h.ipc_mode)));
    }
    if !valid_mode(&h.pid_mode, &["", "host"]) {
        return Err(invalid(format!("invalid PID mode: {}", h.pid_mode)));
    }
    if h.shm_size < 0 {
        return Err(invalid("SHM size can not be less than 0"));
    }
    if !matches!(h.uts_mode.as_str(), "" | "host") {
        return Err(invalid(format!("invalid UTS mode: {}", h.uts_mode)));
    }
    if h.uts_mode == "host" && !c.hostname.is_empty() {
        return Err(invalid("conflicting options: hostname and the UTS mode"));
    }
    if !(-1000..=1000).contains(&h.oom_score_adj) {
        return Err(invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            h.oom_score_adj
        )));
    }
    if h.network_mode == "host" && !h.port_bindings.is_empty() {
        warnings.push("Published ports are discarded when using host network mode".into());
    }
    if !matches!(h.cgroupns_mode.as_str(), "" | "private" | "host") {
        return Err(invalid(format!(
            "invalid cgroup namespace mode: {}",
            h.cgroupns_mode
        )));
    }
    if h.cgroupns_mode == "private" && !ctx.kernel.cgroup_namespaces {
        warnings.push(
            "Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded."
                .into(),
        );
    }
    // No user namespace remapping is configured, so "private" is the
    // host's, as with a dockerd that has none.
    if !matches!(h.userns_mode.as_str(), "" | "host" | "private") {
        return Err(invalid(format!(
            "invalid user namespace mode: {} (cais remaps no user namespaces: use \"\" or \"host\")",
            h.userns_mode
        )));
    }
    if !h.cgroup.is_empty() {
        return Err(invalid(format!(
            "Cgroup {:?} is not supported: cais shares no cgroup with another container (use CgroupnsMode and CgroupParent)",
            h.cgroup
        )));
    }
    if !h.cgroup_parent.is_empty() {
        cgroup_path(&h.cgroup_parent, "check").map_err(invalid)?;
    }
    for mode in [&mut h.pid_mode, &mut h.ipc_mode] {
        if let Some(name) = mode.strip_prefix("container:") {
            let id = (ctx.resolve)(name).map_err(not_found_is_invalid)?;
            *mode = format!("container:{id}");
        }
    }
    for from in &mut h.volumes_from {
        let (name, m) = match from.rsplit_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (from.as_str(), None),
        };
        if let Some(m) = m {
            if !m.split(',').all(|o| matches!(o, "ro" | "rw" | "z" | "Z")) {
                return Err(invalid(format!("invalid mode for volumes-from: {m}")));
            }
        }
        (ctx.resolve)(name).map_err(not_found_is_invalid)?;
    }
    if !matches!(h.runtime.as_str(), "" | DEFAULT_RUNTIME) {
        return Err(invalid(format!(
            "unknown or invalid runtime name: {}",
            h.runtime
        )));
    }
    logfile::Options::parse(&h.log_config.kind, &h.log_config.config).map_err(invalid)?;
    if !h.storage_opt.is_empty() {
        return Err(invalid(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
        ));
    }
    for d in &h.devices {
        devices::host_device(d).map_err(invalid)?;
    }
    for r in &h.device_cgroup_rules {
        devices::cgroup_rule(r).map_err(invalid)?;
    }
    for r in &h.device_requests {
        devices::request(r, ctx.cdi_dirs).map_err(invalid)?;
    }
    spec::rlimits(&h.ulimits).map_err(invalid)?;
    check_sysctls(h)?;
    check_security_opts(&h.security_opt)?;
    for dest in h.tmpfs.keys() {
        if !dest.starts_with('/') {
            return Err(invalid(format!(
                "invalid mount config for type \"tmpfs\": invalid mount path: '{dest}' mount path must be absolute"
            )));
        }
        if clean_path(dest) == "/" {
            return Err(invalid("invalid specification: destination can't be '/'"));
        }
    }
    // dockerd's defaults, as inspect shows them.
    if h.ipc_mode.is_empty() {
        h.ipc_mode = "private".into();
    }
    if h.cgroupns_mode.is_empty() {
        h.cgroupns_mode = "private".into();
    }
    if h.shm_size == 0 {
        h.shm_size = DEFAULT_SHM_SIZE;
    }
    if h.log_config.kind.is_empty() {
        h.log_config.kind = "json-file".into();
    }
    if h.runtime.is_empty() {
        h.runtime = DEFAULT_RUNTIME.into();
    }
    Ok(())
}

/// The docker CLI answers a 404 from create by pulling the image, which
/// would hide that the request named a container that is not there.
fn not_found_is_invalid(e: Error) -> Error {
    match e {
        Error::NotFound { .. } => Error::InvalidArgument(e.message()),
        other => other,
    }
}

fn valid_mode(mode: &str, words: &[&str]) -> bool {
    words.contains(&mode)
        || mode
            .strip_prefix("container:")
            .is_some_and(|c| !c.is_empty())
}

/// The container's cgroup, under `parent` (`CgroupParent`) or `/cais`.
pub fn cgroup_path(parent: &str, id: &str) -> std::result::Result<String, String> {
    if parent.is_empty() {
        return Ok(format!("/cais/{id}"));
    }
    if parent.contains(':') || parent.split('/').any(|p| p == "..") {
        return Err(format!(
            "invalid cgroup parent {parent:?}: a path of cgroups (cais manages cgroups itself, not through systemd)"
        ));
    }
    Ok(format!("/{}/{id}", parent.trim_matches('/')))
}

/// Sysctls the container's own namespaces hold: IPC ones with an IPC
/// namespace of its own, `net.*` with a network namespace of its own;
/// others would change the host's, and are refused (the runtime's words).
fn check_sysctls(h: &HostConfig) -> Result<()> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    for key in h.sysctls.keys() {
        if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            if h.ipc_mode == "host" {
                return Err(invalid(format!(
                    "sysctl {key:?} is not allowed in the hosts ipc namespace"
                )));
            }
        } else if key.starts_with("net.") {
            if h.network_mode == "host" {
                return Err(invalid(format!(
                    "sysctl {key:?} not allowed in host network namespace"
                )));
            }
            if h.network_mode.starts_with("container:") {
                return Err(invalid(format!(
                    "sysctl {key:?} is not allowed in a network namespace of another container"
                )));
            }
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            let field = key.trim_start_matches("kernel.");
            return Err(invalid(format!(
                "sysctl {key:?} is not allowed as it conflicts with the OCI {field:?} field"
            )));
        } else {
            return Err(invalid(format!(
                "sysctl {key:?} is not in a separate kernel namespace"
            )));
        }
        if !Path::new("/proc/sys").join(key.replace('.', "/")).exists() {
            return Err(invalid(format!(
                "sysctl {key:?} does not exist on this kernel"
            )));
        }
    }
    Ok(())
}

/// `SecurityOpt`: seccomp, no-new-privileges and writable-cgroups are
/// applied; AppArmor and SELinux labels are accepted only where the host
/// has neither (as dockerd ignores them there), since cais applies none.
fn check_security_opts(opts: &[String]) -> Result<()> {
    for opt in opts {
        if matches!(opt.as_str(), "no-new-privileges" | "writable-cgroups") {
            continue;
        }
        if opt == "disable" {
            check_no_lsm("label", opt)?;
            continue;
        }
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .ok_or_else(|| invalid(format!("invalid --security-opt 1: {opt:?}")))?;
        match k {
            "seccomp" => {}
            "no-new-privileges" | "writable-cgroups" => {
                if !matches!(
                    v,
                    "1" | "t"
                        | "T"
                        | "TRUE"
                        | "true"
                        | "True"
                        | "0"
                        | "f"
                        | "F"
                        | "FALSE"
                        | "false"
                        | "False"
                ) {
                    return Err(invalid(format!("invalid --security-opt 2: {opt:?}")));
                }
            }
            "label" => check_no_lsm("label", opt)?,
            "apparmor" => check_no_lsm("apparmor", opt)?,
            _ => return Err(invalid(format!("invalid --security-opt 2: {opt:?}"))),
        }
    }
    Ok(())
}

fn check_no_lsm(kind: &str, opt: &str) -> Result<()> {
    let enabled = match kind {
        "apparmor" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y"),
        _ => std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok(),
    };
    if enabled {
        return Err(invalid(format!(
            "security option {opt:?} is not supported: cais applies no {kind} profiles"
        )));
    }
    Ok(())
}

/// Whether a bool-valued security option is set (`no-new-privileges`,
/// `no-new-privileges=true`, `writable-cgroups:1`...).
pub fn security_flag(opts: &[String], name: &str) -> bool {
    opts.iter().any(|o| {
        o == name
            || o.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')))
                .is_some_and(|v| matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True"))
    })
}

/// Checks an update as dockerd's update does, against the container's
/// current settings; fields an update cannot change are refused rather
/// than dropped. Returns the new host config and the warnings.
pub fn check_update(
    current: &HostConfig,
    u: &cais_api::ContainerUpdate,
    k: &Kernel,
) -> Result<(HostConfig, Vec<String>)> {
    let fixed: [(&str, bool); 13] = [
        ("Devices", !u.devices.is_empty()),
        ("DeviceCgroupRules", !u.device_cgroup_rules.is_empty()),
        ("DeviceRequests", !u.device_requests.is_empty()),
        ("Ulimits", !u.ulimits.is_empty()),
        ("OomKillDisable", u.oom_kill_disable.is_some()),
        (
            "MemorySwappiness",
            u.memory_swappiness.is_some_and(|s| s != -1),
        ),
        ("BlkioWeightDevice", !u.blkio_weight_device.is_empty()),
        ("BlkioDeviceReadBps", !u.blkio_device_read_bps.is_empty()),
        ("BlkioDeviceWriteBps", !u.blkio_device_write_bps.is_empty()),
        ("BlkioDeviceReadIOps", !u.blkio_device_read_iops.is_empty()),
        (
            "BlkioDeviceWriteIOps",
            !u.blkio_device_write_iops.is_empty(),
        ),
        ("CgroupParent", !u.cgroup_parent.is_empty()),
        ("KernelMemoryTCP", u.kernel_memory_tcp != 0),
    ];
    if let Some((name, _)) = fixed.iter().find(|(_, set)| *set) {
        return Err(invalid(format!(
            "{name} cannot be updated: it is set when the container is created"
        )));
    }
    if u.init.is_some() {
        return Err(invalid(
            "Init cannot be updated: it is set when the container is created",
        ));
    }
    // The update's own resources checked first, as dockerd does.
    let mut asked: HostConfig =
        serde_json::from_value(serde_json::to_value(u).map_err(|source| Error::Json {
            what: "an update".into(),
            source,
        })?)
        .map_err(|source| Error::Json {
            what: "an update".into(),
            source,
        })?;
    let warnings = check_resources(&mut asked, k, true)?;
    let conflict = |m: &str| Err(Error::Conflict(m.to_string()));
    let cur = current;
    if asked.nano_cpus > 0 && cur.cpu_period > 0 {
        return conflict(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        );
    }
    if asked.nano_cpus > 0 && cur.cpu_quota > 0 {
        return conflict(
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
        );
    }
    if asked.cpu_period > 0 && cur.nano_cpus > 0 {
        return conflict(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        );
    }
    if asked.cpu_quota > 0 && cur.nano_cpus > 0 {
        return conflict(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        );
    }
    let mut h = current.clone();
    if asked.blkio_weight != 0 {
        h.blkio_weight = asked.blkio_weight;
    }
    if asked.cpu_shares != 0 {
        h.cpu_shares = asked.cpu_shares;
    }
    if asked.nano_cpus != 0 {
        h.nano_cpus = asked.nano_cpus;
    }
    if asked.cpu_period != 0 {
        h.cpu_period = asked.cpu_period;
    }
    if asked.cpu_quota != 0 {
        h.cpu_quota = asked.cpu_quota;
    }
    if !asked.cpuset_cpus.is_empty() {
        h.cpuset_cpus = asked.cpuset_cpus.clone();
    }
    if !asked.cpuset_mems.is_empty() {
        h.cpuset_mems = asked.cpuset_mems.clone();
    }
    if asked.memory != 0 {
        if asked.memory > h.memory_swap && asked.memory_swap == 0 && h.memory_swap > 0 {
            return conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
        }
        h.memory = asked.memory;
    }
    if asked.memory_swap != 0 {
        h.memory_swap = asked.memory_swap;
    }
    if asked.memory_reservation != 0 {
        h.memory_reservation = asked.memory_reservation;
    }
    if asked.kernel_memory != 0 {
        h.kernel_memory = asked.kernel_memory;
    }
    if asked.cpu_realtime_period != 0 {
        h.cpu_realtime_period = asked.cpu_realtime_period;
    }
    if asked.cpu_realtime_runtime != 0 {
        h.cpu_realtime_runtime = asked.cpu_realtime_runtime;
    }
    if asked.pids_limit.is_some() {
        h.pids_limit = asked.pids_limit;
    }
    if !u.restart_policy.name.is_empty() {
        check_restart_policy(&u.restart_policy)?;
        if h.auto_remove && !matches!(u.restart_policy.name.as_str(), "no") {
            return conflict(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            );
        }
        h.restart_policy = u.restart_policy.clone();
    }
    // The result must hold together too (memory against swap...).
    check_resources(&mut h.clone(), k, true)?;
    Ok((h, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Kernel {
        Kernel {
            memory: true,
            swap: true,
            swappiness: true,
            reservation: true,
            kernel_memory: true,
            oom_kill_disable: true,
            pids: true,
            cpu_shares: true,
            cpu_cfs: true,
            cpu_realtime: true,
            cpuset: true,
            blkio_weight: true,
            blkio_weight_device: true,
            blkio_throttle: true,
            cgroup_namespaces: true,
            cpus: "0-1".into(),
            mems: "0".into(),
        }
    }

    fn no_containers(name: &str) -> Result<String> {
        Err(Error::not_found(crate::error::Kind::Container, name))
    }

    fn create(req: serde_json::Value, k: &Kernel) -> Result<(CreateRequest, Vec<String>)> {
        let mut req: CreateRequest = serde_json::from_value(req).expect("a request");
        let ctx = Context {
            kernel: k,
            resolve: &|n: &str| {
                if n == "web" {
                    Ok("0123abcd".into())
                } else {
                    no_containers(n)
                }
            },
            cdi_dirs: &[],
        };
        let w = check_create(&mut req, &ctx)?;
        Ok((req, w))
    }

    fn refused(req: serde_json::Value) -> String {
        create(req, &all()).expect_err("refused").message()
    }

    #[test]
    fn refusals_are_in_dockerds_words() {
        use serde_json::json;
        let cases = [
            (json!({"WorkingDir": "rel"}), "the working directory 'rel' is invalid, it needs to be an absolute path"),
            (json!({"StopSignal": "SIGNOPE"}), "Invalid signal: SIGNOPE"),
            (json!({"Env": ["=x"]}), "invalid environment variable: =x"),
            (json!({"Healthcheck": {"Interval": 10}}), "Interval in Healthcheck cannot be less than 1ms"),
            (json!({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}), "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
            (json!({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}}), "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
            (json!({"HostConfig": {"CapAdd": ["NOPE"]}}), "invalid CapAdd: unknown capability: \"CAP_NOPE\""),
            (json!({"HostConfig": {"Isolation": "hyperv"}}), "invalid isolation 'hyperv' on linux"),
            (json!({"HostConfig": {"Annotations": {"": "x"}}}), "invalid Annotations: the empty string is not permitted as an annotation key"),
            (json!({"HostConfig": {"Memory": 1024}}), "Minimum memory limit allowed is 6MB"),
            (json!({"HostConfig": {"MemorySwappiness": 101}}), "Invalid value: 101, valid memory swappiness range is 0-100"),
            (json!({"HostConfig": {"CpusetCpus": "0-7"}}), "Requested CPUs are not available - requested 0-7, available: 0-1"),
            (json!({"HostConfig": {"BlkioWeight": 5}}), "Range of blkio weight is from 10 to 1000"),
            (json!({"HostConfig": {"IOMaximumIOps": 5}}), "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"),
            (json!({"HostConfig": {"IpcMode": "shared"}}), "invalid IPC mode: shared"),
            (json!({"HostConfig": {"PidMode": "private"}}), "invalid PID mode: private"),
            (json!({"HostConfig": {"UTSMode": "other"}}), "invalid UTS mode: other"),
            (json!({"Hostname": "h", "HostConfig": {"UTSMode": "host"}}), "conflicting options: hostname and the UTS mode"),
            (json!({"HostConfig": {"OomScoreAdj": 2000}}), "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
            (json!({"HostConfig": {"ShmSize": -1}}), "SHM size can not be less than 0"),
            (json!({"HostConfig": {"CgroupnsMode": "shared"}}), "invalid cgroup namespace mode: shared"),
            (json!({"HostConfig": {"PidMode": "container:nosuch"}}), "No such container: nosuch"),
            (json!({"HostConfig": {"VolumesFrom": ["nosuch:ro"]}}), "No such container: nosuch"),
            (json!({"HostConfig": {"Runtime": "nosuch"}}), "unknown or invalid runtime name: nosuch"),
            (json!({"HostConfig": {"LogConfig": {"Type": "nosuch"}}}), "logger: no log driver named 'nosuch' is registered"),
            (json!({"HostConfig": {"StorageOpt": {"size": "1G"}}}), "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
            (json!({"HostConfig": {"Devices": [{"PathOnHost": "/dev/nosuch"}]}}), "error gathering device information while adding custom device \"/dev/nosuch\": no such file or directory"),
            (json!({"HostConfig": {"DeviceCgroupRules": ["x 1:3 r"]}}), "invalid device cgroup rule format: 'x 1:3 r'"),
            (json!({"HostConfig": {"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}}), "could not select device driver \"\" with capabilities: [[gpu]]"),
            (json!({"HostConfig": {"Ulimits": [{"Name": "nosuch", "Soft": 1, "Hard": 1}]}}), "invalid ulimit type: nosuch"),
            (json!({"HostConfig": {"Sysctls": {"kernel.foo": "1"}}}), "sysctl \"kernel.foo\" is not in a separate kernel namespace"),
            (json!({"HostConfig": {"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}}), "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
            (json!({"HostConfig": {"SecurityOpt": ["foo"]}}), "invalid --security-opt 1: \"foo\""),
            (json!({"HostConfig": {"SecurityOpt": ["foo=bar"]}}), "invalid --security-opt 2: \"foo=bar\""),
            (json!({"HostConfig": {"Tmpfs": {"rel": ""}}}), "invalid mount config for type \"tmpfs\": invalid mount path: 'rel' mount path must be absolute"),
            (json!({"HostConfig": {"ExtraHosts": ["h:notanip"]}}), "invalid IP address in add-host: \"notanip\""),
        ];
        for (req, message) in cases {
            assert_eq!(refused(req.clone()), message, "{req}");
        }
    }

    #[test]
    fn defaults_and_references_are_filled_in() {
        let (req, w) = create(
            serde_json::json!({"HostConfig": {"PidMode": "container:web", "IpcMode": "container:web"}}),
            &all(),
        )
        .expect("ok");
        assert!(w.is_empty(), "{w:?}");
        let h = req.host_config;
        assert_eq!(h.pid_mode, "container:0123abcd", "kept by id");
        assert_eq!(h.ipc_mode, "container:0123abcd");
        assert_eq!(h.shm_size, DEFAULT_SHM_SIZE);
        assert_eq!(h.log_config.kind, "json-file");
        assert_eq!(h.runtime, "cais");
        assert_eq!(h.cgroupns_mode, "private");
        let (req, _) =
            create(serde_json::json!({"WorkingDir": "/a//b/../c/"}), &all()).expect("ok");
        assert_eq!(req.config.working_dir, "/a/c");
    }

    #[test]
    fn what_the_kernel_cannot_do_is_discarded_with_dockerds_warning() {
        let k = Kernel {
            blkio_weight: false,
            swappiness: false,
            ..all()
        };
        let (req, w) = create(
            serde_json::json!({"HostConfig": {"BlkioWeight": 300, "MemorySwappiness": 10, "CpuPercent": 5}}),
            &k,
        )
        .expect("ok");
        assert_eq!(
            w,
            [
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
                "linux does not support CPU percent. Percent discarded.",
                "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
            ]
        );
        assert_eq!(req.host_config.blkio_weight, 0);
        assert_eq!(req.host_config.memory_swappiness, None);
    }

    #[test]
    fn updates_apply_what_dockerd_updates_and_refuse_the_rest() {
        let current = HostConfig {
            memory: 64 << 20,
            nano_cpus: 1_000_000_000,
            ..Default::default()
        };
        let update = |v: serde_json::Value| -> cais_api::ContainerUpdate {
            serde_json::from_value(v).expect("an update")
        };
        let (h, _) = check_update(
            &current,
            &update(serde_json::json!({"Memory": 128 << 20, "MemorySwap": -1, "PidsLimit": 10, "CpuShares": 512, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})),
            &all(),
        )
        .expect("ok");
        assert_eq!(
            (h.memory, h.memory_swap, h.pids_limit, h.cpu_shares),
            (128 << 20, -1, Some(10), 512)
        );
        assert_eq!(h.restart_policy.maximum_retry_count, 3);
        for (body, message) in [
            (
                serde_json::json!({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1}]}),
                "Ulimits cannot be updated: it is set when the container is created",
            ),
            (
                serde_json::json!({"Devices": [{"PathOnHost": "/dev/null"}]}),
                "Devices cannot be updated: it is set when the container is created",
            ),
            (
                serde_json::json!({"CpuQuota": 50000}),
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            ),
            (
                serde_json::json!({"Memory": 1024}),
                "Minimum memory limit allowed is 6MB",
            ),
        ] {
            assert_eq!(
                check_update(&current, &update(body.clone()), &all())
                    .expect_err("refused")
                    .message(),
                message,
                "{body}"
            );
        }
    }

    #[test]
    fn cpusets_parse() {
        assert_eq!(parse_cpuset("0-2,4"), Ok(vec![0, 1, 2, 4]));
        assert!(parse_cpuset("2-1").is_err());
        assert!(parse_cpuset("a").is_err());
    }

    #[test]
    fn cgroup_parents_are_paths() {
        assert_eq!(cgroup_path("", "abc"), Ok("/cais/abc".into()));
        assert_eq!(cgroup_path("/mine/", "abc"), Ok("/mine/abc".into()));
        assert_eq!(cgroup_path("mine", "abc"), Ok("/mine/abc".into()));
        assert!(cgroup_path("../up", "abc").is_err());
        assert!(cgroup_path("system.slice:x", "abc").is_err());
    }

    #[test]
    fn security_flags_read_bools() {
        let opts = [
            "no-new-privileges=true".to_string(),
            "writable-cgroups:0".to_string(),
        ];
        assert!(security_flag(&opts, "no-new-privileges"));
        assert!(!security_flag(&opts, "writable-cgroups"));
        assert!(security_flag(
            &["writable-cgroups".to_string()],
            "writable-cgroups"
        ));
    }
}
