//! Reading and checking a bundle's config.json, and the default config that
//! `spec` writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::spec_ext::{self, Extensions};

/// Loads `config.json` from a bundle and checks what the runtime relies on.
/// Returns the spec and the absolute rootfs path.
pub fn load(bundle: &Path) -> Result<(Spec, PathBuf)> {
    load_with_extensions(bundle).map(|(spec, rootfs, _)| (spec, rootfs))
}

/// [`load`], with the fields the `oci-spec` crate does not keep.
pub fn load_with_extensions(bundle: &Path) -> Result<(Spec, PathBuf, Extensions)> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| Error::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let (spec, ext) = spec_ext::spec_from_json(&data).map_err(|message| Error::InvalidConfig {
        path: path.clone(),
        message,
    })?;
    let rootfs =
        validate(&spec, bundle).map_err(|message| Error::InvalidConfig { path, message })?;
    Ok((spec, rootfs, ext))
}

fn validate(spec: &Spec, bundle: &Path) -> std::result::Result<PathBuf, String> {
    if !spec.version().starts_with("1.") {
        return Err(format!(
            "ociVersion {:?} is not a 1.x version",
            spec.version()
        ));
    }
    let root = spec.root().as_ref().ok_or("root is missing")?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if !rootfs.is_dir() {
        return Err(format!(
            "rootfs {} does not exist or is not a directory",
            rootfs.display()
        ));
    }
    let process = spec.process().as_ref().ok_or("process is missing")?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err("process.args is empty".into());
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {} is not absolute",
            process.cwd().display()
        ));
    }
    let linux = spec.linux().as_ref().ok_or("linux is missing")?;
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for ns in &namespaces {
        if !seen.insert(ns.typ()) {
            return Err(format!("namespace {} is listed twice", ns.typ()));
        }
    }
    let new = |t: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if !has(LinuxNamespaceType::Mount) {
        return Err("a mount namespace is required (the runtime pivots into the rootfs)".into());
    }
    // A uts namespace joined by path is the container's own too: the names
    // are set there. Only the host's (no uts entry at all) is off limits.
    if (spec.hostname().is_some() || spec.domainname().is_some()) && !has(LinuxNamespaceType::Uts) {
        return Err("hostname and domainname need a uts namespace".into());
    }
    if new(LinuxNamespaceType::User)
        && (linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty())
            || linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()))
    {
        return Err("a new user namespace needs uidMappings and gidMappings".into());
    }
    // Moving host interfaces in takes rtnetlink, which the runtime does
    // not speak: refused rather than a container without its devices.
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err("linux.netDevices is not supported by this runtime".into());
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            ));
        }
    }
    Ok(rootfs)
}

/// The config `cais runtime spec` writes: a shell in a busybox-like rootfs,
/// as runc's default, with the namespaces and protections containers expect.
pub fn default_spec(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut spec = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "cais",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi", "/sys/devices/virtual/powercap"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let linux = &mut spec["linux"];
        linux["namespaces"]
            .as_array_mut()
            .expect("namespaces is an array")
            .push(serde_json::json!({"type": "user"}));
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux.as_object_mut().expect("object").remove("resources");
    }
    spec
}

/// Syscalls the default profile refuses with EPERM: what lets a process
/// leave or reconfigure its container (namespaces, mounts, kernel modules,
/// keyrings, clocks, tracing other processes). Everything else is allowed.
/// Docker's profile is an allow-list that refuses the same set; listing the
/// refusals keeps this readable and new harmless syscalls working.
pub const DENIED_SYSCALLS: [&str; 52] = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vm86",
];

/// The default seccomp profile as OCI JSON.
pub fn default_seccomp() -> serde_json::Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": DENIED_SYSCALLS.as_slice(), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            // clone may not create namespaces (CLONE_NEWNS, NEWUTS, NEWIPC,
            // NEWUSER, NEWPID, NEWNET, NEWCGROUP): the first matching rule
            // wins, so a clone without those flags is allowed and any
            // other is refused.
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            // clone3 passes flags in memory seccomp cannot read: make libc fall back to clone.
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]
    })
}

/// Docker's default capability set for unprivileged containers (the engine's
/// containers and a build's `RUN` steps).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Resolves `user` ("name", "uid", "uid:gid", "name:group") against the
/// container's /etc/passwd and /etc/group. Returns (uid, gid, supplementary gids).
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), String> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let entry = |file: &str, name: &str| -> Option<Vec<String>> {
        file.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() > 3 && (f[0] == name || f[2] == name))
    };
    let (uid, mut gid, uname) = match u.parse::<u32>() {
        Ok(n) => {
            let e = entry(&passwd, u);
            (
                n,
                e.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
                e.map(|f| f[0].clone()),
            )
        }
        Err(_) => {
            let f = entry(&passwd, u).ok_or_else(|| {
                format!("unable to find user {u}: no matching entries in passwd file")
            })?;
            (
                f[2].parse().map_err(|_| format!("bad uid for user {u}"))?,
                f[3].parse().map_err(|_| format!("bad gid for user {u}"))?,
                Some(f[0].clone()),
            )
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(&group, g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    let extra = uname
        .map(|name| {
            group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() > 3 && f[3].split(',').any(|m| m == name))
                .filter_map(|f| f[2].parse().ok())
                .filter(|g| *g != gid)
                .collect()
        })
        .unwrap_or_default();
    Ok((uid, gid, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rootfs")).expect("rootfs");
        std::fs::write(dir.path().join("config.json"), config).expect("config");
        dir
    }

    fn message(config: &str) -> String {
        let b = bundle_with(config);
        load(b.path()).expect_err("must fail").to_string()
    }

    #[test]
    fn the_default_spec_loads() {
        let b = bundle_with(&default_spec(false).to_string());
        let (spec, rootfs) = load(b.path()).expect("default spec is valid");
        assert_eq!(rootfs, b.path().join("rootfs"));
        assert_eq!(spec.hostname().as_deref(), Some("cais"));
        let b = bundle_with(&default_spec(true).to_string());
        load(b.path()).expect("rootless spec is valid");
    }

    #[test]
    fn bad_configs_get_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = load(dir.path()).expect_err("missing").to_string();
        assert!(e.contains("config.json"), "{e}");
        assert!(message("{not json").contains("not a valid OCI runtime config"));
        let mut s = default_spec(false);
        s["linux"]["namespaces"][0]["type"] = "bogus".into();
        assert!(message(&s.to_string()).contains("bogus"));
        let mut s = default_spec(false);
        s["root"]["path"] = "nowhere".into();
        assert!(message(&s.to_string()).contains("does not exist"));
        let mut s = default_spec(false);
        s["linux"]["namespaces"][1]["type"] = "pid".into();
        assert!(message(&s.to_string()).contains("listed twice"));
        let mut s = default_spec(false);
        s["process"]["cwd"] = "relative".into();
        assert!(message(&s.to_string()).contains("not absolute"));
        let mut s = default_spec(false);
        s["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "mount"}]);
        assert!(message(&s.to_string()).contains("uts"));
        let mut s = default_spec(false);
        s["linux"]["netDevices"] = serde_json::json!({"eth1": {"name": "eth0"}});
        assert!(message(&s.to_string()).contains("netDevices is not supported"));
    }
}
