//! End-to-end tests of the engine: a real `cais daemon`, driven by the
//! real docker CLI and by the API.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
use cais_testkit::daemon::DOCKER;

/// A daemon (see `cais_testkit::daemon`) and the real docker CLI pointed at it.
struct Daemon {
    inner: cais_testkit::daemon::Daemon,
}

impl std::ops::Deref for Daemon {
    type Target = cais_testkit::daemon::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Daemon {
    fn start() -> Daemon {
        Daemon {
            inner: cais_testkit::daemon::Daemon::start(CAIS, false),
        }
    }

    fn image(&self, tag: &str) -> String {
        cais_testkit::busybox_image(&self.root(), tag, serde_json::json!({}))
    }
}

fn ready() -> bool {
    require_root_and_busybox()
        && require(
            "the docker CLI at /usr/local/bin/docker",
            Path::new(DOCKER).exists(),
        )
}

#[test]
fn docker_run_rm_returns_the_exit_code_and_output() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "--rm removed the container"
    );
    // A program that does not exist: docker's 127 and a message, and the
    // `--rm` container is removed (the CLI waits for that before exiting,
    // so a container left behind would hang it: bounded by `timeout`).
    let out = Command::new("timeout")
        .args(["60", DOCKER, "-H"])
        .arg(format!("unix://{}", d.socket().display()))
        .args(["run", "--rm", "busybox", "/nonexistent"])
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .expect("run docker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("/nonexistent"), "{stderr}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "", "--rm removed it");
}

/// The shim creates containers itself, forking their bootstrap and init:
/// CVE-2019-5736 asks that those processes, which enter the container
/// before they exec, run from a binary nothing can write through. The
/// shim's binary (theirs too) is a read-only view: a handle kept as the
/// attack keeps one is on a read-only mount and refused for writing, while
/// the shim runs and after. (A busy binary is refused with ETXTBSY before
/// the mount is checked, so the mount's flags are asserted too.)
/// CVE-2024-21626: only stdio reaches the container's process, which
/// starts with no signal ignored.
#[test]
fn the_shim_runs_sealed_and_the_container_gets_only_stdio() {
    use std::os::unix::fs::OpenOptionsExt;
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let before = std::fs::read(CAIS).expect("binary");
    let id = d
        .docker_ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let dir = d.root().join("engine/containers").join(&id);
    let shim: i32 = std::fs::read_to_string(dir.join("shim.pid"))
        .expect("shim pid")
        .trim()
        .parse()
        .expect("pid");
    // Named for ps, though executed through /proc/self/fd/N.
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{shim}/comm"))
            .expect("comm")
            .trim(),
        "cais-shim"
    );
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{shim}/exe"))
        .expect("O_PATH handle on the shim's binary");
    let through = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
    let reopen = || std::fs::OpenOptions::new().write(true).open(&through);
    let read_only_mount = || {
        nix::sys::statvfs::statvfs(through.as_str())
            .expect("statvfs through the handle")
            .flags()
            .contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
    };
    assert!(read_only_mount(), "the shim runs from a read-only mount");
    let err = reopen().expect_err("the shim's binary is not writable");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
        "{err}"
    );
    d.docker_ok(&["rm", "-f", &id]);
    wait_until("the shim to exit", || {
        !Path::new(&format!("/proc/{shim}")).exists()
    });
    assert!(read_only_mount(), "still read-only once the shim is gone");
    let err = reopen().expect_err("still not writable once the shim is gone");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
        "{err}"
    );
    assert_eq!(
        std::fs::read(CAIS).expect("binary"),
        before,
        "host binary unchanged"
    );

    let out = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ls /proc/self/fd | tr '\\n' ' '; echo; cat /proc/self/status | grep SigIgn",
    ]);
    let mut lines = out.lines();
    // ls opens one directory fd (3) to list the others.
    assert_eq!(lines.next().map(str::trim), Some("0 1 2 3"), "{out}");
    assert_eq!(lines.next(), Some("SigIgn:\t0000000000000000"), "{out}");
}

/// A raw API call: (status, body).
fn api(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
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

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    d.docker_ok(&["inspect", "-f", format, name])
        .trim()
        .to_string()
}

