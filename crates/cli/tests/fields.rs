//! Every field of a create, update or exec request applied or refused,
//! through the real docker CLI against one cais daemon shared by the
//! tests of this binary: each applied option is checked by its effect
//! inside the container (the limit in its cgroup file, the namespace it
//! shares, the group in `id`, the rotated log files, the device node...),
//! each refused one by the docker CLI's exit status, dockerd's message and
//! nothing created.
//!
//! Needs root, a static busybox and the docker CLI at /usr/local/bin/docker;
//! the tests run in parallel, so each names its containers after itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use cais_testkit::daemon::{shared_with, SharedDaemon, DOCKER};
use cais_testkit::{require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
/// The image the tests run: busybox with groups in /etc/group.
const IMAGE: &str = "fields-busybox";
/// Every refused run carries it, to find what a refusal left behind.
const REFUSED_LABEL: &str = "fields.refused=1";

struct Fixture {
    d: SharedDaemon,
    cdi: PathBuf,
}

/// The CDI directory, made before the daemon starts (it is a flag of it)
/// and removed when the test binary exits.
fn cdi_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cais-fields-cdi-{}", std::process::id()))
}

extern "C" fn remove_cdi_dir() {
    let _ = std::fs::remove_dir_all(cdi_dir());
}

fn fixture() -> Option<&'static Fixture> {
    if !require_root_and_busybox()
        || !require(
            "the docker CLI at /usr/local/bin/docker",
            Path::new(DOCKER).exists(),
        )
    {
        return None;
    }
    static F: OnceLock<Fixture> = OnceLock::new();
    Some(F.get_or_init(|| {
        let cdi = cdi_dir();
        std::fs::create_dir_all(&cdi).expect("cdi dir");
        // SAFETY: registering a plain extern "C" function with atexit has
        // no precondition; it runs once at process exit.
        unsafe { libc::atexit(remove_cdi_dir) };
        std::fs::write(
            cdi.join("example.yaml"),
            "cdiVersion: \"0.6.0\"\nkind: example.com/dev\ndevices:\n  - name: zero\n    containerEdits:\n      env: [CDI_DEVICE=zero]\n      deviceNodes:\n        - path: /dev/cdi-zero\n          hostPath: /dev/zero\n",
        )
        .expect("cdi spec");
        let d = shared_with(CAIS, false, &["--cdi-spec-dir", &cdi.to_string_lossy()]);
        let f = Fixture { d, cdi };
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = cais_testkit::busybox_rootfs_tar(
            dir.path(),
            &[(
                "etc/group",
                b"root:x:0:\naudio:x:29:\nstaff:x:50:\nnogroup:x:65534:\n",
            )],
        );
        let out = f.docker(&["import", &tar.to_string_lossy(), IMAGE]);
        assert!(out.status.success(), "import: {}", text(&out.stderr));
        f
    }))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Fixture {
    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(&self.d.host)
            .args(args)
            .env("DOCKER_CONFIG", self.d.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// `docker ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}\ndaemon log:\n{}",
            text(&out.stderr),
            text(&out.stdout),
            self.d.log()
        );
        text(&out.stdout)
    }

    /// `docker run --rm FLAGS IMAGE sh -c SCRIPT`: its output.
    fn run(&self, flags: &[&str], script: &str) -> String {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend([IMAGE, "sh", "-c", script]);
        self.ok(&args)
    }

    /// A detached container that sleeps: its id.
    fn sleeper(&self, name: &str, flags: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(flags);
        args.extend([IMAGE, "sleep", "600"]);
        self.ok(&args).trim().to_string()
    }

    fn exec(&self, name: &str, script: &str) -> String {
        self.ok(&["exec", name, "sh", "-c", script])
    }

    fn rm(&self, names: &[&str]) {
        let mut args = vec!["rm", "-f"];
        args.extend(names);
        let _ = self.docker(&args);
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.d.dir.join("root/engine/containers").join(id)
    }

    /// A raw API call: (status, body).
    fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let socket = self.d.host.trim_start_matches("unix://");
        let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: cais\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// The `message` of an error body.
