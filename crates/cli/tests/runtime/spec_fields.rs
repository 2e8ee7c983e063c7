//! The conformance fixes and the runtime-spec fields applied for the
//! validation suite (docs/runtime-conformance.md), each checked from
//! inside a real container.

use super::*;
use cais_testkit::{have_tool, require};

/// A tmpfs mounted for a test, unmounted however the test ends.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new() -> Tmpfs {
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Fields of /proc/PID/stat after the command (proc(5)): 1-based numbers.
fn stat_field(stat: &str, n: usize) -> String {
    // Everything after the comm field's closing parenthesis is space-separated.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    rest.split(' ').nth(n - 3).expect("field").to_string()
}

/// Regression: a profile denying getcwd(2), loaded before the user switch
/// (no noNewPrivileges), used to fail every container because the
/// working-directory check ran after the filter.
#[test]
fn seccomp_may_deny_getcwd_without_no_new_privileges() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(&rt, "echo started; pwd -P; touch rel; ls /tmp/rel", |c| {
        c["process"]["noNewPrivileges"] = false.into();
        c["process"]["cwd"] = "/tmp".into();
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"started"), "{out}");
    assert!(
        !lines[1].contains("/tmp"),
        "getcwd is denied inside, so pwd -P cannot name the directory: {out}"
    );
    assert_eq!(lines.last(), Some(&"/tmp/rel"), "the process runs in /tmp");
}

/// The mountinfo line of the container's root (field 5 is the mount point).
const ROOT_MOUNT: &str = "awk '$5 == \"/\"' /proc/self/mountinfo";

/// Regression: `rootfsPropagation: unbindable` made the bind of the rootfs
/// onto itself fail (EINVAL); now the container's / gets it after pivot_root.
#[test]
fn rootfs_propagation_applies_to_the_container_root() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    // (slave shows as such only where the host's own root is shared.)
    for (mode, want) in [("unbindable", "unbindable"), ("shared", "shared:")] {
        let (code, out, err) = sh(&rt, ROOT_MOUNT, |c| {
            c["linux"]["rootfsPropagation"] = mode.into();
        });
        assert_eq!(code, 0, "{mode}: {err}");
        assert!(out.contains(want), "{mode}: root mount {out}");
    }
    let (code, out, _) = sh(&rt, ROOT_MOUNT, |c| {
        c["linux"]["rootfsPropagation"] = "private".into();
    });
    assert_eq!(code, 0);
    assert!(
        !out.contains("shared:") && !out.contains("master:") && !out.contains("unbindable"),
        "private: {out}"
    );
}

/// config.md "capabilities": one the runtime does not hold is left out with a
/// warning, not a failure. cais runs here with CAP_SYS_TIME removed from
/// its bounding set (setpriv(1)), so it cannot grant that one.
#[test]
fn capabilities_the_runtime_lacks_are_left_out_with_a_warning() {
    if !require_root_and_busybox() || !require("setpriv (util-linux)", have_tool("setpriv")) {
        return;
    }
    let rt = Rt::new();
    let caps = json!(["CAP_SYS_TIME", "CAP_KILL", "CAP_CHOWN"]);
    let mut b = Bundle::new(&["sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status"]);
    b.edit(|c| {
        c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps,
            "permitted": caps, "inheritable": caps, "ambient": caps});
    });
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-sys_time", CAIS, "runtime", "--root"])
        .arg(rt.root.path())
        .args(["run", "--bundle", path(b.path()), &unique_id("caps")])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("CAP_SYS_TIME") && stderr.contains("warning"),
        "the missing capability is reported: {stderr}"
    );
    // CAP_CHOWN (0) and CAP_KILL (5) are granted, CAP_SYS_TIME (25) is not.
    for set in ["CapEff", "CapPrm"] {
        assert!(
            stdout.contains(&format!("{set}:\t0000000000000021")),
            "{set}: {stdout}"
        );
    }
    // And with it held, the same config gets all three.
    let (code, out, err) = sh(&rt, "grep CapEff /proc/self/status", |c| {
        c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps,
            "permitted": caps});
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CapEff:\t0000000002000021"), "{out}");
}

