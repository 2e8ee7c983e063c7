//! End-to-end tests of image builds through the engine: a real `cais
//! daemon` (with a busybox image made offline), driven by the real docker
//! CLI with the classic builder (`DOCKER_BUILDKIT=0`), by the raw API, and
//! by `cais build` (through the daemon and on a local store).
//!
//! Dockerfiles and contexts are real files under
//! `tests/fixtures/build/<name>/`; tests that change a context copy it to
//! a temporary directory first.
//!
//! Needs root, a static busybox and the docker CLI at /usr/local/bin/docker;
//! a missing one fails under `CI` and skips the test otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
use cais_testkit::daemon::DOCKER;

/// A daemon whose store holds `busybox`, the docker CLI and the cais CLI
/// pointed at it.
struct Daemon {
    inner: cais_testkit::daemon::Daemon,
}

impl std::ops::Deref for Daemon {
    type Target = cais_testkit::daemon::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// stdout and stderr of a command, for assertion messages.
fn both(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

impl Daemon {
    fn start() -> Daemon {
        Daemon {
            inner: cais_testkit::daemon::Daemon::start(CAIS, true),
        }
    }

    /// The docker CLI with the classic builder, run in `dir`.
    fn docker_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.docker_command()
            .args(args)
            .current_dir(dir)
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("run docker")
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.docker_in(Path::new("/"), args)
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\ndaemon log:\n{}",
            both(&out),
            self.log()
        );
        text(&out.stdout)
    }

    /// `docker build ARGS CONTEXT`, which must succeed; its output.
    fn build(&self, context: &Path, args: &[&str]) -> String {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        let ctx = context.to_string_lossy().into_owned();
        all.push(&ctx);
        let out = self.docker(&all);
        assert!(
            out.status.success(),
            "docker {all:?} failed: {}\ndaemon log:\n{}",
            both(&out),
            self.log()
        );
        text(&out.stdout)
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.docker_ok(&["image", "inspect", "-f", format, name])
            .trim()
            .to_string()
    }

    /// `docker run --rm IMAGE sh -c SCRIPT`, which must succeed; its stdout.
    fn run_sh(&self, image: &str, script: &str) -> String {
        self.docker_ok(&["run", "--rm", "--entrypoint", "", image, "sh", "-c", script])
    }

    fn cais(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIS);
        c.args(args)
            .env("CAIS_HOST", self.host())
            .env_remove("CAIS_DATA_ROOT")
            .env_remove("DOCKER_HOST")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null());
        c
    }

    fn cais_ok(&self, args: &[&str]) -> String {
        let out = self.cais(args).output().expect("run cais");
        assert!(
            out.status.success(),
            "cais {args:?} failed: {}\ndaemon log:\n{}",
            both(&out),
            self.log()
        );
        text(&out.stdout)
    }
}

fn ready() -> bool {
    require_root_and_busybox()
        && require(
            "the docker CLI at /usr/local/bin/docker",
            Path::new(DOCKER).exists(),
        )
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/build")
        .join(name)
}

/// A copy of a fixture context that the test may change.
fn copy_fixture(name: &str, dest: &Path) -> PathBuf {
    let to = dest.join(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture(name))
        .arg(&to)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a of the fixture {name}");
    to
}

/// The image id `docker build` reported (`Successfully built <id>`).
fn built_id(output: &str) -> String {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("Successfully built "))
        .next_back()
        .unwrap_or_else(|| panic!("no 'Successfully built' line in:\n{output}"))
        .trim()
        .to_string()
}

