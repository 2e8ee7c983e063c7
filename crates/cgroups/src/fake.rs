//! Fake cgroup hierarchies in a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::files::WRITES;
use crate::Layout;

pub(crate) struct Fake {
    pub tmp: TempDir,
    pub layout: Layout,
}

/// `mounts` are v1 hierarchies, each a comma-separated controller list
/// ("cpu,cpuacct" is a co-mount); `unified` is the unified root's
/// cgroup.controllers, `None` for no unified hierarchy.
pub(crate) fn fake(mounts: &[&str], unified: Option<&str>) -> Fake {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut controllers = BTreeMap::new();
    for m in mounts {
        let dir = tmp.path().join(m);
        fs::create_dir_all(&dir).expect("mkdir");
        for c in m.split(',') {
            controllers.insert(c.to_owned(), dir.clone());
        }
        if m.split(',').any(|c| c == "cpuset") {
            put(&dir, "cpuset.cpus", "0-3\n");
            put(&dir, "cpuset.mems", "0\n");
        }
    }
    let unified = unified.map(|list| {
        let dir = tmp.path().join("unified");
        fs::create_dir_all(&dir).expect("mkdir");
        put(&dir, "cgroup.controllers", &format!("{list}\n"));
        put(&dir, "cgroup.subtree_control", "\n");
        dir
    });
    let layout = match (controllers.is_empty(), unified) {
        (false, None) => Layout::V1 { controllers },
        (true, Some(root)) => Layout::V2 { root },
        (false, Some(unified)) => Layout::Hybrid {
            controllers,
            unified,
        },
        (true, None) => panic!("a fake needs at least one hierarchy"),
    };
    Fake { tmp, layout }
}

pub(crate) fn put(dir: &Path, file: &str, content: &str) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(dir.join(file), content).expect("write fake file");
}

pub(crate) fn get(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join(file).display()))
}

/// Creates the control files a kernel would show in a new cgroup directory.
pub(crate) fn populate_v1(dir: &Path, controller: &str) {
    let unlimited = "9223372036854771712\n";
    let files: &[(&str, &str)] = match controller {
        "memory" => &[
            ("memory.limit_in_bytes", unlimited),
            ("memory.memsw.limit_in_bytes", unlimited),
            ("memory.soft_limit_in_bytes", unlimited),
            ("memory.kmem.tcp.limit_in_bytes", unlimited),
            ("memory.swappiness", "60\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
        ],
        "cpu" => &[
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_burst_us", "0\n"),
            ("cpu.rt_period_us", "1000000\n"),
            ("cpu.rt_runtime_us", "0\n"),
            ("cpu.idle", "0\n"),
        ],
        "pids" => &[("pids.max", "max\n")],
        "blkio" => &[
            ("blkio.bfq.weight", "100\n"),
            ("blkio.bfq.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_bps_device", ""),
            ("blkio.throttle.read_iops_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
        "hugetlb" => &[("hugetlb.2MB.limit_in_bytes", unlimited)],
        "devices" => &[("devices.allow", ""), ("devices.deny", "")],
        "freezer" => &[("freezer.state", "THAWED\n")],
        "net_cls" => &[("net_cls.classid", "0\n")],
        "net_prio" => &[("net_prio.ifpriomap", "lo 0\n")],
        _ => &[],
    };
    put(dir, "cgroup.procs", "");
    for (f, c) in files {
        put(dir, f, c);
    }
}

pub(crate) fn populate_v2(dir: &Path, controllers: &[&str]) {
    put(dir, "cgroup.procs", "");
    put(dir, "cgroup.freeze", "0\n");
    put(dir, "cgroup.events", "populated 0\nfrozen 0\n");
    for c in controllers {
        let files: &[(&str, &str)] = match *c {
            "memory" => &[
                ("memory.max", "max\n"),
                ("memory.swap.max", "max\n"),
                ("memory.low", "0\n"),
                ("memory.high", "max\n"),
            ],
            "cpu" => &[
                ("cpu.weight", "100\n"),
                ("cpu.max", "max 100000\n"),
                ("cpu.max.burst", "0\n"),
                ("cpu.idle", "0\n"),
            ],
            "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")],
            "pids" => &[("pids.max", "max\n")],
            "io" => &[("io.weight", "default 100\n"), ("io.max", "")],
            "hugetlb" => &[
                ("hugetlb.2MB.max", "max\n"),
                ("hugetlb.2MB.rsvd.max", "max\n"),
            ],
            "rdma" => &[("rdma.max", "")],
            _ => &[],
        };
        for (f, content) in files {
            put(dir, f, content);
        }
    }
}

/// Creates the directories of `cg` (and their ancestors) with the control
/// files the kernel would show in them; call before `create`, which then
/// finds them as the kernel would present them.
pub(crate) fn populate(cg: &crate::Cgroup, fake: &Fake) {
    if let Some(controllers) = fake.layout.v1_controllers() {
        for (name, mount) in controllers {
            if name == "cpuset" {
                let mut dir = mount.clone();
                for comp in cg.path().iter() {
                    dir.push(comp);
                    put(&dir, "cpuset.cpus", "");
                    put(&dir, "cpuset.mems", "");
                }
            }
            populate_v1(cg.v1_dir(name).expect("v1 dir"), name);
        }
    }
    if let Some(root) = fake.layout.unified() {
        let list = get(root, "cgroup.controllers");
        let mut dir = root.to_owned();
        for comp in cg.path().iter() {
            dir.push(comp);
            put(&dir, "cgroup.controllers", &list);
            put(&dir, "cgroup.subtree_control", "");
        }
        let list: Vec<&str> = list.split_whitespace().collect();
        populate_v2(cg.unified_dir().expect("unified dir"), &list);
    }
}

/// Takes the writes recorded so far on this thread.
pub(crate) fn take_writes() -> Vec<(PathBuf, String)> {
    WRITES.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

/// Recorded writes to `file` (by file name), in order.
pub(crate) fn writes_to(log: &[(PathBuf, String)], dir: &Path, file: &str) -> Vec<String> {
    log.iter()
        .filter(|(p, _)| p == &dir.join(file))
        .map(|(_, v)| v.clone())
        .collect()
}
