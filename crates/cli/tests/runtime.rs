//! End-to-end tests of `cais runtime`: real containers from a busybox
//! rootfs, checked from inside with busybox applets.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{require_root_and_busybox, unique_id, Bundle};
use serde_json::json;

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// A state root and helpers to drive `cais runtime` against it.
struct Rt {
    root: tempfile::TempDir,
}

impl Rt {
    fn new() -> Rt {
        Rt {
            root: cais_testkit::state_root(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIS);
        c.arg("runtime")
            .arg("--root")
            .arg(self.root.path())
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs to completion. Output goes through files, not pipes: a
    /// detached container inherits them and would keep pipes open forever.
    fn output(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().expect("stdout file");
        let err = tempfile::tempfile().expect("stderr file");
        let status = self
            .cmd(args)
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .status()
            .expect("run cais");
        let read = |mut f: std::fs::File| {
            use std::io::Seek;
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).expect("seek");
            f.read_to_end(&mut v).expect("read");
            v
        };
        Output {
            status,
            stdout: read(out),
            stderr: read(err),
        }
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "cais runtime {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "cais runtime {args:?} should have failed"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    fn run(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let out = self.output(&["run", "--bundle", path(bundle.path()), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status(id) != want {
            assert!(Instant::now() < deadline, "{id} never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ids(&self) -> Vec<String> {
        self.ok(&["list", "-q"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `script` with sh in a fresh container; returns (code, stdout, stderr).
fn sh(rt: &Rt, script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> (i32, String, String) {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.edit(edit);
    rt.run(&b, &unique_id("sh"))
}

fn host_mounts_mention(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .contains(needle)
}

fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    ["memory", "pids", "freezer", "cpu", "devices"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("cais").join(id))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn run_reports_the_exit_code_and_output() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(&rt, "echo hello; exit 3", |_| {});
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out, "hello\n");
    assert!(rt.ids().is_empty(), "run removes the container");
}

#[test]
fn namespaces_are_isolated() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "echo pid=$$; hostname; ls /sys/class/net | tr '\\n' ' '; echo; \
         for n in ipc uts net mnt pid cgroup; do echo $n=$(readlink /proc/self/ns/$n); done",
        |c| c["hostname"] = "box".into(),
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "pid=1",
        "the process is pid 1 of a new pid namespace"
    );
    assert_eq!(lines[1], "box");
    assert_eq!(
        lines[2].trim(),
        "lo",
        "a new network namespace has only loopback"
    );
    for line in &lines[3..] {
        let (name, inside) = line.split_once('=').expect("name=link");
        let host = std::fs::read_link(format!("/proc/self/ns/{name}")).expect("host ns");
        assert_ne!(
            inside,
            host.to_string_lossy(),
            "{name} namespace is not shared with the host"
        );
    }
}

#[test]
fn joins_an_existing_namespace_by_path() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    // A process in a uts namespace of its own, with its own hostname.
    let mut holder = Command::new("unshare")
        .args(["--uts", "sh", "-c", "hostname joined-ns; sleep 100"])
        .spawn()
        .expect("unshare");
    let ns = format!("/proc/{}/ns/uts", holder.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let host_uts = std::fs::read_link("/proc/self/ns/uts").expect("uts");
    while std::fs::read_link(&ns)
        .map(|l| l == host_uts)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "unshare never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let target = std::fs::read_link(&ns).expect("holder ns");
    let (code, out, err) = sh(&rt, "readlink /proc/self/ns/uts; hostname", |c| {
        let ns_list = c["linux"]["namespaces"].as_array_mut().expect("array");
        for n in ns_list.iter_mut() {
            if n["type"] == "uts" {
                n["path"] = ns.clone().into();
            }
        }
        c.as_object_mut().expect("object").remove("hostname");
    });
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(&*target.to_string_lossy()));
    assert_eq!(lines.next(), Some("joined-ns"));
}

#[test]
fn user_namespace_maps_ids() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(&rt, "cat /proc/self/uid_map; id -u", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // cgroup v1 hierarchies cannot be mounted from a user namespace.
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| m["type"] != "cgroup");
    });
    assert_eq!(code, 0, "{err}");
    let map: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    assert_eq!(out.lines().nth(1), Some("0"));
}

