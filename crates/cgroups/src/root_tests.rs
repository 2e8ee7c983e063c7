//! Tests against the host's real cgroup hierarchies. They need root; without
//! it they fail under `CI` and are skipped (with a message) elsewhere.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use crate::{bpf, Cgroup, FreezerState, Layout};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_path() -> String {
    format!(
        "/cais-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether a requirement holds; panics under `CI` when it does not.
fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required under CI");
    }
    eprintln!("skipping: {what} is required");
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid takes nothing, touches no memory and cannot fail.
    require(unsafe { libc::geteuid() } == 0, "root")
}

/// Kills the children and destroys the cgroup even when an assertion fails.
struct Guard {
    cg: Cgroup,
    children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A frozen task only dies once thawed.
        let _ = self.cg.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleaning up {}: {e}", self.cg.path().display());
        }
    }
}

fn create(layout: Layout) -> Guard {
    let cg = Cgroup::new(layout, &unique_path()).expect("new");
    cg.create().expect("create");
    Guard {
        cg,
        children: Vec::new(),
    }
}

fn resources(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("valid LinuxResources JSON")
}

/// utime + stime of `pid` in clock ticks (proc(5), fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command name may contain spaces; fields restart after ") ".
    let rest = &stat[stat.rfind(") ").expect("comm end") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field n is f[n - 3].
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn real_lifecycle_on_detected_layout() {
    if !is_root() {
        return;
    }
    let layout = Layout::detect().expect("detect");
    let mut g = create(layout.clone());
    let dirs: Vec<PathBuf> = g.cg.dirs().into_iter().map(Path::to_owned).collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(d.is_dir(), "{} not created", d.display());
    }

    // The child waits on stdin so it does its work only once inside the
    // cgroup: the busy loop is charged as CPU and the exec as memory.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read x; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    g.children.push(child);
    g.cg.add_process(pid as i32).expect("add_process");
    assert_eq!(g.cg.pids().expect("pids"), [pid as i32]);
    for d in &dirs {
        let procs = fs::read_to_string(d.join("cgroup.procs")).expect("procs");
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{} lacks {pid}",
            d.display()
        );
    }

    g.cg.apply(&resources(json!({
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 32}
    })))
    .expect("apply");
    let (mem_dir, mem_file) = match g.cg.v1_dir("memory") {
        Some(d) => (d.to_owned(), "memory.limit_in_bytes"),
        None => (
            g.cg.unified_dir().expect("unified").to_owned(),
            "memory.max",
        ),
    };
    let mem = fs::read_to_string(mem_dir.join(mem_file)).expect("memory limit");
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let pids_dir =
        g.cg.v1_dir("pids")
            .or(g.cg.unified_dir())
            .expect("pids dir")
            .to_owned();
    let pids_max = fs::read_to_string(pids_dir.join("pids.max")).expect("pids.max");
    assert_eq!(pids_max.trim(), "32");

    stdin.write_all(b"go\n").expect("release child");
    wait_until("the child to exec sleep", Duration::from_secs(20), || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let stats = g.cg.stats().expect("stats");
    assert!(stats.cpu.usage.total > 0, "{stats:?}");
    assert!(stats.memory.usage.usage > 0, "{stats:?}");
    assert_eq!(stats.memory.usage.limit, 64 << 20);
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 32);
    assert_eq!(g.cg.oom_kill_count().expect("oom kills"), 0);

    for c in &mut g.children {
        c.kill().expect("kill");
        c.wait().expect("wait");
    }
    g.children.clear();
    g.cg.destroy().expect("destroy");
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn real_pids_limit_stops_forks() {
    if !is_root() {
        return;
    }
    let g = create(Layout::detect().expect("detect"));
    g.cg.apply(&resources(json!({"pids": {"limit": 1}})))
        .expect("apply");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read x; echo started; if /bin/true; then echo forked; fi")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let mut stdin = child.stdin.take().expect("stdin");
    g.cg.add_process(child.id() as i32).expect("add_process");
    stdin.write_all(b"go\n").expect("release child");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    // The shell reports the failed fork and gives up (dash exits with 2).
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), "started", "pids.max=1 must stop the fork");
    assert!(!out.status.success());
}

