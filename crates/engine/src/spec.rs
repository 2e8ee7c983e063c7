//! The OCI runtime config for an engine container: the image's defaults,
//! overridden by the container's config, plus Docker's default security
//! profile (capabilities, seccomp, masked paths) and the host config's
//! resources (cgroup limits, block IO devices, device rules), namespaces
//! (own, the host's or another container's), limits (`rlimits`), sysctls,
//! devices, annotations and mounts.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cais_api::{ContainerConfig, HostConfig, ThrottleDevice, Ulimit};
use serde_json::{json, Value};

pub use cais_runtime::bundle::{resolve_user, DEFAULT_CAPS};

/// Every capability a privileged container gets.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths Docker hides from unprivileged containers.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel/security",
];

pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default seccomp profile: defined with the runtime, so builds
/// (`cais_build`) apply the same one to `RUN`.
pub use cais_runtime::bundle::{default_seccomp, DENIED_SYSCALLS};

/// What a container's devices add to its spec (see `devices`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeviceEdits {
    /// `linux.devices` entries (nodes created in the container's /dev).
    pub nodes: Vec<Value>,
    /// `linux.resources.devices` rules (what the cgroup allows).
    pub rules: Vec<Value>,
    /// `KEY=VALUE` for the process.
    pub env: Vec<String>,
    pub mounts: Vec<MountSpec>,
    /// Hook kind (`prestart`, `createRuntime`...) → OCI hooks.
    pub hooks: BTreeMap<String, Vec<Value>>,
    pub gids: Vec<u32>,
}

impl DeviceEdits {
    pub fn extend(&mut self, other: DeviceEdits) {
        self.nodes.extend(other.nodes);
        self.rules.extend(other.rules);
        self.env.extend(other.env);
        self.mounts.extend(other.mounts);
        for (k, v) in other.hooks {
            self.hooks.entry(k).or_default().extend(v);
        }
        self.gids.extend(other.gids);
    }
}

/// A mount the engine resolved (volume, bind, tmpfs, /etc files).
#[derive(Debug, Clone, PartialEq)]
pub struct MountSpec {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// A namespace of the container: a new one, the host's, or one to join.
#[derive(Debug, Clone, PartialEq)]
pub enum Ns {
    Own,
    Host,
    Join(PathBuf),
}

/// The container's namespaces, as its modes resolved them at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespaces {
    pub net: Ns,
    pub pid: Ns,
    pub ipc: Ns,
    /// `Own` or `Host`.
    pub uts: Ns,
    /// `Own` or `Host`.
    pub cgroup: Ns,
}

/// What the container's /dev/shm is.
#[derive(Debug, Clone, PartialEq)]
pub enum Shm {
    /// A tmpfs of its own of this size (the private IPC mode).
    Private(i64),
    /// A directory bound in: a shareable container's tmpfs, the one of the
    /// container whose IPC it joins, or the host's /dev/shm.
    Bind(PathBuf),
    /// None (`--ipc none`).
    Absent,
}

/// Everything the spec is made of.
pub struct Input<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub host: &'a HostConfig,
    pub rootfs: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub mounts: Vec<MountSpec>,
    /// A custom seccomp profile (`--security-opt seccomp=FILE`), already parsed.
    pub seccomp_profile: Option<Value>,
    pub namespaces: Namespaces,
    pub shm: Shm,
    /// Host devices, device requests and rules.
    pub devices: &'a DeviceEdits,
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
}

/// Merges the image's config with the container's (docker's rules):
/// returns (args, env, cwd).
pub fn merge(
    image: &ContainerConfig,
    config: &ContainerConfig,
) -> (Vec<String>, Vec<String>, String) {
    // `--entrypoint ""` arrives as `[""]`: it clears the image's
    // entrypoint, as in docker.
    let entrypoint = config
        .entrypoint
        .clone()
        .or_else(|| image.entrypoint.clone())
        .unwrap_or_default();
    let entrypoint = if entrypoint.len() == 1 && entrypoint[0].is_empty() {
        Vec::new()
    } else {
        entrypoint
    };
    // A new entrypoint drops the image's cmd unless cmd is given too.
    let cmd = match (&config.cmd, &config.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone().unwrap_or_default(),
    };
    let mut args = entrypoint;
    args.extend(cmd);
    // The container's variables first, then the image's it does not name
    // (a bare `KEY` names one too, and unsets it at start).
    let key = |kv: &String| {
        kv.split_once('=')
            .map_or(kv.clone(), |(k, _)| k.to_string())
    };
    let mut env = config.env.clone();
    let named: Vec<String> = config.env.iter().map(key).collect();
    env.extend(
        image
            .env
            .iter()
            .filter(|kv| !named.contains(&key(kv)))
            .cloned(),
    );
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else if !image.working_dir.is_empty() {
        image.working_dir.clone()
    } else {
        "/".into()
    };
    (args, env, cwd)
}