#[test]
fn capabilities_are_dropped() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status; mknod /tmp/null c 1 3 && echo MKNOD-OK; \
         touch /tmp/f; chown 1 /tmp/f && echo CHOWN-OK; true",
        |_| {},
    );
    assert_eq!(code, 0, "{err}");
    // CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE, the default set.
    for set in ["CapEff", "CapBnd", "CapPrm"] {
        assert!(
            out.contains(&format!("{set}:\t0000000020000420")),
            "{set}: {out}"
        );
    }
    assert!(!out.contains("MKNOD-OK"), "mknod needs CAP_MKNOD");
    assert!(!out.contains("CHOWN-OK"), "chown needs CAP_CHOWN");
}

#[test]
fn runs_as_the_configured_user_with_groups_umask_and_rlimits() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(&rt, "id -u; id -g; id -G; umask; ulimit -n", |c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 63});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    });
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    assert_eq!(lines[2], "1001 5 7");
    assert_eq!(lines[3], "0077");
    assert_eq!(lines[4], "256");
}

#[test]
fn seccomp_denies_a_syscall_with_the_configured_errno() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "mkdir /tmp/blocked; echo rc=$?; touch /tmp/allowed && echo touched",
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]
            });
        },
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rc=1"), "{out}");
    // errno 95 is EOPNOTSUPP.
    assert!(
        err.contains("not supported"),
        "mkdir reports the configured errno: {err}"
    );
    assert!(out.contains("touched"), "other syscalls still work");
}

#[test]
fn masked_and_readonly_paths_are_enforced() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "echo keys=$(wc -c < /proc/keys); echo firmware=$(ls /sys/firmware | wc -l); \
         echo 1 > /proc/sys/vm/drop_caches && echo WROTE; echo 1 > /proc/sysrq-trigger && echo WROTE2; true",
        |_| {},
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keys=0"), "/proc/keys is masked: {out}");
    assert!(out.contains("firmware=0"), "/sys/firmware is masked: {out}");
    assert!(
        !out.contains("WROTE"),
        "/proc/sys and /proc/sysrq-trigger are read-only: {out}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
}

#[test]
fn readonly_root_sysctl_and_devices() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "touch /x && echo WROTE-ROOT; cat /proc/sys/net/ipv4/ip_forward; echo hi > /dev/mynull && echo DEV-OK; \
         ls -l /dev/mynull | cut -c1; echo > /dev/tmpok",
        |c| {
            c["root"]["readonly"] = true.into();
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            c["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]);
        },
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("WROTE-ROOT"), "the root is read-only");
    assert!(
        out.contains("\n1\n") || out.starts_with("1\n"),
        "sysctl set in the container's netns: {out}"
    );
    assert!(
        out.contains("DEV-OK"),
        "linux.devices are created: {out} {err}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .map(|s| s.trim() == "1" || s.trim() == "0")
            .ok(),
        Some(true)
    );
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let logdir = tempfile::tempdir().expect("logdir");
    let log = logdir.path().join("log");
    let hook = |name: &str, file: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {file}.{name}; echo {name} >> {file}")]});
    let host_log = path(&log).to_string();
    let id = unique_id("hooks");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart", &host_log)],
            "createRuntime": [hook("createRuntime", &host_log)],
            "createContainer": [hook("createContainer", &host_log)],
            // startContainer runs inside the container: its paths are the container's.
            "startContainer": [hook("startContainer", "/hooklog/log")],
            "poststart": [hook("poststart", &host_log)],
            "poststop": [hook("poststop", &host_log)],
        });
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/hooklog", "type": "bind", "source": path(logdir.path()), "options": ["rbind"]
        }));
    });
    let (code, _, err) = rt.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    let order = std::fs::read_to_string(&log).expect("hook log");
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{host_log}.createRuntime")).expect("state"),
    )
    .expect("hooks get JSON state");
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap_or(0) > 0);
    let stopped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{host_log}.poststop")).expect("state"),
    )
    .expect("JSON");
    assert_eq!(stopped["status"], "stopped");
}