/// process.scheduler: the policy, priority, nice value and flags, read
/// back from /proc/PID/stat (fields 19 nice, 40 rt_priority, 41 policy).
#[test]
fn scheduler_policy_priority_nice_and_flags_apply() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    // A real-time policy needs real-time runtime in the cpu cgroup
    // (CONFIG_RT_GROUP_SCHED); a top-level cgroup can get it from the root.
    let rt_group = Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
    let id = unique_id("sched");
    let (code, out, err) = sh(
        &rt,
        // `; true` keeps sh from exec'ing the last cat in its own process.
        "cat /proc/$$/stat; echo; cat /proc/self/stat; true",
        |c| {
            c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10,
                "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
            if rt_group {
                c["linux"]["cgroupsPath"] = format!("/{id}").into();
                c["linux"]["resources"]["cpu"] =
                    json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
            }
        },
    );
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let shell = lines.next().expect("the shell's stat");
    let child = lines.nth(1).expect("cat's stat");
    assert_eq!(stat_field(shell, 41), "1", "SCHED_FIFO: {shell}");
    assert_eq!(stat_field(shell, 40), "10", "priority 10: {shell}");
    assert_eq!(
        stat_field(child, 41),
        "0",
        "SCHED_FLAG_RESET_ON_FORK: a child is back to SCHED_OTHER: {child}"
    );

    let (code, out, err) = sh(&rt, "cat /proc/$$/stat", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(stat_field(&out, 41), "3", "SCHED_BATCH: {out}");
    assert_eq!(stat_field(&out, 19), "7", "nice 7: {out}");

    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_RR", "priority": 0}));
    let err = rt.fails(&["create", "--bundle", path(b.path()), &unique_id("sched")]);
    assert!(err.contains("outside 1..99"), "{err}");
    assert!(rt.ids().is_empty());
}

/// process.execCPUAffinity: `final` is the exec'd process's affinity, read
/// back from /proc/self/status; `initial` is applied to the runtime's
/// process before it joins the cgroup (a set without usable CPUs is refused
/// by the kernel there, which shows it was applied).
#[test]
fn exec_cpu_affinity_applies_to_exec_processes() {
    if !require_root_and_busybox() {
        return;
    }
    let allowed = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|s| s.trim().to_string())
        })
        .expect("Cpus_allowed_list");
    // The last CPU this test may use: "0-1" -> 1, "0,2-3" -> 3.
    let last: u32 = allowed
        .rsplit([',', '-'])
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a CPU number");
    let rt = Rt::new();
    let id = unique_id("affinity");
    let b = Bundle::new(&["sleep", "1000"]);
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let exec_with = |affinity: serde_json::Value| {
        let process = b.path().join("process.json");
        std::fs::write(
            &process,
            json!({"args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
                "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"], "execCPUAffinity": affinity})
            .to_string(),
        )
        .expect("process.json");
        rt.output(&["exec", "--process", path(&process), &id])
    };
    let out = exec_with(json!({"initial": "0", "final": last.to_string()}));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Cpus_allowed_list:\t{last}\n")
    );
    let out = exec_with(json!({"final": "0"}));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Cpus_allowed_list:\t0\n"
    );
    let out = exec_with(json!({"initial": "8000"}));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no CPU 8000 here");
    assert!(err.contains("initial CPU affinity"), "{err}");
    let out = exec_with(json!({"final": "3-1"}));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("execCPUAffinity.final"),
        "bad lists are refused before anything runs"
    );
    // The container's own process is not affected (config.md: exec only).
    let init = rt.state(&id)["pid"].as_i64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).expect("status");
    assert!(
        status.contains(&format!("Cpus_allowed_list:\t{allowed}")),
        "{status}"
    );
    rt.ok(&["delete", "--force", &id]);
}

/// linux.memoryPolicy: set_mempolicy(2) shows in /proc/self/numa_maps for
/// the container's process and for exec'd ones.
#[test]
fn memory_policy_shows_in_numa_maps() {
    if !require_root_and_busybox()
        || !require(
            "a NUMA kernel (/proc/self/numa_maps)",
            Path::new("/proc/self/numa_maps").exists(),
        )
    {
        return;
    }
    let rt = Rt::new();
    for (policy, want) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "prefer=static:0",
        ),
        (json!({"mode": "MPOL_LOCAL"}), "local"),
    ] {
        let (code, out, err) = sh(&rt, "head -1 /proc/self/numa_maps", |c| {
            c["linux"]["memoryPolicy"] = policy.clone();
        });
        assert_eq!(code, 0, "{policy}: {err}");
        assert!(out.contains(&format!(" {want} ")), "{policy}: {out}");
    }
    let id = unique_id("numa");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let out = rt.ok(&["exec", &id, "head", "-1", "/proc/self/numa_maps"]);
    assert!(out.contains(" bind:0 "), "exec'd processes too: {out}");
    rt.ok(&["delete", "--force", &id]);

    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"}));
    let err = rt.fails(&["create", "--bundle", path(b.path()), &unique_id("numa")]);
    assert!(err.contains("MPOL_BIND needs at least one node"), "{err}");
}