/// `--group-add`: numbers as they are, names from the container's
/// /etc/group (read inside its root, symlinks resolved there).
pub fn resolve_groups(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>, String> {
    let mut file = None;
    groups
        .iter()
        .map(|g| {
            if let Ok(n) = g.parse::<u32>() {
                return Ok(n);
            }
            let text: &String = file.get_or_insert_with(|| {
                cais_runtime::rootfs::secure_join(rootfs, Path::new("/etc/group"))
                    .ok()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default()
            });
            text.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("Unable to find group {g}: no matching entries in group file")
                })
        })
        .collect()
}

/// The default `PATH` of a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process's environment: `PATH` (the default), `HOSTNAME` and, with
/// a terminal, `TERM=xterm`, the legacy links' variables, then the
/// container's replacing or adding to them; a bare `KEY` unsets it.
pub fn process_env(
    config_env: &[String],
    hostname: &str,
    tty: bool,
    links: &[String],
) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    env.extend(links.iter().cloned());
    apply_env(&mut env, config_env);
    env
}

/// `KEY=VALUE` entries replace a variable in place or are added; a bare
/// `KEY` unsets it.
pub fn apply_env(env: &mut Vec<String>, changes: &[String]) {
    for kv in changes {
        match kv.split_once('=') {
            Some((k, _)) => match env.iter().position(|e| e.split('=').next() == Some(k)) {
                Some(i) => env[i] = kv.clone(),
                None => env.push(kv.clone()),
            },
            None => env.retain(|e| e.split('=').next() != Some(kv.as_str())),
        }
    }
}

/// "Every capability": those of `ALL_CAPS` (listed in capability number
/// order) that this daemon holds in its bounding set, since no process
/// can give more than it has (capabilities(7)); a host that keeps one
/// from root (CAP_SYS_RESOURCE on some VMs) gives privileged containers
/// the rest.
pub fn all_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(n, _)| bounding & (1u64 << n) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

fn caps(host: &HostConfig) -> Vec<String> {
    if host.privileged {
        return all_caps();
    }
    let norm = |c: &String| {
        let c = c.to_ascii_uppercase();
        if c.starts_with("CAP_") {
            c
        } else {
            format!("CAP_{c}")
        }
    };
    let mut set: Vec<String> = if host.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("all")) {
        Vec::new()
    } else {
        let drop: Vec<String> = host.cap_drop.iter().map(norm).collect();
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if host.cap_add.iter().any(|c| c.eq_ignore_ascii_case("all")) {
        return all_caps();
    }
    for c in host.cap_add.iter().map(norm) {
        if ALL_CAPS.contains(&c.as_str()) && !set.contains(&c) {
            set.push(c);
        }
    }
    set
}

/// A block device's major and minor numbers, for the block IO limits
/// that name it by path.
fn block_device(path: &str) -> Result<(i64, i64), String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string(),
        };
        format!("stat {path}: {what}")
    })?;
    if !meta.file_type().is_block_device() {
        return Err(format!("{path} is not a block device"));
    }
    let rdev = meta.rdev();
    Ok((
        nix::sys::stat::major(rdev) as i64,
        nix::sys::stat::minor(rdev) as i64,
    ))
}

fn throttle(devices: &[ThrottleDevice]) -> Result<Vec<Value>, String> {
    devices
        .iter()
        .map(|d| {
            let (major, minor) = block_device(&d.path)?;
            Ok(json!({"major": major, "minor": minor, "rate": d.rate}))
        })
        .collect()
}