#[test]
fn a_failing_hook_fails_create_and_leaves_nothing() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("badhook");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    let err = rt.fails(&["create", "--bundle", path(b.path()), &id]);
    assert!(err.contains("/bin/false"), "{err}");
    assert!(rt.ids().is_empty());
    assert!(
        cgroup_dirs(&id).is_empty(),
        "no cgroup left: {:?}",
        cgroup_dirs(&id)
    );
}

#[test]
fn lifecycle_create_start_kill_delete_cleans_everything() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("life");
    let b = Bundle::new(&["sleep", "1000"]);
    let pidfile = b.path().join("pid");
    rt.ok(&[
        "create",
        "--bundle",
        path(b.path()),
        "--pid-file",
        path(&pidfile),
        &id,
    ]);
    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["ociVersion"], "1.2.0");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .parse()
        .expect("pid");
    assert_eq!(state["pid"].as_i64(), Some(pid));
    assert!(!cgroup_dirs(&id).is_empty(), "the container has cgroups");
    assert!(
        !host_mounts_mention(path(&b.rootfs())),
        "container mounts stay in its namespace"
    );
    let dup = rt.fails(&["create", "--bundle", path(b.path()), &id]);
    assert!(dup.contains("already exists"), "{dup}");

    rt.ok(&["start", &id]);
    rt.wait_status(&id, "running");
    let pids: Vec<i64> =
        serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).expect("ps json");
    assert_eq!(pids, vec![pid]);
    let err = rt.fails(&["delete", &id]);
    assert!(err.contains("running"), "{err}");

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    let err = rt.fails(&["start", &id]);
    assert!(
        err.contains("stopped"),
        "start on a stopped container: {err}"
    );
    rt.ok(&["delete", &id]);
    assert!(rt.ids().is_empty());
    assert!(
        cgroup_dirs(&id).is_empty(),
        "cgroups removed: {:?}",
        cgroup_dirs(&id)
    );
    assert!(rt.fails(&["state", &id]).contains("does not exist"));
}