fn check_freeze(layout: Layout) {
    let mut g = create(layout);
    let child = Command::new("sh")
        .arg("-c")
        .arg("while :; do :; done")
        .spawn()
        .expect("spawn busy loop");
    let pid = child.id();
    g.children.push(child);
    g.cg.add_process(pid as i32).expect("add_process");
    wait_until("the loop to use CPU", Duration::from_secs(10), || {
        cpu_ticks(pid) > 0
    });

    g.cg.freeze().expect("freeze");
    assert_eq!(g.cg.freezer_state().expect("state"), FreezerState::Frozen);
    let before = cpu_ticks(pid);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), before, "a frozen task kept running");

    g.cg.thaw().expect("thaw");
    assert_eq!(g.cg.freezer_state().expect("state"), FreezerState::Thawed);
    wait_until("the thawed loop to run", Duration::from_secs(10), || {
        cpu_ticks(pid) > before
    });
}

#[test]
fn real_freeze_and_thaw_on_detected_layout() {
    if !is_root() {
        return;
    }
    check_freeze(Layout::detect().expect("detect"));
}

/// The unified tree of a hybrid host, used as if it were a pure v2 host:
/// the v2 freezer and the device eBPF filter work there without any
/// controller enabled.
fn unified_only() -> Option<Layout> {
    let layout = Layout::detect().expect("detect");
    let root = layout.unified()?.to_owned();
    Some(Layout::V2 { root })
}

#[test]
fn real_freeze_and_thaw_on_cgroup2() {
    if !is_root() {
        return;
    }
    let layout = unified_only();
    if !require(layout.is_some(), "a cgroup2 hierarchy") {
        return;
    }
    check_freeze(layout.expect("checked"));
}

/// Runs a shell in `dir` (joined between fork and exec) that tries to open
/// /dev/null for reading and for writing.
fn probe_dev_null(dir: &Path) -> String {
    let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).expect("path");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(
        "if true </dev/null; then echo r-ok; else echo r-denied; fi; \
         if true >/dev/null; then echo w-ok; else echo w-denied; fi",
    );
    // SAFETY: the closure only makes async-signal-safe calls (open, write,
    // close) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process itself (cgroup-v2.rst, cgroup.procs).
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.stderr(Stdio::null()).output().expect("run probe");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn real_device_filter_on_cgroup2() {
    if !is_root() {
        return;
    }
    let layout = unified_only();
    if !require(layout.is_some(), "a cgroup2 hierarchy") {
        return;
    }
    let g = create(layout.expect("checked"));
    let dir = g.cg.unified_dir().expect("unified").to_owned();
    assert_eq!(probe_dev_null(&dir), "r-ok w-ok", "no filter yet");

    let deny_all = json!({"allow": false, "access": "rwm"});
    g.cg.apply(&resources(json!({"devices": [
        deny_all,
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}
    ]})))
    .expect("apply read-only /dev/null");
    assert_eq!(probe_dev_null(&dir), "r-ok w-denied");

    // An update replaces the program: with the old one still attached, the
    // new allow below could not take effect.
    g.cg.apply(&resources(json!({"devices": [deny_all]})))
        .expect("apply deny all");
    assert_eq!(probe_dev_null(&dir), "r-denied w-denied");
    assert_eq!(bpf::attached_count(&dir).expect("query"), 1);

    g.cg.apply(&resources(json!({"devices": [
        deny_all,
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
    ]})))
    .expect("apply deny write last");
    assert_eq!(probe_dev_null(&dir), "r-ok w-denied", "last match wins");
    assert_eq!(bpf::attached_count(&dir).expect("query"), 1);

    g.cg.apply(&resources(json!({"devices": [
        {"allow": true, "access": "rwm"}
    ]})))
    .expect("apply allow all");
    assert_eq!(probe_dev_null(&dir), "r-ok w-ok");
}