#[test]
fn a_whole_container_life_through_the_docker_cli() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ]);
    assert!(d.docker_ok(&["ps"]).contains("web"));
    assert_eq!(inspect(&d, "web", "{{.State.Running}}"), "true");
    assert_eq!(inspect(&d, "web", "{{.Name}}"), "/web");
    wait_until("logs", || d.docker_ok(&["logs", "web"]).contains("tick"));
    let out = d.docker_ok(&["exec", "web", "sh", "-c", "echo inside; hostname"]);
    assert!(out.starts_with("inside\n"), "{out}");
    let code = d
        .docker(&["exec", "web", "sh", "-c", "exit 7"])
        .status
        .code();
    assert_eq!(code, Some(7), "exec returns the exit code");
    let top = d.docker_ok(&["top", "web"]);
    assert!(top.contains("sleep") || top.contains("while"), "{top}");
    let stats = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "web",
    ]);
    assert!(stats.starts_with("web "), "{stats}");
    d.docker_ok(&["pause", "web"]);
    assert!(d.docker_ok(&["ps"]).contains("Paused"));
    d.docker_ok(&["unpause", "web"]);
    // busybox sh as pid 1 ignores SIGTERM: stop kills it after the grace period.
    let t = Instant::now();
    d.docker_ok(&["stop", "-t", "1", "web"]);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "stop waited for the grace period"
    );
    assert_eq!(inspect(&d, "web", "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&d, "web", "{{.State.ExitCode}}"), "137");
    assert!(
        d.docker_ok(&["logs", "--tail", "1", "web"])
            .contains("tick"),
        "logs survive the stop"
    );
    d.docker_ok(&["start", "web"]);
    assert_eq!(inspect(&d, "web", "{{.State.Running}}"), "true");
    d.docker_ok(&["rm", "-f", "web"]);
    assert!(!d.docker_ok(&["ps", "-a"]).contains("web"));
}

#[test]
fn exec_with_a_terminal_through_a_pty() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&["run", "-d", "--name", "t", "busybox", "sleep", "1000"]);
    // script(1) gives the docker CLI a real terminal.
    let cmd = format!(
        "{DOCKER} -H unix://{} exec -it t sh -c 'tty; echo cols=$(stty size)'",
        d.socket().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/"),
        "exec -it has a terminal: {text}"
    );
    let out = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{DOCKER} -H unix://{} run --rm -it busybox sh -c 'tty; exit 5'",
                d.socket().display()
            ),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/0"),
        "run -it has a terminal: {text}"
    );
}

#[test]
fn restart_policy_restarts_a_crashing_container() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    wait_until("three restarts", || {
        inspect(&d, "crash", "{{.RestartCount}}") == "3"
            && inspect(&d, "crash", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        inspect(&d, "crash", "{{.RestartCount}}"),
        "3",
        "on-failure:3 stops after three restarts"
    );
    assert_eq!(d.docker_ok(&["logs", "crash"]).matches("run").count(), 4);
}

#[test]
fn commit_makes_an_image_of_the_changes() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo data > /made-here; rm /bin/vi",
    ]);
    d.docker_ok(&["commit", "src", "snap:1"]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "snap:1",
        "sh",
        "-c",
        "cat /made-here; ls /bin/vi || echo gone",
    ]);
    assert_eq!(out, "data\ngone\n");
    assert!(d.docker_ok(&["images"]).contains("snap"));
    let history = d.docker_ok(&["history", "snap:1"]);
    assert!(history.lines().count() >= 3, "{history}");
}

#[test]
fn named_volumes_outlive_containers() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&["volume", "create", "data"]);
    assert!(d.docker_ok(&["volume", "ls"]).contains("data"));
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo persisted > /data/f",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "persisted\n"
    );
    let err = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert!(!err.status.success(), "a read-only volume refuses writes");
    d.docker_ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "data:/data",
        "busybox",
        "true",
    ]);
    let busy = d.docker(&["volume", "rm", "data"]);
    assert!(!busy.status.success(), "a volume in use is not removed");
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "data"]);
    assert!(!d.docker_ok(&["volume", "ls"]).contains("data"));
}