#[test]
fn delete_force_kills_a_running_container() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("force");
    let b = Bundle::new(&["sleep", "1000"]);
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    rt.ok(&["delete", "--force", &id]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cais_runtime::state::proc_stat(pid as i32).is_some_and(|(s, _)| s != 'Z') {
        assert!(
            Instant::now() < deadline,
            "process {pid} survived delete --force"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("pause");
    let shared = tempfile::tempdir().expect("shared dir");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "while true; do echo x >> /shared/ticks; usleep 20000; done",
    ]);
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/shared", "type": "bind", "source": path(shared.path()), "options": ["rbind"]
        }))
    });
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let ticks = || {
        std::fs::read_to_string(shared.path().join("ticks"))
            .map(|s| s.len())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(200));
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let frozen = ticks();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ticks(), frozen, "a paused container makes no progress");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(ticks() > frozen, "a resumed container runs again");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_runs_in_the_container() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("exec");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["hostname"] = "inside".into());
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let out = rt.ok(&["exec", &id, "sh", "-c", "hostname; echo $$; echo $FOO"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "inside");
    assert_ne!(lines[1], "1");
    let out = rt.output(&[
        "exec",
        "-e",
        "FOO=bar",
        &id,
        "sh",
        "-c",
        "echo $FOO; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "exec returns the process's exit code"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bar\n");

    let process = b.path().join("process.json");
    std::fs::write(
        &process,
        json!({"args": ["sh", "-c", "id -u; pwd"], "cwd": "/tmp", "user": {"uid": 42, "gid": 42}, "env": ["PATH=/bin"]})
            .to_string(),
    )
    .expect("process.json");
    let out = rt.ok(&["exec", "--process", path(&process), &id]);
    assert_eq!(out, "42\n/tmp\n");
    let pidfile = b.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "--detach",
        "--pid-file",
        path(&pidfile),
        &id,
        "sleep",
        "1000",
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .parse()
        .expect("pid");
    let pids: Vec<i32> =
        serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).expect("ps");
    assert!(
        pids.contains(&pid),
        "the exec'd process is in the container's cgroup"
    );
    let err = rt.fails(&["exec", &id, "no-such-binary"]);
    assert!(err.contains("not found"), "{err}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn terminal_is_sent_over_the_console_socket() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("tty");
    let mut b = Bundle::new(&["sh", "-c", "tty; stty size"]);
    b.edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind console socket");
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("runtime connects");
        cais_runtime::console::recv_fd(conn.as_raw_fd()).expect("pty master")
    });
    rt.ok(&[
        "create",
        "--bundle",
        path(b.path()),
        "--console-socket",
        path(&sock),
        &id,
    ]);
    let master = receiver.join().expect("receiver");
    rt.ok(&["start", &id]);
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 1024];
    // Reads end with EIO once the container closes the terminal.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("30 100"), "console size applied: {text}");
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
}

#[test]
fn bad_input_gets_clear_errors_and_leaves_no_state() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let empty = tempfile::tempdir().expect("tempdir");
    let err = rt.fails(&["create", "--bundle", path(empty.path()), "nocfg"]);
    assert!(err.contains("config.json"), "{err}");

    std::fs::write(empty.path().join("config.json"), "{ not json").expect("write");
    let err = rt.fails(&["create", "--bundle", path(empty.path()), "badjson"]);
    assert!(err.contains("not a valid OCI runtime config"), "{err}");

    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["root"]["path"] = "missing-rootfs".into());
    let err = rt.fails(&["create", "--bundle", path(b.path()), "norootfs"]);
    assert!(
        err.contains("missing-rootfs") && err.contains("does not exist"),
        "{err}"
    );

    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["namespaces"][0]["type"] = "bogus".into());
    let err = rt.fails(&["create", "--bundle", path(b.path()), "badns"]);
    assert!(err.contains("bogus"), "{err}");

    let b = Bundle::new(&["no-such-program"]);
    let err = rt.fails(&["create", "--bundle", path(b.path()), "noexe"]);
    assert!(err.contains("no-such-program"), "{err}");

    let err = rt.fails(&["create", "--bundle", path(b.path()), "bad/id"]);
    assert!(err.contains("invalid"), "{err}");
    let err = rt.fails(&["start", "nonexistent"]);
    assert!(err.contains("does not exist"), "{err}");

    assert!(rt.ids().is_empty(), "failed creates leave no state");
    for id in ["nocfg", "badjson", "norootfs", "badns", "noexe"] {
        assert!(
            cgroup_dirs(id).is_empty(),
            "failed create left a cgroup for {id}"
        );
        assert!(
            !rt.root.path().join(id).exists(),
            "failed create left {id}'s state dir"
        );
    }
}

