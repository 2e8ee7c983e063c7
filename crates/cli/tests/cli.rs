//! End-to-end tests of the docker-like `cais` commands: a real `cais
//! daemon`, driven by the `cais` CLI itself through `CAIS_HOST`.
//!
//! Needs root and a static busybox (and `script` for the terminal tests);
//! a missing one fails under `CI` and skips the test otherwise.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{have_tool, require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// A daemon (see `cais_testkit::daemon`) whose store holds a busybox image
/// named `busybox`, and the `cais` CLI pointed at it.
struct Daemon {
    inner: cais_testkit::daemon::Daemon,
}

impl std::ops::Deref for Daemon {
    type Target = cais_testkit::daemon::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Daemon {
    fn start() -> Daemon {
        Daemon {
            inner: cais_testkit::daemon::Daemon::start(CAIS, true),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIS);
        c.args(args)
            .env("CAIS_HOST", self.host())
            .env_remove("CAIS_DATA_ROOT")
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        c
    }

    fn cais(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cais")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cais(args);
        assert!(
            out.status.success(),
            "cais {args:?} failed ({:?}): {}\n{}\ndaemon log:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    /// Runs `command` under a pseudo-terminal (`script`), as a user would.
    fn with_pty(&self, command: &str, input: Option<&str>) -> Output {
        let mut c = Command::new("script");
        c.args(["-qec", command, "/dev/null"])
            .env("CAIS_HOST", self.host())
            .env_remove("CAIS_DATA_ROOT")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run script");
        if let Some(text) = input {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(text.as_bytes()).expect("write input");
        }
        child.wait_with_output().expect("wait for script")
    }
}

fn ready() -> bool {
    require_root_and_busybox()
}

fn ready_with_pty() -> bool {
    ready()
        && require(
            "script (util-linux) for terminal tests",
            have_tool("script"),
        )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_whole_container_life_through_the_cais_cli() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "GREETING=hello",
        "--label",
        "tier=front",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING; echo oops >&2; exec sleep 1000",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");

    // ps: docker's table and Go-template formats.
    let table = d.ok(&["ps"]);
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{col} in {header:?}");
    }
    assert!(
        table.contains(&id[..12]) && table.contains("web"),
        "{table}"
    );
    let row = d.ok(&[
        "ps",
        "--format",
        "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.Command}}",
    ]);
    assert_eq!(
        row.trim(),
        format!("{} web busybox running \"sh -c echo $GREETIN…\"", &id[..12])
    );
    let status = d.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Up "), "{status}");
    let table = d.ok(&["ps", "--format", "table {{.Names}}\t{{.State}}"]);
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        // docker's tab writer: columns at least 10 wide, 3 spaces apart.
        ["NAMES     STATE", "web       running"]
    );
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "label=tier=front"]).trim(),
        &id[..12]
    );
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "label=tier=back"]).trim(),
        ""
    );

    // logs: stdout and stderr apart.
    wait_until("the logs", || d.ok(&["logs", "web"]).contains("hello"));
    let out = d.cais(&["logs", "web"]);
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(text(&out.stderr), "oops\n");
    let out = d.cais(&["logs", "-t", "--tail", "1", "web"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.ends_with(" oops\n") && stderr.starts_with("20"),
        "a timestamped last line: {stderr:?}"
    );

    // exec: output, environment, working directory and exit codes.
    assert_eq!(
        d.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $X; pwd"
        ]),
        "1\n/tmp\n"
    );
    let out = d.cais(&["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    d.ok(&["exec", "-d", "web", "sh", "-c", "echo bg > /tmp/bg"]);
    wait_until("the detached exec", || {
        d.cais(&["exec", "web", "cat", "/tmp/bg"]).stdout == b"bg\n"
    });

    // inspect -f, top, stats.
    assert_eq!(d.inspect("web", "{{.State.Running}}"), "true");
    assert_eq!(d.inspect("web", "{{.Name}}"), "/web");
    assert_eq!(
        d.inspect("web", "{{json .Config.Labels}}"),
        r#"{"tier":"front"}"#
    );
    assert_eq!(
        d.inspect("web", "{{index .Config.Labels \"tier\"}}"),
        "front"
    );
    let top = d.ok(&["top", "web"]);
    assert!(top.contains("PID") && top.contains("sleep 1000"), "{top}");
    let stats = d.ok(&["stats", "--no-stream", "web"]);
    let mut lines = stats.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.contains("CPU %") && header.contains("MEM USAGE / LIMIT"),
        "{stats}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with(&id[..12]) && row.contains("web"), "{stats}");
    let pids = d.ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "web"]);
    assert!(pids.trim().parse::<u32>().is_ok_and(|n| n >= 1), "{pids}");

    // pause and unpause.
    assert_eq!(d.ok(&["pause", "web"]).trim(), "web");
    assert_eq!(d.inspect("web", "{{.State.Status}}"), "paused");
    assert!(d
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(Paused)"));
    d.ok(&["unpause", "web"]);
    assert_eq!(d.inspect("web", "{{.State.Status}}"), "running");

    // rename, wait, stop, rm.
    d.ok(&["rename", "web", "site"]);
    assert_eq!(d.inspect(id, "{{.Name}}"), "/site");
    let waiter = d
        .cmd(&["wait", "site"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wait");
    assert_eq!(d.ok(&["stop", "-t", "2", "site"]).trim(), "site");
    let waited = waiter.wait_with_output().expect("wait output");
    // sh is pid 1 with the default SIGTERM action: ignored, so killed.
    assert_eq!(text(&waited.stdout).trim(), "137");
    assert_eq!(d.inspect("site", "{{.State.Running}}"), "false");
    assert_eq!(d.ok(&["rm", "site"]).trim(), "site");
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn stop_waits_the_grace_period_then_kills() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    // Streaming stats: a table a second until interrupted.
    let mut stats = d
        .cmd(&["stats", "stubborn"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stats");
    std::thread::sleep(Duration::from_millis(2600));
    let _ = stats.kill();
    let out = stats.wait_with_output().expect("stats output");
    let tables = text(&out.stdout);
    assert!(
        tables.matches("MEM USAGE / LIMIT").count() >= 2 && tables.contains("stubborn"),
        "{tables}"
    );

    let t = Instant::now();
    d.ok(&["stop", "-t", "2", "stubborn"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "stop took {took:?}"
    );
    assert_eq!(d.inspect("stubborn", "{{.State.ExitCode}}"), "137");
    let status = d.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (137)"), "{status}");

    // kill -s and restart.
    d.ok(&["start", "stubborn"]);
    assert_eq!(d.inspect("stubborn", "{{.State.Running}}"), "true");
    d.ok(&["kill", "-s", "KILL", "stubborn"]);
    wait_until("the kill", || {
        d.inspect("stubborn", "{{.State.Running}}") == "false"
    });
    d.ok(&["restart", "-t", "1", "stubborn"]);
    assert_eq!(d.inspect("stubborn", "{{.State.Running}}"), "true");
    d.ok(&["rm", "-f", "stubborn"]);
}

#[test]
fn run_in_the_foreground_returns_the_exit_code() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let out = d.cais(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(text(&out.stderr), "oops\n");
    assert_eq!(d.ok(&["ps", "-aq"]).trim(), "", "--rm removed it");

    let out = d.cais(&["run", "--rm", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(0));

    // Without --rm the container stays, exited, with its code.
    let out = d.cais(&["run", "--name", "kept", "busybox", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(d.inspect("kept", "{{.State.ExitCode}}"), "5");
    assert_eq!(d.inspect("kept", "{{.State.Status}}"), "exited");

    // Signals sent to the client reach the container (docker's sig-proxy).
    let child = d
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-int; exit 9' INT; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run");
    wait_until("the container to run", || {
        d.ok(&["ps", "-q"]).lines().count() == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal the client");
    let out = child.wait_with_output().expect("run output");
    assert_eq!(out.status.code(), Some(9));
    assert_eq!(text(&out.stdout), "got-int\n");

    // create then start -a.
    let id = d.ok(&["create", "--name", "later", "busybox", "echo", "started"]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(d.inspect("later", "{{.State.Status}}"), "created");
    assert_eq!(d.ok(&["start", "-a", "later"]), "started\n");

    // Flags reach the container.
    let out = d.ok(&[
        "run",
        "--rm",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "--hostname",
        "box",
        "--env-file",
        "/dev/null",
        "-e",
        "A=b",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "id -u; pwd; hostname; echo $A; touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs",
    ]);
    assert_eq!(out, "1000\n/tmp\nbox\nb\nro\ntmpfs\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "from",
        "entrypoint",
    ]);
    assert_eq!(out, "from entrypoint\n");
}

#[test]
fn terminals_through_a_pty() {
    if !ready_with_pty() {
        return;
    }
    let d = Daemon::start();
    // run -it: the container sees a terminal of the local size; its exit
    // code comes back.
    let out = d.with_pty(
        &format!("{CAIS} run -it --rm busybox sh -c 'tty; exit 4'"),
        None,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    assert_eq!(out.status.code(), Some(4), "{stdout}{}", text(&out.stderr));

    // exec -it with input typed in.
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let out = d.with_pty(
        &format!("{CAIS} exec -it box sh"),
        Some("echo typed-$((6*7)); exit 9\n"),
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("typed-42"), "{stdout}");
    assert_eq!(out.status.code(), Some(9), "{stdout}");
    let out = d.with_pty(&format!("{CAIS} exec -it box tty"), None);
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );

    // attach to a running container with a terminal.
    d.ok(&["run", "-d", "-it", "--name", "shell", "busybox", "sh"]);
    let out = d.with_pty(
        &format!("{CAIS} attach shell"),
        Some("echo attached-$((1+1)); exit 6\n"),
    );
    assert!(
        text(&out.stdout).contains("attached-2"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(6));
    wait_until("the shell to exit", || {
        d.inspect("shell", "{{.State.Status}}") == "exited"
    });

    // -it without a terminal is refused, like docker.
    let out = d.cais(&["exec", "-it", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a TTY"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn restart_policy_restarts_a_crashing_container() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    wait_until("two restarts", || {
        d.inspect("crash", "{{.RestartCount}}") == "2"
            && d.inspect("crash", "{{.State.Status}}") == "exited"
    });
    assert_eq!(d.inspect("crash", "{{.State.ExitCode}}"), "1");
    assert_eq!(d.ok(&["logs", "crash"]), "run\nrun\nrun\n");
    // logs -f ends once the container is stopped for good.
    assert_eq!(d.ok(&["logs", "-f", "crash"]), "run\nrun\nrun\n");
    // events replays the past between --since and --until, filtered.
    let events = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=crash",
        "--filter",
        "event=start",
    ]);
    assert_eq!(events.lines().count(), 3, "{events}");
    assert!(
        events
            .lines()
            .all(|l| l.contains(" container start ") && l.contains("name=crash")),
        "{events}"
    );
    let actions = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=crash",
        "--format",
        "{{.Action}}",
    ]);
    assert!(actions.starts_with("create\nstart\n"), "{actions}");
    assert_eq!(
        d.inspect("crash", "{{.HostConfig.RestartPolicy.Name}}"),
        "on-failure"
    );
}

#[test]
fn commit_then_run_the_new_image() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "src", "busybox", "sleep", "1000"]);
    d.ok(&["exec", "src", "sh", "-c", "echo committed > /marker"]);
    let id = d.ok(&["commit", "-m", "a marker", "src", "marked:v1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let images = d.ok(&["images"]);
    assert!(
        images.starts_with("REPOSITORY") && images.contains("marked") && images.contains("v1"),
        "{images}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "marked:v1", "cat", "/marker"]),
        "committed\n"
    );
    assert_eq!(
        d.inspect("marked:v1", "{{.Comment}}"),
        "a marker",
        "inspect falls back to images"
    );
    let history = d.ok(&["history", "marked:v1"]);
    assert!(
        history.starts_with("IMAGE") && history.contains("a marker"),
        "{history}"
    );

    // tag and rmi through the daemon.
    d.ok(&["tag", "marked:v1", "other:v2"]);
    assert!(d.ok(&["images", "-q"]).lines().count() >= 2);
    let out = d.ok(&["rmi", "other:v2"]);
    assert!(out.contains("Untagged: other:v2"), "{out}");
    let out = d.cais(&["image", "inspect", "other:v2"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_named_volume_outlives_its_containers() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    assert_eq!(d.ok(&["volume", "create", "data"]).trim(), "data");
    d.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/file",
    ]);
    d.ok(&["rm", "-v", "writer"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=data,target=/d,readonly",
            "busybox",
            "cat",
            "/d/file"
        ]),
        "kept\n"
    );
    let ls = d.ok(&["volume", "ls"]);
    assert!(ls.starts_with("DRIVER") && ls.contains("data"), "{ls}");
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "data"])
            .trim(),
        "data local"
    );
    d.ok(&["volume", "rm", "data"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]).trim(), "");
}

#[test]
fn bad_input_gets_clear_errors() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let out = d.cais(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Error response from daemon: No such image: nosuchimage"),
        "{stderr}"
    );

    d.ok(&["create", "--name", "taken", "busybox", "true"]);
    let out = d.cais(&["run", "--name", "taken", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Error response from daemon: ") && stderr.contains("already in use"),
        "{stderr}"
    );

    let out = d.cais(&["run", "--no-such-flag", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("--no-such-flag"));

    let out = d.cais(&["run", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("invalid restart policy"));

    let out = d.cais(&["rm", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error response from daemon: No such container: ghost\n"
    );

    let out = d.cais(&["ps", "--format", "{{.ID"]);
    assert_eq!(out.status.code(), Some(1));

    // A daemon that is not there.
    let out = Command::new(CAIS)
        .args(["-H", "unix:///nonexistent/cais.sock", "ps"])
        .output()
        .expect("run cais");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is the daemon running?"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn save_load_and_import_through_the_daemon() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let tar = d.dir.path().join("busybox.tar");
    let out = d.cais(&["save", "-o", tar.to_str().expect("utf-8 path"), "busybox"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::metadata(&tar).expect("saved").len() > 100_000);
    d.ok(&["rmi", "busybox"]);
    assert_eq!(d.ok(&["images", "-q"]).trim(), "");
    let out = d
        .cmd(&["load"])
        .stdin(std::fs::File::open(&tar).expect("open tarball"))
        .output()
        .expect("load");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Loaded image: busybox:latest\n");
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "echo", "loaded"]),
        "loaded\n"
    );

    // import: a root filesystem tarball.
    let rootfs = cais_testkit::busybox_rootfs_tar(d.dir.path(), &[("hello.txt", b"imported\n")]);
    let id = d.ok(&[
        "import",
        "-m",
        "from a tarball",
        rootfs.to_str().expect("utf-8 path"),
        "imported:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        d.ok(&["run", "--rm", "imported:1", "/bin/cat", "/hello.txt"]),
        "imported\n"
    );
    // The local store is used when a data root is given.
    let out = Command::new(CAIS)
        .args(["images", "-q", "--data-root"])
        .arg(d.root())
        .env_remove("CAIS_HOST")
        .output()
        .expect("local images");
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_flags_reach_the_container() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "create",
        "--name",
        "flags",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--restart",
        "unless-stopped",
        "--network",
        "none",
        "-p",
        "127.0.0.1:8080:80",
        "--cap-add",
        "NET_ADMIN",
        "--security-opt",
        "no-new-privileges",
        "--init",
        "--stop-signal",
        "SIGUSR1",
        "busybox",
        "sleep",
        "1",
    ]);
    let fmt = "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} \
               {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}} \
               {{json .HostConfig.CapAdd}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.Init}} \
               {{.Config.StopSignal}}";
    assert_eq!(
        d.inspect("flags", fmt),
        format!(
            "{} 500000000 50 unless-stopped none [\"NET_ADMIN\"] [\"no-new-privileges\"] true SIGUSR1",
            64 << 20
        )
    );
    // The binding is recorded; `port` shows only what a running container
    // has bound (crates/cli/tests/network.rs), like docker's.
    assert_eq!(
        d.inspect("flags", "{{json .HostConfig.PortBindings}}"),
        r#"{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}"#
    );
    assert_eq!(d.ok(&["port", "flags"]), "");

    // Capabilities and the health check, seen from inside.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "busybox",
            "sh",
            "-c",
            "grep CapEff /proc/self/status"
        ])
        .split_whitespace()
        .last(),
        Some("0000000000000000")
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "healthy",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    wait_until("a healthy container", || {
        d.inspect("healthy", "{{.State.Health.Status}}") == "healthy"
    });
    assert!(d
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(healthy)"));

    // DOCKER_HOST is used when CAIS_HOST is not set.
    let out = Command::new(CAIS)
        .args(["ps", "-aq"])
        .env_remove("CAIS_HOST")
        .env("DOCKER_HOST", d.host())
        .output()
        .expect("run cais");
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stderr)
    );
}

/// `cais registry serve` on a free port; killed when dropped.
struct Registry {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(CAIS)
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(dir.path().join("store"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the registry");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .replace("127.0.0.1", "localhost");
        Registry {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn push_and_pull_through_the_daemon() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let reg = Registry::start();
    let name = format!("{}/tools/bb:1", reg.addr);
    let out = d.cais(&["push", "busybox", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stderr);
    assert!(
        progress.contains("Pushed") && progress.contains("digest: sha256:"),
        "plain progress lines: {progress}"
    );
    d.ok(&["rmi", &name, "busybox"]);
    assert_eq!(d.ok(&["images", "-q"]).trim(), "");
    let out = d.cais(&["pull", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{name}\n"));
    assert!(
        text(&out.stderr).contains("Pulling from"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");

    let out = d.cais(&["pull", &format!("{}/tools/missing:1", reg.addr)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
}