/// `linux.resources` from the host config: memory, CPU, pids, block IO
/// and the default device rule (everything denied but what the runtime
/// and the container's devices allow). Block devices are named by path,
/// so reading them can fail.
pub fn resources(host: &HostConfig) -> Result<Value, String> {
    let mut r = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if host.privileged {
        r["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    let mut memory = serde_json::Map::new();
    if host.memory > 0 {
        memory.insert("limit".into(), host.memory.into());
        // Docker: swap unset means as much swap as memory (limit * 2 in all).
        let swap = match host.memory_swap {
            0 => host.memory * 2,
            -1 => -1,
            s => s,
        };
        memory.insert("swap".into(), swap.into());
    }
    if host.memory_reservation > 0 {
        memory.insert("reservation".into(), host.memory_reservation.into());
    }
    if let Some(s) = host.memory_swappiness.filter(|s| *s >= 0) {
        memory.insert("swappiness".into(), s.into());
    }
    if let Some(disable) = host.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), disable.into());
    }
    if host.kernel_memory > 0 {
        memory.insert("kernel".into(), host.kernel_memory.into());
    }
    if host.kernel_memory_tcp > 0 {
        memory.insert("kernelTCP".into(), host.kernel_memory_tcp.into());
    }
    if !memory.is_empty() {
        r["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if host.nano_cpus > 0 {
        let period = 100_000i64;
        cpu.insert("period".into(), period.into());
        cpu.insert(
            "quota".into(),
            (host.nano_cpus * period / 1_000_000_000).into(),
        );
    }
    if host.cpu_quota != 0 {
        cpu.insert("quota".into(), host.cpu_quota.into());
    }
    if host.cpu_period > 0 {
        cpu.insert("period".into(), host.cpu_period.into());
    }
    if host.cpu_shares > 0 {
        cpu.insert("shares".into(), host.cpu_shares.into());
    }
    if host.cpu_realtime_period > 0 {
        cpu.insert("realtimePeriod".into(), host.cpu_realtime_period.into());
    }
    if host.cpu_realtime_runtime != 0 {
        cpu.insert("realtimeRuntime".into(), host.cpu_realtime_runtime.into());
    }
    if !host.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), host.cpuset_cpus.clone().into());
    }
    if !host.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), host.cpuset_mems.clone().into());
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    // Zero or less is unlimited (the kernel's "max").
    if let Some(p) = host.pids_limit {
        r["pids"] = json!({"limit": if p > 0 { p } else { -1 }});
    }
    let mut blkio = serde_json::Map::new();
    if host.blkio_weight > 0 {
        blkio.insert("weight".into(), host.blkio_weight.into());
    }
    if !host.blkio_weight_device.is_empty() {
        let devices = host
            .blkio_weight_device
            .iter()
            .map(|d| {
                let (major, minor) = block_device(&d.path)?;
                Ok(json!({"major": major, "minor": minor, "weight": d.weight}))
            })
            .collect::<Result<Vec<_>, String>>()?;
        blkio.insert("weightDevice".into(), devices.into());
    }
    for (key, devices) in [
        ("throttleReadBpsDevice", &host.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &host.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &host.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &host.blkio_device_write_iops),
    ] {
        if !devices.is_empty() {
            blkio.insert(key.into(), throttle(devices)?.into());
        }
    }
    if !blkio.is_empty() {
        r["blockIO"] = Value::Object(blkio);
    }
    Ok(r)
}

/// `--ulimit` names, as `RLIMIT_` + the name in capitals (setrlimit(2)).
pub const ULIMIT_NAMES: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `process.rlimits` from `--ulimit`s, checked as docker's command line
/// checks them.
pub fn rlimits(ulimits: &[Ulimit]) -> Result<Vec<Value>, String> {
    ulimits
        .iter()
        .map(|u| {
            if !ULIMIT_NAMES.contains(&u.name.as_str()) {
                return Err(format!("invalid ulimit type: {}", u.name));
            }
            if u.soft > u.hard && u.hard >= 0 {
                return Err(format!(
                    "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                    u.soft, u.hard
                ));
            }
            // -1 is unlimited (RLIM_INFINITY).
            let value = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
            Ok(json!({
                "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
                "soft": value(u.soft),
                "hard": value(u.hard),
            }))
        })
        .collect()
}