#[test]
fn images_tag_inspect_and_rmi() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let id = d.image("busybox");
    d.docker_ok(&["tag", "busybox", "mybox:1"]);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert!(
        images.contains("mybox:1") && images.contains("busybox:latest"),
        "{images}"
    );
    assert_eq!(inspect(&d, "mybox:1", "{{.Id}}"), id);
    d.docker_ok(&["rmi", "mybox:1"]);
    assert!(!d.docker_ok(&["images"]).contains("mybox"));
    d.docker_ok(&["run", "--name", "holder", "busybox", "true"]);
    let busy = d.docker(&["rmi", "busybox"]);
    assert!(
        !busy.status.success(),
        "an image used by a container is not removed"
    );
    d.docker_ok(&["rm", "holder"]);
    d.docker_ok(&["rmi", "busybox"]);
    assert!(!d.docker_ok(&["images"]).contains("busybox"));
}

#[test]
fn containers_survive_a_daemon_crash_and_come_back_after_a_host_restart() {
    if !ready() {
        return;
    }
    let mut d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 1000",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid: i32 = inspect(&d, "keep", "{{.State.Pid}}").parse().expect("pid");
    d.kill9();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlives the daemon"
    );
    d.spawn();
    assert!(d.docker_ok(&["ps"]).contains("keep"));
    assert!(
        d.docker_ok(&["logs", "keep"]).contains("before"),
        "logs intact"
    );
    // A host-style restart: the daemon and every container process die.
    d.kill9();
    for name in ["keep", "always"] {
        let dir = d.root().join("engine/containers");
        for entry in std::fs::read_dir(&dir).expect("containers").flatten() {
            let rec: serde_json::Value = serde_json::from_slice(
                &std::fs::read(entry.path().join("container.json")).expect("record"),
            )
            .expect("json");
            if rec["name"] == name {
                let shim: i32 = std::fs::read_to_string(entry.path().join("shim.pid"))
                    .expect("shim pid")
                    .trim()
                    .parse()
                    .expect("pid");
                let init = rec["state"]["Pid"].as_i64().expect("pid") as i32;
                // SAFETY: signalling processes this test started.
                unsafe {
                    libc::kill(shim, libc::SIGKILL);
                    libc::kill(init, libc::SIGKILL);
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    d.spawn();
    wait_until("the always container to run again", || {
        inspect(&d, "always", "{{.State.Running}}") == "true"
    });
    assert_eq!(
        inspect(&d, "keep", "{{.State.Running}}"),
        "false",
        "no restart policy: stays down"
    );
}

/// A daemon upgraded over records the previous format wrote (no
/// `version`, the state in the API's shape) finds every container again:
/// the live one keeps its process and its monitor, the others keep their
/// states, and the next write of a record is the current format.
#[test]
fn records_in_the_previous_format_survive_an_upgrade() {
    if !ready() {
        return;
    }
    let mut d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = d.docker(&["run", "--name", "done", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    d.docker_ok(&["create", "--name", "fresh", "busybox", "true"]);
    wait_until("the health check", || {
        inspect(&d, "live", "{{.State.Health.Status}}") == "healthy"
    });
    let pid = inspect(&d, "live", "{{.State.Pid}}");
    let mut states = std::collections::BTreeMap::new();
    for name in ["live", "done", "fresh"] {
        let (status, body) = api(&d, "GET", &format!("/containers/{name}/json"), "");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("inspect JSON");
        states.insert(name, v["State"].clone());
    }
    d.kill9();
    let dir = d.root().join("engine/containers");
    let record = |id: &Path| id.join("container.json");
    for entry in std::fs::read_dir(&dir).expect("containers").flatten() {
        let mut rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record(&entry.path())).expect("record"))
                .expect("json");
        assert_eq!(rec["version"], 1, "the current format has a version");
        let name = rec["name"].as_str().expect("name").to_string();
        rec.as_object_mut().expect("object").remove("version");
        rec["state"] = states[name.as_str()].clone();
        std::fs::write(record(&entry.path()), rec.to_string()).expect("write");
    }
    d.spawn();
    assert_eq!(
        inspect(&d, "live", "{{.State.Status}} {{.State.Pid}}"),
        format!("running {pid}"),
        "the same process, found again"
    );
    assert_eq!(
        inspect(&d, "done", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );
    assert_eq!(inspect(&d, "fresh", "{{.State.Status}}"), "created");
    assert!(d.docker_ok(&["ps", "-a"]).contains("Exited (3)"));
    // Its monitor is back: the exit is seen and recorded, in the new format.
    d.docker_ok(&["stop", "-t", "1", "live"]);
    assert_eq!(inspect(&d, "live", "{{.State.Status}}"), "exited");
    let id = inspect(&d, "live", "{{.Id}}");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record(&dir.join(&id))).expect("record"))
            .expect("json");
    assert_eq!(rec["version"], 1, "{rec}");
    assert_eq!(rec["state"]["Status"], "exited", "{rec}");
    d.docker_ok(&["start", "fresh"]);
}

#[test]
fn bad_input_gets_clear_errors() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let (status, body) = api(
        &d,
        "POST",
        "/v1.47/containers/create",
        r#"{"Image":"nosuch"}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("No such image: nosuch"), "{body}");
    let (status, body) = api(
        &d,
        "POST",
        "/containers/create?name=dup",
        r#"{"Image":"busybox","Cmd":["true"]}"#,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        &d,
        "POST",
        "/containers/create?name=dup",
        r#"{"Image":"busybox","Cmd":["true"]}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already in use"), "{body}");
    let (status, body) = api(&d, "POST", "/containers/create", r#"{"Image": "busybox", "#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid JSON"), "{body}");
    let (status, body) = api(
        &d,
        "POST",
        "/containers/create?name=bad/name",
        r#"{"Image":"busybox"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let out = d.docker(&["run", "--memory", "1k", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Minimum memory limit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = api(&d, "GET", "/v1.12/version", "");
    assert_eq!(status, 400, "too old an API version");
    let (status, body) = api(&d, "GET", "/containers/nope/json", "");
    assert_eq!(status, 404);
    assert!(body.contains("No such container"));
    // Nothing half-created: only the one good container exists.
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn import_save_and_load_through_the_daemon() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let tar = cais_testkit::busybox_rootfs_tar(d.dir.path(), &[("etc/motd", b"from a tarball\n")]);
    let out = d.docker_ok(&["import", tar.to_str().expect("utf-8"), "imported:1"]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "imported:1", "cat", "/etc/motd"]),
        "from a tarball\n"
    );
    let archive = d.dir.path().join("saved.tar");
    d.docker_ok(&["save", "-o", archive.to_str().expect("utf-8"), "imported:1"]);
    let id = inspect(&d, "imported:1", "{{.Id}}");
    d.docker_ok(&["rmi", "imported:1"]);
    assert!(!d.docker_ok(&["images"]).contains("imported"));
    let out = d.docker_ok(&["load", "-i", archive.to_str().expect("utf-8")]);
    assert!(out.contains("Loaded image: imported:1"), "{out}");
    assert_eq!(
        inspect(&d, "imported:1", "{{.Id}}"),
        id,
        "the same image comes back"
    );
    let bad = d.dir.path().join("bad.tar");
    std::fs::write(&bad, b"not a tarball at all").expect("write");
    let out = d.docker(&["load", "-i", bad.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "a broken archive is refused");
}

#[test]
fn init_forwards_signals_and_reaps_zombies() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    // pid 1 is the tiny init; sleep is its child and dies of SIGTERM at once.
    d.docker_ok(&[
        "run", "-d", "--init", "--name", "i", "busybox", "sleep", "1000",
    ]);
    let ps = d.docker_ok(&["exec", "i", "ps", "-o", "pid,comm"]);
    assert!(
        ps.lines()
            .any(|l| l.trim().starts_with("1 ") && l.contains("init")),
        "{ps}"
    );
    let t = Instant::now();
    d.docker_ok(&["stop", "-t", "10", "i"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "SIGTERM reached sleep through init"
    );
    assert_eq!(inspect(&d, "i", "{{.State.ExitCode}}"), "143");
    // Orphans are reaped: no zombie stays behind.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.1 &) ; sleep 0.5; ps -o stat | grep -c Z || true",
    ]);
    assert_eq!(out.trim(), "0", "no zombies under init");
}

#[test]
fn push_and_pull_through_the_daemon_with_a_real_registry() {
    if !ready()
        || !require(
            "docker-registry (Distribution)",
            cais_testkit::have_tool("docker-registry"),
        )
    {
        return;
    }
    let registry = cais_testkit::registry::Distribution::start(&Default::default());
    let d = Daemon::start();
    d.image("busybox");
    let remote = format!("{}/team/bb:1", registry.addr);
    d.docker_ok(&["tag", "busybox", &remote]);
    let out = d.docker_ok(&["push", &remote]);
    assert!(out.contains("digest: sha256:"), "{out}");
    let id = inspect(&d, &remote, "{{.Id}}");
    d.docker_ok(&["rmi", &remote]);
    d.docker_ok(&["rmi", "busybox"]);
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    let out = d.docker_ok(&["pull", &remote]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        inspect(&d, &remote, "{{.Id}}"),
        id,
        "the same image comes back"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", &remote, "echo", "pulled"]),
        "pulled\n"
    );
    let missing = d.docker(&["pull", &format!("{}/team/nope:1", registry.addr)]);
    assert!(!missing.status.success(), "a missing image is an error");
}

#[test]
fn diff_export_and_update() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "echo x > /added; rm /bin/vi; sleep 1000",
    ]);
    wait_until("changes", || {
        d.docker_ok(&["diff", "c"]).contains("A /added")
    });
    let diff = d.docker_ok(&["diff", "c"]);
    assert!(diff.contains("D /bin/vi"), "{diff}");
    assert!(diff.contains("C /bin"), "{diff}");
    let tar = d.dir.path().join("export.tar");
    d.docker_ok(&["export", "-o", tar.to_str().expect("utf-8"), "c"]);
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .expect("tar");
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "added"),
        "export has the new file"
    );
    assert!(
        !names
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/vi"),
        "and not the deleted one"
    );
    d.docker_ok(&["update", "--memory", "96m", "--pids-limit", "33", "c"]);
    let out = d.docker_ok(&[
        "exec",
        "c",
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(out, format!("{}\n33\n", 96 << 20));
    assert_eq!(
        inspect(&d, "c", "{{.HostConfig.Memory}}"),
        (96 << 20).to_string()
    );
    let bad = d.docker(&["update", "--memory", "1k", "c"]);
    assert!(!bad.status.success());
}

#[test]
fn cp_in_and_out_stays_inside_the_container() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let secret = d.dir.path().join("host-secret");
    std::fs::write(&secret, "HOSTSECRET").expect("secret");
    let script = format!(
        "echo inside > /data.txt; ln -s {} /escape; ln -s / /hostroot; sleep 1000",
        secret.display()
    );
    d.docker_ok(&["run", "-d", "--name", "c", "busybox", "sh", "-c", &script]);
    wait_until("the container's files", || {
        d.docker(&["exec", "c", "test", "-L", "/escape"])
            .status
            .success()
    });
    let out_dir = d.dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("out");
    d.docker_ok(&["cp", "c:/data.txt", out_dir.to_str().expect("utf-8")]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("data.txt")).expect("copied"),
        "inside\n"
    );
    // A symlink in the container pointing at a host path copies as a link,
    // and following one resolves inside the container, never on the host.
    d.docker_ok(&["cp", "c:/escape", out_dir.to_str().expect("utf-8")]);
    let copied = out_dir.join("escape");
    assert!(std::fs::symlink_metadata(&copied)
        .expect("link")
        .file_type()
        .is_symlink());
    let through = d.docker(&["cp", &format!("c:/hostroot{}", secret.display()), "-"]);
    assert!(
        !String::from_utf8_lossy(&through.stdout).contains("HOSTSECRET"),
        "no host file through a container symlink"
    );
    // Copy in, then a tar with a path that climbs out of the target.
    let src = d.dir.path().join("in.txt");
    std::fs::write(&src, "copied in\n").expect("src");
    d.docker_ok(&["cp", src.to_str().expect("utf-8"), "c:/tmp/"]);
    assert_eq!(
        d.docker_ok(&["exec", "c", "cat", "/tmp/in.txt"]),
        "copied in\n"
    );
    let evil = d.dir.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&evil).expect("tar"));
    let mut h = tar::Header::new_gnu();
    let data = b"escaped";
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // set_path refuses "..": write the raw name like a hostile client would.
    h.as_old_mut().name[..20].copy_from_slice(b"../../../../escaped\0");
    h.set_cksum();
    b.append(&h, &data[..]).expect("append");
    b.finish().expect("finish");
    drop(b);
    let (status, _) = api_put(
        &d,
        "/containers/c/archive?path=/tmp",
        &std::fs::read(&evil).expect("read"),
    );
    assert!(status == 200 || status == 400, "status {status}");
    assert!(
        !d.docker(&["exec", "c", "ls", "/escaped"]).status.success(),
        "nothing written above the target"
    );
}