/// A directory and a file in it owned by 1000:1000 on disk; the mapping
/// {containerID 1000, hostID 0} shows them as root (config.md "uidMappings").
fn owned_by_1000(dir: &Path) {
    std::os::unix::fs::chown(dir, Some(1000), Some(1000)).expect("chown");
    let f = dir.join("f");
    std::fs::write(&f, "x").expect("write");
    std::os::unix::fs::chown(&f, Some(1000), Some(1000)).expect("chown");
}

/// Id-mapped bind mounts (mount_setattr(2) MOUNT_ATTR_IDMAP) of ext4 (the
/// root filesystem here) and tmpfs sources, with the mount's own mappings
/// and with the container's user namespace mappings.
#[test]
fn idmapped_bind_mounts_show_mapped_owners() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let map = json!([{"containerID": 1000, "hostID": 0, "size": 1}]);
    let disk = tempfile::tempdir_in("/var/tmp").expect("dir on the root filesystem");
    owned_by_1000(disk.path());
    let tmpfs = Tmpfs::new();
    owned_by_1000(tmpfs.0.path());
    for (name, src) in [("disk", disk.path()), ("tmpfs", tmpfs.0.path())] {
        let (code, out, err) = sh(
            &rt,
            "stat -c %u:%g /mnt/f; touch /mnt/new; stat -c %u:%g /mnt/new",
            |c| {
                c["mounts"].as_array_mut().expect("mounts").push(json!({
                    "destination": "/mnt", "type": "bind", "source": path(src),
                    "options": ["bind", "idmap"], "uidMappings": map, "gidMappings": map
                }));
            },
        );
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out, "0:0\n0:0\n", "{name}: on-disk 1000 shows as 0");
        let new = std::fs::metadata(src.join("new")).expect("created through the mount");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (new.uid(), new.gid()),
            (1000, 1000),
            "{name}: root's new file lands as 1000 on disk"
        );
        assert_eq!(
            std::fs::metadata(src.join("f")).expect("f").uid(),
            1000,
            "{name}: the source itself is untouched"
        );
    }
    drop(tmpfs);

    // idmap without mappings of its own takes the container's user
    // namespace's: a host root file is root inside, not nobody.
    let host = tempfile::tempdir_in("/var/tmp").expect("dir");
    std::fs::write(host.path().join("f"), "x").expect("write");
    let in_userns = |options: serde_json::Value| {
        let mut b = Bundle::new(&["stat", "-c", "%u", "/mnt/f"]);
        b.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/mnt", "type": "bind", "source": path(host.path()),
                "options": options
            }));
        });
        // The container's root cannot create it: the rootfs belongs to the
        // host's root, which its user namespace does not map.
        std::fs::create_dir(b.rootfs().join("mnt")).expect("mount point");
        rt.run(&b, &unique_id("idmap"))
    };
    let (code, out, err) = in_userns(json!(["bind", "idmap"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "0\n", "mapped through the container's namespace");
    let (code, out, err) = in_userns(json!(["bind"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "65534\n", "without idmap the host's root is nobody");

    // What cannot be honoured is refused.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/mnt", "type": "bind", "source": path(host.path()),
            "options": ["bind", "idmap"]
        }));
    });
    let err = rt.fails(&["create", "--bundle", path(b.path()), &unique_id("idmap")]);
    assert!(err.contains("or a user namespace"), "{err}");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
            "options": ["idmap"], "uidMappings": map, "gidMappings": map
        }));
    });
    let err = rt.fails(&["create", "--bundle", path(b.path()), &unique_id("idmap")]);
    assert!(err.contains("bind mounts only"), "{err}");
    assert!(rt.ids().is_empty());
}