/// Builds config.json.
pub fn build(input: &Input<'_>) -> Result<Value, String> {
    let host = input.host;
    let caps = caps(host);
    let ns = &input.namespaces;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
    ];
    if ns.net == Ns::Host {
        // The host's sysfs shows the host's interfaces; a new sysfs cannot be
        // mounted without a network namespace of our own.
        mounts.push(json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
    } else {
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}));
    }
    mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}));
    // An mqueue mount shows the queues of the IPC namespace of its mounter
    // (mq_overview(7)): the container's own, or the host's with its IPC.
    mounts.push(json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}));
    match &input.shm {
        Shm::Private(size) => mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]})),
        Shm::Bind(path) => mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": path, "options": ["rbind", "nosuid", "noexec", "nodev"]})),
        Shm::Absent => {}
    }
    for m in input.mounts.iter().chain(&input.devices.mounts) {
        mounts.push(json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": m.options}));
    }
    let mut namespaces = vec![json!({"type": "mount"})];
    for (kind, n) in [
        ("network", &ns.net),
        ("pid", &ns.pid),
        ("ipc", &ns.ipc),
        ("uts", &ns.uts),
        ("cgroup", &ns.cgroup),
    ] {
        match n {
            Ns::Own => namespaces.push(json!({"type": kind})),
            Ns::Join(path) => namespaces.push(json!({"type": kind, "path": path})),
            Ns::Host => {}
        }
    }
    let no_new_privs = host.security_opt.iter().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    });
    let unconfined = host
        .security_opt
        .iter()
        .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined");
    let mut resources = resources(host)?;
    if !host.privileged {
        if let Some(rules) = resources["devices"].as_array_mut() {
            rules.extend(input.devices.rules.iter().cloned());
        }
    }
    let mut gids = input.additional_gids.clone();
    for g in &input.devices.gids {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    let mut env = input.env.clone();
    env.extend(input.devices.env.iter().cloned());
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": input.config.tty,
            "user": {"uid": input.uid, "gid": input.gid, "additionalGids": gids},
            "args": input.args,
            "env": env,
            "cwd": input.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privs,
            "oomScoreAdj": host.oom_score_adj,
            "rlimits": rlimits(&host.ulimits)?,
        },
        "root": {"path": input.rootfs, "readonly": host.readonly_rootfs},
        "mounts": mounts,
        "linux": {
            "resources": resources,
            "cgroupsPath": input.cgroups_path,
            "namespaces": namespaces,
            "devices": input.devices.nodes,
        }
    });
    // The terminal's first size (`ConsoleSize`), set on the pty before the
    // process runs (config.md's `process.consoleSize`): a resize sent to the
    // shim afterwards could come after the process first reads it.
    let [height, width] = host.console_size;
    if input.config.tty && height > 0 && width > 0 {
        spec["process"]["consoleSize"] = json!({
            "height": height.min(u64::from(u16::MAX)),
            "width": width.min(u64::from(u16::MAX)),
        });
    }
    // Without a UTS namespace of its own the container has the host's
    // names, and setting them would change the host's.
    if ns.uts == Ns::Own {
        spec["hostname"] = input.hostname.clone().into();
        if !input.config.domainname.is_empty() {
            spec["domainname"] = input.config.domainname.clone().into();
        }
    }
    if !host.sysctls.is_empty() {
        spec["linux"]["sysctl"] = json!(host.sysctls);
    }
    if !host.annotations.is_empty() {
        spec["annotations"] = json!(host.annotations);
    }
    if !input.devices.hooks.is_empty() {
        spec["hooks"] = json!(input.devices.hooks);
    }
    if !host.privileged {
        spec["linux"]["maskedPaths"] = match &host.masked_paths {
            Some(paths) => json!(paths),
            None => json!(MASKED_PATHS.as_slice()),
        };
        spec["linux"]["readonlyPaths"] = match &host.readonly_paths {
            Some(paths) => json!(paths),
            None => json!(READONLY_PATHS.as_slice()),
        };
        if !unconfined {
            spec["linux"]["seccomp"] = input
                .seccomp_profile
                .clone()
                .unwrap_or_else(default_seccomp);
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        entry: Option<&[&str]>,
        cmd: Option<&[&str]>,
        env: &[&str],
        wd: &str,
    ) -> ContainerConfig {
        ContainerConfig {
            entrypoint: entry.map(|e| e.iter().map(|s| s.to_string()).collect()),
            cmd: cmd.map(|e| e.iter().map(|s| s.to_string()).collect()),
            env: env.iter().map(|s| s.to_string()).collect(),
            working_dir: wd.into(),
            ..Default::default()
        }
    }

    #[test]
    fn image_and_container_configs_merge_like_docker() {
        let image = cfg(
            Some(&["/entry"]),
            Some(&["serve"]),
            &["A=1", "PATH=/bin"],
            "/srv",
        );
        let (args, env, cwd) = merge(&image, &ContainerConfig::default());
        assert_eq!(args, ["/entry", "serve"]);
        assert_eq!(env, ["A=1", "PATH=/bin"]);
        assert_eq!(cwd, "/srv");
        let (args, env, cwd) = merge(&image, &cfg(None, Some(&["other"]), &["A=2", "B=3"], "/w"));
        assert_eq!(args, ["/entry", "other"]);
        assert_eq!(env, ["A=2", "B=3", "PATH=/bin"], "the container's first");
        assert_eq!(cwd, "/w");
        let (args, _, _) = merge(&image, &cfg(Some(&["sh"]), None, &[], ""));
        assert_eq!(args, ["sh"], "a new entrypoint drops the image's cmd");
        let (args, _, _) = merge(&image, &cfg(Some(&[""]), Some(&["sh", "-c", "x"]), &[], ""));
        assert_eq!(args, ["sh", "-c", "x"], "--entrypoint \"\" clears it");
        let (_, env, cwd) = merge(&ContainerConfig::default(), &ContainerConfig::default());
        assert!(
            env.is_empty(),
            "no PATH is made up: the process gets the default"
        );
        assert_eq!(cwd, "/");
        let (_, env, _) = merge(&image, &cfg(None, None, &["PATH", "FOO"], ""));
        assert_eq!(
            env,
            ["PATH", "FOO", "A=1"],
            "a bare name is kept and names the variable"
        );
    }

    #[test]
    fn the_process_environment_is_dockerds() {
        assert_eq!(
            process_env(&["A=1".into()], "h", false, &[]),
            [
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h".into(),
                "A=1".into()
            ]
        );
        assert_eq!(
            process_env(
                &[
                    "PATH=/x".into(),
                    "HOSTNAME".into(),
                    "L=2".into(),
                    "GONE".into()
                ],
                "h",
                true,
                &["L=1".into()]
            ),
            ["PATH=/x", "TERM=xterm", "L=2"],
            "links after the defaults; replaced in place, a bare name unsets"
        );
    }

    #[test]
    fn groups_resolve_by_number_and_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\naudio:x:29:\nstaff:x:50:web\n",
        )
        .expect("group");
        assert_eq!(
            resolve_groups(dir.path(), &["audio".into(), "1234".into(), "staff".into()]),
            Ok(vec![29, 1234, 50])
        );
        assert_eq!(
            resolve_groups(dir.path(), &["nosuch".into()]),
            Err("Unable to find group nosuch: no matching entries in group file".into())
        );
        // A root whose /etc/group points outside is read inside the root.
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(other.path().join("etc")).expect("etc");
        std::os::unix::fs::symlink("/etc/group", other.path().join("etc/group")).expect("link");
        assert!(resolve_groups(other.path(), &["root".into()]).is_err());
    }

    #[test]
    fn ulimits_become_rlimits() {
        let r = rlimits(&[Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }])
        .expect("ok");
        assert_eq!(
            r,
            [json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048})]
        );
        assert_eq!(
            rlimits(&[Ulimit {
                name: "core".into(),
                soft: -1,
                hard: -1
            }])
            .expect("ok")[0]["hard"],
            u64::MAX
        );
        assert_eq!(
            rlimits(&[Ulimit {
                name: "nosuch".into(),
                soft: 1,
                hard: 1
            }]),
            Err("invalid ulimit type: nosuch".into())
        );
        assert_eq!(
            rlimits(&[Ulimit {
                name: "nproc".into(),
                soft: 10,
                hard: 5
            }]),
            Err("ulimit soft limit must be less than or equal to hard limit: 10 > 5".into())
        );
        for name in ULIMIT_NAMES {
            let r = rlimits(&[Ulimit {
                name: name.into(),
                soft: 1,
                hard: 1,
            }])
            .expect(name);
            let parsed: oci_spec::runtime::PosixRlimit =
                serde_json::from_value(r[0].clone()).expect("the runtime reads it");
            assert_eq!(parsed.soft(), 1);
        }
    }

    #[test]
    fn users_resolve_from_the_rootfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:44:\nextra:x:70:web\n",
        )
        .expect("group");
        assert_eq!(resolve_user(dir.path(), "").expect("empty"), (0, 0, vec![]));
        assert_eq!(
            resolve_user(dir.path(), "web").expect("web"),
            (33, 44, vec![70])
        );
        assert_eq!(
            resolve_user(dir.path(), "web:root").expect("web:root"),
            (33, 0, vec![70])
        );
        assert_eq!(
            resolve_user(dir.path(), "1000:1000").expect("numeric"),
            (1000, 1000, vec![])
        );
        assert!(resolve_user(dir.path(), "nobody").is_err());
        assert!(resolve_user(dir.path(), "web:nogroup").is_err());
    }

    #[test]
    fn capabilities_follow_add_drop_and_privileged() {
        let mut host = HostConfig::default();
        assert_eq!(caps(&host).len(), DEFAULT_CAPS.len());
        host.cap_drop = vec!["NET_RAW".into(), "chown".into()];
        host.cap_add = vec!["SYS_ADMIN".into()];
        let c = caps(&host);
        assert!(!c.contains(&"CAP_NET_RAW".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        host.cap_drop = vec!["ALL".into()];
        host.cap_add = vec!["KILL".into()];
        assert_eq!(caps(&host), ["CAP_KILL"]);
        host.privileged = true;
        assert_eq!(caps(&host), all_caps());
        // all_caps reads the bounding set by position: the list is in
        // capability number order.
        for (n, name) in ALL_CAPS.iter().enumerate() {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(json!(name)).expect("a capability");
            assert_eq!(
                cais_runtime::process::cap_number(&cap) as usize,
                n,
                "{name}"
            );
        }
        assert!(all_caps().contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn resources_map_docker_flags() {
        let host = HostConfig {
            memory: 64 << 20,
            nano_cpus: 1_500_000_000,
            pids_limit: Some(50),
            ..Default::default()
        };
        let r = resources(&host).expect("resources");
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 50);
        let host = HostConfig {
            pids_limit: Some(0),
            memory_swappiness: Some(30),
            oom_kill_disable: Some(true),
            cpuset_mems: "0".into(),
            cpu_realtime_runtime: 950,
            blkio_weight: 300,
            blkio_device_read_bps: vec![ThrottleDevice {
                path: "/dev/nosuch".into(),
                rate: 1,
            }],
            ..Default::default()
        };
        assert_eq!(
            resources(&host),
            Err("stat /dev/nosuch: no such file or directory".into())
        );
        let host = HostConfig {
            blkio_device_read_bps: Vec::new(),
            ..host
        };
        let r = resources(&host).expect("resources");
        assert_eq!(r["pids"]["limit"], -1, "0 is unlimited");
        assert_eq!(r["memory"]["swappiness"], 30);
        assert_eq!(r["memory"]["disableOOMKiller"], true);
        assert_eq!(r["cpu"]["mems"], "0");
        assert_eq!(r["cpu"]["realtimeRuntime"], 950);
        assert_eq!(r["blockIO"]["weight"], 300);
        let parsed: oci_spec::runtime::LinuxResources =
            serde_json::from_value(r).expect("the runtime reads it");
        assert_eq!(
            parsed.block_io().as_ref().and_then(|b| b.weight()),
            Some(300)
        );
    }

    #[test]
    fn the_default_seccomp_profile_compiles() {
        let profile: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(default_seccomp()).expect("valid OCI seccomp");
        cais_runtime::seccomp::compile(&profile).expect("compiles");
    }
}
