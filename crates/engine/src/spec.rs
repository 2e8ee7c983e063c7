//! The OCI runtime config for an engine container: the image's defaults,
//! overridden by the container's config, plus Docker's default security
//! profile (capabilities, seccomp, masked paths) and the host config's
//! resources and mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cais_api::{ContainerConfig, HostConfig};
use serde_json::{json, Value};

pub use cais_runtime::bundle::{resolve_user, DEFAULT_CAPS};

const ALL_CAPS: [&str; 41] = [
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

/// A mount the engine resolved (volume, bind, tmpfs, /etc files).
#[derive(Debug, Clone, PartialEq)]
pub struct MountSpec {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
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
    pub host_network: bool,
    /// Path of the network namespace to join (issue: networking), if any.
    pub netns_path: Option<PathBuf>,
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
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order = Vec::new();
    for kv in image.env.iter().chain(config.env.iter()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if env.insert(k.to_string(), v.to_string()).is_none() {
            order.push(k.to_string());
        }
    }
    if !env.contains_key("PATH") {
        env.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        order.insert(0, "PATH".into());
    }
    let env = order.iter().map(|k| format!("{k}={}", env[k])).collect();
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else if !image.working_dir.is_empty() {
        image.working_dir.clone()
    } else {
        "/".into()
    };
    (args, env, cwd)
}

fn caps(host: &HostConfig) -> Vec<String> {
    if host.privileged {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
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
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    for c in host.cap_add.iter().map(norm) {
        if ALL_CAPS.contains(&c.as_str()) && !set.contains(&c) {
            set.push(c);
        }
    }
    set
}

pub fn resources(host: &HostConfig) -> Value {
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
    if host.cpu_quota > 0 {
        cpu.insert("quota".into(), host.cpu_quota.into());
    }
    if host.cpu_period > 0 {
        cpu.insert("period".into(), host.cpu_period.into());
    }
    if host.cpu_shares > 0 {
        cpu.insert("shares".into(), host.cpu_shares.into());
    }
    if !host.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), host.cpuset_cpus.clone().into());
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
        r["pids"] = json!({"limit": p});
    }
    r
}

/// Builds config.json.
pub fn build(input: &Input<'_>) -> Value {
    let host = input.host;
    let caps = caps(host);
    let shm = if host.shm_size > 0 {
        host.shm_size
    } else {
        64 * 1024 * 1024
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ];
    if input.host_network {
        // The host's sysfs shows the host's interfaces; a new sysfs cannot be
        // mounted without a network namespace of our own.
        mounts[3] = json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
    }
    for m in &input.mounts {
        mounts.push(json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": m.options}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if !input.host_network {
        match &input.netns_path {
            Some(p) => namespaces.push(json!({"type": "network", "path": p})),
            None => namespaces.push(json!({"type": "network"})),
        }
    }
    let no_new_privs = host.security_opt.iter().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    });
    let unconfined = host
        .security_opt
        .iter()
        .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined");
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": input.config.tty,
            "user": {"uid": input.uid, "gid": input.gid, "additionalGids": input.additional_gids},
            "args": input.args,
            "env": input.env,
            "cwd": input.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privs,
        },
        "root": {"path": input.rootfs, "readonly": host.readonly_rootfs},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": {
            "resources": resources(host),
            "cgroupsPath": format!("/cais/{}", input.id),
            "namespaces": namespaces,
        }
    });
    if let Some(adj) = host.oom_score_adj {
        spec["process"]["oomScoreAdj"] = adj.into();
    }
    if !host.privileged {
        spec["linux"]["maskedPaths"] = json!(MASKED_PATHS.as_slice());
        spec["linux"]["readonlyPaths"] = json!(READONLY_PATHS.as_slice());
        if !unconfined {
            spec["linux"]["seccomp"] = input
                .seccomp_profile
                .clone()
                .unwrap_or_else(default_seccomp);
        }
    }
    spec
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
        assert_eq!(env, ["A=2", "PATH=/bin", "B=3"]);
        assert_eq!(cwd, "/w");
        let (args, _, _) = merge(&image, &cfg(Some(&["sh"]), None, &[], ""));
        assert_eq!(args, ["sh"], "a new entrypoint drops the image's cmd");
        let (args, _, _) = merge(&image, &cfg(Some(&[""]), Some(&["sh", "-c", "x"]), &[], ""));
        assert_eq!(args, ["sh", "-c", "x"], "--entrypoint \"\" clears it");
        let (_, env, cwd) = merge(&ContainerConfig::default(), &ContainerConfig::default());
        assert!(env[0].starts_with("PATH="));
        assert_eq!(cwd, "/");
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
        assert_eq!(caps(&host).len(), ALL_CAPS.len());
    }

    #[test]
    fn resources_map_docker_flags() {
        let host = HostConfig {
            memory: 64 << 20,
            nano_cpus: 1_500_000_000,
            pids_limit: Some(50),
            ..Default::default()
        };
        let r = resources(&host);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 50);
    }

    #[test]
    fn the_default_seccomp_profile_compiles() {
        let profile: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(default_seccomp()).expect("valid OCI seccomp");
        cais_runtime::seccomp::compile(&profile).expect("compiles");
    }
}