fn resctrl_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .contains(" - resctrl ")
}

/// linux.intelRdt: refused with a clear error where the host has no
/// resctrl (this machine's kernel has no RDT); where it has one, the
/// container's process joins the default group ("/").
#[test]
fn intel_rdt_joins_resctrl_or_is_refused_without_it() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("rdt");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "/"}));
    if !resctrl_mounted() {
        let err = rt.fails(&["create", "--bundle", path(b.path()), &id]);
        assert!(err.contains("no resctrl filesystem is mounted"), "{err}");
        assert!(rt.ids().is_empty(), "nothing is left behind");
        assert!(cgroup_dirs(&id).is_empty());
        return;
    }
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid").to_string();
    let tasks = std::fs::read_to_string("/sys/fs/resctrl/tasks").expect("tasks");
    assert!(
        tasks.lines().any(|l| l == pid),
        "pid {pid} in the default group"
    );
    rt.ok(&["delete", "--force", &id]);
}

/// AppArmor and SELinux labels are refused where the host has no such
/// module (this machine runs neither), never silently dropped.
#[test]
fn security_labels_are_refused_where_the_host_lacks_the_module() {
    if !require_root_and_busybox() {
        return;
    }
    let host = cais_runtime::lsm::Host::detect();
    let rt = Rt::new();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, bool); 3] = [
        (
            "AppArmor is not enabled",
            |c| c["process"]["apparmorProfile"] = "cais-test-profile".into(),
            host.apparmor,
        ),
        (
            "SELinux is not enabled",
            |c| c["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into(),
            host.selinux,
        ),
        (
            "linux.mountLabel",
            |c| c["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0".into(),
            host.selinux,
        ),
    ];
    for (want, edit, present) in cases {
        if present {
            continue;
        }
        let mut b = Bundle::new(&["true"]);
        b.edit(edit);
        let id = unique_id("lsm");
        let err = rt.fails(&["create", "--bundle", path(b.path()), &id]);
        assert!(err.contains(want), "{want}: {err}");
        assert!(cgroup_dirs(&id).is_empty(), "nothing is left behind");
    }
    // "unconfined" is what every process already is without AppArmor.
    let (code, _, err) = sh(&rt, "true", |c| {
        c["process"]["apparmorProfile"] = "unconfined".into()
    });
    assert_eq!(code, 0, "{err}");
    assert!(rt.ids().is_empty());
}

#[test]
fn features_report_the_applied_fields() {
    let out = Command::new(CAIS)
        .args(["runtime", "features"])
        .output()
        .expect("features");
    assert!(out.status.success());
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let linux = &f["linux"];
    assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], true);
    assert_eq!(linux["intelRdt"]["enabled"], true);
    assert_eq!(linux["apparmor"]["enabled"], true);
    assert_eq!(linux["selinux"]["enabled"], true);
    assert_eq!(linux["netDevices"]["enabled"], false, "refused at create");
    let modes = linux["memoryPolicy"]["modes"].as_array().expect("modes");
    assert!(modes.contains(&json!("MPOL_BIND")) && modes.len() == 7);
    let options = f["mountOptions"].as_array().expect("mountOptions");
    assert!(options.contains(&json!("idmap")) && options.contains(&json!("ridmap")));
}

/// linux.resources.network: net_cls/net_prio are v1-only controllers; a
/// host without them (this one) runs the container and says what it left
/// out, instead of dropping the setting without a word.
#[test]
fn network_classes_without_net_cls_are_reported() {
    if !require_root_and_busybox() {
        return;
    }
    let net_cls = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .find(|l| l.contains(" - cgroup ") && l.contains("net_cls"))
        .and_then(|l| l.split(' ').nth(4).map(PathBuf::from));
    let rt = Rt::new();
    let id = unique_id("netcls");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["resources"]["network"] = json!({"classID": 1048577}));
    let out = rt.output(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    match net_cls {
        None => assert!(
            err.contains("network.classID") && err.contains("not applied"),
            "the skipped setting is reported: {err}"
        ),
        Some(mount) => assert_eq!(
            std::fs::read_to_string(mount.join("cais").join(&id).join("net_cls.classid"))
                .expect("classid")
                .trim(),
            "1048577"
        ),
    }
    rt.ok(&["delete", "--force", &id]);
}