#[test]
fn the_lecture_web_server_image_builds_and_holds_the_site() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    // As in the lecture: `docker build -t meu-apache .` in the context.
    let out = d.docker_in(&fixture("web"), &["build", "-t", "meu-apache", "."]);
    assert!(out.status.success(), "{}\n{}", both(&out), d.log());
    let stdout = text(&out.stdout);
    for want in [
        "Step 1/4 : FROM busybox",
        "Step 2/4 : COPY ./public-html/ /www/",
        "Step 4/4 : CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]",
        "Successfully built ",
        "Successfully tagged meu-apache:latest",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let page = d.docker_ok(&["run", "--rm", "meu-apache", "cat", "/www/index.html"]);
    assert_eq!(
        page,
        std::fs::read_to_string(fixture("web/public-html/index.html")).expect("fixture")
    );
    assert_eq!(
        d.inspect("meu-apache", "{{json .Config.Cmd}}"),
        r#"["httpd","-f","-p","80","-h","/www"]"#
    );
    assert_eq!(
        d.inspect("meu-apache", "{{json .Config.ExposedPorts}}"),
        r#"{"80/tcp":{}}"#
    );
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id = built_id(&stdout);
    assert!(
        images.contains(&format!("meu-apache:latest {id}")),
        "{images}"
    );
}

/// The lecture's whole example: build, `docker run -d -p PORT:80`, curl.
/// Needs port publishing from the networking branches (net-*).
#[test]
fn the_lecture_web_server_answers_on_a_published_port() {
    if !ready() || !require("curl", cais_testkit::have_tool("curl")) {
        return;
    }
    let d = Daemon::start();
    d.build(&fixture("web"), &["-t", "meu-apache"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let publish = format!("{port}:80");
    let id = d.docker_ok(&["run", "-d", "-p", &publish, "meu-apache"]);
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "2", &url])
            .output()
            .expect("run curl");
        if out.status.success() {
            break text(&out.stdout);
        }
        assert!(
            Instant::now() < deadline,
            "curl {url} kept failing: {}\ncontainer logs: {}\ndaemon log:\n{}",
            text(&out.stderr),
            text(&d.docker(&["logs", id.trim()]).stderr),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains("Olá do meu-apache"), "{page}");
    d.docker_ok(&["rm", "-f", id.trim()]);
}

#[test]
fn a_multi_stage_build_ends_in_scratch_and_target_stops_at_a_stage() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = fixture("multistage");
    d.build(&ctx, &["-t", "ms:final"]);
    // The final stage is FROM scratch plus one COPY: one layer, one file.
    assert_eq!(d.inspect("ms:final", "{{len .RootFS.Layers}}"), "1");
    let c = d.docker_ok(&["create", "ms:final"]);
    let c = c.trim();
    let tmp = tempfile::tempdir().expect("tempdir");
    d.docker_ok(&[
        "cp",
        &format!("{c}:/shout.txt"),
        &tmp.path().to_string_lossy(),
    ]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("shout.txt")).expect("copied out"),
        "HELLO FROM THE FIRST STAGE\n"
    );
    let missing = d.docker(&["cp", &format!("{c}:/bin/busybox"), "-"]);
    assert!(
        !missing.status.success(),
        "the final image has no busybox: {}",
        both(&missing)
    );
    d.docker_ok(&["rm", c]);

    // --target builder: the first stage only, with its RUN's results.
    d.build(&ctx, &["--target", "builder", "-t", "ms:builder"]);
    assert_eq!(
        d.run_sh("ms:builder", "cat /built-marker /src/shout.txt; pwd"),
        "built\nHELLO FROM THE FIRST STAGE\n/src\n"
    );
    let bad = d.docker(&["build", "--target", "nope", &ctx.to_string_lossy()]);
    assert!(!bad.status.success(), "unknown target accepted");
    assert!(text(&bad.stderr).contains("nope"), "{}", both(&bad));
}