/// Reads a control file from the v1 hierarchy of `v1` if mounted, else the
/// unified one.
fn ctl(cg: &Cgroup, v1: &str, v1_file: &str, v2_file: &str) -> String {
    let path = match cg.v1_dir(v1) {
        Some(d) => d.join(v1_file),
        None => cg.unified_dir().expect("unified").join(v2_file),
    };
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn real_apply_reads_back_on_detected_layout() {
    if !is_root() {
        return;
    }
    let g = create(Layout::detect().expect("detect"));
    let cg = &g.cg;
    let mib: i64 = 1 << 20;
    let block_dev = fs::read_dir("/sys/dev/block")
        .expect("/sys/dev/block")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .min()
        .expect("a block device");
    let (major, minor) = block_dev.split_once(':').expect("maj:min");
    let (major, minor): (i64, i64) = (major.parse().expect("major"), minor.parse().expect("minor"));
    let huge = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    let mut res = json!({
        "memory": {"limit": 128 * mib, "reservation": 64 * mib},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    });
    if huge {
        res["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 * mib}]);
    }
    let memsw = cg
        .v1_dir("memory")
        .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
    let v2_swap = cg
        .v1_dir("memory")
        .is_none()
        .then(|| cg.unified_dir().map(|d| d.join("memory.swap.max").exists()))
        .flatten()
        .unwrap_or(false);
    if memsw || v2_swap {
        res["memory"]["swap"] = json!(256 * mib);
    }
    cg.apply(&resources(res)).expect("apply");

    let v1_mem = cg.v1_dir("memory").is_some();
    assert_eq!(
        ctl(cg, "memory", "memory.limit_in_bytes", "memory.max"),
        (128 * mib).to_string()
    );
    assert_eq!(
        ctl(cg, "memory", "memory.soft_limit_in_bytes", "memory.low"),
        (64 * mib).to_string()
    );
    if memsw {
        assert_eq!(
            ctl(cg, "memory", "memory.memsw.limit_in_bytes", ""),
            (256 * mib).to_string()
        );
    } else if v2_swap {
        // memory+swap 256M over memory 128M leaves 128M of swap.
        assert_eq!(
            ctl(cg, "memory", "", "memory.swap.max"),
            (128 * mib).to_string()
        );
    }
    if cg.v1_dir("cpu").is_some() {
        assert_eq!(ctl(cg, "cpu", "cpu.shares", ""), "512");
        assert_eq!(ctl(cg, "cpu", "cpu.cfs_quota_us", ""), "20000");
        assert_eq!(ctl(cg, "cpu", "cpu.cfs_period_us", ""), "100000");
    } else {
        assert_eq!(ctl(cg, "cpu", "", "cpu.weight"), "20");
        assert_eq!(ctl(cg, "cpu", "", "cpu.max"), "20000 100000");
    }
    assert_eq!(ctl(cg, "cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(ctl(cg, "cpuset", "cpuset.mems", "cpuset.mems"), "0");
    assert_eq!(ctl(cg, "pids", "pids.max", "pids.max"), "64");
    let io = ctl(cg, "blkio", "blkio.throttle.read_bps_device", "io.max");
    assert!(
        io.contains(&format!("{block_dev} 1048576"))
            || io.contains(&format!("{block_dev} rbps=1048576")),
        "{io:?}"
    );
    if huge {
        assert_eq!(
            ctl(
                cg,
                "hugetlb",
                "hugetlb.2MB.limit_in_bytes",
                "hugetlb.2MB.max"
            ),
            (4 * mib).to_string()
        );
    }
    if v1_mem {
        // Zero-value fields leave the limits alone.
        cg.apply(&resources(json!({"memory": {"limit": 0}})))
            .expect("no-op");
        assert_eq!(
            ctl(cg, "memory", "memory.limit_in_bytes", ""),
            (128 * mib).to_string()
        );
    }
}

#[test]
fn real_v1_memory_and_memsw_in_both_directions() {
    if !is_root() {
        return;
    }
    let g = create(Layout::detect().expect("detect"));
    let has_memsw =
        g.cg.v1_dir("memory")
            .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
    if !require(has_memsw, "a v1 memory hierarchy with swap accounting") {
        return;
    }
    let mib: i64 = 1 << 20;
    for (limit, swap) in [
        (100 * mib, 200 * mib),
        (300 * mib, 400 * mib),
        (50 * mib, 60 * mib),
        (-1, -1),
        (20 * mib, 30 * mib),
    ] {
        g.cg.apply(&resources(
            json!({"memory": {"limit": limit, "swap": swap}}),
        ))
        .unwrap_or_else(|e| panic!("limit {limit} swap {swap}: {e}"));
        let want = |v: i64| {
            if v < 0 {
                // What v1 reports for "unlimited" (PAGE_COUNTER_MAX pages).
                "9223372036854771712".to_owned()
            } else {
                v.to_string()
            }
        };
        assert_eq!(
            ctl(&g.cg, "memory", "memory.limit_in_bytes", ""),
            want(limit)
        );
        assert_eq!(
            ctl(&g.cg, "memory", "memory.memsw.limit_in_bytes", ""),
            want(swap)
        );
    }
}

#[test]
fn real_v1_device_rules() {
    if !is_root() {
        return;
    }
    let g = create(Layout::detect().expect("detect"));
    let Some(dir) = g.cg.v1_dir("devices").map(Path::to_owned) else {
        require(false, "a v1 devices hierarchy");
        return;
    };
    g.cg.apply(&resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}
    ]})))
    .expect("apply");
    assert_eq!(
        fs::read_to_string(dir.join("devices.list"))
            .expect("list")
            .trim(),
        "c 1:3 r"
    );
    assert_eq!(probe_dev_null(&dir), "r-ok w-denied");
}