/// CVE-2019-5736: a container process that opens /proc/PID/exe of a runtime
/// process must not reach the host binary.
#[test]
fn cve_2019_5736_runtime_binary_is_a_sealed_copy() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("cve5736");
    let b = Bundle::new(&["true"]);
    let before = std::fs::read(CAIS).expect("binary");
    rt.ok(&["create", "--bundle", path(b.path()), &id]);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    // Before start, the container's pid 1 is the runtime's init. Keep an
    // O_PATH handle to its binary, as the attack does, and use it after the
    // runtime has left.
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .expect("O_PATH handle on the init's binary");
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    let reopened = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"pwned"));
    assert!(
        reopened.is_err(),
        "the runtime's binary cannot be reopened for writing through /proc"
    );
    // From inside a running container, through exec: the processes the
    // container sees and the runtime's own binary stay out of reach.
    let id2 = unique_id("cve5736b");
    let b2 = Bundle::new(&["sleep", "100"]);
    rt.ok(&["run", "--detach", "--bundle", path(b2.path()), &id2]);
    let out = rt.output(&[
        "exec",
        &id2,
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do readlink $p/exe; done; echo pwned > /proc/self/exe; echo rc=$?",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("rc=0"),
        "overwriting the runtime through /proc failed: {text}"
    );
    rt.ok(&["delete", "--force", &id2]);
    assert_eq!(
        std::fs::read(CAIS).expect("binary"),
        before,
        "host binary unchanged"
    );
}

/// CVE-2024-21626: no runtime file descriptor (such as a host directory)
/// leaks into the container, so none can serve as a working directory.
#[test]
fn cve_2024_21626_no_fd_or_cwd_leaks_into_the_container() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    // The runtime inherits a host directory fd (not close-on-exec), as a
    // careless caller might pass it.
    let dir = std::fs::File::open("/sys/fs/cgroup").expect("open host dir");
    let fd = dir.as_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on an fd we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    for target in [format!("/proc/self/fd/{fd}"), "/proc/self/fd/7".to_string()] {
        let mut b = Bundle::new(&["sh", "-c", "pwd; ls /"]);
        b.edit(|c| c["process"]["cwd"] = target.clone().into());
        let out = rt.output(&["run", "--bundle", path(b.path()), &unique_id("cwd")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("cpuset") && !stdout.contains("memory"),
            "host dir reachable: {stdout}"
        );
        assert!(!out.status.success(), "cwd {target} must be refused");
    }
    let (code, out, err) = sh(&rt, "ls /proc/self/fd | tr '\\n' ' '", |_| {});
    assert_eq!(code, 0, "{err}");
    // ls itself opens one directory fd (3) to list the others.
    assert_eq!(out.trim(), "0 1 2 3", "only stdio reaches the container");
    drop(dir);
}

/// Ignored signals stay ignored across execve, and the runtime, a Rust
/// program, ignores SIGPIPE itself: the container's process must still
/// start with every signal at its default.
#[test]
fn the_container_process_starts_with_no_signal_ignored() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(&rt, "cat /proc/self/status | grep SigIgn", |_| {});
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "SigIgn:\t0000000000000000");
}

fn container_cgroup(id: &str) -> cais_cgroups::Cgroup {
    cais_cgroups::Cgroup::new(
        cais_cgroups::Layout::detect().expect("layout"),
        &format!("/cais/{id}"),
    )
    .expect("cgroup")
}

#[test]
fn a_memory_hog_is_oom_killed_at_its_limit() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("oom");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] =
            json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
    });
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    rt.wait_status(&id, "stopped");
    assert!(
        container_cgroup(&id).oom_kill_count().expect("oom count") >= 1,
        "the kernel's OOM killer acted in the container's cgroup"
    );
    rt.ok(&["delete", &id]);
    let (code, out, _) = sh(
        &rt,
        "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
        |c| {
            c["linux"]["resources"]["memory"] =
                json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
        },
    );
    assert_eq!(code, 137, "killed by SIGKILL");
    assert!(!out.contains("survived"));
}