fn message_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The namespace link of this (the host's) process.
fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("ns link")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn namespaces_are_the_hosts_or_another_containers_as_asked() {
    let Some(f) = fixture() else { return };
    for (flag, kind) in [
        ("--pid=host", "pid"),
        ("--uts=host", "uts"),
        ("--ipc=host", "ipc"),
        ("--cgroupns=host", "cgroup"),
    ] {
        let mine = f.run(&[], &format!("readlink /proc/self/ns/{kind}"));
        assert_ne!(
            mine.trim(),
            host_ns(kind),
            "{kind}: a namespace of its own by default"
        );
        let shared = f.run(&[flag], &format!("readlink /proc/self/ns/{kind}"));
        assert_eq!(shared.trim(), host_ns(kind), "{flag}");
    }
    // The host's PID namespace shows the host's processes, its UTS the
    // host's name.
    let pids = f.run(&["--pid=host"], "ls /proc | grep -c '^[0-9]'");
    assert!(pids.trim().parse::<u32>().expect("a count") > 3, "{pids}");
    let host_name = nix::unistd::gethostname().expect("hostname");
    assert_eq!(
        f.run(&["--uts=host"], "hostname").trim(),
        host_name.to_string_lossy()
    );
    f.rm(&["ns-donor", "ns-private"]);
    f.sleeper("ns-donor", &["--ipc=shareable"]);
    f.sleeper("ns-private", &[]);
    let donor = |kind: &str| f.exec("ns-donor", &format!("readlink /proc/self/ns/{kind}"));
    let joined = f.run(
        &["--pid=container:ns-donor", "--ipc=container:ns-donor"],
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; ps -o comm | grep -c sleep; echo hi > /dev/shm/from-joiner",
    );
    let lines: Vec<&str> = joined.lines().collect();
    assert_eq!(lines[0], donor("pid").trim());
    assert_eq!(lines[1], donor("ipc").trim());
    assert_eq!(lines[2], "1", "the donor's sleep is visible: {joined}");
    assert_eq!(
        f.exec("ns-donor", "cat /dev/shm/from-joiner").trim(),
        "hi",
        "one /dev/shm"
    );
    assert_eq!(
        f.inspect("ns-private", "{{.HostConfig.IpcMode}}"),
        "private"
    );
    let out = f.docker(&["run", "--rm", "--ipc=container:ns-private", IMAGE, "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains(": non-shareable IPC (hint: use IpcMode:shareable for the donor container)"),
        "{}",
        text(&out.stderr)
    );
    // --ipc none: no /dev/shm at all.
    let out = f.docker(&["run", "--rm", "--ipc=none", IMAGE, "ls", "/dev/shm"]);
    assert!(!out.status.success(), "no /dev/shm with --ipc none");
    f.rm(&["ns-donor", "ns-private"]);
}

#[test]
fn resource_limits_land_in_the_cgroup_files() {
    let Some(f) = fixture() else { return };
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    if v1 {
        let out = f.run(
            &["--memory=64m", "--memory-reservation=32m", "--memory-swap=128m", "--memory-swappiness=30", "--oom-kill-disable", "--pids-limit=42"],
            "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.swappiness pids/pids.max; grep oom_kill_disable memory/memory.oom_control",
        );
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "67108864",
                "33554432",
                "134217728",
                "30",
                "42",
                "oom_kill_disable 1"
            ]
        );
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = (cpus - 1).to_string();
        let out = f.run(
            &["--cpu-shares=512", &format!("--cpuset-cpus={cpu}"), "--cpuset-mems=0", "--cpu-period=50000", "--cpu-quota=25000"],
            "cd /sys/fs/cgroup; cat cpu/cpu.shares cpuset/cpuset.cpus cpuset/cpuset.mems cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us",
        );
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["512", &cpu, "0", "50000", "25000"]
        );
        if Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
            let out = f.run(
                &["--cpu-rt-period=1000000", "--cpu-rt-runtime=10000"],
                "cat /sys/fs/cgroup/cpu/cpu.rt_period_us /sys/fs/cgroup/cpu/cpu.rt_runtime_us",
            );
            assert_eq!(out.lines().collect::<Vec<_>>(), ["1000000", "10000"]);
        }
        // Block IO limits name the device by its host path.
        let root_dev = std::fs::metadata("/").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.dev()
        });
        if let Some(dev) = block_device_of_root(root_dev.ok()) {
            let (major, minor) = dev.1;
            let out = f.run(
                &[&format!("--device-read-bps={}:1mb", dev.0), &format!("--device-write-iops={}:100", dev.0)],
                "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device",
            );
            assert_eq!(
                out.lines().collect::<Vec<_>>(),
                [
                    format!("{major}:{minor} 1048576"),
                    format!("{major}:{minor} 100")
                ]
            );
        }
    }
    // A weight: applied where the kernel has one, else dockerd's warning.
    let out = f.docker(&["run", "--rm", "--blkio-weight=300", IMAGE, "sh", "-c", "cat /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight 2>/dev/null; true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    if Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists()
    {
        assert!(text(&out.stdout).contains("300"), "{}", text(&out.stdout));
    } else {
        assert!(
            text(&out.stderr).contains("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."),
            "{}",
            text(&out.stderr)
        );
    }
    // Limits of the process: rlimits, oom_score_adj, /dev/shm's size.
    let out = f.run(
        &["--ulimit=nofile=1024:2048", "--ulimit=nproc=500", "--oom-score-adj=321", "--shm-size=8m"],
        "ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj; df -k /dev/shm | tail -1 | awk '{print $2}'",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1024", "2048", "500", "321", "8192"]
    );
    // A cgroup parent: the container's cgroup is under it on the host.
    let id = f.sleeper("res-parent", &["--cgroup-parent=/cais-fields-test"]);
    let under = |root: &str| Path::new(root).join("cais-fields-test").join(&id).is_dir();
    assert!(
        under("/sys/fs/cgroup/pids") || under("/sys/fs/cgroup"),
        "the cgroup is under the parent"
    );
    f.rm(&["res-parent"]);
    for ctl in [
        "pids", "memory", "cpu", "cpuset", "blkio", "devices", "freezer", "cpuacct", "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{ctl}/cais-fields-test"));
    }
}