#[test]
fn real_lifecycle_on_cgroup2() {
    if !is_root() {
        return;
    }
    let layout = unified_only();
    if !require(layout.is_some(), "a cgroup2 hierarchy") {
        return;
    }
    let mut g = create(layout.expect("checked"));
    let dir = g.cg.unified_dir().expect("unified").to_owned();
    assert!(dir.is_dir());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read x; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    g.children.push(child);
    g.cg.add_process(pid as i32).expect("add_process");
    assert_eq!(g.cg.pids().expect("pids"), [pid as i32]);

    let controllers = fs::read_to_string(dir.join("cgroup.controllers")).expect("controllers");
    let huge = controllers.split_whitespace().any(|c| c == "hugetlb")
        && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    if huge {
        g.cg.apply(&resources(json!({
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]
        })))
        .expect("apply hugetlb");
        let max = fs::read_to_string(dir.join("hugetlb.2MB.max")).expect("hugetlb.2MB.max");
        assert_eq!(max.trim(), (4u64 << 20).to_string());
        g.cg.apply(&resources(
            json!({"unified": {"hugetlb.2MB.max": "2097152"}}),
        ))
        .expect("apply unified");
        let max = fs::read_to_string(dir.join("hugetlb.2MB.max")).expect("hugetlb.2MB.max");
        assert_eq!(max.trim(), "2097152");
    }

    stdin.write_all(b"go\n").expect("release child");
    wait_until("the child to exec sleep", Duration::from_secs(20), || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    // cpu.stat's usage lines need no controller.
    let stats = g.cg.stats().expect("stats");
    assert!(stats.cpu.usage.total > 0, "{stats:?}");

    for c in &mut g.children {
        c.kill().expect("kill");
        c.wait().expect("wait");
    }
    g.children.clear();
    g.cg.destroy().expect("destroy");
    assert!(!dir.exists());
}