#[test]
fn a_rebuild_uses_the_cache_and_runs_nothing_until_the_cache_is_pruned() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = fixture("cache");
    let first = d.build(&ctx, &["-t", "cached"]);
    assert!(first.contains("Running in"), "{first}");
    let stamp = d.run_sh("cached", "cat /stamp /ran.log");
    let second = d.build(&ctx, &["-t", "cached"]);
    assert!(
        !second.contains("Running in"),
        "a cached rebuild ran a step:\n{second}"
    );
    assert_eq!(
        second.matches("Using cache").count(),
        4,
        "every step after FROM is cached:\n{second}"
    );
    assert_eq!(built_id(&first), built_id(&second));
    // The RUN wrote a random stamp: the same one means it did not run again.
    assert_eq!(d.run_sh("cached", "cat /stamp /ran.log"), stamp);
    assert!(stamp.ends_with("ran\n"), "{stamp}");
    // `docker builder prune` forgets the steps: the next build runs them.
    let pruned = d.docker_ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let third = d.build(&ctx, &["-t", "cached"]);
    assert!(third.contains("Running in"), "{third}");
    assert_ne!(d.run_sh("cached", "cat /stamp /ran.log"), stamp);
}

#[test]
fn a_changed_file_invalidates_the_cache_from_its_copy_on() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ctx = copy_fixture("cache", tmp.path());
    let first = d.build(&ctx, &["-t", "inval"]);
    let stamp = d.run_sh("inval", "cat /stamp");
    std::fs::write(ctx.join("b.txt"), "second file, changed\n").expect("change b.txt");
    let second = d.build(&ctx, &["-t", "inval"]);
    // Steps 2 and 3 (COPY a.txt, RUN) are cached; 4 (COPY b.txt) and 5 are not.
    let steps: Vec<&str> = second.split("Step ").skip(1).collect();
    assert_eq!(steps.len(), 5, "{second}");
    for (i, step) in steps.iter().enumerate().skip(1) {
        let cached = step.contains("Using cache");
        assert_eq!(cached, i < 3, "step {}:\n{second}", i + 1);
    }
    assert!(steps[4].contains("Running in"), "{second}");
    assert_ne!(built_id(&first), built_id(&second));
    assert_eq!(
        d.run_sh("inval", "cat /stamp"),
        stamp,
        "RUN 3 stayed cached"
    );
    assert_eq!(
        d.run_sh("inval", "cat /ab.txt"),
        "first file\nsecond file, changed\n"
    );
}

#[test]
fn build_args_and_env_expand_into_the_image() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = fixture("args");
    d.build(&ctx, &["--build-arg", "WHO=world", "-t", "args:1"]);
    let env = d.inspect("args:1", "{{json .Config.Env}}");
    assert!(env.contains(r#""MESSAGE=hello, world""#), "{env}");
    assert!(env.contains(r#""APP_HOME=/home/app""#), "{env}");
    assert!(!env.contains("WHO="), "ARG values are not ENV: {env}");
    assert_eq!(
        d.run_sh("args:1", "cat /message.txt; echo $MESSAGE"),
        "hello, world from hello in /home/app\nhello, world\n"
    );
    // Defaults when no argument is given; an override of the other one.
    d.build(&ctx, &["-t", "args:2", "--build-arg", "GREETING=olá"]);
    assert_eq!(
        d.run_sh("args:2", "cat /message.txt"),
        "olá, nobody from olá in /home/app\n"
    );
}

#[test]
fn dockerignore_keeps_files_out_of_the_image() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.build(&fixture("ignore"), &["-t", "ignored"]);
    let files = d.run_sh("ignored", "cd /ctx && find . -type f | sort");
    assert_eq!(
        files, "./.dockerignore\n./Dockerfile\n./keep.txt\n./logs/keep.log\n",
        "secret.txt, *.log and logs/ (but for its exception) stay out"
    );
    // A Dockerfile from outside the context: the docker CLI adds it to the
    // tar under a random name that its .dockerignore then excludes.
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("Outside.Dockerfile");
    std::fs::write(&outside, "FROM busybox\nCOPY . /ctx/\n").expect("write");
    d.build(
        &fixture("ignore"),
        &["-f", &outside.to_string_lossy(), "-t", "ignored:outside"],
    );
    let files = d.run_sh("ignored:outside", "cd /ctx && find . -type f | sort");
    assert_eq!(
        files, "./.dockerignore\n./Dockerfile\n./keep.txt\n./logs/keep.log\n",
        "the outside Dockerfile (.dockerfile.<random>) is not copied"
    );
}

#[test]
fn dockerfile_instructions_show_in_inspect_and_history() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.build(
        &fixture("config"),
        &["-t", "conf", "--label", "from.cli=yes"],
    );
    assert_eq!(d.inspect("conf", "{{.Config.User}}"), "nobody");
    assert_eq!(d.inspect("conf", "{{.Config.WorkingDir}}"), "/srv/app");
    assert_eq!(
        d.inspect("conf", "{{json .Config.Entrypoint}}"),
        r#"["/bin/sh","-c"]"#
    );
    assert_eq!(
        d.inspect("conf", "{{json .Config.Cmd}}"),
        r#"["cat state; id -u; pwd"]"#
    );
    assert_eq!(
        d.inspect("conf", "{{json .Config.Labels}}"),
        r#"{"from.cli":"yes","org.example.team":"build","version":"1.0"}"#
    );
    assert_eq!(
        d.inspect("conf", "{{json .Config.ExposedPorts}}"),
        r#"{"53/udp":{},"8080/tcp":{}}"#
    );
    // ENTRYPOINT + CMD, as USER nobody in WORKDIR.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "conf"]),
        "configured\n65534\n/srv/app\n"
    );
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "conf",
    ]);
    let lines: Vec<&str> = history.lines().collect();
    // docker's classic builder applies --label as a last LABEL step.
    for (i, want) in [
        "LABEL from.cli=yes",
        "CMD",
        "ENTRYPOINT",
        "USER nobody",
        "EXPOSE",
        "echo configured > /srv/app/state",
        "WORKDIR /srv/app",
        "LABEL org.example.team=build version=1.0",
        "cais testkit: busybox",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            lines.get(i).is_some_and(|l| l.contains(want)),
            "history line {i} should mention {want:?}:\n{history}"
        );
    }
}