/// The root filesystem's block device and its numbers, when it is one.
fn block_device_of_root(dev: Option<u64>) -> Option<(String, (u64, u64))> {
    let dev = dev?;
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let path = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let node = format!("/dev/{name}");
    Path::new(&node).exists().then_some((node, (major, minor)))
}

#[test]
fn identity_files_and_devices_are_as_asked() {
    let Some(f) = fixture() else { return };
    // Groups by number and by the image's name.
    let id = f.run(
        &["--group-add=123", "--group-add=audio", "-u", "65534"],
        "id -G",
    );
    let groups: Vec<&str> = id.split_whitespace().collect();
    assert!(groups.contains(&"123") && groups.contains(&"29"), "{id}");
    assert_eq!(
        f.run(
            &["--domainname=example.org"],
            "cat /proc/sys/kernel/domainname"
        )
        .trim(),
        "example.org"
    );
    // A working directory the image lacks is made, root's, 0755.
    assert_eq!(
        f.run(
            &["-u", "65534", "-w", "/a/b/c"],
            "pwd; stat -c '%u:%g %a' /a/b/c /a"
        ),
        "/a/b/c\n0:0 755\n0:0 755\n"
    );
    // Namespaced sysctls.
    assert_eq!(
        f.run(
            &[
                "--sysctl=kernel.shmmax=123456",
                "--sysctl=net.ipv4.ip_unprivileged_port_start=80"
            ],
            "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start"
        ),
        "123456\n80\n"
    );
    // A host device at another path: the node, and the permissions given
    // in its cgroup rule (/dev/zero is one every container may use, so
    // the rule is shown on a device containers do not get: opening it
    // for writing with "r" only is refused, with "rw" it opens; nothing
    // is written).
    let out = f.run(
        &["--device=/dev/zero:/dev/myzero"],
        "stat -c '%t:%T' /dev/myzero; head -c 2 /dev/myzero | od -An -tx1",
    );
    assert_eq!(
        out.lines().map(str::trim).collect::<Vec<_>>(),
        ["1:5", "00 00"]
    );
    if let Some(dev) = ["/dev/vcs", "/dev/loop-control"]
        .into_iter()
        .find(|d| Path::new(d).exists())
    {
        let open_for_writing = "true > /dev/dev-under-test && echo opened || echo refused";
        let perms = |p: &str| {
            f.run(
                &[&format!("--device={dev}:/dev/dev-under-test:{p}")],
                open_for_writing,
            )
        };
        assert_eq!(perms("r").trim(), "refused", "{dev} read-only");
        assert_eq!(perms("rw").trim(), "opened", "{dev} read-write");
        // A device cgroup rule lets a node the container makes be opened
        // (the same device, which containers do not get by default).
        let rdev = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(dev).expect("device").rdev()
        };
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        let script = format!(
            "mknod /tmp/node c {major} {minor} 2>/dev/null && true > /tmp/node && echo opened || echo denied"
        );
        assert_eq!(f.run(&[], &script).trim(), "denied");
        let rule = format!("c {major}:{minor} rwm");
        assert_eq!(
            f.run(&["--device-cgroup-rule", &rule], &script).trim(),
            "opened"
        );
        let any_minor = format!("c {major}:* mw");
        assert_eq!(
            f.run(&["--device-cgroup-rule", &any_minor], &script).trim(),
            "opened"
        );
    }
    // A CDI device: its node and its environment.
    let _ = &f.cdi;
    assert_eq!(
        f.run(
            &["--device=example.com/dev=zero"],
            "echo $CDI_DEVICE; stat -c '%t:%T' /dev/cdi-zero"
        ),
        "zero\n1:5\n"
    );
    // The MAC address of the container's interface.
    assert_eq!(
        f.run(
            &["--mac-address=02:42:ac:11:00:0a"],
            "cat /sys/class/net/eth0/address"
        )
        .trim(),
        "02:42:ac:11:00:0a"
    );
    // Read-only root with a tmpfs; init as pid 1.
    assert_eq!(
        f.run(
            &["--read-only", "--tmpfs=/scratch:size=1m"],
            "touch /x 2>/dev/null && echo rw || echo ro; df -k /scratch | tail -1 | awk '{print $2}'"
        ),
        "ro\n1024\n"
    );
    assert!(f
        .run(&["--init"], "cat /proc/1/cmdline | tr '\\0' ' '")
        .starts_with("/dev/init -- "));
    // Annotations reach the runtime's config.
    let id = f.sleeper("ident-annotated", &["--annotation=org.example.fields=yes"]);
    let config =
        std::fs::read_to_string(f.container_dir(&id).join("bundle/config.json")).expect("bundle");
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["annotations"]["org.example.fields"], "yes");
    f.rm(&["ident-annotated"]);
}