fn api_put(d: &Daemon, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: cais\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("body");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
fn stdin_is_forwarded_and_its_end_closes_the_containers_stdin() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let mut child = Command::new(DOCKER)
        .arg("-H")
        .arg(format!("unix://{}", d.socket().display()))
        .args(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker run -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"line one\nline two\n").expect("write");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "cat never saw the end of its input"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line one\nline two\ndone\n"
    );
}

#[test]
fn system_df_counts_images_containers_and_volumes() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&["volume", "create", "v1"]);
    d.docker_ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /data/f; head -c 50000 /dev/zero > /big",
    ]);
    let out = d.docker_ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(out.contains("Images 1 1"), "{out}");
    assert!(out.contains("Containers 1 0"), "{out}");
    assert!(out.contains("Local Volumes 1 1"), "{out}");
    let verbose = d.docker_ok(&["system", "df", "-v"]);
    assert!(
        verbose.contains("v1") && verbose.contains("writer"),
        "{verbose}"
    );
}

#[test]
fn tcp_needs_tls_with_client_certificates() {
    if !ready()
        || !require(
            "openssl at /usr/bin/openssl",
            Path::new("/usr/bin/openssl").exists(),
        )
    {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("ct")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let port = cais_testkit::registry::free_port("127.0.0.1");
    let tcp = format!("tcp://127.0.0.1:{port}");
    let unix = format!("unix://{}", dir.path().join("api.sock").display());
    let base = |extra: &[&str]| {
        let mut c = Command::new(CAIS);
        c.args(["daemon", "-H", &unix, "-H", &tcp, "--data-root"])
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .args(extra)
            .stdin(Stdio::null());
        c
    };
    // Plain TCP is refused outright.
    let out = base(&[]).output().expect("daemon");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --tlsverify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ca, cert, key) = cais_testkit::registry::make_ca_and_cert(dir.path(), "127.0.0.1");
    let p = |n: &str| dir.path().join(n);
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=client",
        "-keyout",
        p("client.key").to_str().expect("utf-8"),
        "-out",
        p("client.csr").to_str().expect("utf-8"),
    ]);
    std::fs::write(p("client.cnf"), "extendedKeyUsage=clientAuth\n").expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-CAcreateserial",
        "-in",
        p("client.csr").to_str().expect("utf-8"),
        "-CA",
        ca.to_str().expect("utf-8"),
        "-CAkey",
        p("ca.key").to_str().expect("utf-8"),
        "-extfile",
        p("client.cnf").to_str().expect("utf-8"),
        "-out",
        p("client.crt").to_str().expect("utf-8"),
    ]);
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let mut daemon = base(&[
        "--tlsverify",
        "--tlscacert",
        &s(&ca),
        "--tlscert",
        &s(&cert),
        "--tlskey",
        &s(&key),
    ])
    .stderr(Stdio::null())
    .spawn()
    .expect("daemon");
    wait_until("the TCP listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let docker = |extra: &[String]| {
        Command::new(DOCKER)
            .arg("-H")
            .arg(&tcp)
            .args(extra)
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_CONFIG", dir.path().join("dc"))
            .output()
            .expect("docker")
    };
    let with_cert = docker(&[
        "--tlsverify".into(),
        format!("--tlscacert={}", s(&ca)),
        format!("--tlscert={}", s(&p("client.crt"))),
        format!("--tlskey={}", s(&p("client.key"))),
    ]);
    let without_cert = docker(&["--tlsverify".into(), format!("--tlscacert={}", s(&ca))]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        with_cert.status.success(),
        "{}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    assert!(!String::from_utf8_lossy(&with_cert.stdout).trim().is_empty());
    assert!(
        !without_cert.status.success(),
        "a client without a certificate is refused"
    );
}