#[test]
fn a_fork_bomb_stops_at_pids_max() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    // Each successful fork prints its count; the shell itself is one of the
    // 16 processes allowed, so the 16th fork must fail.
    let (code, out, err) = sh(
        &rt,
        "i=0; while [ $i -lt 64 ]; do sleep 100 & i=$((i+1)); echo $i; done",
        |c| c["linux"]["resources"]["pids"] = json!({"limit": 16}),
    );
    assert!(err.contains("can't fork"), "fork refused: {err}");
    assert_ne!(code, 0);
    assert_eq!(
        out.lines().last(),
        Some("15"),
        "exactly pids.max processes: {out}"
    );

    // The limit and the current count also show through `events --stats`.
    let id = unique_id("pids");
    let mut b = Bundle::new(&["sh", "-c", "sleep 100 & sleep 100 & sleep 100"]);
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 16}));
    rt.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let cg = container_cgroup(&id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cg.pids().expect("pids").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the container's processes never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats: serde_json::Value =
        serde_json::from_str(&rt.ok(&["events", "--stats", &id])).expect("stats JSON");
    assert_eq!(stats["data"]["pids"]["current"], 3);
    assert_eq!(stats["data"]["pids"]["limit"], 16);
    assert!(
        stats["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{stats}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn resource_limits_are_visible_inside_the_container() {
    if !require_root_and_busybox()
        || !cais_testkit::require(
            "cgroup v1 memory, cpu and pids hierarchies (the file names read below)",
            Path::new("/sys/fs/cgroup/memory").is_dir(),
        )
    {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares \
         /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max",
        |c| {
            c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
            c["linux"]["resources"]["cpu"] =
                json!({"shares": 512, "quota": 50000, "period": 100000});
            c["linux"]["resources"]["pids"] = json!({"limit": 99});
        },
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["67108864", "512", "50000", "99"]
    );
}

#[test]
fn the_device_cgroup_denies_unlisted_devices() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(
        &rt,
        "head -c 1 /dev/kmsg-host > /dev/null && echo READ; echo x > /dev/null && echo NULL-OK",
        |c| {
            c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/dev/kmsg-host", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]
        }));
        },
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("READ"),
        "the bind-mounted host /dev/kmsg is not in the allow list"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(out.contains("NULL-OK"), "default devices stay usable");
}

#[test]
fn time_namespace_offsets_and_personality_apply() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let (code, out, err) = sh(&rt, "cut -d. -f1 /proc/uptime; uname -m", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1_000_000_000, "nanosecs": 0}});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let uptime: u64 = lines.next().and_then(|l| l.parse().ok()).expect("uptime");
    assert!(uptime >= 1_000_000_000, "boottime offset applied: {uptime}");
    assert_eq!(lines.next(), Some("i686"), "LINUX32 personality");
}

#[test]
fn seccomp_notify_sends_the_listener_fd_with_the_state() {
    if !require_root_and_busybox() {
        return;
    }
    let rt = Rt::new();
    let id = unique_id("notify");
    let dir = tempfile::tempdir().expect("dir");
    let sock = dir.path().join("listener.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/watched; echo rc=$?"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": path(&sock),
            "listenerMetadata": "test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("runtime connects");
        let mut buf = [0u8; 8192];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .expect("recvmsg");
        let fds: Vec<i32> = msg
            .cmsgs()
            .expect("cmsgs")
            .filter_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(f) => Some(f),
                _ => None,
            })
            .flatten()
            .collect();
        let n = msg.bytes;
        let state: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("state JSON");
        // Closing the listener makes notified syscalls fail with ENOSYS.
        for fd in &fds {
            // SAFETY: the fd was just received and is ours.
            unsafe { libc::close(*fd) };
        }
        (state, fds.len())
    });
    let (code, out, err) = rt.run(&b, &id);
    let (state, nfds) = receiver.join().expect("receiver");
    assert_eq!(code, 0, "{err}");
    assert_eq!(nfds, 1, "one seccomp fd");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "test-metadata");
    assert_eq!(state["state"]["id"], id.as_str());
    assert!(
        state["pid"].as_i64().unwrap_or(0) > 1,
        "host pid of the container process"
    );
    assert!(out.contains("rc=1"), "{out} {err}");
}

#[path = "runtime/spec_fields.rs"]
mod spec_fields;