#[test]
fn volumes_from_and_bind_propagation() {
    let Some(f) = fixture() else { return };
    f.rm(&["vol-source"]);
    let host = tempfile::tempdir().expect("tempdir");
    f.ok(&[
        "run",
        "--name",
        "vol-source",
        "-v",
        "/data",
        "-v",
        &format!("{}:/b", host.path().display()),
        IMAGE,
        "sh",
        "-c",
        "echo x > /data/f; echo y > /b/g",
    ]);
    assert_eq!(
        f.run(
            &["--volumes-from=vol-source:ro"],
            "cat /data/f /b/g; touch /data/new 2>/dev/null && echo rw || echo ro"
        ),
        "x\ny\nro\n"
    );
    assert_eq!(
        f.run(&["--volumes-from=vol-source"], "touch /data/new && echo rw"),
        "rw\n"
    );
    f.rm(&["vol-source"]);
    // rshared: a mount made in the container appears on the host; the
    // source has to be a shared mount.
    let src = tempfile::tempdir().expect("tempdir");
    let p = src.path().to_string_lossy().into_owned();
    let out = f.docker(&[
        "run",
        "--rm",
        "--label",
        REFUSED_LABEL,
        "-v",
        &format!("{p}:/m:rshared"),
        IMAGE,
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("but it is not a shared mount"),
        "{}",
        text(&out.stderr)
    );
    let run = |args: &[&str]| {
        assert!(
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .expect("run")
                .success(),
            "{args:?}"
        )
    };
    run(&["mount", "--bind", &p, &p]);
    run(&["mount", "--make-shared", &p]);
    std::fs::create_dir(src.path().join("sub")).expect("sub");
    let out = f.docker(&[
        "run",
        "--rm",
        "--privileged",
        "-v",
        &format!("{p}:/m:rshared"),
        IMAGE,
        "sh",
        "-c",
        "mount -t tmpfs from-container /m/sub && sleep 3",
    ]);
    let seen = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.contains(&format!("{p}/sub")) && l.contains("from-container"));
    let _ = Command::new("umount").arg("-R").arg(&p).status();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(seen, "the container's mount propagated to the host");
}