#[test]
fn bad_builds_fail_with_the_reason_and_leave_no_tag() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let before = d.docker_ok(&["images", "-q"]);
    for (name, wants) in [
        ("bad-instruction", &["unknown instruction", "RUNN", "2"][..]),
        ("no-from", &["FROM"][..]),
        ("copy-missing", &["not-there.txt"][..]),
        ("copy-outside", &["../Dockerfile"][..]),
        ("run-false", &["returned a non-zero code: 3"][..]),
    ] {
        let out = d.docker(&["build", "-t", "broken:1", &fixture(name).to_string_lossy()]);
        assert!(!out.status.success(), "{name} built: {}", both(&out));
        let err = text(&out.stderr);
        for want in wants {
            assert!(err.contains(want), "{name}: no {want:?} in: {}", both(&out));
        }
        if name == "run-false" {
            assert!(
                text(&out.stdout).contains("about to fail"),
                "the failing RUN's output is shown: {}",
                both(&out)
            );
        }
        assert_eq!(
            d.docker_ok(&["images", "-q", "broken"]),
            "",
            "{name} left a tag"
        );
    }
    assert_eq!(d.docker_ok(&["images", "-q"]), before, "no new image");
}

/// A raw `POST /build` with `body` (gzip or not) and query `q`:
/// (status, body).
fn raw_build(d: &Daemon, q: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("connect");
    write!(
        s,
        "POST /v1.44/build?{q} HTTP/1.1\r\nHost: cais\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let out = text(&out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, body.as_bytes()).expect("tar");
    }
    b.into_inner().expect("tar")
}