#[test]
fn kill_waits_for_the_exit_so_rm_follows() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    for i in 0..3 {
        let name = format!("victim{i}");
        d.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]);
        // The shell's `&&`: rm runs right after kill returns, with no -f.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{DOCKER} kill {name} && {DOCKER} rm {name}"))
            .env("DOCKER_HOST", d.host())
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "kill && rm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
    // A signal other than KILL does not wait (a shell as pid 1 ignores
    // SIGTERM), and the container keeps running.
    d.docker_ok(&["run", "-d", "--name", "stubborn", "busybox", "sleep", "300"]);
    d.docker_ok(&["kill", "-s", "TERM", "stubborn"]);
    assert_eq!(inspect(&d, "stubborn", "{{.State.Running}}"), "true");
    d.docker_ok(&["rm", "-f", "stubborn"]);
}

#[test]
fn filters_follow_dockers_semantics() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    for (name, labels) in [
        ("both", &["a=1", "b=2"][..]),
        ("only_a", &["a=1"][..]),
        ("only_b", &["b=2"][..]),
        ("other_b", &["a=1", "b=3"][..]),
    ] {
        let mut args = vec!["create", "--name", name];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.extend(["busybox", "true"]);
        d.docker_ok(&args);
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ps", "-a", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        let mut v: Vec<String> = d.docker_ok(&all).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    // Two labels AND together.
    assert_eq!(
        names(&["--filter", "label=a=1", "--filter", "label=b=2"]),
        ["both"]
    );
    // Presence of a key.
    assert_eq!(
        names(&["--filter", "label=b"]),
        ["both", "only_b", "other_b"]
    );
    // Two names OR together, and AND with a label.
    assert_eq!(
        names(&[
            "--filter",
            "name=only",
            "--filter",
            "name=both",
            "--filter",
            "label=a=1"
        ]),
        ["both", "only_a"]
    );
    // An unknown key is dockerd's 400, not a match-all.
    let out = d.docker(&["ps", "--filter", "bogus=1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid filter 'bogus'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.docker(&["ps", "--filter", "status=sleeping"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid filter 'status=sleeping'"));

    // Volumes: labels filter them.
    d.docker_ok(&[
        "volume", "create", "--label", "k=v", "--label", "team=x", "vol1",
    ]);
    d.docker_ok(&["volume", "create", "--label", "k=w", "vol2"]);
    d.docker_ok(&["volume", "create", "vol3"]);
    let vols = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["volume", "ls", "--format", "{{.Name}}"];
        all.extend_from_slice(args);
        d.docker_ok(&all).lines().map(str::to_string).collect()
    };
    assert_eq!(vols(&["--filter", "label=k=v"]), ["vol1"]);
    assert_eq!(vols(&["--filter", "label=k"]), ["vol1", "vol2"]);
    assert_eq!(
        vols(&["--filter", "label=k=v", "--filter", "label=team=y"]),
        Vec::<String>::new()
    );
    // Both encodings of the query, straight to the API.
    for query in [r#"{"label":["k=v"]}"#, r#"{"label":{"k=v":true}}"#] {
        let path = format!("/volumes?filters={}", encode(query));
        let (status, body) = api(&d, "GET", &path, "");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("volume list JSON");
        let listed: Vec<&str> = v["Volumes"]
            .as_array()
            .expect("Volumes")
            .iter()
            .filter_map(|v| v["Name"].as_str())
            .collect();
        assert_eq!(listed, ["vol1"], "{query}");
    }
    let (status, body) = api(
        &d,
        "GET",
        &format!("/networks?filters={}", encode(r#"{"ancestor":["x"]}"#)),
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid filter 'ancestor'"), "{body}");
    // Prune by label removes only what matches.
    d.docker_ok(&["container", "prune", "-f", "--filter", "label=b=2"]);
    assert_eq!(names(&[]), ["only_a", "other_b"]);
    d.docker_ok(&["rm", "only_a", "other_b"]);
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /containers/{id}/attach/ws`: the WebSocket handshake of RFC 6455
/// (the accept key of section 1.3's example), output in text frames
/// without docker's stream headers, input from a masked client frame.
#[test]
fn attach_over_a_websocket() {
    use std::io::{Read, Write};
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    d.docker_ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "ws",
        "busybox",
        "sh",
        "-c",
        "echo first; while read l; do echo \"got $l\"; done",
    ]);
    wait_until("the first line", || {
        d.docker_ok(&["logs", "ws"]).contains("first")
    });
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET /v1.41/containers/ws/attach/ws?logs=1&stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: cais\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("read the handshake answer");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    let mut frame = || -> (u8, String) {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).expect("frame header");
        let mut payload = vec![0u8; (h[1] & 0x7f) as usize];
        s.read_exact(&mut payload).expect("frame payload");
        (h[0], String::from_utf8_lossy(&payload).into_owned())
    };
    assert_eq!(frame(), (0x81, "first\n".to_string()), "the log, raw");
    // A masked text frame from the client (RFC 6455 section 5.3).
    let mask = [1u8, 2, 3, 4];
    let data = b"hello\n";
    let mut f = vec![0x81, 0x80 | data.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut s2 = s.try_clone().expect("clone");
    s2.write_all(&f).expect("send a frame");
    let mut frame = || -> (u8, String) {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).expect("frame header");
        let mut payload = vec![0u8; (h[1] & 0x7f) as usize];
        s.read_exact(&mut payload).expect("frame payload");
        (h[0], String::from_utf8_lossy(&payload).into_owned())
    };
    assert_eq!(frame(), (0x81, "got hello\n".to_string()), "live output");
    d.docker_ok(&["rm", "-f", "ws"]);
}

/// A node outside a swarm answers the swarm endpoints with dockerd's 503
/// and words, and refuses what needs one (docker CLI's view); `docker cp`
/// reaches into volumes; a health probe that outlives its timeout is
/// killed inside the container too.
#[test]
fn swarm_refusals_cp_through_volumes_and_health_timeouts() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let out = d.docker(&["swarm", "leave", "--force"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("This node is not part of a swarm"),
        "{out:?}"
    );
    let out = d.docker(&["node", "ls"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("This node is not a swarm manager"),
        "{out:?}"
    );
    assert_eq!(api(&d, "GET", "/v1.41/services", "").0, 503);
    let out = d.docker(&["network", "create", "--ingress", "ing"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Ingress network can only be global scope network"),
        "{out:?}"
    );
    // cp into and out of a named volume and a bind mount.
    let host_dir = d.dir.path().join("bound");
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    let bind = format!("{}:/bound", host_dir.display());
    d.docker_ok(&[
        "create",
        "--name",
        "cpv",
        "-v",
        "vol:/data",
        "-v",
        &bind,
        "busybox",
        "true",
    ]);
    let file = d.dir.path().join("note.txt");
    std::fs::write(&file, "in the volume\n").expect("write");
    d.docker_ok(&["cp", file.to_str().expect("utf-8"), "cpv:/data/note.txt"]);
    d.docker_ok(&["cp", file.to_str().expect("utf-8"), "cpv:/bound/note.txt"]);
    assert_eq!(
        std::fs::read_to_string(host_dir.join("note.txt")).expect("bound file"),
        "in the volume\n"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "vol:/v",
            "busybox",
            "cat",
            "/v/note.txt"
        ]),
        "in the volume\n"
    );
    let back = d.dir.path().join("back.txt");
    d.docker_ok(&["cp", "cpv:/data/note.txt", back.to_str().expect("utf-8")]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("copied out"),
        "in the volume\n"
    );
    // A probe of `sleep 300` with a one-second timeout.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "slowprobe",
        "--health-cmd",
        "sleep 300",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    wait_until("the container to be unhealthy", || {
        inspect(&d, "slowprobe", "{{.State.Health.Status}}") == "unhealthy"
    });
    let log = inspect(&d, "slowprobe", "{{json .State.Health.Log}}");
    assert!(log.contains("Health check exceeded timeout (1s)"), "{log}");
    // At most the probe running right now is left: the timed-out ones
    // were killed.
    let ps = d.docker_ok(&["top", "slowprobe"]);
    let probes = ps.lines().filter(|l| l.contains("sleep 300")).count();
    assert!(probes <= 2, "timed-out probes were left running:\n{ps}");
    d.docker_ok(&["rm", "-f", "slowprobe", "cpv"]);
}