#[test]
fn logs_follow_the_log_driver() {
    let Some(f) = fixture() else { return };
    f.rm(&["log-rotated", "log-none", "log-local", "log-attrs"]);
    f.ok(&[
        "run",
        "--name",
        "log-rotated",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        IMAGE,
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let id = f.inspect("log-rotated", "{{.Id}}");
    let dir = f.container_dir(&id);
    let files: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("container-json.log"))
        .collect();
    assert_eq!(files.len(), 3, "max-file 3: {files:?}");
    for f in &files {
        assert!(
            std::fs::metadata(dir.join(f)).expect("meta").len() <= 1000,
            "{f} within max-size"
        );
    }
    let logs = f.ok(&["logs", "log-rotated"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert!(
        lines.len() < 200 && lines.len() > 10,
        "rotated away: {}",
        lines.len()
    );
    assert_eq!(lines.last(), Some(&"line-199"));
    let first: u32 = lines[0]
        .trim_start_matches("line-")
        .parse()
        .expect("a line");
    assert_eq!(
        lines.len() as u32,
        200 - first,
        "what is kept is whole and in order"
    );
    // none: nothing kept, logs refused in dockerd's words.
    f.ok(&[
        "run",
        "--name",
        "log-none",
        "--log-driver=none",
        IMAGE,
        "echo",
        "hidden",
    ]);
    let out = f.docker(&["logs", "log-none"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("configured logging driver does not support reading"),
        "{}",
        text(&out.stderr)
    );
    let id = f.inspect("log-none", "{{.Id}}");
    assert!(!f.container_dir(&id).join("container-json.log").exists());
    // local: kept and read back.
    f.ok(&[
        "run",
        "--name",
        "log-local",
        "--log-driver=local",
        "--log-opt",
        "max-file=2",
        IMAGE,
        "echo",
        "kept",
    ]);
    assert_eq!(f.ok(&["logs", "log-local"]), "kept\n");
    assert_eq!(
        f.inspect("log-local", "{{.HostConfig.LogConfig.Type}}"),
        "local"
    );
    // Attributes: a tag, labels and variables named by the options.
    f.ok(&[
        "run",
        "--name",
        "log-attrs",
        "--label",
        "tier=web",
        "-e",
        "STAGE=test",
        "--log-opt",
        "tag={{.Name}}",
        "--log-opt",
        "labels=tier",
        "--log-opt",
        "env=STAGE",
        IMAGE,
        "echo",
        "tagged",
    ]);
    let id = f.inspect("log-attrs", "{{.Id}}");
    let line =
        std::fs::read_to_string(f.container_dir(&id).join("container-json.log")).expect("log");
    let rec: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("a line")).expect("json");
    assert_eq!(
        rec["attrs"],
        serde_json::json!({"tag": "log-attrs", "tier": "web", "STAGE": "test"})
    );
    f.rm(&["log-rotated", "log-none", "log-local", "log-attrs"]);
}

#[test]
fn refused_options_fail_with_dockerds_message_and_create_nothing() {
    let Some(f) = fixture() else { return };
    let cases: &[(&[&str], &str)] = &[
        (&["--log-driver=nosuch"], "logger: no log driver named 'nosuch' is registered"),
        (&["--log-opt=max-size=ten"], "invalid size: 'ten'"),
        (&["--log-opt=nosuch=1"], "unknown log opt 'nosuch' for json-file log driver"),
        (&["--runtime=nosuch"], "unknown or invalid runtime name: nosuch"),
        (&["--gpus=all"], "could not select device driver \"\" with capabilities: [[gpu]]"),
        (&["--device=example.com/dev=nope"], "CDI device injection failed: unresolvable CDI devices example.com/dev=nope"),
        (&["--isolation=hyperv"], "invalid isolation 'hyperv' on linux"),
        (&["--storage-opt=size=1G"], "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
        (&["--device=/dev/nosuch"], "error gathering device information while adding custom device \"/dev/nosuch\": no such file or directory"),
        (&["--group-add=nosuch"], "Unable to find group nosuch: no matching entries in group file"),
        (&["--volume-driver=nosuch", "-v", "fields-vol:/v"], "error looking up volume plugin nosuch: plugin \"nosuch\" not found"),
        (&["--volume-driver=nosuch", "-v", "/anonymous"], "error looking up volume plugin nosuch: plugin \"nosuch\" not found"),
        (&["--volumes-from=nosuch"], "No such container: nosuch"),
        (&["--pid=container:nosuch"], "No such container: nosuch"),
        (&["--ipc=container:nosuch"], "No such container: nosuch"),
        (&["--uts=host", "--hostname=h"], "conflicting options: hostname and the UTS mode"),
        (&["--net=host", "--sysctl=net.ipv4.ip_forward=1"], "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
        (&["--cpuset-cpus=0-63"], "Requested CPUs are not available - requested 0-63"),
        (&["--security-opt=nosuch=1"], "invalid --security-opt 2: \"nosuch=1\""),
        (&["--cap-add=NOPE"], "invalid CapAdd: unknown capability: \"CAP_NOPE\""),
        (&["-w", "relative"], "the working directory 'relative' is invalid, it needs to be an absolute path"),
        (&["--mac-address=01:00:00:00:00:01"], "invalid MAC address: 01:00:00:00:00:01"),
        (&["--cgroup-parent=system.slice:x"], "invalid cgroup parent"),
        (&["--cpu-period=10"], "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--label", REFUSED_LABEL];
        args.extend(*flags);
        args.extend([IMAGE, "true"]);
        let out = f.docker(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{flags:?} was not refused");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
    let left = f.ok(&["ps", "-aq", "--filter", &format!("label={REFUSED_LABEL}")]);
    assert_eq!(left.trim(), "", "a refused run created a container");
    // Through the API too: fields the docker CLI checks itself.
    for (body, message) in [
        (
            r#"{"Image":"fields-busybox","HostConfig":{"Ulimits":[{"Name":"nosuch","Soft":1,"Hard":1}]}}"#,
            "invalid ulimit type: nosuch",
        ),
        (
            r#"{"Image":"fields-busybox","HostConfig":{"DeviceCgroupRules":["x 1:3 r"]}}"#,
            "invalid device cgroup rule format: 'x 1:3 r'",
        ),
        (
            r#"{"Image":"fields-busybox","HostConfig":{"Sysctls":{"kernel.foo":"1"}}}"#,
            "sysctl \"kernel.foo\" is not in a separate kernel namespace",
        ),
        (
            r#"{"Image":"fields-busybox","HostConfig":{"IOMaximumIOps":5}}"#,
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps",
        ),
        (
            r#"{"Image":"fields-busybox","HostConfig":{"Cgroup":"container:x"}}"#,
            "is not supported",
        ),
        (
            r#"{"Image":"fields-busybox","HostConfig":{"PidMode":"private"}}"#,
            "invalid PID mode: private",
        ),
        (
            r#"{"Image":"fields-busybox","Env":["=x"]}"#,
            "invalid environment variable: =x",
        ),
    ] {
        let (status, reply) = f.api(
            "POST",
            "/v1.47/containers/create?name=fields-api-refused",
            body,
        );
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(message_of(&reply).contains(message), "{body}: {reply}");
    }
    let (status, _) = f.api("GET", "/containers/fields-api-refused/json", "");
    assert_eq!(status, 404, "nothing was created");
}

#[test]
fn requests_with_nulls_are_taken_as_dockerd_takes_them() {
    let Some(f) = fixture() else { return };
    f.rm(&["null-fields"]);
    let body = r#"{"Image":"fields-busybox","Cmd":"env","Env":["FOO=1","BAR","HOSTNAME"],
        "Entrypoint":null,"Labels":null,"Volumes":null,"ExposedPorts":null,"Healthcheck":null,"StopTimeout":null,
        "HostConfig":{"Memory":67108864,"MemorySwap":null,"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,
        "Binds":null,"Ulimits":null,"CapAdd":null,"LogConfig":null,"RestartPolicy":null,"Devices":null,"Dns":null,
        "Tmpfs":null,"Sysctls":null,"ConsoleSize":null,"GroupAdd":null,"Isolation":null,"CgroupnsMode":null},
        "NetworkingConfig":null}"#;
    let (status, reply) = f.api("POST", "/v1.47/containers/create?name=null-fields", body);
    assert_eq!(status, 201, "{reply}");
    // One string for a command line; a bare name unsets (HOSTNAME, which
    // the daemon sets otherwise).
    let env = f.ok(&["start", "-a", "null-fields"]);
    assert!(env.lines().any(|l| l == "FOO=1"), "{env}");
    assert!(
        !env.lines()
            .any(|l| l.starts_with("BAR") || l.starts_with("HOSTNAME=")),
        "{env}"
    );
    assert_eq!(
        f.inspect("null-fields", "{{json .Config.Env}}"),
        r#"["FOO=1","BAR","HOSTNAME"]"#
    );
    assert_eq!(
        f.inspect("null-fields", "{{.HostConfig.Memory}}"),
        "67108864"
    );
    assert_eq!(f.inspect("null-fields", "{{.HostConfig.LogConfig.Type}} {{.HostConfig.IpcMode}} {{.HostConfig.ShmSize}} {{.HostConfig.Runtime}}"), "json-file private 67108864 cais");
    f.rm(&["null-fields"]);
}

#[test]
fn updates_change_the_cgroup_and_refuse_what_they_cannot_change() {
    let Some(f) = fixture() else { return };
    f.rm(&["upd"]);
    f.sleeper("upd", &["--memory=64m"]);
    f.ok(&[
        "update",
        "--memory=100m",
        "--memory-swap=200m",
        "--cpu-shares=300",
        "--pids-limit=50",
        "--restart=on-failure:3",
        "upd",
    ]);
    if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        assert_eq!(
            f.exec(
                "upd",
                "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes cpu/cpu.shares pids/pids.max"
            ),
            "104857600\n300\n50\n"
        );
    }
    assert_eq!(
        f.inspect(
            "upd",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:3"
    );
    let (status, reply) = f.api(
        "POST",
        "/containers/upd/update",
        r#"{"Ulimits":[{"Name":"nofile","Soft":1,"Hard":1}]}"#,
    );
    assert_eq!(status, 400);
    assert!(
        reply.contains("Ulimits cannot be updated: it is set when the container is created"),
        "{reply}"
    );
    let (status, reply) = f.api("POST", "/containers/upd/update", r#"{"Memory":1024}"#);
    assert_eq!(status, 400);
    assert!(
        reply.contains("Minimum memory limit allowed is 6MB"),
        "{reply}"
    );
    f.rm(&["upd"]);
}

#[test]
fn exec_takes_user_dir_env_privileged_and_detach_keys() {
    let Some(f) = fixture() else { return };
    f.rm(&["exec-fields"]);
    f.sleeper(
        "exec-fields",
        &["-e", "A=1", "-e", "B=2", "--group-add=audio"],
    );
    assert_eq!(
        f.ok(&[
            "exec",
            "-e",
            "A=9",
            "-e",
            "B",
            "exec-fields",
            "sh",
            "-c",
            "echo $A-${B-unset}"
        ]),
        "9-unset\n"
    );
    let id = f.ok(&["exec", "-u", "nobody", "exec-fields", "id"]);
    assert!(
        id.starts_with("uid=65534(nobody)") && id.contains("29(audio)"),
        "{id}"
    );
    assert_eq!(
        f.ok(&["exec", "-w", "/tmp", "exec-fields", "pwd"]),
        "/tmp\n"
    );
    let caps = |args: &[&str]| -> u64 {
        let mut a = vec!["exec"];
        a.extend(args);
        a.extend(["exec-fields", "grep", "CapEff", "/proc/self/status"]);
        let out = f.ok(&a);
        u64::from_str_radix(out.split_whitespace().nth(1).expect("a mask"), 16).expect("hex")
    };
    let plain = caps(&[]);
    let privileged = caps(&["--privileged"]);
    assert!(
        privileged & plain == plain && privileged.count_ones() > plain.count_ones(),
        "{plain:x} {privileged:x}"
    );
    assert!(privileged & (1 << 21) != 0, "CAP_SYS_ADMIN");
    f.ok(&["exec", "--detach-keys=ctrl-x,x", "exec-fields", "true"]);
    let out = f.docker(&["exec", "-u", "nosuch", "exec-fields", "true"]);
    assert!(
        text(&out.stderr)
            .contains("unable to find user nosuch: no matching entries in passwd file"),
        "{}",
        text(&out.stderr)
    );
    let (status, reply) = f.api(
        "POST",
        "/containers/exec-fields/exec",
        r#"{"Cmd":["true"],"DetachKeys":"ctrl-"}"#,
    );
    assert_eq!(status, 400);
    assert!(
        reply.contains("Invalid escape keys (ctrl-) provided"),
        "{reply}"
    );
    f.rm(&["exec-fields"]);
}

#[test]
fn the_console_size_is_the_terminals_first_size() {
    let Some(f) = fixture() else { return };
    f.rm(&["console-size"]);
    let (status, reply) = f.api(
        "POST",
        "/v1.47/containers/create?name=console-size",
        r#"{"Image":"fields-busybox","Tty":true,"Cmd":["stty","size"],"HostConfig":{"ConsoleSize":[30,100]}}"#,
    );
    assert_eq!(status, 201, "{reply}");
    f.ok(&["start", "console-size"]);
    assert_eq!(f.ok(&["wait", "console-size"]).trim(), "0");
    assert_eq!(f.ok(&["logs", "console-size"]).trim(), "30 100");
    f.rm(&["console-size"]);
}

#[test]
fn legacy_links_give_hosts_entries_and_variables() {
    let Some(f) = fixture() else { return };
    f.rm(&["link-target", "link-user"]);
    f.sleeper("link-target", &["-e", "SECRET=42", "--expose", "5432"]);
    let ip = f.inspect("link-target", "{{.NetworkSettings.IPAddress}}");
    let out = f.ok(&[
        "run",
        "--rm",
        "--name",
        "link-user",
        "--link",
        "link-target:db",
        IMAGE,
        "sh",
        "-c",
        "env | grep '^DB_' | sort; grep -w db /etc/hosts | cut -f1",
    ]);
    for want in [
        format!("DB_PORT=tcp://{ip}:5432"),
        format!("DB_PORT_5432_TCP_ADDR={ip}"),
        "DB_NAME=/link-user/db".to_string(),
        "DB_ENV_SECRET=42".to_string(),
        ip.clone(),
    ] {
        assert!(out.lines().any(|l| l == want), "{want} in {out}");
    }
    f.rm(&["link-target"]);
}

#[test]
fn a_volume_driver_is_recorded_when_no_volume_needs_it() {
    let Some(f) = fixture() else { return };
    f.rm(&["voldriver-unused"]);
    f.ok(&[
        "create",
        "--name",
        "voldriver-unused",
        "--volume-driver=foo",
        IMAGE,
        "true",
    ]);
    assert_eq!(
        f.inspect("voldriver-unused", "{{.HostConfig.VolumeDriver}}"),
        "foo"
    );
    assert_eq!(f.ok(&["start", "-a", "voldriver-unused"]), "");
    f.rm(&["voldriver-unused"]);
}

#[test]
fn endpoint_driver_options_are_kept_and_unset_endpoint_lists_are_null() {
    let Some(f) = fixture() else { return };
    f.rm(&["epopts", "epopts-plain"]);
    let _ = f.docker(&["network", "rm", "fields-epnet"]);
    f.ok(&["network", "create", "fields-epnet"]);
    let body = r#"{"Image":"fields-busybox","Cmd":["sleep","600"],
        "HostConfig":{"NetworkMode":"fields-epnet"},
        "NetworkingConfig":{"EndpointsConfig":{"fields-epnet":{"Aliases":["hello"],"DriverOpts":{"com.example.setting":"on"}}}}}"#;
    let (status, reply) = f.api("POST", "/v1.41/containers/create?name=epopts", body);
    assert_eq!(status, 201, "{reply}");
    let plain = r#"{"Image":"fields-busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"fields-epnet"},
        "NetworkingConfig":{"EndpointsConfig":{"fields-epnet":null}}}"#;
    let (status, reply) = f.api("POST", "/v1.41/containers/create?name=epopts-plain", plain);
    assert_eq!(status, 201, "{reply}");
    // Kept from create through start, as asked.
    f.ok(&["start", "epopts"]);
    assert_eq!(
        f.inspect(
            "epopts",
            "{{json (index .NetworkSettings.Networks \"fields-epnet\").DriverOpts}}"
        ),
        r#"{"com.example.setting":"on"}"#
    );
    assert!(f
        .inspect(
            "epopts",
            "{{json (index .NetworkSettings.Networks \"fields-epnet\").Aliases}}"
        )
        .contains("\"hello\""));
    // The option is ignored by the bridge driver: the interface is there
    // with its usual name and address.
    let ip = f.inspect(
        "epopts",
        "{{(index .NetworkSettings.Networks \"fields-epnet\").IPAddress}}",
    );
    assert!(f.exec("epopts", "ip -4 addr show eth0").contains(&ip));
    // Nothing asked: null, as dockerd writes what nobody set.
    let (status, reply) = f.api("GET", "/v1.41/containers/epopts-plain/json", "");
    assert_eq!(status, 200, "{reply}");
    let v: serde_json::Value = serde_json::from_str(&reply).expect("inspect json");
    let ep = &v["NetworkSettings"]["Networks"]["fields-epnet"];
    for k in ["Aliases", "DriverOpts", "Links"] {
        assert!(ep[k].is_null(), "{k} in {ep}");
    }
    f.rm(&["epopts", "epopts-plain"]);
    f.ok(&["network", "rm", "fields-epnet"]);
}

#[test]
fn an_exit_the_restart_policy_follows_is_restarting_at_once_and_ends_a_wait() {
    let Some(f) = fixture() else { return };
    f.rm(&["restarter"]);
    f.ok(&[
        "run",
        "-d",
        "--name",
        "restarter",
        "--restart",
        "always",
        IMAGE,
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    // wait ends with the exit although a start follows, as on dockerd.
    assert_eq!(f.ok(&["wait", "restarter"]).trim(), "3");
    // From the exit on, the container is running or restarting, never
    // exited: a removal without force is refused throughout.
    let out = f.docker(&["rm", "restarter"]);
    assert!(!out.status.success(), "a restarting container was removed");
    assert!(
        text(&out.stderr).contains("stop the container before removing or force remove"),
        "{}",
        text(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut seen = std::collections::BTreeSet::new();
    while std::time::Instant::now() < deadline {
        let (_, reply) = f.api("GET", "/containers/restarter/json", "");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("inspect json");
        seen.insert(v["State"]["Status"].as_str().unwrap_or("?").to_string());
    }
    assert!(!seen.contains("exited"), "states seen: {seen:?}");
    assert!(seen.contains("running"), "states seen: {seen:?}");
    let count: i64 = f
        .inspect("restarter", "{{.RestartCount}}")
        .parse()
        .expect("a count");
    assert!(count >= 1, "restarted {count} times");
    // Forced, it goes and stays gone.
    f.ok(&["rm", "-f", "restarter"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        f.ok(&["ps", "-aq", "--filter", "name=^restarter$"]).trim(),
        ""
    );
}

#[test]
fn link_local_ips_are_further_addresses_of_the_interface() {
    let Some(f) = fixture() else { return };
    let out = f.run(
        &["--link-local-ip", "169.254.8.8"],
        "ip -4 -o addr show eth0",
    );
    assert!(out.contains("inet 169.254.8.8/16"), "{out}");
    // The network's own address stays the interface's first.
    assert!(out.lines().count() >= 2, "{out}");
    f.rm(&["linklocal"]);
    f.ok(&[
        "create",
        "--name",
        "linklocal",
        "--link-local-ip",
        "169.254.8.9",
        IMAGE,
        "true",
    ]);
    assert_eq!(
        f.inspect(
            "linklocal",
            "{{json .NetworkSettings.Networks.bridge.IPAMConfig.LinkLocalIPs}}"
        ),
        r#"["169.254.8.9"]"#
    );
    f.rm(&["linklocal"]);
    for (ip, message) in [
        (
            "10.1.2.3",
            "10.1.2.3 is not a link-local address (169.254.0.0/16)",
        ),
        (
            "fe80::8",
            "IPv6 link-local address fe80::8: cais networks have no IPv6",
        ),
    ] {
        let out = f.docker(&["run", "--rm", "--link-local-ip", ip, IMAGE, "true"]);
        assert!(!out.status.success(), "{ip} was taken");
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
    }
}

#[test]
fn an_ipv6_address_is_kept_on_a_network_with_an_ipv6_pool_but_not_assigned() {
    let Some(f) = fixture() else { return };
    f.rm(&["v6addr"]);
    let _ = f.docker(&["network", "rm", "fields-v6net"]);
    let (status, reply) = f.api(
        "POST",
        "/v1.41/networks/create",
        r#"{"Name":"fields-v6net","IPAM":{"Driver":"default","Config":[{"Subnet":"2001:389::/64"}]}}"#,
    );
    assert_eq!(status, 201, "{reply}");
    let create = |name: &str, ip6: &str| {
        f.api(
            "POST",
            &format!("/v1.41/containers/create?name={name}"),
            &format!(
                r#"{{"Image":"fields-busybox","Cmd":["sleep","600"],"HostConfig":{{"NetworkMode":"fields-v6net"}},
                "NetworkingConfig":{{"EndpointsConfig":{{"fields-v6net":{{"IPAMConfig":{{"IPv6Address":"{ip6}"}}}}}}}}}}"#
            ),
        )
    };
    let (status, reply) = create("v6addr", "2001:389::f00d");
    assert_eq!(status, 201, "{reply}");
    f.ok(&["start", "v6addr"]);
    assert_eq!(
        f.inspect(
            "v6addr",
            "{{(index .NetworkSettings.Networks \"fields-v6net\").IPAMConfig.IPv6Address}}"
        ),
        "2001:389::f00d"
    );
    // The network has no IPv6: the address is not on the interface, the
    // endpoint shows none, and IPv4 works as ever.
    assert_eq!(
        f.inspect(
            "v6addr",
            "{{(index .NetworkSettings.Networks \"fields-v6net\").GlobalIPv6Address}}"
        ),
        ""
    );
    assert!(!f
        .exec("v6addr", "ip -6 addr show eth0")
        .contains("2001:389::f00d"));
    assert!(f
        .exec("v6addr", "ip -4 -o addr show eth0")
        .contains("inet "));
    let (status, reply) = create("v6addr-outside", "2001:388::1");
    assert_eq!(status, 400, "{reply}");
    assert!(
        message_of(&reply).contains("no configured subnet contains IP address 2001:388::1"),
        "{reply}"
    );
    f.rm(&["v6addr"]);
    f.ok(&["network", "rm", "fields-v6net"]);
}

#[test]
fn request_field_names_match_in_any_case_as_go_decodes_them() {
    let Some(f) = fixture() else { return };
    f.rm(&["any-case"]);
    let body = r#"{"image":"fields-busybox","CMD":["true"],"labels":{"a":"b"},
        "hostconfig":{"MEMORY":67108864,"CPURealtimePeriod":0,"restartpolicy":{"name":"on-failure","maximumretrycount":2}}}"#;
    let (status, reply) = f.api("POST", "/v1.41/containers/create?name=any-case", body);
    assert_eq!(status, 201, "{reply}");
    assert_eq!(
        f.inspect(
            "any-case",
            "{{.Config.Image}} {{json .Config.Cmd}} {{.Config.Labels.a}} {{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        r#"fields-busybox ["true"] b 67108864 on-failure:2"#
    );
    f.rm(&["any-case"]);
}
