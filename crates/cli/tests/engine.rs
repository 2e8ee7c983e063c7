//! End-to-end tests of the engine: a real `cais daemon`, driven by the
//! real docker CLI and by the API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cais_testkit::{require, require_root_and_busybox};

const CAIS: &str = env!("CARGO_BIN_EXE_cais");
const DOCKER: &str = "/usr/local/bin/docker";

/// A daemon with its own data root, exec root and socket.
struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Daemon {
    fn start() -> Daemon {
        // Short paths: unix socket names are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("cd").tempdir_in("/tmp").expect("tempdir");
        let mut d = Daemon { dir, child: None };
        d.spawn();
        d
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("log");
        let child = Command::new(CAIS)
            .arg("daemon")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--data-root")
            .arg(self.root())
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(Instant::now() < deadline, "daemon did not come up: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn image(&self, tag: &str) -> String {
        cais_testkit::busybox_image(&self.root(), tag, serde_json::json!({}))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Remove every container so no shim or mount outlives the test.
        let out = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        self.kill9();
        let _ = Command::new("umount").arg("-R").arg(self.root()).stderr(Stdio::null()).status();
    }
}

fn ready() -> bool {
    require_root_and_busybox() && require("the docker CLI at /usr/local/bin/docker", Path::new(DOCKER).exists())
}

#[test]
fn docker_run_rm_returns_the_exit_code_and_output() {
    if !ready() {
        return;
    }
    let d = Daemon::start();
    d.image("busybox");
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "", "--rm removed the container");
}