#[test]
fn the_api_takes_gzip_contexts_and_explains_buildkit_requests() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let tar = tar_of(&[
        ("Dockerfile", "FROM busybox\nCOPY hi.txt /hi.txt\n"),
        ("hi.txt", "hi\n"),
    ]);
    let gz = {
        let mut gz = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        use std::io::Write;
        gz.stdin
            .take()
            .expect("stdin")
            .write_all(&tar)
            .expect("feed gzip");
        gz.wait_with_output().expect("gzip").stdout
    };
    let (status, body) = raw_build(&d, "t=gz%3A1", &gz);
    assert_eq!(status, 200, "{body}");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let aux = lines
        .iter()
        .find_map(|v| v["aux"]["ID"].as_str())
        .unwrap_or_else(|| panic!("no aux ID in {body}"));
    assert!(aux.starts_with("sha256:"), "{aux}");
    assert!(
        lines.iter().any(|v| v["stream"]
            .as_str()
            .is_some_and(|s| s.starts_with("Step 1/2 : FROM busybox"))),
        "{body}"
    );
    assert_eq!(d.run_sh("gz:1", "cat /hi.txt"), "hi\n");

    // BuildKit's protocol is not POST /build's: refused, naming where it is.
    let (status, body) = raw_build(&d, "version=2&t=bk", &tar);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/session and /grpc"), "{body}");
    // A bad Dockerfile before any output: a plain HTTP error.
    let (status, body) = raw_build(&d, "dockerfile=missing", &tar);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Cannot locate specified Dockerfile: missing"),
        "{body}"
    );

    // Without DOCKER_BUILDKIT and without buildx, the docker CLI 28 uses the
    // classic builder by itself on a Linux daemon, although /_ping says
    // Builder-Version: 2 (it reads that for Windows daemons only).
    let out = Command::new(DOCKER)
        .arg("-H")
        .arg(d.host())
        .args(["build", "-q", "-t", "auto:1"])
        .arg(fixture("web"))
        .env_remove("DOCKER_BUILDKIT")
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .output()
        .expect("docker build");
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        text(&out.stdout).trim().starts_with("sha256:"),
        "{}",
        both(&out)
    );
}

#[test]
fn same_inputs_and_source_date_epoch_give_the_same_image_id() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let ctx = fixture("repro").to_string_lossy().into_owned();
    let a = d.cais_ok(&[
        "build",
        "-q",
        "--no-cache",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
        "-t",
        "repro:a",
        &ctx,
    ]);
    // The second time from the environment, as BuildKit reads it.
    let out = d
        .cais(&["build", "-q", "--no-cache", "-t", "repro:b", &ctx])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("cais build");
    assert!(out.status.success(), "{}", both(&out));
    let b = text(&out.stdout);
    assert!(a.trim().starts_with("sha256:"), "{a}");
    assert_eq!(a, b, "two --no-cache builds with the same epoch differ");
    assert_eq!(d.inspect("repro:a", "{{.Created}}"), "2023-11-14T22:13:20Z");
}

#[test]
fn cais_build_through_the_daemon() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let iid = tmp.path().join("iid");
    let out = d.cais_ok(&[
        "build",
        "-t",
        "meu-apache",
        "-t",
        "meu-apache:v2",
        "--iidfile",
        &iid.to_string_lossy(),
        &fixture("web").to_string_lossy(),
    ]);
    assert!(
        out.contains("Step 2/4 : COPY ./public-html/ /www/"),
        "{out}"
    );
    assert!(out.contains("Successfully tagged meu-apache:v2"), "{out}");
    let id = std::fs::read_to_string(&iid).expect("iidfile");
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.inspect("meu-apache:v2", "{{.Id}}"), id);
    let page = d.cais_ok(&["run", "--rm", "meu-apache", "cat", "/www/index.html"]);
    assert!(page.contains("Olá do meu-apache"), "{page}");

    // -f from outside the context, context from the .dockerignore fixture.
    let dockerfile = tmp.path().join("Other.Dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM busybox\nCOPY . /ctx/\nRUN ls /ctx > /listing\n",
    )
    .expect("write");
    d.cais_ok(&[
        "build",
        "-q",
        "-f",
        &dockerfile.to_string_lossy(),
        "-t",
        "other",
        &fixture("ignore").to_string_lossy(),
    ]);
    let listing = d.run_sh("other", "cat /listing");
    assert!(
        listing.contains("keep.txt") && !listing.contains("secret.txt"),
        "{listing}"
    );

    // A failing RUN: its message, its exit code, no tag.
    let out = d
        .cais(&[
            "build",
            "-t",
            "broken",
            &fixture("run-false").to_string_lossy(),
        ])
        .output()
        .expect("cais build");
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("returned a non-zero code: 3"),
        "{}",
        both(&out)
    );
    assert!(
        text(&out.stdout).contains("about to fail"),
        "{}",
        both(&out)
    );
    assert_eq!(d.cais_ok(&["images", "-q", "broken"]), "");
    // A Dockerfile error comes back as the daemon's error.
    let out = d
        .cais(&["build", &fixture("bad-instruction").to_string_lossy()])
        .output()
        .expect("cais build");
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("unknown instruction"),
        "{}",
        both(&out)
    );
}

#[test]
fn cais_build_on_a_local_store() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("store");
    cais_testkit::busybox_image(&root, "busybox", serde_json::json!({}));
    let run = |args: &[&str]| {
        Command::new(CAIS)
            .args(args)
            .arg("--data-root")
            .arg(&root)
            .env_remove("CAIS_HOST")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null())
            .output()
            .expect("run cais")
    };
    let out = run(&[
        "build",
        "-t",
        "local:1",
        &fixture("multistage").to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(text(&out.stdout).contains("Step 1/"), "{}", both(&out));
    let out = run(&["inspect", "--format", "{{json .RootFS.Layers}}", "local:1"]);
    assert!(out.status.success(), "{}", both(&out));
    let layers: Vec<String> = serde_json::from_slice(&out.stdout).expect("layers as JSON");
    assert_eq!(layers.len(), 1, "FROM scratch + one COPY");
    let out = run(&[
        "build",
        "-t",
        "local:2",
        &fixture("run-false").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let out = run(&["images", "-q", "local:2"]);
    assert_eq!(text(&out.stdout), "", "a failed build leaves no tag");
}

/// A tar entry written byte by byte, so names the tar crate would refuse
/// (`../x`) can be sent as a hostile client would.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, body: &[u8]) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn hostile_context_tars_write_nothing_outside_the_context() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    let outside = tempfile::tempdir().expect("outside dir");
    let dockerfile = b"FROM busybox\nCOPY . /ctx/\n";
    let unique = format!("escape-{}", std::process::id());
    // `..` in a name: the file would land beside the daemon's scratch copy.
    let mut traversal = Vec::new();
    raw_entry(&mut traversal, "Dockerfile", b'0', "", dockerfile);
    raw_entry(
        &mut traversal,
        &format!("../{unique}"),
        b'0',
        "",
        b"pwned\n",
    );
    raw_entry(
        &mut traversal,
        &format!("a/../../{unique}"),
        b'0',
        "",
        b"pwned\n",
    );
    traversal.extend_from_slice(&[0; 1024]);
    // A symlink to a host directory, then a file through it.
    let mut through_link = Vec::new();
    let target = outside.path().to_string_lossy().into_owned();
    raw_entry(&mut through_link, "Dockerfile", b'0', "", dockerfile);
    raw_entry(&mut through_link, "link", b'2', &target, b"");
    raw_entry(&mut through_link, "link/pwned", b'0', "", b"pwned\n");
    through_link.extend_from_slice(&[0; 1024]);
    for (what, body) in [("traversal", traversal), ("symlink", through_link)] {
        let (status, reply) = raw_build(&d, "t=hostile:1", &body);
        assert_eq!(status, 400, "{what}: the context is refused: {reply}");
        assert!(reply.contains("refusing entry"), "{what}: {reply}");
        assert!(
            !outside.path().join("pwned").exists(),
            "{what}: nothing written through the link"
        );
        let found = Command::new("find")
            .arg(d.root())
            .arg(d.dir.path())
            .args(["-name", &unique])
            .output()
            .expect("find");
        assert_eq!(text(&found.stdout), "", "{what}: no escaped file");
    }
    assert!(
        !d.docker_ok(&["images", "--format", "{{.Repository}}"])
            .lines()
            .any(|l| l == "hostile"),
        "no image tagged from a hostile context"
    );
}
